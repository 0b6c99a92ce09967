//! Starting and stopping the sharded server: bind every worker's listening
//! sockets (SO_REUSEPORT), create each worker's backend, start the threads.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::auth::{Credentials, NonceKey};
use crate::io::socket::{bind_listener, bind_stream_listener, BufferSizes};
use crate::io::stream::{StreamLimits, StreamListener, StreamSet, StreamShared};
use crate::io::{create_backend, BackendKind, GroPolicy, Waker};
use crate::metrics::{MetricsSource, WorkerMetrics};
use crate::tls::{TlsHandle, TlsReloader};
use crate::turn::ServerConfig;
use crate::worker::{
    new_server, ConfigSlot, CrossPacket, Mailbox, RelayDirectory, StreamHandoff, Worker,
    WorkerParts, CROSS_QUEUE_LEN,
};
use crate::xdp::{FastPath, SharedFastPath, XdpError, XdpMode};

/// Everything `start` needs, already validated.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub listen: Vec<SocketAddr>,
    pub workers: usize,
    pub cpu_affinity: Vec<usize>,
    /// SO_REUSEPORT by CPU: a datagram (or connection) goes to the worker
    /// pinned to the CPU that received it (needs `cpu_affinity`).
    pub steer_by_cpu: bool,
    /// `None` = auto (io_uring, else batch).
    pub backend: Option<BackendKind>,
    pub buffers: BufferSizes,
    /// Which sockets receive with UDP GRO.
    pub gro: GroPolicy,
    /// One per worker.
    pub server_configs: Vec<ServerConfig>,
    pub credentials: Credentials,
    pub streams: StreamSettings,
    pub xdp: XdpSettings,
}

impl RunSettings {
    /// UDP on `listen`, one worker per entry of `server_configs`, with
    /// `credentials`; everything else at its default: the io_uring backend
    /// where it works, no CPU pinning, default socket buffers and GRO, no
    /// TCP/TLS listeners, no kernel fast path. Set fields to change them.
    pub fn new(
        listen: Vec<SocketAddr>,
        server_configs: Vec<ServerConfig>,
        credentials: Credentials,
    ) -> Self {
        Self {
            listen,
            workers: server_configs.len().max(1),
            cpu_affinity: Vec::new(),
            steer_by_cpu: false,
            backend: None,
            buffers: BufferSizes::default(),
            gro: GroPolicy::default(),
            server_configs,
            credentials,
            streams: StreamSettings::none(),
            xdp: XdpSettings::default(),
        }
    }
}

/// The kernel fast path (issue 11): where to attach it, and how.
#[derive(Debug, Clone, Default)]
pub struct XdpSettings {
    /// `xdp-interface` (repeatable): none, no fast path.
    pub interfaces: Vec<String>,
    /// `xdp-mode`.
    pub mode: XdpMode,
}

/// TURN over TCP and TLS (RFC 8656 §3.1).
#[derive(Debug, Clone, Default)]
pub struct StreamSettings {
    /// TCP on every listening address (coturn's default; `no-tcp` turns it off).
    pub tcp: bool,
    /// TLS on these addresses, with this certificate.
    pub tls_listen: Vec<SocketAddr>,
    pub tls: Option<Arc<TlsReloader>>,
    pub limits: StreamLimits,
}

