//! Benchmarks (`enclave bench …`). Speed targets are checked here, never by
//! timed assertions in tests.
//!
//! - `ingest DIR`: real files through the whole pipeline; pages/s, chunks/s,
//!   embedding tokens/s.
//! - `embed FILE`: embedding throughput alone on the texts of a JSONL file (the
//!   same texts `tests/reference/st_embed_bench.py` gives sentence-transformers).
//! - `search`: hybrid query latency (query embedding included) on an index of
//!   `--chunks` chunks. Embedding 100k real chunks takes about half an hour on 2 cores, so
//!   the index is built from real embedded passages recombined: each synthetic
//!   chunk joins the text of two real passages and gets the normalised mean of
//!   their vectors plus noise. Index sizes and shapes are those of a real
//!   library; query embeddings are computed for real on every query.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cli::{BenchCommand, LlmBenchArgs};
use crate::config::Config;
use crate::ingest;
use crate::library::Library;
use crate::rag::retrieve::{self, Mode, Search};

#[derive(Deserialize)]
struct TextRecord {
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
}

pub fn run(config: &Config, cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ingest {
            dir,
            pii,
            rounds,
            policy,
        } => ingest(config, dir, pii, rounds, &policy),
        BenchCommand::Ocr { dir } => super::eval::ocr::bench(config, dir),
        BenchCommand::Embed { file, limit } => embed(config, file, limit),
        BenchCommand::Search {
            seed,
            queries,
            chunks,
            scratch,
            runs,
        } => search(config, seed, queries, chunks, scratch, runs),
        BenchCommand::Llm(args) => llm(config, args),
        BenchCommand::Serve(args) => super::bench_serve::run(config, args),
        BenchCommand::Answers {
            file,
            corpus,
            rounds,
        } => super::eval_answers::bench(config, &file, corpus, rounds),
        BenchCommand::SynthGguf { shape, quant, out } => {
            let started = Instant::now();
            eprintln!("writing {} ({shape:?}, {quant:?})…", out.display());
            let bytes = crate::llm::synth::write(&out, shape, quant)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: {:.2} GB in {:.1} s",
                out.display(),
                bytes as f64 / 1e9,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn llm(config: &Config, args: LlmBenchArgs) -> Result<()> {
    use crate::llm::Llm;
    let path = args
        .model
        .clone()
        .unwrap_or_else(|| config.llm_model_path());
    if args.prompt_tokens == 0 || args.gen_tokens == 0 || args.repetitions == 0 {
        bail!("--prompt-tokens, --gen-tokens and --repetitions must be at least 1");
    }
    if args.parallel.contains(&0) {
        bail!("--parallel takes batch sizes of at least 1");
    }
    let load_started = Instant::now();
    let window = if args.parallel.is_empty() {
        args.prompt_tokens.max(args.gen_tokens) + 8
    } else {
        args.prompt_tokens + args.gen_tokens + 8
    };
    let mut llm =
        Llm::load(&path, window).with_context(|| format!("loading {}", path.display()))?;
    let load_s = load_started.elapsed().as_secs_f64();
    let cfg = llm.model.config.clone();
    // Random ordinary tokens: prefill cost does not depend on which.
    let mut state = 0x9E37_79B9u64;
    let vocab = llm.tokenizer.vocab_size() as u64;
    let prompt: Vec<u32> = (0..args.prompt_tokens)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % vocab) as u32
        })
        .collect();
    let threads = rayon::current_num_threads();
    eprintln!(
        "{} ({:?}, {} layers, {} wide), {} threads, loaded in {load_s:.1} s; warming up…",
        cfg.name, cfg.arch, cfg.n_layer, cfg.n_embd, threads
    );
    // Warm-up: first touches of the weights and one-time repacking.
    llm.bench_forward(&prompt[..prompt.len().min(32)], true)?;
    llm.bench_forward(&prompt[..1], true)?;
    if !args.parallel.is_empty() {
        return batched(&llm, &args, &prompt);
    }
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut first_token = Vec::new();
    for _ in 0..args.repetitions {
        let t = Instant::now();
        llm.bench_forward(&prompt, true)?;
        let s = t.elapsed().as_secs_f64();
        prefill.push(args.prompt_tokens as f64 / s);
        first_token.push(s * 1000.0);
        let t = Instant::now();
        llm.clear_cache();
        for &tok in prompt.iter().cycle().take(args.gen_tokens) {
            llm.bench_forward(&[tok], false)?;
        }
        decode.push(args.gen_tokens as f64 / t.elapsed().as_secs_f64());
    }
    let bandwidth = measure_read_bandwidth();
    let weight_gb = llm.model.weight_bytes as f64 / 1e9;
    let report = serde_json::json!({
        "model": path.display().to_string(),
        "name": cfg.name,
        "threads": threads,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "prefill_tokens_per_s": mean(&prefill),
        "prefill_stddev": stddev(&prefill),
        "decode_tokens_per_s": mean(&decode),
        "decode_stddev": stddev(&decode),
        "time_to_first_token_ms": mean(&first_token),
        "weight_bytes_per_token_gb": weight_gb,
        "read_bandwidth_gb_s": bandwidth,
        "decode_ceiling_tokens_per_s": bandwidth / weight_gb,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "prefill pp{}: {:.1} ± {:.1} tok/s   (time to first token {:.0} ms)",
            args.prompt_tokens,
            mean(&prefill),
            stddev(&prefill),
            mean(&first_token)
        );
        println!(
            "decode  tg{}: {:.2} ± {:.2} tok/s",
            args.gen_tokens,
            mean(&decode),
            stddev(&decode)
        );
        println!(
            "weights read per token {weight_gb:.3} GB; read bandwidth {bandwidth:.1} GB/s; \
             decode ceiling {:.1} tok/s",
            bandwidth / weight_gb
        );
    }
    Ok(())
}

