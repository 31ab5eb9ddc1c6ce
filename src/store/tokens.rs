//! The `api_tokens` table. The rules (secrets, scopes, expiry, the
//! intersection with grants) are in `crate::accounts::tokens`; these
//! functions read and write rows inside the caller's transaction.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Db, Result};
use crate::accounts::tokens::{Scope, parse_scopes};

/// A token as lists and the bearer check see it (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// `None`: all of the user's grants.
    pub collections: Option<Vec<String>>,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_from: Option<String>,
}

impl ApiToken {
    /// Live: neither revoked nor past its expiry at `now`.
    pub fn live_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What `create` stores.
pub struct NewToken<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub hash: &'a str,
    pub prefix: &'a str,
    pub scopes: &'a str,
    pub collections: Option<&'a [String]>,
    pub created_by: &'a str,
    pub now: i64,
    pub expires_at: Option<i64>,
}

const SELECT: &str =
    "SELECT t.id, t.user_id, u.username, t.name, t.prefix, t.scopes, t.collections,
        t.created_at, t.created_by, t.expires_at, t.revoked_at, t.last_used_at, t.last_used_from
    FROM api_tokens t JOIN users u ON u.id = t.user_id";

fn token_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    let scopes: String = r.get(5)?;
    let collections: Option<String> = r.get(6)?;
    Ok(ApiToken {
        id: r.get(0)?,
        user_id: r.get(1)?,
        username: r.get(2)?,
        name: r.get(3)?,
        prefix: r.get(4)?,
        // Written only through `parse_scopes`; an unreadable row grants nothing.
        scopes: parse_scopes(&scopes).unwrap_or_default(),
        collections: collections.map(|c| serde_json::from_str(&c).unwrap_or_default()),
        created_at: r.get(7)?,
        created_by: r.get(8)?,
        expires_at: r.get(9)?,
        revoked_at: r.get(10)?,
        last_used_at: r.get(11)?,
        last_used_from: r.get(12)?,
    })
}

pub fn create(db: &Db<'_>, t: &NewToken<'_>) -> Result<i64> {
    let conn = db.0;
    let collections = t
        .collections
        .map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".into()));
    conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, prefix, scopes, collections,
             created_at, created_by, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            t.user_id,
            t.name,
            t.hash,
            t.prefix,
            t.scopes,
            collections,
            t.now,
            t.created_by,
            t.expires_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The token whose secret hashes to `hash`, live or not.
pub fn by_hash(db: &Db<'_>, hash: &str) -> Result<Option<ApiToken>> {
    let conn = db.0;
    Ok(conn
        .query_row(
            &format!("{SELECT} WHERE t.token_hash = ?1"),
            [hash],
            token_from,
        )
        .optional()?)
}

pub fn get(db: &Db<'_>, id: i64) -> Result<Option<ApiToken>> {
    let conn = db.0;
    Ok(conn
        .query_row(&format!("{SELECT} WHERE t.id = ?1"), [id], token_from)
        .optional()?)
}

/// All tokens, newest first (revoked ones too: the list is the record).
pub fn list(db: &Db<'_>) -> Result<Vec<ApiToken>> {
    let conn = db.0;
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY t.id DESC"))?;
    let rows = stmt
        .query_map([], token_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Revoke a live token; false when there is none with that id or it was
/// revoked already.
pub fn revoke(db: &Db<'_>, id: i64, now: i64) -> Result<bool> {
    let conn = db.0;
    let n = conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(n == 1)
}

/// Record a use (time and client address).
pub fn touch(db: &Db<'_>, id: i64, now: i64, address: &str) -> Result<()> {
    let conn = db.0;
    conn.execute(
        "UPDATE api_tokens SET last_used_at = ?2, last_used_from = ?3 WHERE id = ?1",
        params![id, now, address],
    )?;
    Ok(())
}

/// What an admin asks for when creating a token (from the CLI or the users
/// page): validated here, in the caller's transaction.
pub struct TokenRequest {
    pub username: String,
    pub name: String,
    /// `ask,embeddings`
    pub scopes: String,
    /// `None`: all of the user's grants (at the moment of each use).
    pub collections: Option<Vec<String>>,
    /// `90d`, `12h`, `never`.
    pub expires: String,
    pub created_by: String,
}

/// A created token and its secret (shown once, never stored).
pub struct Issued {
    pub token: ApiToken,
    pub secret: String,
}

/// Validate and create a token. The inner error is a message for the admin
/// (unknown user or collection, a role that cannot ask, a bad scope or
/// expiry).
pub fn issue(
    db: &Db<'_>,
    req: &TokenRequest,
    now: i64,
) -> Result<std::result::Result<Issued, String>> {
    use crate::accounts::tokens;
    let name = req.name.trim();
    let checked = (|| {
        tokens::validate_name(name).map_err(|e| e.to_string())?;
        let scopes = tokens::parse_scopes(&req.scopes).map_err(|e| e.to_string())?;
        let expires = tokens::parse_expiry(&req.expires).map_err(|e| e.to_string())?;
        Ok::<_, String>((scopes, expires))
    })();
    let (scopes, expires) = match checked {
        Ok(v) => v,
        Err(message) => return Ok(Err(message)),
    };
    let user = match super::accounts::user_by_name(db, &req.username) {
        Ok(u) => u,
        Err(crate::accounts::AccountError::Sqlite(e)) => return Err(e.into()),
        Err(e) => return Ok(Err(e.to_string())),
    };
    if !user.role.can_chat() {
        return Ok(Err(format!(
            "{} is an {}: that role does not ask questions, so a token would do nothing",
            user.username,
            user.role.as_str()
        )));
    }
    if let Some(list) = &req.collections {
        for c in list {
            match super::accounts::collection_id(db, c) {
                Ok(_) => {}
                Err(crate::accounts::AccountError::Sqlite(e)) => return Err(e.into()),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
    }
    let secret = tokens::generate();
    let id = create(
        db,
        &NewToken {
            user_id: user.id,
            name,
            hash: &secret.hash,
            prefix: &secret.prefix,
            scopes: &tokens::scopes_text(&scopes),
            collections: req.collections.as_deref(),
            created_by: &req.created_by,
            now,
            expires_at: expires.map(|secs| now + secs),
        },
    )?;
    let token = get(db, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Ok(Issued {
        token,
        secret: secret.secret,
    }))
}

/// The audit row of a token created or revoked.
pub fn audit_entry(
    actor: &crate::audit::Actor,
    action: &'static str,
    t: &ApiToken,
) -> crate::audit::Entry {
    crate::audit::Entry::new(actor, action, format!("token:{}", t.id)).detail(serde_json::json!({
        "user": t.username,
        "name": t.name,
        "prefix": t.prefix,
        "scopes": t.scopes,
        "collections": t.collections,
        "expires_at": t.expires_at,
    }))
}
