//! `enclave pii scan PATH…`: sweep files for exposed identifiers without
//! ingesting anything. Files go through the same isolated extraction as an
//! upload (OCR included); each page is scanned; findings are printed masked
//! (never the identifier itself), per file, with a summary per type.

use std::collections::BTreeMap;
use std::process::ExitCode;

use std::io::Write;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::audit::{Actor, Entry};
use crate::cli::{PiiFindingsArgs, PiiPolicyArgs, PiiReprocessArgs, PiiScanArgs};
use crate::config::{Config, PiiPolicy};
use crate::extract::worker;
use crate::ingest::rescreen::{Selection, rescreen};
use crate::ingest::screen;
use crate::library::Library;
use crate::pii::Scanner;
use crate::store::pii::FindingFilter;

pub fn scan(config: &Config, args: PiiScanArgs) -> Result<ExitCode> {
    let scanner = Scanner::new(&config.pii.custom)?;
    let files = super::ingest::collect_files(&args.paths)?;
    let progress = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(files.len() as u64)
    };
    let mut out = std::io::stdout().lock();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
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
                    let line = json!({"path": file, "error": why.to_string()});
                    if stopped(writeln!(out, "{line}"))? {
                        return Ok(ExitCode::SUCCESS);
                    }
                } else {
                    progress.suspend(|| eprintln!("{}: not scanned: {why}", file.display()));
                }
                progress.inc(1);
                continue;
            }
        };
        let mut findings = Vec::new();
        for page in &pages {
            for f in scanner.scan(&page.text) {
                *by_kind.entry(f.name.clone()).or_default() += 1;
                findings.push(json!({
                    "page": page.number,
                    "kind": f.name,
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
        let written = if args.json {
            writeln!(out, "{}", json!({"path": file, "findings": findings}))
        } else if findings.is_empty() {
            Ok(())
        } else {
            progress.suspend(|| {
                writeln!(out, "{}: {} findings", file.display(), findings.len())?;
                findings.iter().try_for_each(|f| {
                    writeln!(
                        out,
                        "  page {:>3}  {:<20} {}  ({:.0} %)",
                        f["page"],
                        f["kind"].as_str().unwrap_or(""),
                        f["masked"].as_str().unwrap_or(""),
                        f["confidence"].as_f64().unwrap_or(0.0) * 100.0
                    )
                })
            })
        };
        if stopped(written)? {
            return Ok(ExitCode::SUCCESS);
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let total: usize = by_kind.values().sum();
    let written = if args.json {
        let summary = json!({"summary": {"files": files.len(), "files_with_findings": with_findings,
               "unreadable": unreadable, "findings": total, "by_kind": by_kind}});
        writeln!(out, "{summary}")
    } else {
        writeln!(
            out,
            "{} files scanned: {with_findings} with findings, {unreadable} unreadable; {total} findings",
            files.len()
        )
        .and_then(|()| {
            by_kind
                .iter()
                .try_for_each(|(kind, n)| writeln!(out, "  {kind:<20} {n}"))
        })
    };
    stopped(written)?;
    Ok(if total > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether the reader went away (`| head`): then the sweep stops quietly.
/// Any other write error is one.
fn stopped(r: std::io::Result<()>) -> std::io::Result<bool> {
    match r {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e),
    }
}

/// `enclave pii policy [COLLECTION [POLICY]]`.
pub fn policy(config: &Config, args: PiiPolicyArgs) -> Result<ExitCode> {
    let mut library = Library::open(config)?;
    let (Some(collection), Some(policy)) = (&args.collection, &args.policy) else {
        let policies = library.store().collection_policies()?;
        for p in policies
            .iter()
            .filter(|p| args.collection.as_ref().is_none_or(|c| *c == p.collection))
        {
            println!(
                "{:<24} {:<7} {} documents, {} with findings ({} findings){}",
                p.collection,
                p.policy.as_str(),
                p.documents,
                p.documents_with_findings,
                p.findings,
                if p.pending > 0 {
                    format!(", {} waiting to be re-processed", p.pending)
                } else {
                    String::new()
                }
            );
        }
        if let Some(c) = &args.collection
            && !policies.iter().any(|p| p.collection == *c)
        {
            bail!("no collection named {c:?}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let policy = PiiPolicy::parse(policy).context("policy must be report, redact or reject")?;
    let actor = library.actor().clone();
    let audit = Entry::new(&actor, "pii.policy", format!("collection:{collection}"))
        .detail(json!({"policy": policy.as_str()}));
    let previous = library
        .store_mut()
        .set_collection_policy(collection, policy, Some(&audit))?;
    println!(
        "collection {collection:?}: policy {} (was {})",
        policy.as_str(),
        previous.as_str()
    );
    let which = Selection {
        collection: Some(collection),
        ..Selection::default()
    };
    run_rescreen(&mut library, which, &actor)
}

/// `enclave pii reprocess [--collection C] [--all]`.
pub fn reprocess(config: &Config, args: PiiReprocessArgs) -> Result<ExitCode> {
    let mut library = Library::open(config)?;
    let actor = library.actor().clone();
    let which = Selection {
        collection: args.collection.as_deref(),
        all: args.all,
        limit: 0,
        skip: &[],
    };
    run_rescreen(&mut library, which, &actor)
}

fn run_rescreen(library: &mut Library, which: Selection<'_>, actor: &Actor) -> Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(0);
    let summary = rescreen(library, which, actor, &|done, total, title| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(title.to_string());
    })?;
    bar.finish_and_clear();
    println!(
        "re-processed {} documents: {} unchanged, {} rewritten, {} removed; {} stored answers erased",
        summary.unchanged + summary.rewritten + summary.removed,
        summary.unchanged,
        summary.rewritten,
        summary.removed,
        summary.answers_erased
    );
    for (id, why) in &summary.failed {
        eprintln!("document {id} not re-processed: {why}");
    }
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `enclave pii findings [filters] [--csv|--json]`.
pub fn findings(config: &Config, args: PiiFindingsArgs) -> Result<ExitCode> {
    let library = Library::open(config)?;
    let filter = FindingFilter {
        collection: args.collection,
        kind: args.kind,
        document: args.document,
        limit: 0,
    };
    let rows = library.store().findings(&filter)?;
    let mut out = std::io::stdout().lock();
    let written = if args.csv {
        out.write_all(screen::findings_csv(&rows).as_bytes())
    } else if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)
    } else {
        rows.iter().try_for_each(|r| {
            let page = if r.page == screen::NAME_PAGE as i64 {
                "name".to_string()
            } else {
                format!("page {}", r.page)
            };
            writeln!(
                out,
                "{:<16} {:>5} {:<30} {:<8} {:<20} {}  ({:.0} %)",
                r.collection,
                r.document_id,
                r.title.chars().take(30).collect::<String>(),
                page,
                r.kind,
                r.masked,
                r.confidence * 100.0
            )
        })
    };
    stopped(written)?;
    Ok(ExitCode::SUCCESS)
}
