//! `enclave pii scan`: a folder swept for exposed identifiers without
//! ingesting anything; findings masked, exit status 1 when anything is found.

use serde_json::Value;

use crate::common::enclave;
use crate::common::server::{Server, seeded_server};

#[test]
fn pii_scan_reports_masked_findings_and_exits_one() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(share.join("letters")).unwrap();
    std::fs::write(
        share.join("letters/referral.txt"),
        "Referral letter\n\nPatient: John Smith, DOB: 14/03/1962, NHS number 943 476 5919.\n\
         SSN 123-45-6789. Mail john.smith@example.org.\n\
         Order number 4111 1111 1111 1111 shipped; ISBN 978-0-306-40615-7.\n",
    )
    .unwrap();
    std::fs::write(
        share.join("notes.md"),
        "# Notes\n\nUpgrade to version 1.2.3.4 on Monday.\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    let out = enclave(&data)
        .args(["pii", "scan", "--json"])
        .arg(&share)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for secret in [
        "123-45-6789",
        "943 476 5919",
        "john.smith@example.org",
        "14/03/1962",
    ] {
        assert!(
            !stdout.contains(secret),
            "{secret} printed in the clear: {stdout}"
        );
    }
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let letter = lines
        .iter()
        .find(|l| {
            l["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("referral.txt"))
        })
        .expect("a line for the letter");
    let mut kinds: Vec<&str> = letter["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["date_of_birth", "email", "nhs_number", "ssn"],
        "{letter}"
    );
    let ssn = letter["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "ssn")
        .unwrap();
    assert_eq!(ssn["masked"], "•••-••-6789");
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["files"], 2);
    assert_eq!(summary["files_with_findings"], 1);
    assert_eq!(summary["findings"], 4);

    // A folder with nothing sensitive: exit 0.
    let clean = enclave(&data)
        .args(["pii", "scan"])
        .arg(share.join("notes.md"))
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("0 findings"));
}

const REFERRAL: &str = "Cardiology referral\n\n\
Patient: John Carter. SSN: 123-45-6789. NHS number 943 476 5919.\n\
Date of birth: 14/03/1962. Phone +44 20 7946 0958. E-mail john.carter@example.org.\n\
Card on file 4111 1111 1111 1111.\n\n\
John Carter's cardiology review is booked on ward 7B with Dr Okafor on the twelfth of May.\n";

/// Every identifier in [`REFERRAL`], as written.
const IDENTIFIERS: &[&str] = &[
    "123-45-6789",
    "943 476 5919",
    "14/03/1962",
    "7946 0958",
    "john.carter@example.org",
    "4111 1111 1111 1111",
];

fn assert_clean(what: &str, text: &str) {
    for id in IDENTIFIERS {
        assert!(!text.contains(id), "{what} holds {id}: {text}");
    }
}

