//! The dense index, behind [`VectorIndex`] so backends can change without
//! touching callers. The embedded default is qdrant-edge (an in-process Qdrant
//! shard on disk); `[vector] backend = "qdrant"` uses an external Qdrant server
//! or cluster instead (`super::qdrant`). [`open`] picks one from the config.
//!
//! Points are chunks: the point id is the chunk id, the payload carries the
//! document id (for deletion) and the collection (for filtering inside search).

use std::path::Path;
use std::sync::Mutex;

use super::qdrant::QdrantVectorIndex;
use crate::config::{Config, VectorBackend};

use qdrant_edge::external::serde_json::json;
use qdrant_edge::{
    AnyVariants, Condition, CreateIndex, DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder,
    EdgeShard, EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations, Filter, JsonPath,
    Match, MatchAny, NamedQuery, PayloadFieldSchema, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, SearchParams, SearchRequest,
    UpdateOperation, ValueVariants, VectorInternal, VectorStructInternal, WithPayloadInterface,
};

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("vector index: {0}")]
    Backend(String),
    /// The external vector store cannot be reached (after retries). Searches
    /// fall back to BM25; documents stay unindexed and are retried.
    #[error("vector store unreachable: {0}")]
    Unavailable(String),
    #[error(
        "vector index expects {expected}-dimensional vectors, got {got}; run `enclave reindex` after changing the embedding model"
    )]
    Dimension { expected: usize, got: usize },
}

pub type Result<T> = std::result::Result<T, VectorError>;

/// One chunk's vector with the fields search filters on.
pub struct VectorPoint<'a> {
    pub chunk_id: i64,
    pub document_id: i64,
    pub collection: &'a str,
    pub vector: &'a [f32],
}

/// A point read back with its vector, for copying between backends.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub chunk_id: i64,
    pub document_id: i64,
    pub collection: String,
    pub vector: Vec<f32>,
}

#[derive(Debug, Clone, Copy)]
pub struct VectorHit {
    pub chunk_id: i64,
    /// Cosine similarity.
    pub score: f32,
}

