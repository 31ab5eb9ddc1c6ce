//! DOCX: a zip archive of XML parts. Archive limits (entry count, declared
//! uncompressed size, compression ratio) are checked from the central directory
//! before anything is inflated, and inflation itself is capped, because the
//! declared sizes of a hostile archive may lie.

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{Extracted, Format, Page, ParseLimits, Rejection};

const DOCUMENT_PART: &str = "word/document.xml";
const CORE_PROPS_PART: &str = "docProps/core.xml";
/// Ratios above this are compression bombs, not documents (text XML is ~10:1).
const MAX_COMPRESSION_RATIO: u64 = 200;

pub fn extract(bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, Rejection> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| malformed(e.to_string()))?;
    check_archive_limits(&mut archive, limits)?;
    if archive.index_for_name(DOCUMENT_PART).is_none() {
        return Err(Rejection::Unsupported(
            "zip archive that is not a Word (DOCX) document".into(),
        ));
    }
    let xml = read_part(
        &mut archive,
        DOCUMENT_PART,
        limits.max_archive_uncompressed_bytes,
    )?;
    let title = if archive.index_for_name(CORE_PROPS_PART).is_some() {
        read_part(&mut archive, CORE_PROPS_PART, 1 << 20)
            .ok()
            .and_then(|core| core_title(&core))
    } else {
        None
    };
    let pages = document_pages(&xml)?;
    Ok(Extracted {
        format: Format::Docx,
        title,
        pages,
        warnings: Vec::new(),
    })
}

fn malformed(reason: String) -> Rejection {
    Rejection::Malformed {
        format: "DOCX".into(),
        reason,
    }
}

fn check_archive_limits(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    limits: &ParseLimits,
) -> Result<(), Rejection> {
    if archive.len() > limits.max_archive_entries {
        return Err(Rejection::ArchiveLimits(format!(
            "{} entries, limit {}",
            archive.len(),
            limits.max_archive_entries
        )));
    }
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| malformed(e.to_string()))?;
        let size = entry.size();
        let compressed = entry.compressed_size().max(1);
        total = total.saturating_add(size);
        if size > 1 << 20 && size / compressed > MAX_COMPRESSION_RATIO {
            return Err(Rejection::ArchiveLimits(format!(
                "an entry expands {}:1 (compression bomb)",
                size / compressed
            )));
        }
    }
    if total > limits.max_archive_uncompressed_bytes {
        return Err(Rejection::ArchiveLimits(format!(
            "declares {total} uncompressed bytes, limit {}",
            limits.max_archive_uncompressed_bytes
        )));
    }
    Ok(())
}

fn read_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    cap: u64,
) -> Result<Vec<u8>, Rejection> {
    let entry = archive
        .by_name(name)
        .map_err(|e| malformed(e.to_string()))?;
    let mut out = Vec::new();
    entry
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed(format!("{name}: {e}")))?;
    if out.len() as u64 > cap {
        return Err(Rejection::ArchiveLimits(format!(
            "{name} inflates past {cap} bytes"
        )));
    }
    Ok(out)
}

fn core_title(xml: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(xml);
    let mut in_title = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::Text(t) if in_title => {
                let title = t.xml10_content().trim().to_string();
                return (!title.is_empty()).then_some(title);
            }
            Event::End(_) => in_title = false,
            Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}

