//! `POST /v1/chat/completions` with the grounded model: the last user
//! message is answered through the same pipeline as the chat page
//! (retrieval over the token's collections, the evidence gate, quotes,
//! verification, tiers); the previous user message is searched with it when
//! it alone finds nothing. The response carries the citations, sources,
//! quotes, verification and tier in the `enclave` extension field.
//!
//! Streaming sends each verified sentence as a content delta once it is
//! known to belong to the final answer: at once on the last tier (the only
//! one by default); with several tiers configured, a cheaper tier's
//! sentences are held until it is clear no escalation replaces them. The
//! content deltas always add up to the final answer's text.

use actix_web::HttpResponse;
use actix_web::web::{self, Bytes, Data};
use serde::Deserialize;

use super::V1Error;
use super::auth::TokenAuth;
use crate::accounts::tokens::Scope;
use crate::rag::{Answer, AnswerStatus, Progress};
use crate::web::asking::{self, AnswerSink, Question, Via};
use crate::web::chat::view;
use crate::web::error::ApiError;
use crate::web::state::AppState;

#[derive(Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// A string, or an array of parts of which the `text` ones are read.
    #[serde(default)]
    pub content: serde_json::Value,
}

#[derive(Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

pub(super) fn text_of(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The question (the last message, a user's) and the previous user message.
pub(super) fn question_of(
    request: &ChatRequest,
    max_messages: usize,
) -> Result<(String, Option<String>), ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages is empty"));
    }
    if request.messages.len() > max_messages {
        return Err(ApiError::bad_request(format!(
            "at most {max_messages} messages per request"
        )));
    }
    let mut users = request
        .messages
        .iter()
        .rev()
        .filter(|m| m.role == "user")
        .map(|m| text_of(&m.content));
    let last = request.messages.last().map(|m| m.role.as_str());
    if last != Some("user") {
        return Err(ApiError::bad_request(
            "the last message must be the user's question",
        ));
    }
    let question = users.next().unwrap_or_default();
    let context = users.next().filter(|c| !c.trim().is_empty());
    Ok((question, context))
}

pub async fn completions(
    state: Data<AppState>,
    token: TokenAuth,
    body: web::Json<ChatRequest>,
) -> Result<HttpResponse, V1Error> {
    token.require(&state, Scope::Ask).await?;
    let request = body.into_inner();
    let model = state.config.api.model_name.clone();
    if request.model != model
        && state.config.api.allow_plain_chat
        && let Some(tier) = state.tiers.iter().position(|t| t.name == request.model)
    {
        return super::plain::complete(state, token, request, tier).await;
    }
    if request.model != model {
        return Err(V1Error(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            format!(
                "the model {:?} does not exist here; grounded answers come from {model:?}",
                request.model
            ),
        )));
    }
    let (text, context) = question_of(&request, state.config.api.max_messages)?;
    // The follow-up context is searched, not shown: as long as a question.
    let max = state.config.web.max_question_chars;
    let context = context.map(|c| c.chars().take(max).collect::<String>());
    let question = Question {
        text,
        conversation_id: None,
        context,
        only: token.token.collections.clone(),
    };
    let via = Via::Api {
        token_id: token.token.id,
    };
    let begun = asking::begin(&state, token.actor(), token.token.user_id, question, via).await?;
    let id = format!("chatcmpl-enclave-{}", begun.message_id);
    let show_removed = state.config.rag.show_removed_sentences;
    let response = Framing {
        id,
        model,
        created: crate::time::unix_now(),
        show_removed,
    };
    if request.stream {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        let last_tier = state
            .tiers
            .last()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let include_usage = request.stream_options.unwrap_or_default().include_usage;
        let opening = response.chunk(
            serde_json::json!({ "role": "assistant", "content": "" }),
            None,
        );
        let _ = tx.try_send(sse(&opening));
        let sink = StreamSink {
            tx,
            framing: response,
            last_tier,
            live: false,
            escalated: false,
            sent: String::new(),
            include_usage,
        };
        begun.spawn(state.clone(), sink)?;
        return Ok(asking::event_stream(rx));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    begun.spawn(
        state.clone(),
        WholeSink {
            tx: Some(tx),
            framing: response,
        },
    )?;
    whole_response(rx).await
}

/// A non-streaming completion's response, once its relay has sent it.
pub(super) async fn whole_response(
    rx: tokio::sync::oneshot::Receiver<Result<serde_json::Value, String>>,
) -> Result<HttpResponse, V1Error> {
    match rx.await {
        Ok(Ok(body)) => Ok(HttpResponse::Ok().json(body)),
        Ok(Err(message)) => Err(V1Error(ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            message,
        ))),
        Err(_) => Err(V1Error(ApiError::internal("the answer thread ended early"))),
    }
}

/// What every response of one completion shares.
pub(super) struct Framing {
    pub id: String,
    pub model: String,
    pub created: i64,
    pub show_removed: bool,
}

impl Framing {
    pub fn extension(
        &self,
        answer: &Answer,
        status: AnswerStatus,
        degraded: bool,
    ) -> serde_json::Value {
        let mut ext =
            serde_json::to_value(view(answer, status, self.show_removed)).unwrap_or_default();
        ext["degraded"] = degraded.into();
        ext
    }

