//! PDF text extraction on top of lopdf's object model.
//!
//! lopdf's own `extract_text` misses text inside Form XObjects, loses line and
//! word breaks, and turns CID fonts without a ToUnicode map into garbage. This
//! module walks each page's content stream itself: it follows `Do` into Form
//! XObjects (with their own resources), decodes strings with each font's
//! ToUnicode map or simple encoding, infers spaces and line breaks from text
//! positioning, and reports pages with no (decodable) text layer as such.

use std::collections::{BTreeMap, HashSet};

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Encoding, Object, ObjectId};

use super::{Extracted, Format, Page, ParseLimits, Rejection};

/// Decompressed bytes allowed for one content stream or font map.
const MAX_STREAM_BYTES: usize = 64 << 20;
/// Form XObjects nest; real files rarely go past 3 or 4 levels.
const MAX_FORM_DEPTH: usize = 12;
/// More pages than this is almost certainly a malformed or hostile page tree.
const MAX_PAGES: usize = 20_000;
/// Text operations processed per page, to bound work on pathological streams.
const MAX_OPS_PER_PAGE: usize = 2_000_000;

pub fn extract(bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, Rejection> {
    let doc = Document::load_mem(bytes).map_err(|e| malformed(e.to_string()))?;
    if doc.is_encrypted() {
        // lopdf decrypts files with an empty user password while loading; one
        // that is still encrypted needs a password we do not have.
        return Err(Rejection::Unsupported("password-protected PDF".into()));
    }
    let page_ids = doc.get_pages();
    if page_ids.is_empty() {
        return Err(malformed("no pages".into()));
    }
    if page_ids.len() > MAX_PAGES {
        return Err(malformed(format!(
            "{} pages, limit {MAX_PAGES}",
            page_ids.len()
        )));
    }
    let mut pages = Vec::with_capacity(page_ids.len());
    let mut warnings = Vec::new();
    let mut output_bytes: u64 = 0;
    let mut undecodable_pages = 0;
    for (&number, &page_id) in &page_ids {
        let mut walker = Walker::new(&doc);
        let outcome = walker.page(page_id);
        let text = walker.finish();
        if let Err(reason) = outcome {
            warnings.push(format!("page {number}: {reason}"));
        }
        let has_text_layer = walker.shown_glyphs > 0 && !text.trim().is_empty();
        if walker.shown_glyphs > 0 && !has_text_layer {
            undecodable_pages += 1;
        }
        output_bytes += text.len() as u64;
        if output_bytes > limits.max_output_bytes {
            return Err(Rejection::OutputTooLarge(limits.max_output_bytes));
        }
        pages.push(Page {
            number,
            text,
            has_text_layer,
        });
    }
    let without_layer = pages.iter().filter(|p| !p.has_text_layer).count();
    if without_layer > 0 {
        warnings.push(format!(
            "{without_layer} of {} pages have no text layer{}",
            pages.len(),
            if undecodable_pages > 0 {
                format!(" ({undecodable_pages} use fonts without a Unicode map)")
            } else {
                String::new()
            }
        ));
    }
    Ok(Extracted {
        format: Format::Pdf,
        title: info_title(&doc),
        pages,
        warnings,
    })
}

fn malformed(reason: String) -> Rejection {
    Rejection::Malformed {
        format: "PDF".into(),
        reason,
    }
}

fn info_title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let (_, info) = doc.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = doc.dereference(title).ok()?;
    let text = lopdf::decode_text_string(title).ok()?;
    let text = text.trim().to_string();
    (!text.is_empty() && text.chars().all(|c| !c.is_control())).then_some(text)
}

/// How to turn a font's string bytes into text.
enum FontDecoder<'a> {
    Known(Encoding<'a>),
    /// A composite font with no ToUnicode map: its codes are glyph ids we cannot
    /// map to characters without the embedded font program.
    Undecodable,
}