/// Walk `word/document.xml`: `w:p` paragraphs, `w:t` runs, tabs and breaks,
/// heading styles as `#` lines, explicit and rendered page breaks as pages.
fn document_pages(xml: &[u8]) -> Result<Vec<Page>, Rejection> {
    let mut reader = Reader::from_reader(xml);
    let mut pages = vec![String::new()];
    let mut paragraph = String::new();
    let mut heading: Option<usize> = None;
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(format!("document.xml: {e}")))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "t" => in_text = true,
                "tab" => paragraph.push('\t'),
                "br" | "cr" => {
                    let page_break = e.attributes().flatten().any(|a| {
                        a.key.local_name().as_ref() == "type" && a.value.as_ref() == "page"
                    });
                    if page_break {
                        flush_paragraph(&mut pages, &mut paragraph, heading);
                        pages.push(String::new());
                    } else {
                        paragraph.push('\n');
                    }
                }
                "lastRenderedPageBreak" if !pages.last().is_some_and(|p| p.is_empty()) => {
                    flush_paragraph(&mut pages, &mut paragraph, heading);
                    pages.push(String::new());
                }
                "pStyle" => {
                    heading = e.attributes().flatten().find_map(|a| {
                        (a.key.local_name().as_ref() == "val")
                            .then(|| heading_level(&a.value))
                            .flatten()
                    });
                }
                _ => {}
            },
            Event::Text(t) if in_text => {
                let text = t.xml10_content();
                paragraph.push_str(&text);
            }
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    paragraph.push(c);
                } else {
                    match r.as_ref() {
                        "amp" => paragraph.push('&'),
                        "lt" => paragraph.push('<'),
                        "gt" => paragraph.push('>'),
                        "quot" => paragraph.push('"'),
                        "apos" => paragraph.push('\''),
                        _ => {}
                    }
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    flush_paragraph(&mut pages, &mut paragraph, heading);
                    heading = None;
                }
                "tc" => paragraph.push(' '),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    flush_paragraph(&mut pages, &mut paragraph, heading);
    Ok(pages
        .into_iter()
        .enumerate()
        .map(|(i, text)| Page {
            number: i as u32 + 1,
            text,
            has_text_layer: true,
            ocr: None,
        })
        .collect())
}

fn heading_level(style: &str) -> Option<usize> {
    let lower = style.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    let digits = lower.strip_prefix("heading")?;
    digits.trim().parse::<usize>().ok().map(|n| n.clamp(1, 6))
}

fn flush_paragraph(pages: &mut [String], paragraph: &mut String, heading: Option<usize>) {
    let text = paragraph.trim();
    if let Some(page) = pages.last_mut()
        && !text.is_empty()
    {
        if let Some(level) = heading {
            page.push_str(&"#".repeat(level));
            page.push(' ');
        }
        page.push_str(text);
        page.push_str("\n\n");
    }
    paragraph.clear();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal but valid DOCX built in memory.
    pub(crate) fn make_docx(body_xml: &str) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let doc = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body_xml}</w:body></w:document>"#
        );
        zip.start_file("[Content_Types].xml", opts).unwrap();
        zip.write_all(b"<Types/>").unwrap();
        zip.start_file(DOCUMENT_PART, opts).unwrap();
        zip.write_all(doc.as_bytes()).unwrap();
        zip.finish().unwrap();
        out.into_inner()
    }

    fn limits() -> ParseLimits {
        ParseLimits::from(&crate::config::ExtractConfig::default())
    }

    #[test]
    fn paragraphs_headings_and_page_breaks() {
        let docx = make_docx(concat!(
            r#"<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Intro</w:t></w:r></w:p>"#,
            r#"<w:p><w:r><w:t xml:space="preserve">Hello </w:t></w:r><w:r><w:t>world &amp; co</w:t></w:r></w:p>"#,
            r#"<w:p><w:r><w:br w:type="page"/></w:r></w:p>"#,
            r#"<w:p><w:r><w:t>Second page</w:t></w:r></w:p>"#,
        ));
        let e = extract(&docx, &limits()).unwrap();
        assert_eq!(e.pages.len(), 2);
        assert!(e.pages[0].text.contains("# Intro"), "{:?}", e.pages);
        assert!(
            e.pages[0].text.contains("Hello world & co"),
            "{:?}",
            e.pages
        );
        assert!(e.pages[1].text.contains("Second page"));
    }

    #[test]
    fn zip_bomb_is_refused_before_inflating() {
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file(DOCUMENT_PART, opts).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
        let bomb = out.into_inner();
        assert!(bomb.len() < 1 << 20);
        let err = extract(&bomb, &limits()).unwrap_err();
        assert!(matches!(err, Rejection::ArchiveLimits(_)), "{err}");
    }

    #[test]
    fn plain_zip_is_not_a_document() {
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        zip.start_file("a.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"hi").unwrap();
        zip.finish().unwrap();
        let err = extract(&out.into_inner(), &limits()).unwrap_err();
        assert!(matches!(err, Rejection::Unsupported(_)), "{err}");
    }
}
