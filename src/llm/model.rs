//! The transformer forward pass for the llama, qwen2 and gemma3 families.
//!
//! Weights stay in their GGUF quantization and are multiplied by candle's
//! quantized kernels (AVX-512 VNNI repacked tiles where candle has them).
//! Everything between the matrix products (norms, RoPE, attention, the gated
//! FFN) is our own code on plain `f32` buffers: one pass per operation, no
//! tensor graph, and a KV cache we own, so a prompt prefix can be kept and
//! reused by truncating the cache instead of recomputing it.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};

use super::gguf::{Gguf, GgufError, TensorInfo};
use half::f16;
use half::slice::HalfFloatSliceExt;

use super::kernels::{PackedMatrix, axpy_f16, dot_f16, gemm_many};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported model architecture `{0}` (supported: llama, qwen2, gemma3)")]
    Architecture(String),
    #[error("model file is inconsistent: {0}")]
    Shape(String),
    #[error("inference failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("the prompt needs {needed} tokens but the context window holds {window}")]
    ContextFull { needed: usize, window: usize },
}

pub type Result<T> = std::result::Result<T, ModelError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
    Gemma3,
}

/// How RoPE pairs dimensions: llama's GGUF converter permutes Q/K so pairs
/// are adjacent; qwen2 and gemma keep the halves layout ("neox").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RopeStyle {
    Adjacent,
    Halves,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub rope_theta: f32,
    /// gemma3: RoPE base of the sliding-window layers.
    pub rope_theta_local: f32,
    pub rope_dims: usize,
    /// Linear RoPE scaling (positions divided by this) on global layers.
    pub rope_scale: f32,
    pub rms_eps: f32,
    /// gemma3: window of the local layers; every `sliding_period`-th layer is global.
    pub sliding_window: Option<usize>,
    pub sliding_period: usize,
}

impl ModelConfig {
    fn from_gguf(g: &Gguf) -> Result<ModelConfig> {
        let arch_name = g.string("general.architecture")?;
        let arch = match arch_name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "gemma3" => Arch::Gemma3,
            other => return Err(ModelError::Architecture(other.to_string())),
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let int = |k: &str| -> Result<usize> { Ok(g.u64(&key(k))? as usize) };
        let n_embd = int("embedding_length")?;
        let n_head = int("attention.head_count")?;
        let n_head_kv = g
            .get(&key("attention.head_count_kv"))
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .unwrap_or(n_head);
        let n_layer = int("block_count")?;
        let n_ff = int("feed_forward_length")?;
        let sane = |what: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(ModelError::Shape(format!("{what} = {v} is out of range")))
            } else {
                Ok(v)
            }
        };
        sane("embedding_length", n_embd, 1 << 16)?;
        sane("head_count", n_head, 1024)?;
        sane("head_count_kv", n_head_kv, n_head)?;
        sane("block_count", n_layer, 1024)?;
        sane("feed_forward_length", n_ff, 1 << 18)?;
        if n_head % n_head_kv != 0 {
            return Err(ModelError::Shape(format!(
                "{n_head} query heads cannot share {n_head_kv} KV heads evenly"
            )));
        }
        let head_dim = g
            .get(&key("attention.key_length"))
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .unwrap_or(n_embd / n_head);
        sane("head dimension", head_dim, 1024)?;
        if !head_dim.is_multiple_of(2) {
            return Err(ModelError::Shape(format!(
                "head dimension {head_dim} is odd"
            )));
        }
        let rope_dims = g
            .get(&key("rope.dimension_count"))
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .unwrap_or(head_dim)
            .min(head_dim)
            & !1;
        let float = |k: &str, default: f64| {
            g.get(&key(k)).and_then(|v| v.as_f64()).unwrap_or(default) as f32
        };
        let rope_scale = match g.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
            Some("linear") => float("rope.scaling.factor", 1.0).max(1.0),
            _ => 1.0,
        };
        let (sliding_window, rope_theta_local) = if arch == Arch::Gemma3 {
            let window = g
                .get(&key("attention.sliding_window"))
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .unwrap_or(1024);
            (Some(window), 10_000.0)
        } else {
            (None, 0.0)
        };
        let vocab = g
            .tensor("token_embd.weight")
            .map(|t| t.dims.get(1).copied().unwrap_or(0) as usize)
            .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".into()))?;
        Ok(ModelConfig {
            arch,
            name: g
                .get("general.name")
                .and_then(|v| v.as_str())
                .unwrap_or(arch_name)
                .to_string(),
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            vocab,
            context_length: g
                .get(&key("context_length"))
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .unwrap_or(4096),
            rope_theta: float("rope.freq_base", 10_000.0),
            rope_theta_local,
            rope_dims,
            rope_scale,
            rms_eps: float(
                "attention.layer_norm_rms_epsilon",
                if arch == Arch::Gemma3 { 1e-6 } else { 1e-5 },
            ),
            sliding_window,
            sliding_period: 6,
        })
    }

    /// The shape of the model at `path`, from its header alone (the
    /// weights are mapped, not read).
    pub fn read(path: &std::path::Path) -> Result<ModelConfig> {
        ModelConfig::from_gguf(&Gguf::open(path)?)
    }

    /// Bytes one cached position takes: keys and values of every layer, f16.
    pub fn kv_bytes_per_position(&self) -> usize {
        self.n_layer * 2 * self.n_head_kv * self.head_dim * std::mem::size_of::<f16>()
    }

    /// The KV window a cache gets when asked for `requested` positions.
    pub fn window(&self, requested: usize) -> usize {
        requested.min(self.context_length).max(1)
    }

    fn rope_style(&self) -> RopeStyle {
        match self.arch {
            Arch::Llama => RopeStyle::Adjacent,
            Arch::Qwen2 | Arch::Gemma3 => RopeStyle::Halves,
        }
    }

    fn is_local_layer(&self, layer: usize) -> bool {
        self.sliding_window.is_some() && !(layer + 1).is_multiple_of(self.sliding_period)
    }
}

