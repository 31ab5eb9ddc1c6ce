//! `POST /v1/embeddings`: vectors from the embedding model the library
//! indexes with, for tools that want to search or cluster alongside. The
//! model reads the first `embed.max_tokens` tokens of an input (as
//! sentence-transformers does); inputs are limited in number and length.
//! Floats or, as the official client asks by default, base64 of
//! little-endian f32.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use base64::Engine;
use serde::Deserialize;

use super::V1Error;
use super::auth::TokenAuth;
use crate::accounts::tokens::Scope;
use crate::audit::Entry;
use crate::config::Config;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

#[derive(Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: serde_json::Value,
    #[serde(default)]
    pub encoding_format: Option<String>,
}

/// The embedding model's name: its directory's.
pub fn model_name(config: &Config) -> String {
    config
        .embed
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "embedding".into())
}

fn inputs(
    input: &serde_json::Value,
    max_inputs: usize,
    max_chars: usize,
) -> Result<Vec<String>, ApiError> {
    let texts: Vec<String> = match input {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        serde_json::Value::Array(_) => {
            return Err(ApiError::bad_request(
                "input must be a string or an array of strings (token arrays are not accepted)",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "input must be a string or an array of strings",
            ));
        }
    };
    if texts.is_empty() {
        return Err(ApiError::bad_request("input is empty"));
    }
    if texts.len() > max_inputs {
        return Err(ApiError::bad_request(format!(
            "at most {max_inputs} inputs per request"
        )));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request(format!("input {i} is empty")));
    }
    if let Some(i) = texts.iter().position(|t| t.chars().count() > max_chars) {
        return Err(ApiError::bad_request(format!(
            "input {i} is longer than {max_chars} characters"
        )));
    }
    Ok(texts)
}

pub async fn embeddings(
    state: Data<AppState>,
    token: TokenAuth,
    body: web::Json<EmbeddingsRequest>,
) -> Result<HttpResponse, V1Error> {
    token.require(&state, Scope::Embeddings).await?;
    let request = body.into_inner();
    let model = model_name(&state.config);
    if request.model != model {
        return Err(V1Error(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            format!(
                "the model {:?} does not exist here; embeddings come from {model:?}",
                request.model
            ),
        )));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(V1Error(ApiError::bad_request(format!(
                "encoding_format {other:?}: float or base64"
            ))));
        }
    };
    let api = &state.config.api;
    let texts = inputs(
        &request.input,
        api.max_embedding_inputs,
        api.max_embedding_chars,
    )?;
    let _permit = state
        .embedding_requests
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let embedder = state.embedder.clone();
    let count = texts.len();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    let (vectors, tokens) = web::block(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed_counted(&refs)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    crate::metrics::get().embedding_inputs.inc_by(count as u64);
    let entry = Entry::new(
        &token.actor(),
        "embeddings",
        format!("token:{}", token.token.id),
    )
    .detail(serde_json::json!({ "inputs": count, "chars": chars, "tokens": tokens, "via": "api" }));
    state.with_db(move |db| Ok(db.record(entry)?)).await?;
    let data: Vec<serde_json::Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(v)
            };
            serde_json::json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_strings_within_limits() {
        assert_eq!(inputs(&"a".into(), 4, 10).unwrap(), vec!["a"]);
        assert_eq!(
            inputs(&serde_json::json!(["a", "b"]), 4, 10).unwrap(),
            vec!["a", "b"]
        );
        for bad in [
            serde_json::json!([1, 2, 3]),
            serde_json::json!([]),
            serde_json::json!(["a", "b", "c", "d", "e"]),
            serde_json::json!(["x".repeat(11)]),
            serde_json::json!(["  "]),
            serde_json::json!({"text": "a"}),
        ] {
            assert!(inputs(&bad, 4, 10).is_err(), "{bad}");
        }
    }
}
