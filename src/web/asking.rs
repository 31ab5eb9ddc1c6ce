//! One question's way through the server, whichever interface asked it (the
//! chat page's event stream or the OpenAI-compatible API): record and audit
//! the question, retrieve from the collections the caller may search, gate,
//! quote, then let the model tiers answer on a thread of its own while an
//! [`AnswerSink`] forwards what verification lets through. The answer is
//! stored, audited and measured (the usage rows and Prometheus) the same
//! way for both.

use std::time::Instant;

use actix_web::HttpResponse;
use actix_web::web::{Bytes, Data};

use super::error::ApiError;
use super::state::{AppState, StateExt, StreamSlot};
use crate::audit::{Actor, Entry};
use crate::metrics::{self, AnswerLabels, EscalationLabels, Metrics};
use crate::rag::{self, Answer, AnswerStatus, Plan, Planned, Prepared, Progress};
use crate::store;
use crate::store::usage::AnswerMetric;

/// Which interface asked.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// The chat page (a cookie session).
    Web,
    /// `/v1/chat/completions`, with this API token.
    Api { token_id: i64 },
    /// `/v1/chat/completions` with a model tier by name: plain chat, no
    /// documents, nothing verified (only when `api.allow_plain_chat`).
    Plain { token_id: i64 },
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Web => "web",
            Via::Api { .. } => "api",
            Via::Plain { .. } => "api-plain",
        }
    }
}

/// A question as an interface received it.
pub struct Question {
    pub text: String,
    /// Continue this conversation (the caller's own) or start one.
    pub conversation_id: Option<i64>,
    /// The previous question of the conversation, searched together with
    /// this one when this one alone finds nothing (a follow-up such as
    /// "and for children?").
    pub context: Option<String>,
    /// Search at most these collections (an API token's list); always
    /// narrowed to what the user is granted now.
    pub only: Option<Vec<String>>,
}

/// Where an answer's progress goes.
pub trait AnswerSink: Send + 'static {
    /// Forward what the caller may see; false once it has gone (which
    /// cancels the generation).
    fn progress(&mut self, progress: Progress) -> bool;
    /// The answer, stored and audited.
    fn finished(&mut self, answer: &Answer, status: AnswerStatus, degraded: bool);
    /// The answer could not be stored.
    fn failed(&mut self, message: &str);
}

/// A question recorded and planned, ready to be answered.
pub struct Begun {
    pub conversation_id: i64,
    pub message_id: i64,
    pub degraded: bool,
    prepared: Option<Prepared>,
    /// Frees the user's answer stream when the answer ends (dropped).
    _slot: StreamSlot,
    actor: Actor,
    via: Via,
    started: Instant,
}

/// Check, record and plan a question. Refuses an empty or too long
/// question (400), a user with all their answer streams in use (429) and a
/// full model queue (503, the question stored as failed).
pub async fn begin(
    state: &Data<AppState>,
    actor: Actor,
    user_id: i64,
    question: Question,
    via: Via,
) -> Result<Begun, ApiError> {
    let started = Instant::now();
    let text = question.text.trim().to_string();
    let max = state.config.web.max_question_chars;
    if text.is_empty() {
        return Err(ApiError::bad_request("the question is empty"));
    }
    if text.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "questions are at most {max} characters"
        )));
    }
    let slot = state.take_stream(user_id).ok_or_else(|| {
        ApiError::too_many(
            format!(
                "you already have {} answers in progress; wait for one to finish",
                state.config.web.max_streams_per_user
            ),
            5,
        )
    })?;
    let (conversation_id, message_id, collections) = record_question(
        state,
        &actor,
        user_id,
        question.conversation_id,
        &text,
        question.only,
        via,
    )
    .await?;

    let planning = Instant::now();
    let mut planned = plan(state, &text, &collections).await?;
    if let (Plan::NotCovered { .. }, Some(context)) = (&planned.plan, &question.context) {
        let with_context = format!("{context}\n{text}");
        planned = plan(state, &with_context, &collections).await?;
    }
    metrics::get()
        .retrieval_seconds
        .observe(planning.elapsed().as_secs_f64());
    let Planned { plan, degraded } = planned;
    let mut begun = Begun {
        conversation_id,
        message_id,
        degraded,
        prepared: None,
        _slot: slot,
        actor,
        via,
        started,
    };
    match plan {
        Plan::NotCovered { .. } => {
            metrics::get().gate_refusals.inc();
        }
        Plan::Generate(prepared) => {
            // The queue of the tier this question starts at (a full one is
            // refused with 503 rather than escalated to a bigger model).
            let first = state.asker.first_tier(&prepared, state.tiers.len());
            let busy = state.tiers.get(first).map_or(0, |t| t.worker.queue_len())
                >= state.config.llm.queue_capacity;
            if busy {
                let metric = busy_metric(message_id, via, started);
                return Err(refuse_busy(state, begun.actor.clone(), metric).await);
            }
            begun.prepared = Some(prepared);
        }
    }
    Ok(begun)
}

