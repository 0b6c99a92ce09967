//! `ringturn`: command line → Config → the sharded server, until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ringturn::config::{Cli, Config, IoBackend};
use ringturn::io::socket::BufferSizes;
use ringturn::io::BackendKind;
use ringturn::run::{start, RunSettings, StreamSettings, XdpSettings};
use ringturn::signaling::{self, SignalingConfig};
use ringturn::tls::{TlsReloader, TlsSettings};
use ringturn::userdb::Snapshot;

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let target = ringturn::logging::init(&config.log)?;
    if let ringturn::logging::LogTarget::File(path) = &target {
        tracing::info!("log file opened: {}", path.display());
    }
    Ok(())
}

/// SIGHUP (issue 12): reads the configuration again (the caller hands the
/// workers what can change while running); keys that cannot are named in one
/// warning. A configuration that no longer parses keeps the running one.
fn reload_config(
    cli: &Cli,
    running: &Config,
    server: &ringturn::run::RunningServer,
) -> Option<Config> {
    if running.source_name == ringturn::config::EMBEDDED {
        tracing::info!("SIGHUP: running on the embedded defaults; nothing to reload");
        return None;
    }
    let new = match Config::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration does not load; keeping the running one");
            return None;
        }
    };
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    let fixed = running.fixed_differences(&new);
    if !fixed.is_empty() {
        tracing::warn!(
            keys = %fixed.join(", "),
            "SIGHUP: these keys cannot change while running; restart ringturn to apply them"
        );
    }
    ringturn::logging::set_verbosity(new.log.verbosity);
    let _ = server;
    tracing::info!(
        source = %new.source_name,
        users = new.user_names().count(),
        realm = %new.realm,
        "SIGHUP: configuration reloaded"
    );
    Some(new)
}

/// What each worker runs with: the config file's settings and users, plus
/// coturn's user database when one is read (issue 13).
fn runtime(
    config: &Config,
    db: Option<&Snapshot>,
    workers: usize,
) -> (
    Vec<ringturn::turn::ServerConfig>,
    ringturn::auth::Credentials,
) {
    let workers = workers.max(1);
    let mut configs: Vec<_> = (0..workers)
        .map(|w| config.server_config(w, workers))
        .collect();
    let mut credentials = config.credentials();
    if let Some(db) = db {
        let mut skipped = db.add_to(
            &mut credentials,
            config.use_auth_secret,
            config.rest_api_separator,
        );
        for (i, c) in configs.iter_mut().enumerate() {
            let s = db.apply_to(c, workers);
            if i == 0 {
                skipped.extend(s);
            }
        }
        for s in skipped {
            tracing::warn!("userdb: {s}; left out");
        }
    }
    (configs, credentials)
}

/// coturn's SQLite user database (issue 13): `userdb`, else Debian's
/// default when it exists; read at start, on SIGHUP and every
/// `userdb-refresh`.
struct UserDb {
    path: Option<std::path::PathBuf>,
    snapshot: Option<Snapshot>,
    next_read: std::time::Instant,
}

impl UserDb {
    fn open(config: &Config) -> anyhow::Result<Self> {
        let default = std::path::Path::new(ringturn::userdb::DEFAULT_USERDB);
        let (path, explicit) = match &config.userdb {
            Some(p) => (Some(p.clone()), true),
            None if config.source_name != ringturn::config::EMBEDDED
                && !config.realm.is_empty()
                && default.is_file() =>
            {
                (Some(default.to_path_buf()), false)
            }
            None => (None, false),
        };
        let mut db = Self {
            path,
            snapshot: None,
            next_read: std::time::Instant::now() + config.userdb_refresh,
        };
        if let Some(path) = &db.path {
            match ringturn::userdb::read(path, &config.realm) {
                Ok(s) => {
                    tracing::info!(
                        path = %path.display(),
                        users = s.users.len(),
                        secrets = s.secrets.len(),
                        realm = %config.realm,
                        "{}",
                        if explicit { "userdb read" } else { "coturn's default userdb read (no userdb= set)" }
                    );
                    db.snapshot = Some(s);
                }
                Err(e) if explicit => return Err(e).context("cannot read the user database"),
                Err(e) => tracing::warn!("{e}; coturn's default userdb is not used"),
            }
        }
        Ok(db)
    }

