//! Uploads: multipart bodies streamed to disk under server-chosen names,
//! size-limited while streaming, typed by magic bytes, then queued for one
//! background thread that extracts (in the isolated worker), indexes and
//! reports progress per file in the `uploads` table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use actix_multipart::Multipart;
use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use futures_util::TryStreamExt;
use rusqlite::params;
use serde::Serialize;

use super::auth::{AdminSession, Authed};
use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::accounts;
use crate::audit::{Actor, Entry};
use crate::index::vector::VectorError;
use crate::library::{self, LibraryError, Outcome};

/// One accepted file waiting for the ingest thread.
pub struct UploadJob {
    pub upload_id: i64,
    pub staged: PathBuf,
    pub collection: String,
    pub file_name: String,
    pub actor: Actor,
}

/// Uploads accepted but not yet processed; more are refused with 503.
pub const QUEUE_CAPACITY: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct UploadView {
    pub id: i64,
    pub file_name: String,
    pub collection: String,
    pub size_bytes: i64,
    pub state: String,
    pub detail: String,
    pub document_id: Option<i64>,
    pub created_at: String,
}

pub async fn upload(
    state: Data<AppState>,
    authed: AdminSession,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let web_cfg = &state.config.web;
    let per_file = (web_cfg.max_upload_mib << 20).min(state.config.ingest.max_file_bytes);
    let request_cap = per_file.saturating_mul(4);
    let dir = state.config.data_dir.join("uploads");
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    let mut collection: Option<String> = None;
    let mut results: Vec<UploadView> = Vec::new();
    let mut total: u64 = 0;
    while let Some(mut field) = payload
        .try_next()
        .await
        .map_err(|e| ApiError::bad_request(format!("malformed upload: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "collection" {
            let mut value = Vec::new();
            while let Some(chunk) = field.try_next().await.map_err(ApiError::bad_request_from)? {
                value.extend_from_slice(&chunk);
                if value.len() > 256 {
                    return Err(ApiError::bad_request("collection name too long"));
                }
            }
            let value = String::from_utf8_lossy(&value).trim().to_string();
            accounts::validate_name(&value)?;
            collection = Some(value);
            continue;
        }
        if name != "file" {
            while field
                .try_next()
                .await
                .map_err(ApiError::bad_request_from)?
                .is_some()
            {}
            continue;
        }
        let Some(collection) = collection.clone() else {
            return Err(ApiError::bad_request(
                "send the collection field before the files",
            ));
        };
        if results.len() >= web_cfg.max_files_per_upload {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("at most {} files per upload", web_cfg.max_files_per_upload),
            ));
        }
        let file_name = library::sanitise_name(Path::new(
            field
                .content_disposition()
                .and_then(|cd| cd.get_filename())
                .unwrap_or("upload"),
        ));
        let staged_rel = format!("uploads/{}.upload", uuid::Uuid::new_v4());
        let staged = state.config.data_dir.join(&staged_rel);
        let mut file = StagedFile::create(staged.clone()).await?;
        let mut size: u64 = 0;
        let mut head: Vec<u8> = Vec::new();
        let mut too_large = false;
        while let Some(chunk) = field.try_next().await.map_err(|e| {
            let _ = std::fs::remove_file(&staged);
            ApiError::bad_request(format!("upload interrupted: {e}"))
        })? {
            total += chunk.len() as u64;
            if total > request_cap {
                let _ = std::fs::remove_file(&staged);
                return Err(ApiError::new(
                    actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "one upload request carries at most {} MiB",
                        request_cap >> 20
                    ),
                ));
            }
            size += chunk.len() as u64;
            if size > per_file {
                too_large = true; // keep reading (and discarding) to the next file
                continue;
            }
            if head.len() < 8192 {
                head.extend_from_slice(&chunk[..chunk.len().min(8192 - head.len())]);
            }
            file.write(&chunk).await?;
        }
        file.finish().await?;
        let rejection = if too_large {
            Some(format!(
                "file is over the {} MiB upload limit",
                per_file >> 20
            ))
        } else if size == 0 {
            Some("empty file".to_string())
        } else {
            crate::extract::sniff::detect(&head)
                .err()
                .map(|r| r.to_string())
        };
        let view = register(
            &state,
            &authed,
            &collection,
            &file_name,
            size,
            rejection,
            &staged,
            &staged_rel,
        )
        .await?;
        results.push(view);
    }
    if results.is_empty() {
        return Err(ApiError::bad_request(
            "no file in the upload (field name: file)",
        ));
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "uploads": results })))
}

/// An upload being written to disk: buffered, and written on the blocking
/// pool a MiB at a time so the async workers never wait on the disk.
struct StagedFile {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
}

