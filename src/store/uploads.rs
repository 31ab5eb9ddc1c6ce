//! The uploads table: one row per file an admin uploaded, with its state as
//! the ingest thread moves it along (what the upload page polls).

use rusqlite::{OptionalExtension, params};

use super::Db;
use serde::Serialize;

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    Queued,
    Extracting,
    /// Being indexed, or stored and waiting for the vector store.
    Indexing,
    Done,
    /// The same bytes are already in the collection.
    Duplicate,
    Rejected,
    Failed,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Queued => "queued",
            UploadState::Extracting => "extracting",
            UploadState::Indexing => "indexing",
            UploadState::Done => "done",
            UploadState::Duplicate => "duplicate",
            UploadState::Rejected => "rejected",
            UploadState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> UploadState {
        match s {
            "queued" => UploadState::Queued,
            "extracting" => UploadState::Extracting,
            "indexing" => UploadState::Indexing,
            "done" => UploadState::Done,
            "duplicate" => UploadState::Duplicate,
            "rejected" => UploadState::Rejected,
            _ => UploadState::Failed,
        }
    }

    /// Nothing more will happen to the upload.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            UploadState::Done
                | UploadState::Duplicate
                | UploadState::Rejected
                | UploadState::Failed
        )
    }
}

impl std::fmt::Display for UploadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UploadView {
    pub id: i64,
    pub file_name: String,
    pub collection: String,
    pub size_bytes: i64,
    pub state: UploadState,
    pub detail: String,
    pub document_id: Option<i64>,
    pub created_at: String,
}

/// A file received: queued, or rejected with `rejection` as the reason.
pub struct NewUpload<'a> {
    pub user_id: i64,
    pub collection: &'a str,
    pub file_name: &'a str,
    pub size_bytes: u64,
    pub rejection: Option<&'a str>,
    /// Where it is staged, relative to the data dir.
    pub staged_path: &'a str,
}

/// Record a received file; returns its id.
pub fn insert(db: &Db<'_>, upload: &NewUpload<'_>) -> rusqlite::Result<i64> {
    let conn = db.0;
    let state = if upload.rejection.is_some() {
        UploadState::Rejected
    } else {
        UploadState::Queued
    };
    conn.execute(
        "INSERT INTO uploads (user_id, collection, file_name, size_bytes, state, detail, staged_path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            upload.user_id,
            upload.collection,
            upload.file_name,
            upload.size_bytes as i64,
            state.as_str(),
            upload.rejection.unwrap_or_default(),
            upload.staged_path
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Move an upload to `state`, with a detail line and the document it became.
pub fn update(
    db: &Db<'_>,
    id: i64,
    state: UploadState,
    detail: &str,
    document_id: Option<i64>,
) -> rusqlite::Result<()> {
    let conn = db.0;
    conn.execute(
        "UPDATE uploads SET state = ?2, detail = ?3, document_id = coalesce(?4, document_id),
             finished_at = CASE WHEN ?5 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END
         WHERE id = ?1",
        params![id, state.as_str(), detail, document_id, state.is_final()],
    )?;
    Ok(())
}

/// Uploads a stopped server left unfinished (no document yet): failed.
pub fn fail_interrupted(db: &Db<'_>) -> rusqlite::Result<usize> {
    let conn = db.0;
    conn.execute(
        "UPDATE uploads SET state = 'failed', detail = 'interrupted (server stopped)'
         WHERE state IN ('queued', 'extracting', 'indexing') AND document_id IS NULL",
        [],
    )
}

/// Uploads that waited for the vector store and whose document is now
/// indexed: done. Returns how many.
pub fn finish_waiting(db: &Db<'_>) -> rusqlite::Result<usize> {
    let conn = db.0;
    conn.execute(
        "UPDATE uploads SET state = 'done', detail = 'indexed (after waiting for the vector store)',
             finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE state = 'indexing' AND document_id IN
             (SELECT id FROM documents WHERE status = 'indexed')",
        [],
    )
}

const VIEW_SELECT: &str = "SELECT id, file_name, collection, size_bytes, state, detail, document_id, created_at FROM uploads";

fn view_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadView> {
    Ok(UploadView {
        id: r.get(0)?,
        file_name: r.get(1)?,
        collection: r.get(2)?,
        size_bytes: r.get(3)?,
        state: UploadState::parse(&r.get::<_, String>(4)?),
        detail: r.get(5)?,
        document_id: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// An upload, if `user_id` made it.
pub fn view(db: &Db<'_>, id: i64, user_id: i64) -> rusqlite::Result<Option<UploadView>> {
    let conn = db.0;
    conn.query_row(
        &format!("{VIEW_SELECT} WHERE id = ?1 AND user_id = ?2"),
        params![id, user_id],
        view_from,
    )
    .optional()
}

/// `user_id`'s uploads, newest first.
pub fn recent(db: &Db<'_>, user_id: i64, limit: usize) -> rusqlite::Result<Vec<UploadView>> {
    let conn = db.0;
    let mut stmt = conn.prepare(&format!(
        "{VIEW_SELECT} WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    stmt.query_map(params![user_id, limit as i64], view_from)?
        .collect()
}
