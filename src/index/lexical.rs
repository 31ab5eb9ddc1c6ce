//! The BM25 index (tantivy). One tantivy document per chunk: the chunk id
//! (stored and fast, to join back to SQLite), the document id (to delete a
//! document's chunks), the collection (to filter inside retrieval) and the
//! text with title and heading, analysed with a stemmer for the configured
//! language.

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermSetQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

use crate::store::IndexableChunk;

const ANALYZER: &str = "enclave_text";
/// Memory budget of the tantivy writer; larger means fewer segment flushes.
const WRITER_HEAP_BYTES: usize = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LexicalError {
    #[error("BM25 index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("BM25 index: {0}")]
    Open(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("BM25 index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("BM25 index was built with another schema or language; run `enclave reindex`")]
    SchemaMismatch,
    #[error(
        "BM25 index was built for language {built:?}, config says {configured:?}; run `enclave reindex`"
    )]
    LanguageMismatch { built: String, configured: String },
}

pub type Result<T> = std::result::Result<T, LexicalError>;

/// Map a configured language name to a stemmer (`None` = no stemming).
pub fn stemmer_language(name: &str) -> std::result::Result<Option<Language>, String> {
    Ok(Some(match name.to_ascii_lowercase().as_str() {
        "none" => return Ok(None),
        "arabic" => Language::Arabic,
        "danish" => Language::Danish,
        "dutch" => Language::Dutch,
        "english" => Language::English,
        "finnish" => Language::Finnish,
        "french" => Language::French,
        "german" => Language::German,
        "greek" => Language::Greek,
        "hungarian" => Language::Hungarian,
        "italian" => Language::Italian,
        "norwegian" => Language::Norwegian,
        "portuguese" => Language::Portuguese,
        "romanian" => Language::Romanian,
        "russian" => Language::Russian,
        "spanish" => Language::Spanish,
        "swedish" => Language::Swedish,
        "tamil" => Language::Tamil,
        "turkish" => Language::Turkish,
        other => return Err(format!("unknown language {other:?}")),
    }))
}

/// Words, lower-cased, without the language's stop words, stemmed. Stop words
/// matter because staff ask questions: in "who is the governor of Texas?" only
/// "governor" and "texas" say anything about which passage answers it.
fn analyzer(language: Option<Language>) -> TextAnalyzer {
    let base = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser);
    match language {
        Some(lang) => match StopWordFilter::new(lang) {
            Some(stop) => base.filter(stop).filter(Stemmer::new(lang)).build(),
            None => base.filter(Stemmer::new(lang)).build(),
        },
        None => base.build(),
    }
}

/// The terms BM25 sees, for matching words outside the index (which
/// sentence of a passage holds a question's terms): the index's own
/// analyzer, so "audits" meets "audited" as it does in search.
#[derive(Clone)]
pub struct Terms(TextAnalyzer);

impl Terms {
    /// The analyzer of `search.language` (no stemming for an unknown one).
    pub fn new(language: &str) -> Terms {
        Terms(analyzer(stemmer_language(language).ok().flatten()))
    }

    /// The distinct terms of `text`.
    pub fn of(&self, text: &str) -> std::collections::HashSet<String> {
        let mut analyzer = self.0.clone();
        let mut stream = analyzer.token_stream(text);
        let mut out = std::collections::HashSet::new();
        while stream.advance() {
            out.insert(stream.token().text.clone());
        }
        out
    }
}

/// The stemming language is not part of tantivy's schema, so it is recorded
/// beside the index: querying with another stemmer than the one used at
/// indexing time would silently miss matches.
fn check_language(dir: &Path, language: &str) -> Result<()> {
    let marker = dir.join("enclave-language");
    match std::fs::read_to_string(&marker) {
        Ok(built) if built.trim() != language => Err(LexicalError::LanguageMismatch {
            built: built.trim().to_string(),
            configured: language.to_string(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(std::fs::write(&marker, language)?)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    document_id: Field,
    collection: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        chunk_id: b.add_u64_field("chunk_id", STORED | FAST | INDEXED),
        document_id: b.add_u64_field("document_id", INDEXED | FAST),
        collection: b.add_text_field("collection", STRING),
        text: b.add_text_field("text", text_options),
    };
    (b.build(), fields)
}

pub struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    parser: QueryParser,
}

/// One BM25 hit.
#[derive(Debug, Clone, Copy)]
pub struct LexicalHit {
    pub chunk_id: i64,
    pub score: f32,
}

/// A query's terms with their rarity, and the analyzer that finds them in
/// other text.
#[derive(Clone)]
pub struct QueryTerms {
    weights: Vec<TermWeight>,
    analyzer: TextAnalyzer,
}

impl QueryTerms {
    pub fn weights(&self) -> &[TermWeight] {
        &self.weights
    }

    /// The share of the query's idf mass whose terms `text` holds (0..=1):
    /// 1 when every query term is there, and a missing rare term costs more
    /// than a missing common one. 0 for a query with no terms.
    pub fn coverage(&self, text: &str) -> f32 {
        let total: f32 = self.weights.iter().map(|w| w.idf).sum();
        if total <= 0.0 {
            return 0.0;
        }
        let held: std::collections::HashSet<String> =
            distinct_terms(&mut self.analyzer.clone(), text)
                .into_iter()
                .collect();
        let matched: f32 = self
            .weights
            .iter()
            .filter(|w| held.contains(&w.term))
            .map(|w| w.idf)
            .sum();
        matched / total
    }
}

/// The distinct terms of `text`, in order of first appearance.
fn distinct_terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while stream.advance() {
        let term = &stream.token().text;
        if seen.insert(term.clone()) {
            out.push(term.clone());
        }
    }
    out
}

/// A query term and how rare it is in the index.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TermWeight {
    pub term: String,
    pub idf: f32,
}

