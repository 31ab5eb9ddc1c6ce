//! Plain text and Markdown: decode (UTF-8, UTF-16 with BOM, else Latin-1) and
//! split on form feeds into pages. Markdown keeps its `#` headings, which the
//! chunker uses as section boundaries.

use super::{Extracted, Format, Page, Rejection};

pub fn extract(bytes: &[u8], format: Format) -> Result<Extracted, Rejection> {
    let text = decode(bytes);
    let pages: Vec<Page> = text
        .split('\u{0c}')
        .enumerate()
        .map(|(i, t)| Page {
            number: i as u32 + 1,
            text: t.to_string(),
            has_text_layer: true,
            ocr: None,
        })
        .collect();
    let title = if format == Format::Markdown {
        text.lines()
            .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_string()))
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    Ok(Extracted {
        format,
        title,
        pages,
        warnings: Vec::new(),
    })
}

/// UTF-8 (BOM stripped), UTF-16 LE/BE with a BOM, otherwise Latin-1, which maps
/// every byte to a character and so never fails.
pub fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return decode(rest);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xff\xfe") {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xfe\xff") {
        return utf16(rest, u16::from_be_bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn utf16(bytes: &[u8], read: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|c| read([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|r| r.unwrap_or('\u{fffd}'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_fallback_and_utf16() {
        assert_eq!(decode(b"caf\xe9"), "café");
        assert_eq!(decode("naïve".as_bytes()), "naïve");
        assert_eq!(decode(b"\xff\xfeh\x00i\x00"), "hi");
        assert_eq!(decode(b"\xef\xbb\xbfok"), "ok");
    }

    #[test]
    fn form_feeds_make_pages_and_markdown_title() {
        let e = extract(b"# Guide\n\none\x0ctwo", Format::Markdown).unwrap();
        assert_eq!(e.pages.len(), 2);
        assert_eq!(e.pages[1].number, 2);
        assert_eq!(e.title.as_deref(), Some("Guide"));
    }
}
