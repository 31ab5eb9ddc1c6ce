//! Sensitive identifiers at ingest: every page (and the title and file
//! name) scanned after extraction and before chunking, and the collection's
//! policy applied. `report` keeps the text and lists the findings; `redact`
//! replaces each identifier by its typed placeholder in the text that is
//! stored, chunked, indexed and given to the model (the original file stays,
//! for admins only); `reject` refuses the document with its finding report.
//! Findings keep the identifier only masked and as a keyed hash.

use std::collections::BTreeMap;

use crate::audit::AuditKey;
use crate::config::PiiPolicy;
use crate::extract::Page;
use crate::pii::{Finding, Redacted, Scanner, redact};
use crate::store::pii::NewFinding;

/// Findings on this "page" are in the document's title or file name.
pub const NAME_PAGE: u32 = 0;

/// One finding, located in the text as stored.
#[derive(Debug, Clone)]
pub struct Found {
    pub page: u32,
    /// Characters into the stored page text (redacted: the placeholder).
    pub char_start: usize,
    pub char_end: usize,
    pub kind: String,
    pub confidence: f32,
    pub masked: String,
    pub keyed_hash: String,
}

impl Found {
    pub fn as_new(&self) -> NewFinding<'_> {
        NewFinding {
            page: self.page,
            char_start: self.char_start,
            char_end: self.char_end,
            kind: &self.kind,
            confidence: self.confidence,
            masked: &self.masked,
            keyed_hash: &self.keyed_hash,
        }
    }
}

/// A document after screening.
pub struct Screened {
    pub pages: Vec<Page>,
    pub title: Option<String>,
    pub source_name: String,
    pub findings: Vec<Found>,
    /// The policy applied ("" when scanning was off).
    pub policy: &'static str,
}

/// What the policy decided.
pub enum Decision {
    Keep(Screened),
    /// `reject`: the reason, naming each finding masked.
    Refuse {
        reason: String,
        findings: Vec<Found>,
    },
}

/// What goes in to be screened.
pub struct Unscreened<'a> {
    pub pages: Vec<Page>,
    pub title: Option<String>,
    pub source_name: &'a str,
    pub collection: &'a str,
}

/// Scan `doc` and apply `policy`. `key` makes the keyed hashes (none: no
/// hash is kept). Without a scanner (benchmarks) the document is kept as is.
pub fn screen(
    scanner: Option<&Scanner>,
    policy: PiiPolicy,
    key: Option<&AuditKey>,
    doc: Unscreened<'_>,
) -> Decision {
    let Some(scanner) = scanner else {
        return Decision::Keep(Screened {
            pages: doc.pages,
            title: doc.title,
            source_name: doc.source_name.to_string(),
            findings: Vec::new(),
            policy: "",
        });
    };
    let redacting = policy == PiiPolicy::Redact;
    let mut findings = Vec::new();
    let mut pages = doc.pages;
    for page in &mut pages {
        let (redacted, found) = screen_text(scanner, key, redacting, page.number, &page.text);
        findings.extend(found);
        if let Some(redacted) = redacted {
            if let Some(ocr) = &mut page.ocr {
                for w in &mut ocr.words {
                    w.start = redacted.map_char(w.start as usize) as u32;
                    w.end = redacted.map_char(w.end as usize) as u32;
                }
            }
            page.text = redacted.text;
        }
    }
    let mut name_field = |value: &str| -> String {
        let (redacted, found) = screen_text(scanner, key, redacting, NAME_PAGE, value);
        findings.extend(found);
        redacted.map_or_else(|| value.to_string(), |r| r.text)
    };
    let source_name = name_field(doc.source_name);
    let title = doc.title.map(|t| name_field(&t));
    findings.sort_by_key(|f| (f.page, f.char_start));
    if policy == PiiPolicy::Reject && !findings.is_empty() {
        let reason = refusal(doc.collection, &findings);
        return Decision::Refuse { reason, findings };
    }
    Decision::Keep(Screened {
        pages,
        title,
        source_name,
        findings,
        policy: policy.as_str(),
    })
}

