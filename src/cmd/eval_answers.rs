//! `enclave eval answers`: the whole answering pipeline on a QA set, scored
//! for each tier alone (the quotes, each model) and for the routed default.
//!
//! Every model tier answers every question once; "routed" replays the
//! escalation policy over those same runs (generation is greedy, so a tier
//! answers a question the same way whether it is asked alone or routed), so
//! its cost is the cost of the tiers it would have used.
//!
//! Sets: HotpotQA (`question`, `answer`, `context` [[title, sentences]],
//! `supporting_facts`): every paragraph of every question is ingested into
//! one scratch library, so each question is asked against all of them. Or a
//! plain JSONL (`question`, `answers`, `answerable`, optional `kind`:
//! "off_topic") over the documents of a corpus folder.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::eval::read_jsonl;
use crate::cli::EvalAnswersArgs;
use crate::config::Config;
use crate::ingest;
use crate::library::Library;
use crate::rag::facts::{self, SourceFacts};
use crate::rag::{Answer, Asker, ModelTier, Plan, Prepared, QUOTE_TIER, TierRun};

/// One question of a set, whatever its format.
#[derive(Debug)]
pub(crate) struct Question {
    pub(crate) text: String,
    answers: Vec<String>,
    answerable: bool,
    off_topic: bool,
    /// Titles of the documents that hold the supporting facts (HotpotQA).
    supporting: Vec<String>,
}

