//! Sentence splitting with byte spans. A generated answer is checked against
//! its sources one sentence at a time, so the answer (as a whole, or as it
//! streams out of the model) and the source passages must be cut into
//! sentences the same way: at terminal punctuation that really ends a
//! sentence (not "e.g.", "37.5" or "J. R. R. Tolkien"), keeping a citation
//! marker with the sentence it cites, and at line breaks that end a line
//! (headings, list items) but not at those that merely wrap prose.

/// A sentence of a text: byte offsets into it (trimmed of surrounding whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of the sentence's first byte.
    pub start: usize,
    /// Offset just past the sentence's last byte.
    pub end: usize,
}

/// Characters that end a sentence.
const TERMINALS: [char; 3] = ['.', '!', '?'];
/// Closing quotes and brackets that stay with the sentence they close.
const CLOSERS: [char; 6] = ['"', '\'', ')', '”', '’', '»'];
/// Opening quotes and brackets that may precede an abbreviation.
const OPENERS: [char; 6] = ['"', '\'', '(', '“', '‘', '«'];
/// Words whose trailing '.' marks an abbreviation, not a sentence end
/// (lowercased, without that final '.').
const ABBREVIATIONS: [&str; 17] = [
    "e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "st", "fig", "approx", "cf", "inc", "ltd",
    "jr", "sr", "prof",
];

/// Split `text` into sentences. A sentence ends at '.', '!' or '?' (with any
/// closing quotes or brackets) followed by whitespace and then not by a
/// lowercase letter; a citation marker right after it ("[1]", "[1, 2]")
/// stays with it. A line break ends a sentence unless it wraps prose: the
/// line before lacks terminal punctuation and the next starts lowercase.
/// Decimals, abbreviations and initials do not end sentences.
/// Empty pieces are dropped.
pub fn split(text: &str) -> Vec<Span> {
    let mut ends = cuts(text);
    ends.push(text.len());
    pieces(text, &ends)
}

/// Byte offsets where sentences end, in increasing order.
fn cuts(text: &str) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if TERMINALS.contains(&c) {
            // The whole run ("?!", "...") is judged once, from its first mark.
            match terminator_end(text, i) {
                Some(end) => {
                    cuts.push(end);
                    i = end;
                }
                None => i = skip(text, i, |c| TERMINALS.contains(&c)),
            }
            continue;
        }
        if c == '\n' && line_break_ends(text, i) {
            cuts.push(i);
        }
        i += c.len_utf8();
    }
    cuts
}

/// The offset just past the first char of `text[at..]` not matching `keep`.
fn skip(text: &str, at: usize, keep: impl Fn(char) -> bool) -> usize {
    text[at..].find(|c| !keep(c)).map_or(text.len(), |n| at + n)
}

/// Where the sentence ends if the terminal punctuation at `at` ends one:
/// after the punctuation and closers, or after a citation marker following
/// them.
fn terminator_end(text: &str, at: usize) -> Option<usize> {
    let run = skip(text, at, |c| TERMINALS.contains(&c));
    let end = skip(text, run, |c| CLOSERS.contains(&c));
    if run - at == 1 && text[at..].starts_with('.') && is_abbreviation(text, at, end) {
        return None;
    }
    let next = skip(text, end, char::is_whitespace);
    if let Some(after) = citations_end(text, next) {
        return Some(after);
    }
    match text[next..].chars().next() {
        None => Some(end),
        // "file.Name", "x.y": no whitespace, no sentence end.
        Some(_) if next == end => None,
        Some(c) if c.is_lowercase() => None,
        Some(_) => Some(end),
    }
}

