//! A backup taken while the server is ingesting restores into a working
//! instance: every document in the snapshot searchable again (indexes rebuilt
//! from SQLite), originals intact, and an audit chain that verifies.

use crate::common::server::seeded_server;
use crate::common::{enclave, run_ok};

#[test]
fn backup_during_ingestion_restores_and_verifies() {
    let (tmp, dir, server) = seeded_server();
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    let texts: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            (
                format!("ward-notice-{i}.md"),
                format!(
                    "# Ward notice {i}\n\nWard {i} visiting hours change to {} pm on weekdays. \
                     Equipment check number {i} is due on the first Monday of the month.\n",
                    i + 1
                )
                .into_bytes(),
            )
        })
        .collect();
    let files: Vec<(&str, &[u8])> = texts
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let r = alice.upload("demo", &files, true);
    assert_eq!(r.status, 202, "{}", r.body);
    let ids: Vec<i64> = r.json()["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();

    // Back up while the ingest thread works through the queue.
    let backup = tmp.path().join("backup");
    let out = run_ok(enclave(&dir).arg("backup").arg(&backup));
    assert!(out.contains("Backed up"), "{out}");
    for id in ids {
        assert_eq!(alice.wait_upload(id)["state"], "done");
    }
    drop(server);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("BACKUP.json")).unwrap())
            .unwrap();
    let snapshot_docs = manifest["documents"].as_i64().unwrap();
    assert!(
        snapshot_docs >= 4,
        "the seeded documents at least: {manifest}"
    );
    assert!(
        !backup.join("audit-key").exists(),
        "the signing key stays behind unless asked for"
    );
    assert!(
        !backup.join("bm25").exists(),
        "derived indexes are not copied"
    );

    // A damaged backup is refused before anything is written.
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for entry in std::fs::read_dir(&backup).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, damaged.join(p.file_name().unwrap())).unwrap();
        }
    }
    let out = enclave(&tmp.path().join("restored-bad"))
        .arg("restore")
        .arg(&damaged)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a backup with missing originals must be refused"
    );

    let restored = tmp.path().join("restored");
    let out = run_ok(enclave(&restored).arg("restore").arg(&backup));
    assert!(out.contains("rows verified"), "{out}");
    assert!(out.contains("New audit public key"), "{out}");
    let docs: serde_json::Value =
        serde_json::from_str(&run_ok(enclave(&restored).args(["docs", "list", "--json"]))).unwrap();
    let docs = docs.as_array().unwrap();
    assert_eq!(
        docs.len() as i64,
        snapshot_docs,
        "every document of the snapshot"
    );
    assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
    let hits = run_ok(enclave(&restored).args(["search", "annual leave", "--json"]));
    assert!(
        hits.contains("Annual leave") || hits.contains("annual leave"),
        "{hits}"
    );
    let verify = run_ok(enclave(&restored).args(["audit", "verify", "--db"]));
    assert!(verify.starts_with("OK"), "{verify}");
    assert!(verify.contains("Key change at row"), "{verify}");
    // The old key no longer signs the head: an auditor pinned to it is told.
    let old_key = run_ok(enclave(&dir).args(["audit", "key"]));
    let new_key = run_ok(enclave(&restored).args(["audit", "key"]));
    assert_ne!(old_key, new_key);
    let pinned_old = enclave(&restored)
        .args(["audit", "verify", "--db", "--public-key", old_key.trim()])
        .output()
        .unwrap();
    assert!(!pinned_old.status.success());
    let doctor = enclave(&restored).arg("doctor").output().unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("indexes") && !report.contains("FAIL  indexes"),
        "{report}"
    );
    assert!(!report.contains("FAIL  audit log"), "{report}");
}

/// Started under the usual umask 022, nothing Enclave writes is readable by
/// anyone but its own user: not the data dir, not the database, not a backup.
#[test]
fn data_dir_and_backups_are_private_under_umask_022() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    fn lenient(cmd: &mut std::process::Command) -> &mut std::process::Command {
        // SAFETY: umask is async-signal-safe and only affects the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            })
        }
    }
    fn open_to_others(path: &std::path::Path, found: &mut Vec<String>) {
        let meta = std::fs::symlink_metadata(path).unwrap();
        if meta.permissions().mode() & 0o077 != 0 {
            found.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                open_to_others(&entry.unwrap().path(), found);
            }
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let doc = tmp.path().join("note.txt");
    std::fs::write(&doc, "Parking permits are renewed every April.").unwrap();
    run_ok(
        lenient(&mut enclave(&data))
            .args(["ingest", "--collection", "demo"])
            .arg(&doc),
    );
    let backup = tmp.path().join("backup");
    run_ok(lenient(&mut enclave(&data)).arg("backup").arg(&backup));
    let with_key = tmp.path().join("backup-with-key");
    run_ok(
        lenient(&mut enclave(&data))
            .args(["backup", "--with-audit-key"])
            .arg(&with_key),
    );
    let mut found = Vec::new();
    open_to_others(&data, &mut found);
    open_to_others(&backup, &mut found);
    open_to_others(&with_key, &mut found);
    assert!(found.is_empty(), "readable by others: {found:#?}");
    let key_mode = |dir: &std::path::Path| {
        std::fs::metadata(dir.join("audit-key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(key_mode(&data), 0o400);
    assert_eq!(key_mode(&with_key), 0o400);

    // Restored with its key, the log goes on under the same key.
    let restored = tmp.path().join("restored");
    let out = run_ok(
        lenient(&mut enclave(&restored))
            .arg("restore")
            .arg(&with_key),
    );
    assert!(!out.contains("New audit public key"), "{out}");
    assert_eq!(key_mode(&restored), 0o400);
    assert_eq!(
        run_ok(enclave(&data).args(["audit", "key"])),
        run_ok(enclave(&restored).args(["audit", "key"]))
    );
    let verify = run_ok(enclave(&restored).args(["audit", "verify", "--db"]));
    assert!(!verify.contains("Key change"), "{verify}");
}
