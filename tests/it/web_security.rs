//! The web appliance against attacks, over real HTTPS to a real
//! `enclave serve`: role and object authorization on every route with an ID
//! (the IDOR grid), grants enforced inside retrieval, CSRF, login throttling,
//! session expiry and logout, security headers, escaping, upload limits, and
//! the audit trail of it all.

use crate::common::server::{Server, seeded_data_dir, seeded_server};
use rusqlite::Connection;

const SECRET: &str = "7319";

fn ids(conn: &Connection, sql: &str) -> Vec<i64> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<i64>, _>>()
        .unwrap()
}

/// One route of the router with a concrete path, and who may use it: the
/// roles by the seeded users' names (bob staff, alice admin, carol auditor).
/// Objects of dave's (his conversation, his message) and the `secret`
/// collection (granted to nobody) are open to none of them.
struct GridRow {
    method: &'static str,
    template: &'static str,
    path: String,
    open_to: &'static [&'static str],
}

const ANYONE: &[&str] = &["bob", "alice", "carol"];
const CHAT: &[&str] = &["bob", "alice"];
const ADMIN: &[&str] = &["alice"];
const AUDITOR: &[&str] = &["carol"];
const NOBODY: &[&str] = &[];

#[allow(clippy::too_many_arguments)]
fn route_grid(
    secret_doc: i64,
    secret_chunk: i64,
    upload_id: i64,
    grant_id: i64,
    alice_id: i64,
    dave_conv: i64,
    dave_msg: i64,
) -> Vec<GridRow> {
    let id_in = |template: &str| match template {
        t if t.contains("documents") => secret_doc,
        t if t.contains("passages") => secret_chunk,
        t if t.contains("uploads") => upload_id,
        t if t.contains("grants") => grant_id,
        t if t.contains("users") => alice_id,
        t if t.contains("messages") => dave_msg,
        _ => dave_conv,
    };
    let row = |method, template: &'static str, open_to| GridRow {
        method,
        template,
        path: template
            .replace("{file}", "app.js")
            .replace("{period}", "day")
            .replace("{chart}", "answers.svg")
            .replace("{id}", &id_in(template).to_string()),
        open_to,
    };
    vec![
        row("GET", "/", ANYONE),
        row("GET", "/login", ANYONE),
        row("GET", "/static/{file}", ANYONE),
        row("POST", "/api/login", ANYONE),
        row("POST", "/api/logout", ANYONE),
        row("GET", "/api/me", ANYONE),
        row("GET", "/account/password", ANYONE),
        row("POST", "/api/password", ANYONE),
        row("GET", "/chat", CHAT),
        row("GET", "/chat/{id}", NOBODY),
        row("GET", "/passages/{id}", NOBODY),
        row("GET", "/admin/documents", ADMIN),
        row("GET", "/admin/identifiers", ADMIN),
        row("GET", "/admin/users", ADMIN),
        row("GET", "/admin/health", ADMIN),
        row("GET", "/admin/usage", ADMIN),
        row("GET", "/admin/usage/charts/{period}/{chart}", ADMIN),
        row("GET", "/audit", AUDITOR),
        row("POST", "/api/ask", CHAT),
        row("GET", "/api/conversations", CHAT),
        row("GET", "/api/conversations/{id}", NOBODY),
        row("POST", "/api/messages/{id}/feedback", NOBODY),
        row("GET", "/api/passages/{id}", NOBODY),
        row("GET", "/api/documents", ADMIN),
        row("GET", "/api/documents/{id}", ADMIN),
        row("DELETE", "/api/documents/{id}", ADMIN),
        row("GET", "/api/documents/{id}/original", NOBODY),
        row("POST", "/api/uploads", ADMIN),
        row("GET", "/api/uploads", ADMIN),
        row("GET", "/api/uploads/{id}", ADMIN),
        row("GET", "/api/identifiers/export", ADMIN),
        row("POST", "/api/identifiers/policy", ADMIN),
        row("GET", "/api/users", ADMIN),
        row("POST", "/api/users", ADMIN),
        row("POST", "/api/users/{id}", ADMIN),
        row("POST", "/api/grants", ADMIN),
        row("DELETE", "/api/grants/{id}", ADMIN),
        row("GET", "/api/health", ADMIN),
        row("GET", "/api/usage", ADMIN),
        row("GET", "/api/tokens", ADMIN),
        row("POST", "/api/tokens", ADMIN),
        row("DELETE", "/api/tokens/{id}", ADMIN),
        row("GET", "/api/audit", AUDITOR),
        row("GET", "/api/audit/export", AUDITOR),
        row("GET", "/api/audit/verify", AUDITOR),
    ]
}

