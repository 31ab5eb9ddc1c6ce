//! OCR of scanned documents through the real extraction worker and the real
//! Tesseract (Debian libtesseract5 + tesseract-ocr-eng, installed by
//! `.ci/run`): a scanned PDF, a phone photo of a page and two-page fax
//! TIFFs (Group 4 and Group 3) from `tests/fixtures/scans` (made by its
//! `make.sh` from the HTML pages there), then uploaded and asked about.

use std::path::{Path, PathBuf};

use crate::common::server::{Server, seeded_data_dir};
use crate::common::{enclave, repo_root};

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/scans").join(name)
}

/// `enclave extract --json FILE`: (accepted, the whole answer).
fn extract(data: &Path, file: &Path, config: Option<&Path>) -> serde_json::Value {
    let mut cmd = enclave(data);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let out = cmd.args(["extract", "--json"]).arg(file).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "extract printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Words of a text, lower-cased, for comparisons that ignore layout.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Every OCR word's offsets spell a word of the page text, inside the page
/// image, with a confidence; the page's mean is high for these clean scans.
fn assert_words_line_up(page: &serde_json::Value) {
    let text: Vec<char> = page["text"].as_str().unwrap().chars().collect();
    let ocr = &page["ocr"];
    let (width, height) = (
        ocr["width"].as_u64().unwrap(),
        ocr["height"].as_u64().unwrap(),
    );
    let list = ocr["words"].as_array().unwrap();
    assert!(list.len() > 30, "a page of prose has words: {}", list.len());
    for w in list {
        let (start, end) = (
            w["start"].as_u64().unwrap() as usize,
            w["end"].as_u64().unwrap() as usize,
        );
        assert!(start < end && end <= text.len(), "offsets {start}..{end}");
        let spelled: String = text[start..end].iter().collect();
        assert!(!spelled.contains(char::is_whitespace), "{spelled:?}");
        let b: Vec<u64> = w["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            b[0] <= b[2] && b[2] <= width && b[1] <= b[3] && b[3] <= height,
            "box {b:?}"
        );
        let c = w["confidence"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&c));
    }
    let mean = ocr["mean_confidence"].as_f64().unwrap();
    assert!(
        mean > 80.0 && ocr["low_confidence"] == false,
        "confidence {mean}"
    );
}

#[test]
fn scanned_pdf_photo_and_fax_tiffs_are_read_page_by_page() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    let memo = extract(&data, &fixture("scanned-memo.pdf"), None);
    assert_eq!(memo["accepted"], true, "{memo}");
    let page = &memo["extracted"]["pages"][0];
    let text = words(page["text"].as_str().unwrap()).join(" ");
    for phrase in [
        "backup unit in room c214",
        "extension 4471",
        "07 30 and at 19 30",
    ] {
        assert!(text.contains(phrase), "{phrase:?} in {text}");
    }
    assert_words_line_up(page);

    let photo = extract(&data, &fixture("photo-parking.jpg"), None);
    assert_eq!(photo["extracted"]["format"], "jpeg", "{photo}");
    let page = &photo["extracted"]["pages"][0];
    let text = words(page["text"].as_str().unwrap()).join(" ");
    assert!(text.contains("a lost permit costs 15 euros"), "{text}");
    let skew = page["ocr"]["skew_degrees"].as_f64().unwrap();
    assert!(
        (skew.abs() - 1.5).abs() < 0.3,
        "the photo is 1.5° off: {skew}"
    );
    assert_words_line_up(page);

    let g4 = extract(&data, &fixture("fax-transport.tif"), None);
    let g3 = extract(&data, &fixture("fax-transport-g3.tif"), None);
    for fax in [&g4, &g3] {
        let pages = fax["extracted"]["pages"].as_array().expect("pages");
        assert_eq!(pages.len(), 2, "{fax}");
        let first = words(pages[0]["text"].as_str().unwrap()).join(" ");
        let second = words(pages[1]["text"].as_str().unwrap()).join(" ");
        assert!(first.contains("fax cover sheet") && !first.contains("north entrance"));
        assert!(second.contains("north entrance at 06 15"), "{second}");
        assert_eq!(pages[1]["number"], 2);
        assert_words_line_up(&pages[1]);
    }
    // Group 3 decodes to the same pixels as Group 4, so to the same words.
    assert_eq!(
        g4["extracted"]["pages"][1]["text"],
        g3["extracted"]["pages"][1]["text"]
    );
}

