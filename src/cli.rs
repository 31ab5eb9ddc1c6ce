//! The command line: argument definitions and the thin glue from each
//! subcommand to the library. Output for people by default, `--json` for scripts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::extract::{self, Rejection};
use crate::library::{Library, Outcome, SearchHit};
use crate::retrieve::Mode;

#[derive(Parser, Debug)]
#[command(
    name = "enclave",
    version,
    about = "Private, on-premise RAG appliance: your documents, hybrid search, local models."
)]
pub struct Cli {
    /// Config file (TOML). Default: ./enclave.toml if present, else built-in defaults.
    #[arg(long, global = true, env = "ENCLAVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config file).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Add files and folders to the library (extract, chunk, embed, index).
    Ingest(IngestArgs),
    /// Search the library: ranked passages with document, page and scores.
    Search(SearchArgs),
    /// List, show or delete documents.
    #[command(subcommand)]
    Docs(DocsCommand),
    /// Show the text the extractor gets from a file, page by page, or why it rejects it.
    Extract(ExtractArgs),
    /// Measure retrieval quality on a labelled set.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Measure speed.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Rebuild the BM25 and vector indexes from the stored chunks (after changing
    /// search.language or the embedding model).
    Reindex,
    /// Answer a question from the documents, with numbered citations; streams the
    /// answer, then lists the sources.
    Ask(crate::ask::AskArgs),
    /// Chat with a model directly, without documents (for checking a model file).
    Chat(crate::ask::ChatArgs),
    /// Ingest the bundled demo corpus, create the first admin (one-time password
    /// printed) and start the web server; --no-serve only ingests and searches.
    Demo(DemoArgs),
    /// Print the effective configuration (a complete, commented-by-name template).
    Config,
    /// Run the web appliance (HTTPS): chat, admin and auditor pages, JSON API.
    Serve(crate::web::ServeArgs),
    /// Manage accounts (there is no default account: create the first admin here).
    #[command(subcommand)]
    User(crate::manage::UserCommand),
    /// Manage which users and groups may retrieve from which collections.
    #[command(subcommand)]
    Grant(crate::manage::GrantCommand),
    /// Export and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(crate::manage::AuditCommand),
    /// Check config, permissions, models, disk, TLS, the audit chain and index
    /// consistency; exits 1 if anything failed.
    Doctor(crate::doctor::DoctorArgs),
    /// List and verify installed model files (checksums from MANIFEST.tsv).
    #[command(subcommand)]
    Models(crate::models::ModelsCommand),
    /// Copy the database (online), originals, audit key and TLS material to DEST,
    /// while the server runs; indexes are rebuilt on restore.
    Backup(crate::backup::BackupArgs),
    /// Restore a backup into an empty data dir and rebuild the indexes.
    Restore(crate::backup::RestoreArgs),
    /// The vector backend: status, migrate between embedded and an external
    /// Qdrant, rebuild from the stored chunks.
    #[command(subcommand)]
    Vectors(crate::vectors::VectorsCommand),
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files or folders (folders are walked recursively; hidden entries skipped).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Collection to add the documents to.
    #[arg(long, short)]
    pub collection: Option<String>,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// The question or keywords.
    pub query: String,
    /// Restrict to these collections (repeatable). Default: all.
    #[arg(long, short)]
    pub collection: Vec<String>,
    /// Number of passages.
    #[arg(long, short = 'n')]
    pub limit: Option<usize>,
    /// Retriever(s) to use.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    pub mode: ModeArg,
    /// JSON output with per-retriever ranks and scores.
    #[arg(long)]
    pub json: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ModeArg {
    Hybrid,
    Bm25,
    Dense,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Hybrid => Mode::Hybrid,
            ModeArg::Bm25 => Mode::Bm25,
            ModeArg::Dense => Mode::Dense,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// List documents with status, pages and chunks.
    List {
        #[arg(long, short)]
        collection: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one document's metadata (and optionally its extracted text).
    Show {
        id: i64,
        /// Also print the stored page texts.
        #[arg(long)]
        text: bool,
        #[arg(long)]
        json: bool,
    },
    /// Erase a document: original, chunks, BM25 entries and vectors. Prints a receipt.
    Delete {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// nDCG@10, Recall@10/100 and MRR@10 for BM25, dense and hybrid on a BEIR-layout
    /// set (corpus.jsonl, queries.jsonl, qrels/test.tsv), indexed into a scratch dir.
    Retrieval(crate::eval::EvalArgs),
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder with the demo documents.
    #[arg(long, default_value = "packaging/demo")]
    pub corpus: PathBuf,
    /// Question to search for after ingesting.
    #[arg(long, default_value = "How many days of annual leave do staff get?")]
    pub query: String,
    /// Only ingest and search; do not start the web server.
    #[arg(long)]
    pub no_serve: bool,
    /// Address for the web server (default: web.listen).
    #[arg(long)]
    pub listen: Option<String>,
}

impl Cli {
    /// A thread count asked for on the command line, which must be applied
    /// before any thread pool starts.
    pub fn compute_threads(&self) -> Option<usize> {
        match &self.command {
            Command::Bench(crate::bench::BenchCommand::Llm(args)) => args.threads,
            Command::Chat(args) => args.threads,
            _ => None,
        }
        .filter(|&t| t > 0)
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    // The file in use, for commands that change it (`vectors migrate`).
    let config_file = cli
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("enclave.toml")).filter(|p| p.is_file()));
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    init_logging(&config);
    match cli.command {
        Command::Ingest(args) => ingest(&config, args),
        Command::Search(args) => search(&config, args),
        Command::Docs(cmd) => docs(&config, cmd),
        Command::Extract(args) => extract_cmd(&config, args),
        Command::Eval(EvalCommand::Retrieval(args)) => {
            crate::eval::run(&config, args).map(|_| ExitCode::SUCCESS)
        }
        Command::Bench(cmd) => crate::bench::run(&config, cmd).map(|_| ExitCode::SUCCESS),
        Command::Demo(args) => demo(&config, args),
        Command::Ask(args) => crate::ask::ask(&config, args),
        Command::Chat(args) => crate::ask::chat(&config, args),
        Command::Reindex => {
            let library = Library::reindex(&config)?;
            let (docs, chunks) = library.store().counts()?;
            println!("re-indexed {docs} documents, {chunks} chunks");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => crate::web::serve(&config, args),
        Command::User(cmd) => crate::manage::user(&config, cmd),
        Command::Grant(cmd) => crate::manage::grant(&config, cmd),
        Command::Audit(cmd) => crate::manage::audit(&config, cmd),
        Command::Doctor(args) => crate::doctor::run(&config, args),
        Command::Models(cmd) => crate::models::run(&config, cmd),
        Command::Backup(args) => crate::backup::backup(&config, args),
        Command::Restore(args) => crate::backup::restore(&config, args),
        Command::Vectors(cmd) => crate::vectors::run(&config, config_file.as_deref(), cmd),
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log.json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// Every regular file under `paths`, in a stable order. Symlinked folders are
/// not followed (no loops); hidden files and folders are skipped.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut out, 0)?;
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 64 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), out, depth + 1)?;
        } else if kind.is_file() || kind.is_symlink() && entry.path().is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn ingest(config: &Config, args: IngestArgs) -> Result<ExitCode> {
    let files = collect_files(&args.paths)?;
    let collection = args
        .collection
        .unwrap_or_else(|| config.ingest.default_collection.clone());
    let mut library = Library::open(config)?;
    let bar = progress_bar(files.len() as u64, args.json);
    let (mut indexed, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    let mut chunks = 0usize;
    for file in &files {
        bar.set_message(crate::library::sanitise_name(file));
        let outcome = match library.add_file(file, &collection) {
            Ok(o) => o,
            Err(e) => Outcome::Rejected {
                reason: format!("internal error: {e}"),
            },
        };
        match &outcome {
            Outcome::Indexed { chunks: c, .. } => {
                indexed += 1;
                chunks += c;
            }
            Outcome::Duplicate { .. } => duplicates += 1,
            Outcome::Rejected { .. } => rejected += 1,
        }
        let line = if args.json {
            serde_json::json!({ "path": file.display().to_string(), "result": outcome }).to_string()
        } else {
            describe(file, &outcome)
        };
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    }
    bar.set_message("committing indexes");
    library.flush()?;
    bar.finish_and_clear();
    let summary = format!(
        "{} files: {indexed} indexed ({chunks} chunks), {duplicates} duplicates skipped, {rejected} rejected",
        files.len()
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "summary": { "files": files.len(), "indexed": indexed, "chunks": chunks, "duplicates": duplicates, "rejected": rejected } })
        );
    } else {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} eta {eta} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn describe(file: &Path, outcome: &Outcome) -> String {
    let name = file
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect::<String>();
    match outcome {
        Outcome::Indexed {
            document_id,
            pages,
            chunks,
            warnings,
        } => {
            let warn = if warnings.is_empty() {
                String::new()
            } else {
                format!(" [{}]", warnings.join("; "))
            };
            format!(
                "indexed   {name}: document {document_id}, {pages} pages, {chunks} chunks{warn}"
            )
        }
        Outcome::Duplicate { document_id } => {
            format!("duplicate {name}: same content as document {document_id}")
        }
        Outcome::Rejected { reason } => format!("rejected  {name}: {reason}"),
    }
}

fn search(config: &Config, args: SearchArgs) -> Result<ExitCode> {
    let library = Library::open(config)?;
    let collections = (!args.collection.is_empty()).then_some(args.collection.as_slice());
    let limit = args.limit.unwrap_or(config.search.default_limit);
    let hits = library.search(&args.query, collections, limit, args.mode.into())?;
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

fn print_hit(rank: usize, hit: &SearchHit) {
    let side = |s: Option<crate::retrieve::SideScore>| {
        s.map_or("-".to_string(), |s| format!("#{} {:.3}", s.rank, s.score))
    };
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

fn docs(config: &Config, cmd: DocsCommand) -> Result<ExitCode> {
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

fn extract_cmd(config: &Config, args: ExtractArgs) -> Result<ExitCode> {
    let result: std::result::Result<extract::Extracted, Rejection> =
        extract::worker::extract_isolated(
            &args.file,
            &config.extract,
            config.ingest.max_file_bytes,
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
                    println!(
                        "--- page {}{} ---",
                        p.number,
                        if p.has_text_layer {
                            ""
                        } else {
                            " (no text layer)"
                        }
                    );
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

/// The demo's admin: created with a one-time password if there is no admin
/// yet, and granted the demo collection so it can ask questions at once.
fn demo_admin(config: &Config) -> Result<()> {
    use crate::accounts::{self, Grantee, PasswordOrigin, Role};
    use crate::audit::{Actor, Entry};
    let mut store = crate::store::Store::open(&config.data_dir.join("enclave.sqlite"))?;
    store.set_audit(crate::library::audit_sink(config)?);
    if accounts::admin_exists(store.conn())? {
        println!("\nLog in with your admin account (or: enclave user passwd NAME).");
        return Ok(());
    }
    let password = accounts::generate_password();
    let hash = accounts::hash_password(&password)?;
    let actor = Actor::cli();
    store.transact(|tx| -> Result<_> {
        let id = accounts::add_user(tx, "admin", Role::Admin, &hash, PasswordOrigin::OneTime)?;
        let demo = accounts::ensure_collection(tx, "demo")?;
        accounts::grant(tx, demo, Grantee::User(id))?;
        let entry = Entry::new(&actor, "user.add", "user:admin")
            .detail(serde_json::json!({ "role": "admin", "granted": ["demo"] }));
        Ok(((), Some(entry)))
    })?;
    println!("\nCreated the first admin. User name: admin   One-time password: {password}");
    println!(
        "(Shown only now; you choose your own password at the first login. More accounts: \
         enclave user add NAME --role staff|admin|auditor)"
    );
    Ok(())
}

fn demo(config: &Config, args: DemoArgs) -> Result<ExitCode> {
    if !args.corpus.is_dir() {
        bail!(
            "demo corpus {} not found (run from the repository root)",
            args.corpus.display()
        );
    }
    let files = collect_files(std::slice::from_ref(&args.corpus))?;
    let mut library = Library::open(config)?;
    println!(
        "Ingesting {} demo documents into {} …",
        files.len(),
        config.data_dir.display()
    );
    for file in &files {
        let outcome = library.add_file(file, "demo")?;
        println!("{}", describe(file, &outcome));
    }
    library.flush()?;
    let (docs, chunks) = library.store().counts()?;
    println!("\nLibrary: {docs} documents, {chunks} chunks searchable.\n");
    println!("Search: {:?}\n", args.query);
    let hits = library.search(&args.query, None, 3, Mode::Hybrid)?;
    for (i, hit) in hits.iter().enumerate() {
        print_hit(i + 1, hit);
    }
    if args.no_serve {
        println!(
            "\nTry your own: cargo run --release -- search \"your question\"   (or: ingest PATH…, docs list)"
        );
        println!(
            "Ask for an answer with citations: cargo run --release -- ask \"{}\"",
            args.query
        );
        return Ok(ExitCode::SUCCESS);
    }
    drop(library); // the server takes the data-dir lock
    demo_admin(config)?;
    crate::web::serve(
        config,
        crate::web::ServeArgs {
            listen: args.listen,
        },
    )
}
