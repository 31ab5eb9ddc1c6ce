//! Page images for OCR: uploaded PNG, JPEG and (multi-page) TIFF files
//! decoded to grayscale, and PDF pages rendered to grayscale. Every image's
//! dimensions are checked against the pixel limit before a pixel of it is
//! decoded (a 1 KB PNG can declare 100 000 × 100 000 pixels).
//!
//! PDF pages are *rendered* (hayro) rather than their embedded images
//! decoded: rendering composes what the page really shows — images cut into
//! strips, masks, placement, `/Rotate`, a text layer in an unusable font —
//! for 60–90 ms a page, against 1–2.6 s for the OCR that follows, and
//! measured word F1 was the same either way (0.975–0.979 on our scans).

use std::io::Cursor;

use super::Rejection;
use super::ocr::{GrayImage, OcrSettings, check_size};

/// A fax or scan batch has tens of pages; thousands is a hostile file.
const MAX_TIFF_PAGES: u32 = 2_000;

/// When a file does not say its resolution, assume the page is this many
/// inches wide (A4 is 8.27, US Letter 8.5): right for scans and close enough
/// for photos of a page, which is all Tesseract uses it for.
const ASSUMED_PAGE_INCHES: f64 = 8.4;

fn malformed(format: &str, reason: impl std::fmt::Display) -> Rejection {
    Rejection::Malformed {
        format: format.into(),
        reason: reason.to_string(),
    }
}

/// A resolution from the image's width when the file gives none.
fn assumed_dpi(width: u32) -> u32 {
    ((width as f64 / ASSUMED_PAGE_INCHES).round() as u32).clamp(70, 1200)
}

/// A PNG or JPEG file as one grayscale page.
pub fn decode_single(
    bytes: &[u8],
    what: &str,
    settings: &OcrSettings,
) -> Result<GrayImage, Rejection> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| malformed(what, e))?;
    let (width, height) = reader.into_dimensions().map_err(|e| malformed(what, e))?;
    check_size(settings, what, width as u64, height as u64)?;
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| malformed(what, e))?;
    // The decoder's own allocation cap, in case the header lied.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(settings.max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| malformed(what, e))?;
    // A phone photo says which way up it was taken.
    let orientation = image::ImageDecoder::orientation(&mut decoder)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = image::DynamicImage::from_decoder(decoder).map_err(|e| malformed(what, e))?;
    picture.apply_orientation(orientation);
    // Transparent areas are paper: composite onto white.
    let gray = picture.into_luma_alpha8();
    let (width, height) = gray.dimensions();
    let pixels = gray
        .pixels()
        .map(|p| {
            let [luma, alpha] = p.0;
            ((luma as u32 * alpha as u32 + 255 * (255 - alpha as u32)) / 255) as u8
        })
        .collect();
    Ok(GrayImage {
        width,
        height,
        dpi: assumed_dpi(width),
        pixels,
    })
}

/// The pages of a TIFF file, decoded one at a time (a fax of 50 pages is
/// never all in memory at once).
pub struct TiffPages<'a> {
    decoder: tiff::decoder::Decoder<Cursor<&'a [u8]>>,
    settings: OcrSettings,
    number: u32,
}

