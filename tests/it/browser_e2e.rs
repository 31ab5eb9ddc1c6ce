//! The whole flow in a real browser: headless Debian Chromium, driven over
//! WebDriver (chromedriver), against a real `enclave serve` on localhost.
//! An admin grants themselves a collection, uploads a PDF (and a file whose
//! name and text are XSS payloads), asks about the PDF, opens the cited
//! passage and gives feedback; an auditor exports and verifies the log.
//! Every request the page makes is recorded from Chromium's network log and
//! must go to the Enclave origin; no script may run from a payload and no
//! CSP violation may occur.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::server::{Server, seeded_data_dir};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A one-page PDF with a text layer (Helvetica), built by hand.
fn pdf_with_lines(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT /F1 12 Tf 16 TL 72 720 Td\n");
    for l in lines {
        let escaped = l
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        content.push_str(&format!("({escaped}) Tj T*\n"));
    }
    content.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}endstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
    ];
    let objects: Vec<Vec<u8>> = objects.into_iter().map(String::into_bytes).collect();
    crate::common::pdf_from_objects(&objects)
}

fn require_chromedriver() {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists(),
        "chromium-driver is not installed (apt-get install chromium chromium-driver; .ci/run does this)"
    );
}

/// A seeded data dir (see `seeded_data_dir`) whose admin alice is granted
/// `demo`: the temp dir that holds it and the data dir.
fn seeded_with_alice_granted_demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    crate::common::run_ok(
        crate::common::enclave(&dir).args(["grant", "add", "demo", "--user", "alice"]),
    );
    (tmp, dir)
}

struct Driver {
    child: Child,
    agent: ureq::Agent,
    base: String,
    session: String,
}

