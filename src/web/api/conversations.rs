//! A user's own conversations and feedback on answers.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use serde::Deserialize;

use crate::audit::Entry;
use crate::store;
use crate::web::auth::ChatSession;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

pub async fn conversations_list(
    state: Data<AppState>,
    authed: ChatSession,
) -> Result<HttpResponse, ApiError> {
    let uid = authed.user().id;
    let list = state
        .with_db(move |db| Ok(db.autocommit(|c| store::conversations::list(c, uid, 200))?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "conversations": list })))
}

pub async fn conversation(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, uid) = (id.into_inner(), authed.user().id);
    let (conv, messages, withheld) = state
        .with_db(move |db| {
            let conv = db
                .autocommit(|c| store::conversations::owned(c, id, uid))?
                .ok_or_else(ApiError::not_found)?;
            let (messages, withheld) = db.autocommit(|c| {
                let granted = store::accounts::granted_collections(c, uid)?;
                Ok::<_, ApiError>((
                    store::conversations::messages(c, id, uid)?,
                    store::conversations::drawn_from_elsewhere(c, id, &granted)?,
                ))
            })?;
            Ok((conv, messages, withheld))
        })
        .await?;
    let show_removed = state.config.rag.show_removed_sentences;
    let messages: Vec<_> = messages
        .into_iter()
        .map(|m| crate::web::chat::for_viewer(m, show_removed, &withheld))
        .collect();
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
                if !store::conversations::owns_message(tx, id, uid)? {
                    return Err(ApiError::not_found());
                }
                store::conversations::set_feedback(tx, id, rating, &comment)?;
                store::usage::set_rating(tx, id, rating)?;
                let entry = Entry::new(&actor, "feedback", format!("message:{id}")).detail(
                    serde_json::json!({ "rating": rating, "has_comment": !comment.is_empty() }),
                );
                Ok(((), Some(entry)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true })))
}
