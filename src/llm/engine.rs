//! A loaded chat model and the generation loop.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::gguf::{Gguf, GgufError};
use super::model::{BatchItem, KvCache, Model, ModelError};
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

/// Prompt tokens are fed in slices of this many by default (`llm.prefill_chunk`):
/// bounds the attention scratch memory and, when several sequences share
/// the engine, how long running answers pause while a new prompt is read.
pub const PREFILL_CHUNK: usize = 256;

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
    /// The process's CPU time while this sequence's steps ran, shared out
    /// among the sequences of each step by the tokens each computed in it
    /// (what this answer cost the machine, also when batched).
    pub cpu_secs: f64,
}

/// A KV cache and exactly the tokens whose keys and values it holds: one
/// per sequence the engine can run at once.
pub struct Slot {
    pub cache: KvCache,
    pub tokens: Vec<u32>,
}

impl Slot {
    /// Keep the longest prefix this slot shares with `prompt` (at least one
    /// prompt token is always run, for fresh logits); returns its length.
    pub fn reuse_prefix(&mut self, prompt: &[u32]) -> usize {
        let reused = common_prefix(&self.tokens, prompt).min(prompt.len().saturating_sub(1));
        self.cache.truncate(reused);
        self.tokens.truncate(reused);
        reused
    }

    /// Take `len` prompt positions from `other`, which computed them.
    pub fn copy_prefix(&mut self, other: &Slot, len: usize) {
        self.cache.copy_prefix(&other.cache, len);
        self.tokens.clear();
        self.tokens.extend_from_slice(&other.tokens[..len]);
    }

    pub fn common_prefix(&self, prompt: &[u32]) -> usize {
        common_prefix(&self.tokens, prompt).min(prompt.len().saturating_sub(1))
    }

    /// After a failed step the cache is in an unknown state.
    fn reset(&mut self) {
        self.cache.clear();
        self.tokens.clear();
    }
}

/// One answer being generated: its prompt is fed in slices, then one token
/// per step. The same state machine serves [`Llm::generate`] (one sequence)
/// and the batching worker (many), so an answer is the same either way.
pub struct Sequence {
    request: GenerationRequest,
    prompt: Vec<u32>,
    /// Prompt tokens in the cache.
    fed: usize,
    sampler: Sampler,
    generated: Vec<u32>,
    pending: Vec<u8>,
    text: String,
    stats: GenerationStats,
    started: Instant,
    decode_started: Option<Instant>,
    stop: Option<StopReason>,
}

impl Sequence {
    /// `reused` prompt tokens are already in the sequence's cache.
    pub fn new(
        request: GenerationRequest,
        prompt: Vec<u32>,
        reused: usize,
        started: Instant,
    ) -> Sequence {
        let sampler = Sampler::new(request.sampling.clone());
        Sequence {
            stats: GenerationStats {
                prompt_tokens: prompt.len(),
                reused_tokens: reused,
                generated_tokens: 0,
                prefill_ms: 0.0,
                decode_ms: 0.0,
                time_to_first_token_ms: 0.0,
                stop: StopReason::MaxTokens,
                cpu_secs: 0.0,
            },
            request,
            prompt,
            fed: reused,
            sampler,
            generated: Vec::new(),
            pending: Vec::new(),
            text: String::new(),
            started,
            decode_started: None,
            stop: None,
        }
    }

    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// Positions this sequence can fill in its cache at most: what the
    /// worker reserves before admitting it.
    pub fn positions_needed(&self, window: usize) -> usize {
        (self.prompt.len() + self.request.max_new_tokens).min(window)
    }

    pub fn is_prefilling(&self) -> bool {
        self.fed < self.prompt.len()
    }

    pub fn is_done(&self) -> bool {
        self.stop.is_some()
    }

    /// The tokens of the next step: the next prompt slice (at most `chunk`
    /// tokens), or the last sampled token.
    pub fn input(&self, chunk: usize) -> &[u32] {
        if self.is_prefilling() {
            let end = (self.fed + chunk.max(1)).min(self.prompt.len());
            &self.prompt[self.fed..end]
        } else {
            let last = self.generated.len().saturating_sub(1);
            &self.generated[last..]
        }
    }

