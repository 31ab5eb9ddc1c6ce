//! Sensitive identifiers in text: candidates found by pattern, kept only when
//! their validity rules hold (checksums, number ranges) and their context
//! does not say they are something else. Context cues ("SSN", "DOB", "NHS",
//! "patient") raise confidence; near-miss cues ("order", "invoice",
//! "version", "ISBN") lower it. Findings below [`REPORT_AT`] are dropped.
//!
//! [`Scanner`] adds the organisation's own identifiers from the config
//! (`custom.rs`); [`redact`] turns findings into typed placeholders and says
//! where each one moved. Ingest screening, policies and reports build on
//! this; it imports nothing of the product but the config.

pub mod checksum;
mod custom;
mod redact;

pub use custom::{CustomError, Scanner};
pub use redact::{Redacted, redact};

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What an identifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ssn,
    PaymentCard,
    Iban,
    NhsNumber,
    NationalInsurance,
    Email,
    Phone,
    DateOfBirth,
    IpAddress,
    /// An identifier defined in the config (`[[pii.custom]]`): its name is
    /// in [`Finding::name`].
    Custom,
}

impl Kind {
    /// The typed placeholder a redacted identifier becomes.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Ssn => "[SSN]",
            Kind::PaymentCard => "[CARD]",
            Kind::Iban => "[IBAN]",
            Kind::NhsNumber => "[NHS]",
            Kind::NationalInsurance => "[NINO]",
            Kind::Email => "[EMAIL]",
            Kind::Phone => "[PHONE]",
            Kind::DateOfBirth => "[DOB]",
            Kind::IpAddress => "[IP]",
            Kind::Custom => "[ID]",
        }
    }

    /// The name reports and the database use (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ssn => "ssn",
            Kind::PaymentCard => "payment_card",
            Kind::Iban => "iban",
            Kind::NhsNumber => "nhs_number",
            Kind::NationalInsurance => "national_insurance",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::DateOfBirth => "date_of_birth",
            Kind::IpAddress => "ip_address",
            Kind::Custom => "custom",
        }
    }
}

/// One identifier found in a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    /// Byte offsets of the identifier in the scanned text.
    pub start: usize,
    pub end: usize,
    /// 0–1.
    pub confidence: f32,
    /// The identifier with all but its last characters hidden ("•••-••-6789").
    pub masked: String,
    /// The type's name ("ssn", or a custom identifier's name such as "mrn").
    pub name: String,
    /// What redaction puts in its place ("[SSN]", "[MRN]").
    pub placeholder: String,
}

impl Finding {
    /// The identifier reduced to its letters and digits, upper case (e-mail
    /// addresses lower case): the same identifier written two ways gives the
    /// same value, for a keyed hash that tells repeats apart without storing it.
    pub fn normalised(&self, text: &str) -> String {
        let raw = text.get(self.start..self.end).unwrap_or("");
        if self.kind == Kind::Email {
            return raw.to_lowercase();
        }
        raw.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect()
    }
}

/// Findings at or above this confidence are reported.
pub const REPORT_AT: f32 = 0.5;
/// Most characters between a birth cue and its date ("Date of birth
/// (dd/mm/yyyy): 14/03/1962").
const MAX_DOB_GAP: usize = 40;
/// Longer lines are not read as table rows (and are not scanned whole for
/// each candidate).
const MAX_ROW_BYTES: usize = 4096;
/// How far (in bytes) before and after a candidate cues are looked for.
const CUE_WINDOW: usize = 48;
/// Near-miss cues: numbers next to these are something else.
const NEAR_MISS_CUES: &[&str] = &[
    "order",
    "invoice",
    "inv.",
    "ref",
    "reference",
    "tracking",
    "isbn",
    "version",
    "ver.",
    "build",
    "release",
    "serial",
    "part no",
    "sku",
    "po ",
    "account no",
    "page",
    "firmware",
    "fw",
    "rev",
    "rev.",
    "revision",
    "section",
    "clause",
    "oid",
    "§",
];

struct Patterns {
    ssn: Regex,
    card: Regex,
    iban: Regex,
    nhs: Regex,
    nino: Regex,
    email: Regex,
    ipv4: Regex,
    ipv6: Regex,
    phone_international: Regex,
    phone_national: Regex,
    /// French style: 01 23 45 67 89.
    phone_grouped_pairs: Regex,
    /// An area code and the rest: 030 7408408, 0221/1234567.
    phone_two_groups: Regex,
    date: Regex,
}

