//! Isolation for the format parsers: each file is parsed by a child process of
//! this same binary (`enclave __extract-worker FILE`) under OS limits on address
//! space, CPU time, file writes and open files, and a wall-clock deadline
//! enforced by the parent. Whatever the file does to the parser — panic, abort,
//! loop, balloon — the parent sees a [`Rejection`] for that one file.
//!
//! OCR runs there too. The worker loads Tesseract and its models before it
//! confines itself, reports each page it starts on a progress line on stderr,
//! and the parent's deadline grows by the OCR budget once OCR has begun.

use std::io::{BufRead, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::ocr::Ocr;
use super::{Extracted, ParseLimits, Rejection};
use crate::config::ExtractConfig;

/// Name of the hidden subcommand the parent runs.
pub const WORKER_SUBCOMMAND: &str = "__extract-worker";
/// Name of the hidden subcommand that confines itself as the worker does and
/// reports what it can still reach (`enclave doctor`).
pub const PROBE_SUBCOMMAND: &str = "__extract-probe";
/// Environment variable carrying the parse limits to the worker.
const LIMITS_ENV: &str = "ENCLAVE_EXTRACT_LIMITS";
/// Starts a progress line on the worker's stderr (an ASCII record separator:
/// no parser message begins with it).
const PROGRESS_MARK: &str = "\u{1e}progress ";

/// Extract `path` in a worker process. `max_file_bytes` is checked here, before
/// anything is read.
pub fn extract_isolated(
    path: &Path,
    config: &ExtractConfig,
    max_file_bytes: u64,
) -> Result<Extracted, Rejection> {
    extract_with_progress(path, config, max_file_bytes, &|_| {})
}

/// [`extract_isolated`], telling `progress` what the worker is doing on
/// long work ("OCR page 3").
pub fn extract_with_progress(
    path: &Path,
    config: &ExtractConfig,
    max_file_bytes: u64,
    progress: &dyn Fn(&str),
) -> Result<Extracted, Rejection> {
    let meta = std::fs::metadata(path).map_err(|e| Rejection::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(Rejection::Io("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(Rejection::Empty);
    }
    if meta.len() > max_file_bytes {
        return Err(Rejection::TooLarge {
            size: meta.len(),
            limit: max_file_bytes,
        });
    }
    let exe = worker_executable().map_err(|e| Rejection::WorkerFailed(e.to_string()))?;
    let limits = serde_json::to_string(&ParseLimits::from(config))
        .map_err(|e| Rejection::WorkerFailed(e.to_string()))?;
    let memory = config.memory_limit_mib.saturating_mul(1024 * 1024);
    // Only a file OCR may read gets OCR's CPU time (its magic bytes tell).
    let ocr_secs = if config.ocr && may_need_ocr(&read_head(path)) {
        config.ocr_document_timeout_secs
    } else {
        0
    };
    let cpu_secs = config
        .timeout_secs
        .saturating_add(ocr_secs)
        .saturating_add(1);
    let mut command = Command::new(exe);
    command
        .arg(WORKER_SUBCOMMAND)
        .arg(path)
        .env(LIMITS_ENV, limits)
        .env("RUST_BACKTRACE", "0")
        // Tesseract's OpenMP would start a thread per core for each page and
        // run 3–4× slower on a busy machine; one worker, one thread. Only the
        // thread *limit* is honoured by libgomp here, not OMP_NUM_THREADS.
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills everything it started.
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe prctl(2) and setrlimit(2).
    unsafe {
        command.pre_exec(move || {
            // Dies with us: a worker in its own process group would outlive
            // an interrupted command or a killed server.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            apply_rlimits(memory, cpu_secs)
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| Rejection::WorkerFailed(format!("cannot start worker: {e}")))?;

    // JSON escaping can grow text; allow headroom over the text limit.
    let stdout_cap = config
        .max_output_bytes
        .saturating_mul(2)
        .saturating_add(1 << 20);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || read_capped(stdout, stdout_cap));
    let (progress_tx, progress_rx) = mpsc::channel();
    let err_reader = std::thread::spawn(move || read_stderr(stderr, 64 * 1024, progress_tx));

    let started = Instant::now();
    let mut deadline = started + Duration::from_secs(config.timeout_secs);
    // OCR moves the deadline page by page (a page may take its own limit and
    // a margin for rendering), never past the parse time plus the OCR budget.
    let latest = deadline + Duration::from_secs(ocr_secs);
    let per_page = Duration::from_secs(config.ocr_page_timeout_secs.saturating_add(30));
    let status = loop {
        for line in progress_rx.try_iter() {
            if ocr_secs > 0 && line.starts_with("OCR page") {
                deadline = deadline.max((Instant::now() + per_page).min(latest));
            }
            progress(&line);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill(2) on the worker's own process group (its pid).
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                let _ = out_reader.join();
                let _ = err_reader.join();
                return Err(Rejection::Timeout(started.elapsed().as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(Rejection::WorkerFailed(e.to_string())),
        }
    };
    let (stdout, overflow) = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if overflow {
        return Err(Rejection::OutputTooLarge(config.max_output_bytes));
    }
    if !status.success() {
        return Err(Rejection::WorkerFailed(describe_failure(status, &stderr)));
    }
    serde_json::from_slice::<Result<Extracted, Rejection>>(&stdout)
        .map_err(|e| Rejection::WorkerFailed(format!("unreadable worker output: {e}")))?
}

/// The running binary. Tests run from a test harness binary, so they point the
/// worker at the real `enclave` binary through `ENCLAVE_WORKER_EXE`.
fn worker_executable() -> std::io::Result<std::path::PathBuf> {
    match std::env::var_os("ENCLAVE_WORKER_EXE") {
        Some(p) => Ok(p.into()),
        None => std::env::current_exe(),
    }
}

fn apply_rlimits(memory: u64, cpu_secs: u64) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: plain syscall with a valid pointer to a stack value.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, memory)?;
    set(libc::RLIMIT_CPU, cpu_secs)?;
    set(libc::RLIMIT_CORE, 0)?;
    // The worker only writes to its pipes; it has no business creating files.
    set(libc::RLIMIT_FSIZE, 0)?;
    // Its pipes and its one input; a parser that leaks descriptors stops here.
    set(libc::RLIMIT_NOFILE, 32)?;
    Ok(())
}

/// The worker's stderr: progress lines go to `progress`, the rest is kept
/// (up to `cap` bytes) to explain a failure.
fn read_stderr(source: Option<impl Read>, cap: usize, progress: mpsc::Sender<String>) -> Vec<u8> {
    let Some(source) = source else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut reader = std::io::BufReader::new(source);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A line without a newline for 1 MiB is not progress; keep its start.
        match (&mut reader).take(1 << 20).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(message) = text.strip_prefix(PROGRESS_MARK) {
            let _ = progress.send(message.trim_end().to_string());
        } else if kept.len() < cap {
            kept.extend_from_slice(&line[..line.len().min(cap - kept.len())]);
        }
    }
    kept
}

fn read_capped(source: Option<impl Read>, cap: u64) -> (Vec<u8>, bool) {
    let Some(source) = source else {
        return (Vec::new(), false);
    };
    let mut buf = Vec::new();
    let mut limited = source.take(cap + 1);
    let _ = limited.read_to_end(&mut buf);
    let overflow = buf.len() as u64 > cap;
    if overflow {
        // Drain the rest so the child is not blocked on a full pipe before it is reaped.
        let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
    }
    (buf, overflow)
}

fn describe_failure(status: std::process::ExitStatus, stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if stderr.contains("memory allocation") || stderr.contains("capacity overflow") {
        return "memory limit exceeded while parsing".into();
    }
    match status.signal() {
        Some(libc::SIGXCPU) | Some(libc::SIGKILL) => "CPU time limit exceeded".into(),
        Some(libc::SIGABRT) => "parser aborted (likely memory limit)".into(),
        Some(sig) => format!("parser killed by signal {sig}"),
        None if !last.is_empty() => format!("parser crashed: {}", truncate(last, 200)),
        None => format!("parser exited with {status}"),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Entry point of the worker process: parse one file and print the outcome as JSON.
pub fn run_worker(path: &Path) -> i32 {
    // A parser panic becomes a one-line rejection rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        // Escaped: a message cannot start a line of its own (a fake progress line).
        eprintln!("parser panicked: {msg:?}");
    }));
    let limits: ParseLimits = match std::env::var(LIMITS_ENV)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
    {
        Some(l) => l,
        None => ParseLimits::from(&ExtractConfig::default()),
    };
    // Read the input and, for a file OCR may have to read, load Tesseract
    // and its models; then give up every other file and the network before
    // a parser sees a byte of the input.
    let input = std::fs::read(path).map_err(|e| Rejection::Io(e.to_string()));
    let mut ocr = match &input {
        Ok(bytes) if may_need_ocr(bytes) => Ocr::load(limits.ocr.clone()),
        _ => Ocr::off(limits.ocr.clone(), "not needed for this format"),
    };
    ocr.on_page(|number| eprintln!("{PROGRESS_MARK}OCR page {number}"));
    super::confine::confine_self();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &input {
        Ok(bytes) => super::extract_in_process(bytes, &limits, &mut ocr),
        Err(e) => Err(e.clone()),
    }))
    .unwrap_or_else(|_| {
        Err(Rejection::Malformed {
            format: "document".into(),
            reason: "the parser could not handle this file".into(),
        })
    });
    match serde_json::to_writer(std::io::stdout().lock(), &outcome) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}

