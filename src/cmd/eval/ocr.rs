//! `enclave eval ocr DIR` and `enclave bench ocr DIR`: OCR quality against
//! the original text layers of a scanned set, and OCR speed and memory.
//! Both run files through the real extraction worker (isolation, limits,
//! rendering, deskew, Tesseract), one at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::cli::EvalOcrArgs;
use crate::config::Config;
use crate::extract::ocr::word_f1;
use crate::extract::{Extracted, Rejection, worker};

#[derive(Deserialize)]
struct ManifestLine {
    variant: String,
    file: PathBuf,
    page: u32,
    truth: PathBuf,
}

/// One variant's figures.
#[derive(Debug, Default, Serialize)]
struct VariantScore {
    pages: usize,
    /// Means over pages.
    precision: f64,
    recall: f64,
    f1: f64,
    /// Mean F1 over the pages whose truth is in Latin script, the script of
    /// the default `eng` model (the set also holds Japanese, Korean, Thai and
    /// Arabic pages, which need their own language models).
    latin_pages: usize,
    latin_f1: f64,
    /// Mean F1 of the `clean300` reading of the same pages, when the set has
    /// that variant: F1 / this is what the scan itself costs.
    reference_f1: Option<f64>,
    /// Pages flagged as low confidence.
    low_confidence: usize,
    /// Files that failed (counted as F1 0 on each of their pages).
    failed_pages: usize,
}

/// One page's scores against its truth.
#[derive(Debug, Default)]
struct Scored {
    precision: f64,
    recall: f64,
    f1: f64,
    low: bool,
    latin: bool,
}

/// One page's figures (in the JSON report, to see where OCR falls short).
#[derive(Debug, Serialize)]
struct PageScore {
    variant: String,
    file: PathBuf,
    page: u32,
    truth: PathBuf,
    f1: f64,
    mean_confidence: Option<f32>,
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    variants: BTreeMap<String, VariantScore>,
    pages: Vec<PageScore>,
    files: usize,
    ocr_pages: usize,
    seconds: f64,
    seconds_per_page: f64,
    worker_peak_rss_mib: f64,
}

/// One file through the worker: what it extracted, and how long it took.
fn extract_timed(config: &Config, path: &Path) -> (Result<Extracted, Rejection>, f64) {
    let started = Instant::now();
    let outcome = worker::extract_isolated(path, &config.extract, config.ingest.max_file_bytes);
    (outcome, started.elapsed().as_secs_f64())
}

fn ocr_pages(extracted: &Result<Extracted, Rejection>) -> usize {
    extracted
        .as_ref()
        .map(|e| e.pages.iter().filter(|p| p.ocr.is_some()).count())
        .unwrap_or(0)
}

