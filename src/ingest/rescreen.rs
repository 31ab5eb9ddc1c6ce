//! Re-processing after a collection's policy changes: each document whose
//! rows were processed under another policy is screened again. Its stored
//! text is rescanned where it holds the identifiers (it was not redacted);
//! a redacted document is extracted again from its stored original. Under
//! `reject` a document holding identifiers is erased; otherwise its text,
//! chunks and findings are replaced in place (same document id) and it is
//! indexed again, or, when the text does not change, only its findings and
//! policy are updated.

use crate::audit::{Actor, Entry};
use crate::extract::{self, Page};
use crate::library::{Library, LibraryError};
use crate::store::pii::Replacement;

use super::screen::{self, Decision, Unscreened};
use super::{chunk, new_chunks, new_pages};

type Result<T> = std::result::Result<T, LibraryError>;

/// What became of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rescreen {
    /// Same text; findings and policy recorded.
    Unchanged,
    /// New text (redacted, or restored from the original), indexed again.
    Rewritten,
    /// Erased: the collection rejects documents holding identifiers.
    Removed,
}

/// A summary of [`rescreen_pending`].
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub unchanged: usize,
    pub rewritten: usize,
    pub removed: usize,
    pub answers_erased: usize,
    /// Documents that could not be re-processed, with why (they stay as
    /// they were and are tried again next time).
    pub failed: Vec<(i64, String)>,
}

impl Summary {
    /// Count what became of document `id`.
    pub fn add(&mut self, id: i64, result: Result<(Rescreen, usize)>) {
        match result {
            Ok((Rescreen::Unchanged, _)) => self.unchanged += 1,
            Ok((Rescreen::Rewritten, erased)) => {
                self.rewritten += 1;
                self.answers_erased += erased;
            }
            Ok((Rescreen::Removed, erased)) => {
                self.removed += 1;
                self.answers_erased += erased;
            }
            Err(e) => {
                tracing::warn!(document_id = id, error = %e, "could not re-process a document");
                self.failed.push((id, e.to_string()));
            }
        }
    }
}

/// Which documents [`rescreen`] takes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Selection<'a> {
    /// Only this collection.
    pub collection: Option<&'a str>,
    /// Every searchable document, not only those waiting (after the
    /// configured identifier types change).
    pub all: bool,
    /// At most this many (0: no limit); the rest wait for the next run.
    pub limit: usize,
    /// Documents not to try (they failed earlier in this process).
    pub skip: &'a [i64],
}

/// Re-process the documents `which` selects, telling `progress` (done,
/// total, title) as it goes.
pub fn rescreen(
    library: &mut Library,
    which: Selection<'_>,
    actor: &Actor,
    progress: &dyn Fn(usize, usize, &str),
) -> Result<Summary> {
    let mut ids = if which.all {
        library
            .store()
            .documents(which.collection)?
            .into_iter()
            .filter(|d| d.status == crate::store::DocStatus::Indexed)
            .map(|d| d.id)
            .collect()
    } else {
        library.store().documents_to_rescreen(which.collection)?
    };
    ids.retain(|id| !which.skip.contains(id));
    if which.limit > 0 {
        ids.truncate(which.limit);
    }
    let mut summary = Summary::default();
    for (i, id) in ids.iter().enumerate() {
        let title = library.store().document(*id)?.title;
        progress(i, ids.len(), &title);
        let result = rescreen_document(library, *id, actor);
        // The library itself failing (disk, database) stops the run.
        if let Err(e @ (LibraryError::Store(_) | LibraryError::DataDir { .. })) = result {
            return Err(e);
        }
        summary.add(*id, result);
    }
    progress(ids.len(), ids.len(), "");
    if summary.rewritten > 0 {
        // The replaced text's terms leave the index files, not only the results.
        library.purge_deleted();
    }
    Ok(summary)
}