/// The built-in patterns, compiled once (`None` only if one of them were
/// invalid, which `built_in_patterns_compile` rules out).
fn patterns() -> Option<&'static Patterns> {
    static PATTERNS: OnceLock<Option<Patterns>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).ok();
        Some(Patterns {
            ssn: re(r"\b(\d{3})([- ]?)(\d{2})([- ]?)(\d{4})\b")?,
            card: re(r"\b\d(?:[ -]?\d){11,18}\b")?,
            iban: re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")?,
            nhs: re(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b")?,
            nino: re(r"\b([A-Z]{2}) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])\b")?,
            // Internationalised addresses too: "zoë@example.org", "info@müller.de".
            email: re(r"\b[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,}\b")?,
            ipv4: re(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")?,
            ipv6: re(r"(?i)\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b")?,
            phone_international: re(r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}")?,
            phone_national: re(
                r"(?:\(0\d{2,4}\)|\b0\d{2,4}|\(\d{3}\)|\b[2-9]\d{2})[ .-]\d{3,4}[ .-]?\d{3,4}\b",
            )?,
            phone_grouped_pairs: re(r"\b0[1-9](?:[ .]\d{2}){4}\b")?,
            phone_two_groups: re(r"\b0\d{2,4}[ /-]\d{5,8}\b")?,
            date: re(
                r"(?i)\b(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}|\d{1,2}[ -](?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?[ -](?:19|20)\d{2}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{1,2},? (?:19|20)\d{2})\b",
            )?,
        })
    })
    .as_ref()
}

/// Every built-in identifier in `text`, in order, overlaps resolved (the
/// more confident, then the longer, wins). [`Scanner::scan`] adds the
/// custom ones.
pub fn scan(text: &str) -> Vec<Finding> {
    let mut found = scan_built_in(text);
    found.retain(|f| f.confidence >= REPORT_AT);
    resolve_overlaps(found)
}

/// Built-in candidates with their confidence, nothing dropped yet.
fn scan_built_in(text: &str) -> Vec<Finding> {
    let Some(p) = patterns() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    ssns(text, p, &mut found);
    cards(text, p, &mut found);
    ibans(text, p, &mut found);
    nhs_numbers(text, p, &mut found);
    ninos(text, p, &mut found);
    emails(text, p, &mut found);
    ip_addresses(text, p, &mut found);
    phones(text, p, &mut found);
    dates_of_birth(text, p, &mut found);
    found
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// The text around a match, lower-cased, for cue words: before it, its own
/// line and the line above (a label or a column header); after it, the rest
/// of its line. At most [`CUE_WINDOW`] bytes each way beyond the line.
fn context(text: &str, start: usize, end: usize) -> (String, String) {
    if let Some(cell) = table_cell(text, start, end) {
        return cell;
    }
    // Never further back than the window: a long line of candidates must
    // not cost a scan of the line for each.
    let mut floor = start.saturating_sub(CUE_WINDOW * 2);
    while !text.is_char_boundary(floor) {
        floor -= 1;
    }
    let line_start = text[floor..start]
        .rfind('\n')
        .map_or(floor, |i| floor + i + 1);
    let above = text[floor..line_start.saturating_sub(1).max(floor)]
        .rfind('\n')
        .map_or(floor, |i| floor + i + 1)
        .min(line_start);
    let from = above;
    let mut ceiling = (end + CUE_WINDOW).min(text.len());
    while !text.is_char_boundary(ceiling) {
        ceiling += 1;
    }
    let to = text[end..ceiling].find('\n').map_or(ceiling, |i| end + i);
    (
        text[from..start].to_lowercase(),
        text[end..to].to_lowercase(),
    )
}

/// For a candidate in a row of a delimited table (`|`, tab or comma, as
/// many cells as the rows above it up to a header row of words): its
/// column's header and its own cell, instead of its line and the line above.
/// A bare number under "SSN" is one; a date under "Pay date" next to a
/// "DOB" column is not a birth date.
fn table_cell(text: &str, start: usize, end: usize) -> Option<(String, String)> {
    let (line_start, line_end) = line_around(text, start, end, MAX_ROW_BYTES)?;
    let line = &text[line_start..line_end];
    for delim in ['|', '\t', ','] {
        let row = cells(line, delim);
        if row.len() < 3 {
            continue;
        }
        let Some(header) = header_row(text, line_start, delim, row.len()) else {
            continue;
        };
        let (at, until) = (start - line_start, end - line_start);
        let Some(column) = row.iter().position(|&(a, b)| a <= at && until <= b) else {
            continue;
        };
        let (cell_start, cell_end) = row[column];
        let head = cells(header, delim)
            .get(column)
            .map_or("", |&(a, b)| &header[a..b]);
        // "soc_sec_no", "date_of_birth": header words joined by underscores.
        let head = head.trim().replace('_', " ");
        return Some((
            format!("{head} {}", &line[cell_start..at]).to_lowercase(),
            line[until..cell_end].to_lowercase(),
        ));
    }
    None
}

/// The line holding `start..end`, if it is at most `max` bytes long.
fn line_around(text: &str, start: usize, end: usize, max: usize) -> Option<(usize, usize)> {
    let mut floor = start.saturating_sub(max);
    while !text.is_char_boundary(floor) {
        floor -= 1;
    }
    let line_start = match text[floor..start].rfind('\n') {
        Some(i) => floor + i + 1,
        None if floor == 0 => 0,
        None => return None,
    };
    let mut ceiling = (end + max).min(text.len());
    while !text.is_char_boundary(ceiling) {
        ceiling += 1;
    }
    let line_end = match text[end..ceiling].find('\n') {
        Some(i) => end + i,
        None if ceiling == text.len() => text.len(),
        None => return None,
    };
    (line_end - line_start <= max).then_some((line_start, line_end))
}

/// The cells of a delimited row as byte ranges; a delimiter inside double
/// quotes ("Hughes, Chen") does not split.
fn cells(line: &str, delim: char) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut from, mut quoted) = (0, false);
    for (i, c) in line.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == delim && !quoted {
            out.push((from, i));
            from = i + c.len_utf8();
        }
    }
    out.push((from, line.len()));
    out
}

