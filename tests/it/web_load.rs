//! Load test, run on demand (it takes minutes):
//!
//!     cargo test --release --test it web_load -- --ignored --nocapture
//!
//! 32 staff users log in and ask three questions each (ENCLAVE_LOAD_QUESTIONS), all at once, over
//! HTTPS on loopback. Checks: no 5xx other than deliberate 503s (queue full),
//! every other request answered, the server's resident memory bounded.
//! Prints p50/p95 time to first content (the quotes, or the first verified
//! sentence) as the users see it (queueing included),
//! and memory at start, peak and end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::server::seeded_server;

const USERS: usize = 32;
/// Questions per user (`ENCLAVE_LOAD_QUESTIONS` overrides, to watch memory
/// over longer runs).
fn questions_each() -> usize {
    std::env::var("ENCLAVE_LOAD_QUESTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}
const QUESTIONS: &[&str] = &[
    "How many days of annual leave do staff get?",
    "When must sickness be reported?",
    "When should hands be cleaned?",
    "How long are patient records kept?",
    "What is the boiling point of mercury on Mars?",
];

fn rss_kib(pid: u32) -> u64 {
    enclave::os::status_kib(&pid.to_string(), "VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
#[ignore = "load test: minutes of generation; run with --ignored"]
fn thirty_two_concurrent_chat_users() {
    let (_tmp, _dir, server) = seeded_server();
    let pid = server.pid();
    let mut admin = server.client();
    assert_eq!(admin.login("alice", "pw-alice-secret-123").status, 200);
    for i in 0..USERS {
        let name = format!("load{i:02}");
        let r = admin.post_json(
            "/api/users",
            &serde_json::json!({
                "username": name, "role": "staff", "password": "load-password-1", "service_account": true,
            }),
            true,
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_i64().unwrap();
        let r = admin.post_json(
            &format!("/api/users/{id}"),
            &serde_json::json!({ "group": "ward" }),
            true,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let rss_start = rss_kib(pid);
    let peak = Arc::new(Mutex::new(rss_start));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let r = rss_kib(pid);
                let mut p = peak.lock().unwrap();
                *p = (*p).max(r);
                drop(p);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let questions_each = questions_each();
    let started = Instant::now();
    let results = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(std::sync::Barrier::new(USERS));
    let threads: Vec<_> = (0..USERS)
        .map(|i| {
            let (results, barrier, base) = (results.clone(), barrier.clone(), server.base.clone());
            std::thread::spawn(move || {
                let mut c = crate::common::server::Client::new(&base);
                assert_eq!(
                    c.login(&format!("load{i:02}"), "load-password-1").status,
                    200
                );
                barrier.wait();
                for q in 0..questions_each {
                    let question = QUESTIONS[(i + q) % QUESTIONS.len()];
                    let r = c.ask_timed(question);
                    results.lock().unwrap().push(r);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    let rss_end = rss_kib(pid);
    let peak = *peak.lock().unwrap();
    let results = results.lock().unwrap();
    let mut statuses = std::collections::BTreeMap::new();
    for (s, _, _) in results.iter() {
        *statuses.entry(*s).or_insert(0usize) += 1;
    }
    let mut ttft: Vec<Duration> = results.iter().filter_map(|(_, t, _)| *t).collect();
    ttft.sort();
    let mut total: Vec<Duration> = results
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, _, t)| *t)
        .collect();
    total.sort();
    println!(
        "load: {USERS} users x {questions_each} questions in {:.1} s; statuses {statuses:?}",
        wall.as_secs_f64()
    );
    println!(
        "time to first content: p50 {:.2} s, p95 {:.2} s, max {:.2} s; whole answer p50 {:.2} s, p95 {:.2} s",
        percentile(&ttft, 0.5).as_secs_f64(),
        percentile(&ttft, 0.95).as_secs_f64(),
        ttft.last().copied().unwrap_or_default().as_secs_f64(),
        percentile(&total, 0.5).as_secs_f64(),
        percentile(&total, 0.95).as_secs_f64(),
    );
    println!(
        "server RSS: start {} MiB, peak {} MiB, end {} MiB",
        rss_start / 1024,
        peak / 1024,
        rss_end / 1024
    );
    let errors: usize = statuses
        .iter()
        .filter(|(s, _)| **s >= 500 && **s != 503)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(errors, 0, "5xx other than 503: {statuses:?}");
    assert_eq!(
        statuses.get(&200).copied().unwrap_or(0) + statuses.get(&503).copied().unwrap_or(0),
        USERS * questions_each,
        "every request answered or deliberately refused: {statuses:?}"
    );
    assert!(
        peak < 4 * 1024 * 1024,
        "server RSS peaked at {} MiB",
        peak / 1024
    );
    // The server still works after the load.
    let v = admin.get("/api/health").json();
    assert_eq!(v["generation_queue"], 0, "{v}");
}