#[derive(Deserialize)]
struct PlainLine {
    question: String,
    #[serde(default)]
    answers: Vec<String>,
    #[serde(default = "yes")]
    answerable: bool,
    #[serde(default)]
    kind: String,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct HotpotLine {
    question: String,
    answer: String,
    context: Vec<(String, Vec<String>)>,
    #[serde(default)]
    supporting_facts: Vec<serde_json::Value>,
}

/// What one system showed for one question.
#[derive(Debug, Default, Clone)]
struct Shown {
    answered: bool,
    text: String,
    /// Generated sentences shown (supported ones).
    generated: Vec<String>,
    /// Generated claims (filler such as "The answer is:" is not one).
    sentences_total: usize,
    sentences_supported: usize,
    /// Titles of the documents cited by what was shown.
    cited_titles: Vec<String>,
    latency_ms: f64,
    tokens: usize,
    cpu_secs: f64,
    verify_ms: f64,
    /// Numbers and names in the generated sentences shown that no passage states.
    unsupported: usize,
}

/// The scores of one system over a set.
#[derive(Debug, Serialize)]
pub struct Row {
    pub system: String,
    pub answered_rate: f64,
    pub containment: f64,
    pub unsupported_facts_shown: usize,
    pub sentence_support_rate: Option<f64>,
    pub citation_precision: Option<f64>,
    pub refusal_unanswerable: Option<f64>,
    pub refusal_off_topic: Option<f64>,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub tokens_per_answer: f64,
    pub cpu_secs_per_answer: f64,
    /// Share of the latency spent gathering evidence, quoting and verifying.
    pub verification_share: f64,
}

pub fn run(config: &Config, args: EvalAnswersArgs) -> Result<()> {
    let hotpot = looks_like_hotpot(&args.file)?;
    let (questions, corpus) = if hotpot {
        read_hotpot(&args.file, args.limit)?
    } else {
        let mut q = read_plain(&args.file)?;
        q.truncate(args.limit.unwrap_or(usize::MAX));
        (q, Corpus::Folder)
    };
    if questions.is_empty() {
        bail!("{} holds no questions", args.file.display());
    }
    let mut config = config.clone();
    let (data_dir, _scratch) = super::eval::scratch_dir(&args.scratch)?;
    config.data_dir = data_dir;
    config.ingest.commit_every_documents = 1024;
    let mut library = Library::open(&config)?;
    let t0 = Instant::now();
    let n_docs = match corpus {
        Corpus::Paragraphs(paragraphs) => {
            for (title, text) in &paragraphs {
                ingest::add_text(&mut library, "eval", title, title, text)?;
            }
            paragraphs.len()
        }
        Corpus::Folder => {
            let dir = args
                .corpus
                .clone()
                .unwrap_or_else(|| default_corpus(&args.file));
            ingest_folder(&mut library, &dir, &args.file)?
        }
    };
    library.optimize()?;
    eprintln!(
        "indexed {n_docs} documents in {:.1} s; {} questions",
        t0.elapsed().as_secs_f64(),
        questions.len()
    );
    let tier_paths = if args.model.is_empty() {
        config.llm_tier_paths()
    } else {
        args.model.clone()
    };
    let asker = Asker::open(&config, &tier_paths, library.shared_embedder())?;
    let mut tiers = Vec::new();
    for path in &tier_paths {
        tiers.push(
            ModelTier::start(path, &config)
                .with_context(|| format!("loading chat model {}", path.display()))?,
        );
    }
    let mut systems: Vec<String> = vec![QUOTE_TIER.to_string()];
    systems.extend(tiers.iter().map(|t| t.name.clone()));
    systems.push("routed".to_string());
    let mut shown: Vec<Vec<Shown>> = vec![Vec::new(); systems.len()];
    for (i, q) in questions.iter().enumerate() {
        eprint!("\rquestion {}/{}", i + 1, questions.len());
        let per_system = ask_all(&asker, &library, &tiers, q)?;
        for (k, s) in per_system.into_iter().enumerate() {
            shown[k].push(s);
        }
    }
    eprintln!();
    let rows: Vec<Row> = systems
        .iter()
        .zip(&shown)
        .map(|(name, s)| score(name, &questions, s, hotpot))
        .collect();
    print_rows(&args, n_docs, questions.len(), &rows)?;
    Ok(())
}

/// `enclave bench answers`: the answerable questions of a plain set, with
/// verification and without, alternating which goes first each round; the
/// wall-clock ratio is what verification adds to answering.
pub fn bench(config: &Config, file: &Path, corpus: Option<PathBuf>, rounds: usize) -> Result<()> {
    let questions: Vec<Question> = read_plain(file)?
        .into_iter()
        .filter(|q| q.answerable)
        .collect();
    let scratch = tempfile::tempdir().context("cannot create scratch dir")?;
    let mut config = config.clone();
    config.data_dir = scratch.path().to_path_buf();
    let mut library = Library::open(&config)?;
    let dir = corpus.unwrap_or_else(|| default_corpus(file));
    ingest_folder(&mut library, &dir, file)?;
    library.optimize()?;
    let paths = config.llm_tier_paths();
    let with = Asker::open(&config, &paths, library.shared_embedder())?;
    let without = Asker::open(&config, &paths, library.shared_embedder())?.without_verification();
    let tiers = ModelTier::start_all(&config)
        .map_err(|(path, e)| anyhow::anyhow!("loading chat model {}: {e}", path.display()))?;
    let time = |asker: &Asker| -> Result<f64> {
        let started = Instant::now();
        for q in &questions {
            if let Plan::Generate(p) = asker.plan(&library, &q.text, None)?.plan {
                asker
                    .respond(&tiers, &p, &mut |_| true)
                    .map_err(|_| anyhow::anyhow!("cancelled"))?;
            }
        }
        Ok(started.elapsed().as_secs_f64())
    };
    println!(
        "{} answerable questions of {}, {} rounds",
        questions.len(),
        file.display(),
        rounds
    );
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (on, off) = if round % 2 == 0 {
            let on = time(&with)?;
            (on, time(&without)?)
        } else {
            let off = time(&without)?;
            (time(&with)?, off)
        };
        ratios.push(on / off);
        println!(
            "round {}: with verification {on:.2} s, without {off:.2} s, ratio {:.3}",
            round + 1,
            on / off
        );
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        println!(
            "median ratio {median:.3}: verification adds {:.1} %",
            (median - 1.0) * 100.0
        );
    }
    Ok(())
}

/// The documents of a plain set: the `documents` folder beside it, else its own folder.
pub(crate) fn default_corpus(file: &Path) -> PathBuf {
    let beside = file.parent().unwrap_or(Path::new("."));
    let documents = beside.join("documents");
    if documents.is_dir() {
        documents
    } else {
        beside.to_path_buf()
    }
}

enum Corpus {
    Paragraphs(Vec<(String, String)>),
    Folder,
}

