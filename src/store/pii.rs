//! Sensitive identifiers: each collection's policy, the policy each
//! document was processed under, and the findings (where, what, how sure;
//! the identifier only masked and as a keyed hash).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::config::PiiPolicy;
use crate::extract::ocr::PageOcr;

use super::documents::{NewChunk, NewPage, insert_content};
use super::{Result, Store, StoreError, audit_in};

/// A finding about to be written (offsets in characters of the stored page text).
pub struct NewFinding<'a> {
    pub page: u32,
    pub char_start: usize,
    pub char_end: usize,
    pub kind: &'a str,
    pub confidence: f32,
    pub masked: &'a str,
    pub keyed_hash: &'a str,
}

/// A finding as reports show it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    pub id: i64,
    pub document_id: i64,
    pub title: String,
    pub collection: String,
    pub page: i64,
    pub char_start: i64,
    pub char_end: i64,
    pub kind: String,
    pub confidence: f64,
    pub masked: String,
    pub keyed_hash: String,
    /// Documents (in the whole library) holding the same identifier.
    pub documents_with_same: i64,
}

/// Which findings a report lists.
#[derive(Debug, Default, Clone)]
pub struct FindingFilter {
    pub collection: Option<String>,
    pub kind: Option<String>,
    pub document: Option<i64>,
    /// At most this many rows (0: no limit).
    pub limit: usize,
}

/// A collection's policy and where its documents stand.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionPolicy {
    pub collection: String,
    pub policy: PiiPolicy,
    pub documents: i64,
    /// Documents processed under another policy, waiting to be re-processed.
    pub pending: i64,
    pub documents_with_findings: i64,
    pub findings: i64,
}

/// A stored page, as re-processing reads it back.
pub struct StoredPage {
    pub number: u32,
    pub has_text_layer: bool,
    pub text: String,
    pub ocr: Option<PageOcr>,
}

/// New content for a document being re-processed.
pub struct Replacement<'a> {
    pub title: &'a str,
    pub source_name: &'a str,
    pub pages: &'a [NewPage<'a>],
    pub chunks: &'a [NewChunk<'a>],
    pub findings: &'a [NewFinding<'a>],
    pub pii_policy: &'a str,
    pub warnings: &'a str,
}

pub(super) fn insert_findings(
    tx: &rusqlite::Connection,
    document_id: i64,
    findings: &[NewFinding<'_>],
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO pii_findings (document_id, page, char_start, char_end, kind, confidence,
             masked, keyed_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for f in findings {
        stmt.execute(params![
            document_id,
            f.page,
            f.char_start as i64,
            f.char_end as i64,
            f.kind,
            f.confidence as f64,
            f.masked,
            f.keyed_hash
        ])?;
    }
    Ok(())
}

fn parse_policy(s: &str) -> rusqlite::Result<PiiPolicy> {
    PiiPolicy::parse(s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown policy {s:?}").into(),
        )
    })
}

impl Store {
    /// The policy collections are created with from now on.
    pub fn set_default_pii_policy(&mut self, policy: PiiPolicy) {
        self.default_pii_policy = policy;
    }

    /// The policy of `collection` (created, with the default policy, if new).
    pub fn collection_policy(&self, collection: &str) -> Result<PiiPolicy> {
        let id = self.collection_id(collection)?;
        Ok(self.conn.query_row(
            "SELECT pii_policy FROM collections WHERE id = ?1",
            [id],
            |r| parse_policy(&r.get::<_, String>(0)?),
        )?)
    }