impl<'a> TiffPages<'a> {
    pub fn open(bytes: &'a [u8], settings: &OcrSettings) -> Result<TiffPages<'a>, Rejection> {
        let mut limits = tiff::decoder::Limits::default();
        limits.decoding_buffer_size =
            usize::try_from(settings.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX);
        let decoder = tiff::decoder::Decoder::new(Cursor::new(bytes))
            .map_err(|e| malformed("TIFF", e))?
            .with_limits(limits);
        Ok(TiffPages {
            decoder,
            settings: settings.clone(),
            number: 1,
        })
    }

    /// The current page's number (1-based).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Decode the current page.
    pub fn decode(&mut self) -> Result<GrayImage, Rejection> {
        tiff_page(&mut self.decoder, self.number, &self.settings)
    }

    /// Move to the next page; false after the last.
    pub fn advance(&mut self) -> Result<bool, Rejection> {
        if !self.decoder.more_images() {
            return Ok(false);
        }
        if self.number >= MAX_TIFF_PAGES {
            return Err(malformed(
                "TIFF",
                format!("more than {MAX_TIFF_PAGES} pages"),
            ));
        }
        self.decoder
            .next_image()
            .map_err(|e| malformed("TIFF", e))?;
        self.number += 1;
        Ok(true)
    }
}

fn tiff_page(
    decoder: &mut tiff::decoder::Decoder<Cursor<&[u8]>>,
    number: u32,
    settings: &OcrSettings,
) -> Result<GrayImage, Rejection> {
    use tiff::ColorType;
    use tiff::decoder::DecodingResult;
    use tiff::tags::Tag;
    let (width, height) = decoder.dimensions().map_err(|e| malformed("TIFF", e))?;
    check_size(
        settings,
        &format!("TIFF page {number}"),
        width as u64,
        height as u64,
    )?;
    let dpi = decoder
        .find_tag(Tag::XResolution)
        .ok()
        .flatten()
        .and_then(|v| v.into_f64().ok())
        .map(|d| d.round() as u32)
        .filter(|d| (50..=2400).contains(d))
        .unwrap_or_else(|| assumed_dpi(width));
    let compression = decoder
        .find_tag_unsigned::<u16>(Tag::Compression)
        .ok()
        .flatten();
    let colortype = decoder.colortype().map_err(|e| malformed("TIFF", e))?;
    // FillOrder 2 (least significant bit first, as HylaFAX stores faxes):
    // the tiff crate cannot read it; our fax decoder can, bits reversed.
    let lsb_first = decoder
        .find_tag_unsigned::<u16>(Tag::FillOrder)
        .ok()
        .flatten()
        == Some(2);
    if lsb_first && matches!(compression, Some(2..=4)) {
        let pixels = fax_strips(decoder, width, height, compression.unwrap_or(3), true)?;
        return Ok(GrayImage {
            width,
            height,
            dpi,
            pixels: white_paper(pixels, tiff::ColorType::Gray(1)),
        });
    }
    let pixels = match decoder.read_image() {
        Ok(DecodingResult::U8(data)) => gray_from_tiff(&data, width, height, colortype)?,
        Ok(DecodingResult::U16(data)) if colortype == ColorType::Gray(16) => {
            data.iter().map(|v| (v >> 8) as u8).collect()
        }
        Ok(_) => {
            return Err(Rejection::Unsupported(format!(
                "TIFF with {colortype:?} pixels"
            )));
        }
        // The tiff crate reads Group 4 but not the older Group 3 fax coding.
        Err(_) if matches!(compression, Some(2) | Some(3)) => {
            fax_strips(decoder, width, height, compression.unwrap_or(3), false)?
        }
        Err(e) => return Err(malformed("TIFF", e)),
    };
    Ok(GrayImage {
        width,
        height,
        dpi,
        pixels: white_paper(pixels, colortype),
    })
}

fn gray_from_tiff(
    data: &[u8],
    width: u32,
    height: u32,
    colortype: tiff::ColorType,
) -> Result<Vec<u8>, Rejection> {
    use tiff::ColorType;
    let (w, h) = (width as usize, height as usize);
    let luma = |r: u8, g: u8, b: u8| ((r as u32 * 77 + g as u32 * 150 + b as u32 * 29) >> 8) as u8;
    let pixels: Vec<u8> = match colortype {
        ColorType::Gray(8) => data.to_vec(),
        ColorType::Gray(1) => {
            let stride = w.div_ceil(8);
            (0..h)
                .flat_map(|y| (0..w).map(move |x| (y, x)))
                .map(|(y, x)| {
                    let bit = data
                        .get(y * stride + x / 8)
                        .map_or(0, |b| (b >> (7 - x % 8)) & 1);
                    if bit == 1 { 255 } else { 0 }
                })
                .collect()
        }
        ColorType::RGB(8) => data
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        ColorType::RGBA(8) => data
            .chunks_exact(4)
            .map(|p| luma(p[0], p[1], p[2]).saturating_add(255 - p[3]))
            .collect(),
        other => {
            return Err(Rejection::Unsupported(format!(
                "TIFF with {other:?} pixels"
            )));
        }
    };
    if pixels.len() != w * h {
        return Err(malformed("TIFF", "pixel data shorter than the image"));
    }
    Ok(pixels)
}

/// Bilevel images say in a tag which bit is white, and files get it wrong;
/// a document page is mostly paper, so a page that came out mostly black
/// is inverted.
fn white_paper(mut pixels: Vec<u8>, colortype: tiff::ColorType) -> Vec<u8> {
    if colortype == tiff::ColorType::Gray(1) {
        let black = pixels.iter().filter(|&&p| p < 128).count();
        if black * 2 > pixels.len() {
            pixels.iter_mut().for_each(|p| *p = 255 - *p);
        }
    }
    pixels
}

/// Fax strips (TIFF compression 2: Modified Huffman, 3: Group 3, 4: Group 4)
/// decoded with hayro-ccitt, bits reversed first for LSB-first files.
fn fax_strips(
    decoder: &mut tiff::decoder::Decoder<Cursor<&[u8]>>,
    width: u32,
    height: u32,
    compression: u16,
    lsb_first: bool,
) -> Result<Vec<u8>, Rejection> {
    use hayro_ccitt::{DecodeSettings, DecoderContext, EncodingMode};
    use tiff::tags::Tag;
    let fax = |e: &dyn std::fmt::Display| malformed("TIFF (fax)", e);
    let offsets = decoder
        .get_tag_u64_vec(Tag::StripOffsets)
        .map_err(|e| fax(&e))?;
    let counts = decoder
        .get_tag_u64_vec(Tag::StripByteCounts)
        .map_err(|e| fax(&e))?;
    let rows_per_strip = decoder
        .find_tag_unsigned::<u32>(Tag::RowsPerStrip)
        .ok()
        .flatten()
        .unwrap_or(height)
        .max(1);
    // T4Options: bit 0 two-dimensional coding, bit 2 rows byte-aligned.
    let t4_options = decoder
        .find_tag_unsigned::<u32>(Tag::Unknown(292))
        .ok()
        .flatten()
        .unwrap_or(0);
    let modified_huffman = compression == 2;
    let encoding = match compression {
        4 => EncodingMode::Group4,
        3 if t4_options & 1 != 0 => EncodingMode::Group3_2D,
        _ => EncodingMode::Group3_1D,
    };
    let mut rows = RowsToGray {
        pixels: Vec::with_capacity(width as usize * height as usize),
        width: width as usize,
        decoded: 0,
    };
    for (strip, (&offset, &count)) in offsets.iter().zip(&counts).enumerate() {
        let first_row = strip as u64 * rows_per_strip as u64;
        if first_row >= height as u64 {
            break;
        }
        let mut data = decoder_bytes(decoder, offset, count)?;
        if lsb_first {
            data.iter_mut().for_each(|b| *b = b.reverse_bits());
        }
        let settings = DecodeSettings {
            columns: width,
            rows: rows_per_strip.min(height - first_row as u32),
            end_of_block: compression == 4,
            end_of_line: compression == 3,
            rows_are_byte_aligned: modified_huffman || t4_options & 4 != 0,
            encoding,
            strict: false,
        };
        // A damaged strip keeps the rows decoded before the damage.
        let _ = hayro_ccitt::decode(&data, &mut rows, &mut DecoderContext::new(settings));
        rows.pad_to(first_row as usize + settings.rows as usize);
    }
    if rows.decoded == 0 {
        return Err(fax(&"no row of the fax could be decoded"));
    }
    rows.pad_to(height as usize);
    Ok(rows.pixels)
}

fn decoder_bytes(
    decoder: &mut tiff::decoder::Decoder<Cursor<&[u8]>>,
    offset: u64,
    count: u64,
) -> Result<Vec<u8>, Rejection> {
    let all = decoder.inner().get_ref();
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
    all.get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| malformed("TIFF (fax)", "strip outside the file"))
}

