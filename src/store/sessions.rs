//! Server-side sessions and login throttling.
//!
//! A session is a random 256-bit token in a `__Host-` cookie; the database
//! keeps only its SHA-256, with the user, a per-session CSRF token and two
//! clocks: it ends after `idle` without a request or `absolute` after login,
//! whichever comes first. Logout, disabling the user, or changing their role
//! or password deletes the rows, which ends the sessions at once.

use base64::Engine;
use rusqlite::{OptionalExtension, params};

use super::Db;
use sha2::{Digest, Sha256};

use crate::accounts::User;

pub type Result<T> = std::result::Result<T, rusqlite::Error>;

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub user: User,
    pub csrf_token: String,
    pub created_at: i64,
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

/// Start a session; returns the cookie token (never stored) and the session.
pub fn create(db: &Db<'_>, user: &User, address: &str) -> Result<(String, Session)> {
    let conn = db.0;
    let token = random_token();
    let csrf = random_token();
    let now = now_secs();
    let hash = token_hash(&token);
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen, address)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![hash, user.id, csrf, now, address],
    )?;
    Ok((
        token,
        Session {
            token_hash: hash,
            user: user.clone(),
            csrf_token: csrf,
            created_at: now,
        },
    ))
}

/// Why a cookie did not give a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// No such session (never existed, logged out, or ended by an admin).
    Unknown,
    /// It existed and timed out (idle or absolute); it is deleted now.
    Expired,
}

/// The live session for `token`, refreshing its idle clock; expired sessions
/// are deleted on sight. A disabled user has no live session.
pub fn lookup(
    db: &Db<'_>,
    token: &str,
    lifetimes: Lifetimes,
) -> Result<std::result::Result<Session, Lookup>> {
    let conn = db.0;
    let hash = token_hash(token);
    let row: Option<(i64, String, i64, i64)> = conn
        .query_row(
            "SELECT user_id, csrf_token, created_at, last_seen FROM sessions WHERE token_hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((user_id, csrf_token, created_at, last_seen)) = row else {
        return Ok(Err(Lookup::Unknown));
    };
    let now = now_secs();
    if now - last_seen > lifetimes.idle_secs || now - created_at > lifetimes.absolute_secs {
        conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [&hash])?;
        return Ok(Err(Lookup::Expired));
    }
    let user = match super::accounts::user(db, user_id) {
        Ok(u) if !u.disabled => u,
        _ => {
            conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [&hash])?;
            return Ok(Err(Lookup::Unknown));
        }
    };
    // Writing on every request would serialise all readers on the database's
    // write lock; a few seconds' slack on a 15-minute clock is harmless.
    if now - last_seen >= 5 {
        conn.execute(
            "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
            params![hash, now],
        )?;
    }
    Ok(Ok(Session {
        token_hash: hash,
        user,
        csrf_token,
        created_at,
    }))
}

pub fn end(db: &Db<'_>, token_hash: &str) -> Result<()> {
    let conn = db.0;
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

pub fn end_all_for(db: &Db<'_>, user_id: i64) -> Result<usize> {
    let conn = db.0;
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])
}

pub fn count_for(db: &Db<'_>, user_id: i64) -> Result<i64> {
    let conn = db.0;
    conn.query_row(
        "SELECT count(*) FROM sessions WHERE user_id = ?1",
        [user_id],
        |r| r.get(0),
    )
}

/// Sessions open now, for the health page.
pub fn count_all(db: &Db<'_>) -> Result<i64> {
    let conn = db.0;
    conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
}

/// Remove sessions past either limit (housekeeping; lookups also do it).
pub fn purge_expired(db: &Db<'_>, lifetimes: Lifetimes) -> Result<usize> {
    let conn = db.0;
    let now = now_secs();
    conn.execute(
        "DELETE FROM sessions WHERE ?1 - last_seen > ?2 OR ?1 - created_at > ?3",
        params![now, lifetimes.idle_secs, lifetimes.absolute_secs],
    )
}

// ---- login throttling -----------------------------------------------------

/// The window over which failures count.
const WINDOW_SECS: i64 = 15 * 60;
/// The longest an account is held back: short, so that an attacker
/// hammering someone's account cannot keep them out for long.
const MAX_ACCOUNT_WAIT_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub per_account: u32,
    pub per_address: u32,
}