/// Every system's answer to one question: the quotes, each tier alone, routed.
fn ask_all(
    asker: &Asker,
    library: &Library,
    tiers: &[ModelTier],
    q: &Question,
) -> Result<Vec<Shown>> {
    let started = Instant::now();
    let planned = asker.plan(library, &q.text, None)?;
    let plan_ms = started.elapsed().as_secs_f64() * 1000.0;
    let prepared = match planned.plan {
        Plan::NotCovered { .. } => return Ok(vec![Shown::default(); tiers.len() + 2]),
        Plan::Generate(p) => p,
    };
    let titles: HashMap<usize, String> = prepared
        .sources
        .iter()
        .map(|s| (s.number, s.document_title.clone()))
        .collect();
    let mut out = vec![quoted(&prepared, plan_ms, &titles)];
    let mut runs = Vec::new();
    for tier in tiers {
        let run = asker
            .run_tier(tier, &prepared, &mut |_| true)
            .map_err(|_| anyhow::anyhow!("cancelled"))?;
        out.push(tier_alone(&run, plan_ms, &prepared, &titles));
        runs.push(run);
    }
    let used = asker.replay(&prepared, &runs);
    let answer = asker.compose(&prepared, used);
    out.push(routed(&answer, used, plan_ms, &prepared, &titles));
    let mut passages = SourceFacts::default();
    for s in &prepared.sources {
        passages.extend(&SourceFacts::of(&s.text));
    }
    for s in &mut out {
        s.unsupported = unsupported_facts(&s.generated, &passages);
    }
    Ok(out)
}