impl StreamSettings {
    /// UDP only.
    pub fn none() -> Self {
        Self::default()
    }
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the {backend} I/O backend: {source}")]
    Backend {
        backend: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start worker {index}: {source}")]
    Worker {
        index: usize,
        source: std::io::Error,
    },
    #[error("no listening address configured")]
    NoListener,
    #[error("tls-listening-port is set but no certificate (cert=, pkey=) is configured")]
    TlsWithoutCertificate,
    #[error("xdp-interface: {0}")]
    Xdp(XdpError),
}

pub struct RunningServer {
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    pub backend: BackendKind,
    /// What the backend probe said when it fell back.
    pub backend_note: Option<String>,
    /// The bound listening addresses (ports resolved when 0 was asked).
    pub listening: Vec<SocketAddr>,
    /// The bound TCP and TLS listening addresses.
    pub tcp_listening: Vec<SocketAddr>,
    pub tls_listening: Vec<SocketAddr>,
    /// Each worker's live counters, in worker order.
    pub metrics: Vec<Arc<WorkerMetrics>>,
    /// The certificate in use, for a reload on SIGHUP.
    pub tls: Option<Arc<TlsReloader>>,
    /// Stream connections open, all workers together.
    pub streams: Arc<StreamShared>,
    /// The XDP fast path, when `xdp-interface` attached it.
    pub fast_path: Option<Arc<SharedFastPath>>,
    /// One per worker, for configurations reloaded at run time.
    config_slots: Vec<Arc<ConfigSlot>>,
}

impl RunningServer {
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// Hands each worker its part of a reloaded configuration (one
    /// `ServerConfig` per worker, in worker order) and the credentials; each
    /// takes them at its next loop turn.
    pub fn reconfigure(&self, configs: Vec<ServerConfig>, credentials: &Credentials) {
        for (slot, config) in self.config_slots.iter().zip(configs) {
            slot.offer(config, credentials.clone());
        }
    }

