//! The document library: SQLite store, stored originals, BM25 and vector
//! indexes and the embedder, kept consistent with one another.
//!
//! Visibility protocol (the invariant everything else relies on):
//! 1. a document's rows are written in status `indexing` — invisible;
//! 2. its chunks are added to both indexes and both are committed durably;
//! 3. only then is its status flipped to `indexed` in one SQLite transaction.
//!
//! Every search result is checked against SQLite (`indexed` only), so a crash
//! at any point leaves a document either fully searchable or invisible. On
//! open, documents left `indexing` are purged from both indexes and indexed
//! again from their stored chunks, and documents left `deleting` are erased.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::{Actor, AuditKey, Entry};
use crate::chunk;
use crate::config::{Config, VectorBackend};
use crate::embed::{EmbedError, Embedder};
use crate::extract::{self, Extracted, Rejection};
use crate::index::lexical::{LexicalError, LexicalIndex};
use crate::index::qdrant::QdrantVectorIndex;
use crate::index::vector::{VectorError, VectorIndex, VectorPoint};
use crate::retrieve::{self, FusedHit, FusionParams, Mode};
use crate::store::{
    AuditSink, ChunkView, DocStatus, IndexableChunk, NewChunk, NewDocument, NewPage, Store,
    StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lexical(#[from] LexicalError),
    #[error(transparent)]
    Vector(#[from] VectorError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another enclave process")]
    Locked(PathBuf),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("stored original {path}: {source}")]
    Original {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, LibraryError>;

/// What happened to one input file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Indexed {
        document_id: i64,
        pages: usize,
        chunks: usize,
        warnings: Vec<String>,
    },
    Duplicate {
        document_id: i64,
    },
    Rejected {
        reason: String,
    },
}

/// Receipt for an erasure: what was removed, checked after the fact.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionReceipt {
    pub document_id: i64,
    pub title: String,
    pub collection: String,
    pub content_hash: String,
    pub chunks_removed: usize,
    pub bm25_entries_remaining: u64,
    pub vectors_remaining: usize,
    pub original_removed: bool,
    /// Stored chat answers that had been given passages of this document,
    /// whose text was erased with it.
    pub answers_erased: usize,
    pub completed_at: String,
}

/// Search results, and whether they are BM25's alone (vector store unreachable).
pub struct SearchOutcome {
    pub hits: Vec<SearchHit>,
    pub degraded: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub chunk: ChunkView,
    #[serde(flatten)]
    pub scores: FusedHit,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentConsistency {
    pub document_id: i64,
    pub status: DocStatus,
    pub chunks: u64,
    pub bm25_entries: u64,
    pub vectors: u64,
}

impl DocumentConsistency {
    /// Searchable documents must be complete in both indexes.
    pub fn is_consistent(&self) -> bool {
        self.status != DocStatus::Indexed
            || (self.bm25_entries == self.chunks && self.vectors == self.chunks)
    }
}

/// Timings of one ingest batch, for `enclave bench ingest`.
#[derive(Debug, Default, Clone, Copy)]
pub struct IndexStats {
    pub chunks: usize,
    pub embed_tokens: usize,
    pub embed_secs: f64,
    pub index_secs: f64,
}

pub struct Library {
    config: Config,
    data_dir: PathBuf,
    store: Store,
    lexical: LexicalIndex,
    vectors: Box<dyn VectorIndex>,
    embedder: Embedder,
    /// Documents written in `indexing` state, waiting for the next index commit.
    pending: Vec<i64>,
    /// Named in the audit rows of uploads and deletions made without an
    /// explicit actor (the command line).
    actor: Actor,
    pub stats: IndexStats,
    /// Set while searches find the vector store unreachable.
    vectors_degraded: AtomicBool,
    _lock: File,
}

impl Outcome {
    fn rejected(r: Rejection) -> Outcome {
        Outcome::Rejected {
            reason: r.to_string(),
        }
    }
}

impl Library {
    /// Open (creating if needed) the library in `config.data_dir`, taking the
    /// data-dir lock and finishing any interrupted work.
    pub fn open(config: &Config) -> Result<Library> {
        let mut library = Library::open_without_recovery(config)?;
        library.recover()?;
        Ok(library)
    }

