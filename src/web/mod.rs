//! `enclave serve`: the web appliance over HTTPS.
//!
//! Routes: HTML pages (read-only, askama) and the JSON API under `/api/`
//! (every change, CSRF-checked). Every response carries the security headers
//! of DESIGN.md; nothing on any page comes from another origin.

pub mod api;
pub mod asking;
pub mod auth;
pub mod body;
pub mod chat;
pub mod error;
pub mod identifiers;
pub mod metrics_http;
pub mod pages;
pub mod state;
pub mod tls;
pub mod upload;
pub mod usage;
pub mod v1;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::audit::{Actor, Entry};
use crate::config::Config;
use crate::ingest::queue::{IngestContext, UploadQueue};
use crate::library::Library;
use crate::rag::{Asker, ModelTier};
use crate::store::{self, Store};
use state::AppState;

/// The Content-Security-Policy of every response: our own origin only, no
/// inline script or style, no framing, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ))
}

pub fn routes(cfg: &mut web::ServiceConfig, json_limit: usize) {
    v1::routes(cfg);
    cfg.app_data(web::JsonConfig::default().limit(json_limit))
        .route("/", web::get().to(pages::home))
        .route("/login", web::get().to(pages::login))
        .route("/chat", web::get().to(pages::chat))
        .route("/chat/{id}", web::get().to(pages::chat_conversation))
        .route("/passages/{id}", web::get().to(pages::passage))
        .route("/admin/documents", web::get().to(pages::documents))
        .route("/admin/identifiers", web::get().to(identifiers::page))
        .route("/admin/users", web::get().to(pages::users))
        .route("/admin/health", web::get().to(pages::health))
        .route("/admin/usage", web::get().to(usage::page))
        .route(
            "/admin/usage/charts/{period}/{chart}",
            web::get().to(usage::chart),
        )
        .route("/audit", web::get().to(pages::audit_log))
        .route("/account/password", web::get().to(pages::password))
        .route("/static/{file}", web::get().to(pages::static_file))
        .route("/api/login", web::post().to(api::session::login))
        .route("/api/logout", web::post().to(api::session::logout))
        .route("/api/me", web::get().to(api::session::me))
        .route(
            "/api/password",
            web::post().to(api::session::change_password),
        )
        .route("/api/ask", web::post().to(chat::ask))
        .route(
            "/api/conversations",
            web::get().to(api::conversations::conversations_list),
        )
        .route(
            "/api/conversations/{id}",
            web::get().to(api::conversations::conversation),
        )
        .route(
            "/api/messages/{id}/feedback",
            web::post().to(api::conversations::feedback),
        )
        .route("/api/passages/{id}", web::get().to(api::passages::passage))
        .route("/api/documents", web::get().to(api::documents::documents))
        .route(
            "/api/documents/{id}",
            web::get().to(api::documents::document),
        )
        .route(
            "/api/documents/{id}",
            web::delete().to(api::documents::delete_document),
        )
        .route(
            "/api/documents/{id}/original",
            web::get().to(api::passages::original),
        )
        .route("/api/uploads", web::post().to(upload::upload))
        .route("/api/uploads", web::get().to(upload::list_uploads))
        .route("/api/uploads/{id}", web::get().to(upload::get_upload))
        .route(
            "/api/identifiers/export",
            web::get().to(identifiers::export),
        )
        .route(
            "/api/identifiers/policy",
            web::post().to(identifiers::set_policy),
        )
        .route("/api/users", web::get().to(api::users::users))
        .route("/api/users", web::post().to(api::users::create_user))
        .route("/api/users/{id}", web::post().to(api::users::update_user))
        .route("/api/grants", web::post().to(api::users::create_grant))
        .route(
            "/api/grants/{id}",
            web::delete().to(api::users::delete_grant),
        )
        .route("/api/health", web::get().to(api::health::health))
        .route("/api/usage", web::get().to(usage::usage_json))
        .route("/api/tokens", web::get().to(api::tokens::list))
        .route("/api/tokens", web::post().to(api::tokens::create))
        .route("/api/tokens/{id}", web::delete().to(api::tokens::revoke))
        .route("/api/audit", web::get().to(api::audit::audit_rows))
        .route("/api/audit/export", web::get().to(api::audit::audit_export))
        .route("/api/audit/verify", web::get().to(api::audit::audit_verify))
        .default_service(web::to(pages::not_found));
}

