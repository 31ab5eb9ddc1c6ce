//! The plan for one question: retrieve, close the evidence gate when no
//! passage is related closely enough to the question (then the model is
//! not called at all: a small model asked to answer without evidence makes
//! something up), else choose the passages that fit the prompt budget.

use crate::config::RagConfig;
use crate::library::{Library, LibraryError};
use crate::llm::Message;

use super::answer::{Citation, Source};
use super::evidence::Evidence;
use super::prompt::{SYSTEM_PROMPT, fit_tokens, neutralise, user_message};
use super::retrieve::{self, Mode, Search, SearchHit, SearchOutcome, coverage_text};

/// What to do with a question.
#[derive(Debug)]
pub enum Plan {
    /// The evidence gate closed: answer without the model.
    /// `gate` is the gate's verdict (none when there was nothing to search).
    NotCovered { gate: Option<Gate> },
    /// The passages passed the gate: quote them, and ask the model tiers.
    Generate(Prepared),
}

/// A question that passed the gate, with everything answering it needs.
#[derive(Debug)]
pub struct Prepared {
    /// The question as the model sees it (control tokens removed).
    pub question: String,
    pub messages: Vec<Message>,
    pub sources: Vec<Source>,
    /// The passages' sentences, embedded: what quotes are chosen from and
    /// generated sentences are checked against.
    pub evidence: Evidence,
    /// The best sentences of the passages, verbatim.
    pub quotes: Vec<Citation>,
    /// Time spent gathering the evidence and choosing the quotes.
    pub evidence_ms: f64,
}

/// What the gate let through: the question, the prompt and its sources.
pub(super) enum Gated {
    Closed {
        gate: Gate,
    },
    Open {
        question: String,
        messages: Vec<Message>,
        sources: Vec<Source>,
    },
}

/// Retrieve, gate and build the prompt. `count_tokens` is the chat model's
/// tokenizer; `prompt_budget` the tokens available for the whole prompt. The
/// flag is true when the vector store was unreachable and retrieval was BM25's
/// alone; answers then say so.
pub(super) fn plan(
    library: &Library,
    question: &str,
    collections: Option<&[String]>,
    config: &RagConfig,
    count_tokens: &dyn Fn(&str) -> usize,
    prompt_budget: usize,
    control_tokens: &[String],
) -> Result<(Gated, bool), LibraryError> {
    let question = neutralise(question.trim(), control_tokens);
    let found = retrieve::search(library, &gate_search(&question, collections, config))?;
    let degraded = found.degraded;
    let verdict = gate(&found, config);
    let plan = gate_and_prompt(
        verdict,
        found.hits,
        &question,
        config,
        count_tokens,
        prompt_budget,
        control_tokens,
    );
    Ok((plan, degraded))
}

/// The evidence gate's decision on a hybrid search for a question.
///
/// A passage is evidence when it is close to the question in meaning *and*
/// holds its words, the rare ones above all: a cosine alone lets a passage
/// about the same kind of thing through and misses a terse keyword match
/// MiniLM cannot place; word overlap alone is fooled by common words. So
/// the evidence for a question is the larger of
///
/// - the best cosine of any passage plus the coverage of BM25's top hit
///   (the share of the question's idf mass that passage holds), and
/// - the best cosine plus coverage of any one passage the gate sees,
///
/// and the question is covered when that reaches the threshold. The sum is
/// a logistic model over the two signals, fitted on answerable questions
/// (each dev set against its own corpus) and off-topic ones (each set's
/// questions against the other sets' corpora): both came out with the same
/// weight.
///
/// What an off-topic question scores depends on how many passages there
/// are to match by chance: measured on corpora of 6 to 5,000 passages
/// (four kinds, seven sizes), the 95th percentile of off-topic evidence
/// grows by about 0.12 per e-fold of passages up to a few hundred, then
/// flattens (0.31 at 6 passages, 0.63 at 100, 0.94 at 5,000). So the
/// threshold is 0.45 for a library of ten passages and grows by
/// 0.15 × ln(passages / 10), up to `rag.min_evidence` (1.0, reached at about
/// 400 passages): the slope and intercept are the middle of the range that
/// keeps false refusals ≤ 5 % and off-topic refusals ≥ 95 % on every corpus
/// (`tests/reference/fit_retrieval.py`).
/// `enclave eval gate` prints both refusal rates per set.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub covered: bool,
    pub best_similarity: Option<f32>,
    /// Cosine plus coverage, as above (0 when nothing was found).
    pub evidence: f32,
    /// What `evidence` had to reach.
    pub threshold: f32,
}

