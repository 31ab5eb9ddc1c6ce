//! The candle embedder reproduces sentence-transformers' all-MiniLM-L6-v2
//! vectors (mean pooling, L2 norm, 256 tokens): cosine >= 0.999 against vectors
//! computed once by sentence-transformers (tests/reference/make_embedding_fixture.py).

use enclave::embed::{Embedder, cosine};

#[derive(serde::Deserialize)]
struct Fixture {
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    text: String,
    vector: Vec<f32>,
}

#[test]
fn vectors_match_sentence_transformers() {
    let fixture: Fixture =
        serde_json::from_str(include_str!("../fixtures/minilm_reference.json")).unwrap();
    let embedder = Embedder::load(
        &crate::common::models_dir().join("all-MiniLM-L6-v2"),
        256,
        4,
    )
    .unwrap();
    assert_eq!(embedder.dim(), 384);
    let texts: Vec<&str> = fixture.items.iter().map(|i| i.text.as_str()).collect();
    // Batched (mixed lengths, so padding is exercised) and one at a time must agree.
    let batched = embedder.embed(&texts).unwrap();
    for (item, got) in fixture.items.iter().zip(&batched) {
        let c = cosine(got, &item.vector);
        assert!(c >= 0.999, "cosine {c} for {:?}", item.text);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised");
        let single = embedder.embed_one(&item.text).unwrap();
        assert!(cosine(&single, got) > 0.9999, "batching changes nothing");
    }
    assert_eq!(
        embedder
            .token_count(&fixture.items.last().unwrap().text)
            .unwrap(),
        256,
        "truncated to 256"
    );
}
