//! Real PDFs from ../shared/corpus: every file is indexed or rejected with a
//! one-line reason (never a crash or hang of the ingest), and the text we
//! extract from files with a text layer agrees with Poppler's `pdftotext`
//! (word-level F1).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pdfs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (../shared must be beside the repository)",
                dir.display()
            )
        })
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn whole_shared_corpus_ingests_with_a_line_per_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let corpus = crate::common::shared_dir().join("corpus");
    let expected = pdfs(&corpus.join("pdf-text")).len() + pdfs(&corpus.join("pdf-odd")).len();
    let out = crate::common::run_ok(
        crate::common::enclave(&data)
            .args(["ingest", "--json"])
            .arg(&corpus),
    );
    let mut per_file = 0;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut summary = None;
    for line in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Some(s) = v.get("summary") {
            summary = Some(s.clone());
            continue;
        }
        per_file += 1;
        let result = &v["result"];
        let outcome = result["outcome"].as_str().unwrap().to_string();
        if outcome == "rejected" {
            let reason = result["reason"].as_str().unwrap();
            assert!(
                !reason.is_empty() && !reason.contains('\n'),
                "reason must be one line: {reason:?}"
            );
            assert!(
                !reason.starts_with("internal error"),
                "{}: {reason}",
                v["path"]
            );
        }
        *outcomes.entry(outcome).or_default() += 1;
    }
    assert_eq!(per_file, expected, "one line per file");
    let summary = summary.expect("summary line");
    assert_eq!(summary["files"].as_u64().unwrap() as usize, expected);
    eprintln!("corpus outcomes: {outcomes:?}");
    assert!(
        outcomes.get("indexed").copied().unwrap_or(0) >= 40,
        "most text PDFs index: {outcomes:?}"
    );
}

fn words(text: &str) -> HashMap<String, usize> {
    let mut bag = HashMap::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *bag.entry(w.to_lowercase()).or_default() += 1;
    }
    bag
}

fn f1(ours: &HashMap<String, usize>, reference: &HashMap<String, usize>) -> f64 {
    let total_ours: usize = ours.values().sum();
    let total_ref: usize = reference.values().sum();
    if total_ref == 0 {
        return if total_ours == 0 { 1.0 } else { 0.0 };
    }
    let common: usize = ours
        .iter()
        .map(|(w, n)| (*n).min(reference.get(w).copied().unwrap_or(0)))
        .sum();
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / total_ours as f64;
    let r = common as f64 / total_ref as f64;
    2.0 * p * r / (p + r)
}

#[test]
fn text_layer_matches_pdftotext() {
    let pdftotext = Command::new("pdftotext").arg("-v").output();
    assert!(
        pdftotext.is_ok(),
        "pdftotext (Debian poppler-utils) is required: .ci/run installs it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut scores = Vec::new();
    for file in pdfs(&crate::common::shared_dir().join("corpus/pdf-text")) {
        let reference = Command::new("pdftotext")
            .arg(&file)
            .arg("-")
            .output()
            .unwrap();
        let reference = words(&String::from_utf8_lossy(&reference.stdout));
        if reference.values().sum::<usize>() < 20 {
            continue; // pdftotext finds (almost) no text either: nothing to compare
        }
        let out = crate::common::enclave(&data)
            .args(["extract", "--json"])
            .arg(&file)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = if v["accepted"] == true {
            let pages = v["extracted"]["pages"].as_array().unwrap();
            words(
                &pages
                    .iter()
                    .map(|p| p["text"].as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        } else {
            HashMap::new()
        };
        let score = f1(&ours, &reference);
        eprintln!(
            "F1 {score:.3}  {}",
            file.file_name().unwrap().to_string_lossy()
        );
        scores.push(score);
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let mut sorted = scores.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    eprintln!(
        "word-level F1 vs pdftotext over {} files: mean {mean:.3}, median {median:.3}",
        scores.len()
    );
    assert!(scores.len() >= 30);
    assert!(mean >= 0.80, "mean word F1 {mean:.3} below 0.80");
    assert!(median >= 0.90, "median word F1 {median:.3} below 0.90");
}
