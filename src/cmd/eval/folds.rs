//! `eval retrieval --folds DIR…`: every fusion candidate on every labelled
//! set, and the choice a leave-one-set-out validation makes. A fusion must
//! not be chosen on the sets at hand alone: for each set held out, the
//! candidate whose *worst* margin over the better single retriever on the
//! other sets is best is picked, and its margin on the held-out set is what
//! it would have done on data it was not chosen on.

use anyhow::Result;
use serde::Serialize;

use super::{Metrics, evaluate, index_set, read_sets};
use crate::cli::EvalArgs;
use crate::config::{Config, Fusion};
use crate::rag::fusion::FusionParams;
use crate::rag::retrieve::{self, Mode};

/// One way of ranking.
struct Candidate {
    name: String,
    mode: Mode,
    params: FusionParams,
}

/// The single retrievers, then every fusion worth comparing (questions add
/// 0.25 to the dense weight of the fixed-weight ones, as in search).
fn candidates(base: FusionParams) -> Vec<Candidate> {
    let with = |fusion: Fusion, dense_weight: f32| FusionParams {
        fusion,
        dense_weight,
        ..base
    };
    let mut out = vec![
        Candidate {
            name: "bm25".into(),
            mode: Mode::Bm25,
            params: base,
        },
        Candidate {
            name: "dense".into(),
            mode: Mode::Dense,
            params: base,
        },
    ];
    let fused = [
        ("convex 0.3", with(Fusion::Convex, 0.3)),
        ("convex 0.5", with(Fusion::Convex, 0.5)),
        ("convex 0.65", with(Fusion::Convex, 0.65)),
        ("convex 0.8", with(Fusion::Convex, 0.8)),
        ("rrf", with(Fusion::Rrf, 0.5)),
        ("rrf 0.7", with(Fusion::Rrf, 0.7)),
        ("dbsf 0.8", with(Fusion::Dbsf, 0.8)),
        ("adaptive", with(Fusion::Adaptive, 0.5)),
    ];
    out.extend(fused.into_iter().map(|(name, params)| Candidate {
        name: name.into(),
        mode: Mode::Hybrid,
        params,
    }));
    out
}

#[derive(Serialize)]
struct Cell {
    candidate: String,
    set: String,
    metrics: Metrics,
}

#[derive(Serialize)]
struct Fold {
    held_out: String,
    chosen: String,
    /// The chosen candidate's nDCG@10 minus the better single retriever's, on the held-out set.
    margin: f64,
    recall_at_100_margin: f64,
}

#[derive(Serialize)]
struct Report {
    cells: Vec<Cell>,
    folds: Vec<Fold>,
    /// The candidate whose worst margin over all sets is best.
    best_worst_fold: String,
}

pub fn run(config: &Config, args: &EvalArgs) -> Result<()> {
    let sets = read_sets(&args.folds)?;
    let (base_dir, _scratch) = super::scratch_dir(&args.scratch)?;
    let mut cells = Vec::new();
    let mut names = Vec::new();
    for set in &sets {
        let (library, _) = index_set(config, set, &base_dir.join(&set.name))?;
        let cands = candidates(retrieve::configured_fusion(&library));
        names = cands.iter().map(|c| c.name.clone()).collect();
        for c in &cands {
            let metrics = evaluate(&library, set, c.mode, c.params)?.metrics;
            cells.push(Cell {
                candidate: c.name.clone(),
                set: set.name.clone(),
                metrics,
            });
        }
    }
    let set_names: Vec<String> = sets.iter().map(|s| s.name.clone()).collect();
    let report = choose(&names, &set_names, cells);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&names, &set_names, &report);
    }
    Ok(())
}

/// The single retrievers every fused candidate is measured against.
fn is_single(name: &str) -> bool {
    name == "bm25" || name == "dense"
}

fn metric(cells: &[Cell], candidate: &str, set: &str) -> Metrics {
    cells
        .iter()
        .find(|c| c.candidate == candidate && c.set == set)
        .map(|c| c.metrics)
        .unwrap_or_default()
}

/// A fused candidate's margins on `set` over the better single retriever:
/// (nDCG@10, Recall@100).
fn margin(cells: &[Cell], candidate: &str, set: &str) -> (f64, f64) {
    let m = metric(cells, candidate, set);
    let (b, d) = (metric(cells, "bm25", set), metric(cells, "dense", set));
    (
        m.ndcg_at_10 - b.ndcg_at_10.max(d.ndcg_at_10),
        m.recall_at_100 - b.recall_at_100.max(d.recall_at_100),
    )
}

