//! Retrieval evaluation on BEIR-layout sets: `corpus.jsonl` ({_id, title, text}),
//! `queries.jsonl` ({_id, text}) and `qrels/test.tsv` (query-id, corpus-id,
//! score; header line optional; graded relevance). The corpus is ingested into
//! a scratch data dir through the normal pipeline (chunking, embedding, both
//! indexes), and every retrieval mode is scored on the same index.
//!
//! Metrics follow trec_eval/pytrec_eval as BEIR uses them: nDCG@10 with linear
//! gains, Recall@k over documents with relevance > 0, MRR@10. A corpus document
//! split into several chunks counts at the rank of its best chunk.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::cli::EvalArgs;
use crate::config::Config;
use crate::config::Fusion;
use crate::ingest;
use crate::library::Library;
use crate::rag::fusion::FusionParams;
use crate::rag::retrieve::{self, Mode, Search};

mod folds;
pub mod gate;
pub mod ocr;
pub mod pii;

/// Hits ranked per query: every candidate either retriever returned.
const RANKED: usize = 1_000;

#[derive(Debug, Deserialize)]
struct CorpusDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Query {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

/// query id → (corpus id → graded relevance)
pub type Qrels = HashMap<String, HashMap<String, i32>>;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Metrics {
    pub ndcg_at_10: f64,
    pub recall_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub metrics: Metrics,
    pub mean_query_ms: f64,
}

/// The data dir an evaluation indexes into: `scratch` when given (kept and
/// reused), else a temporary one removed with the returned guard.
pub(super) fn scratch_dir(
    scratch: &Option<std::path::PathBuf>,
) -> Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    match scratch {
        Some(dir) => Ok((dir.clone(), None)),
        None => {
            let temp = tempfile::tempdir().context("cannot create scratch dir")?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// A labelled set, read.
pub(super) struct Set {
    name: String,
    dir: std::path::PathBuf,
    queries: Vec<Query>,
    qrels: Qrels,
}

/// Several sets, each read as [`read_set`] does.
fn read_sets(dirs: &[std::path::PathBuf]) -> Result<Vec<Set>> {
    dirs.iter().map(|d| read_set(d)).collect()
}

fn read_set(dir: &Path) -> Result<Set> {
    let queries = read_jsonl::<Query>(&dir.join("queries.jsonl"))?;
    let qrels = read_qrels(&dir.join("qrels").join("test.tsv"))?;
    let queries: Vec<Query> = queries
        .into_iter()
        .filter(|q| qrels.contains_key(&q.id))
        .collect();
    if queries.is_empty() {
        bail!(
            "{}: no query in queries.jsonl has judgements in qrels/test.tsv",
            dir.display()
        );
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Set {
        name,
        dir: dir.to_path_buf(),
        queries,
        qrels,
    })
}

/// Ingest a set's corpus into `data_dir` (a no-op for documents already
/// there); returns the library and the number of documents read.
fn index_set(config: &Config, set: &Set, data_dir: &Path) -> Result<(Library, usize)> {
    let mut config = config.clone();
    config.data_dir = data_dir.to_path_buf();
    config.ingest.commit_every_documents = 1024;
    if config.vector.backend == crate::config::VectorBackend::Qdrant {
        // Never the live collection: a scratch one beside it, emptied first.
        config.vector.collection = format!("{}_eval", config.vector.collection);
        crate::index::qdrant::QdrantVectorIndex::open(&config.vector, 0)?.drop_collection()?;
    }
    let mut library = Library::open(&config)?;
    let t0 = Instant::now();
    let mut n_docs = 0usize;
    for doc in read_jsonl::<CorpusDoc>(&set.dir.join("corpus.jsonl"))? {
        ingest::add_text(&mut library, "eval", &doc.id, &doc.title, &doc.text)?;
        n_docs += 1;
        if n_docs.is_multiple_of(1000) {
            eprintln!("{}: indexed {n_docs} documents…", set.name);
        }
    }
    library.optimize()?;
    eprintln!(
        "{}: {n_docs} documents ({} chunks) in {:.1} s; {} queries",
        set.name,
        library.store().counts()?.1,
        t0.elapsed().as_secs_f64(),
        set.queries.len()
    );
    Ok((library, n_docs))
}

/// One retrieval run over a set.
struct Run {
    metrics: Metrics,
    mean_query_ms: f64,
    per_query: Vec<(String, Metrics)>,
}

/// One retrieval run over a set: mean metrics, and per query.
fn evaluate(library: &Library, set: &Set, mode: Mode, params: FusionParams) -> Result<Run> {
    let sources = library.store().chunk_sources()?;
    let mut per_query = Vec::with_capacity(set.queries.len());
    let started = Instant::now();
    for q in &set.queries {
        let search = Search {
            query: &q.text,
            collections: None,
            limit: RANKED,
            mode,
            fusion: Some(params),
        };
        let hits = retrieve::search(library, &search)?.hits;
        let ranked = dedupe_documents(hits.iter().filter_map(|h| sources.get(&h.chunk.chunk_id)));
        per_query.push((q.id.clone(), score_query(&ranked, &set.qrels[&q.id])));
    }
    let mean_query_ms = started.elapsed().as_secs_f64() * 1000.0 / set.queries.len() as f64;
    Ok(Run {
        metrics: mean(per_query.iter().map(|(_, m)| *m)),
        mean_query_ms,
        per_query,
    })
}

pub fn run(config: &Config, args: EvalArgs) -> Result<()> {
    if !args.folds.is_empty() {
        return folds::run(config, &args);
    }
    let Some(dir) = &args.dir else {
        bail!("name a set folder, or several with --folds");
    };
    let set = read_set(dir)?;
    let (data_dir, _scratch) = scratch_dir(&args.scratch)?;
    let (library, n_docs) = index_set(config, &set, &data_dir)?;
    let mut base = retrieve::configured_fusion(&library);
    if let Some(w) = args.dense_weight {
        base.dense_weight = w;
    }
    let mut runs: Vec<(String, Mode, FusionParams)> = vec![
        ("bm25".into(), Mode::Bm25, base),
        ("dense".into(), Mode::Dense, base),
        ("hybrid".into(), Mode::Hybrid, base),
    ];
    if args.compare_fusion {
        for fusion in [Fusion::Rrf, Fusion::Convex, Fusion::Dbsf, Fusion::Adaptive] {
            let name = format!("hybrid/{}", fusion.name());
            runs.push((name, Mode::Hybrid, FusionParams { fusion, ..base }));
        }
    }
    let mut rows = Vec::new();
    for (name, mode, params) in &runs {
        let Run {
            metrics,
            mean_query_ms,
            per_query,
        } = evaluate(&library, &set, *mode, *params)?;
        if args.per_query {
            for (id, m) in &per_query {
                eprintln!("{name}\t{id}\t{:.4}", m.ndcg_at_10);
            }
        }
        rows.push(Row {
            name: name.clone(),
            metrics,
            mean_query_ms,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{}: {} documents, {} queries",
            dir.display(),
            n_docs,
            set.queries.len()
        );
        println!(
            "{:<16} {:>8} {:>10} {:>11} {:>7} {:>9}",
            "retriever", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "ms/query"
        );
        for r in &rows {
            let m = r.metrics;
            println!(
                "{:<16} {:>8.4} {:>10.4} {:>11.4} {:>7.4} {:>9.1}",
                r.name, m.ndcg_at_10, m.recall_at_10, m.recall_at_100, m.mrr_at_10, r.mean_query_ms
            );
        }
    }
    Ok(())
}

/// Every non-empty line of a JSONL file, parsed (errors name the line).
pub(super) fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: read error", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: invalid JSON line", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

/// Parse a qrels TSV (query-id, corpus-id, score), with or without a header.
pub fn read_qrels(path: &Path) -> Result<Qrels> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot open {}", path.display()))?;
    parse_qrels(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse_qrels(text: &str) -> Result<Qrels> {
    let mut qrels: Qrels = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if fields.len() < 3 || fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        let Ok(score) = fields[fields.len() - 1].parse::<i32>() else {
            if i == 0 {
                continue; // header line
            }
            bail!(
                "line {}: relevance {:?} is not an integer",
                i + 1,
                fields[fields.len() - 1]
            );
        };
        // TREC qrels have 4 columns (qid, iteration, docid, rel); BEIR has 3.
        let doc = if fields.len() >= 4 {
            fields[2]
        } else {
            fields[1]
        };
        qrels
            .entry(fields[0].to_string())
            .or_default()
            .insert(doc.to_string(), score);
    }
    Ok(qrels)
}

fn dedupe_documents<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(id.as_str()))
        .map(String::as_str)
        .collect()
}

pub fn score_query(ranked: &[&str], judged: &HashMap<String, i32>) -> Metrics {
    let gain = |id: &str| judged.get(id).copied().unwrap_or(0).max(0) as f64;
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, id)| gain(id) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<f64> = judged.values().map(|&g| g.max(0) as f64).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, g)| g / ((i + 2) as f64).log2())
        .sum();
    let relevant = judged.values().filter(|&&g| g > 0).count();
    let found = |k: usize| ranked.iter().take(k).filter(|id| gain(id) > 0.0).count();
    let recall = |k: usize| {
        if relevant == 0 {
            0.0
        } else {
            found(k) as f64 / relevant as f64
        }
    };
    let mrr = ranked
        .iter()
        .take(10)
        .position(|id| gain(id) > 0.0)
        .map_or(0.0, |p| 1.0 / (p + 1) as f64);
    Metrics {
        ndcg_at_10: if idcg > 0.0 { dcg / idcg } else { 0.0 },
        recall_at_10: recall(10),
        recall_at_100: recall(100),
        mrr_at_10: mrr,
    }
}

