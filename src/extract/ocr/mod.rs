//! OCR for scanned pages: page images in, text with per-word boxes and
//! confidence out, in the extraction worker (same limits and confinement as
//! every other parser).
//!
//! A page image is deskewed ([`deskew`]), recognised by Tesseract
//! ([`tesseract`], page segmentation mode 3: full layout analysis), and its
//! words are joined line by line into the page text — the same normalised
//! form every extractor produces, so chunk offsets, citations and the
//! passage view work unchanged. Each word keeps its character offsets into
//! that text, its box on the page image and its confidence.

pub mod deskew;
pub mod tesseract;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Rejection;
use tesseract::{RawWord, Tesseract};

/// An 8-bit grayscale page image (0 black, 255 white), rows top to bottom.
#[derive(Debug, Clone)]
pub struct GrayImage {
    pub width: u32,
    pub height: u32,
    /// The resolution the page was scanned or rendered at.
    pub dpi: u32,
    pub pixels: Vec<u8>,
}

/// What the worker needs to know about OCR (from `[extract]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OcrSettings {
    pub enabled: bool,
    pub languages: Vec<String>,
    /// Tesseract's model directory; empty: `TESSDATA_PREFIX` or the distribution's.
    pub data_dir: PathBuf,
    /// Resolution PDF pages are rendered at for OCR.
    pub dpi: u32,
    /// Most pixels one page image may have (checked before decoding).
    pub max_pixels: u64,
    pub page_timeout_secs: u64,
    pub document_timeout_secs: u64,
    /// Pages whose mean word confidence is below this (0–100) are flagged.
    pub min_confidence: f32,
}

impl From<&crate::config::ExtractConfig> for OcrSettings {
    fn from(c: &crate::config::ExtractConfig) -> Self {
        OcrSettings {
            enabled: c.ocr,
            languages: c.ocr_languages.clone(),
            data_dir: c.ocr_data_dir.clone(),
            dpi: c.ocr_dpi,
            max_pixels: c.ocr_max_megapixels.saturating_mul(1_000_000),
            page_timeout_secs: c.ocr_page_timeout_secs,
            document_timeout_secs: c.ocr_document_timeout_secs,
            min_confidence: c.ocr_min_confidence,
        }
    }
}

/// One recognised word of a page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OcrWord {
    /// Character offsets of the word in the page text.
    pub start: u32,
    pub end: u32,
    /// left, top, right, bottom in pixels of the (deskewed) page image.
    pub bbox: [u32; 4],
    /// 0–100.
    pub confidence: f32,
}

/// How a page was read by OCR: enough to judge the text and, later, to
/// highlight a passage on the page image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageOcr {
    /// The page image the boxes refer to.
    pub width: u32,
    pub height: u32,
    pub dpi: u32,
    /// The skew that was corrected before recognition (degrees).
    pub skew_degrees: f32,
    /// Mean word confidence (0–100), weighted by word length.
    pub mean_confidence: f32,
    /// Below `[extract] ocr_min_confidence`: the text may be unreliable.
    pub low_confidence: bool,
    pub words: Vec<OcrWord>,
}

/// Pages with fewer dark pixels than this are blank: not sent to Tesseract
/// (which would spend a second finding nothing). One short line of 12-point
/// text at 300 dpi has thousands.
const BLANK_INK_PIXELS: usize = 300;
/// Words this unsure and without a letter or digit are specks and ruling
/// lines read as `|`, `~` or `—`, not text.
const SPECK_CONFIDENCE: f32 = 30.0;

/// The OCR engine of one extraction, loaded before the worker confines
/// itself, with the document's time budget.
pub struct Ocr {
    settings: OcrSettings,
    engine: Result<Tesseract, String>,
    /// When the first page began, and when the current one did.
    started: Option<Instant>,
    page_started: Instant,
    out_of_time: bool,
    progress: Option<Box<dyn FnMut(u32)>>,
}

impl Ocr {
    /// No OCR for this extraction, and why (shown where it would have helped).
    pub fn off(settings: OcrSettings, why: &str) -> Ocr {
        Ocr {
            settings,
            engine: Err(why.to_string()),
            started: None,
            page_started: Instant::now(),
            out_of_time: false,
            progress: None,
        }
    }