fn quoted(prepared: &Prepared, plan_ms: f64, titles: &HashMap<usize, String>) -> Shown {
    Shown {
        answered: !prepared.quotes.is_empty(),
        text: prepared
            .quotes
            .iter()
            .map(|q| q.quote.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        cited_titles: prepared
            .quotes
            .iter()
            .filter_map(|q| titles.get(&q.number).cloned())
            .collect(),
        latency_ms: plan_ms,
        verify_ms: prepared.evidence_ms,
        ..Shown::default()
    }
}

fn tier_alone(
    run: &TierRun,
    plan_ms: f64,
    prepared: &Prepared,
    titles: &HashMap<usize, String>,
) -> Shown {
    let generated: Vec<String> = run.supported().map(|(s, _)| s.text.clone()).collect();
    Shown {
        answered: !generated.is_empty(),
        text: generated.join(" "),
        cited_titles: run
            .supported()
            .filter_map(|(s, _)| s.source.and_then(|n| titles.get(&n).cloned()))
            .collect(),
        generated,
        sentences_total: run.sentences.iter().filter(|s| s.is_claim()).count(),
        sentences_supported: run.sentences.iter().filter(|s| s.supported).count(),
        latency_ms: plan_ms + run.wall_ms,
        tokens: run
            .stats
            .as_ref()
            .map_or(0, |s| s.prompt_tokens + s.generated_tokens),
        cpu_secs: run.cpu_secs,
        verify_ms: prepared.evidence_ms + run.verify_ms,
        unsupported: 0,
    }
}

fn routed(
    answer: &Answer,
    used: &[TierRun],
    plan_ms: f64,
    prepared: &Prepared,
    titles: &HashMap<usize, String>,
) -> Shown {
    let generated: Vec<String> = if answer.tier == QUOTE_TIER {
        Vec::new()
    } else {
        answer
            .checks
            .sentences
            .iter()
            .filter(|s| s.supported && s.tier == answer.tier)
            .map(|s| s.text.clone())
            .collect()
    };
    let mut cited: Vec<String> = prepared
        .quotes
        .iter()
        .filter_map(|q| titles.get(&q.number).cloned())
        .collect();
    if answer.tier != QUOTE_TIER {
        cited.extend(
            answer
                .citations
                .iter()
                .filter_map(|c| titles.get(&c.number).cloned()),
        );
    }
    Shown {
        answered: answer.grounded,
        text: answer.shown_text(),
        generated,
        sentences_total: used
            .iter()
            .map(|r| r.sentences.iter().filter(|s| s.is_claim()).count())
            .sum(),
        sentences_supported: used
            .iter()
            .map(|r| r.sentences.iter().filter(|s| s.supported).count())
            .sum(),
        cited_titles: cited,
        latency_ms: plan_ms + used.iter().map(|r| r.wall_ms).sum::<f64>(),
        tokens: answer.checks.usage.prompt_tokens + answer.checks.usage.generated_tokens,
        cpu_secs: used.iter().map(|r| r.cpu_secs).sum(),
        verify_ms: answer.checks.usage.verify_ms,
        unsupported: 0,
    }
}

fn score(system: &str, questions: &[Question], shown: &[Shown], hotpot: bool) -> Row {
    let answerable: Vec<(&Question, &Shown)> = questions
        .iter()
        .zip(shown)
        .filter(|(q, _)| q.answerable)
        .collect();
    let rate = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let answered = answerable.iter().filter(|(_, s)| s.answered).count();
    let contained = answerable
        .iter()
        .filter(|(q, s)| q.answers.iter().any(|a| contains_answer(&s.text, a)))
        .count();
    let unsupported = shown.iter().map(|s| s.unsupported).sum();
    let total: usize = shown.iter().map(|s| s.sentences_total).sum();
    let supported: usize = shown.iter().map(|s| s.sentences_supported).sum();
    let cited: usize = shown.iter().map(|s| s.cited_titles.len()).sum();
    let good_cites: usize = questions
        .iter()
        .zip(shown)
        .map(|(q, s)| {
            s.cited_titles
                .iter()
                .filter(|t| q.supporting.contains(t))
                .count()
        })
        .sum();
    let refusal = |off_topic: bool| {
        let asked: Vec<&Shown> = questions
            .iter()
            .zip(shown)
            .filter(|(q, _)| !q.answerable && q.off_topic == off_topic)
            .map(|(_, s)| s)
            .collect();
        (!asked.is_empty()).then(|| rate(asked.iter().filter(|s| !s.answered).count(), asked.len()))
    };
    let mut latencies: Vec<f64> = shown.iter().map(|s| s.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let answered_all: Vec<&Shown> = shown.iter().filter(|s| s.answered).collect();
    let per_answer = |f: &dyn Fn(&Shown) -> f64| {
        if answered_all.is_empty() {
            0.0
        } else {
            answered_all.iter().map(|s| f(s)).sum::<f64>() / answered_all.len() as f64
        }
    };
    let latency_total: f64 = shown.iter().map(|s| s.latency_ms).sum();
    let verify_total: f64 = shown.iter().map(|s| s.verify_ms).sum();
    Row {
        system: system.to_string(),
        answered_rate: rate(answered, answerable.len()),
        containment: rate(contained, answerable.len()),
        unsupported_facts_shown: unsupported,
        sentence_support_rate: (total > 0).then(|| rate(supported, total)),
        citation_precision: (hotpot && cited > 0).then(|| rate(good_cites, cited)),
        refusal_unanswerable: refusal(false),
        refusal_off_topic: refusal(true),
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p95_ms: percentile(&latencies, 0.95),
        tokens_per_answer: per_answer(&|s| s.tokens as f64),
        cpu_secs_per_answer: per_answer(&|s| s.cpu_secs),
        verification_share: if latency_total > 0.0 {
            verify_total / latency_total
        } else {
            0.0
        },
    }
}

/// Numbers and names in shown generated sentences that none of the
/// question's passages states, counted independently of the verifier's own
/// decision (which also demands meaning and a single supporting sentence):
/// an audit of the guarantee.
fn unsupported_facts(generated: &[String], passages: &SourceFacts) -> usize {
    generated
        .iter()
        .map(|g| facts::extract(g).missing_from(passages).len())
        .sum()
}

pub(crate) use crate::metrics::percentile;

/// Whether the normalised gold answer occurs, word-aligned, in the
/// normalised shown text.
pub fn contains_answer(shown: &str, gold: &str) -> bool {
    let gold = normalise(gold);
    if gold.is_empty() {
        return false;
    }
    let shown = format!(" {} ", normalise(shown));
    shown.contains(&format!(" {gold} "))
}

/// Lowercase, number words as digits, thousands separators and punctuation
/// dropped, articles removed (the SQuAD/HotpotQA answer normalisation, plus
/// number words, so "eight years" meets "8 years").
pub fn normalise(text: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("zero", "0"),
        ("one", "1"),
        ("two", "2"),
        ("three", "3"),
        ("four", "4"),
        ("five", "5"),
        ("six", "6"),
        ("seven", "7"),
        ("eight", "8"),
        ("nine", "9"),
        ("ten", "10"),
        ("eleven", "11"),
        ("twelve", "12"),
        ("fifteen", "15"),
        ("twenty", "20"),
        ("thirty", "30"),
        ("forty", "40"),
        ("fifty", "50"),
        ("hundred", "100"),
    ];
    let lower = text.to_lowercase();
    let mut cleaned = String::with_capacity(lower.len());
    let chars: Vec<char> = lower.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let digit_around = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(char::is_ascii_digit)
        };
        if c == ',' && digit_around(i.checked_sub(1)) && digit_around(Some(i + 1)) {
            continue;
        }
        if c == '.' && digit_around(i.checked_sub(1)) && digit_around(Some(i + 1)) {
            cleaned.push('.');
        } else if c.is_alphanumeric() {
            cleaned.push(c);
        } else {
            cleaned.push(' ');
        }
    }
    cleaned
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .map(|w| {
            WORDS
                .iter()
                .find(|(word, _)| *word == w)
                .map_or(w, |(_, digits)| digits)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_rows(args: &EvalAnswersArgs, docs: usize, questions: usize, rows: &[Row]) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    println!(
        "{}: {docs} documents, {questions} questions",
        args.file.display()
    );
    println!(
        "{:<34} {:>8} {:>8} {:>11} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7}",
        "system",
        "answered",
        "contain",
        "unsupp.shown",
        "support",
        "cite-prec",
        "ref-unan",
        "ref-off",
        "p50 ms",
        "p95 ms",
        "tokens",
        "CPU-s",
        "verify%"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for r in rows {
        println!(
            "{:<34} {:>8.3} {:>8.3} {:>11} {:>8} {:>9} {:>8} {:>8} {:>8.0} {:>8.0} {:>7.0} {:>6.2} {:>6.1}%",
            r.system,
            r.answered_rate,
            r.containment,
            r.unsupported_facts_shown,
            opt(r.sentence_support_rate),
            opt(r.citation_precision),
            opt(r.refusal_unanswerable),
            opt(r.refusal_off_topic),
            r.latency_p50_ms,
            r.latency_p95_ms,
            r.tokens_per_answer,
            r.cpu_secs_per_answer,
            r.verification_share * 100.0
        );
    }
    Ok(())
}

fn looks_like_hotpot(path: &Path) -> Result<bool> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let first = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&first)
        .with_context(|| format!("{}:1: not a JSON line", path.display()))?;
    Ok(value.get("context").is_some() && value.get("answer").is_some())
}