pub fn serve(config: &Config) -> Result<ExitCode> {
    let state = build_state(config)?;
    let (cert, key, self_signed) = tls::material(config)?;
    let tls = tls::server_config(&cert, &key)?;
    let workers = if config.web.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        config.web.workers
    };
    let json_limit = 64 * 1024;
    let data = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::from_fn(body::deadline))
            .wrap(actix_web::middleware::from_fn(auth::resolve_session))
            .wrap(actix_web::middleware::from_fn(metrics_http::count_requests))
            .wrap(security_headers())
            .configure(|cfg| routes(cfg, json_limit))
    })
    .workers(workers)
    .max_connections(config.web.max_connections)
    .client_request_timeout(std::time::Duration::from_secs(30))
    .bind_rustls_0_23(&config.web.listen, tls)
    .with_context(|| format!("listening on {}", config.web.listen))?;
    let addrs = server.addrs();
    let has_admin = state
        .db
        .lock()
        .map(|db| {
            db.autocommit(store::accounts::admin_exists)
                .unwrap_or(false)
        })
        .unwrap_or(false);
    for a in &addrs {
        println!("Enclave is listening on https://{a}/");
    }
    if self_signed {
        println!(
            "TLS: self-signed certificate {} (set web.tls_cert / web.tls_key for your own).",
            cert.display()
        );
    }
    if !has_admin {
        println!("No admin account yet. Create one with: enclave user add NAME --role admin");
    }
    let scrape = metrics_http::listener(config, state.clone());
    let result = actix_web::rt::System::new().block_on(async move {
        let scrape = scrape.map(|s| actix_web::rt::spawn(s));
        let result = server.run().await;
        if let Some(handle) = scrape {
            handle.abort();
        }
        result
    });
    // Sign what was logged while serving, so the tail is covered.
    if let Ok(mut db) = state.db.lock() {
        let entry = Entry::new(&Actor::system(), "server.stop", "server");
        let _ = db.record(entry);
        let _ = db.sign_audit_head();
    }
    result.context("web server")?;
    Ok(ExitCode::SUCCESS)
}

/// Apply `audit.retention_days` and `metrics.retention_days` (at start and
/// daily).
fn prune_audit(db: &mut Store, config: &Config) {
    match db.prune_audit(config.audit.retention_days) {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "audit rows past retention removed"),
        Err(e) => tracing::error!(error = %e, "audit retention failed"),
    }
    let now = crate::time::unix_now();
    match db.autocommit(|c| store::usage::prune(c, config.metrics.retention_days, now)) {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "usage rows past retention removed"),
        Err(e) => tracing::error!(error = %e, "usage retention failed"),
    }
}

/// Open everything the server shares: the library (taking the data-dir
/// lock), a database connection, the model and its worker, the upload thread.
pub fn build_state(config: &Config) -> Result<web::Data<AppState>> {
    let model_path = config.llm_model_path();
    let library = Library::open(config)?;
    let embedder = library.shared_embedder();
    let asker = Asker::open(config, &config.llm_tier_paths(), embedder.clone())?;
    let mut db = Store::open(&config.data_dir.join("enclave.sqlite"))?;
    db.set_audit(crate::library::audit_sink(config)?);
    db.set_default_pii_policy(config.pii.default_policy);
    let abandoned = db.autocommit(store::conversations::fail_abandoned)?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "answers interrupted by the last stop marked failed"
        );
    }
    db.autocommit(store::uploads::fail_interrupted)?;
    let removed = upload::remove_staged(&config.data_dir);
    if removed > 0 {
        tracing::warn!(
            removed,
            "files of uploads interrupted by the last stop removed"
        );
    }
    let config_hash = hex::encode(Sha256::digest(config.to_toml().as_bytes()));
    let previous = db.autocommit(|c| store::audit::last_detail(c, "server.start"))?;
    let previous_hash = previous
        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
        .and_then(|v| v["config_sha256"].as_str().map(str::to_string));
    if let Some(previous_hash) = previous_hash.filter(|h| *h != config_hash) {
        db.record(
            Entry::new(&Actor::system(), "config.change", "config").detail(serde_json::json!({
                "from_sha256": previous_hash,
                "to_sha256": config_hash,
                "config": config.to_toml(),
            })),
        )?;
    }
    let entry = Entry::new(&Actor::system(), "server.start", "server").detail(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config_sha256": config_hash,
        "listen": config.web.listen,
    }));
    db.record(entry)?;
    prune_audit(&mut db, config);
    let model_bytes = std::fs::metadata(&model_path).map(|m| m.len()).unwrap_or(0);
    let tiers = ModelTier::start_all(config)
        .map_err(|(path, e)| anyhow::anyhow!("loading chat model {}: {e}", path.display()))?;
    let library = Arc::new(Mutex::new(library));
    let db = Arc::new(Mutex::new(db));
    let uploads = UploadQueue::start(IngestContext {
        config: config.clone(),
        library: library.clone(),
        db: db.clone(),
    })
    .context("starting the ingest threads")?;
    let state = web::Data::new(AppState {
        config: config.clone(),
        library,
        db,
        tiers,
        asker,
        uploads,
        streams: Mutex::new(HashMap::new()),
        started: Instant::now(),
        started_unix: crate::time::unix_now(),
        embedder,
        model_bytes,
        password_checks: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
        ),
        throttled: Mutex::new(HashMap::new()),
        embedding_requests: tokio::sync::Semaphore::new(2),
    });
    let for_pruning = state.clone();
    std::thread::Builder::new()
        .name("audit-retention".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(24 * 3600));
                if let Ok(mut db) = for_pruning.db.lock() {
                    prune_audit(&mut db, &for_pruning.config);
                    let lifetimes = for_pruning.lifetimes();
                    let _ = db.autocommit(|c| store::sessions::purge_expired(c, lifetimes));
                }
            }
        })
        .context("starting the audit retention thread")?;
    Ok(state)
}
