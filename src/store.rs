//! The SQLite store: the source of truth for documents, pages, chunks and jobs.
//!
//! Opened in WAL mode with `synchronous=FULL`, so a committed transaction
//! survives power loss. Schema changes are versioned SQL files in
//! `migrations/`, applied in order and recorded in `PRAGMA user_version`.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "database schema version {found} is newer than this binary knows ({known}); upgrade Enclave"
    )]
    TooNew { found: i64, known: i64 },
    #[error("no such document: {0}")]
    NoSuchDocument(i64),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Migrations, in order. The index in this list + 1 is the schema version.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_documents_chunks_jobs",
        include_str!("../migrations/0001_documents_chunks_jobs.sql"),
    ),
    (
        "0002_accounts_chat_audit",
        include_str!("../migrations/0002_accounts_chat_audit.sql"),
    ),
    (
        "0003_one_time_passwords",
        include_str!("../migrations/0003_one_time_passwords.sql"),
    ),
    (
        "0004_degraded_answers",
        include_str!("../migrations/0004_degraded_answers.sql"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocStatus {
    Indexing,
    Indexed,
    Deleting,
}

impl DocStatus {
    fn as_str(self) -> &'static str {
        match self {
            DocStatus::Indexing => "indexing",
            DocStatus::Indexed => "indexed",
            DocStatus::Deleting => "deleting",
        }
    }

    fn parse(s: &str) -> DocStatus {
        match s {
            "indexed" => DocStatus::Indexed,
            "deleting" => DocStatus::Deleting,
            _ => DocStatus::Indexing,
        }
    }
}

/// A document about to be written.
pub struct NewDocument<'a> {
    pub collection_id: i64,
    pub title: &'a str,
    pub source_name: &'a str,
    pub content_hash: &'a str,
    pub mime: &'a str,
    pub size_bytes: u64,
    pub stored_path: &'a str,
    pub warnings: &'a str,
    /// Who uploaded it (a username, or `cli:<os user>`).
    pub uploaded_by: &'a str,
}

pub struct NewPage<'a> {
    pub number: u32,
    pub has_text_layer: bool,
    pub text: &'a str,
}

pub struct NewChunk<'a> {
    pub page: u32,
    pub char_start: usize,
    pub char_end: usize,
    pub heading: &'a str,
    pub text: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: i64,
    pub collection: String,
    pub title: String,
    pub source_name: String,
    pub content_hash: String,
    pub mime: String,
    pub size_bytes: i64,
    pub page_count: i64,
    pub chunk_count: i64,
    pub status: DocStatus,
    pub warnings: String,
    pub stored_path: String,
    pub created_at: String,
    pub indexed_at: Option<String>,
    pub uploaded_by: String,
}

/// A chunk as the indexers need it.
#[derive(Debug, Clone)]
pub struct IndexableChunk {
    pub id: i64,
    pub document_id: i64,
    pub collection: String,
    /// Title and section heading: indexed with the text so a chunk deep in a
    /// section still matches the words that name its topic.
    pub context: String,
    pub text: String,
}

impl IndexableChunk {
    pub fn indexed_text(&self) -> String {
        if self.context.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n{}", self.context, self.text)
        }
    }
}

/// A chunk as search results show it.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkView {
    pub chunk_id: i64,
    pub document_id: i64,
    pub document_title: String,
    pub collection: String,
    pub page: i64,
    pub char_start: i64,
    pub char_end: i64,
    pub heading: String,
    pub text: String,
}

pub struct Store {
    conn: Connection,
    audit: Option<AuditSink>,
}