    /// Load Tesseract and the configured languages (a missing library or
    /// model makes OCR unavailable, with the reason, not an error).
    pub fn load(settings: OcrSettings) -> Ocr {
        if !settings.enabled {
            return Ocr::off(settings, "OCR is switched off ([extract] ocr = false)");
        }
        let engine = match tesseract::tessdata_dir(&settings.data_dir) {
            Some(dir) => Tesseract::load(&dir, &settings.languages),
            None => Err(
                "no Tesseract language models found (Debian: apt install tesseract-ocr-eng)".into(),
            ),
        };
        Ocr {
            settings,
            engine,
            started: None,
            page_started: Instant::now(),
            out_of_time: false,
            progress: None,
        }
    }

    /// Called with each page number before it is recognised.
    pub fn on_page(&mut self, progress: impl FnMut(u32) + 'static) {
        self.progress = Some(Box::new(progress));
    }

    /// Why OCR cannot run, if it cannot.
    pub fn unavailable(&self) -> Option<&str> {
        self.engine.as_ref().err().map(String::as_str)
    }

    pub fn settings(&self) -> &OcrSettings {
        &self.settings
    }

    /// Start on page `number` (before its image is rendered or decoded, so
    /// that work counts too): tells the progress callback, and refuses once
    /// the document's OCR time is spent.
    pub fn begin_page(&mut self, number: u32) -> Result<(), Rejection> {
        if let Err(why) = &self.engine {
            return Err(Rejection::OcrFailed(why.clone()));
        }
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        if now.duration_since(started) >= self.document_budget() {
            self.out_of_time = true;
            return Err(Rejection::OcrFailed(format!(
                "OCR stopped at page {number}: the document took longer than {} s",
                self.settings.document_timeout_secs
            )));
        }
        self.page_started = now;
        if let Some(progress) = &mut self.progress {
            progress(number);
        }
        Ok(())
    }

    /// Whether the document's OCR time is spent (the document fails; any
    /// other OCR problem skips one page).
    pub fn out_of_time(&self) -> bool {
        self.out_of_time
    }

    fn document_budget(&self) -> Duration {
        Duration::from_secs(self.settings.document_timeout_secs)
    }

    /// Read page `number` (after [`Ocr::begin_page`]) from its image: the
    /// page text and how it was read, or `None` for a blank page.
    pub fn read_page(
        &mut self,
        number: u32,
        image: GrayImage,
    ) -> Result<Option<(String, PageOcr)>, Rejection> {
        check_size(
            &self.settings,
            &format!("page {number}"),
            image.width as u64,
            image.height as u64,
        )?;
        if is_blank(&image) {
            return Ok(None);
        }
        let page_limit = Duration::from_secs(self.settings.page_timeout_secs);
        let document_left = self
            .document_budget()
            .saturating_sub(self.started.map_or(Duration::ZERO, |s| s.elapsed()));
        let page_left = page_limit.saturating_sub(self.page_started.elapsed());
        let engine = match &mut self.engine {
            Ok(engine) => engine,
            Err(why) => return Err(Rejection::OcrFailed(why.clone())),
        };
        let skew = deskew::estimate(&image);
        let image = deskew::straighten(image, skew);
        // Tesseract reads a zero deadline as none at all.
        let deadline = page_left.min(document_left).max(Duration::from_millis(1));
        let words = engine
            .recognise(&image, deadline)
            .map_err(Rejection::OcrFailed)?;
        if self.page_started.elapsed() > page_limit {
            return Err(Rejection::OcrFailed(format!(
                "OCR of page {number} took longer than {} s",
                self.settings.page_timeout_secs
            )));
        }
        if self
            .started
            .is_some_and(|s| s.elapsed() > self.document_budget())
        {
            self.out_of_time = true;
            return Err(Rejection::OcrFailed(format!(
                "OCR stopped at page {number}: the document took longer than {} s",
                self.settings.document_timeout_secs
            )));
        }
        let (text, words) = assemble(words);
        let mean_confidence = mean_confidence(&words);
        Ok(Some((
            text,
            PageOcr {
                width: image.width,
                height: image.height,
                dpi: image.dpi,
                skew_degrees: skew,
                low_confidence: !words.is_empty() && mean_confidence < self.settings.min_confidence,
                mean_confidence,
                words,
            },
        )))
    }
}

/// The reason inside an OCR rejection, for a per-page warning.
pub fn reason(rejection: &Rejection) -> String {
    match rejection {
        Rejection::OcrFailed(why) => why.clone(),
        other => other.to_string(),
    }
}

