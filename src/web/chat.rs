//! The chat page's question route: the question goes through
//! [`asking`](super::asking) (recorded, retrieved from the user's granted
//! collections only, gated, quoted, answered by the tiers) and what
//! verification lets through streams as server-sent events. Closing the
//! stream cancels the generation.
//!
//! Events: `meta` {conversation_id, message_id}, `quotes` {quotes},
//! `queued` {position}, `started` {tier}, `sentence` {text, citation} (only
//! sentences a source supports), `removed` {text, reason} (only when
//! `rag.show_removed_sentences` is on), `escalating` {from, to},
//! `done` {answer}, `error` {error}.

use actix_web::HttpResponse;
use actix_web::web::{self, Bytes, Data};
use serde::{Deserialize, Serialize};

use super::asking::{self, AnswerSink, Question, Via};
use super::auth::ChatSession;
use super::error::ApiError;
use super::state::AppState;
use crate::rag::{self, Answer, AnswerStatus, Progress, Verification};
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
pub(crate) struct AnswerView<'a> {
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

pub(crate) fn view(answer: &Answer, status: AnswerStatus, show_removed: bool) -> AnswerView<'_> {
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
    let AskBody {
        question,
        conversation_id,
    } = body.into_inner();
    let question = Question {
        text: question,
        conversation_id,
        context: None,
        only: None,
    };
    let begun = asking::begin(&state, authed.actor(), authed.user().id, question, Via::Web).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    // The channel is empty: this cannot block (blocking here would stall the runtime).
    let _ = tx.try_send(frame(
        "meta",
        &serde_json::json!({
            "conversation_id": begun.conversation_id,
            "message_id": begun.message_id,
            "degraded": begun.degraded,
        }),
    ));
    let sink = EventStream {
        tx,
        show_removed: state.config.rag.show_removed_sentences,
    };
    begun.spawn(state.clone(), sink)?;
    Ok(asking::event_stream(rx))
}

/// One server-sent event (JSON data never contains a raw newline).
fn frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The chat page's answer events.
struct EventStream {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    show_removed: bool,
}

impl EventStream {
    /// False once the client has gone.
    fn send(&self, event: &str, data: &serde_json::Value) -> bool {
        self.tx.blocking_send(frame(event, data)).is_ok()
    }
}

impl AnswerSink for EventStream {
    fn progress(&mut self, progress: Progress) -> bool {
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
            Progress::Removed(sentence) if self.show_removed => self.send(
                "removed",
                &serde_json::json!({ "text": sentence.text, "reason": sentence.reason }),
            ),
            Progress::Removed(_) => true,
            Progress::Escalating { from, to } => {
                self.send("escalating", &serde_json::json!({ "from": from, "to": to }))
            }
        }
    }

    fn finished(&mut self, answer: &Answer, status: AnswerStatus, degraded: bool) {
        let data =
            serde_json::to_value(view(answer, status, self.show_removed)).unwrap_or_default();
        self.send(
            "done",
            &serde_json::json!({ "answer": data, "degraded": degraded }),
        );
    }

    fn failed(&mut self, message: &str) {
        self.send("error", &serde_json::json!({ "error": message }));
    }
}
