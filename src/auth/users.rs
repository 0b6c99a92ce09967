//! Static users as coturn's `user=` lines write them: `name:password`, or
//! `name:0x<32 hex digits>` for a precomputed MD5 key (what `turnadmin -k` prints).

use std::collections::HashMap;

use thiserror::Error;

use super::keys::{userhash, UserKeys};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserLineError {
    #[error("expected name:password or name:0x<hex key>")]
    MissingColon,
    #[error("empty user name")]
    EmptyName,
    #[error("a 0x key must be 32 hex digits (an MD5 key)")]
    BadHexKey,
}

/// Parses one `user=` value into the name and its keys under `realm`.
pub fn parse_user(value: &str, realm: &str) -> Result<(String, UserKeys), UserLineError> {
    let (name, secret) = value.split_once(':').ok_or(UserLineError::MissingColon)?;
    if name.is_empty() {
        return Err(UserLineError::EmptyName);
    }
    let keys = match secret.strip_prefix("0x") {
        Some(hex) => UserKeys {
            md5: parse_hex_key(hex)?,
            sha256: None,
        },
        None => UserKeys::from_password(name, realm, secret),
    };
    Ok((name.to_owned(), keys))
}

fn parse_hex_key(hex: &str) -> Result<[u8; 16], UserLineError> {
    let bytes = hex.as_bytes();
    if bytes.len() != 32 {
        return Err(UserLineError::BadHexKey);
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| UserLineError::BadHexKey)?;
        *o = u8::from_str_radix(s, 16).map_err(|_| UserLineError::BadHexKey)?;
    }
    Ok(out)
}

/// The static users of one realm, looked up by name or by USERHASH.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    by_name: HashMap<String, UserKeys>,
    by_hash: HashMap<[u8; 32], String>,
}

impl UserDb {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: String, keys: UserKeys, realm: &str) {
        self.by_hash.insert(userhash(&name, realm), name.clone());
        self.by_name.insert(name, keys);
    }

    pub fn get(&self, name: &str) -> Option<&UserKeys> {
        self.by_name.get(name)
    }

    /// RFC 8489 §14.4: the user behind a USERHASH.
    pub fn name_for_hash(&self, hash: &[u8; 32]) -> Option<&str> {
        self.by_hash.get(hash).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::auth::keys::md5_key;

    #[test]
    fn parses_password_and_hex_key_users() {
        let (name, keys) = parse_user("alice:secret", "r").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name, "alice");
        assert_eq!(keys.md5, md5_key("alice", "r", "secret"));
        assert!(keys.sha256.is_some());

        let hex: String = md5_key("bob", "r", "pw")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (_, keys) = parse_user(&format!("bob:0x{hex}"), "r").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.md5, md5_key("bob", "r", "pw"));
        assert!(keys.sha256.is_none());
    }

    #[test]
    fn rejects_malformed_user_lines() {
        assert_eq!(
            parse_user("nocolon", "r").err(),
            Some(UserLineError::MissingColon)
        );
        assert_eq!(parse_user(":pw", "r").err(), Some(UserLineError::EmptyName));
        assert_eq!(
            parse_user("a:0x1234", "r").err(),
            Some(UserLineError::BadHexKey)
        );
        assert_eq!(
            parse_user("a:0xzz345678901234567890123456789012", "r").err(),
            Some(UserLineError::BadHexKey)
        );
    }

    #[test]
    fn rfc8489_14_4_finds_user_by_userhash() {
        let mut db = UserDb::new();
        db.insert(
            "carol".into(),
            UserKeys::from_password("carol", "r", "x"),
            "r",
        );
        assert_eq!(db.name_for_hash(&userhash("carol", "r")), Some("carol"));
        assert_eq!(db.name_for_hash(&userhash("carol", "other")), None);
    }
}
