//! The jobs table: one row per ingest, recovery or deletion, with how it
//! ended. A job left `running` by a process that died is marked failed at the
//! next start.

use rusqlite::params;

use super::{Result, Store};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Ingest,
    Recover,
    Delete,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Ingest => "ingest",
            JobKind::Recover => "recover",
            JobKind::Delete => "delete",
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Done,
    /// Nothing to do (a duplicate).
    Skipped,
    /// The input was refused (unreadable, too large, no text…).
    Rejected,
    Failed,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Done => "done",
            JobState::Skipped => "skipped",
            JobState::Rejected => "rejected",
            JobState::Failed => "failed",
        }
    }
}

impl Store {
    pub fn start_job(
        &self,
        kind: JobKind,
        document_id: Option<i64>,
        source_name: &str,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO jobs (kind, document_id, source_name, state) VALUES (?1, ?2, ?3, 'running')",
            params![kind.as_str(), document_id, source_name],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_job(
        &self,
        job_id: i64,
        state: JobState,
        detail: &str,
        document_id: Option<i64>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE jobs SET state = ?2, detail = ?3, document_id = coalesce(?4, document_id),
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?1",
            params![job_id, state.as_str(), detail, document_id],
        )?;
        Ok(())
    }

    /// Jobs left `running` by a process that died: mark them failed.
    pub fn fail_abandoned_jobs(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE jobs SET state = 'failed', detail = 'interrupted (process stopped)',
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE state = 'running'",
            [],
        )?)
    }
}
