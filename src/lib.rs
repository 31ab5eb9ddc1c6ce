//! Enclave: a private, on-premise RAG appliance. See ARCHITECTURE.md for the
//! bird's-eye view; each module's header says what it owns.

pub mod accounts;
pub mod ask;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod conversations;
pub mod doctor;
pub mod embed;
pub mod eval;
pub mod extract;
pub mod index;
pub mod library;
pub mod linalg;
pub mod llm;
pub mod manage;
pub mod models;
pub mod rag;
pub mod retrieve;
pub mod sessions;
pub mod store;
pub mod time;
pub mod vectors;
pub mod web;