/// Prompt slices at least this long use the dense copy of a small model's
/// weights (one f32 gemm) instead of quantized row-by-row dot products.
const DENSE_PREFILL_MIN_TOKENS: usize = 8;
/// Models whose weights fit in this many f32 bytes keep a dense copy for prefill.
const DENSE_COPY_MAX_BYTES: usize = 2 << 30;

/// A weight matrix `out × in` with candle's quantized product behind it.
struct Linear {
    weight: QMatMul,
    /// The weights dequantized (`out × in`, row-major), kept for small
    /// models: a prompt is one large f32 gemm, which on CPUs without
    /// repacked kernels for the file's type is several times faster than
    /// quantized dot products per row and token.
    dense: Option<Vec<f32>>,
    /// Q4_1 / Q8_0 weights repacked for our VNNI matrix-vector kernels
    /// (decode), where candle has no fast path for the type or shape.
    packed: Option<PackedMatrix>,
    bias: Option<Vec<f32>>,
    out: usize,
}

impl Linear {
    /// Several products of the same input (Q/K/V, gate/up): one parallel
    /// region for all of them when decoding with packed weights.
    fn forward_many(linears: &[&Linear], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        if m == 1 {
            return Linear::forward_rows(linears, x, 1);
        }
        linears.iter().map(|l| l.forward(x, m)).collect()
    }

    /// `n` independent rows (one token of each of `n` sequences), each
    /// computed exactly as it is when its sequence runs alone: packed
    /// multi-vector products (each weight row read once for all rows), or
    /// candle's quantized product, never the dense prefill path.
    fn forward_rows(linears: &[&Linear], x: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let packed: Option<Vec<&PackedMatrix>> =
            linears.iter().map(|l| l.packed.as_ref()).collect();
        let mut outs = match packed {
            Some(packed) => gemm_many(&packed, x, n),
            None => linears
                .iter()
                .map(|l| l.quantized_product(x, n))
                .collect::<Result<Vec<_>>>()?,
        };
        for (out, l) in outs.iter_mut().zip(linears) {
            l.add_bias(out);
        }
        Ok(outs)
    }

    /// Rows grouped as a batched step groups them: the single-token rows of
    /// every decoding sequence in one product, then each prefill slice on its
    /// own, as it would run alone. Outputs are in row order.
    fn forward_grouped(
        linears: &[&Linear],
        x: &[f32],
        groups: &[RowGroup],
    ) -> Result<Vec<Vec<f32>>> {
        if let [only] = groups {
            return Linear::forward_group(linears, x, only);
        }
        let k = x.len() / groups.iter().map(|g| g.rows.len()).sum::<usize>().max(1);
        let mut outs: Vec<Vec<f32>> = vec![Vec::new(); linears.len()];
        for g in groups {
            let part = Linear::forward_group(linears, &x[g.rows.start * k..g.rows.end * k], g)?;
            for (out, p) in outs.iter_mut().zip(part) {
                out.extend_from_slice(&p);
            }
        }
        Ok(outs)
    }