/// The table a previous lookup walked: which text (address and length),
/// its shape, its header (byte range, if any) and the lowest row known to
/// belong to it. Rows are looked up top to bottom, so each one walks up
/// only to the row before it: a long table costs one pass, not one per row.
#[derive(Clone, Copy)]
struct TableMemo {
    text: (usize, usize),
    delim: char,
    columns: usize,
    header: Option<(usize, usize)>,
    row: usize,
}

thread_local! {
    static LAST_TABLE: std::cell::Cell<Option<TableMemo>> = const { std::cell::Cell::new(None) };
}

/// The nearest row above `row_start` with as many cells that holds words
/// and no digits (a header), through rows of that shape only.
fn header_row(text: &str, row_start: usize, delim: char, columns: usize) -> Option<&str> {
    let id = (text.as_ptr() as usize, text.len());
    let memo = LAST_TABLE
        .with(|m| m.get())
        .filter(|m| m.text == id && m.delim == delim && m.columns == columns);
    let mut cursor = row_start;
    let header = loop {
        if let Some(m) = memo.filter(|m| m.row == cursor) {
            break m.header;
        }
        if cursor == 0 {
            break None;
        }
        let above_end = cursor - 1;
        let above_start = text[..above_end].rfind('\n').map_or(0, |i| i + 1);
        let above = &text[above_start..above_end];
        if cells(above, delim).len() != columns {
            break None;
        }
        if !above.chars().any(|c| c.is_ascii_digit()) && above.chars().any(char::is_alphabetic) {
            break Some((above_start, above_end));
        }
        cursor = above_start;
    };
    LAST_TABLE.with(|m| {
        m.set(Some(TableMemo {
            text: id,
            delim,
            columns,
            header,
            row: row_start,
        }))
    });
    header.map(|(a, b)| &text[a..b])
}

