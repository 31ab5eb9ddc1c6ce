//! The audit log detects tampering: an edited, deleted, reordered, forged or
//! truncated row makes verification fail at that row, in the live database
//! and in CSV and JSONL exports (also through `enclave audit verify`).

use std::io::BufReader;
use std::process::Command;

use enclave::audit::{self, Actor, AuditKey, Entry, export::Format};
use enclave::store::audit as log;
use rusqlite::Connection;

const EVERY: u64 = 16;

/// A database with the schema and `n` audit rows (checkpoints every 16, and
/// the head signed).
fn log_with_rows(dir: &std::path::Path, n: usize) -> (Connection, AuditKey) {
    let store = enclave::store::Store::open(&dir.join("enclave.sqlite")).unwrap();
    drop(store); // schema applied
    let mut conn = Connection::open(dir.join("enclave.sqlite")).unwrap();
    let key = AuditKey::load_or_create(dir).unwrap();
    let actor = Actor {
        name: "alice".into(),
        address: "10.0.0.7".into(),
    };
    for i in 0..n {
        let entry = Entry::new(&actor, "question", format!("message:{i}"))
            .documents([i as i64 % 5])
            .chunks([i as i64, i as i64 + 1])
            .detail(serde_json::json!({ "question": format!("question {i}, with \"quotes\", commas\nand =formula") }));
        log::append_now(&mut conn, &key, EVERY, &entry).unwrap();
    }
    log::checkpoint_head(&mut conn, &key).unwrap();
    (conn, key)
}

/// What `enclave audit verify --db` checks on a stopped server's log.
fn rules(key: &AuditKey) -> audit::verify::Rules {
    audit::verify::Rules {
        pinned_keys: vec![key.public_hex()],
        head_key: None,
        checkpoint_every: Some(EVERY),
        allow_open_tail: false,
        witness: None,
    }
}

fn verify_db(conn: &Connection, key: &AuditKey) -> audit::verify::Report {
    log::verify(conn, rules(key)).unwrap()
}

fn failed_row(report: &audit::verify::Report) -> i64 {
    report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("verification should fail: {report:?}"))
        .row
}

#[test]
fn intact_log_verifies_with_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    let report = verify_db(&conn, &key);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.rows, 40);
    assert_eq!(report.checkpoints, 3, "rows 16, 32 and the head (40)");
    assert_eq!(report.unsigned_tail, 0);
    // Another key does not verify it.
    let other = tempfile::tempdir().unwrap();
    let stranger = AuditKey::load_or_create(other.path()).unwrap();
    let r = log::verify(&conn, rules(&stranger)).unwrap();
    assert!(!r.ok());
}

#[test]
fn edited_row_fails_at_that_row() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 23", [])
        .unwrap();
    let report = verify_db(&conn, &key);
    assert_eq!(failed_row(&report), 23);
    assert!(report.failure.unwrap().reason.contains("edited"));
}

#[test]
fn deleted_row_fails_at_that_row() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    conn.execute("DELETE FROM audit_log WHERE id = 9", [])
        .unwrap();
    assert_eq!(failed_row(&verify_db(&conn, &key)), 9);
}

#[test]
fn reordered_rows_fail_at_the_first_moved_row() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    // Swap the contents of rows 5 and 6 (ids stay in place).
    conn.execute_batch(
        "UPDATE audit_log SET id = -5 WHERE id = 5;
         UPDATE audit_log SET id = 5 WHERE id = 6;
         UPDATE audit_log SET id = 6 WHERE id = -5;",
    )
    .unwrap();
    assert_eq!(failed_row(&verify_db(&conn, &key)), 5);
}

