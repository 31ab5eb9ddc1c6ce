//! Sentence embeddings from a BERT model (all-MiniLM-L6-v2 by default), done
//! the sentence-transformers way: WordPiece tokens truncated to `max_tokens`,
//! mean pooling over the tokens, L2 normalisation.
//!
//! Weights are loaded with candle; the forward pass is [`encoder`], written for
//! CPU throughput (packed tokens, no padding, fused projections).

pub mod encoder;

use std::path::Path;

use candle_transformers::models::bert::Config as BertConfig;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model file {path}: {reason} (run models/fetch.sh)")]
    Model { path: String, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
}

pub struct Embedder {
    encoder: encoder::Encoder,
    tokenizer: Tokenizer,
    dim: usize,
    batch_size: usize,
}

/// Token ids of one text, truncated.
struct Encoded {
    ids: Vec<u32>,
}

impl Embedder {
    pub fn load(dir: &Path, max_tokens: usize, batch_size: usize) -> Result<Embedder, EmbedError> {
        let model_err = |file: &str, reason: String| EmbedError::Model {
            path: dir.join(file).display().to_string(),
            reason,
        };
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| model_err("config.json", e.to_string()))?;
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|e| model_err("config.json", e.to_string()))?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(model_err("model.safetensors", "missing".into()));
        }
        let encoder = encoder::Encoder::load(&weights, &config)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| model_err("tokenizer.json", e.to_string()))?;
        // The shipped tokenizer pads and truncates to 128; we truncate to the
        // sentence-transformers length and pad per batch ourselves.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens.min(config.max_position_embeddings),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(Embedder {
            encoder,
            tokenizer,
            dim: config.hidden_size,
            batch_size: batch_size.max(1),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of tokens the model sees for `text` (after truncation).
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.encode(&[text])?[0].ids.len())
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Encoded>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| Encoded {
                ids: e.get_ids().to_vec(),
            })
            .collect())
    }

    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut v = self.embed(&[text])?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Embed texts; output order matches input order. Also returns how many
    /// (non-padding) tokens were processed, for throughput reporting.
    pub fn embed_counted(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, usize), EmbedError> {
        let encoded = self.encode(texts)?;
        let tokens = encoded.iter().map(|e| e.ids.len()).sum();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].ids.len()));
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size) {
            let vectors = self.forward_batch(batch.iter().map(|&i| &encoded[i]))?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok((out, tokens))
    }

    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_counted(texts)?.0)
    }

    fn forward_batch<'e>(
        &self,
        batch: impl ExactSizeIterator<Item = &'e Encoded>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let seqs: Vec<&[u32]> = batch.map(|e| e.ids.as_slice()).collect();
        Ok(self.encoder.embed(&seqs))
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
