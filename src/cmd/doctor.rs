//! `enclave doctor`: checks an installation and says what to fix. Each check
//! prints ok, warn or FAIL with one line of detail; the exit status is 1 if
//! any check failed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::config::Config;
use crate::store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
}

fn check(name: &'static str, level: Level, detail: impl Into<String>) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
    }
}

pub fn run(config: &Config, args: DoctorArgs) -> Result<ExitCode> {
    let checks = checks(config);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let tag = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{tag}  {:<18} {}", c.name, c.detail);
        }
    }
    Ok(if checks.iter().any(|c| c.level == Level::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn checks(config: &Config) -> Vec<Check> {
    let mut out = vec![check(
        "config",
        Level::Ok,
        "loaded and valid (enclave config prints it)",
    )];
    out.push(data_dir(&config.data_dir));
    out.push(models(config));
    out.push(generation(config));
    out.push(disk(&config.data_dir));
    out.push(tls(config));
    out.push(audit(config));
    out.push(indexes(config));
    out.push(outbound(config));
    out.push(interfaces(config));
    out.push(extractor(config));
    out.push(ocr(config));
    out
}

/// OCR: the Tesseract library, its model directory, the languages
/// installed there, and any configured language that is missing.
fn ocr(config: &Config) -> Check {
    use crate::extract::ocr::tesseract;
    let x = &config.extract;
    if !x.ocr {
        return check(
            "ocr",
            Level::Ok,
            "off ([extract] ocr = false): scanned pages and image files are rejected",
        );
    }
    let version = match tesseract::library_version() {
        Ok(v) => v,
        Err(why) => {
            return check(
                "ocr",
                Level::Warn,
                format!("unavailable, scanned pages and image files are rejected: {why}"),
            );
        }
    };
    let Some(dir) = tesseract::tessdata_dir(&x.ocr_data_dir) else {
        return check(
            "ocr",
            Level::Warn,
            format!(
                "Tesseract {version}, but no language models (Debian: apt install tesseract-ocr-eng)"
            ),
        );
    };
    let installed = tesseract::installed_languages(&dir);
    let missing: Vec<&String> = x
        .ocr_languages
        .iter()
        .filter(|l| !installed.contains(l))
        .collect();
    let summary = format!(
        "Tesseract {version}; languages installed in {}: {}; configured: {}",
        dir.display(),
        if installed.is_empty() {
            "none".to_string()
        } else {
            installed.join(", ")
        },
        x.ocr_languages.join("+")
    );
    if missing.is_empty() {
        check("ocr", Level::Ok, summary)
    } else {
        let names: Vec<String> = missing.iter().map(|l| l.to_string()).collect();
        let packages: Vec<String> = missing
            .iter()
            .map(|l| format!("tesseract-ocr-{l}"))
            .collect();
        check(
            "ocr",
            Level::Warn,
            format!(
                "{summary}; MISSING {} (OCR is unavailable until installed: apt install {})",
                names.join(", "),
                packages.join(" ")
            ),
        )
    }
}

/// The OpenAI-compatible API and the metrics listener: what is offered,
/// where, and whether the scrape token is kept private.
fn interfaces(config: &Config) -> Check {
    let api = if !config.api.enabled {
        "API off".to_string()
    } else if config.api.allow_plain_chat {
        "API /v1 on, with plain (unverified) chat allowed".to_string()
    } else {
        "API /v1 on (grounded answers, embeddings)".to_string()
    };
    let listen = config.metrics.listen.trim();
    if listen.is_empty() {
        return check("interfaces", Level::Ok, format!("{api}; metrics off"));
    }
    let token = crate::web::metrics_http::token_path(config);
    let mut level = Level::Ok;
    let mut notes = vec![format!("{api}; metrics on http://{listen}/metrics")];
    match std::fs::metadata(&token) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            level = Level::Warn;
            notes.push(format!(
                "scrape token {} has mode {:o}; chmod 600 it",
                token.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        Ok(_) => notes.push(format!("scrape token {}", token.display())),
        Err(_) => notes.push(format!(
            "scrape token {} (made at the first start)",
            token.display()
        )),
    }
    let loopback = listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if !loopback {
        level = Level::Warn;
        notes.push(
            "not a loopback address: scrapes cross the network in plain HTTP (the token is their only guard)"
                .into(),
        );
    }
    check("interfaces", level, notes.join("; "))
}

/// Whether the kernel confines the document parsers: a probe confined as
/// the extraction worker is tries to read the database and to connect to a
/// listener of ours.
fn extractor(config: &Config) -> Check {
    use crate::extract::confine::Confinement;
    let target = config.data_dir.join("enclave.sqlite");
    let probe = match crate::extract::worker::probe_isolation(&target) {
        Ok(p) => p,
        Err(e) => {
            return check(
                "extractor",
                Level::Warn,
                format!("cannot run the probe: {e}"),
            );
        }
    };
    let refused = probe.open.is_err() && probe.connect.is_err();
    match (probe.confinement, refused) {
        (Confinement::Full, true) => check(
            "extractor",
            Level::Ok,
            "document parsers run confined (Landlock): no file beyond their input, no network",
        ),
        (confinement, _) => check(
            "extractor",
            Level::Warn,
            format!(
                "document parsers are confined by rlimits only (Landlock: {confinement:?}; reading \
                 the database: {}, connecting: {}); a kernel of 6.7 or later with Landlock enabled \
                 confines them fully",
                if probe.open.is_ok() {
                    "allowed"
                } else {
                    "refused"
                },
                if probe.connect.is_ok() {
                    "allowed"
                } else {
                    "refused"
                },
            ),
        ),
    }
}

/// The one outbound connection Enclave may make: an external Qdrant.
fn outbound(config: &Config) -> Check {
    let Some(url) = config.vector.outbound() else {
        return check(
            "outbound",
            Level::Ok,
            format!(
                "no outbound address configured: the vector store is embedded; Enclave only listens on {}",
                config.web.listen
            ),
        );
    };
    let reach =
        crate::index::qdrant::QdrantVectorIndex::open(&config.vector, 0).and_then(|q| q.probe());
    match reach {
        Ok(version) => check(
            "outbound",
            Level::Ok,
            format!(
                "vector store {url} (Qdrant {version}, collection {}) is the only outbound address; allow it in the unit's IPAddressAllow",
                config.vector.collection
            ),
        ),
        Err(e) => check(
            "outbound",
            Level::Fail,
            format!("vector store {url} is the only outbound address, and it is unreachable: {e}"),
        ),
    }
}

fn data_dir(dir: &Path) -> Check {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => return check("data dir", Level::Fail, format!("{}: {e}", dir.display())),
    };
    let probe = dir.join(".doctor-write-test");
    if let Err(e) = std::fs::write(&probe, b"x") {
        return check(
            "data dir",
            Level::Fail,
            format!("{} is not writable: {e}", dir.display()),
        );
    }
    let _ = std::fs::remove_file(&probe);
    let mode = meta.permissions().mode() & 0o777;
    let (modes, problems) = file_modes(dir, mode);
    if problems.is_empty() {
        check(
            "data dir",
            Level::Ok,
            format!("{} writable; modes {}", dir.display(), modes.join(", ")),
        )
    } else {
        check("data dir", Level::Warn, problems.join("; "))
    }
}

/// The modes of what must stay private, and what is wrong with them: the
/// data dir and database closed to others, the audit key owner-read-only.
fn file_modes(dir: &Path, dir_mode: u32) -> (Vec<String>, Vec<String>) {
    let mut modes = vec![format!("dir {dir_mode:o}")];
    let mut problems = Vec::new();
    if dir_mode & 0o007 != 0 {
        problems.push(format!(
            "{} is accessible to all users (mode {dir_mode:o}); chmod o-rwx",
            dir.display()
        ));
    }
    let files = [
        ("enclave.sqlite", 0o077, "chmod 600"),
        (crate::audit::key::FILE_NAME, 0o277, "chmod 400"),
        ("tls/self-signed.key", 0o077, "chmod 600"),
    ];
    for (name, forbidden, fix) in files {
        let Ok(meta) = std::fs::metadata(dir.join(name)) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        modes.push(format!("{name} {mode:o}"));
        if mode & forbidden != 0 {
            problems.push(format!(
                "{} has mode {mode:o}; {fix}",
                dir.join(name).display()
            ));
        }
    }
    (modes, problems)
}

/// Per model tier: how many answers it generates at once and the KV cache
/// that takes (sized up front from the settings and the model's shape).
fn generation(config: &Config) -> Check {
    let options = crate::llm::WorkerOptions::from_config(&config.llm);
    let mut tiers = Vec::new();
    for path in config.llm_tier_paths() {
        let shape = match crate::llm::model::ModelConfig::read(&path) {
            Ok(s) => s,
            Err(e) => {
                return check(
                    "generation",
                    Level::Fail,
                    format!("{}: {e}", path.display()),
                );
            }
        };
        let plan = crate::llm::KvPlan::new(
            &options,
            shape.kv_bytes_per_position(),
            shape.window(config.llm.context_window),
        );
        tiers.push(format!(
            "{}: {} answers at once, KV cache {} MiB ({} positions of {} KiB)",
            crate::rag::respond::tier_name(&path),
            plan.parallel,
            plan.budget_mib,
            plan.budget_positions,
            plan.bytes_per_position / 1024
        ));
    }
    check("generation", Level::Ok, tiers.join("; "))
}

fn models(config: &Config) -> Check {
    match super::models::inventory(config) {
        Ok(inv) if inv.problems.is_empty() => check(
            "models",
            Level::Ok,
            format!(
                "{} files verified against MANIFEST.tsv in {}",
                inv.files.iter().filter(|f| f.status == "ok").count(),
                inv.models_dir.display()
            ),
        ),
        Ok(inv) => check("models", Level::Fail, inv.problems.join("; ")),
        Err(e) => check("models", Level::Fail, e.to_string()),
    }
}

fn disk(dir: &Path) -> Check {
    let (free, total) = crate::os::disk_space(dir);
    if total == 0 {
        return check("disk", Level::Warn, "cannot read free space");
    }
    let pct = free as f64 * 100.0 / total as f64;
    let text = format!("{} MiB free ({pct:.0}%)", free >> 20);
    if free < 1 << 30 {
        check("disk", Level::Fail, format!("{text}: under 1 GiB"))
    } else if pct < 10.0 {
        check("disk", Level::Warn, format!("{text}: under 10%"))
    } else {
        check("disk", Level::Ok, text)
    }
}

fn tls(config: &Config) -> Check {
    let configured = !config.web.tls_cert.as_os_str().is_empty();
    let (cert, key) = if configured {
        (config.web.tls_cert.clone(), config.web.tls_key.clone())
    } else {
        let dir = config.data_dir.join("tls");
        (dir.join("self-signed.crt"), dir.join("self-signed.key"))
    };
    if !configured && !cert.is_file() {
        return check(
            "tls",
            Level::Warn,
            "no certificate configured; a self-signed one is generated at first start (set web.tls_cert/web.tls_key)",
        );
    }
    match crate::web::tls::server_config(&cert, &key) {
        Ok(_) if configured => check(
            "tls",
            Level::Ok,
            format!("{} loads with its key", cert.display()),
        ),
        Ok(_) => check(
            "tls",
            Level::Warn,
            format!(
                "self-signed certificate {} in use; browsers will warn",
                cert.display()
            ),
        ),
        Err(e) => check("tls", Level::Fail, format!("{e:#}")),
    }
}

fn audit(config: &Config) -> Check {
    let db = config.data_dir.join("enclave.sqlite");
    if !db.is_file() {
        return check("audit log", Level::Warn, "no database yet");
    }
    let store = match store::Store::open(&db) {
        Ok(s) => s,
        Err(e) => return check("audit log", Level::Fail, e.to_string()),
    };
    // Only read the keys; doctor creates nothing.
    let own = crate::audit::AuditKey::load_existing(&config.data_dir)
        .ok()
        .flatten()
        .map(|k| k.public_hex());
    let pin_file = &config.audit.public_key_file;
    let pinned = match crate::audit::key::pinned(pin_file) {
        Ok(p) => p,
        Err(e) => return check("audit log", Level::Fail, e.to_string()),
    };
    let pin_ok = own.as_ref().is_some_and(|o| pinned.contains(o));
    let pin_note = if pin_ok {
        format!("public key pinned in {}", pin_file.display())
    } else if !pinned.is_empty() {
        format!(
            "{} does not pin the data dir's key (after a restore: `enclave audit key >> {}`)",
            pin_file.display(),
            pin_file.display()
        )
    } else if pin_file.as_os_str().is_empty() {
        "public key not pinned outside the data dir (audit.public_key_file)".into()
    } else {
        format!(
            "public key not pinned: {} does not exist (`enclave audit key > {}`)",
            pin_file.display(),
            pin_file.display()
        )
    };
    let witness = crate::audit::witness::Witness::from_setting(&config.audit.witness);
    // Reading the journal needs root or the systemd-journal group; without
    // it the log is still checked, and the witness named as unchecked.
    let (witnessed, unread) = match witness.as_ref().map(|w| w.read()) {
        Some(Ok(seen)) => (Some(seen), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    // The server may be running: its newest rows are not signed yet.
    let rules = crate::audit::verify::Rules {
        pinned_keys: pinned.clone(),
        head_key: own.clone(),
        checkpoint_every: Some(config.audit.checkpoint_every),
        allow_open_tail: true,
        witness: witnessed,
    };
    let key_file = config.data_dir.join(crate::audit::key::FILE_NAME);
    match store.verify_audit(rules) {
        Ok(r) if r.ok() => {
            let verified = format!(
                "{} rows, chain and {} checkpoints verified; key {}; {pin_note}",
                r.rows,
                r.checkpoints,
                key_file.display()
            );
            match (witness.is_some(), unread, r.witnessed) {
                _ if !pin_ok => check("audit log", Level::Warn, verified),
                (false, _, _) => check(
                    "audit log",
                    Level::Warn,
                    format!(
                        "{verified}; no witness (audit.witness): a log cut back to a checkpoint, \
                         or rewritten with the key, would not show"
                    ),
                ),
                (true, Some(e), _) => check(
                    "audit log",
                    Level::Warn,
                    format!(
                        "{verified}; cannot read the witness ({}): {e}; run \
                         `enclave audit verify --db --witness` as root",
                        config.audit.witness
                    ),
                ),
                (true, None, n) => check(
                    "audit log",
                    Level::Ok,
                    format!(
                        "{verified}; {} checkpoints match the witness ({})",
                        n.unwrap_or(0),
                        config.audit.witness
                    ),
                ),
            }
        }
        Ok(r) => {
            let f = r.failure.unwrap_or(crate::audit::verify::Failure {
                row: 0,
                reason: String::new(),
            });
            check(
                "audit log",
                Level::Fail,
                format!("row {}: {}", f.row, f.reason),
            )
        }
        Err(e) => check("audit log", Level::Fail, e.to_string()),
    }
}

/// SQLite against both indexes, per document. Needs the data-dir lock, so it
/// is skipped (with a warning) while a server runs.
fn indexes(config: &Config) -> Check {
    match crate::library::Library::open_without_recovery(config) {
        Ok(library) => match library.consistency() {
            Ok(docs) => {
                let bad: Vec<i64> = docs
                    .iter()
                    .filter(|d| !d.is_consistent())
                    .map(|d| d.document_id)
                    .collect();
                let (bm25, vectors) = library.index_counts().unwrap_or((0, 0));
                if bad.is_empty() {
                    check(
                        "indexes",
                        Level::Ok,
                        format!(
                            "{} documents consistent across SQLite, BM25 ({bm25} entries) and vectors ({vectors})",
                            docs.len()
                        ),
                    )
                } else {
                    check(
                        "indexes",
                        Level::Fail,
                        format!(
                            "documents {bad:?} differ between SQLite and the indexes; run enclave reindex"
                        ),
                    )
                }
            }
            Err(e) => check("indexes", Level::Fail, e.to_string()),
        },
        Err(crate::library::LibraryError::Locked(_)) => check(
            "indexes",
            Level::Warn,
            "the server holds the data dir: consistency not checked (stop it, or see the health page)",
        ),
        Err(e) => check("indexes", Level::Fail, e.to_string()),
    }
}
