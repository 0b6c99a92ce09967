//! Where log lines go and how they start, as coturn's options say (issue 12):
//! stdout, a file (coturn's dated `NAME_YYYY-MM-DD.log`, a new one each day,
//! unless `simple-log`), or the local syslog socket with a facility; lines
//! start with seconds since start, or with the local time in a strftime
//! format (`new-log-timestamp`); `log-format=json` writes one JSON object per
//! line instead.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use thiserror::Error;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::config::{dated_log_file_name, LogFormat, LogSettings, SyslogFacility, Verbosity};

/// The local syslog socket (syslog(3)'s, journald's and rsyslog's).
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// Names another socket instead (a container's, or a test's).
pub const SYSLOG_SOCKET_ENV: &str = "RINGTURN_SYSLOG_SOCKET";

#[derive(Debug, Error)]
pub enum LogError {
    #[error("cannot open log-file {path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("cannot reach syslog at {0}: {1}")]
    Syslog(String, io::Error),
    #[error("logging is already set up")]
    AlreadySet,
}

/// Where the lines went, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    File(PathBuf),
    Syslog(SyslogFacility),
}

/// Set by [`reopen`]: the log file is opened again at the next line.
static REOPEN: AtomicBool = AtomicBool::new(false);
/// The level filter, swapped by [`set_verbosity`].
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Opens the log file again at the next line (SIGHUP, as coturn: after
/// logrotate moved it away).
pub fn reopen() {
    REOPEN.store(true, Ordering::Relaxed);
}

fn filter_for(verbosity: Verbosity) -> EnvFilter {
    let level = match verbosity {
        Verbosity::Normal => "info",
        Verbosity::Verbose => "debug",
        Verbosity::Extra => "trace",
    };
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("ringturn={level}")))
}

/// Changes the level at run time (a reloaded `verbose` / `Verbose`).
pub fn set_verbosity(verbosity: Verbosity) {
    if let Some(handle) = FILTER.get() {
        let _ = handle.reload(filter_for(verbosity));
    }
}

fn today() -> String {
    chrono::Local::now().format("%F").to_string()
}

/// A log file that follows coturn's daily naming: each write checks the date
/// and moves to the new day's file after midnight.
struct DatedFile {
    base: String,
    simple: bool,
    date: String,
    file: File,
}

impl DatedFile {
    fn open(base: &Path, simple: bool) -> Result<(Self, PathBuf), LogError> {
        let base = base.to_string_lossy().into_owned();
        let date = today();
        let path = Self::path_for(&base, simple, &date);
        let file = append(&path).map_err(|source| LogError::File {
            path: path.clone(),
            source,
        })?;
        Ok((
            Self {
                base,
                simple,
                date,
                file,
            },
            path,
        ))
    }

    fn path_for(base: &str, simple: bool, date: &str) -> PathBuf {
        if simple {
            PathBuf::from(base)
        } else {
            PathBuf::from(dated_log_file_name(base, date))
        }
    }

    fn roll(&mut self) {
        if REOPEN.swap(false, Ordering::Relaxed) {
            if let Ok(file) = append(&Self::path_for(&self.base, self.simple, &self.date)) {
                self.file = file;
            }
        }
        if self.simple {
            return;
        }
        let date = today();
        if date != self.date {
            if let Ok(file) = append(&Self::path_for(&self.base, false, &date)) {
                self.file = file;
                self.date = date;
            }
        }
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[derive(Clone)]
struct SharedFile(Arc<Mutex<DatedFile>>);

/// Where a finished line goes, in one piece.
trait LineSink {
    fn put(&self, line: &mut Vec<u8>);
}

/// One event's line, gathered and handed to its sink whole when the
/// formatter is done with it (tracing writes a line in several pieces).
struct Line<'a, S: LineSink> {
    sink: &'a S,
    line: Vec<u8>,
}

impl<S: LineSink> Write for Line<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: LineSink> Drop for Line<'_, S> {
    fn drop(&mut self) {
        self.sink.put(&mut self.line);
    }
}

impl LineSink for SharedFile {
    fn put(&self, line: &mut Vec<u8>) {
        if let Ok(mut f) = self.0.lock() {
            f.roll();
            let _ = f.file.write_all(line);
        }
    }
}

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = Line<'a, SharedFile>;
    fn make_writer(&'a self) -> Self::Writer {
        Line {
            sink: self,
            line: Vec::with_capacity(256),
        }
    }
}

/// Sends each event as one datagram to the local syslog socket:
/// `<PRI>ringturn[PID]: line` (RFC 3164's form, which syslog(3) writes too).
#[derive(Clone)]
struct Syslog {
    socket: Arc<UnixDatagram>,
    facility: SyslogFacility,
}

