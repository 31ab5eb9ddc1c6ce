//! The JSON API: everything the pages do, behind the same session, role and
//! CSRF checks (the pages' JavaScript calls these same routes).

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::auth::{self, AdminSession, AuditorSession, Authed, ChatSession};
use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::accounts::{self, Grantee, PasswordOrigin, Role};
use crate::audit::{self, Actor, Entry};
use crate::conversations;
use crate::sessions;

// ---- login / logout ------------------------------------------------------

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

impl PasswordAttempt {
    fn new(actor: Actor, username: &str, action: &'static str) -> PasswordAttempt {
        PasswordAttempt {
            actor,
            username: username.to_string(),
            action,
            target: format!("user:{username}"),
        }
    }

    /// The account's credentials, unless the throttle holds this account or
    /// address back: then the refusal is logged and returned (429). Checked
    /// before any hashing, so a throttled try costs nothing and teaches nothing.
    async fn admit(
        &self,
        state: &Data<AppState>,
    ) -> Result<Option<(accounts::User, String)>, ApiError> {
        let policy = state.throttle();
        let (u, a) = (self.username.clone(), self.actor.address.clone());
        let (wait, creds) = state
            .with_db(move |db| {
                let wait = sessions::login_wait(db.conn(), &u, &a, policy)?;
                Ok((wait, accounts::credentials(db.conn(), &u)?))
            })
            .await?;
        let Some(secs) = wait else {
            return Ok(creds);
        };
        let entry = Entry::new(&self.actor, self.action, self.target.clone())
            .outcome("throttled")
            .detail(serde_json::json!({ "retry_after_secs": secs }));
        state
            .with_db(move |db| db.transact(|_| Ok(((), Some(entry)))))
            .await?;
        Err(ApiError::too_many(
            format!("too many wrong passwords; try again in {secs} s"),
            secs,
        ))
    }

