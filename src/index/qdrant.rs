//! The external backend: a Qdrant server or cluster over gRPC (qdrant-client,
//! rustls). The same points as the embedded backend: id = chunk id, payload
//! `collection` (keyword index) and `document_id` (integer index).
//!
//! Callers are blocking threads (ingestion, search inside `web::block`), so
//! each call runs on this index's own small tokio runtime. The collection is
//! checked (and created) on first use rather than at open, so a server that is
//! down when Enclave starts gives errors per call — answered from BM25 alone,
//! documents left unindexed and retried — instead of a failed start.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, PointId, PointStruct, QueryPointsBuilder,
    ScrollPointsBuilder, SearchParamsBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder,
    point_id::PointIdOptions, value::Kind, vector_output,
    vectors_config::Config as VectorsConfigKind, vectors_output::VectorsOptions,
};
use qdrant_client::{Payload, Qdrant, QdrantError};

use super::vector::{
    COLLECTION_KEY, DOCUMENT_KEY, Result, StoredPoint, VectorError, VectorHit, VectorIndex,
    VectorPoint, check_dim,
};
use crate::config::VectorConfig;

pub struct QdrantVectorIndex {
    client: Qdrant,
    runtime: tokio::runtime::Runtime,
    config: VectorConfig,
    dim: usize,
    /// The collection exists with the right vector size and payload indexes.
    ready: AtomicBool,
    /// Set when a request failed after its retries: until then, calls fail fast.
    down_until: Mutex<Option<Instant>>,
}

/// How long calls fail fast after the server was found unreachable.
const DOWN_PAUSE: Duration = Duration::from_secs(5);

