//! A loaded chat model and the generation loop.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::gguf::{Gguf, GgufError};
use super::model::{KvCache, Model, ModelError};
use super::sampling::{Sampler, SamplingParams};
use super::template::{ChatTemplate, Message, TemplateError};
use super::tokenizer::{Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

pub type Result<T> = std::result::Result<T, LlmError>;

/// Prompt tokens are fed in slices of this many: bounds the attention
/// scratch memory while keeping the matrix products large.
const PREFILL_CHUNK: usize = 512;

#[derive(Debug, Clone)]
pub enum Prompt {
    /// Rendered with the model's chat template.
    Chat(Vec<Message>),
    /// Exact tokens (benchmarks).
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    pub deadline: Option<Instant>,
    /// Keep generating through end-of-turn tokens (benchmarks only).
    pub ignore_end: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfTurn,
    MaxTokens,
    Deadline,
    Cancelled,
    ContextFull,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the cache.
    pub reused_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub time_to_first_token_ms: f64,
    pub stop: StopReason,
}

pub struct Llm {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub path: PathBuf,
    cache: KvCache,
    /// Exactly the tokens whose keys and values `cache` holds.
    cached_tokens: Vec<u32>,
}

impl Llm {
    /// Load and validate a GGUF chat model. `context_window` caps the KV
    /// cache (and the prompt plus answer) below the model's trained length.
    pub fn load(path: &Path, context_window: usize) -> Result<Llm> {
        let gguf = Gguf::open(path)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let model = Model::load(&gguf)?;
        if tokenizer.vocab_size() > model.config.vocab {
            return Err(ModelError::Shape(format!(
                "tokenizer has {} tokens but the embedding matrix only {}",
                tokenizer.vocab_size(),
                model.config.vocab
            ))
            .into());
        }
        let text_of = |id: Option<u32>| id.map(|i| tokenizer.token_text(i).to_string());
        let template = ChatTemplate::from_gguf(
            &gguf,
            &text_of(tokenizer.bos).unwrap_or_default(),
            &text_of(tokenizer.eos).unwrap_or_default(),
            tokenizer.token_id("<|im_start|>").is_some(),
        )?;
        let cache = model.new_cache(context_window);
        Ok(Llm {
            model,
            tokenizer,
            template,
            path: path.to_path_buf(),
            cache,
            cached_tokens: Vec::new(),
        })
    }

    pub fn context_window(&self) -> usize {
        self.cache.window()
    }

    /// Render and tokenize a conversation; the assistant turn is opened.
    /// Messages are spliced in as plain text: a control-token text inside
    /// one (however nested or escaped) stays text.
    pub fn chat_tokens(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let parts = self.template.render_spliced(messages)?;
        // Templates that print the BOS text themselves get no second one.
        let bos_in_text = self
            .tokenizer
            .bos
            .map(|b| {
                let t = self.tokenizer.token_text(b);
                !t.is_empty()
                    && parts
                        .first()
                        .is_some_and(|(text, trusted)| *trusted && text.starts_with(t))
            })
            .unwrap_or(false);
        let parts: Vec<(&str, bool)> = parts.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        Ok(self
            .tokenizer
            .encode_spliced(&parts, self.tokenizer.add_bos && !bos_in_text))
    }

    /// Count the tokens of plain text (for fitting passages into the window).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text, false, false).len()
    }

    /// Generate, calling `on_text` after every prompt slice and every token
    /// with the new text (often empty); it returns `false` to cancel.
    pub fn generate(
        &mut self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(String, GenerationStats)> {
        let started = Instant::now();
        let prompt = match &request.prompt {
            Prompt::Chat(messages) => self.chat_tokens(messages)?,
            Prompt::Tokens(t) => t.clone(),
        };
        let window = self.cache.window();
        if prompt.is_empty() || prompt.len() >= window {
            return Err(ModelError::ContextFull {
                needed: prompt.len() + 1,
                window,
            }
            .into());
        }
        // Reuse the keys and values of the longest prefix already computed
        // (the fixed system prompt, or an earlier turn); at least one token
        // is always run to get fresh logits.
        let reused = common_prefix(&self.cached_tokens, &prompt).min(prompt.len() - 1);
        self.cache.truncate(reused);
        self.cached_tokens.truncate(reused);
        let mut stats = GenerationStats {
            prompt_tokens: prompt.len(),
            reused_tokens: reused,
            generated_tokens: 0,
            prefill_ms: 0.0,
            decode_ms: 0.0,
            time_to_first_token_ms: 0.0,
            stop: StopReason::MaxTokens,
        };
        let mut logits = Vec::new();
        for chunk in prompt[reused..].chunks(PREFILL_CHUNK) {
            if past(request.deadline) {
                stats.stop = StopReason::Deadline;
                return Ok((String::new(), stats));
            }
            if !on_text("") {
                stats.stop = StopReason::Cancelled;
                return Ok((String::new(), stats));
            }
            logits = self.forward(chunk)?;
        }
        stats.prefill_ms = ms(started.elapsed());
        let decode_started = Instant::now();
        let mut sampler = Sampler::new(request.sampling.clone());
        let mut history = prompt.clone();
        let mut text = String::new();
        let mut pending = Vec::new();
        loop {
            // The penalty looks at the answer only: copying from the prompt (the
            // quoted sources) is exactly what a grounded answer should do.
            let next = sampler.sample(&mut logits, &history[prompt.len()..]);
            if stats.generated_tokens == 0 {
                stats.time_to_first_token_ms = ms(started.elapsed());
            }
            if !request.ignore_end && self.tokenizer.is_end(next) {
                stats.stop = StopReason::EndOfTurn;
                break;
            }
            stats.generated_tokens += 1;
            history.push(next);
            pending.extend(self.tokenizer.token_bytes(next));
            let piece = take_complete_utf8(&mut pending);
            text.push_str(&piece);
            if !on_text(&piece) {
                stats.stop = StopReason::Cancelled;
                break;
            }
            if stats.generated_tokens >= request.max_new_tokens {
                stats.stop = StopReason::MaxTokens;
                break;
            }
            if past(request.deadline) {
                stats.stop = StopReason::Deadline;
                break;
            }
            if self.cache.len() + 1 >= window {
                stats.stop = StopReason::ContextFull;
                break;
            }
            logits = self.forward(&[next])?;
        }
        if !pending.is_empty() {
            let rest = String::from_utf8_lossy(&pending).into_owned();
            text.push_str(&rest);
            on_text(&rest);
        }
        stats.decode_ms = ms(decode_started.elapsed());
        Ok((text, stats))
    }

    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        // Run the step on one of rayon's threads: the parallel products
        // inside then start without waking the caller across pools.
        let (model, cache) = (&self.model, &mut self.cache);
        let (result, ()) = rayon::join(|| model.forward(tokens, cache), || ());
        match result {
            Ok(logits) => {
                self.cached_tokens.extend_from_slice(tokens);
                Ok(logits)
            }
            Err(e) => {
                // A failed step leaves the cache in an unknown state.
                self.cache.truncate(0);
                self.cached_tokens.clear();
                Err(e.into())
            }
        }
    }

    /// One forward step outside generation (benchmarks); `fresh` clears the
    /// cache first.
    pub fn bench_forward(&mut self, tokens: &[u32], fresh: bool) -> Result<Vec<f32>> {
        if fresh {
            self.clear_cache();
        }
        self.forward(tokens)
    }

    /// Drop the cached prefix (benchmarks measure cold prefill).
    pub fn clear_cache(&mut self) {
        self.cache.truncate(0);
        self.cached_tokens.clear();
    }
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Remove and return the longest valid UTF-8 prefix of `pending`, leaving an
/// incomplete trailing sequence for the next token to finish. Bytes that can
/// never become valid are replaced so the stream cannot stall.
fn take_complete_utf8(pending: &mut Vec<u8>) -> String {
    match std::str::from_utf8(pending) {
        Ok(s) => {
            let s = s.to_string();
            pending.clear();
            s
        }
        Err(e) => {
            let valid = e.valid_up_to();
            match e.error_len() {
                // Incomplete sequence at the end: wait for more bytes.
                None => {
                    let s = String::from_utf8_lossy(&pending[..valid]).into_owned();
                    pending.drain(..valid);
                    s
                }
                Some(bad) => {
                    let mut s = String::from_utf8_lossy(&pending[..valid + bad]).into_owned();
                    pending.drain(..valid + bad);
                    s.push_str(&take_complete_utf8(pending));
                    s
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_pieces_wait_for_complete_characters() {
        let euro = "€".as_bytes();
        let mut pending = vec![b'a', euro[0]];
        assert_eq!(take_complete_utf8(&mut pending), "a");
        pending.extend_from_slice(&euro[1..]);
        assert_eq!(take_complete_utf8(&mut pending), "€");
        let mut bad = vec![0xFF, b'x'];
        assert_eq!(take_complete_utf8(&mut bad), "\u{FFFD}x");
    }
}
