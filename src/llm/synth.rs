//! Synthetic GGUF models: the exact tensor shapes and quantization types of
//! a real model, filled with random values.
//!
//! There is no 7B model on a development machine, but throughput does not
//! depend on weight values: a file with Llama-2-7B's shapes and the
//! Q4_K_M type mix runs at the speed of the real thing (its output is noise).
//! The tiny shapes give tests a model of every supported architecture.

use std::io::Write;
use std::path::Path;

use candle_core::quantized::GgmlDType;

use super::gguf::{Value, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthShape {
    /// Llama-2-7B: 32 layers, 4096 wide, 32 heads, FFN 11008, vocabulary 32000.
    #[value(name = "7b")]
    Llama7b,
    /// A two-layer llama for tests.
    TinyLlama,
    /// A two-layer qwen2 (biases on Q/K/V, byte-level BPE vocabulary).
    TinyQwen2,
    /// A two-layer gemma3 (Q/K norms, post norms, sliding window).
    TinyGemma3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthQuant {
    /// llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for the output and for
    /// attn_v / ffn_down in the layers llama.cpp gives more bits.
    #[value(name = "q4_k_m")]
    Q4KM,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "f32")]
    F32,
}

struct Dims {
    arch: &'static str,
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    n_head_kv: usize,
    n_ff: usize,
    vocab: usize,
    context: usize,
}

