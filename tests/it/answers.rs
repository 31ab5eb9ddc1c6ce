//! Answers staff can trust: the verifier with the real embedder on sentence
//! pairs, escalation across real model tiers (a synthetic model whose output
//! is noise, then SmolLM2), and the web stream, which never carries a
//! sentence the documents do not support.

use std::path::Path;

use enclave::config::RagConfig;
use enclave::embed::Embedder;
use enclave::index::lexical::Terms;
use enclave::llm::synth::{self, SynthQuant, SynthShape};
use enclave::rag::Source;
use enclave::rag::evidence::{Evidence, SentenceCache};
use enclave::rag::verify::{Verdict, Verifier};

use crate::common::server::{Server, seeded_data_dir};
use crate::common::{enclave, models_dir, repo_root, run_ok};

fn source(number: usize, title: &str, text: &str) -> Source {
    Source {
        number,
        chunk_id: number as i64,
        document_id: number as i64,
        document_title: title.into(),
        collection: "demo".into(),
        page: 1,
        heading: String::new(),
        char_start: 0,
        char_end: text.chars().count() as i64,
        text: text.into(),
        similarity: 0.6,
        verbatim: true,
    }
}

fn demo_sources() -> Vec<Source> {
    vec![
        source(
            1,
            "Staff Handbook",
            "Full-time staff receive 25 days of annual leave per year, plus public holidays. \
             Part-time staff receive leave pro rata to their contracted hours. Leave requests \
             are made through the HR portal at least two weeks in advance; requests during \
             December are allocated by seniority. Up to five unused days may be carried over \
             into the first quarter of the next leave year.",
        ),
        source(
            2,
            "Data protection",
            "Requests for erasure are assessed against the legal duty to retain medical records, \
             which is eight years after the last treatment for adults. Personal data must never \
             be sent by personal e-mail or messaging apps. Suspected data breaches are reported \
             to the Data Protection Officer immediately; notifiable breaches are reported to the \
             supervisory authority within 72 hours.",
        ),
    ]
}

/// Whether `sentence`, as an answer to `question`, passes verification.
fn supported(verifier: &Verifier, sentence: &str) -> (bool, String) {
    match verifier.check(sentence).unwrap() {
        Verdict::Checked { sentence, .. } => (
            sentence.supported,
            sentence
                .reason
                .unwrap_or_else(|| format!("source {:?}", sentence.source)),
        ),
        other => (false, format!("{other:?}")),
    }
}