fn failures_since(db: &Db<'_>, key: &str, since: i64) -> Result<(i64, i64)> {
    let conn = db.0;
    conn.query_row(
        "SELECT count(*), coalesce(max(at), 0) FROM login_failures WHERE key = ?1 AND at > ?2",
        params![key, since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The failures that hold an account back are those from one address: an
/// attacker elsewhere can slow their own guesses at an account, not lock its
/// owner out (the per-address limit still caps what one address can try
/// across accounts).
fn account_key(username: &str, address: &str) -> String {
    format!("user:{}|addr:{address}", username.to_lowercase())
}

/// Seconds to wait before another login attempt for this account from this
/// address, or from this address at all, or `None` if one may be tried now.
/// Checked before the password, so a throttled attempt costs no hashing and
/// teaches nothing.
pub fn login_wait(
    db: &Db<'_>,
    username: &str,
    address: &str,
    policy: ThrottlePolicy,
) -> Result<Option<u64>> {
    let now = now_secs();
    let since = now - WINDOW_SECS;
    let (by_addr, last_addr) = failures_since(db, &format!("addr:{address}"), since)?;
    if by_addr >= policy.per_address as i64 {
        return Ok(Some((last_addr + WINDOW_SECS - now).max(1) as u64));
    }
    let (by_user, last_user) = failures_since(db, &account_key(username, address), since)?;
    if by_user >= policy.per_account as i64 {
        let over = (by_user - policy.per_account as i64).min(20) as u32;
        let wait = (15i64 << over).min(MAX_ACCOUNT_WAIT_SECS);
        let until = last_user + wait;
        if until > now {
            return Ok(Some((until - now) as u64));
        }
    }
    Ok(None)
}

/// Count an attempt as failed against the account (from this address) and
/// the address. Done *before* the password is hashed, so that concurrent
/// attempts cannot all pass the throttle while none has failed yet; a
/// success takes the reservation back ([`release`]). Returns the rows.
pub fn record_failure(db: &Db<'_>, username: &str, address: &str) -> Result<Vec<i64>> {
    let conn = db.0;
    let now = now_secs();
    conn.execute(
        "DELETE FROM login_failures WHERE at <= ?1",
        [now - WINDOW_SECS],
    )?;
    let mut rows = Vec::with_capacity(2);
    for key in [account_key(username, address), format!("addr:{address}")] {
        conn.execute(
            "INSERT INTO login_failures (key, at) VALUES (?1, ?2)",
            params![key, now],
        )?;
        rows.push(conn.last_insert_rowid());
    }
    Ok(rows)
}

/// Take back an attempt [`record_failure`] reserved that succeeded.
pub fn release(db: &Db<'_>, rows: &[i64]) -> Result<()> {
    for row in rows {
        db.0.execute("DELETE FROM login_failures WHERE rowid = ?1", [row])?;
    }
    Ok(())
}

/// A successful login forgets the account's failures from that address (not
/// the address's failures on other accounts).
pub fn clear_failures(db: &Db<'_>, username: &str, address: &str) -> Result<()> {
    let conn = db.0;
    conn.execute(
        "DELETE FROM login_failures WHERE key = ?1",
        [account_key(username, address)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE login_failures (key TEXT NOT NULL, at INTEGER NOT NULL);")
            .unwrap();
        conn
    }

    const POLICY: ThrottlePolicy = ThrottlePolicy {
        per_account: 5,
        per_address: 50,
    };

    #[test]
    fn an_account_waits_longer_after_each_failure_but_never_past_the_cap() {
        let conn = db();
        let attacker = "10.0.0.9";
        for _ in 0..4 {
            record_failure(&Db(&conn), "dave", attacker).unwrap();
        }
        assert_eq!(
            login_wait(&Db(&conn), "dave", attacker, POLICY).unwrap(),
            None
        );
        record_failure(&Db(&conn), "Dave", attacker).unwrap();
        let first = login_wait(&Db(&conn), "dave", attacker, POLICY).unwrap();
        assert!(first.is_some_and(|w| (1..=15).contains(&w)), "{first:?}");
        for _ in 0..30 {
            record_failure(&Db(&conn), "dave", attacker).unwrap();
        }
        let capped = login_wait(&Db(&conn), "dave", attacker, POLICY).unwrap();
        assert!(
            capped.is_some_and(|w| w > 15 && w <= MAX_ACCOUNT_WAIT_SECS as u64),
            "{capped:?}"
        );
        // Dave himself, from his own address, is not held back: an attacker
        // cannot lock him out, however long they keep at it.
        assert_eq!(
            login_wait(&Db(&conn), "dave", "10.0.0.8", POLICY).unwrap(),
            None
        );
        // Other accounts are not held back by dave's failures.
        assert_eq!(
            login_wait(&Db(&conn), "erin", "10.0.0.8", POLICY).unwrap(),
            None
        );
        // A success forgets the account's failures from that address.
        clear_failures(&Db(&conn), "DAVE", attacker).unwrap();
        assert_eq!(
            login_wait(&Db(&conn), "dave", attacker, POLICY).unwrap(),
            None
        );
        // A reservation taken back leaves nothing behind.
        let rows = record_failure(&Db(&conn), "erin", "10.0.0.8").unwrap();
        release(&Db(&conn), &rows).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM login_failures WHERE key LIKE '%erin%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn an_address_that_sprays_many_accounts_is_held_back_for_all_of_them() {
        let conn = db();
        for i in 0..50 {
            record_failure(&Db(&conn), &format!("user{i}"), "10.0.0.66").unwrap();
        }
        let wait = login_wait(&Db(&conn), "alice", "10.0.0.66", POLICY).unwrap();
        assert!(
            wait.is_some_and(|w| w > 0 && w <= WINDOW_SECS as u64),
            "{wait:?}"
        );
        // The same accounts from another address are not affected.
        assert_eq!(
            login_wait(&Db(&conn), "user1", "10.0.0.7", POLICY).unwrap(),
            None
        );
        // A success does not forget the address's failures.
        clear_failures(&Db(&conn), "user1", "10.0.0.66").unwrap();
        assert!(
            login_wait(&Db(&conn), "alice", "10.0.0.66", POLICY)
                .unwrap()
                .is_some()
        );
    }
}