    /// Set `collection`'s policy (creating it if new), with `audit` in the
    /// same transaction. Returns the policy it had. Its documents are then
    /// waiting to be re-processed ([`Store::documents_to_rescreen`]).
    pub fn set_collection_policy(
        &mut self,
        collection: &str,
        policy: PiiPolicy,
        audit: Option<&crate::audit::Entry>,
    ) -> Result<PiiPolicy> {
        let previous = self.collection_policy(collection)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE collections SET pii_policy = ?2 WHERE name = ?1",
            params![collection, policy.as_str()],
        )?;
        let signed = audit_in(self.audit.as_ref(), &tx, audit)?;
        tx.commit()?;
        self.witness(signed);
        Ok(previous)
    }

    /// Every collection's policy, with counts of its documents and findings.
    pub fn collection_policies(&self) -> Result<Vec<CollectionPolicy>> {
        let mut stmt = self.conn.prepare(
            "SELECT col.name, col.pii_policy,
                    (SELECT count(*) FROM documents d WHERE d.collection_id = col.id),
                    (SELECT count(*) FROM documents d WHERE d.collection_id = col.id
                        AND d.status = 'indexed' AND d.pii_policy != col.pii_policy),
                    (SELECT count(DISTINCT f.document_id) FROM pii_findings f
                        JOIN documents d ON d.id = f.document_id WHERE d.collection_id = col.id),
                    (SELECT count(*) FROM pii_findings f
                        JOIN documents d ON d.id = f.document_id WHERE d.collection_id = col.id)
             FROM collections col ORDER BY col.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CollectionPolicy {
                collection: r.get(0)?,
                policy: parse_policy(&r.get::<_, String>(1)?)?,
                documents: r.get(2)?,
                pending: r.get(3)?,
                documents_with_findings: r.get(4)?,
                findings: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Searchable documents processed under a policy other than their
    /// collection's (after a policy change, or stored before scanning
    /// existed), in `collection` or everywhere, oldest first.
    pub fn documents_to_rescreen(&self, collection: Option<&str>) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id FROM documents d JOIN collections col ON col.id = d.collection_id
             WHERE d.status = 'indexed' AND d.pii_policy != col.pii_policy
               AND (?1 IS NULL OR col.name = ?1)
             ORDER BY d.id",
        )?;
        let ids = stmt.query_map([collection], |r| r.get(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }

    /// The policy a document was processed under ("" before scanning
    /// existed), its collection's policy, and how many findings it has.
    pub fn document_pii_state(&self, document_id: i64) -> Result<(String, PiiPolicy, i64)> {
        self.conn
            .query_row(
                "SELECT d.pii_policy, col.pii_policy,
                        (SELECT count(*) FROM pii_findings f WHERE f.document_id = d.id)
                 FROM documents d JOIN collections col ON col.id = d.collection_id
                 WHERE d.id = ?1",
                [document_id],
                |r| Ok((r.get(0)?, parse_policy(&r.get::<_, String>(1)?)?, r.get(2)?)),
            )
            .optional()?
            .ok_or(StoreError::NoSuchDocument(document_id))
    }

    /// Findings matching `filter`, by collection, document, page and position.
    pub fn findings(&self, filter: &FindingFilter) -> Result<Vec<FindingRow>> {
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        let mut stmt = self.conn.prepare(
            "SELECT f.id, d.id, d.title, col.name, f.page, f.char_start, f.char_end, f.kind,
                    f.confidence, f.masked, f.keyed_hash,
                    (SELECT count(DISTINCT g.document_id) FROM pii_findings g
                      WHERE g.keyed_hash = f.keyed_hash)
             FROM pii_findings f JOIN documents d ON d.id = f.document_id
             JOIN collections col ON col.id = d.collection_id
             WHERE (?1 IS NULL OR col.name = ?1) AND (?2 IS NULL OR f.kind = ?2)
               AND (?3 IS NULL OR d.id = ?3)
             ORDER BY col.name, d.id, f.page, f.char_start
             LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![filter.collection, filter.kind, filter.document, limit],
            |r| {
                Ok(FindingRow {
                    id: r.get(0)?,
                    document_id: r.get(1)?,
                    title: r.get(2)?,
                    collection: r.get(3)?,
                    page: r.get(4)?,
                    char_start: r.get(5)?,
                    char_end: r.get(6)?,
                    kind: r.get(7)?,
                    confidence: r.get(8)?,
                    masked: r.get(9)?,
                    keyed_hash: r.get(10)?,
                    documents_with_same: r.get(11)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The types found anywhere, with how many findings each, most first.
    pub fn finding_kinds(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, count(*) FROM pii_findings GROUP BY kind ORDER BY count(*) DESC, kind",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A document's pages as stored (for re-processing).
    pub fn stored_pages(&self, document_id: i64) -> Result<Vec<StoredPage>> {
        let mut stmt = self.conn.prepare(
            "SELECT number, has_text_layer, text, ocr FROM pages
             WHERE document_id = ?1 ORDER BY number",
        )?;
        let rows = stmt.query_map([document_id], |r| {
            let ocr: Option<String> = r.get(3)?;
            Ok(StoredPage {
                number: r.get(0)?,
                has_text_layer: r.get(1)?,
                text: r.get(2)?,
                // A page whose OCR record no longer parses keeps its text.
                ocr: ocr.and_then(|j| serde_json::from_str(&j).ok()),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Record that a document's text stays as it is under `pii_policy`,
    /// with its findings replaced by `findings`, its warnings by `warnings`,
    /// and `audit`.
    pub fn set_document_findings(
        &mut self,
        document_id: i64,
        pii_policy: &str,
        warnings: &str,
        findings: &[NewFinding<'_>],
        audit: Option<&crate::audit::Entry>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM pii_findings WHERE document_id = ?1",
            [document_id],
        )?;
        insert_findings(&tx, document_id, findings)?;
        tx.execute(
            "UPDATE documents SET pii_policy = ?2, warnings = ?3 WHERE id = ?1",
            params![document_id, pii_policy, warnings],
        )?;
        let signed = audit_in(self.audit.as_ref(), &tx, audit)?;
        tx.commit()?;
        self.witness(signed);
        Ok(())
    }

    /// Stored answers that were given passages of this document.
    pub fn answers_citing(&self, document_id: i64) -> Result<usize> {
        Ok(self.conn.query_row(
            "SELECT count(DISTINCT message_id) FROM message_sources WHERE document_id = ?1",
            [document_id],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// Replace a document's pages, chunks and findings (re-processing under
    /// a new policy), leaving it `indexing` (invisible until re-indexed).
    /// Stored answers that were given its old passages are erased: their
    /// text may hold what is now redacted, and their passages are gone.
    /// Returns how many answers were erased.
    pub fn replace_document_content(
        &mut self,
        document_id: i64,
        new: &Replacement<'_>,
        audit: Option<&crate::audit::Entry>,
    ) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let erased = super::documents::erase_answers_citing(&tx, document_id)?;
        for table in ["pii_findings", "chunks", "pages"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE document_id = ?1"),
                [document_id],
            )?;
        }
        let n = tx.execute(
            "UPDATE documents SET title = ?2, source_name = ?3, page_count = ?4, chunk_count = ?5,
                 pii_policy = ?6, warnings = ?7, status = 'indexing', indexed_at = NULL
             WHERE id = ?1",
            params![
                document_id,
                new.title,
                new.source_name,
                new.pages.len() as i64,
                new.chunks.len() as i64,
                new.pii_policy,
                new.warnings
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchDocument(document_id));
        }
        insert_content(&tx, document_id, new.pages, new.chunks, new.findings)?;
        let signed = audit_in(self.audit.as_ref(), &tx, audit)?;
        tx.commit()?;
        self.witness(signed);
        Ok(erased)
    }
}