/// Confidence from a base, raised by a cue near the candidate and lowered by
/// a near-miss cue just before it on its own line.
fn weigh(text: &str, start: usize, end: usize, base: f32, cues: &[&str]) -> f32 {
    let (before, after) = context(text, start, end);
    let cued = cues
        .iter()
        .any(|c| has_cue(&before, c) || starts_with_cue(&after, c));
    // Only the words just before, on the same line: "order no. 4111…".
    let own_line = before.rsplit('\n').next().unwrap_or("");
    let mut near_from = own_line.len().saturating_sub(24);
    while !own_line.is_char_boundary(near_from) {
        near_from -= 1;
    }
    let near = &own_line[near_from..];
    // An explicit cue after the near-miss word, nearer the number, wins:
    // "Page 2 SSN: 123-45-6789".
    let last = |words: &mut dyn Iterator<Item = &&str>, hay: &str| {
        words
            .filter_map(|c| {
                hay.match_indices(*c)
                    .filter(|(at, _)| bounded(hay, *at, c, true))
                    .map(|(at, _)| at)
                    .last()
            })
            .max()
    };
    let missed_at = last(
        &mut NEAR_MISS_CUES.iter().filter(|c| has_word(near, c)),
        near,
    );
    let cued_at = last(&mut cues.iter(), near);
    let missed = match (missed_at, cued_at) {
        (Some(m), Some(c)) => m > c,
        (Some(_), None) => true,
        _ => false,
    };
    let mut confidence = base;
    if cued {
        confidence += 0.3;
    }
    if missed {
        confidence -= 0.6;
    }
    confidence.clamp(0.0, 1.0)
}

/// Whether `text` holds the cue where a word starts: "ref" in "ref 12" or
/// "ref: 12" but not in "preferred", "ip" not in "ship". A cue of four or
/// more letters may start a longer word ("call" in "callback", "phone" in
/// "phones"); a shorter one must end where its word ends ("ip" not in
/// "ipsum"), plural aside. A cue's own punctuation ("d.o.b", "ss#") is
/// matched as written.
fn has_cue(text: &str, cue: &str) -> bool {
    text.match_indices(cue)
        .any(|(at, _)| bounded(text, at, cue, true))
}

/// [`has_cue`] for near-miss cues, which must be whole words ("ref" is not
/// in "referral").
fn has_word(text: &str, cue: &str) -> bool {
    text.match_indices(cue)
        .any(|(at, _)| bounded(text, at, cue, false))
}

/// Whether `text` begins with the cue ("123-45-6789 (SSN)").
fn starts_with_cue(text: &str, cue: &str) -> bool {
    let trimmed = text.trim_start_matches([' ', '(', ':', '-']);
    let at = text.len() - trimmed.len();
    trimmed.starts_with(cue) && bounded(text, at, cue, true)
}

fn bounded(text: &str, at: usize, cue: &str, prefix_ok: bool) -> bool {
    let word = |c: char| c.is_alphanumeric();
    if cue.starts_with(word) && text[..at].ends_with(word) {
        return false;
    }
    if !cue.ends_with(word) || (prefix_ok && cue.chars().count() >= 4) {
        return true;
    }
    let rest = &text[at + cue.len()..];
    let rest = rest.strip_prefix('s').unwrap_or(rest);
    !rest.starts_with(word)
}

/// Hide all but the last `keep` alphanumerics (never more than half of
/// them: "8.8.8.8" shows "•.•.8.8"), keeping separators.
fn mask(s: &str, keep: usize) -> String {
    let total = s.chars().filter(|c| c.is_alphanumeric()).count();
    let keep = keep.min(total / 2);
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen + keep <= total { '•' } else { c }
            } else {
                c
            }
        })
        .collect()
}

fn push(
    found: &mut Vec<Finding>,
    kind: Kind,
    text: &str,
    start: usize,
    end: usize,
    confidence: f32,
) {
    let masked = match kind {
        Kind::Email => {
            let s = &text[start..end];
            let (user, domain) = s.split_once('@').unwrap_or((s, ""));
            format!("{}•••@{domain}", user.chars().next().unwrap_or('•'))
        }
        Kind::DateOfBirth => mask(&text[start..end], 4),
        _ => mask(&text[start..end], 4),
    };
    found.push(Finding {
        kind,
        start,
        end,
        confidence,
        masked,
        name: kind.as_str().to_string(),
        placeholder: kind.placeholder().to_string(),
    });
}

