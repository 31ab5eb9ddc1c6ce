//! `enclave`: a private, on-premise RAG appliance in one binary.

use std::process::ExitCode;

use clap::Parser;
use enclave::{cli, extract};

fn main() -> ExitCode {
    // The extraction worker is this binary too; it must start without reading
    // config, models or logs, so it is dispatched before anything else.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == extract::worker::WORKER_SUBCOMMAND)
    {
        let Some(path) = args.get(2) else {
            return ExitCode::from(2);
        };
        return ExitCode::from(extract::worker::run_worker(std::path::Path::new(path)) as u8);
    }
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