impl FontDecoder<'_> {
    fn decode(&self, bytes: &[u8]) -> Option<String> {
        match self {
            FontDecoder::Known(enc) => enc.bytes_to_string(bytes).ok(),
            FontDecoder::Undecodable => None,
        }
    }
}

/// Resource dictionaries visible at some point of a content stream, nearest first.
#[derive(Clone)]
struct Scope<'a> {
    dicts: Vec<&'a Dictionary>,
}

impl<'a> Scope<'a> {
    fn for_page(doc: &'a Document, page_id: ObjectId) -> Scope<'a> {
        let mut dicts = Vec::new();
        if let Ok((inline, ids)) = doc.get_page_resources(page_id) {
            dicts.extend(inline);
            dicts.extend(ids.into_iter().filter_map(|id| doc.get_dictionary(id).ok()));
        }
        Scope { dicts }
    }

    fn lookup(&self, doc: &'a Document, category: &[u8], name: &[u8]) -> Option<(Option<ObjectId>, &'a Object)> {
        self.dicts.iter().find_map(|dict| {
            let (_, cat) = doc.dereference(dict.get(category).ok()?).ok()?;
            let entry = cat.as_dict().ok()?.get(name).ok()?;
            doc.dereference(entry).ok()
        })
    }
}

/// Walks content streams and accumulates the page's text.
struct Walker<'a> {
    doc: &'a Document,
    out: String,
    fonts: BTreeMap<(Option<ObjectId>, Vec<u8>), std::rc::Rc<FontDecoder<'a>>>,
    font: Option<std::rc::Rc<FontDecoder<'a>>>,
    /// Current text line origin (y) and pen x, in text space; enough to tell a
    /// new line from a word gap.
    line_y: Option<f32>,
    last_x: f32,
    font_size: f32,
    ops: usize,
    shown_glyphs: usize,
    visited_forms: HashSet<ObjectId>,
}

impl<'a> Walker<'a> {
    fn new(doc: &'a Document) -> Self {
        Walker {
            doc,
            out: String::new(),
            fonts: BTreeMap::new(),
            font: None,
            line_y: None,
            last_x: 0.0,
            font_size: 12.0,
            ops: 0,
            shown_glyphs: 0,
            visited_forms: HashSet::new(),
        }
    }

    fn page(&mut self, page_id: ObjectId) -> Result<(), String> {
        let data = self
            .doc
            .get_page_content_with_limit(page_id, MAX_STREAM_BYTES)
            .map_err(|e| format!("content stream: {e}"))?;
        let scope = Scope::for_page(self.doc, page_id);
        self.stream(&data, &scope, 0)
    }

    fn finish(&mut self) -> String {
        let text = std::mem::take(&mut self.out);
        // A page whose "text" is mostly replacement or private-use characters came
        // from a font we could not really decode: treat it as no text layer.
        let total = text.chars().filter(|c| !c.is_whitespace()).count();
        let bad = text
            .chars()
            .filter(|&c| c == '\u{fffd}' || ('\u{e000}'..='\u{f8ff}').contains(&c) || c.is_control() && c != '\n')
            .count();
        if total > 0 && bad * 3 > total {
            return String::new();
        }
        text
    }

    fn stream(&mut self, data: &[u8], scope: &Scope<'a>, depth: usize) -> Result<(), String> {
        let content = Content::decode(data).map_err(|e| format!("content stream: {e}"))?;
        for op in &content.operations {
            self.ops += 1;
            if self.ops > MAX_OPS_PER_PAGE {
                return Err("too many content operations".into());
            }
            self.operation(op, scope, depth)?;
        }
        Ok(())
    }

