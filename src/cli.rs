//! The command line's definitions: every subcommand, argument and its help
//! text, and nothing else. What each command does is in `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::accounts::Role;
use crate::audit::export::Format;
use crate::llm::synth::{SynthQuant, SynthShape};

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
    Bench(BenchCommand),
    /// Rebuild the BM25 and vector indexes from the stored chunks (after changing
    /// search.language or the embedding model).
    Reindex,
    /// Answer a question from the documents, with numbered citations; streams the
    /// answer, then lists the sources.
    Ask(AskArgs),
    /// Chat with a model directly, without documents (for checking a model file).
    Chat(ChatArgs),
    /// Ingest the bundled demo corpus, create the first admin (one-time password
    /// printed) and start the web server; --no-serve only ingests and searches.
    Demo(DemoArgs),
    /// Print the effective configuration (a complete, commented-by-name template).
    Config,
    /// Run the web appliance (HTTPS): chat, admin and auditor pages, JSON API.
    Serve(ServeArgs),
    /// Manage accounts (there is no default account: create the first admin here).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage which users and groups may retrieve from which collections.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// API tokens for the OpenAI-compatible endpoints (/v1/*).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Export and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check config, permissions, models, disk, TLS, the audit chain and index
    /// consistency; exits 1 if anything failed.
    Doctor(DoctorArgs),
    /// Sensitive identifiers (SSNs, card numbers, IBANs, NHS and National
    /// Insurance numbers, e-mail addresses, phone numbers, dates of birth, IP
    /// addresses) in files, without ingesting anything.
    #[command(subcommand)]
    Pii(PiiCommand),
    /// List and verify installed model files (checksums from MANIFEST.tsv).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Copy the database (online), originals and TLS material to DEST while
    /// the server runs (the audit key only with --with-audit-key); indexes
    /// are rebuilt on restore.
    Backup(BackupArgs),
    /// Restore a backup into an empty data dir and rebuild the indexes.
    Restore(RestoreArgs),
    /// The vector backend: status, migrate between embedded and an external
    /// Qdrant, rebuild from the stored chunks.
    #[command(subcommand)]
    Vectors(VectorsCommand),
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

#[derive(Subcommand, Debug)]
pub enum PiiCommand {
    /// Sweep files and folders (a file share, say) for exposed identifiers:
    /// each file is extracted as ingest would (OCR included) and scanned;
    /// findings are listed masked. Exit status 1 when anything is found.
    Scan(PiiScanArgs),
    /// Show each collection's policy, or set one: `report` (indexed as is,
    /// findings listed), `redact` (identifiers become placeholders such as
    /// [SSN] in everything indexed, shown or given to the model) or
    /// `reject` (documents holding one are refused; those already there
    /// are erased). Setting a policy re-processes the collection's documents.
    Policy(PiiPolicyArgs),
    /// List the findings recorded at ingest (masked), with filters.
    Findings(PiiFindingsArgs),
    /// Re-process documents waiting for it (after a policy change the
    /// server did not finish, or an upgrade); with --all, every document
    /// (after changing [[pii.custom]]).
    Reprocess(PiiReprocessArgs),
}

#[derive(Args, Debug)]
pub struct PiiPolicyArgs {
    /// The collection (created if new). Without it: list every collection's policy.
    pub collection: Option<String>,
    /// The new policy. Without it: show the collection's policy.
    #[arg(value_parser = ["report", "redact", "reject"])]
    pub policy: Option<String>,
}

