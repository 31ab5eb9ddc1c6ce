//! The audit tables: rows appended inside the caller's transaction (so an
//! action and its record commit together), signed checkpoints, retention,
//! the auditor's search, and the reads that exports and verification stream.
//! What a row is, how it is hashed and signed, and how a chain is verified
//! are `crate::audit`'s.

use std::io::Write;

use rusqlite::{Connection, OptionalExtension, params};

use super::Db;

use crate::audit::export::Format;
use crate::audit::verify::{Report, Rules};
use crate::audit::{Actor, AuditKey, Checkpoint, Entry, Filter, GENESIS, LogSource, Result, Row};

fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Append `entry` in the caller's transaction (which should be IMMEDIATE, so
/// the head read here cannot be raced), signing a checkpoint when one is due.
/// Returns the row's id and the checkpoint signed after it, if one was due.
pub fn append(
    conn: &Connection,
    key: &AuditKey,
    every: u64,
    entry: &Entry,
) -> Result<(i64, Option<Checkpoint>)> {
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
    crate::metrics::get().audit_rows.inc();
    let checkpoint = if (row.id as u64).is_multiple_of(every) {
        Some(write_checkpoint(conn, key, row.id, &row.hash)?)
    } else {
        None
    };
    Ok((row.id, checkpoint))
}

/// Append in a transaction of its own (for events with no other write).
pub fn append_now(conn: &mut Connection, key: &AuditKey, every: u64, entry: &Entry) -> Result<i64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (id, _) = append(&tx, key, every, entry)?;
    tx.commit()?;
    Ok(id)
}

fn write_checkpoint(
    conn: &Connection,
    key: &AuditKey,
    upto_id: i64,
    head_hash: &str,
) -> Result<Checkpoint> {
    let signed_at = crate::time::now_utc();
    let signature = key.sign(&Checkpoint::message(upto_id, head_hash, &signed_at));
    let cp = Checkpoint {
        upto_id,
        head_hash: head_hash.to_string(),
        signed_at,
        public_key: key.public_hex(),
        signature,
    };
    conn.execute(
        "INSERT INTO audit_checkpoints (upto_id, head_hash, signed_at, public_key, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            cp.upto_id,
            cp.head_hash,
            cp.signed_at,
            cp.public_key,
            cp.signature
        ],
    )?;
    Ok(cp)
}

/// Sign the current head if rows were added since the last checkpoint;
/// the checkpoint, if one was written.
pub fn checkpoint_head(conn: &mut Connection, key: &AuditKey) -> Result<Option<Checkpoint>> {
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
    let written = match head {
        Some((id, hash)) if id > signed => Some(write_checkpoint(&tx, key, id, &hash)?),
        _ => None,
    };
    tx.commit()?;
    Ok(written)
}