#[test]
fn forged_row_with_recomputed_chain_fails_at_the_signed_range() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    // The forger rewrites row 20 and recomputes every later hash (they know
    // the algorithm, not the signing key).
    let rows: Vec<audit::Row> = {
        let mut v = Vec::new();
        log::for_each_row(&conn, |r| {
            v.push(r);
            Ok(())
        })
        .unwrap();
        v
    };
    let mut prev = rows[18].hash.clone();
    for mut row in rows.into_iter().skip(19) {
        if row.id == 20 {
            row.actor = "nobody".into();
            row.action = "login".into();
        }
        row.prev_hash = prev.clone();
        row.hash = row.compute_hash();
        conn.execute(
            "UPDATE audit_log SET actor = ?2, action = ?3, prev_hash = ?4, hash = ?5 WHERE id = ?1",
            rusqlite::params![
                row.id,
                row.actor,
                row.action,
                format!("tmp{}", row.id),
                row.hash
            ],
        )
        .unwrap();
        prev = row.hash.clone();
    }
    // prev_hash is UNIQUE, hence the two passes.
    let mut prev = conn
        .query_row("SELECT hash FROM audit_log WHERE id = 19", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap();
    for id in 20..=40 {
        conn.execute(
            "UPDATE audit_log SET prev_hash = ?2 WHERE id = ?1",
            rusqlite::params![id, prev],
        )
        .unwrap();
        prev = conn
            .query_row("SELECT hash FROM audit_log WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
    }
    let report = verify_db(&conn, &key);
    let row = failed_row(&report);
    assert!(
        (17..=20).contains(&row),
        "names the first unsigned row of the forged range: {report:?}"
    );
    assert!(report.failure.unwrap().reason.contains("forged"));
}

#[test]
fn truncated_log_fails_at_the_first_missing_row() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    conn.execute("DELETE FROM audit_log WHERE id > 35", [])
        .unwrap();
    let report = verify_db(&conn, &key);
    assert_eq!(failed_row(&report), 36);
    assert!(report.failure.unwrap().reason.contains("truncated"));
}

fn export(conn: &mut Connection, key: &AuditKey, format: Format) -> String {
    let mut out = Vec::new();
    log::export(conn, key, format, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn verify_text(text: &str, key: &AuditKey) -> audit::verify::Report {
    let mut reader = BufReader::new(text.as_bytes());
    audit::export::verify_file(&mut reader, rules(key)).unwrap()
}

/// Line index of row `id` in an export (JSONL: one line per record; CSV: the
/// header first; no cell here spans lines except row details, which we avoid
/// by looking the row up by its leading cells).
fn line_of(lines: &[&str], id: i64, format: Format) -> usize {
    let prefix = match format {
        Format::Jsonl => format!("\"id\":{id},"),
        Format::Csv => format!("row,{id},"),
    };
    lines
        .iter()
        .position(|l| match format {
            Format::Jsonl => l.contains("\"kind\":\"row\"") && l.contains(&prefix),
            Format::Csv => l.starts_with(&prefix),
        })
        .unwrap()
}

#[test]
fn exports_verify_and_detect_tampering_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, key) = log_with_rows(dir.path(), 40);
    for format in [Format::Jsonl, Format::Csv] {
        let text = export(&mut conn, &key, format);
        let report = verify_text(&text, &key);
        assert!(report.ok(), "{format:?}: {report:?}");
        assert_eq!(report.rows, 40);
        if format == Format::Csv {
            assert!(
                text.contains("'=formula") || !text.contains(",=formula"),
                "formula cells guarded"
            );
        }
        // CSV records here span two lines (the detail holds a newline), so
        // tamper with whole records: split on the record marker.
        let sep = match format {
            Format::Jsonl => "\n",
            Format::Csv => "\r\n",
        };
        let records: Vec<&str> = text.split_inclusive(sep).collect();
        let joined = |v: &[&str]| v.concat();
        let pos = |id: i64| {
            let lines: Vec<&str> = records.clone();
            line_of(&lines, id, format)
        };
        if format == Format::Csv {
            // CSV records span lines (details hold newlines): tamper by text.
            let text2 = text.replacen("alice", "alicE", 1);
            assert_eq!(
                failed_row(&verify_text(&text2, &key)),
                1,
                "edited first row"
            );
            let cut = text.find("row,30,").unwrap();
            assert_eq!(
                failed_row(&verify_text(&text[..cut], &key)),
                30,
                "truncated CSV"
            );
            continue;
        }
        // Edited: change a detail inside row 12.
        let mut v = records.clone();
        let i = pos(12);
        let edited = v[i].replace("question 11", "question 99");
        v[i] = &edited;
        assert_eq!(failed_row(&verify_text(&joined(&v), &key)), 12, "edited");
        // Deleted: drop row 7's line.
        let mut v = records.clone();
        v.remove(pos(7));
        assert_eq!(failed_row(&verify_text(&joined(&v), &key)), 7, "deleted");
        // Reordered: swap rows 3 and 4.
        let mut v = records.clone();
        v.swap(pos(3), pos(4));
        assert_eq!(failed_row(&verify_text(&joined(&v), &key)), 3, "reordered");
        // Truncated: everything from row 30 on removed.
        let v = &records[..pos(30)];
        assert_eq!(failed_row(&verify_text(&joined(v), &key)), 30, "truncated");
        // Forged end line (signed by another key).
        let other = tempfile::tempdir().unwrap();
        let stranger = AuditKey::load_or_create(other.path()).unwrap();
        let forged = text.replace(&key.public_hex(), &stranger.public_hex());
        assert!(!verify_text(&forged, &key).ok(), "foreign key");
    }
}

