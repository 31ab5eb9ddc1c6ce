//! Checking a chain: row by row, stopping at the first row where it breaks.
//! The same checker serves the live database and exported files.

use serde::Serialize;

use super::key::{KEY_CHANGE, verify_signature};
use super::{Checkpoint, GENESIS, Row};

/// Where and why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The first row at which the log is not what was written.
    pub row: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub rows: u64,
    pub checkpoints: u64,
    pub head_id: i64,
    pub head_hash: String,
    /// Rows after the last signed checkpoint (chained, not yet signed).
    pub unsigned_tail: u64,
    pub public_key: Option<String>,
    /// Rows up to this id were removed by retention (0: none).
    pub pruned_through: i64,
    /// Witnessed checkpoints the log matched (None: no witness given).
    pub witnessed: Option<u64>,
    /// Where a new key took over signing (a restore without the old key).
    pub key_changes: Vec<KeyChange>,
    pub failure: Option<Failure>,
}

/// A signed `audit.key_change` row: from it on, `key` signs the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    pub row: i64,
    pub at: String,
    pub previous_key: String,
    pub key: String,
    pub reason: String,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// What a log must satisfy beyond an intact chain.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The keys the operator accepted, pinned outside the data dir: every
    /// signature, and both keys of every key change, must be one of them
    /// (a key-change row is only a chained row: anyone who can write the
    /// database can write one, so it cannot vouch for a key by itself).
    /// Empty: whichever key the first signature names, and the key changes
    /// the log records.
    pub pinned_keys: Vec<String>,
    /// Without pinned keys: the key that must sign the head (the data dir's
    /// own). Earlier keys are then accepted through the log's key changes,
    /// which the report lists for a person to check: only a pin (or the
    /// witness) tells a forged change from a restore.
    pub head_key: Option<String>,
    /// The writer signs the head at least every this many rows
    /// (`audit.checkpoint_every`): a longer stretch without a checkpoint means
    /// checkpoints were deleted, and so may rows after them have been.
    pub checkpoint_every: Option<u64>,
    /// Accept rows after the last checkpoint (the server is running, or
    /// stopped without signing). Otherwise an unsigned tail fails: a clean
    /// stop signs the head, so rows after the last signature may have been
    /// appended or truncated by someone without the key.
    pub allow_open_tail: bool,
    /// The checkpoints an external witness recorded (`audit::witness`):
    /// every one must match the log, and none may lie beyond its end.
    pub witness: Option<Vec<Checkpoint>>,
}

/// Feed rows and checkpoints in log order; read the report at the end.
pub struct Verifier {
    report: Report,
    /// The keys signatures may come from (see [`Rules::pinned_keys`]).
    pinned: Vec<String>,
    head_key: Option<String>,
    /// The key signatures must be made with now: the first one seen, then
    /// each key-change record's new key.
    active_key: Option<String>,
    checkpoint_every: Option<u64>,
    allow_open_tail: bool,
    prev_hash: String,
    /// The last checkpoint that matched: rows after it are unsigned.
    signed_upto: i64,
    /// Rows recording a retention prune: (row id, pruned through row).
    prunes: Vec<(i64, i64)>,
    /// Witnessed checkpoints by the row they cover.
    witness: std::collections::BTreeMap<i64, Vec<Checkpoint>>,
}

impl Verifier {
    pub fn new(rules: Rules) -> Verifier {
        Verifier {
            report: Report {
                head_hash: GENESIS.to_string(),
                ..Report::default()
            },
            pinned: rules.pinned_keys,
            head_key: rules.head_key,
            active_key: None,
            checkpoint_every: rules.checkpoint_every,
            allow_open_tail: rules.allow_open_tail,
            prev_hash: GENESIS.to_string(),
            signed_upto: 0,
            prunes: Vec::new(),
            witness: rules.witness.iter().flatten().fold(
                Default::default(),
                |mut m: std::collections::BTreeMap<i64, Vec<Checkpoint>>, cp| {
                    m.entry(cp.upto_id).or_default().push(cp.clone());
                    m
                },
            ),
        }
        .witnessing(rules.witness.is_some())
    }

    fn witnessing(mut self, on: bool) -> Verifier {
        self.report.witnessed = on.then_some(0);
        self
    }

