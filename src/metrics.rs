//! Process-wide counters and histograms for Prometheus (`GET /metrics` on
//! the metrics listener), in the OpenMetrics text format.
//!
//! A leaf: every layer records into [`get()`] (the web layer its requests
//! and answers, ingest its documents, the store its audit rows) and only the
//! web layer renders. Gauges that describe state rather than events (queue
//! length, running sequences, index sizes) are set by the web layer just
//! before rendering. Labels never carry user input: routes are the
//! registered patterns, tiers and outcomes are fixed names.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern (`/api/documents/{id}`), never the raw path.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    pub tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabels {
    pub tier: String,
    /// verified, partial, quoted, none.
    pub verification: String,
    /// web or api.
    pub via: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EscalationLabels {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub first_token_seconds: Family<TierLabels, Histogram>,
    pub answer_seconds: Family<TierLabels, Histogram>,
    pub prompt_tokens: Family<TierLabels, Counter>,
    pub generated_tokens: Family<TierLabels, Counter>,
    pub queue_length: Family<TierLabels, Gauge>,
    pub running_sequences: Family<TierLabels, Gauge>,
    pub retrieval_seconds: Histogram,
    pub gate_refusals: Counter,
    pub busy_refusals: Counter,
    pub answers: Family<AnswerLabels, Counter>,
    pub escalations: Family<EscalationLabels, Counter>,
    pub ingest_documents: Family<OutcomeLabels, Counter>,
    pub ingest_pages: Counter,
    pub ingest_chunks: Counter,
    pub ingest_seconds: Histogram,
    pub index_documents: Gauge,
    pub index_chunks: Gauge,
    pub login_failures: Counter,
    pub audit_rows: Counter,
    pub embedding_inputs: Counter,
}

/// Seconds from 50 ms to about 7 minutes, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// Seconds from 5 ms to about 40 s, doubling.
fn fast_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("enclave");
        let m = Metrics {
            http_requests: Family::default(),
            first_token_seconds: Family::new_with_constructor(latency_histogram),
            answer_seconds: Family::new_with_constructor(latency_histogram),
            prompt_tokens: Family::default(),
            generated_tokens: Family::default(),
            queue_length: Family::default(),
            running_sequences: Family::default(),
            retrieval_seconds: fast_histogram(),
            gate_refusals: Counter::default(),
            busy_refusals: Counter::default(),
            answers: Family::default(),
            escalations: Family::default(),
            ingest_documents: Family::default(),
            ingest_pages: Counter::default(),
            ingest_chunks: Counter::default(),
            ingest_seconds: latency_histogram(),
            index_documents: Gauge::default(),
            index_chunks: Gauge::default(),
            login_failures: Counter::default(),
            audit_rows: Counter::default(),
            embedding_inputs: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "first_token_seconds",
            "From the question to the answering tier's first generated token",
            m.first_token_seconds.clone(),
        );
        r.register(
            "answer_seconds",
            "From the question to the whole verified answer, by the tier that answered ('' when no model ran)",
            m.answer_seconds.clone(),
        );
        r.register(
            "prompt_tokens",
            "Prompt tokens read, by the tier that answered",
            m.prompt_tokens.clone(),
        );
        r.register(
            "generated_tokens",
            "Tokens generated, by the tier that answered",
            m.generated_tokens.clone(),
        );
        r.register(
            "llm_queue_length",
            "Requests waiting for a model tier",
            m.queue_length.clone(),
        );
        r.register(
            "llm_running_sequences",
            "Answers being generated at once, per model tier",
            m.running_sequences.clone(),
        );
        r.register(
            "retrieval_seconds",
            "Retrieval, fusion, the evidence gate and quoting, per question",
            m.retrieval_seconds.clone(),
        );
        r.register(
            "gate_refusals",
            "Questions the evidence gate answered with 'the documents do not cover this'",
            m.gate_refusals.clone(),
        );
        r.register(
            "busy_refusals",
            "Questions refused with 503 because the model queue was full",
            m.busy_refusals.clone(),
        );
        r.register(
            "answers",
            "Answers by tier, verification outcome and interface",
            m.answers.clone(),
        );
        r.register(
            "escalations",
            "Answers handed to a larger model tier because too little was supported",
            m.escalations.clone(),
        );
        r.register(
            "ingest_documents",
            "Documents ingested, by outcome",
            m.ingest_documents.clone(),
        );
        r.register("ingest_pages", "Pages ingested", m.ingest_pages.clone());
        r.register("ingest_chunks", "Chunks indexed", m.ingest_chunks.clone());
        r.register(
            "ingest_seconds",
            "Time to extract, chunk, embed and index one document",
            m.ingest_seconds.clone(),
        );
        r.register(
            "index_documents",
            "Documents in the library",
            m.index_documents.clone(),
        );
        r.register(
            "index_chunks",
            "Chunks in both indexes",
            m.index_chunks.clone(),
        );
        r.register(
            "login_failures",
            "Failed logins (wrong password, unknown user, throttled, disabled)",
            m.login_failures.clone(),
        );
        r.register(
            "audit_rows",
            "Rows appended to the audit log",
            m.audit_rows.clone(),
        );
        r.register(
            "embedding_inputs",
            "Inputs embedded through /v1/embeddings",
            m.embedding_inputs.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn tier(tier: &str) -> TierLabels {
        TierLabels {
            tier: tier.to_string(),
        }
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The `p` quantile (0..=1) of sorted values, nearest rank; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let m = get();
        m.gate_refusals.inc();
        m.answer_seconds
            .get_or_create(&Metrics::tier("smollm2"))
            .observe(1.5);
        let text = m.render();
        assert!(
            text.contains("# TYPE enclave_gate_refusals counter"),
            "{text}"
        );
        assert!(text.contains("enclave_gate_refusals_total "), "{text}");
        assert!(
            text.contains("enclave_answer_seconds_bucket{le=\"1.6\",tier=\"smollm2\"} 1")
                || text.contains("enclave_answer_seconds_bucket{tier=\"smollm2\",le=\"1.6\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
