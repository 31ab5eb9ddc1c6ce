//! The two derived search indexes. Both can be rebuilt from SQLite at any time.

pub mod lexical;
pub mod qdrant;
pub mod vector;

use serde::{Deserialize, Serialize};

/// Which retrievers a search runs: BM25 alone, dense alone, or both fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bm25,
    Dense,
    Hybrid,
}
