//! End to end through the real binary: ingest files (good and hostile), search,
//! collections, duplicates, deletion receipts, and containment of bad input.

use std::io::Write;
use std::path::Path;

use crate::common::{enclave, run_ok};

fn search_json(data: &Path, query: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = run_ok(enclave(data).args(["search", query, "--json"]).args(extra));
    serde_json::from_str(&out).expect("search --json prints a JSON array")
}

#[test]
fn demo_corpus_is_searchable_with_pages_offsets_and_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let demo = crate::common::repo_root().join("packaging/demo/documents");
    let out = run_ok(
        enclave(&data)
            .args(["ingest", "--collection", "policies"])
            .arg(&demo),
    );
    assert!(out.contains("3 files: 3 indexed"), "{out}");

    let hits = search_json(&data, "how many days of annual leave", &[]);
    let top = &hits[0];
    assert_eq!(top["document_title"], "Northfield Clinic Staff Handbook");
    assert!(
        top["text"]
            .as_str()
            .unwrap()
            .contains("25 days of annual leave"),
        "{top}"
    );
    assert_eq!(top["page"], 1);
    assert!(
        top["bm25"]["rank"].is_number() && top["dense"]["rank"].is_number(),
        "both sides scored: {top}"
    );
    assert_eq!(top["heading"], "Annual leave");

    // The chunk offsets point at the exact passage in the stored page text.
    let doc_id = top["document_id"].as_i64().unwrap();
    let shown: serde_json::Value = serde_json::from_str(&run_ok(enclave(&data).args([
        "docs",
        "show",
        &doc_id.to_string(),
        "--text",
        "--json",
    ])))
    .unwrap();
    let page_text = shown["pages"][0][2].as_str().unwrap();
    let (start, end) = (
        top["char_start"].as_u64().unwrap() as usize,
        top["char_end"].as_u64().unwrap() as usize,
    );
    let passage: String = page_text.chars().skip(start).take(end - start).collect();
    assert_eq!(passage, top["text"].as_str().unwrap());

    // HTML: visible text only.
    let hits = search_json(
        &data,
        "console log not part of the text",
        &["--mode", "bm25"],
    );
    assert!(
        hits.iter()
            .all(|h| !h["text"].as_str().unwrap().contains("console.log")),
        "script text indexed"
    );
    let hits = search_json(&data, "needlestick injury report", &[]);
    assert_eq!(
        hits[0]["document_title"],
        "Infection Prevention and Control Policy"
    );

    // Collection filter applies inside retrieval.
    assert!(search_json(&data, "annual leave", &["--collection", "other"]).is_empty());
    assert!(!search_json(&data, "annual leave", &["--collection", "policies"]).is_empty());

    // Re-ingesting is detected as duplicate, nothing indexed twice.
    let out = run_ok(
        enclave(&data)
            .arg("ingest")
            .args(["--collection", "policies"])
            .arg(&demo),
    );
    assert!(out.contains("3 duplicates skipped"), "{out}");
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&run_ok(enclave(&data).args(["docs", "list", "--json"]))).unwrap();
    assert_eq!(list.len(), 3);

    // Erasure: receipt, and the document is gone from both retrievers.
    let receipt: serde_json::Value = serde_json::from_str(&run_ok(enclave(&data).args([
        "docs",
        "delete",
        &doc_id.to_string(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(receipt["bm25_entries_remaining"], 0);
    assert_eq!(receipt["vectors_remaining"], 0);
    assert_eq!(receipt["original_removed"], true);
    assert!(receipt["chunks_removed"].as_u64().unwrap() >= 1);
    for mode in ["bm25", "dense", "hybrid"] {
        let hits = search_json(&data, "annual leave days per year", &["--mode", mode]);
        assert!(
            hits.iter().all(|h| h["document_id"] != doc_id),
            "{mode} still finds the deleted document"
        );
    }
    let hash = receipt["content_hash"].as_str().unwrap();
    assert!(!data.join("originals").join(&hash[..2]).join(hash).exists());
    // Its BM25 entries are purged from the segment files, not only marked deleted.
    {
        let library = enclave::library::Library::open(&crate::common::config(&data)).unwrap();
        assert_eq!(library.bm25_deleted_entries().unwrap(), 0);
    }
    // Nor is its text left in the database file's free pages.
    for file in ["enclave.sqlite", "enclave.sqlite-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        let phrase = b"require a fit note";
        assert!(
            !bytes.windows(phrase.len()).any(|w| w == phrase),
            "erased text still in {file}"
        );
    }
}

#[test]
fn hostile_and_broken_inputs_are_rejected_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::write(inputs.join("empty.txt"), b"").unwrap();
    let junk: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(inputs.join("junk.pdf"), &junk).unwrap();
    std::fs::write(
        inputs.join("fake.pdf"),
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF",
    )
    .unwrap();
    // 200 MB (sparse) file: over the size limit, rejected before reading.
    let big = std::fs::File::create(inputs.join("big.txt")).unwrap();
    big.set_len(200 * 1024 * 1024).unwrap();
    // DOCX zip bomb: small archive declaring a huge inflated document.
    std::fs::write(inputs.join("bomb.docx"), zip_bomb()).unwrap();
    // Hostile file name: traversal and control characters (only display is affected).
    let evil = inputs.join("x..\u{1b}[31mevil\u{7}.txt");
    std::fs::write(
        &evil,
        b"The evil file is plain text about quarterly budgets.",
    )
    .unwrap();

    // A path with `..` components and control characters in a name.
    std::fs::create_dir_all(inputs.join("sub")).unwrap();
    let before = list_tree(tmp.path());
    let out = run_ok(
        enclave(&data)
            .arg("ingest")
            .arg(inputs.join("sub").join("..")),
    );
    let lines: Vec<&str> = out.lines().collect();
    let reason = |name: &str| {
        lines
            .iter()
            .find(|l| l.contains(name))
            .copied()
            .unwrap_or_else(|| panic!("no line for {name}: {out}"))
    };
    assert!(reason("empty.txt").contains("rejected") && reason("empty.txt").contains("empty file"));
    assert!(
        reason("junk.pdf").contains("rejected") && reason("junk.pdf").contains("unsupported"),
        "{out}"
    );
    assert!(reason("fake.pdf").contains("rejected"), "{out}");
    assert!(reason("big.txt").contains("over the"), "{out}");
    assert!(reason("bomb.docx").contains("archive limits"), "{out}");
    assert!(out.contains("6 files: 1 indexed"), "{out}");
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}'),
        "control characters echoed to the terminal"
    );

    // Nothing written outside the data dir; inside it, originals have server-chosen names.
    let after = list_tree(tmp.path());
    let new: Vec<_> = after
        .difference(&before)
        .filter(|p| !p.starts_with(&data))
        .collect();
    assert!(new.is_empty(), "written outside the data dir: {new:?}");
    for entry in list_tree(&data.join("originals")) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.chars().all(|c| c.is_ascii_hexdigit()),
            "stored original named {name:?}"
        );
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&run_ok(enclave(&data).args(["docs", "list", "--json"]))).unwrap();
    assert_eq!(list.len(), 1, "only the good file is in the library");
    assert!(
        list.iter().all(|d| d["status"] == "indexed"),
        "nothing half-indexed"
    );
    assert_eq!(list[0]["source_name"], "x.._[31mevil_.txt");
}

