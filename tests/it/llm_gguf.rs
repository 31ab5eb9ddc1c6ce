//! GGUF validation and the GGUF tokenizer, on the real SmolLM2 file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use enclave::llm::gguf::{Gguf, GgufError, Value, Writer};
use enclave::llm::model::Model;
use enclave::llm::tokenizer::{Tokenizer, TokenizerError};

fn model_path() -> PathBuf {
    crate::common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn real_bytes() -> Vec<u8> {
    std::fs::read(model_path()).expect("SmolLM2 GGUF present (models/fetch.sh)")
}

/// Re-encode a parsed file with edited metadata.
fn rewrite(g: &Gguf, edit: impl FnOnce(&mut BTreeMap<String, Value>)) -> Vec<u8> {
    let mut metadata = g.metadata.clone();
    edit(&mut metadata);
    let mut w = Writer::new();
    for (k, v) in &metadata {
        w.meta(k, v.clone());
    }
    for t in &g.tensors {
        w.tensor(
            &t.name,
            t.dims.clone(),
            t.dtype,
            Some(g.tensor_bytes(t).to_vec()),
        );
    }
    let mut out = Vec::new();
    w.write_to(&mut out, |_, _, _| {}).expect("in-memory write");
    out
}

#[test]
fn tokenizer_matches_llama_cpp_token_for_token() {
    let fixture = crate::common::repo_root().join("tests/fixtures/tokenizer_smollm2.jsonl");
    let text = std::fs::read_to_string(&fixture).expect("fixture present");
    let gguf = Gguf::open(&model_path()).unwrap();
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    // Byte-level BPE is lossless.
    crate::common::llm::assert_matches_tokenizer_fixture(&tok, &text);
}

#[test]
fn special_tokens_are_parsed_only_when_asked() {
    let gguf = Gguf::open(&model_path()).unwrap();
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    let im_start = tok
        .token_id("<|im_start|>")
        .expect("ChatML marker in vocabulary");
    let with = tok.encode("<|im_start|>user", false, true);
    assert_eq!(with[0], im_start);
    let without = tok.encode("<|im_start|>user", false, false);
    assert!(
        !without.contains(&im_start),
        "untrusted text must not forge control tokens"
    );
    assert!(tok.is_end(tok.token_id("<|im_end|>").unwrap()));
}

#[test]
fn unknown_pre_tokenizer_is_an_error_not_a_fallback() {
    let gguf = Gguf::open(&model_path()).unwrap();
    assert_eq!(
        gguf.get("tokenizer.ggml.pre").and_then(|v| v.as_str()),
        Some("smollm")
    );
    let bytes = rewrite(&gguf, |m| {
        m.insert(
            "tokenizer.ggml.pre".into(),
            Value::String("mystery-v9".into()),
        );
    });
    let edited = Gguf::from_bytes(bytes).expect("still a valid GGUF");
    match Tokenizer::from_gguf(&edited) {
        Err(TokenizerError::UnknownPre(p)) => assert_eq!(p, "mystery-v9"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an unknown pre-tokenizer was accepted"),
    }
}

/// Offsets of the fields of the tensor-info record for `name` in the header.
fn tensor_info_fields(bytes: &[u8], name: &str) -> (usize, usize, usize, usize) {
    let needle = name.as_bytes();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("tensor name in header");
    let n_dims_at = at + needle.len();
    let n_dims = u32::from_le_bytes(bytes[n_dims_at..n_dims_at + 4].try_into().unwrap()) as usize;
    let dims_at = n_dims_at + 4;
    let type_at = dims_at + 8 * n_dims;
    let offset_at = type_at + 4;
    (n_dims_at, dims_at, type_at, offset_at)
}

fn rejects(bytes: Vec<u8>, what: &str) -> GgufError {
    match Gguf::from_bytes(bytes) {
        Err(e) => e,
        Ok(_) => panic!("{what}: hostile file accepted"),
    }
}

#[test]
fn hostile_and_truncated_files_are_rejected_cleanly() {
    let bytes = real_bytes();
    let len = bytes.len();
    // Truncated at offsets spread over the header and the tensor data.
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut cuts: Vec<usize> = vec![0, 3, 4, 8, 23, 24, 100, 1000];
    for _ in 0..40 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        cuts.push((state % len as u64) as usize);
    }
    for cut in cuts {
        let err = rejects(bytes[..cut].to_vec(), &format!("truncated at {cut}"));
        let msg = err.to_string();
        assert!(
            msg.contains("truncated") || msg.contains("not a GGUF") || msg.contains("invalid"),
            "cut at {cut}: unclear error {msg}"
        );
    }

    let (n_dims_at, dims_at, type_at, offset_at) = tensor_info_fields(&bytes, "token_embd.weight");
    let patch = |at: usize, value: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + value.len()].copy_from_slice(value);
        b
    };
    let e = rejects(
        patch(offset_at, &(1u64 << 40).to_le_bytes()),
        "offset past end",
    );
    assert!(e.to_string().contains("token_embd.weight"), "{e}");
    rejects(patch(offset_at, &u64::MAX.to_le_bytes()), "offset overflow");
    rejects(patch(offset_at, &7u64.to_le_bytes()), "misaligned offset");
    rejects(
        patch(dims_at, &(1u64 << 40).to_le_bytes()),
        "absurd dimension",
    );
    rejects(patch(dims_at, &0u64.to_le_bytes()), "zero dimension");
    rejects(
        patch(dims_at, &33u64.to_le_bytes()),
        "row not a block multiple",
    );
    rejects(patch(n_dims_at, &9u32.to_le_bytes()), "nine dimensions");
    rejects(patch(type_at, &99u32.to_le_bytes()), "unknown type");
    rejects(patch(8, &u64::MAX.to_le_bytes()), "absurd tensor count");
    rejects(patch(16, &u64::MAX.to_le_bytes()), "absurd metadata count");
    // The first metadata key's length.
    rejects(patch(24, &u64::MAX.to_le_bytes()), "absurd string length");
    rejects(patch(0, b"GGUX"), "bad magic");
    rejects(patch(4, &99u32.to_le_bytes()), "unknown version");

    // Random byte flips in the header: whatever parses must also load or
    // fail cleanly (a panic fails this test).
    let header_end = offset_at + 8;
    for i in 0..150 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut b = bytes.clone();
        let at = (state % header_end as u64) as usize;
        b[at] ^= (state >> 32) as u8 | 1;
        if let Ok(g) = Gguf::from_bytes(b) {
            let _ = Tokenizer::from_gguf(&g);
            if i % 15 == 0 {
                let _ = Model::load(&g);
            }
        }
    }
}

#[test]
fn model_shape_mismatch_is_reported_not_trusted() {
    let gguf = Gguf::open(&model_path()).unwrap();
    let bytes = rewrite(&gguf, |m| {
        m.insert("llama.feed_forward_length".into(), Value::U32(4096));
    });
    let edited = Gguf::from_bytes(bytes).unwrap();
    let err = Model::load(&edited)
        .err()
        .expect("inconsistent shapes refused");
    assert!(err.to_string().contains("has shape"), "{err}");
    let bytes = rewrite(&gguf, |m| {
        m.insert("llama.embedding_length".into(), Value::U32(1 << 30));
    });
    let err = Model::load(&Gguf::from_bytes(bytes).unwrap())
        .err()
        .expect("absurd dimension refused");
    assert!(err.to_string().contains("out of range"), "{err}");
}
