//! `enclave ingest PATH…`: files and folders into the library, with a
//! progress bar and one line (or JSON object) per file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::IngestArgs;
use crate::config::Config;
use crate::ingest;
use crate::library::{Library, Outcome};

/// Every regular file under `paths`, in a stable order. Symlinked folders are
/// not followed (no loops); hidden files and folders are skipped.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut out, 0)?;
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 64 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), out, depth + 1)?;
        } else if kind.is_file() || kind.is_symlink() && entry.path().is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

pub fn ingest(config: &Config, args: IngestArgs) -> Result<ExitCode> {
    let files = collect_files(&args.paths)?;
    let collection = args
        .collection
        .unwrap_or_else(|| config.ingest.default_collection.clone());
    let mut library = Library::open(config)?;
    let bar = progress_bar(files.len() as u64, args.json);
    let (mut indexed, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    let mut chunks = 0usize;
    for file in &files {
        bar.set_message(ingest::sanitise_name(file));
        let outcome = match ingest::add_file(&mut library, file, &collection) {
            Ok(o) => o,
            Err(e) => Outcome::Rejected {
                reason: format!("internal error: {e}"),
            },
        };
        match &outcome {
            Outcome::Indexed { chunks: c, .. } => {
                indexed += 1;
                chunks += c;
            }
            Outcome::Duplicate { .. } => duplicates += 1,
            Outcome::Rejected { .. } => rejected += 1,
        }
        let line = if args.json {
            serde_json::json!({ "path": file.display().to_string(), "result": outcome }).to_string()
        } else {
            describe(file, &outcome)
        };
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    }
    bar.set_message("committing indexes");
    library.flush()?;
    bar.finish_and_clear();
    let summary = format!(
        "{} files: {indexed} indexed ({chunks} chunks), {duplicates} duplicates skipped, {rejected} rejected",
        files.len()
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "summary": { "files": files.len(), "indexed": indexed, "chunks": chunks, "duplicates": duplicates, "rejected": rejected } })
        );
    } else {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} eta {eta} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

pub fn describe(file: &Path, outcome: &Outcome) -> String {
    let name = file
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect::<String>();
    match outcome {
        Outcome::Indexed {
            document_id,
            pages,
            chunks,
            warnings,
        } => {
            let warn = if warnings.is_empty() {
                String::new()
            } else {
                format!(" [{}]", warnings.join("; "))
            };
            format!(
                "indexed   {name}: document {document_id}, {pages} pages, {chunks} chunks{warn}"
            )
        }
        Outcome::Duplicate { document_id } => {
            format!("duplicate {name}: same content as document {document_id}")
        }
        Outcome::Rejected { reason } => format!("rejected  {name}: {reason}"),
    }
}