    /// Rebuild both indexes from the SQLite chunks (after changing the stemming
    /// language or the embedding model, or if an index is damaged), into the
    /// configured vector backend (an external Qdrant collection is dropped and
    /// created anew). Documents
    /// are hidden first and become searchable again as they are re-indexed.
    pub fn reindex(config: &Config) -> Result<Library> {
        let data_dir = &config.data_dir;
        {
            let _lock = lock_data_dir(data_dir)?;
            let store = Store::open(&data_dir.join("enclave.sqlite"))?;
            let hidden = store.mark_all_indexing()?;
            tracing::info!(documents = hidden, "rebuilding indexes");
            if config.vector.backend == VectorBackend::Qdrant {
                // The dimension does not matter for dropping the collection.
                QdrantVectorIndex::open(&config.vector, 0)?.drop_collection()?;
            }
            for dir in ["bm25", crate::index::vector::EMBEDDED_DIR] {
                let path = data_dir.join(dir);
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(LibraryError::DataDir { path, source }),
                }
            }
        }
        // Opening finds every document `indexing` and indexes it from its chunks.
        Library::open(config)
    }

    /// Open without finishing interrupted work: for inspecting the on-disk state
    /// exactly as a crash left it (tests, `doctor`). Searches are still safe,
    /// since visibility is checked in SQLite.
    pub fn open_without_recovery(config: &Config) -> Result<Library> {
        let data_dir = config.data_dir.clone();
        let io = |source| LibraryError::DataDir {
            path: data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir.join("originals")).map_err(io)?;
        let lock = lock_data_dir(&data_dir)?;
        let mut store = Store::open(&data_dir.join("enclave.sqlite"))?;
        store.set_audit(audit_sink(config)?);
        let embedder = Embedder::load(
            &config.embed_model_dir(),
            config.embed.max_tokens,
            config.embed.batch_size,
        )?;
        let lexical = LexicalIndex::open(&data_dir.join("bm25"), &config.search.language)?;
        let vectors = crate::index::vector::open(config, embedder.dim())?;
        Ok(Library {
            config: config.clone(),
            data_dir,
            store,
            lexical,
            vectors,
            embedder,
            pending: Vec::new(),
            actor: Actor::cli(),
            stats: IndexStats::default(),
            vectors_degraded: AtomicBool::new(false),
            _lock: lock,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn vectors(&self) -> &dyn VectorIndex {
        self.vectors.as_ref()
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Index the documents stored but left `indexing`: by a crash mid-ingest,
    /// or because the vector store was unreachable. Whatever reached either
    /// index is purged first, so re-adding cannot duplicate entries. Returns
    /// the documents now searchable.
    pub fn index_stranded(&mut self) -> Result<Vec<i64>> {
        let indexing = self.store.documents_with_status(DocStatus::Indexing)?;
        if indexing.is_empty() {
            return Ok(indexing);
        }
        // The vector store first: if it is unreachable, nothing is touched.
        for id in &indexing {
            self.vectors.delete_document(*id)?;
        }
        for id in &indexing {
            self.lexical.delete_document(*id)?;
        }
        self.lexical.commit()?;
        self.vectors.commit()?;
        let job = self.store.start_job("recover", None, "")?;
        self.pending = indexing.clone();
        if let Err(e) = self.flush() {
            self.store.finish_job(job, "failed", &e.to_string(), None)?;
            return Err(e);
        }
        self.store.finish_job(
            job,
            "done",
            &format!("indexed {} documents", indexing.len()),
            None,
        )?;
        tracing::warn!(
            documents = indexing.len(),
            "indexed documents left unindexed (a crash, or the vector store was unreachable)"
        );
        Ok(indexing)
    }

    /// Finish what a previous process left half done.
    fn recover(&mut self) -> Result<()> {
        let abandoned = self.store.fail_abandoned_jobs()?;
        let deleting = self.store.documents_with_status(DocStatus::Deleting)?;
        for id in &deleting {
            tracing::warn!(document_id = id, "finishing interrupted deletion");
            self.delete(*id)?;
        }
        let indexing = match self.index_stranded() {
            Ok(ids) => ids,
            Err(LibraryError::Vector(VectorError::Unavailable(why))) => {
                // Not fatal: they stay invisible and `index_stranded` runs again
                // (the server retries every few seconds).
                tracing::warn!(%why, "documents wait for the vector store to be indexed");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        if abandoned > 0 || !deleting.is_empty() || !indexing.is_empty() {
            tracing::info!(
                abandoned,
                deleting = deleting.len(),
                reindexed = indexing.len(),
                "recovery complete"
            );
        }
        Ok(())
    }

    /// Ingest one file into `collection`: extract (isolated), chunk, store, and
    /// queue for indexing. The document becomes searchable at the next [`flush`].
    pub fn add_file(&mut self, path: &Path, collection: &str) -> Result<Outcome> {
        let source_name = sanitise_name(path);
        let job = self.store.start_job("ingest", None, &source_name)?;
        let outcome = self.add_file_inner(path, collection, &source_name);
        let (state, detail, doc) = match &outcome {
            Ok(Outcome::Indexed { document_id, .. }) => ("done", String::new(), Some(*document_id)),
            Ok(Outcome::Duplicate { document_id }) => {
                ("skipped", "duplicate".to_string(), Some(*document_id))
            }
            Ok(Outcome::Rejected { reason }) => ("rejected", reason.clone(), None),
            Err(e) => ("failed", e.to_string(), None),
        };
        self.store.finish_job(job, state, &detail, doc)?;
        let outcome = outcome?;
        if matches!(outcome, Outcome::Indexed { .. })
            && self.pending.len() >= self.config.ingest.commit_every_documents
        {
            self.flush()?;
        }
        Ok(outcome)
    }

    fn add_file_inner(
        &mut self,
        path: &Path,
        collection: &str,
        source_name: &str,
    ) -> Result<Outcome> {
        let (bytes, hash) = match read_checked(path, self.config.ingest.max_file_bytes) {
            Ok(read) => read,
            Err(r) => return Ok(Outcome::rejected(r)),
        };
        // Duplicates are found before the (slow, isolated) extraction.
        let collection_id = self.store.collection_id(collection)?;
        if let Some(existing) = self.store.find_duplicate(collection_id, &hash)? {
            return Ok(Outcome::Duplicate {
                document_id: existing,
            });
        }
        let limit = self.config.ingest.max_file_bytes;
        let extracted = match extract::worker::extract_isolated(path, &self.config.extract, limit) {
            Ok(e) => e,
            Err(r) => return Ok(Outcome::rejected(r)),
        };
        let actor = self.actor.clone();
        self.add_prepared(
            Prepared {
                bytes,
                hash,
                extracted,
            },
            collection,
            source_name,
            &actor,
        )
    }

    /// Add a file [`prepare_file`] read and extracted: store the original,
    /// write the rows (with the upload's audit row, in one transaction) and
    /// queue it for indexing. Searchable after the next [`flush`].
    pub fn add_prepared(
        &mut self,
        prepared: Prepared,
        collection: &str,
        source_name: &str,
        actor: &Actor,
    ) -> Result<Outcome> {
        let Prepared {
            bytes,
            hash,
            extracted,
        } = prepared;
        let collection_id = self.store.collection_id(collection)?;
        if let Some(existing) = self.store.find_duplicate(collection_id, &hash)? {
            return Ok(Outcome::Duplicate {
                document_id: existing,
            });
        }
        let stored_path = self.store_original(&hash, &bytes)?;
        let audit = Entry::new(actor, "document.upload", format!("collection:{collection}"))
            .detail(serde_json::json!({
                "file": source_name,
                "sha256": hash,
                "bytes": bytes.len(),
                "pages": extracted.pages.len(),
            }));
        let document_id = self.write_document(
            collection_id,
            source_name,
            &hash,
            &bytes,
            &stored_path,
            &extracted,
            &actor.name,
            Some(audit),
        )?;
        let doc = self.store.document(document_id)?;
        self.pending.push(document_id);
        Ok(Outcome::Indexed {
            document_id,
            pages: doc.page_count as usize,
            chunks: doc.chunk_count as usize,
            warnings: extracted.warnings,
        })
    }

    /// Ingest already-extracted text (used by `eval`, which feeds corpora that
    /// are not files). Same visibility protocol as files.
    pub fn add_text(
        &mut self,
        collection: &str,
        name: &str,
        title: &str,
        text: &str,
    ) -> Result<Outcome> {
        let extracted = Extracted {
            format: extract::Format::Text,
            title: (!title.is_empty()).then(|| title.to_string()),
            pages: vec![extract::Page {
                number: 1,
                text: extract::normalise(text),
                has_text_layer: true,
            }],
            warnings: Vec::new(),
        };
        if !extracted.has_any_text() {
            return Ok(Outcome::Rejected {
                reason: Rejection::Empty.to_string(),
            });
        }
        let bytes = text.as_bytes();
        let hash = hex::encode(Sha256::digest(format!("{name}\u{0}{title}\u{0}{text}")));
        let collection_id = self.store.collection_id(collection)?;
        if let Some(existing) = self.store.find_duplicate(collection_id, &hash)? {
            return Ok(Outcome::Duplicate {
                document_id: existing,
            });
        }
        let stored_path = self.store_original(&hash, bytes)?;
        let actor = self.actor.name.clone();
        let document_id = self.write_document(
            collection_id,
            name,
            &hash,
            bytes,
            &stored_path,
            &extracted,
            &actor,
            None,
        )?;
        self.pending.push(document_id);
        if self.pending.len() >= self.config.ingest.commit_every_documents {
            self.flush()?;
        }
        Ok(Outcome::Indexed {
            document_id,
            pages: 1,
            chunks: 0,
            warnings: Vec::new(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write_document(
        &mut self,
        collection_id: i64,
        source_name: &str,
        hash: &str,
        bytes: &[u8],
        stored_path: &str,
        extracted: &Extracted,
        uploaded_by: &str,
        audit: Option<Entry>,
    ) -> Result<i64> {
        let chunks = chunk::chunk_pages(
            extracted.pages.iter().map(|p| (p.number, p.text.as_str())),
            &self.config.chunk,
        );
        let title = extracted
            .title
            .clone()
            .unwrap_or_else(|| title_from_name(source_name));
        let warnings = extracted.warnings.join("; ");
        let pages: Vec<NewPage<'_>> = extracted
            .pages
            .iter()
            .map(|p| NewPage {
                number: p.number,
                has_text_layer: p.has_text_layer,
                text: &p.text,
            })
            .collect();
        let new_chunks: Vec<NewChunk<'_>> = chunks
            .iter()
            .map(|c| NewChunk {
                page: c.page,
                char_start: c.char_start,
                char_end: c.char_end,
                heading: &c.heading,
                text: &c.text,
            })
            .collect();
        let doc = NewDocument {
            collection_id,
            title: &title,
            source_name,
            content_hash: hash,
            mime: extracted.format.mime(),
            size_bytes: bytes.len() as u64,
            stored_path,
            warnings: &warnings,
            uploaded_by,
        };
        Ok(self
            .store
            .insert_document_audited(&doc, &pages, &new_chunks, audit)?)
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

    /// Erase a document: invisible at once, then removed from both indexes,
    /// its original deleted (unless another collection holds the same bytes),
    /// and its rows dropped. Returns a receipt with post-deletion checks.
    pub fn delete(&mut self, document_id: i64) -> Result<DeletionReceipt> {
        let actor = self.actor.clone();
        self.delete_as(document_id, &actor)
    }

    /// [`delete`] on behalf of `actor`, who is named in the audit row
    /// written with the removal of the rows.
    pub fn delete_as(&mut self, document_id: i64, actor: &Actor) -> Result<DeletionReceipt> {
        let doc = self.store.document(document_id)?;
        self.store.set_status(document_id, DocStatus::Deleting)?;
        let job = self
            .store
            .start_job("delete", Some(document_id), &doc.source_name)?;
        let chunk_ids = self.store.chunk_ids_of(document_id)?;
        self.lexical.delete_document(document_id)?;
        self.lexical.commit()?;
        self.vectors.delete_document(document_id)?;
        self.vectors.commit()?;
        let mut original_removed = false;
        if !doc.stored_path.is_empty()
            && self
                .store
                .stored_path_users(&doc.stored_path, document_id)?
                == 0
        {
            let path = self.data_dir.join(&doc.stored_path);
            match std::fs::remove_file(&path) {
                Ok(()) => original_removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => original_removed = true,
                Err(source) => return Err(LibraryError::Original { path, source }),
            }
        }
        let audit = Entry::new(
            actor,
            "document.delete",
            format!("collection:{}", doc.collection),
        )
        .documents([document_id])
        .chunks(chunk_ids.iter().copied())
        .detail(serde_json::json!({
            "title": doc.title,
            "file": doc.source_name,
            "sha256": doc.content_hash,
        }));
        let answers_erased = self.store.delete_document_rows(document_id, Some(&audit))?;
        let bm25_entries_remaining = self.lexical.count_document(document_id)?;
        let vectors_remaining = self.vectors.count_document(document_id)?;
        self.store.finish_job(
            job,
            "done",
            &format!("{} chunks removed", chunk_ids.len()),
            None,
        )?;
        Ok(DeletionReceipt {
            document_id,
            title: doc.title,
            collection: doc.collection,
            content_hash: doc.content_hash,
            chunks_removed: chunk_ids.len(),
            bm25_entries_remaining,
            vectors_remaining,
            original_removed,
            answers_erased,
            completed_at: crate::time::now_utc(),
        })
    }

    /// Ranked passages for `query`, from `mode`'s retrievers, restricted to
    /// `collections` inside both indexes, and checked visible in SQLite.
    pub fn search(
        &self,
        query: &str,
        collections: Option<&[String]>,
        limit: usize,
        mode: Mode,
    ) -> Result<Vec<SearchHit>> {
        Ok(self.search_checked(query, collections, limit, mode)?.hits)
    }

    /// [`search`](Self::search), also saying whether the vector store was
    /// unreachable. Then the hits are BM25's alone, and each gets its dense
    /// similarity computed here from its text, so the evidence gate and the
    /// relative cut-off still work.
    pub fn search_checked(
        &self,
        query: &str,
        collections: Option<&[String]>,
        limit: usize,
        mode: Mode,
    ) -> Result<SearchOutcome> {
        let (fused, degraded) = self.ranked(query, collections, mode, self.fusion_params())?;
        // Ask SQLite about a few more than needed, in case some are invisible.
        let window: Vec<i64> = fused
            .iter()
            .take(limit * 2 + 10)
            .map(|h| h.chunk_id)
            .collect();
        let mut visible = self.store.visible_chunks(&window)?;
        let mut hits: Vec<SearchHit> = fused
            .into_iter()
            .filter_map(|scores| {
                visible
                    .remove(&scores.chunk_id)
                    .map(|chunk| SearchHit { chunk, scores })
            })
            .take(limit)
            .collect();
        if degraded {
            self.score_locally(query, &mut hits)?;
        }
        Ok(SearchOutcome { hits, degraded })
    }

    /// Dense similarity of each hit's passage to the query, by the embedder.
    fn score_locally(&self, query: &str, hits: &mut [SearchHit]) -> Result<()> {
        if hits.is_empty() {
            return Ok(());
        }
        let q = self.embedder.embed_one(query)?;
        let texts: Vec<&str> = hits.iter().map(|h| h.chunk.text.as_str()).collect();
        let (vectors, _) = self.embedder.embed_counted(&texts)?;
        for (hit, v) in hits.iter_mut().zip(vectors) {
            let score: f32 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
            hit.scores.dense = Some(retrieve::SideScore { rank: 0, score });
        }
        Ok(())
    }

    /// Whether the last search found the vector store unreachable.
    pub fn vectors_degraded(&self) -> bool {
        self.vectors_degraded.load(Ordering::Relaxed)
    }

    /// Fused ranking of chunk ids (not yet checked for visibility).
    pub fn ranked_ids(
        &self,
        query: &str,
        collections: Option<&[String]>,
        mode: Mode,
    ) -> Result<Vec<FusedHit>> {
        self.ranked_ids_with(query, collections, mode, self.fusion_params())
    }

    pub fn fusion_params(&self) -> FusionParams {
        FusionParams {
            fusion: self.config.search.fusion,
            rrf_k: self.config.search.rrf_k,
            dense_weight: self.config.search.dense_weight,
        }
    }

    pub fn ranked_ids_with(
        &self,
        query: &str,
        collections: Option<&[String]>,
        mode: Mode,
        params: FusionParams,
    ) -> Result<Vec<FusedHit>> {
        Ok(self.ranked(query, collections, mode, params)?.0)
    }

    /// The fused ranking, and whether it is BM25's alone because the vector
    /// store could not be reached (hybrid mode only; dense mode fails then).
    fn ranked(
        &self,
        query: &str,
        collections: Option<&[String]>,
        mode: Mode,
        params: FusionParams,
    ) -> Result<(Vec<FusedHit>, bool)> {
        let (lexical, dense, degraded) = self.candidates(query, collections, mode)?;
        if degraded {
            if !self.vectors_degraded.swap(true, Ordering::Relaxed) {
                tracing::warn!("vector store unreachable: answering from BM25 alone");
            }
            return Ok((retrieve::single_side(&lexical, &[]), true));
        }
        self.vectors_degraded.store(false, Ordering::Relaxed);
        let fused = match mode {
            Mode::Hybrid => {
                let params = FusionParams {
                    dense_weight: retrieve::dense_weight_for(query, params.dense_weight),
                    ..params
                };
                retrieve::fuse(&lexical, &dense, params)
            }
            Mode::Bm25 | Mode::Dense => retrieve::single_side(&lexical, &dense),
        };
        Ok((fused, false))
    }

    /// Raw candidates from each retriever `mode` uses, run in parallel, and
    /// whether the vector store was unreachable (hybrid mode only: then the
    /// dense side is empty; dense mode fails instead).
    pub fn candidates(
        &self,
        query: &str,
        collections: Option<&[String]>,
        mode: Mode,
    ) -> Result<(
        Vec<crate::index::lexical::LexicalHit>,
        Vec<crate::index::vector::VectorHit>,
        bool,
    )> {
        if collections.is_some_and(|c| c.is_empty()) {
            // Granted nothing: nothing to search (never "no filter").
            return Ok((Vec::new(), Vec::new(), false));
        }
        let k = self.config.search.candidates;
        let use_lex = mode != Mode::Dense;
        let use_dense = mode != Mode::Bm25;
        // Only the indexes and the embedder cross threads (the SQLite handle is not Sync).
        let (lexical, embedder, vectors) = (&self.lexical, &self.embedder, &self.vectors);
        let (lex, dense) = rayon::join(
            || {
                if use_lex {
                    lexical.search(query, collections, k)
                } else {
                    Ok(Vec::new())
                }
            },
            || -> Result<_> {
                if !use_dense {
                    return Ok(Vec::new());
                }
                let v = embedder.embed_one(query)?;
                Ok(vectors.search(&v, collections, k)?)
            },
        );
        match dense {
            Ok(dense) => Ok((lex?, dense, false)),
            Err(LibraryError::Vector(VectorError::Unavailable(why))) if mode == Mode::Hybrid => {
                tracing::debug!(%why, "dense retrieval skipped");
                Ok((lex?, Vec::new(), true))
            }
            Err(e) => Err(e),
        }
    }

    /// Per-document comparison of SQLite with both indexes. A consistent
    /// library has, for every `indexed` document, exactly its chunks in both.
    pub fn consistency(&self) -> Result<Vec<DocumentConsistency>> {
        let mut out = Vec::new();
        for doc in self.store.documents(None)? {
            out.push(DocumentConsistency {
                document_id: doc.id,
                status: doc.status,
                chunks: doc.chunk_count as u64,
                bm25_entries: self.lexical.count_document(doc.id)?,
                vectors: self.vectors.count_document(doc.id)? as u64,
            });
        }
        Ok(out)
    }

    /// Entries in the BM25 index.
    pub fn lexical_count(&self) -> u64 {
        self.lexical.num_chunks()
    }

    /// Counts of what each index holds, for consistency checks and bench.
    pub fn index_counts(&self) -> Result<(u64, usize)> {
        Ok((self.lexical.num_chunks(), self.vectors.count()?))
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // Pending documents stay `indexing` if this fails; recovery picks them up.
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "could not index pending documents on close");
        }
        let _ = self.lexical.close_writer();
    }
}

/// The audit key of `config`'s data dir (created at first use) and the
/// checkpoint interval.
pub fn audit_sink(config: &Config) -> Result<AuditSink> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| LibraryError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    Ok(AuditSink {
        key: std::sync::Arc::new(AuditKey::load_or_create(&config.data_dir)?),
        checkpoint_every: config.audit.checkpoint_every,
    })
}

/// A file read, size-checked, hashed and extracted: everything slow about an
/// ingest, done without the library (so without its lock).
pub struct Prepared {
    bytes: Vec<u8>,
    hash: String,
    extracted: Extracted,
}

pub fn prepare_file(config: &Config, path: &Path) -> std::result::Result<Prepared, Rejection> {
    let limit = config.ingest.max_file_bytes;
    let (bytes, hash) = read_checked(path, limit)?;
    let extracted = extract::worker::extract_isolated(path, &config.extract, limit)?;
    Ok(Prepared {
        bytes,
        hash,
        extracted,
    })
}

fn read_checked(path: &Path, limit: u64) -> std::result::Result<(Vec<u8>, String), Rejection> {
    let meta = std::fs::metadata(path).map_err(|e| Rejection::Io(e.to_string()))?;
    if meta.len() > limit {
        return Err(Rejection::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    if meta.len() == 0 {
        return Err(Rejection::Empty);
    }
    let bytes = std::fs::read(path).map_err(|e| Rejection::Io(e.to_string()))?;
    let hash = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, hash))
}

fn lock_data_dir(data_dir: &Path) -> Result<File> {
    let path = data_dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LibraryError::DataDir {
            path: path.clone(),
            source,
        })?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; released when the file closes
    // (including when the process dies, so a crash never leaves it stuck).
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(LibraryError::Locked(data_dir.to_path_buf()));
    }
    Ok(file)
}

/// A display-safe version of an input file name: no directories, no control
/// characters, bounded length. Never used to build a path.
pub fn sanitise_name(path: &Path) -> String {
    let raw = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .take(200)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_string();
    if clean.is_empty() {
        "unnamed".into()
    } else {
        clean
    }
}

fn title_from_name(name: &str) -> String {
    let stem = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 5 => stem,
        _ => name,
    };
    stem.replace(['_', '-'], " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_for_display() {
        assert_eq!(sanitise_name(Path::new("/x/../../etc/passwd")), "passwd");
        assert_eq!(sanitise_name(Path::new("a\u{7}b\nc.pdf")), "a_b_c.pdf");
        assert_eq!(sanitise_name(Path::new("..")), "unnamed");
        assert_eq!(
            title_from_name("annual_leave-policy.pdf"),
            "annual leave policy"
        );
    }
}
