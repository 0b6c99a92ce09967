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

/// What operators do with `turnadmin` on the same database (issue 13):
/// users (the key computed as coturn does, hex MD5 of `user:realm:password`),
/// REST secrets and realm options. Writes go through SQLite's own locking,
/// so a running ringturn (or coturn) reads a consistent database.
pub mod admin {
    use std::path::Path;

    use rusqlite::{params, Connection, OpenFlags};

    use super::UserDbError;

    /// coturn's schema (its `schema.sql`), created in a new database so that
    /// coturn's `turnserver` and `turnadmin` can use it as well.
    const SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS turnusers_lt (realm varchar(127) default '', name varchar(512), hmackey char(128), PRIMARY KEY (realm,name));
        CREATE TABLE IF NOT EXISTS turn_secret (realm varchar(127) default '', value varchar(256), primary key (realm,value));
        CREATE TABLE IF NOT EXISTS allowed_peer_ip (realm varchar(127) default '', ip_range varchar(256), primary key (realm,ip_range));
        CREATE TABLE IF NOT EXISTS denied_peer_ip (realm varchar(127) default '', ip_range varchar(256), primary key (realm,ip_range));
        CREATE TABLE IF NOT EXISTS turn_origin_to_realm (origin varchar(127), realm varchar(127), primary key (origin));
        CREATE TABLE IF NOT EXISTS turn_realm_option (realm varchar(127) default '', opt varchar(32), value varchar(128), primary key (realm,opt));
        CREATE TABLE IF NOT EXISTS oauth_key (kid varchar(128), ikm_key varchar(256), timestamp bigint default 0, lifetime integer default 0, as_rs_alg varchar(64) default '', realm varchar(127), primary key (kid));
        CREATE TABLE IF NOT EXISTS admin_user (name varchar(32), realm varchar(127), password varchar(127), primary key (name));";

    /// The realm options ringturn and coturn act on.
    pub const OPTIONS: [&str; 3] = ["max-bps", "user-quota", "total-quota"];