    /// A wrong password: counted against the account and the address, logged.
    async fn failed(&self, state: &Data<AppState>) -> Result<(), ApiError> {
        let (u, a) = (self.username.clone(), self.actor.address.clone());
        let entry = Entry::new(&self.actor, self.action, self.target.clone()).outcome("failed");
        state
            .with_db(move |db| {
                db.transact(|tx| {
                    sessions::record_failure(tx, &u, &a)?;
                    Ok(((), Some(entry)))
                })
            })
            .await
    }
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
    let creds = attempt.admit(&state).await?;
    // Hash checking is slow on purpose: off the async threads.
    let pw = password.clone();
    let verified = web::block(move || match &creds {
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
                sessions::clear_failures(tx, &user.username)?;
                let created = sessions::create(tx, &user, &address)?;
                let collections = accounts::granted_collections(tx, user.id)?;
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
    let Some((_, current_hash)) = attempt.admit(&state).await? else {
        return Err(ApiError::not_found());
    };
    // Both hashings are slow on purpose: off the async threads.
    let new_hash = web::block(move || {
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
                accounts::set_password(tx, user.id, &new_hash, PasswordOrigin::Chosen)?;
                sessions::clear_failures(tx, &user.username)?;
                let fresh = accounts::user(tx, user.id)?;
                let created = sessions::create(tx, &fresh, &actor.address)?;
                let collections = accounts::granted_collections(tx, user.id)?;
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
                sessions::end(tx, &hash)?;
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
        .with_db(move |db| Ok(accounts::granted_collections(db.conn(), uid)?))
        .await?;
    Ok(HttpResponse::Ok().json(me_json(
        authed.user(),
        &authed.session.csrf_token,
        &collections,
    )))
}

// ---- conversations --------------------------------------------------------

pub async fn conversations_list(
    state: Data<AppState>,
    authed: ChatSession,
) -> Result<HttpResponse, ApiError> {
    let uid = authed.user().id;
    let list = state
        .with_db(move |db| Ok(conversations::list(db.conn(), uid, 200)?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "conversations": list })))
}

pub async fn conversation(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, uid) = (id.into_inner(), authed.user().id);
    let (conv, messages) = state
        .with_db(move |db| {
            let conv = conversations::owned(db.conn(), id, uid)?.ok_or_else(ApiError::not_found)?;
            Ok((conv, conversations::messages(db.conn(), id, uid)?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "conversation": conv, "messages": messages })))
}

#[derive(Deserialize)]
pub struct FeedbackBody {
    pub rating: i64,
    #[serde(default)]
    pub comment: String,
}

pub async fn feedback(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
    body: web::Json<FeedbackBody>,
) -> Result<HttpResponse, ApiError> {
    let FeedbackBody { rating, comment } = body.into_inner();
    if rating != 1 && rating != -1 {
        return Err(ApiError::bad_request(
            "rating is 1 (helpful) or -1 (not helpful)",
        ));
    }
    if comment.chars().count() > 2000 {
        return Err(ApiError::bad_request(
            "comments are at most 2000 characters",
        ));
    }
    let (id, uid, actor) = (id.into_inner(), authed.user().id, authed.actor());
    state
        .with_db(move |db| {
            db.transact(|tx| {
                if !conversations::owns_message(tx, id, uid)? {
                    return Err(ApiError::not_found());
                }
                conversations::set_feedback(tx, id, rating, &comment)?;
                let entry = Entry::new(&actor, "feedback", format!("message:{id}")).detail(
                    serde_json::json!({ "rating": rating, "has_comment": !comment.is_empty() }),
                );
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true })))
}

// ---- passages and originals -------------------------------------------------

/// A cited passage in its page, for a user granted its collection.
#[derive(Debug, Clone, Serialize)]
pub struct PassageView {
    pub chunk_id: i64,
    pub document_id: i64,
    pub document_title: String,
    pub collection: String,
    pub page: i64,
    pub heading: String,
    /// The page text split around the passage, for highlighting.
    pub before: String,
    pub passage: String,
    pub after: String,
}

/// Load a passage if `user_id` may see it (its document is indexed and in a
/// collection granted to them), writing the view to the audit log.
pub async fn load_passage(
    state: &Data<AppState>,
    authed: &Authed,
    chunk_id: i64,
) -> Result<PassageView, ApiError> {
    let (uid, actor) = (authed.user().id, authed.actor());
    state
        .with_db(move |db| {
            let row: Option<(i64, String, String, i64, i64, i64, String)> = db
                .conn()
                .query_row(
                    "SELECT d.id, d.title, col.name, c.page, c.char_start, c.char_end, c.heading
                     FROM chunks c JOIN documents d ON d.id = c.document_id
                     JOIN collections col ON col.id = d.collection_id
                     WHERE c.id = ?1 AND d.status = 'indexed'",
                    [chunk_id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    },
                )
                .optional()?;
            let Some((doc, title, collection, page, start, end, heading)) = row else {
                return Err(ApiError::not_found());
            };
            if !accounts::granted_collections(db.conn(), uid)?.contains(&collection) {
                let entry = Entry::new(&actor, "passage.view", format!("chunk:{chunk_id}"))
                    .outcome("denied")
                    .documents([doc])
                    .chunks([chunk_id]);
                db.record(entry)?;
                return Err(ApiError::not_found());
            }
            let text: String = db.conn().query_row(
                "SELECT text FROM pages WHERE document_id = ?1 AND number = ?2",
                rusqlite::params![doc, page],
                |r| r.get(0),
            )?;
            let chars: Vec<char> = text.chars().collect();
            let (s, e) = (
                (start.max(0) as usize).min(chars.len()),
                (end.max(0) as usize).min(chars.len()),
            );
            let e = e.max(s);
            let view = PassageView {
                chunk_id,
                document_id: doc,
                document_title: title,
                collection,
                page,
                heading,
                before: chars[..s].iter().collect(),
                passage: chars[s..e].iter().collect(),
                after: chars[e..].iter().collect(),
            };
            let entry = Entry::new(&actor, "passage.view", format!("chunk:{chunk_id}"))
                .documents([doc])
                .chunks([chunk_id]);
            db.record(entry)?;
            Ok(view)
        })
        .await
}

pub async fn passage(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let view = load_passage(&state, &authed, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Download a stored original (granted users only), as an attachment that
/// the browser never renders in our origin.
pub async fn original(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (doc_id, uid, actor) = (id.into_inner(), authed.user().id, authed.actor());
    let data_dir = state.config.data_dir.clone();
    let (path, name, mime) = state
        .with_db(move |db| {
            let doc = match db.document(doc_id) {
                Ok(d) if d.status == crate::store::DocStatus::Indexed => d,
                _ => return Err(ApiError::not_found()),
            };
            let granted = accounts::granted_collections(db.conn(), uid)?.contains(&doc.collection);
            let entry = Entry::new(&actor, "document.download", format!("document:{doc_id}"))
                .outcome(if granted { "ok" } else { "denied" })
                .documents([doc_id]);
            db.record(entry)?;
            if !granted || doc.stored_path.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok((data_dir.join(&doc.stored_path), doc.source_name, doc.mime))
        })
        .await?;
    let bytes = web::block(move || std::fs::read(path))
        .await?
        .map_err(|_| ApiError::not_found())?;
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{ascii}\""),
        ))
        .insert_header(("Content-Security-Policy", "sandbox; default-src 'none'"))
        .body(bytes))
}

