//! What every handler shares: the configuration, the library (one writer,
//! behind a mutex), a database connection for accounts, chat and audit, the
//! model worker and the upload queue. Blocking work runs on actix's blocking
//! pool through [`AppState::with_db`] and [`AppState::with_library`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::web;

use super::error::ApiError;
use crate::config::Config;
use crate::ingest::queue::UploadQueue;
use crate::library::Library;
use crate::rag::{Asker, ModelTier};
use crate::store::Store;
use crate::store::sessions::{Lifetimes, ThrottlePolicy};

pub struct AppState {
    pub config: Config,
    /// Shared with the ingest threads.
    pub library: Arc<Mutex<Library>>,
    pub db: Arc<Mutex<Store>>,
    /// The model tiers, cheapest first, each with its worker.
    pub tiers: Vec<ModelTier>,
    /// Turns questions into plans and verified answers.
    pub asker: Asker,
    pub uploads: UploadQueue,
    /// Answers streaming now, per user.
    pub streams: Mutex<HashMap<i64, usize>>,
    pub started: Instant,
    /// When the server started, in unix seconds (`created` of `/v1/models`).
    pub started_unix: i64,
    /// The embedding model, shared with the library (for `/v1/embeddings`
    /// without taking the library's lock).
    pub embedder: Arc<crate::embed::Embedder>,
    pub model_bytes: u64,
    /// Password checks (argon2) running at once, at most.
    pub password_checks: tokio::sync::Semaphore,
    /// `/v1/embeddings` requests computing at once, at most (each may be 64
    /// long inputs; the rest wait rather than crowd out the models).
    pub embedding_requests: tokio::sync::Semaphore,
    /// Refusals per (what was refused, address): when the current window's
    /// row was logged, and how many refusals since went unlogged.
    pub throttled: Mutex<HashMap<(String, String), (Instant, u64)>>,
}

impl AppState {
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            idle_secs: self.config.web.idle_timeout_mins as i64 * 60,
            absolute_secs: self.config.web.session_hours as i64 * 3600,
        }
    }

    /// Whether to log this refusal (a throttled login, a denied request):
    /// the first per key and address in each window is, with the number of
    /// refusals not logged since the last row (returned); the others are
    /// only counted. Keeps the audit log from growing with every request of
    /// a flood.
    pub fn first_refusal_in_window(&self, target: &str, address: &str) -> Option<u64> {
        const WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
        let mut map = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (logged, _)| logged.elapsed() < WINDOW);
        }
        let key = (target.to_string(), address.to_string());
        match map.get_mut(&key) {
            Some((logged, not_logged)) if logged.elapsed() < WINDOW => {
                *not_logged += 1;
                None
            }
            _ => {
                let not_logged = map.insert(key, (Instant::now(), 0)).map_or(0, |(_, n)| n);
                Some(not_logged)
            }
        }
    }

    pub fn throttle(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            per_account: self.config.web.login_failures_before_throttle,
            per_address: self.config.web.login_failures_per_address,
        }
    }
}

/// Helpers on the shared handle (methods on `Data<AppState>`, which clones
/// cheaply into blocking closures).
pub trait StateExt {
    fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, ApiError>>;
    fn with_library<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Library) -> Result<T, ApiError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, ApiError>>;
    fn take_stream(&self, user_id: i64) -> Option<StreamSlot>;
}

impl StateExt for web::Data<AppState> {
    /// Run `f` with the database on the blocking pool.
    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        web::block(move || {
            let mut db = state
                .db
                .lock()
                .map_err(|_| ApiError::internal("database mutex poisoned"))?;
            f(&mut db)
        })
        .await?
    }

    /// Run `f` with the library on the blocking pool.
    async fn with_library<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Library) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        web::block(move || {
            let mut lib = state
                .library
                .lock()
                .map_err(|_| ApiError::internal("library mutex poisoned"))?;
            f(&mut lib)
        })
        .await?
    }

    /// Reserve one of the user's answer streams; `None` when all are in use.
    fn take_stream(&self, user_id: i64) -> Option<StreamSlot> {
        let mut streams = self.streams.lock().ok()?;
        let n = streams.entry(user_id).or_insert(0);
        if *n >= self.config.web.max_streams_per_user {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            state: self.clone(),
            user_id,
        })
    }
}

/// Held while an answer streams; frees the user's slot when dropped.
pub struct StreamSlot {
    state: web::Data<AppState>,
    user_id: i64,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut streams) = self.state.streams.lock()
            && let Some(n) = streams.get_mut(&self.user_id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.user_id);
            }
        }
    }
}
