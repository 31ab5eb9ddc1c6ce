//! File-type detection from content (magic bytes and, for text, the bytes
//! themselves). The file name is never consulted: a `.pdf` that is really a
//! JPEG is a JPEG.

use serde::{Deserialize, Serialize};

use super::Rejection;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Pdf,
    Docx,
    Html,
    Markdown,
    Text,
    /// Image files, read by OCR.
    Png,
    Jpeg,
    Tiff,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Pdf => "application/pdf",
            Format::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            Format::Html => "text/html",
            Format::Markdown => "text/markdown",
            Format::Text => "text/plain",
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Tiff => "image/tiff",
        }
    }

    /// How an admin would name it.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Pdf => "PDF",
            Format::Docx => "Word document",
            Format::Html => "HTML page",
            Format::Markdown => "Markdown",
            Format::Text => "text",
            Format::Png => "PNG image",
            Format::Jpeg => "JPEG image",
            Format::Tiff => "TIFF image",
        }
    }
}

/// Image formats read by OCR, by their magic bytes.
const IMAGE_MAGIC: &[(&[u8], Format)] = &[
    (b"\x89PNG\r\n\x1a\n", Format::Png),
    (b"\xff\xd8\xff", Format::Jpeg),
    (b"II*\x00", Format::Tiff),
    (b"MM\x00*", Format::Tiff),
];

/// Known binary formats we do not index, so the rejection can name them.
const OTHER_MAGIC: &[(&[u8], &str)] = &[
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"Rar!", "RAR archive"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "legacy Office (OLE) document",
    ),
    (b"{\\rtf", "RTF document"),
    (b"SQLite format 3\x00", "SQLite database"),
];

pub fn detect(bytes: &[u8]) -> Result<Format, Rejection> {
    // PDF readers accept the header anywhere in the first KiB.
    let head = &bytes[..bytes.len().min(1024)];
    if find(head, b"%PDF-").is_some() {
        return Ok(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        // The docx parser checks that the archive really is a Word document.
        return Ok(Format::Docx);
    }
    for (magic, format) in IMAGE_MAGIC {
        if bytes.starts_with(magic) {
            return Ok(*format);
        }
    }
    for (magic, name) in OTHER_MAGIC {
        if bytes.starts_with(magic) {
            return Err(Rejection::Unsupported((*name).into()));
        }
    }
    if !looks_like_text(bytes) {
        return Err(Rejection::Unsupported("binary data".into()));
    }
    if looks_like_html(head) {
        return Ok(Format::Html);
    }
    if looks_like_markdown(bytes) {
        return Ok(Format::Markdown);
    }
    Ok(Format::Text)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Text if it has no NUL bytes and few other control characters in a sample.
/// UTF-16 files (with a BOM) count as text too.
fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") {
        return true;
    }
    let sample = &bytes[..bytes.len().min(8192)];
    if sample.contains(&0) {
        return false;
    }
    let controls = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    controls * 100 <= sample.len()
}

fn looks_like_html(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    trimmed.starts_with("<!doctype html")
        || trimmed.starts_with("<html")
        || trimmed.starts_with("<head")
        || trimmed.starts_with("<body")
        || (trimmed.starts_with('<') && (text.contains("<html") || text.contains("<body")))
}

/// Markdown has no magic; look for its block syntax in the first lines.
fn looks_like_markdown(bytes: &[u8]) -> bool {
    let sample = String::from_utf8_lossy(&bytes[..bytes.len().min(16384)]);
    let mut signals = 0;
    for line in sample.lines().take(400) {
        let l = line.trim_start();
        let atx_heading = l.starts_with('#') && l.trim_start_matches('#').starts_with(' ');
        if atx_heading || l.starts_with("```") || l.starts_with("- [") {
            signals += 2;
        } else if l.starts_with("* ") || l.starts_with("- ") || l.starts_with("> ") {
            signals += 1;
        }
        if l.contains("](") {
            signals += 1;
        }
    }
    signals >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content_not_name() {
        assert_eq!(detect(b"%PDF-1.7\n...").unwrap(), Format::Pdf);
        assert_eq!(
            detect(b"<!DOCTYPE html><html><body>x</body></html>").unwrap(),
            Format::Html
        );
        assert_eq!(
            detect(b"# Title\n\nSome *text*.\n").unwrap(),
            Format::Markdown
        );
        assert_eq!(detect(b"Just words.\nMore words.\n").unwrap(), Format::Text);
        assert_eq!(detect("caf\u{e9}".as_bytes()).unwrap(), Format::Text);
        assert_eq!(detect(b"\x89PNG\r\n\x1a\nxxxx").unwrap(), Format::Png);
        assert_eq!(detect(b"II*\x00\x08\x00").unwrap(), Format::Tiff);
        assert_eq!(
            detect(b"GIF89a...."),
            Err(Rejection::Unsupported("GIF image".into()))
        );
        assert!(matches!(
            detect(b"ab\x00\x01\x02cd"),
            Err(Rejection::Unsupported(_))
        ));
    }
}
