//! coturn's SQLite user database (issue 13), as Debian's `turnadmin` writes
//! it: `turnusers_lt(realm, name, hmackey)`, `turn_secret(realm, value)`,
//! `allowed_peer_ip` / `denied_peer_ip(realm, ip_range)` and
//! `turn_realm_option(realm, opt, value)` for `max-bps`, `user-quota` and
//! `total-quota`.
//!
//! Read by the control plane only — at start, on SIGHUP and every
//! `userdb-refresh` seconds — into a [`Snapshot`] that the workers get with
//! the rest of a reloaded configuration; no worker ever touches the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

use crate::auth::{parse_user, Credentials, RestApi};
use crate::turn::{IpRange, ServerConfig};

/// Where Debian's coturn keeps its database; read when it exists and no
/// `userdb` is configured, as coturn does.
pub const DEFAULT_USERDB: &str = "/var/lib/turn/turndb";

/// How often the database is read again unless `userdb-refresh` says.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
#[error("userdb {path}: {message}")]
pub struct UserDbError {
    pub path: PathBuf,
    pub message: String,
}

/// What the database holds for one realm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Names and their hex MD5 keys (`MD5(name:realm:password)`).
    pub users: Vec<(String, String)>,
    /// REST API shared secrets.
    pub secrets: Vec<String>,
    pub allowed_peers: Vec<String>,
    pub denied_peers: Vec<String>,
    /// `turn_realm_option` rows.
    pub options: Vec<(String, String)>,
}