impl QdrantVectorIndex {
    /// Set up the client; no request is made yet (see the module comment).
    pub fn open(config: &VectorConfig, dim: usize) -> Result<QdrantVectorIndex> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qdrant-client")
            .enable_all()
            .build()
            .map_err(|e| VectorError::Backend(format!("qdrant client runtime: {e}")))?;
        let mut builder = Qdrant::from_url(&config.url)
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(config.timeout_secs.min(5)))
            // The check is a request at build time; we check on first use instead.
            .skip_compatibility_check();
        if !config.api_key_file.as_os_str().is_empty() {
            let key = std::fs::read_to_string(&config.api_key_file).map_err(|e| {
                VectorError::Backend(format!(
                    "cannot read vector.api_key_file {}: {e}",
                    config.api_key_file.display()
                ))
            })?;
            builder = builder.api_key(key.trim().to_string());
        }
        let client = {
            let _entered = runtime.enter();
            builder.build().map_err(|e| {
                VectorError::Backend(format!("qdrant client for {}: {e}", config.url))
            })?
        };
        Ok(QdrantVectorIndex {
            client,
            runtime,
            config: config.clone(),
            dim,
            ready: AtomicBool::new(false),
            down_until: Mutex::new(None),
        })
    }

    fn collection(&self) -> &str {
        &self.config.collection
    }

    /// Run one request, retrying transient failures with exponential backoff.
    fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, QdrantError>>,
    {
        // A circuit breaker: while the server is known to be down, fail at
        // once (searches fall back to BM25 without waiting), and once the
        // pause is over, probe with a single attempt.
        let was_down = {
            let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
            match *down {
                Some(until) if Instant::now() < until => {
                    return Err(VectorError::Unavailable(format!(
                        "{} (down; next try within {} s)",
                        self.config.url,
                        DOWN_PAUSE.as_secs()
                    )));
                }
                Some(_) => true,
                None => false,
            }
        };
        let retries = if was_down { 0 } else { self.config.retries };
        let mut attempt = 0;
        loop {
            match self.runtime.block_on(request()) {
                Ok(value) => {
                    if was_down {
                        tracing::info!(url = %self.config.url, "qdrant reachable again");
                        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    }
                    return Ok(value);
                }
                Err(e) if is_transient(&e) && attempt < retries => {
                    let wait = Duration::from_millis(200 << attempt.min(6));
                    tracing::warn!(what, attempt, error = %e, "qdrant request failed; retrying");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) if is_transient(&e) => {
                    self.ready.store(false, Ordering::Release);
                    *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now() + DOWN_PAUSE);
                    return Err(VectorError::Unavailable(format!(
                        "{what} at {}: {}",
                        self.config.url,
                        short(&e)
                    )));
                }
                Err(e) => {
                    return Err(VectorError::Backend(format!(
                        "qdrant {what}: {}",
                        short(&e)
                    )));
                }
            }
        }
    }

    /// Create the collection and its payload indexes if missing, and check an
    /// existing one has our vector size.
    fn ensure_ready(&self) -> Result<()> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let name = self.collection();
        let exists = self.call("collection check", || self.client.collection_exists(name))?;
        if exists {
            let info = self.call("collection info", || self.client.collection_info(name))?;
            let size = info
                .result
                .and_then(|r| r.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| v.config)
                .and_then(|c| match c {
                    VectorsConfigKind::Params(p) => Some(p.size as usize),
                    VectorsConfigKind::ParamsMap(_) => None,
                });
            match size {
                Some(size) => check_dim(size, self.dim)?,
                None => {
                    return Err(VectorError::Backend(format!(
                        "qdrant collection {name} has named vectors; Enclave needs one unnamed cosine vector"
                    )));
                }
            }
        } else {
            let c = &self.config;
            self.call("create collection", || {
                self.client.create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(VectorParamsBuilder::new(self.dim as u64, Distance::Cosine))
                        .shard_number(c.shard_number)
                        .replication_factor(c.replication_factor)
                        .write_consistency_factor(c.write_consistency_factor),
                )
            })?;
            for (field, kind) in [
                (COLLECTION_KEY, FieldType::Keyword),
                (DOCUMENT_KEY, FieldType::Integer),
            ] {
                self.call("create payload index", || {
                    self.client.create_field_index(
                        CreateFieldIndexCollectionBuilder::new(name, field, kind).wait(true),
                    )
                })?;
            }
            tracing::info!(collection = name, url = %c.url, "created qdrant collection");
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// One health check, no retries: the server's version.
    pub fn probe(&self) -> Result<String> {
        self.runtime
            .block_on(self.client.health_check())
            .map(|r| r.version)
            .map_err(|e| VectorError::Unavailable(format!("{}: {}", self.config.url, short(&e))))
    }

    /// Drop the whole collection (`vectors rebuild` starts from nothing).
    pub fn drop_collection(&self) -> Result<()> {
        let name = self.collection();
        if self.call("collection check", || self.client.collection_exists(name))? {
            self.call("delete collection", || self.client.delete_collection(name))?;
        }
        self.ready.store(false, Ordering::Release);
        Ok(())
    }
}

/// Connection trouble, timeouts and overload are worth retrying; a rejected
/// request is not.
fn is_transient(e: &QdrantError) -> bool {
    use tonic::Code;
    match e {
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => true,
        QdrantError::ResponseError { status } => match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown => true,
            // qdrant-client reports a refused or failed connection as Internal.
            Code::Internal => status.message().starts_with("Failed to connect"),
            _ => false,
        },
        _ => false,
    }
}

