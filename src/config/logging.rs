//! How ringturn logs, in coturn's terms: `log-file` (with coturn's dated
//! names unless `simple-log`), `syslog` with `syslog-facility`,
//! `new-log-timestamp` with `new-log-timestamp-format`, and ringturn's
//! `log-format=json` for log pipelines.

use std::path::PathBuf;
use std::str::FromStr;

/// `verbose` / `Verbose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    #[default]
    Normal,
    Verbose,
    Extra,
}

/// One line per event as text, or as a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("log-format {other:?}: expected text or json")),
        }
    }
}

/// A syslog facility as coturn names them (`LOG_LOCAL0`, case-insensitive;
/// the `LOG_` prefix may be left out); the number is the facility code
/// (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogFacility(pub u8);

impl Default for SyslogFacility {
    /// LOG_USER, what syslog(3) uses when none is set (coturn's default).
    fn default() -> Self {
        Self(1)
    }
}

const FACILITIES: &[(&str, u8)] = &[
    ("KERN", 0),
    ("USER", 1),
    ("MAIL", 2),
    ("DAEMON", 3),
    ("AUTH", 4),
    ("SYSLOG", 5),
    ("LPR", 6),
    ("NEWS", 7),
    ("UUCP", 8),
    ("CRON", 9),
    ("AUTHPRIV", 10),
    ("LOCAL0", 16),
    ("LOCAL1", 17),
    ("LOCAL2", 18),
    ("LOCAL3", 19),
    ("LOCAL4", 20),
    ("LOCAL5", 21),
    ("LOCAL6", 22),
    ("LOCAL7", 23),
];

impl FromStr for SyslogFacility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("LOG_").unwrap_or(&upper);
        FACILITIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, code)| Self(*code))
            .ok_or_else(|| {
                format!("unknown syslog facility {s:?} (LOG_USER, LOG_DAEMON, LOG_LOCAL0 … LOG_LOCAL7, …)")
            })
    }
}

impl std::fmt::Display for SyslogFacility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match FACILITIES.iter().find(|(_, c)| *c == self.0) {
            Some((name, _)) => write!(f, "LOG_{name}"),
            None => write!(f, "facility {}", self.0),
        }
    }
}

/// coturn's default `new-log-timestamp-format`.
pub const DEFAULT_TIMESTAMP_FORMAT: &str = "%FT%T%z";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSettings {
    /// `log-file` as written (coturn's special names `stdout`, `-` and
    /// `syslog` are passed through for the logging setup to interpret).
    pub file: Option<PathBuf>,
    pub verbosity: Verbosity,
    /// `syslog` (or `log-file=syslog`): to the local syslog socket.
    pub syslog: bool,
    pub syslog_facility: SyslogFacility,
    /// `simple-log`: the file as named; without it coturn's
    /// `NAME_YYYY-MM-DD.EXT`, a new file each day.
    pub simple: bool,
    /// `new-log-timestamp`: the strftime format lines start with; `None`:
    /// seconds since start, as coturn without the option.
    pub timestamp_format: Option<String>,
    pub format: LogFormat,
}

impl LogSettings {
    /// Whether the lines go to syslog.
    pub fn to_syslog(&self) -> bool {
        self.syslog
            || self
                .file
                .as_ref()
                .is_some_and(|f| f.as_os_str() == "syslog")
    }
}

/// coturn's name for a log file without `simple-log`: blanks become `_`, and
/// `_YYYY-MM-DD` goes before the extension (`.log` when there is none, or
/// it is a lone dot), with no `_` after a name ending in `/`, `-` or `_`.
/// `/var/log/turnserver.log` on 2026-12-03 is
/// `/var/log/turnserver_2026-12-03.log`.
pub fn dated_log_file_name(base: &str, date: &str) -> String {
    let base: String = base
        .chars()
        .map(|c| if c == ' ' || c == '\t' { '_' } else { c })
        .collect();
    let name_start = base.rfind('/').map_or(0, |i| i + 1);
    let (stem, ext) = match base.get(name_start..).and_then(|n| n.rfind('.')) {
        Some(dot) => {
            let dot = name_start + dot;
            let ext = base.get(dot..).unwrap_or_default();
            let ext = if ext.len() < 2 { ".log" } else { ext };
            (base.get(..dot).unwrap_or_default(), ext)
        }
        None => (base.as_str(), ".log"),
    };
    let joiner = match stem.chars().last() {
        Some('/' | '-' | '_') | None => "",
        Some(_) => "_",
    };
    format!("{stem}{joiner}{date}{ext}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn facilities_parse_as_coturn_writes_them() {
        assert_eq!("LOG_LOCAL3".parse::<SyslogFacility>().unwrap().0, 19);
        assert_eq!("log_daemon".parse::<SyslogFacility>().unwrap().0, 3);
        assert_eq!(
            "user".parse::<SyslogFacility>().unwrap(),
            SyslogFacility::default()
        );
        assert!("LOG_NOPE".parse::<SyslogFacility>().is_err());
        assert_eq!(SyslogFacility(17).to_string(), "LOG_LOCAL1");
    }
}
