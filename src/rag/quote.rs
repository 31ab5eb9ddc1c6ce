//! The extractive tier: the one to three sentences of the passages that best
//! answer the question, shown verbatim. No model is called, so a quote is
//! always faithful; it is the floor every answer stands on.
//!
//! A sentence scores by meaning (cosine of its embedding and the question's)
//! plus the share of the question's terms it holds, weighted by how rare each
//! term is among the candidate sentences: the embedding finds paraphrases,
//! the terms find the sentence that names exactly what was asked about.

use std::collections::{HashMap, HashSet};

use super::answer::{Citation, Source};
use super::evidence::Evidence;

/// Weight of the term share against the cosine (both lie in 0..=1; the
/// cosine of a relevant sentence is typically 0.4-0.8).
const TERM_WEIGHT: f32 = 0.5;

/// Further quotes must score at least this fraction of the best one.
const RELATIVE_TO_BEST: f32 = 0.85;

/// Words too common to say what a question is about.
const STOP: &[&str] = &[
    "the", "and", "for", "are", "was", "were", "with", "that", "this", "from", "what", "which",
    "who", "whom", "whose", "how", "when", "where", "why", "does", "did", "can", "could", "may",
    "must", "should", "would", "will", "has", "have", "had", "been", "being", "into", "about",
    "than", "then", "there", "their", "they", "them", "you", "your", "our", "its", "any", "all",
    "many", "much", "long", "get", "not", "but", "also", "more", "most",
];

/// Lowercased content words, with a plural "s" dropped so "days" meets "day".
pub(super) fn terms(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() > 2 || w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !w.is_empty() && !STOP.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if stem.chars().count() > 2 && !stem.ends_with('s') => stem.to_string(),
            _ => w,
        })
        .collect()
}

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
    let wanted = terms(question);
    let sentence_terms: Vec<HashSet<String>> =
        evidence.sentences.iter().map(|s| terms(&s.text)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_drop_stop_words_and_plural_s() {
        let t = terms("How many days of annual leave do full-time staff get?");
        assert!(t.contains("day") && t.contains("annual") && t.contains("leave"));
        assert!(!t.contains("how") && !t.contains("many") && !t.contains("get"));
        assert!(terms("the process").contains("process"));
    }
}
