//! The signaling module: rooms of two for 1-to-1 calls, the tutorial's
//! protocol over WebSocket (`/ws`) and Socket.IO (`/socket.io/`), the call
//! page (`/`) and the page's `iceServers` with time-limited TURN credentials
//! (`/api/ice-servers`).
//!
//! It runs on a small current-thread tokio runtime on its own thread
//! (`ringturn-signal`), never on the relay workers, and shares nothing with
//! them: the page reaches the relay the way any TURN client does.
//!
//! * [`rooms`]: the sans-IO state machine both transports drive.
//! * [`protocol`]: the WebSocket JSON format.
//! * [`ice`]: the `iceServers` answer.
//! * `hub`, `ws`, `socketio`: the driver and the two transports.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;
use std::{io, pin::Pin};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use socketioxide::SocketIo;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

mod cluster;
pub mod events;
mod hub;
pub mod ice;
pub mod protocol;
pub mod rooms;
mod socketio;
mod ws;

pub use events::{Limits, ProtocolError};
pub use ice::{IceServer, IceServers, IceSettings};

/// Everything the signaling server runs with.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// TCP address of the HTTP server (port 0: any free one).
    pub listen: SocketAddr,
    pub limits: Limits,
    pub ice: IceSettings,
    /// `signaling-redis`: rooms shared with the other nodes on this Redis.
    pub redis: Option<String>,
}

impl SignalingConfig {
    /// The signaling part of a [`Config`], `None` when signaling is off
    /// (no `signaling-listening-port`). `turn_listening` are the TURN
    /// listening addresses as bound.
    pub fn from_config(config: &Config, turn_listening: &[SocketAddr]) -> Option<Self> {
        let port = config.signaling_listening_port?;
        Some(Self {
            listen: SocketAddr::new(config.signaling_listening_ip, port),
            limits: Limits {
                room_size: config.signaling_room_size,
                max_connections: config.signaling_max_connections,
                max_rooms: config.signaling_max_rooms,
                max_rooms_per_connection: config.signaling_max_rooms_per_connection,
                max_message_bytes: config.signaling_max_message_bytes,
                ..Limits::default()
            },
            redis: config.signaling_redis.clone(),
            ice: IceSettings {
                listening: turn_listening.to_vec(),
                external_ips: config.external_ips.iter().map(|x| x.public).collect(),
                rest_api: config.credentials().rest_api,
                no_auth: config.no_auth,
                stun: !config.no_stun,
                turn: !config.stun_only,
                ttl: config.signaling_credential_ttl,
                // Set from the bound stream listeners (`with_streams`).
                tcp_listening: Vec::new(),
                tls_listening: Vec::new(),
                turn_urls: config.signaling_turn_urls.clone(),
            },
        })
    }
}

impl SignalingConfig {
    /// Adds `turn:…?transport=tcp` and `turns:` URLs for the TURN server's
    /// bound TCP and TLS listeners.
    pub fn with_streams(mut self, tcp: &[SocketAddr], tls: &[SocketAddr]) -> Self {
        self.ice.tcp_listening = tcp.to_vec();
        self.ice.tls_listening = tls.to_vec();
        self
    }
}

#[derive(Debug, Error)]
pub enum SignalingError {
    #[error("cannot listen on {addr} (signaling): {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot start the signaling runtime: {0}")]
    Runtime(io::Error),
    #[error("signaling-redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Shared by every request handler.
struct App {
    hub: Arc<hub::Hub>,
    ice: IceSettings,
}

/// The running signaling server; stops (within a few hundred milliseconds)
/// on [`SignalingServer::stop`] or when dropped.
pub struct SignalingServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    hub: Arc<hub::Hub>,
}

impl SignalingServer {
    /// The bound address (the port resolved when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// (connections, rooms) now.
    pub fn counts(&self) -> (usize, usize) {
        self.hub.counts()
    }

    /// Whether the server thread has ended (it only does when stopped, or
    /// on a fatal error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Closes every connection (WebSocket 1001, Socket.IO disconnect) and
    /// waits for the thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the signaling thread panicked");
            }
        }
    }
}

impl Drop for SignalingServer {
    fn drop(&mut self) {
        self.shut();
    }
}