/// The evidence a question needs in a library of `passages` passages.
pub fn threshold(passages: u64, min_evidence: f32) -> f32 {
    let passages = passages.max(1) as f32;
    (0.45 + 0.15 * (passages / 10.0).ln()).min(min_evidence)
}

/// The search the gate judges: hybrid, `rag.passages` × 2 hits.
pub fn gate_search<'a>(
    question: &'a str,
    collections: Option<&'a [String]>,
    config: &RagConfig,
) -> Search<'a> {
    Search::new(question, collections, config.passages * 2, Mode::Hybrid)
}

pub fn gate(found: &SearchOutcome, config: &RagConfig) -> Gate {
    let best = found
        .hits
        .iter()
        .filter_map(passage_cosine)
        .fold(found.signals.best_cosine, f32::max);
    let one_passage = found
        .hits
        .iter()
        .map(|h| passage_cosine(h).unwrap_or(0.0) + coverage(found, h))
        .fold(0.0, f32::max);
    let evidence = if found.hits.is_empty() {
        0.0
    } else {
        one_passage.max(best + found.signals.top_bm25_coverage())
    };
    let threshold = threshold(found.passages, config.min_evidence);
    Gate {
        covered: !found.hits.is_empty() && evidence >= threshold,
        best_similarity: (!found.hits.is_empty()).then_some(best),
        evidence,
        threshold,
    }
}

/// A hit's cosine to the question as the dense side scored it.
pub fn passage_cosine(hit: &SearchHit) -> Option<f32> {
    hit.scores.dense.map(|d| d.score)
}

/// The share of the question's idf mass a hit holds.
pub fn coverage(found: &SearchOutcome, hit: &SearchHit) -> f32 {
    found
        .terms
        .as_ref()
        .map_or(0.0, |t| t.coverage(&coverage_text(&hit.chunk)))
}

fn gate_and_prompt(
    verdict: Gate,
    hits: Vec<SearchHit>,
    question: &str,
    config: &RagConfig,
    count_tokens: &dyn Fn(&str) -> usize,
    prompt_budget: usize,
    control_tokens: &[String],
) -> Gated {
    let similarity = |h: &SearchHit| h.scores.dense.map(|d| d.score).unwrap_or(0.0);
    if !verdict.covered {
        return Gated::Closed { gate: verdict };
    }
    let best = verdict.best_similarity.unwrap_or(0.0);
    let fixed = count_tokens(SYSTEM_PROMPT) + count_tokens(question) + 48;
    let mut budget = prompt_budget.saturating_sub(fixed);
    let mut sources = Vec::new();
    for hit in hits {
        if sources.len() == config.passages {
            break;
        }
        let sim = similarity(&hit);
        if sim < best * config.relative_cutoff {
            continue;
        }
        let text = fit_tokens(
            &neutralise(&hit.chunk.text, control_tokens),
            config.max_passage_tokens,
            count_tokens,
        );
        let cost = count_tokens(&text) + 24;
        if cost > budget {
            continue;
        }
        budget -= cost;
        let c = hit.chunk;
        sources.push(Source {
            number: sources.len() + 1,
            chunk_id: c.chunk_id,
            document_id: c.document_id,
            document_title: c.document_title,
            collection: c.collection,
            page: c.page,
            heading: c.heading,
            char_start: c.char_start,
            char_end: c.char_end,
            verbatim: text == c.text,
            text,
            similarity: sim,
        });
    }
    if sources.is_empty() {
        return Gated::Closed { gate: verdict };
    }
    let messages = vec![
        Message::new("system", SYSTEM_PROMPT),
        Message::new("user", user_message(question, &sources)),
    ];
    Gated::Open {
        question: question.to_string(),
        messages,
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::threshold;

    #[test]
    fn small_libraries_need_less_evidence_up_to_the_configured_bar() {
        assert!((threshold(10, 1.0) - 0.45).abs() < 1e-6);
        assert!(threshold(6, 1.0) < threshold(30, 1.0));
        assert!(threshold(30, 1.0) < threshold(100, 1.0));
        assert_eq!(threshold(5_000, 1.0), 1.0);
        assert_eq!(threshold(5_000, 0.8), 0.8);
        assert!(threshold(0, 1.0).is_finite());
    }
}
