//! From a plan to an answer: the quotes first, then the model tiers from the
//! cheapest, each sentence verified as it is generated and passed on only
//! once it is supported, escalating when too little survives. Every caller
//! (web chat, `ask`, `eval answers`) goes through here and only differs in
//! what it does with the [`Progress`] it is told.

use std::path::Path;
use std::time::Instant;

use crate::config::Config;
use crate::llm::{Event, GenerationStats, Llm, LlmError, Worker};
use crate::os::process_cpu_secs;

use super::answer::{
    Answer, CheckedSentence, Checks, Citation, DECLINES, QUOTE_TIER, Usage, Verification,
};
use super::ask::Asker;
use super::plan::Prepared;
use super::route;
use super::sentences;
use super::verify::{Verdict, Verifier, with_marker};

/// A chat model answering in its own worker thread.
pub struct ModelTier {
    /// The model file's name without `.gguf`: what answers say produced them.
    pub name: String,
    pub worker: Worker,
}

impl ModelTier {
    /// Load the model at `path` and start its worker.
    pub fn start(path: &Path, config: &Config) -> Result<ModelTier, LlmError> {
        let llm = Llm::load(path, config.llm.context_window)?;
        Ok(ModelTier {
            name: tier_name(path),
            worker: Worker::start(llm, crate::llm::WorkerOptions::from_config(&config.llm)),
        })
    }

    /// Every configured tier, cheapest first.
    pub fn start_all(config: &Config) -> Result<Vec<ModelTier>, (std::path::PathBuf, LlmError)> {
        config
            .llm_tier_paths()
            .into_iter()
            .map(|p| ModelTier::start(&p, config).map_err(|e| (p, e)))
            .collect()
    }
}