    pub fn failed(&self) -> bool {
        self.report.failure.is_some()
    }

    fn fail(&mut self, row: i64, reason: String) {
        if self.report.failure.is_none() {
            self.report.failure = Some(Failure { row, reason });
        }
    }

    pub fn row(&mut self, row: &Row) {
        if self.failed() {
            return;
        }
        let expected = self.report.head_id + 1;
        if row.id > expected {
            return self.fail(
                expected,
                format!(
                    "row {expected} is missing: the log goes from row {} to row {} (rows deleted)",
                    self.report.head_id, row.id
                ),
            );
        }
        if row.id < expected {
            return self.fail(
                row.id,
                format!(
                    "row {} is out of order: it comes after row {} (rows reordered or duplicated)",
                    row.id, self.report.head_id
                ),
            );
        }
        if row.compute_hash() != row.hash {
            return self.fail(
                row.id,
                format!(
                    "row {}: its contents do not match its hash (edited)",
                    row.id
                ),
            );
        }
        if row.prev_hash != self.prev_hash {
            return self.fail(
                row.id,
                format!(
                    "row {}: it does not link to row {} (that row was replaced or rewritten, or rows were reordered)",
                    row.id, self.report.head_id
                ),
            );
        }
        if let Some(every) = self.checkpoint_every
            && row.id - self.signed_upto > every as i64
        {
            let first = self.signed_upto + 1;
            return self.fail(
                first,
                format!(
                    "rows {first}–{} have no signed checkpoint, although one is written every {every} rows (checkpoints deleted)",
                    row.id
                ),
            );
        }
        if row.action == KEY_CHANGE {
            self.key_change(row);
        }
        self.check_witness(row);
        if self.failed() {
            return;
        }
        if row.action == "audit.prune"
            && let Some(through) = serde_json::from_str::<serde_json::Value>(&row.detail)
                .ok()
                .and_then(|d| d["through_row"].as_i64())
        {
            self.prunes.push((row.id, through));
        }
        self.prev_hash = row.hash.clone();
        self.report.head_id = row.id;
        self.report.head_hash = row.hash.clone();
        self.report.rows += 1;
    }

    /// A new key signs from this row on. The old key must have signed
    /// every row before it, so a key change cannot hide a cut: whoever
    /// writes one without the old key can only add rows after its last
    /// signature, and the record names both keys for the auditor to see.
    fn key_change(&mut self, row: &Row) {
        let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
        let (Some(previous), Some(key)) = (detail["previous_key"].as_str(), detail["key"].as_str())
        else {
            return self.fail(
                row.id,
                format!(
                    "row {}: a key change that does not name the previous and new keys",
                    row.id
                ),
            );
        };
        if self.signed_upto != row.id - 1 {
            return self.fail(
                row.id,
                format!(
                    "row {}: a key change that does not follow a checkpoint of the previous key (rows {}–{} were never signed by it)",
                    row.id,
                    self.signed_upto + 1,
                    row.id - 1
                ),
            );
        }
        if let Some(unpinned) = [previous, key].into_iter().find(|k| !self.is_pinned(k)) {
            return self.fail(
                row.id,
                format!(
                    "row {}: a key change involving key {unpinned}, which is not pinned (check it, then add it to the pinned keys: `enclave audit key >> FILE`)",
                    row.id
                ),
            );
        }
        if let Some(active) = &self.active_key
            && active != previous
        {
            return self.fail(
                row.id,
                format!(
                    "row {}: a key change from key {previous}, but the log was signed by {active}",
                    row.id
                ),
            );
        }
        self.active_key = Some(key.to_string());
        self.report.key_changes.push(KeyChange {
            row: row.id,
            at: row.at.clone(),
            previous_key: previous.to_string(),
            key: key.to_string(),
            reason: detail["reason"].as_str().unwrap_or_default().to_string(),
        });
    }

