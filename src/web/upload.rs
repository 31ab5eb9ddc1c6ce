//! Uploads: multipart bodies streamed to disk under server-chosen names,
//! size-limited while streaming, typed by magic bytes, then handed to the
//! ingest queue (`ingest::queue`), whose thread extracts, indexes and
//! reports progress per file in the `uploads` table.

use std::io::Write;
use std::path::{Path, PathBuf};

use actix_multipart::Multipart;
use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use futures_util::TryStreamExt;

use super::auth::{AdminSession, Authed};
use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::accounts;
use crate::audit::Entry;
use crate::ingest::{self, queue::UploadJob};
use crate::store::uploads::{self, NewUpload, UploadState, UploadView};

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
        let file_name = ingest::sanitise_name(Path::new(
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
    // The upload's row and audit name the file with any identifier in its
    // name masked (the document itself is screened by its collection's policy).
    let shown_name = state.asker.scanner().redacted(file_name);
    let f_shown = shown_name.clone();
    let (c, f, r, rel) = (
        collection.to_string(),
        shown_name,
        rejection.clone(),
        staged_rel.to_string(),
    );
    let upload_id = state
        .with_db(move |db| {
            db.transact(|tx| {
                let upload = NewUpload {
                    user_id,
                    collection: &c,
                    file_name: &f,
                    size_bytes: size,
                    rejection: r.as_deref(),
                    staged_path: &rel,
                };
                let id = uploads::insert(tx, &upload)?;
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
            shown_name: f_shown,
            actor: authed.actor(),
        };
        if state.uploads.submit(job).is_err() {
            let _ = std::fs::remove_file(staged);
            set_state(
                state,
                upload_id,
                UploadState::Failed,
                "the upload queue is full; try again later",
                None,
            )
            .await?;
            return Err(ApiError::unavailable("the upload queue is full", 30));
        }
    }
    let uid = user_id;
    state
        .with_db(move |db| {
            db.autocommit(|c| uploads::view(c, upload_id, uid))?
                .ok_or_else(ApiError::not_found)
        })
        .await
}

async fn set_state(
    state: &Data<AppState>,
    id: i64,
    st: UploadState,
    detail: &str,
    document_id: Option<i64>,
) -> Result<(), ApiError> {
    let detail = detail.to_string();
    state
        .with_db(move |db| Ok(db.autocommit(|c| uploads::update(c, id, st, &detail, document_id))?))
        .await
}

pub async fn get_upload(
    state: Data<AppState>,
    authed: AdminSession,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, uid) = (id.into_inner(), authed.user().id);
    let view = state
        .with_db(move |db| {
            db.autocommit(|c| uploads::view(c, id, uid))?
                .ok_or_else(ApiError::not_found)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn list_uploads(
    state: Data<AppState>,
    authed: AdminSession,
) -> Result<HttpResponse, ApiError> {
    let uid = authed.user().id;
    let views = state
        .with_db(move |db| Ok(db.autocommit(|c| uploads::recent(c, uid, 100))?))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "uploads": views })))
}

/// Remove every staged upload file: called at start, when no upload can be
/// in progress, so each one is left from an upload a stop interrupted (its
/// row is failed by `uploads::fail_interrupted`). Returns how many.
pub fn remove_staged(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("uploads")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "upload"))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod staged_tests {
    #[test]
    fn staged_files_left_by_a_stop_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("uploads");
        std::fs::create_dir_all(&uploads).unwrap();
        std::fs::write(uploads.join("a.upload"), b"half a file").unwrap();
        std::fs::write(uploads.join("b.upload"), b"").unwrap();
        std::fs::write(uploads.join("keep.txt"), b"not ours").unwrap();
        assert_eq!(super::remove_staged(dir.path()), 2);
        assert!(uploads.join("keep.txt").exists());
        assert_eq!(super::remove_staged(dir.path()), 0);
        assert_eq!(super::remove_staged(&dir.path().join("missing")), 0);
    }
}
