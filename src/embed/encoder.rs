//! A BERT encoder forward pass written for throughput on CPU.
//!
//! candle's generic BERT pads every batch to its longest text and spends about
//! half its time outside matrix products (scalar erf, per-op thread barriers,
//! fresh buffers per op). Here the tokens of all texts in a batch are packed
//! without padding, so each dense layer is one large matrix product (gemm's
//! AVX-512/AVX2 kernels, the ones candle uses), attention runs per text and per
//! head in parallel, Q/K/V are one fused projection, and GELU uses a vectorisable
//! erf. Weights come from the safetensors file through candle's loader.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::Config as BertConfig;
use rayon::prelude::*;

use super::EmbedError;

struct Layer {
    /// Q, K and V stacked: (3·hidden × hidden), row-major like PyTorch's Linear.
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    ln1: (Vec<f32>, Vec<f32>),
    ff1_w: Vec<f32>,
    ff1_b: Vec<f32>,
    ff2_w: Vec<f32>,
    ff2_b: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
}

pub struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    max_positions: usize,
    vocab: usize,
    eps: f32,
}

fn weights_err(reason: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model {
        path: "model.safetensors".into(),
        reason: reason.to_string(),
    }
}

impl Encoder {
    pub fn load(weights: &Path, config: &BertConfig) -> Result<Encoder, EmbedError> {
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu)?;
        let get = |name: &str, len: usize| -> Result<Vec<f32>, EmbedError> {
            let t: &Tensor = tensors
                .get(name)
                .or_else(|| tensors.get(&format!("bert.{name}")))
                .ok_or_else(|| weights_err(format!("missing tensor {name}")))?;
            let v = t
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?;
            if v.len() != len {
                return Err(weights_err(format!(
                    "tensor {name} has {} values, expected {len}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let ln = |prefix: &str| -> Result<(Vec<f32>, Vec<f32>), EmbedError> {
            Ok((
                get(&format!("{prefix}.weight"), h)?,
                get(&format!("{prefix}.bias"), h)?,
            ))
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_w.extend(get(&format!("{p}.attention.self.{part}.weight"), h * h)?);
                qkv_b.extend(get(&format!("{p}.attention.self.{part}.bias"), h)?);
            }
            layers.push(Layer {
                qkv_w,
                qkv_b,
                out_w: get(&format!("{p}.attention.output.dense.weight"), h * h)?,
                out_b: get(&format!("{p}.attention.output.dense.bias"), h)?,
                ln1: ln(&format!("{p}.attention.output.LayerNorm"))?,
                ff1_w: get(&format!("{p}.intermediate.dense.weight"), i * h)?,
                ff1_b: get(&format!("{p}.intermediate.dense.bias"), i)?,
                ff2_w: get(&format!("{p}.output.dense.weight"), h * i)?,
                ff2_b: get(&format!("{p}.output.dense.bias"), h)?,
                ln2: ln(&format!("{p}.output.LayerNorm"))?,
            });
        }
        if config.vocab_size == 0 || config.max_position_embeddings == 0 {
            return Err(weights_err("empty vocabulary or position table"));
        }
        if config.num_attention_heads == 0 || !h.is_multiple_of(config.num_attention_heads) {
            return Err(weights_err("hidden size not divisible by head count"));
        }
        Ok(Encoder {
            word: get("embeddings.word_embeddings.weight", config.vocab_size * h)?,
            position: get(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings * h,
            )?,
            token_type: get(
                "embeddings.token_type_embeddings.weight",
                config.type_vocab_size * h,
            )?,
            emb_ln: ln("embeddings.LayerNorm")?,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
            intermediate: i,
            max_positions: config.max_position_embeddings,
            vocab: config.vocab_size,
            eps: config.layer_norm_eps as f32,
        })
    }

    /// Mean-pooled, L2-normalised embeddings of token sequences.
    pub fn embed(&self, sequences: &[&[u32]]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let total: usize = sequences
            .iter()
            .map(|s| s.len().min(self.max_positions))
            .sum();
        if total == 0 {
            return vec![vec![0.0; h]; sequences.len()];
        }
        let mut spans = Vec::with_capacity(sequences.len());
        let mut x = vec![0f32; total * h];
        let mut offset = 0;
        for seq in sequences {
            let len = seq.len().min(self.max_positions);
            for (pos, &id) in seq[..len].iter().enumerate() {
                let id = (id as usize).min(self.vocab - 1);
                let row = &mut x[(offset + pos) * h..(offset + pos + 1) * h];
                let w = &self.word[id * h..(id + 1) * h];
                let p = &self.position[pos * h..(pos + 1) * h];
                let t = &self.token_type[..h];
                for j in 0..h {
                    row[j] = w[j] + p[j] + t[j];
                }
            }
            spans.push((offset, len));
            offset += len;
        }
        layer_norm(&mut x, h, &self.emb_ln, self.eps);
        let mut qkv = vec![0f32; total * 3 * h];
        let mut ctx = vec![0f32; total * h];
        let mut tmp = vec![0f32; total * h];
        let mut ff = vec![0f32; total * self.intermediate];
        for layer in &self.layers {
            linear(&x, total, h, &layer.qkv_w, &layer.qkv_b, 3 * h, &mut qkv);
            self.attention(&qkv, &spans, &mut ctx);
            linear(&ctx, total, h, &layer.out_w, &layer.out_b, h, &mut tmp);
            add_in_place(&mut x, &tmp);
            layer_norm(&mut x, h, &layer.ln1, self.eps);
            linear(
                &x,
                total,
                h,
                &layer.ff1_w,
                &layer.ff1_b,
                self.intermediate,
                &mut ff,
            );
            ff.par_chunks_mut(4096)
                .for_each(|c| c.iter_mut().for_each(|v| *v = gelu(*v)));
            linear(
                &ff,
                total,
                self.intermediate,
                &layer.ff2_w,
                &layer.ff2_b,
                h,
                &mut tmp,
            );
            add_in_place(&mut x, &tmp);
            layer_norm(&mut x, h, &layer.ln2, self.eps);
        }
        spans
            .iter()
            .map(|&(start, len)| {
                let mut v = vec![0f32; h];
                for row in x[start * h..(start + len) * h].chunks_exact(h) {
                    v.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                }
                let n = len.max(1) as f32;
                v.iter_mut().for_each(|a| *a /= n);
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|a| *a /= norm);
                v
            })
            .collect()
    }

    /// Scaled dot-product attention, per text and per head, in parallel.
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)], ctx: &mut [f32]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let tasks: Vec<(usize, usize)> = (0..spans.len())
            .flat_map(|s| (0..self.heads).map(move |hd| (s, hd)))
            .collect();
        let results: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(s, hd)| {
                let (start, len) = spans[s];
                let base = start * 3 * h + hd * d;
                let (q, k, v) = (&qkv[base..], &qkv[base + h..], &qkv[base + 2 * h..]);
                let mut scores = vec![0f32; len * len];
                let mut out = vec![0f32; len * d];
                // scores (len × len) = scale · Q · Kᵀ; q, k and v are row views
                // into the packed QKV matrix.
                crate::linalg::scaled_scores(q, 3 * h, k, 3 * h, (len, len, d), scale, &mut scores);
                scores
                    .chunks_exact_mut(len)
                    .for_each(crate::linalg::softmax);
                // out (len × d) = P · V
                crate::linalg::weighted_values(&scores, v, 3 * h, (len, len, d), &mut out);
                out
            })
            .collect();
        for (&(s, hd), out) in tasks.iter().zip(results) {
            let (start, len) = spans[s];
            for i in 0..len {
                ctx[(start + i) * h + hd * d..][..d].copy_from_slice(&out[i * d..(i + 1) * d]);
            }
        }
    }
}

/// out (m × n) = a (m × k) · wᵀ + bias, with w stored (n × k) row-major.
fn linear(a: &[f32], m: usize, k: usize, w: &[f32], bias: &[f32], n: usize, out: &mut [f32]) {
    crate::linalg::matmul_transposed(a, m, k, w, n, out);
    out[..m * n]
        .par_chunks_mut(n)
        .for_each(|row| row.iter_mut().zip(bias).for_each(|(o, b)| *o += b));
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

fn layer_norm(x: &mut [f32], h: usize, (gamma, beta): &(Vec<f32>, Vec<f32>), eps: f32) {
    x.par_chunks_mut(h).for_each(|row| {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    });
}

/// Exact (erf) GELU, with erf from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

fn erf(x: f32) -> f32 {
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_accurate() {
        for &(x, want) in &[
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
            (3.5, 0.999_999_3),
        ] {
            assert!(
                (erf(x) - want).abs() < 2e-6,
                "erf({x}) = {} want {want}",
                erf(x)
            );
        }
    }
}
