//! The tamper-evident audit log.
//!
//! Every row carries the SHA-256 of its own fields and of the previous row's
//! hash, so editing, deleting, inserting or reordering a row breaks the chain
//! at that row. After every `audit.checkpoint_every` rows (and at every export)
//! the head of the chain is signed with an Ed25519 key kept in the data dir,
//! so a rewritten chain (all hashes recomputed) or a truncated one no longer
//! matches a signature. Rows are appended inside the caller's transaction, so
//! an action and its audit row commit together or not at all. The tables
//! are `store::audit`'s; this module holds what a row is, its hash, the
//! signing key, exports and verification.

pub mod export;
pub mod key;
pub mod verify;
pub mod witness;

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
    /// The command line, as the operating-system user running it: the
    /// account of the real uid (`$USER` is whatever the caller set), and
    /// who ran sudo when sudo says so (a note: the variable is the
    /// caller's to set too).
    pub fn cli() -> Actor {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let user = account_name(uid).unwrap_or_else(|| format!("uid-{uid}"));
        let name = match std::env::var("SUDO_USER") {
            Ok(by) if !by.is_empty() && by != user => format!("cli:{user} (sudo by {by})"),
            _ => format!("cli:{user}"),
        };
        Actor {
            name,
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

/// The login name of `uid`, from the password database.
fn account_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, buf's length is passed,
    // and on success pw_name points into buf, which outlives its use here.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside buf (see above).
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
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

#[cfg(test)]
mod actor_tests {
    #[test]
    fn the_command_line_actor_is_the_real_account_not_the_environment() {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let real = super::account_name(uid);
        assert!(real.is_some(), "uid {uid} has an account here");
        let actor = super::Actor::cli();
        assert!(
            actor.name.starts_with(&format!("cli:{}", real.unwrap())),
            "{}",
            actor.name
        );
    }
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

/// Where exports and verification read the log from, in chain order (the
/// store implements it over one read transaction).
pub trait LogSource {
    /// Every checkpoint, by the row it covers.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>>;
    /// Every row in chain order, handed to `each` one at a time (the log can
    /// be large).
    fn for_each_row(&self, each: &mut dyn FnMut(Row) -> Result<()>) -> Result<()>;
}
