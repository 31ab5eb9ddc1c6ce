//! `enclave pii scan PATH…`: sweep files for exposed identifiers without
//! ingesting anything. Files go through the same isolated extraction as an
//! upload (OCR included); each page is scanned; findings are printed masked
//! (never the identifier itself), per file, with a summary per type.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::cli::PiiScanArgs;
use crate::config::Config;
use crate::extract::worker;
use crate::pii::{self, Kind};

pub fn scan(config: &Config, args: PiiScanArgs) -> Result<ExitCode> {
    let files = super::ingest::collect_files(&args.paths)?;
    let progress = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(files.len() as u64)
    };
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    let (mut with_findings, mut unreadable) = (0usize, 0usize);
    for file in &files {
        progress.set_message(file.display().to_string());
        let extracted =
            worker::extract_isolated(file, &config.extract, config.ingest.max_file_bytes);
        let pages = match extracted {
            Ok(e) => e.pages,
            Err(why) => {
                unreadable += 1;
                if args.json {
                    println!("{}", json!({"path": file, "error": why.to_string()}));
                } else {
                    progress.suspend(|| eprintln!("{}: not scanned: {why}", file.display()));
                }
                progress.inc(1);
                continue;
            }
        };
        let mut findings = Vec::new();
        for page in &pages {
            for f in pii::scan(&page.text) {
                *by_kind.entry(f.kind).or_default() += 1;
                findings.push(json!({
                    "page": page.number,
                    "kind": f.kind,
                    "masked": f.masked,
                    "confidence": (f.confidence * 100.0).round() / 100.0,
                    "start": page.text[..f.start].chars().count(),
                    "end": page.text[..f.end].chars().count(),
                }));
            }
        }
        if !findings.is_empty() {
            with_findings += 1;
        }
        if args.json {
            println!("{}", json!({"path": file, "findings": findings}));
        } else if !findings.is_empty() {
            progress.suspend(|| {
                println!("{}: {} findings", file.display(), findings.len());
                for f in &findings {
                    println!(
                        "  page {:>3}  {:<20} {}  ({:.0} %)",
                        f["page"],
                        f["kind"].as_str().unwrap_or(""),
                        f["masked"].as_str().unwrap_or(""),
                        f["confidence"].as_f64().unwrap_or(0.0) * 100.0
                    );
                }
            });
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let total: usize = by_kind.values().sum();
    if args.json {
        println!(
            "{}",
            json!({"summary": {"files": files.len(), "files_with_findings": with_findings,
                   "unreadable": unreadable, "findings": total, "by_kind": by_kind}})
        );
    } else {
        println!(
            "{} files scanned: {with_findings} with findings, {unreadable} unreadable; {total} findings",
            files.len()
        );
        for (kind, n) in &by_kind {
            println!(
                "  {:<20} {n}",
                serde_json::to_value(kind)?.as_str().unwrap_or("")
            );
        }
    }
    Ok(if total > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
