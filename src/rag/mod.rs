//! Grounded answering. [`Asker`] is the "ask" use case every caller shares
//! (the web chat, the `ask` and `eval answers` commands, and whatever comes
//! next): a question and the caller's collections in; retrieval, the
//! evidence gate, quotes from the passages, then the model tiers from the
//! cheapest, every generated sentence verified before it is passed on; an
//! answer that says which tier produced it and how far it is verified.
//!
//! - `retrieve.rs`: hybrid retrieval, the one search entry point; `fusion.rs`
//!   the rank fusion it uses.
//! - `plan.rs`: the evidence gate and the choice of passages; `prompt.rs` the
//!   prompt text.
//! - `evidence.rs`: the passages' sentences, embedded; `sentences.rs` how
//!   text is split into sentences; `facts.rs` the numbers and names a
//!   sentence states.
//! - `quote.rs`: the extractive tier; `verify.rs`: the check every generated
//!   sentence passes; `route.rs`: which tier answers; `respond.rs`: the loop.
//! - `answer.rs`: what an answer is.
//!
//! The models only ever see passages retrieval returned for the caller's
//! collections, quoted and marked as untrusted data; a person only ever sees
//! those passages' sentences verbatim and generated sentences they support.

pub mod answer;
mod ask;
pub mod evidence;
pub mod facts;
pub mod fusion;
pub mod plan;
mod prompt;
pub mod quote;
pub mod respond;
pub mod retrieve;
pub mod route;
pub mod sentences;
pub mod verify;

pub use answer::{
    Answer, AnswerStatus, CheckedSentence, Checks, Citation, NOT_COVERED, QUOTE_TIER, Source,
    Verification,
};
pub use ask::{AskError, Asker, PlanError, Planned};
pub use plan::{Plan, Prepared};
pub use respond::{ModelTier, Progress, Stopped, TierRun};