    /// Asks every worker to stop and waits for them; sockets close as they exit.
    pub fn stop(self) -> std::io::Result<()> {
        self.shutdown.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for the workers (they stop when the shutdown flag is set).
    pub fn join(self) -> std::io::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(std::io::Error::other("worker panicked")),
            }
        }
        result
    }

    /// What a `/metrics` endpoint reads: every worker's counters and the backend.
    pub fn metrics_source(&self) -> MetricsSource {
        MetricsSource {
            workers: self.metrics.clone(),
            backend: self.backend,
            fast_path: self.fast_path.clone(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

/// Loads the XDP program and attaches it to every `xdp-interface` (none
/// configured: no fast path). Any failure is the caller's to report.
fn attach_fast_path(xdp: &XdpSettings) -> Result<Option<Arc<SharedFastPath>>, StartError> {
    if xdp.interfaces.is_empty() {
        if crate::xdp::PROGRAM.is_none() {
            tracing::info!(
                "the XDP fast path is not built into this ringturn (clang and libbpf-dev were missing when it was compiled)"
            );
        }
        return Ok(None);
    }
    let mut fast = FastPath::load().map_err(StartError::Xdp)?;
    for interface in &xdp.interfaces {
        let attached = fast.attach(interface, xdp.mode).map_err(StartError::Xdp)?;
        tracing::info!(
            interface = %attached.interface,
            mode = attached.mode,
            "XDP fast path attached ({} mode)",
            attached.mode
        );
    }
    Ok(Some(SharedFastPath::new(fast)))
}

pub fn start(settings: RunSettings) -> Result<RunningServer, StartError> {
    if settings.listen.is_empty() {
        return Err(StartError::NoListener);
    }
    let workers = settings.workers.max(1);
    // The fast path first: a configured interface that cannot take it stops
    // the start before anything is bound (issue 11).
    let fast_path = attach_fast_path(&settings.xdp)?;
    let streams = &settings.streams;
    if !streams.tls_listen.is_empty() && streams.tls.is_none() {
        return Err(StartError::TlsWithoutCertificate);
    }
    // A port 0 resolves to the UDP port the kernel picks, and TCP must get the
    // same number, which another socket may hold: then pick again.
    let any_port = settings.listen.iter().any(|a| a.port() == 0);
    let mut attempt = 0;
    let (listening, sockets_per_worker, stream_wanted, stream_bound, stream_listeners_per_worker) = loop {
        attempt += 1;
        match bind_all(&settings, workers) {
            Err(StartError::Listen { source, .. })
                if any_port && attempt < 20 && source.kind() == std::io::ErrorKind::AddrInUse => {}
            other => break other?,
        }
    };
    let tcp_listening: Vec<SocketAddr> = stream_bound
        .iter()
        .zip(&stream_wanted)
        .filter(|(_, (_, tls))| !tls)
        .map(|(a, _)| *a)
        .collect();
    let tls_listening: Vec<SocketAddr> = stream_bound
        .iter()
        .zip(&stream_wanted)
        .filter(|(_, (_, tls))| *tls)
        .map(|(a, _)| *a)
        .collect();
    let stream_shared = StreamShared::new(streams.limits);
    // One program per reuseport group, attached through worker 0's socket.
    if settings.steer_by_cpu {
        let cpus = settings.cpu_affinity.get(..workers).unwrap_or(&[]);
        if cpus.len() == workers {
            let groups = sockets_per_worker
                .first()
                .map(|s| {
                    s.iter()
                        .map(|s| (s.as_raw_fd(), s.local_addr().ok()))
                        .collect()
                })
                .unwrap_or_else(Vec::new)
                .into_iter()
                .chain(
                    stream_listeners_per_worker
                        .first()
                        .map(|l| {
                            l.iter()
                                .map(|l| (l.socket.as_raw_fd(), l.socket.local_addr().ok()))
                                .collect()
                        })
                        .unwrap_or_else(Vec::new),
                );
            for (fd, addr) in groups {
                if let Err(e) = crate::io::socket::steer_reuseport_by_cpu(fd, cpus) {
                    tracing::warn!(?addr, error = %e, "cannot steer by CPU; the kernel hashes instead");
                }
            }
        } else {
            tracing::warn!("reuseport-cpu-steering needs cpu-affinity to list one core per worker; not steering");
        }
    }

    let first = settings.server_configs.first().cloned().unwrap_or_default();
    let relay_ips: Vec<IpAddr> = first.relay_ips.clone();
    let directory = Arc::new(RelayDirectory::new(
        relay_ips,
        &first.external_ips,
        first.min_port,
        first.max_port,
        workers,
    ));
    // Nodes sharing a REST secret share nonces (a redirected client keeps
    // its nonce); otherwise a key of this process's own.
    let nonce_key = settings
        .credentials
        .rest_api
        .as_ref()
        .and_then(|api| api.secrets().first())
        .map_or_else(NonceKey::random, |secret| NonceKey::derived(secret));
    let shutdown = Arc::new(AtomicBool::new(false));

    // Each worker creates its backend on its own thread: an io_uring set up
    // with SINGLE_ISSUER/DEFER_TASKRUN belongs to the thread that made it.
    type Ready = (
        usize,
        Result<(Waker, BackendKind, Option<String>), std::io::Error>,
    );
    let mut threads = Vec::with_capacity(workers);
    let mut parts_senders = Vec::with_capacity(workers);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
    let (started_tx, started_rx) =
        std::sync::mpsc::channel::<(usize, Result<(), std::io::Error>)>();
    let preferred = settings.backend;
    for index in 0..workers {
        let (parts_tx, parts_rx) = std::sync::mpsc::channel::<WorkerParts>();
        parts_senders.push(parts_tx);
        let ready = ready_tx.clone();
        let started = started_tx.clone();
        let cpu = settings.cpu_affinity.get(index).copied();
        let flag = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("ringturn-w{index}"))
            .spawn(move || -> std::io::Result<()> {
                if let Some(cpu) = cpu {
                    if let Err(e) = crate::io::affinity::pin_current_thread(cpu) {
                        tracing::warn!(worker = index, cpu, error = %e, "cannot pin worker to its core");
                    }
                }
                let mut backend = match create_backend(preferred) {
                    Ok((backend, note)) => {
                        let _ = ready.send((index, Ok((backend.waker(), backend.kind(), note))));
                        backend
                    }
                    Err(e) => {
                        let kind = e.kind();
                        let _ = ready.send((index, Err(e)));
                        return Err(kind.into());
                    }
                };
                // The rest of the server may still fail to start: then no parts come.
                let Ok(parts) = parts_rx.recv() else { return Ok(()) };
                let worker = match Worker::new(parts, backend.as_mut()) {
                    Ok(w) => {
                        let _ = started.send((index, Ok(())));
                        w
                    }
                    Err(e) => {
                        let kind = e.kind();
                        let _ = started.send((index, Err(e)));
                        return Err(kind.into());
                    }
                };
                let result = worker.run(backend, flag);
                if let Err(e) = &result {
                    tracing::error!(worker = index, error = %e, "worker stopped on an I/O error");
                }
                result
            })
            .map_err(|source| StartError::Worker { index, source })?;
        threads.push(handle);
    }
    drop(ready_tx);
    drop(started_tx);

    let abort = |threads: Vec<JoinHandle<std::io::Result<()>>>,
                 senders: Vec<std::sync::mpsc::Sender<WorkerParts>>| {
        shutdown.store(true, Ordering::Relaxed);
        drop(senders);
        for t in threads {
            let _ = t.join();
        }
    };

    let mut wakers: Vec<Option<Waker>> = vec![None; workers];
    let mut kind = BackendKind::Batch;
    let mut note = None;
    let mut failure = None;
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok((index, Ok((waker, k, n)))) => {
                if let Some(slot) = wakers.get_mut(index) {
                    *slot = Some(waker);
                }
                kind = k;
                note = note.or(n);
            }
            Ok((_, Err(source))) => {
                let backend = preferred.map_or("auto", BackendKind::name);
                failure.get_or_insert(StartError::Backend { backend, source });
            }
            Err(_) => break,
        }
    }
    if let Some(err) = failure {
        abort(threads, parts_senders);
        return Err(err);
    }

    let mut stream_sets: Vec<Option<StreamSet>> = Vec::with_capacity(workers);
    for (index, listeners) in stream_listeners_per_worker.into_iter().enumerate() {
        if listeners.is_empty() {
            stream_sets.push(None);
            continue;
        }
        let tls = settings.streams.tls.clone().and_then(TlsHandle::new);
        let range = settings
            .server_configs
            .get(index)
            .map_or(first.channel_range, |c| c.channel_range);
        match StreamSet::new(listeners, stream_shared.clone(), tls, range) {
            Ok(set) => stream_sets.push(Some(set)),
            Err(source) => {
                abort(threads, parts_senders);
                return Err(StartError::Worker { index, source });
            }
        }
    }

    type Channel = (
        crossbeam_channel::Sender<CrossPacket>,
        crossbeam_channel::Receiver<CrossPacket>,
    );
    let channels: Vec<Channel> = (0..workers)
        .map(|_| crossbeam_channel::bounded(CROSS_QUEUE_LEN))
        .collect();
    let handoff_channels: Vec<_> = (0..workers)
        .map(|_| crossbeam_channel::bounded::<StreamHandoff>(256))
        .collect();
    let mailboxes: Vec<Mailbox> = channels
        .iter()
        .zip(handoff_channels.iter())
        .zip(wakers.iter())
        .filter_map(|(((tx, _), (handoff, _)), w)| {
            w.map(|waker| Mailbox {
                sender: tx.clone(),
                streams: handoff.clone(),
                waker,
            })
        })
        .collect();
    let mut handoff_inboxes = handoff_channels.into_iter().map(|(_, rx)| rx);
    let metrics: Vec<Arc<WorkerMetrics>> = (0..workers)
        .map(|_| Arc::new(WorkerMetrics::new()))
        .collect();
    let config_slots: Vec<Arc<ConfigSlot>> = (0..workers).map(|_| Arc::default()).collect();
    let mut stream_sets = stream_sets.into_iter();
    for (index, ((listeners, (_, inbox)), sender)) in sockets_per_worker
        .into_iter()
        .zip(channels)
        .zip(parts_senders.iter())
        .enumerate()
    {
        let stream_set = stream_sets.next().flatten();
        let mut config = settings
            .server_configs
            .get(index)
            .cloned()
            .unwrap_or_else(|| first.clone());
        config.fast_path = fast_path.is_some();
        let server = new_server(config, settings.credentials.clone(), nonce_key.clone());
        let parts = WorkerParts {
            index,
            server,
            listeners,
            directory: directory.clone(),
            mailboxes: mailboxes.clone(),
            inbox,
            buffers: settings.buffers,
            gro: settings.gro,
            metrics: metrics.get(index).cloned().unwrap_or_default(),
            streams: stream_set,
            stream_inbox: handoff_inboxes
                .next()
                .unwrap_or_else(|| crossbeam_channel::bounded(1).1),
            fast_path: fast_path.clone(),
            config_slot: config_slots.get(index).cloned().unwrap_or_default(),
        };
        let _ = sender.send(parts);
    }
    let mut failure = None;
    for _ in 0..workers {
        match started_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((index, Err(source))) => {
                failure.get_or_insert(StartError::Worker { index, source });
            }
            Err(_) => break,
        }
    }
    if let Some(err) = failure {
        abort(threads, parts_senders);
        return Err(err);
    }
    Ok(RunningServer {
        shutdown,
        threads,
        backend: kind,
        backend_note: note,
        listening,
        tcp_listening,
        tls_listening,
        metrics,
        tls: settings.streams.tls.clone(),
        streams: stream_shared,
        fast_path,
        config_slots,
    })
}