fn ssns(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    for c in p.ssn.captures_iter(text) {
        let Some(whole) = c.get(0) else { continue };
        let (s1, s2) = (&c[2], &c[4]);
        if s1 != s2 {
            continue; // "123-45 6789" is not how anyone writes one
        }
        let n = |i: usize| c[i].parse::<u32>().unwrap_or(0);
        if !checksum::ssn_valid(n(1), n(3), n(5)) {
            continue;
        }
        // Nine bare digits are an SSN only when something says so.
        let base = if s1.is_empty() { 0.2 } else { 0.6 };
        let cues = [
            "ssn",
            "social security",
            "social sec",
            "ss#",
            "soc. sec",
            "soc sec",
            "taxpayer",
        ];
        let confidence = weigh(text, whole.start(), whole.end(), base, &cues);
        push(
            found,
            Kind::Ssn,
            text,
            whole.start(),
            whole.end(),
            confidence,
        );
    }
}

/// The longest prefix of `candidate`, cut at a separator, that `valid`
/// accepts: "4111 1111 1111 1111 12" (an expiry date after the number) is
/// the card without the "12".
fn longest_valid(candidate: &str, valid: impl Fn(&str) -> bool) -> Option<usize> {
    let cuts = candidate
        .char_indices()
        .filter(|&(i, c)| {
            (c == ' ' || c == '-') && candidate[..i].ends_with(|d: char| d.is_ascii_alphanumeric())
        })
        .map(|(i, _)| i)
        .chain(std::iter::once(candidate.len()));
    let mut cuts: Vec<usize> = cuts.collect();
    cuts.reverse();
    cuts.into_iter().find(|&len| valid(&candidate[..len]))
}

fn card_valid(s: &str) -> bool {
    let digits = digits_of(s);
    (12..=19).contains(&digits.len())
        && checksum::luhn(&digits)
        && checksum::card_issuer(&digits).is_some()
}

fn cards(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    for m in p.card.find_iter(text) {
        let Some(len) = longest_valid(m.as_str(), card_valid) else {
            continue;
        };
        let (start, end) = (m.start(), m.start() + len);
        let cues = [
            "card",
            "visa",
            "mastercard",
            "amex",
            "credit",
            "debit",
            "cc#",
            "pan",
        ];
        let confidence = weigh(text, start, end, 0.7, &cues);
        push(found, Kind::PaymentCard, text, start, end, confidence);
    }
}

fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    checksum::iban_valid(&compact)
}

fn ibans(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    for m in p.iban.find_iter(text) {
        // "DE89 3704 0044 0532 0130 00 BIC …": the pattern ran on into the
        // next word; the IBAN is the longest valid prefix.
        let Some(len) = longest_valid(m.as_str(), iban_valid) else {
            continue;
        };
        let (start, end) = (m.start(), m.start() + len);
        let confidence = weigh(text, start, end, 0.9, &["iban", "bank", "account"]);
        push(found, Kind::Iban, text, start, end, confidence.max(0.9));
    }
}

fn nhs_numbers(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    for m in p.nhs.find_iter(text) {
        let digits = digits_of(m.as_str());
        if !checksum::nhs_valid(&digits) {
            continue;
        }
        // One ten-digit number in eleven passes mod 11 by chance: the NHS's
        // own 3-3-4 spacing or a cue is needed.
        let spaced = m.as_str().contains(' ');
        let base = if spaced { 0.4 } else { 0.2 };
        let cues = ["nhs", "patient", "nhs no", "nhs number"];
        let confidence = weigh(text, m.start(), m.end(), base, &cues);
        push(found, Kind::NhsNumber, text, m.start(), m.end(), confidence);
    }
}

fn ninos(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    for c in p.nino.captures_iter(text) {
        let Some(whole) = c.get(0) else { continue };
        if !checksum::nino_prefix_valid(&c[1]) {
            continue;
        }
        let cues = ["national insurance", "ni no", "ni number", "nino"];
        let confidence = weigh(text, whole.start(), whole.end(), 0.7, &cues);
        push(
            found,
            Kind::NationalInsurance,
            text,
            whole.start(),
            whole.end(),
            confidence,
        );
    }
}

/// "logo@2x.png" is an image, not an address.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "tif", "tiff", "pdf", "js", "css", "html",
    "htm",
];

