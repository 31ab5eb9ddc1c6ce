//! Who is asking: the session cookie, role checks and CSRF.
//!
//! The cookie is `__Host-enclave` (Secure, HttpOnly, SameSite=Strict, Path=/,
//! no Domain). Every state-changing request carries the session's CSRF token
//! in the `X-CSRF-Token` header (the page's JavaScript reads it from a meta
//! tag), compared in constant time.
//!
//! Both checks happen while the request is extracted, not in the handlers:
//! `Authed` refuses a POST or DELETE without the token, and `Gated<G>` refuses
//! a role the route is not for, so no handler can forget either check. The
//! session itself is looked up by the `resolve_session` middleware, so these
//! extractors answer at once and a caller who may not use a route is refused
//! before its body or query is parsed.

use std::marker::PhantomData;
use std::ops::Deref;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::{Ready, ready};

use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::accounts::{Role, User};
use crate::audit::Actor;
use crate::store;
use crate::store::sessions::{Lookup, Session};

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
}

/// Which roles a route is for.
pub trait Gate: 'static {
    fn admits(role: Role) -> bool;
}

pub struct AdminGate;
pub struct AuditorGate;
/// Staff and admins: the roles that ask questions.
pub struct ChatGate;

impl Gate for AdminGate {
    fn admits(role: Role) -> bool {
        role == Role::Admin
    }
}

impl Gate for AuditorGate {
    fn admits(role: Role) -> bool {
        role == Role::Auditor
    }
}

impl Gate for ChatGate {
    fn admits(role: Role) -> bool {
        role.can_chat()
    }
}

/// A live session whose role the gate `G` admits; 403 otherwise.
pub struct Gated<G: Gate>(Authed, PhantomData<G>);

pub type AdminSession = Gated<AdminGate>;
pub type AuditorSession = Gated<AuditorGate>;
pub type ChatSession = Gated<ChatGate>;

impl<G: Gate> Deref for Gated<G> {
    type Target = Authed;
    fn deref(&self) -> &Authed {
        &self.0
    }
}

impl<G: Gate> FromRequest for Gated<G> {
    type Error = ApiError;
    type Future = Ready<Result<Gated<G>, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let is_api = req.path().starts_with("/api/");
        ready(Authed::from_resolved(req).and_then(|authed| {
            if authed.session.user.must_change_password {
                Err(must_change_password(is_api))
            } else if G::admits(authed.session.user.role) {
                Ok(Gated(authed, PhantomData))
            } else {
                Err(ApiError::forbidden())
            }
        }))
    }
}

/// The page where a one-time password is replaced.
pub const PASSWORD_PAGE: &str = "/account/password";

/// A session opened with a one-time password may only choose a new one (and
/// read `/api/me`, log out): every role's route sends it there first.
pub fn must_change_password(is_api: bool) -> ApiError {
    if is_api {
        ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "choose your own password first (POST /api/password)",
        )
    } else {
        ApiError::redirect(PASSWORD_PAGE)
    }
}

/// Whether a request may change state, and so must carry the CSRF token.
/// GET and HEAD never change anything in this server.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn csrf_refused() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::FORBIDDEN,
        "missing or wrong CSRF token (reload the page)",
    )
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

/// What the request's session cookie resolved to. `resolve_session` looks
/// it up once, before any extractor runs; `Authed` and `Gated` read it.
#[derive(Clone)]
enum Resolved {
    Live(Box<Session>),
    Expired,
    Absent,
}