/// A two-page PDF: page 1 a real text layer, page 2 a scan (the phone photo
/// as a JPEG image) with a stamped fax header as its only text.
fn mixed_pdf() -> Vec<u8> {
    let jpeg = std::fs::read(fixture("photo-parking.jpg")).unwrap();
    let (w, h) = image::ImageReader::open(fixture("photo-parking.jpg"))
        .unwrap()
        .into_dimensions()
        .unwrap();
    let text = "BT /F1 12 Tf 16 TL 72 720 Td (Visitors sign in at reception between 9am and 8pm every day of the week.) Tj T* (Badges are returned at the same desk before leaving the building.) Tj ET\n";
    let scan =
        "q 595 0 0 842 0 0 cm /Im1 Do Q BT /F1 8 Tf 20 830 Td (FAX 03/12 14:02 P.002) Tj ET\n";
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        format!("<< /Length {} >>\nstream\n{text}endstream", text.len()).into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 7 0 R /Resources << /Font << /F1 5 0 R >> /XObject << /Im1 8 0 R >> >> >>".to_vec(),
        format!("<< /Length {} >>\nstream\n{scan}endstream", scan.len()).into_bytes(),
    ];
    let mut image = format!(
        "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
        jpeg.len()
    )
    .into_bytes();
    image.extend_from_slice(&jpeg);
    image.extend_from_slice(b"\nendstream");
    objects.push(image);
    crate::common::pdf_from_objects(&objects)
}

#[test]
fn a_text_page_keeps_its_layer_and_a_stamped_scan_gets_the_stamp_and_ocr() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pdf = tmp.path().join("mixed.pdf");
    std::fs::write(&pdf, mixed_pdf()).unwrap();
    let out = extract(&data, &pdf, None);
    let pages = out["extracted"]["pages"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(pages.len(), 2);
    assert!(
        pages[0].get("ocr").is_none(),
        "the text page is not OCR'd: {}",
        pages[0]
    );
    assert!(
        pages[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Visitors sign in at reception")
    );
    let scan = pages[1]["text"].as_str().unwrap();
    assert!(
        scan.starts_with("FAX 03/12 14:02 P.002\n\n"),
        "the stamp first: {scan}"
    );
    assert!(
        words(scan)
            .join(" ")
            .contains("a lost permit costs 15 euros"),
        "{scan}"
    );
    assert_words_line_up(&pages[1]);
}

/// A PNG that declares `width`×`height` pixels and holds none.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray, no interlace
    let crc = crc32(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc.to_be_bytes());
    // A little compressed data, as a real bomb has (zlib, one stored block).
    let idat = b"IDAT\x78\x01\x01\x00\x00\xff\xff\x00\x00\x00\x01";
    png.extend_from_slice(&(idat.len() as u32 - 4).to_be_bytes());
    png.extend_from_slice(idat);
    png.extend_from_slice(&crc32(idat).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 0]);
    png.extend_from_slice(b"IEND\xaeB`\x82");
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn oversized_images_and_ocr_off_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // A 100 000 × 100 000 "decompression bomb": refused from its header.
    let bomb = tmp.path().join("bomb.png");
    std::fs::write(&bomb, png_header(100_000, 100_000)).unwrap();
    let out = extract(&data, &bomb, None);
    assert_eq!(out["accepted"], false);
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains("over the 60 MP limit"), "{reason}");

    // A truncated TIFF: a reason, not a crash.
    let torn = tmp.path().join("torn.tif");
    let fax = std::fs::read(fixture("fax-transport.tif")).unwrap();
    std::fs::write(&torn, &fax[..fax.len() / 3]).unwrap();
    let out = extract(&data, &torn, None);
    assert_eq!(out["accepted"], false, "{out}");
    assert!(!out["reason"].as_str().unwrap().is_empty());

    // OCR switched off: images are refused and a scan has no text, saying why.
    let config = tmp.path().join("enclave.toml");
    std::fs::write(&config, "[extract]\nocr = false\n").unwrap();
    let out = extract(&data, &fixture("photo-parking.jpg"), Some(&config));
    let reason = out["reason"].as_str().unwrap();
    assert!(
        reason.contains("JPEG image needs OCR") && reason.contains("switched off"),
        "{reason}"
    );
    let out = extract(&data, &fixture("scanned-memo.pdf"), Some(&config));
    let reason = out["reason"].as_str().unwrap();
    assert!(
        reason.contains("no text layer") && reason.contains("switched off"),
        "{reason}"
    );

    // A language that is not installed: the document fails with the package to install.
    std::fs::write(&config, "[extract]\nocr_languages = [\"eng\", \"zzz\"]\n").unwrap();
    let out = extract(&data, &fixture("photo-parking.jpg"), Some(&config));
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains("tesseract-ocr-zzz"), "{reason}");
    let doctor = String::from_utf8_lossy(
        &enclave(&data)
            .arg("--config")
            .arg(&config)
            .arg("doctor")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let line = doctor
        .lines()
        .find(|l| l.contains(" ocr "))
        .expect("an ocr check");
    assert!(
        line.starts_with("warn") && line.contains("MISSING zzz") && line.contains("eng"),
        "{line}"
    );
}

