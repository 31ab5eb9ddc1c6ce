//! PDF text extraction on top of lopdf's object model.
//!
//! lopdf's own `extract_text` misses text inside Form XObjects, loses line and
//! word breaks, and turns CID fonts without a ToUnicode map into garbage. This
//! module walks each page's content stream itself: it follows `Do` into Form
//! XObjects (with their own resources), decodes strings with each font's
//! ToUnicode map or simple encoding, infers spaces and line breaks from text
//! positioning, and reports pages with no (decodable) text layer as such.
//! Those pages, and pages whose text layer is garbage or only a stamp over a
//! scanned image, are rendered and read by OCR when it is available.

use std::collections::{BTreeMap, HashSet};

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Encoding, Object, ObjectId};

use super::ocr::{self, Ocr};
use super::{Extracted, Format, Page, ParseLimits, Rejection, raster};

/// Decompressed bytes allowed for one content stream or font map.
const MAX_STREAM_BYTES: usize = 64 << 20;
/// Form XObjects nest; real files rarely go past 3 or 4 levels.
const MAX_FORM_DEPTH: usize = 12;
/// More pages than this is almost certainly a malformed or hostile page tree.
const MAX_PAGES: usize = 20_000;
/// Text operations processed per page, to bound work on pathological streams.
const MAX_OPS_PER_PAGE: usize = 2_000_000;

/// An image of at least this many pixels on a page with little text is a
/// scan (a stamp or a fax header may be its only text layer).
const SCAN_IMAGE_PIXELS: u64 = 500_000;

pub fn extract(bytes: &[u8], limits: &ParseLimits, ocr: &mut Ocr) -> Result<Extracted, Rejection> {
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
    // Pages OCR should read.
    let mut to_read = Vec::new();
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
        let layer = ocr::judge_text_layer(&text, walker.largest_image >= SCAN_IMAGE_PIXELS);
        if layer != ocr::TextLayer::Good {
            to_read.push(ToRead {
                index: pages.len(),
                id: page_id,
                layer,
                largest_image: walker.largest_image,
            });
        }
        pages.push(Page {
            number,
            text,
            has_text_layer,
            ocr: None,
        });
    }
    read_scanned_pages(bytes, &mut pages, &to_read, ocr, &mut warnings)?;
    let without_layer = pages
        .iter()
        .filter(|p| !p.has_text_layer && p.ocr.is_none())
        .count();
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

/// A page for OCR: where it is in `pages`, its object (to find it in the
/// renderer's page tree, which may differ from lopdf's on odd files), what
/// its text layer is worth, and the largest image it draws (declared pixels).
struct ToRead {
    index: usize,
    id: ObjectId,
    layer: ocr::TextLayer,
    largest_image: u64,
}

/// Render the pages in `to_read` and put what OCR reads in place of (or, on a
/// scan with a stamp as its only text, after) their text layer. A page OCR
/// cannot read keeps its layer, with a warning; only running out of the
/// document's OCR time fails the document.
fn read_scanned_pages(
    bytes: &[u8],
    pages: &mut [Page],
    to_read: &[ToRead],
    ocr: &mut Ocr,
    warnings: &mut Vec<String>,
) -> Result<(), Rejection> {
    if to_read.is_empty() {
        return Ok(());
    }
    if let Some(why) = ocr.unavailable() {
        let with_text = to_read
            .iter()
            .filter(|p| !pages[p.index].text.trim().is_empty())
            .count();
        if with_text > 0 {
            warnings.push(format!(
                "{with_text} pages look scanned or have an unusable text layer (kept as is); OCR is unavailable: {why}"
            ));
        }
        return Ok(());
    }
    let renderer = match raster::PdfRenderer::new(bytes) {
        Ok(renderer) => renderer,
        Err(e) => {
            warnings.push(format!("pages not read by OCR: {}", ocr::reason(&e)));
            return Ok(());
        }
    };
    for page in to_read {
        let number = pages[page.index].number;
        match read_one(&renderer, page, number, ocr) {
            Ok(Some((text, how))) => {
                merge(&mut pages[page.index], page.layer, text, how, ocr, warnings)
            }
            Ok(None) => {} // blank
            Err(e) if ocr.out_of_time() => return Err(e),
            Err(e) => warnings.push(format!(
                "page {number}: not read by OCR: {}",
                ocr::reason(&e)
            )),
        }
    }
    warnings.extend(ocr::warnings(pages));
    Ok(())
}

