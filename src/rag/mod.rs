//! Grounded answering. [`Asker`] is the "ask" use case every caller shares
//! (the web chat, the `ask` command, and whatever comes next): a question
//! and the caller's collections in, a plan (evidence gate closed, or a
//! prompt over the passages that passed it) and a generation request out,
//! and at the end the answer with its citations.
//!
//! - `retrieve.rs`: hybrid retrieval, the one search entry point; `fusion.rs`
//!   the rank fusion it uses.
//! - `plan.rs`: the evidence gate and the choice of passages.
//! - `prompt.rs`: the prompt text; `citations.rs`: citations in the answer.
//! - `answer.rs`: what an answer is.
//!
//! The model only ever sees passages retrieval returned for the caller's
//! collections, quoted and marked as untrusted data.

pub mod answer;
mod ask;
pub mod citations;
pub mod fusion;
pub mod plan;
mod prompt;
pub mod retrieve;

pub use answer::{Answer, AnswerStatus, Citation, NOT_COVERED, Source};
pub use ask::{Asker, Planned};
pub use citations::finish;
pub use plan::Plan;
