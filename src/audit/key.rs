//! The audit signing key: Ed25519, created at first start in the data dir
//! (`audit-key`, mode 0400, hex). Backups leave it out unless asked; a
//! restore without it makes a new key and records the change in the log
//! (`audit.key_change`, see `verify`). Its public half is written into every
//! checkpoint and export so a copy of the log can be checked elsewhere, and
//! is pinned outside the data dir (`audit.public_key_file`, printed by
//! `enclave audit key`) or with `enclave audit verify --public-key`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::{AuditError, Result};

pub const FILE_NAME: &str = "audit-key";

/// The key file's mode: readable by its owner only, and not writable even
/// by them (nothing rewrites a key).
pub const MODE: u32 = 0o400;

/// The action of the row recording that a new key signs from here on.
pub const KEY_CHANGE: &str = "audit.key_change";

pub struct AuditKey {
    signing: SigningKey,
}

impl AuditKey {
    /// Load `<data_dir>/audit-key`, creating it if the data dir has none.
    pub fn load_or_create(data_dir: &Path) -> Result<AuditKey> {
        let path = data_dir.join(FILE_NAME);
        let err = |reason: String| AuditError::Key {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                tighten_mode(&path);
                let bytes = hex::decode(text.trim()).map_err(|e| err(e.to_string()))?;
                let secret: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| err("expected 32 bytes of hex".into()))?;
                Ok(AuditKey {
                    signing: SigningKey::from_bytes(&secret),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signing = SigningKey::generate(&mut rand::rngs::OsRng);
                // create_new: two processes starting at once cannot both win.
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(MODE)
                    .open(&path)
                    .map_err(|e| err(e.to_string()))?;
                file.write_all(hex::encode(signing.to_bytes()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                tracing::info!(path = %path.display(), "created audit signing key");
                Ok(AuditKey { signing })
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// The key of `data_dir` if it has one; creates nothing.
    pub fn load_existing(data_dir: &Path) -> Result<Option<AuditKey>> {
        if data_dir.join(FILE_NAME).is_file() {
            Self::load_or_create(data_dir).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &str) -> String {
        hex::encode(self.signing.sign(message.as_bytes()).to_bytes())
    }

    /// A keyed digest of `text` (HMAC-SHA-256 under a key derived from the
    /// signing key) for the audit log to name a question or a removed
    /// sentence without its words. A plain hash of a short question can be
    /// reversed by hashing likely questions; this one only by someone who
    /// holds the key.
    pub fn digest(&self, text: &str) -> String {
        use hmac::Mac;
        use sha2::Digest;
        let key = sha2::Sha256::new()
            .chain_update(b"enclave-audit-digest\n")
            .chain_update(self.signing.to_bytes())
            .finalize();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Keys written by earlier versions were 0600: make them 0400. A key on a
/// read-only or foreign-owned file is left as it is (doctor reports it).
fn tighten_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o777 != MODE
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(MODE))
    {
        tracing::warn!(path = %path.display(), error = %e, "could not make the audit key mode 0400");
    }
}

/// Public keys given as hex, or as a file holding one per line (the pinned
/// `audit.pub`: every key the operator has accepted, oldest first; `#`
/// lines are comments): the hex of each, checked to be a valid Ed25519 key.
pub fn parse_public_keys(text_or_path: &str) -> std::result::Result<Vec<String>, String> {
    let text = text_or_path.trim();
    let is_hex = |t: &str| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit());
    let lines: Vec<String> = if is_hex(text) {
        vec![text.to_string()]
    } else {
        std::fs::read_to_string(text)
            .map_err(|e| format!("{text}: {e}"))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    if lines.is_empty() {
        return Err(format!("{text}: no public key"));
    }
    lines
        .into_iter()
        .map(|line| {
            let hex_key = line.to_ascii_lowercase();
            let bytes: [u8; 32] = hex::decode(&hex_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("{text}: not a hex Ed25519 public key: {line}"))?;
            VerifyingKey::from_bytes(&bytes).map_err(|e| format!("{text}: {e}"))?;
            Ok(hex_key)
        })
        .collect()
}

/// What `verify` holds a log to: the pinned keys when a pin file is
/// configured and exists (every signature must be one of them); else the
/// data dir's own key as the one that must sign the head (earlier keys
/// through the log's key changes, which are printed).
pub fn expected_keys(
    public_key_file: &Path,
    data_dir: &Path,
) -> Result<(Vec<String>, Option<String>)> {
    let pins = pinned(public_key_file)?;
    if !pins.is_empty() {
        return Ok((pins, None));
    }
    Ok((
        Vec::new(),
        AuditKey::load_existing(data_dir)?.map(|k| k.public_hex()),
    ))
}

/// The pinned public keys, when `public_key_file` is set and exists (empty
/// otherwise); a damaged file is an error, not a reason to fall back.
pub fn pinned(public_key_file: &Path) -> Result<Vec<String>> {
    if public_key_file.as_os_str().is_empty() || !public_key_file.exists() {
        return Ok(Vec::new());
    }
    parse_public_keys(&public_key_file.to_string_lossy()).map_err(|reason| AuditError::Key {
        path: public_key_file.display().to_string(),
        reason,
    })
}

/// Whether `signature_hex` is `public_hex`'s signature of `message`.
pub fn verify_signature(public_hex: &str, message: &str, signature_hex: &str) -> bool {
    let Ok(Ok(public)) = hex::decode(public_hex).map(|b| <[u8; 32]>::try_from(b.as_slice())) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&public) else {
        return false;
    };
    let Ok(Ok(sig)) = hex::decode(signature_hex).map(|b| <[u8; 64]>::try_from(b.as_slice())) else {
        return false;
    };
    key.verify(message.as_bytes(), &Signature::from_bytes(&sig))
        .is_ok()
}

#[cfg(test)]
mod tests {

    #[test]
    fn digests_are_keyed() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ka, kb) = (
            AuditKey::load_or_create(a.path()).unwrap(),
            AuditKey::load_or_create(b.path()).unwrap(),
        );
        let q = "Does Ms Smith in bed 4 have HIV?";
        assert_eq!(ka.digest(q), ka.digest(q));
        assert_ne!(ka.digest(q), kb.digest(q), "another key, another digest");
        use sha2::Digest;
        assert_ne!(
            ka.digest(q),
            hex::encode(sha2::Sha256::digest(q.as_bytes()))
        );
        assert_eq!(ka.digest(q).len(), 64);
    }

    use super::*;

    #[test]
    fn key_persists_and_signatures_check() {
        let dir = tempfile::tempdir().unwrap();
        let a = AuditKey::load_or_create(dir.path()).unwrap();
        let b = AuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_hex(), b.public_hex());
        let sig = a.sign("hello");
        assert!(verify_signature(&b.public_hex(), "hello", &sig));
        assert!(!verify_signature(&b.public_hex(), "hellO", &sig));
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, MODE);
    }

    #[test]
    fn an_old_0600_key_is_tightened_to_0400() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = AuditKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let b = AuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_hex(), b.public_hex());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, MODE);
    }

    #[test]
    fn public_keys_parse_from_hex_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::load_or_create(dir.path()).unwrap();
        let pub_file = dir.path().join("audit.pub");
        let other = tempfile::tempdir().unwrap();
        let second = AuditKey::load_or_create(other.path()).unwrap();
        std::fs::write(
            &pub_file,
            format!(
                "# accepted keys\n{}\n\n{}\n",
                key.public_hex().to_uppercase(),
                second.public_hex()
            ),
        )
        .unwrap();
        assert_eq!(
            parse_public_keys(&key.public_hex()),
            Ok(vec![key.public_hex()])
        );
        assert_eq!(
            parse_public_keys(pub_file.to_str().unwrap()),
            Ok(vec![key.public_hex(), second.public_hex()])
        );
        assert!(parse_public_keys("abcd").is_err());
        assert!(parse_public_keys(dir.path().join("none").to_str().unwrap()).is_err());
    }
}
