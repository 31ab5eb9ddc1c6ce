//! Hybrid retrieval: BM25 and dense search run side by side, both filtered by
//! collection inside the index, and their rankings are fused. Every hit keeps
//! the rank and raw score it had on each side, for debugging and evaluation.
//!
//! Fusion is a convex combination of min-max normalised scores by default,
//! weighted towards the dense side (0.8, more for natural-language questions):
//! measured with `enclave eval retrieval --compare-fusion`, it was the one
//! method that beat both single retrievers on every labelled set we have.
//! Weighted reciprocal-rank fusion and distribution-based fusion are available.

use std::collections::HashMap;

use serde::Serialize;

pub use crate::config::Fusion;

use crate::index::lexical::LexicalHit;
use crate::index::vector::VectorHit;

/// One side's view of a hit: 1-based rank and raw score.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct SideScore {
    pub rank: usize,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct FusedHit {
    pub chunk_id: i64,
    pub score: f32,
    pub bm25: Option<SideScore>,
    pub dense: Option<SideScore>,
}

#[derive(Debug, Clone, Copy)]
pub struct FusionParams {
    pub fusion: Fusion,
    pub rrf_k: f32,
    pub dense_weight: f32,
}

/// How much to trust the dense side for this query. Questions phrased in
/// natural language ("which state joined the union last?") are where lexical
/// matching is weakest: most of their words are function words or paraphrase
/// the answer. Keyword queries (names, codes, terms) are where it is strongest.
pub fn dense_weight_for(query: &str, base: f32) -> f32 {
    if is_question(query) {
        (base + 0.25).min(0.9)
    } else {
        base
    }
}

fn is_question(query: &str) -> bool {
    const OPENERS: &[&str] = &[
        "who", "what", "which", "when", "where", "why", "how", "is", "are", "was", "were", "do",
        "does", "did", "can", "could", "should", "would", "will", "list", "give", "name", "tell",
        "explain", "describe",
    ];
    let q = query.trim();
    let first = q.split_whitespace().next().unwrap_or("").to_lowercase();
    q.ends_with('?') || OPENERS.contains(&first.trim_matches(|c: char| !c.is_alphanumeric()))
}

/// Fuse two ranked candidate lists into one ranking, best first.
pub fn fuse(lexical: &[LexicalHit], dense: &[VectorHit], params: FusionParams) -> Vec<FusedHit> {
    let mut by_id: HashMap<i64, FusedHit> = HashMap::with_capacity(lexical.len() + dense.len());
    for (i, h) in lexical.iter().enumerate() {
        by_id
            .entry(h.chunk_id)
            .or_insert_with(|| empty(h.chunk_id))
            .bm25 = Some(SideScore {
            rank: i + 1,
            score: h.score,
        });
    }
    for (i, h) in dense.iter().enumerate() {
        by_id
            .entry(h.chunk_id)
            .or_insert_with(|| empty(h.chunk_id))
            .dense = Some(SideScore {
            rank: i + 1,
            score: h.score,
        });
    }
    let (lex_range, dense_range) = match params.fusion {
        Fusion::Dbsf => (
            three_sigma(lexical.iter().map(|h| h.score)),
            three_sigma(dense.iter().map(|h| h.score)),
        ),
        _ => (
            min_max(lexical.iter().map(|h| h.score)),
            min_max(dense.iter().map(|h| h.score)),
        ),
    };
    let adaptive = (params.fusion == Fusion::Adaptive).then(|| {
        adaptive_weight(
            lexical.iter().map(|h| h.score),
            dense.iter().map(|h| h.score),
        )
    });
    let mut hits: Vec<FusedHit> = by_id
        .into_values()
        .map(|mut h| {
            h.score = match params.fusion {
                Fusion::Rrf => {
                    // Weighted RRF; dense_weight 0.5 is the classic unweighted form.
                    let w = params.dense_weight.clamp(0.0, 1.0);
                    let rrf = |s: Option<SideScore>| {
                        s.map_or(0.0, |s| 1.0 / (params.rrf_k + s.rank as f32))
                    };
                    2.0 * ((1.0 - w) * rrf(h.bm25) + w * rrf(h.dense))
                }
                Fusion::Convex | Fusion::Dbsf | Fusion::Adaptive => {
                    let w = adaptive.unwrap_or(params.dense_weight).clamp(0.0, 1.0);
                    let d = h.dense.map_or(0.0, |s| normalise(s.score, dense_range));
                    let l = h.bm25.map_or(0.0, |s| normalise(s.score, lex_range));
                    w * d + (1.0 - w) * l
                }
            };
            h
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    hits
}

/// Hits of each side whose scores say how sure it is of its top hit.
const CONFIDENCE_DEPTH: usize = 10;

/// The dense side's weight for one query: each side's confidence is how
/// many standard deviations its top score stands above the mean of the next
/// hits of its own list (a side that cannot tell its best hit from the rest
/// has little to say about this query), and the weight is the dense side's
/// share of the two, kept within 0.1..=0.9 so neither side is ever ignored.
pub fn adaptive_weight(
    lexical: impl Iterator<Item = f32>,
    dense: impl Iterator<Item = f32>,
) -> f32 {
    let (l, d) = (confidence(lexical), confidence(dense));
    if l + d <= f32::EPSILON {
        return 0.5;
    }
    (d / (l + d)).clamp(0.1, 0.9)
}

fn confidence(scores: impl Iterator<Item = f32>) -> f32 {
    let mut top: Vec<f32> = scores.collect();
    top.sort_by(|a, b| b.total_cmp(a));
    top.truncate(CONFIDENCE_DEPTH);
    if top.len() < 2 {
        return 0.0;
    }
    let n = top.len() as f32;
    let mean_all = top.iter().sum::<f32>() / n;
    let std = (top.iter().map(|s| (s - mean_all).powi(2)).sum::<f32>() / n).sqrt();
    let rest = top[1..].iter().sum::<f32>() / (n - 1.0);
    ((top[0] - rest) / (std + 1e-6)).max(0.0)
}

/// A single retriever's ranking in the fused-hit shape (for BM25-only or dense-only modes).
pub fn single_side(lexical: &[LexicalHit], dense: &[VectorHit]) -> Vec<FusedHit> {
    let lex = lexical.iter().enumerate().map(|(i, h)| FusedHit {
        chunk_id: h.chunk_id,
        score: h.score,
        bm25: Some(SideScore {
            rank: i + 1,
            score: h.score,
        }),
        dense: None,
    });
    let den = dense.iter().enumerate().map(|(i, h)| FusedHit {
        chunk_id: h.chunk_id,
        score: h.score,
        bm25: None,
        dense: Some(SideScore {
            rank: i + 1,
            score: h.score,
        }),
    });
    lex.chain(den).collect()
}

fn empty(chunk_id: i64) -> FusedHit {
    FusedHit {
        chunk_id,
        score: 0.0,
        bm25: None,
        dense: None,
    }
}

fn min_max(scores: impl Iterator<Item = f32>) -> (f32, f32) {
    scores.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
        (lo.min(s), hi.max(s))
    })
}

