//! What the language-model tests share: greedy chat requests, waiting for a
//! ticket's end, and the token-for-token comparison with a llama.cpp
//! tokenizer fixture.

use enclave::llm::tokenizer::Tokenizer;
use enclave::llm::{
    Event, GenerationRequest, GenerationStats, Message, Prompt, SamplingParams, Ticket,
};

pub fn greedy() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    }
}

/// A short system prompt and `question`, greedy, stopping at end of turn.
pub fn chat(question: &str, max_new_tokens: usize) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(vec![
            Message::new("system", "You are a helpful assistant. Answer briefly."),
            Message::new("user", question),
        ]),
        max_new_tokens,
        sampling: greedy(),
        deadline: None,
        ignore_end: false,
    }
}

/// As [`chat`], generating exactly `tokens` tokens (through end-of-turn).
pub fn long(question: &str, tokens: usize) -> GenerationRequest {
    let mut request = chat(question, tokens);
    request.ignore_end = true;
    request
}

/// Wait for a ticket's final answer and statistics.
pub fn finished(ticket: &Ticket) -> (String, GenerationStats) {
    loop {
        match ticket.recv() {
            Some(Event::Finished { text, stats }) => return (text, stats),
            Some(Event::Failed(e)) => panic!("{e}"),
            None => panic!("no final event"),
            _ => {}
        }
    }
}

/// Every line of a `{text, ids}` JSONL fixture made with llama.cpp's
/// `llama-tokenize` (tests/reference/make_tokenizer_fixture.py) encodes to
/// the same ids with `tok`, and decodes back to its text.
pub fn assert_matches_tokenizer_fixture(tok: &Tokenizer, fixture: &str) {
    let mut lines = 0;
    let mut mismatches = Vec::new();
    let mut not_round_trip = Vec::new();
    for row in fixture.lines() {
        let row: serde_json::Value = serde_json::from_str(row).unwrap();
        let input = row["text"].as_str().unwrap();
        let expected: Vec<u32> = row["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ours = tok.encode(input, false, false);
        if ours != expected {
            mismatches.push(format!(
                "{input:?}\n  llama.cpp {expected:?}\n  ours      {ours:?}"
            ));
        }
        if tok.decode(&ours) != input {
            not_round_trip.push(input.to_string());
        }
        lines += 1;
    }
    assert!(lines >= 2000, "fixture has only {lines} lines");
    assert!(
        mismatches.is_empty(),
        "{} of {lines} lines differ from llama.cpp; first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(5)].join("\n")
    );
    assert!(
        not_round_trip.is_empty(),
        "decode(encode(x)) != x for {} lines, first ones: {:?}",
        not_round_trip.len(),
        &not_round_trip[..not_round_trip.len().min(5)]
    );
}
