//! Logging in and out, the current user, changing one's password.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::accounts::{self, PasswordOrigin};
use crate::audit::{Actor, Entry};
use crate::store;
use crate::web::auth::{self, Authed};
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

#[derive(Deserialize)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// One try of a password, at login or when changing one's own: both go
/// through the same throttle and leave the same trail in the audit log.
struct PasswordAttempt {
    actor: Actor,
    username: String,
    action: &'static str,
    target: String,
}

/// An attempt the throttle let through: the account's credentials (none for
/// an unknown name) and the failure rows reserved for it until it succeeds.
struct Admitted {
    creds: Option<(accounts::User, String)>,
    reservation: Vec<i64>,
}

impl PasswordAttempt {
    fn new(actor: Actor, username: &str, action: &'static str) -> PasswordAttempt {
        PasswordAttempt {
            actor,
            username: username.to_string(),
            action,
            target: format!("user:{username}"),
        }
    }

    /// Let the attempt through unless the throttle holds this account (from
    /// this address) or this address back; then the refusal is logged (at
    /// most one row per account and address per window, with the count of
    /// the ones not logged) and returned (429). Checked before any hashing,
    /// so a throttled try costs nothing and teaches nothing; and the attempt
    /// is counted as failed *before* hashing, in the same step, so that a
    /// burst of concurrent tries cannot all get past the throttle.
    async fn admit(&self, state: &Data<AppState>) -> Result<Admitted, ApiError> {
        let policy = state.throttle();
        let (u, a) = (self.username.clone(), self.actor.address.clone());
        let admitted = state
            .with_db(move |db| {
                db.autocommit(|c| {
                    if let Some(wait) = store::sessions::login_wait(c, &u, &a, policy)? {
                        return Ok(Err(wait));
                    }
                    let reservation = store::sessions::record_failure(c, &u, &a)?;
                    let creds = store::accounts::credentials(c, &u)?;
                    Ok::<_, ApiError>(Ok(Admitted { creds, reservation }))
                })
            })
            .await?;
        let secs = match admitted {
            Ok(admitted) => return Ok(admitted),
            Err(secs) => secs,
        };
        crate::metrics::get().login_failures.inc();
        if let Some(not_logged) = state.first_refusal_in_window(&self.target, &self.actor.address) {
            let entry = Entry::new(&self.actor, self.action, self.target.clone())
                .outcome("throttled")
                .detail(serde_json::json!({
                    "retry_after_secs": secs,
                    "refusals_not_logged_before": not_logged,
                }));
            state
                .with_db(move |db| db.transact(|_| Ok(((), Some(entry)))))
                .await?;
        }
        Err(ApiError::too_many(
            format!("too many wrong passwords; try again in {secs} s"),
            secs,
        ))
    }

    /// A wrong password (already counted by [`admit`]): logged.
    async fn failed(&self, state: &Data<AppState>) -> Result<(), ApiError> {
        crate::metrics::get().login_failures.inc();
        let entry = Entry::new(&self.actor, self.action, self.target.clone()).outcome("failed");
        state
            .with_db(move |db| db.transact(|_| Ok(((), Some(entry)))))
            .await
    }
}

/// Check a password off the async threads, at most a few at once: argon2
/// takes 19 MiB and tens of milliseconds per check, and a flood of logins
/// must queue here rather than fill the blocking pool and the memory.
async fn check_password<T: Send + 'static>(
    state: &Data<AppState>,
    check: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.password_checks.acquire(),
    )
    .await
    .map_err(|_| ApiError::unavailable("too many logins at once; try again", 2))?
    .map_err(ApiError::internal)?;
    let out = web::block(check).await?;
    drop(permit);
    Ok(out)
}

