//! The "ask" use case: everything answering needs, loaded once, and the
//! steps from a question to an answer in one place.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Config, LlmConfig, RagConfig};
use crate::library::{Library, LibraryError};
use crate::llm::gguf::{Gguf, GgufError};
use crate::llm::tokenizer::{Tokenizer, TokenizerError};
use crate::llm::{GenerationRequest, Message, Prompt, SubmitError, Ticket, Worker};

use super::answer::{Answer, Source};
use super::plan::{self, Plan};

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("opening chat model {path}: {source}")]
    Model { path: String, source: GgufError },
    #[error("chat model {path}: {source}")]
    Tokenizer {
        path: String,
        source: TokenizerError,
    },
}

/// What answering needs: the chat model's tokenizer (which decides what fits
/// the prompt) and the texts of its control tokens (removed from questions
/// and passages), and the settings. The weights are not loaded here: the
/// model runs in an [`llm::Worker`](crate::llm::Worker) the caller owns.
pub struct Asker {
    tokenizer: Tokenizer,
    controls: Vec<String>,
    rag: RagConfig,
    llm: LlmConfig,
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
            plan: Plan::NotCovered {
                best_similarity: None,
            },
            degraded: false,
        }
    }
}

impl Asker {
    /// Read the tokenizer of the chat model at `model_path`.
    pub fn open(config: &Config, model_path: &Path) -> Result<Asker, AskError> {
        let path = model_path.display().to_string();
        let gguf = Gguf::open(model_path).map_err(|source| AskError::Model {
            path: path.clone(),
            source,
        })?;
        let tokenizer =
            Tokenizer::from_gguf(&gguf).map_err(|source| AskError::Tokenizer { path, source })?;
        let controls = tokenizer.control_texts().map(str::to_string).collect();
        Ok(Asker {
            tokenizer,
            controls,
            rag: config.rag.clone(),
            llm: config.llm.clone(),
        })
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
    /// the evidence gate or choose the passages that fit the prompt.
    pub fn plan(
        &self,
        library: &Library,
        question: &str,
        collections: Option<&[String]>,
    ) -> Result<Planned, LibraryError> {
        if collections.is_some_and(|c| c.is_empty()) {
            return Ok(Planned::not_covered());
        }
        let count = |t: &str| self.tokenizer.encode(t, false, false).len();
        let budget = self
            .llm
            .context_window
            .saturating_sub(self.llm.max_new_tokens);
        let (plan, degraded) = plan::plan(
            library,
            question,
            collections,
            &self.rag,
            &count,
            budget,
            &self.controls,
        )?;
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

    /// Queue the request for `messages` on `worker`.
    pub fn submit(&self, worker: &Worker, messages: Vec<Message>) -> Result<Ticket, SubmitError> {
        worker.submit(self.request(messages))
    }

    /// The model's text as an answer: citations resolved against `sources`.
    pub fn finish(&self, text: &str, sources: &[Source]) -> Answer {
        super::citations::finish(text, sources)
    }
}
