//! TLS for the listener: the configured certificate and key, or a
//! self-signed pair generated at first start and kept in `<data_dir>/tls/`
//! (the operator replaces it with one from their own CA).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// Paths of the certificate and key in use, generating the self-signed pair if needed.
pub fn material(config: &Config) -> Result<(PathBuf, PathBuf, bool)> {
    if !config.web.tls_cert.as_os_str().is_empty() {
        return Ok((
            config.web.tls_cert.clone(),
            config.web.tls_key.clone(),
            false,
        ));
    }
    let dir = config.data_dir.join("tls");
    let cert = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    if !(cert.is_file() && key.is_file()) {
        generate(&dir, &cert, &key)?;
    }
    Ok((cert, key, true))
}

fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let host = hostname();
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !host.is_empty() && host != "localhost" {
        names.push(host);
    }
    let pair = rcgen::generate_simple_self_signed(names).context("generating a TLS certificate")?;
    let mut key_file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key_path)
        .with_context(|| format!("writing {}", key_path.display()))?;
    std::io::Write::write_all(&mut key_file, pair.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, pair.cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    tracing::warn!(
        cert = %cert_path.display(),
        "generated a self-signed TLS certificate; browsers will warn until web.tls_cert names one from your CA"
    );
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
