//! API tokens: the bearer credentials of the OpenAI-compatible endpoints.
//!
//! A token is `enc_` + 43 characters (32 random bytes, base64url). Only its
//! SHA-256 is stored: the secret has 256 bits of entropy, so a slow hash
//! adds nothing, and a copy of the database hands out no live token. A
//! token acts as its user with at most its scopes and collections; the
//! collections actually searched are always the intersection with what the
//! user is granted at the moment of use, so revoking a grant or disabling
//! the user takes effect on the next request.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Grounded answers (`/v1/chat/completions`) and the model list.
    Ask,
    /// Vectors from the embedding model (`/v1/embeddings`).
    Embeddings,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Ask, Scope::Embeddings];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ask => "ask",
            Scope::Embeddings => "embeddings",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("unknown scope {0:?} (ask, embeddings)")]
    UnknownScope(String),
    #[error("a token needs at least one scope (ask, embeddings)")]
    NoScope,
    #[error(
        "cannot read the expiry {0:?}: a duration such as 90d, 12h or 30m, or \"never\" (at most 3650d)"
    )]
    BadExpiry(String),
    #[error("token names are 1–64 characters: letters, digits, spaces and . _ - (got {0:?})")]
    BadName(String),
}

/// Parse `ask,embeddings` (order and repeats do not matter).
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, TokenError> {
    let mut scopes = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let scope = Scope::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word))
            .ok_or_else(|| TokenError::UnknownScope(word.to_string()))?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    Ok(scopes)
}

/// The stored form of a scope list: `ask,embeddings`.
pub fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parse an expiry such as `90d`, `12h` or `30m` into seconds; `never` (or
/// an empty string) is `None`. At most ten years.
pub fn parse_expiry(text: &str) -> Result<Option<i64>, TokenError> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let bad = || TokenError::BadExpiry(text.to_string());
    // The unit is one ASCII letter; anything else is refused before slicing.
    if !t.is_ascii() {
        return Err(bad());
    }
    let (number, unit) = t.split_at(t.len() - 1);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        _ => None,
    }
    .ok_or_else(bad)?;
    if secs <= 0 || secs > 3650 * 86_400 {
        return Err(bad());
    }
    Ok(Some(secs))
}

/// Token names label tokens in lists and audit rows.
pub fn validate_name(name: &str) -> Result<(), TokenError> {
    let ok = (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadName(name.to_string()))
    }
}

/// A freshly generated token: the secret is shown once, the hash stored.
pub struct NewSecret {
    pub secret: String,
    pub hash: String,
    /// The first characters, stored to tell tokens apart in lists.
    pub prefix: String,
}

pub const SECRET_PREFIX: &str = "enc_";

pub fn generate() -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    NewSecret {
        hash: hash(&secret),
        prefix: secret.chars().take(SECRET_PREFIX.len() + 6).collect(),
        secret,
    }
}

/// The stored digest of a presented secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a presented string can be a token at all (checked before any
/// database lookup, so junk is refused cheaply).
pub fn plausible(secret: &str) -> bool {
    secret.len() == SECRET_PREFIX.len() + 43
        && secret.starts_with(SECRET_PREFIX)
        && secret[SECRET_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The collections a request with this token searches: the token's list
/// (or all when it has none) intersected with the user's grants now.
pub fn effective_collections(token: Option<&[String]>, granted: &[String]) -> Vec<String> {
    match token {
        None => granted.to_vec(),
        Some(list) => granted
            .iter()
            .filter(|g| list.iter().any(|t| t.eq_ignore_ascii_case(g)))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_refuse_unknown_ones() {
        assert_eq!(
            parse_scopes("ask, embeddings,ask").unwrap(),
            vec![Scope::Ask, Scope::Embeddings]
        );
        assert_eq!(parse_scopes("EMBEDDINGS").unwrap(), vec![Scope::Embeddings]);
        assert_eq!(
            parse_scopes("ask,admin"),
            Err(TokenError::UnknownScope("admin".into()))
        );
        assert_eq!(parse_scopes(" , "), Err(TokenError::NoScope));
        assert_eq!(
            scopes_text(&[Scope::Embeddings, Scope::Ask]),
            "embeddings,ask"
        );
    }

    #[test]
    fn expiries_are_durations_or_never() {
        assert_eq!(parse_expiry("90d").unwrap(), Some(90 * 86_400));
        assert_eq!(parse_expiry("12h").unwrap(), Some(12 * 3_600));
        assert_eq!(parse_expiry("30m").unwrap(), Some(1_800));
        assert_eq!(parse_expiry("never").unwrap(), None);
        for bad in [
            "0d",
            "-1d",
            "3651d",
            "90",
            "d",
            "1y",
            "9999999999999999999d",
            "90д",
            "½",
            "é",
        ] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_random_hashed_and_recognisable() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(plausible(&a.secret), "{}", a.secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(a.secret.starts_with(&a.prefix) && a.prefix.len() == 10);
        assert!(!plausible("enc_short"));
        assert!(!plausible(&format!("{}!", &a.secret[..a.secret.len() - 1])));
    }

    #[test]
    fn a_token_never_widens_the_users_grants() {
        let granted = vec!["clinic".to_string(), "hr".to_string()];
        assert_eq!(effective_collections(None, &granted), granted);
        let only = vec!["HR".to_string(), "finance".to_string()];
        assert_eq!(effective_collections(Some(&only), &granted), vec!["hr"]);
        assert!(effective_collections(Some(&only), &[]).is_empty());
    }
}
