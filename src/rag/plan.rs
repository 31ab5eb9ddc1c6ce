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
    NotCovered { best_similarity: Option<f32> },
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
        best_similarity: Option<f32>,
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
/// about the same kind of thing through, and misses a terse keyword match
/// MiniLM cannot place; word overlap alone is fooled by common words. So
/// the evidence for a question is the larger of
///
/// - the best cosine of any passage plus the coverage of BM25's top hit
///   (the share of the question's idf mass that passage holds), and
/// - the best cosine plus coverage of any one passage the gate sees,
///
/// and the question is covered when that reaches `rag.min_evidence` (1.0).
/// The sum and the threshold are a logistic model over the two signals,
/// fitted on answerable questions (four dev sets, each against its own
/// corpus) and off-topic ones (each set's questions against the others'
/// corpora): it came out with equal weights on both and its boundary at a
/// sum of 1. `enclave eval gate` prints both refusal rates per set.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub covered: bool,
    pub best_similarity: Option<f32>,
    /// Cosine plus coverage, as above (0 when nothing was found).
    pub evidence: f32,
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
    let cosine = |h: &SearchHit| h.scores.dense.map(|d| d.score);
    let best = found
        .hits
        .iter()
        .filter_map(cosine)
        .fold(found.signals.best_cosine, f32::max);
    let coverage = |h: &SearchHit| {
        found
            .terms
            .as_ref()
            .map_or(0.0, |t| t.coverage(&coverage_text(&h.chunk)))
    };
    let one_passage = found
        .hits
        .iter()
        .map(|h| cosine(h).unwrap_or(0.0) + coverage(h))
        .fold(0.0, f32::max);
    let evidence = if found.hits.is_empty() {
        0.0
    } else {
        one_passage.max(best + found.signals.top_bm25_coverage())
    };
    Gate {
        covered: !found.hits.is_empty() && evidence >= config.min_evidence,
        best_similarity: (!found.hits.is_empty()).then_some(best),
        evidence,
    }
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
        return Gated::Closed {
            best_similarity: verdict.best_similarity,
        };
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
        return Gated::Closed {
            best_similarity: Some(best),
        };
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
