//! Image files — a photo of a page (JPEG), a screenshot (PNG), a fax
//! (multi-page TIFF) — read page by page with OCR.

use super::ocr::Ocr;
use super::{Extracted, Format, Page, Rejection, raster};

pub fn extract(bytes: &[u8], format: Format, ocr: &mut Ocr) -> Result<Extracted, Rejection> {
    if let Some(why) = ocr.unavailable() {
        return Err(Rejection::Unsupported(format!(
            "{} needs OCR, which is unavailable: {why}",
            format.describe()
        )));
    }
    let settings = ocr.settings().clone();
    let mut pages = Vec::new();
    let mut read = |number: u32, image| -> Result<(), Rejection> {
        let (text, how) = match ocr.read_page(number, image)? {
            Some((text, how)) => (text, Some(how)),
            None => (String::new(), None),
        };
        pages.push(Page {
            number,
            text,
            has_text_layer: false,
            ocr: how,
        });
        Ok(())
    };
    match format {
        Format::Tiff => raster::for_each_tiff_page(bytes, &settings, &mut read)?,
        _ => read(
            1,
            raster::decode_single(bytes, format.describe(), &settings)?,
        )?,
    }
    let warnings = super::ocr::warnings(&pages);
    Ok(Extracted {
        format,
        title: None,
        pages,
        warnings,
    })
}
