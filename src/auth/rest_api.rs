//! The "TURN REST API" time-limited credentials (coturn's `use-auth-secret`):
//! username `<unix expiry><sep><user>`, password = base64(HMAC-SHA1(secret, username)).
//! Several secrets may be valid at once so they can be rotated.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use thiserror::Error;

use super::keys::UserKeys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RestApiError {
    #[error("username does not start with a unix timestamp")]
    NotTimeLimited,
    #[error("credentials expired")]
    Expired,
}

#[derive(Debug, Clone)]
pub struct RestApi {
    secrets: Vec<Vec<u8>>,
    separator: char,
}

impl RestApi {
    /// `secrets` in order of preference; the first one mints new credentials.
    pub fn new(secrets: Vec<Vec<u8>>, separator: char) -> Self {
        Self { secrets, separator }
    }

    pub fn secrets(&self) -> &[Vec<u8>] {
        &self.secrets
    }

    pub fn separator(&self) -> char {
        self.separator
    }

    /// The password a client gets for `username` under `secret`.
    pub fn password(secret: &[u8], username: &str) -> String {
        let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
            Ok(m) => m,
            // HMAC takes keys of any length.
            Err(_) => return String::new(),
        };
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Mints a username and password valid until `expiry_unix` (for the
    /// signaling server's ICE-server endpoint, and for tests).
    pub fn mint(&self, user: &str, expiry_unix: u64) -> Option<(String, String)> {
        let secret = self.secrets.first()?;
        let username = if user.is_empty() {
            expiry_unix.to_string()
        } else {
            format!("{expiry_unix}{}{user}", self.separator)
        };
        let password = Self::password(secret, &username);
        Some((username, password))
    }

    /// Checks the timestamp in `username`: coturn's format puts the expiry
    /// first (`1700000000:alice`) or alone (`1700000000`).
    pub fn check_expiry(&self, username: &str, unix_now: u64) -> Result<(), RestApiError> {
        let stamp = username.split(self.separator).next().unwrap_or(username);
        let expiry: u64 = stamp.parse().map_err(|_| RestApiError::NotTimeLimited)?;
        if expiry < unix_now {
            Err(RestApiError::Expired)
        } else {
            Ok(())
        }
    }

    /// The keys `username` would have under each secret; integrity is checked
    /// against each in turn (rotation).
    pub fn candidate_keys<'s>(
        &'s self,
        username: &'s str,
        realm: &'s str,
    ) -> impl Iterator<Item = UserKeys> + 's {
        self.secrets
            .iter()
            .map(move |s| UserKeys::from_password(username, realm, &Self::password(s, username)))
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn mints_coturn_compatible_credentials() {
        // Same construction coturn documents: base64(hmac-sha1(secret, "timestamp:user")).
        let api = RestApi::new(vec![b"north".to_vec()], ':');
        let (user, pass) = api.mint("alice", 1_700_000_000).unwrap_or_default();
        assert_eq!(user, "1700000000:alice");
        assert_eq!(pass, RestApi::password(b"north", "1700000000:alice"));
        assert_eq!(pass.len(), 28, "base64 of a 20-byte MAC");
    }

    #[test]
    fn refuses_expired_and_malformed_usernames() {
        let api = RestApi::new(vec![b"s".to_vec()], ':');
        assert_eq!(api.check_expiry("100:bob", 99), Ok(()));
        assert_eq!(api.check_expiry("100:bob", 101), Err(RestApiError::Expired));
        assert_eq!(api.check_expiry("100", 50), Ok(()));
        assert_eq!(
            api.check_expiry("bob", 50),
            Err(RestApiError::NotTimeLimited)
        );
    }

    #[test]
    fn every_secret_yields_a_candidate_key() {
        let api = RestApi::new(vec![b"old".to_vec(), b"new".to_vec()], ':');
        assert_eq!(api.candidate_keys("1:u", "r").count(), 2);
    }
}