#[test]
fn cli_verify_names_the_row_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, _key) = log_with_rows(dir.path(), 20);
    let bin = env!("CARGO_BIN_EXE_enclave");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["audit", "verify", "--db"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let file = dir.path().join("log.jsonl");
    let out = run(&[
        "audit",
        "export",
        "--format",
        "jsonl",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run(&["audit", "verify", file.to_str().unwrap()])
            .status
            .success()
    );
    conn.execute("UPDATE audit_log SET target = 'x' WHERE id = 14", [])
        .unwrap();
    let out = run(&["audit", "verify", "--db"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED at row 14"), "{text}");
}

#[test]
fn retention_prunes_to_a_signed_anchor_and_the_rest_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, key) = log_with_rows(dir.path(), 40);
    // Retention 0 days: everything before now is old enough; pruning stops at
    // the newest checkpoint below the head (row 32).
    let (removed, _) = log::prune(&mut conn, &key, EVERY, 0).unwrap();
    assert_eq!(removed, 32);
    let report = verify_db(&conn, &key);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.pruned_through, 32);
    assert_eq!(report.rows, 9, "rows 33..40 and the prune record");
    let text = export(&mut conn, &key, Format::Jsonl);
    assert!(verify_text(&text, &key).ok());
    // Tampering after pruning is still caught.
    conn.execute("DELETE FROM audit_log WHERE id = 33", [])
        .unwrap();
    assert_eq!(failed_row(&verify_db(&conn, &key)), 33);
}

/// Every checkpoint of the log, as the live witness recorded them.
fn witness_everything(conn: &Connection, dir: &std::path::Path) -> audit::witness::Witness {
    let witness = audit::witness::Witness::File(dir.join("witness.log"));
    for cp in log::checkpoints(conn).unwrap() {
        witness.record(&cp).unwrap();
    }
    witness
}

fn verify_with(
    conn: &Connection,
    key: &AuditKey,
    witness: &audit::witness::Witness,
) -> audit::verify::Report {
    let rules = audit::verify::Rules {
        witness: Some(witness.read().unwrap()),
        ..rules(key)
    };
    log::verify(conn, rules).unwrap()
}