fn emails(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    for m in p.email.find_iter(text) {
        let tld = m.as_str().rsplit('.').next().unwrap_or("").to_lowercase();
        if FILE_EXTENSIONS.contains(&tld.as_str()) {
            continue;
        }
        push(found, Kind::Email, text, m.start(), m.end(), 0.95);
    }
}

fn ip_addresses(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    let cues = ["ip", "address", "host", "server", "client", "login from"];
    for c in p.ipv4.captures_iter(text) {
        let Some(whole) = c.get(0) else { continue };
        let octets_ok = (1..=4).all(|i| {
            let o = &c[i];
            o.parse::<u32>().is_ok_and(|v| v <= 255) && !(o.len() > 1 && o.starts_with('0'))
        });
        // "1.2.3.4" after "version" or as "v1.2.3.4" is a version string.
        let versioned =
            text[..whole.start()].ends_with('v') || text[..whole.start()].ends_with('V');
        // Part of a longer dotted number (an SNMP OID, a section number).
        let longer =
            dotted_digit_before(text, whole.start()) || dotted_digit_after(text, whole.end());
        if !octets_ok || versioned || longer {
            continue;
        }
        let confidence = weigh(text, whole.start(), whole.end(), 0.6, &cues);
        push(
            found,
            Kind::IpAddress,
            text,
            whole.start(),
            whole.end(),
            confidence,
        );
    }
    for m in p.ipv6.find_iter(text) {
        let candidate = m.as_str();
        let groups = candidate.split(':').filter(|g| !g.is_empty()).count();
        if groups < 3 || candidate.parse::<std::net::Ipv6Addr>().is_err() {
            continue;
        }
        let confidence = weigh(text, m.start(), m.end(), 0.7, &cues);
        push(found, Kind::IpAddress, text, m.start(), m.end(), confidence);
    }
}

/// Whether "digit." comes right before `at`.
fn dotted_digit_before(text: &str, at: usize) -> bool {
    text[..at]
        .strip_suffix('.')
        .is_some_and(|t| t.ends_with(|c: char| c.is_ascii_digit()))
}

/// Whether ".digit" comes right after `at`.
fn dotted_digit_after(text: &str, at: usize) -> bool {
    text[at..]
        .strip_prefix('.')
        .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()))
}

fn phones(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    let cues = [
        "tel",
        "phone",
        "telephone",
        "mobile",
        "mob",
        "cell",
        "fax",
        "call",
        "contact",
        "ph.",
        "telefon",
        "téléphone",
        "tél",
        "direct",
        "dial",
        "reach",
        "hotline",
        "helpline",
        "switchboard",
        "enquiries",
        "t:",
        "m:",
        "whatsapp",
        "sms",
    ];
    let patterns = [
        (&p.phone_international, None),
        (&p.phone_national, Some(national_base as fn(&str) -> f32)),
        (&p.phone_grouped_pairs, None),
        (&p.phone_two_groups, None),
    ];
    for (re, shaped) in patterns {
        for m in re.find_iter(text) {
            let digits = digits_of(m.as_str());
            if !(8..=15).contains(&digits.len()) {
                continue;
            }
            let base = if std::ptr::eq(re, &p.phone_international) {
                0.6
            } else {
                shaped.map_or(0.45, |f| f(m.as_str()))
            };
            let end = m.as_str().trim_end().len() + m.start();
            // Part of a longer dotted number (an IP address, a version), or
            // the tail of a longer run of digit groups (an account number).
            let before = &text[..m.start()];
            let glued_before = before.ends_with(|c: char| c == '.' || c.is_ascii_digit())
                || before
                    .strip_suffix(' ')
                    .is_some_and(|b| b.ends_with(|c: char| c.is_ascii_digit()));
            let glued_after = text[end..].starts_with('.')
                && text[end + 1..].starts_with(|c: char| c.is_ascii_digit());
            if glued_before || glued_after {
                continue;
            }
            let confidence = weigh(text, m.start(), end, base, &cues);
            push(found, Kind::Phone, text, m.start(), end, confidence);
        }
    }
}

