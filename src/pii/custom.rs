//! The scanner an installation runs: the built-in detectors plus the
//! organisation's own identifiers from `[[pii.custom]]` (medical record
//! numbers, case numbers), each a pattern, an optional check digit rule and
//! cue words, weighed like the built-in ones.

use regex::Regex;

use crate::config::{CustomChecksum, CustomIdentifier};

use super::{Finding, Kind, REPORT_AT, checksum, digits_of, mask, resolve_overlaps, weigh};

#[derive(Debug, thiserror::Error)]
#[error("custom identifier {name}: {reason}")]
pub struct CustomError {
    name: String,
    reason: String,
}

struct Custom {
    name: String,
    placeholder: String,
    pattern: Regex,
    checksum: CustomChecksum,
    cues: Vec<String>,
    require_cue: bool,
}

/// Built-in detectors and the configured custom ones.
#[derive(Default)]
pub struct Scanner {
    custom: Vec<Custom>,
}

impl Scanner {
    /// A scanner for the built-in types and `custom` (checked again here:
    /// the config's validation already refused bad patterns and names).
    pub fn new(custom: &[CustomIdentifier]) -> Result<Scanner, CustomError> {
        let custom = custom
            .iter()
            .map(|c| {
                let pattern = Regex::new(&c.pattern).map_err(|e| CustomError {
                    name: c.name.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Custom {
                    placeholder: format!("[{}]", c.name.to_uppercase()),
                    name: c.name.clone(),
                    pattern,
                    checksum: c.checksum,
                    cues: c.cues.iter().map(|q| q.to_lowercase()).collect(),
                    require_cue: c.require_cue,
                })
            })
            .collect::<Result<Vec<_>, CustomError>>()?;
        Ok(Scanner { custom })
    }

    /// Every identifier in `text` (byte offsets), in order, overlaps
    /// resolved: the more confident, then the longer, wins.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found = super::scan_built_in(text);
        for c in &self.custom {
            c.find(text, &mut found);
        }
        found.retain(|f| f.confidence >= REPORT_AT);
        resolve_overlaps(found)
    }

    /// `text` with every identifier in it replaced by its placeholder (file
    /// names in job rows, logs and audit rows).
    pub fn redacted(&self, text: &str) -> String {
        super::redact(text, &self.scan(text)).text
    }

    /// The names of the custom types, in config order.
    pub fn custom_names(&self) -> impl Iterator<Item = &str> {
        self.custom.iter().map(|c| c.name.as_str())
    }
}

impl Custom {
    fn find(&self, text: &str, found: &mut Vec<Finding>) {
        for caps in self.pattern.captures_iter(text) {
            let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                continue;
            };
            if m.is_empty() || !self.passes_checksum(m.as_str()) {
                continue;
            }
            let cues: Vec<&str> = self.cues.iter().map(String::as_str).collect();
            // A cue is asked for: without one the match stays below the bar.
            let base = if self.require_cue { 0.2 } else { 0.6 };
            // An identifier the organisation wrote a checksum for is more
            // than a pattern match.
            let base = if self.checksum == CustomChecksum::None {
                base
            } else {
                base + 0.1
            };
            let confidence = weigh(text, m.start(), m.end(), base, &cues);
            found.push(Finding {
                kind: Kind::Custom,
                start: m.start(),
                end: m.end(),
                confidence,
                masked: mask(m.as_str(), 4),
                name: self.name.clone(),
                placeholder: self.placeholder.clone(),
            });
        }
    }

    fn passes_checksum(&self, s: &str) -> bool {
        let digits = digits_of(s);
        match self.checksum {
            CustomChecksum::None => true,
            CustomChecksum::Luhn => digits.len() >= 2 && checksum::luhn(&digits),
            CustomChecksum::Mod11 => checksum::mod11_valid(&digits),
            CustomChecksum::Mod97 => checksum::mod97_valid(&digits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mrn(checksum: CustomChecksum, require_cue: bool) -> Scanner {
        Scanner::new(&[CustomIdentifier {
            name: "mrn".into(),
            pattern: r"\bMRN[- ]?(\d{7})\b|\b(?:H|K)\d{6}\b".into(),
            checksum,
            cues: vec!["medical record".into(), "mrn".into()],
            require_cue,
        }])
        .expect("valid pattern")
    }

    fn found(s: &Scanner, text: &str) -> Vec<(String, String)> {
        s.scan(text)
            .into_iter()
            .map(|f| (f.name, text[f.start..f.end].to_string()))
            .collect()
    }

    #[test]
    fn custom_identifiers_use_group_one_cues_and_checksums() {
        let s = mrn(CustomChecksum::None, false);
        assert_eq!(
            found(&s, "Patient MRN 1234567 seen."),
            vec![("mrn".to_string(), "1234567".to_string())]
        );
        let f = &s.scan("MRN-7654321")[0];
        assert_eq!(
            (f.placeholder.as_str(), f.masked.as_str()),
            ("[MRN]", "••••321")
        );
        // Built-in types still come through the same scanner.
        assert_eq!(found(&s, "SSN 123-45-6789")[0].0, "ssn");
        // Mod 11 over 123456 (weights 7…2) is 77 ≡ 0, so the check digit is 0.
        let checked = mrn(CustomChecksum::Mod11, false);
        assert!(found(&checked, "MRN 1234567").is_empty());
        assert_eq!(found(&checked, "MRN 1234560").len(), 1);
        // Without a cue, a required-cue identifier is not reported.
        let cued = mrn(CustomChecksum::None, true);
        assert!(found(&cued, "Ward K123456 is closed").is_empty());
        assert_eq!(found(&cued, "Medical record: K123456").len(), 1);
        // Near-miss words still lower it.
        assert!(found(&s, "Invoice K123456").is_empty());
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_the_identifier() {
        let bad = Scanner::new(&[CustomIdentifier {
            name: "case_no".into(),
            pattern: "(".into(),
            checksum: CustomChecksum::None,
            cues: Vec::new(),
            require_cue: false,
        }]);
        let Err(e) = bad else { panic!("accepted") };
        assert!(e.to_string().contains("case_no"), "{e}");
    }
}