impl Driver {
    fn start(profile: &std::path::Path) -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:loggingPrefs": { "performance": "ALL", "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-default-apps",
                    "--disable-extensions", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let mut d = Driver {
            child,
            agent,
            base,
            session: String::new(),
        };
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().expect("session id").to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .send_json(body.unwrap_or_else(|| json!({}))),
        }
        .expect("webdriver reachable");
        let status = resp.status().as_u16();
        let v: Value = resp.into_body().read_json().unwrap_or(Value::Null);
        assert!(status < 400, "webdriver {method} {path}: {status} {v}");
        v["value"].clone()
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("{}{}", self.base, self.s("/element"));
            let resp = self
                .agent
                .post(&url)
                .send_json(json!({ "using": "css selector", "value": css }))
                .expect("webdriver reachable");
            let ok = resp.status().as_u16() < 400;
            let v: Value = resp.into_body().read_json().unwrap_or(Value::Null);
            if ok
                && let Some(id) = v["value"]
                    .as_object()
                    .and_then(|obj| obj.values().next())
                    .and_then(|x| x.as_str())
            {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/clear")), None);
        self.call(
            "POST",
            &self.s(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/click")), None);
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &self.s(&format!("/element/{id}/text")), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn script(&self, body: &str) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({ "script": body, "args": [] })),
        )
    }

    fn script_async(&self, body: &str) -> Value {
        self.call(
            "POST",
            &self.s("/execute/async"),
            Some(json!({ "script": body, "args": [] })),
        )
    }

    fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Wait until `js` (an expression) is truthy.
    fn wait_for(&self, js: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let v = self.script(&format!("return !!({js});"));
            if v == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Log in as alice (the seeded admin) and wait for the chat page.
    fn login_as_alice(&self, origin: &str) {
        self.goto(&format!("{origin}/login"));
        self.type_into("#username", "alice");
        self.type_into("#password", "pw-alice-secret-123");
        self.click("#login-button");
        self.wait_for("location.pathname === '/chat'", "the chat page after login");
    }

    /// Save a PNG of the window to `$ENCLAVE_SCREENSHOTS/<name>.png` when
    /// that variable names a folder (for looking at a page by eye).
    fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("ENCLAVE_SCREENSHOTS") else {
            return;
        };
        use base64::Engine;
        let png = self.call("GET", &self.s("/screenshot"), None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or(""))
            .expect("a base64 PNG");
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.png")),
            bytes,
        )
        .unwrap();
    }

    fn logs(&self, kind: &str) -> Vec<Value> {
        self.call("POST", &self.s("/se/log"), Some(json!({ "type": kind })))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Every request in Chromium's network log: (the document that made it, its URL).
fn requests(logs: &[Value]) -> Vec<(String, String)> {
    logs.iter()
        .filter_map(|entry| {
            let msg: Value = serde_json::from_str(entry["message"].as_str()?).ok()?;
            if msg["message"]["method"] != "Network.requestWillBeSent" {
                return None;
            }
            let p = &msg["message"]["params"];
            Some((
                p["documentURL"].as_str().unwrap_or("").to_string(),
                p["request"]["url"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn browser_flow_upload_ask_cite_audit_all_same_origin() {
    require_chromedriver();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    // The auditor gets a generated password, as a new account would: it is
    // one-time, and the first login must replace it.
    let out = crate::common::run_ok(crate::common::enclave(&dir).args(["user", "passwd", "carol"]));
    let one_time = out
        .split_whitespace()
        .last()
        .expect("the one-time password printed")
        .to_string();
    let server = Server::start(&dir, &[]);
    let origin = server.base.clone();
    let pdf = tmp.path().join("blood-bank-policy.pdf");
    std::fs::write(
        &pdf,
        pdf_with_lines(&[
            "Blood Bank Reserve Policy",
            "The Northfield blood bank keeps a reserve of 42 units of O negative blood.",
            "The reserve is checked every Monday by the transfusion lead.",
        ]),
    )
    .unwrap();
    let xss_file = tmp.path().join("<img src=x onerror=window.__xss=1>.md");
    std::fs::write(
        &xss_file,
        "# Visitor policy\n\n<script>window.__xss=2</script><img src=x onerror=\"window.__xss=3\">\
         Visitors sign in at reception between 9am and 8pm.\n",
    )
    .unwrap();

    let profile = tmp.path().join("chromium-profile");
    let d = Driver::start(&profile);

    // Log in as the admin.
    d.login_as_alice(&origin);

    // Grant the admin the demo collection through the users page.
    d.goto(&format!("{origin}/admin/users"));
    d.type_into(
        "form[data-url='/api/grants'] input[name=collection]",
        "demo",
    );
    d.type_into("form[data-url='/api/grants'] input[name=user]", "alice");
    d.click("form[data-url='/api/grants'] button[type=submit]");
    d.wait_for(
        "document.body.innerText.includes('user alice')",
        "the grant listed",
    );

    // Upload the PDF and the hostile file; wait for both to finish.
    d.goto(&format!("{origin}/admin/documents"));
    d.type_into("#upload-collection", "demo");
    let files = format!("{}\n{}", pdf.display(), xss_file.display());
    d.type_into("#upload-files", &files);
    d.click("#upload-button");
    d.wait_for(
        "document.querySelectorAll('#upload-progress li[data-state=done]').length === 2",
        "both uploads indexed",
    );
    d.goto(&format!("{origin}/admin/documents"));
    let listed = d.text("#documents");
    assert!(
        listed.contains("<img src=x onerror=window.__xss=1>.md"),
        "hostile name shown as text: {listed}"
    );
    assert!(listed.contains("blood-bank-policy.pdf"), "{listed}");

    // Ask about the PDF: the documents' own words come first, then what a
    // model wrote and a source supports, and the answer says which it is.
    d.goto(&format!("{origin}/chat"));
    d.type_into(
        "#question",
        "How many units of O negative blood does the blood bank keep in reserve?",
    );
    d.click("#ask-button");
    d.wait_for(
        "document.querySelector('article.message .provenance')",
        "a finished answer that says how far it is verified",
    );
    let quotes = d.text("article.message .quotes");
    assert!(quotes.contains("From the documents"), "{quotes}");
    assert!(
        quotes.contains("42 units"),
        "the quote holds the figure: {quotes}"
    );
    let citation = d.text(".quotes a");
    assert!(
        citation.contains("Blood Bank Reserve Policy") || citation.contains("blood"),
        "{citation}"
    );
    // The provenance matches what is on the page: a verified answer under
    // the quotes, or the quotes alone.
    let quoted_only = d.script(
        "return document.querySelector('article.message .provenance').classList.contains('quoted');",
    );
    let answer_shown = d.script("return !!document.querySelector('article.message .answer');");
    assert_ne!(
        quoted_only, answer_shown,
        "quoted: {quoted_only}, answer: {answer_shown}"
    );
    if answer_shown == serde_json::json!(true) {
        let provenance = d.text("article.message .provenance");
        assert!(
            provenance.starts_with("Answered by SmolLM2"),
            "{provenance}"
        );
    }
    // Feedback.
    d.type_into(".feedback-comment", "clear <b>answer</b>");
    d.click(".thumb-up");
    d.wait_for(
        "document.querySelector('.feedback-status').textContent.includes('helpful')",
        "feedback saved",
    );
    // A question that is itself a payload renders as text.
    d.type_into(
        "#question",
        "<img src=x onerror=\"window.__xss=4\"> what are visiting hours?",
    );
    d.click("#ask-button");
    d.wait_for(
        "document.querySelectorAll('article.message .feedback').length === 2",
        "second answer",
    );
    let questions = d.text("#messages");
    assert!(
        questions.contains("<img src=x onerror=\"window.__xss=4\">"),
        "{questions}"
    );
    // Open the quote's passage: title, page, the passage highlighted and
    // the quoted sentence marked inside it.
    d.click(".quotes a");
    d.wait_for("document.querySelector('#highlight')", "the passage page");
    assert!(d.url().starts_with(&format!("{origin}/passages/")));
    let highlighted = d.text("#highlight");
    assert!(highlighted.contains("42 units"), "{highlighted}");
    let quoted = d.text("#quote");
    assert!(quoted.contains("42 units"), "{quoted}");
    let title = d.text("#doc-title");
    assert!(
        title.to_lowercase().contains("blood"),
        "document title: {title}"
    );
    // History survives a reload of the chat page. Model output is text too:
    // make the stored answer a payload (as if the model had written it,
    // citation marker included) and reload the conversation.
    let db = rusqlite::Connection::open(dir.join("enclave.sqlite")).unwrap();
    db.execute(
        "UPDATE messages SET answer = '<img src=x onerror=\"window.__xss=5\"><script>window.__xss=6</script> [1]',
                status = 'answered', verification = 'verified', tier = '<b>tier</b>'
         WHERE id = (SELECT max(id) FROM messages)",
        [],
    )
    .unwrap();
    d.goto(&format!("{origin}/chat"));
    d.click("#conversations a");
    d.wait_for(
        "document.querySelectorAll('article.message').length === 2",
        "the stored conversation",
    );
    let shown = d.text("#messages");
    assert!(
        shown.contains("<img src=x onerror=\"window.__xss=5\">"),
        "model output shown as text: {shown}"
    );
    assert!(
        shown.contains("Answered by <b>tier</b>"),
        "the tier shown as text: {shown}"
    );
    assert_eq!(
        d.script("return window.__xss === undefined;"),
        Value::Bool(true),
        "no payload ran"
    );

    // Log out; the auditor exports and verifies.
    d.click("#logout");
    d.wait_for(
        "location.pathname === '/login'",
        "the login page after logout",
    );
    d.type_into("#username", "carol");
    d.type_into("#password", &one_time);
    d.click("#login-button");
    d.wait_for(
        "location.pathname === '/account/password'",
        "the password page for a one-time password",
    );
    d.type_into("#current-password", &one_time);
    d.type_into("#new-password", "carol-chose-this-1");
    d.type_into("#confirm-password", "carol-chose-this-1");
    d.click("#password-button");
    d.wait_for("location.pathname === '/audit'", "the audit page");
    let status = d.text("#verify-status");
    assert!(status.starts_with("Verified"), "{status}");
    let rows = d.text("#audit-rows");
    for action in [
        "login",
        "document.upload",
        "question",
        "answer",
        "passage.view",
        "grant.add",
        "feedback",
    ] {
        assert!(rows.contains(action), "{action} in the audit page");
    }
    let export = d.script_async(
        "const done = arguments[arguments.length - 1];
         fetch(document.getElementById('export-jsonl').href).then(r => r.text()).then(done);",
    );
    let file = tmp.path().join("audit.jsonl");
    std::fs::write(&file, export.as_str().expect("export text")).unwrap();
    let out = crate::common::enclave(&dir)
        .args(["audit", "verify"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        d.script("return window.__xss === undefined;"),
        Value::Bool(true)
    );

    // Every request went to the Enclave origin; no CSP violation was reported.
    // (Chromium's own new-tab page, shown before the first navigation, loads
    // chrome:// resources; those are not the network and not our pages.)
    let all = requests(&d.logs("performance"));
    let ours = format!("{origin}/");
    let from_our_pages: Vec<&(String, String)> = all
        .iter()
        .filter(|(doc, _)| doc.starts_with(&ours))
        .collect();
    assert!(from_our_pages.len() > 20, "network log recorded: {all:?}");
    let foreign: Vec<&(String, String)> = all
        .iter()
        .filter(|(doc, url)| {
            let network = ["http:", "https:", "ws:", "wss:", "ftp:"]
                .iter()
                .any(|s| url.starts_with(s));
            (doc.starts_with(&ours) || network) && !url.starts_with(&ours)
        })
        .collect();
    assert!(foreign.is_empty(), "requests outside {origin}: {foreign:?}");
    let console = d.logs("browser");
    let csp: Vec<&Value> = console
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("Content Security Policy")
        })
        .collect();
    assert!(csp.is_empty(), "CSP violations: {csp:?}");
}

/// Scans uploaded through the documents page: a scanned PDF, a phone photo
/// of a page and a two-page fax, read by OCR, answerable with a citation to
/// the right page, whose passage view says the text came from OCR.
#[test]
fn scans_uploaded_in_the_browser_are_answered_from_their_page() {
    require_chromedriver();
    let (tmp, dir) = seeded_with_alice_granted_demo();
    let server = Server::start(&dir, &[]);
    let origin = server.base.clone();
    let d = Driver::start(&tmp.path().join("chromium-profile"));
    d.login_as_alice(&origin);

    // A scanned PDF, a phone photo of a page and a two-page fax, uploaded
    // through the documents page; each says it was read by OCR.
    let scans = crate::common::repo_root().join("tests/fixtures/scans");
    let files: Vec<String> = ["scanned-memo.pdf", "photo-parking.jpg", "fax-transport.tif"]
        .iter()
        .map(|f| scans.join(f).display().to_string())
        .collect();
    d.goto(&format!("{origin}/admin/documents"));
    d.type_into("#upload-collection", "demo");
    d.type_into("#upload-files", &files.join("\n"));
    d.click("#upload-button");
    d.wait_for(
        "document.querySelectorAll('#upload-progress li[data-state=done]').length === 3",
        "the three scans indexed",
    );
    let progress = d.text("#upload-progress");
    assert_eq!(progress.matches("read by OCR").count(), 3, "{progress}");
    d.screenshot("scans-uploaded");

    // The fax's second page answers; the quote cites that page.
    d.goto(&format!("{origin}/chat"));
    d.type_into(
        "#question",
        "Where is the ambulance pickup for dialysis patients?",
    );
    d.click("#ask-button");
    d.wait_for(
        "document.querySelector('article.message .provenance')",
        "a finished answer",
    );
    let quotes = d.text("article.message .quotes");
    assert!(quotes.contains("north entrance"), "{quotes}");
    let cited = d.text("article.message .quotes a");
    assert!(cited.contains("fax transport, page 2"), "{cited}");
    d.screenshot("scans-answered");

    // The citation opens the OCR text of that page with the passage marked.
    d.click("article.message .quotes a");
    d.wait_for(
        "document.querySelector('#highlight') && document.querySelector('#highlight').textContent.includes('north entrance')",
        "the cited passage highlighted in the page",
    );
    let note = d.text("#ocr-note");
    assert!(
        note.starts_with("text read by OCR from a scan, confidence 9"),
        "{note}"
    );
    d.screenshot("scans-passage");
}

/// The usage page after a scripted stretch of traffic: answered, not
/// covered and escalated questions through the chat route and the API,
/// thumbs up and down. The page's figures must be the traffic's, its charts
/// must load (server-drawn SVG, same origin) and nothing may come from
/// elsewhere.
#[test]
fn usage_page_shows_the_traffic_it_was_given() {
    require_chromedriver();
    let (tmp, dir) = seeded_with_alice_granted_demo();
    // Two tiers: the small model, then the same file under another name as
    // the "larger" tier, and every answer that is not wholly verified
    // escalates, so the traffic has escalations without a second model.
    let models = tmp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let repo_models = crate::common::models_dir();
    for (from, to) in [
        ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
        (
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "second-tier.gguf"),
    ] {
        std::os::unix::fs::symlink(repo_models.join(from), models.join(to)).unwrap();
    }
    let config = tmp.path().join("tiers.toml");
    std::fs::write(
        &config,
        "[llm]\nescalate_to = [\"second-tier.gguf\"]\nstart_higher_for = []\n\
         [rag]\nescalate_below = 1.0\n\
         [cost]\nhardware_per_hour = 0.5\npower_watts = 0.0\ncurrency = \"EUR\"\n",
    )
    .unwrap();
    let server = Server::start(
        &dir,
        &[
            ("ENCLAVE_CONFIG", config.to_str().unwrap()),
            ("ENCLAVE_MODELS_DIR", models.to_str().unwrap()),
        ],
    );
    let origin = server.base.clone();

    // The traffic: questions the documents answer, and ones they do not.
    let answerable = [
        "How many days of annual leave?",
        "When must shift swaps be agreed?",
        "How should staff report sickness?",
        "How long is the clinical staff working week?",
    ];
    let uncovered = [
        "What is the capital of Peru?",
        "Who won the 1966 football world cup?",
    ];
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    let mut answered_ids = Vec::new();
    for q in answerable.iter().chain(&uncovered) {
        let (status, events) = alice.ask(q, None);
        assert_eq!(status, 200, "{q}");
        let meta = &events.iter().find(|(e, _)| e == "meta").expect("meta").1;
        let done = &events.iter().find(|(e, _)| e == "done").expect("done").1;
        if done["answer"]["status"] == "answered" {
            answered_ids.push(meta["message_id"].as_i64().unwrap());
        }
    }
    assert!(answered_ids.len() >= 3, "answered: {answered_ids:?}");
    // Thumbs: up on all but the last answered, down on that one.
    let (last, rest) = answered_ids.split_last().unwrap();
    for (id, rating) in rest.iter().map(|id| (id, 1)).chain([(last, -1)]) {
        let r = alice.post_json(
            &format!("/api/messages/{id}/feedback"),
            &json!({ "rating": rating }),
            true,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Two more through the API.
    let token = crate::common::run_ok(
        crate::common::enclave(&dir).args(["token", "create", "--user", "alice"]),
    );
    let api = crate::common::server::agent();
    for q in [answerable[0], uncovered[0]] {
        let r = api
            .post(format!("{origin}/v1/chat/completions"))
            .header("Authorization", format!("Bearer {}", token.trim()))
            .send_json(
                json!({ "model": "enclave", "messages": [{ "role": "user", "content": q }] }),
            )
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let total = answerable.len() + uncovered.len() + 2;
    let usage = alice.get("/api/usage?period=day").json();
    assert_eq!(usage["questions"], total, "{usage}");
    assert_eq!(usage["not_covered"], uncovered.len() + 1, "{usage}");
    assert_eq!(usage["thumbs_up"], rest.len(), "{usage}");
    assert_eq!(usage["thumbs_down"], 1, "{usage}");
    assert!(usage["escalation_rate"].as_f64().unwrap() > 0.0, "{usage}");
    assert_eq!(usage["cost"]["currency"], "EUR");
    assert!(
        usage["cost"]["per_answer"].as_f64().unwrap() > 0.0,
        "{usage}"
    );
    assert!(
        usage["cost"]["cloud_per_answer"].as_f64().unwrap() > 0.0,
        "{usage}"
    );
    let hours: f64 = usage["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["answers"].as_f64().unwrap())
        .sum();
    assert_eq!(hours as usize, total, "every question is in an hour's bar");

    // The page in the browser.
    let profile = tmp.path().join("chromium-profile");
    let d = Driver::start(&profile);
    d.login_as_alice(&origin);
    d.goto(&format!("{origin}/admin/usage"));
    d.wait_for(
        "[...document.images].length === 2 && [...document.images].every(i => i.complete && i.naturalWidth > 0)",
        "both charts drawn",
    );
    let text = d.text("main");
    for expected in [
        format!("Questions\t{total}:"),
        format!("{} up · 1 down", rest.len()),
        "Escalation rate".to_string(),
        "SmolLM2-135M-Instruct.Q4_1".to_string(),
        "second-tier".to_string(),
        "EUR per question".to_string(),
    ] {
        assert!(
            text.contains(&expected)
                || text
                    .replace('\t', " ")
                    .contains(&expected.replace('\t', " ")),
            "{expected:?} on the usage page:\n{text}"
        );
    }
    d.screenshot("usage-day");
    d.script("window.scrollTo(0, document.body.scrollHeight);");
    d.screenshot("usage-day-tiers");
    // The charts are SVG drawn by the server, with their captions.
    let svg = d.script_async(
        "const done = arguments[arguments.length - 1];
         fetch(document.images[0].src).then(r => r.text()).then(done);",
    );
    let svg = svg.as_str().unwrap_or("");
    assert!(
        svg.contains("<svg") && svg.contains("Answers per hour"),
        "{svg}"
    );
    d.click("a[href='/admin/usage?period=month']");
    d.wait_for("location.search === '?period=month'", "the month view");
    d.wait_for(
        "[...document.images].every(i => i.complete && i.naturalWidth > 0)",
        "the month's charts drawn",
    );
    assert!(
        d.text("main").contains(&format!("Questions\t{total}:"))
            || d.text("main").contains(&format!("Questions {total}:"))
    );
    d.screenshot("usage-month");
    let all = requests(&d.logs("performance"));
    let ours = format!("{origin}/");
    let foreign: Vec<&(String, String)> = all
        .iter()
        .filter(|(doc, url)| doc.starts_with(&ours) && !url.starts_with(&ours))
        .collect();
    assert!(foreign.is_empty(), "requests outside {origin}: {foreign:?}");
}

/// The identifiers page in a browser: a document with identifiers is listed
/// masked; setting its collection to `redact` with the form re-processes it
/// (nothing left waiting) and keeps its findings, located at the placeholders.
#[test]
fn an_admin_sets_redaction_on_the_identifiers_page() {
    require_chromedriver();
    let (tmp, dir) = seeded_with_alice_granted_demo();
    let letter = tmp.path().join("referral.txt");
    std::fs::write(
        &letter,
        "Cardiology referral\n\nPatient SSN 123-45-6789, NHS number 943 476 5919.\n\
         The review is booked on ward 7B.\n",
    )
    .unwrap();
    crate::common::run_ok(
        crate::common::enclave(&dir)
            .args(["ingest", "-c", "demo"])
            .arg(&letter),
    );
    let server = Server::start(&dir, &[]);
    let origin = server.base.clone();
    let d = Driver::start(&tmp.path().join("chromium-profile"));
    d.login_as_alice(&origin);

    d.goto(&format!("{origin}/admin/identifiers?collection=demo"));
    d.wait_for("document.querySelector('#policies')", "the policies table");
    let findings = d.text("details.finding-doc");
    assert!(findings.contains("•••-••-6789"), "{findings}");
    assert!(!findings.contains("123-45-6789"), "{findings}");
    assert_eq!(
        d.script("return document.querySelector('#policy-form select[name=policy]').value;"),
        "report"
    );
    d.script("document.querySelector('#policy-form select[name=policy]').value = 'redact';");
    d.click("#policy-form button[type=submit]");
    d.wait_for(
        "[...document.querySelectorAll('#policies tr')].some(r => r.textContent.includes('demo') && r.textContent.includes('redact'))",
        "the demo collection redacting",
    );
    d.screenshot("identifiers-redact");
    // Nothing is left waiting: the form re-processed the collection.
    let row = d.script(
        "return [...document.querySelectorAll('#policies tr')].find(r => r.textContent.includes('demo')).lastElementChild.textContent;",
    );
    assert_eq!(row, "0");
    d.goto(&format!(
        "{origin}/admin/identifiers?collection=demo&kind=ssn"
    ));
    d.wait_for(
        "document.querySelector('details.finding-doc')",
        "the SSN finding",
    );
    let finding = d.text("details.finding-doc");
    assert!(finding.contains("1 ssn"), "{finding}");
}