/// How much a national number's shape alone says it is a phone number:
/// an area code in brackets, a UK number of 10–11 digits from a leading 0,
/// or the North American 3-3-4 with dashes or dots are (at the reporting
/// bar); other shapes need a cue.
fn national_base(s: &str) -> f32 {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let dashed_334 = {
        let groups: Vec<&str> = s.split(['-', '.']).collect();
        groups.len() == 3 && groups.iter().map(|g| g.len()).eq([3, 3, 4])
    };
    if s.starts_with('(') {
        0.55
    } else if s.starts_with('0') && (10..=11).contains(&digits) && s.contains(' ') || dashed_334 {
        0.5
    } else {
        0.45
    }
}

fn dates_of_birth(text: &str, p: &Patterns, found: &mut Vec<Finding>) {
    let cues = [
        "dob",
        "d.o.b",
        "date of birth",
        "date_of_birth",
        "born",
        "birth date",
        "birth_date",
        "birthdate",
        "birthday",
        "(b.",
        "geb.",
        "né le",
        "née le",
    ];
    for m in p.date.find_iter(text) {
        let (before, _) = context(text, m.start(), m.end());
        // A date is a birth date only when a birth cue comes just before it,
        // with no other date between ("born 1958, started on 12 May 2025":
        // the second date is not one).
        let nearest = cues
            .iter()
            .filter_map(|c| {
                before
                    .match_indices(c)
                    .filter(|(at, _)| bounded(&before, *at, c, true))
                    .map(|(at, _)| at + c.len())
                    .last()
            })
            .max();
        let Some(cue_end) = nearest else { continue };
        let gap = &before[cue_end..];
        // "born before January 2, 1946" is a rule, not someone's birthday.
        let threshold = ["before", "after", "between", "since", "until"]
            .iter()
            .any(|w| has_word(gap, w));
        if gap.chars().count() > MAX_DOB_GAP || p.date.is_match(gap) || threshold {
            continue;
        }
        push(found, Kind::DateOfBirth, text, m.start(), m.end(), 0.9);
    }
}