    /// Whether the step running `input` needs logits (the prompt's last
    /// slice and every decode step).
    pub fn wants_logits(&self, input_len: usize) -> bool {
        !self.is_prefilling() || self.fed + input_len >= self.prompt.len()
    }

    /// Before a step: stop if cancelled, or if the deadline passed while
    /// the prompt is still being read (decode checks it after each token).
    pub fn check_before_step(&mut self, cancelled: bool) -> bool {
        if cancelled {
            self.finish(StopReason::Cancelled);
        } else if self.is_prefilling() && past(self.request.deadline) {
            self.finish(StopReason::Deadline);
        }
        self.is_done()
    }

    /// After a step that ran `input_len` tokens: the new text (often empty)
    /// if a token was sampled.
    pub fn after_step(
        &mut self,
        input_len: usize,
        logits: Option<Vec<f32>>,
        tokenizer: &Tokenizer,
    ) -> String {
        if self.is_prefilling() {
            self.fed += input_len;
            if self.is_prefilling() {
                return String::new();
            }
        }
        let Some(mut logits) = logits else {
            return String::new();
        };
        if self.decode_started.is_none() {
            self.stats.prefill_ms = ms(self.started.elapsed());
            self.decode_started = Some(Instant::now());
        }
        // The penalty looks at the answer only: copying from the prompt (the
        // quoted sources) is exactly what a grounded answer should do.
        let next = self.sampler.sample(&mut logits, &self.generated);
        if self.stats.generated_tokens == 0 {
            self.stats.time_to_first_token_ms = ms(self.started.elapsed());
        }
        if !self.request.ignore_end && tokenizer.is_end(next) {
            self.finish(StopReason::EndOfTurn);
            return self.flush();
        }
        self.stats.generated_tokens += 1;
        self.generated.push(next);
        self.pending.extend(tokenizer.token_bytes(next));
        let piece = take_complete_utf8(&mut self.pending);
        self.text.push_str(&piece);
        piece
    }

    /// After the new text was handed on: the limits that end an answer.
    /// `cache_len` is what the sequence's cache holds now.
    pub fn check_limits(&mut self, cache_len: usize, window: usize) -> String {
        if self.is_done() || self.is_prefilling() {
            return String::new();
        }
        if self.stats.generated_tokens >= self.request.max_new_tokens {
            self.finish(StopReason::MaxTokens);
        } else if past(self.request.deadline) {
            self.finish(StopReason::Deadline);
        } else if cache_len + 1 >= window {
            self.finish(StopReason::ContextFull);
        } else {
            return String::new();
        }
        self.flush()
    }

    /// End now (a cancelled stream), with what was generated.
    pub fn cancel(&mut self) -> String {
        if !self.is_done() {
            self.finish(StopReason::Cancelled);
        }
        self.flush()
    }

    fn finish(&mut self, stop: StopReason) {
        self.stop = Some(stop);
        self.stats.stop = stop;
        self.stats.decode_ms = self.decode_started.map_or(0.0, |t| ms(t.elapsed()));
    }

    /// Bytes of an unfinished character left at the end, as text.
    fn flush(&mut self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.text.push_str(&rest);
        rest
    }

    /// Charge this sequence its share of a step's CPU time.
    pub fn add_cpu(&mut self, secs: f64) {
        self.stats.cpu_secs += secs;
    }

    /// The answer and its statistics, once done.
    pub fn into_result(self) -> (String, GenerationStats) {
        (self.text, self.stats)
    }
}