    fn forward_group(linears: &[&Linear], x: &[f32], g: &RowGroup) -> Result<Vec<Vec<f32>>> {
        let m = g.rows.len();
        if g.single_tokens {
            Linear::forward_rows(linears, x, m)
        } else {
            Linear::forward_many(linears, x, m)
        }
    }

    fn quantized_product(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let k = x.len() / m;
        let input = Tensor::from_slice(x, (m, k), &Device::Cpu)?;
        Ok(self
            .weight
            .forward(&input)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    fn add_bias(&self, y: &mut [f32]) {
        if let Some(bias) = &self.bias {
            for row in y.chunks_exact_mut(self.out) {
                row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
            }
        }
    }

    fn forward(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let k = x.len() / m;
        if m == 1 && self.packed.is_some() {
            return Ok(Linear::forward_many(&[self], x, m)?.remove(0));
        }
        let mut y = match &self.dense {
            Some(w) if m >= DENSE_PREFILL_MIN_TOKENS => {
                let mut y = vec![0f32; m * self.out];
                crate::linalg::matmul_transposed(x, m, k, w, self.out, &mut y);
                y
            }
            _ => self.quantized_product(x, m)?,
        };
        self.add_bias(&mut y);
        Ok(y)
    }
}

/// Consecutive rows of a batched step that go through one product.
#[derive(Debug, Clone)]
struct RowGroup {
    rows: std::ops::Range<usize>,
    /// One row per sequence (decoding): the per-row path.
    single_tokens: bool,
}

/// One sequence's part of a batched forward step.
pub struct BatchItem<'a> {
    /// The tokens to run after what `cache` holds (a prompt slice, or the
    /// last sampled token).
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    /// Whether the logits of the last token are wanted (not for a prompt
    /// slice that is not the last).
    pub logits: bool,
}

struct Layer {
    attn_norm: Vec<f32>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Option<Vec<f32>>,
}

pub struct Model {
    pub config: ModelConfig,
    embeddings: Arc<QTensor>,
    output_norm: Vec<f32>,
    output: Linear,
    layers: Vec<Layer>,
    /// Llama 3.1 per-frequency RoPE divisors (`rope_freqs.weight`).
    rope_freq_factors: Option<Vec<f32>>,
    /// Bytes of weights read per generated token, for the bandwidth ceiling.
    pub weight_bytes: usize,
}

/// Keys and values of every layer for the positions computed so far.
pub struct KvCache {
    /// Per layer: `positions × (n_head_kv · head_dim)`.
    /// f16, as llama.cpp keeps them: half the memory of f32, and the
    /// attention reads half the bytes.
    keys: Vec<Vec<f16>>,
    values: Vec<Vec<f16>>,
    len: usize,
    row: usize,
    window: usize,
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Positions the cache can hold without allocating.
    pub fn capacity(&self) -> usize {
        self.keys
            .iter()
            .chain(&self.values)
            .map(|k| k.capacity() / self.row.max(1))
            .min()
            .unwrap_or(0)
    }

    /// Allocate room for exactly `positions` (a sequence's whole length, so
    /// it never grows while generating; see the worker's KV budget).
    pub fn reserve(&mut self, positions: usize) {
        let want = positions.max(self.len) * self.row;
        for v in self.keys.iter_mut().chain(self.values.iter_mut()) {
            if v.capacity() < want {
                v.reserve_exact(want - v.len());
            } else if v.capacity() > want {
                v.shrink_to(want);
            }
        }
    }

    /// Forget everything, whatever a failed step left behind (positions a
    /// step appended to some layers before it failed are not counted in
    /// `len`), keeping the memory.
    pub fn clear(&mut self) {
        self.len = 0;
        for v in self.keys.iter_mut().chain(self.values.iter_mut()) {
            v.clear();
        }
    }

    /// Forget everything and give the memory back.
    pub fn release(&mut self) {
        self.clear();
        for v in self.keys.iter_mut().chain(self.values.iter_mut()) {
            v.shrink_to_fit();
        }
    }

    /// Replace this cache's content with the first `len` positions of
    /// `other` (a shared prompt prefix another sequence already computed).
    pub fn copy_prefix(&mut self, other: &KvCache, len: usize) {
        let len = len.min(other.len);
        let n = len * self.row;
        for (mine, theirs) in self
            .keys
            .iter_mut()
            .zip(&other.keys)
            .chain(self.values.iter_mut().zip(&other.values))
        {
            mine.clear();
            mine.extend_from_slice(&theirs[..n]);
        }
        self.len = len;
    }

    /// Bytes one position takes in every layer (keys and values, f16).
    pub fn bytes_per_position(&self) -> usize {
        self.keys.len() * 2 * self.row * std::mem::size_of::<f16>()
    }

