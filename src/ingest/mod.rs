//! Ingestion: from a file (or text) to a document in the library. Reading,
//! size checks and hashing, extraction in the isolated worker process,
//! chunking, then [`Library::add`]. The web server's upload queue and its
//! thread are in [`queue`].

pub mod chunk;
pub mod queue;
pub mod rescreen;
pub mod screen;

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::audit::{Actor, Entry};
use crate::config::Config;
use crate::extract::{self, Extracted, Rejection};
use crate::library::{Incoming, Library, LibraryError, Outcome};
use crate::store::{JobKind, JobState, NewChunk, NewPage};

type Result<T> = std::result::Result<T, LibraryError>;

/// A file read, size-checked, hashed and extracted: everything slow about an
/// ingest, done without the library (so without its lock).
pub struct Prepared {
    bytes: Vec<u8>,
    hash: String,
    extracted: Extracted,
}

/// `progress` hears what extraction is doing on long work ("OCR page 3").
pub fn prepare_file(
    config: &Config,
    path: &Path,
    progress: &dyn Fn(&str),
) -> std::result::Result<Prepared, Rejection> {
    let limit = config.ingest.max_file_bytes;
    let (bytes, hash) = read_checked(path, limit)?;
    let extracted = extract::worker::extract_with_progress(path, &config.extract, limit, progress)?;
    Ok(Prepared {
        bytes,
        hash,
        extracted,
    })
}

/// Ingest one file into `collection` from the command line: read, check
/// for a duplicate before the (slow, isolated) extraction, extract, chunk,
/// and add, with a job row saying how it ended. The document becomes
/// searchable at the next flush (made here once enough are pending).
pub fn add_file(library: &mut Library, path: &Path, collection: &str) -> Result<Outcome> {
    let source_name = sanitise_name(path);
    // The job row names the file with any identifier in its name masked.
    let shown_name = library
        .scanner()
        .map_or_else(|| source_name.clone(), |s| s.redacted(&source_name));
    let job = library
        .store()
        .start_job(JobKind::Ingest, None, &shown_name)?;
    let outcome = add_file_inner(library, path, collection, &source_name);
    let (state, detail, doc) = match &outcome {
        Ok(Outcome::Indexed { document_id, .. }) => {
            (JobState::Done, String::new(), Some(*document_id))
        }
        Ok(Outcome::Duplicate { document_id }) => (
            JobState::Skipped,
            "duplicate".to_string(),
            Some(*document_id),
        ),
        Ok(Outcome::Rejected { reason }) => (JobState::Rejected, reason.clone(), None),
        Err(e) => (JobState::Failed, e.to_string(), None),
    };
    library.store().finish_job(job, state, &detail, doc)?;
    let outcome = outcome?;
    if matches!(outcome, Outcome::Indexed { .. }) {
        library.flush_if_due()?;
    }
    Ok(outcome)
}

fn add_file_inner(
    library: &mut Library,
    path: &Path,
    collection: &str,
    source_name: &str,
) -> Result<Outcome> {
    let config = library.config();
    let (bytes, hash) = match read_checked(path, config.ingest.max_file_bytes) {
        Ok(read) => read,
        Err(r) => return Ok(Outcome::rejected(r)),
    };
    if let Some(existing) = library.duplicate_of(collection, &hash)? {
        return Ok(Outcome::Duplicate {
            document_id: existing,
        });
    }
    let limit = config.ingest.max_file_bytes;
    let extracted = match extract::worker::extract_isolated(path, &config.extract, limit) {
        Ok(e) => e,
        Err(r) => return Ok(Outcome::rejected(r)),
    };
    let actor = library.actor().clone();
    let prepared = Prepared {
        bytes,
        hash,
        extracted,
    };
    add_prepared(library, prepared, collection, source_name, &actor)
}

/// Add a file [`prepare_file`] read and extracted, with the upload's audit
/// row (naming `actor`) written in the same transaction as its rows.
pub fn add_prepared(
    library: &mut Library,
    prepared: Prepared,
    collection: &str,
    source_name: &str,
    actor: &Actor,
) -> Result<Outcome> {
    let Prepared {
        bytes,
        hash,
        extracted,
    } = prepared;
    let document = Document {
        collection,
        source_name,
        content_hash: &hash,
        bytes: &bytes,
        extracted,
        uploaded_by: &actor.name,
    };
    write(library, document, actor, true)
}

/// Ingest already-extracted text (used by `eval`, which feeds corpora that
/// are not files). Same chunking and visibility protocol as files.
pub fn add_text(
    library: &mut Library,
    collection: &str,
    name: &str,
    title: &str,
    text: &str,
) -> Result<Outcome> {
    let extracted = Extracted {
        format: extract::Format::Text,
        title: (!title.is_empty()).then(|| title.to_string()),
        pages: vec![extract::Page {
            number: 1,
            text: extract::normalise(text),
            has_text_layer: true,
            ocr: None,
        }],
        warnings: Vec::new(),
    };
    if !extracted.has_any_text() {
        return Ok(Outcome::rejected(Rejection::Empty));
    }
    let hash = hex::encode(Sha256::digest(format!("{name}\u{0}{title}\u{0}{text}")));
    let actor = library.actor().clone();
    let document = Document {
        collection,
        source_name: name,
        content_hash: &hash,
        bytes: text.as_bytes(),
        extracted,
        uploaded_by: &actor.name,
    };
    let outcome = write(library, document, &actor, false)?;
    library.flush_if_due()?;
    Ok(outcome)
}

/// An extracted document and where it goes.
struct Document<'a> {
    collection: &'a str,
    source_name: &'a str,
    content_hash: &'a str,
    bytes: &'a [u8],
    extracted: Extracted,
    uploaded_by: &'a str,
}

