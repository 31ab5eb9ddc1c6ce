//! The health page's figures (admin).

use actix_web::HttpResponse;
use actix_web::web::Data;
use serde::Serialize;

use crate::store;
use crate::web::auth::AdminSession;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub uptime_secs: u64,
    pub chat_model: String,
    pub chat_model_bytes: u64,
    /// Every model tier, cheapest first (after the quotes, which need none).
    pub model_tiers: Vec<String>,
    pub embedding_model: String,
    pub embedding_dim: usize,
    pub documents: i64,
    pub chunks: i64,
    pub bm25_entries: u64,
    /// None while the vector store is unreachable.
    pub vectors: Option<usize>,
    /// "embedded", or "qdrant <url>".
    pub vector_backend: String,
    /// Empty when fine; else why answers are degraded to keyword search.
    pub vector_problem: String,
    /// Documents stored but not yet indexed (waiting for the vector store).
    pub documents_waiting: usize,
    pub generation_queue: usize,
    pub generation_queue_capacity: usize,
    pub generating: bool,
    /// Per model tier: answers generating, waiting, and its KV cache.
    pub tier_load: Vec<TierLoad>,
    pub uploads_waiting: usize,
    pub active_sessions: i64,
    pub feedback_up: i64,
    pub feedback_down: i64,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    pub data_dir: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierLoad {
    pub tier: String,
    pub generating: usize,
    pub waiting: usize,
    pub kv: crate::llm::KvPlan,
}

pub async fn health_data(state: &Data<AppState>) -> Result<Health, ApiError> {
    let (documents, chunks, bm25, vectors, waiting, dim) = state
        .with_library(|lib| {
            let (d, c) = lib.store().counts()?;
            let b = lib.lexical_count();
            let v = lib.vectors().count().map_err(|e| e.to_string());
            let w = lib
                .store()
                .documents_with_status(store::DocStatus::Indexing)?
                .len();
            Ok((d, c, b, v, w, lib.embedder().dim()))
        })
        .await?;
    let v = &state.config.vector;
    let vector_backend = match v.outbound() {
        Some(url) => format!("qdrant {url} (collection {})", v.collection),
        None => "embedded".to_string(),
    };
    let (vectors, vector_problem) = match vectors {
        Ok(n) => (Some(n), String::new()),
        Err(e) => (
            None,
            format!("{e}; answers use keyword search alone until it is back"),
        ),
    };
    let (sessions_n, (up, down)) = state
        .with_db(|db| {
            let n = db.autocommit(store::sessions::count_all)?;
            Ok((n, db.autocommit(store::conversations::feedback_counts)?))
        })
        .await?;
    let (free, total) = crate::os::disk_space(&state.config.data_dir);
    Ok(Health {
        uptime_secs: state.started.elapsed().as_secs(),
        chat_model: state.config.llm.model.display().to_string(),
        chat_model_bytes: state.model_bytes,
        model_tiers: state.tiers.iter().map(|t| t.name.clone()).collect(),
        embedding_model: state.config.embed.model.display().to_string(),
        embedding_dim: dim,
        documents,
        chunks,
        bm25_entries: bm25,
        vectors,
        vector_backend,
        vector_problem,
        documents_waiting: waiting,
        generation_queue: state.tiers.iter().map(|t| t.worker.queue_len()).sum(),
        generation_queue_capacity: state.config.llm.queue_capacity,
        generating: state.tiers.iter().any(|t| t.worker.is_busy()),
        tier_load: state
            .tiers
            .iter()
            .map(|t| TierLoad {
                tier: t.name.clone(),
                generating: t.worker.running(),
                waiting: t.worker.queue_len(),
                kv: t.worker.plan,
            })
            .collect(),
        uploads_waiting: state.uploads.waiting(),
        active_sessions: sessions_n,
        feedback_up: up,
        feedback_down: down,
        disk_free_bytes: free,
        disk_total_bytes: total,
        data_dir: state.config.data_dir.display().to_string(),
    })
}

pub async fn health(
    state: Data<AppState>,
    _authed: AdminSession,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(health_data(&state).await?))
}
