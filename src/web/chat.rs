//! Asking: record the question, retrieve from the user's granted collections
//! only, gate, queue for the model, and stream the answer as server-sent
//! events. Closing the stream cancels the generation.
//!
//! Events: `meta` {conversation_id, message_id}, `queued` {position},
//! `started`, `token` {text}, `done` {answer}, `error` {error}.

use actix_web::HttpResponse;
use actix_web::web::{self, Bytes, Data};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::ChatSession;
use super::error::ApiError;
use super::state::{AppState, StateExt, StreamSlot};
use crate::audit::{Actor, Entry};
use crate::llm::{Event, SubmitError, Ticket};
use crate::rag::{self, Answer, AnswerStatus, Plan, Planned, Source};
use crate::store;

#[derive(Deserialize)]
pub struct AskBody {
    pub question: String,
    #[serde(default)]
    pub conversation_id: Option<i64>,
}

/// What the browser is told about an answer: citations and the passages'
/// places, never text from collections the user cannot see (there is none:
/// retrieval only returned granted passages).
#[derive(Serialize)]
struct AnswerView<'a> {
    text: &'a str,
    grounded: bool,
    status: AnswerStatus,
    citations: &'a [rag::Citation],
    sources: Vec<SourceView<'a>>,
}

#[derive(Serialize)]
struct SourceView<'a> {
    number: usize,
    chunk_id: i64,
    document_title: &'a str,
    page: i64,
}

fn view(answer: &Answer, status: AnswerStatus) -> AnswerView<'_> {
    AnswerView {
        text: &answer.text,
        grounded: answer.grounded,
        status,
        citations: &answer.citations,
        sources: answer
            .sources
            .iter()
            .map(|s| SourceView {
                number: s.number,
                chunk_id: s.chunk_id,
                document_title: &s.document_title,
                page: s.page,
            })
            .collect(),
    }
}

pub async fn ask(
    state: Data<AppState>,
    authed: ChatSession,
    body: web::Json<AskBody>,
) -> Result<HttpResponse, ApiError> {
    let question = body.question.trim().to_string();
    let max = state.config.web.max_question_chars;
    if question.is_empty() {
        return Err(ApiError::bad_request("the question is empty"));
    }
    if question.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "questions are at most {max} characters"
        )));
    }
    let user_id = authed.user().id;
    let slot = state.take_stream(user_id).ok_or_else(|| {
        ApiError::too_many(
            format!(
                "you already have {} answers in progress; wait for one to finish",
                state.config.web.max_streams_per_user
            ),
            5,
        )
    })?;
    let actor = authed.actor();
    let (conversation_id, message_id, collections) =
        record_question(&state, &actor, user_id, body.conversation_id, &question).await?;

    let Planned { plan, degraded } = if collections.is_empty() {
        // Granted nothing: not covered, without waiting for the library.
        Planned::not_covered()
    } else {
        let st = state.clone();
        state
            .with_library(move |lib| {
                st.asker
                    .plan(lib, &question, Some(&collections))
                    .map_err(ApiError::internal)
            })
            .await?
    };

    let (ticket, sources) = match plan {
        Plan::NotCovered { .. } => (None, Vec::new()),
        Plan::Generate { messages, sources } => match state.asker.submit(&state.worker, messages) {
            Ok(t) => (Some(t), sources),
            Err(SubmitError::QueueFull(waiting)) => {
                let failed = Answer::failed("The server was too busy to answer; please ask again.");
                save_answer(
                    &state,
                    &actor,
                    message_id,
                    AnswerStatus::Failed,
                    &failed,
                    "refused_busy",
                )
                .await?;
                return Err(ApiError::unavailable(
                    format!("the model is busy ({waiting} questions waiting); try again shortly"),
                    10,
                ));
            }
            Err(e) => return Err(ApiError::internal(e)),
        },
    };

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let relay = Relay {
        state: state.clone(),
        actor,
        message_id,
        degraded,
        tx,
        _slot: slot,
    };
    // The channel is empty: this cannot block (blocking here would stall the runtime).
    let _ = relay.tx.try_send(frame(
        "meta",
        &serde_json::json!({
            "conversation_id": conversation_id,
            "message_id": message_id,
            "degraded": degraded,
        }),
    ));
    std::thread::Builder::new()
        .name("answer-relay".into())
        .spawn(move || relay.run(ticket, sources))
        .map_err(ApiError::internal)?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, actix_web::Error>(bytes), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// Create or continue the conversation, store the question and audit it, in
/// one transaction. Returns the granted collections too.
async fn record_question(
    state: &Data<AppState>,
    actor: &Actor,
    user_id: i64,
    conversation: Option<i64>,
    question: &str,
) -> Result<(i64, i64, Vec<String>), ApiError> {
    let (actor, q) = (actor.clone(), question.to_string());
    let log_text = state.config.audit.log_question_text;
    state
        .with_db(move |db| {
            db.transact(|tx| {
                let conv = match conversation {
                    Some(id) => {
                        store::conversations::owned(tx, id, user_id)?
                            .ok_or_else(ApiError::not_found)?
                            .id
                    }
                    None => store::conversations::create(tx, user_id, &q)?,
                };
                let msg = store::conversations::add_question(tx, conv, &q)?;
                let collections = store::accounts::granted_collections(tx, user_id)?;
                let mut detail = serde_json::json!({
                    "conversation": conv,
                    "collections": collections,
                    "chars": q.chars().count(),
                    "sha256": hex::encode(Sha256::digest(q.as_bytes())),
                });
                if log_text {
                    detail["question"] = q.clone().into();
                }
                let entry = Entry::new(&actor, "question", format!("message:{msg}")).detail(detail);
                Ok(((conv, msg, collections), Some(entry)))
            })
        })
        .await
}