/// The grid must name every route the router registers, so a route added
/// later without a row here fails this test instead of going unchecked.
fn assert_grid_covers_every_route(grid: &[GridRow]) {
    let source =
        std::fs::read_to_string(crate::common::repo_root().join("src/web/mod.rs")).unwrap();
    let mut registered = Vec::new();
    for part in source.split(".route(").skip(1) {
        let path = part.split('"').nth(1).unwrap();
        let method = ["get", "post", "delete", "put", "patch"]
            .into_iter()
            .find(|m| part.contains(&format!("web::{m}()")))
            .unwrap_or_else(|| panic!("method of {path}"));
        registered.push((method.to_uppercase(), path.to_string()));
    }
    assert!(registered.len() > 30, "routes parsed: {registered:?}");
    for (method, path) in &registered {
        assert!(
            grid.iter()
                .any(|r| r.method == method && r.template == path),
            "route {method} {path} has no row in the authorization grid"
        );
    }
}

#[test]
fn web_appliance_resists_the_attacks_in_the_issue() {
    let (tmp, dir, server) = seeded_server();
    let db = Connection::open(dir.join("enclave.sqlite")).unwrap();
    let secret_doc = ids(
        &db,
        "SELECT d.id FROM documents d JOIN collections c ON c.id = d.collection_id WHERE c.name = 'secret'",
    )[0];
    let secret_chunk = ids(
        &db,
        &format!("SELECT id FROM chunks WHERE document_id = {secret_doc}"),
    )[0];
    let demo_chunk = ids(
        &db,
        &format!("SELECT id FROM chunks WHERE document_id != {secret_doc} LIMIT 1"),
    )[0];

    // --- headers on pages, API responses and errors -----------------------------------
    let mut anon = server.client();
    for path in ["/login", "/static/app.js", "/api/me", "/nowhere"] {
        let r = anon.get(path);
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("CSP on {path}"));
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(
            !csp.contains("http"),
            "no third-party origin in the CSP: {csp}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert!(
            r.header("strict-transport-security")
                .is_some_and(|h| h.contains("max-age=")),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
    assert_eq!(anon.get("/login").header("cache-control"), Some("no-store"));
    assert_eq!(
        anon.get("/chat").status,
        303,
        "no session: redirect to login"
    );
    assert_eq!(anon.get("/api/conversations").status, 401);

    // --- login, cookie rules -----------------------------------------------------------
    let mut bob = server.client();
    let r = bob.login("bob", "pw-bob-secret-123");
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_string();
    for part in ["__Host-", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let mut dave = server.client();
    assert_eq!(dave.login("dave", "pw-dave-secret-123").status, 200);
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    let mut carol = server.client();
    assert_eq!(carol.login("carol", "pw-carol-secret-123").status, 200);

    // --- grants inside retrieval: bob asks about the secret collection -----------------------
    let (status, events) = bob.ask("What is the vault access code for the pharmacy safe?", None);
    assert_eq!(status, 200);
    let stream = serde_json::to_string(&events).unwrap();
    assert!(
        !stream.contains(SECRET),
        "a passage from an ungranted collection leaked: {stream}"
    );
    assert!(
        !stream.contains(&format!("\"chunk_id\":{secret_chunk}")),
        "{stream}"
    );
    // Dave (granted through his group) gets a grounded answer with citations.
    let (status, events) = dave.ask("How many days of annual leave do staff get?", None);
    assert_eq!(status, 200);
    let done = &events
        .iter()
        .find(|(e, _)| e == "done")
        .expect("done event")
        .1["answer"];
    assert_eq!(done["status"], "answered", "{done}");
    assert!(!done["citations"].as_array().unwrap().is_empty(), "{done}");
    let dave_conv = events.iter().find(|(e, _)| e == "meta").unwrap().1["conversation_id"]
        .as_i64()
        .unwrap();
    let dave_msg = events.iter().find(|(e, _)| e == "meta").unwrap().1["message_id"]
        .as_i64()
        .unwrap();
    let cited = done["citations"][0]["chunk_id"].as_i64().unwrap();
    let r = dave.get(&format!("/passages/{cited}"));
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<mark id=\"highlight\">"),
        "passage highlighted"
    );
    // Not covered: said so, model not called.
    let (_, events) = dave.ask("What is the boiling point of mercury on Mars?", None);
    let done = &events.iter().find(|(e, _)| e == "done").unwrap().1["answer"];
    assert_eq!(done["status"], "not_covered");
    // Auditor: cannot chat.
    assert_eq!(carol.ask("How many days of annual leave?", None).0, 403);

    // --- the grid: every route, every role, other people's objects -----------------------------
    let upload = alice.upload(
        "demo",
        &[("note.txt", b"Parking permits are renewed every April.")],
        true,
    );
    assert_eq!(upload.status, 202, "{}", upload.body);
    let upload_id = upload.json()["uploads"][0]["id"].as_i64().unwrap();
    let grant_id = ids(&db, "SELECT id FROM grants LIMIT 1")[0];
    let alice_id = ids(&db, "SELECT id FROM users WHERE username = 'alice'")[0];
    let grid = route_grid(
        secret_doc,
        secret_chunk,
        upload_id,
        grant_id,
        alice_id,
        dave_conv,
        dave_msg,
    );
    assert_grid_covers_every_route(&grid);
    for (name, client) in [
        ("bob", &mut bob),
        ("alice", &mut alice),
        ("carol", &mut carol),
    ] {
        for row in grid.iter().filter(|r| !r.open_to.contains(&name)) {
            let r = match row.method {
                "GET" => client.get(&row.path),
                "DELETE" => client.delete(&row.path, true),
                _ => client.post_json(&row.path, &serde_json::json!({"rating": 1, "question": "What is the vault access code?", "username": "x", "role": "admin", "collection": "secret", "user": name, "disabled": true}), true),
            };
            assert!(
                r.status == 403 || r.status == 404,
                "{name} got {} on {} {}: {}",
                r.status,
                row.method,
                row.path,
                r.body
            );
            assert!(
                !r.body.contains(SECRET),
                "{} leaked the secret to {name}",
                row.path
            );
        }
    }
    // Someone else's conversation is not continued either.
    let (status, _) = bob.ask("How many days of annual leave?", Some(dave_conv));
    assert_eq!(status, 404);
    // The admin's own view works (the grid is not failing for everyone).
    assert_eq!(alice.get(&format!("/api/uploads/{upload_id}")).status, 200);
    assert_eq!(
        dave.get(&format!("/api/conversations/{dave_conv}")).status,
        200
    );
    assert_eq!(bob.get(&format!("/api/passages/{demo_chunk}")).status, 200);
    // Nothing changed: bob is still staff, alice still enabled, the secret still there.
    assert_eq!(
        ids(
            &db,
            "SELECT count(*) FROM users WHERE username = 'bob' AND role = 'staff'"
        )[0],
        1
    );
    assert_eq!(
        ids(&db, "SELECT disabled FROM users WHERE username = 'alice'")[0],
        0
    );
    assert_eq!(
        ids(
            &db,
            &format!("SELECT count(*) FROM documents WHERE id = {secret_doc}")
        )[0],
        1
    );
    assert_eq!(
        ids(
            &db,
            &format!("SELECT count(*) FROM grants WHERE id = {grant_id}")
        )[0],
        1
    );
    assert_eq!(
        ids(&db, "SELECT count(*) FROM feedback")[0],
        0,
        "nobody rated dave's answer"
    );

    // --- CSRF: state-changing calls without the token are refused --------------------------------
    let r = bob.post_json(
        &format!("/api/messages/{dave_msg}/feedback"),
        &serde_json::json!({"rating": 1}),
        false,
    );
    assert_eq!(r.status, 403);
    let r = alice.delete(&format!("/api/documents/{secret_doc}"), false);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        ids(
            &db,
            &format!("SELECT count(*) FROM documents WHERE id = {secret_doc}")
        )[0],
        1
    );
    assert_eq!(
        alice.upload("demo", &[("x.txt", b"text")], false).status,
        403
    );
    let r = bob.post_json(
        "/api/ask",
        &serde_json::json!({"question": "annual leave"}),
        false,
    );
    assert_eq!(r.status, 403);
    let r = bob.post_json("/api/logout", &serde_json::json!({}), false);
    assert_eq!(r.status, 403);
    // A login from another origin is refused.
    let mut evil = server.client();
    let r = evil.send(
        "POST",
        "/api/login",
        "application/x-www-form-urlencoded",
        b"username=bob&password=pw-bob-secret-123".to_vec(),
        false,
    );
    assert!(
        r.status >= 400,
        "form-encoded login must not work: {}",
        r.status
    );

    // --- uploads: type by magic bytes, size limit, hostile names escaped --------------------------
    let xss_name = "<img src=x onerror=alert(1)>.txt";
    let r = alice.upload(
        "demo",
        &[
            (
                xss_name,
                b"<script>alert('doc')</script> Visitors sign in at reception before 9am.",
            ),
            (
                "photo.pdf",
                b"GIF89a\x01\x00\x01\x00 an image type we do not read",
            ),
            // A type OCR reads, but broken: queued, then refused by the worker.
            (
                "scan.pdf",
                b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake image",
            ),
        ],
        true,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let ups = r.json()["uploads"].as_array().unwrap().clone();
    assert_eq!(ups[1]["state"], "rejected", "{ups:?}");
    assert!(
        ups[1]["detail"].as_str().unwrap().contains("GIF"),
        "{ups:?}"
    );
    let broken = alice.wait_upload(ups[2]["id"].as_i64().unwrap());
    assert_eq!(broken["state"], "rejected", "{broken}");
    assert!(
        broken["detail"].as_str().unwrap().contains("PNG"),
        "{broken}"
    );
    let done = alice.wait_upload(ups[0]["id"].as_i64().unwrap());
    assert_eq!(done["state"], "done", "{done}");
    let page = alice.get("/admin/documents");
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("<img src=x"),
        "file name rendered as HTML"
    );
    assert!(
        page.body.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "file name escaped"
    );

    // --- deletion with a receipt, cached answers erased -----------------------------------------------
    let doc_id = done["document_id"].as_i64().unwrap();
    let r = alice.delete(&format!("/api/documents/{doc_id}"), true);
    assert_eq!(r.status, 200, "{}", r.body);
    let receipt = r.json();
    assert_eq!(receipt["vectors_remaining"], 0);
    assert_eq!(receipt["bm25_entries_remaining"], 0);
    assert_eq!(receipt["original_removed"], true);

    // --- login throttling -----------------------------------------------------------------------------
    let mut attacker = server.client();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(attacker.login("dave", "wrong-password").status);
    }
    assert!(statuses[..5].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[5..].iter().all(|&s| s == 429), "{statuses:?}");
    let r = attacker.login("dave", "pw-dave-secret-123");
    assert_eq!(
        r.status, 429,
        "even the right password waits while throttled"
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&wait), "short lock-out: {wait}");
    // Another account from the same address is not locked out.
    assert_eq!(
        server.client().login("carol", "pw-carol-secret-123").status,
        200
    );

    // --- sessions: expiry, logout, disabling ------------------------------------------------------------
    db.execute("UPDATE sessions SET last_seen = last_seen - 16 * 60 WHERE user_id = (SELECT id FROM users WHERE username = 'dave')", []).unwrap();
    let r = dave.get("/chat");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?expired=1"));
    assert_eq!(dave.get("/api/conversations").status, 401);
    let mut bob2 = server.client();
    bob2.login("bob", "pw-bob-secret-123");
    db.execute("UPDATE sessions SET created_at = created_at - 13 * 3600 WHERE user_id = (SELECT id FROM users WHERE username = 'bob')", []).unwrap();
    assert_eq!(bob2.get("/api/me").status, 401, "absolute limit");
    let mut bob3 = server.client();
    assert_eq!(bob3.login("bob", "pw-bob-secret-123").status, 200);
    let stale = bob3.cookie.clone();
    assert_eq!(
        bob3.post_json("/api/logout", &serde_json::json!({}), true)
            .status,
        200
    );
    bob3.cookie = stale;
    assert_eq!(
        bob3.get("/api/me").status,
        401,
        "logout ends the session server-side"
    );
    let mut bob4 = server.client();
    assert_eq!(bob4.login("bob", "pw-bob-secret-123").status, 200);
    let bob_id = ids(&db, "SELECT id FROM users WHERE username = 'bob'")[0];
    let r = alice.post_json(
        &format!("/api/users/{bob_id}"),
        &serde_json::json!({"disabled": true}),
        true,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        bob4.get("/api/me").status,
        401,
        "disabling ends sessions at once"
    );
    assert_eq!(
        server.client().login("bob", "pw-bob-secret-123").status,
        401
    );

    // A password reset by an admin returns the new password once and ends sessions.
    let carol_id = ids(&db, "SELECT id FROM users WHERE username = 'carol'")[0];
    let r = alice.post_json(
        &format!("/api/users/{carol_id}"),
        &serde_json::json!({"reset_password": true}),
        true,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let new_password = r.json()["password"].as_str().unwrap().to_string();
    assert_eq!(
        carol.get("/api/me").status,
        401,
        "a reset ends the sessions"
    );
    assert_eq!(carol.login("carol", "pw-carol-secret-123").status, 401);
    let r = carol.login("carol", &new_password);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user"]["must_change_password"], true, "{}", r.body);

    // --- a one-time password opens nothing but the password page ---------------------------------
    let r = carol.get("/api/audit/verify");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("choose your own password"), "{}", r.body);
    for page in ["/", "/audit"] {
        let r = carol.get(page);
        assert_eq!(r.status, 303, "{page}");
        assert_eq!(r.header("location"), Some("/account/password"), "{page}");
    }
    let r = carol.get("/account/password");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("one-time password"), "{}", r.body);
    let change = |current: &str, new: &str| serde_json::json!({ "current_password": current, "new_password": new });
    let r = carol.post_json(
        "/api/password",
        &change(&new_password, "carol-own-pass-1"),
        false,
    );
    assert_eq!(r.status, 403, "CSRF applies here too: {}", r.body);
    let r = carol.post_json(
        "/api/password",
        &change("not-my-password", "carol-own-pass-1"),
        true,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = carol.post_json("/api/password", &change(&new_password, "short"), true);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = carol.post_json("/api/password", &change(&new_password, &new_password), true);
    assert_eq!(r.status, 400, "{}", r.body);
    let mut carol_elsewhere = server.client();
    assert_eq!(carol_elsewhere.login("carol", &new_password).status, 200);
    let r = carol.post_json(
        "/api/password",
        &change(&new_password, "carol-own-pass-1"),
        true,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["must_change_password"], false);
    carol.csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(
        carol.get("/api/audit/verify").status,
        200,
        "a fresh session, now open"
    );
    assert_eq!(
        carol_elsewhere.get("/api/me").status,
        401,
        "the other sessions ended"
    );
    assert_eq!(server.client().login("carol", &new_password).status, 401);
    assert_eq!(
        server.client().login("carol", "carol-own-pass-1").status,
        200
    );

    // --- the audit trail of all this verifies, and records what happened ---------------------------------
    let v = carol.get("/api/audit/verify").json();
    assert!(v["failure"].is_null(), "{v}");
    let rows = carol.get("/api/audit?action=login").json();
    let outcomes: Vec<&str> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    for o in ["ok", "failed", "throttled"] {
        assert!(outcomes.contains(&o), "login {o} audited: {outcomes:?}");
    }
    for action in [
        "question",
        "answer",
        "passage.view",
        "document.upload",
        "document.reject",
        "document.delete",
        "user.disable",
        "user.password",
        "grant.add",
    ] {
        let r = carol.get(&format!("/api/audit?action={action}")).json();
        assert!(
            !r["rows"].as_array().unwrap().is_empty(),
            "{action} audited"
        );
    }
    // Reading the log through the API is in the log too.
    let views = carol.get("/api/audit?action=audit.view").json();
    assert!(
        views["rows"].as_array().unwrap().iter().any(|r| r["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"via\":\"api\"")),
        "{views}"
    );
    let denied = carol.get("/api/audit?action=passage.view").json();
    assert!(
        denied["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "denied"),
        "bob's attempt on the secret passage is in the log"
    );
    let export = carol.get("/api/audit/export?format=jsonl");
    assert_eq!(export.status, 200);
    let file = tmp.path().join("audit.jsonl");
    std::fs::write(&file, &export.body).unwrap();
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
}

#[test]
fn overload_is_refused_with_retry_after_not_queued_without_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    let config = tmp.path().join("small-queue.toml");
    // One answer at a time and one waiting: a third at once must be refused
    // (with more slots, continuous batching can absorb all four in time).
    std::fs::write(&config, "[llm]\nqueue_capacity = 1\nparallel = 1\n").unwrap();
    let server = Server::start(&dir, &[("ENCLAVE_CONFIG", config.to_str().unwrap())]);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let threads: Vec<_> = ["bob", "bob", "bob", "dave", "dave", "dave"]
        .into_iter()
        .map(|user| {
            let (base, barrier) = (server.base.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = crate::common::server::Client::new(&base);
                assert_eq!(c.login(user, &format!("pw-{user}-secret-123")).status, 200);
                barrier.wait();
                let r = c.post_json(
                    "/api/ask",
                    &serde_json::json!({"question": "How many days of annual leave do staff get?"}),
                    true,
                );
                (r.status, r.header("retry-after").map(str::to_string))
            })
        })
        .collect();
    let results: Vec<(u16, Option<String>)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let count = |s: u16| results.iter().filter(|(x, _)| *x == s).count();
    assert!(
        count(429) >= 1,
        "a third stream per user is refused: {results:?}"
    );
    assert!(count(503) >= 1, "a full model queue refuses: {results:?}");
    assert!(count(200) >= 1, "{results:?}");
    assert_eq!(
        count(200) + count(429) + count(503),
        results.len(),
        "{results:?}"
    );
    for (status, retry) in &results {
        if *status != 200 {
            let secs: u64 = retry
                .as_deref()
                .expect("Retry-After on refusals")
                .parse()
                .unwrap();
            assert!(secs >= 1);
        }
    }
    // Refused questions are kept in the history as failed, not left pending.
    let db = Connection::open(dir.join("enclave.sqlite")).unwrap();
    let pending = ids(
        &db,
        "SELECT count(*) FROM messages WHERE status = 'pending'",
    )[0];
    let busy = ids(
        &db,
        "SELECT count(*) FROM audit_log WHERE action = 'answer' AND outcome = 'refused_busy'",
    )[0];
    assert_eq!(busy as usize, count(503));
    assert!(
        pending <= count(200) as i64,
        "only streams still running are pending"
    );
}