/// Refuse a page image larger than the limit, before it is decoded.
pub fn check_size(
    settings: &OcrSettings,
    what: &str,
    width: u64,
    height: u64,
) -> Result<(), Rejection> {
    let pixels = width.saturating_mul(height);
    if width == 0 || height == 0 || pixels > settings.max_pixels {
        return Err(Rejection::OcrFailed(format!(
            "{what} is {width}×{height} pixels ({:.0} MP), over the {} MP limit",
            pixels as f64 / 1e6,
            settings.max_pixels / 1_000_000
        )));
    }
    Ok(())
}

/// What an admin should know about the OCR of a document: how many pages
/// were read and how sure it was, and each page it was unsure of.
pub fn warnings(pages: &[super::Page]) -> Vec<String> {
    let read: Vec<(u32, &PageOcr)> = pages
        .iter()
        .filter_map(|p| p.ocr.as_ref().map(|o| (p.number, o)))
        .collect();
    if read.is_empty() {
        return Vec::new();
    }
    let mean = read.iter().map(|(_, o)| o.mean_confidence).sum::<f32>() / read.len() as f32;
    let mut out = vec![format!(
        "{} of {} pages read by OCR (mean confidence {mean:.0} %)",
        read.len(),
        pages.len()
    )];
    out.extend(read.iter().filter(|(_, o)| o.low_confidence).map(|(n, o)| {
        format!(
            "page {n}: low OCR confidence ({:.0} %); the text may be wrong",
            o.mean_confidence
        )
    }));
    out
}

fn is_blank(image: &GrayImage) -> bool {
    image
        .pixels
        .iter()
        .filter(|&&p| p < 128)
        .take(BLANK_INK_PIXELS)
        .count()
        < BLANK_INK_PIXELS
}

/// Join recognised words into page text: a space between words, a newline
/// between lines, a blank line between paragraphs and blocks. Word text is
/// cleaned the way [`super::normalise`] cleans every extractor's output, so
/// the text is already in normal form and the offsets stay true.
pub fn assemble(raw: Vec<RawWord>) -> (String, Vec<OcrWord>) {
    let mut text = String::new();
    let mut chars = 0u32;
    let mut words: Vec<OcrWord> = Vec::with_capacity(raw.len());
    for word in raw {
        let cleaned: String = word.text.chars().map(super::clean_char).collect();
        let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
        if cleaned.is_empty() || is_speck(&cleaned, word.confidence) {
            continue;
        }
        let separator = match () {
            _ if words.is_empty() => "",
            _ if word.starts_paragraph => "\n\n",
            _ if word.starts_line => "\n",
            _ => " ",
        };
        text.push_str(separator);
        chars += separator.chars().count() as u32;
        let start = chars;
        text.push_str(&cleaned);
        chars += cleaned.chars().count() as u32;
        words.push(OcrWord {
            start,
            end: chars,
            bbox: word.bbox,
            // One decimal is all the precision there is (and keeps the JSON small).
            confidence: (word.confidence * 10.0).round() / 10.0,
        });
    }
    (text, words)
}

fn is_speck(word: &str, confidence: f32) -> bool {
    confidence < SPECK_CONFIDENCE && !word.chars().any(char::is_alphanumeric)
}

/// Mean word confidence weighted by word length (a confident long word
/// says more about the page than a doubtful "l").
fn mean_confidence(words: &[OcrWord]) -> f32 {
    let (sum, weight) = words.iter().fold((0.0f64, 0.0f64), |(s, n), w| {
        let len = (w.end - w.start) as f64;
        (s + w.confidence as f64 * len, n + len)
    });
    if weight == 0.0 {
        0.0
    } else {
        (sum / weight) as f32
    }
}

/// What a PDF page's text layer is worth next to reading its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLayer {
    /// Real text: keep it, no OCR.
    Good,
    /// Plausible but thin text over a large image: a scan with a stamped
    /// page number or fax header. OCR reads the rest and is appended.
    ThinOverScan,
    /// None, or garbage (fonts without a Unicode map): OCR replaces it.
    Unusable,
}

/// Judge a text layer: enough characters, mostly letters and digits (dot
/// leaders aside), and not the private-use or replacement characters that
/// fonts without a Unicode map produce.
pub fn judge_text_layer(text: &str, draws_large_image: bool) -> TextLayer {
    let visible: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let n = visible.len();
    if n == 0 {
        return TextLayer::Unusable;
    }
    let alphanumeric = visible.iter().filter(|c| c.is_alphanumeric()).count();
    // Dot leaders and rules in a table of contents are not garbage.
    let leaders = visible.iter().filter(|c| LEADERS.contains(c)).count();
    let undecodable = visible
        .iter()
        .filter(|&&c| {
            ('\u{e000}'..='\u{f8ff}').contains(&c)
                || matches!(c, '\u{fffd}' | '\u{ffff}' | '\u{fffe}')
        })
        .count();
    // A page of real text with one figure in an unmapped font keeps its
    // layer: the undecodable glyphs must be common *and* outnumber half the
    // readable ones.
    let garbled = undecodable * 20 > n && undecodable * 2 > alphanumeric;
    if alphanumeric * 2 < n - leaders || garbled {
        TextLayer::Unusable
    } else if draws_large_image && n < 100 {
        TextLayer::ThinOverScan
    } else {
        TextLayer::Good
    }
}

