//! Credentials: long-term users (RFC 8489 §9.2), the TURN REST API's
//! time-limited ones, and stateless nonces. Keys are computed when users are
//! loaded (or once per Allocate for REST usernames), never per packet.

pub mod keys;
pub mod nonce;
pub mod rest_api;
pub mod users;

pub use keys::{PasswordAlgorithm, UserKeys};
pub use nonce::{NonceError, NonceKey, NonceText};
pub use rest_api::{RestApi, RestApiError};
pub use users::{parse_user, UserDb, UserLineError};

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LookupError {
    #[error("unknown user")]
    UnknownUser,
    #[error("time-limited credentials expired")]
    Expired,
}

/// Everything needed to authenticate a request.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub realm: String,
    pub users: UserDb,
    pub rest_api: Option<RestApi>,
}

impl Credentials {
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            users: UserDb::new(),
            rest_api: None,
        }
    }

    /// Adds a `user=` line's user.
    pub fn add_user_line(&mut self, line: &str) -> Result<(), UserLineError> {
        let (name, keys) = parse_user(line, &self.realm)?;
        self.users.insert(name, keys, &self.realm);
        Ok(())
    }

    pub fn add_user(&mut self, name: &str, password: &str) {
        let keys = UserKeys::from_password(name, &self.realm, password);
        self.users.insert(name.to_owned(), keys, &self.realm);
    }

    /// The keys that could have signed a request from `username`: one for a
    /// static user, one per secret for a REST-API username. Time-limited
    /// usernames (`<expiry>:<user>`) are checked against `unix_now`.
    pub fn candidate_keys(
        &self,
        username: &str,
        unix_now: u64,
    ) -> Result<Vec<UserKeys>, LookupError> {
        if let Some(api) = &self.rest_api {
            match api.check_expiry(username, unix_now) {
                Ok(()) => return Ok(api.candidate_keys(username, &self.realm).collect()),
                Err(RestApiError::Expired) => return Err(LookupError::Expired),
                Err(RestApiError::NotTimeLimited) => {}
            }
        }
        self.users
            .get(username)
            .map(|k| vec![k.clone()])
            .ok_or(LookupError::UnknownUser)
    }

    /// RFC 8489 §14.4: the user behind a USERHASH (static users only).
    pub fn username_for_hash(&self, hash: &[u8; 32]) -> Option<&str> {
        self.users.name_for_hash(hash)
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn static_and_rest_users_resolve() {
        let mut c = Credentials::new("r");
        c.add_user("alice", "pw");
        c.rest_api = Some(RestApi::new(vec![b"a".to_vec(), b"b".to_vec()], ':'));
        assert_eq!(c.candidate_keys("alice", 0).map(|v| v.len()), Ok(1));
        assert_eq!(
            c.candidate_keys("nobody", 0).err(),
            Some(LookupError::UnknownUser)
        );
        assert_eq!(c.candidate_keys("2000:x", 1000).map(|v| v.len()), Ok(2));
        assert_eq!(
            c.candidate_keys("2000:x", 3000).err(),
            Some(LookupError::Expired)
        );
    }
}