/// Remove rows older than `retention_days`, up to the newest signed
/// checkpoint among them, which stays as the anchor the remaining chain is
/// verified from. Records the pruning itself. Returns the rows removed and
/// the checkpoint the record brought, if one was due.
pub fn prune(
    conn: &mut Connection,
    key: &AuditKey,
    every: u64,
    retention_days: u64,
) -> Result<(u64, Option<Checkpoint>)> {
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
        return Ok((0, None));
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
    // The record is signed at once: until it is, the shortened log has
    // nothing but the anchor to show that its start was cut on purpose.
    let (id, signed) = append(&tx, key, every, &entry)?;
    let signed = match signed {
        Some(cp) => cp,
        None => {
            let hash: String =
                tx.query_row("SELECT hash FROM audit_log WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            write_checkpoint(&tx, key, id, &hash)?
        }
    };
    tx.commit()?;
    Ok((removed as u64, Some(signed)))
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
pub fn search(db: &Db<'_>, filter: &Filter, limit: usize) -> Result<Vec<Row>> {
    let conn = db.0;
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
pub fn actions(db: &Db<'_>) -> Result<Vec<String>> {
    let conn = db.0;
    let mut stmt = conn.prepare("SELECT DISTINCT action FROM audit_log ORDER BY action")?;
    let v = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

/// Write the whole log to `out` (see [`crate::audit::export`]): the head is
/// signed first, so the export ends on a checkpoint, and everything is read
/// in one transaction, so rows appended meanwhile are not half included.
/// Returns the row count.
pub fn export(
    conn: &mut Connection,
    key: &AuditKey,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64> {
    checkpoint_head(conn, key)?;
    let tx = conn.transaction()?;
    let rows = crate::audit::export::write(&Log(&tx), key, format, out)?;
    drop(tx);
    Ok(rows)
}

/// [`export`] of the database at `path` through a read-only connection of
/// its own, in one read transaction: the server's connection, and every
/// request waiting for it, is not held while a large log is written out.
/// Sign the head first ([`super::Store::sign_audit_head`]) so the export
/// ends on a checkpoint.
pub fn export_file(
    path: &std::path::Path,
    key: &AuditKey,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let tx = conn.transaction()?;
    crate::audit::export::write(&Log(&tx), key, format, out)
}

/// Verify the live log: rows in id order, each checkpoint after its row.
pub fn verify(conn: &Connection, rules: Rules) -> Result<Report> {
    crate::audit::verify::verify_log(&Log(conn), rules)
}

/// The log as exports and verification read it.
struct Log<'a>(&'a Connection);

impl LogSource for Log<'_> {
    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        checkpoints(self.0)
    }

    fn for_each_row(&self, each: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        for_each_row(self.0, each)
    }
}

/// The `detail` of the newest row of `action`, if any.
pub fn last_detail(db: &Db<'_>, action: &str) -> Result<Option<String>> {
    let conn = db.0;
    Ok(conn
        .query_row(
            "SELECT detail FROM audit_log WHERE action = ?1 ORDER BY id DESC LIMIT 1",
            [action],
            |r| r.get(0),
        )
        .optional()?)
}

impl super::Store {
    /// Sign the head of the log if rows were added since the last checkpoint
    /// (at shutdown, before a backup). No-op when this store does not audit.
    pub fn sign_audit_head(&mut self) -> Result<()> {
        if let Some(sink) = self.audit.clone()
            && let Some(cp) = checkpoint_head(&mut self.conn, &sink.key)?
        {
            sink.witness(&[cp]);
        }
        Ok(())
    }

    /// Apply the retention period (see [`prune`]); returns the rows removed.
    pub fn prune_audit(&mut self, retention_days: u64) -> Result<u64> {
        match self.audit.clone() {
            Some(sink) => {
                let (removed, signed) = prune(
                    &mut self.conn,
                    &sink.key,
                    sink.checkpoint_every,
                    retention_days,
                )?;
                sink.witness(signed.as_slice());
                Ok(removed)
            }
            None => Ok(0),
        }
    }

    /// [`export`] of this store's log.
    pub fn export_audit(
        &mut self,
        key: &AuditKey,
        format: Format,
        out: &mut dyn Write,
    ) -> Result<u64> {
        // Sign (and witness) the head first; the export then ends on it.
        self.sign_audit_head()?;
        export(&mut self.conn, key, format, out)
    }

    /// After a restore without the old key: record that this store's key
    /// signs the log from here on, naming the key that signed it so far,
    /// and sign the record. Nothing when the log is already this key's (or
    /// has no signature yet). Returns the previous key when it changed.
    pub fn record_key_change(&mut self, actor: &Actor, reason: &str) -> Result<Option<String>> {
        let Some(sink) = self.audit.clone() else {
            return Ok(None);
        };
        let last: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT upto_id, public_key FROM audit_checkpoints ORDER BY upto_id DESC, id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let key = sink.key.public_hex();
        let Some((after_row, previous)) = last.filter(|(_, k)| *k != key) else {
            return Ok(None);
        };
        let entry = Entry::new(actor, crate::audit::key::KEY_CHANGE, "audit-key").detail(
            serde_json::json!({
                "previous_key": previous,
                "key": key,
                "after_row": after_row,
                "reason": reason,
            }),
        );
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (_, signed) = append(&tx, &sink.key, sink.checkpoint_every, &entry)?;
        tx.commit()?;
        sink.witness(signed.as_slice());
        self.sign_audit_head()?;
        Ok(Some(previous))
    }

    /// [`verify`] of this store's log.
    pub fn verify_audit(&self, rules: Rules) -> Result<Report> {
        verify(&self.conn, rules)
    }
}
