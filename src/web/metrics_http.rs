//! Prometheus: every request counted by route pattern and status, and
//! `GET /metrics` on a listener of its own (plain HTTP, loopback by
//! default, `metrics.listen`), never on the public one. A scrape must send
//! the metrics token (`Authorization: Bearer …`; Prometheus:
//! `authorization.credentials_file`), kept in `<data_dir>/metrics-token`
//! (created at first start, mode 0600) unless `metrics.token_file` names
//! another file.

use std::path::PathBuf;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::{self, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};

use super::auth::constant_time_eq;
use super::state::{AppState, StateExt};
use crate::config::Config;
use crate::metrics::{self, Metrics, RequestLabels};

/// Middleware: count the request under its route pattern (never the raw
/// path, which carries ids and would grow the label set without bound).
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // A fixed set: actix accepts any method token, and each label value
    // would be a series kept for ever.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    metrics::get()
        .http_requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: res.status().as_u16(),
        })
        .inc();
    Ok(res)
}

/// The scrape token's file.
pub fn token_path(config: &Config) -> PathBuf {
    if config.metrics.token_file.as_os_str().is_empty() {
        config.data_dir.join("metrics-token")
    } else {
        config.metrics.token_file.clone()
    }
}

/// Read the scrape token, creating a random one (mode 0600) if the file
/// does not exist.
pub fn scrape_token(config: &Config) -> std::io::Result<String> {
    let path = token_path(config);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = crate::accounts::tokens::generate().secret;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(token)
}

struct Scrape {
    state: Data<AppState>,
    token: String,
}

/// The metrics server, bound; `None` when switched off or when the address
/// cannot be bound (logged: the appliance keeps serving its users).
pub fn listener(config: &Config, state: Data<AppState>) -> Option<Server> {
    let listen = config.metrics.listen.trim();
    if listen.is_empty() {
        return None;
    }
    let token = match scrape_token(config) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, path = %token_path(config).display(), "metrics are off: cannot read or create the scrape token");
            return None;
        }
    };
    let scrape = Data::new(Scrape { state, token });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(scrape.clone())
            .route("/metrics", web::get().to(render))
            .default_service(web::to(|| async {
                HttpResponse::NotFound().body("only /metrics here\n")
            }))
    })
    .workers(1)
    .disable_signals()
    .bind(listen);
    match server {
        Ok(server) => {
            for a in server.addrs() {
                println!(
                    "Metrics on http://{a}/metrics (bearer token in {})",
                    token_path(config).display()
                );
            }
            Some(server.run())
        }
        Err(e) => {
            tracing::error!(error = %e, listen, "metrics are off: cannot listen");
            None
        }
    }
}

async fn render(scrape: Data<Scrape>, req: HttpRequest) -> HttpResponse {
    let sent = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::v1::auth::bearer)
        .unwrap_or("");
    if !constant_time_eq(sent.trim().as_bytes(), scrape.token.as_bytes()) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .body("send the metrics token as a bearer token\n");
    }
    set_gauges(&scrape.state).await;
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(metrics::get().render())
}

/// The gauges that describe state, read now.
async fn set_gauges(state: &Data<AppState>) {
    let m = metrics::get();
    for tier in &state.tiers {
        let label = Metrics::tier(&tier.name);
        m.queue_length
            .get_or_create(&label)
            .set(tier.worker.queue_len() as i64);
        m.running_sequences
            .get_or_create(&label)
            .set(tier.worker.running() as i64);
    }
    // From the server's own connection: the library's lock can be held for
    // a long ingest, and a scrape must not wait for it.
    let counts = state.with_db(|db| Ok(db.counts()?)).await;
    if let Ok((documents, chunks)) = counts {
        m.index_documents.set(documents);
        m.index_chunks.set(chunks);
    }
}