#[derive(Args, Debug)]
pub struct PiiFindingsArgs {
    #[arg(long, short)]
    pub collection: Option<String>,
    /// A type: ssn, payment_card, iban, nhs_number, national_insurance,
    /// email, phone, date_of_birth, ip_address, or a custom one.
    #[arg(long, short)]
    pub kind: Option<String>,
    #[arg(long, short)]
    pub document: Option<i64>,
    /// Print CSV (the admin page's export).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PiiReprocessArgs {
    /// Only this collection.
    #[arg(long, short)]
    pub collection: Option<String>,
    /// Every document, not only those waiting.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct PiiScanArgs {
    /// Files or folders (folders are walked recursively; hidden entries skipped).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print one JSON object per file, then a summary object.
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
    Retrieval(EvalArgs),
    /// The whole answering pipeline on a QA set: answered rate, answer
    /// containment, unsupported facts shown, sentence support, citation
    /// precision, refusals, latency, tokens and CPU time, for the quotes,
    /// each model tier alone and the routed default. FILE is HotpotQA JSONL
    /// (its paragraphs are ingested) or plain JSONL ({question, answers,
    /// answerable, kind}) over the documents of --corpus.
    Answers(EvalAnswersArgs),
    /// The evidence gate's false refusals (each set's questions asked of its
    /// own corpus) and off-topic refusals (asked of every other set's corpus),
    /// per set, through the search and gate answers use.
    Gate(EvalGateArgs),
    /// OCR quality on a scanned set (tests/reference/make_scans.sh builds one
    /// from ../shared/corpus/pdf-text): word precision, recall and F1 against
    /// each page's original text layer, per variant (300 dpi gray JPEG,
    /// 200 dpi gray, 200 dpi fax G4, rotated pages, multi-page TIFF), with
    /// seconds per page and the extraction worker's peak memory.
    Ocr(EvalOcrArgs),
    /// Sensitive-identifier detection: precision and recall per type on a
    /// labelled JSONL set ({text, labels: [{kind, start, end}]}, character
    /// offsets; tests/reference/make_pii_set.py builds one).
    Pii {
        file: PathBuf,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct EvalOcrArgs {
    /// A folder with manifest.jsonl ({variant, file, page, truth} per line).
    pub dir: PathBuf,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct EvalGateArgs {
    /// Two or more BEIR-layout set folders (corpus.jsonl, queries.jsonl, qrels/test.tsv).
    #[arg(required = true, num_args = 2..)]
    pub dirs: Vec<PathBuf>,
    /// Keep one data dir per set here (the same layout as `eval retrieval --folds`).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Also write every (corpus, question) pair's evidence to FILE as JSONL:
    /// the question's terms and their idf, both candidate lists with scores,
    /// and each candidate's document and share of the question's idf it
    /// holds. For fitting and checking fusion and the gate outside enclave.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct EvalAnswersArgs {
    /// The question set (e.g. ../shared/eval/hotpotqa-dev/dev.jsonl or
    /// packaging/demo/questions.jsonl).
    pub file: PathBuf,
    /// Folder with the documents a plain JSONL set is asked about (default:
    /// the `documents` folder beside FILE, else FILE's own folder).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Model tiers to use, cheapest first (repeat; default: [llm] model and
    /// escalate_to).
    #[arg(long)]
    pub model: Vec<PathBuf>,
    /// Ask only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Reuse (or create) this data dir instead of a throw-away one.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder with the demo documents.
    #[arg(long, default_value = "packaging/demo/documents")]
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
            Command::Bench(BenchCommand::Llm(args)) => args.threads,
            Command::Chat(args) => args.threads,
            _ => None,
        }
        .filter(|&t| t > 0)
    }
}

#[derive(Args, Debug)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Restrict to these collections (repeatable). Default: all.
    #[arg(long, short)]
    pub collection: Vec<String>,
    /// Chat model file (default: llm.model from the config).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Longest answer in tokens (default: llm.max_new_tokens).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Print one JSON object (answer, citations, sources, timings) at the end
    /// instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// GGUF model file (default: llm.model from the config).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Ask this one message and exit, instead of an interactive session.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Sampling temperature (0: greedy).
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Longest reply in tokens.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password is read from stdin with
    /// --password-stdin; otherwise one is generated and printed once.
    Add {
        username: String,
        #[arg(long, value_enum, default_value_t = Role::Staff)]
        role: Role,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account and end its sessions at once.
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
    /// Change an account's role (its sessions end).
    Role {
        username: String,
        #[arg(value_enum)]
        role: Role,
    },
    /// Set a new password (stdin with --password-stdin, else generated); ends sessions.
    Passwd {
        username: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Add an account to a group (the group is created if needed).
    Join { username: String, group: String },
    /// Remove an account from a group.
    Leave { username: String, group: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token for a user; the secret is printed once (stdout) and
    /// only its SHA-256 is kept. It acts as the user with at most these
    /// scopes and collections.
    Create {
        /// The user the token acts as (staff or admin).
        #[arg(long)]
        user: String,
        /// What the token may do: ask (grounded answers, /v1/chat/completions)
        /// and/or embeddings (/v1/embeddings), comma-separated.
        #[arg(long, default_value = "ask")]
        scopes: String,
        /// Limit the token to these collections (always narrowed to the
        /// user's grants at the moment of use). Default: all of them.
        #[arg(long, num_args = 1..)]
        collections: Vec<String>,
        /// Lifetime: 90d, 12h, 30m, or never.
        #[arg(long, default_value = "90d")]
        expires: String,
        /// A label for lists and the audit log.
        #[arg(long, default_value = "api")]
        name: String,
    },
    /// List tokens with their scopes, expiry and last use (never the secret).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (see `token list`); refused from the next request on.
    Revoke { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum GrantCommand {
    /// Let a user, or every member of a group, retrieve from a collection.
    Add(GrantArgs),
    /// List grants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a grant by its id (see `grant list`).
    Remove { id: i64 },
}

#[derive(Args, Debug)]
pub struct GrantArgs {
    /// The collection (created if it does not exist yet).
    pub collection: String,
    /// Grant to this user.
    #[arg(long, conflicts_with = "group", required_unless_present = "group")]
    pub user: Option<String>,
    /// Grant to every member of this group (created if needed).
    #[arg(long)]
    pub group: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the audit log's public key (hex) on stdout, creating the key
    /// pair if the data dir has none; where the private key is, its mode and
    /// whether the pinned copy (audit.public_key_file) matches go to stderr.
    /// Pin it outside the data dir: `enclave audit key > /etc/enclave/audit.pub`.
    Key,
    /// Write the whole log (rows, signed checkpoints and a signed end line).
    Export {
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check the hash chain and signatures of an export file, or of the live
    /// database with --db; names the first row where the chain breaks.
    Verify {
        /// An export (CSV or JSONL).
        #[arg(required_unless_present = "db")]
        file: Option<PathBuf>,
        /// Verify the live database instead of a file.
        #[arg(long, conflicts_with = "file")]
        db: bool,
        /// The key that must sign the head of the log: an Ed25519 public key
        /// in hex, or a file holding one (like /etc/enclave/audit.pub).
        /// Earlier keys count only through the log's signed key-change
        /// records. Default: audit.public_key_file when set and present,
        /// else the data dir's key, else the key the log names.
        #[arg(long, value_name = "HEX|FILE")]
        public_key: Option<String>,
        /// Fail when more rows than this go without a signed checkpoint.
        /// Default with --db: audit.checkpoint_every; for a file, unchecked.
        #[arg(long, value_name = "ROWS")]
        checkpoint_every: Option<u64>,
        /// Accept rows after the last signed checkpoint (the server is
        /// running, or stopped without signing). Without it they fail: a
        /// clean stop signs the head, so an unsigned tail may have been
        /// appended or cut by someone without the key.
        #[arg(long)]
        allow_open_tail: bool,
        /// Also check the log against an external witness of its checkpoints
        /// (`journal`, or the file `audit.witness` names): detects a log cut
        /// back to an earlier checkpoint, or rewritten and re-signed with a
        /// stolen key.
        #[arg(long, value_name = "journal|FILE")]
        witness: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Directory to create (must not exist, or be empty).
    pub dest: PathBuf,
    /// Also copy the audit signing key. Without it (the default) whoever
    /// holds the backup cannot re-sign the log; a restore makes a new key
    /// and records the change in the log.
    #[arg(long)]
    pub with_audit_key: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A directory written by `enclave backup`.
    pub src: PathBuf,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List installed model files with sizes and checksums.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every file against MANIFEST.tsv and the configured models are present;
    /// exits 1 on any problem.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum VectorsCommand {
    /// Show the configured backend, its address and how many vectors it holds.
    Status,
    /// Copy every vector to the other backend, verify, then switch the config
    /// (stop the server first; rerun to resume an interrupted copy).
    Migrate(MigrateArgs),
    /// Recompute all vectors from the stored chunks into the configured backend
    /// (after changing the embedding model, or to repair it).
    Rebuild,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The backend to move to.
    #[arg(long, value_enum)]
    pub to: Target,
    /// Points per copy batch.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Searches compared between source and target after the copy.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Copy and verify, but leave the config file as it is.
    #[arg(long)]
    pub no_switch: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Embedded,
    Qdrant,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Folder with corpus.jsonl, queries.jsonl and qrels/test.tsv.
    #[arg(required_unless_present = "folds")]
    pub dir: Option<PathBuf>,
    /// Several such folders: every fusion candidate on every set, and the
    /// choice leave-one-set-out validation makes (best worst margin over the
    /// better single retriever). --scratch then holds one data dir per set.
    #[arg(long, num_args = 1.., conflicts_with = "dir")]
    pub folds: Vec<PathBuf>,
    /// Reuse (or create) this data dir instead of a throw-away one.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Also print per-query nDCG@10 for the hybrid run.
    #[arg(long)]
    pub per_query: bool,
    /// Also print a row for every fusion method (the "hybrid" row uses the configured one).
    #[arg(long)]
    pub compare_fusion: bool,
    /// Weight of the dense side in fusion (overrides search.dense_weight).
    #[arg(long)]
    pub dense_weight: Option<f32>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PiiBench {
    On,
    Off,
    Both,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Ingest DIR into a scratch data dir; report pages/s, chunks/s, embedding tokens/s.
    Ingest {
        dir: PathBuf,
        /// Sensitive-identifier scanning: on (as served), off, or both
        /// (alternated, each pair reported with the ratio).
        #[arg(long, value_enum, default_value_t = PiiBench::On)]
        pii: PiiBench,
        /// With --pii both: how many on/off pairs.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The collection's policy while scanning.
        #[arg(long, value_parser = ["report", "redact"], default_value = "report")]
        policy: String,
    },
    /// OCR every scanned PDF and image under DIR through the extraction
    /// worker; report pages/s, seconds per page and the worker's peak memory.
    Ocr { dir: PathBuf },
    /// Embedding throughput on the "text" fields of a JSONL file (e.g. a BEIR corpus.jsonl).
    Embed {
        file: PathBuf,
        /// Use at most this many texts.
        #[arg(long, default_value_t = 2000)]
        limit: usize,
    },
    /// Hybrid query latency p50/p95/p99 on an index of --chunks chunks.
    Search {
        /// JSONL file whose "text" (and "title") fields seed the synthetic index.
        #[arg(long, default_value = "../shared/eval/msmarco/corpus.jsonl")]
        seed: PathBuf,
        /// Questions to time (JSONL with "text"); default: the seed set's queries.jsonl.
        #[arg(long)]
        queries: Option<PathBuf>,
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        /// Keep the built index here and reuse it on the next run.
        #[arg(long)]
        scratch: Option<PathBuf>,
        /// Number of timed queries (cycled over the query set).
        #[arg(long, default_value_t = 300)]
        runs: usize,
    },
    /// What verification (and the quotes) add to answer latency: the questions
    /// of a plain JSONL set answered with and without them, alternating, per round.
    Answers {
        /// {question, answers, answerable} JSONL (e.g. packaging/demo/questions.jsonl).
        file: PathBuf,
        /// Its documents (default: the `documents` folder beside FILE).
        #[arg(long)]
        corpus: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The load test's burst at the engine: --users users ask --each questions
    /// one after another, all starting at once, with the prompts Enclave's
    /// planner builds for the demo questions; reports time to first token and
    /// to the whole answer (p50/p95), aggregate tokens/s and peak memory.
    /// --dump-prompts writes those prompts (token ids) for replaying the same
    /// burst against llama-server (tests/reference/replay_llama_server.py).
    Serve(ServeBenchArgs),
    /// Language-model speed, measured like llama-bench: prefill of --prompt-tokens
    /// in one pass, and --gen-tokens single-token decode steps, from an empty
    /// context; plus time to first token and the memory-bandwidth ceiling.
    Llm(LlmBenchArgs),
    /// Write a GGUF with the exact tensor shapes and quantization types of a
    /// real model, filled with random values (its speed is the real model's speed;
    /// its output is noise).
    SynthGguf {
        #[arg(long, value_enum, default_value = "7b")]
        shape: SynthShape,
        #[arg(long, value_enum, default_value = "q4_k_m")]
        quant: SynthQuant,
        /// Output file.
        out: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct ServeBenchArgs {
    /// {question, answers, answerable} JSONL; its `documents` folder is the corpus.
    #[arg(long, default_value = "packaging/demo/questions.jsonl")]
    pub questions: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub users: usize,
    /// Questions per user, asked one after another.
    #[arg(long, default_value_t = 3)]
    pub each: usize,
    /// Answers generated at once (default: llm.parallel; 1 is the
    /// one-at-a-time engine).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Write the burst's prompts here (JSONL: user, turn, prompt token ids,
    /// n_predict).
    #[arg(long)]
    pub dump_prompts: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct LlmBenchArgs {
    /// GGUF model file (default: the configured chat model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Compute threads (default: all cores). Set before any work starts.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed repetitions of each test (the mean is reported, as llama-bench does).
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Batched generation, as llama-batched-bench measures it: for each N
    /// (e.g. 1,2,4,8,16), N sequences read --prompt-tokens each, then
    /// generate --gen-tokens each, one token for all per step; reports
    /// aggregate and per-sequence tokens/s.
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    pub parallel: Vec<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on (default: web.listen from the config).
    #[arg(long)]
    pub listen: Option<String>,
}