fn read_one(
    renderer: &raster::PdfRenderer,
    page: &ToRead,
    number: u32,
    ocr: &mut Ocr,
) -> Result<Option<(String, ocr::PageOcr)>, Rejection> {
    ocr.begin_page(number)?;
    let settings = ocr.settings().clone();
    // Decompression bombs: the declared size, before anything is decoded.
    if page.largest_image > settings.max_pixels {
        return Err(Rejection::OcrFailed(format!(
            "it holds a {:.0} MP image, over the {} MP limit",
            page.largest_image as f64 / 1e6,
            settings.max_pixels / 1_000_000
        )));
    }
    let image = renderer.render(page.id, number, &settings)?;
    ocr.read_page(number, image)
}

/// Put OCR's reading into the page. Where there was a text layer, OCR must be
/// sure of itself to change it (a table of symbols looks like garbage too).
fn merge(
    page: &mut Page,
    layer: ocr::TextLayer,
    text: String,
    mut how: ocr::PageOcr,
    ocr: &Ocr,
    warnings: &mut Vec<String>,
) {
    let had_layer = !page.text.trim().is_empty();
    if text.trim().is_empty() {
        return;
    }
    if had_layer && how.mean_confidence < ocr.settings().min_confidence {
        warnings.push(format!(
            "page {}: OCR of the page image was doubtful ({:.0} %); kept its text layer",
            page.number, how.mean_confidence
        ));
        return;
    }
    if layer == ocr::TextLayer::ThinOverScan && had_layer {
        // The stamp stays first; OCR's words move along by its length.
        let prefix = format!("{}\n\n", page.text.trim_end());
        let shift = prefix.chars().count() as u32;
        for word in &mut how.words {
            word.start += shift;
            word.end += shift;
        }
        page.text = prefix + &text;
    } else {
        page.text = text;
    }
    page.ocr = Some(how);
}

/// Width × height an image dictionary declares (references followed; a
/// CCITT image's `/Columns` counts too, as decoders size rows by it).
fn declared_pixels(doc: &Document, dict: &Dictionary) -> u64 {
    let number = |d: &Dictionary, key: &[u8]| {
        d.get(key)
            .ok()
            .and_then(|o| doc.dereference(o).ok())
            .and_then(|(_, o)| o.as_i64().ok())
            .unwrap_or(0)
            .max(0) as u64
    };
    let columns = dict
        .get(b"DecodeParms")
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .and_then(|(_, o)| o.as_dict().ok())
        .map_or(0, |p| number(p, b"Columns"));
    number(dict, b"Width")
        .max(columns)
        .saturating_mul(number(dict, b"Height"))
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

/// What the walker needs to know about one font: how to decode its strings
/// and how far each code advances the pen (to tell word gaps from kerning).
struct Font<'a> {
    decoder: FontDecoder<'a>,
    /// Composite (Type0) fonts use two-byte codes.
    two_byte: bool,
    /// Glyph widths in thousandths of an em, by code.
    widths: BTreeMap<u32, f32>,
    default_width: f32,
}

