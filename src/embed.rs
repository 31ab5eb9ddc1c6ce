//! Sentence embeddings with candle's BERT (all-MiniLM-L6-v2 by default), done
//! the sentence-transformers way: WordPiece tokens truncated to `max_tokens`,
//! mean pooling over the attention mask, L2 normalisation.
//!
//! Throughput comes from batching texts of similar length together (sorted by
//! token count) so little compute is spent on padding.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
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
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    batch_size: usize,
}

/// Token ids of one text, truncated.
struct Encoded {
    ids: Vec<u32>,
}

impl Embedder {
    pub fn load(dir: &Path, max_tokens: usize, batch_size: usize) -> Result<Embedder, EmbedError> {
        let device = Device::Cpu;
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
        // SAFETY: the weights file is memory-mapped read-only; Enclave never
        // writes model files while running.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &config)?;
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
            model,
            tokenizer,
            device,
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
        batch: impl ExactSizeIterator<Item = &'e Encoded> + Clone,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = batch.len();
        let width = batch.clone().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; n * width];
        let mut mask = vec![0u32; n * width];
        for (row, e) in batch.enumerate() {
            ids[row * width..row * width + e.ids.len()].copy_from_slice(&e.ids);
            mask[row * width..row * width + e.ids.len()].fill(1);
        }
        let ids = Tensor::from_vec(ids, (n, width), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, width), &self.device)?;
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?; // (n, width, dim)
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, width, 1)
        let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?; // (n, dim)
        let counts = mask_f.sum(1)?.clamp(1e-9, f32::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        let normalised = mean.broadcast_div(&norms)?;
        Ok(normalised.to_vec2::<f32>()?)
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
