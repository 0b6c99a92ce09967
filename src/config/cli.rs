//! The command line: `ringturn [-c FILE] [--check-config] [--key[=value]]...`.

use std::path::PathBuf;

use clap::Parser;

/// ringturn: a STUN/TURN relay server that reads coturn's turnserver.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Parser)]
#[command(
    name = "ringturn",
    version,
    about = "A STUN/TURN relay server for WebRTC that reads coturn's turnserver.conf",
    after_help = super::keys::help_text()
)]
pub struct Cli {
    /// coturn-format configuration file (turnserver.conf).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration, print what would run, and exit.
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Check this machine against the configuration (io_uring, socket buffer
    /// limits, open files, cores, NIC queues, port ranges, GSO), print what to
    /// change, and exit (1 when something should change).
    #[arg(long = "check-host")]
    pub check_host: bool,

    /// Overrides of the file's options, with the same names: --listening-port=3479,
    /// --no-auth, --user=name:password (listed below).
    #[arg(
        value_name = "--KEY[=VALUE]",
        allow_hyphen_values = true,
        trailing_var_arg = true,
        num_args = 0..
    )]
    pub options: Vec<String>,
}

impl Cli {
    /// Parses the process's arguments (clap exits with usage on error or
    /// `--help`), then [`Cli::normalized`].
    pub fn parse_args() -> Self {
        Self::parse().normalized()
    }

    /// Parses `args` (the program name first) without exiting.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(args).map(Self::normalized)
    }

    /// Once the first `--key` override is seen, clap hands everything after
    /// it to `options`, `-c FILE`, `--check-config` and `--check-host`
    /// included; this moves
    /// those back where they belong.
    pub fn normalized(mut self) -> Self {
        let mut rest = Vec::with_capacity(self.options.len());
        let mut args = std::mem::take(&mut self.options).into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--check-config" => self.check_config = true,
                "--check-host" => self.check_host = true,
                "-c" | "--config" => match args.next() {
                    Some(path) => self.config = Some(PathBuf::from(path)),
                    // Left for the option parser to report.
                    None => rest.push(arg),
                },
                _ => match arg.strip_prefix("--config=") {
                    Some(path) => self.config = Some(PathBuf::from(path)),
                    None => rest.push(arg),
                },
            }
        }
        self.options = rest;
        self
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_are_collected_and_flags_recovered() {
        let cli = Cli::try_parse_args([
            "ringturn",
            "--listening-port=3479",
            "--no-auth",
            "-c",
            "/etc/turnserver.conf",
            "--user",
            "a:b",
            "--check-config",
        ])
        .unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/etc/turnserver.conf")));
        assert!(cli.check_config);
        assert_eq!(
            cli.options,
            vec!["--listening-port=3479", "--no-auth", "--user", "a:b"]
        );

        let cli = Cli::try_parse_args(["ringturn", "-c", "f.conf", "--check-config"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("f.conf")));
        assert!(cli.check_config);
        assert!(cli.options.is_empty());

        let cli = Cli::try_parse_args(["ringturn", "--workers=2", "--check-host"]).unwrap();
        assert!(cli.check_host);
        assert!(!cli.check_config);
        assert_eq!(cli.options, vec!["--workers=2"]);
        let cli = Cli::try_parse_args(["ringturn", "--check-host", "-c", "f.conf"]).unwrap();
        assert!(cli.check_host);
        assert_eq!(cli.config, Some(PathBuf::from("f.conf")));

        let cli = Cli::try_parse_args(["ringturn", "--verbose", "--config=x.conf"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.conf")));
        assert_eq!(cli.options, vec!["--verbose"]);
    }

    #[test]
    fn help_lists_the_keys() {
        let help = Cli::command().render_help().to_string();
        for key in [
            "listening-port",
            "static-auth-secret",
            "io-backend",
            "cpu-affinity",
        ] {
            assert!(help.contains(key), "--help lacks {key}");
        }
    }
}
