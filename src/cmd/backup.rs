//! `enclave backup DEST` and `enclave restore SRC`.
//!
//! A backup is what cannot be rebuilt: a consistent snapshot of the SQLite
//! database (SQLite's online backup, so the server keeps running), the stored
//! originals that snapshot references and the TLS material, with a
//! `BACKUP.json` listing every file's SHA-256. The audit signing key stays
//! behind unless `--with-audit-key`: whoever holds a backup should not be
//! able to re-sign the log. A restore without it makes a new key and records
//! the change in the log, signed, right after the old key's last checkpoint
//! (the snapshot's head is signed for that). The BM25 and
//! vector indexes are derived data and are not copied; restore rebuilds them
//! from the restored chunks, so a backup taken mid-ingest restores to a
//! consistent library (documents that were still `indexing` are indexed).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, Entry};
use crate::cli::{BackupArgs, RestoreArgs};
use crate::config::Config;
use crate::store::Store;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub enclave_version: String,
    pub created_at: String,
    pub documents: i64,
    pub chunks: i64,
    pub audit_rows: i64,
    /// Relative path → SHA-256 of every file in the backup but this one.
    pub files: std::collections::BTreeMap<String, String>,
    /// Originals the snapshot referenced that were gone by the time they were
    /// copied (deleted meanwhile).
    pub missing_originals: Vec<String>,
}

const DB: &str = "enclave.sqlite";

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