    fn operation(&mut self, op: &Operation, scope: &Scope<'a>, depth: usize) -> Result<(), String> {
        let num = |i: usize| op.operands.get(i).and_then(|o| o.as_float().ok()).unwrap_or(0.0);
        match op.operator.as_str() {
            "BT" => {
                self.line_y = None;
                self.last_x = 0.0;
            }
            "ET" => self.soft_break(),
            "Tf" => {
                self.font_size = num(1).abs().max(1.0);
                self.font = op
                    .operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .map(|name| self.font_decoder(scope, name));
            }
            "Td" | "TD" => self.move_to(num(0), num(1), true),
            "Tm" => self.move_to(num(4), num(5), false),
            "T*" => self.newline(),
            "Tj" => self.show(op.operands.first()),
            "'" => {
                self.newline();
                self.show(op.operands.first());
            }
            "\"" => {
                self.newline();
                self.show(op.operands.get(2));
            }
            "TJ" => {
                if let Some(Ok(items)) = op.operands.first().map(Object::as_array) {
                    for item in items {
                        match item {
                            Object::String(..) => self.show(Some(item)),
                            // Kerning in thousandths of an em; a large negative
                            // adjustment is how many PDFs write a space.
                            other => {
                                if other.as_float().is_ok_and(|k| k < -180.0) {
                                    self.space();
                                }
                            }
                        }
                    }
                }
            }
            "Do" => {
                if let Some(name) = op.operands.first().and_then(|o| o.as_name().ok()) {
                    self.form(scope, name, depth)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn font_decoder(&mut self, scope: &Scope<'a>, name: &[u8]) -> std::rc::Rc<FontDecoder<'a>> {
        let doc = self.doc;
        let found = scope.lookup(doc, b"Font", name);
        let key = (found.and_then(|(id, _)| id), name.to_vec());
        if let Some(dec) = self.fonts.get(&key) {
            return dec.clone();
        }
        let decoder = match found.and_then(|(_, o)| o.as_dict().ok()) {
            Some(font) => decoder_for(doc, font),
            None => FontDecoder::Undecodable,
        };
        let decoder = std::rc::Rc::new(decoder);
        self.fonts.insert(key, decoder.clone());
        decoder
    }

    fn form(&mut self, scope: &Scope<'a>, name: &[u8], depth: usize) -> Result<(), String> {
        if depth >= MAX_FORM_DEPTH {
            return Ok(());
        }
        let doc = self.doc;
        let Some((id, object)) = scope.lookup(doc, b"XObject", name) else {
            return Ok(());
        };
        let Ok(stream) = object.as_stream() else {
            return Ok(());
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
            return Ok(()); // images carry no text layer
        }
        if let Some(id) = id
            && !self.visited_forms.insert(id)
        {
            return Ok(()); // drawn before on this page, or a reference cycle
        }
        let data = stream
            .decompressed_content_with_limit(MAX_STREAM_BYTES)
            .unwrap_or_else(|_| stream.content.clone());
        let mut inner = scope.clone();
        if let Ok(res) = stream.dict.get(b"Resources")
            && let Ok((_, res)) = doc.dereference(res)
            && let Ok(res) = res.as_dict()
        {
            inner.dicts.insert(0, res);
        }
        let saved = (self.line_y, self.last_x);
        self.line_y = None;
        let result = self.stream(&data, &inner, depth + 1);
        self.soft_break();
        (self.line_y, self.last_x) = saved;
        result
    }

    fn show(&mut self, operand: Option<&Object>) {
        let Some(Object::String(bytes, _)) = operand else {
            return;
        };
        self.shown_glyphs += bytes.len();
        let Some(font) = self.font.clone() else {
            return;
        };
        if let Some(text) = font.decode(bytes) {
            self.out.push_str(&text);
            // Approximate advance: half an em per byte is enough to tell a
            // following small move (kerning) from a word gap.
            self.last_x += bytes.len() as f32 * 0.5 * self.font_size;
        }
    }

    fn move_to(&mut self, x: f32, y: f32, relative: bool) {
        let (new_x, new_y) = if relative {
            (x, self.line_y.unwrap_or(0.0) + y)
        } else {
            (x, y)
        };
        match self.line_y {
            Some(old_y) if (old_y - new_y).abs() > self.font_size * 0.5 => self.newline(),
            Some(_) if relative && x.abs() > self.font_size * 0.15 => self.space(),
            Some(_) if !relative && (new_x - self.last_x).abs() > self.font_size * 0.15 => {
                self.space()
            }
            _ => {}
        }
        self.line_y = Some(new_y);
        self.last_x = if relative { 0.0 } else { new_x };
    }

    fn space(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with(char::is_whitespace) {
            self.out.push(' ');
        }
    }

    fn newline(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.truncate(self.out.trim_end_matches(' ').len());
            self.out.push('\n');
        }
    }

    fn soft_break(&mut self) {
        self.newline();
    }
}

fn decoder_for<'a>(doc: &'a Document, font: &'a Dictionary) -> FontDecoder<'a> {
    let composite = font.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Type0");
    let has_to_unicode = font
        .get_deref(b"ToUnicode", doc)
        .and_then(Object::as_stream)
        .is_ok();
    if composite && !has_to_unicode {
        // Predefined Unicode CMaps (UniGB-UCS2-H, …) decode without ToUnicode.
        let encoding = font.get(b"Encoding").and_then(Object::as_name).unwrap_or(b"");
        if !encoding.starts_with(b"Uni") {
            return FontDecoder::Undecodable;
        }
    }
    match font.get_font_encoding_with_limit(doc, MAX_STREAM_BYTES) {
        Ok(enc) => FontDecoder::Known(enc),
        Err(_) => FontDecoder::Undecodable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::{Stream, dictionary};

    fn limits() -> ParseLimits {
        ParseLimits::from(&crate::config::ExtractConfig::default())
    }

    /// One page whose text is split between the page stream and a Form XObject.
    fn pdf_with_form() -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        });
        let form = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 600.into(), 800.into()],
                "Resources" => dictionary! { "Font" => dictionary! { "F2" => font } },
            },
            b"BT /F2 12 Tf 72 600 Td (Inside the form) Tj ET".to_vec(),
        ));
        let content = b"BT /F1 12 Tf 72 700 Td (Hello) Tj 40 0 Td (world) Tj 0 -20 Td [(Ker) -50 (ned) -300 (gap)] TJ ET /X1 Do".to_vec();
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let pages_id = doc.new_object_id();
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            "Resources" => dictionary! {
                "Font" => dictionary! { "F1" => font },
                "XObject" => dictionary! { "X1" => form },
            },
            "MediaBox" => vec![0.into(), 0.into(), 600.into(), 800.into()],
        });
        let blank_content = doc.add_object(Stream::new(dictionary! {}, b"0 0 m 10 10 l S".to_vec()));
        let blank = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => blank_content,
            "MediaBox" => vec![0.into(), 0.into(), 600.into(), 800.into()],
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into(), blank.into()], "Count" => 2,
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("save test pdf");
        out
    }

    #[test]
    fn text_from_page_and_form_xobject_with_spacing() {
        let e = extract(&pdf_with_form(), &limits()).unwrap();
        assert_eq!(e.pages.len(), 2);
        let text = &e.pages[0].text;
        assert!(text.contains("Hello world"), "{text:?}");
        assert!(text.contains("Kerned gap"), "{text:?}");
        assert!(text.contains("Inside the form"), "{text:?}");
        assert!(e.pages[0].has_text_layer);
        assert!(!e.pages[1].has_text_layer, "a page with only graphics has no text layer");
        assert!(e.warnings.iter().any(|w| w.contains("1 of 2 pages")), "{:?}", e.warnings);
    }

    #[test]
    fn truncated_pdf_never_panics() {
        let full = pdf_with_form();
        for cut in [10, full.len() / 3, full.len() / 2, full.len() - 20] {
            let _ = extract(&full[..cut], &limits());
        }
    }
}
