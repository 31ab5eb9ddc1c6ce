//! Erasure (GDPR): a document made invisible at once, then removed from both
//! indexes, its original deleted (unless another collection holds the same
//! bytes) and its rows dropped, with a receipt that re-counts what is left.

use crate::audit::{Actor, Entry};
use crate::store::{DocStatus, JobKind, JobState};

use super::{DeletionReceipt, Library, LibraryError, Result};

impl Library {
    /// Erase a document: invisible at once, then removed from both indexes,
    /// its original deleted (unless another collection holds the same bytes),
    /// and its rows dropped. Returns a receipt with post-deletion checks.
    pub fn delete(&mut self, document_id: i64) -> Result<DeletionReceipt> {
        let actor = self.actor.clone();
        self.delete_as(document_id, &actor)
    }

    /// [`delete`] on behalf of `actor`, who is named in the audit row
    /// written with the removal of the rows.
    pub fn delete_as(&mut self, document_id: i64, actor: &Actor) -> Result<DeletionReceipt> {
        let doc = self.store.document(document_id)?;
        self.store.set_status(document_id, DocStatus::Deleting)?;
        let job = self
            .store
            .start_job(JobKind::Delete, Some(document_id), &doc.source_name)?;
        let chunk_ids = self.store.chunk_ids_of(document_id)?;
        self.lexical.delete_document(document_id)?;
        self.lexical.commit()?;
        self.vectors.delete_document(document_id)?;
        self.vectors.commit()?;
        let mut original_removed = false;
        if let Some(path) = super::original_file(&self.data_dir, &doc.stored_path)
            && self
                .store
                .stored_path_users(&doc.stored_path, document_id)?
                == 0
        {
            match std::fs::remove_file(&path) {
                Ok(()) => original_removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => original_removed = true,
                Err(source) => return Err(LibraryError::Original { path, source }),
            }
        }
        let audit = Entry::new(
            actor,
            "document.delete",
            format!("collection:{}", doc.collection),
        )
        .documents([document_id])
        .chunks(chunk_ids.iter().copied())
        .detail(serde_json::json!({
            "title": doc.title,
            "file": doc.source_name,
            "sha256": doc.content_hash,
        }));
        let answers_erased = self.store.delete_document_rows(document_id, Some(&audit))?;
        // The erased text's terms leave the index files too, not only the results.
        self.purge_deleted();
        let bm25_entries_remaining = self.lexical.count_document(document_id)?;
        let vectors_remaining = self.vectors.count_document(document_id)?;
        self.store.finish_job(
            job,
            JobState::Done,
            &format!("{} chunks removed", chunk_ids.len()),
            None,
        )?;
        Ok(DeletionReceipt {
            document_id,
            title: doc.title,
            collection: doc.collection,
            content_hash: doc.content_hash,
            chunks_removed: chunk_ids.len(),
            bm25_entries_remaining,
            vectors_remaining,
            original_removed,
            answers_erased,
            completed_at: crate::time::now_utc(),
        })
    }
}
