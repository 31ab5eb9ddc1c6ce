//! The `answer_metrics` table: one row per question answered or refused,
//! with its timings, tokens and CPU time, never its text. The usage page
//! aggregates these rows; `metrics.retention_days` prunes them.

use rusqlite::params;
use serde::Serialize;

use super::{Db, Result};

/// One answer's figures, as written and as read back.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerMetric {
    pub message_id: i64,
    /// Unix seconds.
    pub at: i64,
    /// `web` or `api`.
    pub via: String,
    /// `answered`, `not_covered` or `failed`.
    pub status: String,
    /// `ok`, `not_covered`, `refused_busy` or `cancelled`.
    pub outcome: String,
    /// The tier that answered; empty when no model ran.
    pub tier: String,
    pub verification: String,
    pub escalated: bool,
    pub first_token_ms: Option<f64>,
    pub total_ms: f64,
    pub prompt_tokens: i64,
    pub generated_tokens: i64,
    pub cpu_secs: f64,
    /// Thumbs: 1, -1, or none given.
    pub rating: Option<i64>,
}

pub fn record(db: &Db<'_>, m: &AnswerMetric) -> Result<()> {
    let conn = db.0;
    conn.execute(
        "INSERT INTO answer_metrics (message_id, at, via, status, outcome, tier, verification,
             escalated, first_token_ms, total_ms, prompt_tokens, generated_tokens, cpu_secs, rating)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(message_id) DO NOTHING",
        params![
            m.message_id,
            m.at,
            m.via,
            m.status,
            m.outcome,
            m.tier,
            m.verification,
            m.escalated,
            m.first_token_ms,
            m.total_ms,
            m.prompt_tokens,
            m.generated_tokens,
            m.cpu_secs,
            m.rating
        ],
    )?;
    Ok(())
}

/// Thumbs given (or changed) on an answer.
pub fn set_rating(db: &Db<'_>, message_id: i64, rating: i64) -> Result<()> {
    let conn = db.0;
    conn.execute(
        "UPDATE answer_metrics SET rating = ?2 WHERE message_id = ?1",
        params![message_id, rating],
    )?;
    Ok(())
}

/// Every row from `since` (unix seconds) on, oldest first.
pub fn since(db: &Db<'_>, since: i64) -> Result<Vec<AnswerMetric>> {
    let conn = db.0;
    let mut stmt = conn.prepare(
        "SELECT message_id, at, via, status, outcome, tier, verification, escalated,
                first_token_ms, total_ms, prompt_tokens, generated_tokens, cpu_secs, rating
         FROM answer_metrics WHERE at >= ?1 ORDER BY at",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            Ok(AnswerMetric {
                message_id: r.get(0)?,
                at: r.get(1)?,
                via: r.get(2)?,
                status: r.get(3)?,
                outcome: r.get(4)?,
                tier: r.get(5)?,
                verification: r.get(6)?,
                escalated: r.get(7)?,
                first_token_ms: r.get(8)?,
                total_ms: r.get(9)?,
                prompt_tokens: r.get(10)?,
                generated_tokens: r.get(11)?,
                cpu_secs: r.get(12)?,
                rating: r.get(13)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Remove rows older than `days`; returns how many.
pub fn prune(db: &Db<'_>, days: u64, now: i64) -> Result<usize> {
    let conn = db.0;
    let days = i64::try_from(days).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(days.saturating_mul(86_400));
    Ok(conn.execute("DELETE FROM answer_metrics WHERE at < ?1", [cutoff])?)
}
