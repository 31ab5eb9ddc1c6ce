//! What an answer is: the text, whether the documents support it, the
//! passages the model was given and the citations into them.

use serde::Serialize;

pub use crate::store::conversations::AnswerStatus;

/// The answer when the documents do not cover a question; also what the
/// model is told to say in that case.
pub const NOT_COVERED: &str = "The documents do not cover this question.";

/// One passage given to the model, numbered as the model sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub number: usize,
    pub chunk_id: i64,
    pub document_id: i64,
    pub document_title: String,
    pub collection: String,
    pub page: i64,
    pub heading: String,
    /// Character offsets of the passage in its page text.
    pub char_start: i64,
    pub char_end: i64,
    pub text: String,
    /// Cosine similarity of passage and question.
    pub similarity: f32,
}

/// A source the answer cites, with the span of it that best supports the answer.
#[derive(Debug, Clone, Serialize)]
pub struct Citation {
    pub number: usize,
    pub chunk_id: i64,
    pub document_id: i64,
    pub document_title: String,
    pub page: i64,
    pub quote: String,
    /// Offsets of `quote` in the page text.
    pub quote_start: i64,
    pub quote_end: i64,
    /// True when the model wrote no citation and Enclave matched this source
    /// to the answer by the words they share (small models rarely cite).
    pub attributed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub text: String,
    /// False when the answer is (or says) that the documents do not cover it.
    pub grounded: bool,
    pub citations: Vec<Citation>,
    /// Every passage the model was given.
    pub sources: Vec<Source>,
    /// Citation numbers the model wrote that point at no source (removed from `text`).
    pub dropped_citations: Vec<usize>,
}

impl Answer {
    /// How this answer is stored: answered when the documents support it.
    pub fn status(&self) -> AnswerStatus {
        if self.grounded {
            AnswerStatus::Answered
        } else {
            AnswerStatus::NotCovered
        }
    }

    /// An answer that could not be generated: `text` says why; nothing cited.
    pub fn failed(text: &str) -> Answer {
        Answer {
            text: text.to_string(),
            ..Answer::not_covered()
        }
    }

    pub fn not_covered() -> Answer {
        Answer {
            text: NOT_COVERED.to_string(),
            grounded: false,
            citations: Vec::new(),
            sources: Vec::new(),
            dropped_citations: Vec::new(),
        }
    }
}