/// The first bytes of a file (enough to sniff its type), or none.
fn read_head(path: &Path) -> Vec<u8> {
    let mut head = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(8192).read_to_end(&mut head);
    }
    head
}

/// PDFs and images; sniffing is a comparison of magic bytes, safe before
/// confinement.
fn may_need_ocr(bytes: &[u8]) -> bool {
    use super::Format;
    matches!(
        super::sniff::detect(bytes),
        Ok(Format::Pdf | Format::Png | Format::Jpeg | Format::Tiff)
    )
}

/// Entry point of the probe: confine as the worker does, then try to read
/// `file` and connect to `address`; print what happened as JSON.
pub fn run_probe(file: &Path, address: &str) -> i32 {
    let probe = super::confine::probe(file, address);
    match serde_json::to_writer(std::io::stdout().lock(), &probe) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}

/// Run the probe in a child process (it confines itself for good): what a
/// worker could reach of `file` and of a TCP listener of our own.
pub fn probe_isolation(file: &Path) -> std::io::Result<super::confine::Probe> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    let out = Command::new(worker_executable()?)
        .arg(PROBE_SUBCOMMAND)
        .arg(file)
        .arg(&address)
        .stdin(Stdio::null())
        .output()?;
    drop(listener);
    serde_json::from_slice(&out.stdout).map_err(std::io::Error::other)
}
