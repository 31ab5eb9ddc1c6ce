//! Text extraction: bytes of an uploaded file in, text page by page out.
//!
//! The format is decided by magic bytes ([`sniff`]), never by the file name.
//! Parsing untrusted documents is the riskiest thing Enclave does, so the
//! format parsers run in a separate worker process ([`worker`]) with time,
//! memory and output limits; a crash or a hang there fails one document only.
//! Scanned pages and image files are read there too, by OCR ([`ocr`]) on
//! page images ([`raster`]).

pub mod confine;
pub mod docx;
pub mod html;
pub mod ocr;
pub mod pdf;
pub mod raster;
pub mod scan;
pub mod sniff;
pub mod text;
pub mod worker;

use serde::{Deserialize, Serialize};

pub use sniff::Format;

/// Limits the parsers enforce themselves (the worker process adds OS limits).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParseLimits {
    pub max_output_bytes: u64,
    pub max_archive_entries: usize,
    pub max_archive_uncompressed_bytes: u64,
    pub ocr: ocr::OcrSettings,
}

impl From<&crate::config::ExtractConfig> for ParseLimits {
    fn from(c: &crate::config::ExtractConfig) -> Self {
        ParseLimits {
            max_output_bytes: c.max_output_bytes,
            max_archive_entries: c.max_archive_entries,
            max_archive_uncompressed_bytes: c.max_archive_uncompressed_bytes,
            ocr: ocr::OcrSettings::from(c),
        }
    }
}

/// One page (or, for formats without pages, the whole document as page 1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Page {
    /// 1-based page number.
    pub number: u32,
    pub text: String,
    /// False when the page has no extractable text layer (e.g. a scanned image),
    /// as opposed to a page that is legitimately blank.
    pub has_text_layer: bool,
    /// How the page was read when its text comes from OCR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<ocr::PageOcr>,
}

/// What extraction produces for an accepted file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Extracted {
    pub format: Format,
    /// Title from document metadata or the first heading, if any.
    pub title: Option<String>,
    pub pages: Vec<Page>,
    /// Non-fatal problems worth showing to an admin (e.g. "3 pages without text layer").
    pub warnings: Vec<String>,
}

impl Extracted {
    pub fn has_any_text(&self) -> bool {
        self.pages.iter().any(|p| !p.text.trim().is_empty())
    }
}

/// Why a file was not accepted. Every variant renders as a one-line reason.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq)]
pub enum Rejection {
    #[error("empty file")]
    Empty,
    #[error("file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("unsupported file type ({0})")]
    Unsupported(String),
    #[error("malformed {format}: {reason}")]
    Malformed { format: String, reason: String },
    #[error("no extractable text: {0}")]
    NoText(String),
    #[error("archive limits exceeded: {0}")]
    ArchiveLimits(String),
    #[error("extracted text exceeds {0} bytes")]
    OutputTooLarge(u64),
    #[error("extraction timed out after {0} s")]
    Timeout(u64),
    #[error("OCR failed: {0}")]
    OcrFailed(String),
    #[error("extraction worker failed: {0}")]
    WorkerFailed(String),
    #[error("cannot read file: {0}")]
    Io(String),
}

/// Parse `bytes` in this process, with `ocr` for pages that are images.
/// Only the worker calls this directly; everything else goes through
/// [`worker::extract_isolated`].
pub fn extract_in_process(
    bytes: &[u8],
    limits: &ParseLimits,
    ocr: &mut ocr::Ocr,
) -> Result<Extracted, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::Empty);
    }
    let format = sniff::detect(bytes)?;
    let mut extracted = match format {
        Format::Pdf => pdf::extract(bytes, limits, ocr)?,
        Format::Docx => docx::extract(bytes, limits)?,
        Format::Html => html::extract(bytes)?,
        Format::Markdown | Format::Text => text::extract(bytes, format)?,
        Format::Png | Format::Jpeg | Format::Tiff => scan::extract(bytes, format, ocr)?,
    };
    for page in &mut extracted.pages {
        page.text = normalise(&page.text);
    }
    let total: u64 = extracted.pages.iter().map(|p| p.text.len() as u64).sum();
    if total > limits.max_output_bytes {
        return Err(Rejection::OutputTooLarge(limits.max_output_bytes));
    }
    if !extracted.has_any_text() {
        let without_layer = extracted.pages.iter().filter(|p| !p.has_text_layer).count();
        return Err(Rejection::NoText(if without_layer > 0 {
            format!(
                "{without_layer} of {} pages have no text layer (scanned or image-only){}",
                extracted.pages.len(),
                match (ocr.unavailable(), ocr_problem(&extracted.warnings)) {
                    (Some(why), _) => format!(" and OCR is unavailable: {why}"),
                    (None, Some(problem)) => format!("; {problem}"),
                    (None, None) => " and OCR found no text on them".into(),
                }
            )
        } else {
            "the document contains no text".into()
        }));
    }
    Ok(extracted)
}

/// The first page OCR could not read, from the warnings.
fn ocr_problem(warnings: &[String]) -> Option<&str> {
    warnings
        .iter()
        .find(|w| w.contains("not read by OCR"))
        .map(String::as_str)
}

/// Normalise extracted text: Unix newlines, no control characters, no trailing
/// spaces, at most one blank line in a row. Chunk offsets refer to this form.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.replace("\r\n", "\n").replace('\r', "\n").split('\n') {
        let cleaned: String = line.chars().map(clean_char).collect();
        let cleaned = cleaned.trim_end();
        if cleaned.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
            out.push('\n');
        } else {
            blank_run = 0;
            out.push_str(cleaned);
            out.push('\n');
        }
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

/// One character as normalised text has it: tabs, no-break spaces, control
/// characters, replacement characters and byte-order marks become spaces.
pub fn clean_char(c: char) -> char {
    match c {
        '\t' | '\u{a0}' => ' ',
        c if c.is_control() => ' ',
        '\u{fffd}' | '\u{feff}' => ' ',
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ParseLimits {
        ParseLimits::from(&crate::config::ExtractConfig::default())
    }

    fn no_ocr() -> ocr::Ocr {
        ocr::Ocr::off(limits().ocr, "not in this test")
    }

    #[test]
    fn normalise_collapses_blank_runs_and_controls() {
        let got = normalise("\n\nA\u{0}b\r\n\r\n\r\n  \nC\t d  \n\n");
        assert_eq!(got, "A b\n\nC  d");
    }

    #[test]
    fn empty_and_junk_are_rejected() {
        assert_eq!(
            extract_in_process(b"", &limits(), &mut no_ocr()),
            Err(Rejection::Empty)
        );
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(matches!(
            extract_in_process(&junk, &limits(), &mut no_ocr()),
            Err(Rejection::Unsupported(_))
        ));
    }
}
