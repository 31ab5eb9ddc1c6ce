//! Asking: record the question, retrieve from the user's granted collections
//! only, gate, quote, then let the model tiers answer on a thread of its own
//! and stream what verification lets through as server-sent events. Closing
//! the stream cancels the generation.
//!
//! Events: `meta` {conversation_id, message_id}, `quotes` {quotes},
//! `queued` {position}, `started` {tier}, `sentence` {text, citation} (only
//! sentences a source supports), `removed` {text, reason} (only when
//! `rag.show_removed_sentences` is on), `escalating` {from, to},
//! `done` {answer}, `error` {error}.

use actix_web::HttpResponse;
use actix_web::web::{self, Bytes, Data};
use serde::{Deserialize, Serialize};

use super::auth::ChatSession;
use super::error::ApiError;
use super::state::{AppState, StateExt, StreamSlot};
use crate::audit::{Actor, Entry};
use crate::rag::{self, Answer, AnswerStatus, Plan, Planned, Prepared, Progress, Verification};
use crate::store;

#[derive(Deserialize)]
pub struct AskBody {
    pub question: String,
    #[serde(default)]
    pub conversation_id: Option<i64>,
}

/// What the browser is told about an answer: quotes, citations and the
/// passages' places, never text from collections the user cannot see (there
/// is none: retrieval only returned granted passages), and removed sentences
/// only when the operator chose to show them struck through.
#[derive(Serialize)]
struct AnswerView<'a> {
    text: &'a str,
    grounded: bool,
    status: AnswerStatus,
    verification: Verification,
    tier: &'a str,
    quotes: &'a [rag::Citation],
    citations: &'a [rag::Citation],
    removed: Vec<&'a rag::CheckedSentence>,
    sources: Vec<SourceView<'a>>,
}

#[derive(Serialize)]
struct SourceView<'a> {
    number: usize,
    chunk_id: i64,
    document_title: &'a str,
    page: i64,
}

fn view(answer: &Answer, status: AnswerStatus, show_removed: bool) -> AnswerView<'_> {
    AnswerView {
        text: &answer.text,
        grounded: answer.grounded,
        status,
        verification: answer.verification,
        tier: &answer.tier,
        quotes: &answer.checks.quotes,
        citations: &answer.citations,
        removed: if show_removed {
            rag::answer::removed_for_view(&answer.checks.sentences, &answer.tier).collect()
        } else {
            Vec::new()
        },
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

/// What a stored answer drawn from documents the viewer can no longer
/// access shows instead.
pub const WITHHELD: &str =
    "This answer drew on documents you no longer have access to, so it is not shown.";

/// A stored message as its owner may see it: of the checks, the quotes, and
/// the removed sentences only when the operator shows them struck through
/// (otherwise unverified text never leaves the server). An answer drawn from
/// a collection the owner is no longer granted (`withheld`) keeps only its
/// question.
pub fn for_viewer(
    mut m: store::conversations::Message,
    show_removed: bool,
    withheld: &std::collections::HashSet<i64>,
) -> store::conversations::Message {
    if withheld.contains(&m.id) {
        m.status = "withheld".into();
        m.answer = WITHHELD.into();
        m.citations = serde_json::json!([]);
        m.checks = serde_json::json!({ "quotes": [], "removed": [] });
        m.verification = String::new();
        m.tier = String::new();
        return m;
    }
    let quotes = m.checks.get("quotes").cloned().unwrap_or_default();
    let removed: Vec<serde_json::Value> = if show_removed {
        let sentences: Vec<rag::CheckedSentence> = m
            .checks
            .get("sentences")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default();
        rag::answer::removed_for_view(&sentences, &m.tier)
            .map(|s| serde_json::json!({ "text": s.text, "reason": s.reason }))
            .collect()
    } else {
        Vec::new()
    };
    m.checks = serde_json::json!({ "quotes": quotes, "removed": removed });
    m
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

    let prepared = match plan {
        Plan::NotCovered { .. } => None,
        Plan::Generate(prepared) => {
            // The queue of the tier this question starts at (a full one is
            // refused with 503 rather than escalated to a bigger model).
            let first = state.asker.first_tier(&prepared, state.tiers.len());
            let busy = state.tiers.get(first).map_or(0, |t| t.worker.queue_len())
                >= state.config.llm.queue_capacity;
            if busy {
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
                    "the model is busy; try again shortly",
                    10,
                ));
            }
            Some(prepared)
        }
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
        .spawn(move || relay.run(prepared))
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
            let digest = db
                .audit_sink()
                .map(|s| s.key.digest(&q))
                .unwrap_or_default();
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
                    "hmac_sha256": digest,
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
    let key = db.audit_sink().map(|s| s.key.clone());
    db.transact(|tx| {
        let pairs: Vec<(i64, i64)> = answer
            .sources
            .iter()
            .map(|s| (s.chunk_id, s.document_id))
            .collect();
        let citations = serde_json::to_value(&answer.citations).map_err(ApiError::internal)?;
        let checks = serde_json::to_value(&answer.checks).map_err(ApiError::internal)?;
        let erased = store::conversations::finish(
            tx,
            message_id,
            &store::conversations::FinishedAnswer {
                status,
                text: &answer.text,
                citations: &citations,
                sources: &pairs,
                degraded,
                verification: answer.verification.as_str(),
                tier: &answer.tier,
                checks: &checks,
            },
        )?;
        let mut docs: Vec<i64> = answer.sources.iter().map(|s| s.document_id).collect();
        docs.sort_unstable();
        docs.dedup();
        let entry = Entry::new(actor, "answer", format!("message:{message_id}"))
            .outcome(if erased { "erased" } else { outcome })
            .documents(docs)
            .chunks(answer.sources.iter().map(|s| s.chunk_id))
            .detail(answer_detail(answer, status, degraded, key.as_deref()));
        Ok(((), Some(entry)))
    })
}