/// An answer stays readable only while its reader may still read the
/// documents it came from: revoking the grant withholds it from the
/// conversation API and the chat page alike.
#[test]
fn a_revoked_grant_withholds_answers_already_given() {
    let (_tmp, dir, server) = seeded_server();
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "pw-bob-secret-123").status, 200);
    let (status, events) = bob.ask(
        "How many days of annual leave do full-time staff get?",
        None,
    );
    assert_eq!(status, 200);
    let meta = &events.iter().find(|(e, _)| e == "meta").unwrap().1;
    let conv = meta["conversation_id"].as_i64().unwrap();
    let quoted = "25 days of annual leave";
    let before = bob.get(&format!("/api/conversations/{conv}"));
    assert!(before.body.contains(quoted), "{}", before.body);

    let db = Connection::open(dir.join("enclave.sqlite")).unwrap();
    // While granted, the original downloads whole (streamed from disk).
    let handbook = ids(
        &db,
        "SELECT id FROM documents WHERE source_name LIKE '%staff-handbook.md'",
    )[0];
    let download = bob.get(&format!("/api/documents/{handbook}/original"));
    assert_eq!(download.status, 200);
    let expected = std::fs::read_to_string(
        crate::common::repo_root().join("packaging/demo/documents/staff-handbook.md"),
    )
    .unwrap();
    assert_eq!(download.body, expected);
    assert_eq!(
        download.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    let grant = ids(
        &db,
        "SELECT g.id FROM grants g JOIN users u ON u.id = g.user_id WHERE u.username = 'bob'",
    )[0];
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    assert_eq!(
        alice.delete(&format!("/api/grants/{grant}"), true).status,
        200
    );

    let after = bob.get(&format!("/api/conversations/{conv}"));
    assert_eq!(after.status, 200);
    let v: serde_json::Value = serde_json::from_str(&after.body).unwrap();
    let m = &v["messages"][0];
    assert_eq!(m["status"], "withheld", "{m}");
    assert_eq!(m["answer"], enclave::web::chat::WITHHELD);
    assert!(!after.body.contains(quoted), "{}", after.body);
    assert!(!after.body.contains("Staff Handbook"), "{}", after.body);
    let page = bob.get(&format!("/chat/{conv}"));
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains(quoted),
        "the chat page shows it: {}",
        page.body
    );
    assert!(page.body.contains("no longer have access"), "{}", page.body);
}