    /// Reads the database again; true when what it holds changed. A read
    /// that fails keeps the last good snapshot.
    fn refresh(&mut self, config: &Config) -> bool {
        self.next_read = std::time::Instant::now() + config.userdb_refresh;
        let Some(path) = &self.path else {
            return false;
        };
        match ringturn::userdb::read(path, &config.realm) {
            Ok(s) if self.snapshot.as_ref() == Some(&s) => false,
            Ok(s) => {
                tracing::info!(path = %path.display(), users = s.users.len(), secrets = s.secrets.len(), "userdb changed; reloaded");
                self.snapshot = Some(s);
                true
            }
            Err(e) => {
                tracing::warn!("{e}; keeping the last users read");
                false
            }
        }
    }
}

fn settings(config: &Config, db: Option<&Snapshot>) -> anyhow::Result<RunSettings> {
    let workers = config.workers.max(1);
    let tls = match (&config.cert, &config.pkey) {
        (Some(cert), Some(pkey)) if config.tls => Some(
            TlsReloader::new(TlsSettings {
                cert: cert.clone(),
                pkey: pkey.clone(),
                tls12: config.tls12,
                tls12_ciphers: config.tls12_ciphers.clone(),
            })
            .context("cannot set up TLS")?,
        ),
        _ => None,
    };
    let tls_listen = if tls.is_some() {
        config
            .listening
            .iter()
            .map(|a| std::net::SocketAddr::new(a.ip(), config.tls_listening_port))
            .collect()
    } else {
        Vec::new()
    };
    Ok(RunSettings {
        listen: config.listening.clone(),
        workers,
        cpu_affinity: config.cpu_affinity.clone(),
        steer_by_cpu: config.reuseport_cpu_steering,
        backend: match config.io_backend {
            IoBackend::Auto => None,
            IoBackend::Uring => Some(BackendKind::Uring),
            IoBackend::Batch => Some(BackendKind::Batch),
        },
        buffers: BufferSizes {
            rcvbuf: config.socket_rcvbuf,
            sndbuf: config.socket_sndbuf,
        },
        gro: config.udp_gro.policy(),
        server_configs: runtime(config, db, workers).0,
        credentials: runtime(config, db, workers).1,
        streams: StreamSettings {
            tcp: config.tcp,
            tls_listen,
            tls,
            limits: config.stream_limits,
        },
        xdp: XdpSettings {
            interfaces: config.xdp_interfaces.clone(),
            mode: config.xdp_mode,
        },
    })
}