/// One row of the batched benchmark (llama-batched-bench's columns).
#[derive(serde::Serialize)]
struct BatchedRow {
    sequences: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    prefill_s: f64,
    prefill_tokens_per_s: f64,
    decode_s: f64,
    /// All sequences together.
    decode_tokens_per_s: f64,
    per_sequence_tokens_per_s: f64,
}

/// `--parallel`: for each batch size, every sequence reads its own prompt
/// (one slice per sequence per step, as the worker does), then all decode
/// together, one token each per step.
fn batched(llm: &crate::llm::Llm, args: &LlmBenchArgs, prompt: &[u32]) -> Result<()> {
    let mut rows = Vec::new();
    if !args.json {
        println!("|  PP |  TG |  B |  T_PP s | S_PP t/s |  T_TG s | S_TG t/s | per seq t/s |");
        println!("|-----|-----|----|---------|----------|---------|----------|-------------|");
    }
    for &n in &args.parallel {
        let (mut prefill_s, mut decode_s) = (Vec::new(), Vec::new());
        for _ in 0..args.repetitions {
            let mut slots: Vec<_> = (0..n).map(|_| llm.new_slot()).collect();
            // Each sequence its own prompt: rotate the tokens.
            let prompts: Vec<Vec<u32>> = (0..n)
                .map(|i| {
                    let mut p = prompt.to_vec();
                    let shift = i % p.len().max(1);
                    p.rotate_left(shift);
                    p
                })
                .collect();
            let t = Instant::now();
            for start in (0..prompt.len()).step_by(llm.prefill_chunk) {
                let end = (start + llm.prefill_chunk).min(prompt.len());
                let inputs: Vec<Vec<u32>> =
                    prompts.iter().map(|p| p[start..end].to_vec()).collect();
                llm.bench_forward_batch(&mut slots, &inputs)?;
            }
            prefill_s.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for step in 0..args.gen_tokens {
                let inputs: Vec<Vec<u32>> =
                    prompts.iter().map(|p| vec![p[step % p.len()]]).collect();
                llm.bench_forward_batch(&mut slots, &inputs)?;
            }
            decode_s.push(t.elapsed().as_secs_f64());
        }
        let (pp, tg) = (mean(&prefill_s), mean(&decode_s));
        let row = BatchedRow {
            sequences: n,
            prompt_tokens: args.prompt_tokens,
            gen_tokens: args.gen_tokens,
            prefill_s: pp,
            prefill_tokens_per_s: (n * args.prompt_tokens) as f64 / pp,
            decode_s: tg,
            decode_tokens_per_s: (n * args.gen_tokens) as f64 / tg,
            per_sequence_tokens_per_s: args.gen_tokens as f64 / tg,
        };
        if !args.json {
            println!(
                "| {:>3} | {:>3} | {:>2} | {:>7.3} | {:>8.2} | {:>7.3} | {:>8.2} | {:>11.2} |",
                row.prompt_tokens,
                row.gen_tokens,
                n,
                row.prefill_s,
                row.prefill_tokens_per_s,
                row.decode_s,
                row.decode_tokens_per_s,
                row.per_sequence_tokens_per_s
            );
        }
        rows.push(row);
    }
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    }
    Ok(())
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn stddev(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len().max(1) as f64).sqrt()
}

