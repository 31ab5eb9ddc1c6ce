//! `enclave ask` end to end on the demo corpus: retrieval, the evidence
//! gate, generation with the real SmolLM2 model, and citations.

use crate::common::{enclave, run_ok};

fn demo_library() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(
        enclave(&data)
            .args(["ingest", "--collection", "demo"])
            .arg(crate::common::repo_root().join("packaging/demo/documents")),
    );
    dir
}

fn ask_json(dir: &tempfile::TempDir, question: &str) -> serde_json::Value {
    let out = run_ok(enclave(&dir.path().join("data")).args(["ask", question, "--json"]));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

#[test]
fn grounded_answer_quotes_the_passage_that_holds_it_and_cites_only_sources() {
    let dir = demo_library();
    let v = ask_json(&dir, "How many days of annual leave do staff get?");
    let answer = &v["answer"];
    assert_eq!(answer["grounded"], true, "{v}");
    let usage = &answer["checks"]["usage"];
    assert!(usage["generated_tokens"].as_u64().unwrap() > 0, "{v}");
    assert!(usage["cpu_secs"].as_f64().unwrap() > 0.0, "{v}");
    // The first quote is the sentence that holds the answer, verbatim.
    let quotes = answer["checks"]["quotes"].as_array().unwrap();
    let first = &quotes[0];
    assert!(
        first["document_title"]
            .as_str()
            .unwrap()
            .contains("Staff Handbook")
    );
    assert!(
        first["quote"]
            .as_str()
            .unwrap()
            .contains("25 days of annual leave"),
        "the first quote is the wrong span: {first}"
    );
    // Every quote and citation resolves to a source the model was given
    // and is a verbatim span of it.
    let sources = answer["sources"].as_array().unwrap();
    let citations = answer["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "{v}");
    for c in quotes.iter().chain(citations) {
        let n = c["number"].as_u64().unwrap() as usize;
        let s = &sources[n - 1];
        assert_eq!(s["chunk_id"], c["chunk_id"]);
        assert!(
            s["text"]
                .as_str()
                .unwrap()
                .contains(c["quote"].as_str().unwrap())
        );
    }
    // Supported sentences are in the text, each with its source's marker;
    // removed ones keep their reason but not their words.
    for s in answer["checks"]["sentences"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        if s["supported"] == true && answer["verification"] != "quoted" {
            let marker = format!("[{}]", s["source"].as_u64().unwrap());
            let shown = answer["text"].as_str().unwrap();
            assert!(shown.contains(text.trim_end_matches('.')), "{v}");
            assert!(shown.contains(&marker), "{v}");
        } else if s["supported"] == false {
            assert!(text.is_empty(), "removed text printed: {v}");
            assert!(s["reason"].as_str().is_some(), "{v}");
        }
    }

    // The plain-text form shows the quotes first, then what was checked.
    let text = run_ok(
        enclave(&dir.path().join("data")).args(["ask", "How should I report sickness absence?"]),
    );
    let quotes_at = text.find("From the documents:").expect("quotes shown");
    let verdict_at = text
        .find("· verified")
        .or_else(|| text.find("· partly verified"))
        .or_else(|| text.find("quoted from the documents"))
        .expect("the verification is stated");
    assert!(quotes_at < verdict_at, "{text}");
    assert!(text.contains("by phone"), "{text}");
}

/// Questions whose words the handbook uses, though MiniLM finds them far
/// from any passage: the gate weighs BM25's evidence too.
#[test]
fn the_gate_lets_through_what_the_documents_say_in_their_own_words() {
    let dir = demo_library();
    for (question, expected) in [
        ("When is a fit note needed?", "require a fit note"),
        ("Can I send patient data by WhatsApp?", "messaging apps"),
    ] {
        let v = ask_json(&dir, question);
        let quotes = v["answer"]["checks"]["quotes"].as_array().unwrap();
        assert!(
            quotes
                .iter()
                .any(|q| q["quote"].as_str().unwrap().contains(expected)),
            "{question}: {v}"
        );
        // A heading in capitals is never quoted, however many words it shares.
        assert!(
            quotes
                .iter()
                .all(|q| q["quote"].as_str().unwrap().chars().any(char::is_lowercase)),
            "{v}"
        );
    }
}

#[test]
fn uncovered_question_is_answered_without_the_model() {
    let dir = demo_library();
    // The demo's own off-topic questions, and one more.
    let questions =
        std::fs::read_to_string(crate::common::repo_root().join("packaging/demo/questions.jsonl"))
            .unwrap();
    let mut off_topic: Vec<String> = questions
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|q| q["kind"] == "off_topic")
        .map(|q| q["question"].as_str().unwrap().to_string())
        .collect();
    assert!(off_topic.len() >= 3);
    off_topic.push("What is the boiling point of mercury on Mars?".into());
    for question in &off_topic {
        let v = ask_json(&dir, question);
        assert_eq!(v["answer"]["grounded"], false, "{question}: {v}");
        assert_eq!(
            v["answer"]["text"].as_str().unwrap(),
            enclave::rag::NOT_COVERED
        );
        assert!(
            v["answer"]["checks"]["tiers_tried"]
                .as_array()
                .unwrap()
                .is_empty(),
            "the model was called: {v}"
        );
        assert!(v["answer"]["citations"].as_array().unwrap().is_empty());
    }
}
