//! Citations: the model's text turned into an answer whose citation markers
//! point only at sources it was given, each with the span of the passage that
//! supports it; an answer that cites nothing is attributed by shared words.

use super::answer::{Answer, Citation, NOT_COVERED, Source};

/// Turn the model's text into an answer: keep citation markers that point
/// at a source, drop the others, and quote the supporting span of each
/// cited source.
pub fn finish(text: &str, sources: &[Source]) -> Answer {
    let (clean, mut cited, dropped) = resolve_citations(text, sources.len());
    let grounded = !clean.contains(NOT_COVERED.trim_end_matches('.'));
    let attributed = cited.is_empty();
    if attributed {
        cited = attribute(&clean, sources);
    }
    let citations = cited
        .iter()
        .filter_map(|&n| sources.get(n - 1))
        .map(|s| {
            let context = if attributed {
                clean.clone()
            } else {
                sentences_citing(&clean, s.number)
            };
            let (start, end) = best_span(&s.text, &context);
            Citation {
                number: s.number,
                chunk_id: s.chunk_id,
                document_id: s.document_id,
                document_title: s.document_title.clone(),
                page: s.page,
                quote: s.text[start..end].trim().to_string(),
                quote_start: s.char_start + s.text[..start].chars().count() as i64,
                quote_end: s.char_start + s.text[..end].chars().count() as i64,
                attributed,
            }
        })
        .collect();
    Answer {
        text: clean.trim().to_string(),
        grounded,
        citations: if grounded { citations } else { Vec::new() },
        sources: sources.to_vec(),
        dropped_citations: dropped,
    }
}

