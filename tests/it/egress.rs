//! "Never calls external networks", proven two ways on the whole flow
//! (serve, login, grant, upload, ask, cite, an image upload read by OCR,
//! audit export):
//!
//! 1. it succeeds inside a network namespace that has nothing but loopback
//!    (the test re-runs itself under `unshare --net`);
//! 2. under `strace -f -e trace=network`, no `connect()` of the server or any
//!    child (the extraction workers, Tesseract's OCR among them) targets
//!    anything but loopback.

use std::path::Path;
use std::process::Command;

use crate::common::server::{Server, alice_uploads_and_asks, seeded_data_dir, seeded_server};

const INNER: &str = "ENCLAVE_EGRESS_INNER";

/// The flow every egress test runs against a server.
fn whole_flow(server: &Server, tmp: &Path) {
    let (mut alice, done) = alice_uploads_and_asks(
        server,
        (
            "oxygen.md",
            b"# Oxygen cylinders\n\nSpare oxygen cylinders are stored in room B12 and checked daily.\n",
        ),
        "Where are spare oxygen cylinders stored?",
    );
    let done = &done["answer"];
    let chunk = done["sources"][0]["chunk_id"].as_i64().expect("a source");
    assert_eq!(alice.get(&format!("/api/passages/{chunk}")).status, 200);
    // A scan read by OCR: Tesseract runs in the extraction worker, watched
    // like everything else.
    let photo =
        std::fs::read(crate::common::repo_root().join("tests/fixtures/scans/photo-parking.jpg"))
            .unwrap();
    let r = alice.upload("demo", &[("photo-parking.jpg", &photo)], true);
    assert_eq!(r.status, 202, "{}", r.body);
    let upload = alice.wait_upload(r.json()["uploads"][0]["id"].as_i64().unwrap());
    assert_eq!(upload["state"], "done", "{upload}");
    assert!(
        upload["detail"].as_str().unwrap().contains("read by OCR"),
        "{upload}"
    );
    let mut carol = server.client();
    assert_eq!(carol.login("carol", "pw-carol-secret-123").status, 200);
    let export = carol.get("/api/audit/export?format=jsonl");
    assert_eq!(export.status, 200);
    std::fs::write(tmp.join("audit.jsonl"), export.body).unwrap();
}

#[test]
fn whole_flow_works_with_only_loopback() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "egress::inner_flow_in_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env(INNER, "1")
        .output()
        .expect("unshare runs (util-linux; needs root or user namespaces)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "flow in an isolated namespace failed:\n{text}"
    );
    assert!(text.contains("1 passed"), "the inner test ran:\n{text}");
}

#[test]
#[ignore = "run by whole_flow_works_with_only_loopback inside `unshare --net`"]
fn inner_flow_in_namespace() {
    if std::env::var_os(INNER).is_none() {
        return; // only meaningful inside the namespace the outer test makes
    }
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert_eq!(
        links.lines().count(),
        1,
        "only loopback in this namespace: {links}"
    );
    assert!(links.contains("lo:"), "{links}");
    let (tmp, _dir, server) = seeded_server();
    whole_flow(&server, tmp.path());
}

/// Destinations of `connect()` calls in an strace log that are not loopback.
fn non_loopback_connects(log: &str) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut total = 0;
    for line in log.lines().filter(|l| l.contains("connect(")) {
        total += 1;
        let inet4 = line
            .split("inet_addr(\"")
            .nth(1)
            .and_then(|r| r.split('"').next());
        let inet6 = line
            .split("inet_pton(AF_INET6, \"")
            .nth(1)
            .and_then(|r| r.split('"').next());
        let ok = if line.contains("AF_UNIX") || line.contains("AF_NETLINK") {
            true // local sockets (e.g. the system's journal), not the network
        } else if let Some(a) = inet4 {
            a.starts_with("127.")
        } else if let Some(a) = inet6 {
            a == "::1" || a.starts_with("::ffff:127.")
        } else {
            line.contains("AF_UNSPEC") // disconnects a UDP socket; goes nowhere
        };
        if !ok {
            bad.push(line.to_string());
        }
    }
    (bad, total)
}

#[test]
fn no_connect_leaves_loopback_under_strace() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is not installed (.ci/run installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    let log = tmp.path().join("strace.log");
    let log_arg = log.to_str().unwrap().to_string();
    let server = Server::start_under(
        &dir,
        &[],
        &[
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=network,execve",
            "-o",
            &log_arg,
        ],
    );
    whole_flow(&server, tmp.path());
    drop(server);
    let text = std::fs::read_to_string(&log).expect("strace wrote its log");
    assert!(
        text.contains("bind(") && text.contains("accept"),
        "strace saw the server's own socket calls"
    );
    let (bad, total) = non_loopback_connects(&text);
    assert!(
        bad.is_empty(),
        "connect() outside loopback:\n{}",
        bad.join("\n")
    );
    println!("strace: {total} connect() calls, all loopback or local");
    // The extraction workers (the OCR upload's among them, Tesseract loaded)
    // make no network call at all: not even a socket.
    let workers = worker_pids(&text);
    assert!(
        workers.len() >= 2,
        "the uploads ran in workers: {workers:?}"
    );
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| workers.iter().any(|p| l.starts_with(&format!("{p} "))))
        .filter(|l| !l.contains("execve"))
        .collect();
    assert!(
        calls.is_empty(),
        "network calls from workers:\n{}",
        calls.join("\n")
    );
}

/// Process ids that became an extraction worker (strace's execve lines).
fn worker_pids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("execve(") && l.contains("\"__extract-worker\""))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_connect_filter_catches_outside_addresses() {
    let log = r#"
123 connect(7, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("151.101.0.223")}, 16) = -1 ENETUNREACH
124 connect(8, {sa_family=AF_INET, sin_port=htons(8443), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
125 connect(9, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:4860::8888", &sin6_addr), sin6_scope_id=0}, 28) = -1
126 connect(10, {sa_family=AF_UNIX, sun_path="/run/systemd/journal/socket"}, 110) = 0
"#;
    let (bad, total) = non_loopback_connects(log);
    assert_eq!(total, 4);
    assert_eq!(bad.len(), 2, "{bad:?}");
}
