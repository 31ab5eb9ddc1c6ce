//! The OpenAI-compatible API driven by the official `openai` Python package
//! (tests/clients/openai_client.py: models, grounded answers whole and
//! streamed with citations in the extension field, embeddings, a revoked
//! token, a token scoped to one collection, scope and model refusals) and
//! `/metrics` parsed with `prometheus_client`'s OpenMetrics parser. Here:
//! the tokens, a cookie session refused on `/v1/*`, `/metrics` absent from
//! the public listener, and the audit rows of API use.

use std::process::Command;

use crate::common::server::{Server, seeded_data_dir};
use crate::common::{enclave, repo_root, run_ok};

/// The Python with `openai` and `prometheus_client` (.ci/run makes
/// target/py; `ENCLAVE_TEST_PYTHON` overrides).
fn python() -> String {
    if let Ok(p) = std::env::var("ENCLAVE_TEST_PYTHON") {
        return p;
    }
    let venv = repo_root().join("target/py/bin/python");
    assert!(
        venv.is_file(),
        "no {}: run .ci/run (or: python3 -m venv target/py && target/py/bin/pip install openai prometheus-client)",
        venv.display()
    );
    venv.display().to_string()
}

fn token(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run_ok(enclave(dir).args(["token", "create"]).args(args));
    let secret = out.trim().to_string();
    assert!(secret.starts_with("enc_") && secret.len() == 47, "{out}");
    secret
}