pub(crate) fn read_plain(path: &Path) -> Result<Vec<Question>> {
    Ok(read_jsonl::<PlainLine>(path)?
        .into_iter()
        .map(|l| Question {
            answerable: l.answerable && !l.answers.is_empty(),
            off_topic: l.kind == "off_topic",
            text: l.question,
            answers: l.answers,
            supporting: Vec::new(),
        })
        .collect())
}

/// The questions, and every distinct paragraph of their contexts.
fn read_hotpot(path: &Path, limit: Option<usize>) -> Result<(Vec<Question>, Corpus)> {
    let lines = read_jsonl::<HotpotLine>(path)?;
    let mut seen = HashSet::new();
    let mut paragraphs = Vec::new();
    let mut questions = Vec::new();
    for l in lines {
        for (title, sentences) in &l.context {
            if seen.insert(title.clone()) {
                paragraphs.push((title.clone(), sentences.concat()));
            }
        }
        if questions.len() < limit.unwrap_or(usize::MAX) {
            let supporting = l
                .supporting_facts
                .iter()
                .filter_map(|f| f.get(0).and_then(|t| t.as_str()).map(str::to_string))
                .collect();
            questions.push(Question {
                text: l.question,
                answers: vec![l.answer],
                answerable: true,
                off_topic: false,
                supporting,
            });
        }
    }
    Ok((questions, Corpus::Paragraphs(paragraphs)))
}

/// Ingest the documents of `dir` (not the questions file, nor other JSONL).
pub(crate) fn ingest_folder(library: &mut Library, dir: &Path, questions: &Path) -> Result<usize> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "jsonl"))
        .filter(|p| p.canonicalize().ok() != questions.canonicalize().ok())
        .collect();
    files.sort();
    for f in &files {
        ingest::add_file(library, f, "eval")
            .with_context(|| format!("ingesting {}", f.display()))?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gold_answers_are_found_after_normalisation() {
        assert!(contains_answer(
            "It is eight years after the last treatment.",
            "8 years"
        ));
        assert!(contains_answer("a budget of 1,200 euros", "1200 euros"));
        assert!(contains_answer("within 72 hours.", "72 hours"));
        assert!(!contains_answer("within 8 hours.", "72 hours"));
        assert!(!contains_answer("within 172 hours.", "72 hours"));
        assert!(contains_answer("The Beer Hunter", "beer hunter"));
        assert!(!contains_answer("anything", ""));
    }
}
