//! The validity rules behind the checksummed identifiers: a pattern finds
//! candidates, these decide whether a candidate can be real.

/// Luhn (payment cards): every second digit from the right doubled.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = d as u32;
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Card numbers issuers use: length and prefix (Visa, Mastercard, Amex,
/// Discover, JCB, Diners, UnionPay, Maestro).
pub fn card_issuer(digits: &[u8]) -> Option<&'static str> {
    let prefix = |n: usize| -> u32 { digits.iter().take(n).fold(0, |v, &d| v * 10 + d as u32) };
    let len = digits.len();
    match () {
        _ if digits[0] == 4 && matches!(len, 13 | 16 | 19) => Some("Visa"),
        _ if (51..=55).contains(&prefix(2)) && len == 16 => Some("Mastercard"),
        _ if (2221..=2720).contains(&prefix(4)) && len == 16 => Some("Mastercard"),
        _ if matches!(prefix(2), 34 | 37) && len == 15 => Some("American Express"),
        _ if (prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3)))
            && (16..=19).contains(&len) =>
        {
            Some("Discover")
        }
        _ if (3528..=3589).contains(&prefix(4)) && (16..=19).contains(&len) => Some("JCB"),
        _ if (matches!(prefix(2), 36 | 38 | 39) || (300..=305).contains(&prefix(3)))
            && (14..=19).contains(&len) =>
        {
            Some("Diners Club")
        }
        _ if prefix(2) == 62 && (16..=19).contains(&len) => Some("UnionPay"),
        _ if matches!(
            prefix(4),
            5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763
        ) && (12..=19).contains(&len) =>
        {
            Some("Maestro")
        }
        _ => None,
    }
}

/// US Social Security number rules: area not 000, 666 or 900–999, group not
/// 00, serial not 0000 (and not the numbers used in advertising).
pub fn ssn_valid(area: u32, group: u32, serial: u32) -> bool {
    let advertised = matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !advertised
}

/// IBAN length by country (ISO 13616 registry).
pub fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "IQ" | "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        "RU" => 33,
        _ => return None,
    })
}

/// ISO 7064 mod 97-10 over an IBAN without spaces (upper-case).
pub fn iban_valid(iban: &str) -> bool {
    let bytes = iban.as_bytes();
    if bytes.len() < 15 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    if iban_length(&iban[..2]) != Some(bytes.len()) || !bytes[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let rearranged = bytes[4..].iter().chain(&bytes[..4]);
    let mut remainder: u32 = 0;
    for &b in rearranged {
        let value = if b.is_ascii_digit() {
            (b - b'0') as u32
        } else {
            (b.to_ascii_uppercase() - b'A') as u32 + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// NHS number: ten digits, the last a mod-11 check digit (10 is invalid).
pub fn nhs_valid(digits: &[u8]) -> bool {
    if digits.len() != 10 || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let sum: u32 = digits[..9]
        .iter()
        .enumerate()
        .map(|(i, &d)| d as u32 * (10 - i as u32))
        .sum();
    let check = 11 - sum % 11;
    let check = if check == 11 { 0 } else { check };
    check != 10 && check == digits[9] as u32
}

/// The NHS rule generalised to any length: weights n+1 … 2 over the first n
/// digits, the last digit 11 − (sum mod 11), 11 read as 0, 10 never valid.
pub fn mod11_valid(digits: &[u8]) -> bool {
    let Some((&check, body)) = digits.split_last() else {
        return false;
    };
    if body.is_empty() {
        return false;
    }
    // Reduced as it goes: a custom pattern may match any number of digits.
    let n = body.len() as u64;
    let sum = body.iter().enumerate().fold(0u64, |acc, (i, &d)| {
        (acc + d as u64 * ((n + 1 - i as u64) % 11)) % 11
    });
    let expected = match 11 - sum % 11 {
        11 => 0,
        c => c,
    };
    expected != 10 && expected == check as u64
}

/// ISO 7064 mod 97-10 over digits: the number they write is 1 mod 97.
pub fn mod97_valid(digits: &[u8]) -> bool {
    digits.len() >= 3 && digits.iter().fold(0u32, |r, &d| (r * 10 + d as u32) % 97) == 1
}

/// UK National Insurance number prefix rules: neither letter D, F, I, Q, U
/// or V; the second not O; not the prefixes never issued.
pub fn nino_prefix_valid(prefix: &str) -> bool {
    let b = prefix.as_bytes();
    let bad = |c: u8| matches!(c, b'D' | b'F' | b'I' | b'Q' | b'U' | b'V');
    b.len() == 2
        && !bad(b[0])
        && !bad(b[1])
        && b[1] != b'O'
        && !matches!(prefix, "BG" | "GB" | "KN" | "NK" | "NT" | "TN" | "ZZ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect()
    }

    #[test]
    fn luhn_and_issuers() {
        assert!(luhn(&digits("4111 1111 1111 1111")));
        assert!(!luhn(&digits("4111 1111 1111 1112")));
        assert_eq!(card_issuer(&digits("4111111111111111")), Some("Visa"));
        assert_eq!(
            card_issuer(&digits("378282246310005")),
            Some("American Express")
        );
        assert_eq!(card_issuer(&digits("5555555555554444")), Some("Mastercard"));
        assert_eq!(card_issuer(&digits("1234567812345670")), None);
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn_valid(123, 45, 6789));
        assert!(!ssn_valid(0, 45, 6789));
        assert!(!ssn_valid(666, 45, 6789));
        assert!(!ssn_valid(912, 45, 6789));
        assert!(!ssn_valid(123, 0, 6789));
        assert!(!ssn_valid(123, 45, 0));
        assert!(!ssn_valid(78, 5, 1120));
    }

    #[test]
    fn iban_mod_97() {
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("GB82WEST12345698765433"));
        assert!(!iban_valid("GB82WEST1234569876543"), "wrong length");
        assert!(!iban_valid("XX82WEST12345698765432"), "unknown country");
    }

    #[test]
    fn nhs_mod_11_and_nino_prefixes() {
        assert!(nhs_valid(&digits("943 476 5919")));
        assert!(!nhs_valid(&digits("943 476 5918")));
        assert!(!nhs_valid(&digits("111 111 1111")));
        assert!(mod11_valid(&digits("943 476 5919")), "the NHS rule");
        assert!(!mod11_valid(&digits("943 476 5918")));
        assert!(
            mod11_valid(&digits("12343")),
            "1·5+2·4+3·3+4·2 = 30, 11 − 8 = 3"
        );
        assert!(!mod11_valid(&digits("7")));
        assert!(
            mod97_valid(&digits("3214282912345698765432161182")),
            "GB82WEST… as digits"
        );
        assert!(!mod97_valid(&digits("3214282912345698765432161183")));
        assert!(nino_prefix_valid("AB"));
        assert!(!nino_prefix_valid("GB"));
        assert!(!nino_prefix_valid("AO"));
        assert!(!nino_prefix_valid("DA"));
    }
}
