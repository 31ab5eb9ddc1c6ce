//! A real `enclave serve` on a loopback port with a scratch data dir, and a
//! small HTTPS client that keeps the session cookie and CSRF token.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{enclave, run_ok};

pub struct Server {
    child: Child,
    pub base: String,
    /// Everything the server printed on stdout so far.
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Start the server and wait until it prints its address.
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        Server::start_under(data_dir, extra_env, &[])
    }

    /// As [`start`], run under `wrapper` (e.g. strace and its options).
    pub fn start_under(data_dir: &Path, extra_env: &[(&str, &str)], wrapper: &[&str]) -> Server {
        let plain = enclave(data_dir);
        let mut cmd = match wrapper.split_first() {
            None => plain,
            Some((program, args)) => {
                let mut c = std::process::Command::new(program);
                c.args(args).arg(plain.get_program());
                for (k, v) in plain.get_envs() {
                    match v {
                        Some(v) => c.env(k, v),
                        None => c.env_remove(k),
                    };
                }
                if let Some(d) = plain.get_current_dir() {
                    c.current_dir(d);
                }
                c
            }
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("ENCLAVE_LOG", "warn,enclave=info")
            // Each test server's metrics on a port of its own.
            .env("ENCLAVE_METRICS_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        // Its own process group, so dropping the server also ends a wrapper's
        // tracee (strace detaches and leaves it running otherwise) and the
        // extraction workers.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut child = cmd.spawn().expect("enclave serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let printed = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Enclave is listening on ") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
                printed.lock().unwrap().push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(180))
            .expect("server printed its address");
        Server { child, base, lines }
    }

    /// The first stdout line starting with `prefix` (waiting up to a minute).
    pub fn printed(&self, prefix: &str) -> String {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < until,
                "the server never printed {prefix:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signals the process group this struct created.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Client {
    agent: ureq::Agent,
    pub base: String,
    pub cookie: Option<String>,
    pub csrf: String,
}

/// An HTTPS agent for the test server: its self-signed certificate
/// accepted, statuses returned rather than raised, no redirects followed.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true) // the server's self-signed certificate
                .build(),
        )
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            agent: agent(),
            base: base.to_string(),
            cookie: None,
            csrf: String::new(),
        }
    }

    fn finish(&mut self, resp: ureq::http::Response<ureq::Body>) -> Response {
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap_or("");
                if pair.ends_with('=') || v.contains("Max-Age=0") {
                    self.cookie = None;
                } else {
                    self.cookie = Some(pair.to_string());
                }
            }
        }
        let mut body = String::new();
        let _ = resp.into_body().into_reader().read_to_string(&mut body);
        Response {
            status,
            headers,
            body,
        }
    }

    pub fn login(&mut self, user: &str, password: &str) -> Response {
        let r = self.post_json(
            "/api/login",
            &serde_json::json!({ "username": user, "password": password }),
            false,
        );
        if r.status == 200 {
            self.csrf = r.json()["csrf_token"].as_str().unwrap_or("").to_string();
        }
        r
    }

    pub fn get(&mut self, path: &str) -> Response {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        let resp = req.call().expect("request sent");
        self.finish(resp)
    }

    pub fn post_json(&mut self, path: &str, body: &serde_json::Value, csrf: bool) -> Response {
        self.send(
            "POST",
            path,
            "application/json",
            body.to_string().into_bytes(),
            csrf,
        )
    }

    pub fn delete(&mut self, path: &str, csrf: bool) -> Response {
        let mut req = self.agent.delete(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        if csrf {
            req = req.header("X-CSRF-Token", &self.csrf);
        }
        let resp = req.call().expect("request sent");
        self.finish(resp)
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        csrf: bool,
    ) -> Response {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.agent.post(url),
            "PUT" => self.agent.put(url),
            other => panic!("unsupported method {other}"),
        }
        .header("Content-Type", content_type);
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        if csrf {
            req = req.header("X-CSRF-Token", &self.csrf);
        }
        let resp = req.send(&body[..]).expect("request sent");
        self.finish(resp)
    }

    /// Upload files (name, bytes) into a collection; multipart built by hand.
    pub fn upload(&mut self, collection: &str, files: &[(&str, &[u8])], csrf: bool) -> Response {
        let boundary = "----enclave-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\n{collection}\r\n"
            )
            .as_bytes(),
        );
        for (name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.send(
            "POST",
            "/api/uploads",
            &format!("multipart/form-data; boundary={boundary}"),
            body,
            csrf,
        )
    }

    /// Poll an upload until it finishes.
    pub fn wait_upload(&mut self, id: i64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let v = self.get(&format!("/api/uploads/{id}")).json();
            let state = v["state"].as_str().unwrap_or("").to_string();
            if ["done", "duplicate", "rejected", "failed"].contains(&state.as_str()) {
                return v;
            }
            assert!(Instant::now() < deadline, "upload {id} stuck in {state}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Ask and time it as the browser sees it: (status, time to the first
    /// token or to the answer if there were no tokens, total time).
    pub fn ask_timed(&mut self, question: &str) -> (u16, Option<Duration>, Duration) {
        let start = Instant::now();
        let mut req = self
            .agent
            .post(format!("{}/api/ask", self.base))
            .header("Content-Type", "application/json")
            .header("X-CSRF-Token", &self.csrf);
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", c);
        }
        let resp = req
            .send(
                serde_json::json!({ "question": question })
                    .to_string()
                    .as_bytes(),
            )
            .expect("request sent");
        let status = resp.status().as_u16();
        if status != 200 {
            return (status, None, start.elapsed());
        }
        let mut first = None;
        let reader = BufReader::new(resp.into_body().into_reader());
        for line in reader.lines().map_while(Result::ok) {
            // The first thing a person reads: the quotes (or the answer when
            // there are none).
            if first.is_none()
                && (line == "event: quotes" || line == "event: sentence" || line == "event: done")
            {
                first = Some(start.elapsed());
            }
            if line == "event: done" {
                break;
            }
        }
        (status, first, start.elapsed())
    }

    /// Ask and read the whole event stream; returns (status, events).
    pub fn ask(
        &mut self,
        question: &str,
        conversation: Option<i64>,
    ) -> (u16, Vec<(String, serde_json::Value)>) {
        let r = self.post_json(
            "/api/ask",
            &serde_json::json!({ "question": question, "conversation_id": conversation }),
            true,
        );
        if r.status != 200 {
            return (r.status, vec![("error".into(), serde_json::json!(r.body))]);
        }
        let mut events = Vec::new();
        for frame in r.body.split("\n\n").filter(|f| !f.trim().is_empty()) {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            events.push((event, serde_json::from_str(&data).unwrap_or_default()));
        }
        (r.status, events)
    }
}

