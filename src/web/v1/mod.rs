//! The OpenAI-compatible API under `/v1/`: the model list, grounded chat
//! completions and embeddings, for the tools people already own (the
//! official SDKs, LangChain, editor plugins).
//!
//! Authentication is an API token (`Authorization: Bearer enc_…`) and
//! nothing else: the session middleware never resolves a cookie on these
//! routes, so a browser session cannot reach them (and CSRF does not arise).
//! A token acts as its user with at most its scopes and collections; every
//! use is audited like the same action in the UI. Errors use OpenAI's shape
//! (`{"error": {"message", "type", "param", "code"}}`) so the client
//! libraries raise their usual exceptions.

pub mod auth;
pub mod chat;
pub mod embeddings;
pub mod plain;

use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{HttpResponse, ResponseError};

use super::error::ApiError;
use super::state::AppState;
use auth::TokenAuth;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .app_data(
                web::JsonConfig::default()
                    .limit(4 * 1024 * 1024)
                    .error_handler(|err, _| {
                        V1Error(ApiError::bad_request(format!(
                            "invalid request body: {err}"
                        )))
                        .into()
                    }),
            )
            .route("/models", web::get().to(models))
            .route("/chat/completions", web::post().to(chat::completions))
            .route("/embeddings", web::post().to(embeddings::embeddings))
            .default_service(web::to(not_found)),
    );
}

/// An [`ApiError`] in OpenAI's error shape.
#[derive(Debug)]
pub struct V1Error(pub ApiError);

impl From<ApiError> for V1Error {
    fn from(e: ApiError) -> V1Error {
        V1Error(e)
    }
}

impl std::fmt::Display for V1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for V1Error {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let kind = match self.0.status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "invalid_request_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
            _ => "server_error",
        };
        let mut r = HttpResponse::build(self.0.status);
        if let Some(secs) = self.0.retry_after {
            r.insert_header(("Retry-After", secs.to_string()));
        }
        if self.0.status == StatusCode::UNAUTHORIZED {
            r.insert_header(("WWW-Authenticate", "Bearer"));
        }
        r.json(error_body(&self.0.message, kind))
    }
}

pub fn error_body(message: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": null }
    })
}

async fn not_found() -> Result<HttpResponse, V1Error> {
    Err(V1Error(ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint (this server offers /v1/models, /v1/chat/completions and /v1/embeddings)",
    )))
}

/// `GET /v1/models`: the grounded model and the embedding model, as far as
/// the token's scopes reach.
async fn models(state: Data<AppState>, token: TokenAuth) -> Result<HttpResponse, V1Error> {
    let created = state.started_unix;
    let mut data = Vec::new();
    if token.has(crate::accounts::tokens::Scope::Ask) {
        data.push(serde_json::json!({
            "id": state.config.api.model_name,
            "object": "model",
            "created": created,
            "owned_by": "enclave",
            "enclave": {
                "kind": "grounded",
                "tiers": state.tiers.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            },
        }));
        if state.config.api.allow_plain_chat {
            for tier in &state.tiers {
                data.push(serde_json::json!({
                    "id": tier.name,
                    "object": "model",
                    "created": created,
                    "owned_by": "enclave",
                    "enclave": { "kind": "plain", "verified": false },
                }));
            }
        }
    }
    if token.has(crate::accounts::tokens::Scope::Embeddings) {
        data.push(serde_json::json!({
            "id": embeddings::model_name(&state.config),
            "object": "model",
            "created": created,
            "owned_by": "enclave",
            "enclave": { "kind": "embedding", "dimensions": state.embedder.dim() },
        }));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "object": "list", "data": data })))
}