/// hayro-ccitt's rows (positions where the colour changes, starting white)
/// as 8-bit pixels.
struct RowsToGray {
    pixels: Vec<u8>,
    width: usize,
    /// Rows the decoder produced (padding aside).
    decoded: usize,
}

impl RowsToGray {
    fn pad_to(&mut self, rows: usize) {
        self.pixels.resize(rows * self.width, 255);
    }
}

impl hayro_ccitt::Decoder for RowsToGray {
    fn push_row(&mut self, changes: &[u32]) {
        self.decoded += 1;
        let start = self.pixels.len();
        self.pixels.resize(start + self.width, 255);
        let row = &mut self.pixels[start..];
        for pair in changes.chunks(2) {
            let from = (pair[0] as usize).min(self.width);
            let to = pair
                .get(1)
                .map_or(self.width, |&e| (e as usize).min(self.width));
            row[from..to.max(from)].fill(0);
        }
    }
}

/// Renders the pages of one PDF for OCR.
pub struct PdfRenderer {
    pdf: hayro::hayro_syntax::Pdf,
}

impl PdfRenderer {
    pub fn new(bytes: &[u8]) -> Result<PdfRenderer, Rejection> {
        let pdf = hayro::hayro_syntax::Pdf::new(bytes.to_vec())
            .map_err(|e| malformed("PDF", format!("cannot render pages: {e:?}")))?;
        Ok(PdfRenderer { pdf })
    }