/// alice (admin, see [`seeded_data_dir`]) logs in, grants herself `demo`,
/// uploads `file` there, waits for it, and asks `question`. Returns her
/// client and the answer's `done` data.
pub fn alice_uploads_and_asks(
    server: &Server,
    file: (&str, &[u8]),
    question: &str,
) -> (Client, serde_json::Value) {
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    let r = alice.post_json(
        "/api/grants",
        &serde_json::json!({"collection": "demo", "user": "alice"}),
        true,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = alice.upload("demo", &[file], true);
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["uploads"][0]["id"].as_i64().unwrap();
    assert_eq!(alice.wait_upload(id)["state"], "done");
    let (status, events) = alice.ask(question, None);
    assert_eq!(status, 200);
    let done = events
        .into_iter()
        .find(|(e, _)| e == "done")
        .expect("an answer")
        .1;
    (alice, done)
}

/// A data dir with the demo corpus in collection `demo`, a secret document in
/// collection `secret`, and users: alice (admin), bob and dave (staff, granted
/// `demo`), carol (auditor). Every password is `pw-{name}-secret-123`.
/// A server on a fresh seeded data dir (see [`seeded_data_dir`]): the temp
/// dir that holds it, the data dir, and the running server.
pub fn seeded_server() -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    let server = Server::start(&dir, &[]);
    (tmp, dir, server)
}

pub fn seeded_data_dir(dir: &Path) {
    let demo = super::repo_root().join("packaging/demo/documents");
    run_ok(enclave(dir).args(["ingest", "-c", "demo"]).arg(&demo));
    let secret = dir.parent().unwrap_or(dir).join("vault-procedures.txt");
    std::fs::write(
        &secret,
        "Pharmacy vault procedures\n\nThe vault access code for the pharmacy safe is 7319-ALPHA. \
         Only the chief pharmacist may open the vault, and every opening is logged in the vault book.\n",
    )
    .unwrap();
    run_ok(enclave(dir).args(["ingest", "-c", "secret"]).arg(&secret));
    for (name, role) in [
        ("alice", "admin"),
        ("bob", "staff"),
        ("dave", "staff"),
        ("carol", "auditor"),
    ] {
        let mut child = enclave(dir)
            .args(["user", "add", name, "--role", role, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "pw-{name}-secret-123").unwrap();
        assert!(child.wait().unwrap().success());
    }
    run_ok(enclave(dir).args(["grant", "add", "demo", "--user", "bob"]));
    run_ok(enclave(dir).args(["grant", "add", "demo", "--group", "ward"]));
    run_ok(enclave(dir).args(["user", "join", "dave", "ward"]));
}