impl LexicalIndex {
    pub fn open(dir: &Path, language: &str) -> Result<LexicalIndex> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::open_or_create(directory, schema.clone()).map_err(|e| match e {
            tantivy::TantivyError::SchemaError(_) => LexicalError::SchemaMismatch,
            other => LexicalError::Tantivy(other),
        })?;
        check_language(dir, language)?;
        let lang = stemmer_language(language).unwrap_or(Some(Language::English));
        index.tokenizers().register(ANALYZER, analyzer(lang));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let parser = QueryParser::for_index(&index, vec![fields.text]);
        Ok(LexicalIndex {
            index,
            reader,
            writer: Mutex::new(None),
            fields,
            parser,
        })
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut IndexWriter, &Fields) -> Result<T>) -> Result<T> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.index.writer(WRITER_HEAP_BYTES)?);
        }
        match guard.as_mut() {
            Some(writer) => f(writer, &self.fields),
            None => unreachable!("writer was just created"),
        }
    }

    /// Stage chunks for indexing; visible to search only after [`commit`].
    pub fn add(&self, chunks: &[IndexableChunk]) -> Result<()> {
        self.with_writer(|w, f| {
            for c in chunks {
                w.add_document(doc!(
                    f.chunk_id => c.id as u64,
                    f.document_id => c.document_id as u64,
                    f.collection => c.collection.as_str(),
                    f.text => c.indexed_text(),
                ))?;
            }
            Ok(())
        })
    }

    /// Stage removal of every chunk of a document.
    pub fn delete_document(&self, document_id: i64) -> Result<()> {
        self.with_writer(|w, f| {
            w.delete_term(Term::from_field_u64(f.document_id, document_id as u64));
            Ok(())
        })
    }

    /// Durably commit staged changes and make them searchable.
    pub fn commit(&self) -> Result<()> {
        self.with_writer(|w, _| {
            w.commit()?;
            Ok(())
        })?;
        self.reader.reload()?;
        Ok(())
    }

    /// Rewrite the segments holding deleted entries without them and remove
    /// the old files, so an erased or redacted text's terms leave the disk,
    /// not only the results. Call after the commit that applied the deletes.
    /// Returns how many deleted entries were purged.
    pub fn purge_deleted(&self) -> Result<u64> {
        let metas = self.index.searchable_segment_metas()?;
        let with_deletes: Vec<tantivy::index::SegmentId> = metas
            .iter()
            .filter(|m| m.has_deletes())
            .map(|m| m.id())
            .collect();
        if with_deletes.is_empty() {
            return Ok(0);
        }
        let purged = metas.iter().map(|m| m.num_deleted_docs() as u64).sum();
        self.with_writer(|w, _| {
            w.merge(&with_deletes).wait()?;
            w.garbage_collect_files().wait()?;
            Ok(())
        })?;
        self.reader.reload()?;
        Ok(purged)
    }

    /// Entries deleted but still in segment files (until [`purge_deleted`](Self::purge_deleted)).
    pub fn deleted_entries(&self) -> Result<u64> {
        Ok(self
            .index
            .searchable_segment_metas()?
            .iter()
            .map(|m| m.num_deleted_docs() as u64)
            .sum())
    }

    /// Release the writer lock (other processes may then write).
    pub fn close_writer(&self) -> Result<()> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = guard.take() {
            w.wait_merging_threads()?;
        }
        Ok(())
    }

    pub fn num_chunks(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Committed entries of one document (0 after its deletion).
    pub fn count_document(&self, document_id: i64) -> Result<u64> {
        let query = tantivy::query::TermQuery::new(
            Term::from_field_u64(self.fields.document_id, document_id as u64),
            IndexRecordOption::Basic,
        );
        Ok(self
            .reader
            .searcher()
            .search(&query, &tantivy::collector::Count)? as u64)
    }

    /// The distinct terms of `query` as BM25 sees them, each with its
    /// inverse document frequency in this index (tantivy's BM25 idf). A term
    /// no chunk holds gets the largest idf there is: a query word the
    /// documents never use is the strongest sign they are about something else.
    pub fn query_terms(&self, query: &str) -> Result<QueryTerms> {
        let searcher = self.reader.searcher();
        let n = searcher.num_docs() as f32;
        let mut analyzer = self.index.tokenizer_for_field(self.fields.text)?;
        let mut weights: Vec<TermWeight> = Vec::new();
        for term in distinct_terms(&mut analyzer, query) {
            let df = searcher.doc_freq(&Term::from_field_text(self.fields.text, &term))? as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            weights.push(TermWeight { term, idf });
        }
        Ok(QueryTerms { weights, analyzer })
    }

    /// BM25 search, restricted to `collections` when given.
    pub fn search(
        &self,
        query: &str,
        collections: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<LexicalHit>> {
        if limit == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        // Lenient: user text is not query syntax; anything unparseable is dropped.
        let (text_query, _errors) = self.parser.parse_query_lenient(&sanitise_query(query));
        let query: Box<dyn Query> = match collections {
            Some(cols) => {
                let terms = cols
                    .iter()
                    .map(|c| Term::from_field_text(self.fields.collection, c));
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, text_query),
                    (Occur::Must, Box::new(TermSetQuery::new(terms))),
                ]))
            }
            None => text_query,
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.fields.chunk_id).and_then(|v| v.as_u64()) {
                hits.push(LexicalHit {
                    chunk_id: id as i64,
                    score,
                });
            }
        }
        Ok(hits)
    }
}