/// What the audit row says of an answer: the tier and the verification, the
/// tiers tried, what it cost, and each removed sentence by its reason and
/// digest ("removed: not supported by the documents"; the text itself is in
/// the stored answer).
fn answer_detail(
    answer: &Answer,
    status: AnswerStatus,
    degraded: bool,
    key: Option<&crate::audit::AuditKey>,
) -> serde_json::Value {
    let removed: Vec<serde_json::Value> = answer
        .removed()
        .map(|s| {
            serde_json::json!({
                "tier": s.tier,
                "removed": "not supported by the documents",
                "reason": s.reason,
                "hmac_sha256": key.map(|k| k.digest(&s.text)).unwrap_or_default(),
            })
        })
        .collect();
    let usage = &answer.checks.usage;
    serde_json::json!({
        "status": status.as_str(),
        "tier": answer.tier,
        "verification": answer.verification.as_str(),
        "tiers_tried": answer.checks.tiers_tried,
        "sentences_shown": answer.checks.sentences.iter().filter(|s| s.supported && s.tier == answer.tier).count(),
        "sentences_removed": removed,
        "quoted_chunks": answer.checks.quotes.iter().map(|q| q.chunk_id).collect::<Vec<_>>(),
        "cited_chunks": answer.citations.iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
        "chars": answer.text.chars().count(),
        "prompt_tokens": usage.prompt_tokens,
        "generated_tokens": usage.generated_tokens,
        "cpu_secs": (usage.cpu_secs * 1000.0).round() / 1000.0,
        "degraded": degraded,
    })
}

/// One server-sent event (JSON data never contains a raw newline).
fn frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Runs the answer on a thread of its own (the model tiers block) and moves
/// what may be shown to the HTTP stream.
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

    /// Forward what the browser may see; false once it has gone.
    fn forward(&self, progress: Progress) -> bool {
        match progress {
            Progress::Quotes(quotes) => {
                self.send("quotes", &serde_json::json!({ "quotes": quotes }))
            }
            Progress::Queued { position } => {
                self.send("queued", &serde_json::json!({ "position": position }))
            }
            Progress::Started { tier } => {
                self.send("started", &serde_json::json!({ "tier": tier }))
            }
            Progress::Generating => !self.tx.is_closed(),
            Progress::Sentence { text, citation } => self.send(
                "sentence",
                &serde_json::json!({ "text": text, "citation": citation }),
            ),
            Progress::Removed(sentence) if self.state.config.rag.show_removed_sentences => self
                .send(
                    "removed",
                    &serde_json::json!({ "text": sentence.text, "reason": sentence.reason }),
                ),
            Progress::Removed(_) => true,
            Progress::Escalating { from, to } => {
                self.send("escalating", &serde_json::json!({ "from": from, "to": to }))
            }
        }
    }

    fn run(self, prepared: Option<Prepared>) {
        let Some(prepared) = prepared else {
            return self.finish(
                &Answer::not_covered(),
                AnswerStatus::NotCovered,
                "not_covered",
            );
        };
        let state = self.state.clone();
        match state
            .asker
            .respond(&state.tiers, &prepared, &mut |p| self.forward(p))
        {
            Ok(answer) => {
                let status = answer.status();
                tracing::info!(
                    message = self.message_id,
                    tier = %answer.tier,
                    verification = answer.verification.as_str(),
                    tokens = answer.checks.usage.generated_tokens,
                    "answered"
                );
                self.finish(&answer, status, "ok");
            }
            Err(rag::Stopped) => {
                // The browser went away: the generation was cancelled; the
                // question stays in the history as failed.
                let cancelled = Answer::failed("Cancelled before the answer was finished.");
                if let Ok(mut store) = self.state.db.lock() {
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
                let show_removed = self.state.config.rag.show_removed_sentences;
                let data =
                    serde_json::to_value(view(answer, status, show_removed)).unwrap_or_default();
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
