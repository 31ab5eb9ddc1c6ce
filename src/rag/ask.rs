//! The "ask" use case: everything answering needs, loaded once, and the
//! steps from a question to an answer in one place (the steps after the
//! plan, quoting, the tiers and verification, are in `respond.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, LlmConfig, RagConfig};
use crate::embed::{EmbedError, Embedder};
use crate::index::lexical::Terms;
use crate::library::{Library, LibraryError};
use crate::llm::gguf::{Gguf, GgufError};
use crate::llm::tokenizer::{Tokenizer, TokenizerError};
use crate::llm::{GenerationRequest, Message, Prompt};

use super::evidence::{Evidence, SentenceCache};
use super::plan::{self, Gated, Plan, Prepared};
use super::quote;

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("opening chat model {path}: {source}")]
    Model { path: String, source: GgufError },
    #[error("chat model {path}: {source}")]
    Tokenizer {
        path: String,
        source: TokenizerError,
    },
    #[error(transparent)]
    Pii(#[from] crate::pii::CustomError),
}

/// Why a question could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("embedding the passages' sentences: {0}")]
    Embed(#[from] EmbedError),
}

/// What answering needs: the first tier's tokenizer (which decides what fits
/// the prompt), the texts of every tier's control tokens (removed from
/// questions and passages), the embedder (verification) and the settings.
/// The weights are not loaded here: each model tier runs in an
/// [`llm::Worker`](crate::llm::Worker) the caller owns (see [`ModelTier`](super::ModelTier)).
pub struct Asker {
    tokenizer: Tokenizer,
    controls: Vec<String>,
    pub(super) embedder: Arc<Embedder>,
    /// The BM25 index's analyzer: which sentence holds a question's terms.
    terms: Terms,
    /// Passage sentences already embedded.
    sentences: SentenceCache,
    pub(super) rag: RagConfig,
    pub(super) llm: LlmConfig,
    /// Off only to measure what verification costs (`enclave bench answers`):
    /// no evidence, no quotes, nothing checked and so nothing shown.
    pub(super) verify: bool,
    /// Sensitive identifiers: a generated sentence stating one its passages
    /// do not hold is removed.
    pub(super) scanner: Arc<crate::pii::Scanner>,
}

/// A question retrieved and gated.
#[derive(Debug)]
pub struct Planned {
    pub plan: Plan,
    /// The vector store was unreachable: the passages were found by BM25
    /// alone (the answer says so).
    pub degraded: bool,
}

impl Planned {
    /// Nothing to search (no collection granted): not covered.
    pub fn not_covered() -> Planned {
        Planned {
            plan: Plan::NotCovered { gate: None },
            degraded: false,
        }
    }
}

impl Asker {
    /// Read the tokenizers of the model tiers at `tier_paths` (cheapest
    /// first; at least one).
    pub fn open(
        config: &Config,
        tier_paths: &[PathBuf],
        embedder: Arc<Embedder>,
    ) -> Result<Asker, AskError> {
        let mut tokenizers = Vec::new();
        for path in tier_paths {
            tokenizers.push(read_tokenizer(path)?);
        }
        let mut controls: Vec<String> = Vec::new();
        for t in &tokenizers {
            for c in t.control_texts() {
                if !controls.iter().any(|k| k == c) {
                    controls.push(c.to_string());
                }
            }
        }
        let tokenizer = match tokenizers.into_iter().next() {
            Some(t) => t,
            None => read_tokenizer(&config.llm_model_path())?,
        };
        Ok(Asker {
            tokenizer,
            controls,
            embedder,
            terms: Terms::new(&config.search.language),
            sentences: SentenceCache::default(),
            rag: config.rag.clone(),
            llm: config.llm.clone(),
            verify: true,
            scanner: Arc::new(crate::pii::Scanner::new(&config.pii.custom)?),
        })
    }

    /// The sensitive-identifier scanner (built-in and configured types).
    pub fn scanner(&self) -> &crate::pii::Scanner {
        &self.scanner
    }

    /// The same pipeline with verification (and the quotes, which share its
    /// evidence) switched off: for measuring what they cost, never for answers.
    pub fn without_verification(mut self) -> Asker {
        self.verify = false;
        self
    }

    /// Answers of at most `tokens` tokens instead of `llm.max_new_tokens`.
    pub fn with_max_new_tokens(mut self, tokens: usize) -> Asker {
        self.llm.max_new_tokens = tokens;
        self
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Retrieve passages for `question` from `collections` (`None`: all; an
    /// empty list, nothing granted: not covered, without searching), close
    /// the evidence gate or choose the passages that fit the prompt, split
    /// them into sentences and choose the quotes.
    pub fn plan(
        &self,
        library: &Library,
        question: &str,
        collections: Option<&[String]>,
    ) -> Result<Planned, PlanError> {
        if collections.is_some_and(|c| c.is_empty()) {
            return Ok(Planned::not_covered());
        }
        let count = |t: &str| self.tokenizer.encode(t, false, false).len();
        let budget = self
            .llm
            .context_window
            .saturating_sub(self.llm.max_new_tokens);
        let (gated, degraded) = plan::plan(
            library,
            question,
            collections,
            &self.rag,
            &count,
            budget,
            &self.controls,
        )?;
        let plan = match gated {
            Gated::Closed { gate } => Plan::NotCovered { gate: Some(gate) },
            Gated::Open {
                question,
                messages,
                sources,
            } => {
                let started = Instant::now();
                let evidence = if self.verify {
                    Evidence::gather(
                        &self.embedder,
                        &self.sentences,
                        &self.terms,
                        &question,
                        &sources,
                    )?
                } else {
                    Evidence::empty(&self.terms)
                };
                let quotes = quote::quotes(&evidence, &question, &sources, self.rag.quotes);
                Plan::Generate(Prepared {
                    question,
                    messages,
                    sources,
                    evidence,
                    quotes,
                    evidence_ms: started.elapsed().as_secs_f64() * 1000.0,
                })
            }
        };
        Ok(Planned { plan, degraded })
    }

    /// The model request for a plan that generates: the configured length,
    /// sampling and deadline.
    pub fn request(&self, messages: Vec<Message>) -> GenerationRequest {
        GenerationRequest {
            prompt: Prompt::Chat(messages),
            max_new_tokens: self.llm.max_new_tokens,
            sampling: self.llm.sampling.clone(),
            deadline: Some(Instant::now() + Duration::from_secs(self.llm.deadline_secs)),
            ignore_end: false,
        }
    }
}

fn read_tokenizer(model_path: &Path) -> Result<Tokenizer, AskError> {
    let path = model_path.display().to_string();
    let gguf = Gguf::open(model_path).map_err(|source| AskError::Model {
        path: path.clone(),
        source,
    })?;
    Tokenizer::from_gguf(&gguf).map_err(|source| AskError::Tokenizer { path, source })
}