/// The gRPC status message without its metadata dump.
fn short(e: &QdrantError) -> String {
    match e {
        QdrantError::ResponseError { status } => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

fn document_filter(document_id: i64) -> Filter {
    Filter::must([Condition::matches(DOCUMENT_KEY, document_id)])
}

fn point_number(id: Option<PointId>) -> Option<i64> {
    match id?.point_id_options? {
        PointIdOptions::Num(n) => Some(n as i64),
        PointIdOptions::Uuid(_) => None,
    }
}

impl VectorIndex for QdrantVectorIndex {
    fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.ensure_ready()?;
        for p in points {
            check_dim(self.dim, p.vector.len())?;
        }
        for batch in points.chunks(self.config.batch_size) {
            let structs: Vec<PointStruct> = batch
                .iter()
                .map(|p| {
                    let mut payload = Payload::with_capacity(2);
                    payload.insert(COLLECTION_KEY, p.collection.to_string());
                    payload.insert(DOCUMENT_KEY, p.document_id);
                    PointStruct::new(p.chunk_id as u64, p.vector.to_vec(), payload)
                })
                .collect();
            self.call("upsert", || {
                self.client.upsert_points(
                    UpsertPointsBuilder::new(self.collection(), structs.clone()).wait(true),
                )
            })?;
        }
        Ok(())
    }

    fn delete_document(&self, document_id: i64) -> Result<()> {
        self.ensure_ready()?;
        self.call("delete", || {
            self.client.delete_points(
                DeletePointsBuilder::new(self.collection())
                    .points(document_filter(document_id))
                    .wait(true),
            )
        })?;
        Ok(())
    }

    fn search(
        &self,
        vector: &[f32],
        collections: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<VectorHit>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        check_dim(self.dim, vector.len())?;
        self.ensure_ready()?;
        let response = self.call("search", || {
            let mut query = QueryPointsBuilder::new(self.collection())
                .query(vector.to_vec())
                .limit(limit as u64)
                .params(SearchParamsBuilder::default().hnsw_ef(limit.max(64) as u64))
                .with_payload(false);
            if let Some(collections) = collections {
                query = query.filter(Filter::must([Condition::matches(
                    COLLECTION_KEY,
                    collections.to_vec(),
                )]));
            }
            self.client.query(query)
        })?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|p| {
                Some(VectorHit {
                    chunk_id: point_number(p.id)?,
                    score: p.score,
                })
            })
            .collect())
    }

    /// Every upsert and delete already waited for the server to apply it.
    fn commit(&self) -> Result<()> {
        Ok(())
    }

    fn count(&self) -> Result<usize> {
        self.ensure_ready()?;
        let r = self.call("count", || {
            self.client
                .count(CountPointsBuilder::new(self.collection()).exact(true))
        })?;
        Ok(r.result.map_or(0, |c| c.count as usize))
    }

    fn count_document(&self, document_id: i64) -> Result<usize> {
        self.ensure_ready()?;
        let r = self.call("count", || {
            self.client.count(
                CountPointsBuilder::new(self.collection())
                    .filter(document_filter(document_id))
                    .exact(true),
            )
        })?;
        Ok(r.result.map_or(0, |c| c.count as usize))
    }

    /// Qdrant builds its HNSW graphs itself as segments fill.
    fn optimize(&self) -> Result<()> {
        Ok(())
    }

    fn scroll(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredPoint>> {
        self.ensure_ready()?;
        let start = after.map_or(0, |a| a as u64 + 1);
        let r = self.call("scroll", || {
            self.client.scroll(
                ScrollPointsBuilder::new(self.collection())
                    .offset(start)
                    .limit(limit as u32)
                    .with_payload(true)
                    .with_vectors(true),
            )
        })?;
        let mut out = Vec::with_capacity(r.result.len());
        for p in r.result {
            let Some(chunk_id) = point_number(p.id) else {
                continue;
            };
            let field = |key: &str| p.payload.get(key).and_then(|v: &Value| v.kind.clone());
            let (Some(Kind::StringValue(collection)), Some(Kind::IntegerValue(document_id))) =
                (field(COLLECTION_KEY), field(DOCUMENT_KEY))
            else {
                return Err(VectorError::Backend(format!(
                    "qdrant point {chunk_id} lacks the collection or document_id payload"
                )));
            };
            let vector = p
                .vectors
                .and_then(|v| v.vectors_options)
                .and_then(|o| match o {
                    VectorsOptions::Vector(v) => match v.vector {
                        Some(vector_output::Vector::Dense(d)) => Some(d.data),
                        // Servers before 1.12 fill only the deprecated field.
                        #[allow(deprecated)]
                        None if !v.data.is_empty() => Some(v.data),
                        _ => None,
                    },
                    VectorsOptions::Vectors(_) => None,
                })
                .ok_or_else(|| {
                    VectorError::Backend(format!("qdrant point {chunk_id} has no dense vector"))
                })?;
            out.push(StoredPoint {
                chunk_id,
                document_id,
                collection,
                vector,
            });
        }
        Ok(out)
    }
}
