//! SIGKILL during a large ingest, again and again: at every kill the on-disk
//! state must have no half-searchable document, and reopening must finish the
//! interrupted work so that every document ends up fully indexed exactly once.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use enclave::library::Library;
use enclave::rag::retrieve::{self, Mode, Search};
use enclave::store::DocStatus;

const FILES: usize = 240;

fn write_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..FILES {
        let body: String = (0..(20 + i % 40))
            .map(|j| {
                format!(
                    "Clause {j} of memo {i} concerns topic{i} and budget line {}. ",
                    i * 7 + j
                )
            })
            .collect();
        std::fs::write(
            dir.join(format!("memo-{i:04}.txt")),
            format!("Memo {i}\n\n{body}\n\nmarker{i}x"),
        )
        .unwrap();
    }
}

fn assert_no_half_searchable(config: &enclave::config::Config) -> (usize, usize) {
    // The killed process is reaped, but the data-dir lock was once seen held
    // for a moment after (under heavy load; an extraction worker forked but
    // not yet exec'd is the likely holder): wait up to 10 s for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let library = loop {
        match Library::open_without_recovery(config) {
            Err(enclave::library::LibraryError::Locked(_))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => break other.unwrap(),
        }
    };
    let report = library.consistency().unwrap();
    let bad: Vec<_> = report.iter().filter(|d| !d.is_consistent()).collect();
    assert!(
        bad.is_empty(),
        "indexed documents missing index entries: {bad:?}"
    );
    let hidden: Vec<_> = report
        .iter()
        .filter(|d| d.status != DocStatus::Indexed)
        .collect();
    // Documents not yet `indexed` must be invisible to every retriever, whatever
    // the indexes hold for them.
    for d in hidden.iter().take(5) {
        let doc = library.store().document(d.document_id).unwrap();
        let n: usize = doc.title.trim_start_matches("memo ").parse().unwrap();
        let marker = format!("marker{n}x");
        for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
            let hits = retrieve::search(&library, &Search::new(&marker, None, 50, mode))
                .unwrap()
                .hits;
            assert!(
                hits.iter().all(|h| h.chunk.document_id != d.document_id),
                "{mode:?} returned invisible document {}",
                d.document_id
            );
        }
    }
    (report.len() - hidden.len(), hidden.len())
}

#[test]
fn sigkill_during_ingest_never_leaves_a_half_searchable_document() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    write_corpus(&corpus);
    let data = tmp.path().join("data");
    let config_file = tmp.path().join("enclave.toml");
    // Small batches so kills land between, during and after index commits.
    std::fs::write(&config_file, "[ingest]\ncommit_every_documents = 7\n").unwrap();
    let config = {
        let mut c = crate::common::config(&data);
        c.ingest.commit_every_documents = 7;
        c
    };

    let mut seed: u64 = 0x1234_5678;
    let mut kills = 0;
    for _ in 0..6 {
        let mut child = crate::common::enclave(&data)
            .arg("--config")
            .arg(&config_file)
            .arg("ingest")
            .arg(&corpus)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait_ms = 1500 + (seed >> 33) % 2500;
        std::thread::sleep(Duration::from_millis(wait_ms));
        if child.try_wait().unwrap().is_none() {
            kills += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (visible, hidden) = assert_no_half_searchable(&config);
        eprintln!("after kill at {wait_ms} ms: {visible} searchable, {hidden} pending");
    }
    assert!(
        kills >= 3,
        "the ingest finished too fast to be interrupted; enlarge the corpus"
    );

    // Reopening finishes interrupted work; a final ingest adds the rest.
    drop(Library::open(&config).unwrap());
    let out = crate::common::run_ok(
        crate::common::enclave(&data)
            .arg("--config")
            .arg(&config_file)
            .arg("ingest")
            .arg(&corpus),
    );
    assert!(out.contains(&format!("{FILES} files")), "{out}");
    let library = Library::open(&config).unwrap();
    let report = library.consistency().unwrap();
    assert_eq!(
        report.len(),
        FILES,
        "every file is in the library exactly once"
    );
    assert!(
        report
            .iter()
            .all(|d| d.status == DocStatus::Indexed && d.is_consistent()),
        "{report:?}"
    );
    let total_chunks: u64 = report.iter().map(|d| d.chunks).sum();
    let (bm25, vectors) = library.index_counts().unwrap();
    assert_eq!(
        (bm25, vectors as u64),
        (total_chunks, total_chunks),
        "no duplicate index entries"
    );
    let hits = retrieve::search(&library, &Search::new("marker123x", None, 3, Mode::Bm25))
        .unwrap()
        .hits;
    assert_eq!(hits[0].chunk.document_title, "memo 0123");
}