/// Screen one document again under its collection's policy. Returns what
/// happened and how many stored answers were erased.
pub fn rescreen_document(
    library: &mut Library,
    document_id: i64,
    actor: &Actor,
) -> Result<(Rescreen, usize)> {
    let doc = library.store().document(document_id)?;
    let (applied, policy, findings_before) = library.store().document_pii_state(document_id)?;
    let stored = library.store().stored_pages(document_id)?;
    let stored_pages: Vec<Page> = stored
        .into_iter()
        .map(|p| Page {
            number: p.number,
            text: p.text,
            has_text_layer: p.has_text_layer,
            ocr: p.ocr,
        })
        .collect();
    // Redacted text no longer holds the identifiers: read the original again.
    // Redacted text no longer holds the identifiers: read the original
    // again. If it cannot be read, the document stays as it is, waiting
    // (hidden from search if its collection now redacts or rejects).
    let (pages, title) = if applied == "redact" && findings_before > 0 {
        let extracted = reextract(library, &doc.stored_path, document_id)?;
        (extracted.pages, extracted.title.or(Some(doc.title.clone())))
    } else {
        (stored_pages.clone(), Some(doc.title.clone()))
    };
    let key = library.store().audit_sink().map(|s| s.key.clone());
    let decision = screen::screen(
        library.scanner(),
        policy,
        key.as_deref(),
        Unscreened {
            pages,
            title,
            source_name: &doc.source_name,
            collection: &doc.collection,
        },
    );
    let entry = |outcome: Rescreen, counts: serde_json::Value, erased: usize| {
        Entry::new(
            actor,
            "pii.reprocess",
            format!("collection:{}", doc.collection),
        )
        .documents([document_id])
        .detail(serde_json::json!({
            "policy": policy.as_str(),
            "previous": applied,
            "result": outcome,
            "findings": counts,
            "answers_erased": erased,
        }))
    };
    let screened = match decision {
        Decision::Refuse { findings, .. } => {
            let receipt = library.delete_as(document_id, actor)?;
            let audit = entry(
                Rescreen::Removed,
                screen::counts(&findings),
                receipt.answers_erased,
            );
            library.store_mut().record(audit)?;
            return Ok((Rescreen::Removed, receipt.answers_erased));
        }
        Decision::Keep(s) => s,
    };
    let findings: Vec<_> = screened
        .findings
        .iter()
        .map(screen::Found::as_new)
        .collect();
    let counts = screen::counts(&screened.findings);
    let warnings = rescreened_warnings(&doc.warnings, &screened);
    let same_text = screened.pages.len() == stored_pages.len()
        && screened
            .pages
            .iter()
            .zip(&stored_pages)
            .all(|(a, b)| a.text == b.text)
        && screened.source_name == doc.source_name
        && screened.title.as_deref() == Some(doc.title.as_str());
    if same_text {
        let audit = entry(Rescreen::Unchanged, counts, 0);
        library.store_mut().set_document_findings(
            document_id,
            screened.policy,
            &warnings,
            &findings,
            Some(&audit),
        )?;
        return Ok((Rescreen::Unchanged, 0));
    }
    let chunks = chunk::chunk_pages(
        screened.pages.iter().map(|p| (p.number, p.text.as_str())),
        &library.config().chunk,
    );
    let pages = new_pages(&screened.pages);
    let chunk_rows = new_chunks(&chunks);
    let title = screened.title.clone().unwrap_or_else(|| doc.title.clone());
    let replacement = Replacement {
        title: &title,
        source_name: &screened.source_name,
        pages: &pages,
        chunks: &chunk_rows,
        findings: &findings,
        pii_policy: screened.policy,
        warnings: &warnings,
    };
    // Stored answers that were given its passages are erased with them.
    let citing = library.store().answers_citing(document_id)?;
    let audit = entry(Rescreen::Rewritten, counts, citing);
    let erased = library.replace_content(document_id, &replacement, Some(&audit))?;
    Ok((Rescreen::Rewritten, erased))
}

/// The document's warnings with its sensitive-identifier line replaced by
/// this screening's ("… (reported)" becomes "… (redacted)", or goes).
fn rescreened_warnings(old: &str, screened: &screen::Screened) -> String {
    let mut kept: Vec<String> = old
        .split("; ")
        .filter(|w| !w.is_empty() && !w.starts_with(screen::WARNING_PREFIX))
        .map(str::to_string)
        .collect();
    kept.extend(screen::warning(screened));
    kept.join("; ")
}

fn reextract(library: &Library, stored_path: &str, document_id: i64) -> Result<extract::Extracted> {
    let failed = |reason: String| LibraryError::Reprocess {
        document_id,
        reason,
    };
    let path = crate::library::original_file(library.data_dir(), stored_path)
        .ok_or_else(|| failed("its stored original is missing".into()))?;
    let config = library.config();
    extract::worker::extract_isolated(&path, &config.extract, config.ingest.max_file_bytes)
        .map_err(|r| failed(format!("the original could not be read again: {r}")))
}
