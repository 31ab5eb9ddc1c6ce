//! The `ask` and `chat` commands: grounded answers from the library, and
//! plain chat with a model file.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::{AskArgs, ChatArgs};
use crate::config::Config;
use crate::library::Library;
use crate::llm::{Event, GenerationRequest, GenerationStats, Llm, Message, Prompt, Worker};
use crate::rag::{Answer, Asker, Plan, Planned};

pub fn ask(config: &Config, args: AskArgs) -> Result<ExitCode> {
    let model_path = args
        .model
        .clone()
        .unwrap_or_else(|| config.llm_model_path());
    let max_new = args.max_tokens.unwrap_or(config.llm.max_new_tokens);
    // The tokenizer alone (cheap) decides what fits; the weights are loaded
    // only if the evidence gate lets the question through.
    let asker = Asker::open(config, &model_path)?.with_max_new_tokens(max_new);
    let library = Library::open(config)?;
    let collections = (!args.collection.is_empty()).then_some(args.collection.as_slice());
    let Planned { plan, degraded } = asker.plan(&library, &args.question, collections)?;
    if degraded {
        eprintln!(
            "Note: the vector store is unreachable ({}); passages were found by keyword search alone.",
            config.vector.url
        );
    }
    let (messages, sources) = match plan {
        Plan::NotCovered { best_similarity } => {
            tracing::info!(?best_similarity, "evidence gate closed; model not called");
            print_answer(&Answer::not_covered(), None, args.json);
            return Ok(ExitCode::SUCCESS);
        }
        Plan::Generate { messages, sources } => (messages, sources),
    };
    let llm = Llm::load(&model_path, config.llm.context_window)
        .with_context(|| format!("loading chat model {}", model_path.display()))?;
    let worker = Worker::start(llm, config.llm.queue_capacity);
    let ticket = asker.submit(&worker, messages)?;
    let mut stdout = std::io::stdout();
    let (text, stats) = loop {
        match ticket.recv() {
            Some(Event::Text(piece)) if !args.json => {
                print!("{piece}");
                stdout.flush().ok();
            }
            Some(Event::Finished { text, stats }) => break (text, stats),
            Some(Event::Failed(e)) => bail!("generation failed: {e}"),
            Some(_) => {}
            None => bail!("the inference worker stopped"),
        }
    };
    if !args.json {
        println!();
    }
    let answer = asker.finish(&text, &sources);
    print_answer(&answer, Some(&stats), args.json);
    Ok(ExitCode::SUCCESS)
}

fn print_answer(answer: &Answer, stats: Option<&GenerationStats>, json: bool) {
    if json {
        let value = serde_json::json!({ "answer": answer, "stats": stats });
        println!("{value}");
        return;
    }
    if stats.is_none() {
        println!("{}", answer.text);
        return;
    }
    if answer.citations.iter().any(|c| c.attributed) {
        println!("\nSources matching the answer (the model cited none; matched by shared words):");
    } else if !answer.citations.is_empty() {
        println!("\nCitations:");
    }
    if !answer.citations.is_empty() {
        for c in &answer.citations {
            println!(
                "  [{}] {} (document {}, page {}, chunk {}): \"{}\"",
                c.number, c.document_title, c.document_id, c.page, c.chunk_id, c.quote
            );
        }
    }
    let uncited: Vec<_> = answer
        .sources
        .iter()
        .filter(|s| !answer.citations.iter().any(|c| c.number == s.number))
        .collect();
    if !uncited.is_empty() {
        println!("\nAlso given to the model (not cited):");
        for s in uncited {
            println!(
                "  [{}] {} (document {}, page {}, chunk {}, similarity {:.2})",
                s.number, s.document_title, s.document_id, s.page, s.chunk_id, s.similarity
            );
        }
    }
    if !answer.dropped_citations.is_empty() {
        println!(
            "\n(removed citation numbers that match no source: {:?})",
            answer.dropped_citations
        );
    }
    if let Some(s) = stats {
        eprintln!(
            "\n[{} prompt tokens ({} reused), {} generated; first token {:.0} ms; {:.1} tok/s]",
            s.prompt_tokens,
            s.reused_tokens,
            s.generated_tokens,
            s.time_to_first_token_ms,
            s.generated_tokens as f64 / (s.decode_ms / 1000.0).max(1e-9)
        );
    }
}

pub fn chat(config: &Config, args: ChatArgs) -> Result<ExitCode> {
    let path = args
        .model
        .clone()
        .unwrap_or_else(|| config.llm_model_path());
    let mut llm = Llm::load(&path, config.llm.context_window)
        .with_context(|| format!("loading {}", path.display()))?;
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
