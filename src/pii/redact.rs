//! Redaction: each finding replaced by its typed placeholder, with a map
//! from the old text's positions to the new one's (OCR word offsets and
//! finding offsets must keep pointing at the right characters).

use super::Finding;

/// One replacement, in characters of the old and the new text.
#[derive(Debug, Clone, Copy)]
struct Edit {
    old_start: usize,
    old_end: usize,
    new_start: usize,
    new_end: usize,
}

/// A text with its identifiers replaced.
#[derive(Debug, Clone)]
pub struct Redacted {
    pub text: String,
    /// The findings, their byte offsets now those of their placeholders.
    pub findings: Vec<Finding>,
    edits: Vec<Edit>,
}

impl Redacted {
    /// Where character `old` of the original text is in the redacted one
    /// (inside an identifier: the start of its placeholder; at its end: the
    /// end of the placeholder).
    pub fn map_char(&self, old: usize) -> usize {
        let mut shift: isize = 0;
        for e in &self.edits {
            if old < e.old_start {
                break;
            }
            if old < e.old_end {
                return e.new_start;
            }
            shift = e.new_end as isize - e.old_end as isize;
        }
        (old as isize + shift).max(0) as usize
    }
}

/// `text` with each of `findings` (in order, not overlapping, byte offsets
/// into `text`) replaced by its placeholder.
pub fn redact(text: &str, findings: &[Finding]) -> Redacted {
    let mut out = String::with_capacity(text.len());
    let mut moved = Vec::with_capacity(findings.len());
    let mut edits = Vec::with_capacity(findings.len());
    let (mut at, mut old_chars, mut new_chars) = (0usize, 0usize, 0usize);
    for f in findings {
        let (Some(before), Some(value)) = (text.get(at..f.start), text.get(f.start..f.end)) else {
            continue; // out of order or off a char boundary: never produced by scan
        };
        out.push_str(before);
        old_chars += before.chars().count();
        new_chars += before.chars().count();
        let start = out.len();
        out.push_str(&f.placeholder);
        let placeholder_chars = f.placeholder.chars().count();
        let value_chars = value.chars().count();
        edits.push(Edit {
            old_start: old_chars,
            old_end: old_chars + value_chars,
            new_start: new_chars,
            new_end: new_chars + placeholder_chars,
        });
        old_chars += value_chars;
        new_chars += placeholder_chars;
        moved.push(Finding {
            start,
            end: out.len(),
            ..f.clone()
        });
        at = f.end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    Redacted {
        text: out,
        findings: moved,
        edits,
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan;
    use super::*;

    #[test]
    fn identifiers_become_placeholders_and_positions_follow() {
        let text = "Née Zoë, SSN 123-45-6789, mail zoe@example.org. Done.";
        let found = scan(text);
        let r = redact(text, &found);
        assert_eq!(r.text, "Née Zoë, SSN [SSN], mail [EMAIL]. Done.");
        for f in &r.findings {
            assert_eq!(&r.text[f.start..f.end], f.placeholder);
        }
        let chars = |s: &str, needle: &str| s[..s.find(needle).unwrap()].chars().count();
        // Before the first identifier nothing moves; after it, "Done" follows.
        assert_eq!(r.map_char(chars(text, "Zoë")), chars(&r.text, "Zoë"));
        assert_eq!(r.map_char(chars(text, "Done")), chars(&r.text, "Done"));
        // Inside an identifier: the start of its placeholder.
        assert_eq!(r.map_char(chars(text, "45-6789")), chars(&r.text, "[SSN]"));
        assert_eq!(redact("no identifiers", &[]).text, "no identifiers");
    }
}
