//! `enclave bench serve`: the load test's burst, at the engine. Every user
//! asks its questions one after another, all users starting at once, with
//! the prompts Enclave's planner builds (retrieval, gate, passages fitted to
//! the window) for a question set over its corpus. Measures what a person
//! waits for: time to the first generated token and to the whole answer,
//! queueing included; and what the machine does: aggregate tokens/s and peak
//! memory. The same prompts can be dumped and replayed against llama-server
//! (`tests/reference/replay_llama_server.py`), so the serving layers are
//! compared on equal work.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::eval_answers::{default_corpus, ingest_folder, percentile, read_plain};
use crate::cli::ServeBenchArgs;
use crate::config::Config;
use crate::library::Library;
use crate::llm::{Event, GenerationRequest, Llm, Prompt, Worker, WorkerOptions};
use crate::rag::{Asker, Plan};

/// One answer of the burst, as its user saw it.
struct Timing {
    first_token: Duration,
    whole: Duration,
    tokens: usize,
    prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from a cache (the slot's
    /// own, or copied from another slot).
    reused_tokens: usize,
}

#[derive(Serialize)]
struct Report {
    users: usize,
    each: usize,
    parallel: usize,
    answers: usize,
    /// Questions the evidence gate refused (no generation).
    not_covered: usize,
    failed: usize,
    wall_s: f64,
    first_token_p50_s: f64,
    first_token_p95_s: f64,
    whole_answer_p50_s: f64,
    whole_answer_p95_s: f64,
    generated_tokens: usize,
    tokens_per_s: f64,
    prompt_tokens: usize,
    reused_prompt_tokens: usize,
    peak_rss_mib: f64,
}

pub fn run(config: &Config, args: ServeBenchArgs) -> Result<()> {
    if args.users == 0 || args.each == 0 {
        bail!("--users and --each must be at least 1");
    }
    let questions = read_plain(&args.questions)?;
    if questions.is_empty() {
        bail!("{} has no questions", args.questions.display());
    }
    let scratch = tempfile::tempdir().context("cannot create scratch dir")?;
    let mut config = config.clone();
    config.data_dir = scratch.path().to_path_buf();
    let mut library = Library::open(&config)?;
    let corpus = default_corpus(&args.questions);
    eprintln!("Indexing {}…", corpus.display());
    ingest_folder(&mut library, &corpus, &args.questions)?;
    library.optimize()?;
    let model = config.llm_model_path();
    let asker = Asker::open(
        &config,
        std::slice::from_ref(&model),
        library.shared_embedder(),
    )?;
    let llm = Llm::load(&model, config.llm.context_window)
        .with_context(|| format!("loading {}", model.display()))?;
    // One prompt per question, as the planner builds it; None: refused.
    let mut prompts = Vec::new();
    for q in &questions {
        prompts.push(match asker.plan(&library, &q.text, None)?.plan {
            Plan::Generate(p) => Some(llm.chat_tokens(&p.messages)?),
            Plan::NotCovered { .. } => None,
        });
    }
    drop(library);
    let burst: Vec<(usize, usize, Option<&Vec<u32>>)> = (0..args.users)
        .flat_map(|u| (0..args.each).map(move |k| (u, k)))
        .map(|(u, k)| (u, k, prompts[(u * args.each + k) % prompts.len()].as_ref()))
        .collect();
    let max_new_tokens = config.llm.max_new_tokens;
    if let Some(path) = &args.dump_prompts {
        dump(path, &burst, max_new_tokens)?;
    }
    let mut options = WorkerOptions::from_config(&config.llm);
    options.capacity = options.capacity.max(args.users);
    if let Some(p) = args.parallel {
        options.parallel = p.max(1);
    }
    let worker = Worker::start(llm, options);
    eprintln!(
        "{} users × {} questions, {} answers at once…",
        args.users, args.each, worker.plan.parallel
    );
    let sampling = config.llm.sampling.clone();
    let started = Instant::now();
    let results: Vec<Result<Option<Timing>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.users)
            .map(|u| {
                let (worker, burst, sampling) = (&worker, &burst, &sampling);
                scope.spawn(move || {
                    burst
                        .iter()
                        .filter(|(user, _, _)| *user == u)
                        .map(|(_, _, tokens)| match tokens {
                            None => Ok(None),
                            Some(tokens) => {
                                let request = GenerationRequest {
                                    prompt: Prompt::Tokens((*tokens).clone()),
                                    max_new_tokens,
                                    sampling: sampling.clone(),
                                    deadline: None,
                                    ignore_end: false,
                                };
                                answer(worker, request).map(Some)
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err("a user thread panicked".into())])
            })
            .collect()
    });
    let wall = started.elapsed();
    let report = summarise(&args, worker.plan.parallel, &results, wall);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} answers ({} refused by the gate, {} failed) in {:.1} s with {} at once: \
             first token p50 {:.2} s, p95 {:.2} s; whole answer p50 {:.2} s, p95 {:.2} s; \
             {} tokens, {:.1} tokens/s; {} of {} prompt tokens from a cached prefix; \
             peak RSS {:.0} MiB",
            report.answers,
            report.not_covered,
            report.failed,
            report.wall_s,
            report.parallel,
            report.first_token_p50_s,
            report.first_token_p95_s,
            report.whole_answer_p50_s,
            report.whole_answer_p95_s,
            report.generated_tokens,
            report.tokens_per_s,
            report.reused_prompt_tokens,
            report.prompt_tokens,
            report.peak_rss_mib
        );
    }
    for e in results.iter().filter_map(|r| r.as_ref().err()).take(3) {
        eprintln!("failed: {e}");
    }
    Ok(())
}