/// The review's case: 83 rows, cut back to row 32 with the checkpoints
/// after it. Cut at a checkpoint, the shortened log is a valid log; only the
/// witness knows it went further. Cut anywhere else, the unsigned tail
/// gives it away.
#[test]
fn a_log_cut_back_to_a_checkpoint_is_caught_by_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 83);
    let witness = witness_everything(&conn, dir.path());
    assert!(verify_with(&conn, &key, &witness).ok());
    conn.execute_batch(
        "DELETE FROM audit_log WHERE id > 35; DELETE FROM audit_checkpoints WHERE upto_id > 35;",
    )
    .unwrap();
    let report = verify_db(&conn, &key);
    assert_eq!(failed_row(&report), 33, "the unsigned tail: {report:?}");
    let open = audit::verify::Rules {
        allow_open_tail: true,
        ..rules(&key)
    };
    assert!(
        log::verify(&conn, open).unwrap().ok(),
        "a running server's tail is accepted when asked"
    );

    conn.execute_batch(
        "DELETE FROM audit_log WHERE id > 32; DELETE FROM audit_checkpoints WHERE upto_id > 32;",
    )
    .unwrap();
    assert!(
        verify_db(&conn, &key).ok(),
        "without the witness a cut at a checkpoint is a valid shorter log"
    );
    let report = verify_with(&conn, &key, &witness);
    assert_eq!(failed_row(&report), 33, "{report:?}");
    assert!(report.failure.unwrap().reason.contains("truncated"));
}

/// Deleting the oldest rows and their checkpoints leaves a checkpoint that
/// looks like a retention anchor; without a signed record of that pruning it
/// is not one.
#[test]
fn deleting_the_start_of_the_log_needs_a_signed_retention_record() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    conn.execute_batch(
        "DELETE FROM audit_log WHERE id <= 16; DELETE FROM audit_checkpoints WHERE upto_id < 16;",
    )
    .unwrap();
    let report = verify_db(&conn, &key);
    assert!(
        report
            .failure
            .as_ref()
            .is_some_and(|f| f.reason.contains("no signed retention record")),
        "{report:?}"
    );
}

/// Deleting checkpoints from the middle breaks the cadence the writer keeps.
#[test]
fn a_stretch_without_its_checkpoint_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    conn.execute("DELETE FROM audit_checkpoints WHERE upto_id = 16", [])
        .unwrap();
    let report = verify_db(&conn, &key);
    assert_eq!(failed_row(&report), 1, "{report:?}");
    assert!(
        report
            .failure
            .unwrap()
            .reason
            .contains("no signed checkpoint")
    );
}

/// Whoever has the signing key (it sits beside the database) can rewrite
/// rows and sign the result: the log is then valid on its own, and only the
/// witness, written when the real rows were signed, tells.
#[test]
fn rows_rewritten_and_re_signed_with_the_stolen_key_fail_against_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, key) = log_with_rows(dir.path(), 40);
    let witness = witness_everything(&conn, dir.path());
    let mut rows: Vec<audit::Row> = Vec::new();
    log::for_each_row(&conn, |r| {
        rows.push(r);
        Ok(())
    })
    .unwrap();
    rows[4].actor = "nobody".into();
    let mut prev = rows[3].hash.clone();
    for row in rows.iter_mut().skip(4) {
        row.prev_hash = prev;
        row.hash = row.compute_hash();
        prev = row.hash.clone();
    }
    conn.execute_batch("DELETE FROM audit_log WHERE id >= 5; DELETE FROM audit_checkpoints;")
        .unwrap();
    for row in &rows[4..] {
        conn.execute(
            "INSERT INTO audit_log (id, at, actor, action, target, outcome, address,
                 document_ids, chunk_ids, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            rusqlite::params![
                row.id,
                row.at,
                row.actor,
                row.action,
                row.target,
                row.outcome,
                row.address,
                row.document_ids,
                row.chunk_ids,
                row.detail,
                row.prev_hash,
                row.hash
            ],
        )
        .unwrap();
    }
    for row in rows.iter().filter(|r| r.id % 16 == 0 || r.id == 40) {
        let signed_at = "2026-11-30T18:00:00Z";
        let signature = key.sign(&audit::Checkpoint::message(row.id, &row.hash, signed_at));
        conn.execute(
            "INSERT INTO audit_checkpoints (upto_id, head_hash, signed_at, public_key, signature)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![row.id, row.hash, signed_at, key.public_hex(), signature],
        )
        .unwrap();
    }
    assert!(
        verify_db(&conn, &key).ok(),
        "re-signed with the real key, the log is valid on its own"
    );
    let report = verify_with(&conn, &key, &witness);
    assert_eq!(failed_row(&report), 16, "{report:?}");
    assert!(report.failure.unwrap().reason.contains("re-signed"));
}