/// Forty wrong logins for one account at once: the throttle counts each
/// attempt before its password is hashed, so no more than the allowed five
/// are ever checked (the rest are refused without hashing), and the audit
/// log gets one row per failure and a single row for all the refusals.
#[test]
fn a_concurrent_login_flood_is_throttled_before_hashing_and_logged_in_aggregate() {
    let (_tmp, dir, server) = seeded_server();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let (base, barrier) = (server.base.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = crate::common::server::Client::new(&base);
                barrier.wait();
                c.login("bob", "wrong-password").status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    assert!(
        count(401) <= 5,
        "at most five passwords checked: {statuses:?}"
    );
    assert_eq!(count(401) + count(429), 40, "{statuses:?}");
    // Another account is unaffected.
    assert_eq!(
        server.client().login("dave", "pw-dave-secret-123").status,
        200
    );
    drop(server);
    let db = Connection::open(dir.join("enclave.sqlite")).unwrap();
    let rows = |outcome: &str| {
        ids(
            &db,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'login' AND target = 'user:bob' AND outcome = '{outcome}'"
            ),
        )[0]
    };
    assert_eq!(rows("failed"), count(401) as i64);
    assert_eq!(rows("throttled"), 1, "one row for {} refusals", count(429));
}

/// Refusals of a signed-in user are on record: a role's 403, a missing CSRF
/// token's 403, and a 404 on someone else's conversation, each once per
/// route and window however often it is repeated.
#[test]
fn refused_requests_are_audited_once_per_route_and_window() {
    let (_tmp, dir, server) = seeded_server();
    let mut dave = server.client();
    assert_eq!(dave.login("dave", "pw-dave-secret-123").status, 200);
    let (_, events) = dave.ask(
        "How many days of annual leave do full-time staff get?",
        None,
    );
    let conv = events.iter().find(|(e, _)| e == "meta").unwrap().1["conversation_id"]
        .as_i64()
        .unwrap();
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "pw-bob-secret-123").status, 200);
    for _ in 0..30 {
        assert_eq!(bob.get("/api/users").status, 403);
    }
    for _ in 0..5 {
        assert_eq!(bob.get(&format!("/api/conversations/{conv}")).status, 404);
        let no_token = bob.post_json("/api/ask", &serde_json::json!({"question": "x"}), false);
        assert_eq!(no_token.status, 403);
    }
    drop(server);
    let db = Connection::open(dir.join("enclave.sqlite")).unwrap();
    let rows = |target: &str| {
        ids(
            &db,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'access.denied' AND actor = 'bob' AND target = '{target}'"
            ),
        )[0]
    };
    assert_eq!(rows("GET /api/users"), 1);
    assert_eq!(rows("GET /api/conversations/{id}"), 1);
    assert_eq!(rows("POST /api/ask"), 1);
}

