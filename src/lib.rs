//! Enclave: a private, on-premise RAG appliance. See ARCHITECTURE.md for the
//! bird's-eye view; each module's header says what it owns.
//!
//! Layers, from the bottom: the leaves (`config`, `time`, `os`, `linalg`, `metrics`,
//! `llm`, `embed`, `extract`, `audit`, `pii`), the `store` (all SQL) and the
//! `index`es, then the `library` (documents kept consistent across store and
//! indexes), then the use cases (`ingest`, `rag`) and `accounts`, and at the
//! edges the `web` server, the `cli` definitions and the `cmd` bodies. A
//! layer imports only from below; `tests/it/architecture.rs` enforces it.

pub mod accounts;
pub mod audit;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod embed;
pub mod extract;
pub mod index;
pub mod ingest;
pub mod library;
pub mod linalg;
pub mod llm;
pub mod metrics;
pub mod os;
pub mod pii;
pub mod rag;
pub mod store;
pub mod time;
pub mod web;