fn three_sigma(scores: impl Iterator<Item = f32> + Clone) -> (f32, f32) {
    let n = scores.clone().count().max(1) as f32;
    let mean = scores.clone().sum::<f32>() / n;
    let var = scores.map(|s| (s - mean) * (s - mean)).sum::<f32>() / n;
    let sd = var.sqrt();
    (mean - 3.0 * sd, mean + 3.0 * sd)
}

fn normalise(score: f32, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo {
        ((score - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(ids: &[(i64, f32)]) -> Vec<LexicalHit> {
        ids.iter()
            .map(|&(chunk_id, score)| LexicalHit { chunk_id, score })
            .collect()
    }
    fn den(ids: &[(i64, f32)]) -> Vec<VectorHit> {
        ids.iter()
            .map(|&(chunk_id, score)| VectorHit { chunk_id, score })
            .collect()
    }

    #[test]
    fn rrf_rewards_agreement_and_keeps_side_scores() {
        let params = FusionParams {
            fusion: Fusion::Rrf,
            rrf_k: 60.0,
            dense_weight: 0.5,
        };
        let hits = fuse(
            &lex(&[(1, 12.0), (2, 8.0), (3, 2.0)]),
            &den(&[(4, 0.9), (2, 0.8), (3, 0.7)]),
            params,
        );
        assert_eq!(
            hits[0].chunk_id, 2,
            "second on both sides beats first on one"
        );
        assert_eq!(
            hits[0].bm25,
            Some(SideScore {
                rank: 2,
                score: 8.0
            })
        );
        assert_eq!(
            hits[0].dense,
            Some(SideScore {
                rank: 2,
                score: 0.8
            })
        );
        assert_eq!(hits.len(), 4);
        let four = hits.iter().find(|h| h.chunk_id == 4).unwrap();
        assert!(four.bm25.is_none());
    }

    #[test]
    fn questions_lean_on_the_dense_side() {
        assert!((dense_weight_for("Who is the governor of Texas?", 0.65) - 0.9).abs() < 1e-6);
        assert!((dense_weight_for("which monarchs married germans", 0.5) - 0.75).abs() < 1e-6);
        assert_eq!(dense_weight_for("B. F. Skinner", 0.65), 0.65);
        assert_eq!(dense_weight_for("ISO 27001 annex A controls", 0.65), 0.65);
    }

    #[test]
    fn convex_uses_normalised_scores() {
        let params = FusionParams {
            fusion: Fusion::Convex,
            rrf_k: 60.0,
            dense_weight: 1.0,
        };
        let hits = fuse(&lex(&[(1, 100.0)]), &den(&[(2, 0.5), (1, 0.1)]), params);
        assert_eq!(hits[0].chunk_id, 2);
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        assert!(hits[1].score.abs() < 1e-6);
    }
}

#[cfg(test)]
mod adaptive_tests {
    use super::adaptive_weight;

    #[test]
    fn the_side_sure_of_its_top_hit_weighs_more() {
        // BM25: one hit far above the rest; dense: a flat list.
        let bm25 = [14.0, 3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4, 2.3, 2.2];
        let flat = [0.52, 0.51, 0.51, 0.50, 0.50, 0.50, 0.49, 0.49, 0.48, 0.48];
        let w = adaptive_weight(bm25.into_iter(), flat.into_iter());
        assert!(w < 0.5, "{w}");
        let w = adaptive_weight(flat.into_iter(), bm25.into_iter());
        assert!(w > 0.5, "{w}");
        assert_eq!(adaptive_weight(std::iter::empty(), std::iter::empty()), 0.5);
        let w = adaptive_weight(bm25.into_iter(), std::iter::empty());
        assert!((w - 0.1).abs() < 1e-6, "never ignores a side: {w}");
    }
}
