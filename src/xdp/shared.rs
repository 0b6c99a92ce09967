//! The loaded fast path as the workers and `/metrics` share it. Workers write
//! its maps when their core says a channel may take it or must leave it —
//! control-path events (a ChannelBind, an expiry), so a mutex costs the data
//! path nothing; `/metrics` reads its counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::loaded::{Attachment, FastPath};
use super::{ChannelRoute, XdpCounters, XdpError};
use crate::io::clocks::monotonic_ns_at;

pub struct SharedFastPath {
    inner: Mutex<FastPath>,
    attachments: Vec<Attachment>,
    map_errors: AtomicU64,
}

impl std::fmt::Debug for SharedFastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFastPath")
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

impl SharedFastPath {
    pub fn new(fast: FastPath) -> Arc<Self> {
        let attachments = fast.attachments().to_vec();
        Arc::new(Self {
            inner: Mutex::new(fast),
            attachments,
            map_errors: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, FastPath> {
        // A worker that panicked mid-write leaves a map entry at worst; the
        // maps stay consistent for the kernel, so carry on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `route` on the fast path until `until` (a failed write is
    /// counted and logged: the socket path keeps relaying the channel).
    pub fn offload(&self, route: &ChannelRoute, until: Instant) {
        let result = self.lock().offload(route, monotonic_ns_at(until));
        self.note(result, route, "offload");
    }

    /// Takes `route` off the fast path; what the kernel relayed on it goes to
    /// the log (debug) for session accounting.
    pub fn withdraw(&self, route: &ChannelRoute) {
        let result = self.lock().withdraw(route).map(|t| {
            tracing::debug!(
                client = %route.client,
                peer = %route.peer,
                channel = route.channel,
                packets_to_peer = t.packets_to_peers,
                bytes_to_peer = t.bytes_to_peers,
                packets_to_client = t.packets_to_clients,
                bytes_to_client = t.bytes_to_clients,
                "channel left the XDP fast path"
            );
        });
        self.note(result, route, "withdraw");
    }

    /// What the kernel relayed on `route` since it was offloaded.
    pub fn channel_counters(&self, route: &ChannelRoute) -> Option<XdpCounters> {
        self.lock().channel_counters(route).ok()
    }

    fn note(&self, result: Result<(), XdpError>, route: &ChannelRoute, what: &str) {
        if let Err(e) = result {
            self.map_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client = %route.client, peer = %route.peer, channel = route.channel, "XDP {what}: {e}");
        }
    }

    /// What the program relayed (`None` if the counters cannot be read).
    pub fn counters(&self) -> Option<XdpCounters> {
        self.lock().counters().ok()
    }

    /// Entries in the client → peer and peer → client maps.
    pub fn offloaded(&self) -> (usize, usize) {
        self.lock().offloaded()
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Map writes that failed.
    pub fn map_errors(&self) -> u64 {
        self.map_errors.load(Ordering::Relaxed)
    }
}