    /// What the witness recorded for `row`: the same head, signed by the
    /// key that signs the log there.
    fn check_witness(&mut self, row: &Row) {
        let Some(seen) = self.witness.get(&row.id).cloned() else {
            return;
        };
        for cp in &seen {
            if cp.head_hash != row.hash {
                return self.fail(
                    row.id,
                    format!(
                        "row {} is not what the witness recorded when it was signed at {} (rows rewritten and re-signed)",
                        row.id, cp.signed_at
                    ),
                );
            }
            let message = Checkpoint::message(cp.upto_id, &cp.head_hash, &cp.signed_at);
            if !self.signed_by_known_key(&cp.public_key, &message, &cp.signature) {
                return self.fail(
                    cp.upto_id,
                    format!(
                        "the witness's checkpoint for row {} signed at {} has an invalid signature",
                        cp.upto_id, cp.signed_at
                    ),
                );
            }
        }
        if let Some(n) = self.report.witnessed.as_mut() {
            *n += seen.len() as u64;
        }
    }

    fn is_pinned(&self, key: &str) -> bool {
        self.pinned.is_empty() || self.pinned.iter().any(|k| k == key)
    }

    pub fn checkpoint(&mut self, cp: &Checkpoint) {
        if self.failed() {
            return;
        }
        if !self.is_pinned(&cp.public_key) {
            return self.fail(
                cp.upto_id,
                format!(
                    "the checkpoint for row {} is signed by key {}, which is not pinned (re-signed with another key)",
                    cp.upto_id, cp.public_key
                ),
            );
        }
        if !self.signed_by_known_key(
            &cp.public_key,
            &Checkpoint::message(cp.upto_id, &cp.head_hash, &cp.signed_at),
            &cp.signature,
        ) {
            return self.fail(
                cp.upto_id,
                format!(
                    "the checkpoint for row {} signed at {} has an invalid signature (forged checkpoint)",
                    cp.upto_id, cp.signed_at
                ),
            );
        }
        if cp.upto_id > self.report.head_id && self.report.rows == 0 && self.signed_upto == 0 {
            // Retention pruned the rows up to here: this signed checkpoint is
            // the anchor the remaining chain continues from.
            self.report.head_id = cp.upto_id;
            self.report.head_hash = cp.head_hash.clone();
            self.prev_hash = cp.head_hash.clone();
            self.signed_upto = cp.upto_id;
            self.report.checkpoints += 1;
            self.report.pruned_through = cp.upto_id;
            return;
        }
        if cp.upto_id > self.report.head_id {
            let missing = self.report.head_id + 1;
            return self.fail(
                missing,
                format!(
                    "row {missing} is missing: a checkpoint signed at {} covers rows up to {} (rows deleted or the log truncated)",
                    cp.signed_at, cp.upto_id
                ),
            );
        }
        if cp.upto_id < self.report.head_id {
            // Checkpoints are only ever written for the head; one for an
            // earlier row here means checkpoints were moved.
            return self.fail(
                cp.upto_id,
                format!("the checkpoint for row {} is out of place", cp.upto_id),
            );
        }
        if cp.head_hash != self.report.head_hash {
            let first = self.signed_upto + 1;
            return self.fail(
                first,
                format!(
                    "rows {first}–{} differ from what was signed at {} (rows forged and the chain recomputed)",
                    cp.upto_id, cp.signed_at
                ),
            );
        }
        self.signed_upto = cp.upto_id;
        self.report.checkpoints += 1;
    }

    /// A signature over the end of an export: row count and head.
    pub fn end(&mut self, end: &ExportEnd) {
        if self.failed() {
            return;
        }
        if !self.signed_by_known_key(&end.public_key, &end.message(), &end.signature) {
            return self.fail(
                end.head_id,
                "the export's end line has an invalid signature".into(),
            );
        }
        if end.head_id != self.report.head_id || end.head_hash != self.report.head_hash {
            let missing = self.report.head_id + 1;
            return self.fail(
                missing,
                format!(
                    "row {missing} is missing: the export was signed with {} rows up to row {} (file truncated)",
                    end.rows, end.head_id
                ),
            );
        }
        self.signed_upto = end.head_id;
    }

    fn signed_by_known_key(&mut self, public_key: &str, message: &str, signature: &str) -> bool {
        match &self.active_key {
            Some(k) if k != public_key => return false,
            Some(_) => {}
            None => self.active_key = Some(public_key.to_string()),
        }
        verify_signature(public_key, message, signature)
    }