/// Screen the pages for sensitive identifiers under the collection's
/// policy, chunk them and hand the document to the library (unless the same
/// bytes are there already: then nothing is chunked). `audited`: write the
/// upload's audit row naming `actor` (files; not `eval`'s text corpora).
fn write(
    library: &mut Library,
    doc: Document<'_>,
    actor: &Actor,
    audited: bool,
) -> Result<Outcome> {
    if let Some(existing) = library.duplicate_of(doc.collection, doc.content_hash)? {
        return Ok(Outcome::Duplicate {
            document_id: existing,
        });
    }
    let Extracted {
        format,
        title,
        pages,
        warnings,
    } = doc.extracted;
    let policy = library.store().collection_policy(doc.collection)?;
    let key = library.store().audit_sink().map(|s| s.key.clone());
    let unscreened = screen::Unscreened {
        pages,
        title,
        source_name: doc.source_name,
        collection: doc.collection,
    };
    let scanning = std::time::Instant::now();
    let decision = screen::screen(library.scanner(), policy, key.as_deref(), unscreened);
    library.stats.pii_secs += scanning.elapsed().as_secs_f64();
    let screened = match decision {
        screen::Decision::Keep(s) => s,
        screen::Decision::Refuse { reason, findings } => {
            let names = (doc.collection, doc.source_name, doc.content_hash);
            let entry = refusal_entry(library, actor, names, &findings);
            library.store_mut().record(entry)?;
            return Ok(Outcome::Rejected { reason });
        }
    };
    let mut warnings = warnings;
    if let Some(line) = screen::warning(&screened) {
        warnings.push(line);
    }
    let chunks = chunk::chunk_pages(
        screened.pages.iter().map(|p| (p.number, p.text.as_str())),
        &library.config().chunk,
    );
    let title = screened
        .title
        .clone()
        .unwrap_or_else(|| title_from_name(&screened.source_name));
    let pages = new_pages(&screened.pages);
    let new_chunks = new_chunks(&chunks);
    let findings: Vec<_> = screened
        .findings
        .iter()
        .map(screen::Found::as_new)
        .collect();
    let audit = audited.then(|| {
        Entry::new(
            actor,
            "document.upload",
            format!("collection:{}", doc.collection),
        )
        .detail(serde_json::json!({
            "file": screened.source_name,
            "sha256": doc.content_hash,
            "bytes": doc.bytes.len(),
            "pages": screened.pages.len(),
            "pii": {"policy": screened.policy, "findings": screen::counts(&screened.findings)},
        }))
    });
    let incoming = Incoming {
        collection: doc.collection,
        source_name: &screened.source_name,
        title: &title,
        content_hash: doc.content_hash,
        bytes: doc.bytes,
        mime: format.mime(),
        pages: &pages,
        chunks: &new_chunks,
        warnings: &warnings,
        uploaded_by: doc.uploaded_by,
        pii_policy: screened.policy,
        findings: &findings,
    };
    library.add(&incoming, audit)
}

/// The audit row of a document a `reject` collection refused: the types
/// found and how many, never the identifiers (nor a file name holding one).
fn refusal_entry(
    library: &Library,
    actor: &Actor,
    (collection, source_name, content_hash): (&str, &str, &str),
    findings: &[screen::Found],
) -> Entry {
    let file = library
        .scanner()
        .map_or_else(|| source_name.to_string(), |s| s.redacted(source_name));
    Entry::new(actor, "pii.reject", format!("collection:{collection}"))
        .outcome("rejected")
        .detail(serde_json::json!({
            "file": file,
            "sha256": content_hash,
            "findings": screen::counts(findings),
        }))
}

pub(crate) fn new_pages(pages: &[extract::Page]) -> Vec<NewPage<'_>> {
    pages
        .iter()
        .map(|p| NewPage {
            number: p.number,
            has_text_layer: p.has_text_layer,
            text: &p.text,
            ocr: p.ocr.as_ref(),
        })
        .collect()
}

pub(crate) fn new_chunks(chunks: &[chunk::Chunk]) -> Vec<NewChunk<'_>> {
    chunks
        .iter()
        .map(|c| NewChunk {
            page: c.page,
            char_start: c.char_start,
            char_end: c.char_end,
            heading: &c.heading,
            text: &c.text,
        })
        .collect()
}

fn read_checked(path: &Path, limit: u64) -> std::result::Result<(Vec<u8>, String), Rejection> {
    let meta = std::fs::metadata(path).map_err(|e| Rejection::Io(e.to_string()))?;
    if meta.len() > limit {
        return Err(Rejection::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    if meta.len() == 0 {
        return Err(Rejection::Empty);
    }
    let bytes = std::fs::read(path).map_err(|e| Rejection::Io(e.to_string()))?;
    let hash = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, hash))
}

/// A display-safe version of an input file name: no directories, no control
/// characters, bounded length. Never used to build a path.
pub fn sanitise_name(path: &Path) -> String {
    let raw = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .take(200)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_string();
    if clean.is_empty() {
        "unnamed".into()
    } else {
        clean
    }
}

fn title_from_name(name: &str) -> String {
    let stem = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 5 => stem,
        _ => name,
    };
    stem.replace(['_', '-'], " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_for_display() {
        assert_eq!(sanitise_name(Path::new("/x/../../etc/passwd")), "passwd");
        assert_eq!(sanitise_name(Path::new("a\u{7}b\nc.pdf")), "a_b_c.pdf");
        assert_eq!(sanitise_name(Path::new("..")), "unnamed");
        assert_eq!(
            title_from_name("annual_leave-policy.pdf"),
            "annual leave policy"
        );
    }
}
