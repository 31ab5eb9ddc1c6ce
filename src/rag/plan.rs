//! The plan for one question: retrieve, close the evidence gate when the
//! best passage is too weakly related to the question (then the model is
//! not called at all: a small model asked to answer without evidence makes
//! something up), else choose the passages that fit the prompt budget.

use crate::config::RagConfig;
use crate::library::{Library, LibraryError};
use crate::llm::Message;

use super::answer::{Citation, Source};
use super::evidence::Evidence;
use super::prompt::{SYSTEM_PROMPT, fit_tokens, neutralise, user_message};
use super::retrieve::{self, Mode, Search, SearchHit};

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
    let plan = gate_and_prompt(
        found.hits,
        &question,
        config,
        count_tokens,
        prompt_budget,
        control_tokens,
    );
    Ok((plan, degraded))
}

/// The evidence gate's decision on the hits of a hybrid search for a
/// question: covered when the best passage's cosine similarity to the
/// question reaches `rag.min_similarity`.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub covered: bool,
    pub best_similarity: Option<f32>,
}

/// The search the gate judges: hybrid, `rag.passages` × 2 hits.
pub fn gate_search<'a>(
    question: &'a str,
    collections: Option<&'a [String]>,
    config: &RagConfig,
) -> Search<'a> {
    Search::new(question, collections, config.passages * 2, Mode::Hybrid)
}

pub fn gate(hits: &[SearchHit], config: &RagConfig) -> Gate {
    let best = hits
        .iter()
        .map(|h| h.scores.dense.map(|d| d.score).unwrap_or(0.0))
        .fold(None, |best: Option<f32>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        });
    Gate {
        covered: !hits.is_empty() && best.is_some_and(|b| b >= config.min_similarity),
        best_similarity: best,
    }
}

fn gate_and_prompt(
    hits: Vec<SearchHit>,
    question: &str,
    config: &RagConfig,
    count_tokens: &dyn Fn(&str) -> usize,
    prompt_budget: usize,
    control_tokens: &[String],
) -> Gated {
    let similarity = |h: &SearchHit| h.scores.dense.map(|d| d.score).unwrap_or(0.0);
    let verdict = gate(&hits, config);
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