const WRITE_BATCH: usize = 1 << 20;

impl StagedFile {
    async fn create(path: PathBuf) -> Result<StagedFile, ApiError> {
        let file = web::block(move || std::fs::File::create(path))
            .await?
            .map_err(ApiError::internal)?;
        Ok(StagedFile {
            file: Some(file),
            buf: Vec::with_capacity(WRITE_BATCH),
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| ApiError::internal("staged upload already closed"))?;
        let buf = std::mem::take(&mut self.buf);
        let file = web::block(move || file.write_all(&buf).map(|()| file))
            .await?
            .map_err(ApiError::internal)?;
        self.file = Some(file);
        Ok(())
    }

    async fn finish(mut self) -> Result<(), ApiError> {
        self.flush().await?;
        if let Some(file) = self.file.take() {
            web::block(move || file.sync_all())
                .await?
                .map_err(ApiError::internal)?;
        }
        Ok(())
    }
}

impl ApiError {
    fn bad_request_from(e: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("upload interrupted: {e}"))
    }
}

/// Record the file (queued, or rejected with its reason) and queue it.
#[allow(clippy::too_many_arguments)]
async fn register(
    state: &Data<AppState>,
    authed: &Authed,
    collection: &str,
    file_name: &str,
    size: u64,
    rejection: Option<String>,
    staged: &Path,
    staged_rel: &str,
) -> Result<UploadView, ApiError> {
    let actor = authed.actor();
    let user_id = authed.user().id;
    let (c, f, r, rel) = (
        collection.to_string(),
        file_name.to_string(),
        rejection.clone(),
        staged_rel.to_string(),
    );
    let upload_id = state
        .with_db(move |db| {
            db.transact(|tx| {
                let st = if r.is_some() { "rejected" } else { "queued" };
                tx.execute(
                    "INSERT INTO uploads (user_id, collection, file_name, size_bytes, state, detail, staged_path)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![user_id, c, f, size as i64, st, r.clone().unwrap_or_default(), rel],
                )?;
                let id = tx.last_insert_rowid();
                let entry = r.map(|reason| {
                    Entry::new(&actor, "document.reject", format!("collection:{c}"))
                        .outcome("rejected")
                        .detail(serde_json::json!({ "file": f, "bytes": size, "reason": reason, "upload": id }))
                });
                Ok((id, entry))
            })
        })
        .await?;
    if rejection.is_some() {
        let _ = std::fs::remove_file(staged);
    } else {
        let job = UploadJob {
            upload_id,
            staged: staged.to_path_buf(),
            collection: collection.to_string(),
            file_name: file_name.to_string(),
            actor: authed.actor(),
        };
        state.uploads_waiting.fetch_add(1, Ordering::SeqCst);
        if state.uploads.try_send(job).is_err() {
            state.uploads_waiting.fetch_sub(1, Ordering::SeqCst);
            let _ = std::fs::remove_file(staged);
            set_state(
                state,
                upload_id,
                "failed",
                "the upload queue is full; try again later",
                None,
            )
            .await?;
            return Err(ApiError::unavailable("the upload queue is full", 30));
        }
    }
    let uid = user_id;
    state
        .with_db(move |db| upload_view(db.conn(), upload_id, uid)?.ok_or_else(ApiError::not_found))
        .await
}

async fn set_state(
    state: &Data<AppState>,
    id: i64,
    st: &'static str,
    detail: &str,
    document_id: Option<i64>,
) -> Result<(), ApiError> {
    let detail = detail.to_string();
    state
        .with_db(move |db| Ok(update(db.conn(), id, st, &detail, document_id)?))
        .await
}

fn update(
    conn: &rusqlite::Connection,
    id: i64,
    st: &str,
    detail: &str,
    document_id: Option<i64>,
) -> rusqlite::Result<()> {
    let finished = matches!(st, "done" | "duplicate" | "rejected" | "failed");
    conn.execute(
        "UPDATE uploads SET state = ?2, detail = ?3, document_id = coalesce(?4, document_id),
             finished_at = CASE WHEN ?5 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END
         WHERE id = ?1",
        params![id, st, detail, document_id, finished],
    )?;
    Ok(())
}

const VIEW_SELECT: &str = "SELECT id, file_name, collection, size_bytes, state, detail, document_id, created_at FROM uploads";