    pub fn usage(answer: &Answer) -> serde_json::Value {
        let u = &answer.checks.usage;
        serde_json::json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.generated_tokens,
            "total_tokens": u.prompt_tokens + u.generated_tokens,
        })
    }

    pub fn whole(
        &self,
        answer: &Answer,
        status: AnswerStatus,
        degraded: bool,
    ) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": answer.text },
                "finish_reason": "stop",
                "logprobs": null,
            }],
            "usage": Framing::usage(answer),
            "enclave": self.extension(answer, status, degraded),
        })
    }

    pub fn chunk(&self, delta: serde_json::Value, finish: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
        })
    }
}

pub(super) fn sse(data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// A non-streaming completion: waits for the stored answer.
struct WholeSink {
    tx: Option<tokio::sync::oneshot::Sender<Result<serde_json::Value, String>>>,
    framing: Framing,
}

impl AnswerSink for WholeSink {
    fn progress(&mut self, _: Progress) -> bool {
        // The client hung up: stop generating.
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    fn finished(&mut self, answer: &Answer, status: AnswerStatus, degraded: bool) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(self.framing.whole(answer, status, degraded)));
        }
    }

    fn failed(&mut self, message: &str) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(message.to_string()));
        }
    }
}

/// A streaming completion: verified sentences as content deltas.
struct StreamSink {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    framing: Framing,
    /// The last tier's name: its sentences are final as they come.
    last_tier: String,
    /// Whether sentences go out as they come (see the module comment).
    live: bool,
    escalated: bool,
    /// The content sent so far.
    sent: String,
    include_usage: bool,
}

impl StreamSink {
    fn send(&self, data: &serde_json::Value) -> bool {
        self.tx.blocking_send(sse(data)).is_ok()
    }

    fn content(&mut self, text: &str) -> bool {
        if text.is_empty() {
            return !self.tx.is_closed();
        }
        self.sent.push_str(text);
        let chunk = self
            .framing
            .chunk(serde_json::json!({ "content": text }), None);
        self.send(&chunk)
    }
}

impl AnswerSink for StreamSink {
    fn progress(&mut self, progress: Progress) -> bool {
        match progress {
            Progress::Started { tier } => {
                self.live = tier == self.last_tier && !self.escalated;
                !self.tx.is_closed()
            }
            Progress::Escalating { .. } => {
                self.escalated = true;
                self.live = false;
                !self.tx.is_closed()
            }
            Progress::Sentence { text, .. } if self.live => {
                let piece = if self.sent.is_empty() {
                    text.to_string()
                } else {
                    format!(" {text}")
                };
                self.content(&piece)
            }
            _ => !self.tx.is_closed(),
        }
    }

    fn finished(&mut self, answer: &Answer, status: AnswerStatus, degraded: bool) {
        match answer.text.strip_prefix(self.sent.as_str()) {
            Some(rest) => {
                let rest = rest.to_string();
                self.content(&rest);
            }
            None => tracing::warn!(
                "a streamed answer's content differs from the stored text; the extension field has the stored one"
            ),
        }
        let mut last = self.framing.chunk(serde_json::json!({}), Some("stop"));
        last["enclave"] = self.framing.extension(answer, status, degraded);
        self.send(&last);
        if self.include_usage {
            let mut usage = self.framing.chunk(serde_json::json!({}), None);
            usage["choices"] = serde_json::json!([]);
            usage["usage"] = Framing::usage(answer);
            self.send(&usage);
        }
        let _ = self
            .tx
            .blocking_send(Bytes::from_static(b"data: [DONE]\n\n"));
    }

    fn failed(&mut self, message: &str) {
        self.send(&super::error_body(message, "server_error"));
        let _ = self
            .tx
            .blocking_send(Bytes::from_static(b"data: [DONE]\n\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(messages: &[(&str, serde_json::Value)]) -> ChatRequest {
        ChatRequest {
            model: "enclave".into(),
            messages: messages
                .iter()
                .map(|(role, content)| ChatMessage {
                    role: role.to_string(),
                    content: content.clone(),
                })
                .collect(),
            stream: false,
            stream_options: None,
        }
    }

    #[test]
    fn the_question_is_the_last_user_message_and_the_context_the_one_before() {
        let r = request(&[
            ("system", "be brief".into()),
            ("user", "What is the dose for adults?".into()),
            ("assistant", "500 mg [1].".into()),
            (
                "user",
                serde_json::json!([{"type": "text", "text": "And for children?"}]),
            ),
        ]);
        let (q, context) = question_of(&r, 64).unwrap();
        assert_eq!(q, "And for children?");
        assert_eq!(context.as_deref(), Some("What is the dose for adults?"));
        let lone = request(&[("user", "Hours?".into())]);
        assert_eq!(question_of(&lone, 64).unwrap(), ("Hours?".into(), None));
    }

    #[test]
    fn malformed_conversations_are_refused() {
        assert!(question_of(&request(&[]), 64).is_err());
        let ends_with_assistant = request(&[("user", "Q".into()), ("assistant", "A".into())]);
        assert!(question_of(&ends_with_assistant, 64).is_err());
        let many: Vec<(&str, serde_json::Value)> = (0..5).map(|_| ("user", "Q".into())).collect();
        assert!(question_of(&request(&many), 4).is_err());
    }
}
