//! The `ask` and `chat` commands: grounded answers from the library, and
//! plain chat with a model file.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::{AskArgs, ChatArgs};
use crate::config::Config;
use crate::library::Library;
use crate::llm::{GenerationRequest, Llm, Message, Prompt};
use crate::rag::{Answer, Asker, ModelTier, Plan, Planned, Progress, Verification};

pub fn ask(config: &Config, args: AskArgs) -> Result<ExitCode> {
    let tier_paths = match &args.model {
        Some(model) => vec![model.clone()],
        None => config.llm_tier_paths(),
    };
    let mut config = config.clone();
    if let Some(tokens) = args.max_tokens {
        config.llm.max_new_tokens = tokens;
    }
    let library = Library::open(&config)?;
    // The tokenizers alone (cheap) decide what fits; the weights are loaded
    // only if the evidence gate lets the question through.
    let asker = Asker::open(&config, &tier_paths, library.shared_embedder())?;
    let collections = (!args.collection.is_empty()).then_some(args.collection.as_slice());
    let Planned { plan, degraded } = asker.plan(&library, &args.question, collections)?;
    if degraded {
        eprintln!(
            "Note: the vector store is unreachable ({}); passages were found by keyword search alone.",
            config.vector.url
        );
    }
    let prepared = match plan {
        Plan::NotCovered { gate } => {
            tracing::info!(?gate, "evidence gate closed; model not called");
            print_answer(&Answer::not_covered(), args.json, false);
            return Ok(ExitCode::SUCCESS);
        }
        Plan::Generate(prepared) => prepared,
    };
    let mut tiers = Vec::new();
    for path in &tier_paths {
        tiers.push(
            ModelTier::start(path, &config)
                .with_context(|| format!("loading chat model {}", path.display()))?,
        );
    }
    let json = args.json;
    let mut stdout = std::io::stdout();
    let mut show = |p: Progress| {
        if !json {
            print_progress(&p);
            stdout.flush().ok();
        }
        true
    };
    let answer = asker
        .respond(&tiers, &prepared, &mut show)
        .map_err(|_| anyhow::anyhow!("the answer was cancelled"))?;
    print_answer(&answer, json, config.rag.show_removed_sentences);
    Ok(ExitCode::SUCCESS)
}

/// Show what is known as it becomes known: the quotes first, then each
/// verified sentence.
fn print_progress(progress: &Progress) {
    match progress {
        Progress::Quotes(quotes) if !quotes.is_empty() => {
            println!("From the documents:");
            for q in quotes.iter() {
                println!(
                    "  [{}] \"{}\" ({}, page {})",
                    q.number,
                    one_line(&q.quote),
                    q.document_title,
                    q.page
                );
            }
        }
        Progress::Started { tier } => println!("\nAnswer ({tier}, every sentence checked):"),
        Progress::Sentence { text, .. } => println!("  {text}"),
        Progress::Removed(s) => eprintln!(
            "  (removed: {})",
            s.reason
                .as_deref()
                .unwrap_or("not supported by the documents")
        ),
        Progress::Escalating { from, to } => {
            println!("\nToo little of {from}'s answer is supported; asking {to}.")
        }
        _ => {}
    }
}

/// The answer; in JSON, the removed sentences keep their reason but not
/// their text unless `rag.show_removed_sentences` is on (unsupported text
/// reaches no one by default, here neither).
/// A quote on one line (passages keep their line breaks).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn print_answer(answer: &Answer, json: bool, show_removed: bool) {
    if json {
        let mut shown = answer.clone();
        if !show_removed {
            for s in shown.checks.sentences.iter_mut().filter(|s| !s.supported) {
                s.text.clear();
            }
        }
        println!("{}", serde_json::json!({ "answer": shown }));
        return;
    }
    if !answer.grounded {
        println!("{}", answer.text);
        return;
    }
    let how = match answer.verification {
        Verification::Verified => format!("answered by {} · verified", answer.tier),
        Verification::Partial => format!(
            "answered by {} · partly verified (unsupported sentences removed)",
            answer.tier
        ),
        _ => "quoted from the documents (no generated sentence was supported)".to_string(),
    };
    println!("\n{how}");
    if answer.verification != Verification::Quoted && !answer.citations.is_empty() {
        println!("Supported by:");
        for c in &answer.citations {
            println!(
                "  [{}] {} (document {}, page {}, chunk {}): \"{}\"",
                c.number,
                c.document_title,
                c.document_id,
                c.page,
                c.chunk_id,
                one_line(&c.quote)
            );
        }
    }
    let u = &answer.checks.usage;
    eprintln!(
        "[tiers tried: {}; {} prompt + {} generated tokens; {:.1} CPU-s; {:.0} ms, of which {:.0} ms quoting and verifying]",
        if answer.checks.tiers_tried.is_empty() {
            "none".to_string()
        } else {
            answer.checks.tiers_tried.join(" → ")
        },
        u.prompt_tokens,
        u.generated_tokens,
        u.cpu_secs,
        u.wall_ms,
        u.verify_ms
    );
}

pub fn chat(config: &Config, args: ChatArgs) -> Result<ExitCode> {
    let path = args
        .model
        .clone()
        .unwrap_or_else(|| config.llm_model_path());
    let mut llm = Llm::load(&path, config.llm.context_window)
        .with_context(|| format!("loading {}", path.display()))?;
    // Slices as the server reads them, so an answer here is the server's.
    llm.prefill_chunk = config.llm.prefill_chunk.max(1);
    let mut sampling = config.llm.sampling.clone();
    if let Some(t) = args.temperature {
        sampling.temperature = t;
    }
    if let Some(s) = args.seed {
        sampling.seed = s;
    }
    let max_new = args.max_tokens.unwrap_or(config.llm.max_new_tokens);
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::new("system", system.clone()));
    }
    let interactive = args.prompt.is_none();
    if interactive {
        let c = &llm.model.config;
        eprintln!(
            "{} ({:?}, {} layers, context {}). Empty line or Ctrl-D quits; /reset clears the conversation.",
            c.name,
            c.arch,
            c.n_layer,
            llm.context_window()
        );
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let user = match &args.prompt {
            Some(p) if messages.iter().all(|m: &Message| m.role != "user") => p.clone(),
            Some(_) => break,
            None => {
                eprint!("> ");
                std::io::stderr().flush().ok();
                match lines.next() {
                    Some(line) => line?,
                    None => break,
                }
            }
        };
        if user.trim().is_empty() {
            break;
        }
        if user.trim() == "/reset" {
            messages.retain(|m| m.role == "system");
            continue;
        }
        messages.push(Message::new("user", user));
        let request = GenerationRequest {
            prompt: Prompt::Chat(messages.clone()),
            max_new_tokens: max_new,
            sampling: sampling.clone(),
            deadline: Some(Instant::now() + Duration::from_secs(config.llm.deadline_secs)),
            ignore_end: false,
        };
        let mut stdout = std::io::stdout();
        let (reply, stats) = llm.generate(&request, &mut |piece| {
            print!("{piece}");
            stdout.flush().is_ok()
        })?;
        println!();
        eprintln!(
            "[{} prompt tokens ({} reused), {} generated, {:.1} tok/s, stop: {:?}]",
            stats.prompt_tokens,
            stats.reused_tokens,
            stats.generated_tokens,
            stats.generated_tokens as f64 / (stats.decode_ms / 1000.0).max(1e-9),
            stats.stop
        );
        messages.push(Message::new("assistant", reply));
    }
    Ok(ExitCode::SUCCESS)
}