/// Store the answer with the passages it was given, and audit it (which
/// chunks and documents were shown), in one transaction.
async fn save_answer(
    state: &Data<AppState>,
    actor: &Actor,
    message_id: i64,
    status: AnswerStatus,
    answer: &Answer,
    outcome: &'static str,
) -> Result<(), ApiError> {
    let actor = actor.clone();
    let answer = answer.clone();
    state
        .with_db(move |db| store_answer(db, &actor, message_id, status, &answer, outcome, false))
        .await
}

fn store_answer(
    db: &mut store::Store,
    actor: &Actor,
    message_id: i64,
    status: AnswerStatus,
    answer: &Answer,
    outcome: &'static str,
    degraded: bool,
) -> Result<(), ApiError> {
    db.transact(|tx| {
        let pairs: Vec<(i64, i64)> = answer
            .sources
            .iter()
            .map(|s| (s.chunk_id, s.document_id))
            .collect();
        let citations = serde_json::to_value(&answer.citations).map_err(ApiError::internal)?;
        store::conversations::finish(
            tx,
            message_id,
            status,
            &answer.text,
            &citations,
            &pairs,
            degraded,
        )?;
        let mut docs: Vec<i64> = answer.sources.iter().map(|s| s.document_id).collect();
        docs.sort_unstable();
        docs.dedup();
        let entry = Entry::new(actor, "answer", format!("message:{message_id}"))
            .outcome(outcome)
            .documents(docs)
            .chunks(answer.sources.iter().map(|s| s.chunk_id))
            .detail(serde_json::json!({
                "status": status.as_str(),
                "cited_chunks": answer.citations.iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
                "chars": answer.text.chars().count(),
                "degraded": degraded,
            }));
        Ok(((), Some(entry)))
    })
}

/// One server-sent event (JSON data never contains a raw newline).
fn frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Moves events from the model's ticket to the HTTP stream on a thread of
/// its own (the ticket blocks).
struct Relay {
    state: Data<AppState>,
    actor: Actor,
    message_id: i64,
    /// Retrieval was BM25's alone: the vector store was unreachable.
    degraded: bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    _slot: StreamSlot,
}

impl Relay {
    /// False once the client has gone.
    fn send(&self, event: &str, data: &serde_json::Value) -> bool {
        self.tx.blocking_send(frame(event, data)).is_ok()
    }

    fn run(self, ticket: Option<Ticket>, sources: Vec<Source>) {
        let Some(ticket) = ticket else {
            return self.finish(
                &Answer::not_covered(),
                AnswerStatus::NotCovered,
                "not_covered",
            );
        };
        loop {
            let alive = match ticket.recv() {
                Some(Event::Queued { position }) => {
                    self.send("queued", &serde_json::json!({ "position": position }))
                }
                Some(Event::Started) => self.send("started", &serde_json::json!({})),
                Some(Event::Text(piece)) => {
                    self.send("token", &serde_json::json!({ "text": piece }))
                }
                Some(Event::Finished { text, stats }) => {
                    let answer = self.state.asker.finish(&text, &sources);
                    let status = answer.status();
                    tracing::info!(
                        message = self.message_id,
                        ttft_ms = stats.time_to_first_token_ms,
                        tokens = stats.generated_tokens,
                        "answered"
                    );
                    return self.finish(&answer, status, "ok");
                }
                Some(Event::Failed(e)) => {
                    tracing::warn!(message = self.message_id, error = %e, "generation failed");
                    let failed =
                        Answer::failed("The answer could not be generated; please ask again.");
                    return self.finish(&failed, AnswerStatus::Failed, "failed");
                }
                None => {
                    let failed = Answer::failed("The model stopped; please ask again.");
                    return self.finish(&failed, AnswerStatus::Failed, "failed");
                }
            };
            if !alive {
                // The browser went away: dropping the ticket cancels the
                // generation; the question stays in the history as failed.
                drop(ticket);
                let cancelled = Answer::failed("Cancelled before the answer was finished.");
                let db = &self.state;
                if let Ok(mut store) = db.db.lock() {
                    let _ = store_answer(
                        &mut store,
                        &self.actor,
                        self.message_id,
                        AnswerStatus::Failed,
                        &cancelled,
                        "cancelled",
                        self.degraded,
                    );
                }
                return;
            }
        }
    }

    fn finish(&self, answer: &Answer, status: AnswerStatus, outcome: &'static str) {
        let saved = match self.state.db.lock() {
            Ok(mut store) => store_answer(
                &mut store,
                &self.actor,
                self.message_id,
                status,
                answer,
                outcome,
                self.degraded,
            ),
            Err(_) => Err(ApiError::internal("database mutex poisoned")),
        };
        match saved {
            Ok(()) => {
                let data = serde_json::to_value(view(answer, status)).unwrap_or_default();
                self.send(
                    "done",
                    &serde_json::json!({ "answer": data, "degraded": self.degraded }),
                );
            }
            Err(e) => {
                self.send("error", &serde_json::json!({ "error": e.message }));
            }
        }
    }
}