/// A stream of server-sent events fed by an answer relay's channel.
pub(crate) fn event_stream(rx: tokio::sync::mpsc::Receiver<Bytes>) -> HttpResponse {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, actix_web::Error>(bytes), rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

/// The usage row of a question refused because its model's queue was full.
pub(crate) fn busy_metric(message_id: i64, via: Via, started: Instant) -> AnswerMetric {
    AnswerMetric {
        message_id,
        at: crate::time::unix_now(),
        via: via.as_str().into(),
        status: AnswerStatus::Failed.as_str().into(),
        outcome: "refused_busy".into(),
        tier: String::new(),
        verification: crate::rag::Verification::None.as_str().into(),
        escalated: false,
        first_token_ms: None,
        total_ms: started.elapsed().as_secs_f64() * 1000.0,
        prompt_tokens: 0,
        generated_tokens: 0,
        cpu_secs: 0.0,
        rating: None,
    }
}

/// Refuse a question whose model queue is full: stored as failed, with its
/// usage and audit rows, and answered 503 (the error to return).
pub(crate) async fn refuse_busy(
    state: &Data<AppState>,
    actor: Actor,
    metric: AnswerMetric,
) -> ApiError {
    metrics::get().busy_refusals.inc();
    let failed = Answer::failed("The server was too busy to answer; please ask again.");
    let message_id = metric.message_id;
    let stored = state
        .with_db(move |db| {
            store_answer(
                db,
                &actor,
                message_id,
                AnswerStatus::Failed,
                &failed,
                "refused_busy",
                false,
                &metric,
            )
        })
        .await;
    match stored {
        Ok(()) => ApiError::unavailable("the model is busy; try again shortly", 10),
        Err(e) => e,
    }
}

async fn plan(
    state: &Data<AppState>,
    question: &str,
    collections: &[String],
) -> Result<Planned, ApiError> {
    if collections.is_empty() {
        // Granted nothing: not covered, without waiting for the library.
        return Ok(Planned::not_covered());
    }
    let (st, question, collections) = (state.clone(), question.to_string(), collections.to_vec());
    state
        .with_library(move |lib| {
            st.asker
                .plan(lib, &question, Some(&collections))
                .map_err(ApiError::internal)
        })
        .await
}

impl Begun {
    /// Answer on a thread of its own, forwarding progress to `sink`.
    pub fn spawn(self, state: Data<AppState>, sink: impl AnswerSink) -> Result<(), ApiError> {
        let relay = Relay {
            state,
            begun: self,
            first_token_ms: None,
            sink,
        };
        std::thread::Builder::new()
            .name("answer-relay".into())
            .spawn(move || relay.run())
            .map(|_| ())
            .map_err(ApiError::internal)
    }

    fn metric(
        &self,
        answer: &Answer,
        status: AnswerStatus,
        outcome: &str,
        first_token_ms: Option<f64>,
    ) -> AnswerMetric {
        let usage = &answer.checks.usage;
        AnswerMetric {
            message_id: self.message_id,
            at: crate::time::unix_now(),
            via: self.via.as_str().into(),
            status: status.as_str().into(),
            outcome: outcome.into(),
            tier: answer.tier.clone(),
            verification: answer.verification.as_str().into(),
            escalated: answer.checks.tiers_tried.len() > 1,
            first_token_ms,
            total_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            prompt_tokens: usage.prompt_tokens as i64,
            generated_tokens: usage.generated_tokens as i64,
            cpu_secs: usage.model_cpu_secs,
            rating: None,
        }
    }
}

/// Create or continue the conversation, store the question and audit it, in
/// one transaction. Returns the collections the question may search: the
/// user's grants now, narrowed to `only` when given.
pub(crate) async fn record_question(
    state: &Data<AppState>,
    actor: &Actor,
    user_id: i64,
    conversation: Option<i64>,
    question: &str,
    only: Option<Vec<String>>,
    via: Via,
) -> Result<(i64, i64, Vec<String>), ApiError> {
    // Identifiers in a question are stored and audited as placeholders,
    // whatever the question-text policy; it is answered as asked.
    let found = state.asker.scanner().scan(question);
    let masked = !found.is_empty();
    let q = crate::pii::redact(question, &found).text;
    let actor = actor.clone();
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
                let granted = store::accounts::granted_collections(tx, user_id)?;
                let collections =
                    crate::accounts::tokens::effective_collections(only.as_deref(), &granted);
                let mut detail = serde_json::json!({
                    "conversation": conv,
                    "collections": collections,
                    "chars": q.chars().count(),
                    "hmac_sha256": digest,
                    "via": via.as_str(),
                });
                if masked {
                    detail["identifiers_masked"] = found.len().into();
                }
                match via {
                    Via::Api { token_id } => detail["token"] = token_id.into(),
                    Via::Plain { token_id } => {
                        detail["token"] = token_id.into();
                        detail["plain"] = true.into();
                    }
                    Via::Web => {}
                }
                if log_text {
                    detail["question"] = q.clone().into();
                }
                let entry = Entry::new(&actor, "question", format!("message:{msg}")).detail(detail);
                Ok(((conv, msg, collections), Some(entry)))
            })
        })
        .await
}

