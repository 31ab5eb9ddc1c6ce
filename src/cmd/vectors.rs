//! `enclave vectors`: where the dense vectors live, and moving them.
//!
//! `migrate --to qdrant|embedded` copies every point (vector and payload) from
//! the configured backend to the other in chunk-id order, recording the last
//! copied id in `<data_dir>/vectors-migrate.json` after each batch, so an
//! interrupted run resumes where it stopped (upserts are idempotent). It then
//! checks the counts and a sample of searches against the source, and only
//! then switches `[vector] backend` in the config file. `rebuild` recomputes
//! every vector from the SQLite chunks into the configured backend.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, Entry};
use crate::cli::{MigrateArgs, Target, VectorsCommand};
use crate::config::{Config, VectorBackend};
use crate::index::vector::{self, StoredPoint, VectorIndex, VectorPoint};
use crate::library::Library;
use crate::store::Store;

impl From<Target> for VectorBackend {
    fn from(t: Target) -> VectorBackend {
        match t {
            Target::Embedded => VectorBackend::Embedded,
            Target::Qdrant => VectorBackend::Qdrant,
        }
    }
}

/// Progress of a migration, so a rerun resumes it.
#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    to: VectorBackend,
    /// Highest chunk id copied (points are copied in id order).
    after: Option<i64>,
    copied: usize,
}

const PROGRESS_FILE: &str = "vectors-migrate.json";

