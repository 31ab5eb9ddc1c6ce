//! Cited passages and stored originals, served only from granted collections.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use serde::Serialize;

use crate::audit::Entry;
use crate::config::PiiPolicy;
use crate::store::{self, PassageLocation};
use crate::web::auth::{Authed, ChatSession};
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

/// A cited passage in its page, for a user granted its collection.
#[derive(Debug, Clone, Serialize)]
pub struct PassageView {
    pub chunk_id: i64,
    pub document_id: i64,
    pub document_title: String,
    pub collection: String,
    pub page: i64,
    pub heading: String,
    /// The page text split around the passage, for highlighting; the
    /// passage split around the quoted span when one was asked for
    /// (`quote` empty otherwise).
    pub before: String,
    pub passage: String,
    pub quote: String,
    pub passage_rest: String,
    pub after: String,
    /// Mean word confidence (0–100) when the page was read by OCR.
    pub ocr_confidence: Option<f64>,
    /// Below `[extract] ocr_min_confidence`: the reader should check the original.
    pub ocr_low: bool,
}

/// A span of the page text to highlight inside the passage: a quote's or a
/// citation's character offsets (`quote_start`, `quote_end`).
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
pub struct Span {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Load a passage if `user_id` may see it (its document is indexed and in a
/// collection granted to them), writing the view to the audit log.
pub async fn load_passage(
    state: &Data<AppState>,
    authed: &Authed,
    chunk_id: i64,
    span: Span,
) -> Result<PassageView, ApiError> {
    let (uid, actor) = (authed.user().id, authed.actor());
    let min_confidence = state.config.extract.ocr_min_confidence as f64;
    state
        .with_db(move |db| {
            let row = db.passage_location(chunk_id)?;
            let Some(PassageLocation {
                document_id: doc,
                title,
                collection,
                page,
                char_start: start,
                char_end: end,
                heading,
            }) = row
            else {
                return Err(ApiError::not_found());
            };
            if !db
                .autocommit(|c| store::accounts::granted_collections(c, uid))?
                .contains(&collection)
            {
                let entry = Entry::new(&actor, "passage.view", format!("chunk:{chunk_id}"))
                    .outcome("denied")
                    .documents([doc])
                    .chunks([chunk_id]);
                db.record(entry)?;
                return Err(ApiError::not_found());
            }
            let (text, ocr_confidence) = db.page_text(doc, page)?;
            let chars: Vec<char> = text.chars().collect();
            let (s, e) = (
                (start.max(0) as usize).min(chars.len()),
                (end.max(0) as usize).min(chars.len()),
            );
            let e = e.max(s);
            // The span, clamped inside the passage (an out-of-range one
            // highlights nothing extra).
            let clamp = |v: Option<i64>| v.map(|v| (v.max(0) as usize).clamp(s, e));
            let (qs, qe) = match (clamp(span.from), clamp(span.to)) {
                (Some(a), Some(b)) if a < b => (a, b),
                _ => (e, e),
            };
            let view = PassageView {
                chunk_id,
                document_id: doc,
                document_title: title,
                collection,
                page,
                heading,
                before: chars[..s].iter().collect(),
                passage: chars[s..qs].iter().collect(),
                quote: chars[qs..qe].iter().collect(),
                passage_rest: chars[qe..e].iter().collect(),
                after: chars[e..].iter().collect(),
                ocr_confidence,
                ocr_low: ocr_confidence.is_some_and(|c| c < min_confidence),
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
    span: web::Query<Span>,
) -> Result<HttpResponse, ApiError> {
    let view = load_passage(&state, &authed, id.into_inner(), span.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Download a stored original (granted users only; in a collection that
/// redacts identifiers, granted admins only), as an attachment that the
/// browser never renders in our origin.
pub async fn original(
    state: Data<AppState>,
    authed: ChatSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (doc_id, uid, actor) = (id.into_inner(), authed.user().id, authed.actor());
    let is_admin = authed.user().role == crate::accounts::Role::Admin;
    let data_dir = state.config.data_dir.clone();
    let (path, name, mime) = state
        .with_db(move |db| {
            let doc = match db.document(doc_id) {
                Ok(d) if d.status == store::DocStatus::Indexed => d,
                _ => return Err(ApiError::not_found()),
            };
            // A redacting collection's originals hold what its text no
            // longer does: only admins may have them.
            // One waiting to be re-processed under a stricter policy is not
            // served at all until it is.
            let (applied, policy, _) = db.document_pii_state(doc_id)?;
            let settled = policy == PiiPolicy::Report || applied == policy.as_str();
            let redacting = policy == PiiPolicy::Redact;
            let granted = db
                .autocommit(|c| store::accounts::granted_collections(c, uid))?
                .contains(&doc.collection)
                && settled
                && (is_admin || !redacting);
            let entry = Entry::new(&actor, "document.download", format!("document:{doc_id}"))
                .outcome(if granted { "ok" } else { "denied" })
                .documents([doc_id]);
            db.record(entry)?;
            let path = crate::library::original_file(&data_dir, &doc.stored_path);
            match path {
                Some(path) if granted => Ok((path, doc.source_name, doc.mime)),
                _ => Err(ApiError::not_found()),
            }
        })
        .await?;
    let file = web::block(move || std::fs::File::open(path))
        .await?
        .map_err(|_| ApiError::not_found())?;
    let size = file.metadata().map_err(ApiError::internal)?.len();
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
        .body(actix_web::body::SizedStream::new(size, file_chunks(file))))
}

/// A file as a stream of 64 KiB chunks, each read on the blocking pool: a
/// download of a 100 MiB original holds one chunk in memory, not the file.
fn file_chunks(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, actix_web::Error>> {
    let chunks = futures_util::stream::try_unfold(Some(file), |file| async move {
        let Some(mut file) = file else {
            return Ok(None);
        };
        let (file, chunk) = web::block(move || {
            let mut buf = vec![0u8; 64 << 10];
            let n = std::io::Read::read(&mut file, &mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((file, buf))
        })
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?
        .map_err(actix_web::error::ErrorInternalServerError)?;
        if chunk.is_empty() {
            return Ok(None);
        }
        Ok(Some((actix_web::web::Bytes::from(chunk), Some(file))))
    });
    // The body may be polled again after its end; fused, it answers None.
    futures_util::StreamExt::fuse(chunks)
}
