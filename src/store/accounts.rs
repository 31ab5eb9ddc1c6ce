//! The accounts tables: users, groups and their members, collections and
//! grants. The rules (roles, name and password policy, hashing) are in
//! `crate::accounts`; these functions only read and write rows, inside the
//! caller's transaction.

use rusqlite::{OptionalExtension, params};

use super::Db;

use crate::accounts::{
    AccountError, Grant, Grantee, Group, PasswordOrigin, Result, Role, User, validate_name,
    validate_username,
};

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

pub fn add_user(
    db: &Db<'_>,
    username: &str,
    role: Role,
    password_hash: &str,
    origin: PasswordOrigin,
) -> Result<i64> {
    let conn = db.0;
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

pub fn user(db: &Db<'_>, id: i64) -> Result<User> {
    let conn = db.0;
    conn.query_row(&format!("{USER_SELECT} WHERE id = ?1"), [id], user_from)
        .optional()?
        .ok_or_else(|| AccountError::NoSuchUser(id.to_string()))
}

pub fn user_by_name(db: &Db<'_>, username: &str) -> Result<User> {
    let conn = db.0;
    conn.query_row(
        &format!("{USER_SELECT} WHERE username = ?1"),
        [username],
        user_from,
    )
    .optional()?
    .ok_or_else(|| AccountError::NoSuchUser(username.to_string()))
}

/// The user and their password hash, for logging in.
pub fn credentials(db: &Db<'_>, username: &str) -> Result<Option<(User, String)>> {
    let conn = db.0;
    Ok(conn
        .query_row(CREDENTIALS_SELECT, [username], |r| {
            Ok((user_from(r)?, r.get(6)?))
        })
        .optional()?)
}

pub fn users(db: &Db<'_>) -> Result<Vec<User>> {
    let conn = db.0;
    let mut stmt = conn.prepare(&format!("{USER_SELECT} ORDER BY username"))?;
    let users = stmt
        .query_map([], user_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(users)
}

pub fn admin_exists(db: &Db<'_>) -> Result<bool> {
    let conn = db.0;
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0)",
        [],
        |r| r.get(0),
    )?)
}

/// Enable or disable an account; disabling ends its sessions in the same
/// transaction.
pub fn set_disabled(db: &Db<'_>, user_id: i64, disabled: bool) -> Result<()> {
    let conn = db.0;
    let n = conn.execute(
        "UPDATE users SET disabled = ?2 WHERE id = ?1",
        params![user_id, disabled],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(user_id.to_string()));
    }
    if disabled {
        super::sessions::end_all_for(db, user_id)?;
    }
    Ok(())
}

/// Change a role; the user's sessions end so the new role applies at once.
pub fn set_role(db: &Db<'_>, user_id: i64, role: Role) -> Result<()> {
    let conn = db.0;
    let n = conn.execute(
        "UPDATE users SET role = ?2 WHERE id = ?1",
        params![user_id, role.as_str()],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(user_id.to_string()));
    }
    super::sessions::end_all_for(db, user_id)?;
    Ok(())
}

/// Set a new password hash and end the user's sessions.
pub fn set_password(
    db: &Db<'_>,
    user_id: i64,
    password_hash: &str,
    origin: PasswordOrigin,
) -> Result<()> {
    let conn = db.0;
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2, must_change_password = ?3 WHERE id = ?1",
        params![user_id, password_hash, origin == PasswordOrigin::OneTime],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(user_id.to_string()));
    }
    super::sessions::end_all_for(db, user_id)?;
    Ok(())
}

pub fn group_id(db: &Db<'_>, name: &str) -> Result<i64> {
    let conn = db.0;
    conn.query_row("SELECT id FROM groups WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| AccountError::NoSuchGroup(name.to_string()))
}

/// Create the group if needed; returns its id.
pub fn ensure_group(db: &Db<'_>, name: &str) -> Result<i64> {
    let conn = db.0;
    validate_name(name)?;
    conn.execute(
        "INSERT INTO groups(name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
        [name],
    )?;
    group_id(db, name)
}

pub fn add_member(db: &Db<'_>, group_id: i64, user_id: i64) -> Result<()> {
    let conn = db.0;
    conn.execute(
        "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
        params![group_id, user_id],
    )?;
    Ok(())
}

pub fn remove_member(db: &Db<'_>, group_id: i64, user_id: i64) -> Result<()> {
    let conn = db.0;
    conn.execute(
        "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
        params![group_id, user_id],
    )?;
    Ok(())
}

pub fn groups(db: &Db<'_>) -> Result<Vec<Group>> {
    let conn = db.0;
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

pub fn collection_id(db: &Db<'_>, name: &str) -> Result<i64> {
    let conn = db.0;
    conn.query_row("SELECT id FROM collections WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| AccountError::NoSuchCollection(name.to_string()))
}

/// Create the collection if needed (admins create collections by naming them).
/// The collection's id, creating it (with `policy` for sensitive
/// identifiers) if it is new.
pub fn ensure_collection(db: &Db<'_>, name: &str, policy: crate::config::PiiPolicy) -> Result<i64> {
    let conn = db.0;
    validate_name(name)?;
    conn.execute(
        "INSERT INTO collections(name, pii_policy) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        rusqlite::params![name, policy.as_str()],
    )?;
    collection_id(db, name)
}

pub fn collections(db: &Db<'_>) -> Result<Vec<String>> {
    let conn = db.0;
    let mut stmt = conn.prepare("SELECT name FROM collections ORDER BY name")?;
    let v = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

pub fn grant(db: &Db<'_>, collection_id: i64, to: Grantee) -> Result<()> {
    let conn = db.0;
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
pub fn revoke(db: &Db<'_>, grant_id: i64) -> Result<Option<Grant>> {
    let conn = db.0;
    let found = grants_where(db, Some(grant_id))?.pop();
    conn.execute("DELETE FROM grants WHERE id = ?1", [grant_id])?;
    Ok(found)
}

pub fn grants(db: &Db<'_>) -> Result<Vec<Grant>> {
    grants_where(db, None)
}

/// All grants, or the one with `id`.
fn grants_where(db: &Db<'_>, id: Option<i64>) -> Result<Vec<Grant>> {
    let conn = db.0;
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
pub fn granted_collections(db: &Db<'_>, user_id: i64) -> Result<Vec<String>> {
    let conn = db.0;
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