pub struct Llm {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub path: PathBuf,
    /// Prompt tokens per forward slice.
    pub prefill_chunk: usize,
    window: usize,
    /// The sequence [`Llm::generate`] and the benchmarks use.
    slot: Slot,
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
            window: cache.window(),
            model,
            tokenizer,
            template,
            path: path.to_path_buf(),
            prefill_chunk: PREFILL_CHUNK,
            slot: Slot {
                cache,
                tokens: Vec::new(),
            },
        })
    }

    pub fn context_window(&self) -> usize {
        self.window
    }

    /// A fresh slot (empty cache) for one more concurrent sequence.
    pub fn new_slot(&self) -> Slot {
        Slot {
            cache: self.model.new_cache(self.window),
            tokens: Vec::new(),
        }
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

    /// The prompt tokens of a request, refused when it cannot fit the window.
    pub fn prompt_tokens(&self, request: &GenerationRequest) -> Result<Vec<u32>> {
        let prompt = match &request.prompt {
            Prompt::Chat(messages) => self.chat_tokens(messages)?,
            Prompt::Tokens(t) => t.clone(),
        };
        if prompt.is_empty() || prompt.len() >= self.window {
            return Err(ModelError::ContextFull {
                needed: prompt.len() + 1,
                window: self.window,
            }
            .into());
        }
        Ok(prompt)
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
        let prompt = self.prompt_tokens(request)?;
        // Reuse the keys and values of the longest prefix already computed
        // (the fixed system prompt, or an earlier turn).
        let reused = self.slot.reuse_prefix(&prompt);
        let mut seq = Sequence::new(request.clone(), prompt, reused, started);
        loop {
            let prefilling = seq.is_prefilling();
            if seq.check_before_step(prefilling && !on_text("")) {
                break;
            }
            let input = seq.input(self.prefill_chunk).to_vec();
            let wants = seq.wants_logits(input.len());
            let mut logits = step(&self.model, &mut [(&mut self.slot, &input, wants)])?;
            let piece = seq.after_step(input.len(), logits.pop().flatten(), &self.tokenizer);
            // Every sampled token is a chance to cancel, text or not.
            if !seq.is_prefilling() && !on_text(&piece) {
                let rest = seq.cancel();
                if !rest.is_empty() {
                    on_text(&rest);
                }
                break;
            }
            let rest = seq.check_limits(self.slot.cache.len(), self.window);
            if !rest.is_empty() {
                on_text(&rest);
            }
            if seq.is_done() {
                break;
            }
        }
        Ok(seq.into_result())
    }

    /// One forward step outside generation (benchmarks); `fresh` clears the
    /// cache first.
    pub fn bench_forward(&mut self, tokens: &[u32], fresh: bool) -> Result<Vec<f32>> {
        if fresh {
            self.clear_cache();
        }
        Ok(step(&self.model, &mut [(&mut self.slot, tokens, true)])?
            .pop()
            .flatten()
            .unwrap_or_default())
    }

    /// One batched step over several sequences of their own (benchmarks):
    /// `slots[i]` runs `inputs[i]`; returns each one's logits.
    pub fn bench_forward_batch(
        &self,
        slots: &mut [Slot],
        inputs: &[Vec<u32>],
    ) -> Result<Vec<Option<Vec<f32>>>> {
        let mut work: Vec<(&mut Slot, &[u32], bool)> = slots
            .iter_mut()
            .zip(inputs)
            .map(|(s, i)| (s, i.as_slice(), true))
            .collect();
        step(&self.model, &mut work)
    }

    /// Drop the cached prefix (benchmarks measure cold prefill).
    pub fn clear_cache(&mut self) {
        self.slot.reset();
    }
}

/// One batched forward step: each slot runs its tokens; returns the logits
/// of those that asked. Runs on one of rayon's threads, so the parallel
/// products inside start without waking the caller across pools. A failed
/// step resets every slot in it (their caches are in an unknown state).
pub fn step(
    model: &Model,
    work: &mut [(&mut Slot, &[u32], bool)],
) -> Result<Vec<Option<Vec<f32>>>> {
    let result = {
        let mut items: Vec<BatchItem<'_>> = work
            .iter_mut()
            .map(|(slot, tokens, logits)| BatchItem {
                tokens,
                cache: &mut slot.cache,
                logits: *logits,
            })
            .collect();
        let (result, ()) = rayon::join(|| model.forward_batch(&mut items), || ());
        result
    };
    match result {
        Ok(logits) => {
            for (slot, tokens, _) in work.iter_mut() {
                slot.tokens.extend_from_slice(tokens);
            }
            Ok(logits)
        }
        Err(e) => {
            for (slot, _, _) in work.iter_mut() {
                slot.reset();
            }
            Err(e.into())
        }
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
