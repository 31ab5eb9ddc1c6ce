//! The evidence for one question: every sentence of the passages it was
//! given, embedded once, with the facts of the few sentences around it.
//! Quoting picks from these sentences; verification checks generated
//! sentences against them.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::embed::{EmbedError, Embedder, cosine};
use crate::index::lexical::Terms;

use super::answer::{Citation, Source};
use super::facts::SourceFacts;
use super::sentences;

/// Sentences of a source on either side of the one a generated sentence is
/// close to whose names count too: a sentence often names its subject only
/// by a pronoun ("Michael Jackson was a writer. He wrote about beer.").
/// Figures must be in the sentence itself: a figure of the next sentence is
/// usually about something else ("a rota published four weeks in advance"
/// next to shift swaps).
const NAME_WINDOW: usize = 1;

/// Shorter pieces (headings, list labels) are not quoted.
const MIN_QUOTE_WORDS: usize = 4;

/// Shorter pieces are not embedded: no claim is checked against them.
const MIN_EMBED_WORDS: usize = 3;

/// One sentence of a source.
#[derive(Debug)]
pub struct EvidenceSentence {
    /// Index into the sources.
    pub source: usize,
    /// Byte offsets into the source's text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub vector: Vec<f32>,
    /// Facts of this sentence.
    pub facts: SourceFacts,
    /// Facts of this sentence and its neighbours in the same source (for names).
    pub window: SourceFacts,
    /// Similarity to the question.
    pub relevance: f32,
    /// Not the cut-off end of a passage shortened to fit the prompt.
    pub complete: bool,
}

impl EvidenceSentence {
    pub fn words(&self) -> usize {
        self.text.split_whitespace().count()
    }

    /// A whole sentence of some length, not a heading: a title in capitals
    /// ("DATA PROTECTION AND PATIENT CONFIDENTIALITY") matches a question's
    /// words well and says nothing.
    pub fn quotable(&self) -> bool {
        self.complete
            && self.words() >= MIN_QUOTE_WORDS
            && self.text.chars().any(char::is_lowercase)
    }
}

/// Embeddings of passage sentences already seen, by a digest of their text
/// (passages are static and popular ones come back question after question;
/// no text is kept). Emptied when full.
#[derive(Default)]
pub struct SentenceCache(Mutex<HashMap<[u8; 16], Vec<f32>>>);

/// About 12 MiB of 384-dimensional vectors.
const CACHE_ENTRIES: usize = 8192;

impl SentenceCache {
    fn key(text: &str) -> [u8; 16] {
        let digest = Sha256::digest(text.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    fn get(&self, text: &str) -> Option<Vec<f32>> {
        self.0.lock().ok()?.get(&Self::key(text)).cloned()
    }

    fn put(&self, text: &str, vector: &[f32]) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= CACHE_ENTRIES {
                map.clear();
            }
            map.insert(Self::key(text), vector.to_vec());
        }
    }

    /// The question's vector, and a vector for each of `texts`: `known`'s
    /// where it has one, else embedded (with the question, in one batch)
    /// and remembered.
    fn embed(
        &self,
        embedder: &Embedder,
        question: &str,
        texts: &[&str],
        mut known: Vec<Option<Vec<f32>>>,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>), EmbedError> {
        let missing: Vec<usize> = (0..texts.len()).filter(|&k| known[k].is_none()).collect();
        let mut batch: Vec<&str> = vec![question];
        batch.extend(missing.iter().map(|&k| texts[k]));
        let mut embeddings = embedder.embed(&batch)?.into_iter();
        let question_vec = embeddings.next().unwrap_or_default();
        for (&k, v) in missing.iter().zip(embeddings) {
            self.put(texts[k], &v);
            known[k] = Some(v);
        }
        Ok((
            question_vec,
            known.into_iter().map(Option::unwrap_or_default).collect(),
        ))
    }
}

pub struct Evidence {
    pub sentences: Vec<EvidenceSentence>,
    pub question: Vec<f32>,
    /// The BM25 index's analyzer, for the terms of sentences and questions.
    pub terms: Terms,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("sentences", &self.sentences)
            .finish_non_exhaustive()
    }
}

impl Evidence {
    /// No evidence (what verification is measured against).
    pub fn empty(terms: &Terms) -> Evidence {
        Evidence {
            sentences: Vec::new(),
            question: Vec::new(),
            terms: terms.clone(),
        }
    }

    /// Split every source into sentences and embed them with the question,
    /// in one batch.
    pub fn gather(
        embedder: &Embedder,
        cache: &SentenceCache,
        terms: &Terms,
        question: &str,
        sources: &[Source],
    ) -> Result<Evidence, EmbedError> {
        let mut spans = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            for span in sentences::split(&s.text) {
                spans.push((i, span.start, span.end));
            }
        }
        // Headings and labels are not embedded (nothing is quoted from or
        // supported by them; their names still count for their neighbours).
        let embedded = |&(i, a, b): &(usize, usize, usize)| {
            sources[i].text[a..b].split_whitespace().count() >= MIN_EMBED_WORDS
        };
        let text_of = |&(i, a, b): &(usize, usize, usize)| &sources[i].text[a..b];
        let vectors: Vec<Option<Vec<f32>>> = spans
            .iter()
            .map(|s| {
                if embedded(s) {
                    cache.get(text_of(s))
                } else {
                    Some(Vec::new())
                }
            })
            .collect();
        let texts: Vec<&str> = spans.iter().map(text_of).collect();
        let (question_vec, vectors) = cache.embed(embedder, question, &texts, vectors)?;
        let own_facts: Vec<SourceFacts> = spans
            .iter()
            .map(|&(i, a, b)| SourceFacts::of(&sources[i].text[a..b]))
            .collect();
        let sentences = spans
            .iter()
            .zip(vectors)
            .enumerate()
            .map(|(k, (&(i, start, end), vector))| {
                let mut window = SourceFacts::default();
                let lo = k.saturating_sub(NAME_WINDOW);
                let hi = (k + NAME_WINDOW).min(spans.len() - 1);
                for (j, f) in own_facts.iter().enumerate().take(hi + 1).skip(lo) {
                    if spans[j].0 == i {
                        window.extend(f);
                    }
                }
                let text = sources[i].text[start..end].to_string();
                EvidenceSentence {
                    source: i,
                    start,
                    end,
                    complete: sources[i].verbatim || !text.ends_with('…'),
                    text,
                    relevance: cosine(&question_vec, &vector),
                    vector,
                    facts: own_facts[k].clone(),
                    window,
                }
            })
            .collect();
        Ok(Evidence {
            sentences,
            question: question_vec,
            terms: terms.clone(),
        })
    }

    /// The citation of sentence `k`: its span in the page text (the whole
    /// passage's when the passage was reworded to fit the prompt, since
    /// offsets inside it then no longer match the page).
    pub fn citation(&self, k: usize, sources: &[Source]) -> Option<Citation> {
        let e = self.sentences.get(k)?;
        let s = sources.get(e.source)?;
        let (quote_start, quote_end) = if s.verbatim {
            let before = s.text[..e.start].chars().count() as i64;
            let chars = s.text[e.start..e.end].chars().count() as i64;
            (s.char_start + before, s.char_start + before + chars)
        } else {
            (s.char_start, s.char_end)
        };
        Some(Citation {
            number: s.number,
            chunk_id: s.chunk_id,
            document_id: s.document_id,
            document_title: s.document_title.clone(),
            page: s.page,
            quote: e.text.clone(),
            quote_start,
            quote_end,
        })
    }
}
