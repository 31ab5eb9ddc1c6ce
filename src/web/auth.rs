//! Who is asking: the session cookie, role checks and CSRF.
//!
//! The cookie is `__Host-enclave` (Secure, HttpOnly, SameSite=Strict, Path=/,
//! no Domain). Every state-changing request carries the session's CSRF token
//! in the `X-CSRF-Token` header (the page's JavaScript reads it from a meta
//! tag), compared in constant time.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::accounts::{Role, User};
use crate::audit::Actor;
use crate::sessions::{self, Lookup, Session};

pub const COOKIE: &str = "__Host-enclave";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A request with a live session.
pub struct Authed {
    pub session: Session,
    pub address: String,
}

impl Authed {
    pub fn user(&self) -> &User {
        &self.session.user
    }

    pub fn actor(&self) -> Actor {
        Actor {
            name: self.session.user.username.clone(),
            address: self.address.clone(),
        }
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.session.user.role == role {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn require_chat(&self) -> Result<(), ApiError> {
        if self.session.user.role.can_chat() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Refuse a state-changing request without this session's CSRF token.
    pub fn check_csrf(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if constant_time_eq(sent.as_bytes(), self.session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (reload the page)",
            ))
        }
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn client_address(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn session_cookie(token: &str) -> Cookie<'static> {
    Cookie::build(COOKIE, token.to_string())
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish()
}

pub fn clear_cookie() -> Cookie<'static> {
    let mut c = session_cookie("");
    c.make_removal();
    c
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Authed, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req.cookie(COOKIE).map(|c| c.value().to_string());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let is_api = req.path().starts_with("/api/");
        let address = client_address(req);
        Box::pin(async move {
            let refuse = |expired: bool| {
                if is_api {
                    ApiError::unauthorized(if expired {
                        "session expired: log in again"
                    } else {
                        "log in first"
                    })
                } else if expired {
                    ApiError::redirect("/login?expired=1")
                } else {
                    ApiError::redirect("/login")
                }
            };
            let (Some(token), Some(state)) = (token, state) else {
                return Err(refuse(false));
            };
            if token.len() > 100 {
                return Err(refuse(false));
            }
            let lifetimes = state.lifetimes();
            let found = state
                .with_db(move |db| Ok(sessions::lookup(db.conn(), &token, lifetimes)?))
                .await?;
            match found {
                Ok(session) => Ok(Authed { session, address }),
                Err(Lookup::Expired) => Err(refuse(true)),
                Err(Lookup::Unknown) => Err(refuse(false)),
            }
        })
    }
}