#[test]
fn uploaded_scans_are_answerable_with_citations_to_their_page() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    seeded_data_dir(&dir);
    let server = Server::start(&dir, &[]);
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "pw-alice-secret-123").status, 200);
    let r = alice.post_json(
        "/api/grants",
        &serde_json::json!({"collection": "scans", "user": "alice"}),
        true,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let files: Vec<(&str, Vec<u8>)> =
        ["scanned-memo.pdf", "photo-parking.jpg", "fax-transport.tif"]
            .into_iter()
            .map(|name| (name, std::fs::read(fixture(name)).unwrap()))
            .collect();
    let parts: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let r = alice.upload("scans", &parts, true);
    assert_eq!(r.status, 202, "{}", r.body);
    for upload in r.json()["uploads"].as_array().unwrap() {
        let done = alice.wait_upload(upload["id"].as_i64().unwrap());
        assert_eq!(done["state"], "done", "{done}");
        let detail = done["detail"].as_str().unwrap();
        assert!(detail.contains("read by OCR"), "{detail}");
    }
    // Titles come from the file names.
    for (question, title, page, fact) in [
        (
            "Where is the ambulance pickup for dialysis patients?",
            "fax transport",
            2,
            "north entrance",
        ),
        (
            "Which room has the backup unit for vaccines?",
            "scanned memo",
            1,
            "C214",
        ),
        (
            "How much does it cost to replace a lost parking permit?",
            "photo parking",
            1,
            "15 euros",
        ),
    ] {
        let (status, events) = alice.ask(question, None);
        assert_eq!(status, 200);
        let done = &events
            .iter()
            .find(|(e, _)| e == "done")
            .expect("an answer")
            .1;
        let answer = &done["answer"];
        let cited = answer["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["document_title"] == title)
            .unwrap_or_else(|| panic!("{question}: no source from {title}: {answer}"));
        assert_eq!(cited["page"], page, "{question}: {cited}");
        let chunk = cited["chunk_id"].as_i64().unwrap();
        let passage = alice.get(&format!("/api/passages/{chunk}"));
        assert_eq!(passage.status, 200);
        assert!(passage.body.contains(fact), "{question}: {}", passage.body);
    }
}
