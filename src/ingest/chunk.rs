//! Structure-aware chunking: each page's text is cut into passages of about
//! `target_words` words, preferring to cut at headings, then paragraph ends,
//! then sentence or line ends, with `overlap_words` of context carried into the
//! next passage (but never across a heading). Chunks never span pages, so every
//! chunk cites exactly one page, and carry character offsets into that page.

use crate::config::ChunkConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub page: u32,
    /// Offsets in characters (not bytes) into the page text.
    pub char_start: usize,
    pub char_end: usize,
    /// The nearest heading at or before the chunk start, without `#` marks.
    pub heading: String,
    pub text: String,
}

/// Strength of a cut placed just before a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    None = 0,
    Sentence = 1,
    Paragraph = 2,
    Heading = 3,
}

struct Word {
    byte_start: usize,
    byte_end: usize,
    break_before: Break,
    /// Set on the first word of a heading line.
    heading: Option<String>,
}

pub fn chunk_pages<'a>(
    pages: impl IntoIterator<Item = (u32, &'a str)>,
    config: &ChunkConfig,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut heading = String::new();
    for (page, text) in pages {
        chunk_page(page, text, config, &mut heading, &mut out);
    }
    out
}

fn chunk_page(
    page: u32,
    text: &str,
    config: &ChunkConfig,
    heading: &mut String,
    out: &mut Vec<Chunk>,
) {
    let words = words(text);
    if words.is_empty() {
        return;
    }
    let char_at = CharIndex::new(text);
    let min_words = (config.target_words / 2).max(1);
    let mut start = 0;
    // The heading in force at each chunk start; carried over from earlier pages.
    let mut scan = 0;
    while start < words.len() {
        while scan <= start {
            if let Some(h) = &words[scan].heading {
                *heading = h.clone();
            }
            scan += 1;
        }
        let end = choose_end(&words, start, min_words, config);
        let byte_start = words[start].byte_start;
        let byte_end = words[end - 1].byte_end;
        out.push(Chunk {
            page,
            char_start: char_at.of(byte_start),
            char_end: char_at.of(byte_end),
            heading: heading.clone(),
            text: text[byte_start..byte_end].to_string(),
        });
        if end >= words.len() {
            break;
        }
        start = next_start(&words, start, end, config.overlap_words);
    }
}

fn choose_end(words: &[Word], start: usize, min_words: usize, config: &ChunkConfig) -> usize {
    let n = words.len();
    let hard_end = (start + config.max_words).min(n);
    // A heading starts a new chunk unless the current one would be tiny.
    let small = (config.overlap_words + 5).min(min_words);
    if let Some(h) = (start + small..hard_end)
        .skip(1)
        .find(|&i| words[i].break_before == Break::Heading)
    {
        return h;
    }
    if n - start <= config.max_words {
        return n;
    }
    let target = start + config.target_words;
    let mut best = (i64::MIN, hard_end);
    for e in (start + min_words)..=hard_end {
        // Cutting at the very end of the page is as good as a heading.
        let strength = words.get(e).map_or(Break::Heading, |w| w.break_before);
        let weight = match strength {
            Break::None => 0,
            Break::Sentence => 25,
            Break::Paragraph => 60,
            Break::Heading => 100,
        };
        let score = weight - (e as i64 - target as i64).abs();
        if score > best.0 {
            best = (score, e);
        }
    }
    best.1
}

/// Where the next chunk starts: `overlap` words back from `end`, moved forward to
/// a sentence start if one is in the overlap, and never back across a heading.
fn next_start(words: &[Word], start: usize, end: usize, overlap: usize) -> usize {
    if words[end].break_before == Break::Heading || overlap == 0 {
        return end;
    }
    let from = end.saturating_sub(overlap).max(start + 1);
    (from..end)
        .find(|&i| words[i].break_before >= Break::Sentence)
        .unwrap_or(from)
}