    /// Append one layer's new keys and values (`positions × row` each).
    fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        for (to, from) in [(&mut self.keys[layer], k), (&mut self.values[layer], v)] {
            let start = to.len();
            to.resize(start + from.len(), f16::ZERO);
            to[start..].convert_from_f32_slice(from);
        }
    }

    /// Forget every position from `len` on (keeps the prefix before it).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            for k in &mut self.keys {
                k.truncate(len * self.row);
            }
            for v in &mut self.values {
                v.truncate(len * self.row);
            }
        }
    }
}

impl Model {
    /// Load every weight from a validated GGUF, checking each shape against
    /// the configuration before use.
    pub fn load(gguf: &Gguf) -> Result<Model> {
        let config = ModelConfig::from_gguf(gguf)?;
        let c = &config;
        let mut weight_bytes = 0usize;
        let q_out = c.n_head * c.head_dim;
        let kv_out = c.n_head_kv * c.head_dim;
        let embeddings =
            Arc::new(qtensor(gguf, "token_embd.weight", &[c.n_embd, c.vocab], false)?.0);
        let keep_dense =
            c.n_layer * (2 * c.n_embd * q_out + 2 * c.n_embd * kv_out + 3 * c.n_embd * c.n_ff) * 4
                <= DENSE_COPY_MAX_BYTES;
        let mut linear = |name: &str, inp: usize, out: usize| -> Result<Linear> {
            let weight_name = format!("{name}.weight");
            let (t, dense) = qtensor(gguf, &weight_name, &[inp, out], keep_dense)?;
            let t = Arc::new(t);
            let packed = packed_matrix(gguf, &weight_name, out, inp)
                .or_else(|| PackedMatrix::from_k_quant(t.clone(), out, inp));
            weight_bytes += match &packed {
                Some(_) => gguf.tensor(&weight_name).map_or(0, |i| i.size),
                None => t.storage_size_in_bytes(),
            };
            let bias = optional_vector(gguf, &format!("{name}.bias"), out)?;
            Ok(Linear {
                weight: QMatMul::from_arc(t)?,
                dense,
                packed,
                bias,
                out,
            })
        };
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let p = format!("blk.{i}");
            layers.push(Layer {
                attn_norm: vector(gguf, &format!("{p}.attn_norm.weight"), c.n_embd)?,
                q: linear(&format!("{p}.attn_q"), c.n_embd, q_out)?,
                k: linear(&format!("{p}.attn_k"), c.n_embd, kv_out)?,
                v: linear(&format!("{p}.attn_v"), c.n_embd, kv_out)?,
                o: linear(&format!("{p}.attn_output"), q_out, c.n_embd)?,
                q_norm: optional_vector(gguf, &format!("{p}.attn_q_norm.weight"), c.head_dim)?,
                k_norm: optional_vector(gguf, &format!("{p}.attn_k_norm.weight"), c.head_dim)?,
                post_attn_norm: optional_vector(
                    gguf,
                    &format!("{p}.post_attention_norm.weight"),
                    c.n_embd,
                )?,
                ffn_norm: vector(gguf, &format!("{p}.ffn_norm.weight"), c.n_embd)?,
                gate: linear(&format!("{p}.ffn_gate"), c.n_embd, c.n_ff)?,
                up: linear(&format!("{p}.ffn_up"), c.n_embd, c.n_ff)?,
                down: linear(&format!("{p}.ffn_down"), c.n_ff, c.n_embd)?,
                post_ffn_norm: optional_vector(
                    gguf,
                    &format!("{p}.post_ffw_norm.weight"),
                    c.n_embd,
                )?,
            });
        }
        let output = if gguf.tensor("output.weight").is_some() {
            linear("output", c.n_embd, c.vocab)?
        } else {
            // Tied embeddings: the output projection is the embedding matrix.
            let packed = packed_matrix(gguf, "token_embd.weight", c.vocab, c.n_embd)
                .or_else(|| PackedMatrix::from_k_quant(embeddings.clone(), c.vocab, c.n_embd));
            weight_bytes += match &packed {
                Some(_) => gguf.tensor("token_embd.weight").map_or(0, |i| i.size),
                None => embeddings.storage_size_in_bytes(),
            };
            Linear {
                weight: QMatMul::from_arc(embeddings.clone())?,
                dense: None,
                packed,
                bias: None,
                out: c.vocab,
            }
        };
        let output_norm = vector(gguf, "output_norm.weight", c.n_embd)?;
        let rope_freq_factors = optional_vector(gguf, "rope_freqs.weight", c.rope_dims / 2)?;
        Ok(Model {
            config,
            embeddings,
            output_norm,
            output,
            layers,
            rope_freq_factors,
            weight_bytes,
        })
    }

    pub fn new_cache(&self, window: usize) -> KvCache {
        let c = &self.config;
        KvCache {
            keys: vec![Vec::new(); c.n_layer],
            values: vec![Vec::new(); c.n_layer],
            len: 0,
            row: c.n_head_kv * c.head_dim,
            window: c.window(window),
        }
    }

    /// Run `tokens` through the model after what `cache` already holds and
    /// return the logits of the last one.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let mut items = [BatchItem {
            tokens,
            cache,
            logits: true,
        }];
        Ok(self
            .forward_batch(&mut items)?
            .pop()
            .flatten()
            .unwrap_or_default())
    }

    /// One step for several sequences at once: every item's tokens run after
    /// what its own cache holds; returns each item's last logits if asked
    /// for. The matrix products take all rows together (decoding rows in one
    /// multi-vector product, so each weight is read once per step), and
    /// attention runs per sequence over its own cache. Every row is computed
    /// exactly as when its sequence runs alone.
    pub fn forward_batch(&self, items: &mut [BatchItem<'_>]) -> Result<Vec<Option<Vec<f32>>>> {
        let c = &self.config;
        for item in items.iter() {
            self.check_item(item)?;
        }
        // Rows: single-token items first (one product for all), then each
        // longer item's rows.
        let mut order: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].tokens.len() == 1)
            .collect();
        let singles = order.len();
        order.extend((0..items.len()).filter(|&i| items[i].tokens.len() > 1));
        let mut groups = Vec::new();
        if singles > 0 {
            groups.push(RowGroup {
                rows: 0..singles,
                single_tokens: true,
            });
        }
        let mut first_row = vec![0usize; items.len()];
        let mut row = singles;
        for (k, &i) in order.iter().enumerate() {
            if k < singles {
                first_row[i] = k;
            } else {
                first_row[i] = row;
                let m = items[i].tokens.len();
                groups.push(RowGroup {
                    rows: row..row + m,
                    single_tokens: false,
                });
                row += m;
            }
        }
        let total = row;
        let tokens: Vec<u32> = order
            .iter()
            .flat_map(|&i| items[i].tokens.iter().copied())
            .collect();
        let ids = Tensor::from_slice(&tokens, total, &Device::Cpu)?;
        let mut x = self
            .embeddings
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if c.arch == Arch::Gemma3 {
            let scale = (c.n_embd as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }
        let spans: Vec<Span> = order
            .iter()
            .map(|&i| Span {
                item: i,
                rows: items[i].tokens.len(),
                start: items[i].cache.len,
            })
            .collect();
        let mut normed = vec![0f32; x.len()];
        for (i, layer) in self.layers.iter().enumerate() {
            rms_norm_rows(&x, &layer.attn_norm, c.rms_eps, &mut normed);
            let attn = self.attention(i, layer, &normed, &groups, &spans, items)?;
            let attn = match &layer.post_attn_norm {
                Some(w) => rms_norm_owned(&attn, w, c.rms_eps),
                None => attn,
            };
            add_in_place(&mut x, &attn);
            rms_norm_rows(&x, &layer.ffn_norm, c.rms_eps, &mut normed);
            let ffn = self.feed_forward(layer, &normed, &groups)?;
            let ffn = match &layer.post_ffn_norm {
                Some(w) => rms_norm_owned(&ffn, w, c.rms_eps),
                None => ffn,
            };
            add_in_place(&mut x, &ffn);
        }
        for item in items.iter_mut() {
            item.cache.len += item.tokens.len();
        }
        // Only each sequence's last position is needed to pick its next
        // token: those rows go through the output product together.
        let wanted: Vec<usize> = (0..items.len()).filter(|&i| items[i].logits).collect();
        let mut last_normed = vec![0f32; wanted.len() * c.n_embd];
        for (k, &i) in wanted.iter().enumerate() {
            let last = first_row[i] + items[i].tokens.len() - 1;
            rms_norm_rows(
                &x[last * c.n_embd..(last + 1) * c.n_embd],
                &self.output_norm,
                c.rms_eps,
                &mut last_normed[k * c.n_embd..(k + 1) * c.n_embd],
            );
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; items.len()];
        if !wanted.is_empty() {
            let logits = Linear::forward_rows(&[&self.output], &last_normed, wanted.len())?
                .pop()
                .unwrap_or_default();
            for (k, &i) in wanted.iter().enumerate() {
                out[i] = Some(logits[k * c.vocab..(k + 1) * c.vocab].to_vec());
            }
        }
        Ok(out)
    }

    fn check_item(&self, item: &BatchItem<'_>) -> Result<()> {
        let m = item.tokens.len();
        if m == 0 {
            return Err(ModelError::Shape("forward on zero tokens".into()));
        }
        if item.cache.len + m > item.cache.window {
            return Err(ModelError::ContextFull {
                needed: item.cache.len + m,
                window: item.cache.window,
            });
        }
        if let Some(&bad) = item
            .tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab)
        {
            return Err(ModelError::Shape(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        Ok(())
    }

    fn attention(
        &self,
        index: usize,
        layer: &Layer,
        x: &[f32],
        groups: &[RowGroup],
        spans: &[Span],
        items: &mut [BatchItem<'_>],
    ) -> Result<Vec<f32>> {
        let c = &self.config;
        let hd = c.head_dim;
        let (q_out, kv_out) = (c.n_head * hd, c.n_head_kv * hd);
        // candle (or our decode kernels) parallelise each product themselves.
        let mut qkv = Linear::forward_grouped(&[&layer.q, &layer.k, &layer.v], x, groups)?;
        let v = qkv.pop().unwrap_or_default();
        let mut k = qkv.pop().unwrap_or_default();
        let mut q = qkv.pop().unwrap_or_default();
        let local = c.is_local_layer(index);
        let (theta, scale) = if local {
            (c.rope_theta_local, 1.0)
        } else {
            (c.rope_theta, c.rope_scale)
        };
        let window = if local { c.sliding_window } else { None };
        let mut ctx = vec![0f32; q.len()];
        // Each sequence's queries, its own cache, its own output rows.
        let mut work: Vec<SeqAttention<'_>> = Vec::with_capacity(spans.len());
        let mut caches: Vec<Option<&mut KvCache>> =
            items.iter_mut().map(|it| Some(&mut *it.cache)).collect();
        // Spans are in row order, so the row slices split off in turn.
        let (mut q_rest, mut k_rest, mut ctx_rest) = (&mut q[..], &mut k[..], &mut ctx[..]);
        let mut v_rest = &v[..];
        for span in spans {
            let (qs, qr) = std::mem::take(&mut q_rest).split_at_mut(span.rows * q_out);
            let (ks, kr) = std::mem::take(&mut k_rest).split_at_mut(span.rows * kv_out);
            let (cs, cr) = std::mem::take(&mut ctx_rest).split_at_mut(span.rows * q_out);
            let (vs, vr) = v_rest.split_at(span.rows * kv_out);
            (q_rest, k_rest, ctx_rest, v_rest) = (qr, kr, cr, vr);
            let Some(cache) = caches[span.item].take() else {
                return Err(ModelError::Shape(
                    "a sequence appears twice in one step".into(),
                ));
            };
            work.push(SeqAttention {
                span,
                cache,
                q: qs,
                k: ks,
                v: vs,
                out: cs,
            });
        }
        let run = |w: &mut SeqAttention<'_>| {
            let SeqAttention {
                span,
                cache,
                q,
                k,
                v,
                out,
            } = w;
            if let Some(w) = &layer.q_norm {
                for head in q.chunks_exact_mut(hd) {
                    rms_norm_in_place(head, w, c.rms_eps);
                }
            }
            if let Some(w) = &layer.k_norm {
                for head in k.chunks_exact_mut(hd) {
                    rms_norm_in_place(head, w, c.rms_eps);
                }
            }
            self.apply_rope(q, c.n_head, span.rows, span.start, theta, scale);
            self.apply_rope(k, c.n_head_kv, span.rows, span.start, theta, scale);
            cache.append(index, k, v);
            let shape = AttnShape {
                m: span.rows,
                start: span.start,
                n_head: c.n_head,
                n_head_kv: c.n_head_kv,
                head_dim: hd,
                window,
            };
            out.copy_from_slice(&attend(q, &cache.keys[index], &cache.values[index], shape));
        };
        // Sequences in parallel when there are several (the products are
        // done, so nothing else wants the cores); one alone runs in place.
        if work.len() > 1 {
            use rayon::prelude::*;
            work.par_iter_mut().for_each(run);
        } else {
            work.iter_mut().for_each(run);
        }
        drop(work);
        Ok(Linear::forward_grouped(&[&layer.o], &ctx, groups)?
            .pop()
            .unwrap_or_default())
    }

    fn feed_forward(&self, layer: &Layer, x: &[f32], groups: &[RowGroup]) -> Result<Vec<f32>> {
        let mut gate_up = Linear::forward_grouped(&[&layer.gate, &layer.up], x, groups)?;
        let up = gate_up.pop().unwrap_or_default();
        let mut gate = gate_up.pop().unwrap_or_default();
        match self.config.arch {
            Arch::Gemma3 => gate
                .iter_mut()
                .zip(&up)
                .for_each(|(g, u)| *g = gelu_tanh(*g) * u),
            _ => gate
                .iter_mut()
                .zip(&up)
                .for_each(|(g, u)| *g = silu(*g) * u),
        }
        Ok(Linear::forward_grouped(&[&layer.down], &gate, groups)?
            .pop()
            .unwrap_or_default())
    }

    fn apply_rope(
        &self,
        x: &mut [f32],
        heads: usize,
        m: usize,
        start: usize,
        theta: f32,
        scale: f32,
    ) {
        let c = &self.config;
        let hd = c.head_dim;
        let half = c.rope_dims / 2;
        let mut inv_freq: Vec<f32> = (0..half)
            .map(|i| theta.powf(-((2 * i) as f32) / c.rope_dims as f32))
            .collect();
        if let Some(factors) = &self.rope_freq_factors {
            inv_freq.iter_mut().zip(factors).for_each(|(f, d)| *f /= d);
        }
        let style = c.rope_style();
        let mut cos = vec![0f32; half];
        let mut sin = vec![0f32; half];
        for t in 0..m {
            let pos = (start + t) as f32 / scale;
            for i in 0..half {
                let (s, co) = (pos * inv_freq[i]).sin_cos();
                cos[i] = co;
                sin[i] = s;
            }
            for h in 0..heads {
                let v = &mut x[(t * heads + h) * hd..][..hd];
                for i in 0..half {
                    let (a, b) = match style {
                        RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                        RopeStyle::Halves => (i, i + half),
                    };
                    let (x0, x1) = (v[a], v[b]);
                    v[a] = x0 * cos[i] - x1 * sin[i];
                    v[b] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }
}

/// One sequence's share of a layer's attention in a batched step.
struct SeqAttention<'a> {
    span: &'a Span,
    cache: &'a mut KvCache,
    q: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a [f32],
    out: &'a mut [f32],
}

/// Where one sequence's rows sit in a batched step.
struct Span {
    item: usize,
    rows: usize,
    /// Positions its cache held before this step.
    start: usize,
}

struct AttnShape {
    m: usize,
    start: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    window: Option<usize>,
}

/// Causal attention of the `m` new queries over every cached position,
/// one task per head. Prefill uses gemm for both products (on this slice's
/// keys and values widened to f32 once per KV head); decode (m = 1) uses
/// dot products straight on the f16 cache, which is all one row needs.
fn attend(q: &[f32], keys: &[f16], values: &[f16], s: AttnShape) -> Vec<f32> {
    let hd = s.head_dim;
    let total = s.start + s.m;
    let row = s.n_head_kv * hd;
    let q_row = s.n_head * hd;
    let group = s.n_head / s.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    // Prefill: each KV head's keys and values as f32, `total × hd`.
    let widened: Vec<(Vec<f32>, Vec<f32>)> = if s.m == 1 {
        Vec::new()
    } else {
        (0..s.n_head_kv)
            .map(|kvh| {
                let widen = |src: &[f16]| {
                    let mut out = vec![0f32; total * hd];
                    for (p, o) in out.chunks_exact_mut(hd).enumerate() {
                        src[p * row + kvh * hd..p * row + (kvh + 1) * hd].convert_to_f32_slice(o);
                    }
                    out
                };
                (widen(keys), widen(values))
            })
            .collect()
    };
    // Heads run one after another: the products inside are small, and a
    // second thread pool beside candle's would fight it for the cores.
    let per_head: Vec<Vec<f32>> = (0..s.n_head)
        .map(|h| {
            let kvh = h / group;
            let k = &keys[kvh * hd..];
            let v = &values[kvh * hd..];
            let qh = &q[h * hd..];
            let mut scores = vec![0f32; s.m * total];
            if s.m == 1 {
                for (p, score) in scores.iter_mut().enumerate() {
                    *score = dot_f16(&qh[..hd], &k[p * row..p * row + hd]) * scale;
                }
            } else {
                crate::linalg::scaled_scores(
                    qh,
                    q_row,
                    &widened[kvh].0,
                    hd,
                    (s.m, total, hd),
                    scale,
                    &mut scores,
                );
            }
            for (t, r) in scores.chunks_exact_mut(total).enumerate() {
                let pos = s.start + t;
                let first = s.window.map_or(0, |w| (pos + 1).saturating_sub(w));
                r[..first].iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
                r[pos + 1..].iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
                crate::linalg::softmax(r);
            }
            let mut out = vec![0f32; s.m * hd];
            if s.m == 1 {
                for (p, &w) in scores.iter().enumerate() {
                    if w != 0.0 {
                        axpy_f16(w, &v[p * row..p * row + hd], &mut out);
                    }
                }
            } else {
                crate::linalg::weighted_values(
                    &scores,
                    &widened[kvh].1,
                    hd,
                    (s.m, total, hd),
                    &mut out,
                );
            }
            out
        })
        .collect();
    let mut ctx = vec![0f32; s.m * q_row];
    for (h, out) in per_head.iter().enumerate() {
        for t in 0..s.m {
            ctx[t * q_row + h * hd..][..hd].copy_from_slice(&out[t * hd..(t + 1) * hd]);
        }
    }
    ctx
}

fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    for (o, x) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / n as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        o.iter_mut()
            .zip(x.iter().zip(w))
            .for_each(|(o, (x, w))| *o = x * inv * w);
    }
}

fn rms_norm_owned(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    rms_norm_rows(x, w, eps, &mut out);
    out
}

fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let n = x.len();
    let ms = x.iter().map(|v| v * v).sum::<f32>() / n as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter_mut().zip(w).for_each(|(x, w)| *x *= inv * w);
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

/// Read a 1-D f32-convertible tensor of exactly `len` values.
fn vector(g: &Gguf, name: &str, len: usize) -> Result<Vec<f32>> {
    optional_vector(g, name, len)?.ok_or_else(|| GgufError::MissingTensor(name.into()).into())
}

fn optional_vector(g: &Gguf, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    let Some(info) = g.tensor(name) else {
        return Ok(None);
    };
    if info.dims != [len as u64] {
        return Err(ModelError::Shape(format!(
            "`{name}` has shape {:?}, expected [{len}]",
            info.dims
        )));
    }
    let t = load_qtensor(g, info)?;
    Ok(Some(
        t.dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?,
    ))
}

/// Load a 2-D weight whose GGUF dims must be exactly `dims` (row length first).
/// With `fast_types`, types candle has no fast kernel for are converted to
/// Q8_0 on load (near-lossless: 8-bit blocks of 32 hold 4- and 5-bit levels
/// to within half a step of the 8-bit grid) so every product takes the
/// VNNI path.
///
/// With `keep_dense`, also returns the exact dequantized weights.
fn qtensor(
    g: &Gguf,
    name: &str,
    dims: &[usize],
    keep_dense: bool,
) -> Result<(QTensor, Option<Vec<f32>>)> {
    let info = g
        .tensor(name)
        .ok_or_else(|| GgufError::MissingTensor(name.into()))?;
    let expected: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    if info.dims != expected {
        return Err(ModelError::Shape(format!(
            "`{name}` has shape {:?}, expected {expected:?}",
            info.dims
        )));
    }
    let t = load_qtensor(g, info)?;
    let slow = matches!(
        info.dtype,
        GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
    );
    if !slow && !keep_dense {
        return Ok((t, None));
    }
    let dense = t.dequantize(&Device::Cpu)?;
    let quantized = if slow && dims[0].is_multiple_of(32) {
        QTensor::quantize(&dense, GgmlDType::Q8_0)?
    } else {
        t
    };
    let dense = keep_dense
        .then(|| dense.flatten_all().and_then(|d| d.to_vec1::<f32>()))
        .transpose()?;
    Ok((quantized, dense))
}

/// Repack a Q4_1 or Q8_0 weight for the decode kernels (`None` for other
/// types, or shapes the kernels do not take).
fn packed_matrix(g: &Gguf, name: &str, rows: usize, cols: usize) -> Option<PackedMatrix> {
    let info = g.tensor(name)?;
    let bytes = g.tensor_bytes(info);
    match info.dtype {
        GgmlDType::Q4_1 => PackedMatrix::from_q4_1(bytes, rows, cols),
        GgmlDType::Q8_0 => PackedMatrix::from_q8_0(bytes, rows, cols),
        _ => None,
    }
}

fn load_qtensor(g: &Gguf, info: &TensorInfo) -> Result<QTensor> {
    let bytes = g.tensor_bytes(info);
    let storage = QStorage::Cpu(info.dtype.from_data(std::borrow::Cow::Borrowed(bytes)));
    Ok(QTensor::new(storage, info.shape())?)
}
