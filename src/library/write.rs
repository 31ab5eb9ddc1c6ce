//! Adding documents, and the visibility protocol that makes them searchable:
//! rows written `indexing`, both indexes committed, then the flip to
//! `indexed`. Reading, extracting and chunking a file happen before, in
//! `ingest`, without the library's lock.

use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::audit::Entry;
use crate::index::vector::VectorPoint;
use crate::store::pii::{NewFinding, Replacement};
use crate::store::{DocStatus, IndexableChunk, NewChunk, NewDocument, NewPage};

use super::{Library, LibraryError, Outcome, Result};

/// A document ready to be written: read, hashed, extracted and chunked.
pub struct Incoming<'a> {
    pub collection: &'a str,
    /// The display name of the input (never used to build a path).
    pub source_name: &'a str,
    pub title: &'a str,
    pub content_hash: &'a str,
    /// The original's bytes, stored under a content-addressed name.
    pub bytes: &'a [u8],
    pub mime: &'a str,
    pub pages: &'a [NewPage<'a>],
    pub chunks: &'a [NewChunk<'a>],
    pub warnings: &'a [String],
    /// Who uploaded it (a username, or `cli:<os user>`).
    pub uploaded_by: &'a str,
    /// The sensitive-identifier policy its text was processed under, and
    /// what was found (`ingest::screen`).
    pub pii_policy: &'a str,
    pub findings: &'a [NewFinding<'a>],
}

impl Library {
    /// The document already holding these bytes in `collection`, if any
    /// (checked before the slow, isolated extraction).
    pub fn duplicate_of(&self, collection: &str, content_hash: &str) -> Result<Option<i64>> {
        let collection_id = self.store.collection_id(collection)?;
        Ok(self.store.find_duplicate(collection_id, content_hash)?)
    }

    /// Store the original, write the rows (with `audit`, its document id
    /// filled in, in the same transaction) and queue the document for
    /// indexing. Searchable after the next [`flush`](Self::flush).
    pub fn add(&mut self, doc: &Incoming<'_>, audit: Option<Entry>) -> Result<Outcome> {
        let collection_id = self.store.collection_id(doc.collection)?;
        if let Some(existing) = self.store.find_duplicate(collection_id, doc.content_hash)? {
            return Ok(Outcome::Duplicate {
                document_id: existing,
            });
        }
        let stored_path = self.store_original(doc.content_hash, doc.bytes)?;
        let warnings = doc.warnings.join("; ");
        let row = NewDocument {
            collection_id,
            title: doc.title,
            source_name: doc.source_name,
            content_hash: doc.content_hash,
            mime: doc.mime,
            size_bytes: doc.bytes.len() as u64,
            stored_path: &stored_path,
            warnings: &warnings,
            uploaded_by: doc.uploaded_by,
            pii_policy: doc.pii_policy,
            findings: doc.findings,
        };
        let document_id = self
            .store
            .insert_document_audited(&row, doc.pages, doc.chunks, audit)?;
        self.pending.push(document_id);
        Ok(Outcome::Indexed {
            document_id,
            pages: doc.pages.len(),
            chunks: doc.chunks.len(),
            warnings: doc.warnings.to_vec(),
        })
    }

    /// Index what is pending once `ingest.commit_every_documents` documents
    /// wait (bulk loads commit in batches, not per file).
    pub fn flush_if_due(&mut self) -> Result<()> {
        if self.pending.len() >= self.config.ingest.commit_every_documents {
            self.flush()?;
        }
        Ok(())
    }

