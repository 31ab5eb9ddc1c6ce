//! The two derived search indexes. Both can be rebuilt from SQLite at any time.

pub mod lexical;
pub mod qdrant;
pub mod vector;