/// Whether the '.' at `dot` (its closers ending at `end`) ends an
/// abbreviation, an initial or a dotted initialism rather than a sentence.
fn is_abbreviation(text: &str, dot: usize, end: usize) -> bool {
    let start = text[..dot]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(p, c)| p + c.len_utf8());
    let word = text[start..dot].trim_start_matches(OPENERS);
    let lower = word.to_lowercase();
    if lower == "no" {
        // "No. 5" is an abbreviation; "Is it? No. Staff must..." is not.
        let next = text[end..].trim_start().chars().next();
        return next.is_some_and(|c| c.is_ascii_digit());
    }
    let mut chars = word.chars();
    let initial = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
    let dotted = word.contains('.')
        && word
            .split('.')
            .all(|part| part.chars().count() == 1 && part.chars().all(char::is_alphabetic));
    initial || dotted || ABBREVIATIONS.contains(&lower.as_str())
}

/// The end of one or more citation markers starting at `at`, when they are
/// followed by whitespace or the end of the text.
fn citations_end(text: &str, at: usize) -> Option<usize> {
    let mut end = marker_end(text, at)?;
    while let Some(next) = marker_end(text, skip(text, end, char::is_whitespace)) {
        end = next;
    }
    let followed = text[end..].chars().next().is_none_or(char::is_whitespace);
    followed.then_some(end)
}

/// The end of a citation marker "[1]" or "[1, 2]" starting at `at`.
fn marker_end(text: &str, at: usize) -> Option<usize> {
    let rest = text[at..].strip_prefix('[')?;
    let close = rest.find(']')?;
    // Spaces only, no line breaks: a marker never spans lines, and this
    // keeps a marker's fate settled once a line break follows its '['.
    let numbers = rest[..close].split(',').map(|n| n.trim_matches(' '));
    let valid = numbers
        .into_iter()
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    valid.then_some(at + 1 + close + 1)
}

/// Whether the line break at `at` ends a sentence: when the line before ends
/// in terminal punctuation or is a heading or list item, or the next line is
/// blank, a list item or a heading; not when it only wraps prose (text files
/// wrapped at 80 columns break lines anywhere, before names too).
fn line_break_ends(text: &str, at: usize) -> bool {
    let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    let line = text[line_start..at].trim();
    let before = line.trim_end_matches(CLOSERS);
    let ended = before.ends_with(TERMINALS);
    let next_line = text[at + 1..].trim_start_matches([' ', '\t']);
    let next_blank = next_line.is_empty() || next_line.starts_with(['\n', '\r']);
    ended || line.is_empty() || next_blank || is_item(line) || is_item(next_line)
}

/// A markdown heading or a list item: `#`, `-`, `*`, `•`, or `1.` / `1)`.
fn is_item(line: &str) -> bool {
    if line.starts_with(['#', '-', '*', '•']) {
        return true;
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(['.', ')'])
}

/// The trimmed, non-empty pieces of `text` between consecutive `ends`
/// (the first piece starts at 0).
fn pieces(text: &str, ends: &[usize]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut start = 0;
    for &end in ends {
        let piece = &text[start..end];
        let body = piece.trim();
        if !body.is_empty() {
            let lead = piece.len() - piece.trim_start().len();
            spans.push(Span {
                start: start + lead,
                end: start + lead + body.len(),
            });
        }
        start = end;
    }
    spans
}

/// Incremental splitter for streamed model output: text arrives in pieces,
/// and a sentence is released only once it is certainly complete, so that
/// the sentences released are exactly those [`split`] finds in the whole
/// text.
#[derive(Debug, Default)]
pub struct Stream {
    /// All the text so far: a rule may look back to the start of the line
    /// (list items), which can lie before the last released sentence.
    text: String,
    /// Bytes of `text` already released as sentences.
    released: usize,
}

impl Stream {
    /// An empty stream.
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Add a piece; returns the sentences completed by it (trimmed).
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.text.push_str(piece);
        let cuts = cuts(&self.text);
        let Some(last) = cuts
            .iter()
            .rev()
            .copied()
            .find(|&c| c > self.released && settled(&self.text, c))
        else {
            return Vec::new();
        };
        let ends: Vec<usize> = cuts.into_iter().take_while(|&c| c <= last).collect();
        let done = self.unreleased(&pieces(&self.text, &ends));
        self.released = last;
        done
    }

    /// The text ended: return what is left as sentences.
    pub fn finish(&mut self) -> Vec<String> {
        let done = self.unreleased(&split(&self.text));
        self.released = self.text.len();
        done
    }

    fn unreleased(&self, spans: &[Span]) -> Vec<String> {
        let fresh: Vec<Span> = spans
            .iter()
            .copied()
            .filter(|s| s.start >= self.released)
            .collect();
        texts(&self.text, &fresh)
    }
}