/// Scan one text (a page, a title, a file name): its findings, located in
/// the text as it will be stored, and when `redacting` (and anything was
/// found) the redacted text.
fn screen_text(
    scanner: &Scanner,
    key: Option<&AuditKey>,
    redacting: bool,
    page: u32,
    text: &str,
) -> (Option<Redacted>, Vec<Found>) {
    let found = scanner.scan(text);
    if found.is_empty() {
        return (None, Vec::new());
    }
    let hashes = found.iter().map(|f| keyed_hash(key, f, text)).collect();
    if redacting {
        let r = redact(text, &found);
        let located = locate(page, &r.text, &r.findings, hashes);
        (Some(r), located)
    } else {
        (None, locate(page, text, &found, hashes))
    }
}

/// Findings with character offsets into `text` (their byte offsets are into it).
fn locate(page: u32, text: &str, found: &[Finding], hashes: Vec<String>) -> Vec<Found> {
    // Findings are in order: count characters once, from one to the next.
    let (mut byte, mut chars) = (0usize, 0usize);
    let mut char_at = |to: usize| {
        if to >= byte {
            chars += text.get(byte..to).map_or(0, |s| s.chars().count());
            byte = to;
        } else {
            chars = text.get(..to).map_or(0, |s| s.chars().count());
            byte = to;
        }
        chars
    };
    found
        .iter()
        .zip(hashes)
        .map(|(f, keyed_hash)| Found {
            page,
            char_start: char_at(f.start),
            char_end: char_at(f.end),
            kind: f.name.clone(),
            confidence: f.confidence,
            masked: f.masked.clone(),
            keyed_hash,
        })
        .collect()
}

/// The finding's identifier under the installation's key: the same
/// identifier gives the same hash wherever it is written, and nobody
/// without the key can test a guess against it.
fn keyed_hash(key: Option<&AuditKey>, f: &Finding, text: &str) -> String {
    match key {
        Some(key) => {
            let mut h = key.digest(&format!("pii\n{}\n{}", f.name, f.normalised(text)));
            h.truncate(32);
            h
        }
        None => String::new(),
    }
}

/// The refusal a `reject` collection gives: how many of each type and
/// where, masked.
pub fn refusal(collection: &str, findings: &[Found]) -> String {
    let mut by_kind: BTreeMap<&str, Vec<&Found>> = BTreeMap::new();
    for f in findings {
        by_kind.entry(&f.kind).or_default().push(f);
    }
    let listed: Vec<String> = by_kind
        .iter()
        .map(|(kind, fs)| {
            let mut shown: Vec<String> = fs
                .iter()
                .take(3)
                .map(|f| {
                    if f.page == NAME_PAGE {
                        format!("name: {}", f.masked)
                    } else {
                        format!("page {}: {}", f.page, f.masked)
                    }
                })
                .collect();
            if fs.len() > 3 {
                shown.push(format!("{} more", fs.len() - 3));
            }
            format!("{} {} ({})", fs.len(), kind, shown.join(", "))
        })
        .collect();
    format!(
        "sensitive identifiers found, and collection \"{collection}\" rejects documents holding them: {}",
        listed.join("; ")
    )
}

/// How the warning about identifiers begins.
pub const WARNING_PREFIX: &str = "sensitive identifiers:";