// ---- documents (admin) -----------------------------------------------------

pub async fn documents(
    state: Data<AppState>,
    _authed: AdminSession,
) -> Result<HttpResponse, ApiError> {
    let docs = state.with_db(|db| Ok(db.documents(None)?)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "documents": docs })))
}

pub async fn document(
    state: Data<AppState>,
    _authed: AdminSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let doc = state.with_db(move |db| Ok(db.document(id)?)).await?;
    Ok(HttpResponse::Ok().json(doc))
}

pub async fn delete_document(
    state: Data<AppState>,
    authed: AdminSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, actor) = (id.into_inner(), authed.actor());
    let receipt = state
        .with_library(move |lib| Ok(lib.delete_as(id, &actor)?))
        .await?;
    Ok(HttpResponse::Ok().json(receipt))
}

// ---- users, groups and grants (admin) --------------------------------------

/// Everything the users page and `GET /api/users` show.
#[derive(Debug, Clone, Serialize)]
pub struct Directory {
    pub users: Vec<accounts::User>,
    pub groups: Vec<accounts::Group>,
    pub grants: Vec<accounts::Grant>,
    pub collections: Vec<String>,
}

pub async fn directory(state: &Data<AppState>) -> Result<Directory, ApiError> {
    state
        .with_db(|db| {
            let c = db.conn();
            Ok(Directory {
                users: accounts::users(c)?,
                groups: accounts::groups(c)?,
                grants: accounts::grants(c)?,
                collections: accounts::collections(c)?,
            })
        })
        .await
}

pub async fn users(state: Data<AppState>, _authed: AdminSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(directory(&state).await?))
}

#[derive(Deserialize)]
pub struct NewUserBody {
    pub username: String,
    pub role: Role,
    /// Empty: generate one and return it once.
    #[serde(default)]
    pub password: String,
}