#[test]
fn verifier_keeps_supported_sentences_and_removes_wrong_figures_names_and_polarity() {
    let embedder = Embedder::load(&models_dir().join("all-MiniLM-L6-v2"), 256, 32).unwrap();
    let sources = demo_sources();
    let terms = Terms::new("english");
    let cache = SentenceCache::default();
    let threshold = RagConfig::default().min_support_similarity;
    let cases: &[(&str, &str, bool)] = &[
        (
            "How many days of annual leave do full-time staff get?",
            "Full-time staff get 25 days of annual leave per year [1].",
            true,
        ),
        (
            "How many days of annual leave do full-time staff get?",
            "Full-time staff receive 25 days of annual leave per year, which is a total of 48 hours.",
            false,
        ),
        (
            "How far in advance must leave be requested?",
            "Leave must be requested at least 2 weeks in advance.",
            true,
        ),
        (
            "How far in advance must leave be requested?",
            "Leave must be requested 4 weeks prior to the start of your shift.",
            false,
        ),
        (
            "How long must adult medical records be retained?",
            "8 years.",
            true,
        ),
        (
            "Within how many hours must notifiable breaches be reported?",
            "Notifiable breaches must be reported within 8 hours.",
            false,
        ),
        (
            "Within how many hours must notifiable breaches be reported?",
            "Notifiable breaches are reported to the supervisory authority within 72 hours.",
            true,
        ),
        (
            "Can I send patient data by WhatsApp?",
            "You can send personal data by messaging apps.",
            false,
        ),
        (
            "Can I send patient data by WhatsApp?",
            "Personal data must never be sent by messaging apps.",
            true,
        ),
        (
            "Who handles suspected data breaches?",
            "Suspected breaches are reported to the Data Protection Officer in Canberra.",
            false,
        ),
        (
            "How many unused leave days can be carried over?",
            "The weather in spring is usually mild and pleasant.",
            false,
        ),
    ];
    let mut wrong = Vec::new();
    for (question, sentence, expected) in cases {
        let evidence = Evidence::gather(&embedder, &cache, &terms, question, &sources).unwrap();
        let verifier = Verifier::new(&embedder, &evidence, &sources, question, threshold);
        let (got, why) = supported(&verifier, sentence);
        if got != *expected {
            wrong.push(format!(
                "{sentence:?}: expected {expected}, got {got} ({why})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A refusal is recognised as such, not checked as a claim.
    let q = "What is the capital of Australia?";
    let evidence = Evidence::gather(&embedder, &cache, &terms, q, &sources).unwrap();
    let verifier = Verifier::new(&embedder, &evidence, &sources, q, threshold);
    assert!(matches!(
        verifier
            .check("The documents do not cover this question.")
            .unwrap(),
        Verdict::Refusal
    ));
    assert!(matches!(verifier.check(" [1] ").unwrap(), Verdict::Empty));
}

fn demo_data(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    run_ok(
        enclave(&data)
            .args(["ingest", "--collection", "demo"])
            .arg(repo_root().join("packaging/demo/documents")),
    );
    data
}

fn ask_with_config(data: &Path, config: &Path, question: &str) -> serde_json::Value {
    let out = run_ok(
        enclave(data)
            .env("ENCLAVE_CONFIG", config)
            .args(["ask", question, "--json"]),
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

#[test]
fn tiers_escalate_cheapest_first_and_the_quotes_are_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let data = demo_data(dir.path());
    // The cheapest tier: a model with real shapes and random weights, whose
    // output is noise no source supports.
    let noise = dir.path().join("noise.gguf");
    synth::write(&noise, SynthShape::TinyLlama, SynthQuant::Q8_0).unwrap();
    let write_config = |name: &str, start_higher: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[llm]\nmodel = {noise:?}\nescalate_to = [\"SmolLM2-135M-Instruct.Q4_1.gguf\"]\n\
                 max_new_tokens = 64\nstart_higher_for = {start_higher}\n"
            ),
        )
        .unwrap();
        path
    };
    let plain = write_config("plain.toml", "[]");
    let v = ask_with_config(
        &data,
        &plain,
        "How many days of annual leave do full-time staff get?",
    );
    let answer = &v["answer"];
    let tried: Vec<&str> = answer["checks"]["tiers_tried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tried, ["noise", "SmolLM2-135M-Instruct.Q4_1"], "{v}");
    // Nothing the noise tier wrote is shown; what is shown is SmolLM2's
    // verified sentences or, failing those, the quotes.
    let noise_shown = answer["checks"]["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["tier"] == "noise" && s["supported"] == true);
    assert!(!noise_shown, "{v}");
    assert_ne!(answer["tier"], "noise");
    let quotes = answer["checks"]["quotes"].as_array().unwrap();
    assert!(
        quotes.iter().any(|q| q["quote"]
            .as_str()
            .unwrap()
            .contains("25 days of annual leave")),
        "{v}"
    );
    if answer["tier"] == "quotes" {
        assert_eq!(answer["verification"], "quoted");
        assert!(answer["text"].as_str().unwrap().contains("25 days"));
    } else {
        assert!(["verified", "partial"].contains(&answer["verification"].as_str().unwrap()));
    }

    // A "why" question starts at the second tier when so configured.
    let higher = write_config("higher.toml", "[\"why_how\"]");
    let v = ask_with_config(
        &data,
        &higher,
        "Why must staff report sickness before the shift?",
    );
    let tried = &v["answer"]["checks"]["tiers_tried"];
    assert_eq!(
        tried,
        &serde_json::json!(["SmolLM2-135M-Instruct.Q4_1"]),
        "{v}"
    );
}

#[test]
fn a_wrong_figure_never_reaches_the_stream_and_the_quotes_answer_instead() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seeded_data_dir(&data);
    let server = Server::start(&data, &[]);
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "pw-bob-secret-123").status, 200);
    let question = "Within how many hours must notifiable breaches be reported?";
    let (status, events) = bob.ask(question, None);
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"meta"), "{names:?}");
    assert_eq!(
        names.get(1),
        Some(&"quotes"),
        "the quotes come first: {names:?}"
    );
    let done = &events.iter().find(|(e, _)| e == "done").expect("done").1["answer"];
    let message_id = events[0].1["message_id"].as_i64().unwrap();

    // What SmolLM2 wrote, as stored: the precondition is that it stated a
    // figure no source holds (it says "8 hours" for 72).
    let db = rusqlite::Connection::open(data.join("enclave.sqlite")).unwrap();
    let (checks, verification, tier): (String, String, String) = db
        .query_row(
            "SELECT checks, verification, tier FROM messages WHERE id = ?1",
            [message_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let checks: serde_json::Value = serde_json::from_str(&checks).unwrap();
    let removed: Vec<&serde_json::Value> = checks["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["supported"] == false)
        .collect();
    let wrong_figure = removed.iter().find(|s| {
        s["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("no source states"))
    });
    let wrong_figure = wrong_figure.unwrap_or_else(|| {
        panic!("precondition: the model should state an unsupported figure here; checks: {checks}")
    });
    let wrong_text = wrong_figure["text"].as_str().unwrap();

    // It never reached the stream, the conversation API or the chat page.
    let escaped = serde_json::to_string(wrong_text).unwrap();
    let escaped = escaped.trim_matches('"');
    for (event, data) in &events {
        assert!(
            !data.to_string().contains(escaped),
            "{event} carried the removed sentence: {data}"
        );
    }
    let conversation = events[0].1["conversation_id"].as_i64().unwrap();
    let api = bob.get(&format!("/api/conversations/{conversation}"));
    assert_eq!(api.status, 200);
    assert!(api.body.contains("within 72 hours"), "{}", api.body);
    assert!(!api.body.contains(escaped), "{}", api.body);
    let page = bob.get(&format!("/chat/{conversation}"));
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(wrong_text), "{}", page.body);
    // The quotes answer instead: the right figure, verbatim, cited.
    assert_eq!(done["verification"], "quoted", "{done}");
    assert_eq!(verification, "quoted");
    assert_eq!(tier, "quotes");
    let quotes = done["quotes"].as_array().unwrap();
    assert!(
        quotes
            .iter()
            .any(|q| q["quote"].as_str().unwrap().contains("within 72 hours")),
        "{done}"
    );
    assert!(done["removed"].as_array().unwrap().is_empty());

    // The audit row carries the tier, the verification and the removal.
    let detail: String = db
        .query_row(
            "SELECT detail FROM audit_log WHERE action = 'answer' AND target = ?1",
            [format!("message:{message_id}")],
            |r| r.get(0),
        )
        .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["tier"], "quotes", "{detail}");
    assert_eq!(detail["verification"], "quoted");
    assert_eq!(
        detail["tiers_tried"],
        serde_json::json!(["SmolLM2-135M-Instruct.Q4_1"])
    );
    let removals = detail["sentences_removed"].as_array().unwrap();
    assert!(!removals.is_empty(), "{detail}");
    assert_eq!(removals[0]["removed"], "not supported by the documents");
    // The reason names the unsupported figure (that is the finding); the
    // sentence itself is kept only as a keyed digest. (A sentence that is
    // nothing but the figure, "8 hours", shows up in its reason alone.)
    let mut without_reasons = detail.clone();
    for removal in without_reasons["sentences_removed"].as_array_mut().unwrap() {
        assert!(removal.get("text").is_none(), "{removal}");
        removal["reason"] = serde_json::Value::Null;
    }
    assert!(
        !without_reasons.to_string().contains(wrong_text),
        "the audit keeps a digest, not the text: {wrong_text:?} in {detail}"
    );
}