/// Reads `path` (read-only) for `realm`.
pub fn read(path: &Path, realm: &str) -> Result<Snapshot, UserDbError> {
    let fail = |e: rusqlite::Error| UserDbError {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if !path.is_file() {
        return Err(UserDbError {
            path: path.to_path_buf(),
            message: "no such file".into(),
        });
    }
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    // turnadmin may be writing: wait a little for its lock rather than fail.
    db.busy_timeout(Duration::from_millis(500)).map_err(fail)?;
    let pairs = |sql: &str| -> Result<Vec<(String, String)>, UserDbError> {
        let mut stmt = db.prepare(sql).map_err(fail)?;
        let rows = stmt
            .query_map([realm], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(fail)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(fail)
    };
    let singles = |sql: &str| -> Result<Vec<String>, UserDbError> {
        let mut stmt = db.prepare(sql).map_err(fail)?;
        let rows = stmt
            .query_map([realm], |r| r.get::<_, String>(0))
            .map_err(fail)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(fail)
    };
    Ok(Snapshot {
        users: pairs("SELECT name, hmackey FROM turnusers_lt WHERE realm = ?1 ORDER BY name")?,
        secrets: singles("SELECT value FROM turn_secret WHERE realm = ?1 ORDER BY value")?,
        allowed_peers: singles(
            "SELECT ip_range FROM allowed_peer_ip WHERE realm = ?1 ORDER BY ip_range",
        )?,
        denied_peers: singles(
            "SELECT ip_range FROM denied_peer_ip WHERE realm = ?1 ORDER BY ip_range",
        )?,
        options: pairs("SELECT opt, value FROM turn_realm_option WHERE realm = ?1 ORDER BY opt")?,
    })
}

impl Snapshot {
    /// Adds the database's users (a user of the config file keeps its own
    /// key) and, when the REST API is on, its secrets. Returns what could not
    /// be used (a key that is not 32 hex digits), for a warning.
    pub fn add_to(
        &self,
        credentials: &mut Credentials,
        use_auth_secret: bool,
        separator: char,
    ) -> Vec<String> {
        let realm = credentials.realm.clone();
        let mut skipped = Vec::new();
        for (name, hmackey) in &self.users {
            if credentials.users.get(name).is_some() {
                continue;
            }
            match parse_user(&format!("{name}:0x{}", hmackey.trim()), &realm) {
                Ok((name, keys)) => credentials.users.insert(name, keys, &realm),
                Err(e) => skipped.push(format!("user {name}: {e}")),
            }
        }
        if use_auth_secret && !self.secrets.is_empty() {
            let mut secrets: Vec<Vec<u8>> = credentials
                .rest_api
                .as_ref()
                .map(|r| r.secrets().to_vec())
                .unwrap_or_default();
            secrets.extend(self.secrets.iter().map(|s| s.as_bytes().to_vec()));
            credentials.rest_api = Some(RestApi::new(secrets, separator));
        }
        skipped
    }

    /// Adds the database's peer ranges and applies its realm options
    /// (`max-bps`, `user-quota`, `total-quota`; the quota split among
    /// `workers` as the config file's is). Returns what could not be used.
    pub fn apply_to(&self, config: &mut ServerConfig, workers: usize) -> Vec<String> {
        let mut skipped = Vec::new();
        for (list, ranges) in [
            (&mut config.peer_policy.allowed, &self.allowed_peers),
            (&mut config.peer_policy.denied, &self.denied_peers),
        ] {
            for text in ranges {
                match text.parse::<IpRange>() {
                    Ok(r) => list.push(r),
                    Err(e) => skipped.push(format!("peer range {text:?}: {e}")),
                }
            }
        }
        for (opt, value) in &self.options {
            let Ok(n) = value.trim().parse::<u64>() else {
                skipped.push(format!("realm option {opt}={value:?}: not a number"));
                continue;
            };
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            match opt.as_str() {
                "max-bps" => config.max_bps = n,
                "user-quota" => config.user_quota = n32,
                "total-quota" => {
                    config.total_quota = n32.div_ceil(u32::try_from(workers.max(1)).unwrap_or(1));
                }
                _ => skipped.push(format!("realm option {opt}: not one ringturn uses")),
            }
        }
        skipped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A database with coturn's schema, written the way turnadmin writes it.
    fn coturn_db(dir: &Path) -> PathBuf {
        let path = dir.join("turndb");
        let _ = std::fs::remove_file(&path);
        let db = Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE turnusers_lt (realm varchar(127) default '', name varchar(512), hmackey char(128), PRIMARY KEY (realm,name));
             CREATE TABLE turn_secret (realm varchar(127) default '', value varchar(256), primary key (realm,value));
             CREATE TABLE allowed_peer_ip (realm varchar(127) default '', ip_range varchar(256), primary key (realm,ip_range));
             CREATE TABLE denied_peer_ip (realm varchar(127) default '', ip_range varchar(256), primary key (realm,ip_range));
             CREATE TABLE turn_realm_option (realm varchar(127) default '', opt varchar(32), value varchar(128), primary key (realm,opt));
             INSERT INTO turnusers_lt VALUES ('example.org', 'alice', '543e1aec5d3614f03141652d6ada51b2');
             INSERT INTO turnusers_lt VALUES ('other.org', 'eve', '00000000000000000000000000000000');
             INSERT INTO turn_secret VALUES ('example.org', 'north-wind');
             INSERT INTO denied_peer_ip VALUES ('example.org', '10.0.0.0-10.255.255.255');
             INSERT INTO turn_realm_option VALUES ('example.org', 'max-bps', '64000');
             INSERT INTO turn_realm_option VALUES ('example.org', 'total-quota', '100');",
        )
        .unwrap();
        path
    }

    #[test]
    fn reads_one_realm_of_coturns_schema() {
        let dir = std::env::temp_dir().join(format!("ringturn-userdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = coturn_db(&dir);
        let snap = read(&path, "example.org").unwrap();
        assert_eq!(snap.users.len(), 1, "only the realm's users");
        let mut creds = Credentials::new("example.org");
        assert!(snap.add_to(&mut creds, true, ':').is_empty());
        // turnadmin's hmackey for alice / secret is MD5("alice:example.org:secret").
        let keys = creds.users.get("alice").unwrap();
        assert_eq!(
            keys.md5,
            crate::auth::keys::md5_key("alice", "example.org", "secret")
        );
        assert_eq!(creds.rest_api.unwrap().secrets(), &[b"north-wind".to_vec()]);
        let mut sc = ServerConfig::default();
        assert!(snap.apply_to(&mut sc, 4).is_empty());
        assert_eq!((sc.max_bps, sc.total_quota), (64_000, 25));
        assert_eq!(sc.peer_policy.denied.len(), 1);
        let e = read(&dir.join("missing"), "example.org").unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
