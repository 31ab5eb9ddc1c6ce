//! Hybrid retrieval, the one search entry point: BM25 and dense candidates
//! from the library (both filtered by collection inside the index), fused,
//! then checked visible in SQLite. When the vector store is unreachable the
//! ranking is BM25's alone and each hit's dense similarity is computed here
//! from its text, so the evidence gate and the relative cut-off still work.

use serde::Serialize;

use crate::library::{Library, LibraryError};
use crate::store::ChunkView;

use super::fusion::{
    self, COVERAGE_DEPTH, FusedHit, Fusion, FusionParams, QuerySignals, SideScore,
};
pub use crate::index::Mode;
use crate::index::lexical::{LexicalHit, QueryTerms};

/// One search: what to look for, where, how many, and how to rank.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub query: &'a str,
    /// Collections to search (`None`: all; an empty list finds nothing).
    pub collections: Option<&'a [String]>,
    pub limit: usize,
    pub mode: Mode,
    /// Fusion settings; the configured ones when `None`.
    pub fusion: Option<FusionParams>,
}

impl<'a> Search<'a> {
    /// A search of `mode` over `collections` with the configured fusion.
    pub fn new(
        query: &'a str,
        collections: Option<&'a [String]>,
        limit: usize,
        mode: Mode,
    ) -> Search<'a> {
        Search {
            query,
            collections,
            limit,
            mode,
            fusion: None,
        }
    }
}

/// Search results, whether they are BM25's alone (vector store
/// unreachable), and the evidence about the query the gate weighs.
pub struct SearchOutcome {
    pub hits: Vec<SearchHit>,
    pub degraded: bool,
    pub signals: QuerySignals,
    /// The query's terms and their rarity (hybrid searches only).
    pub terms: Option<QueryTerms>,
    /// Passages in the library: how much chance evidence to expect.
    pub passages: u64,
}

/// The text a passage's query-term coverage is measured on: what BM25
/// indexed for it (title and heading with the text).
pub fn coverage_text(chunk: &ChunkView) -> String {
    format!("{} {} {}", chunk.document_title, chunk.heading, chunk.text)
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub chunk: ChunkView,
    #[serde(flatten)]
    pub scores: FusedHit,
}

/// The fusion settings of `library`'s configuration.
pub fn configured_fusion(library: &Library) -> FusionParams {
    let search = &library.config().search;
    FusionParams {
        fusion: search.fusion,
        rrf_k: search.rrf_k,
        dense_weight: search.dense_weight,
    }
}

/// Ranked passages for `search`, restricted to its collections inside both
/// indexes, and checked visible in SQLite.
pub fn search(library: &Library, search: &Search<'_>) -> Result<SearchOutcome, LibraryError> {
    let params = search.fusion.unwrap_or_else(|| configured_fusion(library));
    let Ranked {
        fused,
        degraded,
        mut signals,
        terms,
    } = ranked(library, search, params)?;
    // Ask SQLite about a few more than needed, in case some are invisible.
    let window: Vec<i64> = fused
        .iter()
        .take(search.limit.saturating_mul(2).saturating_add(10))
        .map(|h| h.chunk_id)
        .collect();
    let mut visible = library.store().visible_chunks(&window)?;
    let mut hits: Vec<SearchHit> = fused
        .into_iter()
        .filter_map(|scores| {
            visible
                .remove(&scores.chunk_id)
                .map(|chunk| SearchHit { chunk, scores })
        })
        .take(search.limit)
        .collect();
    if degraded {
        score_locally(library, search.query, &mut hits)?;
        signals.best_cosine = hits
            .iter()
            .filter_map(|h| h.scores.dense.map(|d| d.score))
            .fold(0.0, f32::max);
    }
    Ok(SearchOutcome {
        hits,
        degraded,
        signals,
        terms,
        passages: library.lexical_count(),
    })
}

/// A ranking before the visibility check, with what was learnt on the way.
struct Ranked {
    fused: Vec<FusedHit>,
    degraded: bool,
    signals: QuerySignals,
    terms: Option<QueryTerms>,
}

/// The fused ranking, and whether it is BM25's alone because the vector
/// store could not be reached (hybrid mode only; dense mode fails then).
fn ranked(
    library: &Library,
    search: &Search<'_>,
    params: FusionParams,
) -> Result<Ranked, LibraryError> {
    let (lexical, dense, degraded) =
        library.candidates(search.query, search.collections, search.mode)?;
    library.note_vector_outage(degraded);
    // The query's terms and BM25's coverage of them feed adaptive fusion and
    // the gate, both of hybrid searches only.
    let terms = match search.mode {
        Mode::Hybrid => Some(library.query_terms(search.query)?),
        Mode::Bm25 | Mode::Dense => None,
    };
    let signals = QuerySignals {
        best_cosine: dense.first().map_or(0.0, |h| h.score),
        bm25_coverage: match &terms {
            Some(terms) => bm25_coverage(library, terms, &lexical)?,
            None => Vec::new(),
        },
    };
    let fused = if degraded {
        fusion::single_side(&lexical, &[])
    } else {
        match search.mode {
            Mode::Hybrid => {
                let dense_weight = match params.fusion {
                    Fusion::Adaptive => fusion::adaptive_weight(&signals),
                    _ => fusion::dense_weight_for(search.query, params.dense_weight),
                };
                let params = FusionParams {
                    dense_weight,
                    ..params
                };
                fusion::fuse(&lexical, &dense, params)
            }
            Mode::Bm25 | Mode::Dense => fusion::single_side(&lexical, &dense),
        }
    };
    Ok(Ranked {
        fused,
        degraded,
        signals,
        terms,
    })
}

/// The query-term coverage of BM25's first hits, in its order (a hit no
/// longer in SQLite counts as holding nothing).
fn bm25_coverage(
    library: &Library,
    terms: &QueryTerms,
    lexical: &[LexicalHit],
) -> Result<Vec<f32>, LibraryError> {
    let ids: Vec<i64> = lexical
        .iter()
        .take(COVERAGE_DEPTH)
        .map(|h| h.chunk_id)
        .collect();
    let chunks = library.store().visible_chunks(&ids)?;
    Ok(ids
        .iter()
        .map(|id| {
            chunks
                .get(id)
                .map_or(0.0, |c| terms.coverage(&coverage_text(c)))
        })
        .collect())
}

/// Dense similarity of each hit's passage to the query, by the embedder.
fn score_locally(
    library: &Library,
    query: &str,
    hits: &mut [SearchHit],
) -> Result<(), LibraryError> {
    if hits.is_empty() {
        return Ok(());
    }
    let embedder = library.embedder();
    let q = embedder.embed_one(query)?;
    let texts: Vec<&str> = hits.iter().map(|h| h.chunk.text.as_str()).collect();
    let (vectors, _) = embedder.embed_counted(&texts)?;
    for (hit, v) in hits.iter_mut().zip(vectors) {
        let score: f32 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
        hit.scores.dense = Some(SideScore { rank: 0, score });
    }
    Ok(())
}