type Bound = (
    Vec<SocketAddr>,
    Vec<Vec<std::net::UdpSocket>>,
    Vec<(SocketAddr, bool)>,
    Vec<SocketAddr>,
    Vec<Vec<StreamListener>>,
);

/// Binds every worker's UDP listeners, then its TCP and TLS listeners (TCP on
/// the UDP ports). Worker 0 binds first so a port 0 resolves to one port for all.
fn bind_all(settings: &RunSettings, workers: usize) -> Result<Bound, StartError> {
    // Bind worker 0's sockets first so port 0 resolves to one port for all.
    let mut listening: Vec<SocketAddr> = Vec::new();
    let mut sockets_per_worker = Vec::with_capacity(workers);
    for w in 0..workers {
        let mut sockets = Vec::new();
        for (i, requested) in settings.listen.iter().enumerate() {
            let addr = listening.get(i).copied().unwrap_or(*requested);
            let sock = bind_listener(addr, settings.buffers)
                .map_err(|source| StartError::Listen { addr, source })?;
            if w == 0 {
                let bound = sock
                    .local_addr()
                    .map_err(|source| StartError::Listen { addr, source })?;
                listening.push(bound);
            }
            sockets.push(sock);
        }
        sockets_per_worker.push(sockets);
    }
    let streams = &settings.streams;
    // TCP on the UDP ports, TLS on its own; port 0 resolves to worker 0's.
    let mut stream_wanted: Vec<(SocketAddr, bool)> = Vec::new();
    if streams.tcp {
        stream_wanted.extend(listening.iter().map(|a| (*a, false)));
    }
    stream_wanted.extend(streams.tls_listen.iter().map(|a| (*a, true)));
    let mut stream_bound: Vec<SocketAddr> = Vec::new();
    let mut stream_listeners_per_worker = Vec::with_capacity(workers);
    for w in 0..workers {
        let mut listeners = Vec::new();
        for (i, (requested, tls)) in stream_wanted.iter().enumerate() {
            let addr = stream_bound.get(i).copied().unwrap_or(*requested);
            let socket = bind_stream_listener(addr, 1024)
                .map_err(|source| StartError::Listen { addr, source })?;
            if w == 0 {
                let bound = socket
                    .local_addr()
                    .map_err(|source| StartError::Listen { addr, source })?;
                stream_bound.push(bound);
            }
            listeners.push(StreamListener { socket, tls: *tls });
        }
        stream_listeners_per_worker.push(listeners);
    }
    Ok((
        listening,
        sockets_per_worker,
        stream_wanted,
        stream_bound,
        stream_listeners_per_worker,
    ))
}

/// Waits until `flag` is set (by a signal handler), polling gently.
pub fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
