//! Chat history: a user's conversations, their questions and answers, the
//! passages each answer was given, and feedback. Every function takes the
//! owner's id and finds nothing that belongs to someone else, so a guessed id
//! gives "not found", never another user's text.

use rusqlite::{OptionalExtension, params};

use super::Db;
use serde::Serialize;

pub type Result<T> = std::result::Result<T, rusqlite::Error>;

/// How a question ended, as stored with its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerStatus {
    /// Answered from the documents, with citations.
    Answered,
    /// The documents do not cover it (the model may not have been called).
    NotCovered,
    /// No answer: busy, cancelled, or the model failed.
    Failed,
}

impl AnswerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerStatus::Answered => "answered",
            AnswerStatus::NotCovered => "not_covered",
            AnswerStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub id: i64,
    pub title: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: i64,
    pub question: String,
    pub answer: String,
    /// pending, answered, not_covered, failed or erased
    pub status: String,
    pub citations: serde_json::Value,
    pub rating: Option<i64>,
    pub comment: String,
    pub created_at: String,
    /// Found by keyword search alone: the vector store was unreachable.
    pub degraded: bool,
    /// verified, partial, quoted, none ('' before answers were verified).
    pub verification: String,
    /// The model tier (or "quotes") that produced the answer.
    pub tier: String,
    /// The quotes and the checked sentences, as JSON.
    pub checks: serde_json::Value,
}

/// A finished answer, as stored.
pub struct FinishedAnswer<'a> {
    pub status: AnswerStatus,
    pub text: &'a str,
    pub citations: &'a serde_json::Value,
    /// The passages it was drawn from: `(chunk_id, document_id)`.
    pub sources: &'a [(i64, i64)],
    pub degraded: bool,
    pub verification: &'a str,
    pub tier: &'a str,
    pub checks: &'a serde_json::Value,
}

/// Longest conversation title, from the first question.
const TITLE_CHARS: usize = 80;