pub async fn create_user(
    state: Data<AppState>,
    authed: AdminSession,
    body: web::Json<NewUserBody>,
) -> Result<HttpResponse, ApiError> {
    let NewUserBody {
        username,
        role,
        password,
    } = body.into_inner();
    accounts::validate_username(&username)?;
    let generated = password.is_empty();
    let password = if generated {
        accounts::generate_password()
    } else {
        password
    };
    let pw = password.clone();
    let hash = web::block(move || accounts::hash_password(&pw)).await??;
    let actor = authed.actor();
    let u = username.clone();
    let id = state
        .with_db(move |db| {
            db.transact(|tx| {
                let origin = if generated {
                    PasswordOrigin::OneTime
                } else {
                    PasswordOrigin::Chosen
                };
                let id = accounts::add_user(tx, &u, role, &hash, origin)?;
                let entry = Entry::new(&actor, "user.add", format!("user:{u}"))
                    .detail(serde_json::json!({ "role": role.as_str() }));
                Ok((id, Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": id, "username": username, "role": role,
        "password": if generated { Some(password) } else { None },
    })))
}

#[derive(Deserialize)]
pub struct UpdateUserBody {
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Add to (or with `leave`, remove from) this group.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub leave: bool,
    /// Set a new generated password (returned once) and end the user's sessions.
    #[serde(default)]
    pub reset_password: bool,
}

pub async fn update_user(
    state: Data<AppState>,
    authed: AdminSession,
    id: web::Path<i64>,
    body: web::Json<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, actor, me) = (id.into_inner(), authed.actor(), authed.user().id);
    let body = body.into_inner();
    if id == me && (body.disabled == Some(true) || body.role.is_some_and(|r| r != Role::Admin)) {
        return Err(ApiError::bad_request(
            "you cannot disable or demote yourself (ask another admin)",
        ));
    }
    if body.reset_password {
        let password = accounts::generate_password();
        let pw = password.clone();
        let hash = web::block(move || accounts::hash_password(&pw)).await??;
        let username = state
            .with_db(move |db| {
                db.transact(|tx| {
                    let user = accounts::user(tx, id)?;
                    accounts::set_password(tx, id, &hash, PasswordOrigin::OneTime)?;
                    let entry =
                        Entry::new(&actor, "user.password", format!("user:{}", user.username));
                    Ok((user.username, Some(entry)))
                })
            })
            .await?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "username": username, "password": password,
        })));
    }
    state
        .with_db(move |db| {
            db.transact(|tx| {
                let user = accounts::user(tx, id)?;
                let target = format!("user:{}", user.username);
                let entry;
                if let Some(role) = body.role {
                    accounts::set_role(tx, id, role)?;
                    entry = Entry::new(&actor, "user.role", target).detail(
                        serde_json::json!({ "from": user.role.as_str(), "to": role.as_str() }),
                    );
                } else if let Some(disabled) = body.disabled {
                    accounts::set_disabled(tx, id, disabled)?;
                    entry = Entry::new(
                        &actor,
                        if disabled {
                            "user.disable"
                        } else {
                            "user.enable"
                        },
                        target,
                    );
                } else if let Some(group) = &body.group {
                    if body.leave {
                        accounts::remove_member(tx, accounts::group_id(tx, group)?, id)?;
                    } else {
                        accounts::add_member(tx, accounts::ensure_group(tx, group)?, id)?;
                    }
                    entry = Entry::new(
                        &actor,
                        if body.leave {
                            "group.leave"
                        } else {
                            "group.join"
                        },
                        format!("group:{group}"),
                    )
                    .detail(serde_json::json!({ "user": user.username }));
                } else {
                    return Err(ApiError::bad_request("nothing to change"));
                }
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true })))
}

#[derive(Deserialize)]
pub struct GrantBody {
    pub collection: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

pub async fn create_grant(
    state: Data<AppState>,
    authed: AdminSession,
    body: web::Json<GrantBody>,
) -> Result<HttpResponse, ApiError> {
    let (body, actor) = (body.into_inner(), authed.actor());
    state
        .with_db(move |db| {
            db.transact(|tx| {
                let collection = accounts::ensure_collection(tx, body.collection.trim())?;
                let (to, target) = match (body.user.as_deref(), body.group.as_deref()) {
                    (Some(u), None) if !u.is_empty() => (
                        Grantee::User(accounts::user_by_name(tx, u)?.id),
                        format!("user:{u}"),
                    ),
                    (None, Some(g)) if !g.is_empty() => (
                        Grantee::Group(accounts::ensure_group(tx, g)?),
                        format!("group:{g}"),
                    ),
                    _ => return Err(ApiError::bad_request("name one user or one group")),
                };
                accounts::grant(tx, collection, to)?;
                let entry = Entry::new(&actor, "grant.add", target)
                    .detail(serde_json::json!({ "collection": body.collection }));
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "ok": true })))
}

pub async fn delete_grant(
    state: Data<AppState>,
    authed: AdminSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, actor) = (id.into_inner(), authed.actor());
    state
        .with_db(move |db| {
            db.transact(|tx| {
                let g = accounts::revoke(tx, id)?.ok_or_else(ApiError::not_found)?;
                let entry = Entry::new(&actor, "grant.remove", format!("{}:{}", g.kind, g.grantee))
                    .detail(serde_json::json!({ "collection": g.collection }));
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true })))
}

// ---- health (admin) -----------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub uptime_secs: u64,
    pub chat_model: String,
    pub chat_model_bytes: u64,
    pub embedding_model: String,
    pub embedding_dim: usize,
    pub documents: i64,
    pub chunks: i64,
    pub bm25_entries: u64,
    /// None while the vector store is unreachable.
    pub vectors: Option<usize>,
    /// "embedded", or "qdrant <url>".
    pub vector_backend: String,
    /// Empty when fine; else why answers are degraded to keyword search.
    pub vector_problem: String,
    /// Documents stored but not yet indexed (waiting for the vector store).
    pub documents_waiting: usize,
    pub generation_queue: usize,
    pub generation_queue_capacity: usize,
    pub generating: bool,
    pub uploads_waiting: usize,
    pub active_sessions: i64,
    pub feedback_up: i64,
    pub feedback_down: i64,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    pub data_dir: String,
}

