//! Badge pseudonymisation: HMAC-SHA-256 under a venue key.
//!
//! The same badge always gives the same pseudonym under one key, so visits
//! can be linked, but without the key nobody can go from a pseudonym back to
//! a badge id, even by trying every id printed on badges. The key is created
//! in the data dir on first start (mode 0600) or given in a file, and must be
//! the same for every ingest worker of a fair.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

use footfall_schemas::ids::BadgeId;

/// Bytes of the HMAC kept in the pseudonym: 128 bits, shown as 32 hex digits.
const PSEUDONYM_BYTES: usize = 16;

#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<key>)")
    }
}

impl Pseudonymiser {
    pub fn new(key: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(key).expect("HMAC accepts keys of any length"),
        }
    }

    /// Reads the key file (hex), creating it with a fresh random key when it
    /// does not exist. Fails when it cannot be read or written, or is not hex.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = hex::decode(text.trim()).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: not a hex key: {e}", path.display()),
                    )
                })?;
                if key.len() < 16 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: the key must be at least 16 bytes", path.display()),
                    ));
                }
                Ok(Self::new(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // Written whole under a private name, then linked into
                // place: two workers starting together on a shared folder
                // both end up with the one key that won the link.
                let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&tmp)?;
                file.write_all(hex::encode(key).as_bytes())?;
                file.sync_all()?;
                let linked = std::fs::hard_link(&tmp, path);
                std::fs::remove_file(&tmp)?;
                match linked {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created a new pseudonymisation key");
                        Ok(Self::new(&key))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The pseudonym of a badge: 32 lowercase hex digits.
    pub fn pseudonym(&self, badge: &BadgeId) -> String {
        let mut mac = self.mac.clone();
        mac.update(badge.as_str().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..PSEUDONYM_BYTES])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_keyed_and_not_the_badge() {
        let a = Pseudonymiser::new(b"key one, sixteen+");
        let b = Pseudonymiser::new(b"key two, sixteen+");
        let badge = BadgeId::parse("V-004213").unwrap();
        assert_eq!(a.pseudonym(&badge), a.pseudonym(&badge));
        assert_ne!(a.pseudonym(&badge), b.pseudonym(&badge));
        assert_eq!(a.pseudonym(&badge).len(), 32);
        assert!(!a.pseudonym(&badge).contains("004213"));
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let badge = BadgeId::parse("B").unwrap();
        let first = Pseudonymiser::load_or_create(&path)
            .unwrap()
            .pseudonym(&badge);
        let again = Pseudonymiser::load_or_create(&path)
            .unwrap()
            .pseudonym(&badge);
        assert_eq!(first, again);
        std::fs::write(&path, "zz").unwrap();
        assert!(Pseudonymiser::load_or_create(&path).is_err());
    }
}
