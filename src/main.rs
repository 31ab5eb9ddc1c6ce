//! `enclave`: a private, on-premise RAG appliance in one binary.

use std::process::ExitCode;

use clap::Parser;
use enclave::{cli, cmd, extract};

/// Keep freed buffers in the heap for reuse. By default glibc serves every
/// allocation over 128 KiB with a fresh mmap and unmaps it on free, so the
/// embedder's large short-lived tensors page-fault on every operation
/// (measured: +14 % embedding throughput with these settings).
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Everything Enclave writes (the database with every conversation and
/// password hash, originals, indexes, backups, exports, keys) is for its own
/// user: whatever umask it was started with, nothing it creates is readable
/// by group or others. The packaged unit's `UMask=0027` is not the only guard.
fn private_files() {
    // SAFETY: umask has no preconditions and cannot fail; it only changes
    // the mode bits of files created afterwards.
    unsafe {
        let inherited = libc::umask(0o077);
        libc::umask(inherited | 0o077);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    private_files();
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
    if args
        .get(1)
        .is_some_and(|a| a == extract::worker::PROBE_SUBCOMMAND)
    {
        let (Some(file), Some(address)) = (args.get(2), args.get(3)) else {
            return ExitCode::from(2);
        };
        let address = address.to_string_lossy();
        return ExitCode::from(
            extract::worker::run_probe(std::path::Path::new(file), &address) as u8,
        );
    }
    let cli = cli::Cli::parse();
    if let Some(threads) = cli.compute_threads() {
        // SAFETY: still single-threaded here; candle and rayon read these once,
        // when their thread pools start.
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
            std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        }
    }
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