/// A model file's tier name: its file name without `.gguf`.
pub fn tier_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// What happens while an answer is produced, in order.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The best sentences of the passages, verbatim: always first.
    Quotes(&'a [Citation]),
    /// Waiting for a model; `position` requests are ahead.
    Queued {
        position: usize,
    },
    Started {
        tier: &'a str,
    },
    /// The model wrote more (not yet a whole sentence): a chance to stop
    /// listening, which cancels the generation at once.
    Generating,
    /// A generated sentence that passed verification, with its marker.
    Sentence {
        text: &'a str,
        citation: Option<&'a Citation>,
    },
    /// A generated sentence verification removed (never to be shown as
    /// fact; a caller may show it struck through when configured to).
    Removed(&'a CheckedSentence),
    /// Too little of `from`'s answer was supported: `to` answers instead.
    Escalating {
        from: &'a str,
        to: &'a str,
    },
}

/// The caller stopped listening (the browser went away): generation was
/// cancelled.
#[derive(Debug)]
pub struct Stopped;

/// One tier's attempt.
#[derive(Debug, Clone)]
pub struct TierRun {
    pub tier: String,
    /// Every sentence it wrote, checked.
    pub sentences: Vec<CheckedSentence>,
    /// The source span behind each supported sentence (same order).
    pub citations: Vec<Option<Citation>>,
    /// Why it produced nothing (the model failed or stopped).
    pub failure: Option<String>,
    pub stats: Option<GenerationStats>,
    pub cpu_secs: f64,
    pub wall_ms: f64,
    pub verify_ms: f64,
}

impl TierRun {
    pub fn supported(&self) -> impl Iterator<Item = (&CheckedSentence, Option<&Citation>)> {
        self.sentences
            .iter()
            .zip(&self.citations)
            .filter(|(s, _)| s.supported)
            .map(|(s, c)| (s, c.as_ref()))
    }
}

impl Asker {
    /// Answer a prepared question with `tiers`: the quotes, then tiers from
    /// the one the question's kind starts at, escalating while too little
    /// of an answer is supported.
    pub fn respond(
        &self,
        tiers: &[ModelTier],
        prepared: &Prepared,
        sink: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<Answer, Stopped> {
        let (started, cpu) = (Instant::now(), process_cpu_secs());
        if !sink(Progress::Quotes(&prepared.quotes)) {
            return Err(Stopped);
        }
        let first = self.first_tier(prepared, tiers.len());
        let mut runs: Vec<TierRun> = Vec::new();
        for tier in tiers.iter().skip(first) {
            if let Some(previous) = runs.last()
                && !sink(Progress::Escalating {
                    from: &previous.tier,
                    to: &tier.name,
                })
            {
                return Err(Stopped);
            }
            let run = self.run_tier(tier, prepared, sink)?;
            // A tier that failed (busy, or the model broke) is not a reason
            // to load a bigger one: the quotes stand.
            let stop =
                run.failure.is_some() || route::enough(&run.sentences, self.rag.escalate_below);
            runs.push(run);
            if stop {
                break;
            }
        }
        let mut answer = self.compose(prepared, &runs);
        answer.checks.usage.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        answer.checks.usage.cpu_secs = process_cpu_secs() - cpu;
        Ok(answer)
    }

    /// The tier (of `tiers`) a prepared question starts at.
    pub fn first_tier(&self, prepared: &Prepared, tiers: usize) -> usize {
        route::first_tier(&prepared.question, &self.llm.start_higher_for, tiers)
    }

    /// The runs the routed default would have used, of one run per tier:
    /// from the first tier, until one is enough (or failed). For evaluating
    /// every tier once and replaying the routing over the same runs.
    pub fn replay<'r>(&self, prepared: &Prepared, runs: &'r [TierRun]) -> &'r [TierRun] {
        let first = self.first_tier(prepared, runs.len()).min(runs.len());
        let used = runs[first..]
            .iter()
            .position(|r| {
                r.failure.is_some() || route::enough(&r.sentences, self.rag.escalate_below)
            })
            .map_or(runs.len(), |i| first + i + 1);
        &runs[first..used]
    }

    /// Ask one tier and verify its answer sentence by sentence as it arrives.
    pub fn run_tier(
        &self,
        tier: &ModelTier,
        prepared: &Prepared,
        sink: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<TierRun, Stopped> {
        let (started, cpu) = (Instant::now(), process_cpu_secs());
        let verifier = Verifier::new(
            &self.embedder,
            &prepared.evidence,
            &prepared.sources,
            &prepared.question,
            self.rag.min_support_similarity,
        )
        .with_scanner(&self.scanner);
        let mut run = TierRun {
            tier: tier.name.clone(),
            sentences: Vec::new(),
            citations: Vec::new(),
            failure: None,
            stats: None,
            cpu_secs: 0.0,
            wall_ms: 0.0,
            verify_ms: 0.0,
        };
        let ticket = match tier.worker.submit(self.request(prepared.messages.clone())) {
            Ok(t) => t,
            Err(e) => {
                run.failure = Some(e.to_string());
                return Ok(run);
            }
        };
        let mut stream = sentences::Stream::new();
        loop {
            let (pieces, alive) = match ticket.recv() {
                Some(Event::Queued { position }) => {
                    (Vec::new(), sink(Progress::Queued { position }))
                }
                Some(Event::Started { .. }) => {
                    (Vec::new(), sink(Progress::Started { tier: &tier.name }))
                }
                Some(Event::Text(piece)) => (stream.push(&piece), sink(Progress::Generating)),
                Some(Event::Finished { stats, .. }) => {
                    run.stats = Some(stats);
                    (stream.finish(), true)
                }
                Some(Event::Failed(e)) => {
                    run.failure = Some(e.to_string());
                    (Vec::new(), true)
                }
                None => {
                    run.failure = Some("the model stopped".into());
                    (Vec::new(), true)
                }
            };
            let alive =
                alive && (!self.verify || self.check_all(&verifier, &pieces, &mut run, sink));
            if !alive {
                ticket.cancel();
                return Err(Stopped);
            }
            if run.stats.is_some() || run.failure.is_some() {
                break;
            }
        }
        run.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        run.cpu_secs = process_cpu_secs() - cpu;
        Ok(run)
    }

    /// Verify finished sentences and pass on the supported ones; false once
    /// the caller stopped listening.
    fn check_all(
        &self,
        verifier: &Verifier,
        pieces: &[String],
        run: &mut TierRun,
        sink: &mut dyn FnMut(Progress) -> bool,
    ) -> bool {
        for piece in pieces {
            let started = Instant::now();
            let verdict = verifier.check(piece);
            run.verify_ms += started.elapsed().as_secs_f64() * 1000.0;
            let (sentence, citation) = match verdict {
                Ok(Verdict::Checked { sentence, citation }) => (sentence, citation),
                Ok(Verdict::Empty) => continue,
                Ok(Verdict::Refusal) => (
                    CheckedSentence {
                        text: super::verify::strip_markers(piece),
                        supported: false,
                        source: None,
                        similarity: 0.0,
                        reason: Some(DECLINES.into()),
                        tier: String::new(),
                    },
                    None,
                ),
                Err(e) => (
                    CheckedSentence {
                        text: super::verify::strip_markers(piece),
                        supported: false,
                        source: None,
                        similarity: 0.0,
                        reason: Some(format!("could not be checked: {e}")),
                        tier: String::new(),
                    },
                    None,
                ),
            };
            let alive = match (&sentence.source, sentence.supported) {
                (Some(n), true) => sink(Progress::Sentence {
                    text: &with_marker(&sentence.text, *n),
                    citation: citation.as_ref(),
                }),
                _ => sink(Progress::Removed(&sentence)),
            };
            run.sentences.push(CheckedSentence {
                tier: run.tier.clone(),
                ..sentence
            });
            run.citations.push(citation);
            if !alive {
                return false;
            }
        }
        true
    }

    /// The answer from the tiers tried (in order): the chosen tier's
    /// supported sentences, or the quotes when none survived anywhere.
    pub fn compose(&self, prepared: &Prepared, runs: &[TierRun]) -> Answer {
        let sentence_lists: Vec<&[CheckedSentence]> =
            runs.iter().map(|r| r.sentences.as_slice()).collect();
        let chosen = route::choose(&sentence_lists, self.rag.escalate_below);
        let checks = Checks {
            quotes: prepared.quotes.clone(),
            sentences: runs.iter().flat_map(|r| r.sentences.clone()).collect(),
            tiers_tried: runs.iter().map(|r| r.tier.clone()).collect(),
            usage: Usage {
                prompt_tokens: runs
                    .iter()
                    .filter_map(|r| r.stats.as_ref())
                    .map(|s| s.prompt_tokens)
                    .sum(),
                generated_tokens: runs
                    .iter()
                    .filter_map(|r| r.stats.as_ref())
                    .map(|s| s.generated_tokens)
                    .sum(),
                model_cpu_secs: runs
                    .iter()
                    .filter_map(|r| r.stats.as_ref())
                    .map(|s| s.cpu_secs)
                    .sum(),
                verify_ms: prepared.evidence_ms + runs.iter().map(|r| r.verify_ms).sum::<f64>(),
                ..Usage::default()
            },
        };
        let grounded = chosen.is_some() || !prepared.quotes.is_empty();
        let (text, citations, verification, tier) = match chosen {
            Some(i) => {
                let run = &runs[i];
                let shown: Vec<String> = run
                    .supported()
                    .map(|(s, _)| with_marker(&s.text, s.source.unwrap_or(0)))
                    .collect();
                let mut citations: Vec<Citation> = Vec::new();
                for c in run.supported().filter_map(|(_, c)| c) {
                    if !citations
                        .iter()
                        .any(|k| k.document_id == c.document_id && k.quote == c.quote)
                    {
                        citations.push(c.clone());
                    }
                }
                let all = run.sentences.iter().all(|s| s.supported || !s.is_claim());
                let verification = if all {
                    Verification::Verified
                } else {
                    Verification::Partial
                };
                (shown.join(" "), citations, verification, run.tier.clone())
            }
            None => {
                let shown: Vec<String> = prepared
                    .quotes
                    .iter()
                    .map(|q| with_marker(&q.quote, q.number))
                    .collect();
                (
                    shown.join(" "),
                    prepared.quotes.clone(),
                    Verification::Quoted,
                    QUOTE_TIER.to_string(),
                )
            }
        };
        if !grounded {
            return Answer {
                sources: prepared.sources.clone(),
                checks,
                ..Answer::not_covered()
            };
        }
        Answer {
            text,
            grounded,
            citations,
            sources: prepared.sources.clone(),
            verification,
            tier,
            checks,
        }
    }
}