#[test]
fn openai_clients_and_prometheus_use_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    for collection in ["demo", "secret"] {
        run_ok(enclave(&dir).args(["grant", "add", collection, "--user", "alice"]));
    }
    let full = token(
        &dir,
        &[
            "--user",
            "alice",
            "--scopes",
            "ask,embeddings",
            "--name",
            "full",
        ],
    );
    let demo_only = token(
        &dir,
        &[
            "--user",
            "alice",
            "--scopes",
            "ask",
            "--collections",
            "demo",
            "--name",
            "demo only",
        ],
    );
    let embed_only = token(
        &dir,
        &["--user", "bob", "--scopes", "embeddings", "--expires", "1h"],
    );
    let revoked = token(&dir, &["--user", "bob", "--scopes", "ask"]);
    // An auditor cannot ask, so no token is made for one.
    let out = enclave(&dir)
        .args(["token", "create", "--user", "carol"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auditor"));
    let list: serde_json::Value =
        serde_json::from_str(&run_ok(enclave(&dir).args(["token", "list", "--json"]))).unwrap();
    let revoked_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["username"] == "bob" && t["scopes"] == serde_json::json!(["ask"]))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(
        !list.to_string().contains(&full),
        "the list never shows a secret"
    );
    run_ok(enclave(&dir).args(["token", "revoke", &revoked_id.to_string()]));

    let server = Server::start(&dir, &[]);
    let metrics_url = server
        .printed("Metrics on ")
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();

    // A cookie session never reaches /v1/*, and /metrics is not public.
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "wrong password here").status, 401);
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    assert_eq!(alice.get("/v1/models").status, 401);
    let r = alice.post_json(
        "/v1/chat/completions",
        &serde_json::json!({"model": "enclave", "messages": [{"role": "user", "content": "Annual leave?"}]}),
        true,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    assert_eq!(alice.get("/metrics").status, 404);

    let out = Command::new(python())
        .arg(repo_root().join("tests/clients/openai_client.py"))
        .env("ENCLAVE_BASE", &server.base)
        .env("ENCLAVE_EMBED_MODEL", "all-MiniLM-L6-v2")
        .env("TOKEN_FULL", &full)
        .env("TOKEN_DEMO_ONLY", &demo_only)
        .env("TOKEN_EMBED_ONLY", &embed_only)
        .env("TOKEN_REVOKED", &revoked)
        .env("METRICS_URL", &metrics_url)
        .env("METRICS_TOKEN_FILE", dir.join("metrics-token"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the openai client checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"));

    // Every use is audited as the token's user, marked as API use.
    let mut carol = server.client();
    assert_eq!(carol.login("carol", "pw-carol-secret-123").status, 200);
    let export = carol.get("/api/audit/export?format=jsonl").body;
    let rows: Vec<serde_json::Value> = export
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let api_questions = rows
        .iter()
        .filter(|r| r["action"] == "question" && r["actor"] == "alice")
        .filter(|r| {
            let detail = r["detail"]
                .as_str()
                .map_or_else(|| r["detail"].to_string(), str::to_string);
            detail.contains("\"via\":\"api\"")
        })
        .count();
    assert!(api_questions >= 4, "API questions audited: {api_questions}");
    assert!(
        rows.iter()
            .any(|r| r["action"] == "embeddings" && r["actor"] == "alice")
    );
    assert!(rows.iter().any(|r| r["action"] == "token.revoke"));
    drop(tmp);
}

/// Plain chat with a tier by name: refused unless the admin allows it, and
/// then marked unverified, stored and audited as plain.
#[test]
fn plain_chat_is_off_by_default_and_marked_unverified_when_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    let secret = token(&dir, &["--user", "bob", "--scopes", "ask"]);
    let tier = "SmolLM2-135M-Instruct.Q4_1";
    let agent = crate::common::server::agent();
    let ask = |base: &str, stream: bool| {
        let mut r = agent
            .post(format!("{base}/v1/chat/completions"))
            .header("Authorization", format!("Bearer {secret}"))
            .send_json(serde_json::json!({
                "model": tier,
                "stream": stream,
                "messages": [
                    {"role": "system", "content": "Answer in one short sentence."},
                    {"role": "user", "content": "What colour is the sky on a clear day?"}
                ]
            }))
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let models = |base: &str| -> Vec<String> {
        let mut r = agent
            .get(format!("{base}/v1/models"))
            .header("Authorization", format!("Bearer {secret}"))
            .call()
            .unwrap();
        let v: serde_json::Value = r.body_mut().read_json().unwrap();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    {
        let server = Server::start(&dir, &[]);
        assert_eq!(models(&server.base), vec!["enclave"]);
        let (status, body) = ask(&server.base, false);
        assert_eq!(status, 404, "{body}");
    }
    let config = tmp.path().join("plain.toml");
    std::fs::write(&config, "[api]\nallow_plain_chat = true\n").unwrap();
    let server = Server::start(&dir, &[("ENCLAVE_CONFIG", config.to_str().unwrap())]);
    assert_eq!(models(&server.base), vec!["enclave", tier]);
    let (status, body) = ask(&server.base, false);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.is_empty(), "{body}");
    assert_eq!(v["model"], tier);
    assert_eq!(v["enclave"]["plain"], true);
    assert_eq!(v["enclave"]["verification"], "unverified");
    assert_eq!(v["enclave"]["citations"], serde_json::json!([]));
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let (status, body) = ask(&server.base, true);
    assert_eq!(status, 200);
    let chunks: Vec<serde_json::Value> = body
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["enclave"]["plain"], true);
    assert_eq!(streamed, last["enclave"]["text"].as_str().unwrap());
    assert!(body.ends_with("data: [DONE]\n\n"));
    let mut carol = server.client();
    assert_eq!(carol.login("carol", "pw-carol-secret-123").status, 200);
    let export = carol.get("/api/audit/export?format=jsonl").body;
    let plain_questions = export
        .lines()
        .filter(|l| l.contains("\"question\"") && l.contains("plain"))
        .count();
    assert!(
        plain_questions >= 2,
        "plain questions audited: {plain_questions}"
    );
    // In bob's chat history the plain answers are marked unverified.
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "pw-bob-secret-123").status, 200);
    let list = bob.get("/api/conversations").json();
    let id = list["conversations"][0]["id"].as_i64().unwrap();
    let conversation = bob.get(&format!("/api/conversations/{id}")).json();
    assert_eq!(
        conversation["messages"][0]["verification"], "unverified",
        "{conversation}"
    );
    // A revoked token's use is audited (throttled per reason and address).
    let list: serde_json::Value =
        serde_json::from_str(&run_ok(enclave(&dir).args(["token", "list", "--json"]))).unwrap();
    let id = list[0]["id"].as_i64().unwrap().to_string();
    run_ok(enclave(&dir).args(["token", "revoke", &id]));
    let (status, _) = ask(&server.base, false);
    assert_eq!(status, 401);
    let export = carol.get("/api/audit/export?format=jsonl").body;
    assert!(
        export
            .lines()
            .any(|l| l.contains("access.denied") && l.contains("revoked") && l.contains("bob")),
        "the revoked token's use is audited"
    );
}
