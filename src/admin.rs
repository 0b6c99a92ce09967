//! `ringturn admin`: what operators do with coturn's `turnadmin` on the
//! SQLite user database, on the same database (issue 13).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::userdb::{admin, UserDbError, DEFAULT_USERDB};

/// Manage coturn's SQLite user database (the file `userdb=` names).
#[derive(Debug, Parser)]
#[command(name = "ringturn admin")]
pub struct AdminCli {
    /// The database (coturn's `-b`; Debian's default).
    #[arg(short = 'b', long = "db", default_value = DEFAULT_USERDB)]
    pub db: PathBuf,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add a long-term user, or set a new password (turnadmin -a).
    AddUser {
        #[arg(short = 'r', long)]
        realm: String,
        #[arg(short = 'u', long)]
        user: String,
        #[arg(short = 'p', long)]
        password: String,
    },
    /// Delete a user (turnadmin -d).
    DeleteUser {
        #[arg(short = 'r', long)]
        realm: String,
        #[arg(short = 'u', long)]
        user: String,
    },
    /// List users as `name[realm]` (turnadmin -l).
    ListUsers {
        #[arg(short = 'r', long)]
        realm: Option<String>,
    },
    /// Add a TURN REST API secret (turnadmin -s).
    AddSecret {
        #[arg(short = 'r', long)]
        realm: String,
        #[arg(short = 's', long)]
        secret: String,
    },
    /// Delete a REST API secret (turnadmin -X).
    DeleteSecret {
        #[arg(short = 'r', long)]
        realm: String,
        #[arg(short = 's', long)]
        secret: String,
    },
    /// Show the REST API secrets (turnadmin -S).
    ListSecrets {
        #[arg(short = 'r', long)]
        realm: Option<String>,
    },
    /// Set a realm option: max-bps, user-quota or total-quota.
    SetOption {
        #[arg(short = 'r', long)]
        realm: String,
        #[arg(short = 'o', long)]
        option: String,
        #[arg(short = 'v', long)]
        value: u64,
    },
    /// List realm options.
    ListOptions {
        #[arg(short = 'r', long)]
        realm: Option<String>,
    },
}

/// Runs one command; what it prints goes to `out`.
pub fn run(cli: &AdminCli, out: &mut dyn std::io::Write) -> Result<(), UserDbError> {
    let db = cli.db.as_path();
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}");
    };
    match &cli.command {
        AdminCommand::AddUser {
            realm,
            user,
            password,
        } => {
            let new = admin::add_user(db, realm, user, password)?;
            say(format!(
                "{} {user}[{realm}]",
                if new { "added" } else { "updated" }
            ));
        }
        AdminCommand::DeleteUser { realm, user } => {
            admin::delete_user(db, realm, user)?;
            say(format!("deleted {user}[{realm}]"));
        }
        AdminCommand::ListUsers { realm } => {
            for (realm, name) in admin::list_users(db, realm.as_deref())? {
                say(format!("{name}[{realm}]"));
            }
        }
        AdminCommand::AddSecret { realm, secret } => {
            admin::add_secret(db, realm, secret)?;
            say(format!("added a secret to realm {realm}"));
        }
        AdminCommand::DeleteSecret { realm, secret } => {
            admin::delete_secret(db, realm, secret)?;
            say(format!("deleted a secret of realm {realm}"));
        }
        AdminCommand::ListSecrets { realm } => {
            for (realm, secret) in admin::list_secrets(db, realm.as_deref())? {
                say(format!("{secret}[{realm}]"));
            }
        }
        AdminCommand::SetOption {
            realm,
            option,
            value,
        } => {
            admin::set_option(db, realm, option, *value)?;
            say(format!("{option}={value} for realm {realm}"));
        }
        AdminCommand::ListOptions { realm } => {
            for (realm, option) in admin::list_options(db, realm.as_deref())? {
                say(format!("{option}[{realm}]"));
            }
        }
    }
    Ok(())
}