/// Whether a cut can no longer move or vanish as text is added: something
/// other than whitespace follows it, and not a '[' that may open a citation
/// marker belonging to the sentence before.
fn settled(text: &str, cut: usize) -> bool {
    text[cut..]
        .trim_start()
        .chars()
        .next()
        .is_some_and(|c| c != '[')
}

/// The text of each span, owned.
fn texts(text: &str, spans: &[Span]) -> Vec<String> {
    spans
        .iter()
        .map(|s| text[s.start..s.end].to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<&str> {
        split(text)
            .into_iter()
            .map(|s| &text[s.start..s.end])
            .collect()
    }

    #[test]
    fn abbreviations_do_not_end_sentences() {
        let text = "Staff, e.g. Nurses, may apply. Dr. Smith approves it, etc. Then it is done.";
        assert_eq!(
            sentences(text),
            [
                "Staff, e.g. Nurses, may apply.",
                "Dr. Smith approves it, etc. Then it is done."
            ]
        );
        assert_eq!(
            sentences("The U.S. Army is big. So (approx. 5) are."),
            ["The U.S. Army is big.", "So (approx. 5) are."]
        );
        assert_eq!(
            sentences("See No. 5 here. Is it? No. Staff must ask."),
            ["See No. 5 here.", "Is it?", "No.", "Staff must ask."]
        );
    }

    #[test]
    fn decimals_and_versions_do_not_end_sentences() {
        assert_eq!(
            sentences("A week is 37.5 hours. Version v2.1 is out."),
            ["A week is 37.5 hours.", "Version v2.1 is out."]
        );
        assert_eq!(
            sentences("It costs 25. Next one."),
            ["It costs 25.", "Next one."]
        );
    }

    #[test]
    fn initials_do_not_end_sentences() {
        assert_eq!(
            sentences("J. R. R. Tolkien wrote it. Michael J. Fox acted."),
            ["J. R. R. Tolkien wrote it.", "Michael J. Fox acted."]
        );
    }

    #[test]
    fn citation_markers_stay_with_the_sentence_before() {
        assert_eq!(
            sentences("It is 25 days. [1] Next."),
            ["It is 25 days. [1]", "Next."]
        );
        assert_eq!(
            sentences("It is 25 days. [1, 2] [3] Next."),
            ["It is 25 days. [1, 2] [3]", "Next."]
        );
        assert_eq!(
            sentences("It is 25 days.[1] Next."),
            ["It is 25 days.[1]", "Next."]
        );
        assert_eq!(
            sentences("It is 25 days [1]. Next."),
            ["It is 25 days [1].", "Next."]
        );
        assert_eq!(
            sentences("Done. [see above] Next."),
            ["Done.", "[see above] Next."]
        );
    }

    #[test]
    fn wrapped_lines_join_but_headings_and_items_split() {
        let wrapped =
            "Full-time staff are entitled to\nannual leave of 25 days.\nPart-time staff get less.";
        assert_eq!(
            sentences(wrapped),
            [
                "Full-time staff are entitled to\nannual leave of 25 days.",
                "Part-time staff get less."
            ]
        );
        // A wrap before a capitalised name is still a wrap.
        let before_name = "Requests during\nDecember are allocated by seniority. Next.";
        assert_eq!(
            sentences(before_name),
            [
                "Requests during\nDecember are allocated by seniority.",
                "Next."
            ]
        );
        let markdown = "## Annual leave\n\nFull-time staff receive 25 days.";
        assert_eq!(
            sentences(markdown),
            ["## Annual leave", "Full-time staff receive 25 days."]
        );
        assert_eq!(
            sentences("Benefits:\n- pension\n- leave"),
            ["Benefits:", "- pension", "- leave"]
        );
        assert_eq!(
            sentences("It ended.\nthen more"),
            ["It ended.", "then more"]
        );
    }

    #[test]
    fn question_and_exclamation_marks_end_sentences() {
        assert_eq!(sentences("Is it? Yes! Done."), ["Is it?", "Yes!", "Done."]);
        assert_eq!(
            sentences("Really?! ok then. Fine..."),
            ["Really?! ok then.", "Fine..."]
        );
        assert_eq!(
            sentences("He said “stop.” Then he left."),
            ["He said “stop.”", "Then he left."]
        );
    }

    #[test]
    fn unicode_text_splits_on_char_boundaries() {
        let text = "Café au lait coûte 3,50 €. Très bien.";
        assert_eq!(
            sentences(text),
            ["Café au lait coûte 3,50 €.", "Très bien."]
        );
        let start = text.find("Très").unwrap();
        assert_eq!(
            split(text)[1],
            Span {
                start,
                end: text.len()
            }
        );
    }

    #[test]
    fn empty_pieces_are_dropped() {
        assert!(split("").is_empty());
        assert!(split("  \n\n \t").is_empty());
        assert_eq!(sentences("  Hello.  \n\n  World  "), ["Hello.", "World"]);
    }

    const TEXTS: [&str; 11] = [
        "Do this. 2) then\nwrap more. And go.",
        "- Staff get 25 days. Then\nmore text here. End.",
        "Staff, e.g. Nurses, may apply. Dr. Smith approves it, etc. Then it is done.",
        "It is 25 days. [1] Next. It is 25 days. [1, 2] [3] Next. Done.[4] Yes [x]. No.",
        "Full-time staff are entitled to\nannual leave of 25 days.\nPart-time staff get less.",
        "## Annual leave\n\nFull-time staff receive 25 days.\n\n- pension\n- leave\n",
        "Is it? Yes! Done... ok then. He said “stop.” Then he left. See No. 5. No. Fine",
        "Café au lait coûte 3,50 €. Très bien. J. R. R. Tolkien wrote it. Michael J. Fox.",
        "A week is 37.5 hours. Version v2.1 is out.\n  indented\nline. The U.S. Army. It.",
        "Cite. [1,\n2] Then. [12] x. [3]\nlower. [4]Upper. [5] [6",
        "",
    ];

    /// The stream's sentences for `text` cut into pieces at `cuts`.
    fn streamed(text: &str, cuts: &[usize]) -> Vec<String> {
        let mut stream = Stream::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain([&text.len()]) {
            out.extend(stream.push(&text[start..end]));
            start = end;
        }
        out.extend(stream.finish());
        out
    }

    #[test]
    fn stream_matches_split_however_the_text_is_cut() {
        for text in TEXTS {
            let expected = sentences(text);
            let boundaries: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            for &at in &boundaries {
                assert_eq!(streamed(text, &[at]), expected, "{text:?} cut at {at}");
            }
            for size in [1, 2, 3, 5, 7, 11] {
                let cuts: Vec<usize> = boundaries.iter().copied().step_by(size).collect();
                assert_eq!(
                    streamed(text, &cuts),
                    expected,
                    "{text:?} in pieces of {size}"
                );
            }
        }
    }

    #[test]
    fn stream_releases_a_sentence_only_once_it_is_complete() {
        let mut stream = Stream::default();
        assert!(stream.push("It is 25 days.").is_empty());
        assert!(stream.push(" ").is_empty());
        assert!(stream.push("[1]").is_empty());
        assert!(stream.push(" ").is_empty());
        assert_eq!(stream.push("Next"), ["It is 25 days. [1]"]);
        assert!(stream.push(" one.").is_empty());
        assert_eq!(stream.finish(), ["Next one."]);
        assert!(stream.finish().is_empty());
    }
}