/// The warning a document with findings carries ("sensitive identifiers:
/// 2 ssn, 1 email (redacted)"), shown with the upload and the document.
pub fn warning(screened: &Screened) -> Option<String> {
    if screened.findings.is_empty() {
        return None;
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &screened.findings {
        *by_kind.entry(&f.kind).or_default() += 1;
    }
    let listed: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let done = match screened.policy {
        "redact" => "redacted",
        _ => "reported",
    };
    Some(format!("{WARNING_PREFIX} {} ({done})", listed.join(", ")))
}

/// Counts per type, for audit rows and summaries.
pub fn counts(findings: &[Found]) -> serde_json::Value {
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for f in findings {
        *by_kind.entry(&f.kind).or_default() += 1;
    }
    serde_json::json!(by_kind)
}

/// Findings as CSV (masked values only), for the admin report's export
/// and `enclave pii findings --csv`.
pub fn findings_csv(rows: &[crate::store::pii::FindingRow]) -> String {
    let mut out = crate::audit::export::csv_line(&[
        "collection",
        "document_id",
        "title",
        "page",
        "char_start",
        "char_end",
        "type",
        "confidence",
        "masked",
        "keyed_hash",
        "documents_with_same",
    ]);
    for r in rows {
        let page = if r.page == NAME_PAGE as i64 {
            "name".to_string()
        } else {
            r.page.to_string()
        };
        out.push_str(&crate::audit::export::csv_line(&[
            &r.collection,
            &r.document_id.to_string(),
            &r.title,
            &page,
            &r.char_start.to_string(),
            &r.char_end.to_string(),
            &r.kind,
            &format!("{:.2}", r.confidence),
            &r.masked,
            &r.keyed_hash,
            &r.documents_with_same.to_string(),
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: u32, text: &str) -> Page {
        Page {
            number: n,
            text: text.into(),
            has_text_layer: true,
            ocr: None,
        }
    }

    fn run(policy: PiiPolicy, name: &str) -> Decision {
        let scanner = Scanner::default();
        screen(
            Some(&scanner),
            policy,
            None,
            Unscreened {
                pages: vec![
                    page(1, "Nothing here."),
                    page(2, "Patient SSN 123-45-6789; mail zoë@example.org."),
                ],
                title: Some("Referral".into()),
                source_name: name,
                collection: "clinic",
            },
        )
    }

    #[test]
    fn report_keeps_the_text_and_locates_findings_in_characters() {
        let Decision::Keep(s) = run(PiiPolicy::Report, "letter.pdf") else {
            panic!("refused")
        };
        assert_eq!(
            s.pages[1].text,
            "Patient SSN 123-45-6789; mail zoë@example.org."
        );
        let kinds: Vec<_> = s.findings.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["ssn", "email"]);
        let chars: Vec<char> = s.pages[1].text.chars().collect();
        let email: String = chars[s.findings[1].char_start..s.findings[1].char_end]
            .iter()
            .collect();
        assert_eq!(email, "zoë@example.org");
        assert_eq!(s.policy, "report");
    }

    #[test]
    fn redact_replaces_identifiers_in_pages_and_names() {
        let Decision::Keep(s) = run(PiiPolicy::Redact, "ssn 123-45-6789.pdf") else {
            panic!("refused")
        };
        assert_eq!(s.pages[1].text, "Patient SSN [SSN]; mail [EMAIL].");
        assert_eq!(s.source_name, "ssn [SSN].pdf");
        assert!(s.findings.iter().any(|f| f.page == NAME_PAGE));
        let chars: Vec<char> = s.pages[1].text.chars().collect();
        let f = s
            .findings
            .iter()
            .find(|f| f.kind == "email")
            .expect("email");
        assert_eq!(
            chars[f.char_start..f.char_end].iter().collect::<String>(),
            "[EMAIL]"
        );
    }

    #[test]
    fn reject_refuses_with_masked_findings() {
        let Decision::Refuse { reason, findings } = run(PiiPolicy::Reject, "a.pdf") else {
            panic!("kept")
        };
        assert_eq!(findings.len(), 2);
        assert!(reason.contains("page 2: •••-••-6789"), "{reason}");
        assert!(!reason.contains("123-45"), "{reason}");
        assert!(reason.contains("\"clinic\""), "{reason}");
    }
}
