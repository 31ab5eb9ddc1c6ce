//! HTML pages (askama templates, escaped by default). Pages only read; every
//! change goes through the JSON API from `static/app.js`.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::api::health::{self, Health};
use super::api::passages::{self, PassageView};
use super::api::{audit as audit_api, users};
use super::auth::{AdminSession, AuditorSession, Authed, ChatSession, PASSWORD_PAGE};
use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::accounts::{Grant, Group, Role, User};
use crate::audit::{self, Entry};
use crate::store;
use crate::store::Document;
use crate::store::conversations::{Conversation, Message};
use crate::store::uploads::UploadView;

fn render(t: &impl Template) -> Result<HttpResponse, ApiError> {
    let html = t.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    username: String,
    role: String,
    expired: bool,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    expired: Option<String>,
}

pub async fn login(q: web::Query<LoginQuery>) -> Result<HttpResponse, ApiError> {
    render(&LoginPage {
        csrf: String::new(),
        username: String::new(),
        role: String::new(),
        expired: q.expired.is_some(),
    })
}

/// `/`: each role's home, or the password page while a one-time password
/// is in use.
pub async fn home(authed: Authed) -> HttpResponse {
    let to = match authed.user().role {
        _ if authed.user().must_change_password => PASSWORD_PAGE,
        Role::Auditor => "/audit",
        _ => "/chat",
    };
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .finish()
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    csrf: String,
    username: String,
    role: String,
    must_change: bool,
}

/// Choose a new password; the only page open to a one-time password.
pub async fn password(authed: Authed) -> Result<HttpResponse, ApiError> {
    render(&PasswordPage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        must_change: authed.user().must_change_password,
    })
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    csrf: String,
    username: String,
    role: String,
    conversations: Vec<Conversation>,
    current_id: i64,
    messages: Vec<Message>,
    collections: Vec<String>,
    max_chars: usize,
}

pub async fn chat(state: Data<AppState>, authed: ChatSession) -> Result<HttpResponse, ApiError> {
    chat_page(state, &authed, 0).await
}

pub async fn chat_conversation(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    chat_page(state, &authed, id.into_inner()).await
}

async fn chat_page(
    state: Data<AppState>,
    authed: &Authed,
    current: i64,
) -> Result<HttpResponse, ApiError> {
    let uid = authed.user().id;
    let (convs, messages, collections, withheld) = state
        .with_db(move |db| {
            db.autocommit(|c| {
                let collections = store::accounts::granted_collections(c, uid)?;
                let (messages, withheld) = if current > 0 {
                    store::conversations::owned(c, current, uid)?
                        .ok_or_else(ApiError::not_found)?;
                    (
                        store::conversations::messages(c, current, uid)?,
                        store::conversations::drawn_from_elsewhere(c, current, &collections)?,
                    )
                } else {
                    (Vec::new(), Default::default())
                };
                Ok((
                    store::conversations::list(c, uid, 200)?,
                    messages,
                    collections,
                    withheld,
                ))
            })
        })
        .await?;
    render(&ChatPage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        conversations: convs,
        current_id: current,
        messages: messages
            .into_iter()
            .map(|m| super::chat::for_viewer(m, state.config.rag.show_removed_sentences, &withheld))
            .collect(),
        collections,
        max_chars: state.config.web.max_question_chars,
    })
}

#[derive(Template)]
#[template(path = "passage.html")]
struct PassagePage {
    csrf: String,
    username: String,
    role: String,
    p: PassageView,
}

pub async fn passage(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
    span: web::Query<passages::Span>,
) -> Result<HttpResponse, ApiError> {
    let p = passages::load_passage(&state, &authed, id.into_inner(), span.into_inner()).await?;
    render(&PassagePage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        p,
    })
}

#[derive(Template)]
#[template(path = "documents.html")]
struct DocumentsPage {
    csrf: String,
    username: String,
    role: String,
    documents: Vec<Document>,
    uploads: Vec<UploadView>,
    collections: Vec<String>,
    default_collection: String,
    max_mib: u64,
}

