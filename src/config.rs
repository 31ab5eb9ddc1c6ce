//! Configuration: one TOML file, every setting with a documented default.
//!
//! Precedence (lowest to highest): built-in defaults, the TOML file, `ENCLAVE_*`
//! environment variables, command-line flags. `enclave config` prints the
//! effective configuration, which doubles as a fully commented template.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value for {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where Enclave keeps its SQLite database, indexes and stored originals.
    pub data_dir: PathBuf,
    /// Where model files live (see models/MANIFEST.tsv).
    pub models_dir: PathBuf,
    pub ingest: IngestConfig,
    pub extract: ExtractConfig,
    pub chunk: ChunkConfig,
    pub embed: EmbedConfig,
    pub search: SearchConfig,
    pub vector: VectorConfig,
    pub llm: LlmConfig,
    pub rag: RagConfig,
    pub web: WebConfig,
    pub audit: AuditConfig,
    pub api: ApiConfig,
    pub metrics: MetricsConfig,
    pub cost: CostConfig,
    pub pii: PiiConfig,
    pub log: LogConfig,
}

/// Sensitive identifiers (SSNs, card numbers, NHS numbers, e-mail addresses,
/// …) found in every page at ingest. What happens to them is a policy of each
/// collection (`enclave pii policy`, or the admin page).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    /// The policy a new collection starts with: "report" (indexed as is, the
    /// findings listed for admins), "redact" (each identifier becomes a typed
    /// placeholder such as [SSN] in everything indexed, shown or given to the
    /// model; the original file stays, for admins only) or "reject"
    /// (documents holding one are refused with the finding report).
    pub default_policy: PiiPolicy,
    /// Organisation-specific identifiers, each a [[pii.custom]] table:
    /// name = "mrn", pattern = 'MRN[- ]?(\d{7})' (group 1, when there is one,
    /// is the identifier), checksum = "none" | "luhn" | "mod11" | "mod97",
    /// cues = ["mrn", "medical record"], require_cue = false.
    pub custom: Vec<CustomIdentifier>,
}

/// What a collection does with the sensitive identifiers of its documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiPolicy {
    #[default]
    Report,
    Redact,
    Reject,
}

impl PiiPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiPolicy::Report => "report",
            PiiPolicy::Redact => "redact",
            PiiPolicy::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<PiiPolicy> {
        match s {
            "report" => Some(PiiPolicy::Report),
            "redact" => Some(PiiPolicy::Redact),
            "reject" => Some(PiiPolicy::Reject),
            _ => None,
        }
    }
}

/// An identifier the organisation defines (medical record numbers, case numbers).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomIdentifier {
    /// Lower-case letters, digits and `_`; the placeholder is its upper case
    /// in brackets ("mrn" → [MRN]). Must not be a built-in type's name.
    pub name: String,
    /// A regular expression (Rust `regex` syntax: no look-around, linear
    /// time). When it has a capture group, group 1 is the identifier.
    pub pattern: String,
    #[serde(default)]
    pub checksum: CustomChecksum,
    /// Words near the identifier (its line or the line above) that raise
    /// confidence, lower case.
    #[serde(default)]
    pub cues: Vec<String>,
    /// Report a match only when one of `cues` is near it.
    #[serde(default)]
    pub require_cue: bool,
}

/// The check digit rule a custom identifier's digits must pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomChecksum {
    #[default]
    None,
    /// The last digit is the Luhn check digit of the others.
    Luhn,
    /// Weights n+1 … 2 over the first n digits; the last digit is
    /// 11 − (sum mod 11), 11 read as 0, 10 never valid (the NHS rule).
    Mod11,
    /// ISO 7064 mod 97-10 over the digits: the whole number mod 97 is 1.
    Mod97,
}

/// Built-in identifier type names, which custom identifiers may not reuse.
pub const BUILT_IN_PII_NAMES: &[&str] = &[
    "ssn",
    "payment_card",
    "iban",
    "nhs_number",
    "national_insurance",
    "email",
    "phone",
    "date_of_birth",
    "ip_address",
];