/// Binds `config.listen` and starts the server on its own thread.
pub fn spawn(config: SignalingConfig) -> Result<SignalingServer, SignalingError> {
    let addr = config.listen;
    let listen_err = |source| SignalingError::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    let local_addr = listener.local_addr().map_err(listen_err)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("ringturn-signal")
        .build()
        .map_err(SignalingError::Runtime)?;
    let (hub, cluster) = match &config.redis {
        None => (Arc::new(hub::Hub::new(config.limits)), None),
        Some(url) => {
            let node = cluster::Cluster::new(url, config.limits.room_size)?;
            let (hub, ops) = hub::Hub::new_shared(config.limits);
            (Arc::new(hub), Some((node, ops)))
        }
    };
    let app = Arc::new(App {
        hub: hub.clone(),
        ice: config.ice,
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("ringturn-signal".to_owned())
        .spawn(move || {
            if let Some((node, ops)) = cluster {
                runtime.spawn(node.run(app.hub.clone(), ops));
            }
            runtime.block_on(serve(listener, app, stop_rx));
            // Whatever connection tasks are left are dropped here.
            runtime.shutdown_timeout(Duration::from_millis(200));
        })
        .map_err(SignalingError::Runtime)?;
    Ok(SignalingServer {
        local_addr,
        stop: Some(stop_tx),
        thread: Some(thread),
        hub,
    })
}

async fn serve(listener: std::net::TcpListener, app: Arc<App>, stop: oneshot::Receiver<()>) {
    let limits = *app.hub.limits();
    let hard = ws::hard_limit(limits.max_message_bytes);
    let (layer, io) = SocketIo::builder()
        .max_payload(u64::try_from(hard).unwrap_or(u64::MAX))
        .ws_max_message_size(hard)
        .ws_max_frame_size(hard)
        .build_layer();
    socketio::attach(&io, app.hub.clone());
    let router = Router::new()
        .route("/", get(page))
        .route("/call.js", get(script))
        .route("/call.css", get(style))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/ice-servers", get(ice_servers))
        .route("/ws", get(ws::upgrade))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(layer)
        .with_state(app.clone());
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "signaling: cannot use the listening socket");
            return;
        }
    };
    // Each signaling connection may hold two HTTP connections for a moment
    // (Socket.IO long-polling, then its WebSocket upgrade), plus page loads.
    let tcp_limit = limits.max_connections.saturating_mul(2).saturating_add(64);
    let listener = LimitedListener {
        inner: listener,
        permits: Arc::new(Semaphore::new(tcp_limit.min(Semaphore::MAX_PERMITS))),
    };
    tokio::select! {
        result = axum::serve(listener, router).into_future() => {
            if let Err(e) = result {
                tracing::error!(error = %e, "signaling server stopped");
            }
        }
        _ = stop => {}
    }
    for socket in app.hub.shutdown() {
        let _ = socket.disconnect();
    }
    // Lets the writers put the close frames on the wire.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const CALL_JS: &str = include_str!("assets/call.js");
const CALL_CSS: &str = include_str!("assets/call.css");

/// The page's scripts, styles and media come from here only; it connects
/// back to this server only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; media-src 'self' blob: mediastream:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CALL_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", CALL_CSS)
}

async fn ice_servers(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = app.ice.respond(host.as_deref(), now, &random_token(8));
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` random characters from [A-Za-z0-9].
fn random_token(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 32];
    while out.len() < len {
        if getrandom::getrandom(&mut buf).is_err() {
            // No randomness (never seen on Linux): unique, not secret, ids.
            use std::sync::atomic::{AtomicU64, Ordering};
            static FALLBACK: AtomicU64 = AtomicU64::new(0);
            return format!("x{}", FALLBACK.fetch_add(1, Ordering::Relaxed));
        }
        for b in buf {
            // 248 = 4 × 62: larger bytes would bias the choice.
            if b < 248 && out.len() < len {
                if let Some(c) = ALPHABET.get(usize::from(b) % ALPHABET.len()) {
                    out.push(char::from(*c));
                }
            }
        }
    }
    out
}

/// A WebSocket connection's public id (like a Socket.IO socket id).
fn random_id() -> String {
    random_token(20)
}

/// Accepts while fewer than the limit of TCP connections are open; past it,
/// new connections are closed at once (no hang, no memory).
struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match self.permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        return (
                            LimitedStream {
                                stream,
                                _permit: permit,
                            },
                            addr,
                        );
                    }
                    Err(_) => {
                        tracing::debug!(%addr, "signaling: TCP connection limit reached; closing");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::debug!(error = %e, "signaling: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_alphanumeric_and_distinct() {
        let a = random_token(20);
        let b = random_token(20);
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn embedded_defaults_serve_signaling_on_loopback_8080() {
        let c = Config::embedded().unwrap();
        let s = SignalingConfig::from_config(&c, &c.listening).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(
            s.ice.rest_api.is_some(),
            "the embedded secret mints credentials"
        );
        assert_eq!(s.limits.room_size, 2);
        assert_eq!(s.limits.max_message_bytes, 64 * 1024);
        let r = s.ice.respond(None, 0, "t");
        assert_eq!(
            r.ice_servers[1].urls,
            vec!["turn:127.0.0.1:3478?transport=udp"]
        );
    }

    #[test]
    fn a_config_file_without_the_port_has_no_signaling() {
        let c = Config::parse("t.conf", "relay-ip=127.0.0.1\nrealm=r\nuser=a:b\n", &[]).unwrap();
        assert!(SignalingConfig::from_config(&c, &c.listening).is_none());
    }
}
