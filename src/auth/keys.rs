//! Long-term credential keys (RFC 8489 §9.2.2) and USERHASH (§14.4).

use md5::{Digest, Md5};
use sha2::Sha256;

/// RFC 8489 §9.2.2 / §18.5: which hash turns the password into the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordAlgorithm {
    Md5,
    Sha256,
}

fn hash_parts<D: Digest>(parts: &[&[u8]]) -> impl AsRef<[u8]> {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    d.finalize()
}

/// key = MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub fn md5_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(
        hash_parts::<Md5>(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]).as_ref(),
    );
    out
}

/// key = SHA-256(username ":" realm ":" password) (RFC 8489 §9.2.2). The realm
/// and password are used as given; OpaqueString preparation (RFC 8265) of
/// non-ASCII passwords is the operator's to do when writing the config.
pub fn sha256_key(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(
        hash_parts::<Sha256>(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
            .as_ref(),
    );
    out
}

/// USERHASH = SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(hash_parts::<Sha256>(&[username.as_bytes(), realm.as_bytes()]).as_ref());
    out
}

/// The keys of one user, computed once when the user is loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKeys {
    pub md5: [u8; 16],
    /// Absent when the operator gave only an MD5 key (`name:0x<hex>`).
    pub sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKeys(..)")
    }
}

impl UserKeys {
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        Self {
            md5: md5_key(username, realm, password),
            sha256: Some(sha256_key(username, realm, password)),
        }
    }

    pub fn key(&self, algorithm: PasswordAlgorithm) -> Option<&[u8]> {
        match algorithm {
            PasswordAlgorithm::Md5 => Some(&self.md5),
            PasswordAlgorithm::Sha256 => self.sha256.as_ref().map(|k| k.as_slice()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rfc8489_9_2_2_md5_key_matches_rfc5769_2_4() {
        // RFC 5769 §2.4's user, realm and password; key checked against the vector's MAC in tests/.
        let key = md5_key(
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        );
        assert_eq!(key.len(), 16);
        assert_eq!(
            md5_key("user", "realm", "pass"),
            md5_key("user", "realm", "pass")
        );
        assert_ne!(
            md5_key("user", "realm", "pass"),
            md5_key("user", "realm", "pasS")
        );
    }
}
