//! Every generated sentence checked against the sources before anyone sees
//! it. First the claim is taken out of the sentence (citation markers and a
//! preamble such as "The answer is:" or "The document states that" go); a
//! claim that adds nothing to the question ("The answer is:", the question
//! repeated) is not shown. A claim is supported when one of the source
//! sentences closest to it in meaning (embedding cosine at least
//! `rag.min_support_similarity`, and within [`MARGIN`] of the closest)
//! states every number, duration, amount, date and proper name it does
//! (that sentence with its neighbours, normalised: see `facts.rs`), and the
//! two agree on negation ("never" against "can"). Embeddings alone cannot
//! tell "72 hours" from "8 hours"; facts alone would accept a figure found
//! anywhere in a passage ("four weeks" of the rota for a leave request);
//! the closest sentences must hold the figures.
//!
//! A short claim is embedded alone and after the question (an answer is a
//! claim about what was asked: "8 years." means nothing alone), and the
//! closer of the two counts.

use std::collections::HashSet;

use crate::embed::{EmbedError, Embedder, cosine};
use crate::index::lexical::Terms;
use crate::pii::Scanner;

use super::answer::{ADDS_NOTHING, CheckedSentence, Citation, NOT_COVERED, Source};
use super::evidence::Evidence;

/// Why a sentence stating a sensitive identifier its passages lack is removed.
pub const FOREIGN_IDENTIFIER: &str = "states a sensitive identifier no source holds";
use super::facts::{self, SourceFacts};

/// Source sentences this much less similar than the closest one are not
/// taken as support: a figure must come from what the claim is about, not
/// from a sentence that merely shares its topic.
pub const MARGIN: f32 = 0.1;

/// Claims this short that state a figure or a name ("8 years.") are also
/// embedded after the question: alone they carry too little meaning. Others
/// are embedded alone, since after the question any claim ("Yes.", "All of
/// them.") looks close to the passages the question retrieved.
const FRAGMENT_WORDS: usize = 6;