/// Where audit rows for this store's actions go: the key that signs
/// checkpoints and how often.
#[derive(Clone)]
pub struct AuditSink {
    pub key: std::sync::Arc<crate::audit::AuditKey>,
    pub checkpoint_every: u64,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn, audit: None };
        store.migrate()?;
        Ok(store)
    }

    /// Record uploads and deletions in the audit log from now on.
    pub fn set_audit(&mut self, sink: AuditSink) {
        self.audit = Some(sink);
    }

    pub fn audit_sink(&self) -> Option<&AuditSink> {
        self.audit.as_ref()
    }

    /// The underlying connection, for modules that own other tables
    /// (accounts, conversations, audit) in the same database.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Write one audit row on its own (an event with no other write).
    pub fn record(&mut self, entry: crate::audit::Entry) -> Result<()> {
        self.transact(|_| Ok(((), Some(entry))))
    }

    /// Run `f` in an IMMEDIATE transaction and append the audit entry it
    /// returns in the same transaction: the action and its record commit
    /// together or not at all.
    pub fn transact<T, E>(
        &mut self,
        f: impl FnOnce(&Connection) -> std::result::Result<(T, Option<crate::audit::Entry>), E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| E::from(StoreError::from(e)))?;
        let (value, entry) = f(&tx)?;
        audit_in(self.audit.as_ref(), &tx, entry.as_ref()).map_err(E::from)?;
        tx.commit().map_err(|e| E::from(StoreError::from(e)))?;
        Ok(value)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
            tracing::info!(migration = name, "applied database migration");
        }
        Ok(())
    }

    pub fn collection_id(&self, name: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO collections(name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
            [name],
        )?;
        Ok(self
            .conn
            .query_row("SELECT id FROM collections WHERE name = ?1", [name], |r| {
                r.get(0)
            })?)
    }

    /// The document with this content in this collection, if any (in any status).
    pub fn find_duplicate(&self, collection_id: i64, content_hash: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM documents WHERE collection_id = ?1 AND content_hash = ?2",
                params![collection_id, content_hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Write a document, its pages and chunks in one transaction, in status
    /// `indexing` (invisible to search). Returns the document id.
    pub fn insert_document(
        &mut self,
        doc: &NewDocument<'_>,
        pages: &[NewPage<'_>],
        chunks: &[NewChunk<'_>],
    ) -> Result<i64> {
        self.insert_document_audited(doc, pages, chunks, None)
    }

    /// As [`insert_document`], with `audit` (its document id filled in)
    /// written in the same transaction.
    pub fn insert_document_audited(
        &mut self,
        doc: &NewDocument<'_>,
        pages: &[NewPage<'_>],
        chunks: &[NewChunk<'_>],
        audit: Option<crate::audit::Entry>,
    ) -> Result<i64> {
        let mut ids = self.insert_documents_with(&[(doc, pages, chunks)], audit)?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Several documents in one transaction (one fsync), all in status `indexing`.
    pub fn insert_documents(
        &mut self,
        docs: &[(&NewDocument<'_>, &[NewPage<'_>], &[NewChunk<'_>])],
    ) -> Result<Vec<i64>> {
        self.insert_documents_with(docs, None)
    }

    fn insert_documents_with(
        &mut self,
        docs: &[(&NewDocument<'_>, &[NewPage<'_>], &[NewChunk<'_>])],
        audit: Option<crate::audit::Entry>,
    ) -> Result<Vec<i64>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(docs.len());
        {
            let mut doc_stmt = tx.prepare_cached(
                "INSERT INTO documents (collection_id, title, source_name, content_hash, mime,
                     size_bytes, page_count, chunk_count, status, warnings, stored_path, uploaded_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'indexing', ?9, ?10, ?11)",
            )?;
            let mut page_stmt = tx.prepare_cached(
                "INSERT INTO pages (document_id, number, has_text_layer, text) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut chunk_stmt = tx.prepare_cached(
                "INSERT INTO chunks (document_id, ordinal, page, char_start, char_end, heading, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (doc, pages, chunks) in docs {
                doc_stmt.execute(params![
                    doc.collection_id,
                    doc.title,
                    doc.source_name,
                    doc.content_hash,
                    doc.mime,
                    doc.size_bytes as i64,
                    pages.len() as i64,
                    chunks.len() as i64,
                    doc.warnings,
                    doc.stored_path,
                    doc.uploaded_by,
                ])?;
                let id = tx.last_insert_rowid();
                for p in *pages {
                    page_stmt.execute(params![id, p.number, p.has_text_layer, p.text])?;
                }
                for (ordinal, c) in chunks.iter().enumerate() {
                    chunk_stmt.execute(params![
                        id,
                        ordinal as i64,
                        c.page,
                        c.char_start as i64,
                        c.char_end as i64,
                        c.heading,
                        c.text
                    ])?;
                }
                ids.push(id);
            }
        }
        let audit = audit.map(|e| e.documents(ids.iter().copied()));
        audit_in(self.audit.as_ref(), &tx, audit.as_ref())?;
        tx.commit()?;
        Ok(ids)
    }

    /// Flip documents to `indexed` (visible) in one transaction.
    pub fn mark_indexed(&mut self, document_ids: &[i64]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "UPDATE documents SET status = 'indexed',
                     indexed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                 WHERE id = ?1 AND status = 'indexing'",
            )?;
            for id in document_ids {
                stmt.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Hide every searchable document again (before the indexes are rebuilt).
    pub fn mark_all_indexing(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE documents SET status = 'indexing', indexed_at = NULL WHERE status = 'indexed'",
            [],
        )?)
    }

    pub fn set_status(&self, document_id: i64, status: DocStatus) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE documents SET status = ?2 WHERE id = ?1",
            params![document_id, status.as_str()],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchDocument(document_id));
        }
        Ok(())
    }

    pub fn documents_with_status(&self, status: DocStatus) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM documents WHERE status = ?1 ORDER BY id")?;
        let ids = stmt
            .query_map([status.as_str()], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(ids)
    }

    /// Chunks of the given documents, ready for indexing.
    pub fn indexable_chunks(&self, document_ids: &[i64]) -> Result<Vec<IndexableChunk>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.document_id, col.name, d.title, c.heading, c.text
             FROM chunks c JOIN documents d ON d.id = c.document_id
             JOIN collections col ON col.id = d.collection_id
             WHERE c.document_id = ?1 ORDER BY c.ordinal",
        )?;
        let mut out = Vec::new();
        for id in document_ids {
            let rows = stmt.query_map([id], |r| {
                let title: String = r.get(3)?;
                let heading: String = r.get(4)?;
                let context = match (title.is_empty(), heading.is_empty() || heading == title) {
                    (true, true) => String::new(),
                    (false, true) => title,
                    (true, false) => heading,
                    (false, false) => format!("{title} — {heading}"),
                };
                Ok(IndexableChunk {
                    id: r.get(0)?,
                    document_id: r.get(1)?,
                    collection: r.get(2)?,
                    context,
                    text: r.get(5)?,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// The chunks among `ids` that are visible (their document is `indexed`),
    /// keyed by chunk id. This is the final gate of every search.
    pub fn visible_chunks(&self, ids: &[i64]) -> Result<HashMap<i64, ChunkView>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.document_id, d.title, col.name, c.page, c.char_start, c.char_end,
                    c.heading, c.text
             FROM chunks c JOIN documents d ON d.id = c.document_id
             JOIN collections col ON col.id = d.collection_id
             WHERE c.id = ?1 AND d.status = 'indexed'",
        )?;
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            let row = stmt
                .query_row([id], |r| {
                    Ok(ChunkView {
                        chunk_id: r.get(0)?,
                        document_id: r.get(1)?,
                        document_title: r.get(2)?,
                        collection: r.get(3)?,
                        page: r.get(4)?,
                        char_start: r.get(5)?,
                        char_end: r.get(6)?,
                        heading: r.get(7)?,
                        text: r.get(8)?,
                    })
                })
                .optional()?;
            if let Some(view) = row {
                out.insert(*id, view);
            }
        }
        Ok(out)
    }

    pub fn document(&self, id: i64) -> Result<Document> {
        self.conn
            .query_row(
                &format!("{DOCUMENT_SELECT} WHERE d.id = ?1"),
                [id],
                document_from_row,
            )
            .optional()?
            .ok_or(StoreError::NoSuchDocument(id))
    }

    pub fn documents(&self, collection: Option<&str>) -> Result<Vec<Document>> {
        let mut stmt = self.conn.prepare(&format!(
            "{DOCUMENT_SELECT} WHERE (?1 IS NULL OR col.name = ?1) ORDER BY d.id"
        ))?;
        let docs = stmt
            .query_map([collection], document_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(docs)
    }

    /// Page number, text-layer flag and text of every page of a document.
    pub fn pages(&self, document_id: i64) -> Result<Vec<(i64, bool, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT number, has_text_layer, text FROM pages WHERE document_id = ?1 ORDER BY number",
        )?;
        let pages = stmt
            .query_map([document_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(pages)
    }

    /// chunk id → source name of its document, for every visible chunk
    /// (evaluation maps hits back to labelled corpus ids this way).
    pub fn chunk_sources(&self) -> Result<HashMap<i64, String>> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, d.source_name FROM chunks c JOIN documents d ON d.id = c.document_id
             WHERE d.status = 'indexed'",
        )?;
        let map = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<HashMap<i64, String>>>()?;
        Ok(map)
    }

    pub fn chunk_ids_of(&self, document_id: i64) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM chunks WHERE document_id = ?1 ORDER BY ordinal")?;
        let ids = stmt
            .query_map([document_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(ids)
    }

    /// How many other documents still reference this stored original.
    pub fn stored_path_users(&self, stored_path: &str, except: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM documents WHERE stored_path = ?1 AND id != ?2",
            params![stored_path, except],
            |r| r.get(0),
        )?)
    }

    /// Remove a document row with its pages and chunks (cascade), and the
    /// text of every stored answer that was given passages from it, with
    /// `audit` in the same transaction.
    pub fn delete_document_rows(
        &mut self,
        document_id: i64,
        audit: Option<&crate::audit::Entry>,
    ) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let answers_erased = tx.execute(
            "UPDATE messages SET status = 'erased', answer = '', citations = '[]'
             WHERE id IN (SELECT message_id FROM message_sources WHERE document_id = ?1)",
            [document_id],
        )?;
        tx.execute(
            "DELETE FROM message_sources WHERE document_id = ?1",
            [document_id],
        )?;
        tx.execute("DELETE FROM documents WHERE id = ?1", [document_id])?;
        audit_in(self.audit.as_ref(), &tx, audit)?;
        tx.commit()?;
        Ok(answers_erased)
    }

    pub fn counts(&self) -> Result<(i64, i64)> {
        Ok(self.conn.query_row(
            "SELECT (SELECT count(*) FROM documents WHERE status = 'indexed'),
                    (SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id
                      WHERE d.status = 'indexed')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    pub fn start_job(
        &self,
        kind: &str,
        document_id: Option<i64>,
        source_name: &str,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO jobs (kind, document_id, source_name, state) VALUES (?1, ?2, ?3, 'running')",
            params![kind, document_id, source_name],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_job(
        &self,
        job_id: i64,
        state: &str,
        detail: &str,
        document_id: Option<i64>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE jobs SET state = ?2, detail = ?3, document_id = coalesce(?4, document_id),
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?1",
            params![job_id, state, detail, document_id],
        )?;
        Ok(())
    }

    /// Jobs left `running` by a process that died: mark them failed.
    pub fn fail_abandoned_jobs(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE jobs SET state = 'failed', detail = 'interrupted (process stopped)',
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE state = 'running'",
            [],
        )?)
    }
}

/// Append `entry` to the audit log inside `tx`, if auditing is on.
fn audit_in(
    sink: Option<&AuditSink>,
    tx: &Connection,
    entry: Option<&crate::audit::Entry>,
) -> Result<()> {
    if let (Some(sink), Some(entry)) = (sink, entry) {
        crate::audit::append(tx, &sink.key, sink.checkpoint_every, entry)?;
    }
    Ok(())
}

const DOCUMENT_SELECT: &str =
    "SELECT d.id, col.name, d.title, d.source_name, d.content_hash, d.mime,
        d.size_bytes, d.page_count, d.chunk_count, d.status, d.warnings, d.stored_path,
        d.created_at, d.indexed_at, d.uploaded_by
     FROM documents d JOIN collections col ON col.id = d.collection_id";

fn document_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        id: r.get(0)?,
        collection: r.get(1)?,
        title: r.get(2)?,
        source_name: r.get(3)?,
        content_hash: r.get(4)?,
        mime: r.get(5)?,
        size_bytes: r.get(6)?,
        page_count: r.get(7)?,
        chunk_count: r.get(8)?,
        status: DocStatus::parse(&r.get::<_, String>(9)?),
        warnings: r.get(10)?,
        stored_path: r.get(11)?,
        created_at: r.get(12)?,
        indexed_at: r.get(13)?,
        uploaded_by: r.get(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_is_invisible_until_marked_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let col = store.collection_id("hr").unwrap();
        assert_eq!(store.collection_id("hr").unwrap(), col);
        let doc = NewDocument {
            collection_id: col,
            title: "Leave policy",
            source_name: "leave.txt",
            content_hash: "abc",
            mime: "text/plain",
            size_bytes: 10,
            stored_path: "originals/ab/abc",
            warnings: "",
            uploaded_by: "test",
        };
        let pages = [NewPage {
            number: 1,
            has_text_layer: true,
            text: "Annual leave is 25 days.",
        }];
        let chunks = [NewChunk {
            page: 1,
            char_start: 0,
            char_end: 24,
            heading: "",
            text: "Annual leave is 25 days.",
        }];
        let id = store.insert_document(&doc, &pages, &chunks).unwrap();
        let chunk_ids = store.chunk_ids_of(id).unwrap();
        assert!(store.visible_chunks(&chunk_ids).unwrap().is_empty());
        assert_eq!(store.find_duplicate(col, "abc").unwrap(), Some(id));
        store.mark_indexed(&[id]).unwrap();
        assert_eq!(store.visible_chunks(&chunk_ids).unwrap().len(), 1);
        let indexable = store.indexable_chunks(&[id]).unwrap();
        assert_eq!(
            indexable[0].indexed_text(),
            "Leave policy\nAnnual leave is 25 days."
        );
        store.delete_document_rows(id, None).unwrap();
        assert!(store.chunk_ids_of(id).unwrap().is_empty(), "chunks cascade");
    }
}