/// What hybrid retrieval and ingestion need from a vector store.
pub trait VectorIndex: Send + Sync {
    /// Insert or replace points. Not guaranteed durable until [`commit`].
    fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()>;
    /// Remove every point of a document.
    fn delete_document(&self, document_id: i64) -> Result<()>;
    /// Nearest chunks by cosine similarity, restricted to `collections` when given.
    fn search(
        &self,
        vector: &[f32],
        collections: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<VectorHit>>;
    /// Make all changes so far durable.
    fn commit(&self) -> Result<()>;
    /// Number of points stored.
    fn count(&self) -> Result<usize>;
    /// Number of points stored for one document (0 after its deletion).
    fn count_document(&self, document_id: i64) -> Result<usize>;
    /// Build search structures (e.g. HNSW) after a bulk load. May be slow.
    fn optimize(&self) -> Result<()>;
    /// Up to `limit` points with chunk ids above `after`, in ascending order.
    fn scroll(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredPoint>>;
}

pub(crate) const COLLECTION_KEY: &str = "collection";
pub(crate) const DOCUMENT_KEY: &str = "document_id";

/// The backend the config names: qdrant-edge in `<data_dir>/vectors`, or the
/// external Qdrant collection.
pub fn open(config: &Config, dim: usize) -> Result<Box<dyn VectorIndex>> {
    open_backend(config, config.vector.backend, dim)
}

/// A given backend with the rest of the config (migration opens both).
pub fn open_backend(
    config: &Config,
    backend: VectorBackend,
    dim: usize,
) -> Result<Box<dyn VectorIndex>> {
    Ok(match backend {
        VectorBackend::Embedded => Box::new(EdgeVectorIndex::open(
            &config.data_dir.join(EMBEDDED_DIR),
            dim,
        )?),
        VectorBackend::Qdrant => Box::new(QdrantVectorIndex::open(&config.vector, dim)?),
    })
}

/// A vector (or collection) of `got` dimensions where `expected` are stored.
pub(crate) fn check_dim(expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(VectorError::Dimension { expected, got })
    }
}

/// Where the embedded backend keeps its shard, under the data dir.
pub const EMBEDDED_DIR: &str = "vectors";

/// The embedded backend: a qdrant-edge shard in a directory of the data dir.
pub struct EdgeVectorIndex {
    shard: Mutex<EdgeShard>,
    dim: usize,
}

fn backend(e: impl std::fmt::Display) -> VectorError {
    VectorError::Backend(e.to_string())
}

impl EdgeVectorIndex {
    pub fn open(dir: &Path, dim: usize) -> Result<EdgeVectorIndex> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let fresh = !dir.join("edge_config.json").exists();
        let shard = if fresh {
            let config = EdgeConfigBuilder::new()
                .vector(
                    DEFAULT_VECTOR_NAME,
                    EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build(),
                )
                .build();
            let shard = EdgeShard::new(dir, config).map_err(backend)?;
            for (key, kind) in [
                (COLLECTION_KEY, PayloadSchemaType::Keyword),
                (DOCUMENT_KEY, PayloadSchemaType::Integer),
            ] {
                shard
                    .update(UpdateOperation::FieldIndexOperation(
                        FieldIndexOperations::CreateIndex(CreateIndex {
                            field_name: json_path(key)?,
                            field_schema: Some(PayloadFieldSchema::FieldType(kind)),
                        }),
                    ))
                    .map_err(backend)?;
            }
            shard
        } else {
            EdgeShard::load(dir, None).map_err(backend)?
        };
        let configured = shard
            .config()
            .vectors
            .get(DEFAULT_VECTOR_NAME)
            .map(|v| v.size)
            .unwrap_or(dim);
        check_dim(configured, dim)?;
        let index = EdgeVectorIndex {
            shard: Mutex::new(shard),
            dim,
        };
        if fresh {
            index.commit()?;
        }
        Ok(index)
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, EdgeShard> {
        self.shard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn json_path(key: &str) -> Result<JsonPath> {
    JsonPath::try_from(key)
        .map_err(|()| VectorError::Backend(format!("invalid payload key {key:?}")))
}

fn document_filter(document_id: i64) -> Result<Filter> {
    Ok(Filter::new_must(Condition::Field(
        FieldCondition::new_match(
            json_path(DOCUMENT_KEY)?,
            Match::new_value(ValueVariants::Integer(document_id)),
        ),
    )))
}

fn collections_filter(collections: &[String]) -> Result<Filter> {
    Ok(Filter::new_must(Condition::Field(
        FieldCondition::new_match(
            json_path(COLLECTION_KEY)?,
            Match::Any(MatchAny {
                any: AnyVariants::Strings(collections.iter().cloned().collect()),
            }),
        ),
    )))
}

impl VectorIndex for EdgeVectorIndex {
    fn upsert(&self, points: &[VectorPoint<'_>]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let mut list = Vec::with_capacity(points.len());
        for p in points {
            check_dim(self.dim, p.vector.len())?;
            let point = PointStruct::new(
                PointId::NumId(p.chunk_id as u64),
                p.vector.to_vec(),
                json!({ COLLECTION_KEY: p.collection, DOCUMENT_KEY: p.document_id }),
            );
            list.push(point.into());
        }
        self.shard()
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
            ))
            .map_err(backend)
    }

    fn delete_document(&self, document_id: i64) -> Result<()> {
        self.shard()
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(document_filter(document_id)?),
            ))
            .map_err(backend)
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
        let request = SearchRequest {
            query: QueryEnum::Nearest(NamedQuery::<VectorInternal>::default_dense(vector.to_vec())),
            filter: collections.map(collections_filter).transpose()?,
            params: Some(SearchParams {
                hnsw_ef: Some(limit.max(64)),
                ..Default::default()
            }),
            limit,
            offset: 0,
            with_payload: Some(WithPayloadInterface::Bool(false)),
            with_vector: None,
            score_threshold: None,
        };
        let points = self.shard().search(request).map_err(backend)?;
        Ok(points
            .into_iter()
            .filter_map(|p| match p.id {
                PointId::NumId(id) => Some(VectorHit {
                    chunk_id: id as i64,
                    score: p.score,
                }),
                PointId::Uuid(_) => None,
            })
            .collect())
    }

    fn commit(&self) -> Result<()> {
        // EdgeShard::flush panics if its locks are contended; we hold the only
        // handle behind our mutex, so they never are.
        self.shard().flush();
        Ok(())
    }