impl Font<'_> {
    fn decode(&self, bytes: &[u8]) -> Option<String> {
        match &self.decoder {
            FontDecoder::Known(enc) => enc.bytes_to_string(bytes).ok(),
            FontDecoder::Undecodable => None,
        }
    }

    fn codes<'b>(&self, bytes: &'b [u8]) -> impl Iterator<Item = u32> + 'b {
        let step = if self.two_byte { 2 } else { 1 };
        bytes
            .chunks(step)
            .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32))
    }

    fn width(&self, code: u32) -> f32 {
        self.widths
            .get(&code)
            .copied()
            .unwrap_or(self.default_width)
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

    fn lookup(
        &self,
        doc: &'a Document,
        category: &[u8],
        name: &[u8],
    ) -> Option<(Option<ObjectId>, &'a Object)> {
        self.dicts.iter().find_map(|dict| {
            let (_, cat) = doc.dereference(dict.get(category).ok()?).ok()?;
            let entry = cat.as_dict().ok()?.get(name).ok()?;
            doc.dereference(entry).ok()
        })
    }

    /// A stream's own /Resources in front of the enclosing scope.
    fn with_resources_of(&self, doc: &'a Document, dict: &'a Dictionary) -> Scope<'a> {
        let mut inner = self.clone();
        if let Ok(res) = dict.get(b"Resources")
            && let Ok((_, res)) = doc.dereference(res)
            && let Ok(res) = res.as_dict()
        {
            inner.dicts.insert(0, res);
        }
        inner
    }
}

/// A 2-D affine matrix [a b c d e f] as in the PDF spec (row-vector convention).
#[derive(Clone, Copy, Debug)]
struct Matrix([f32; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    /// translate(tx, ty) × self
    fn translated(self, tx: f32, ty: f32) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        Matrix([a, b, c, d, tx * a + ty * c + e, tx * b + ty * d + f])
    }
}

/// Text state that survives across BT/ET (PDF 32000-1 §9.3).
#[derive(Clone, Copy)]
struct TextState {
    font_size: f32,
    char_spacing: f32,
    word_spacing: f32,
    horizontal_scale: f32,
    leading: f32,
}

/// Walks content streams and accumulates the page's text.
struct Walker<'a> {
    doc: &'a Document,
    out: String,
    fonts: BTreeMap<(Option<ObjectId>, Vec<u8>), std::rc::Rc<Font<'a>>>,
    font: Option<std::rc::Rc<Font<'a>>>,
    state: TextState,
    tm: Matrix,
    tlm: Matrix,
    /// Where the previous glyph run ended: (x, y, effective font size) in text
    /// space of the current stream. Comparing it with where the next run starts
    /// tells a line break from a word gap from kerning.
    last_end: Option<(f32, f32, f32)>,
    ops: usize,
    shown_glyphs: usize,
    /// Pixels (as declared) of the largest image the page draws.
    largest_image: u64,
    visited_forms: HashSet<ObjectId>,
}

impl<'a> Walker<'a> {
    fn new(doc: &'a Document) -> Self {
        Walker {
            doc,
            out: String::new(),
            fonts: BTreeMap::new(),
            font: None,
            state: TextState {
                font_size: 12.0,
                char_spacing: 0.0,
                word_spacing: 0.0,
                horizontal_scale: 1.0,
                leading: 0.0,
            },
            tm: Matrix::IDENTITY,
            tlm: Matrix::IDENTITY,
            last_end: None,
            ops: 0,
            shown_glyphs: 0,
            largest_image: 0,
            visited_forms: HashSet::new(),
        }
    }

    fn page(&mut self, page_id: ObjectId) -> Result<(), String> {
        let data = self
            .doc
            .get_page_content_with_limit(page_id, MAX_STREAM_BYTES)
            .map_err(|e| format!("content stream: {e}"))?;
        let scope = Scope::for_page(self.doc, page_id);
        let result = self.stream(&data, &scope, 0);
        self.annotations(page_id, &scope);
        result
    }