/// Through the command line: each command signs the head it wrote and the
/// configured witness file gets every checkpoint; the log verifies against
/// it until the last command's rows are cut away.
#[test]
fn commands_witness_their_checkpoints_and_verify_checks_against_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let witness = tmp.path().join("witness.log");
    let config = tmp.path().join("enclave.toml");
    std::fs::write(
        &config,
        format!("[audit]\nwitness = {:?}\n", witness.display().to_string()),
    )
    .unwrap();
    let doc = tmp.path().join("note.txt");
    std::fs::write(&doc, "Parking permits are renewed every April.").unwrap();
    let with_config = |args: &[&str]| {
        let mut cmd = crate::common::enclave(&data);
        cmd.arg("--config").arg(&config).args(args);
        cmd
    };
    crate::common::run_ok(&mut with_config(&[
        "ingest",
        "-c",
        "demo",
        doc.to_str().unwrap(),
    ]));
    for name in ["erin", "frank"] {
        let mut child = with_config(&["user", "add", name, "--role", "staff", "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "pw-{name}-123456").unwrap();
        assert!(child.wait().unwrap().success());
    }
    let witnessed = std::fs::read_to_string(&witness).unwrap();
    assert!(
        witnessed.lines().count() >= 3,
        "one checkpoint per command: {witnessed}"
    );
    let verify = || {
        with_config(&[
            "audit",
            "verify",
            "--db",
            "--witness",
            witness.to_str().unwrap(),
        ])
        .output()
        .unwrap()
    };
    let out = verify();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("match the witness"), "{text}");

    // Cut back to the checkpoint before the last command's.
    let conn = Connection::open(data.join("enclave.sqlite")).unwrap();
    let previous: i64 = conn
        .query_row(
            "SELECT upto_id FROM audit_checkpoints ORDER BY upto_id DESC LIMIT 1 OFFSET 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute_batch(&format!(
        "DELETE FROM audit_log WHERE id > {previous}; DELETE FROM audit_checkpoints WHERE upto_id > {previous};"
    ))
    .unwrap();
    drop(conn);
    let alone = with_config(&["audit", "verify", "--db"]).output().unwrap();
    assert!(alone.status.success(), "a shorter valid log on its own");
    let out = verify();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

/// Append the record of `new` taking over from `previous`, then sign the
/// head with `new` (what a restore without the old key does).
fn change_key(conn: &mut Connection, previous: &AuditKey, new: &AuditKey) -> i64 {
    let entry = Entry::new(&Actor::system(), audit::key::KEY_CHANGE, "audit-key").detail(
        serde_json::json!({
            "previous_key": previous.public_hex(),
            "key": new.public_hex(),
            "reason": "restore without the old key",
        }),
    );
    let row = log::append_now(conn, new, EVERY, &entry).unwrap();
    log::checkpoint_head(conn, new).unwrap();
    row
}

fn pinned_to(keys: &[&AuditKey]) -> audit::verify::Rules {
    audit::verify::Rules {
        pinned_keys: keys.iter().map(|k| k.public_hex()).collect(),
        ..rules(keys[0])
    }
}

