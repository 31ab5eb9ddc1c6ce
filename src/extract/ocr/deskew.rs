//! Deskew: a page fed crookedly through a scanner or fax has its text lines
//! at an angle, and Tesseract's line finder loses words from 1–2° on (a 3°
//! fax page fell from F1 0.91 to 0.64 in our measurements). The angle is found
//! with projection profiles — rows of dark pixels are sharpest when summed
//! along the lines' true direction — and the page is rotated back.
//!
//! Written here rather than taken from leptonica (which Tesseract loads
//! anyway) because leptonica's `Pix` layout would need a second unsafe FFI
//! surface for two calls, and this is 100 lines that tests can pin down.

use super::GrayImage;

/// Largest angle searched, in degrees: scanners skew by a few degrees; more is
/// a page placed sideways, which is an orientation problem, not skew.
const MAX_DEGREES: f32 = 5.0;
/// Coarse search step, then refined around the best coarse angle.
const COARSE_STEP: f32 = 0.2;
const FINE_STEP: f32 = 0.02;
/// Below this the rotation's blur costs more than the skew.
const MIN_CORRECTION: f32 = 0.15;
/// The profile is computed on a copy at most this wide.
const PROFILE_WIDTH: u32 = 1000;
/// Pixels at or below this are ink (after min-pooling the downscaled copy).
const INK_LEVEL: u8 = 128;

/// The page's skew in degrees (positive: lines fall to the right), or 0 when
/// there is too little ink to tell.
pub fn estimate(image: &GrayImage) -> f32 {
    let ink = ink_points(image);
    if ink.len() < 200 {
        return 0.0;
    }
    let score = |degrees: f32| profile_sharpness(&ink, degrees);
    let best = |from: f32, to: f32, step: f32| {
        let steps = ((to - from) / step).round() as i32;
        (0..=steps)
            .map(|i| from + i as f32 * step)
            .map(|a| (a, score(a)))
            .fold((0.0f32, f64::MIN), |b, c| if c.1 > b.1 { c } else { b })
            .0
    };
    let coarse = best(-MAX_DEGREES, MAX_DEGREES, COARSE_STEP);
    best(coarse - COARSE_STEP, coarse + COARSE_STEP, FINE_STEP)
}

/// Rotate the page so that lines at `degrees` become horizontal; same size,
/// uncovered corners white. Returns the page as it was for small angles.
pub fn straighten(image: GrayImage, degrees: f32) -> GrayImage {
    if degrees.abs() < MIN_CORRECTION {
        return image;
    }
    let (w, h) = (image.width as usize, image.height as usize);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut out = vec![255u8; w * h];
    for (y, row) in out.chunks_mut(w).enumerate() {
        let dy = y as f32 - cy;
        for (x, pixel) in row.iter_mut().enumerate() {
            let dx = x as f32 - cx;
            // Where this output pixel was on the skewed page.
            let sx = cx + dx * cos - dy * sin;
            let sy = cy + dx * sin + dy * cos;
            *pixel = bilinear(&image, sx, sy);
        }
    }
    GrayImage {
        pixels: out,
        ..image
    }
}

fn bilinear(image: &GrayImage, x: f32, y: f32) -> u8 {
    let (w, h) = (image.width as usize, image.height as usize);
    if x < 0.0 || y < 0.0 || x >= (w - 1) as f32 || y >= (h - 1) as f32 {
        return 255;
    }
    let (x0, y0) = (x as usize, y as usize);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| image.pixels[yy * w + xx] as f32;
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    (top * (1.0 - fy) + bottom * fy).round() as u8
}

/// Ink positions on a downscaled copy; a block counts as ink when its darkest
/// pixel is (min-pooling keeps thin fax strokes that averaging would lose).
fn ink_points(image: &GrayImage) -> Vec<(f32, f32)> {
    let factor = image.width.div_ceil(PROFILE_WIDTH).max(1) as usize;
    let (w, h) = (image.width as usize, image.height as usize);
    let mut points = Vec::new();
    for by in (0..h).step_by(factor) {
        for bx in (0..w).step_by(factor) {
            let darkest = (by..(by + factor).min(h))
                .flat_map(|y| {
                    let row = &image.pixels[y * w..(y + 1) * w];
                    row[bx..(bx + factor).min(w)].iter().copied()
                })
                .min()
                .unwrap_or(255);
            if darkest <= INK_LEVEL {
                points.push(((bx / factor) as f32, (by / factor) as f32));
            }
        }
    }
    points
}

/// Sum of squared row counts when ink is projected along lines at `degrees`:
/// largest when the projection runs along the text lines.
fn profile_sharpness(ink: &[(f32, f32)], degrees: f32) -> f64 {
    let slope = degrees.to_radians().tan();
    let projected = |&(x, y): &(f32, f32)| (y - x * slope).round() as i64;
    let (lo, hi) = ink
        .iter()
        .map(projected)
        .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let mut rows = vec![0u32; (hi - lo + 1) as usize];
    for point in ink {
        rows[(projected(point) - lo) as usize] += 1;
    }
    rows.iter().map(|&c| (c as f64) * (c as f64)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of dark "text lines" (bars with gaps like words) at `degrees`.
    fn lined_page(degrees: f32) -> GrayImage {
        let (w, h) = (1200usize, 1600usize);
        let mut pixels = vec![255u8; w * h];
        let slope = degrees.to_radians().tan();
        for line in 0..30 {
            let y0 = 150.0 + line as f32 * 45.0;
            for x in 100..1100usize {
                if (x / 60) % 5 == 4 {
                    continue; // a gap between words
                }
                let y = (y0 + x as f32 * slope) as usize;
                for yy in y..y + 12 {
                    pixels[yy * w + x] = 20;
                }
            }
        }
        GrayImage {
            width: w as u32,
            height: h as u32,
            dpi: 300,
            pixels,
        }
    }

    #[test]
    fn finds_the_angle_lines_were_drawn_at() {
        for degrees in [-3.0f32, -1.5, 0.0, 1.0, 2.5] {
            let found = estimate(&lined_page(degrees));
            assert!(
                (found - degrees).abs() <= 0.1,
                "drawn at {degrees}°, estimated {found}°"
            );
        }
    }

    #[test]
    fn straightening_removes_the_skew() {
        let page = lined_page(2.0);
        let straight = straighten(page, 2.0);
        let left = estimate(&straight);
        assert!(left.abs() <= 0.1, "after straightening: {left}°");
    }

    #[test]
    fn blank_pages_and_small_angles_are_left_alone() {
        let blank = GrayImage {
            width: 100,
            height: 100,
            dpi: 300,
            pixels: vec![255; 10_000],
        };
        assert_eq!(estimate(&blank), 0.0);
        let page = lined_page(0.0);
        let copy = page.pixels.clone();
        assert_eq!(straighten(page, 0.1).pixels, copy);
    }
}
