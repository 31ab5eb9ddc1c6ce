//! `eval gate DIR…`: how often the evidence gate refuses. Each set's
//! questions asked of its own corpus are answerable (a refusal is a false
//! refusal); asked of every other set's corpus they are off-topic (a refusal
//! is right), except where two sets share one corpus (the keyword set is
//! built on msmarco's). Both rates per set, through the same search and gate
//! answers use. Sets drawn from the same source (dbpedia and HotpotQA are
//! both Wikipedia) make "off-topic" an upper bound on what is truly off-topic.

use std::path::Path;

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Query, Set, index_set, read_sets};
use crate::cli::EvalGateArgs;
use crate::config::Config;
use crate::index::lexical::TermWeight;
use crate::library::Library;
use crate::rag::plan;
use crate::rag::retrieve::Mode;
use crate::rag::retrieve::{self, SearchOutcome, coverage_text};

#[derive(Debug, Serialize)]
pub struct GateRow {
    /// The corpus asked.
    pub set: String,
    pub answerable: usize,
    pub false_refusals: usize,
    pub off_topic: usize,
    pub off_topic_refusals: usize,
    /// The evidence the gate asked for on this corpus.
    pub threshold: f32,
}

pub fn run(config: &Config, args: EvalGateArgs) -> Result<()> {
    let sets = read_sets(&args.dirs)?;
    let (base_dir, _scratch) = super::scratch_dir(&args.scratch)?;
    let digests = sets
        .iter()
        .map(|s| corpus_digest(&s.dir))
        .collect::<Result<Vec<_>>>()?;
    let mut dump = match &args.dump {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let mut rows = Vec::new();
    for (c, corpus) in sets.iter().enumerate() {
        let (library, _) = index_set(config, corpus, &base_dir.join(&corpus.name))?;
        let sources = library.store().chunk_sources()?;
        let mut row = GateRow {
            set: corpus.name.clone(),
            answerable: 0,
            false_refusals: 0,
            off_topic: 0,
            off_topic_refusals: 0,
            threshold: plan::threshold(library.lexical_count(), config.rag.min_evidence),
        };
        for (a, asked) in sets.iter().enumerate() {
            let own = a == c;
            if !own && digests[a] == digests[c] {
                continue;
            }
            for q in &asked.queries {
                let search = plan::gate_search(&q.text, None, &config.rag);
                let found = retrieve::search(&library, &search)?;
                let verdict = plan::gate(&found, &config.rag);
                let refused = !verdict.covered;
                if let Some(out) = dump.as_mut() {
                    let mut line = dump_line(&library, &sources, &corpus.name, asked, q, own)?;
                    line.gate_hits = gate_hits(&found);
                    line.evidence = verdict.evidence;
                    writeln!(out, "{}", serde_json::to_string(&line)?)?;
                }
                if own {
                    row.answerable += 1;
                    row.false_refusals += usize::from(refused);
                } else {
                    row.off_topic += 1;
                    row.off_topic_refusals += usize::from(refused);
                }
            }
        }
        rows.push(row);
    }
    if let Some(mut out) = dump {
        out.flush()?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "gate: covered when a passage's cosine plus query-term coverage reaches the threshold \
         (rag.min_evidence {}, less for libraries under ~400 passages)",
        config.rag.min_evidence
    );
    println!(
        "{:<14} {:>9} {:>24} {:>28}",
        "corpus", "threshold", "false refusals (own)", "off-topic refused (others)"
    );
    let pct = |n: usize, d: usize| {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    };
    for r in &rows {
        println!(
            "{:<14} {:>9.2} {:>14} ({:>5.1} %) {:>18} ({:>5.1} %)",
            r.set,
            r.threshold,
            format!("{}/{}", r.false_refusals, r.answerable),
            pct(r.false_refusals, r.answerable),
            format!("{}/{}", r.off_topic_refusals, r.off_topic),
            pct(r.off_topic_refusals, r.off_topic)
        );
    }
    Ok(())
}

/// The digest of a set's corpus: of its document ids, in order (two sets
/// built on one corpus may serialise it differently).
fn corpus_digest(dir: &Path) -> Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    for doc in super::read_jsonl::<super::CorpusDoc>(&dir.join("corpus.jsonl"))? {
        hasher.update(doc.id.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hasher.finalize().to_vec())
}

/// One question asked of one corpus, with all the evidence retrieval has.
#[derive(Serialize)]
struct DumpLine<'a> {
    corpus: &'a str,
    asked: &'a str,
    own: bool,
    id: &'a str,
    text: &'a str,
    terms: Vec<TermWeight>,
    /// (chunk id, score), best first.
    bm25: Vec<(i64, f32)>,
    dense: Vec<(i64, f32)>,
    /// chunk id → (corpus document id, share of the question's idf it holds).
    chunks: HashMap<i64, (String, f32)>,
    /// The relevant documents (own corpus only).
    relevant: Vec<&'a str>,
    /// The hits the gate saw: (chunk id, cosine, coverage).
    gate_hits: Vec<(i64, f32, f32)>,
    /// The gate's evidence.
    evidence: f32,
}

fn gate_hits(found: &SearchOutcome) -> Vec<(i64, f32, f32)> {
    found
        .hits
        .iter()
        .map(|h| {
            (
                h.chunk.chunk_id,
                plan::passage_cosine(h).unwrap_or(0.0),
                plan::coverage(found, h),
            )
        })
        .collect()
}

fn dump_line<'a>(
    library: &Library,
    sources: &HashMap<i64, String>,
    corpus: &'a str,
    asked: &'a Set,
    q: &'a Query,
    own: bool,
) -> Result<DumpLine<'a>> {
    let (lexical, dense, _) = library.candidates(&q.text, None, Mode::Hybrid)?;
    let terms = library.query_terms(&q.text)?;
    let ids: Vec<i64> = lexical
        .iter()
        .map(|h| h.chunk_id)
        .chain(dense.iter().map(|h| h.chunk_id))
        .collect();
    let chunks = library
        .store()
        .visible_chunks(&ids)?
        .into_iter()
        .map(|(id, c)| {
            let doc = sources.get(&id).cloned().unwrap_or_default();
            (id, (doc, terms.coverage(&coverage_text(&c))))
        })
        .collect();
    let relevant = if own {
        asked.qrels[&q.id]
            .iter()
            .filter(|(_, g)| **g > 0)
            .map(|(d, _)| d.as_str())
            .collect()
    } else {
        Vec::new()
    };
    Ok(DumpLine {
        corpus,
        asked: &asked.name,
        own,
        id: &q.id,
        text: &q.text,
        terms: terms.weights().to_vec(),
        bm25: lexical.iter().map(|h| (h.chunk_id, h.score)).collect(),
        dense: dense.iter().map(|h| (h.chunk_id, h.score)).collect(),
        chunks,
        relevant,
        gate_hits: Vec::new(),
        evidence: 0.0,
    })
}
