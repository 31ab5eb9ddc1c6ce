//! The tamper-evident audit log.
//!
//! Every row carries the SHA-256 of its own fields and of the previous row's
//! hash, so editing, deleting, inserting or reordering a row breaks the chain
//! at that row. After every `audit.checkpoint_every` rows (and at every export)
//! the head of the chain is signed with an Ed25519 key kept in the data dir,
//! so a rewritten chain (all hashes recomputed) or a truncated one no longer
//! matches a signature. Rows are appended inside the caller's transaction, so
//! an action and its audit row commit together or not at all.

pub mod export;
pub mod key;
pub mod verify;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use key::AuditKey;

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something from where; every audit row names one.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub address: String,
}

impl Actor {
    /// The command line, as the operating-system user running it.
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            // SAFETY: getuid has no preconditions and cannot fail.
            .unwrap_or_else(|_| format!("uid-{}", unsafe { libc::getuid() }));
        Actor {
            name: format!("cli:{user}"),
            address: "local".into(),
        }
    }

    pub fn system() -> Actor {
        Actor {
            name: "system".into(),
            address: "local".into(),
        }
    }
}

/// One event about to be recorded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    pub address: String,
    pub action: &'static str,
    pub target: String,
    pub outcome: &'static str,
    pub document_ids: Vec<i64>,
    pub chunk_ids: Vec<i64>,
    pub detail: serde_json::Value,
}

impl Entry {
    pub fn new(actor: &Actor, action: &'static str, target: impl Into<String>) -> Entry {
        Entry {
            actor: actor.name.clone(),
            address: actor.address.clone(),
            action,
            target: target.into(),
            outcome: "ok",
            document_ids: Vec::new(),
            chunk_ids: Vec::new(),
            detail: serde_json::Value::Null,
        }
    }

    pub fn outcome(mut self, outcome: &'static str) -> Entry {
        self.outcome = outcome;
        self
    }

    pub fn documents(mut self, ids: impl IntoIterator<Item = i64>) -> Entry {
        self.document_ids = ids.into_iter().collect();
        self
    }

    pub fn chunks(mut self, ids: impl IntoIterator<Item = i64>) -> Entry {
        self.chunk_ids = ids.into_iter().collect();
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Entry {
        self.detail = detail;
        self
    }
}

/// A stored row, every field as text exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub address: String,
    pub document_ids: String,
    pub chunk_ids: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Row {
    /// The hash this row should carry: SHA-256 over a length-prefixed encoding
    /// of every field (so no two field lists encode alike) and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let id = self.id.to_string();
        for field in [
            id.as_str(),
            &self.at,
            &self.actor,
            &self.action,
            &self.target,
            &self.outcome,
            &self.address,
            &self.document_ids,
            &self.chunk_ids,
            &self.detail,
            &self.prev_hash,
        ] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub upto_id: i64,
    pub head_hash: String,
    pub signed_at: String,
    pub public_key: String,
    pub signature: String,
}

impl Checkpoint {
    pub fn message(upto_id: i64, head_hash: &str, signed_at: &str) -> String {
        format!("enclave-audit-checkpoint\n{upto_id}\n{head_hash}\n{signed_at}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("audit key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("audit export: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit file: {0}")]
    Format(String),
}

pub type Result<T> = std::result::Result<T, AuditError>;

fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Append `entry` in the caller's transaction (which should be IMMEDIATE, so
/// the head read here cannot be raced), signing a checkpoint when one is due.
pub fn append(conn: &Connection, key: &AuditKey, every: u64, entry: &Entry) -> Result<i64> {
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (last_id, prev_hash) = head.unwrap_or((0, GENESIS.to_string()));
    let detail = if entry.detail.is_null() {
        String::new()
    } else {
        entry.detail.to_string()
    };
    let mut row = Row {
        id: last_id + 1,
        at: crate::time::now_utc(),
        actor: entry.actor.clone(),
        action: entry.action.to_string(),
        target: entry.target.clone(),
        outcome: entry.outcome.to_string(),
        address: entry.address.clone(),
        document_ids: join_ids(&entry.document_ids),
        chunk_ids: join_ids(&entry.chunk_ids),
        detail,
        prev_hash,
        hash: String::new(),
    };
    row.hash = row.compute_hash();
    conn.execute(
        "INSERT INTO audit_log (id, at, actor, action, target, outcome, address,
             document_ids, chunk_ids, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            row.id,
            row.at,
            row.actor,
            row.action,
            row.target,
            row.outcome,
            row.address,
            row.document_ids,
            row.chunk_ids,
            row.detail,
            row.prev_hash,
            row.hash
        ],
    )?;
    if (row.id as u64).is_multiple_of(every) {
        write_checkpoint(conn, key, row.id, &row.hash)?;
    }
    Ok(row.id)
}

/// Append in a transaction of its own (for events with no other write).
pub fn append_now(conn: &mut Connection, key: &AuditKey, every: u64, entry: &Entry) -> Result<i64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let id = append(&tx, key, every, entry)?;
    tx.commit()?;
    Ok(id)
}