/// Turn free text into a plain disjunction of words: query-syntax characters
/// (`: ^ ~ " ( ) [ ] { } + - !` …) become spaces so a question like
/// "what is C++?" or "title: foo" cannot error or address fields.
fn sanitise_query(q: &str) -> String {
    q.chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .filter(|w| !matches!(*w, "AND" | "OR" | "NOT" | "IN"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod terms_tests {
    use super::Terms;

    #[test]
    fn terms_are_stemmed_lower_cased_and_without_stop_words() {
        let t = Terms::new("english").of("Who audits the access to Patient Records?");
        assert!(t.contains("audit") && t.contains("record") && t.contains("patient"));
        assert!(!t.contains("the") && !t.contains("to"));
        assert!(
            Terms::new("english")
                .of("audited monthly")
                .contains("audit")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_the_config_accepts_has_a_stemmer_here() {
        for name in crate::config::SEARCH_LANGUAGES {
            assert!(stemmer_language(name).is_ok(), "{name}");
        }
        assert!(stemmer_language("klingon").is_err());
    }

    fn chunk(id: i64, doc: i64, col: &str, text: &str) -> IndexableChunk {
        IndexableChunk {
            id,
            document_id: doc,
            collection: col.into(),
            context: String::new(),
            text: text.into(),
        }
    }

    #[test]
    fn stems_filters_by_collection_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let idx = LexicalIndex::open(dir.path(), "english").unwrap();
        idx.add(&[
            chunk(1, 10, "hr", "Employees are entitled to annual leave."),
            chunk(2, 11, "legal", "The contract terminates on leaving."),
            chunk(3, 11, "legal", "Unrelated clause about payment."),
        ])
        .unwrap();
        assert!(
            idx.search("leave", None, 10).unwrap().is_empty(),
            "not visible before commit"
        );
        idx.commit().unwrap();
        let all: Vec<i64> = idx
            .search("leaves", None, 10)
            .unwrap()
            .iter()
            .map(|h| h.chunk_id)
            .collect();
        assert!(all.contains(&1), "stemming matches leaves→leave: {all:?}");
        let hr = idx.search("leave", Some(&["hr".to_string()]), 10).unwrap();
        assert_eq!(hr.iter().map(|h| h.chunk_id).collect::<Vec<_>>(), vec![1]);
        assert!(idx.search("title:(foo AND \"bar", None, 10).is_ok());
        idx.delete_document(11).unwrap();
        idx.commit().unwrap();
        assert_eq!(idx.num_chunks(), 1);
        drop(idx);
        assert!(matches!(
            LexicalIndex::open(dir.path(), "french"),
            Err(LexicalError::LanguageMismatch { .. })
        ));
    }
}