/// The OpenAI-compatible endpoints under `/v1/` (bearer tokens only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve `/v1/*` at all.
    pub enabled: bool,
    /// The model name of grounded answers in `/v1/models` and responses.
    pub model_name: String,
    /// Inputs per `/v1/embeddings` request, at most.
    pub max_embedding_inputs: usize,
    /// Characters per embedding input, at most (the model reads its first
    /// `embed.max_tokens` tokens; longer input is refused, not cut silently).
    pub max_embedding_chars: usize,
    /// Messages per chat completion request, at most.
    pub max_messages: usize,
    /// Also offer each model tier by name for plain chat: the model answers
    /// from the conversation alone, without the documents and without
    /// verification. Off by default: what it writes is unchecked.
    pub allow_plain_chat: bool,
}

/// Prometheus metrics: never on the public listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Plain-HTTP listener for `GET /metrics` ("" for none). Loopback by
    /// default; a scrape must also send the metrics token as a bearer token.
    pub listen: String,
    /// The scrape token's file (Prometheus: `authorization.credentials_file`).
    /// Empty: `<data_dir>/metrics-token`, created at first start.
    pub token_file: PathBuf,
    /// Per-answer usage rows (timings, tokens, CPU time; no text) are kept
    /// this many days.
    pub retention_days: u64,
}

/// The cost model of the usage page: what an hour of this machine costs,
/// shared out by CPU time, next to what the same tokens would cost at a
/// cloud API. The defaults are examples; put in your own figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostConfig {
    /// Shown next to every amount.
    pub currency: String,
    /// What the machine cost to buy, amortised over `amortisation_years`...
    pub hardware_price: f64,
    pub amortisation_years: f64,
    /// ...or, when above 0, a rent per hour instead (a hosted server).
    pub hardware_per_hour: f64,
    /// Average power draw of the machine under load, in watts...
    pub power_watts: f64,
    /// ...and the electricity price per kWh.
    pub price_per_kwh: f64,
    /// The cloud API to compare with: its name and prices per million
    /// input (prompt) and output (generated) tokens.
    pub cloud_name: String,
    pub cloud_input_per_million: f64,
    pub cloud_output_per_million: f64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            model_name: "enclave".into(),
            max_embedding_inputs: 64,
            max_embedding_chars: 8_000,
            max_messages: 64,
            allow_plain_chat: false,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9464".into(),
            token_file: PathBuf::new(),
            retention_days: 400,
        }
    }
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            currency: "USD".into(),
            hardware_price: 3_000.0,
            amortisation_years: 3.0,
            hardware_per_hour: 0.0,
            power_watts: 150.0,
            price_per_kwh: 0.25,
            cloud_name: "a cloud API (gpt-4o-mini prices)".into(),
            cloud_input_per_million: 0.15,
            cloud_output_per_million: 0.60,
        }
    }
}

impl CostConfig {
    /// What one hour of the whole machine costs: hardware plus power.
    pub fn machine_per_hour(&self) -> f64 {
        let hardware = if self.hardware_per_hour > 0.0 {
            self.hardware_per_hour
        } else {
            self.hardware_price / (self.amortisation_years * 365.25 * 24.0)
        };
        hardware + self.power_watts / 1000.0 * self.price_per_kwh
    }

    /// What one CPU-second costs on a machine of `cores` cores: an hour of
    /// the machine is `cores` × 3600 CPU-seconds.
    pub fn per_cpu_second(&self, cores: usize) -> f64 {
        self.machine_per_hour() / (3600.0 * cores.max(1) as f64)
    }

