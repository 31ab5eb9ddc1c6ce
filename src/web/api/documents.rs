//! Documents (admin): list, show, erase.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};

use crate::web::auth::AdminSession;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

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
