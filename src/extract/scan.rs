//! Image files — a photo of a page (JPEG), a screenshot (PNG), a fax
//! (multi-page TIFF) — read page by page with OCR. A page OCR cannot read
//! is kept empty with a warning; a file with no readable page is rejected
//! (by the caller) with the first page's reason.

use super::ocr::{self, GrayImage, Ocr};
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
    let mut warnings = Vec::new();
    match format {
        Format::Tiff => {
            let mut tiff = raster::TiffPages::open(bytes, &settings)?;
            loop {
                let number = tiff.number();
                let outcome = ocr.begin_page(number).and_then(|()| tiff.decode());
                read_into(&mut pages, &mut warnings, ocr, number, outcome)?;
                if !tiff.advance()? {
                    break;
                }
            }
        }
        _ => {
            let outcome = ocr
                .begin_page(1)
                .and_then(|()| raster::decode_single(bytes, format.describe(), &settings));
            read_into(&mut pages, &mut warnings, ocr, 1, outcome)?;
        }
    }
    warnings.extend(ocr::warnings(&pages));
    Ok(Extracted {
        format,
        title: None,
        pages,
        warnings,
    })
}

/// OCR one decoded page into `pages`; a problem with it becomes a warning
/// and an empty page, unless the document's OCR time is spent.
fn read_into(
    pages: &mut Vec<Page>,
    warnings: &mut Vec<String>,
    ocr: &mut Ocr,
    number: u32,
    image: Result<GrayImage, Rejection>,
) -> Result<(), Rejection> {
    let (text, how) = match image.and_then(|image| ocr.read_page(number, image)) {
        Ok(Some((text, how))) => (text, Some(how)),
        Ok(None) => (String::new(), None),
        Err(e) if ocr.out_of_time() => return Err(e),
        Err(e) => {
            warnings.push(format!(
                "page {number}: not read by OCR: {}",
                ocr::reason(&e)
            ));
            (String::new(), None)
        }
    };
    pages.push(Page {
        number,
        text,
        has_text_layer: false,
        ocr: how,
    });
    Ok(())
}