    /// What `prompt` input and `generated` output tokens cost at the cloud API.
    pub fn cloud_cost(&self, prompt: u64, generated: u64) -> f64 {
        (prompt as f64 * self.cloud_input_per_million
            + generated as f64 * self.cloud_output_per_million)
            / 1e6
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port `enclave serve` listens on.
    pub listen: String,
    /// PEM certificate chain and private key. Empty: a self-signed pair is
    /// generated at first start in `<data_dir>/tls/` and reused.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Sessions end after this many minutes without a request...
    pub idle_timeout_mins: u64,
    /// ...and this many hours after login, whatever the activity.
    pub session_hours: u64,
    /// Largest upload (one file, after multipart framing), in MiB. Also capped
    /// by ingest.max_file_bytes.
    pub max_upload_mib: u64,
    /// Files accepted in one upload request.
    pub max_files_per_upload: usize,
    /// Largest question, in characters.
    pub max_question_chars: usize,
    /// Answers one user may have streaming at once; more get HTTP 429.
    pub max_streams_per_user: usize,
    /// Failed logins per account within 15 minutes before that account is
    /// slowed down (the wait doubles per failure, capped at 5 minutes, so an
    /// attacker cannot lock a user out for long).
    pub login_failures_before_throttle: u32,
    /// Failed logins per client address within 15 minutes before that address
    /// is refused for 15 minutes.
    pub login_failures_per_address: u32,
    /// Concurrent HTTP connections the server accepts.
    pub max_connections: usize,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
}

/// Where the dense vectors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorBackend {
    /// qdrant-edge in `<data_dir>/vectors`, in process.
    Embedded,
    /// An external Qdrant server or cluster over gRPC.
    Qdrant,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorConfig {
    /// "embedded" (qdrant-edge in the data dir) or "qdrant" (an external
    /// server; the only outbound connection Enclave ever makes).
    pub backend: VectorBackend,
    /// gRPC address of the Qdrant server, e.g. "https://qdrant.lan:6334".
    /// https uses rustls with the system's CA certificates.
    pub url: String,
    /// File holding the Qdrant API key (one line; keep it mode 0600). Empty: none.
    pub api_key_file: PathBuf,
    /// Qdrant collection that holds Enclave's vectors.
    pub collection: String,
    /// Used only when Enclave creates the collection.
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// Points per upsert request.
    pub batch_size: usize,
    /// Retries of a request that failed transiently (unavailable, timeout,
    /// overloaded), with exponential backoff from 200 ms.
    pub retries: u32,
}

impl Default for VectorConfig {
    fn default() -> Self {
        VectorConfig {
            backend: VectorBackend::Embedded,
            url: String::new(),
            api_key_file: PathBuf::new(),
            collection: "enclave_chunks".into(),
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            timeout_secs: 10,
            batch_size: 256,
            retries: 3,
        }
    }
}

impl VectorConfig {
    /// The address Enclave connects out to, if any.
    pub fn outbound(&self) -> Option<&str> {
        (self.backend == VectorBackend::Qdrant).then_some(self.url.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Write the text of questions into the audit log (otherwise only their
    /// length and a keyed digest, HMAC-SHA-256 under a key derived from the
    /// audit key). A policy decision for the data controller.
    pub log_question_text: bool,
    /// A signed checkpoint (Ed25519, key in `<data_dir>/audit-key`) is written
    /// after every this many audit rows, and at every export.
    pub checkpoint_every: u64,
    /// Rows older than this are pruned (6 years by default, HIPAA's retention).
    pub retention_days: u64,
    /// Where every signed checkpoint is also written, out of reach of the
    /// database's writer: "syslog" (the system journal, tag enclave-audit),
    /// a file path (make it append-only or owned by another user), or ""
    /// for none. `enclave audit verify --db --witness` checks against it.
    pub witness: String,
    /// The auditor's pinned copy of the public key, outside the data dir
    /// and not writable by the service (the package writes
    /// /etc/enclave/audit.pub at install). When the file exists, `verify`
    /// requires the log's head to be signed by it. "": none.
    pub public_key_file: PathBuf,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8443".into(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            idle_timeout_mins: 15,
            session_hours: 12,
            max_upload_mib: 100,
            max_files_per_upload: 50,
            max_question_chars: 2000,
            max_streams_per_user: 2,
            login_failures_before_throttle: 5,
            login_failures_per_address: 50,
            max_connections: 1024,
            workers: 0,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            log_question_text: true,
            checkpoint_every: 16,
            retention_days: 6 * 365 + 2,
            witness: String::new(),
            public_key_file: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Chat model (GGUF; llama, qwen2 or gemma3 architecture), relative to models_dir.
    pub model: PathBuf,
    /// Tokens of prompt plus answer the model sees at once (capped by the model's
    /// trained length). The KV cache grows with use up to this.
    pub context_window: usize,
    /// Longest answer, in tokens.
    pub max_new_tokens: usize,
    /// Wall-clock limit for one answer, in seconds.
    pub deadline_secs: u64,
    /// Requests allowed to wait for the model; more are refused (HTTP 503).
    pub queue_capacity: usize,
    /// Answers generated at once, in one batch (continuous batching: a new
    /// request joins between steps). 0: as many as `kv_cache_mib` holds at
    /// half a context window each, at most 16.
    pub parallel: usize,
    /// Memory for the keys and values of all running answers, per model tier.
    /// A request is admitted only when its whole length (prompt plus
    /// `max_new_tokens`) fits; otherwise it waits.
    pub kv_cache_mib: usize,
    /// Prompt tokens read per step (of one or several waiting prompts)
    /// while other answers keep streaming. Larger: queued questions get
    /// their first token sooner (prompts are read in bigger matrix
    /// products); smaller: running answers pause less per step (a step
    /// with a full chunk takes about chunk / prefill speed; lower it for a
    /// 7B model, whose prefill is ~30 tokens/s on 2 cores).
    pub prefill_chunk: usize,
    /// Sampling: temperature 0 is greedy (the default: answers from documents
    /// should not vary run to run).
    pub sampling: SamplingParams,
    /// Higher model tiers, cheapest first, tried in turn when too little of
    /// the previous tier's answer is supported by the documents (`model` is
    /// the first tier; the quotes from the documents are always the floor).
    pub escalate_to: Vec<PathBuf>,
    /// Question kinds that start at the second tier when there is one: a
    /// small model rarely gets these right.
    pub start_higher_for: Vec<QuestionKind>,
}

/// Kinds of question that call for a larger model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// "Which is older, X or Y?", "compare", "difference between".
    Comparison,
    /// Two or more proper names (e.g. multi-hop questions).
    SeveralNames,
    /// "Why …?", "How does …?" (explanations, not "how many").
    WhyHow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RagConfig {
    /// Passages retrieved per question before fitting them into the prompt.
    pub passages: usize,
    /// Evidence gate: a passage's cosine similarity to the question
    /// (all-MiniLM-L6-v2) plus the share of the question's idf-weighted
    /// terms it holds must reach this, or the answer is "not in the
    /// documents" without calling the model. Libraries of fewer than about
    /// 400 passages need less (chance matches are rarer there); see
    /// `rag::plan::gate`.
    pub min_evidence: f32,
    /// Replaced by `min_evidence` (a cosine alone missed what BM25 found);
    /// read and ignored, with a warning, so an older config file still loads.
    #[serde(default, skip_serializing)]
    pub min_similarity: Option<f32>,
    /// Passages scoring below this fraction of the best one are left out.
    pub relative_cutoff: f32,
    /// Longest passage text put into the prompt, in tokens.
    pub max_passage_tokens: usize,
    /// Sentences quoted verbatim from the passages before any model answers
    /// (the extractive tier), at most.
    pub quotes: usize,
    /// A generated sentence is shown only when a source sentence is at least
    /// this close to it (cosine, all-MiniLM-L6-v2) and the source states every
    /// number and name it does. Calibrated on the dev sets (README, "Answer quality").
    pub min_support_similarity: f32,
    /// Escalate to the next tier when less than this fraction of a tier's
    /// claims is supported (and always when none is).
    pub escalate_below: f32,
    /// Show sentences removed by verification, struck through, instead of
    /// leaving them out (they are always kept in the stored answer).
    pub show_removed_sentences: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest file accepted, in bytes. Larger files are rejected before reading.
    pub max_file_bytes: u64,
    /// Collection used when none is given.
    pub default_collection: String,
    /// Documents embedded and committed together; a larger batch is faster, a
    /// smaller one makes progress visible sooner.
    pub commit_every_documents: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractConfig {
    /// Wall-clock limit for extracting one file, in seconds.
    pub timeout_secs: u64,
    /// Address-space limit for the extraction worker process, in MiB.
    pub memory_limit_mib: u64,
    /// Most text the worker may return for one file, in bytes.
    pub max_output_bytes: u64,
    /// DOCX: most entries in the archive.
    pub max_archive_entries: usize,
    /// DOCX: most total uncompressed bytes declared by the archive.
    pub max_archive_uncompressed_bytes: u64,
    /// Read scanned pages and image files (PNG, JPEG, TIFF) with Tesseract
    /// (Debian: libtesseract5 and tesseract-ocr-<lang>).
    pub ocr: bool,
    /// Tesseract languages, e.g. ["eng", "fra"] (`enclave doctor` lists the installed ones).
    pub ocr_languages: Vec<String>,
    /// Tesseract's model directory; empty: TESSDATA_PREFIX or /usr/share/tesseract-ocr/5/tessdata.
    pub ocr_data_dir: PathBuf,
    /// Resolution PDF pages are rendered at for OCR.
    pub ocr_dpi: u32,
    /// Most megapixels one page image may have (checked before it is decoded).
    pub ocr_max_megapixels: u64,
    /// Longest OCR of one page, in seconds; past it the document fails.
    pub ocr_page_timeout_secs: u64,
    /// Longest OCR of one document, in seconds (on top of `timeout_secs`).
    pub ocr_document_timeout_secs: u64,
    /// Pages whose mean word confidence (0–100) is below this are flagged.
    pub ocr_min_confidence: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkConfig {
    /// Target chunk size in words (≈ 1.3 embedding tokens each).
    pub target_words: usize,
    /// Hard upper bound in words.
    pub max_words: usize,
    /// Words repeated from the end of one chunk at the start of the next.
    pub overlap_words: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Directory (under models_dir unless absolute) with model.safetensors,
    /// tokenizer.json and config.json of a BERT sentence-embedding model.
    pub model: PathBuf,
    /// Longest input in tokens; longer text is truncated (sentence-transformers: 256).
    pub max_tokens: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Compute threads; 0 means one per core.
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Stemming language for the BM25 index (english, french, german, …, or none).
    /// Changing it requires `enclave reindex`.
    pub language: String,
    /// Candidates taken from each retriever before fusion.
    pub candidates: usize,
    /// How BM25 and dense rankings are combined: "adaptive" (min-max
    /// normalised weighted sum, the weight set per query from both sides'
    /// evidence), "convex" (the same with `dense_weight`), "rrf" (weighted
    /// reciprocal-rank fusion) or "dbsf" (distribution-based score fusion).
    pub fusion: Fusion,
    /// Reciprocal-rank-fusion constant k (score = Σ 1/(k + rank)).
    pub rrf_k: f32,
    /// Weight of the dense side in "convex", "rrf" and "dbsf" fusion (0..1;
    /// 0.5 weighs both equally).
    /// Questions phrased in natural language get 0.25 more (at most 0.9),
    /// since lexical matching is weakest on them.
    pub dense_weight: f32,
    /// Results returned when the caller does not say.
    pub default_limit: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. "warn,enclave=info" (default) or "enclave=debug".
    pub filter: String,
    /// Emit JSON lines instead of human-readable logs.
    pub json: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            models_dir: PathBuf::from("models"),
            ingest: IngestConfig::default(),
            extract: ExtractConfig::default(),
            chunk: ChunkConfig::default(),
            embed: EmbedConfig::default(),
            search: SearchConfig::default(),
            vector: VectorConfig::default(),
            llm: LlmConfig::default(),
            rag: RagConfig::default(),
            web: WebConfig::default(),
            audit: AuditConfig::default(),
            api: ApiConfig::default(),
            metrics: MetricsConfig::default(),
            cost: CostConfig::default(),
            pii: PiiConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            model: PathBuf::from("SmolLM2-135M-Instruct.Q4_1.gguf"),
            context_window: 4096,
            max_new_tokens: 384,
            deadline_secs: 120,
            queue_capacity: 32,
            parallel: 0,
            kv_cache_mib: 1024,
            prefill_chunk: 512,
            sampling: SamplingParams::default(),
            escalate_to: Vec::new(),
            start_higher_for: vec![
                QuestionKind::Comparison,
                QuestionKind::SeveralNames,
                QuestionKind::WhyHow,
            ],
        }
    }
}

impl Default for RagConfig {
    fn default() -> Self {
        RagConfig {
            passages: 6,
            min_evidence: 1.0,
            min_similarity: None,
            relative_cutoff: 0.6,
            max_passage_tokens: 400,
            quotes: 3,
            min_support_similarity: 0.5,
            escalate_below: 0.5,
            show_removed_sentences: false,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_file_bytes: 100 * 1024 * 1024,
            default_collection: "default".into(),
            commit_every_documents: 64,
        }
    }
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            timeout_secs: 60,
            memory_limit_mib: 2048,
            max_output_bytes: 64 * 1024 * 1024,
            max_archive_entries: 10_000,
            max_archive_uncompressed_bytes: 512 * 1024 * 1024,
            ocr: true,
            ocr_languages: vec!["eng".into()],
            ocr_data_dir: PathBuf::new(),
            ocr_dpi: 300,
            ocr_max_megapixels: 60,
            ocr_page_timeout_secs: 60,
            ocr_document_timeout_secs: 1800,
            ocr_min_confidence: 60.0,
        }
    }
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            target_words: 170,
            max_words: 220,
            overlap_words: 30,
        }
    }
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            model: PathBuf::from("all-MiniLM-L6-v2"),
            max_tokens: 256,
            batch_size: 64,
            threads: 0,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            language: "english".into(),
            candidates: 100,
            fusion: Fusion::Adaptive,
            rrf_k: 60.0,
            dense_weight: 0.8,
            default_limit: 10,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "warn,enclave=info,qdrant_edge=error".into(),
            json: false,
        }
    }
}