fn mean(ms: impl Iterator<Item = Metrics>) -> Metrics {
    let mut sum = Metrics::default();
    let mut n = 0.0;
    for m in ms {
        sum.ndcg_at_10 += m.ndcg_at_10;
        sum.recall_at_10 += m.recall_at_10;
        sum.recall_at_100 += m.recall_at_100;
        sum.mrr_at_10 += m.mrr_at_10;
        n += 1.0;
    }
    if n > 0.0 {
        sum.ndcg_at_10 /= n;
        sum.recall_at_10 /= n;
        sum.recall_at_100 /= n;
        sum.mrr_at_10 /= n;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qrels_with_and_without_header() {
        let a = parse_qrels("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n").unwrap();
        let b = parse_qrels("q1\td1\t2\nq1\td2\t0\n").unwrap();
        assert_eq!(a, b);
        assert_eq!(a["q1"]["d1"], 2);
        assert!(parse_qrels("q1\td1\t2\nq2\td2\tx\n").is_err());
    }

    #[test]
    fn metrics_match_hand_computation() {
        let judged: HashMap<String, i32> = [
            ("a".to_string(), 2),
            ("b".to_string(), 1),
            ("z".to_string(), 0),
        ]
        .into();
        // Perfect ranking.
        let m = score_query(&["a", "b", "c"], &judged);
        assert!((m.ndcg_at_10 - 1.0).abs() < 1e-12);
        assert_eq!(m.mrr_at_10, 1.0);
        assert_eq!(m.recall_at_10, 1.0);
        // Relevant doc "b" at rank 2 only: dcg = 1/log2(3), idcg = 2 + 1/log2(3).
        let m = score_query(&["x", "b"], &judged);
        let expected = (1.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2());
        assert!((m.ndcg_at_10 - expected).abs() < 1e-12);
        assert_eq!(m.mrr_at_10, 0.5);
        assert_eq!(m.recall_at_10, 0.5);
        assert_eq!(m.recall_at_100, 0.5);
    }
}
