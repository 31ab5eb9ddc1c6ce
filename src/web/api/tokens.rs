//! API tokens on the users page (admin): list with last use, create (the
//! secret is in the response once, never again), revoke. Each change is
//! audited.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use serde::Deserialize;

use crate::store;
use crate::store::tokens::TokenRequest;
use crate::web::auth::AdminSession;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

pub async fn list(state: Data<AppState>, _admin: AdminSession) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .with_db(|db| Ok(db.autocommit(store::tokens::list)?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tokens": tokens })))
}

/// A list as JSON (`["ask", "embeddings"]`) or as a form's text (`ask, embeddings`).
#[derive(Deserialize, Default)]
#[serde(untagged)]
pub enum List {
    #[default]
    Empty,
    Items(Vec<String>),
    Text(String),
}

impl List {
    fn items(self) -> Vec<String> {
        match self {
            List::Empty => Vec::new(),
            List::Items(v) => v
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            List::Text(t) => t
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

#[derive(Deserialize)]
pub struct CreateBody {
    pub username: String,
    pub name: String,
    /// ask, embeddings
    pub scopes: List,
    /// Empty or absent: all of the user's grants.
    #[serde(default)]
    pub collections: List,
    /// `90d`, `12h` or `never`.
    #[serde(default)]
    pub expires: String,
}

pub async fn create(
    state: Data<AppState>,
    admin: AdminSession,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let actor = admin.actor();
    let request = TokenRequest {
        username: body.username,
        name: body.name,
        scopes: body.scopes.items().join(","),
        collections: Some(body.collections.items()).filter(|c| !c.is_empty()),
        expires: body.expires,
        created_by: actor.name.clone(),
    };
    let now = crate::time::unix_now();
    let issued = state
        .with_db(move |db| {
            db.transact(|tx| match store::tokens::issue(tx, &request, now)? {
                Ok(issued) => {
                    let entry = store::tokens::audit_entry(&actor, "token.create", &issued.token);
                    Ok((Ok(issued), Some(entry)))
                }
                Err(message) => Ok((Err(message), None)),
            })
        })
        .await?
        .map_err(ApiError::bad_request)?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "token": issued.token,
        "secret": issued.secret,
    })))
}

pub async fn revoke(
    state: Data<AppState>,
    admin: AdminSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, actor) = (id.into_inner(), admin.actor());
    let now = crate::time::unix_now();
    state
        .with_db(move |db| {
            db.transact(|tx| {
                let token = store::tokens::get(tx, id)?.ok_or_else(ApiError::not_found)?;
                if !store::tokens::revoke(tx, id, now)? {
                    return Err(ApiError::bad_request("this token was revoked already"));
                }
                let entry = store::tokens::audit_entry(&actor, "token.revoke", &token);
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true })))
}
