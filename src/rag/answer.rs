//! What an answer is: the quotes from the documents, the generated sentences
//! that verification let through (and those it removed), the tier that
//! produced it, and the passages it was drawn from.

use serde::{Deserialize, Serialize};

pub use crate::store::conversations::AnswerStatus;

/// The answer when the documents do not cover a question; also what the
/// model is told to say in that case.
pub const NOT_COVERED: &str = "The documents do not cover this question.";

/// The tier name of the quotes: sentences of the passages, verbatim, no model.
pub const QUOTE_TIER: &str = "quotes";

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
    /// `text` is the passage exactly as stored (not cut to fit the prompt nor
    /// cleaned of control tokens), so offsets inside it are offsets in the page.
    pub verbatim: bool,
}

/// A span of a source: a quote shown verbatim, or the sentence of the source
/// that supports a generated sentence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Citation {
    pub number: usize,
    pub chunk_id: i64,
    pub document_id: i64,
    pub document_title: String,
    pub page: i64,
    pub quote: String,
    /// Character offsets of `quote` in the page text.
    pub quote_start: i64,
    pub quote_end: i64,
}

/// One sentence a model wrote, after verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckedSentence {
    /// The sentence without citation markers.
    pub text: String,
    pub supported: bool,
    /// The source that supports it (a source number), when supported.
    pub source: Option<usize>,
    /// Similarity to the closest source sentence.
    pub similarity: f32,
    /// Why it was removed: the figures and names no source states, or that
    /// no source says anything close.
    pub reason: Option<String>,
    /// The tier that wrote it.
    #[serde(default)]
    pub tier: String,
}

/// Why a sentence that states nothing ("The answer is:", the question
/// repeated) is not shown.
pub const ADDS_NOTHING: &str = "adds nothing to the question";

/// Why a sentence in which the model declines ("The documents do not cover
/// this question", "It is unclear …") is not shown: the quotes stand instead.
pub const DECLINES: &str = "the model declined to answer";

impl CheckedSentence {
    /// Whether it states something (filler and declining are not claims:
    /// they make an answer neither partly verified nor escalate it, and are
    /// not listed as removed).
    pub fn is_claim(&self) -> bool {
        !matches!(self.reason.as_deref(), Some(ADDS_NOTHING) | Some(DECLINES))
    }
}

/// The removed claims a person may be shown struck through, when the
/// operator turned that on: those of the tier that answered, or of every
/// tier when only the quotes are shown.
pub fn removed_for_view<'a>(
    sentences: &'a [CheckedSentence],
    tier: &'a str,
) -> impl Iterator<Item = &'a CheckedSentence> {
    sentences
        .iter()
        .filter(move |s| !s.supported && s.is_claim() && (tier == QUOTE_TIER || s.tier == tier))
}

/// How far an answer can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Every sentence the model wrote is supported by a source.
    Verified,
    /// Some sentences were removed; those shown are supported.
    Partial,
    /// Only the quotes: no model sentence survived (or no model ran).
    Quoted,
    /// Nothing to verify: not covered, or failed.
    None,
    /// Plain chat through the API (`api.allow_plain_chat`): a model's text
    /// that nothing checked against the documents.
    Unverified,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Verified => "verified",
            Verification::Partial => "partial",
            Verification::Quoted => "quoted",
            Verification::None => "none",
            Verification::Unverified => "unverified",
        }
    }
}

/// What producing an answer cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// CPU time of the process while this answer was produced (exact when one
    /// answer runs at a time, as in `enclave eval answers`).
    pub cpu_secs: f64,
    /// The models' CPU time charged to this answer: each batched step's
    /// share (by tokens computed), summed over the tiers tried. What the
    /// usage page's cost per answer is based on.
    #[serde(default)]
    pub model_cpu_secs: f64,
    /// Wall-clock time from plan to answer.
    pub wall_ms: f64,
    /// Of which gathering evidence, quoting and verifying.
    pub verify_ms: f64,
}

/// The record of checking a tier's answer: stored with the message and
/// summarised in its audit row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checks {
    pub quotes: Vec<Citation>,
    /// Every sentence of every tier tried, removed ones included.
    pub sentences: Vec<CheckedSentence>,
    /// The tiers tried, in order (the last one tried may not be the one chosen).
    pub tiers_tried: Vec<String>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// What is shown: the supported sentences with their citation markers,
    /// or the quotes when no generated sentence survived.
    pub text: String,
    /// False when the documents do not cover the question (or it failed).
    pub grounded: bool,
    /// The source spans behind `text`, one per cited source.
    pub citations: Vec<Citation>,
    /// Every passage the model was given.
    pub sources: Vec<Source>,
    pub verification: Verification,
    /// The tier that produced `text`: a model's name or [`QUOTE_TIER`].
    pub tier: String,
    pub checks: Checks,
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
            verification: Verification::None,
            tier: String::new(),
            checks: Checks::default(),
        }
    }

    /// The generated sentences removed by verification.
    pub fn removed(&self) -> impl Iterator<Item = &CheckedSentence> {
        self.checks.sentences.iter().filter(|s| !s.supported)
    }

    /// Everything a person is shown: the quotes, then the text when it is
    /// not the quotes themselves.
    pub fn shown_text(&self) -> String {
        let mut out: Vec<&str> = self
            .checks
            .quotes
            .iter()
            .map(|q| q.quote.as_str())
            .collect();
        if self.verification != Verification::Quoted {
            out.push(&self.text);
        }
        out.join("\n")
    }
}