/// Words that talk about the answer rather than state it, and function
/// words the index's stop list keeps.
const META: &[&str] = &[
    "can",
    "could",
    "may",
    "might",
    "must",
    "should",
    "would",
    "do",
    "does",
    "did",
    "has",
    "have",
    "had",
    "here",
    "also",
    "answer",
    "answers",
    "question",
    "questions",
    "source",
    "sources",
    "document",
    "documents",
    "text",
    "passage",
    "passages",
    "number",
    "information",
    "provided",
    "states",
    "state",
    "says",
    "mentions",
    "according",
    "given",
    "quoted",
    "found",
    "find",
    "see",
    "refer",
    "refers",
    "listed",
    "mentioned",
    "described",
    "explained",
    "provide",
    "provides",
];

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
    /// Sensitive identifiers, and those the sources hold (normalised).
    scanner: Option<&'a Scanner>,
    identifiers: HashSet<String>,
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
            scanner: None,
            identifiers: HashSet::new(),
        }
    }

    /// Check generated sentences for sensitive identifiers: one that none of
    /// the sources holds (echoed from the question, or made up) removes the
    /// sentence, and the stored copy of the removed sentence is redacted.
    pub fn with_scanner(mut self, scanner: &'a Scanner) -> Verifier<'a> {
        self.identifiers = self
            .sources
            .iter()
            .flat_map(|s| {
                scanner
                    .scan(&s.text)
                    .into_iter()
                    .map(|f| f.normalised(&s.text))
            })
            .collect();
        self.scanner = Some(scanner);
        self
    }

    /// The sentence redacted, when it states an identifier no source holds.
    fn foreign_identifier(&self, text: &str) -> Option<String> {
        foreign_identifier(self.scanner?, &self.identifiers, text)
    }

    /// Check one generated sentence.
    pub fn check(&self, raw: &str) -> Result<Verdict, EmbedError> {
        let text = claim(&strip_markers(raw));
        if !text.chars().any(char::is_alphanumeric) {
            return Ok(Verdict::Empty);
        }
        if let Some(redacted) = self.foreign_identifier(&text) {
            return Ok(removed(redacted, FOREIGN_IDENTIFIER.into()));
        }
        let stated = facts::extract(&text);
        if stated.is_empty() && is_refusal(&text) {
            return Ok(Verdict::Refusal);
        }
        if stated.is_empty() && adds_nothing(&text, self.question, &self.evidence.terms) {
            return Ok(removed(text, ADDS_NOTHING.into()));
        }
        // A figure or name no source states anywhere fails whatever the
        // meaning: no need to embed the claim.
        let unknown = stated.missing_from(&self.everything);
        if !unknown.is_empty() {
            let reason = format!("no source states {}", unknown.join(", "));
            return Ok(removed(text, reason));
        }
        let negated = has_negation(&text);
        let mut inputs = vec![text.clone()];
        if text.split_whitespace().count() < FRAGMENT_WORDS && !stated.is_empty() {
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
        let floor = self.min_similarity.max(closest - MARGIN);
        let supporting = ranked
            .iter()
            .take_while(|&&(_, sim)| sim >= floor)
            .find(|&&(k, _)| {
                let e = &self.evidence.sentences[k];
                missing(&stated, &e.facts, &e.window).is_empty() && has_negation(&e.text) == negated
            });
        // No document or model text in the logs (erasure cannot reach them).
        for &(k, sim) in ranked.iter().take(3) {
            let e = &self.evidence.sentences[k];
            tracing::debug!(
                source = e.source,
                sentence_at = e.start,
                similarity = sim,
                missing = missing(&stated, &e.facts, &e.window).len(),
                "verification candidate"
            );
        }
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
                    reason: Some(self.reason(closest)),
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

    /// Why a claim whose figures and names some source states was not
    /// supported.
    fn reason(&self, closest: f32) -> String {
        if closest < self.min_similarity {
            format!("no source says this (closest similarity {closest:.2})")
        } else {
            "the sources close to it state other figures or names, or the opposite".to_string()
        }
    }
}

/// `text` redacted, when it states an identifier not among `known`
/// (normalised values of the sources' identifiers).
fn foreign_identifier(scanner: &Scanner, known: &HashSet<String>, text: &str) -> Option<String> {
    let found = scanner.scan(text);
    let foreign = found.iter().any(|f| !known.contains(&f.normalised(text)));
    foreign.then(|| crate::pii::redact(text, &found).text)
}

/// A claim removed before any similarity was computed.
fn removed(text: String, reason: String) -> Verdict {
    Verdict::Checked {
        sentence: CheckedSentence {
            text,
            supported: false,
            source: None,
            similarity: 0.0,
            reason: Some(reason),
            tier: String::new(),
        },
        citation: None,
    }
}

/// The facts of a claim a source sentence lacks: figures must be in the
/// sentence itself, names may be in its neighbours.
fn missing(stated: &facts::Facts, own: &SourceFacts, window: &SourceFacts) -> Vec<String> {
    let figures = facts::Facts {
        quantities: stated.quantities.clone(),
        names: Vec::new(),
    };
    let names = facts::Facts {
        quantities: Vec::new(),
        names: stated.names.clone(),
    };
    let mut out = figures.missing_from(own);
    out.extend(names.missing_from(window));
    out
}

/// The claim of a sentence: without a preamble that only announces it ("The
/// answer is:", "The document states that", "According to the sources,"),
/// capitalised again.
pub fn claim(sentence: &str) -> String {
    let mut text = sentence.trim();
    // "The answer to the question is: 1,200 euros."
    if let Some((head, rest)) = text.split_once(':')
        && is_preamble(head)
        && !rest.trim().is_empty()
    {
        text = rest.trim();
    }
    // "The document states that staff …", "According to the sources, staff …"
    for cut in [" that ", ", "] {
        if let Some((head, rest)) = text.split_once(cut)
            && is_preamble(head)
            && !rest.trim().is_empty()
        {
            text = rest.trim();
            break;
        }
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A short lead-in made of words about the answer and function words only.
fn is_preamble(head: &str) -> bool {
    let words: Vec<String> = head
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let function = |w: &str| {
        matches!(
            w,
            "the"
                | "a"
                | "an"
                | "to"
                | "this"
                | "that"
                | "is"
                | "are"
                | "in"
                | "of"
                | "my"
                | "short"
                | "final"
                | "it"
                | "clearly"
                | "also"
                | "both"
        )
    };
    !words.is_empty()
        && words.len() <= 8
        && words.iter().any(|w| META.contains(&w.as_str()))
        && words
            .iter()
            .all(|w| META.contains(&w.as_str()) || function(w))
}

/// Whether a claim says nothing beyond the question: it is a question
/// itself, or every content word it has is the question's or a word about
/// answers ("The answer is:", "The source number is.").
fn adds_nothing(claim: &str, question: &str, terms: &Terms) -> bool {
    if claim.trim_end().ends_with('?') {
        return true;
    }
    let asked = terms.of(question);
    let meta = terms.of(&META.join(" "));
    terms
        .of(claim)
        .iter()
        .all(|t| asked.contains(t) || meta.contains(t))
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
/// (A model that hedges, "the document does not provide …", "it is unclear
/// …", states nothing a person could act on: it counts as declining.) Only
/// asked of claims without figures or names, which state nothing checkable.
fn is_refusal(text: &str) -> bool {
    const DECLINING: &[&str] = &[
        "do not cover",
        "does not cover",
        "don't cover",
        "doesn't cover",
        "not covered",
        "does not provide",
        "do not provide",
        "doesn't provide",
        "don't provide",
        "no information",
        "not mention",
        "does not say",
        "do not say",
        "not specified",
        "not specify",
        "cannot be determined",
        "is unclear",
        "not clear",
        "cannot answer",
        "can't answer",
        "unable to",
    ];
    let lower = text.to_lowercase().replace('’', "'");
    let stem = NOT_COVERED.trim_end_matches('.').to_lowercase();
    lower.contains(&stem) || DECLINING.iter().any(|d| lower.contains(d))
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
    fn preambles_go_and_empty_claims_are_recognised() {
        assert_eq!(claim("The answer is: 8 years"), "8 years");
        assert_eq!(
            claim("The answer to the question is: 1,200 euros."),
            "1,200 euros."
        );
        assert_eq!(
            claim("The document states that the full-time staff receive 25 days."),
            "The full-time staff receive 25 days."
        );
        assert_eq!(
            claim("According to the sources, staff get 25 days."),
            "Staff get 25 days."
        );
        assert_eq!(
            claim("Staff say that leave is booked online."),
            "Staff say that leave is booked online."
        );
        assert_eq!(
            claim("Note: gloves are single use."),
            "Note: gloves are single use."
        );
        let q = "When should sharps bins be closed?";
        let t = &Terms::new("english");
        assert!(adds_nothing("When should sharps bins be closed?", q, t));
        assert!(adds_nothing("The answer is:", q, t));
        assert!(adds_nothing("The source number is.", q, t));
        assert!(adds_nothing(
            "The answer can be found in the documents.",
            q,
            t
        ));
        assert!(adds_nothing("Sharps bins should be closed.", q, t));
        assert!(!adds_nothing(
            "Sharps bins are closed when three-quarters full.",
            q,
            t
        ));
    }

    #[test]
    fn refusals_and_negations_are_recognised() {
        assert!(is_refusal("The documents do not cover this question."));
        assert!(is_refusal("Sorry, the sources don't cover that."));
        assert!(!is_refusal("Leave is covered by the handbook."));
        assert!(is_refusal(
            "The document does not provide a specific answer."
        ));
        assert!(is_refusal("It is unclear what the document refers to."));
        assert!(has_negation("Personal data must never be sent by e-mail."));
        assert!(has_negation("You can't send it."));
        assert!(!has_negation("You can send patient data by WhatsApp."));
    }

    #[test]
    fn identifiers_no_source_holds_remove_the_sentence_redacted() {
        let scanner = Scanner::default();
        let source = "Contact the ward on jane.doe@example.org about the SSN 123-45-6789.";
        let known: HashSet<String> = scanner
            .scan(source)
            .iter()
            .map(|f| f.normalised(source))
            .collect();
        // The same identifiers, written differently: supported.
        assert_eq!(
            foreign_identifier(&scanner, &known, "Her SSN is 123 45 6789 [1]."),
            None
        );
        assert_eq!(
            foreign_identifier(&scanner, &known, "Write to Jane.Doe@example.org."),
            None
        );
        // One the sources do not hold (echoed from a question, or made up).
        assert_eq!(
            foreign_identifier(&scanner, &known, "His SSN is 512-34-7788."),
            Some("His SSN is [SSN].".to_string())
        );
        assert_eq!(
            foreign_identifier(&scanner, &known, "No identifier here."),
            None
        );
    }
}