/// A password an admin types for a new user is one-time: the admin cannot
/// go on using the account. Only an account created as a service account
/// keeps it, and the audit row says which.
#[test]
fn a_password_typed_by_an_admin_must_be_replaced_unless_it_is_a_service_account() {
    let (_tmp, dir, server) = seeded_server();
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    for (name, service) in [("gina", false), ("reporting", true)] {
        let r = alice.post_json(
            "/api/users",
            &serde_json::json!({
                "username": name, "role": "staff", "password": "typed-by-alice-42", "service_account": service,
            }),
            true,
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let mut gina = server.client();
    let r = gina.login("gina", "typed-by-alice-42");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user"]["must_change_password"], true);
    assert_eq!(
        gina.get("/api/conversations").status,
        403,
        "until she chooses her own"
    );
    let mut service = server.client();
    let r = service.login("reporting", "typed-by-alice-42");
    assert_eq!(r.json()["user"]["must_change_password"], false);
    assert_eq!(service.get("/api/conversations").status, 200);
    drop(server);
    let db = Connection::open(dir.join("enclave.sqlite")).unwrap();
    let detail = |user: &str| -> String {
        db.query_row(
            "SELECT detail FROM audit_log WHERE action = 'user.add' AND target = ?1",
            [format!("user:{user}")],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(
        detail("gina").contains("\"service_account\":false"),
        "{}",
        detail("gina")
    );
    assert!(detail("reporting").contains("\"service_account\":true"));
}
