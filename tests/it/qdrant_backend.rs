//! The external Qdrant backend against a real Qdrant server: the
//! `VectorIndex` contract, migration both ways (resumed after a crash), the
//! same nDCG@10 as the embedded backend, and an outage during ingestion and
//! questions (degraded answers, no lost document, recovery without a hand).
//!
//! The server comes from `ENCLAVE_TEST_QDRANT_BIN` or a `qdrant` on PATH
//! (started here on free loopback ports with its own storage), or from
//! `ENCLAVE_TEST_QDRANT_URL` (an already running one; the outage and API-key
//! tests need a binary they can start themselves). Without any, each test prints why it is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::server::{Server, alice_uploads_and_asks, seeded_data_dir};
use crate::common::{enclave, run_ok};
use enclave::config::VectorConfig;
use enclave::index::qdrant::QdrantVectorIndex;
use enclave::index::vector::{VectorIndex, VectorPoint};

/// A Qdrant server for one test.
struct Qdrant {
    url: String,
    /// None when the server is external (ENCLAVE_TEST_QDRANT_URL).
    own: Option<OwnServer>,
}

struct OwnServer {
    bin: PathBuf,
    /// Clients must send this key (QDRANT__SERVICE__API_KEY).
    api_key: Option<String>,
    storage: tempfile::TempDir,
    http_port: u16,
    grpc_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn qdrant_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENCLAVE_TEST_QDRANT_BIN") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("qdrant"))
            .find(|p| p.is_file())
    })
}

/// The server to test against, or None (and the reason printed).
fn qdrant(test: &str, need_own: bool) -> Option<Qdrant> {
    qdrant_with_key(test, need_own, None)
}

fn qdrant_with_key(test: &str, need_own: bool, api_key: Option<&str>) -> Option<Qdrant> {
    if let Some(bin) = qdrant_binary() {
        let mut own = OwnServer {
            bin,
            api_key: api_key.map(str::to_string),
            storage: tempfile::tempdir().unwrap(),
            http_port: free_port(),
            grpc_port: free_port(),
            child: None,
        };
        own.start();
        let q = Qdrant {
            url: format!("http://127.0.0.1:{}", own.grpc_port),
            own: Some(own),
        };
        q.wait_ready();
        return Some(q);
    }
    match std::env::var("ENCLAVE_TEST_QDRANT_URL") {
        Ok(url) if !need_own => {
            let q = Qdrant { url, own: None };
            q.wait_ready();
            Some(q)
        }
        Ok(_) => {
            skipped(
                test,
                "it runs its own Qdrant (to stop and restart it, or to set its API key), so it needs a binary (ENCLAVE_TEST_QDRANT_BIN or qdrant on PATH), not ENCLAVE_TEST_QDRANT_URL",
            );
            None
        }
        Err(_) => {
            skipped(
                test,
                "no Qdrant server (set ENCLAVE_TEST_QDRANT_BIN, put qdrant on PATH, or set ENCLAVE_TEST_QDRANT_URL)",
            );
            None
        }
    }
}

/// Straight to the process's stderr: libtest captures `eprintln!` of passing
/// tests, and a skip must be seen in the CI log.
fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

