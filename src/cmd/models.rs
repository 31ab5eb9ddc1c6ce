//! What models are installed: every file named in `<models_dir>/MANIFEST.tsv`
//! with its expected SHA-256, any other model file an operator copied in (a
//! 7B GGUF, say), and whether the configured chat and embedding models are
//! there. `enclave models list|verify`; `doctor` uses the same check.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::ModelsCommand;
use crate::config::Config;

#[derive(Debug, Clone, Serialize)]
pub struct ModelFile {
    /// Path relative to the models dir.
    pub file: String,
    /// chat, embed, or "" for files the manifest does not list.
    pub role: String,
    pub bytes: u64,
    pub sha256: String,
    /// The manifest's checksum ("" when unlisted).
    pub expected_sha256: String,
    /// ok, mismatch, missing, or unlisted
    pub status: &'static str,
    /// Named by llm.model or embed.model in the config.
    pub configured: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub models_dir: PathBuf,
    pub files: Vec<ModelFile>,
    /// Problems, one line each (empty: all is well).
    pub problems: Vec<String>,
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// (role, installed path, sha256) rows of the manifest.
fn manifest(dir: &Path) -> Result<Vec<(String, String, String)>> {
    let path = dir.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.len() == 5).then(|| (cols[0].into(), cols[3].into(), cols[4].trim().into()))
        })
        .collect())
}

/// Model files under `dir` (recursively), relative paths.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                let rel = rel.to_string_lossy().into_owned();
                let is_model = [".gguf", ".safetensors", ".json"]
                    .iter()
                    .any(|ext| rel.ends_with(ext));
                if is_model {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

pub fn inventory(config: &Config) -> Result<Inventory> {
    let dir = config.models_dir.clone();
    let llm = config.llm.model.to_string_lossy().into_owned();
    let embed = config.embed.model.to_string_lossy().into_owned();
    let configured = |file: &str| file == llm || file.starts_with(&format!("{embed}/"));
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let listed = match manifest(&dir) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!(
                "{e} (install enclave-models-default, or run models/fetch.sh)"
            ));
            Vec::new()
        }
    };
    for (role, file, expected) in &listed {
        let path = dir.join(file);
        let (bytes, sha256, status) = match std::fs::metadata(&path) {
            Ok(m) => {
                let sha = sha256_file(&path)?;
                let status = if sha == *expected { "ok" } else { "mismatch" };
                (m.len(), sha, status)
            }
            Err(_) => (0, String::new(), "missing"),
        };
        if status != "ok" {
            problems.push(format!("{file}: {status}"));
        }
        files.push(ModelFile {
            file: file.clone(),
            role: role.clone(),
            bytes,
            sha256,
            expected_sha256: expected.clone(),
            status,
            configured: configured(file),
        });
    }
    for file in files_under(&dir) {
        if listed.iter().any(|(_, f, _)| *f == file) {
            continue;
        }
        let path = dir.join(&file);
        files.push(ModelFile {
            role: String::new(),
            bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            sha256: sha256_file(&path)?,
            expected_sha256: String::new(),
            status: "unlisted",
            configured: configured(&file),
            file,
        });
    }
    let chat_path = config.llm_model_path();
    if !chat_path.is_file() {
        problems.push(format!(
            "configured chat model {} is not installed",
            chat_path.display()
        ));
    } else if let Err(e) = crate::llm::gguf::Gguf::open(&chat_path) {
        problems.push(format!(
            "configured chat model {}: {e}",
            chat_path.display()
        ));
    }
    for part in ["model.safetensors", "tokenizer.json", "config.json"] {
        let p = config.embed_model_dir().join(part);
        if !p.is_file() {
            problems.push(format!("embedding model file {} is missing", p.display()));
        }
    }
    Ok(Inventory {
        models_dir: dir,
        files,
        problems,
    })
}

pub fn run(config: &Config, cmd: ModelsCommand) -> Result<ExitCode> {
    let (json, verify) = match cmd {
        ModelsCommand::List { json } => (json, false),
        ModelsCommand::Verify { json } => (json, true),
    };
    let inv = inventory(config)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inv)?);
    } else {
        println!("Models in {}:", inv.models_dir.display());
        for f in &inv.files {
            println!(
                "  {:<9} {:>12} bytes  {:<8} {}{}  {}",
                if f.role.is_empty() { "-" } else { &f.role },
                f.bytes,
                f.status,
                f.file,
                if f.configured { " (configured)" } else { "" },
                f.sha256
            );
        }
        for p in &inv.problems {
            println!("problem: {p}");
        }
        if verify && inv.problems.is_empty() {
            println!("All listed model files verified; configured models present.");
        }
    }
    Ok(if verify && !inv.problems.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