impl LineSink for Syslog {
    fn put(&self, line: &mut Vec<u8>) {
        while line.last() == Some(&b'\n') {
            line.pop();
        }
        // A full or absent syslog must not stall a worker: the socket is
        // non-blocking and a line that cannot go is dropped.
        let _ = self.socket.send(line);
    }
}

/// RFC 5424 §6.2.1 severities for tracing's levels.
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = Line<'a, Syslog>;
    fn make_writer(&'a self) -> Self::Writer {
        self.line_for(&Level::INFO)
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        self.line_for(meta.level())
    }
}

impl Syslog {
    fn line_for(&self, level: &Level) -> Line<'_, Syslog> {
        let pri = u16::from(self.facility.0) * 8 + u16::from(severity(level));
        let line = format!("<{pri}>ringturn[{}]: ", std::process::id()).into_bytes();
        Line { sink: self, line }
    }
}

/// coturn's line start: seconds since start (`12: `), or the local time in a
/// strftime format (`new-log-timestamp`).
struct CoturnTime {
    start: Instant,
    format: Option<String>,
}

impl FormatTime for CoturnTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match &self.format {
            Some(f) => write!(w, "{}", chrono::Local::now().format(f)),
            None => write!(w, "{}:", self.start.elapsed().as_secs()),
        }
    }
}

/// Installs the global logger. `RUST_LOG` overrides the verbosity.
pub fn init(settings: &LogSettings) -> Result<LogTarget, LogError> {
    let (filter, handle) = reload::Layer::new(filter_for(settings.verbosity));
    let (writer, target, ansi): (BoxMakeWriter, LogTarget, bool) = if settings.to_syslog() {
        let path = std::env::var(SYSLOG_SOCKET_ENV).unwrap_or_else(|_| SYSLOG_SOCKET.into());
        let failed = |e| LogError::Syslog(path.clone(), e);
        let socket = UnixDatagram::unbound().map_err(failed)?;
        socket.connect(&path).map_err(failed)?;
        socket.set_nonblocking(true).map_err(failed)?;
        let syslog = Syslog {
            socket: Arc::new(socket),
            facility: settings.syslog_facility,
        };
        (
            BoxMakeWriter::new(syslog),
            LogTarget::Syslog(settings.syslog_facility),
            false,
        )
    } else {
        match &settings.file {
            Some(path) if path.as_os_str() != "stdout" && path.as_os_str() != "-" => {
                let (file, opened) = DatedFile::open(path, settings.simple)?;
                (
                    BoxMakeWriter::new(SharedFile(Arc::new(Mutex::new(file)))),
                    LogTarget::File(opened),
                    false,
                )
            }
            _ => (
                BoxMakeWriter::new(io::stdout),
                LogTarget::Stdout,
                io::stdout().is_terminal(),
            ),
        }
    };
    let timer = CoturnTime {
        start: Instant::now(),
        format: settings.timestamp_format.clone(),
    };
    let syslog = matches!(target, LogTarget::Syslog(_));
    let layer = match (settings.format, syslog) {
        (LogFormat::Json, _) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_writer(writer)
            .boxed(),
        // syslog stamps its own time.
        (LogFormat::Text, true) => tracing_subscriber::fmt::layer()
            .without_time()
            .with_target(false)
            .with_ansi(false)
            .with_writer(writer)
            .boxed(),
        (LogFormat::Text, false) => tracing_subscriber::fmt::layer()
            .with_timer(timer)
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|_| LogError::AlreadySet)?;
    let _ = FILTER.set(handle);
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coturn_dated_file_names() {
        let d = "2026-12-03";
        assert_eq!(
            dated_log_file_name("/var/log/turnserver.log", d),
            "/var/log/turnserver_2026-12-03.log"
        );
        assert_eq!(
            dated_log_file_name("/var/log/turnserver", d),
            "/var/log/turnserver_2026-12-03.log"
        );
        assert_eq!(
            dated_log_file_name("/var/log/turn-", d),
            "/var/log/turn-2026-12-03.log"
        );
        assert_eq!(
            dated_log_file_name("/var/log/turn_1234_", d),
            "/var/log/turn_1234_2026-12-03.log"
        );
        assert_eq!(
            dated_log_file_name("/var/log/my turn.txt", d),
            "/var/log/my_turn_2026-12-03.txt"
        );
        assert_eq!(dated_log_file_name("turn.", d), "turn_2026-12-03.log");
        assert_eq!(
            dated_log_file_name("/var/lib.d/turn", d),
            "/var/lib.d/turn_2026-12-03.log",
            "a dot in a directory is not an extension"
        );
    }

    #[test]
    fn severities_follow_rfc5424() {
        assert_eq!(severity(&Level::ERROR), 3);
        assert_eq!(severity(&Level::INFO), 6);
        // LOG_LOCAL0 (16) info: <134>.
        assert_eq!(u16::from(16u8) * 8 + u16::from(severity(&Level::INFO)), 134);
    }
}
