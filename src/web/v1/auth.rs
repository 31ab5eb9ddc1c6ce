//! The bearer token of `/v1/*`: looked up by its SHA-256, refused when
//! unknown, revoked, expired, or when its user is disabled or may not ask.
//! A use is recorded on the token (time, address).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};

use super::V1Error;
use crate::accounts::tokens::{self, Scope};
use crate::audit::Actor;
use crate::store;
use crate::store::tokens::ApiToken;
use crate::web::auth::client_address;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

/// A request with a live API token.
pub struct TokenAuth {
    pub token: ApiToken,
    pub address: String,
}

impl TokenAuth {
    pub fn has(&self, scope: Scope) -> bool {
        self.token.scopes.contains(&scope)
    }

    /// 403 unless the token carries `scope` (the refusal is audited).
    pub async fn require(&self, state: &Data<AppState>, scope: Scope) -> Result<(), V1Error> {
        if self.has(scope) {
            return Ok(());
        }
        let reason = format!("this token does not have the {:?} scope", scope.as_str());
        audit_refusal(
            state,
            Some(&self.token.username),
            Some(self.token.id),
            &self.address,
            &reason,
        )
        .await;
        Err(V1Error(ApiError::new(StatusCode::FORBIDDEN, reason)))
    }

    /// The actor of audit rows: the token's user, from this address.
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.token.username.clone(),
            address: self.address.clone(),
        }
    }
}

/// The credentials of an `Authorization: Bearer …` header value (the
/// scheme is case-insensitive, RFC 7235).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

fn refused(message: &str) -> V1Error {
    V1Error(ApiError::unauthorized(message))
}

/// A refused API request is audited as `access.denied`: the first per
/// reason and address in each window, with the number not logged since, so
/// a stolen or revoked token's use is on record and a flood does not grow
/// the log.
async fn audit_refusal(
    state: &Data<AppState>,
    user: Option<&str>,
    token: Option<i64>,
    address: &str,
    reason: &str,
) {
    let Some(not_logged) = state.first_refusal_in_window(&format!("api {reason}"), address) else {
        return;
    };
    let actor = Actor {
        name: user.unwrap_or("(unknown API token)").to_string(),
        address: address.to_string(),
    };
    let entry = crate::audit::Entry::new(&actor, "access.denied", "api")
        .outcome("denied")
        .detail(serde_json::json!({
            "reason": reason,
            "token": token,
            "refusals_not_logged_before": not_logged,
        }));
    if let Err(e) = state.with_db(move |db| Ok(db.record(entry)?)).await {
        tracing::error!(error = %e.message, "could not audit a refused API request");
    }
}

impl FromRequest for TokenAuth {
    type Error = V1Error;
    type Future = Pin<Box<dyn Future<Output = Result<TokenAuth, V1Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .map(str::to_string);
        let state = req.app_data::<Data<AppState>>().cloned();
        let address = client_address(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| V1Error(ApiError::internal("no state")))?;
            if !state.config.api.enabled {
                return Err(V1Error(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "the API is switched off on this server (api.enabled)",
                )));
            }
            let Some(secret) = presented.filter(|s| tokens::plausible(s)) else {
                // Nothing that could be a token: not audited (a probe or a
                // misconfigured client, like a request without a cookie).
                return Err(refused(
                    "send an API token as 'Authorization: Bearer enc_…' (an admin creates one with 'enclave token create')",
                ));
            };
            let hash = tokens::hash(&secret);
            let now = crate::time::unix_now();
            let at = address.clone();
            let found = state
                .with_db(move |db| {
                    db.autocommit(|c| -> Result<_, ApiError> {
                        let Some(token) = store::tokens::by_hash(c, &hash)? else {
                            return Ok(None);
                        };
                        let user = store::accounts::user(c, token.user_id)?;
                        let usable = token.live_at(now) && !user.disabled && user.role.can_chat();
                        if usable {
                            store::tokens::touch(c, token.id, now, &at)?;
                        }
                        Ok(Some((token, usable)))
                    })
                })
                .await
                .map_err(V1Error)?;
            let reason = match &found {
                Some((token, true)) => {
                    return Ok(TokenAuth {
                        token: token.clone(),
                        address,
                    });
                }
                Some((token, false)) if token.revoked_at.is_some() => {
                    "this API token has been revoked"
                }
                Some((token, false)) if !token.live_at(now) => "this API token has expired",
                Some(_) => "this token's user may not use the API (disabled, or an auditor)",
                None => "unknown API token",
            };
            let (user, id) = found.as_ref().map_or((None, None), |(t, _)| {
                (Some(t.username.as_str()), Some(t.id))
            });
            audit_refusal(&state, user, id, &address, reason).await;
            Err(refused(reason))
        })
    }
}
