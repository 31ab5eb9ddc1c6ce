//! The external witness: every signed checkpoint is also written where
//! whoever can write the database cannot rewrite it — the system journal
//! (through syslog, tag `enclave-audit`), or an append-only file owned by
//! someone else. A log cut back to an earlier checkpoint, or rewritten and
//! re-signed with a stolen key, then no longer matches what was witnessed.

use std::io::Write;
use std::path::PathBuf;

use super::{AuditError, Checkpoint, Result};

/// The syslog tag (journald's SYSLOG_IDENTIFIER) of witness lines.
pub const TAG: &str = "enclave-audit";

/// Where checkpoints are witnessed (`audit.witness`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witness {
    /// The system log, read back with `journalctl -t enclave-audit`.
    Syslog,
    /// A file, appended to.
    File(PathBuf),
}

impl Witness {
    /// `""`: none; `"syslog"` or `"journal"`: the system log; else a file path.
    pub fn from_setting(setting: &str) -> Option<Witness> {
        match setting.trim() {
            "" => None,
            "syslog" | "journal" => Some(Witness::Syslog),
            path => Some(Witness::File(PathBuf::from(path))),
        }
    }

    /// Witness one checkpoint (after the transaction that wrote it committed).
    pub fn record(&self, cp: &Checkpoint) -> Result<()> {
        let line = line(cp);
        match self {
            Witness::File(path) => {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                writeln!(f, "{line}")?;
                f.sync_data()?;
            }
            Witness::Syslog => syslog(&line),
        }
        Ok(())
    }

    /// Every checkpoint witnessed so far, oldest first.
    pub fn read(&self) -> Result<Vec<Checkpoint>> {
        let text = match self {
            Witness::File(path) => std::fs::read_to_string(path)
                .map_err(|e| AuditError::Format(format!("witness {}: {e}", path.display())))?,
            Witness::Syslog => {
                let out = std::process::Command::new("journalctl")
                    .args(["-t", TAG, "-o", "cat", "--no-pager", "-q"])
                    .output()
                    .map_err(|e| AuditError::Format(format!("cannot run journalctl: {e}")))?;
                if !out.status.success() {
                    return Err(AuditError::Format(format!(
                        "journalctl failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        text.lines()
            .filter(|l| l.contains(PREFIX))
            .map(parse)
            .collect()
    }
}

const PREFIX: &str = "enclave-audit-checkpoint";

/// One witness line: every field of the checkpoint, signature included.
pub fn line(cp: &Checkpoint) -> String {
    format!(
        "{PREFIX} upto={} head={} signed_at={} key={} signature={}",
        cp.upto_id, cp.head_hash, cp.signed_at, cp.public_key, cp.signature
    )
}

fn parse(line: &str) -> Result<Checkpoint> {
    let bad = || AuditError::Format(format!("unreadable witness line: {line:?}"));
    let rest = &line[line.find(PREFIX).ok_or_else(bad)? + PREFIX.len()..];
    let field = |name: &str| {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
            .ok_or_else(bad)
    };
    Ok(Checkpoint {
        upto_id: field("upto")?.parse().map_err(|_| bad())?,
        head_hash: field("head")?,
        signed_at: field("signed_at")?,
        public_key: field("key")?,
        signature: field("signature")?,
    })
}

fn syslog(line: &str) {
    let Ok(text) = std::ffi::CString::new(line) else {
        return;
    };
    // SAFETY: the tag is a 'static C string (openlog keeps the pointer);
    // the format is a literal "%s" with one matching C-string argument.
    unsafe {
        libc::openlog(c"enclave-audit".as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV);
        libc::syslog(libc::LOG_NOTICE, c"%s".as_ptr(), text.as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_settings_parse() {
        let cp = Checkpoint {
            upto_id: 32,
            head_hash: "ab".repeat(32),
            signed_at: "2026-11-30T17:00:00Z".into(),
            public_key: "cd".repeat(32),
            signature: "ef".repeat(64),
        };
        // As journalctl or a syslog file may print it, with a prefix.
        let text = format!("Nov 30 17:00:00 host enclave-audit[7]: {}", line(&cp));
        assert_eq!(parse(&text).unwrap(), cp);
        assert!(parse("enclave-audit-checkpoint upto=x").is_err());
        assert_eq!(Witness::from_setting(""), None);
        assert_eq!(Witness::from_setting("journal"), Some(Witness::Syslog));
        assert_eq!(
            Witness::from_setting("/var/log/w"),
            Some(Witness::File("/var/log/w".into()))
        );
    }
}
