//! A configuration reloaded at run time (SIGHUP, issue 12): what a running
//! shard takes from it, and what it keeps. New requests see the new users,
//! secrets, realm, peer ranges, quotas, rates and lifetimes; live
//! allocations keep their channels, permissions and the key they were
//! authenticated with, so a removed user's calls go on while its next
//! Allocate is refused. Relay addresses, ports and sockets are the I/O
//! layer's and do not change here.

use crate::auth::Credentials;

use super::bandwidth::DuplexLimit;
use super::config::ServerConfig;
use super::server::Server;

impl Server {
    /// Takes the reloadable part of `config` and all of `credentials`.
    pub fn reconfigure(
        &mut self,
        config: ServerConfig,
        credentials: Credentials,
        now: std::time::Instant,
    ) {
        let c = &mut self.config;
        c.no_auth = config.no_auth;
        c.software = config.software;
        c.fingerprint = config.fingerprint;
        c.default_lifetime = config.default_lifetime;
        c.max_lifetime = config.max_lifetime;
        c.permission_lifetime = config.permission_lifetime;
        c.channel_lifetime = config.channel_lifetime;
        c.nonce_lifetime = config.nonce_lifetime;
        c.user_quota = config.user_quota;
        c.total_quota = config.total_quota;
        c.peer_policy = config.peer_policy;
        c.channel_range = config.channel_range;
        c.no_stun = config.no_stun;
        c.stun_only = config.stun_only;
        c.secure_stun = config.secure_stun;
        c.default_family = config.default_family;
        c.tcp_relay = config.tcp_relay;
        c.redirect = config.redirect;
        let rates_changed = c.max_bps != config.max_bps || c.bps_capacity != config.bps_capacity;
        c.max_bps = config.max_bps;
        c.bps_capacity = config.bps_capacity;
        self.credentials = credentials;
        if rates_changed {
            // Live allocations take the new rate at once (fresh buckets), and
            // channels go on or off the kernel fast path with it.
            let max_bps = self.config.max_bps;
            let ids = self.allocation_ids();
            for id in &ids {
                if let Some(a) = self.allocation_mut(*id) {
                    a.limit = (max_bps > 0).then(|| Box::new(DuplexLimit::new(max_bps, now)));
                }
            }
            self.reset_capacity();
            for id in ids {
                self.sync_fast_path(id, now);
            }
        }
    }
}
