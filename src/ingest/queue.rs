//! The server's upload queue and the background threads that work it: the
//! ingest thread (one file at a time: extraction outside the library lock,
//! indexing inside it, progress written to the `uploads` table) and the
//! retry loop that indexes documents left waiting for the vector store.
//! The web layer only receives files and calls [`UploadQueue::submit`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::{Actor, Entry};
use crate::config::Config;
use crate::index::vector::VectorError;
use crate::library::{Library, LibraryError, Outcome};
use crate::store::uploads::{self, UploadState};
use crate::store::{Store, StoreError};

/// Uploads accepted but not yet processed; more are refused.
pub const QUEUE_CAPACITY: usize = 256;

/// Documents re-processed per retry tick (for their collection's policy).
const RESCREEN_BATCH: usize = 20;

/// How often stored-but-unindexed documents are retried.
const RETRY_EVERY: Duration = Duration::from_secs(10);

/// Shown while a stored document waits for the vector store; the retry loop
/// finishes the upload when it is back.
pub const WAITING_DETAIL: &str =
    "stored; the vector store is unreachable, indexing resumes automatically when it is back";

/// One accepted file waiting for the ingest thread.
pub struct UploadJob {
    pub upload_id: i64,
    pub staged: PathBuf,
    pub collection: String,
    pub file_name: String,
    /// The name with any identifier in it masked: what logs and audit rows say.
    pub shown_name: String,
    pub actor: Actor,
}

/// What the ingest threads need, and nothing of the web layer.
#[derive(Clone)]
pub struct IngestContext {
    pub config: Config,
    pub library: Arc<Mutex<Library>>,
    pub db: Arc<Mutex<Store>>,
}

/// The queue was full: the job was not taken.
#[derive(Debug, thiserror::Error)]
#[error("the upload queue is full ({QUEUE_CAPACITY} files waiting)")]
pub struct QueueFull;

/// The sending side of the queue, with a count of files not yet finished.
pub struct UploadQueue {
    sender: SyncSender<UploadJob>,
    waiting: Arc<AtomicUsize>,
}

impl UploadQueue {
    /// Start the ingest thread and the retry loop.
    pub fn start(ctx: IngestContext) -> std::io::Result<UploadQueue> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        let waiting = Arc::new(AtomicUsize::new(0));
        let (for_thread, count) = (ctx.clone(), waiting.clone());
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || run_ingest(&for_thread, receiver, &count))?;
        std::thread::Builder::new()
            .name("index-retry".into())
            .spawn(move || {
                // Documents whose re-processing failed are not retried
                // every tick (a restart, or `enclave pii reprocess`, does).
                let mut failed = Vec::new();
                loop {
                    retry_stranded(&ctx, &mut failed);
                    std::thread::sleep(RETRY_EVERY);
                }
            })?;
        Ok(UploadQueue { sender, waiting })
    }

    /// Queue a file for the ingest thread.
    pub fn submit(&self, job: UploadJob) -> Result<(), QueueFull> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(QueueFull)
            }
        }
    }

    /// Files accepted and not yet finished.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// Documents screened under another policy than their collection's (a
