//! Users, groups and grants (admin).

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use serde::{Deserialize, Serialize};

use crate::accounts::{self, Grantee, PasswordOrigin, Role};
use crate::audit::Entry;
use crate::store;
use crate::web::auth::AdminSession;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

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
            db.autocommit(|c| {
                Ok(Directory {
                    users: store::accounts::users(c)?,
                    groups: store::accounts::groups(c)?,
                    grants: store::accounts::grants(c)?,
                    collections: store::accounts::collections(c)?,
                })
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
    /// Keep the password given here. Otherwise it is one-time, generated or
    /// typed: an admin who typed it must not be able to keep using the
    /// account, so its holder replaces it at the first login.
    #[serde(default)]
    pub service_account: bool,
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
        service_account,
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
                let origin = if service_account && !generated {
                    PasswordOrigin::Chosen
                } else {
                    PasswordOrigin::OneTime
                };
                let id = store::accounts::add_user(tx, &u, role, &hash, origin)?;
                let entry =
                    Entry::new(&actor, "user.add", format!("user:{u}")).detail(serde_json::json!({
                        "role": role.as_str(),
                        "password": if generated { "generated" } else { "typed by the admin" },
                        "service_account": service_account && !generated,
                    }));
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
                    let user = store::accounts::user(tx, id)?;
                    store::accounts::set_password(tx, id, &hash, PasswordOrigin::OneTime)?;
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
                let user = store::accounts::user(tx, id)?;
                let target = format!("user:{}", user.username);
                let entry;
                if let Some(role) = body.role {
                    store::accounts::set_role(tx, id, role)?;
                    entry = Entry::new(&actor, "user.role", target).detail(
                        serde_json::json!({ "from": user.role.as_str(), "to": role.as_str() }),
                    );
                } else if let Some(disabled) = body.disabled {
                    store::accounts::set_disabled(tx, id, disabled)?;
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
                        store::accounts::remove_member(
                            tx,
                            store::accounts::group_id(tx, group)?,
                            id,
                        )?;
                    } else {
                        store::accounts::add_member(
                            tx,
                            store::accounts::ensure_group(tx, group)?,
                            id,
                        )?;
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
    let policy = state.config.pii.default_policy;
    state
        .with_db(move |db| {
            db.transact(|tx| {
                let collection =
                    store::accounts::ensure_collection(tx, body.collection.trim(), policy)?;
                let (to, target) = match (body.user.as_deref(), body.group.as_deref()) {
                    (Some(u), None) if !u.is_empty() => (
                        Grantee::User(store::accounts::user_by_name(tx, u)?.id),
                        format!("user:{u}"),
                    ),
                    (None, Some(g)) if !g.is_empty() => (
                        Grantee::Group(store::accounts::ensure_group(tx, g)?),
                        format!("group:{g}"),
                    ),
                    _ => return Err(ApiError::bad_request("name one user or one group")),
                };
                store::accounts::grant(tx, collection, to)?;
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
                let g = store::accounts::revoke(tx, id)?.ok_or_else(ApiError::not_found)?;
                let entry = Entry::new(&actor, "grant.remove", format!("{}:{}", g.kind, g.grantee))
                    .detail(serde_json::json!({ "collection": g.collection }));
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true })))
}