    fn count(&self) -> Result<usize> {
        self.shard()
            .count(qdrant_edge::CountRequest {
                filter: None,
                exact: true,
            })
            .map_err(backend)
    }

    fn count_document(&self, document_id: i64) -> Result<usize> {
        self.shard()
            .count(qdrant_edge::CountRequest {
                filter: Some(document_filter(document_id)?),
                exact: true,
            })
            .map_err(backend)
    }

    fn optimize(&self) -> Result<()> {
        let shard = self.shard();
        shard.optimize().map_err(backend)?;
        shard.flush();
        Ok(())
    }

    fn scroll(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredPoint>> {
        let request = qdrant_edge::ScrollRequest {
            offset: Some(PointId::NumId(after.map_or(0, |a| a as u64 + 1))),
            limit: Some(limit.max(1)),
            filter: None,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: qdrant_edge::WithVector::Bool(true),
            order_by: None,
        };
        let (records, _next) = self.shard().scroll(request).map_err(backend)?;
        records.into_iter().map(stored_point).collect()
    }
}

fn stored_point(record: qdrant_edge::Record) -> Result<StoredPoint> {
    let chunk_id = match record.id {
        PointId::NumId(id) => id as i64,
        PointId::Uuid(u) => return Err(backend(format!("unexpected point id {u}"))),
    };
    let payload = record.payload.unwrap_or_default();
    let collection = payload
        .0
        .get(COLLECTION_KEY)
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let document_id = payload.0.get(DOCUMENT_KEY).and_then(|v| v.as_i64());
    let (Some(collection), Some(document_id)) = (collection, document_id) else {
        return Err(backend(format!(
            "point {chunk_id} lacks the collection or document_id payload"
        )));
    };
    let vector = match record.vector {
        Some(VectorStructInternal::Single(v)) => v,
        Some(VectorStructInternal::Named(mut named)) => match named.remove(DEFAULT_VECTOR_NAME) {
            Some(VectorInternal::Dense(v)) => v,
            _ => return Err(backend(format!("point {chunk_id} has no dense vector"))),
        },
        _ => return Err(backend(format!("point {chunk_id} has no dense vector"))),
    };
    Ok(StoredPoint {
        chunk_id,
        document_id,
        collection,
        vector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn upsert_search_filter_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let idx = EdgeVectorIndex::open(dir.path(), 3).unwrap();
            let a = unit(&[1.0, 0.0, 0.0]);
            let b = unit(&[0.9, 0.1, 0.0]);
            let c = unit(&[0.0, 0.0, 1.0]);
            idx.upsert(&[
                VectorPoint {
                    chunk_id: 1,
                    document_id: 10,
                    collection: "hr",
                    vector: &a,
                },
                VectorPoint {
                    chunk_id: 2,
                    document_id: 11,
                    collection: "legal",
                    vector: &b,
                },
                VectorPoint {
                    chunk_id: 3,
                    document_id: 11,
                    collection: "legal",
                    vector: &c,
                },
            ])
            .unwrap();
            idx.commit().unwrap();
            let hits = idx.search(&a, None, 2).unwrap();
            assert_eq!(
                hits.iter().map(|h| h.chunk_id).collect::<Vec<_>>(),
                vec![1, 2]
            );
            assert!((hits[0].score - 1.0).abs() < 1e-4);
            let legal = idx.search(&a, Some(&["legal".into()]), 5).unwrap();
            assert_eq!(
                legal.iter().map(|h| h.chunk_id).collect::<Vec<_>>(),
                vec![2, 3]
            );
            assert!(matches!(
                idx.search(&[1.0], None, 1),
                Err(VectorError::Dimension { .. })
            ));
        }
        let idx = EdgeVectorIndex::open(dir.path(), 3).unwrap();
        assert_eq!(idx.count().unwrap(), 3, "points survive reopen");
        idx.delete_document(11).unwrap();
        idx.commit().unwrap();
        assert_eq!(idx.count().unwrap(), 1);
        drop(idx);
        let reopened = EdgeVectorIndex::open(dir.path(), 4);
        assert!(
            matches!(reopened, Err(VectorError::Dimension { .. })),
            "{:?}",
            reopened.err()
        );
    }
}