/// policy change the server did not finish, an upgrade), a batch at a time
/// so uploads are not held up long.
fn rescreen_waiting(library: &mut Library, failed: &mut Vec<i64>) {
    let which = super::rescreen::Selection {
        limit: RESCREEN_BATCH,
        skip: failed,
        ..Default::default()
    };
    match super::rescreen::rescreen(library, which, &Actor::system(), &|_, _, _| {}) {
        Ok(s) if s.unchanged + s.rewritten + s.removed > 0 || !s.failed.is_empty() => {
            failed.extend(s.failed.iter().map(|(id, _)| *id));
            tracing::info!(
                unchanged = s.unchanged,
                rewritten = s.rewritten,
                removed = s.removed,
                failed = s.failed.len(),
                "re-processed documents for their collection's identifier policy"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not re-process documents"),
    }
}

/// One file at a time, in the order received.
fn run_ingest(ctx: &IngestContext, jobs: Receiver<UploadJob>, waiting: &AtomicUsize) {
    for job in jobs {
        process(ctx, &job);
        let _ = std::fs::remove_file(&job.staged);
        waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Record an upload's progress (logged, not fatal, if the database refuses).
fn set_state(
    ctx: &IngestContext,
    job: &UploadJob,
    state: UploadState,
    detail: &str,
    doc: Option<i64>,
) {
    if let Ok(db) = ctx.db.lock()
        && let Err(e) = db.autocommit(|c| uploads::update(c, job.upload_id, state, detail, doc))
    {
        tracing::error!(error = %e, "could not record upload progress");
    }
}

fn process(ctx: &IngestContext, job: &UploadJob) {
    let started = std::time::Instant::now();
    let counted = |outcome: &str| {
        let m = crate::metrics::get();
        m.ingest_documents
            .get_or_create(&crate::metrics::OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        m.ingest_seconds.observe(started.elapsed().as_secs_f64());
    };
    set_state(ctx, job, UploadState::Extracting, "", None);
    let progress = |doing: &str| set_state(ctx, job, UploadState::Extracting, doing, None);
    let prepared = match super::prepare_file(&ctx.config, &job.staged, &progress) {
        Ok(p) => p,
        Err(rejection) => {
            counted("rejected");
            return reject(ctx, job, &rejection.to_string());
        }
    };
    set_state(ctx, job, UploadState::Indexing, "", None);
    let outcome = match ctx.library.lock() {
        Ok(mut lib) => match add_and_index(&mut lib, prepared, job) {
            Ok(Indexing::Waiting(document_id)) => {
                // Recorded before the library is released, so the retry loop
                // (which takes the library first) cannot index the document and
                // look for this upload before it names its document.
                return set_state(ctx, job, UploadState::Indexing, WAITING_DETAIL, document_id);
            }
            other => other,
        },
        Err(_) => {
            return set_state(ctx, job, UploadState::Failed, "library unavailable", None);
        }
    };
    match outcome {
        Ok(Indexing::Done(Outcome::Indexed {
            document_id,
            pages,
            chunks,
            warnings,
        })) => {
            counted("indexed");
            let m = crate::metrics::get();
            m.ingest_pages.inc_by(pages as u64);
            m.ingest_chunks.inc_by(chunks as u64);
            let mut detail = format!("{pages} pages, {chunks} passages");
            if !warnings.is_empty() {
                detail.push_str(&format!("; warnings: {}", warnings.join("; ")));
            }
            set_state(ctx, job, UploadState::Done, &detail, Some(document_id));
        }
        Ok(Indexing::Done(Outcome::Duplicate { document_id })) => {
            counted("duplicate");
            set_state(
                ctx,
                job,
                UploadState::Duplicate,
                &format!(
                    "already in collection {} as document {document_id}",
                    job.collection
                ),
                Some(document_id),
            )
        }
        Ok(Indexing::Done(Outcome::Rejected { reason })) => {
            counted("rejected");
            set_state(ctx, job, UploadState::Rejected, &reason, None)
        }
        Ok(Indexing::Waiting(_)) => {} // recorded above, under the library lock
        Err(e) => {
            counted("failed");
            tracing::error!(error = %e, file = job.shown_name, "ingest failed");
            set_state(
                ctx,
                job,
                UploadState::Failed,
                "indexing failed (see the server log)",
                None,
            );
        }
    }
}

/// How adding a file ended.
enum Indexing {
    Done(Outcome),
    /// Stored (status `indexing`, invisible) while the vector store is
    /// unreachable; the retry loop indexes it and finishes the upload.
    Waiting(Option<i64>),
}

fn add_and_index(
    lib: &mut Library,
    prepared: super::Prepared,
    job: &UploadJob,
) -> Result<Indexing, LibraryError> {
    let outcome = super::add_prepared(lib, prepared, &job.collection, &job.file_name, &job.actor)?;
    match lib.flush() {
        Ok(()) => Ok(Indexing::Done(outcome)),
        Err(LibraryError::Vector(VectorError::Unavailable(why))) => {
            tracing::warn!(%why, file = job.shown_name, "stored; indexing waits for the vector store");
            let document_id = match outcome {
                Outcome::Indexed { document_id, .. } => Some(document_id),
                _ => None,
            };
            Ok(Indexing::Waiting(document_id))
        }
        Err(e) => Err(e),
    }
}

/// A file the extractor refused: the upload's state and its audit row, in
/// one transaction.
fn reject(ctx: &IngestContext, job: &UploadJob, reason: &str) {
    let Ok(mut db) = ctx.db.lock() else {
        return;
    };
    let entry = Entry::new(
        &job.actor,
        "document.reject",
        format!("collection:{}", job.collection),
    )
    .outcome("rejected")
    .detail(
        serde_json::json!({ "file": job.shown_name, "reason": reason, "upload": job.upload_id }),
    );
    let recorded = db.transact(|tx| -> Result<_, StoreError> {
        uploads::update(tx, job.upload_id, UploadState::Rejected, reason, None)?;
        Ok(((), Some(entry)))
    });
    if let Err(e) = recorded {
        tracing::error!(error = %e, "could not record a rejected upload");
    }
}

/// Index documents left `indexing` (the vector store was unreachable when
/// they were uploaded, or a crash), then finish their uploads.
fn retry_stranded(ctx: &IngestContext, failed: &mut Vec<i64>) {
    let indexed = match ctx.library.lock() {
        Ok(mut lib) => {
            let indexed = lib.index_stranded();
            rescreen_waiting(&mut lib, failed);
            match indexed {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::debug!(error = %e, "stranded documents not indexed yet");
                    return;
                }
            }
        }
        Err(_) => return,
    };
    if let Ok(db) = ctx.db.lock() {
        match db.autocommit(uploads::finish_waiting) {
            Ok(n) if n > 0 || !indexed.is_empty() => {
                tracing::info!(
                    documents = indexed.len(),
                    uploads = n,
                    "indexed stranded documents"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not finish waiting uploads"),
        }
    }
}
