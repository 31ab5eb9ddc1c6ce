//! Documents, their pages and chunks, and collections: the rows the indexes
//! are derived from, and the `indexing` → `indexed` flip that makes a
//! document searchable.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store, StoreError, audit_in};

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

    pub(super) fn parse(s: &str) -> DocStatus {
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
    /// The sensitive-identifier policy its text was processed under ("" if
    /// it was not scanned).
    pub pii_policy: &'a str,
    pub findings: &'a [super::pii::NewFinding<'a>],
}

pub struct NewPage<'a> {
    pub number: u32,
    pub has_text_layer: bool,
    pub text: &'a str,
    /// How OCR read the page, when it did.
    pub ocr: Option<&'a crate::extract::ocr::PageOcr>,
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

/// Where a passage is: its document, collection, page and offsets (only
/// for a chunk whose document is `indexed`).
#[derive(Debug, Clone)]
pub struct PassageLocation {
    pub document_id: i64,
    pub title: String,
    pub collection: String,
    pub page: i64,
    pub char_start: i64,
    pub char_end: i64,
    pub heading: String,
}

impl Store {
    /// Where chunk `chunk_id` is, if its document is searchable.
    pub fn passage_location(&self, chunk_id: i64) -> Result<Option<PassageLocation>> {
        Ok(self
            .conn
            .query_row(
                "SELECT d.id, d.title, col.name, c.page, c.char_start, c.char_end, c.heading
                 FROM chunks c JOIN documents d ON d.id = c.document_id
                 JOIN collections col ON col.id = d.collection_id
                 WHERE c.id = ?1 AND d.status = 'indexed' AND (col.pii_policy = 'report' OR d.pii_policy = col.pii_policy)",
                [chunk_id],
                |r| {
                    Ok(PassageLocation {
                        document_id: r.get(0)?,
                        title: r.get(1)?,
                        collection: r.get(2)?,
                        page: r.get(3)?,
                        char_start: r.get(4)?,
                        char_end: r.get(5)?,
                        heading: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// The text of one page of a document, and its mean OCR word
    /// confidence when OCR read it.
    pub fn page_text(&self, document_id: i64, page: i64) -> Result<(String, Option<f64>)> {
        Ok(self.conn.query_row(
            "SELECT text, ocr_confidence FROM pages WHERE document_id = ?1 AND number = ?2",
            params![document_id, page],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    pub fn collection_id(&self, name: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO collections(name, pii_policy) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![name, self.default_pii_policy.as_str()],
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
                     size_bytes, page_count, chunk_count, status, warnings, stored_path,
                     uploaded_by, pii_policy)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'indexing', ?9, ?10, ?11, ?12)",
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
                    doc.pii_policy,
                ])?;
                let id = tx.last_insert_rowid();
                insert_content(&tx, id, pages, chunks, doc.findings)?;
                ids.push(id);
            }
        }
        let audit = audit.map(|e| e.documents(ids.iter().copied()));
        let signed = audit_in(self.audit.as_ref(), &tx, audit.as_ref())?;
        tx.commit()?;
        self.witness(signed);
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

    /// The chunks among `ids` that are visible (their document is `indexed`
    /// and, in a collection that redacts or rejects identifiers, was processed
    /// under that policy: until it is re-processed after a policy change, it
    /// is not shown), keyed by chunk id. This is the final gate of every search.
    pub fn visible_chunks(&self, ids: &[i64]) -> Result<HashMap<i64, ChunkView>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.document_id, d.title, col.name, c.page, c.char_start, c.char_end,
                    c.heading, c.text
             FROM chunks c JOIN documents d ON d.id = c.document_id
             JOIN collections col ON col.id = d.collection_id
             WHERE c.id = ?1 AND d.status = 'indexed' AND (col.pii_policy = 'report' OR d.pii_policy = col.pii_policy)",
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
        let answers_erased = erase_answers_citing(&tx, document_id)?;
        tx.execute("DELETE FROM documents WHERE id = ?1", [document_id])?;
        let signed = audit_in(self.audit.as_ref(), &tx, audit)?;
        tx.commit()?;
        self.witness(signed);
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
}

/// Erase the text of every stored answer that was given passages of the
/// document (they may quote what is gone), and forget which passages they
/// were. Returns how many answers were erased.
pub(super) fn erase_answers_citing(tx: &rusqlite::Connection, document_id: i64) -> Result<usize> {
    let erased = tx.execute(
        "UPDATE messages SET status = 'erased', answer = '', citations = '[]', checks = '{}'
         WHERE id IN (SELECT message_id FROM message_sources WHERE document_id = ?1)",
        [document_id],
    )?;
    tx.execute(
        "DELETE FROM message_sources WHERE document_id = ?1",
        [document_id],
    )?;
    Ok(erased)
}

/// A document's pages, chunks and sensitive-identifier findings.
pub(super) fn insert_content(
    tx: &rusqlite::Connection,
    id: i64,
    pages: &[NewPage<'_>],
    chunks: &[NewChunk<'_>],
    findings: &[super::pii::NewFinding<'_>],
) -> Result<()> {
    let mut page_stmt = tx.prepare_cached(
        "INSERT INTO pages (document_id, number, has_text_layer, text, ocr_confidence, ocr)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut chunk_stmt = tx.prepare_cached(
        "INSERT INTO chunks (document_id, ordinal, page, char_start, char_end, heading, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for p in pages {
        let ocr = match p.ocr {
            Some(how) => Some(
                serde_json::to_string(how)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            ),
            None => None,
        };
        page_stmt.execute(params![
            id,
            p.number,
            p.has_text_layer,
            p.text,
            p.ocr.map(|o| o.mean_confidence as f64),
            ocr
        ])?;
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
    super::pii::insert_findings(tx, id, findings)
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
            pii_policy: "report",
            findings: &[],
        };
        let pages = [NewPage {
            number: 1,
            has_text_layer: true,
            ocr: None,
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