pub async fn documents(
    state: Data<AppState>,
    authed: AdminSession,
) -> Result<HttpResponse, ApiError> {
    let uid = authed.user().id;
    let (documents, uploads, collections) = state
        .with_db(move |db| {
            Ok((
                db.documents(None)?,
                db.autocommit(|c| store::uploads::recent(c, uid, 20))?,
                db.autocommit(store::accounts::collections)?,
            ))
        })
        .await?;
    render(&DocumentsPage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        documents,
        uploads,
        collections,
        default_collection: state.config.ingest.default_collection.clone(),
        max_mib: (state.config.web.max_upload_mib << 20).min(state.config.ingest.max_file_bytes)
            >> 20,
    })
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    csrf: String,
    username: String,
    role: String,
    users: Vec<User>,
    groups: Vec<Group>,
    grants: Vec<Grant>,
    collections: Vec<String>,
    tokens: Vec<TokenRow>,
}

pub async fn users(state: Data<AppState>, authed: AdminSession) -> Result<HttpResponse, ApiError> {
    let users::Directory {
        users,
        groups,
        grants,
        collections,
    } = users::directory(&state).await?;
    let tokens = state
        .with_db(|db| Ok(db.autocommit(crate::store::tokens::list)?))
        .await?;
    let now = crate::time::unix_now();
    render(&UsersPage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        users,
        groups,
        grants,
        collections,
        tokens: tokens.iter().map(|t| TokenRow::of(t, now)).collect(),
    })
}

/// An API token as the users page lists it.
struct TokenRow {
    id: i64,
    name: String,
    prefix: String,
    username: String,
    scopes: String,
    collections: String,
    expires: String,
    last_used: String,
    state: &'static str,
}

impl TokenRow {
    fn of(t: &crate::store::tokens::ApiToken, now: i64) -> TokenRow {
        let date = |secs: i64| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
            humantime::format_rfc3339_seconds(at).to_string()
        };
        TokenRow {
            id: t.id,
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            username: t.username.clone(),
            scopes: crate::accounts::tokens::scopes_text(&t.scopes),
            collections: t
                .collections
                .as_ref()
                .map_or_else(|| "all granted".to_string(), |c| c.join(", ")),
            expires: t.expires_at.map_or_else(|| "never".to_string(), date),
            last_used: match (t.last_used_at, &t.last_used_from) {
                (Some(at), Some(from)) => format!("{} from {from}", date(at)),
                (Some(at), None) => date(at),
                _ => "never".to_string(),
            },
            state: if t.revoked_at.is_some() {
                "revoked"
            } else if t.live_at(now) {
                "active"
            } else {
                "expired"
            },
        }
    }
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage {
    csrf: String,
    username: String,
    role: String,
    h: Health,
}

pub async fn health(state: Data<AppState>, authed: AdminSession) -> Result<HttpResponse, ApiError> {
    let h = health::health_data(&state).await?;
    render(&HealthPage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        h,
    })
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    csrf: String,
    username: String,
    role: String,
    rows: Vec<audit::Row>,
    actions: Vec<String>,
    filter: audit::Filter,
    report: audit::verify::Report,
}

pub async fn audit_log(
    state: Data<AppState>,
    authed: AuditorSession,
    filter: web::Query<audit::Filter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    let report = audit_api::verify_now(&state).await?;
    let (f, actor) = (filter.clone(), authed.actor());
    let (rows, actions) = state
        .with_db(move |db| {
            let entry = Entry::new(&actor, "audit.view", "audit_log").detail(serde_json::json!({
                "actor": f.actor, "action": f.action, "document": f.document, "from": f.from, "to": f.to,
            }));
            db.record(entry)?;
            Ok((db.autocommit(|c| store::audit::search(c, &f, 200))?, db.autocommit(store::audit::actions)?))
        })
        .await?;
    render(&AuditPage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        rows,
        actions,
        filter,
        report,
    })
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    csrf: String,
    username: String,
    role: String,
    status: u16,
    message: String,
}

/// 404 for unknown paths, as a page.
pub async fn not_found(_req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let html = ErrorPage {
        csrf: String::new(),
        username: String::new(),
        role: String::new(),
        status: 404,
        message: "There is nothing here.".into(),
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// Static files, compiled into the binary.
pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    let (body, ctype): (&'static str, &str) = match path.as_str() {
        "app.js" => (
            include_str!("../../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.css" => (
            include_str!("../../static/app.css"),
            "text/css; charset=utf-8",
        ),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}