#[test]
fn reindex_rebuilds_both_indexes_from_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let demo = crate::common::repo_root().join("packaging/demo/documents");
    run_ok(enclave(&data).arg("ingest").arg(&demo));
    let before = search_json(&data, "needlestick injury", &[]);
    // A language change is refused until the indexes are rebuilt.
    let config = tmp.path().join("french.toml");
    std::fs::write(&config, "[search]\nlanguage = \"french\"\n").unwrap();
    let out = enclave(&data)
        .arg("--config")
        .arg(&config)
        .args(["search", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("enclave reindex"));
    let out = run_ok(enclave(&data).arg("--config").arg(&config).arg("reindex"));
    assert!(out.contains("re-indexed 3 documents"), "{out}");
    let out = run_ok(enclave(&data).arg("reindex"));
    assert!(out.contains("re-indexed 3 documents"), "{out}");
    let after = search_json(&data, "needlestick injury", &[]);
    assert_eq!(before[0]["chunk_id"], after[0]["chunk_id"]);
    assert_eq!(before.len(), after.len());
}

#[test]
fn extract_command_shows_pages_or_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let md = crate::common::repo_root().join("packaging/demo/documents/staff-handbook.md");
    let out: serde_json::Value =
        serde_json::from_str(&run_ok(enclave(&data).args(["extract", "--json"]).arg(&md))).unwrap();
    assert_eq!(out["accepted"], true);
    assert_eq!(out["extracted"]["format"], "markdown");
    assert_eq!(
        out["extracted"]["title"],
        "Northfield Clinic Staff Handbook"
    );
    let junk = tmp.path().join("x.pdf");
    std::fs::write(&junk, [0u8, 1, 2, 3, 255, 254]).unwrap();
    let output = enclave(&data)
        .args(["extract"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("rejected: unsupported file type"));
}

fn zip_bomb() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file("word/document.xml", opts).unwrap();
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn list_tree(root: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// The extraction worker, once it has its input, can open no other file and
/// connect nowhere: a parser bug cannot read the database or call out.
#[test]
fn the_extraction_worker_can_neither_read_the_database_nor_connect() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let doc = tmp.path().join("note.txt");
    std::fs::write(&doc, "Parking permits are renewed every April.").unwrap();
    run_ok(enclave(&data).args(["ingest", "-c", "demo"]).arg(&doc));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
        .arg("__extract-probe")
        .arg(data.join("enclave.sqlite"))
        .arg(listener.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(probe["confinement"], "Full", "{probe}");
    let refused = |what: &str| {
        probe[what]["Err"]
            .as_str()
            .is_some_and(|e| e.contains("Permission denied"))
    };
    assert!(refused("open"), "the database was readable: {probe}");
    assert!(refused("connect"), "a connection went out: {probe}");
    // Unconfined, the same process could do both (the probe is not lying).
    assert!(std::fs::File::open(data.join("enclave.sqlite")).is_ok());
    assert!(std::net::TcpStream::connect(listener.local_addr().unwrap()).is_ok());
    // And the confined worker still extracts.
    let hits = run_ok(enclave(&data).args(["search", "parking permits", "--json"]));
    assert!(hits.contains("April"), "{hits}");
}
