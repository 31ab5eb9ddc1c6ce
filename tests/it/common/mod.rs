//! Helpers shared by the integration tests: run the real `enclave` binary
//! against a scratch data dir with the real models from `models/`.

#![allow(dead_code)]

pub mod llm;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn models_dir() -> PathBuf {
    let dir = repo_root().join("models");
    assert!(
        dir.join("all-MiniLM-L6-v2/model.safetensors").is_file(),
        "models are missing: run models/fetch.sh first"
    );
    dir
}

pub fn shared_dir() -> PathBuf {
    repo_root().join("..").join("shared")
}

/// `enclave` with a scratch data dir and the repository's models.
pub fn enclave(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enclave"));
    cmd.env("ENCLAVE_DATA_DIR", data_dir)
        .env("ENCLAVE_MODELS_DIR", models_dir())
        .env("ENCLAVE_LOG", "warn")
        .env_remove("ENCLAVE_CONFIG")
        .current_dir(data_dir.parent().unwrap_or(data_dir));
    cmd
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("enclave runs");
    assert_success(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "enclave failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Config for in-process library tests; the extraction worker is the real binary.
pub fn config(data_dir: &Path) -> enclave::config::Config {
    // SAFETY (test-only): set before any thread of this test reads the environment.
    unsafe { std::env::set_var("ENCLAVE_WORKER_EXE", env!("CARGO_BIN_EXE_enclave")) };
    enclave::config::Config {
        data_dir: data_dir.to_path_buf(),
        models_dir: models_dir(),
        ..Default::default()
    }
}

/// A PDF file from its objects' bodies (object i + 1 is `objects[i]`; the
/// first is the catalog), with a correct cross-reference table.
pub fn pdf_from_objects(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}