    fn err(path: &Path, message: impl Into<String>) -> UserDbError {
        UserDbError {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// Opens `path` for writing; `create`: make it (with coturn's schema)
    /// when it does not exist, else that is an error.
    fn open(path: &Path, create: bool) -> Result<Connection, UserDbError> {
        if !create && !path.is_file() {
            return Err(err(
                path,
                "no such database (add a user or a secret to create it)",
            ));
        }
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|e| err(path, e.to_string()))?;
        db.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(|e| err(path, e.to_string()))?;
        db.execute_batch(SCHEMA)
            .map_err(|e| err(path, format!("not coturn's schema: {e}")))?;
        Ok(db)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Adds `user`, or sets a new password for it (turnadmin -a). True: it was new.
    pub fn add_user(
        path: &Path,
        realm: &str,
        user: &str,
        password: &str,
    ) -> Result<bool, UserDbError> {
        if user.is_empty() || realm.is_empty() {
            return Err(err(path, "a user needs a name and a realm"));
        }
        let db = open(path, true)?;
        let key = hex(&crate::auth::keys::md5_key(user, realm, password));
        let new = db
            .execute(
                "UPDATE turnusers_lt SET hmackey = ?3 WHERE realm = ?1 AND name = ?2",
                params![realm, user, key],
            )
            .map_err(|e| err(path, e.to_string()))?
            == 0;
        if new {
            db.execute(
                "INSERT INTO turnusers_lt (realm, name, hmackey) VALUES (?1, ?2, ?3)",
                params![realm, user, key],
            )
            .map_err(|e| err(path, e.to_string()))?;
        }
        Ok(new)
    }

    /// Deletes `user` (turnadmin -d); an error when there is no such user.
    pub fn delete_user(path: &Path, realm: &str, user: &str) -> Result<(), UserDbError> {
        delete_one(
            path,
            "DELETE FROM turnusers_lt WHERE realm = ?1 AND name = ?2",
            [realm, user],
            || format!("no user {user:?} in realm {realm:?}"),
        )
    }

    /// Runs a DELETE of one row; `missing` says what was not there when it
    /// deleted nothing.
    fn delete_one(
        path: &Path,
        sql: &str,
        keys: [&str; 2],
        missing: impl FnOnce() -> String,
    ) -> Result<(), UserDbError> {
        let db = open(path, false)?;
        let n = db
            .execute(sql, keys)
            .map_err(|e| err(path, e.to_string()))?;
        if n == 0 {
            return Err(err(path, missing()));
        }
        Ok(())
    }

    /// (realm, name) of every user, or of one realm's.
    pub fn list_users(
        path: &Path,
        realm: Option<&str>,
    ) -> Result<Vec<(String, String)>, UserDbError> {
        list(path, "SELECT realm, name FROM turnusers_lt", "realm", realm)
    }

    /// Adds a REST API secret (turnadmin -s); a duplicate is an error.
    pub fn add_secret(path: &Path, realm: &str, secret: &str) -> Result<(), UserDbError> {
        if secret.is_empty() || realm.is_empty() {
            return Err(err(path, "a secret needs a value and a realm"));
        }
        let db = open(path, true)?;
        let n = db
            .execute(
                "INSERT OR IGNORE INTO turn_secret (realm, value) VALUES (?1, ?2)",
                params![realm, secret],
            )
            .map_err(|e| err(path, e.to_string()))?;
        if n == 0 {
            return Err(err(
                path,
                format!("realm {realm:?} already has that secret"),
            ));
        }
        Ok(())
    }

    /// Deletes a secret; an error when there is no such secret.
    pub fn delete_secret(path: &Path, realm: &str, secret: &str) -> Result<(), UserDbError> {
        delete_one(
            path,
            "DELETE FROM turn_secret WHERE realm = ?1 AND value = ?2",
            [realm, secret],
            || format!("realm {realm:?} has no such secret"),
        )
    }

    /// (realm, secret) pairs.
    pub fn list_secrets(
        path: &Path,
        realm: Option<&str>,
    ) -> Result<Vec<(String, String)>, UserDbError> {
        list(path, "SELECT realm, value FROM turn_secret", "realm", realm)
    }

    /// Sets a realm option (`max-bps`, `user-quota`, `total-quota`).
    pub fn set_option(
        path: &Path,
        realm: &str,
        option: &str,
        value: u64,
    ) -> Result<(), UserDbError> {
        if !OPTIONS.contains(&option) {
            return Err(err(
                path,
                format!(
                    "unknown realm option {option:?} (one of {})",
                    OPTIONS.join(", ")
                ),
            ));
        }
        if realm.is_empty() {
            return Err(err(path, "a realm option needs a realm"));
        }
        let db = open(path, true)?;
        db.execute(
            "INSERT OR REPLACE INTO turn_realm_option (realm, opt, value) VALUES (?1, ?2, ?3)",
            params![realm, option, value.to_string()],
        )
        .map_err(|e| err(path, e.to_string()))?;
        Ok(())
    }

    /// (realm, "option=value") pairs.
    pub fn list_options(
        path: &Path,
        realm: Option<&str>,
    ) -> Result<Vec<(String, String)>, UserDbError> {
        list(
            path,
            "SELECT realm, opt || '=' || value FROM turn_realm_option",
            "realm",
            realm,
        )
    }

    fn list(
        path: &Path,
        select: &str,
        realm_column: &str,
        realm: Option<&str>,
    ) -> Result<Vec<(String, String)>, UserDbError> {
        let db = open(path, false)?;
        let sql = match realm {
            Some(_) => format!("{select} WHERE {realm_column} = ?1 ORDER BY 1, 2"),
            None => format!("{select} ORDER BY 1, 2"),
        };
        let mut stmt = db.prepare(&sql).map_err(|e| err(path, e.to_string()))?;
        let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
        let rows = match realm {
            Some(realm) => stmt.query_map([realm], map),
            None => stmt.query_map([], map),
        }
        .map_err(|e| err(path, e.to_string()))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(path, e.to_string()))
    }
}
