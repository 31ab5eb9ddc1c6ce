//! Every generated sentence checked against the sources before anyone sees
//! it. A sentence is supported when a sentence of one source is close to it
//! in meaning (embedding cosine at least `rag.min_support_similarity`), the
//! source states every number, duration, amount, date and proper name it
//! does (within that sentence and its neighbours, normalised: see
//! `facts.rs`), and the two agree on negation ("never" against "can").
//! Embeddings alone cannot tell "72 hours" from "8 hours"; facts alone cannot
//! tell an invented clause that repeats a figure; together they can.

use crate::embed::{EmbedError, Embedder, cosine};

use super::answer::{CheckedSentence, Citation, NOT_COVERED, Source};
use super::evidence::Evidence;
use super::facts::{self, SourceFacts};

/// Sentences this short ("8 years.") are compared with the question in
/// front of them too: alone they carry too little meaning to embed.
const FRAGMENT_WORDS: usize = 6;

/// What checking one piece of generated text found.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing to check: only citation markers or punctuation.
    Empty,
    /// The model said the documents do not cover the question.
    Refusal,
    Checked {
        sentence: CheckedSentence,
        /// The source span that supports it, when supported.
        citation: Option<Citation>,
    },
}

pub struct Verifier<'a> {
    embedder: &'a Embedder,
    evidence: &'a Evidence,
    sources: &'a [Source],
    question: &'a str,
    min_similarity: f32,
    /// Every fact of every source, to say which facts no source states.
    everything: SourceFacts,
}

impl<'a> Verifier<'a> {
    pub fn new(
        embedder: &'a Embedder,
        evidence: &'a Evidence,
        sources: &'a [Source],
        question: &'a str,
        min_similarity: f32,
    ) -> Verifier<'a> {
        let mut everything = SourceFacts::default();
        for s in sources {
            everything.extend(&SourceFacts::of(&s.text));
        }
        Verifier {
            embedder,
            evidence,
            sources,
            question,
            min_similarity,
            everything,
        }
    }

    /// Check one generated sentence.
    pub fn check(&self, raw: &str) -> Result<Verdict, EmbedError> {
        let text = strip_markers(raw);
        if !text.chars().any(char::is_alphanumeric) {
            return Ok(Verdict::Empty);
        }
        if is_refusal(&text) {
            return Ok(Verdict::Refusal);
        }
        let stated = facts::extract(&text);
        let negated = has_negation(&text);
        let mut inputs = vec![text.clone()];
        if text.split_whitespace().count() < FRAGMENT_WORDS {
            inputs.push(format!("{} {text}", self.question));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let vectors = self.embedder.embed(&refs)?;
        let similarity = |k: usize| {
            vectors
                .iter()
                .map(|v| cosine(v, &self.evidence.sentences[k].vector))
                .fold(f32::MIN, f32::max)
        };
        let mut ranked: Vec<(usize, f32)> = (0..self.evidence.sentences.len())
            .map(|k| (k, similarity(k)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let closest = ranked.first().map_or(0.0, |r| r.1);
        let supporting = ranked
            .iter()
            .take_while(|&&(_, sim)| sim >= self.min_similarity)
            .find(|&&(k, _)| {
                let e = &self.evidence.sentences[k];
                stated.missing_from(&e.facts).is_empty() && has_negation(&e.text) == negated
            });
        let (sentence, citation) = match supporting {
            Some(&(k, sim)) => (
                CheckedSentence {
                    text,
                    supported: true,
                    source: Some(self.sources[self.evidence.sentences[k].source].number),
                    similarity: sim,
                    reason: None,
                    tier: String::new(),
                },
                self.evidence.citation(k, self.sources),
            ),
            None => (
                CheckedSentence {
                    reason: Some(self.reason(&stated, closest)),
                    text,
                    supported: false,
                    source: None,
                    similarity: closest,
                    tier: String::new(),
                },
                None,
            ),
        };
        Ok(Verdict::Checked { sentence, citation })
    }

    fn reason(&self, stated: &facts::Facts, closest: f32) -> String {
        let unknown = stated.missing_from(&self.everything);
        if !unknown.is_empty() {
            format!("no source states {}", unknown.join(", "))
        } else if closest < self.min_similarity {
            format!("no source says this (closest similarity {closest:.2})")
        } else {
            "the sources close to it state other figures or names, or the opposite".to_string()
        }
    }
}

/// The sentence as shown: its text with the supporting source's marker
/// before the final punctuation.
pub fn with_marker(text: &str, number: usize) -> String {
    let trimmed = text.trim_end();
    match trimmed.char_indices().last() {
        Some((i, c)) if matches!(c, '.' | '!' | '?') => {
            format!("{} [{number}]{c}", trimmed[..i].trim_end())
        }
        _ => format!("{trimmed} [{number}]"),
    }
}

/// The text without `[n]` / `[n, m]` citation markers (the model's own
/// citations are not trusted: verification finds the supporting source).
pub fn strip_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close)
                if !after[..close].trim().is_empty()
                    && after[..close]
                        .split(',')
                        .all(|p| p.trim().parse::<usize>().is_ok()) =>
            {
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .join(" ")
        .replace(" .", ".")
        .replace(" ,", ",")
        .trim()
        .to_string()
}

/// "The documents do not cover this question", or the model's rewording of it.
fn is_refusal(text: &str) -> bool {
    let lower = text.to_lowercase();
    let stem = NOT_COVERED.trim_end_matches('.').to_lowercase();
    lower.contains(&stem)
        || lower.contains("do not cover")
        || lower.contains("does not cover")
        || lower.contains("don't cover")
        || lower.contains("not covered")
}

fn has_negation(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '’')
        .map(str::to_lowercase)
        .any(|w| {
            matches!(
                w.as_str(),
                "not" | "no" | "never" | "none" | "cannot" | "nor" | "neither" | "nothing"
            ) || w.ends_with("n't")
                || w.ends_with("n’t")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_stripped_and_placed_before_the_full_stop() {
        assert_eq!(
            strip_markers("Staff get 25 days [1]. See [sic] [2, 3]"),
            "Staff get 25 days. See [sic]"
        );
        assert_eq!(
            with_marker("Staff get 25 days.", 2),
            "Staff get 25 days [2]."
        );
        assert_eq!(with_marker("25 days", 1), "25 days [1]");
    }

    #[test]
    fn refusals_and_negations_are_recognised() {
        assert!(is_refusal("The documents do not cover this question."));
        assert!(is_refusal("Sorry, the sources don't cover that."));
        assert!(!is_refusal("Leave is covered by the handbook."));
        assert!(has_negation("Personal data must never be sent by e-mail."));
        assert!(has_negation("You can't send it."));
        assert!(!has_negation("You can send patient data by WhatsApp."));
    }
}