/// Characters repeated as leaders and rules.
const LEADERS: &[char] = &['.', '·', '…', '_', '-', '–', '—', '=', '*'];

/// Word-level precision, recall and F1 of `found` against `truth`: both cut
/// into lower-case words (letters and digits), compared as multisets.
pub fn word_f1(found: &str, truth: &str) -> (f64, f64, f64) {
    use std::collections::HashMap;
    let words = |s: &str| -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for w in s
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *counts.entry(w.to_lowercase()).or_insert(0) += 1;
        }
        counts
    };
    let (f, t) = (words(found), words(truth));
    let matched: usize = f
        .iter()
        .map(|(w, &n)| n.min(t.get(w).copied().unwrap_or(0)))
        .sum();
    let (nf, nt) = (f.values().sum::<usize>(), t.values().sum::<usize>());
    let precision = if nf == 0 {
        0.0
    } else {
        matched as f64 / nf as f64
    };
    let recall = if nt == 0 {
        0.0
    } else {
        matched as f64 / nt as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    (precision, recall, f1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str, confidence: f32, paragraph: bool, line: bool) -> RawWord {
        RawWord {
            text: text.into(),
            bbox: [1, 2, 3, 4],
            confidence,
            starts_paragraph: paragraph,
            starts_line: line || paragraph,
        }
    }

    #[test]
    fn words_become_normalised_text_with_true_offsets() {
        let (text, words) = assemble(vec![
            raw("Annual", 95.0, true, false),
            raw("leave\u{0}", 90.0, false, false),
            raw("is", 91.0, false, true),
            raw("|", 12.0, false, false),
            raw("25 ", 80.0, false, false),
            raw("días.", 85.0, true, false),
        ]);
        assert_eq!(text, "Annual leave\nis 25\n\ndías.");
        assert_eq!(super::super::normalise(&text), text);
        let chars: Vec<char> = text.chars().collect();
        let spelled: Vec<String> = words
            .iter()
            .map(|w| chars[w.start as usize..w.end as usize].iter().collect())
            .collect();
        assert_eq!(spelled, ["Annual", "leave", "is", "25", "días."]);
        assert!((mean_confidence(&words) - 89.3).abs() < 0.5);
    }

    #[test]
    fn garbage_and_thin_text_layers_are_not_usable() {
        use TextLayer::*;
        let prose = "The employee is entitled to twenty-five days of annual leave per year.";
        assert_eq!(judge_text_layer(prose, false), Good);
        assert_eq!(
            judge_text_layer(prose, true),
            ThinOverScan,
            "a stamp over a scan"
        );
        assert_eq!(judge_text_layer("   \n ", false), Unusable);
        let private_use = "\u{e001}\u{e002}ab ".repeat(30);
        assert_eq!(judge_text_layer(&private_use, false), Unusable);
        assert_eq!(judge_text_layer(&"#$%& *()+ ".repeat(30), false), Unusable);
        assert_eq!(judge_text_layer(&prose.repeat(3), true), Good);
        let contents =
            "Table Of Content\nChapter 1 .................... 2\nChapter 2 .............. 7";
        assert_eq!(judge_text_layer(contents, false), Good, "dot leaders");
        let cid_garbage = ",- ./+.( ,/.0,\n .’.( 1.$.$$#.$.’!.$..&";
        assert_eq!(judge_text_layer(cid_garbage, false), Unusable);
        assert_eq!(
            judge_text_layer("\u{ffff}\u{ffff}\u{ffff}", false),
            Unusable
        );
    }

    #[test]
    fn word_f1_compares_word_multisets() {
        let (p, r, f) = word_f1("The cat, the HAT.", "the cat sat on the hat");
        assert!((p - 1.0).abs() < 1e-9);
        assert!((r - 4.0 / 6.0).abs() < 1e-9);
        assert!((f - 0.8).abs() < 1e-9);
        assert_eq!(word_f1("", "x"), (0.0, 0.0, 0.0));
    }
}