/// Keep non-overlapping findings: higher confidence first, then longer.
fn resolve_overlaps(mut found: Vec<Finding>) -> Vec<Finding> {
    found.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
    });
    // Kept spans by start; they never overlap, so the one starting last
    // before a candidate's end is the only one that can overlap it.
    let mut kept: std::collections::BTreeMap<usize, Finding> = Default::default();
    for f in found {
        let clashes = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > f.start);
        if !clashes {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String)> {
        scan(text)
            .into_iter()
            .map(|f| (f.kind, text[f.start..f.end].to_string()))
            .collect()
    }

    fn one(text: &str, kind: Kind, value: &str) {
        let got = kinds(text);
        assert!(
            got.iter().any(|(k, v)| *k == kind && v == value),
            "{kind:?} {value:?} in {text:?}: {got:?}"
        );
    }

    fn none(text: &str) {
        assert_eq!(kinds(text), vec![], "{text:?}");
    }

    #[test]
    fn valid_identifiers_are_found() {
        one(
            "Patient SSN: 123-45-6789, seen today.",
            Kind::Ssn,
            "123-45-6789",
        );
        one("SSN 123456789 on file", Kind::Ssn, "123456789");
        one(
            "Card 4111 1111 1111 1111 exp 12/27",
            Kind::PaymentCard,
            "4111 1111 1111 1111",
        );
        one(
            "Pay to IBAN GB82 WEST 1234 5698 7654 32 by Friday",
            Kind::Iban,
            "GB82 WEST 1234 5698 7654 32",
        );
        one("NHS number 943 476 5919", Kind::NhsNumber, "943 476 5919");
        one(
            "NI number AB 12 34 56 C",
            Kind::NationalInsurance,
            "AB 12 34 56 C",
        );
        one(
            "Write to jane.doe@example.org today",
            Kind::Email,
            "jane.doe@example.org",
        );
        one(
            "Login from 192.168.10.24 at night",
            Kind::IpAddress,
            "192.168.10.24",
        );
        one(
            "Host 2001:db8::8a2e:370:7334 answered",
            Kind::IpAddress,
            "2001:db8::8a2e:370:7334",
        );
        one("Tel: +44 20 7946 0958", Kind::Phone, "+44 20 7946 0958");
        one("Call (555) 123-4567 after 5", Kind::Phone, "(555) 123-4567");
        one(
            "DOB: 14/03/1962, allergies none",
            Kind::DateOfBirth,
            "14/03/1962",
        );
        one(
            "born on 3 March 1962 in Leeds",
            Kind::DateOfBirth,
            "3 March 1962",
        );
    }

    #[test]
    fn invalid_checksums_and_ranges_do_not_fire() {
        none("SSN: 000-12-3456");
        none("SSN: 666-12-3456");
        none("SSN: 912-12-3456");
        none("Card 4111 1111 1111 1112");
        none("IBAN GB82 WEST 1234 5698 7654 33");
        none("NHS number 943 476 5918");
        none("NI number QO 12 34 56 C");
        none("address 256.1.1.1 is not one");
    }

    #[test]
    fn near_misses_do_not_fire() {
        none("Order number 4111 1111 1111 1111 shipped");
        none("Invoice 123-45-6789 is due");
        none("ISBN 978-0-306-40615-7");
        none("Upgrade to version 1.2.3.4 tonight");
        none("release v10.0.0.1 notes");
        none("Meeting on 14/03/2024 in room 4");
        none("Totals: 1234567890 2345678901 3456789012");
        none("Order ref 943 476 5919 dispatched");
        none("The clock read 12:30:45 when it stopped.");
        // Near-miss cues are whole words: "ref" is not in "referral".
        none("Preferred supplier ref 123-45-6789");
        one("referral 123-45-6789.txt", Kind::Ssn, "123-45-6789");
        one("Callback: (555) 123-4567", Kind::Phone, "(555) 123-4567");
        one(
            "Callback:\nfrom 10.242.224.158 today",
            Kind::IpAddress,
            "10.242.224.158",
        );
    }

    #[test]
    fn table_columns_take_their_header_as_cue() {
        let csv = "emp_id,name,soc_sec_no,DOB,pay_date\n\
                   94751,\"Davies, Raj\",495696995,12/27/1999,11/15/2025\n";
        let got = kinds(csv);
        assert!(got.contains(&(Kind::Ssn, "495696995".into())), "{got:?}");
        assert!(
            got.contains(&(Kind::DateOfBirth, "12/27/1999".into())),
            "{got:?}"
        );
        // The pay date sits next to the DOB column but is not a birth date.
        assert!(!got.iter().any(|(_, v)| v == "11/15/2025"), "{got:?}");
        let md = "| Patient | Date of birth | Admitted |\n|---|---|---|\n| A. Khan | 10-Apr-1946 | 02/03/2024 |\n";
        assert_eq!(
            kinds(md),
            vec![(Kind::DateOfBirth, "10-Apr-1946".to_string())]
        );
    }

    #[test]
    fn a_birth_cue_names_only_the_next_date() {
        one(
            "Born 18 June 1958 in Leeds.",
            Kind::DateOfBirth,
            "18 June 1958",
        );
        assert_eq!(
            kinds("Born 18 June 1958, started on 12 May 2025."),
            vec![(Kind::DateOfBirth, "18 June 1958".to_string())]
        );
        one(
            "Olivia (b. 24 September 1992) was seen",
            Kind::DateOfBirth,
            "24 September 1992",
        );
        none("Firmware 6.1.24.26 is deprecated; SNMP OID 1.3.6.1.4.1.11447.");
        none("See the logo@2x.png in the signature.");
        one(
            "Telephone: 0151 175 1795 ext 12",
            Kind::Phone,
            "0151 175 1795",
        );
        none("account FR33 9588 4762 5271 0499 6415 922 closed");
        one(
            "IBAN: DE89 3704 0044 0532 0130 00 BIC: COBADEFFBER",
            Kind::Iban,
            "DE89 3704 0044 0532 0130 00",
        );
        one(
            "Card 4111 1111 1111 1111 12/27",
            Kind::PaymentCard,
            "4111 1111 1111 1111",
        );
        one("Page 2 SSN: 123-45-6789", Kind::Ssn, "123-45-6789");
    }

    #[test]
    fn built_in_patterns_compile() {
        assert!(patterns().is_some());
    }

    #[test]
    fn masks_keep_only_the_last_characters() {
        let f = scan("SSN: 123-45-6789");
        assert_eq!(f[0].masked, "•••-••-6789");
        let f = scan("mail jane.doe@example.org");
        assert_eq!(f[0].masked, "j•••@example.org");
        assert_eq!(Kind::Ssn.placeholder(), "[SSN]");
    }
}