/// Sustained read bandwidth with all threads: sum a 1 GiB buffer, best of 3.
fn measure_read_bandwidth() -> f64 {
    use rayon::prelude::*;
    let words = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let sum: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
            .reduce(|| 0, u64::wrapping_add);
        std::hint::black_box(sum);
        best = best.max((words * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

fn scratch_config(
    config: &Config,
    scratch: Option<PathBuf>,
) -> Result<(Config, Option<tempfile::TempDir>)> {
    let mut config = config.clone();
    let holder = match scratch {
        Some(dir) => {
            config.data_dir = dir;
            None
        }
        None => {
            let t = tempfile::tempdir().context("cannot create scratch dir")?;
            config.data_dir = t.path().to_path_buf();
            Some(t)
        }
    };
    Ok((config, holder))
}

pub fn ingest(
    config: &Config,
    dir: PathBuf,
    pii: crate::cli::PiiBench,
    rounds: usize,
    policy: &str,
) -> Result<()> {
    use crate::cli::PiiBench;
    let files = super::ingest::collect_files(&[dir])?;
    let mut config = config.clone();
    config.pii.default_policy =
        crate::config::PiiPolicy::parse(policy).context("policy: report or redact")?;
    if pii != PiiBench::Both {
        let run = ingest_once(&config, &files, pii == PiiBench::On)?;
        run.print(files.len());
        return Ok(());
    }
    // Alternated in one run: the machines are noisy.
    let mut pairs = Vec::new();
    for round in 1..=rounds.max(1) {
        let on = ingest_once(&config, &files, true)?;
        let off = ingest_once(&config, &files, false)?;
        println!(
            "pair {round}: scanner on {:.2} s (of which scanning {:.3} s, {:.2} %), off {:.2} s, ratio {:.3}  ({} findings)",
            on.secs,
            on.stats.pii_secs,
            on.stats.pii_secs / on.secs * 100.0,
            off.secs,
            on.secs / off.secs,
            on.findings
        );
        pairs.push((on, off));
    }
    let ratios: Vec<f64> = pairs.iter().map(|(on, off)| on.secs / off.secs).collect();
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!(
        "scanner on / off: mean ratio {mean:.3} over {} pairs (min {:.3}, max {:.3})",
        ratios.len(),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
    Ok(())
}

/// One ingest of `files` into a fresh scratch data dir.
struct IngestRun {
    secs: f64,
    pages: usize,
    indexed: usize,
    rejected: usize,
    findings: i64,
    stats: crate::library::IndexStats,
}

impl IngestRun {
    fn print(&self, files: usize) {
        let (secs, s) = (self.secs, self.stats);
        println!(
            "files {files} (indexed {}, rejected or duplicate {}) in {secs:.1} s; {} identifiers found",
            self.indexed, self.rejected, self.findings
        );
        println!("pages/s            {:>10.1}", self.pages as f64 / secs);
        println!(
            "chunks/s           {:>10.1}  ({} chunks)",
            s.chunks as f64 / secs,
            s.chunks
        );
        println!(
            "embed tokens/s     {:>10.1}  ({} tokens in {:.1} s of embedding)",
            s.embed_tokens as f64 / s.embed_secs.max(1e-9),
            s.embed_tokens,
            s.embed_secs
        );
        println!("index commit s     {:>10.1}", s.index_secs);
        println!(
            "identifier scan s  {:>10.3}  ({:.2} % of the ingest)",
            s.pii_secs,
            s.pii_secs / secs * 100.0
        );
    }
}

fn ingest_once(config: &Config, files: &[PathBuf], scan: bool) -> Result<IngestRun> {
    let (mut config, _holder) = scratch_config(config, None)?;
    config.ingest.commit_every_documents = 256;
    let mut library = Library::open(&config)?;
    library.set_pii_scanning(scan);
    let started = Instant::now();
    let (mut pages, mut indexed, mut rejected) = (0usize, 0usize, 0usize);
    for file in files {
        match ingest::add_file(&mut library, file, "bench")? {
            crate::library::Outcome::Indexed { pages: p, .. } => {
                pages += p;
                indexed += 1;
            }
            _ => rejected += 1,
        }
    }
    library.flush()?;
    let secs = started.elapsed().as_secs_f64();
    let findings = library
        .store()
        .collection_policies()?
        .iter()
        .map(|p| p.findings)
        .sum();
    Ok(IngestRun {
        secs,
        pages,
        indexed,
        rejected,
        findings,
        stats: library.stats,
    })
}

fn read_texts(path: &PathBuf, limit: usize) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(limit) {
        let r: TextRecord = serde_json::from_str(line)
            .with_context(|| format!("{}: invalid JSON line", path.display()))?;
        out.push((r.title, r.text));
    }
    if out.is_empty() {
        bail!("{} has no texts", path.display());
    }
    Ok(out)
}

fn embed(config: &Config, file: PathBuf, limit: usize) -> Result<()> {
    let texts = read_texts(&file, limit)?;
    let embedder = crate::embed::Embedder::load(
        &config.embed_model_dir(),
        config.embed.max_tokens,
        config.embed.batch_size,
    )?;
    let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    // Warm-up: page in the weights and let allocators settle.
    embedder.embed(&refs[..refs.len().min(32)])?;
    let started = Instant::now();
    let (_, tokens) = embedder.embed_counted(&refs)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "embedded {} texts, {tokens} tokens in {secs:.2} s: {:.0} tokens/s, {:.1} texts/s (threads {}, batch {})",
        refs.len(),
        tokens as f64 / secs,
        refs.len() as f64 / secs,
        rayon::current_num_threads(),
        config.embed.batch_size
    );
    Ok(())
}

pub fn search(
    config: &Config,
    seed: PathBuf,
    queries: Option<PathBuf>,
    chunks: usize,
    scratch: Option<PathBuf>,
    runs: usize,
) -> Result<()> {
    let (mut config, _holder) = scratch_config(config, scratch)?;
    config.ingest.commit_every_documents = usize::MAX;
    let mut library = Library::open(&config)?;
    let (_, existing) = library.store().counts()?;
    if (existing as usize) < chunks {
        build_synthetic(&mut library, &seed, chunks - existing as usize)?;
    }
    let (docs, total) = library.store().counts()?;
    let (bm25, vectors) = library.index_counts()?;
    eprintln!("index: {docs} documents, {total} chunks (BM25 {bm25}, vectors {vectors})");
    let query_path = queries.unwrap_or_else(|| seed.with_file_name("queries.jsonl"));
    let questions: Vec<String> = read_texts(&query_path, usize::MAX)?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    for q in questions.iter().take(10) {
        retrieve::search(&library, &Search::new(q, None, 10, Mode::Hybrid))?; // warm caches
    }
    let mut latencies = Vec::with_capacity(runs);
    for i in 0..runs {
        let q = &questions[i % questions.len()];
        let t = Instant::now();
        let hits = retrieve::search(&library, &Search::new(q, None, 10, Mode::Hybrid))?.hits;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(hits);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "hybrid search over {total} chunks, {runs} queries (query embedding included): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

fn build_synthetic(library: &mut Library, seed: &PathBuf, count: usize) -> Result<()> {
    let base = read_texts(seed, 5000)?;
    eprintln!("embedding {} seed passages…", base.len());
    let texts: Vec<String> = base
        .iter()
        .map(|(t, x)| {
            if t.is_empty() {
                x.clone()
            } else {
                format!("{t}\n{x}")
            }
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = library.embedder().embed(&refs)?;
    let mut rng = SplitMix(0x5eed);
    let started = Instant::now();
    let batch = 5000;
    let mut made = 0;
    while made < count {
        let n = batch.min(count - made);
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let a = rng.below(texts.len());
            let b = rng.below(texts.len());
            let text = format!("{}\n\n{}", texts[a], texts[b]);
            let mut v: Vec<f32> = vectors[a]
                .iter()
                .zip(&vectors[b])
                .map(|(x, y)| x + y + 0.02 * rng.unit())
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
            v.iter_mut().for_each(|x| *x /= norm);
            items.push((format!("synthetic-{}", made + items.len()), text, v));
        }
        library.add_precomputed("bench", &items)?;
        made += n;
        eprintln!(
            "  {made}/{count} synthetic chunks ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!("optimizing vector index…");
    library.optimize()?;
    Ok(())
}

/// Small deterministic PRNG so benchmark indexes are reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}