fn empty_or_new(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!("{} exists and is not empty", dir.display());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

fn copy_into(src_root: &Path, dest_root: &Path, rel: &str) -> Result<()> {
    let (from, to) = (src_root.join(rel), dest_root.join(rel));
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}

pub fn backup(config: &Config, args: BackupArgs) -> Result<ExitCode> {
    let data = &config.data_dir;
    let dest = &args.dest;
    let db_path = data.join(DB);
    if !db_path.is_file() {
        bail!("no database at {} (nothing to back up)", db_path.display());
    }
    empty_or_new(dest)?;
    let mut live = Store::open(&db_path)?;
    live.set_audit(crate::library::audit_sink(config)?);
    // Recorded first, so the backup holds its own record.
    live.record(
        Entry::new(&Actor::cli(), "backup", format!("{}", dest.display()))
            .detail(serde_json::json!({ "dest": dest.display().to_string() })),
    )?;
    live.sign_audit_head()?;
    eprintln!("Copying the database (online backup)…");
    let snapshot = live.snapshot_to(&dest.join(DB))?;
    let stored = &snapshot.stored_paths;
    let (documents, chunks, audit_rows) =
        (snapshot.documents, snapshot.chunks, snapshot.audit_rows);
    eprintln!("Copying {} stored originals…", stored.len());
    let mut missing_originals = Vec::new();
    for rel in stored {
        if crate::library::original_file(data, rel).is_none() {
            bail!("refusing a stored path that is not an original's: {rel}");
        }
        if data.join(rel).is_file() {
            copy_into(data, dest, rel)?;
        } else {
            missing_originals.push(rel.clone());
        }
    }
    let mut extra = Vec::new();
    if args.with_audit_key {
        extra.push(crate::audit::key::FILE_NAME.to_string());
    }
    for name in ["tls/self-signed.crt", "tls/self-signed.key"] {
        if data.join(name).is_file() {
            extra.push(name.to_string());
        }
    }
    for rel in &extra {
        copy_into(data, dest, rel)?;
    }
    let mut files = std::collections::BTreeMap::new();
    for rel in std::iter::once(DB.to_string())
        .chain(
            stored
                .iter()
                .filter(|r| !missing_originals.contains(r))
                .cloned(),
        )
        .chain(extra)
    {
        files.insert(rel.clone(), sha256_file(&dest.join(&rel))?);
    }
    let manifest = Manifest {
        format: 1,
        enclave_version: env!("CARGO_PKG_VERSION").into(),
        created_at: crate::time::now_utc(),
        documents,
        chunks,
        audit_rows,
        files,
        missing_originals,
    };
    std::fs::write(
        dest.join("BACKUP.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!(
        "Backed up {documents} documents, {chunks} passages, {audit_rows} audit rows and {} originals to {}.",
        stored.len() - manifest.missing_originals.len(),
        dest.display()
    );
    if !manifest.missing_originals.is_empty() {
        println!(
            "{} originals were deleted while the backup ran; their documents will be restored without them.",
            manifest.missing_originals.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A backup without the audit key: create one and record, signed, that it
/// takes over from the key of the log's last checkpoint. Returns (previous,
/// new) public keys when that happened.
fn new_audit_key_if_left_out(
    config: &Config,
    manifest: &Manifest,
) -> Result<Option<(String, String)>> {
    if manifest.files.contains_key(crate::audit::key::FILE_NAME) {
        return Ok(None); // restored with the backup (`--with-audit-key`)
    }
    // The data dir's own key (made at install), or a new one.
    let mut store = Store::open(&config.data_dir.join(DB))?;
    store.set_audit(crate::library::audit_sink(config)?);
    let reason = format!(
        "restore of a backup created at {} without its audit key",
        manifest.created_at
    );
    let previous = store.record_key_change(&Actor::cli(), &reason)?;
    let key = store
        .audit_sink()
        .map(|s| s.key.public_hex())
        .unwrap_or_default();
    Ok(previous.map(|p| (p, key)))
}

/// `dir` exists with nothing in it but `allowed`, or does not exist yet.
fn empty_but_for(dir: &Path, allowed: &str) -> Result<()> {
    if dir.exists() {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            if entry?.file_name() != allowed {
                bail!("{} exists and is not empty", dir.display());
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

/// With pinned keys configured, the restored log must verify against them
/// before this machine's key takes it over: a backup whose log was
/// rewritten and re-signed with another key is refused, not adopted.
fn check_against_pins(config: &Config, pins: &[String]) -> Result<()> {
    if pins.is_empty() {
        eprintln!(
            "No pinned audit keys (audit.public_key_file): the backup's signing key is taken as it is."
        );
        return Ok(());
    }
    let store = Store::open(&config.data_dir.join(DB))?;
    let report = store.verify_audit(crate::audit::verify::Rules {
        pinned_keys: pins.to_vec(),
        head_key: None,
        checkpoint_every: Some(config.audit.checkpoint_every),
        allow_open_tail: false,
        witness: None,
    })?;
    match report.failure {
        None => Ok(()),
        Some(f) => bail!(
            "the backup's audit log does not verify against the pinned keys in {} (row {}: {}); \
             nothing was restored. If the backup comes from another machine, add that machine's \
             public key (its /etc/enclave/audit.pub) to this file first",
            config.audit.public_key_file.display(),
            f.row,
            f.reason
        ),
    }
}

pub fn restore(config: &Config, args: RestoreArgs) -> Result<ExitCode> {
    let src = &args.src;
    let text = std::fs::read_to_string(src.join("BACKUP.json")).with_context(|| {
        format!(
            "{} is not an Enclave backup (no BACKUP.json)",
            src.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text).context("reading BACKUP.json")?;
    eprintln!("Checking {} files…", manifest.files.len());
    for (rel, sha) in &manifest.files {
        if rel.contains("..") || rel.starts_with('/') {
            bail!("BACKUP.json names a path outside the backup: {rel}");
        }
        let actual = sha256_file(&src.join(rel))?;
        if actual != *sha {
            bail!("{rel} does not match its checksum in BACKUP.json: the backup is damaged");
        }
    }
    let data = &config.data_dir;
    let own_key = data.join(crate::audit::key::FILE_NAME);
    if manifest.files.contains_key(crate::audit::key::FILE_NAME) && own_key.exists() {
        bail!(
            "{} already has an audit key (made at install), and the backup holds one too; \
             restore into an empty data dir, or take the backup without --with-audit-key",
            data.display()
        );
    }
    // A data dir holding only the key the package made at install counts
    // as empty: that key is this machine's, and takes over the log.
    empty_but_for(data, crate::audit::key::FILE_NAME)
        .context("restore needs an empty or new data dir")?;
    for rel in manifest.files.keys() {
        copy_into(src, data, rel)?;
    }
    let pins = crate::audit::key::pinned(&config.audit.public_key_file)?;
    if let Err(e) = check_against_pins(config, &pins) {
        for rel in manifest.files.keys() {
            let _ = std::fs::remove_file(data.join(rel));
        }
        let _ = std::fs::remove_dir_all(data.join("originals"));
        return Err(e);
    }
    let key_change = new_audit_key_if_left_out(config, &manifest)?;
    eprintln!(
        "Rebuilding the BM25 and vector indexes from {} passages…",
        manifest.chunks
    );
    let library = crate::library::Library::reindex(config)?;
    let (docs, chunks) = library.store().counts()?;
    drop(library);
    let mut store = Store::open(&data.join(DB))?;
    store.set_audit(crate::library::audit_sink(config)?);
    store.record(
        Entry::new(&Actor::cli(), "restore", src.display().to_string()).detail(serde_json::json!({
            "backup_created_at": manifest.created_at,
            "documents": docs,
            "chunks": chunks,
        })),
    )?;
    store.sign_audit_head()?;
    // Against the pinned keys and the key now in use (a key change this
    // restore made is accepted; the operator is told to pin the new key).
    let now = store.audit_sink().map(|s| s.key.public_hex());
    let mut keys = pins.clone();
    if !keys.is_empty() {
        keys.extend(now.clone());
    }
    let report = store.verify_audit(crate::audit::verify::Rules {
        pinned_keys: keys,
        head_key: now,
        checkpoint_every: Some(config.audit.checkpoint_every),
        allow_open_tail: false,
        witness: None,
    })?;
    println!(
        "Restored {docs} searchable documents ({chunks} passages) into {}; audit log: {}.",
        data.display(),
        match &report.failure {
            None => format!("{} rows verified", report.rows),
            Some(f) => format!("FAILED at row {}: {}", f.row, f.reason),
        }
    );
    if let Some((previous, key)) = key_change {
        println!(
            "The backup held no audit key: a new key signs the log from here on, recorded in it \
             as a key change from {previous}.\nNew audit public key: {key}\nAdd it to the keys \
             auditors verify against, e.g. `enclave audit key >> /etc/enclave/audit.pub` (as root)."
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