fn unpinned() -> audit::verify::Rules {
    audit::verify::Rules {
        pinned_keys: Vec::new(),
        head_key: None,
        checkpoint_every: Some(EVERY),
        allow_open_tail: false,
        witness: None,
    }
}

/// A restore without the old key hands signing to a new key: the change is
/// a signed row right after the old key's last checkpoint, named in the
/// report, and the pinned key must be the one signing the head.
#[test]
fn a_key_change_after_the_old_keys_checkpoint_verifies_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, old) = log_with_rows(dir.path(), 40);
    let elsewhere = tempfile::tempdir().unwrap();
    let new = AuditKey::load_or_create(elsewhere.path()).unwrap();
    assert_eq!(change_key(&mut conn, &old, &new), 41);
    for i in 0..20 {
        let entry = Entry::new(&Actor::system(), "question", format!("after:{i}"));
        log::append_now(&mut conn, &new, EVERY, &entry).unwrap();
    }
    log::checkpoint_head(&mut conn, &new).unwrap();

    let report = log::verify(&conn, pinned_to(&[&old, &new])).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.rows, 61);
    assert_eq!(report.key_changes.len(), 1);
    assert_eq!(report.key_changes[0].row, 41);
    assert_eq!(report.key_changes[0].previous_key, old.public_hex());
    assert_eq!(
        report.public_key.as_deref(),
        Some(new.public_hex().as_str())
    );
    // Until the new key is pinned beside the old one, the change fails.
    let report = log::verify(&conn, pinned_to(&[&old])).unwrap();
    assert_eq!(failed_row(&report), 41, "{report:?}");
    assert!(report.failure.unwrap().reason.contains("not pinned"));
    // An export carries the change and verifies the same way.
    let text = export(&mut conn, &new, Format::Jsonl);
    let file = |rules| {
        let mut reader = BufReader::new(text.as_bytes());
        audit::export::verify_file(&mut reader, rules).unwrap()
    };
    assert!(file(pinned_to(&[&old, &new])).ok());
    assert_eq!(failed_row(&file(pinned_to(&[&old]))), 41);
}

/// Someone who can write the database but has no key cuts the log back to
/// a checkpoint and "restores" onto a key of their own. Without a pin the
/// report names the change; the pinned key and the witness both refuse it.
#[test]
fn a_cut_disguised_as_a_key_change_fails_against_the_pin_and_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, real) = log_with_rows(dir.path(), 83);
    let witness = witness_everything(&conn, dir.path());
    conn.execute_batch(
        "DELETE FROM audit_log WHERE id > 32; DELETE FROM audit_checkpoints WHERE upto_id > 32;",
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let forger = AuditKey::load_or_create(elsewhere.path()).unwrap();
    change_key(&mut conn, &real, &forger);

    let report = log::verify(&conn, unpinned()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.key_changes.len(), 1, "but it is shown");
    let report = log::verify(&conn, pinned_to(&[&real])).unwrap();
    assert_eq!(failed_row(&report), 33, "{report:?}");
    let report = verify_with(&conn, &forger, &witness);
    assert!(!report.ok(), "{report:?}");
}

/// A key change must come right after a checkpoint of the key it names:
/// otherwise rows before it were never signed by anyone.
#[test]
fn a_key_change_over_unsigned_rows_or_from_another_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, old) = log_with_rows(dir.path(), 40);
    for i in 0..3 {
        let entry = Entry::new(&Actor::system(), "question", format!("unsigned:{i}"));
        log::append_now(&mut conn, &old, EVERY, &entry).unwrap();
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let new = AuditKey::load_or_create(elsewhere.path()).unwrap();
    assert_eq!(change_key(&mut conn, &old, &new), 44);
    let report = log::verify(&conn, pinned_to(&[&old, &new])).unwrap();
    assert_eq!(failed_row(&report), 44, "{report:?}");
    assert!(
        report
            .failure
            .unwrap()
            .reason
            .contains("does not follow a checkpoint")
    );

    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _old) = log_with_rows(dir.path(), 40);
    let third = tempfile::tempdir().unwrap();
    let stranger = AuditKey::load_or_create(third.path()).unwrap();
    change_key(&mut conn, &stranger, &new);
    let report = log::verify(&conn, unpinned()).unwrap();
    assert_eq!(failed_row(&report), 41, "{report:?}");
}