pub fn run(config: &Config, args: EvalOcrArgs) -> Result<ExitCode> {
    let manifest = args.dir.join("manifest.jsonl");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "cannot read {} (make one with tests/reference/make_scans.sh)",
            manifest.display()
        )
    })?;
    let mut by_file: BTreeMap<PathBuf, Vec<ManifestLine>> = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let entry: ManifestLine = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a manifest line", manifest.display(), i + 1))?;
        by_file.entry(entry.file.clone()).or_default().push(entry);
    }
    if by_file.is_empty() {
        bail!("{} lists no files", manifest.display());
    }
    let progress = indicatif::ProgressBar::new(by_file.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files, {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut scores: BTreeMap<String, Vec<Scored>> = BTreeMap::new();
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_page = Vec::new();
    let (mut seconds, mut pages_read) = (0.0, 0usize);
    for (file, entries) in &by_file {
        progress.set_message(file.display().to_string());
        let (extracted, secs) = extract_timed(config, &args.dir.join(file));
        seconds += secs;
        pages_read += ocr_pages(&extracted);
        for entry in entries {
            let truth = std::fs::read_to_string(args.dir.join(&entry.truth))
                .with_context(|| format!("cannot read {}", entry.truth.display()))?;
            let latin = is_latin_script(&truth);
            let page = extracted
                .as_ref()
                .ok()
                .and_then(|e| e.pages.iter().find(|p| p.number == entry.page));
            let Some(page) = page else {
                if let Err(why) = &extracted {
                    progress.suspend(|| eprintln!("{}: {why}", file.display()));
                }
                *failed.entry(entry.variant.clone()).or_default() += 1;
                scores
                    .entry(entry.variant.clone())
                    .or_default()
                    .push(Scored {
                        latin,
                        ..Scored::default()
                    });
                per_page.push(PageScore {
                    variant: entry.variant.clone(),
                    file: file.clone(),
                    page: entry.page,
                    truth: entry.truth.clone(),
                    f1: 0.0,
                    mean_confidence: None,
                    error: Some(
                        extracted
                            .as_ref()
                            .err()
                            .map_or("no such page".into(), |e| e.to_string()),
                    ),
                });
                continue;
            };
            let (p, r, f) = word_f1(&page.text, &truth);
            let low = page.ocr.as_ref().is_some_and(|o| o.low_confidence);
            per_page.push(PageScore {
                variant: entry.variant.clone(),
                file: file.clone(),
                page: entry.page,
                truth: entry.truth.clone(),
                f1: f,
                mean_confidence: page.ocr.as_ref().map(|o| o.mean_confidence),
                error: None,
            });
            scores
                .entry(entry.variant.clone())
                .or_default()
                .push(Scored {
                    precision: p,
                    recall: r,
                    f1: f,
                    low,
                    latin,
                });
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let variants = scores
        .into_iter()
        .map(|(variant, pages)| {
            let n = pages.len() as f64;
            let mean = |pick: fn(&Scored) -> f64| pages.iter().map(pick).sum::<f64>() / n;
            let latin: Vec<f64> = pages.iter().filter(|s| s.latin).map(|s| s.f1).collect();
            let score = VariantScore {
                pages: pages.len(),
                precision: mean(|s| s.precision),
                recall: mean(|s| s.recall),
                f1: mean(|s| s.f1),
                latin_pages: latin.len(),
                latin_f1: latin.iter().sum::<f64>() / latin.len().max(1) as f64,
                reference_f1: None,
                low_confidence: pages.iter().filter(|s| s.low).count(),
                failed_pages: failed.get(&variant).copied().unwrap_or(0),
            };
            (variant, score)
        })
        .collect();
    let mut variants = variants;
    paired_reference(&mut variants, &per_page);
    let report = Report {
        variants,
        pages: per_page,
        files: by_file.len(),
        ocr_pages: pages_read,
        seconds,
        seconds_per_page: seconds / pages_read.max(1) as f64,
        worker_peak_rss_mib: crate::os::children_peak_rss_kib() as f64 / 1024.0,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The variant every other is compared with when the set has it: a lossless
/// 300 dpi render, what OCR reads off a perfect scan of the same page.
const REFERENCE: &str = "clean300";

/// Each variant's reference: the clean reading of the very pages it holds.
fn paired_reference(variants: &mut BTreeMap<String, VariantScore>, pages: &[PageScore]) {
    let clean: BTreeMap<&Path, f64> = pages
        .iter()
        .filter(|p| p.variant == REFERENCE)
        .map(|p| (p.truth.as_path(), p.f1))
        .collect();
    if clean.is_empty() {
        return;
    }
    for (name, score) in variants.iter_mut() {
        let paired: Vec<f64> = pages
            .iter()
            .filter(|p| &p.variant == name)
            .filter_map(|p| clean.get(p.truth.as_path()).copied())
            .collect();
        if !paired.is_empty() {
            score.reference_f1 = Some(paired.iter().sum::<f64>() / paired.len() as f64);
        }
    }
}

fn print_report(report: &Report) {
    println!(
        "{:<18} {:>6} {:>10} {:>8} {:>8} {:>8} {:>7}  {:>12} {:>9}",
        "variant",
        "pages",
        "precision",
        "recall",
        "F1",
        "low-conf",
        "failed",
        "Latin pages",
        "Latin F1"
    );
    for (name, v) in &report.variants {
        println!(
            "{name:<18} {:>6} {:>10.3} {:>8.3} {:>8.3} {:>8} {:>7}  {:>12} {:>9.3}",
            v.pages,
            v.precision,
            v.recall,
            v.f1,
            v.low_confidence,
            v.failed_pages,
            v.latin_pages,
            v.latin_f1
        );
    }
    println!(
        "{} files, {} pages read by OCR in {:.1} s ({:.2} s per page); worker peak RSS {:.0} MiB",
        report.files,
        report.ocr_pages,
        report.seconds,
        report.seconds_per_page,
        report.worker_peak_rss_mib
    );
}

/// Whether at least 90 % of a text's letters are Latin (basic, Latin-1,
/// extended A and B).
fn is_latin_script(text: &str) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let latin = letters.iter().filter(|&&c| (c as u32) < 0x250).count();
    !letters.is_empty() && latin * 10 >= letters.len() * 9
}

/// `enclave bench ocr DIR`.
pub fn bench(config: &Config, dir: PathBuf) -> Result<()> {
    let files = super::super::ingest::collect_files(&[dir])?;
    let (mut seconds, mut pages, mut failed) = (0.0, 0usize, 0usize);
    let progress = indicatif::ProgressBar::new(files.len() as u64);
    for file in &files {
        let (extracted, secs) = extract_timed(config, file);
        let read = ocr_pages(&extracted);
        if let Err(why) = &extracted {
            failed += 1;
            progress.suspend(|| eprintln!("{}: {why}", file.display()));
        }
        // Only files OCR read count towards the speed.
        if read > 0 {
            seconds += secs;
            pages += read;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if pages == 0 {
        bail!(
            "no page was read by OCR (are there scanned PDFs or images, and is Tesseract installed? see `enclave doctor`)"
        );
    }
    println!(
        "files {} ({failed} rejected), {pages} pages read by OCR in {seconds:.1} s",
        files.len()
    );
    println!("pages/s            {:>8.2}", pages as f64 / seconds);
    println!("seconds per page   {:>8.2}", seconds / pages as f64);
    println!(
        "worker peak RSS    {:>8.0} MiB",
        crate::os::children_peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn latin_script_is_told_from_others() {
        assert!(super::is_latin_script("Déjà vu, 42 façades."));
        assert!(!super::is_latin_script(
            "標準 マーケットモデルは 2 次元で説明する"
        ));
        assert!(!super::is_latin_script("12 34"));
    }
}