    /// Store an original under a server-chosen, content-addressed name inside
    /// the data dir (never a name derived from the upload). Returns the path
    /// relative to the data dir.
    fn store_original(&self, hash: &str, bytes: &[u8]) -> Result<String> {
        let relative = format!("originals/{}/{}", &hash[..2], hash);
        let path = self.data_dir.join(&relative);
        if path.is_file() {
            return Ok(relative);
        }
        let err = |source| LibraryError::Original {
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(&self.data_dir);
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(relative)
    }

    /// Give a searchable document new content (re-processing under a new
    /// sensitive-identifier policy), through the visibility protocol: hidden
    /// at once, taken out of both indexes, rows replaced, then indexed and
    /// shown again at the next flush (made here). Returns how many stored
    /// answers that had been given its old passages were erased.
    pub fn replace_content(
        &mut self,
        document_id: i64,
        new: &Replacement<'_>,
        audit: Option<&Entry>,
    ) -> Result<usize> {
        self.flush()?;
        self.store.set_status(document_id, DocStatus::Indexing)?;
        self.vectors.delete_document(document_id)?;
        self.lexical.delete_document(document_id)?;
        self.lexical.commit()?;
        self.vectors.commit()?;
        let erased = self
            .store
            .replace_document_content(document_id, new, audit)?;
        self.pending.push(document_id);
        self.flush()?;
        Ok(erased)
    }

    /// Index every pending document into both indexes, commit both, then make
    /// them visible. No-op when nothing is pending.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ids = std::mem::take(&mut self.pending);
        let chunks = self.store.indexable_chunks(&ids)?;
        let t0 = Instant::now();
        let texts: Vec<String> = chunks.iter().map(|c| c.indexed_text()).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (vectors, tokens) = self.embedder.embed_counted(&refs)?;
        let t1 = Instant::now();
        self.index_and_reveal(&ids, &chunks, &vectors)?;
        self.stats.chunks += chunks.len();
        self.stats.embed_tokens += tokens;
        self.stats.embed_secs += (t1 - t0).as_secs_f64();
        self.stats.index_secs += t1.elapsed().as_secs_f64();
        Ok(())
    }

    /// Benchmark support: add single-chunk documents whose vectors are already
    /// known, through the same visibility protocol (rows, both indexes, flip).
    pub fn add_precomputed(
        &mut self,
        collection: &str,
        items: &[(String, String, Vec<f32>)],
    ) -> Result<()> {
        self.flush()?;
        let collection_id = self.store.collection_id(collection)?;
        let hashes: Vec<String> = items
            .iter()
            .map(|(name, text, _)| hex::encode(Sha256::digest(format!("{name}\u{0}{text}"))))
            .collect();
        let pages: Vec<[NewPage<'_>; 1]> = items
            .iter()
            .map(|(_, text, _)| {
                [NewPage {
                    number: 1,
                    has_text_layer: true,
                    text,
                    ocr: None,
                }]
            })
            .collect();
        let chunks: Vec<[NewChunk<'_>; 1]> = items
            .iter()
            .map(|(_, text, _)| {
                [NewChunk {
                    page: 1,
                    char_start: 0,
                    char_end: text.chars().count(),
                    heading: "",
                    text,
                }]
            })
            .collect();
        let docs: Vec<NewDocument<'_>> = items
            .iter()
            .zip(&hashes)
            .map(|((name, text, _), hash)| NewDocument {
                collection_id,
                title: name,
                source_name: name,
                content_hash: hash,
                mime: "text/plain",
                size_bytes: text.len() as u64,
                stored_path: "",
                warnings: "",
                uploaded_by: "",
                // Benchmark rows are not scanned; marked as processed under
                // the default policy so nothing re-processes them.
                pii_policy: "report",
                findings: &[],
            })
            .collect();
        let rows: Vec<_> = docs
            .iter()
            .zip(&pages)
            .zip(&chunks)
            .map(|((d, p), c)| (d, &p[..], &c[..]))
            .collect();
        let ids = self.store.insert_documents(&rows)?;
        let chunks = self.store.indexable_chunks(&ids)?;
        let vectors: Vec<Vec<f32>> = items.iter().map(|(_, _, v)| v.clone()).collect();
        self.index_and_reveal(&ids, &chunks, &vectors)
    }

    /// The visibility protocol in one place: add the chunks to both indexes,
    /// commit both durably, and only then flip the documents to `indexed`.
    fn index_and_reveal(
        &mut self,
        ids: &[i64],
        chunks: &[IndexableChunk],
        vectors: &[Vec<f32>],
    ) -> Result<()> {
        self.lexical.add(chunks)?;
        let points: Vec<VectorPoint<'_>> = chunks
            .iter()
            .zip(vectors)
            .map(|(c, v)| VectorPoint {
                chunk_id: c.id,
                document_id: c.document_id,
                collection: &c.collection,
                vector: v,
            })
            .collect();
        if let Err(e) = self.vectors.upsert(&points) {
            // Take back the BM25 entries added above (deletes apply to earlier
            // adds at the next commit), so a retry starts clean.
            for id in ids {
                self.lexical.delete_document(*id)?;
            }
            return Err(e.into());
        }
        self.lexical.commit()?;
        self.vectors.commit()?;
        self.store.mark_indexed(ids)?;
        Ok(())
    }

    /// Build ANN structures after a bulk load.
    pub fn optimize(&mut self) -> Result<()> {
        self.flush()?;
        self.vectors.optimize()?;
        Ok(())
    }
}