fn write_checkpoint(
    conn: &Connection,
    key: &AuditKey,
    upto_id: i64,
    head_hash: &str,
) -> Result<()> {
    let signed_at = crate::time::now_utc();
    let signature = key.sign(&Checkpoint::message(upto_id, head_hash, &signed_at));
    conn.execute(
        "INSERT INTO audit_checkpoints (upto_id, head_hash, signed_at, public_key, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![upto_id, head_hash, signed_at, key.public_hex(), signature],
    )?;
    Ok(())
}

/// Sign the current head if rows were added since the last checkpoint.
pub fn checkpoint_head(conn: &mut Connection, key: &AuditKey) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let head: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let signed: i64 = tx.query_row(
        "SELECT coalesce(max(upto_id), 0) FROM audit_checkpoints",
        [],
        |r| r.get(0),
    )?;
    if let Some((id, hash)) = head
        && id > signed
    {
        write_checkpoint(&tx, key, id, &hash)?;
    }
    tx.commit()?;
    Ok(())
}

/// Remove rows older than `retention_days`, up to the newest signed
/// checkpoint among them, which stays as the anchor the remaining chain is
/// verified from. Records the pruning itself. Returns the rows removed.
pub fn prune(
    conn: &mut Connection,
    key: &AuditKey,
    every: u64,
    retention_days: u64,
) -> Result<u64> {
    let cutoff = crate::time::days_ago_utc(retention_days);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let anchor: Option<i64> = tx
        .query_row(
            "SELECT c.upto_id FROM audit_checkpoints c JOIN audit_log a ON a.id = c.upto_id
             WHERE a.at < ?1 AND c.upto_id < (SELECT max(id) FROM audit_log)
             ORDER BY c.upto_id DESC LIMIT 1",
            [&cutoff],
            |r| r.get(0),
        )
        .optional()?;
    let Some(anchor) = anchor else {
        return Ok(0);
    };
    let removed = tx.execute("DELETE FROM audit_log WHERE id <= ?1", [anchor])?;
    // Keep one checkpoint for the anchor row; older ones cover nothing now.
    tx.execute(
        "DELETE FROM audit_checkpoints WHERE upto_id < ?1
            OR (upto_id = ?1 AND id <> (SELECT min(id) FROM audit_checkpoints WHERE upto_id = ?1))",
        [anchor],
    )?;
    let entry =
        Entry::new(&Actor::system(), "audit.prune", "audit_log").detail(serde_json::json!({
            "rows_removed": removed,
            "through_row": anchor,
            "older_than": cutoff,
        }));
    append(&tx, key, every, &entry)?;
    tx.commit()?;
    Ok(removed as u64)
}

/// Which rows to show (the auditor pages' filters).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    /// A document id.
    #[serde(default)]
    pub document: String,
    /// ISO-8601 UTC bounds, inclusive (a date alone is fine: "2026-11-21").
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    /// Show rows with ids below this (paging backwards).
    #[serde(default)]
    pub before: Option<i64>,
}

const ROW_SELECT: &str = "SELECT id, at, actor, action, target, outcome, address, document_ids,
     chunk_ids, detail, prev_hash, hash FROM audit_log";

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        outcome: r.get(5)?,
        address: r.get(6)?,
        document_ids: r.get(7)?,
        chunk_ids: r.get(8)?,
        detail: r.get(9)?,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

/// Newest first, at most `limit` rows matching `filter`.
pub fn search(conn: &Connection, filter: &Filter, limit: usize) -> Result<Vec<Row>> {
    let to = if filter.to.len() == 10 {
        format!("{}T99", filter.to) // a bare date includes that whole day
    } else {
        filter.to.clone()
    };
    let mut stmt = conn.prepare(&format!(
        "{ROW_SELECT} WHERE (?1 = '' OR actor = ?1) AND (?2 = '' OR action = ?2)
           AND (?3 = '' OR ',' || document_ids || ',' LIKE '%,' || ?3 || ',%')
           AND (?4 = '' OR at >= ?4) AND (?5 = '' OR at <= ?5)
           AND (?6 IS NULL OR id < ?6)
         ORDER BY id DESC LIMIT ?7"
    ))?;
    let rows = stmt
        .query_map(
            params![
                filter.actor,
                filter.action,
                filter.document.trim(),
                filter.from,
                to,
                filter.before,
                limit as i64
            ],
            row_from,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every row in chain order, handed to `each` one at a time (exports and
/// verification stream; the log can be large).
pub fn for_each_row(conn: &Connection, mut each: impl FnMut(Row) -> Result<()>) -> Result<()> {
    let mut stmt = conn.prepare(&format!("{ROW_SELECT} ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        each(row_from(r)?)?;
    }
    Ok(())
}

pub fn checkpoints(conn: &Connection) -> Result<Vec<Checkpoint>> {
    let mut stmt = conn.prepare(
        "SELECT upto_id, head_hash, signed_at, public_key, signature
         FROM audit_checkpoints ORDER BY upto_id, id",
    )?;
    let cps = stmt
        .query_map([], |r| {
            Ok(Checkpoint {
                upto_id: r.get(0)?,
                head_hash: r.get(1)?,
                signed_at: r.get(2)?,
                public_key: r.get(3)?,
                signature: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cps)
}

/// Distinct action names present, for the filter menu.
pub fn actions(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT action FROM audit_log ORDER BY action")?;
    let v = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}
