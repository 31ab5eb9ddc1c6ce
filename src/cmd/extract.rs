//! `enclave extract FILE`: the text the extractor gets, page by page, or why
//! it rejects the file.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::ExtractArgs;
use crate::config::Config;
use crate::extract::{self, Rejection};

pub fn extract_cmd(config: &Config, args: ExtractArgs) -> Result<ExitCode> {
    // Long OCR runs say which page they are on (stderr, so --json stays clean).
    let progress = |doing: &str| eprintln!("{doing}…");
    let result: std::result::Result<extract::Extracted, Rejection> =
        extract::worker::extract_with_progress(
            &args.file,
            &config.extract,
            config.ingest.max_file_bytes,
            &progress,
        );
    if args.json {
        let value = match &result {
            Ok(e) => serde_json::json!({ "accepted": true, "extracted": e }),
            Err(r) => serde_json::json!({ "accepted": false, "reason": r.to_string() }),
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        match &result {
            Ok(e) => {
                println!(
                    "format: {}  pages: {}  title: {}",
                    e.format.mime(),
                    e.pages.len(),
                    e.title.as_deref().unwrap_or("-")
                );
                for w in &e.warnings {
                    println!("warning: {w}");
                }
                for p in &e.pages {
                    println!("--- page {}{} ---", p.number, page_note(p));
                    println!("{}", p.text);
                }
            }
            Err(r) => println!("rejected: {r}"),
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// How a page's text was obtained, for its heading.
fn page_note(page: &extract::Page) -> String {
    match (&page.ocr, page.has_text_layer) {
        (Some(ocr), _) => format!(
            " (OCR, confidence {:.0} %{}{})",
            ocr.mean_confidence,
            if ocr.low_confidence { ", LOW" } else { "" },
            if ocr.skew_degrees.abs() >= 0.15 {
                format!(", straightened {:.1}°", ocr.skew_degrees)
            } else {
                String::new()
            }
        ),
        (None, true) => String::new(),
        (None, false) => " (no text layer)".into(),
    }
}