    pub fn finish(mut self) -> Report {
        let witnessed: Vec<Checkpoint> = self.witness.values().flatten().cloned().collect();
        if !self.failed()
            && let Some(cp) = witnessed
                .iter()
                .rev()
                .find(|cp| cp.upto_id > self.report.head_id)
        {
            let missing = self.report.head_id + 1;
            self.fail(
                missing,
                format!(
                    "row {missing} is missing: the witness recorded a checkpoint for row {} signed at {}, the log ends at row {} (truncated)",
                    cp.upto_id, cp.signed_at, self.report.head_id
                ),
            );
        }
        if !self.failed() && self.report.pruned_through > 0 && self.report.rows == 0 {
            let missing = self.report.pruned_through + 1;
            self.fail(
                missing,
                format!(
                    "row {missing} is missing: nothing follows the retention anchor (rows deleted)"
                ),
            );
        }
        let pruned = self.report.pruned_through;
        if !self.failed()
            && pruned > 0
            && !self
                .prunes
                .iter()
                .any(|&(row, through)| through == pruned && row <= self.signed_upto)
        {
            self.fail(
                1,
                format!(
                    "the log starts after row {pruned}, and no signed retention record says rows up to {pruned} were pruned (rows deleted from the start)"
                ),
            );
        }
        if !self.failed()
            && let Some(active) = self.active_key.clone()
            && !self.is_pinned(&active)
        {
            let since = self
                .report
                .key_changes
                .last()
                .map_or(self.report.pruned_through + 1, |c| c.row);
            self.fail(
                since,
                format!(
                    "the log is signed by key {active}, which is not pinned (re-signed with another key; after a restore onto a new machine, add the new key: `enclave audit key >> FILE`)"
                ),
            );
        }
        if !self.failed()
            && self.pinned.is_empty()
            && let (Some(head), Some(active)) = (self.head_key.clone(), self.active_key.clone())
            && head != active
        {
            self.fail(
                self.report.head_id,
                format!("the log is signed by key {active}, not by this data dir's key {head}"),
            );
        }
        // A key change counts only once its new key has signed it: one in
        // the unsigned tail is refused even when an open tail is accepted.
        if !self.failed()
            && let Some(change) = self
                .report
                .key_changes
                .iter()
                .find(|c| c.row > self.signed_upto)
                .cloned()
        {
            self.fail(
                change.row,
                format!(
                    "row {}: a key change that its new key has not signed",
                    change.row
                ),
            );
        }
        self.report.public_key = self
            .active_key
            .clone()
            .or_else(|| self.pinned.last().cloned());
        if !self.failed() {
            self.report.unsigned_tail = (self.report.head_id - self.signed_upto).max(0) as u64;
            if self.report.unsigned_tail > 0 && !self.allow_open_tail {
                let first = self.signed_upto + 1;
                self.fail(
                    first,
                    format!(
                        "rows {first}–{} come after the last signed checkpoint: appended or truncated without the key, or the server is running or did not stop cleanly (--allow-open-tail accepts this)",
                        self.report.head_id
                    ),
                );
            }
        }
        self.report
    }
}

/// The signed last line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ExportEnd {
    pub rows: u64,
    pub head_id: i64,
    pub head_hash: String,
    pub exported_at: String,
    pub public_key: String,
    pub signature: String,
}

impl ExportEnd {
    pub fn message(&self) -> String {
        format!(
            "enclave-audit-export\n{}\n{}\n{}\n{}",
            self.rows, self.head_id, self.head_hash, self.exported_at
        )
    }
}

/// Verify a log: rows in id order, each checkpoint after its row.
pub fn verify_log(log: &dyn super::LogSource, rules: Rules) -> super::Result<Report> {
    let checkpoints = log.checkpoints()?;
    let mut pending = checkpoints.iter().peekable();
    let mut v = Verifier::new(rules);
    log.for_each_row(&mut |row| {
        while let Some(cp) = pending.next_if(|cp| cp.upto_id < row.id) {
            v.checkpoint(cp);
        }
        v.row(&row);
        while let Some(cp) = pending.next_if(|cp| cp.upto_id == row.id) {
            v.checkpoint(cp);
        }
        Ok(())
    })?;
    for cp in pending {
        v.checkpoint(cp);
    }
    Ok(v.finish())
}