/// Submit and wait, timing the first non-empty piece and the end.
fn answer(worker: &Worker, request: GenerationRequest) -> Result<Timing, String> {
    let submitted = Instant::now();
    let ticket = worker.submit(request).map_err(|e| e.to_string())?;
    let mut first = None;
    loop {
        match ticket.recv() {
            Some(Event::Text(t)) if !t.is_empty() => {
                first.get_or_insert_with(|| submitted.elapsed());
            }
            Some(Event::Finished { stats, .. }) => {
                let whole = submitted.elapsed();
                return Ok(Timing {
                    first_token: first.unwrap_or(whole),
                    whole,
                    tokens: stats.generated_tokens,
                    prompt_tokens: stats.prompt_tokens,
                    reused_tokens: stats.reused_tokens,
                });
            }
            Some(Event::Failed(e)) => return Err(e),
            None => return Err("the worker stopped".into()),
            _ => {}
        }
    }
}

fn summarise(
    args: &ServeBenchArgs,
    parallel: usize,
    results: &[Result<Option<Timing>, String>],
    wall: Duration,
) -> Report {
    let timings: Vec<&Timing> = results
        .iter()
        .filter_map(|r| r.as_ref().ok()?.as_ref())
        .collect();
    let secs = |f: fn(&Timing) -> Duration| {
        let mut v: Vec<f64> = timings.iter().map(|t| f(t).as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (first, whole) = (secs(|t| t.first_token), secs(|t| t.whole));
    let tokens: usize = timings.iter().map(|t| t.tokens).sum();
    Report {
        users: args.users,
        each: args.each,
        parallel,
        answers: timings.len(),
        not_covered: results.iter().filter(|r| matches!(r, Ok(None))).count(),
        failed: results.iter().filter(|r| r.is_err()).count(),
        wall_s: wall.as_secs_f64(),
        first_token_p50_s: percentile(&first, 0.5),
        first_token_p95_s: percentile(&first, 0.95),
        whole_answer_p50_s: percentile(&whole, 0.5),
        whole_answer_p95_s: percentile(&whole, 0.95),
        generated_tokens: tokens,
        tokens_per_s: tokens as f64 / wall.as_secs_f64().max(1e-9),
        prompt_tokens: timings.iter().map(|t| t.prompt_tokens).sum(),
        reused_prompt_tokens: timings.iter().map(|t| t.reused_tokens).sum(),
        peak_rss_mib: crate::os::peak_rss_kib() as f64 / 1024.0,
    }
}

/// The burst's prompts, in llama-server's `/completion` terms.
fn dump(
    path: &std::path::Path,
    burst: &[(usize, usize, Option<&Vec<u32>>)],
    max_new_tokens: usize,
) -> Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for (user, turn, tokens) in burst {
        if let Some(tokens) = tokens {
            let line = serde_json::json!({
                "user": user,
                "turn": turn,
                "prompt": tokens,
                "n_predict": max_new_tokens,
            });
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
