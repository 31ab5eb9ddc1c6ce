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
    if !(cert.is_file() && key.is_file()) || due_for_renewal(&dir) {
        generate(&dir, &cert, &key)?;
    }
    Ok((cert, key, true))
}

/// How long a self-signed certificate is valid: browsers and auditors
/// reject ones valid for decades, and a short one is renewed at a start.
const VALID_DAYS: u64 = 730;
/// Renewed at start when it expires within this many days.
const RENEW_DAYS: u64 = 30;
/// Beside the pair: when the certificate expires (Unix seconds).
const EXPIRY_FILE: &str = "self-signed.expires";

/// Whether the self-signed certificate expires soon, or is from before its
/// expiry was recorded (those were valid until the year 4096).
fn due_for_renewal(dir: &Path) -> bool {
    let expires = std::fs::read_to_string(dir.join(EXPIRY_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let now = unix_now();
    expires.is_none_or(|t| t < now + RENEW_DAYS * 86_400)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    params.not_before = (now - day).into();
    params.not_after = (now + day * VALID_DAYS as u32).into();
    let signing_key = rcgen::KeyPair::generate().context("generating a TLS key")?;
    let cert = params
        .self_signed(&signing_key)
        .context("generating a TLS certificate")?;
    let pair = rcgen::CertifiedKey { cert, signing_key };
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
    std::fs::write(
        dir.join(EXPIRY_FILE),
        (unix_now() + VALID_DAYS * 86_400).to_string(),
    )
    .with_context(|| format!("writing {}", dir.join(EXPIRY_FILE).display()))?;
    tracing::warn!(
        cert = %cert_path.display(),
        days = VALID_DAYS,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_lasts_two_years_and_is_renewed_near_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let (cert, _, self_signed) = material(&config).unwrap();
        assert!(self_signed);
        let tls = dir.path().join("tls");
        assert!(!due_for_renewal(&tls));
        let first = std::fs::read(&cert).unwrap();
        // The validity written into the certificate, as openssl reads it.
        if let Ok(out) = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-enddate", "-in"])
            .arg(&cert)
            .output()
        {
            let end = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(!end.contains("4096"), "{end}");
        }
        // A start within 30 days of expiry makes a new one.
        std::fs::write(tls.join(EXPIRY_FILE), (unix_now() + 86_400).to_string()).unwrap();
        assert!(due_for_renewal(&tls));
        material(&config).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first);
        assert!(!due_for_renewal(&tls));
        // One from before expiries were recorded (valid until 4096) too.
        std::fs::remove_file(tls.join(EXPIRY_FILE)).unwrap();
        assert!(due_for_renewal(&tls));
    }
}
