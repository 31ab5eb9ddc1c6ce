//! Accounts, roles, groups and collection grants.
//!
//! There is no default account: the first admin comes from
//! `enclave user add --role admin`. Passwords are hashed with argon2id
//! (19 MiB, 2 passes, 1 lane: OWASP's minimum) and are 8–128 characters.
//! Grants decide which collections a user's questions may retrieve from; the
//! retrieval layer filters both indexes by them, so the UI is not the guard.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("user names are 1–64 characters: letters, digits and . _ @ - (got {0:?})")]
    BadUsername(String),
    #[error("passwords must be 8–128 characters")]
    BadPassword,
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

pub fn validate_password(password: &str) -> Result<()> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AccountError::BadPassword)
    }
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

/// The columns `user_from` reads, in its order.
macro_rules! user_columns {
    () => {
        "id, username, role, disabled, created_at, must_change_password"
    };
}
const USER_SELECT: &str = concat!("SELECT ", user_columns!(), " FROM users");
/// The hash is read here only, for logging in.
const CREDENTIALS_SELECT: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", password_hash FROM users WHERE username = ?1"
);

fn user_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Staff),
        disabled: r.get(3)?,
        created_at: r.get(4)?,
        must_change_password: r.get(5)?,
    })
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

pub fn add_user(
    conn: &Connection,
    username: &str,
    role: Role,
    password_hash: &str,
    origin: PasswordOrigin,
) -> Result<i64> {
    validate_username(username)?;
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE username = ?1)",
        [username],
        |r| r.get(0),
    )?;
    if exists {
        return Err(AccountError::Exists(username.to_string()));
    }
    conn.execute(
        "INSERT INTO users (username, role, password_hash, must_change_password)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            username,
            role.as_str(),
            password_hash,
            origin == PasswordOrigin::OneTime
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn user(conn: &Connection, id: i64) -> Result<User> {
    conn.query_row(&format!("{USER_SELECT} WHERE id = ?1"), [id], user_from)
        .optional()?
        .ok_or_else(|| AccountError::NoSuchUser(id.to_string()))
}

pub fn user_by_name(conn: &Connection, username: &str) -> Result<User> {
    conn.query_row(
        &format!("{USER_SELECT} WHERE username = ?1"),
        [username],
        user_from,
    )
    .optional()?
    .ok_or_else(|| AccountError::NoSuchUser(username.to_string()))
}

/// The user and their password hash, for logging in.
pub fn credentials(conn: &Connection, username: &str) -> Result<Option<(User, String)>> {
    Ok(conn
        .query_row(CREDENTIALS_SELECT, [username], |r| {
            Ok((user_from(r)?, r.get(6)?))
        })
        .optional()?)
}

pub fn users(conn: &Connection) -> Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!("{USER_SELECT} ORDER BY username"))?;
    let users = stmt
        .query_map([], user_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(users)
}

pub fn admin_exists(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0)",
        [],
        |r| r.get(0),
    )?)
}

/// Enable or disable an account; disabling ends its sessions in the same
/// transaction.
pub fn set_disabled(conn: &Connection, user_id: i64, disabled: bool) -> Result<()> {
    let n = conn.execute(
        "UPDATE users SET disabled = ?2 WHERE id = ?1",
        params![user_id, disabled],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(user_id.to_string()));
    }
    if disabled {
        crate::sessions::end_all_for(conn, user_id)?;
    }
    Ok(())
}

/// Change a role; the user's sessions end so the new role applies at once.
pub fn set_role(conn: &Connection, user_id: i64, role: Role) -> Result<()> {
    let n = conn.execute(
        "UPDATE users SET role = ?2 WHERE id = ?1",
        params![user_id, role.as_str()],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(user_id.to_string()));
    }
    crate::sessions::end_all_for(conn, user_id)?;
    Ok(())
}

/// Set a new password hash and end the user's sessions.
pub fn set_password(
    conn: &Connection,
    user_id: i64,
    password_hash: &str,
    origin: PasswordOrigin,
) -> Result<()> {
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2, must_change_password = ?3 WHERE id = ?1",
        params![user_id, password_hash, origin == PasswordOrigin::OneTime],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(user_id.to_string()));
    }
    crate::sessions::end_all_for(conn, user_id)?;
    Ok(())
}