fn worst(cells: &[Cell], candidate: &str, sets: &[&String]) -> f64 {
    sets.iter()
        .map(|s| margin(cells, candidate, s).0)
        .fold(f64::INFINITY, f64::min)
}

fn choose(names: &[String], sets: &[String], cells: Vec<Cell>) -> Report {
    let fused: Vec<&String> = names.iter().filter(|n| !is_single(n)).collect();
    let pick = |among: &[&String]| -> String {
        fused
            .iter()
            .max_by(|a, b| worst(&cells, a, among).total_cmp(&worst(&cells, b, among)))
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let folds = sets
        .iter()
        .map(|held_out| {
            let others: Vec<&String> = sets.iter().filter(|s| *s != held_out).collect();
            let chosen = pick(&others);
            let (margin, recall_at_100_margin) = margin(&cells, &chosen, held_out);
            Fold {
                held_out: held_out.clone(),
                chosen,
                margin,
                recall_at_100_margin,
            }
        })
        .collect();
    let all: Vec<&String> = sets.iter().collect();
    Report {
        best_worst_fold: pick(&all),
        cells,
        folds,
    }
}

/// One table: a row per candidate, a column per set; fused candidates also
/// get their worst margin when `margins`.
fn print_table(
    title: &str,
    names: &[String],
    sets: &[String],
    report: &Report,
    value: fn(Metrics) -> f64,
    margins: bool,
) {
    print!("{title:<12}");
    for s in sets {
        print!(" {s:>12}");
    }
    println!("{}", if margins { " worst margin" } else { "" });
    let all: Vec<&String> = sets.iter().collect();
    for n in names {
        print!("{n:<12}");
        for s in sets {
            print!(" {:>12.4}", value(metric(&report.cells, n, s)));
        }
        if margins && !is_single(n) {
            println!(" {:>+12.4}", worst(&report.cells, n, &all));
        } else {
            println!();
        }
    }
}

fn print_report(names: &[String], sets: &[String], report: &Report) {
    print_table("nDCG@10", names, sets, report, |m| m.ndcg_at_10, true);
    println!();
    print_table(
        "Recall@100",
        names,
        sets,
        report,
        |m| m.recall_at_100,
        false,
    );
    println!(
        "\nleave one set out: chosen on the others, margin over the better single retriever on the held-out set"
    );
    for f in &report.folds {
        println!(
            "  {:<12} {:<12} nDCG@10 {:+.4}  Recall@100 {:+.4}",
            f.held_out, f.chosen, f.margin, f.recall_at_100_margin
        );
    }
    println!("best worst fold over all sets: {}", report.best_worst_fold);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(candidate: &str, set: &str, ndcg: f64) -> Cell {
        Cell {
            candidate: candidate.into(),
            set: set.into(),
            metrics: Metrics {
                ndcg_at_10: ndcg,
                ..Metrics::default()
            },
        }
    }

    #[test]
    fn the_choice_is_the_best_worst_margin_on_the_other_sets() {
        let names: Vec<String> = ["bm25", "dense", "lucky", "steady"]
            .map(String::from)
            .to_vec();
        let sets: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let cells = vec![
            cell("bm25", "a", 0.5),
            cell("dense", "a", 0.6),
            cell("bm25", "b", 0.7),
            cell("dense", "b", 0.4),
            cell("bm25", "c", 0.5),
            cell("dense", "c", 0.5),
            // Wins big on a, loses to BM25 on b.
            cell("lucky", "a", 0.8),
            cell("lucky", "b", 0.6),
            cell("lucky", "c", 0.55),
            // A little above the better side everywhere.
            cell("steady", "a", 0.62),
            cell("steady", "b", 0.71),
            cell("steady", "c", 0.52),
        ];
        let report = choose(&names, &sets, cells);
        assert_eq!(report.best_worst_fold, "steady");
        // Held out b, chosen on a and c: lucky's worst there (+0.05) beats
        // steady's (+0.02), and on b it loses 0.1 to BM25.
        let b = report.folds.iter().find(|f| f.held_out == "b").unwrap();
        assert_eq!(b.chosen, "lucky");
        assert!((b.margin + 0.1).abs() < 1e-9);
    }
}