/// `ringturn admin …` (issue 13): exit 0, or 2 with the error.
fn admin_command() -> ExitCode {
    use clap::Parser;
    let args = std::env::args().skip(1);
    let cli = ringturn::admin::AdminCli::parse_from(
        std::iter::once("ringturn admin".to_owned()).chain(args.skip(1)),
    );
    match ringturn::admin::run(&cli, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringturn admin: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse_args();
    let mut config = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringturn: {e}");
            std::process::exit(2);
        }
    };
    for w in &config.warnings {
        eprintln!("ringturn: warning: {w}");
    }
    if cli.check_config {
        println!("{}", config.summary());
        return Ok(());
    }
    if cli.check_host {
        let wanted = ringturn::hostcheck::Wanted::from_config(&config);
        let findings = ringturn::hostcheck::check(
            &ringturn::hostcheck::read_host(&wanted.xdp_interfaces),
            &wanted,
        );
        for f in &findings {
            println!("{f}");
        }
        std::process::exit(i32::from(ringturn::hostcheck::exit_code(&findings)));
    }
    init_logging(&config)?;
    match ringturn::io::raise_fd_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }

    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.clone())
            .context("cannot install signal handlers")?;
    }

    // SIGHUP: read the TLS certificate and key again (live connections keep theirs).
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .context("cannot install signal handlers")?;

    let mut userdb = UserDb::open(&config)?;
    // Fixed while running (a reload names a change of it).
    let workers = config.workers.max(1);
    let server = start(settings(&config, userdb.snapshot.as_ref())?).context("cannot start")?;
    if let Some(note) = &server.backend_note {
        tracing::warn!("{note}");
    }
    let listening: Vec<String> = server
        .listening
        .iter()
        .map(|a| format!("udp {a}"))
        .chain(server.tcp_listening.iter().map(|a| format!("tcp {a}")))
        .chain(server.tls_listening.iter().map(|a| format!("tls {a}")))
        .collect();
    let auth = if config.no_auth {
        "none (no-auth)".to_owned()
    } else if config.static_auth_secrets().is_empty() {
        format!("long-term credentials, realm {}", config.realm)
    } else {
        format!(
            "long-term credentials and REST API secrets, realm {}",
            config.realm
        )
    };
    tracing::info!(
        listening = %listening.join(", "),
        relay = %config.relay_ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        ports = %format!("{}-{}", config.min_port, config.max_port),
        relay_sockets = %config.relay_socket_mode,
        workers = config.workers.max(1),
        backend = server.backend.name(),
        auth = %auth,
        "ringturn {} started",
        env!("CARGO_PKG_VERSION"),
    );
    // The signaling server (call page, rooms, ICE servers) on its own thread
    // and runtime, pointing pages at the TURN addresses just bound.
    let signaling = match SignalingConfig::from_config(&config, &server.listening)
        .map(|sc| sc.with_streams(&server.tcp_listening, &server.tls_listening))
    {
        Some(sc) => match signaling::spawn(sc) {
            Ok(s) => {
                tracing::info!(
                    "signaling and the call page on http://{}/ (WebSocket /ws, Socket.IO /socket.io/)",
                    s.local_addr()
                );
                Some(s)
            }
            Err(e) => {
                let _ = server.stop();
                return Err(e).context("cannot start signaling");
            }
        },
        None => None,
    };
    // Prometheus `/metrics` on its own small thread, never on a relay worker.
    let metrics = if config.prometheus {
        let addr = std::net::SocketAddr::new(config.prometheus_address, config.prometheus_port);
        match ringturn::metrics::spawn(addr, server.metrics_source()) {
            Ok(m) => {
                tracing::info!("Prometheus metrics on http://{}/metrics", m.local_addr());
                Some(m)
            }
            Err(e) => {
                if let Some(s) = signaling {
                    s.stop();
                }
                let _ = server.stop();
                return Err(e).context(format!("cannot serve metrics on {addr}"));
            }
        }
    } else {
        None
    };
    if let Some(demo) = &config.demo_user {
        println!(
            "ringturn: demo user for trying it out: username={} password={} realm={}",
            demo.name, demo.password, config.realm
        );
        if let Some(addr) = server.listening.first() {
            println!(
                "ringturn: e.g. turnutils_uclient -u {} -w {} -p {} {}",
                demo.name,
                demo.password,
                addr.port(),
                addr.ip()
            );
        }
    }
    if let (Some(_), Some(s)) = (&config.demo_user, &signaling) {
        println!(
            "ringturn: for a call through it, open http://{}/ in two tabs and join one room",
            s.local_addr()
        );
    }
    if let Some(pidfile) = &config.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pidfile {}", pidfile.display()))?;
    }

    // Until a signal arrives, a worker fails or the signaling server stops.
    let signaling_down = |s: &Option<signaling::SignalingServer>| {
        s.as_ref()
            .is_some_and(signaling::SignalingServer::is_finished)
    };
    while !shutdown.load(Ordering::Relaxed) && !server.is_finished() && !signaling_down(&signaling)
    {
        std::thread::sleep(Duration::from_millis(20));
        let mut apply = false;
        if std::time::Instant::now() >= userdb.next_read {
            apply |= userdb.refresh(&config);
        }
        if reload.swap(false, Ordering::Relaxed) {
            ringturn::logging::reopen();
            if let Some(new) = reload_config(&cli, &config, &server) {
                config = new;
                apply = true;
            }
            apply |= userdb.refresh(&config);
            match &server.tls {
                Some(tls) => match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.settings().cert.display(),
                        "TLS certificate reloaded"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS reload failed; keeping the old certificate")
                    }
                },
                None => tracing::info!("SIGHUP: no TLS certificate to reload"),
            }
        }
        if apply {
            let (configs, credentials) = runtime(&config, userdb.snapshot.as_ref(), workers);
            server.reconfigure(configs, &credentials);
        }
    }
    let failed = !shutdown.load(Ordering::Relaxed);
    tracing::info!("stopping");
    if let Some(m) = metrics {
        m.stop();
    }
    if let Some(s) = signaling {
        s.stop();
    }
    let result = server.stop();
    if let Some(pidfile) = &config.pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    result.context("a worker failed")?;
    if failed {
        anyhow::bail!("a worker or the signaling server stopped unexpectedly");
    }
    Ok(())
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("admin") {
        return admin_command();
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringturn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc: per-thread free lists suit one-thread-per-core workers (the hot
/// paths allocate nothing; the control paths allocate small, short-lived buffers).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
