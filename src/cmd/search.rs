//! `enclave search` and `enclave docs list|show|delete`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{DocsCommand, ModeArg, SearchArgs};
use crate::config::Config;
use crate::library::Library;
use crate::rag::fusion::SideScore;
use crate::rag::retrieve::{self, Mode, Search, SearchHit};

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Hybrid => Mode::Hybrid,
            ModeArg::Bm25 => Mode::Bm25,
            ModeArg::Dense => Mode::Dense,
        }
    }
}

pub fn search(config: &Config, args: SearchArgs) -> Result<ExitCode> {
    let library = Library::open(config)?;
    let collections = (!args.collection.is_empty()).then_some(args.collection.as_slice());
    let limit = args.limit.unwrap_or(config.search.default_limit);
    let search = Search::new(&args.query, collections, limit, args.mode.into());
    let hits = retrieve::search(&library, &search)?.hits;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else if hits.is_empty() {
        println!("no matching passages");
    } else {
        for (i, hit) in hits.iter().enumerate() {
            print_hit(i + 1, hit);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_hit(rank: usize, hit: &SearchHit) {
    let side =
        |s: Option<SideScore>| s.map_or("-".to_string(), |s| format!("#{} {:.3}", s.rank, s.score));
    println!(
        "{rank:>2}. [{:.4}] {} (doc {}, page {}, chunk {}, {})  bm25 {}  dense {}",
        hit.scores.score,
        hit.chunk.document_title,
        hit.chunk.document_id,
        hit.chunk.page,
        hit.chunk.chunk_id,
        hit.chunk.collection,
        side(hit.scores.bm25),
        side(hit.scores.dense)
    );
    let snippet: String = hit
        .chunk
        .text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let snippet: String = snippet.chars().take(300).collect();
    println!("    {snippet}");
}

pub fn docs(config: &Config, cmd: DocsCommand) -> Result<ExitCode> {
    let mut library = Library::open(config)?;
    match cmd {
        DocsCommand::List { collection, json } => {
            let docs = library.store().documents(collection.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                println!(
                    "{:>6}  {:<9} {:<12} {:>5} {:>6} {:>10}  title",
                    "id", "status", "collection", "pages", "chunks", "bytes"
                );
                for d in &docs {
                    println!(
                        "{:>6}  {:<9} {:<12} {:>5} {:>6} {:>10}  {}",
                        d.id,
                        format!("{:?}", d.status).to_lowercase(),
                        d.collection,
                        d.page_count,
                        d.chunk_count,
                        d.size_bytes,
                        d.title
                    );
                }
                println!("{} documents", docs.len());
            }
        }
        DocsCommand::Show { id, text, json } => {
            let doc = library.store().document(id)?;
            let pages = if text {
                library.store().pages(id)?
            } else {
                Vec::new()
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "document": doc, "pages": pages })
                    )?
                );
            } else {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                for (number, has_layer, page_text) in pages {
                    println!(
                        "--- page {number}{} ---",
                        if has_layer { "" } else { " (no text layer)" }
                    );
                    println!("{page_text}");
                }
            }
        }
        DocsCommand::Delete { id, json } => {
            let receipt = library.delete(id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&receipt)?);
            } else {
                println!(
                    "deleted document {} ({:?}) from {}: {} chunks removed; BM25 entries left {}, vectors left {}, original removed: {}; at {}",
                    receipt.document_id,
                    receipt.title,
                    receipt.collection,
                    receipt.chunks_removed,
                    receipt.bm25_entries_remaining,
                    receipt.vectors_remaining,
                    receipt.original_removed,
                    receipt.completed_at
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