    /// Page object `id` (page `number` in messages) in grayscale at the OCR
    /// resolution, or lower when the page is so large that the pixel limit
    /// would be passed. Found by object, not position: lopdf and hayro may
    /// walk a malformed page tree differently.
    pub fn render(
        &self,
        id: (u32, u16),
        number: u32,
        settings: &OcrSettings,
    ) -> Result<GrayImage, Rejection> {
        let pages = self.pdf.pages();
        let page = pages
            .iter()
            .find(|p| {
                p.raw()
                    .obj_id()
                    .is_some_and(|o| o.obj_number == id.0 && o.gen_number == id.1 as i32)
            })
            .ok_or_else(|| Rejection::OcrFailed(format!("page {number} cannot be rendered")))?;
        let (points_w, points_h) = page.render_dimensions();
        let mut dpi = settings.dpi as f64;
        let pixels_at = |dpi: f64| {
            (points_w as f64 * dpi / 72.0).ceil() * (points_h as f64 * dpi / 72.0).ceil()
        };
        if pixels_at(dpi) > settings.max_pixels as f64 {
            dpi *= (settings.max_pixels as f64 / pixels_at(dpi)).sqrt() * 0.99;
        }
        let scale = (dpi / 72.0) as f32;
        let width = (points_w * scale) as u64;
        let height = (points_h * scale) as u64;
        // hayro's canvas is at most 65 535 pixels a side.
        if width > u16::MAX as u64 || height > u16::MAX as u64 || dpi < 50.0 {
            return Err(Rejection::OcrFailed(format!(
                "page {number} is {points_w:.0}×{points_h:.0} points, too large to read"
            )));
        }
        check_size(settings, &format!("page {number}"), width, height)?;
        let pixmap = hayro::render(
            page,
            &hayro::RenderCache::new(),
            &hayro::hayro_interpret::InterpreterSettings::default(),
            &hayro::RenderSettings::default(),
            &hayro::PixmapSettings {
                x_scale: scale,
                y_scale: scale,
                ..Default::default()
            },
        );
        // Premultiplied RGBA over a transparent canvas: composite onto white paper.
        let pixels = pixmap
            .data_as_u8_slice()
            .chunks_exact(4)
            .map(|p| {
                let luma = (p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8;
                (luma + (255 - p[3] as u32)).min(255) as u8
            })
            .collect();
        Ok(GrayImage {
            width: pixmap.width() as u32,
            height: pixmap.height() as u32,
            dpi: dpi.round() as u32,
            pixels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fax_rows_become_pixels() {
        let mut rows = RowsToGray {
            pixels: Vec::new(),
            width: 6,
            decoded: 0,
        };
        hayro_ccitt::Decoder::push_row(&mut rows, &[1, 3, 5]);
        assert_eq!(rows.pixels, [255, 0, 0, 255, 255, 0]);
        rows.pad_to(2);
        assert_eq!(rows.pixels.len(), 12);
    }

    #[test]
    fn mostly_black_bilevel_pages_are_inverted() {
        let page = white_paper(vec![0, 0, 0, 255], tiff::ColorType::Gray(1));
        assert_eq!(page, [255, 255, 255, 0]);
        let photo = white_paper(vec![0, 0, 0, 255], tiff::ColorType::Gray(8));
        assert_eq!(photo, [0, 0, 0, 255]);
    }

    #[test]
    fn resolution_is_assumed_from_a_page_width() {
        assert_eq!(assumed_dpi(2480), 295);
        assert_eq!(assumed_dpi(10), 70);
    }
}
