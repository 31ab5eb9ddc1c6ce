//! The SQLite store: the source of truth, and the only module that runs SQL.
//! One file per table family: `documents` (documents, pages, chunks,
//! collections), `jobs`, `uploads`, `accounts` (users, groups, grants),
//! `sessions` (sessions, login failures), `conversations` (chat history,
//! feedback), `audit` (the hash-chained log and its checkpoints), `tokens`
//! (API tokens), `usage` (per-answer metrics, no text) and `backup` (an
//! online snapshot).
//!
//! Opened in WAL mode with `synchronous=FULL`, so a committed transaction
//! survives power loss. Schema changes are versioned SQL files in
//! `migrations/`, applied in order and recorded in `PRAGMA user_version`.

pub mod accounts;
pub mod audit;
mod backup;
pub mod conversations;
mod documents;
mod jobs;
pub mod pii;
pub mod sessions;
pub mod tokens;
pub mod uploads;
pub mod usage;

pub use backup::Snapshot;
pub use documents::{
    ChunkView, DocStatus, Document, IndexableChunk, NewChunk, NewDocument, NewPage, PassageLocation,
};
pub use jobs::{JobKind, JobState};

use std::path::Path;

use rusqlite::Connection;

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
        include_str!("../../migrations/0001_documents_chunks_jobs.sql"),
    ),
    (
        "0002_accounts_chat_audit",
        include_str!("../../migrations/0002_accounts_chat_audit.sql"),
    ),
    (
        "0003_one_time_passwords",
        include_str!("../../migrations/0003_one_time_passwords.sql"),
    ),
    (
        "0004_degraded_answers",
        include_str!("../../migrations/0004_degraded_answers.sql"),
    ),
    (
        "0005_verified_answers",
        include_str!("../../migrations/0005_verified_answers.sql"),
    ),
    (
        "0006_api_tokens_usage",
        include_str!("../../migrations/0006_api_tokens_usage.sql"),
    ),
    (
        "0007_ocr_pages",
        include_str!("../../migrations/0007_ocr_pages.sql"),
    ),
    (
        "0008_sensitive_identifiers",
        include_str!("../../migrations/0008_sensitive_identifiers.sql"),
    ),
];

/// The database as code outside this module sees it, inside
/// [`Store::transact`] or [`Store::autocommit`]: a handle it can only pass to
/// the table families' functions. Its connection is private to `store`, so
/// only the store can run SQL (the compiler enforces it).
pub struct Db<'a>(&'a Connection);

pub struct Store {
    conn: Connection,
    audit: Option<AuditSink>,
    /// The sensitive-identifier policy collections are created with.
    default_pii_policy: crate::config::PiiPolicy,
}

/// Where audit rows for this store's actions go: the key that signs
/// checkpoints and how often.
#[derive(Clone)]
pub struct AuditSink {
    pub key: std::sync::Arc<crate::audit::AuditKey>,
    pub checkpoint_every: u64,
    /// Where checkpoints are also written once committed.
    pub witness: Option<crate::audit::witness::Witness>,
}

impl AuditSink {
    /// Witness checkpoints a committed transaction wrote. A witness that
    /// cannot be written is an operator's problem, not the action's (it
    /// committed): logged loudly, and `verify --witness` will name the gap.
    fn witness(&self, checkpoints: &[crate::audit::Checkpoint]) {
        if let Some(w) = &self.witness {
            for cp in checkpoints {
                if let Err(e) = w.record(cp) {
                    tracing::error!(error = %e, row = cp.upto_id, "could not witness an audit checkpoint");
                }
            }
        }
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Erased text must not linger in free pages of the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let mut store = Store {
            conn,
            audit: None,
            default_pii_policy: crate::config::PiiPolicy::default(),
        };
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

    /// Run `f` outside any transaction (each statement commits on its own):
    /// reads, and single-statement writes, through the table families'
    /// functions.
    pub fn autocommit<T>(&self, f: impl FnOnce(&Db<'_>) -> T) -> T {
        f(&Db(&self.conn))
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
        f: impl FnOnce(&Db<'_>) -> std::result::Result<(T, Option<crate::audit::Entry>), E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| E::from(StoreError::from(e)))?;
        let (value, entry) = f(&Db(&tx))?;
        let signed = audit_in(self.audit.as_ref(), &tx, entry.as_ref()).map_err(E::from)?;
        tx.commit().map_err(|e| E::from(StoreError::from(e)))?;
        self.witness(signed);
        Ok(value)
    }

    /// Witness a checkpoint a committed transaction signed (see [`AuditSink`]).
    fn witness(&self, signed: Option<crate::audit::Checkpoint>) {
        if let (Some(sink), Some(cp)) = (&self.audit, signed) {
            sink.witness(&[cp]);
        }
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
}

/// A process that wrote audit rows signs (and witnesses) the head when it
/// lets go of the database: after a clean stop, no row is left unsigned, so
/// `enclave audit verify --db` can treat an unsigned tail as tampering.
impl Drop for Store {
    fn drop(&mut self) {
        if self.audit.is_some()
            && let Err(e) = self.sign_audit_head()
        {
            tracing::error!(error = %e, "could not sign the audit log's head on close");
        }
    }
}

/// Append `entry` to the audit log inside `tx`, if auditing is on; the
/// checkpoint it signed, if one was due.
#[must_use = "a signed checkpoint is witnessed once the transaction commits"]
fn audit_in(
    sink: Option<&AuditSink>,
    tx: &Connection,
    entry: Option<&crate::audit::Entry>,
) -> Result<Option<crate::audit::Checkpoint>> {
    match (sink, entry) {
        (Some(sink), Some(entry)) => {
            Ok(audit::append(tx, &sink.key, sink.checkpoint_every, entry)?.1)
        }
        _ => Ok(None),
    }
}
