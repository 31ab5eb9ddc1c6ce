//! A consistent copy of the live database (SQLite's online backup API, so the
//! server keeps running), and what that copy holds.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, Store};

/// What a database snapshot holds, read from the copy itself.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Stored originals the snapshot's documents reference.
    pub stored_paths: Vec<String>,
    pub documents: i64,
    pub chunks: i64,
    pub audit_rows: i64,
}

impl Store {
    /// Copy the database to `dest` (a new file) while others keep writing.
    /// When this store audits, the copy's audit head is signed too: rows the
    /// server appended while the copy ran would otherwise be unsigned in it,
    /// and a restore without the key could never sign them.
    pub fn snapshot_to(&self, dest: &Path) -> Result<Snapshot> {
        {
            let mut copy = Connection::open(dest)?;
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut copy)?;
            backup.run_to_completion(256, std::time::Duration::from_millis(5), None)?;
        }
        let mut copy = Connection::open(dest)?;
        if let Some(sink) = &self.audit {
            super::audit::checkpoint_head(&mut copy, &sink.key)?;
        }
        let stored_paths = {
            let mut stmt =
                copy.prepare("SELECT DISTINCT stored_path FROM documents WHERE stored_path <> ''")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?
        };
        let count = |sql: &str| -> rusqlite::Result<i64> { copy.query_row(sql, [], |r| r.get(0)) };
        Ok(Snapshot {
            stored_paths,
            documents: count("SELECT count(*) FROM documents")?,
            chunks: count("SELECT count(*) FROM chunks")?,
            audit_rows: count("SELECT count(*) FROM audit_log")?,
        })
    }
}