pub async fn health_data(state: &Data<AppState>) -> Result<Health, ApiError> {
    let (documents, chunks, bm25, vectors, waiting, dim) = state
        .with_library(|lib| {
            let (d, c) = lib.store().counts()?;
            let b = lib.lexical_count();
            let v = lib.vectors().count().map_err(|e| e.to_string());
            let w = lib
                .store()
                .documents_with_status(crate::store::DocStatus::Indexing)?
                .len();
            Ok((d, c, b, v, w, lib.embedder().dim()))
        })
        .await?;
    let v = &state.config.vector;
    let vector_backend = match v.outbound() {
        Some(url) => format!("qdrant {url} (collection {})", v.collection),
        None => "embedded".to_string(),
    };
    let (vectors, vector_problem) = match vectors {
        Ok(n) => (Some(n), String::new()),
        Err(e) => (
            None,
            format!("{e}; answers use keyword search alone until it is back"),
        ),
    };
    let (sessions_n, (up, down)) = state
        .with_db(|db| {
            let n: i64 = db
                .conn()
                .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
            Ok((n, conversations::feedback_counts(db.conn())?))
        })
        .await?;
    let (free, total) = disk_space(&state.config.data_dir);
    Ok(Health {
        uptime_secs: state.started.elapsed().as_secs(),
        chat_model: state.config.llm.model.display().to_string(),
        chat_model_bytes: state.model_bytes,
        embedding_model: state.config.embed.model.display().to_string(),
        embedding_dim: dim,
        documents,
        chunks,
        bm25_entries: bm25,
        vectors,
        vector_backend,
        vector_problem,
        documents_waiting: waiting,
        generation_queue: state.worker.queue_len(),
        generation_queue_capacity: state.config.llm.queue_capacity,
        generating: state.worker.is_busy(),
        uploads_waiting: state
            .uploads_waiting
            .load(std::sync::atomic::Ordering::SeqCst),
        active_sessions: sessions_n,
        feedback_up: up,
        feedback_down: down,
        disk_free_bytes: free,
        disk_total_bytes: total,
        data_dir: state.config.data_dir.display().to_string(),
    })
}

/// Free and total bytes of the file system holding `path`.
pub fn disk_space(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (0, 0);
    };
    // SAFETY: statvfs writes into a zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return (0, 0);
    }
    let frsize = st.f_frsize as u64;
    (st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize)
}

pub async fn health(
    state: Data<AppState>,
    _authed: AdminSession,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(health_data(&state).await?))
}

// ---- audit (auditor) ----------------------------------------------------------

pub async fn audit_rows(
    state: Data<AppState>,
    _authed: AuditorSession,
    filter: web::Query<audit::Filter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    let rows = state
        .with_db(move |db| Ok(audit::search(db.conn(), &filter, 500)?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rows": rows })))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    pub format: audit::export::Format,
}

/// The whole log as a download; the export itself is audited.
pub async fn audit_export(
    state: Data<AppState>,
    authed: AuditorSession,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let (format, actor) = (q.format, authed.actor());
    let body = state
        .with_db(move |db| {
            let key = db
                .audit_sink()
                .map(|s| s.key.clone())
                .ok_or_else(|| ApiError::internal("audit key not loaded"))?;
            let entry = Entry::new(&actor, "audit.export", "audit_log")
                .detail(serde_json::json!({ "format": format.extension() }));
            db.record(entry)?;
            let mut out = Vec::new();
            audit::export::export(db.conn_mut(), &key, format, &mut out)?;
            Ok(out)
        })
        .await?;
    let name = format!(
        "enclave-audit-{}.{}",
        crate::time::now_utc().get(..10).unwrap_or("export"),
        format.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body))
}

pub async fn audit_verify(
    state: Data<AppState>,
    _authed: AuditorSession,
) -> Result<HttpResponse, ApiError> {
    let report = verify_now(&state).await?;
    Ok(HttpResponse::Ok().json(report))
}

pub async fn verify_now(state: &Data<AppState>) -> Result<audit::verify::Report, ApiError> {
    state
        .with_db(|db| {
            let key = db.audit_sink().map(|s| s.key.public_hex());
            Ok(audit::verify::verify_db(db.conn(), key)?)
        })
        .await
}
