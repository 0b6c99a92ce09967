//! Starting and stopping the sharded server: bind every worker's listening
//! sockets (SO_REUSEPORT), create each worker's backend, start the threads.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::auth::{Credentials, NonceKey};
use crate::io::socket::{bind_listener, BufferSizes};
use crate::io::{create_backend, BackendKind};
use crate::turn::ServerConfig;
use crate::worker::{
    new_server, CrossPacket, Mailbox, RelayDirectory, Worker, WorkerParts, CROSS_QUEUE_LEN,
};

/// Everything `start` needs, already validated.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub listen: Vec<SocketAddr>,
    pub workers: usize,
    pub cpu_affinity: Vec<usize>,
    /// `None` = auto (io_uring, else batch).
    pub backend: Option<BackendKind>,
    pub buffers: BufferSizes,
    /// One per worker.
    pub server_configs: Vec<ServerConfig>,
    pub credentials: Credentials,
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
}

pub struct RunningServer {
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    pub backend: BackendKind,
    /// What the backend probe said when it fell back.
    pub backend_note: Option<String>,
    /// The bound listening addresses (ports resolved when 0 was asked).
    pub listening: Vec<SocketAddr>,
}

impl RunningServer {
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
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

    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

pub fn start(settings: RunSettings) -> Result<RunningServer, StartError> {
    if settings.listen.is_empty() {
        return Err(StartError::NoListener);
    }
    let workers = settings.workers.max(1);
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

    let first = settings.server_configs.first().cloned().unwrap_or_default();
    let relay_ips: Vec<IpAddr> = first.relay_ips.clone();
    let directory = Arc::new(RelayDirectory::new(
        relay_ips,
        &first.external_ips,
        first.min_port,
        first.max_port,
        workers,
    ));
    let nonce_key = NonceKey::random();
    let shutdown = Arc::new(AtomicBool::new(false));

    let mut backends = Vec::with_capacity(workers);
    let mut note = None;
    for _ in 0..workers {
        let (backend, why) =
            create_backend(settings.backend).map_err(|source| StartError::Backend {
                backend: settings.backend.map_or("auto", BackendKind::name),
                source,
            })?;
        note = note.or(why);
        backends.push(backend);
    }
    let kind = backends.first().map_or(BackendKind::Batch, |b| b.kind());

    let channels: Vec<(
        crossbeam_channel::Sender<CrossPacket>,
        crossbeam_channel::Receiver<CrossPacket>,
    )> = (0..workers)
        .map(|_| crossbeam_channel::bounded(CROSS_QUEUE_LEN))
        .collect();
    let mailboxes: Vec<Mailbox> = channels
        .iter()
        .zip(backends.iter())
        .map(|((tx, _), b)| Mailbox {
            sender: tx.clone(),
            waker: b.waker(),
        })
        .collect();

    let mut threads = Vec::with_capacity(workers);
    for (index, ((mut backend, listeners), (_, inbox))) in backends
        .into_iter()
        .zip(sockets_per_worker)
        .zip(channels)
        .enumerate()
    {
        let config = settings
            .server_configs
            .get(index)
            .cloned()
            .unwrap_or_else(|| first.clone());
        let server = new_server(config, settings.credentials.clone(), nonce_key.clone());
        let parts = WorkerParts {
            index,
            server,
            listeners,
            directory: directory.clone(),
            mailboxes: mailboxes.clone(),
            inbox,
            buffers: settings.buffers,
        };
        let worker = Worker::new(parts, backend.as_mut())
            .map_err(|source| StartError::Worker { index, source })?;
        let cpu = settings.cpu_affinity.get(index).copied();
        let flag = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("ringturn-w{index}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if let Err(e) = crate::io::affinity::pin_current_thread(cpu) {
                        tracing::warn!(worker = index, cpu, error = %e, "cannot pin worker to its core");
                    }
                }
                let result = worker.run(backend, flag);
                if let Err(e) = &result {
                    tracing::error!(worker = index, error = %e, "worker stopped on an I/O error");
                }
                result
            })
            .map_err(|source| StartError::Worker { index, source })?;
        threads.push(handle);
    }
    Ok(RunningServer {
        shutdown,
        threads,
        backend: kind,
        backend_note: note,
        listening,
    })
}

/// Waits until `flag` is set (by a signal handler), polling gently.
pub fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
