//! The audit log (auditor): search, export, verification.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use serde::Deserialize;

use crate::audit::{self, Entry};
use crate::store;
use crate::web::auth::AuditorSession;
use crate::web::error::ApiError;
use crate::web::state::{AppState, StateExt};

/// Rows of the log; reading it is itself audited, as on the audit page.
pub async fn audit_rows(
    state: Data<AppState>,
    authed: AuditorSession,
    filter: web::Query<audit::Filter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    let actor = authed.actor();
    let rows =
        state
            .with_db(move |db| {
                let f = &filter;
                db.record(Entry::new(&actor, "audit.view", "audit_log").detail(serde_json::json!({
                "actor": f.actor, "action": f.action, "document": f.document, "from": f.from,
                "to": f.to, "via": "api",
            })))?;
                Ok(db.autocommit(|c| store::audit::search(c, &filter, 500))?)
            })
            .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rows": rows })))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    pub format: audit::export::Format,
}

/// The whole log as a download; the export itself is audited. Streamed:
/// written by a thread of its own through a read-only connection, chunk by
/// chunk, while the server goes on.
pub async fn audit_export(
    state: Data<AppState>,
    authed: AuditorSession,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let (format, actor) = (q.format, authed.actor());
    let key = state
        .with_db(move |db| {
            let key = db
                .audit_sink()
                .map(|s| s.key.clone())
                .ok_or_else(|| ApiError::internal("audit key not loaded"))?;
            let entry = Entry::new(&actor, "audit.export", "audit_log")
                .detail(serde_json::json!({ "format": format.extension() }));
            db.record(entry)?;
            db.sign_audit_head()?;
            Ok(key)
        })
        .await?;
    let path = state.config.data_dir.join("enclave.sqlite");
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::Builder::new()
        .name("audit-export".into())
        .spawn(move || {
            let mut out = ChunkSender {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let written = store::audit::export_file(&path, &key, format, &mut out)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|_| std::io::Write::flush(&mut out));
            if let Err(e) = written {
                tracing::error!(error = %e, "audit export failed while streaming");
                let _ = out.tx.blocking_send(Err(e));
            }
        })
        .map_err(ApiError::internal)?;
    let body =
        futures_util::StreamExt::fuse(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
    let name = format!(
        "enclave-audit-{}.{}",
        crate::time::now_utc().get(..10).unwrap_or("export"),
        format.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(body))
}

const CHUNK: usize = 64 << 10;

/// Bytes written to it go to the response, 64 KiB at a time; when the
/// client is slow it waits (the channel is bounded), so memory stays flat.
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<Result<web::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = web::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "download cancelled"))
    }
}

pub async fn audit_verify(
    state: Data<AppState>,
    _authed: AuditorSession,
) -> Result<HttpResponse, ApiError> {
    let report = verify_now(&state).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The live log, while serving: rows after the last checkpoint are the
/// server's own, not yet signed.
pub async fn verify_now(state: &Data<AppState>) -> Result<audit::verify::Report, ApiError> {
    let every = state.config.audit.checkpoint_every;
    let pin_file = state.config.audit.public_key_file.clone();
    state
        .with_db(move |db| {
            let pinned = audit::key::pinned(&pin_file)?;
            let head_key = db.audit_sink().map(|s| s.key.public_hex());
            let rules = audit::verify::Rules {
                pinned_keys: pinned,
                head_key,
                checkpoint_every: Some(every),
                allow_open_tail: true,
                witness: None,
            };
            Ok(db.verify_audit(rules)?)
        })
        .await
}