/// Store the answer with the passages it was given, its usage row, and
/// audit it (which chunks and documents were shown), in one transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_answer(
    db: &mut store::Store,
    actor: &Actor,
    message_id: i64,
    status: AnswerStatus,
    answer: &Answer,
    outcome: &'static str,
    degraded: bool,
    metric: &AnswerMetric,
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
        store::usage::record(tx, metric)?;
        let mut docs: Vec<i64> = answer.sources.iter().map(|s| s.document_id).collect();
        docs.sort_unstable();
        docs.dedup();
        let mut detail = answer_detail(answer, status, degraded, key.as_deref());
        detail["via"] = metric.via.clone().into();
        let entry = Entry::new(actor, "answer", format!("message:{message_id}"))
            .outcome(if erased { "erased" } else { outcome })
            .documents(docs)
            .chunks(answer.sources.iter().map(|s| s.chunk_id))
            .detail(detail);
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

/// Runs the answer on a thread of its own (the model tiers block) and moves
/// what may be shown to the sink.
struct Relay<S> {
    state: Data<AppState>,
    begun: Begun,
    first_token_ms: Option<f64>,
    sink: S,
}

impl<S: AnswerSink> Relay<S> {
    fn forward(&mut self, progress: Progress) -> bool {
        match &progress {
            Progress::Generating | Progress::Sentence { .. } if self.first_token_ms.is_none() => {
                self.first_token_ms = Some(self.begun.started.elapsed().as_secs_f64() * 1000.0);
            }
            Progress::Escalating { from, to } => {
                metrics::get()
                    .escalations
                    .get_or_create(&EscalationLabels {
                        from: from.to_string(),
                        to: to.to_string(),
                    })
                    .inc();
                // The first token that counts is the answering tier's.
                self.first_token_ms = None;
            }
            _ => {}
        }
        self.sink.progress(progress)
    }

    fn run(mut self) {
        let Some(prepared) = self.begun.prepared.take() else {
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
                    message = self.begun.message_id,
                    tier = %answer.tier,
                    verification = answer.verification.as_str(),
                    tokens = answer.checks.usage.generated_tokens,
                    via = self.begun.via.as_str(),
                    "answered"
                );
                self.finish(&answer, status, "ok");
            }
            Err(rag::Stopped) => {
                // The client went away: the generation was cancelled; the
                // question stays in the history as failed.
                let cancelled = Answer::failed("Cancelled before the answer was finished.");
                let metric = self
                    .begun
                    .metric(&cancelled, AnswerStatus::Failed, "cancelled", None);
                if let Ok(mut store) = self.state.db.lock() {
                    let _ = store_answer(
                        &mut store,
                        &self.begun.actor,
                        self.begun.message_id,
                        AnswerStatus::Failed,
                        &cancelled,
                        "cancelled",
                        self.begun.degraded,
                        &metric,
                    );
                }
            }
        }
    }

    fn finish(&mut self, answer: &Answer, status: AnswerStatus, outcome: &'static str) {
        // No first token when no model ran (not covered, refused).
        let first_token = if answer.tier.is_empty() {
            None
        } else {
            self.first_token_ms
        };
        let metric = self.begun.metric(answer, status, outcome, first_token);
        observe(&metric);
        let saved = match self.state.db.lock() {
            Ok(mut store) => store_answer(
                &mut store,
                &self.begun.actor,
                self.begun.message_id,
                status,
                answer,
                outcome,
                self.begun.degraded,
                &metric,
            ),
            Err(_) => Err(ApiError::internal("database mutex poisoned")),
        };
        match saved {
            Ok(()) => self.sink.finished(answer, status, self.begun.degraded),
            Err(e) => self.sink.failed(&e.message),
        }
        // The stream slot is freed when `self` (and so `begun`) drops.
    }
}

/// Record an answer in the Prometheus metrics.
pub(crate) fn observe(m: &AnswerMetric) {
    let metrics = metrics::get();
    let tier = Metrics::tier(&m.tier);
    metrics
        .answer_seconds
        .get_or_create(&tier)
        .observe(m.total_ms / 1000.0);
    if let Some(ms) = m.first_token_ms {
        metrics
            .first_token_seconds
            .get_or_create(&tier)
            .observe(ms / 1000.0);
    }
    metrics
        .prompt_tokens
        .get_or_create(&tier)
        .inc_by(m.prompt_tokens.max(0) as u64);
    metrics
        .generated_tokens
        .get_or_create(&tier)
        .inc_by(m.generated_tokens.max(0) as u64);
    metrics
        .answers
        .get_or_create(&AnswerLabels {
            tier: m.tier.clone(),
            verification: m.verification.clone(),
            via: m.via.clone(),
        })
        .inc();
}
