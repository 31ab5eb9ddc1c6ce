//! Plain chat (`api.allow_plain_chat`): `/v1/chat/completions` with a model
//! tier's name instead of the grounded model. The tier answers from the
//! conversation alone: no documents, no quotes, nothing verified; the
//! response's extension says so (`"plain": true`, verification `none`). The
//! question and answer are stored, audited (`"plain": true`) and measured
//! like any other, and the tier's queue limit, deadline and the user's
//! stream limit apply.

use std::time::Instant;

use actix_web::HttpResponse;
use actix_web::web::{Bytes, Data};

use super::V1Error;
use super::auth::TokenAuth;
use super::chat::{ChatRequest, Framing, sse};
use crate::llm::{Event, GenerationRequest, Message, Prompt};
use crate::rag::answer::Usage;
use crate::rag::{Answer, AnswerStatus, Checks, Verification};
use crate::store::usage::AnswerMetric;
use crate::web::asking::{self, Via};
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

pub async fn complete(
    state: Data<AppState>,
    token: TokenAuth,
    request: ChatRequest,
    tier: usize,
) -> Result<HttpResponse, V1Error> {
    let started = Instant::now();
    let api = &state.config.api;
    let (question, _) = super::chat::question_of(&request, api.max_messages)?;
    let messages: Vec<Message> = request
        .messages
        .iter()
        .filter(|m| matches!(m.role.as_str(), "system" | "user" | "assistant"))
        .map(|m| Message::new(&m.role, super::chat::text_of(&m.content)))
        .collect();
    let max = state.config.web.max_question_chars;
    if question.trim().is_empty() || question.chars().count() > max {
        return Err(V1Error(ApiError::bad_request(format!(
            "the question is empty or longer than {max} characters"
        ))));
    }
    // The whole conversation must fit the model's context with room to answer.
    let chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
    let limit = max * 4;
    if chars > limit {
        return Err(V1Error(ApiError::bad_request(format!(
            "the conversation is longer than {limit} characters; send fewer or shorter messages"
        ))));
    }
    let user_id = token.token.user_id;
    let slot = state.take_stream(user_id).ok_or_else(|| {
        ApiError::too_many(
            "your answer streams are all in use; wait for one to finish",
            5,
        )
    })?;
    let via = Via::Plain {
        token_id: token.token.id,
    };
    let actor = token.actor();
    let (_, message_id, _) = asking::record_question(
        &state,
        &actor,
        user_id,
        None,
        &question,
        Some(Vec::new()),
        via,
    )
    .await?;
    let model = &state.tiers[tier];
    let generation = GenerationRequest {
        prompt: Prompt::Chat(messages),
        max_new_tokens: state.config.llm.max_new_tokens,
        sampling: state.config.llm.sampling.clone(),
        deadline: Some(
            Instant::now() + std::time::Duration::from_secs(state.config.llm.deadline_secs),
        ),
        ignore_end: false,
    };
    let ticket = match model.worker.submit(generation) {
        Ok(t) => t,
        Err(_) => {
            // The question is on record; so is its refusal.
            let metric = asking::busy_metric(message_id, via, started);
            return Err(V1Error(asking::refuse_busy(&state, actor, metric).await));
        }
    };
    let framing = Framing {
        id: format!("chatcmpl-enclave-{message_id}"),
        model: model.name.clone(),
        created: crate::time::unix_now(),
        show_removed: false,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let stream = request.stream;
    if stream {
        let opening = framing.chunk(
            serde_json::json!({ "role": "assistant", "content": "" }),
            None,
        );
        let _ = tx.try_send(sse(&opening));
    }
    let st = state.clone();
    let tier_name = model.name.clone();
    std::thread::Builder::new()
        .name("answer-relay".into())
        .spawn(move || {
            let _slot = slot;
            let mut text = String::new();
            let mut first_token_ms = None;
            let stats = loop {
                match ticket.recv() {
                    Some(Event::Text(piece)) => {
                        first_token_ms.get_or_insert(started.elapsed().as_secs_f64() * 1000.0);
                        text.push_str(&piece);
                        let alive = if stream {
                            let chunk =
                                framing.chunk(serde_json::json!({ "content": piece }), None);
                            tx.blocking_send(sse(&chunk)).is_ok()
                        } else {
                            !done_tx.is_closed()
                        };
                        if !alive {
                            ticket.cancel();
                        }
                    }
                    Some(Event::Finished { stats, .. }) => break Some(stats),
                    Some(Event::Failed(_)) | None => break None,
                    Some(_) => {}
                }
            };
            let failed = stats.is_none();
            let (prompt_tokens, generated_tokens, cpu_secs) =
                stats.as_ref().map_or((0, 0, 0.0), |s| {
                    (s.prompt_tokens, s.generated_tokens, s.cpu_secs)
                });
            if failed && text.is_empty() {
                // Said as content too, so the stream adds up to what is stored.
                text = "The model could not answer; please ask again.".into();
                if stream {
                    let chunk = framing.chunk(serde_json::json!({ "content": text }), None);
                    let _ = tx.blocking_send(sse(&chunk));
                }
            }
            let answer = Answer {
                text,
                verification: Verification::Unverified,
                tier: tier_name.clone(),
                checks: Checks {
                    tiers_tried: vec![tier_name],
                    usage: Usage {
                        prompt_tokens,
                        generated_tokens,
                        model_cpu_secs: cpu_secs,
                        ..Usage::default()
                    },
                    ..Checks::default()
                },
                ..Answer::not_covered()
            };
            let status = if failed {
                AnswerStatus::Failed
            } else {
                AnswerStatus::Answered
            };
            let metric = AnswerMetric {
                message_id,
                at: crate::time::unix_now(),
                via: via.as_str().into(),
                status: status.as_str().into(),
                outcome: "plain".into(),
                tier: answer.tier.clone(),
                verification: Verification::Unverified.as_str().into(),
                escalated: false,
                first_token_ms,
                total_ms: started.elapsed().as_secs_f64() * 1000.0,
                prompt_tokens: prompt_tokens as i64,
                generated_tokens: generated_tokens as i64,
                cpu_secs,
                rating: None,
            };
            asking::observe(&metric);
            let stored = st
                .db
                .lock()
                .map_err(|_| ApiError::internal("database mutex poisoned"))
                .and_then(|mut db| {
                    asking::store_answer(
                        &mut db, &actor, message_id, status, &answer, "plain", false, &metric,
                    )
                });
            let mut ext = framing.extension(&answer, status, false);
            ext["plain"] = true.into();
            if stream {
                let mut last = framing.chunk(serde_json::json!({}), Some("stop"));
                last["enclave"] = ext;
                let _ = tx.blocking_send(sse(&last));
                let _ = tx.blocking_send(Bytes::from_static(b"data: [DONE]\n\n"));
            } else {
                let mut whole = framing.whole(&answer, status, false);
                whole["enclave"] = ext;
                let _ = done_tx.send(stored.map(|()| whole).map_err(|e| e.message));
            }
        })
        .map_err(ApiError::internal)?;
    if stream {
        return Ok(asking::event_stream(rx));
    }
    super::chat::whole_response(done_rx).await
}
