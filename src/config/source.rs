//! Turning a turnserver.conf text or the command line's `--key[=value]`
//! arguments into entries: a key, an optional value, and where it came from.

use super::keys::{self, Arg};
use super::ConfigError;

/// The source name of options given on the command line.
pub const COMMAND_LINE: &str = "command line";

/// Where an entry was written: a file and line, or the command line and the
/// argument's position among the options (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub source: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub origin: Origin,
    pub key: String,
    /// `None` for a bare key (and for an empty value, as coturn reads it).
    pub value: Option<String>,
}

impl Entry {
    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.origin.source, self.origin.line, &self.key, message)
    }
}

/// Removes a comment: `#` at the start of the line or after whitespace, and
/// not inside a double-quoted value (so `user=bob:pa#ss` keeps its `#`).
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if prev_space && !in_quotes => return line.get(..i).unwrap_or(line),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

/// Parses one line's `key`, `key=value`, `key value`, `key = value` (a
/// leading `--` is allowed, as coturn allows). `None` for blank/comment lines.
fn parse_line(line: &str) -> Option<(&str, Option<&str>)> {
    let body = strip_comment(line).trim();
    if body.is_empty() {
        return None;
    }
    let body = body.strip_prefix("--").unwrap_or(body);
    let end = body
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(body.len());
    let key = body.get(..end).unwrap_or(body);
    let rest = body.get(end..).unwrap_or("").trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let value = unquote(rest);
    Some((key, (!value.is_empty()).then_some(value)))
}

/// Splits a config file into entries. Fails only on text that is not UTF-8
/// or a line with no key; the keys and values are checked later.
pub(crate) fn parse_file(source: &str, bytes: &[u8]) -> Result<Vec<Entry>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw)
            .map_err(|_| ConfigError::new(source, line_no, "", "line is not valid UTF-8"))?;
        let Some((key, value)) = parse_line(text) else {
            continue;
        };
        if key.is_empty() {
            return Err(ConfigError::new(
                source,
                line_no,
                "",
                format!("expected key=value, got {:?}", text.trim()),
            ));
        }
        out.push(Entry {
            origin: Origin {
                source: source.to_owned(),
                line: line_no,
            },
            key: key.to_owned(),
            value: value.map(str::to_owned),
        });
    }
    Ok(out)
}

/// Splits command-line overrides: `--key=value`, `--key value` (for a key
/// that takes a value; a flag takes the next argument only when it does not
/// start with `-`), `--key`. A lone `--` is skipped.
pub(crate) fn parse_args(args: &[String]) -> Result<Vec<Entry>, ConfigError> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let position = i + 1;
        i += 1;
        if arg == "--" {
            continue;
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(ConfigError::new(
                COMMAND_LINE,
                position,
                arg,
                "expected an option --key[=value] (ringturn takes only long option names)",
            ));
        };
        let (key, value) = match body.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => {
                let next = args.get(i);
                let take = match keys::arg_of(body) {
                    Some(Arg::Value) => next.is_some(),
                    Some(Arg::Flag) => next.is_some_and(|n| !n.starts_with('-')),
                    None => false,
                };
                let value = if take { next.cloned() } else { None };
                if take {
                    i += 1;
                }
                (body, value)
            }
        };
        out.push(Entry {
            origin: Origin {
                source: COMMAND_LINE.to_owned(),
                line: position,
            },
            key: key.to_owned(),
            value: value.filter(|v| !v.is_empty()),
        });
    }
    Ok(out)
}

/// The file's entries then the command line's: a later single-valued entry
/// wins, and a repeatable key given on the command line replaces the file's
/// values for that key.
pub(crate) fn merge(file: Vec<Entry>, cli: Vec<Entry>) -> Vec<Entry> {
    let overridden: Vec<&str> = cli
        .iter()
        .filter(|e| keys::is_repeatable(&e.key))
        .map(|e| e.key.as_str())
        .collect();
    let mut out: Vec<Entry> = file
        .into_iter()
        .filter(|e| !overridden.contains(&e.key.as_str()))
        .collect();
    out.extend(cli);
    out
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn kv(e: &Entry) -> (&str, Option<&str>) {
        (e.key.as_str(), e.value.as_deref())
    }

    #[test]
    fn file_lines_in_every_coturn_form() {
        let text = "# comment\n\
                    \n\
                    listening-port=3478\n\
                    listening-ip 10.0.0.1\n\
                    \trealm = example.org   # trailing comment\n\
                    --fingerprint\n\
                    user=bob:pa#ss\n\
                    static-auth-secret=\"quoted secret\"\n\
                    no-auth=\r\n\
                    log-file /var/log/x.log#notacomment\n";
        let entries = parse_file("t.conf", text.as_bytes()).unwrap();
        let got: Vec<_> = entries.iter().map(kv).collect();
        assert_eq!(
            got,
            vec![
                ("listening-port", Some("3478")),
                ("listening-ip", Some("10.0.0.1")),
                ("realm", Some("example.org")),
                ("fingerprint", None),
                ("user", Some("bob:pa#ss")),
                ("static-auth-secret", Some("quoted secret")),
                ("no-auth", None),
                ("log-file", Some("/var/log/x.log#notacomment")),
            ]
        );
        assert_eq!(entries[0].origin.line, 3);
        assert_eq!(entries[2].origin.line, 5);
        assert_eq!(entries[7].origin.line, 10);
    }

    #[test]
    fn file_rejects_lines_without_key_and_bad_utf8() {
        let e = parse_file("t.conf", b"realm=x\n=5\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_file("t.conf", b"realm=\xff\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn args_in_every_form() {
        let args: Vec<String> = [
            "--listening-port=3479",
            "--user",
            "a:b",
            "--no-auth",
            "--fingerprint",
            "off",
            "--verbose",
            "--min-port",
            "-5",
            "--",
            "--cert",
            "/x.pem",
            "--stale-nonce",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let entries = parse_args(&args).unwrap();
        let got: Vec<_> = entries.iter().map(kv).collect();
        assert_eq!(
            got,
            vec![
                ("listening-port", Some("3479")),
                ("user", Some("a:b")),
                ("no-auth", None),
                ("fingerprint", Some("off")),
                ("verbose", None),
                ("min-port", Some("-5")),
                ("cert", Some("/x.pem")),
                ("stale-nonce", None),
            ]
        );
        assert_eq!(entries[1].origin.line, 2);
        assert_eq!(entries[3].origin.source, COMMAND_LINE);
        let e = parse_args(&["-p".to_owned()]).unwrap_err();
        assert_eq!((e.source_name.as_str(), e.line), (COMMAND_LINE, 1));
    }

    #[test]
    fn merge_replaces_repeatable_keys_only() {
        let file =
            parse_file("f", b"user=a:1\nuser=b:2\nrealm=r\nlistening-ip=10.0.0.1\n").unwrap();
        let cli = parse_args(&["--user=c:3".to_owned(), "--realm=s".to_owned()]).unwrap();
        let merged = merge(file, cli);
        let got: Vec<_> = merged.iter().map(kv).collect();
        assert_eq!(
            got,
            vec![
                ("realm", Some("r")),
                ("listening-ip", Some("10.0.0.1")),
                ("user", Some("c:3")),
                ("realm", Some("s")),
            ]
        );
    }
}
