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

/// Pages whose ink covers less than this share of pixels are blank: not sent
/// to Tesseract (which would spend a second finding nothing).
const BLANK_INK_SHARE: f64 = 0.0005;
/// Words this unsure and without a letter or digit are specks and ruling
/// lines read as `|`, `~` or `—`, not text.
const SPECK_CONFIDENCE: f32 = 30.0;

/// The OCR engine of one extraction, loaded before the worker confines
/// itself, with the document's time budget.
pub struct Ocr {
    settings: OcrSettings,
    engine: Result<Tesseract, String>,
    started: Option<Instant>,
    progress: Option<Box<dyn FnMut(u32)>>,
}

impl Ocr {
    /// No OCR for this extraction, and why (shown where it would have helped).
    pub fn off(settings: OcrSettings, why: &str) -> Ocr {
        Ocr {
            settings,
            engine: Err(why.to_string()),
            started: None,
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

    /// Read page `number` from its image: the page text and how it was read,
    /// or `None` for a blank page.
    pub fn read_page(
        &mut self,
        number: u32,
        image: GrayImage,
    ) -> Result<Option<(String, PageOcr)>, Rejection> {
        let engine = match &mut self.engine {
            Ok(engine) => engine,
            Err(why) => return Err(Rejection::OcrFailed(why.clone())),
        };
        check_size(
            &self.settings,
            &format!("page {number}"),
            image.width as u64,
            image.height as u64,
        )?;
        if is_blank(&image) {
            return Ok(None);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let document_budget = Duration::from_secs(self.settings.document_timeout_secs);
        let left = document_budget.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Rejection::OcrFailed(format!(
                "OCR stopped at page {number}: the document took longer than {} s",
                self.settings.document_timeout_secs
            )));
        }
        if let Some(progress) = &mut self.progress {
            progress(number);
        }
        let page_limit = Duration::from_secs(self.settings.page_timeout_secs);
        let page_started = Instant::now();
        let skew = deskew::estimate(&image);
        let image = deskew::straighten(image, skew);
        let words = engine.recognise(&image, page_limit.min(left));
        if page_started.elapsed() > page_limit {
            return Err(Rejection::OcrFailed(format!(
                "OCR of page {number} took longer than {} s",
                self.settings.page_timeout_secs
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
    let ink = image.pixels.iter().filter(|&&p| p < 128).count();
    (ink as f64) < image.pixels.len() as f64 * BLANK_INK_SHARE
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
            confidence: word.confidence,
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

/// Whether a page's text layer is worth keeping rather than reading the page
/// image: enough characters, mostly letters and digits, and not the private
/// use or replacement characters that fonts without a Unicode map produce.
pub fn text_layer_is_usable(text: &str, draws_large_image: bool) -> bool {
    let visible: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let n = visible.len();
    if n == 0 {
        return false;
    }
    // A scan with a stamped page number or a fax header as its only text.
    if draws_large_image && n < 100 {
        return false;
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
    alphanumeric * 2 >= n - leaders && undecodable * 20 <= n
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
        let prose = "The employee is entitled to twenty-five days of annual leave per year.";
        assert!(text_layer_is_usable(prose, false));
        assert!(!text_layer_is_usable(prose, true), "a stamp over a scan");
        assert!(!text_layer_is_usable("   \n ", false));
        assert!(!text_layer_is_usable(
            &"\u{e001}\u{e002}ab ".repeat(30),
            false
        ));
        assert!(!text_layer_is_usable(&"#$%& *()+ ".repeat(30), false));
        assert!(text_layer_is_usable(&prose.repeat(3), true));
        let contents = "Table Of Content\nChapter 1 ...................... 2\nChapter 2 ...................... 7";
        assert!(text_layer_is_usable(contents, false), "dot leaders");
        assert!(!text_layer_is_usable(
            ",- ./+.( ,/.0,\n .’.( 1.$.$$#.$.’!.$..&",
            false
        ));
        assert!(!text_layer_is_usable(
            "\u{ffff}\u{ffff}\u{ffff}\u{ffff}",
            false
        ));
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