/// Every file under `dir` but the stored originals, as bytes.
fn files_outside_originals(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !path.ends_with("originals") {
                files_outside_originals(&path, out);
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

fn ask_all(client: &mut crate::common::server::Client, question: &str) -> (String, Value) {
    let r = client.post_json(
        "/api/ask",
        &serde_json::json!({ "question": question }),
        true,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let events: Vec<Value> = r
        .body
        .split("\n\n")
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .collect();
    let find = |key: &str| {
        events
            .iter()
            .find(|v| v.get(key).is_some())
            .cloned()
            .unwrap_or_default()
    };
    let mut done = find("answer");
    done["conversation_id"] = find("conversation_id")["conversation_id"].clone();
    (r.body, done)
}

/// The `redact` policy end to end, then `report` and `reject` on the same
/// collection: identifiers never reach the BM25 index, the vectors, an
/// answer, a quote, the passage view, the stored question or the audit log,
/// while an admin can still download the original; a policy change
/// re-processes the documents; `reject` refuses with the finding report.
#[test]
fn redacted_identifiers_reach_no_index_answer_passage_or_audit_row() {
    let (_tmp, dir, server) = seeded_server();
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    for user in ["alice", "bob"] {
        let grant = serde_json::json!({"collection": "clinic", "user": user});
        assert_eq!(alice.post_json("/api/grants", &grant, true).status, 201);
    }
    let set = |alice: &mut crate::common::server::Client, policy: &str| {
        let body = serde_json::json!({"collection": "clinic", "policy": policy});
        let r = alice.post_json("/api/identifiers/policy", &body, true);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    set(&mut alice, "redact");
    // The file name holds an identifier too.
    let r = alice.upload(
        "clinic",
        &[("referral 123-45-6789.txt", REFERRAL.as_bytes())],
        true,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_clean("the upload's answer", &r.body);
    let upload = alice.wait_upload(r.json()["uploads"][0]["id"].as_i64().unwrap());
    assert_eq!(upload["state"], "done", "{upload}");
    let detail = upload["detail"].as_str().unwrap();
    assert!(
        detail.contains("sensitive identifiers") && detail.contains("(redacted)"),
        "{detail}"
    );
    let doc_id = upload["document_id"].as_i64().unwrap();

    // Staff ask: about the case, for the SSN, and with an SSN in the question.
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "pw-bob-secret-123").status, 200);
    let (body, done) = ask_all(
        &mut bob,
        "Which ward is John Carter's cardiology review on?",
    );
    assert_clean("the answer stream", &body);
    let cited = done["answer"]["citations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let source = cited
        .iter()
        .find(|s| s["document_id"] == doc_id)
        .unwrap_or_else(|| panic!("the referral is not among the sources: {done}"));
    let (body, _) = ask_all(&mut bob, "What is John Carter's social security number?");
    assert_clean("the answer stream", &body);
    let (body, asked) = ask_all(&mut bob, "Is 123-45-6789 the SSN of patient John Carter?");
    assert_clean("the answer stream", &body);

    // The passage view (JSON and page) shows placeholders.
    let chunk = source["chunk_id"].as_i64().unwrap();
    for path in [
        format!("/api/passages/{chunk}"),
        format!("/passages/{chunk}"),
    ] {
        let passage = bob.get(&path);
        assert_eq!(passage.status, 200);
        assert_clean(&path, &passage.body);
        assert!(passage.body.contains("[SSN]"), "{}", passage.body);
    }
    // The stored conversation has the question masked.
    let conv = asked["conversation_id"].as_i64().unwrap();
    let stored = bob.get(&format!("/api/conversations/{conv}"));
    assert_eq!(stored.status, 200);
    assert_clean("the stored conversation", &stored.body);
    assert!(stored.body.contains("Is [SSN] the SSN"), "{}", stored.body);
    // The original: admins only.
    assert_ne!(
        bob.get(&format!("/api/documents/{doc_id}/original")).status,
        200
    );
    let original = alice.get(&format!("/api/documents/{doc_id}/original"));
    assert_eq!(original.status, 200);
    assert!(original.body.contains("123-45-6789"));
    // The report: masked values, filters, CSV.
    let report = alice.get("/admin/identifiers?collection=clinic&kind=ssn");
    assert_eq!(report.status, 200);
    assert_clean("the report page", &report.body);
    assert!(report.body.contains("•••-••-6789"), "{}", report.body);
    let csv = alice.get("/api/identifiers/export?collection=clinic");
    assert_eq!(csv.status, 200);
    assert_clean("the CSV export", &csv.body);
    let kinds: Vec<&str> = csv
        .body
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(6).unwrap())
        .collect();
    for kind in [
        "ssn",
        "nhs_number",
        "date_of_birth",
        "phone",
        "email",
        "payment_card",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    // Nothing in the data dir but the original holds an identifier: not
    // the database (with its WAL), not the BM25 or vector index files.
    let mut files = Vec::new();
    files_outside_originals(&dir, &mut files);
    assert!(files.len() > 5);
    for (path, bytes) in &files {
        for id in IDENTIFIERS {
            assert!(
                !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                "{} holds {id}",
                path.display()
            );
        }
    }
    // The audit log: an auditor's export.
    let mut carol = server.client();
    assert_eq!(carol.login("carol", "pw-carol-secret-123").status, 200);
    let audit = carol.get("/api/audit/export?format=jsonl").body;
    assert_clean("the audit log", &audit);
    for action in [
        "\"pii.policy\"",
        "\"pii.report.view\"",
        "\"pii.report.export\"",
    ] {
        assert!(audit.contains(action), "no {action} row");
    }
    assert!(
        audit.contains("identifiers_masked"),
        "the question row says it was masked"
    );

    // The BM25 index, opened directly: no term of an identifier.
    drop(server);
    {
        let library = enclave::library::Library::open(&crate::common::config(&dir)).unwrap();
        let referral = library.store().chunk_ids_of(doc_id).unwrap();
        let hits = |query: &str| -> Vec<i64> {
            let (lexical, _, _) = library
                .candidates(query, None, enclave::index::Mode::Bm25)
                .unwrap();
            lexical.into_iter().map(|h| h.chunk_id).collect()
        };
        let found = hits("6789 5919 0958 1962 1111");
        assert!(found.iter().all(|c| !referral.contains(c)), "{found:?}");
        let found = hits("cardiology ward Okafor");
        assert!(found.iter().any(|c| referral.contains(c)), "{found:?}");
    }
    let server = Server::start(&dir, &[]);
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "pw-bob-secret-123").status, 200);
    let mut carol = server.client();
    assert_eq!(carol.login("carol", "pw-carol-secret-123").status, 200);

    // Back to `report`: the text is read again from the original.
    let changed = set(&mut alice, "report");
    assert_eq!(changed["reprocessed"]["rewritten"], 1, "{changed}");
    let (_, done) = ask_all(
        &mut bob,
        "Which ward is John Carter's cardiology review on?",
    );
    let chunk = done["answer"]["citations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["document_id"] == doc_id)
        .expect("the referral")["chunk_id"]
        .as_i64()
        .unwrap();
    assert!(
        bob.get(&format!("/api/passages/{chunk}"))
            .body
            .contains("123-45-6789")
    );

    // `reject`: the document goes, and uploading it again is refused with the report.
    let changed = set(&mut alice, "reject");
    assert_eq!(changed["reprocessed"]["removed"], 1, "{changed}");
    assert_eq!(alice.get(&format!("/api/documents/{doc_id}")).status, 404);
    let r = alice.upload("clinic", &[("referral.txt", REFERRAL.as_bytes())], true);
    let refused = alice.wait_upload(r.json()["uploads"][0]["id"].as_i64().unwrap());
    assert_eq!(refused["state"], "rejected", "{refused}");
    let reason = refused["detail"].as_str().unwrap();
    assert!(reason.contains("1 ssn (page 1: •••-••-6789)"), "{reason}");
    assert_clean("the refusal", reason);
    let audit = carol.get("/api/audit/export?format=jsonl").body;
    for action in ["\"pii.reject\"", "\"pii.reprocess\""] {
        assert!(audit.contains(action), "no {action} row");
    }
    assert_clean("the audit log", &audit);
}

/// An organisation's own identifier from `[[pii.custom]]`, with its check
/// digit, redacted at ingest and listed by `enclave pii findings`; a number
/// of the same shape that fails the check is left alone.
#[test]
fn custom_identifiers_from_the_config_are_found_and_redacted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("enclave.toml");
    std::fs::write(
        &config,
        "[pii]\ndefault_policy = \"redact\"\n\n[[pii.custom]]\nname = \"mrn\"\n\
         pattern = 'MRN[- ]?(\\d{7})'\nchecksum = \"mod11\"\ncues = [\"mrn\", \"medical record\"]\n",
    )
    .unwrap();
    let note = tmp.path().join("ward-note.txt");
    // 1234560 passes mod 11 (weights 7…2 over 123456 give 77, check digit 0);
    // 1234567 does not.
    std::fs::write(
        &note,
        "Ward note\n\nMRN 1234560 was moved to ward 4.\nMRN 1234567 is a typo in the old system.\n",
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        let mut cmd = enclave(&data);
        cmd.arg("--config").arg(&config).args(args);
        cmd
    };
    let out = crate::common::run_ok(with_config(&["ingest", "-c", "wards"]).arg(&note));
    assert!(out.contains("1 mrn (redacted)"), "{out}");
    let listed = crate::common::run_ok(&mut with_config(&["pii", "findings", "--json"]));
    let rows: Value = serde_json::from_str(&listed).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["kind"], "mrn");
    assert_eq!(
        rows[0]["masked"], "••••560",
        "at most half of a value is shown"
    );
    assert_eq!(rows[0]["collection"], "wards");
    let shown = crate::common::run_ok(&mut with_config(&["docs", "show", "1", "--text"]));
    assert!(shown.contains("MRN [MRN] was moved"), "{shown}");
    assert!(shown.contains("MRN 1234567 is a typo"), "{shown}");
    assert!(!shown.contains("1234560"), "{shown}");
}

/// `report` → `redact` on documents already indexed: the stored text is
/// rewritten in place (same document, new passages), the old BM25 terms go,
/// the findings now point at the placeholders, and `report` again restores
/// the text from the original.
#[test]
fn switching_to_redact_rewrites_indexed_documents_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let letter = tmp.path().join("letter.txt");
    std::fs::write(&letter, REFERRAL).unwrap();
    crate::common::run_ok(enclave(&data).args(["ingest", "-c", "clinic"]).arg(&letter));
    let bm25 = |query: &str| {
        crate::common::run_ok(enclave(&data).args(["search", "--mode", "bm25", query]))
    };
    assert!(
        bm25("6789").contains("letter"),
        "indexed as is under report"
    );
    let out = crate::common::run_ok(enclave(&data).args(["pii", "policy", "clinic", "redact"]));
    assert!(out.contains("1 rewritten"), "{out}");
    let shown = crate::common::run_ok(enclave(&data).args(["docs", "show", "1", "--text"]));
    assert_clean("the stored text", &shown);
    assert!(shown.contains("SSN: [SSN]. NHS number [NHS]."), "{shown}");
    assert!(
        shown.contains("1 ssn (redacted)"),
        "the warning follows: {shown}"
    );
    assert!(!bm25("6789").contains("letter"), "the old terms are gone");
    {
        let library = enclave::library::Library::open(&crate::common::config(&data)).unwrap();
        assert_eq!(
            library.bm25_deleted_entries().unwrap(),
            0,
            "the replaced entries are purged from the segment files"
        );
    }
    assert!(bm25("Okafor cardiology").contains("letter"));
    let findings = crate::common::run_ok(enclave(&data).args(["pii", "findings", "--json"]));
    let rows: Value = serde_json::from_str(&findings).unwrap();
    let ssn = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "ssn")
        .unwrap();
    let (a, b) = (
        ssn["char_start"].as_u64().unwrap() as usize,
        ssn["char_end"].as_u64().unwrap() as usize,
    );
    let page: String = shown
        .lines()
        .skip_while(|l| !l.contains("Cardiology referral"))
        .collect::<Vec<_>>()
        .join("\n");
    let chars: Vec<char> = page.chars().collect();
    assert_eq!(chars[a..b].iter().collect::<String>(), "[SSN]", "{page}");
    let out = crate::common::run_ok(enclave(&data).args(["pii", "policy", "clinic", "report"]));
    assert!(out.contains("1 rewritten"), "{out}");
    assert!(
        bm25("6789").contains("letter"),
        "restored from the original"
    );
    let shown = crate::common::run_ok(enclave(&data).args(["docs", "show", "1"]));
    assert!(
        shown.contains("1 ssn (reported)") && !shown.contains("(redacted)"),
        "{shown}"
    );
}