fn view_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadView> {
    Ok(UploadView {
        id: r.get(0)?,
        file_name: r.get(1)?,
        collection: r.get(2)?,
        size_bytes: r.get(3)?,
        state: r.get(4)?,
        detail: r.get(5)?,
        document_id: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// An upload, if `user_id` made it.
pub fn upload_view(
    conn: &rusqlite::Connection,
    id: i64,
    user_id: i64,
) -> rusqlite::Result<Option<UploadView>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        &format!("{VIEW_SELECT} WHERE id = ?1 AND user_id = ?2"),
        params![id, user_id],
        view_from,
    )
    .optional()
}

pub fn recent_uploads(
    conn: &rusqlite::Connection,
    user_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<UploadView>> {
    let mut stmt = conn.prepare(&format!(
        "{VIEW_SELECT} WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    stmt.query_map(params![user_id, limit as i64], view_from)?
        .collect()
}

pub async fn get_upload(
    state: Data<AppState>,
    authed: AdminSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, uid) = (id.into_inner(), authed.user().id);
    let view = state
        .with_db(move |db| upload_view(db.conn(), id, uid)?.ok_or_else(ApiError::not_found))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn list_uploads(
    state: Data<AppState>,
    authed: AdminSession,
) -> Result<HttpResponse, ApiError> {
    let uid = authed.user().id;
    let views = state
        .with_db(move |db| Ok(recent_uploads(db.conn(), uid, 100)?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "uploads": views })))
}

/// Shown while a stored document waits for the vector store; the server's
/// retry loop (`web::retry_stranded`) finishes the upload when it is back.
pub const WAITING_DETAIL: &str =
    "stored; the vector store is unreachable, indexing resumes automatically when it is back";

/// The ingest thread: one file at a time, extraction outside the library
/// lock, indexing inside it.
pub fn run_ingest(state: Data<AppState>, jobs: std::sync::mpsc::Receiver<UploadJob>) {
    for job in jobs {
        process(&state, &job);
        let _ = std::fs::remove_file(&job.staged);
        state.uploads_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

fn process(state: &Data<AppState>, job: &UploadJob) {
    let set = |st: &str, detail: &str, doc: Option<i64>| {
        if let Ok(db) = state.db.lock()
            && let Err(e) = update(db.conn(), job.upload_id, st, detail, doc)
        {
            tracing::error!(error = %e, "could not record upload progress");
        }
    };
    set("extracting", "", None);
    let prepared = match library::prepare_file(&state.config, &job.staged) {
        Ok(p) => p,
        Err(rejection) => {
            let reason = rejection.to_string();
            if let Ok(mut db) = state.db.lock() {
                let entry = Entry::new(&job.actor, "document.reject", format!("collection:{}", job.collection))
                    .outcome("rejected")
                    .detail(serde_json::json!({ "file": job.file_name, "reason": reason, "upload": job.upload_id }));
                let r = db.transact(|tx| -> Result<_, ApiError> {
                    update(tx, job.upload_id, "rejected", &reason, None)?;
                    Ok(((), Some(entry)))
                });
                if let Err(e) = r {
                    tracing::error!(error = %e, "could not record a rejected upload");
                }
            }
            return;
        }
    };
    set("indexing", "", None);
    let outcome = match state.library.lock() {
        Ok(mut lib) => {
            match lib.add_prepared(prepared, &job.collection, &job.file_name, &job.actor) {
                Ok(o) => match lib.flush() {
                    Ok(()) => Ok(o),
                    Err(LibraryError::Vector(VectorError::Unavailable(why))) => {
                        // The document is stored (status `indexing`, invisible);
                        // the server's retry loop indexes it and finishes this upload.
                        tracing::warn!(%why, file = job.file_name, "stored; indexing waits for the vector store");
                        let document_id = match o {
                            Outcome::Indexed { document_id, .. } => Some(document_id),
                            _ => None,
                        };
                        set("indexing", WAITING_DETAIL, document_id);
                        return;
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        Err(_) => {
            set("failed", "library unavailable", None);
            return;
        }
    };
    match outcome {
        Ok(Outcome::Indexed {
            document_id,
            pages,
            chunks,
            warnings,
        }) => {
            let mut detail = format!("{pages} pages, {chunks} passages");
            if !warnings.is_empty() {
                detail.push_str(&format!("; warnings: {}", warnings.join("; ")));
            }
            set("done", &detail, Some(document_id));
        }
        Ok(Outcome::Duplicate { document_id }) => set(
            "duplicate",
            &format!(
                "already in collection {} as document {document_id}",
                job.collection
            ),
            Some(document_id),
        ),
        Ok(Outcome::Rejected { reason }) => set("rejected", &reason, None),
        Err(e) => {
            tracing::error!(error = %e, file = job.file_name, "ingest failed");
            set("failed", "indexing failed (see the server log)", None);
        }
    }
}
