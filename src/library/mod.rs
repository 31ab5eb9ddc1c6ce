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
//!
//! Files: this one opens the library (data-dir lock, recovery) and answers
//! what the indexes hold; `write.rs` adds documents and holds the visibility
//! protocol; `delete.rs` erases them. Searching is `rag::retrieve`, over
//! [`Library::candidates`].

mod delete;
mod write;

pub use write::Incoming;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::audit::{Actor, AuditKey};
use crate::config::{Config, VectorBackend};
use crate::embed::{EmbedError, Embedder};
use crate::index::Mode;
use crate::index::lexical::{LexicalError, LexicalHit, LexicalIndex, QueryTerms};
use crate::index::qdrant::QdrantVectorIndex;
use crate::index::vector::{VectorError, VectorHit, VectorIndex};
use crate::pii::Scanner;
use crate::store::{AuditSink, DocStatus, JobKind, JobState, Store, StoreError};

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
    #[error(transparent)]
    Pii(#[from] crate::pii::CustomError),
    #[error("re-processing document {document_id}: {reason}")]
    Reprocess { document_id: i64, reason: String },
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
    /// Time spent scanning for sensitive identifiers (and redacting).
    pub pii_secs: f64,
}

pub struct Library {
    config: Config,
    data_dir: PathBuf,
    store: Store,
    lexical: LexicalIndex,
    vectors: Box<dyn VectorIndex>,
    /// Shared with the answering side, which embeds generated sentences to
    /// verify them without holding the library.
    embedder: Arc<Embedder>,
    /// Documents written in `indexing` state, waiting for the next index commit.
    pending: Vec<i64>,
    /// Named in the audit rows of uploads and deletions made without an
    /// explicit actor (the command line).
    actor: Actor,
    pub stats: IndexStats,
    /// Set while searches find the vector store unreachable.
    vectors_degraded: AtomicBool,
    /// The sensitive-identifier scanner (built-in and configured types).
    scanner: Arc<Scanner>,
    /// Off only for `enclave bench ingest --pii off` (a comparison).
    pii_scanning: bool,
    _lock: File,
}

impl Outcome {
    pub fn rejected(r: impl std::fmt::Display) -> Outcome {
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
        store.set_default_pii_policy(config.pii.default_policy);
        let scanner = Arc::new(Scanner::new(&config.pii.custom)?);
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
            embedder: Arc::new(embedder),
            pending: Vec::new(),
            actor: Actor::cli(),
            stats: IndexStats::default(),
            vectors_degraded: AtomicBool::new(false),
            scanner,
            pii_scanning: true,
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

    /// The embedder, to keep beyond the library's lock.
    pub fn shared_embedder(&self) -> Arc<Embedder> {
        self.embedder.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sensitive-identifier scanner, when scanning is on.
    pub fn scanner(&self) -> Option<&Scanner> {
        self.pii_scanning.then_some(self.scanner.as_ref())
    }

    /// The scanner, to keep beyond the library's lock (questions and
    /// answers are scanned without it).
    pub fn shared_scanner(&self) -> Arc<Scanner> {
        self.scanner.clone()
    }

    /// Benchmarks only: ingest without scanning, to measure what it costs.
    pub fn set_pii_scanning(&mut self, on: bool) {
        self.pii_scanning = on;
    }

    /// The store, to write (re-processing records findings and policies).
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The data directory (stored originals are under it).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
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
        let job = self.store.start_job(JobKind::Recover, None, "")?;
        self.pending = indexing.clone();
        if let Err(e) = self.flush() {
            self.store
                .finish_job(job, JobState::Failed, &e.to_string(), None)?;
            return Err(e);
        }
        self.store.finish_job(
            job,
            JobState::Done,
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

    /// Record whether the last search found the vector store unreachable
    /// (logged once per outage).
    pub fn note_vector_outage(&self, unreachable: bool) {
        let was = self.vectors_degraded.swap(unreachable, Ordering::Relaxed);
        if unreachable && !was {
            tracing::warn!("vector store unreachable: answering from BM25 alone");
        }
    }

    /// Who the audit rows of this library's own actions name (the command line).
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Raw candidates from each retriever `mode` uses, run in parallel, and
    /// whether the vector store was unreachable (hybrid mode only: then the
    /// dense side is empty; dense mode fails instead).
    pub fn candidates(
        &self,
        query: &str,
        collections: Option<&[String]>,
        mode: Mode,
    ) -> Result<(Vec<LexicalHit>, Vec<VectorHit>, bool)> {
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

    /// The query's terms as BM25 sees them, each with its rarity here.
    pub fn query_terms(&self, query: &str) -> Result<QueryTerms> {
        Ok(self.lexical.query_terms(query)?)
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

    /// Purge the BM25 segment files of deleted entries (after erasure or
    /// redaction): logged, not fatal, if it fails (search already excludes
    /// them; the next purge or tantivy's own merges remove them).
    pub fn purge_deleted(&self) {
        match self.lexical.purge_deleted() {
            Ok(0) => {}
            Ok(n) => tracing::debug!(entries = n, "purged deleted BM25 entries from disk"),
            Err(e) => tracing::warn!(error = %e, "could not purge deleted BM25 entries"),
        }
    }

    /// BM25 entries deleted but still in segment files.
    pub fn bm25_deleted_entries(&self) -> Result<u64> {
        Ok(self.lexical.deleted_entries()?)
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
        witness: crate::audit::witness::Witness::from_setting(&config.audit.witness),
    })
}

/// The file of a stored original, when `stored_path` has the shape Enclave
/// writes (`originals/<2 hex>/<64 hex>`). Anything else in the database
/// (an absolute path, `..`, another folder: a tampered or foreign restore)
/// is never served, copied or deleted.
pub fn original_file(data_dir: &Path, stored_path: &str) -> Option<std::path::PathBuf> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match stored_path.split('/').collect::<Vec<_>>().as_slice() {
        ["originals", prefix, hash]
            if hex(prefix, 2) && hex(hash, 64) && hash.starts_with(prefix) =>
        {
            Some(data_dir.join(stored_path))
        }
        _ => None,
    }
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

#[cfg(test)]
mod original_file_tests {
    use super::original_file;
    use std::path::Path;

    #[test]
    fn only_paths_enclave_writes_are_accepted() {
        let hash = "ab".repeat(32);
        let good = format!("originals/ab/{hash}");
        assert_eq!(
            original_file(Path::new("/data"), &good),
            Some(Path::new("/data").join(&good))
        );
        for bad in [
            "/etc/shadow".to_string(),
            format!("originals/ab/../../{hash}"),
            "originals/ab/../../../etc/passwd".into(),
            format!("originals/cd/{hash}"),
            format!("tls/ab/{hash}"),
            "originals/ab/short".into(),
            String::new(),
        ] {
            assert_eq!(original_file(Path::new("/data"), &bad), None, "{bad}");
        }
    }
}
