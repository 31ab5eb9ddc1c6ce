//! `enclave ask` end to end on the demo corpus: retrieval, the evidence
//! gate, generation with the real SmolLM2 model, and citations.

use crate::common::{enclave, run_ok};

fn demo_library() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(
        enclave(&data)
            .args(["ingest", "--collection", "demo"])
            .arg(crate::common::repo_root().join("packaging/demo")),
    );
    dir
}

fn ask_json(dir: &tempfile::TempDir, question: &str) -> serde_json::Value {
    let out = run_ok(enclave(&dir.path().join("data")).args(["ask", question, "--json"]));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

#[test]
fn grounded_answer_cites_the_passage_that_holds_it() {
    let dir = demo_library();
    let v = ask_json(&dir, "How many days of annual leave do staff get?");
    let answer = &v["answer"];
    assert_eq!(answer["grounded"], true, "{v}");
    assert!(v["stats"]["generated_tokens"].as_u64().unwrap() > 0);
    let citations = answer["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "no citation: {v}");
    let first = &citations[0];
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
        "citation quotes the wrong span: {first}"
    );
    // Every citation resolves to a source the model was given.
    let sources = answer["sources"].as_array().unwrap();
    for c in citations {
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

    // The plain-text form streams the answer, then lists the sources.
    let text = run_ok(
        enclave(&dir.path().join("data")).args(["ask", "How should I report sickness absence?"]),
    );
    let sources_at = text
        .find("\n[1] ")
        .or_else(|| text.find("  [1] "))
        .expect("sources listed");
    assert!(
        sources_at > 20,
        "answer text missing before the sources:\n{text}"
    );
}

#[test]
fn uncovered_question_is_answered_without_the_model() {
    let dir = demo_library();
    let v = ask_json(&dir, "What is the boiling point of mercury on Mars?");
    assert_eq!(v["answer"]["grounded"], false);
    assert_eq!(
        v["answer"]["text"].as_str().unwrap(),
        enclave::rag::NOT_COVERED
    );
    assert!(v["stats"].is_null(), "the model was called: {v}");
    assert!(v["answer"]["citations"].as_array().unwrap().is_empty());
}