/// Middleware: resolve the session cookie before the handler's extractors
/// run. actix polls a handler's extractors together, so a session lookup
/// inside an extractor would race the body and query parsers, and a caller
/// without the role could get a 400 that describes a route's parameters
/// instead of the 403. With the session resolved here, the role and CSRF
/// checks in `Gated`/`Authed` answer at once, ahead of any parsing.
pub async fn resolve_session(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let token = req
        .cookie(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|t| t.len() <= 100);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let resolved = match (token, state) {
        // A cookie never authenticates the API (`/v1/*` takes bearer tokens
        // only), nor is it looked up for static files.
        (Some(token), Some(state))
            if !req.path().starts_with("/static/") && !is_api_path(req.path()) =>
        {
            let lifetimes = state.lifetimes();
            let found = state
                .with_db(move |db| {
                    Ok(db.autocommit(|c| store::sessions::lookup(c, &token, lifetimes))?)
                })
                .await;
            // An error answered here, not returned: a middleware's error
            // would skip the security headers wrapped around it.
            let found = match found {
                Ok(found) => found,
                Err(e) => return Ok(req.error_response(e).map_into_right_body()),
            };
            match found {
                Ok(session) => Resolved::Live(Box::new(session)),
                Err(Lookup::Expired) => Resolved::Expired,
                Err(Lookup::Unknown) => Resolved::Absent,
            }
        }
        _ => Resolved::Absent,
    };
    let who = match &resolved {
        Resolved::Live(session) => Some(session.user.username.clone()),
        _ => None,
    };
    req.extensions_mut().insert(resolved);
    let res = next.call(req).await?;
    if let Some(user) = who {
        audit_refusal(&res, user).await;
    }
    Ok(res.map_into_left_body())
}

/// Whether a path reaches the OpenAI-style API (`/v1/…`), also when spelt
/// with percent-escapes the router decodes (`/%76%31/…`).
fn is_api_path(path: &str) -> bool {
    let mut decoded = Vec::with_capacity(8);
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() && decoded.len() < 4 {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                decoded.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    decoded == b"/v1/"
}

/// A signed-in user refused a route (403: role or CSRF) or an object (404
/// on a route that names one: someone else's conversation, message or
/// upload, or one that does not exist) is audited as `access.denied`: the
/// first per user, refusal and route in each window, with the number of
/// the others since, so probing is on record and a flood does not grow
/// the log.
async fn audit_refusal<B>(res: &ServiceResponse<B>, user: String) {
    let status = res.status().as_u16();
    let route = res.request().match_pattern().unwrap_or_default();
    let names_object = route.contains('{');
    if !(status == 403 || (status == 404 && names_object)) {
        return;
    }
    let Some(state) = res.request().app_data::<web::Data<AppState>>().cloned() else {
        return;
    };
    let target = format!("{} {route}", res.request().method());
    let address = client_address(res.request());
    let Some(not_logged) =
        state.first_refusal_in_window(&format!("{status} {target} {user}"), &address)
    else {
        return;
    };
    let actor = Actor {
        name: user,
        address,
    };
    let entry = crate::audit::Entry::new(&actor, "access.denied", target)
        .outcome("denied")
        .detail(serde_json::json!({
            "status": status,
            "path": res.request().path(),
            "refusals_not_logged_before": not_logged,
        }));
    if let Err(e) = state.with_db(move |db| Ok(db.record(entry)?)).await {
        tracing::error!(error = %e.message, "could not audit a refused request");
    }
}

impl Authed {
    fn from_resolved(req: &HttpRequest) -> Result<Authed, ApiError> {
        let is_api = req.path().starts_with("/api/");
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
        let resolved = req.extensions().get::<Resolved>().cloned();
        let session = match resolved {
            Some(Resolved::Live(session)) => *session,
            Some(Resolved::Expired) => return Err(refuse(true)),
            Some(Resolved::Absent) => return Err(refuse(false)),
            None => return Err(ApiError::internal("session middleware not installed")),
        };
        if changes_state(req.method()) {
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
                return Err(csrf_refused());
            }
        }
        Ok(Authed {
            session,
            address: client_address(req),
        })
    }
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Ready<Result<Authed, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Authed::from_resolved(req))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_paths_are_recognised_however_spelt() {
        for api in [
            "/v1/models",
            "/%76%31/models",
            "/v%31/chat/completions",
            "/v1%2Fmodels",
        ] {
            assert!(super::is_api_path(api), "{api}");
        }
        for other in ["/v1", "/v10/x", "/api/v1/", "/static/v1/", "/", "/%7"] {
            assert!(!super::is_api_path(other), "{other}");
        }
    }
}
