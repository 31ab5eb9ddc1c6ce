//! Accounts, roles, groups and collection grants.
//!
//! There is no default account: the first admin comes from
//! `enclave user add --role admin`. Passwords are hashed with argon2id
//! (19 MiB, 2 passes, 1 lane: OWASP's minimum) and are 12–128 characters, not
//! easy to guess (zxcvbn).
//! Grants decide which collections a user's questions may retrieve from; the
//! retrieval layer filters both indexes by them, so the UI is not the guard.
//! The rows live in `store::accounts`. API tokens (`tokens`) act as their
//! user with at most their scopes and collections.

pub mod tokens;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("user names are 1–64 characters: letters, digits and . _ @ - (got {0:?})")]
    BadUsername(String),
    #[error("passwords must be 12–128 characters")]
    BadPassword,
    #[error(
        "this password is too easy to guess (a common password, a word with digits, a keyboard run); a phrase of several unrelated words is better"
    )]
    WeakPassword,
    #[error(
        "group and collection names are 1–64 characters: letters, digits and . _ - (got {0:?})"
    )]
    BadName(String),
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("no such group: {0}")]
    NoSuchGroup(String),
    #[error("no such collection: {0}")]
    NoSuchCollection(String),
    #[error("unknown role {0:?} (staff, admin or auditor)")]
    BadRole(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub type Result<T> = std::result::Result<T, AccountError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Asks questions over granted collections.
    Staff,
    /// Manages documents, collections, users and grants.
    Admin,
    /// Reads, exports and verifies the audit log.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            "auditor" => Ok(Role::Auditor),
            other => Err(AccountError::BadRole(other.to_string())),
        }
    }

    /// Whether this role asks questions (auditors only read the log).
    pub fn can_chat(self) -> bool {
        matches!(self, Role::Staff | Role::Admin)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    /// Holds a one-time password: may do nothing but choose their own.
    pub must_change_password: bool,
}

fn argon2() -> Argon2<'static> {
    // Constant parameters: these values cannot be rejected by Params::new.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn validate_username(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadUsername(name.chars().take(80).collect()))
    }
}

pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.chars().take(80).collect()))
    }
}

/// At least 12 characters (ASVS L2), at most 128, and not easy to guess:
/// zxcvbn's estimate, which ships lists of common passwords, names and
/// words, must reach 3 of 4 ("safely unguessable" online).
pub fn validate_password(password: &str) -> Result<()> {
    if !(12..=128).contains(&password.chars().count()) {
        return Err(AccountError::BadPassword);
    }
    if u8::from(zxcvbn::zxcvbn(password, &[]).score()) < 3 {
        return Err(AccountError::WeakPassword);
    }
    Ok(())
}

pub fn hash_password(password: &str) -> Result<String> {
    validate_password(password)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.chars().count() > 128 {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a password nobody has, verified against when a login names an
/// unknown user, so the answer takes as long as for a real one.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// A random password for `user add --generate-password` (20 characters).
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Whether a password was chosen by its holder or issued to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordOrigin {
    /// Typed by the user (or piped in by the operator who will hand it over
    /// in person): kept.
    Chosen,
    /// Generated and shown once: must be replaced at the first login.
    OneTime,
}

// ---- groups --------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub members: Vec<String>,
}

// ---- collections and grants ---------------------------------------------

/// Who a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantee {
    User(i64),
    Group(i64),
}

#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub id: i64,
    pub collection: String,
    /// "user" or "group"
    pub kind: &'static str,
    pub grantee: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batter"));
        assert!(hash_password("short").is_err());
        assert!(hash_password(&"x".repeat(129)).is_err());
        // Long enough, but among the first guesses of any attacker.
        for weak in ["password1234", "qwertyuiop123", "aaaaaaaaaaaaaaaa"] {
            assert!(
                matches!(validate_password(weak), Err(AccountError::WeakPassword)),
                "{weak}"
            );
        }
        assert!(validate_password(&generate_password()).is_ok());
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn usernames_are_restricted() {
        assert!(validate_username("alice.smith@ward-4").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("<script>").is_err());
        assert!(validate_username(&"a".repeat(65)).is_err());
    }
}