    /// Text drawn by annotations (filled form fields, free-text notes) lives in
    /// their appearance streams, not in the page content.
    fn annotations(&mut self, page_id: ObjectId, scope: &Scope<'a>) {
        let doc = self.doc;
        let Ok(page) = doc.get_dictionary(page_id) else {
            return;
        };
        let Ok(annots) = page.get_deref(b"Annots", doc).and_then(Object::as_array) else {
            return;
        };
        for annot in annots.iter().take(5_000) {
            let Ok((_, annot)) = doc.dereference(annot) else {
                continue;
            };
            let Ok(annot) = annot.as_dict() else { continue };
            if annot.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Popup") {
                continue;
            }
            let Ok(normal) = annot
                .get_deref(b"AP", doc)
                .and_then(Object::as_dict)
                .and_then(|ap| ap.get_deref(b"N", doc))
            else {
                continue;
            };
            // /N is either the appearance stream or a dictionary of states (/AS picks one).
            let stream = match normal {
                Object::Stream(s) => Some(s),
                Object::Dictionary(states) => annot
                    .get(b"AS")
                    .and_then(Object::as_name)
                    .ok()
                    .and_then(|state| states.get_deref(state, doc).ok())
                    .and_then(|o| o.as_stream().ok()),
                _ => None,
            };
            if let Some(stream) = stream {
                let _ = self.form_stream(None, stream, scope, 0);
            }
        }
    }

    fn finish(&mut self) -> String {
        let text = std::mem::take(&mut self.out);
        // A page whose "text" is mostly replacement or private-use characters came
        // from a font we could not really decode: treat it as no text layer.
        let total = text.chars().filter(|c| !c.is_whitespace()).count();
        let bad = text
            .chars()
            .filter(|&c| {
                c == '\u{fffd}'
                    || ('\u{e000}'..='\u{f8ff}').contains(&c)
                    || c.is_control() && c != '\n'
            })
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
        let num = |i: usize| {
            op.operands
                .get(i)
                .and_then(|o| o.as_float().ok())
                .unwrap_or(0.0)
        };
        match op.operator.as_str() {
            "BT" => {
                self.tm = Matrix::IDENTITY;
                self.tlm = Matrix::IDENTITY;
            }
            "Tf" => {
                self.state.font_size = num(1);
                self.font = op
                    .operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .map(|name| self.font(scope, name));
            }
            "Tc" => self.state.char_spacing = num(0),
            "Tw" => self.state.word_spacing = num(0),
            "Tz" => self.state.horizontal_scale = num(0) / 100.0,
            "TL" => self.state.leading = num(0),
            "Td" => self.move_line(num(0), num(1)),
            "TD" => {
                self.state.leading = -num(1);
                self.move_line(num(0), num(1));
            }
            "Tm" => {
                let m = Matrix([num(0), num(1), num(2), num(3), num(4), num(5)]);
                self.tm = m;
                self.tlm = m;
            }
            "T*" => self.move_line(0.0, -self.state.leading),
            "Tj" => self.show(op.operands.first()),
            "'" => {
                self.move_line(0.0, -self.state.leading);
                self.show(op.operands.first());
            }
            "\"" => {
                self.state.word_spacing = num(0);
                self.state.char_spacing = num(1);
                self.move_line(0.0, -self.state.leading);
                self.show(op.operands.get(2));
            }
            "TJ" => {
                if let Some(Ok(items)) = op.operands.first().map(Object::as_array) {
                    for item in items {
                        match item {
                            Object::String(..) => self.show(Some(item)),
                            // Adjustment in thousandths of an em, against the writing direction.
                            other => {
                                if let Ok(k) = other.as_float() {
                                    let tx = -k / 1000.0
                                        * self.state.font_size
                                        * self.state.horizontal_scale;
                                    self.tm = self.tm.translated(tx, 0.0);
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

    fn move_line(&mut self, tx: f32, ty: f32) {
        self.tlm = self.tlm.translated(tx, ty);
        self.tm = self.tlm;
    }

    fn font(&mut self, scope: &Scope<'a>, name: &[u8]) -> std::rc::Rc<Font<'a>> {
        let doc = self.doc;
        let found = scope.lookup(doc, b"Font", name);
        let key = (found.and_then(|(id, _)| id), name.to_vec());
        if let Some(font) = self.fonts.get(&key) {
            return font.clone();
        }
        let font = std::rc::Rc::new(match found.and_then(|(_, o)| o.as_dict().ok()) {
            Some(dict) => font_for(doc, dict),
            None => Font {
                decoder: FontDecoder::Undecodable,
                two_byte: false,
                widths: BTreeMap::new(),
                default_width: 500.0,
            },
        });
        self.fonts.insert(key, font.clone());
        font
    }

    fn form(&mut self, scope: &Scope<'a>, name: &[u8], depth: usize) -> Result<(), String> {
        let doc = self.doc;
        let Some((id, object)) = scope.lookup(doc, b"XObject", name) else {
            return Ok(());
        };
        let Ok(stream) = object.as_stream() else {
            return Ok(());
        };
        match stream.dict.get(b"Subtype").and_then(Object::as_name).ok() {
            Some(b"Form") => {}
            Some(b"Image") => {
                // No text layer, but a scan: note its declared size, and its
                // soft mask's (the renderer decodes both).
                let pixels = declared_pixels(doc, &stream.dict);
                let mask = stream
                    .dict
                    .get(b"SMask")
                    .ok()
                    .and_then(|m| doc.dereference(m).ok())
                    .and_then(|(_, m)| m.as_stream().ok())
                    .map_or(0, |m| declared_pixels(doc, &m.dict));
                self.largest_image = self.largest_image.max(pixels).max(mask);
                return Ok(());
            }
            _ => return Ok(()),
        }
        self.form_stream(id, stream, scope, depth)
    }

    fn form_stream(
        &mut self,
        id: Option<ObjectId>,
        stream: &'a lopdf::Stream,
        scope: &Scope<'a>,
        depth: usize,
    ) -> Result<(), String> {
        if depth >= MAX_FORM_DEPTH {
            return Ok(());
        }
        if let Some(id) = id
            && !self.visited_forms.insert(id)
        {
            return Ok(()); // drawn before on this page, or a reference cycle
        }
        let data = stream
            .decompressed_content_with_limit(MAX_STREAM_BYTES)
            .unwrap_or_else(|_| stream.content.clone());
        let inner = scope.with_resources_of(self.doc, &stream.dict);
        // A form has its own coordinate system: positions inside it cannot be
        // compared with those outside, so it is set apart by line breaks.
        let saved = (self.tm, self.tlm, self.state, self.font.clone());
        self.newline();
        self.last_end = None;
        let result = self.stream(&data, &inner, depth + 1);
        self.newline();
        self.last_end = None;
        (self.tm, self.tlm, self.state, self.font) = saved;
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
        let [a, b, c, d, e, f] = self.tm.0;
        let size = (self.state.font_size * (c * c + d * d).sqrt())
            .abs()
            .max(0.01);
        if let Some((x0, y0, prev_size)) = self.last_end {
            // Project the jump onto the writing direction and its normal.
            let norm = (a * a + b * b).sqrt().max(1e-6);
            let (dir_x, dir_y) = (a / norm, b / norm);
            let (dx, dy) = (e - x0, f - y0);
            let along = dx * dir_x + dy * dir_y;
            let across = -dx * dir_y + dy * dir_x;
            let em = size.max(prev_size);
            if across.abs() > 0.6 * em {
                self.newline();
            } else if along > 0.2 * em || along < -1.5 * em {
                self.space();
            }
        }
        if let Some(text) = font.decode(bytes) {
            self.out.push_str(&text);
        }
        let advance: f32 = font
            .codes(bytes)
            .map(|code| {
                let space = if !font.two_byte && code == 32 {
                    self.state.word_spacing
                } else {
                    0.0
                };
                font.width(code) / 1000.0 * self.state.font_size + self.state.char_spacing + space
            })
            .sum::<f32>()
            * self.state.horizontal_scale;
        self.tm = self.tm.translated(advance, 0.0);
        self.last_end = Some((self.tm.0[4], self.tm.0[5], size));
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
}

fn font_for<'a>(doc: &'a Document, font: &'a Dictionary) -> Font<'a> {
    let composite = font.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Type0");
    let (widths, default_width) = if composite {
        cid_widths(doc, font)
    } else {
        simple_widths(doc, font)
    };
    Font {
        decoder: decoder_for(doc, font, composite),
        two_byte: composite,
        widths,
        default_width,
    }
}

/// /FirstChar + /Widths of a simple font.
fn simple_widths(doc: &Document, font: &Dictionary) -> (BTreeMap<u32, f32>, f32) {
    let mut map = BTreeMap::new();
    let first = font
        .get(b"FirstChar")
        .and_then(Object::as_i64)
        .unwrap_or(0)
        .max(0) as u32;
    if let Ok(widths) = font.get_deref(b"Widths", doc).and_then(Object::as_array) {
        for (i, w) in widths.iter().take(65_536).enumerate() {
            if let Ok((_, w)) = doc.dereference(w)
                && let Ok(w) = w.as_float()
            {
                map.insert(first + i as u32, w);
            }
        }
    }
    // Without widths (standard 14 fonts), half an em is a fair average.
    let default = map.values().copied().filter(|w| *w > 0.0).sum::<f32>() / map.len().max(1) as f32;
    (map, if default > 0.0 { default } else { 500.0 })
}

/// /DW and /W of a composite font's descendant CIDFont (CID = code for
/// Identity-H, which is what nearly all embedded CID fonts use).
fn cid_widths(doc: &Document, font: &Dictionary) -> (BTreeMap<u32, f32>, f32) {
    let mut map = BTreeMap::new();
    let descendant = font
        .get_deref(b"DescendantFonts", doc)
        .and_then(Object::as_array)
        .ok()
        .and_then(|a| a.first())
        .and_then(|d| doc.dereference(d).ok())
        .and_then(|(_, d)| d.as_dict().ok());
    let Some(cid_font) = descendant else {
        return (map, 1000.0);
    };
    let default = cid_font
        .get(b"DW")
        .and_then(Object::as_float)
        .unwrap_or(1000.0);
    if let Ok(w) = cid_font.get_deref(b"W", doc).and_then(Object::as_array) {
        let mut i = 0;
        while i + 1 < w.len() && map.len() < 65_536 {
            let Ok(first) = w[i].as_i64() else { break };
            match doc.dereference(&w[i + 1]).map(|(_, o)| o) {
                Ok(Object::Array(list)) => {
                    for (j, width) in list.iter().enumerate().take(65_536) {
                        if let Ok(width) = width.as_float() {
                            map.insert((first.max(0) as u32).saturating_add(j as u32), width);
                        }
                    }
                    i += 2;
                }
                Ok(other) => {
                    let (Ok(last), Some(width)) =
                        (other.as_i64(), w.get(i + 2).and_then(|o| o.as_float().ok()))
                    else {
                        break;
                    };
                    for cid in first.max(0)..=last.min(first.max(0) + 65_536) {
                        map.insert(cid as u32, width);
                    }
                    i += 3;
                }
                Err(_) => break,
            }
        }
    }
    (map, default)
}

fn decoder_for<'a>(doc: &'a Document, font: &'a Dictionary, composite: bool) -> FontDecoder<'a> {
    let has_to_unicode = font
        .get_deref(b"ToUnicode", doc)
        .and_then(Object::as_stream)
        .is_ok();
    if composite && !has_to_unicode {
        // Predefined Unicode CMaps (UniGB-UCS2-H, …) decode without ToUnicode.
        let encoding = font
            .get(b"Encoding")
            .and_then(Object::as_name)
            .unwrap_or(b"");
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

    fn no_ocr() -> Ocr {
        Ocr::off(limits().ocr, "not in this test")
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
        let blank_content =
            doc.add_object(Stream::new(dictionary! {}, b"0 0 m 10 10 l S".to_vec()));
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
        let e = extract(&pdf_with_form(), &limits(), &mut no_ocr()).unwrap();
        assert_eq!(e.pages.len(), 2);
        let text = &e.pages[0].text;
        assert!(text.contains("Hello world"), "{text:?}");
        assert!(text.contains("Kerned gap"), "{text:?}");
        assert!(text.contains("Inside the form"), "{text:?}");
        assert!(e.pages[0].has_text_layer);
        assert!(
            !e.pages[1].has_text_layer,
            "a page with only graphics has no text layer"
        );
        assert!(
            e.warnings.iter().any(|w| w.contains("1 of 2 pages")),
            "{:?}",
            e.warnings
        );
    }

    #[test]
    fn truncated_pdf_never_panics() {
        let full = pdf_with_form();
        for cut in [10, full.len() / 3, full.len() / 2, full.len() - 20] {
            let _ = extract(&full[..cut], &limits(), &mut no_ocr());
        }
    }
}