/// `audit.public_key_file` (the package pins /etc/enclave/audit.pub): the
/// key `enclave audit key` prints verifies; another key there fails the log.
#[test]
fn the_pinned_public_key_file_decides_which_key_signs_the_head() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pin = tmp.path().join("audit.pub");
    let config = tmp.path().join("enclave.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\npublic_key_file = {:?}\n",
            pin.display().to_string()
        ),
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        let mut cmd = crate::common::enclave(&data);
        cmd.arg("--config").arg(&config).args(args);
        cmd
    };
    let key_out = with_config(&["audit", "key"]).output().unwrap();
    assert!(key_out.status.success());
    let public = String::from_utf8_lossy(&key_out.stdout).trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    let notes = String::from_utf8_lossy(&key_out.stderr);
    assert!(notes.contains("mode 400"), "{notes}");
    assert!(notes.contains("does not exist"), "{notes}");
    let mut child = with_config(&["user", "add", "gina", "--role", "staff", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "pw-gina-secret-123").unwrap();
    assert!(child.wait().unwrap().success());

    std::fs::write(&pin, format!("{public}\n")).unwrap();
    let out = with_config(&["audit", "verify", "--db"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let notes = String::from_utf8_lossy(&with_config(&["audit", "key"]).output().unwrap().stderr)
        .into_owned();
    assert!(notes.contains("pinned in"), "{notes}");

    let other = tempfile::tempdir().unwrap();
    let stranger = AuditKey::load_or_create(other.path()).unwrap();
    std::fs::write(&pin, stranger.public_hex()).unwrap();
    let out = with_config(&["audit", "verify", "--db"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("not pinned"), "{text}");
    let doctor = with_config(&["doctor"]).output().unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(report.contains("FAIL  audit log"), "{report}");
}

/// A key-change row is only a chained row: someone who can write the
/// database but holds no key rewrites the log under a key of their own, then
/// "hands over" to the pinned key, which the running server then uses to
/// sign the forged head. The pin refuses every signature and key change
/// that involves a key it does not hold.
#[test]
fn a_forged_history_handed_over_to_the_pinned_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pinned) = log_with_rows(dir.path(), 1);
    let forged_dir = tempfile::tempdir().unwrap();
    let (mut conn, forger) = log_with_rows(forged_dir.path(), 40);
    change_key(&mut conn, &forger, &pinned);
    let report = log::verify(&conn, pinned_to(&[&pinned])).unwrap();
    assert_eq!(failed_row(&report), 16, "{report:?}");
    assert!(report.failure.unwrap().reason.contains("not pinned"));
    // Without a pin the log verifies, but says whose key signed it first.
    let report = log::verify(&conn, unpinned()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.key_changes[0].previous_key, forger.public_hex());
    // And a key change still waiting for its new key's signature is
    // refused even where an open tail is accepted.
    let entry = Entry::new(&Actor::system(), audit::key::KEY_CHANGE, "audit-key").detail(
        serde_json::json!({"previous_key": pinned.public_hex(), "key": forger.public_hex()}),
    );
    log::append_now(&mut conn, &pinned, EVERY, &entry).unwrap();
    let open = audit::verify::Rules {
        allow_open_tail: true,
        ..unpinned()
    };
    let report = log::verify(&conn, open).unwrap();
    assert!(
        report
            .failure
            .as_ref()
            .is_some_and(|f| f.reason.contains("has not signed")),
        "{report:?}"
    );
}
