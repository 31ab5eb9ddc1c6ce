//! The extractive tier: the one to three sentences of the passages that best
//! answer the question, shown verbatim. No model is called, so a quote is
//! always faithful; it is the floor every answer stands on.
//!
//! A sentence scores by meaning (cosine of its embedding and the question's)
//! plus the share of the question's terms it holds (the BM25 index's terms:
//! stemmed, stop words out), weighted by how rare each term is among the
//! candidate sentences: the embedding finds paraphrases, the terms find the
//! sentence that names exactly what was asked about.

use std::collections::{HashMap, HashSet};

use super::answer::{Citation, Source};
use super::evidence::Evidence;

/// Weight of the term share against the cosine (both lie in 0..=1; the
/// cosine of a relevant sentence is typically 0.4-0.8).
const TERM_WEIGHT: f32 = 0.5;

/// Further quotes must score at least this fraction of the best one.
const RELATIVE_TO_BEST: f32 = 0.75;

/// The best sentences for `question`, at most `max`, best first.
pub fn quotes(
    evidence: &Evidence,
    question: &str,
    sources: &[Source],
    max: usize,
) -> Vec<Citation> {
    let scored = score(evidence, question);
    let Some(&(_, best)) = scored.first() else {
        return Vec::new();
    };
    let mut picked: Vec<Citation> = Vec::new();
    for &(k, s) in &scored {
        if picked.len() == max || s < best * RELATIVE_TO_BEST {
            break;
        }
        // Neighbouring passages overlap: the same sentence of the same
        // document may be found twice.
        let Some(c) = evidence.citation(k, sources) else {
            continue;
        };
        if !picked
            .iter()
            .any(|p| p.document_id == c.document_id && p.quote == c.quote)
        {
            picked.push(c);
        }
    }
    picked
}

/// Quotable sentences with their scores, best first.
fn score(evidence: &Evidence, question: &str) -> Vec<(usize, f32)> {
    let wanted = evidence.terms.of(question);
    let sentence_terms: Vec<HashSet<String>> = evidence
        .sentences
        .iter()
        .map(|s| evidence.terms.of(&s.text))
        .collect();
    let n = sentence_terms.len().max(1) as f32;
    let mut df: HashMap<&str, usize> = HashMap::new();
    for t in &sentence_terms {
        for w in t.iter().filter(|w| wanted.contains(*w)) {
            *df.entry(w.as_str()).or_default() += 1;
        }
    }
    let idf = |w: &str| (1.0 + n / (1 + df.get(w).copied().unwrap_or(0)) as f32).ln();
    let total: f32 = wanted.iter().map(|w| idf(w)).sum();
    let mut scored: Vec<(usize, f32)> = evidence
        .sentences
        .iter()
        .enumerate()
        .filter(|(_, s)| s.quotable())
        .map(|(k, s)| {
            let share = if total > 0.0 {
                sentence_terms[k]
                    .intersection(&wanted)
                    .map(|w| idf(w))
                    .sum::<f32>()
                    / total
            } else {
                0.0
            };
            (k, s.relevance + TERM_WEIGHT * share)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
}