fn dims(shape: SynthShape) -> Dims {
    match shape {
        SynthShape::Llama7b => Dims {
            arch: "llama",
            n_layer: 32,
            n_embd: 4096,
            n_head: 32,
            n_head_kv: 32,
            n_ff: 11008,
            vocab: 32000,
            context: 4096,
        },
        SynthShape::TinyLlama | SynthShape::TinyQwen2 | SynthShape::TinyGemma3 => Dims {
            arch: match shape {
                SynthShape::TinyQwen2 => "qwen2",
                SynthShape::TinyGemma3 => "gemma3",
                _ => "llama",
            },
            n_layer: 2,
            n_embd: 256,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 512,
            vocab: 512,
            context: 2048,
        },
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and
/// every third one between get the larger type in the _M mixes.
fn use_more_bits(layer: usize, n_layer: usize) -> bool {
    let eighth = n_layer / 8;
    layer < eighth || layer >= 7 * n_layer / 8 || (layer - eighth) % 3 == 2
}

fn weight_type(quant: SynthQuant, name: &str, layer: Option<usize>, n_layer: usize) -> GgmlDType {
    match quant {
        SynthQuant::F32 => GgmlDType::F32,
        SynthQuant::Q8_0 => GgmlDType::Q8_0,
        SynthQuant::Q4KM => {
            let more = layer.is_some_and(|l| use_more_bits(l, n_layer));
            if name == "output"
                || (more && (name.ends_with("attn_v") || name.ends_with("ffn_down")))
            {
                GgmlDType::Q6K
            } else {
                GgmlDType::Q4K
            }
        }
    }
}

/// Build the file and write it to `path`; returns its size in bytes.
pub fn write(path: &Path, shape: SynthShape, quant: SynthQuant) -> std::io::Result<u64> {
    let d = dims(shape);
    if quant == SynthQuant::Q4KM && !d.n_embd.is_multiple_of(256) {
        return Err(std::io::Error::other(
            "Q4_K needs rows that are multiples of 256",
        ));
    }
    let mut w = Writer::new();
    let arch = d.arch;
    let head_dim = d.n_embd / d.n_head;
    let meta = |w: &mut Writer, k: &str, v: Value| {
        w.meta(&format!("{arch}.{k}"), v);
    };
    w.meta("general.architecture", Value::String(arch.into()));
    w.meta(
        "general.name",
        Value::String(format!("synthetic-{shape:?}-{quant:?}").to_lowercase()),
    );
    w.meta("general.alignment", Value::U32(32));
    meta(&mut w, "context_length", Value::U32(d.context as u32));
    meta(&mut w, "embedding_length", Value::U32(d.n_embd as u32));
    meta(&mut w, "block_count", Value::U32(d.n_layer as u32));
    meta(&mut w, "feed_forward_length", Value::U32(d.n_ff as u32));
    meta(&mut w, "attention.head_count", Value::U32(d.n_head as u32));
    meta(
        &mut w,
        "attention.head_count_kv",
        Value::U32(d.n_head_kv as u32),
    );
    meta(&mut w, "rope.dimension_count", Value::U32(head_dim as u32));
    meta(&mut w, "rope.freq_base", Value::F32(10_000.0));
    meta(&mut w, "attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    if arch == "gemma3" {
        meta(&mut w, "attention.key_length", Value::U32(head_dim as u32));
        meta(
            &mut w,
            "attention.value_length",
            Value::U32(head_dim as u32),
        );
        meta(&mut w, "attention.sliding_window", Value::U32(4));
    }
    vocabulary(&mut w, arch, d.vocab);

    let e = d.n_embd as u64;
    let kv = (d.n_head_kv * head_dim) as u64;
    let ff = d.n_ff as u64;
    let add = |w: &mut Writer, name: String, dims: Vec<u64>, layer: Option<usize>| {
        let base = name.trim_end_matches(".weight").trim_end_matches(".bias");
        let base = base.rsplit('.').next().unwrap_or(base);
        let dtype = if dims.len() == 1 {
            GgmlDType::F32
        } else {
            let kind = if name.starts_with("output.") {
                "output"
            } else {
                base
            };
            weight_type(quant, kind, layer, d.n_layer)
        };
        w.tensor(&name, dims, dtype, None);
    };
    add(
        &mut w,
        "token_embd.weight".into(),
        vec![e, d.vocab as u64],
        None,
    );
    for l in 0..d.n_layer {
        let p = format!("blk.{l}");
        add(&mut w, format!("{p}.attn_norm.weight"), vec![e], Some(l));
        add(&mut w, format!("{p}.attn_q.weight"), vec![e, e], Some(l));
        add(&mut w, format!("{p}.attn_k.weight"), vec![e, kv], Some(l));
        add(&mut w, format!("{p}.attn_v.weight"), vec![e, kv], Some(l));
        add(
            &mut w,
            format!("{p}.attn_output.weight"),
            vec![e, e],
            Some(l),
        );
        if arch == "qwen2" {
            add(&mut w, format!("{p}.attn_q.bias"), vec![e], Some(l));
            add(&mut w, format!("{p}.attn_k.bias"), vec![kv], Some(l));
            add(&mut w, format!("{p}.attn_v.bias"), vec![kv], Some(l));
        }
        if arch == "gemma3" {
            let hd = head_dim as u64;
            add(&mut w, format!("{p}.attn_q_norm.weight"), vec![hd], Some(l));
            add(&mut w, format!("{p}.attn_k_norm.weight"), vec![hd], Some(l));
            add(
                &mut w,
                format!("{p}.post_attention_norm.weight"),
                vec![e],
                Some(l),
            );
            add(
                &mut w,
                format!("{p}.post_ffw_norm.weight"),
                vec![e],
                Some(l),
            );
        }
        add(&mut w, format!("{p}.ffn_norm.weight"), vec![e], Some(l));
        add(&mut w, format!("{p}.ffn_gate.weight"), vec![e, ff], Some(l));
        add(&mut w, format!("{p}.ffn_up.weight"), vec![e, ff], Some(l));
        add(&mut w, format!("{p}.ffn_down.weight"), vec![ff, e], Some(l));
    }
    add(&mut w, "output_norm.weight".into(), vec![e], None);
    if arch != "gemma3" {
        add(
            &mut w,
            "output.weight".into(),
            vec![e, d.vocab as u64],
            None,
        );
    }

    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::with_capacity(8 << 20, file);
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    w.write_to(&mut out, |name, dtype, buf| {
        fill(&mut rng, name, dtype, buf)
    })?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// A SentencePiece vocabulary for llama/gemma3, byte-level BPE for qwen2.
fn vocabulary(w: &mut Writer, arch: &str, vocab: usize) {
    let mut tokens = Vec::with_capacity(vocab);
    let mut types = Vec::with_capacity(vocab);
    let mut scores = Vec::with_capacity(vocab);
    if arch == "qwen2" {
        // The 256 byte-level characters, then ChatML markers, then fillers.
        for b in 0..=255u8 {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let c = if printable {
                char::from(b)
            } else {
                let offset = (0..b)
                    .filter(|x| !matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF))
                    .count();
                char::from_u32(256 + offset as u32).unwrap_or('?')
            };
            tokens.push(c.to_string());
            types.push(1);
        }
        for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
            tokens.push(special.to_string());
            types.push(3);
        }
        while tokens.len() < vocab {
            tokens.push(format!("filler{}", tokens.len()));
            types.push(1);
        }
        w.meta("tokenizer.ggml.model", Value::String("gpt2".into()));
        w.meta("tokenizer.ggml.pre", Value::String("qwen2".into()));
        w.meta(
            "tokenizer.ggml.merges",
            Value::Array(vec![Value::String("Ġ t".into())]),
        );
        w.meta("tokenizer.ggml.eos_token_id", Value::U32(257));
        w.meta("tokenizer.ggml.bos_token_id", Value::U32(256));
        w.meta("tokenizer.ggml.add_bos_token", Value::Bool(false));
    } else {
        let gemma = arch == "gemma3";
        for (t, ty) in [("<unk>", 2), ("<s>", 3), ("</s>", 3)] {
            tokens.push(t.to_string());
            types.push(ty);
        }
        if gemma {
            for t in ["<start_of_turn>", "<end_of_turn>"] {
                tokens.push(t.to_string());
                types.push(3);
            }
        }
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        while tokens.len() < vocab {
            tokens.push(format!("▁w{}", tokens.len()));
            types.push(1);
        }
        scores.extend((0..tokens.len()).map(|i| Value::F32(-(i as f32))));
        w.meta("tokenizer.ggml.model", Value::String("llama".into()));
        w.meta("tokenizer.ggml.scores", Value::Array(scores));
        w.meta("tokenizer.ggml.bos_token_id", Value::U32(1));
        w.meta("tokenizer.ggml.eos_token_id", Value::U32(2));
        w.meta("tokenizer.ggml.unknown_token_id", Value::U32(0));
        if gemma {
            w.meta("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        }
    }
    w.meta(
        "tokenizer.ggml.tokens",
        Value::Array(tokens.into_iter().map(Value::String).collect()),
    );
    w.meta(
        "tokenizer.ggml.token_type",
        Value::Array(types.into_iter().map(Value::I32).collect()),
    );
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill_bytes(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn f16_bytes(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// Random weights with small, finite scales so activations stay in range.
fn fill(rng: &mut XorShift, name: &str, dtype: GgmlDType, buf: &mut [u8]) {
    match dtype {
        GgmlDType::F32 => {
            let norm = name.contains("norm");
            for c in buf.chunks_exact_mut(4) {
                let v = if norm { 1.0 } else { 0.02 * rng.unit() };
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlDType::Q8_0 => {
            rng.fill_bytes(buf);
            for block in buf.chunks_exact_mut(34) {
                block[..2].copy_from_slice(&f16_bytes(0.0002));
            }
        }
        GgmlDType::Q4K => {
            rng.fill_bytes(buf);
            for block in buf.chunks_exact_mut(144) {
                block[..2].copy_from_slice(&f16_bytes(0.0005));
                block[2..4].copy_from_slice(&f16_bytes(0.0002));
            }
        }
        GgmlDType::Q6K => {
            rng.fill_bytes(buf);
            for block in buf.chunks_exact_mut(210) {
                block[208..210].copy_from_slice(&f16_bytes(0.0002));
            }
        }
        _ => rng.fill_bytes(buf),
    }
}
