//! The integration tests, one binary (one link, one copy of the crate on
//! disk): each module drives the real `enclave` binary, the real models from
//! `models/` and real indexes on disk. `common` holds the shared helpers.

mod common;

mod answers;
mod architecture;
mod ask;
mod audit_log;
mod backup_restore;
mod browser_e2e;
mod crash_recovery;
mod egress;
mod embeddings;
mod gemma3;
mod ingest;
mod llm_generation;
mod llm_gguf;
mod ocr;
mod openai_api;
mod pdf_corpus;
mod pii;
mod qdrant_backend;
mod web_load;
mod web_security;