// ---- groups --------------------------------------------------------------

pub fn group_id(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM groups WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| AccountError::NoSuchGroup(name.to_string()))
}

/// Create the group if needed; returns its id.
pub fn ensure_group(conn: &Connection, name: &str) -> Result<i64> {
    validate_name(name)?;
    conn.execute(
        "INSERT INTO groups(name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
        [name],
    )?;
    group_id(conn, name)
}

pub fn add_member(conn: &Connection, group_id: i64, user_id: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
        params![group_id, user_id],
    )?;
    Ok(())
}

pub fn remove_member(conn: &Connection, group_id: i64, user_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
        params![group_id, user_id],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub members: Vec<String>,
}

pub fn groups(conn: &Connection) -> Result<Vec<Group>> {
    let mut stmt = conn.prepare(
        "SELECT g.id, g.name, coalesce(group_concat(u.username, ', '), '')
         FROM groups g LEFT JOIN group_members m ON m.group_id = g.id
         LEFT JOIN users u ON u.id = m.user_id GROUP BY g.id ORDER BY g.name",
    )?;
    let v = stmt
        .query_map([], |r| {
            let members: String = r.get(2)?;
            Ok(Group {
                id: r.get(0)?,
                name: r.get(1)?,
                members: members
                    .split(", ")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
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

pub fn collection_id(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM collections WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| AccountError::NoSuchCollection(name.to_string()))
}

/// Create the collection if needed (admins create collections by naming them).
pub fn ensure_collection(conn: &Connection, name: &str) -> Result<i64> {
    validate_name(name)?;
    conn.execute(
        "INSERT INTO collections(name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
        [name],
    )?;
    collection_id(conn, name)
}

pub fn collections(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM collections ORDER BY name")?;
    let v = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

pub fn grant(conn: &Connection, collection_id: i64, to: Grantee) -> Result<()> {
    let (user, group) = match to {
        Grantee::User(id) => (Some(id), None),
        Grantee::Group(id) => (None, Some(id)),
    };
    conn.execute(
        "INSERT INTO grants (collection_id, user_id, group_id)
         SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM grants WHERE collection_id = ?1
             AND user_id IS ?2 AND group_id IS ?3)",
        params![collection_id, user, group],
    )?;
    Ok(())
}

/// Remove a grant; returns it (for the audit row) if it existed.
pub fn revoke(conn: &Connection, grant_id: i64) -> Result<Option<Grant>> {
    let found = grants_where(conn, Some(grant_id))?.pop();
    conn.execute("DELETE FROM grants WHERE id = ?1", [grant_id])?;
    Ok(found)
}

pub fn grants(conn: &Connection) -> Result<Vec<Grant>> {
    grants_where(conn, None)
}

/// All grants, or the one with `id`.
fn grants_where(conn: &Connection, id: Option<i64>) -> Result<Vec<Grant>> {
    let mut stmt = conn.prepare(
        "SELECT g.id, c.name, CASE WHEN g.user_id IS NULL THEN 'group' ELSE 'user' END,
                coalesce(u.username, gr.name)
         FROM grants g JOIN collections c ON c.id = g.collection_id
         LEFT JOIN users u ON u.id = g.user_id LEFT JOIN groups gr ON gr.id = g.group_id
         WHERE ?1 IS NULL OR g.id = ?1
         ORDER BY c.name, 3, 4",
    )?;
    let v = stmt
        .query_map([id], |r| {
            let kind: String = r.get(2)?;
            Ok(Grant {
                id: r.get(0)?,
                collection: r.get(1)?,
                kind: if kind == "user" { "user" } else { "group" },
                grantee: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Names of the collections `user_id` may retrieve from: granted to them
/// directly or to a group they are in.
pub fn granted_collections(conn: &Connection, user_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT c.name FROM grants g JOIN collections c ON c.id = g.collection_id
         WHERE g.user_id = ?1
            OR g.group_id IN (SELECT group_id FROM group_members WHERE user_id = ?1)
         ORDER BY c.name",
    )?;
    let v = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct hors"));
        assert!(hash_password("short").is_err());
        assert!(hash_password(&"x".repeat(129)).is_err());
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
