//! The local language model: GGUF loading, tokenizer, chat template, the
//! forward pass, sampling, generation and the inference worker.

pub mod engine;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod sampling;
pub mod synth;
pub mod template;
pub mod tokenizer;
pub mod worker;

pub use engine::{GenerationRequest, GenerationStats, Llm, LlmError, Prompt, StopReason};
pub use sampling::SamplingParams;
pub use template::Message;
pub use worker::{Event, KvPlan, SubmitError, Ticket, Worker, WorkerOptions};
