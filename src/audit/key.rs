//! The audit signing key: Ed25519, created at first start in the data dir
//! (`audit-key`, mode 0600, hex), never leaving it. Its public half is written
//! into every checkpoint and export so a copy of the log can be checked
//! elsewhere, pinned with `enclave audit verify --public-key`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::{AuditError, Result};

pub const FILE_NAME: &str = "audit-key";

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
                    .mode(0o600)
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
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }
}
