//! `enclave eval pii FILE`: precision and recall per identifier type on a
//! labelled set (tests/reference/make_pii_set.py builds one): a finding is
//! right when a label of the same type overlaps it; every unmatched finding
//! costs precision, every unmatched label recall.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::pii::{self, Kind};

#[derive(Deserialize)]
struct Labelled {
    text: String,
    labels: Vec<Label>,
}

#[derive(Deserialize)]
struct Label {
    kind: Kind,
    /// Character offsets.
    start: usize,
    end: usize,
}

#[derive(Debug, Default, Serialize)]
struct Score {
    labels: usize,
    found: usize,
    right: usize,
    precision: f64,
    recall: f64,
}

pub fn run(file: PathBuf, json: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let mut scores: BTreeMap<Kind, Score> = BTreeMap::new();
    let (mut chars, mut seconds) = (0usize, 0.0f64);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let doc: Labelled = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a labelled document", file.display(), i + 1))?;
        let started = Instant::now();
        let findings = pii::scan(&doc.text);
        seconds += started.elapsed().as_secs_f64();
        chars += doc.text.chars().count();
        let char_at = |byte: usize| doc.text[..byte].chars().count();
        let mut matched = vec![false; doc.labels.len()];
        for f in &findings {
            let (start, end) = (char_at(f.start), char_at(f.end));
            let score = scores.entry(f.kind).or_default();
            score.found += 1;
            let hit =
                doc.labels.iter().enumerate().find(|(j, l)| {
                    !matched[*j] && l.kind == f.kind && l.start < end && start < l.end
                });
            if let Some((j, _)) = hit {
                matched[j] = true;
                score.right += 1;
            }
        }
        for label in &doc.labels {
            scores.entry(label.kind).or_default().labels += 1;
        }
    }
    for s in scores.values_mut() {
        s.precision = s.right as f64 / s.found.max(1) as f64;
        s.recall = s.right as f64 / s.labels.max(1) as f64;
    }
    let mb_per_s = chars as f64 / 1e6 / seconds.max(1e-9);
    if json {
        let report = serde_json::json!({"types": scores, "chars": chars, "mchars_per_s": mb_per_s});
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<20} {:>7} {:>7} {:>7} {:>10} {:>8}",
            "type", "labels", "found", "right", "precision", "recall"
        );
        for (kind, s) in &scores {
            let name = serde_json::to_value(kind)?;
            println!(
                "{:<20} {:>7} {:>7} {:>7} {:>10.3} {:>8.3}",
                name.as_str().unwrap_or(""),
                s.labels,
                s.found,
                s.right,
                s.precision,
                s.recall
            );
        }
        println!("{chars} characters scanned at {mb_per_s:.1} M characters/s");
    }
    Ok(ExitCode::SUCCESS)
}