/// Log in. No session yet, so no CSRF token: instead the body must be JSON
/// (a cross-site form cannot send that without a CORS preflight, which this
/// server never grants) and a present Origin must be this server's.
pub async fn login(
    state: Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    if let Some(origin) = req.headers().get("origin").and_then(|o| o.to_str().ok()) {
        let host = req.connection_info().host().to_string();
        if origin != format!("https://{host}") {
            return Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "cross-origin login refused",
            ));
        }
    }
    let address = auth::client_address(&req);
    let LoginBody { username, password } = body.into_inner();
    if username.len() > 64 || password.len() > 512 {
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    let actor = Actor {
        name: username.clone(),
        address: address.clone(),
    };
    let attempt = PasswordAttempt::new(actor.clone(), &username, "login");
    let Admitted { creds, reservation } = attempt.admit(&state).await?;
    let pw = password.clone();
    let verified = check_password(&state, move || match &creds {
        Some((user, hash)) => {
            (accounts::verify_password(hash, &pw) && !user.disabled).then(|| user.clone())
        }
        None => {
            accounts::verify_password(accounts::decoy_hash(), &pw);
            None
        }
    })
    .await?;
    let Some(user) = verified else {
        attempt.failed(&state).await?;
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    let ((token, session), collections) = state
        .with_db(move |db| {
            db.transact(|tx| {
                store::sessions::release(tx, &reservation)?;
                store::sessions::clear_failures(tx, &user.username, &address)?;
                let created = store::sessions::create(tx, &user, &address)?;
                let collections = store::accounts::granted_collections(tx, user.id)?;
                let entry = Entry::new(&actor, "login", format!("user:{}", user.username));
                Ok(((created, collections), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(auth::session_cookie(&token))
        .json(me_json(&session.user, &session.csrf_token, &collections)))
}

fn me_json(user: &accounts::User, csrf: &str, collections: &[String]) -> serde_json::Value {
    serde_json::json!({
        "user": {
            "id": user.id,
            "username": user.username,
            "role": user.role,
            "must_change_password": user.must_change_password,
        },
        "csrf_token": csrf,
        "collections": collections,
    })
}

#[derive(Deserialize)]
pub struct PasswordBody {
    pub current_password: String,
    pub new_password: String,
}

/// Change one's own password, the way out of a one-time password. The
/// current password is checked as at login (throttled, failures counted, so
/// a session left open is no way to guess it); the user's sessions end and
/// this one is replaced by a fresh session.
pub async fn change_password(
    state: Data<AppState>,
    authed: Authed,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let PasswordBody {
        current_password,
        new_password,
    } = body.into_inner();
    accounts::validate_password(&new_password)?;
    if new_password == current_password {
        return Err(ApiError::bad_request(
            "the new password must differ from the current one",
        ));
    }
    let (actor, user) = (authed.actor(), authed.user().clone());
    let attempt = PasswordAttempt::new(actor.clone(), &user.username, "user.password");
    let Admitted { creds, reservation } = attempt.admit(&state).await?;
    let Some((_, current_hash)) = creds else {
        return Err(ApiError::not_found());
    };
    let new_hash = check_password(&state, move || {
        accounts::verify_password(&current_hash, &current_password)
            .then(|| accounts::hash_password(&new_password))
            .transpose()
    })
    .await??;
    let Some(new_hash) = new_hash else {
        attempt.failed(&state).await?;
        return Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "the current password is wrong",
        ));
    };
    let target = attempt.target.clone();
    let ((token, session), collections) = state
        .with_db(move |db| {
            db.transact(|tx| {
                store::accounts::set_password(tx, user.id, &new_hash, PasswordOrigin::Chosen)?;
                store::sessions::release(tx, &reservation)?;
                store::sessions::clear_failures(tx, &user.username, &actor.address)?;
                let fresh = store::accounts::user(tx, user.id)?;
                let created = store::sessions::create(tx, &fresh, &actor.address)?;
                let collections = store::accounts::granted_collections(tx, user.id)?;
                let entry = Entry::new(&actor, "user.password", target)
                    .detail(serde_json::json!({ "by": "self" }));
                Ok(((created, collections), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(auth::session_cookie(&token))
        .json(me_json(&session.user, &session.csrf_token, &collections)))
}

pub async fn logout(state: Data<AppState>, authed: Authed) -> Result<HttpResponse, ApiError> {
    let hash = authed.session.token_hash.clone();
    let actor = authed.actor();
    state
        .with_db(move |db| {
            db.transact(|tx| {
                store::sessions::end(tx, &hash)?;
                let entry = Entry::new(&actor, "logout", format!("user:{}", actor.name));
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(auth::clear_cookie())
        .json(serde_json::json!({ "ok": true })))
}

pub async fn me(state: Data<AppState>, authed: Authed) -> Result<HttpResponse, ApiError> {
    let uid = authed.user().id;
    let collections = state
        .with_db(move |db| Ok(db.autocommit(|c| store::accounts::granted_collections(c, uid))?))
        .await?;
    Ok(HttpResponse::Ok().json(me_json(
        authed.user(),
        &authed.session.csrf_token,
        &collections,
    )))
}