pub fn create(db: &Db<'_>, user_id: i64, first_question: &str) -> Result<i64> {
    let conn = db.0;
    let mut title: String = first_question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(TITLE_CHARS)
        .collect();
    if title.is_empty() {
        title = "Conversation".into();
    }
    conn.execute(
        "INSERT INTO conversations (user_id, title) VALUES (?1, ?2)",
        params![user_id, title],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The conversation if `user_id` owns it.
pub fn owned(db: &Db<'_>, id: i64, user_id: i64) -> Result<Option<Conversation>> {
    let conn = db.0;
    conn.query_row(
        "SELECT id, title, created_at, updated_at FROM conversations WHERE id = ?1 AND user_id = ?2",
        params![id, user_id],
        |r| {
            Ok(Conversation {
                id: r.get(0)?,
                title: r.get(1)?,
                created_at: r.get(2)?,
                updated_at: r.get(3)?,
            })
        },
    )
    .optional()
}

pub fn list(db: &Db<'_>, user_id: i64, limit: usize) -> Result<Vec<Conversation>> {
    let conn = db.0;
    let mut stmt = conn.prepare(
        "SELECT id, title, created_at, updated_at FROM conversations WHERE user_id = ?1
         ORDER BY updated_at DESC, id DESC LIMIT ?2",
    )?;
    stmt.query_map(params![user_id, limit as i64], |r| {
        Ok(Conversation {
            id: r.get(0)?,
            title: r.get(1)?,
            created_at: r.get(2)?,
            updated_at: r.get(3)?,
        })
    })?
    .collect()
}

/// Messages of a conversation `user_id` owns, oldest first.
pub fn messages(db: &Db<'_>, conversation_id: i64, user_id: i64) -> Result<Vec<Message>> {
    let conn = db.0;
    let mut stmt = conn.prepare(
        "SELECT m.id, m.question, m.answer, m.status, m.citations, f.rating,
                coalesce(f.comment, ''), m.created_at, m.degraded, m.verification, m.tier, m.checks
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         LEFT JOIN feedback f ON f.message_id = m.id
         WHERE m.conversation_id = ?1 AND c.user_id = ?2 ORDER BY m.id",
    )?;
    stmt.query_map(params![conversation_id, user_id], |r| {
        let citations: String = r.get(4)?;
        Ok(Message {
            id: r.get(0)?,
            question: r.get(1)?,
            answer: r.get(2)?,
            status: r.get(3)?,
            citations: serde_json::from_str(&citations).unwrap_or_default(),
            rating: r.get(5)?,
            comment: r.get(6)?,
            created_at: r.get(7)?,
            degraded: r.get(8)?,
            verification: r.get(9)?,
            tier: r.get(10)?,
            checks: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        })
    })?
    .collect()
}

/// Messages of a conversation drawn from a document outside `allowed` (or
/// no longer there): what the viewer may not see again after a grant was
/// revoked, although they saw it when it was answered.
pub fn drawn_from_elsewhere(
    db: &Db<'_>,
    conversation_id: i64,
    allowed: &[String],
) -> Result<std::collections::HashSet<i64>> {
    let conn = db.0;
    let mut stmt = conn.prepare(
        "SELECT ms.message_id, col.name FROM message_sources ms
         JOIN messages m ON m.id = ms.message_id
         LEFT JOIN documents d ON d.id = ms.document_id
         LEFT JOIN collections col ON col.id = d.collection_id
         WHERE m.conversation_id = ?1",
    )?;
    let rows = stmt.query_map(params![conversation_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut out = std::collections::HashSet::new();
    for row in rows {
        let (message, collection) = row?;
        if !collection.is_some_and(|c| allowed.contains(&c)) {
            out.insert(message);
        }
    }
    Ok(out)
}

/// Earlier answered turns of a conversation, for the model's context.
pub fn history(db: &Db<'_>, conversation_id: i64, turns: usize) -> Result<Vec<(String, String)>> {
    let conn = db.0;
    let mut stmt = conn.prepare(
        "SELECT question, answer FROM messages WHERE conversation_id = ?1 AND status = 'answered'
         ORDER BY id DESC LIMIT ?2",
    )?;
    let mut v = stmt
        .query_map(params![conversation_id, turns as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<Vec<_>>>()?;
    v.reverse();
    Ok(v)
}

pub fn add_question(db: &Db<'_>, conversation_id: i64, question: &str) -> Result<i64> {
    let conn = db.0;
    conn.execute(
        "INSERT INTO messages (conversation_id, question, status) VALUES (?1, ?2, 'pending')",
        params![conversation_id, question],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE conversations SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
        [conversation_id],
    )?;
    Ok(id)
}

/// Store the outcome of a question with the passages it was drawn from, so
/// erasing a document erases this answer. A document erased while the answer
/// was being written (it is gone now) erases it here, as erasure would have:
/// stored as `erased`, without its text. Returns whether that happened.
pub fn finish(db: &Db<'_>, message_id: i64, answer: &FinishedAnswer<'_>) -> Result<bool> {
    let conn = db.0;
    // A passage erased, or replaced by re-processing (redaction), while the
    // answer was being written: the answer may quote what is gone.
    let mut exists = conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM chunks WHERE id = ?1 AND document_id = ?2)")?;
    for (chunk, doc) in answer.sources {
        if !exists.query_row(params![chunk, doc], |r| r.get::<_, bool>(0))? {
            conn.execute(
                "UPDATE messages SET status = 'erased', answer = '', citations = '[]',
                        checks = '{}' WHERE id = ?1",
                [message_id],
            )?;
            return Ok(true);
        }
    }
    conn.execute(
        "UPDATE messages SET status = ?2, answer = ?3, citations = ?4, degraded = ?5,
                verification = ?6, tier = ?7, checks = ?8 WHERE id = ?1",
        params![
            message_id,
            answer.status.as_str(),
            answer.text,
            answer.citations.to_string(),
            answer.degraded,
            answer.verification,
            answer.tier,
            answer.checks.to_string(),
        ],
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO message_sources (message_id, chunk_id, document_id) VALUES (?1, ?2, ?3)",
    )?;
    for (chunk, doc) in answer.sources {
        stmt.execute(params![message_id, chunk, doc])?;
    }
    Ok(false)
}

/// Whether `user_id` owns message `message_id`.
pub fn owns_message(db: &Db<'_>, message_id: i64, user_id: i64) -> Result<bool> {
    let conn = db.0;
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.id = ?1 AND c.user_id = ?2)",
        params![message_id, user_id],
        |r| r.get(0),
    )
}

pub fn set_feedback(db: &Db<'_>, message_id: i64, rating: i64, comment: &str) -> Result<()> {
    let conn = db.0;
    conn.execute(
        "INSERT INTO feedback (message_id, rating, comment) VALUES (?1, ?2, ?3)
         ON CONFLICT(message_id) DO UPDATE SET rating = excluded.rating,
             comment = excluded.comment, created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![message_id, rating, comment],
    )?;
    Ok(())
}

/// Answers left `pending` by a process that stopped mid-generation.
pub fn fail_abandoned(db: &Db<'_>) -> Result<usize> {
    let conn = db.0;
    conn.execute(
        "UPDATE messages SET status = 'failed', answer = 'The server stopped before this answer was finished.'
         WHERE status = 'pending'",
        [],
    )
}

/// Feedback counts (up, down) for the health page.
pub fn feedback_counts(db: &Db<'_>) -> Result<(i64, i64)> {
    let conn = db.0;
    conn.query_row(
        "SELECT coalesce(sum(rating = 1), 0), coalesce(sum(rating = -1), 0) FROM feedback",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{PasswordOrigin, Role};

    #[test]
    fn a_stored_answer_keeps_its_status_citations_and_degraded_flag() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db.sqlite")).unwrap();
        let conn = &Db(&store.conn);
        let uid = crate::store::accounts::add_user(
            conn,
            "dave",
            Role::Staff,
            "x",
            PasswordOrigin::Chosen,
        )
        .unwrap();
        let conv = create(conn, uid, "When must sickness be reported?").unwrap();
        let keyword_only = add_question(conn, conv, "When must sickness be reported?").unwrap();
        let citations = serde_json::json!([{ "number": 1, "chunk_id": 7 }]);
        let checks = serde_json::json!({ "quotes": [], "sentences": [] });
        let answered = |text, degraded, verification| FinishedAnswer {
            status: AnswerStatus::Answered,
            text,
            citations: &citations,
            sources: &[],
            degraded,
            verification,
            tier: "SmolLM2",
            checks: &checks,
        };
        finish(
            conn,
            keyword_only,
            &answered("Before the shift [1].", true, "verified"),
        )
        .unwrap();
        let hybrid = add_question(conn, conv, "And absences over a week?").unwrap();
        finish(conn, hybrid, &answered("A fit note.", false, "quoted")).unwrap();
        let stored = messages(conn, conv, uid).unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored[0].degraded && !stored[1].degraded);
        assert_eq!(stored[0].verification, "verified");
        assert_eq!(stored[1].verification, "quoted");
        assert_eq!(stored[1].tier, "SmolLM2");
        assert_eq!(stored[1].checks, checks);
        assert_eq!(stored[0].status, "answered");
        assert_eq!(stored[0].citations, citations);
        // Nobody else's: another user id sees nothing.
        assert!(messages(conn, conv, uid + 1).unwrap().is_empty());

        // An answer whose document was erased while it was being written
        // is stored erased, not with the erased document's words.
        let late = add_question(conn, conv, "How long is the working week?").unwrap();
        let gone = FinishedAnswer {
            sources: &[(3, 999)],
            ..answered("A 37.5-hour week [1].", false, "verified")
        };
        assert!(finish(conn, late, &gone).unwrap());
        let stored = messages(conn, conv, uid).unwrap();
        let late = stored.iter().find(|m| m.id == late).unwrap();
        assert_eq!(late.status, "erased");
        assert!(late.answer.is_empty() && late.checks == serde_json::json!({}));
    }
}