impl OwnServer {
    fn start(&mut self) {
        let storage = self.storage.path();
        let child = Command::new(&self.bin)
            .current_dir(storage)
            .env("QDRANT__STORAGE__STORAGE_PATH", storage.join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", storage.join("snapshots"))
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc_port.to_string())
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .env("QDRANT__CLUSTER__ENABLED", "false")
            .env("QDRANT__LOG_LEVEL", "WARN")
            .envs(self.api_key.iter().map(|k| ("QDRANT__SERVICE__API_KEY", k)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qdrant starts");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Qdrant {
    fn vector_config(&self, collection: &str) -> VectorConfig {
        VectorConfig {
            backend: enclave::config::VectorBackend::Qdrant,
            url: self.url.clone(),
            collection: collection.into(),
            retries: 1,
            timeout_secs: 5,
            ..VectorConfig::default()
        }
    }

    fn wait_ready(&self) {
        let mut config = self.vector_config("probe");
        let key_file;
        if let Some(key) = self.own.as_ref().and_then(|o| o.api_key.as_deref()) {
            key_file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(key_file.path(), key).unwrap();
            config.api_key_file = key_file.path().to_path_buf();
        }
        let probe = QdrantVectorIndex::open(&config, 3).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Err(e) = probe.probe() {
            assert!(
                Instant::now() < deadline,
                "qdrant at {} never answered: {e}",
                self.url
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A config file beside the data dir (the tests' working directory).
    fn write_config(&self, data_dir: &Path, backend: &str, collection: &str) -> PathBuf {
        let path = data_dir.parent().unwrap().join("enclave.toml");
        std::fs::write(
            &path,
            format!(
                "# test config\n[vector]\nbackend = \"{backend}\"\nurl = \"{}\"\ncollection = \"{collection}\"\nretries = 1\ntimeout_secs = 5\n",
                self.url
            ),
        )
        .unwrap();
        path
    }
}

fn unique(name: &str) -> String {
    format!(
        "{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[test]
fn qdrant_index_keeps_the_vector_index_contract() {
    let Some(q) = qdrant("qdrant_index_keeps_the_vector_index_contract", false) else {
        return;
    };
    let config = q.vector_config(&unique("contract"));
    let idx = QdrantVectorIndex::open(&config, 3).unwrap();
    let (a, b, c) = (
        unit(&[1.0, 0.0, 0.0]),
        unit(&[0.9, 0.1, 0.0]),
        unit(&[0.0, 0.0, 1.0]),
    );
    let point = |chunk_id, document_id, collection, vector| VectorPoint {
        chunk_id,
        document_id,
        collection,
        vector,
    };
    idx.upsert(&[
        point(1, 10, "hr", &a),
        point(2, 11, "legal", &b),
        point(3, 11, "legal", &c),
    ])
    .unwrap();
    idx.commit().unwrap();
    let ids = |hits: Vec<enclave::index::vector::VectorHit>| {
        hits.iter().map(|h| h.chunk_id).collect::<Vec<_>>()
    };
    let hits = idx.search(&a, None, 2).unwrap();
    assert!(
        (hits[0].score - 1.0).abs() < 1e-4,
        "cosine of a with itself"
    );
    assert_eq!(ids(hits), vec![1, 2]);
    assert_eq!(
        ids(idx.search(&a, Some(&["legal".into()]), 5).unwrap()),
        vec![2, 3]
    );
    assert!(
        idx.search(&a, Some(&[]), 5).unwrap().is_empty(),
        "no collection: nothing"
    );
    assert!(
        idx.search(&[1.0], None, 1).is_err(),
        "wrong dimension refused"
    );
    assert_eq!(idx.count().unwrap(), 3);
    assert_eq!(idx.count_document(11).unwrap(), 2);
    let all = idx.scroll(None, 10).unwrap();
    assert_eq!(
        all.iter().map(|p| p.chunk_id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        (all[1].document_id, all[1].collection.as_str()),
        (11, "legal")
    );
    assert!(
        all[1]
            .vector
            .iter()
            .zip(&b)
            .all(|(x, y)| (x - y).abs() < 1e-5),
        "the stored vector comes back"
    );
    assert_eq!(
        idx.scroll(Some(1), 1).unwrap()[0].chunk_id,
        2,
        "scroll resumes after an id"
    );
    idx.delete_document(11).unwrap();
    assert_eq!(idx.count_document(11).unwrap(), 0);
    // A new client (another front end) sees the same collection.
    let again = QdrantVectorIndex::open(&config, 3).unwrap();
    assert_eq!(again.count().unwrap(), 1);
    // A collection of another vector size is refused with a clear error.
    let wrong = QdrantVectorIndex::open(&config, 4).unwrap();
    let e = wrong.count().unwrap_err().to_string();
    assert!(e.contains("3-dimensional"), "{e}");
    again.drop_collection().unwrap();
}

#[test]
fn the_api_key_is_sent_and_a_wrong_one_is_refused() {
    let test = "the_api_key_is_sent_and_a_wrong_one_is_refused";
    let Some(q) = qdrant_with_key(test, true, Some("s3cret-key-for-tests")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("qdrant-api-key");
    // A trailing newline, as `echo KEY > file` leaves it, is not part of the key.
    std::fs::write(&key_file, "s3cret-key-for-tests\n").unwrap();
    let mut config = q.vector_config(&unique("keyed"));
    config.api_key_file = key_file.clone();
    let idx = QdrantVectorIndex::open(&config, 3).unwrap();
    let v = unit(&[1.0, 2.0, 3.0]);
    idx.upsert(&[VectorPoint {
        chunk_id: 7,
        document_id: 1,
        collection: "hr",
        vector: &v,
    }])
    .unwrap();
    assert_eq!(idx.count().unwrap(), 1);
    std::fs::write(&key_file, "wrong-key").unwrap();
    let wrong = QdrantVectorIndex::open(&config, 3).unwrap();
    let e = wrong.count().unwrap_err();
    assert!(
        !matches!(e, enclave::index::vector::VectorError::Unavailable(_)),
        "a refused key is not an outage: {e}"
    );
    let message = e.to_string();
    assert!(
        message.contains("Unauthenticated") || message.contains("PermissionDenied"),
        "{message}"
    );
    config.api_key_file = dir.path().join("missing");
    let e = QdrantVectorIndex::open(&config, 3)
        .err()
        .expect("a missing key file is refused");
    assert!(e.to_string().contains("api_key_file"), "{e}");
    idx.drop_collection().unwrap();
}

const QUERIES: [&str; 6] = [
    "How many days of annual leave do staff get?",
    "Where are spare oxygen cylinders stored?",
    "What is the procedure for a fire alarm?",
    "Who approves overtime?",
    "hand hygiene before patient contact",
    "visiting hours on the ward",
];

/// Top 10 chunk ids per query, dense and hybrid, as the CLI prints them.
fn results(data: &Path) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for q in QUERIES {
        for mode in ["dense", "hybrid"] {
            let json =
                run_ok(enclave(data).args(["search", q, "--mode", mode, "-n", "10", "--json"]));
            let hits: serde_json::Value = serde_json::from_str(&json).unwrap();
            out.push(
                hits.as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h["chunk_id"].as_i64().unwrap())
                    .collect(),
            );
        }
    }
    out
}

#[test]
fn migration_round_trips_and_resumes_after_a_crash() {
    let Some(q) = qdrant("migration_round_trips_and_resumes_after_a_crash", false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let collection = unique("migrate");
    let config_file = q.write_config(&data, "embedded", &collection);
    seeded_data_dir(&data);
    let embedded = results(&data);
    assert!(embedded.iter().all(|r| !r.is_empty()));

    // Crash after 2 batches of 2 points, then rerun: it resumes.
    let crashed = enclave(&data)
        .args(["vectors", "migrate", "--to", "qdrant", "--batch", "2"])
        .env("ENCLAVE_MIGRATE_ABORT_AFTER_BATCHES", "2")
        .output()
        .unwrap();
    let crash_log = String::from_utf8_lossy(&crashed.stderr);
    assert!(
        !crashed.status.success(),
        "the simulated crash stops it: {crash_log}"
    );
    let progress: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("vectors-migrate.json")).unwrap()).unwrap();
    assert_eq!(progress["copied"], 4, "{progress} {crash_log}");
    let resumed = enclave(&data)
        .args(["vectors", "migrate", "--to", "qdrant", "--batch", "2"])
        .output()
        .unwrap();
    crate::common::assert_success(&resumed);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains("Resuming: 4 points already copied"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(stdout.contains("Verified:"), "{stdout}");
    assert!(!data.join("vectors-migrate.json").exists());
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(
        text.contains("backend = \"qdrant\"") && text.contains("# test config"),
        "{text}"
    );
    assert_eq!(results(&data), embedded, "same results from Qdrant");
    // Recomputing every vector from the chunks into Qdrant gives them again.
    let rebuilt = run_ok(enclave(&data).args(["vectors", "rebuild"]));
    assert!(rebuilt.contains("in the qdrant backend"), "{rebuilt}");
    assert_eq!(results(&data), embedded, "same results after a rebuild");

    // And back.
    run_ok(enclave(&data).args(["vectors", "migrate", "--to", "embedded"]));
    assert!(
        std::fs::read_to_string(&config_file)
            .unwrap()
            .contains("backend = \"embedded\"")
    );
    assert_eq!(
        results(&data),
        embedded,
        "same results after the round trip"
    );
    let status = run_ok(enclave(&data).args(["vectors", "status"]));
    assert!(status.contains("backend     embedded"), "{status}");
    let audit = run_ok(enclave(&data).args(["audit", "export", "--format", "jsonl"]));
    assert_eq!(audit.matches("\"vectors.migrate\"").count(), 2);
    QdrantVectorIndex::open(&q.vector_config(&collection), 0)
        .unwrap()
        .drop_collection()
        .unwrap();
}

/// nDCG@10 per retriever, to 3 decimals, from `enclave eval retrieval`'s report.
fn ndcg(data: &Path) -> Vec<(String, String)> {
    let set = crate::common::shared_dir().join("eval/business-reports");
    let out = run_ok(enclave(data).args(["eval", "retrieval"]).arg(&set));
    out.lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let name = cols.next()?;
            let first = cols.next()?;
            let value: f64 = first.parse().ok()?;
            ["bm25", "dense", "hybrid"]
                .contains(&name)
                .then(|| (name.to_string(), format!("{value:.3}")))
        })
        .collect()
}

#[test]
fn eval_gives_the_same_ndcg_on_both_backends() {
    let Some(q) = qdrant("eval_gives_the_same_ndcg_on_both_backends", false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let collection = unique("eval");
    q.write_config(&data, "embedded", &collection);
    let embedded = ndcg(&data);
    q.write_config(&data, "qdrant", &collection);
    let external = ndcg(&data);
    assert_eq!(embedded.len(), 3, "{embedded:?}");
    assert_eq!(embedded, external, "nDCG@10 to 3 decimals");
    eprintln!("nDCG@10 embedded {embedded:?} qdrant {external:?}");
}

#[test]
fn qdrant_outage_degrades_answers_and_recovers_without_a_hand() {
    let Some(mut q) = qdrant(
        "qdrant_outage_degrades_answers_and_recovers_without_a_hand",
        true,
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let collection = unique("outage");
    q.write_config(&data, "qdrant", &collection);
    seeded_data_dir(&data);
    let server = Server::start(&data, &[]);
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "pw-bob-secret-123").status, 200);
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    let done = |events: &[(String, serde_json::Value)]| {
        events
            .iter()
            .find(|(e, _)| e == "done")
            .map(|(_, d)| d.clone())
            .expect("a done event")
    };
    const LEAVE: &str = "How many days of annual leave do staff get?";
    let (status, events) = bob.ask(LEAVE, None);
    assert_eq!(status, 200);
    assert_eq!(done(&events)["degraded"], false);

    // Qdrant goes down.
    q.own.as_mut().unwrap().stop();
    let (status, events) = bob.ask(LEAVE, None);
    assert_eq!(status, 200, "no 5xx while Qdrant is down");
    let answer = done(&events);
    assert_eq!(answer["degraded"], true, "{answer}");
    assert!(
        !answer["answer"]["sources"].as_array().unwrap().is_empty(),
        "BM25 still finds passages: {answer}"
    );
    // The stored answer keeps the flag, for the history and the audit log.
    let conv = events.iter().find(|(e, _)| e == "meta").unwrap().1["conversation_id"]
        .as_i64()
        .unwrap();
    let stored = bob.get(&format!("/api/conversations/{conv}")).json();
    assert_eq!(stored["messages"][0]["degraded"], true, "{stored}");
    assert!(
        bob.get(&format!("/chat/{conv}"))
            .body
            .contains("data-degraded=\"true\""),
        "the chat page marks it"
    );
    let health = alice.get("/api/health").json();
    assert!(health["vectors"].is_null(), "{health}");
    assert!(
        health["vector_problem"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{health}"
    );

    // An upload while it is down is stored, not lost, and waits.
    let r = alice.upload(
        "demo",
        &[(
            "boiler.md",
            b"# Boiler room\n\nThe boiler room key hangs in cabinet K7 beside the porter's desk.\n",
        )],
        true,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["uploads"][0]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let v = alice.get(&format!("/api/uploads/{id}")).json();
        if v["detail"]
            .as_str()
            .unwrap_or("")
            .contains("vector store is unreachable")
        {
            break v;
        }
        assert!(Instant::now() < deadline, "upload never waited: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(waiting["state"], "indexing");
    let document = waiting["document_id"]
        .as_i64()
        .expect("stored as a document");
    let doc = alice.get(&format!("/api/documents/{document}")).json();
    assert_eq!(doc["status"], "indexing", "invisible until indexed: {doc}");

    // Qdrant comes back (same storage): the upload finishes by itself.
    q.own.as_mut().unwrap().start();
    q.wait_ready();
    let finished = alice.wait_upload(id);
    assert_eq!(finished["state"], "done", "{finished}");
    let (status, events) = bob.ask("Where is the boiler room key kept?", None);
    assert_eq!(status, 200);
    let answer = done(&events);
    assert_eq!(answer["degraded"], false, "{answer}");
    let titles: Vec<&str> = answer["answer"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["document_title"].as_str())
        .collect();
    assert!(
        titles.contains(&doc["title"].as_str().unwrap()),
        "{answer} {doc}"
    );
    let health = alice.get("/api/health").json();
    assert_eq!(health["vector_problem"], "", "{health}");
    assert_eq!(health["documents_waiting"], 0, "{health}");
    drop(server);
    QdrantVectorIndex::open(&q.vector_config(&collection), 0)
        .unwrap()
        .drop_collection()
        .unwrap();
}

/// (address, port) of every AF_INET/AF_INET6 `connect()` in an strace log.
fn inet_connects(log: &str) -> Vec<(String, u16)> {
    log.lines()
        .filter(|l| l.contains("connect(") && l.contains("sin"))
        .filter_map(|l| {
            let port = l
                .split("port=htons(")
                .nth(1)?
                .split(')')
                .next()?
                .parse()
                .ok()?;
            let addr = l
                .split("inet_addr(\"")
                .nth(1)
                .or_else(|| l.split("inet_pton(AF_INET6, \"").nth(1))?
                .split('"')
                .next()?
                .to_string();
            Some((addr, port))
        })
        .collect()
}

#[test]
fn with_qdrant_configured_its_address_is_the_only_connect() {
    let test = "with_qdrant_configured_its_address_is_the_only_connect";
    if Command::new("strace").arg("-V").output().is_err() {
        skipped(test, "strace is not installed (.ci/run installs it)");
        return;
    }
    let Some(q) = qdrant(test, false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let collection = unique("egress");
    q.write_config(&data, "qdrant", &collection);
    seeded_data_dir(&data);
    let log = tmp.path().join("strace.log");
    let log_arg = log.to_str().unwrap().to_string();
    let server = Server::start_under(
        &data,
        &[],
        &["strace", "-f", "-qq", "-e", "trace=connect", "-o", &log_arg],
    );
    alice_uploads_and_asks(
        &server,
        (
            "lift.md",
            b"# Lift\n\nThe service lift is inspected every Tuesday.\n",
        ),
        "When is the service lift inspected?",
    );
    drop(server);
    let text = std::fs::read_to_string(&log).expect("strace wrote its log");
    let port: u16 = q.url.rsplit(':').next().unwrap().parse().unwrap();
    let connects = inet_connects(&text);
    assert!(!connects.is_empty(), "the server did talk to Qdrant");
    let elsewhere: Vec<_> = connects
        .iter()
        .filter(|(addr, p)| !(addr == "127.0.0.1" && *p == port))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "connect() to something other than Qdrant at {}: {elsewhere:?}",
        q.url
    );
    QdrantVectorIndex::open(&q.vector_config(&collection), 0)
        .unwrap()
        .drop_collection()
        .unwrap();
}