fn words(text: &str) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut line_is_heading: Option<String> = None;
    let mut newlines_before = 2; // the page start counts as a paragraph start
    let mut at_line_start = true;
    let mut word_start: Option<usize> = None;
    let push_word = |words: &mut Vec<Word>,
                     s: usize,
                     e: usize,
                     newlines: usize,
                     line_start: bool,
                     heading: &Option<String>| {
        let prev_ends_sentence = words
            .last()
            .map(|w| text[w.byte_start..w.byte_end].ends_with(['.', '!', '?', ':', ';']))
            .unwrap_or(true);
        let break_before = if line_start && heading.is_some() {
            Break::Heading
        } else if newlines >= 2 {
            Break::Paragraph
        } else if prev_ends_sentence {
            Break::Sentence
        } else {
            Break::None
        };
        words.push(Word {
            byte_start: s,
            byte_end: e,
            break_before,
            heading: if line_start { heading.clone() } else { None },
        });
    };
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = word_start.take() {
                push_word(
                    &mut words,
                    s,
                    i,
                    newlines_before,
                    at_line_start,
                    &line_is_heading,
                );
                newlines_before = 0;
                at_line_start = false;
            }
            if c == '\n' {
                newlines_before += 1;
                at_line_start = true;
                line_is_heading = None;
            }
        } else if word_start.is_none() {
            if at_line_start && line_is_heading.is_none() {
                line_is_heading = heading_text(&text[i..]);
            }
            word_start = Some(i);
        }
    }
    if let Some(s) = word_start {
        push_word(
            &mut words,
            s,
            text.len(),
            newlines_before,
            at_line_start,
            &line_is_heading,
        );
    }
    words
}

/// `# Title` style heading (as Markdown, and as the HTML/DOCX extractors write them).
fn heading_text(line_rest: &str) -> Option<String> {
    let line = line_rest.lines().next().unwrap_or("");
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !rest.starts_with(' ') {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim();
    (!title.is_empty()).then(|| title.to_string())
}

/// Byte offset → character offset, for offsets at char boundaries.
struct CharIndex {
    /// (byte offset, char offset, byte length) of every non-ASCII char; all
    /// other chars are one byte, so offsets between marks are plain arithmetic.
    marks: Vec<(usize, usize, usize)>,
}

impl CharIndex {
    fn new(text: &str) -> Self {
        let marks = text
            .char_indices()
            .enumerate()
            .filter(|(_, (_, c))| !c.is_ascii())
            .map(|(chars, (bytes, c))| (bytes, chars, c.len_utf8()))
            .collect();
        CharIndex { marks }
    }

    fn of(&self, byte: usize) -> usize {
        let idx = self.marks.partition_point(|&(b, _, _)| b < byte);
        match idx.checked_sub(1).map(|i| self.marks[i]) {
            None => byte,
            Some((b, c, len)) => c + 1 + (byte - b - len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(target: usize, max: usize, overlap: usize) -> ChunkConfig {
        ChunkConfig {
            target_words: target,
            max_words: max,
            overlap_words: overlap,
        }
    }

    #[test]
    fn offsets_point_at_the_text_even_with_unicode() {
        let text = "Café déjà vu. Ünïcödé words here.\n\nSecond paragraph with more words.";
        let chunks = chunk_pages([(3, text)], &cfg(6, 8, 2));
        assert!(chunks.len() >= 2);
        for c in &chunks {
            let by_chars: String = text
                .chars()
                .skip(c.char_start)
                .take(c.char_end - c.char_start)
                .collect();
            assert_eq!(by_chars, c.text);
            assert_eq!(c.page, 3);
        }
    }

    #[test]
    fn cuts_at_headings_and_tracks_them() {
        let body = "word ".repeat(40);
        let text =
            format!("# Intro\n\n{body}\n\n## Leave policy\n\nAnnual leave is 25 days. {body}");
        let chunks = chunk_pages([(1, text.as_str())], &cfg(60, 80, 10));
        let leave = chunks
            .iter()
            .find(|c| c.text.starts_with("## Leave policy"))
            .expect("chunk starts at heading");
        assert_eq!(leave.heading, "Leave policy");
        assert_eq!(chunks[0].heading, "Intro");
        assert!(
            !chunks[0].text.contains("Leave policy"),
            "no chunk crosses a heading"
        );
    }

    #[test]
    fn long_text_gets_bounded_overlapping_chunks() {
        let sentences: String = (0..200)
            .map(|i| format!("Sentence number {i} is here. "))
            .collect();
        let config = cfg(50, 70, 10);
        let chunks = chunk_pages([(1, sentences.as_str())], &config);
        assert!(chunks.len() > 10);
        for pair in chunks.windows(2) {
            let words = pair[0].text.split_whitespace().count();
            assert!(words <= config.max_words, "{words} words");
            assert!(
                pair[1].char_start < pair[0].char_end,
                "consecutive chunks overlap"
            );
            assert!(
                pair[1].text.starts_with("Sentence"),
                "overlap snaps to a sentence start"
            );
        }
        let last = chunks.last().unwrap();
        assert!(sentences.trim_end().ends_with(&last.text));
    }

    #[test]
    fn chunks_never_span_pages_and_blank_pages_yield_nothing() {
        let chunks = chunk_pages(
            [(1, "first page text"), (2, "   "), (3, "third page")],
            &cfg(50, 70, 10),
        );
        assert_eq!(
            chunks.iter().map(|c| c.page).collect::<Vec<_>>(),
            vec![1, 3]
        );
    }
}