/// Find `[n]`, `[n, m]` markers; returns the text with invalid numbers
/// removed, the valid numbers in order of first use, and the dropped ones.
fn resolve_citations(text: &str, n_sources: usize) -> (String, Vec<usize>, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut cited = Vec::new();
    let mut dropped = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inner = &after[..close];
        let numbers: Option<Vec<usize>> = inner
            .split(',')
            .map(|p| p.trim().parse::<usize>().ok())
            .collect();
        match numbers {
            Some(numbers) if !inner.trim().is_empty() => {
                let valid: Vec<usize> = numbers
                    .into_iter()
                    .filter(|&n| {
                        let ok = (1..=n_sources).contains(&n);
                        if !ok {
                            dropped.push(n);
                        }
                        ok
                    })
                    .collect();
                if !valid.is_empty() {
                    let list: Vec<String> = valid.iter().map(usize::to_string).collect();
                    out.push_str(&format!("[{}]", list.join(", ")));
                }
                for n in valid {
                    if !cited.contains(&n) {
                        cited.push(n);
                    }
                }
            }
            // Not a citation (e.g. "[sic]"): keep as written.
            _ => out.push_str(&rest[open..open + 1 + close + 1]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    (out, cited, dropped)
}

/// Content words: lowercase, longer than two characters, numbers kept
/// (a figure shared by answer and passage is the strongest sign of where
/// the answer came from).
fn content_words(s: &str) -> std::collections::HashSet<String> {
    const STOP: &[&str] = &[
        "the",
        "and",
        "for",
        "are",
        "with",
        "that",
        "this",
        "from",
        "you",
        "your",
        "not",
        "but",
        "can",
        "has",
        "have",
        "was",
        "were",
        "will",
        "what",
        "which",
        "who",
        "how",
        "answer",
        "source",
        "sources",
        "document",
        "documents",
    ];
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2 || w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

/// Sources an uncited answer draws on: those sharing at least two content
/// words with it, and at least half as many as the best-matching source.
fn attribute(answer: &str, sources: &[Source]) -> Vec<usize> {
    let words = content_words(answer);
    let overlaps: Vec<(usize, usize)> = sources
        .iter()
        .map(|s| {
            (
                s.number,
                content_words(&s.text).intersection(&words).count(),
            )
        })
        .collect();
    let best = overlaps.iter().map(|o| o.1).max().unwrap_or(0);
    overlaps
        .into_iter()
        .filter(|&(_, n)| n >= 2 && n * 2 >= best)
        .map(|(number, _)| number)
        .collect()
}

/// The sentences of the answer that carry marker `n` (the whole answer if
/// none can be singled out).
fn sentences_citing(answer: &str, n: usize) -> String {
    let tag = format!("{n}");
    let mut picked = String::new();
    for sentence in answer.split_inclusive(['.', '!', '?', '\n']) {
        let cites = sentence
            .split('[')
            .skip(1)
            .filter_map(|s| s.split(']').next())
            .any(|inner| inner.split(',').any(|p| p.trim() == tag));
        if cites {
            picked.push_str(sentence);
        }
    }
    if picked.is_empty() {
        answer.to_string()
    } else {
        picked
    }
}

/// The sentence of `passage` sharing the most words with `context`, as byte
/// offsets into `passage`.
fn best_span(passage: &str, context: &str) -> (usize, usize) {
    let words = content_words;
    let wanted = words(context);
    let mut best = (0usize, passage.len(), 0usize);
    let mut start = 0;
    for sentence in passage.split_inclusive(['.', '!', '?', '\n']) {
        let end = start + sentence.len();
        let overlap = words(sentence).intersection(&wanted).count();
        if overlap > best.2 && !sentence.trim().is_empty() {
            best = (start, end, overlap);
        }
        start = end;
    }
    (best.0, best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: usize, text: &str) -> Source {
        Source {
            number: n,
            chunk_id: 100 + n as i64,
            document_id: 7,
            document_title: "Handbook".into(),
            collection: "default".into(),
            page: 2,
            heading: String::new(),
            char_start: 1000,
            char_end: 1000 + text.chars().count() as i64,
            text: text.into(),
            similarity: 0.6,
        }
    }

    #[test]
    fn invalid_citation_numbers_are_dropped() {
        let sources = [
            source(
                1,
                "Staff get 28 days of annual leave. Leave is booked online.",
            ),
            source(2, "Hand hygiene is required before patient contact."),
        ];
        let a = finish(
            "Staff get 28 days of leave [1][7]. Wash hands [2, 9]. See [sic].",
            &sources,
        );
        assert_eq!(
            a.text,
            "Staff get 28 days of leave [1]. Wash hands [2]. See [sic]."
        );
        assert_eq!(a.dropped_citations, vec![7, 9]);
        assert_eq!(a.citations.len(), 2);
        assert_eq!(a.citations[0].chunk_id, 101);
        assert_eq!(a.citations[0].quote, "Staff get 28 days of annual leave.");
        assert_eq!(a.citations[0].quote_start, 1000);
        assert_eq!(
            a.citations[1].quote,
            "Hand hygiene is required before patient contact."
        );
        assert!(a.grounded);
    }

    #[test]
    fn uncited_answers_are_attributed_by_shared_words() {
        let sources = [
            source(
                1,
                "Staff get 28 days of annual leave. Leave is booked online.",
            ),
            source(2, "Hand hygiene is required before patient contact."),
        ];
        let a = finish("Staff receive 28 days of annual leave each year.", &sources);
        assert_eq!(a.citations.len(), 1);
        assert_eq!(a.citations[0].number, 1);
        assert!(a.citations[0].attributed);
        assert_eq!(a.citations[0].quote, "Staff get 28 days of annual leave.");
        assert!(
            finish("Blue whales are large.", &sources)
                .citations
                .is_empty()
        );
    }

    #[test]
    fn not_covered_reply_is_not_grounded_and_cites_nothing() {
        let a = finish(
            "The documents do not cover this question [1].",
            &[source(1, "x.")],
        );
        assert!(!a.grounded);
        assert!(a.citations.is_empty());
    }
}