pub fn run(config: &Config, config_file: Option<&Path>, cmd: VectorsCommand) -> Result<ExitCode> {
    match cmd {
        VectorsCommand::Status => status(config),
        VectorsCommand::Migrate(args) => migrate(config, config_file, &args),
        VectorsCommand::Rebuild => {
            let library = Library::reindex(config)?;
            let (docs, chunks) = library.store().counts()?;
            let (_, vectors) = library.index_counts()?;
            println!(
                "Rebuilt {vectors} vectors for {chunks} chunks of {docs} documents in the {} backend.",
                backend_name(config.vector.backend)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn backend_name(b: VectorBackend) -> &'static str {
    match b {
        VectorBackend::Embedded => "embedded",
        VectorBackend::Qdrant => "qdrant",
    }
}

fn status(config: &Config) -> Result<ExitCode> {
    let library = Library::open_without_recovery(config)?;
    let (_, chunks) = library.store().counts()?;
    println!("backend     {}", backend_name(config.vector.backend));
    match config.vector.backend {
        VectorBackend::Embedded => println!(
            "location    {}",
            config.data_dir.join(vector::EMBEDDED_DIR).display()
        ),
        VectorBackend::Qdrant => {
            println!("url         {}", config.vector.url);
            println!("collection  {}", config.vector.collection);
        }
    }
    println!("chunks      {chunks} (SQLite)");
    match library.index_counts() {
        Ok((_, vectors)) => {
            println!("vectors     {vectors}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("vectors     unavailable: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn migrate(config: &Config, config_file: Option<&Path>, args: &MigrateArgs) -> Result<ExitCode> {
    let to = VectorBackend::from(args.to);
    let from = config.vector.backend;
    if to == from {
        bail!(
            "the vectors are already in the {} backend",
            backend_name(to)
        );
    }
    if to == VectorBackend::Qdrant && config.vector.url.is_empty() {
        bail!("set [vector] url (the Qdrant gRPC address) in the config file first");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    // Opening the library takes the data-dir lock: no server or ingest runs meanwhile.
    let library = Library::open(config)?;
    let dim = library.embedder().dim();
    let progress_path = config.data_dir.join(PROGRESS_FILE);
    let mut progress = match read_progress(&progress_path)? {
        Some(p) if p.to == to => {
            eprintln!(
                "Resuming: {} points already copied (up to chunk {}).",
                p.copied,
                p.after.unwrap_or(0)
            );
            p
        }
        _ => {
            clear_target(config, to)?;
            Progress {
                to,
                after: None,
                copied: 0,
            }
        }
    };
    let source = library.vectors();
    let target = vector::open_backend(config, to, dim)?;
    let total = source.count()?;
    eprintln!(
        "Copying {total} vectors from {} to {}…",
        backend_name(from),
        backend_name(to)
    );
    // Tests simulate a crash mid-copy with this (the process aborts, as if killed).
    let abort_after: Option<usize> = std::env::var("ENCLAVE_MIGRATE_ABORT_AFTER_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut batches = 0usize;
    loop {
        let batch = source.scroll(progress.after, args.batch)?;
        let Some(last) = batch.last() else { break };
        let last = last.chunk_id;
        target.upsert(&as_points(&batch))?;
        target.commit()?;
        progress.after = Some(last);
        let before = progress.copied;
        progress.copied += batch.len();
        write_progress(&progress_path, &progress)?;
        report_progress(before, progress.copied, total);
        batches += 1;
        if abort_after == Some(batches) {
            std::process::abort();
        }
    }
    eprintln!();
    target.optimize()?;
    let verified = verify(source, target.as_ref(), args.samples)?;
    println!("{verified}");
    std::fs::remove_file(&progress_path).ok();
    drop(target);
    drop(library);
    let mut store = Store::open(&config.data_dir.join("enclave.sqlite"))?;
    store.set_audit(crate::library::audit_sink(config)?);
    store.record(
        Entry::new(
            &Actor::cli(),
            "vectors.migrate",
            format!("backend:{}", backend_name(to)),
        )
        .detail(serde_json::json!({
            "from": backend_name(from),
            "to": backend_name(to),
            "points": total,
            "url": config.vector.url,
        })),
    )?;
    if args.no_switch {
        println!(
            "Copied and verified; the config still says backend = \"{}\" (--no-switch).",
            backend_name(from)
        );
        return Ok(ExitCode::SUCCESS);
    }
    switch_config(config_file, to)
}

/// A counter rewritten in place on a terminal; a line per tenth in a log.
fn report_progress(before: usize, copied: usize, total: usize) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprint!("\r  {copied} / {total}");
    } else if total > 0 && copied * 10 / total > before * 10 / total {
        eprintln!("  {copied} / {total}");
    }
}

/// A fresh copy starts from an empty target.
fn clear_target(config: &Config, to: VectorBackend) -> Result<()> {
    match to {
        VectorBackend::Embedded => {
            let dir = config.data_dir.join(vector::EMBEDDED_DIR);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).with_context(|| format!("clearing {}", dir.display())),
            }
        }
        VectorBackend::Qdrant => {
            crate::index::qdrant::QdrantVectorIndex::open(&config.vector, 0)?.drop_collection()?;
            Ok(())
        }
    }
}

fn as_points(batch: &[StoredPoint]) -> Vec<VectorPoint<'_>> {
    batch
        .iter()
        .map(|p| VectorPoint {
            chunk_id: p.chunk_id,
            document_id: p.document_id,
            collection: &p.collection,
            vector: &p.vector,
        })
        .collect()
}

/// Counts must match; searches with stored vectors as queries (spread over
/// the id range) must return the same top 10 from both.
fn verify(source: &dyn VectorIndex, target: &dyn VectorIndex, samples: usize) -> Result<String> {
    let (a, b) = (source.count()?, target.count()?);
    if a != b {
        bail!("verification failed: the source holds {a} vectors, the target {b}");
    }
    let queries = sample_points(source, a, samples)?;
    let mut same = 0;
    let mut overlap = 0usize;
    let mut compared = 0usize;
    for q in &queries {
        let s: Vec<i64> = source
            .search(&q.vector, None, 10)?
            .iter()
            .map(|h| h.chunk_id)
            .collect();
        let t: Vec<i64> = target
            .search(&q.vector, None, 10)?
            .iter()
            .map(|h| h.chunk_id)
            .collect();
        if s == t {
            same += 1;
        }
        overlap += s.iter().filter(|id| t.contains(id)).count();
        compared += s.len();
        if s.first() != t.first() {
            bail!(
                "verification failed: for the vector of chunk {}, the source's best match is {:?} and the target's {:?}",
                q.chunk_id,
                s.first(),
                t.first()
            );
        }
    }
    let mean_overlap = if compared == 0 {
        1.0
    } else {
        overlap as f64 / compared as f64
    };
    if mean_overlap < 0.95 {
        bail!("verification failed: top-10 overlap between source and target is {mean_overlap:.3}");
    }
    Ok(format!(
        "Verified: {b} vectors in both; {} sample searches, {same} with identical top 10, mean top-10 overlap {mean_overlap:.3}.",
        queries.len()
    ))
}

fn sample_points(
    index: &dyn VectorIndex,
    total: usize,
    samples: usize,
) -> Result<Vec<StoredPoint>> {
    let mut out = Vec::new();
    if total == 0 || samples == 0 {
        return Ok(out);
    }
    let stride = (total / samples).max(1);
    let mut after = None;
    while out.len() < samples {
        let page = index.scroll(after, stride)?;
        let Some(first) = page.first() else { break };
        out.push(first.clone());
        after = page.last().map(|p| p.chunk_id);
    }
    Ok(out)
}

fn read_progress(path: &Path) -> Result<Option<Progress>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written to a temporary file and renamed, so a kill never leaves half a file.
fn write_progress(path: &Path, progress: &Progress) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(progress)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Set `[vector] backend` in the config file, keeping everything else as written.
fn switch_config(config_file: Option<&Path>, to: VectorBackend) -> Result<ExitCode> {
    let line = format!("backend = \"{}\"", backend_name(to));
    let Some(path) = config_file else {
        println!(
            "No config file in use: add this to enclave.toml before starting the server:\n[vector]\n{line}"
        );
        return Ok(ExitCode::SUCCESS);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let updated = set_backend(&text, &line);
    match std::fs::write(path, updated) {
        Ok(()) => {
            println!(
                "Switched: {} now says [vector] {line}. Start the server.",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!(
                "Copied and verified, but {} is not writable ({e}): set [vector] {line} there, then start the server.",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Replace `backend = …` in the `[vector]` table, or add it (and the table).
fn set_backend(text: &str, line: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_vector = false;
    let mut done = false;
    for l in text.lines() {
        let trimmed = l.trim_start();
        if trimmed.starts_with('[') {
            if in_vector && !done {
                out.push(line.to_string());
                done = true;
            }
            in_vector = trimmed.starts_with("[vector]");
            out.push(l.to_string());
            continue;
        }
        if in_vector && !done && is_backend_key(trimmed) {
            out.push(line.to_string());
            done = true;
            continue;
        }
        out.push(l.to_string());
    }
    if in_vector && !done {
        out.push(line.to_string());
        done = true;
    }
    if !done {
        out.push(String::new());
        out.push("[vector]".into());
        out.push(line.to_string());
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn is_backend_key(line: &str) -> bool {
    line.strip_prefix("backend")
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_backend_replaces_adds_and_appends() {
        let with = "data_dir = \"d\"\n[vector]\n# where\nbackend = \"embedded\"\nurl = \"http://q:6334\"\n[log]\njson = false\n";
        let out = set_backend(with, "backend = \"qdrant\"");
        assert!(
            out.contains("[vector]\n# where\nbackend = \"qdrant\"\nurl"),
            "{out}"
        );
        assert!(!out.contains("embedded"));
        let without_key = "[vector]\nurl = \"http://q:6334\"\n[log]\njson = false\n";
        let out = set_backend(without_key, "backend = \"qdrant\"");
        assert!(
            out.contains("url = \"http://q:6334\"\nbackend = \"qdrant\"\n[log]"),
            "{out}"
        );
        let no_table = "data_dir = \"d\"\n";
        let out = set_backend(no_table, "backend = \"qdrant\"");
        assert!(out.ends_with("[vector]\nbackend = \"qdrant\"\n"), "{out}");
        // A key merely starting with "backend" elsewhere is left alone.
        let other = "[web]\nbackend_x = 1\n[vector]\nbackends = 2\n";
        let out = set_backend(other, "backend = \"qdrant\"");
        assert!(
            out.contains("backend_x = 1") && out.contains("backends = 2\nbackend = \"qdrant\""),
            "{out}"
        );
    }
}