/// The values `search.language` accepts: the stemmers the BM25 index has,
/// and "none".
pub const SEARCH_LANGUAGES: &[&str] = &[
    "none",
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
];

impl Config {
    /// Load the configuration: defaults, then `path` if given (or `enclave.toml`
    /// in the working directory if it exists), then environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let implicit = PathBuf::from("enclave.toml");
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None if implicit.is_file() => Some(implicit),
            None => None,
        };
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Environment overrides for the settings operators change most.
    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("ENCLAVE_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("ENCLAVE_MODELS_DIR") {
            self.models_dir = v.into();
        }
        if let Some(v) = get("ENCLAVE_LISTEN") {
            self.web.listen = v;
        }
        if let Some(v) = get("ENCLAVE_METRICS_LISTEN") {
            self.metrics.listen = v;
        }
        if let Some(v) = get("ENCLAVE_LOG") {
            self.log.filter = v;
        }
        if let Some(v) = get("ENCLAVE_LOG_JSON") {
            self.log.json = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = get("ENCLAVE_EMBED_THREADS") {
            self.embed.threads = v.parse().map_err(|_| ConfigError::Invalid {
                name: "ENCLAVE_EMBED_THREADS",
                reason: format!("{v:?} is not a number"),
            })?;
        }
        Ok(())
    }

    fn validate_pii(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: "pii.custom",
            reason,
        };
        let mut seen = std::collections::HashSet::new();
        for c in &self.pii.custom {
            let name_ok = !c.name.is_empty()
                && c.name.len() <= 32
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if !name_ok {
                return Err(invalid(format!(
                    "name {:?}: 1 to 32 lower-case letters, digits and _",
                    c.name
                )));
            }
            if BUILT_IN_PII_NAMES.contains(&c.name.as_str()) || !seen.insert(c.name.as_str()) {
                return Err(invalid(format!(
                    "name {:?} is already taken (built-in types: {})",
                    c.name,
                    BUILT_IN_PII_NAMES.join(", ")
                )));
            }
            if c.cues.iter().any(|q| q.trim().is_empty()) {
                return Err(invalid(format!(
                    "{}: an empty cue matches everywhere",
                    c.name
                )));
            }
            match regex::Regex::new(&c.pattern) {
                Ok(re) if re.is_match("") => {
                    return Err(invalid(format!(
                        "{}: the pattern matches the empty string",
                        c.name
                    )));
                }
                Ok(_) => {}
                Err(e) => return Err(invalid(format!("{}: bad pattern: {e}", c.name))),
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.chunk;
        if c.target_words == 0 || c.max_words < c.target_words || c.overlap_words >= c.target_words
        {
            return Err(ConfigError::Invalid {
                name: "chunk",
                reason: "need 0 < target_words <= max_words and overlap_words < target_words"
                    .into(),
            });
        }
        let x = &self.extract;
        let valid_language = |l: &String| {
            !l.is_empty()
                && l.len() <= 32
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if x.ocr_languages.is_empty() || !x.ocr_languages.iter().all(valid_language) {
            return Err(ConfigError::Invalid {
                name: "extract.ocr_languages",
                reason: "one or more Tesseract language codes such as \"eng\" (letters, digits, _ and -)".into(),
            });
        }
        if !(72..=1200).contains(&x.ocr_dpi)
            || x.ocr_max_megapixels == 0
            || x.ocr_page_timeout_secs == 0
            || x.ocr_document_timeout_secs == 0
            || !(0.0..=100.0).contains(&x.ocr_min_confidence)
        {
            return Err(ConfigError::Invalid {
                name: "extract",
                reason: "need ocr_dpi in 72..=1200, ocr_max_megapixels and the OCR timeouts >= 1, ocr_min_confidence in 0..=100".into(),
            });
        }
        self.validate_pii()?;
        if self.embed.max_tokens < 8 || self.embed.max_tokens > 512 {
            return Err(ConfigError::Invalid {
                name: "embed.max_tokens",
                reason: "must be between 8 and 512".into(),
            });
        }
        let l = &self.llm;
        if l.context_window < 256 || l.max_new_tokens == 0 || l.max_new_tokens >= l.context_window {
            return Err(ConfigError::Invalid {
                name: "llm",
                reason: "need context_window >= 256 and 0 < max_new_tokens < context_window".into(),
            });
        }
        if l.kv_cache_mib == 0 || l.prefill_chunk == 0 || l.parallel > 256 {
            return Err(ConfigError::Invalid {
                name: "llm",
                reason: "kv_cache_mib and prefill_chunk must be at least 1, parallel at most 256"
                    .into(),
            });
        }
        if l.queue_capacity == 0 || l.deadline_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "llm",
                reason: "queue_capacity and deadline_secs must be at least 1".into(),
            });
        }
        if self.rag.passages == 0 || self.rag.max_passage_tokens < 16 {
            return Err(ConfigError::Invalid {
                name: "rag",
                reason: "need passages >= 1 and max_passage_tokens >= 16".into(),
            });
        }
        let r = &self.rag;
        if !(0.0..=2.0).contains(&r.min_evidence) {
            return Err(ConfigError::Invalid {
                name: "rag",
                reason: "min_evidence is a cosine plus a share, in 0..=2".into(),
            });
        }
        if r.quotes == 0
            || !(0.0..=1.0).contains(&r.min_support_similarity)
            || !(0.0..=1.0).contains(&r.escalate_below)
        {
            return Err(ConfigError::Invalid {
                name: "rag",
                reason: "need quotes >= 1 and min_support_similarity, escalate_below in 0..=1"
                    .into(),
            });
        }
        let w = &self.web;
        if w.idle_timeout_mins == 0 || w.session_hours == 0 || w.max_upload_mib == 0 {
            return Err(ConfigError::Invalid {
                name: "web",
                reason: "timeouts and the upload limit must be at least 1".into(),
            });
        }
        if w.max_question_chars == 0 || w.max_streams_per_user == 0 || w.max_files_per_upload == 0 {
            return Err(ConfigError::Invalid {
                name: "web",
                reason: "question, stream and file limits must be at least 1".into(),
            });
        }
        if w.login_failures_before_throttle == 0 || w.login_failures_per_address == 0 {
            return Err(ConfigError::Invalid {
                name: "web",
                reason: "login failure limits must be at least 1".into(),
            });
        }
        if (w.tls_cert.as_os_str().is_empty()) != (w.tls_key.as_os_str().is_empty()) {
            return Err(ConfigError::Invalid {
                name: "web.tls_cert / web.tls_key",
                reason: "give both, or neither (self-signed)".into(),
            });
        }
        if self.audit.checkpoint_every == 0 || self.audit.retention_days == 0 {
            return Err(ConfigError::Invalid {
                name: "audit",
                reason: "checkpoint_every and retention_days must be at least 1".into(),
            });
        }
        let a = &self.api;
        if a.model_name.trim().is_empty()
            || a.max_embedding_inputs == 0
            || a.max_embedding_chars == 0
            || a.max_messages == 0
        {
            return Err(ConfigError::Invalid {
                name: "api",
                reason: "model_name must be set; the embedding and message limits at least 1"
                    .into(),
            });
        }
        if self.metrics.retention_days == 0 {
            return Err(ConfigError::Invalid {
                name: "metrics.retention_days",
                reason: "must be at least 1".into(),
            });
        }
        let c = &self.cost;
        let money = [
            c.hardware_price,
            c.hardware_per_hour,
            c.power_watts,
            c.price_per_kwh,
            c.cloud_input_per_million,
            c.cloud_output_per_million,
        ];
        if money.iter().any(|v| !v.is_finite() || *v < 0.0)
            || !(c.amortisation_years.is_finite() && c.amortisation_years > 0.0)
        {
            return Err(ConfigError::Invalid {
                name: "cost",
                reason: "prices, watts and hours must be 0 or more, amortisation_years above 0"
                    .into(),
            });
        }
        let v = &self.vector;
        if v.backend == VectorBackend::Qdrant {
            if !(v.url.starts_with("http://") || v.url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    name: "vector.url",
                    reason: format!(
                        "backend \"qdrant\" needs the server's gRPC address, e.g. https://qdrant.lan:6334 (got {:?})",
                        v.url
                    ),
                });
            }
            if v.collection.is_empty() || v.batch_size == 0 || v.timeout_secs == 0 {
                return Err(ConfigError::Invalid {
                    name: "vector",
                    reason: "collection must be named; batch_size and timeout_secs at least 1"
                        .into(),
                });
            }
            if v.shard_number == 0 || v.replication_factor == 0 || v.write_consistency_factor == 0 {
                return Err(ConfigError::Invalid {
                    name: "vector",
                    reason: "shard_number, replication_factor and write_consistency_factor must be at least 1".into(),
                });
            }
        }
        if self.embed.batch_size == 0 {
            return Err(ConfigError::Invalid {
                name: "embed.batch_size",
                reason: "must be at least 1".into(),
            });
        }
        let language = self.search.language.to_ascii_lowercase();
        if !SEARCH_LANGUAGES.contains(&language.as_str()) {
            return Err(ConfigError::Invalid {
                name: "search.language",
                reason: format!(
                    "unknown language {:?} (one of: {})",
                    self.search.language,
                    SEARCH_LANGUAGES.join(", ")
                ),
            });
        }
        Ok(())
    }

    pub fn embed_model_dir(&self) -> PathBuf {
        self.models_dir.join(&self.embed.model)
    }

    pub fn llm_model_path(&self) -> PathBuf {
        self.models_dir.join(&self.llm.model)
    }

    /// The model tiers, cheapest first: `llm.model`, then `llm.escalate_to`.
    pub fn llm_tier_paths(&self) -> Vec<PathBuf> {
        std::iter::once(&self.llm.model)
            .chain(&self.llm.escalate_to)
            .map(|m| self.models_dir.join(m))
            .collect()
    }

    /// Effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = Config::default().to_toml();
        let back: Config = toml::from_str(&text).expect("default config parses");
        assert_eq!(back.search.rrf_k, 60.0);
        assert_eq!(back.embed.max_tokens, 256);
    }

    #[test]
    fn a_config_with_the_old_gate_setting_still_loads() {
        let c: Config = toml::from_str("[rag]\nmin_similarity = 0.35\n").unwrap();
        assert_eq!(c.rag.min_similarity, Some(0.35));
        assert_eq!(c.rag.min_evidence, 1.0);
        assert!(!toml::to_string(&c).unwrap().contains("min_similarity"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("dat_dir = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn env_overrides_and_validation() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "ENCLAVE_DATA_DIR").then(|| "/tmp/x".to_string()))
            .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let bad = c.apply_env(|k| (k == "ENCLAVE_EMBED_THREADS").then(|| "many".to_string()));
        assert!(bad.is_err());
        c.chunk.overlap_words = 1000;
        assert!(c.validate().is_err());
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: no limit).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: no limit).
    pub top_p: f32,
    /// Divide the logits of recently seen tokens by this (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// Σ w / (k + rank) over the two rankings.
    Rrf,
    /// w · dense + (1 − w) · bm25, each min-max normalised over its candidates.
    Convex,
    /// Distribution-based score fusion: each side's scores scaled by the
    /// μ ± 3σ of its candidate scores, then combined as in `Convex`.
    Dbsf,
    /// `Convex` with a weight set per query from the dense side's best
    /// cosine and how clearly BM25's top hit alone holds the query's rare
    /// terms (`rag::fusion::adaptive_weight`); `dense_weight` is not used.
    #[default]
    Adaptive,
}

impl Fusion {
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Rrf => "rrf",
            Fusion::Convex => "convex",
            Fusion::Dbsf => "dbsf",
            Fusion::Adaptive => "adaptive",
        }
    }
}
