//! Allocate (RFC 8656 §7.2, RFC 6062 §5.1): the request's checks in the
//! RFC's order, a redirect to another node (RFC 8489 §10), quotas, the relay
//! port (per-allocation or shared sockets, EVEN-PORT and RESERVATION-TOKEN),
//! and the success answer once the I/O layer has opened the relay socket.

use std::net::SocketAddr;
use std::time::Instant;

use super::allocation::{Allocation, AllocationId, AllocationState, ClientTuple};
use super::config::DefaultFamily;
use super::echo::{ReplyIntegrity, RequestEcho};
use super::requests::{Answer, Authenticated, Refusal};
use super::server::{CachedResponse, Command, Server};
use super::session_log::EndReason;
use super::timers::TimerKey;
use crate::stun::{
    AdditionalAddressFamily, AddressErrorCode, AddressFamily, AttributeType, Class, ErrorCode,
    EvenPort, Lifetime, Message, Method, RequestedAddressFamily, RequestedTransport,
    ReservationToken, TransportProtocol, XorMappedAddress, XorRelayedAddress,
};

/// What an Allocate decided, for `insert_pending_allocation`.
struct PendingPlan {
    relay: SocketAddr,
    advertised: SocketAddr,
    lifetime: std::time::Duration,
    reservation_token: Option<[u8; 8]>,
    address_error: Option<(AddressFamily, ErrorCode)>,
    secondary: Option<super::allocation::SecondaryRelay>,
    relay_tcp: bool,
}

impl Server {
    /// RFC 8656 §7.2, §7.3: the lifetime granted for a requested one (absent:
    /// the default): at least the default, at most `max-allocate-lifetime`.
    pub(super) fn granted_lifetime(
        &self,
        requested: Option<std::time::Duration>,
    ) -> std::time::Duration {
        requested
            .unwrap_or(self.config.default_lifetime)
            .max(self.config.default_lifetime)
            .min(self.config.max_lifetime)
    }

    /// RFC 8656 §7.2. The success answer is sent when the relay socket is open
    /// (`activate_allocation`), so success here is `Answer::Deferred`.
    pub(super) fn allocate(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        echo: &RequestEcho,
        auth: Authenticated,
    ) -> Result<Answer, Refusal> {
        // §7.2 step 2: the 5-tuple already has an allocation.
        if let Some(alloc) = self.allocation_for_client(&from) {
            if alloc.creating_transaction == msg.transaction_id()
                && alloc.state == AllocationState::Active
            {
                // A retransmission the cache no longer holds: answer it again.
                let id = alloc.id;
                if let Some(bytes) = self.allocate_success(id, echo, auth.integrity.as_ref()) {
                    self.queue(from, bytes);
                }
                return Ok(Answer::Deferred);
            }
            return Err((ErrorCode::ALLOCATION_MISMATCH, "Allocation Mismatch"));
        }

        // RFC 8489 §10: another server takes it — only for a request that
        // carried valid MESSAGE-INTEGRITY, and the 300 is signed like it
        // (without credentials, `no-auth`, nothing is redirected). Never one
        // with a RESERVATION-TOKEN (RFC 8656 §7.2): its port is reserved here.
        if auth.integrity.is_some()
            && self.config.redirect.is_configured()
            && !msg.has(AttributeType::RESERVATION_TOKEN)
        {
            let held = self.allocation_count();
            if let Some(alternate) = self
                .config
                .redirect
                .pick(&mut self.redirect_turn, &from, held)
            {
                return Ok(Answer::TryAlternate(alternate));
            }
        }

        // §7.2 step 3: REQUESTED-TRANSPORT: UDP, or TCP (RFC 6062 §5.1) from
        // a client that came over TCP or TLS.
        let relay_tcp = match msg.get::<RequestedTransport>() {
            None | Some(Err(_)) => {
                return Err((
                    ErrorCode::BAD_REQUEST,
                    "REQUESTED-TRANSPORT missing or malformed",
                ))
            }
            Some(Ok(RequestedTransport(TransportProtocol::UDP))) => false,
            Some(Ok(RequestedTransport(TransportProtocol::TCP)))
                if from.is_stream() && self.config.tcp_relay =>
            {
                true
            }
            Some(Ok(RequestedTransport(TransportProtocol::TCP))) if self.config.tcp_relay => {
                return Err((
                    ErrorCode::BAD_REQUEST,
                    "TCP relaying needs a TCP or TLS connection to the server",
                ))
            }
            Some(Ok(_)) => {
                return Err((
                    ErrorCode::UNSUPPORTED_TRANSPORT_PROTOCOL,
                    "Unsupported Transport Protocol",
                ))
            }
        };
        // RFC 6062 §5.1: no EVEN-PORT, RESERVATION-TOKEN or dual allocation for TCP.
        if relay_tcp
            && (msg.has(AttributeType::EVEN_PORT)
                || msg.has(AttributeType::RESERVATION_TOKEN)
                || msg.has(AttributeType::ADDITIONAL_ADDRESS_FAMILY))
        {
            return Err((
                ErrorCode::BAD_REQUEST,
                "EVEN-PORT, RESERVATION-TOKEN and ADDITIONAL-ADDRESS-FAMILY are for UDP",
            ));
        }
        // §7.2 step 4: DONT-FRAGMENT is accepted (relayed datagrams are not fragmented by us).
        let token = msg.get::<ReservationToken>();
        let even = msg.get::<EvenPort>();
        let requested_family = msg.get::<RequestedAddressFamily>();
        let additional = msg.get::<AdditionalAddressFamily>();
        if matches!(token, Some(Err(_))) || matches!(even, Some(Err(_))) {
            return Err((
                ErrorCode::BAD_REQUEST,
                "Malformed RESERVATION-TOKEN or EVEN-PORT",
            ));
        }
        // §7.2 step 5/6: RESERVATION-TOKEN excludes EVEN-PORT and an address family.
        if token.is_some() && (even.is_some() || requested_family.is_some() || additional.is_some())
        {
            return Err((
                ErrorCode::BAD_REQUEST,
                "RESERVATION-TOKEN with EVEN-PORT or an address family",
            ));
        }
        // Shared relay socket mode: every allocation of the shard gets the one
        // shared address, so no port can be reserved for a later Allocate:
        // RESERVATION-TOKEN and EVEN-PORT with the R bit are refused. RFC 8656
        // §7.2: "If the server cannot satisfy the request [EVEN-PORT], then the
        // server rejects the request with a 508 (Insufficient Capacity) error",
        // and a RESERVATION-TOKEN it cannot honour is rejected with 508 too —
        // so 508, not 400: the request is well formed, this server just has no
        // such address to give (the client may retry without). EVEN-PORT
        // without R asks only for an even port: the shared socket takes an even
        // one when the range has any, so that is satisfied, and refused with
        // 508 only if the shared port is odd (coturn's turnutils_uclient sends
        // it on every other Allocate).
        if let Some(shared) = &self.shared {
            let even_ok = |port: u16| port.is_multiple_of(2);
            let refuse = match (token, even) {
                (Some(_), _) => true,
                (None, Some(Ok(EvenPort { reserve_next: true }))) => true,
                (
                    None,
                    Some(Ok(EvenPort {
                        reserve_next: false,
                    })),
                ) => !shared
                    .relays
                    .iter()
                    .filter(|r| r.state != super::shared::SharedState::Closed)
                    .all(|r| even_ok(r.addr.port())),
                _ => false,
            };
            if refuse {
                return Err((
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    "Insufficient Capacity (relay sockets are shared: no port reservation, RESERVATION-TOKEN or odd/even choice)",
                ));
            }
        }
        let family = match (requested_family, additional) {
            (Some(_), Some(_)) => {
                return Err((
                    ErrorCode::BAD_REQUEST,
                    "REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together",
                ))
            }
            (Some(Err(_)), _) => {
                return Err((
                    ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                    "Address Family not Supported",
                ))
            }
            (Some(Ok(RequestedAddressFamily(f))), None) => f,
            (None, Some(Ok(AdditionalAddressFamily(AddressFamily::V6)))) => AddressFamily::V4,
            (None, Some(_)) => {
                return Err((
                    ErrorCode::BAD_REQUEST,
                    "ADDITIONAL-ADDRESS-FAMILY must be IPv6",
                ))
            }
            // RFC 8656 §7.2: IPv4 by default; coturn's keep-address-family
            // follows the client's own family instead.
            (None, None) => match self.config.default_family {
                DefaultFamily::Ipv4 => AddressFamily::V4,
                DefaultFamily::Ipv6 => AddressFamily::V6,
                DefaultFamily::Keep => AddressFamily::of(&from.client),
            },
        };
        // RFC 8656 §7.2: a dual allocation that cannot get its IPv6 half still
        // succeeds for IPv4, with ADDRESS-ERROR-CODE for IPv6.
        let dual = additional.is_some();
        // Several relay addresses of one family: use the first with a free port.
        let of_family =
            |ip: &std::net::IpAddr| AddressFamily::of(&SocketAddr::new(*ip, 0)) == family;
        let pool_index = self
            .pools
            .iter()
            .position(|(ip, pool)| of_family(ip) && pool.available() > 0)
            .or_else(|| self.pools.iter().position(|(ip, _)| of_family(ip)));
        let Some(pool_index) = pool_index else {
            return Err((
                ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                "No relay address of that family",
            ));
        };

        // §7.2 step 7: quotas.
        if let Some(owner) = &auth.owner {
            let used = self.per_user.get(&owner.username).copied().unwrap_or(0);
            if self.config.user_quota > 0 && used >= self.config.user_quota {
                return Err((
                    ErrorCode::ALLOCATION_QUOTA_REACHED,
                    "Allocation Quota Reached (user)",
                ));
            }
        }
        if self.config.total_quota > 0
            && self.allocation_count() >= self.config.total_quota as usize
        {
            return Err((
                ErrorCode::ALLOCATION_QUOTA_REACHED,
                "Allocation Quota Reached (server)",
            ));
        }

        let requested = msg.get::<Lifetime>().and_then(Result::ok);
        let lifetime = self.granted_lifetime(
            requested.map(|Lifetime(secs)| std::time::Duration::from_secs(u64::from(secs))),
        );

        // Shared relay sockets are UDP: a TCP allocation (RFC 6062) gets its own
        // listener from the port range in either mode. A dual allocation's IPv6
        // half needs per-allocation mode.
        if self.shared.is_some() && !relay_tcp {
            let address_error =
                dual.then_some((AddressFamily::V6, ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED));
            return self.allocate_shared(
                now,
                from,
                msg,
                echo,
                auth,
                family,
                address_error,
                lifetime,
            );
        }

        // Choose the relay port. RFC 8656 §7.2: a RESERVATION-TOKEN names the
        // port an earlier EVEN-PORT R=1 Allocate held back. Tokens carry the
        // port and a MAC under the shared key, so whichever shard receives the
        // second Allocate (it comes from another 5-tuple) can redeem it.
        let Some(mut relay_ip) = self.pools.get(pool_index).map(|(ip, _)| *ip) else {
            return Err((ErrorCode::SERVER_ERROR, "Server Error"));
        };
        let mut reserve_next = None;
        let port = if let Some(Ok(ReservationToken(t))) = token {
            let redeemed = self.redeem_reservation(&t);
            if let Some(relay) = redeemed {
                relay_ip = relay.ip();
            }
            redeemed.map(|r| r.port())
        } else {
            let Some((_, pool)) = self.pools.get_mut(pool_index) else {
                return Err((ErrorCode::SERVER_ERROR, "Server Error"));
            };
            match even {
                Some(Ok(EvenPort { reserve_next: r })) => {
                    let p = pool.take_even(&mut self.rng, r);
                    if let (Some(p), true) = (p, r) {
                        reserve_next = Some(p + 1);
                    }
                    p
                }
                _ => pool.take_any(&mut self.rng),
            }
        };
        let Some(port) = port else {
            let reason = if token.is_some() {
                "Insufficient Capacity (unknown or expired RESERVATION-TOKEN)"
            } else {
                "Insufficient Capacity (no relay port free)"
            };
            return Err((ErrorCode::INSUFFICIENT_CAPACITY, reason));
        };
        let reservation = reserve_next.map(|p| {
            let relay = SocketAddr::new(relay_ip, p);
            let expires = now + std::time::Duration::from_secs(30);
            self.reservations.insert(relay, expires);
            self.schedule(expires, TimerKey::Reservation(relay));
            self.nonce_key.reservation_token(relay)
        });

        let relay = SocketAddr::new(relay_ip, port);
        let advertised = self.advertised(relay);
        // RFC 8656 §7.2 / RFC 6156: the IPv6 half of a dual allocation, from the
        // first IPv6 relay address with a free port.
        let mut address_error = None;
        let secondary = if dual {
            let v6 = self
                .pools
                .iter_mut()
                .find(|(ip, pool)| ip.is_ipv6() && pool.available() > 0)
                .and_then(|(ip, pool)| Some(SocketAddr::new(*ip, pool.take_any(&mut self.rng)?)));
            match v6 {
                Some(relay6) => Some(super::allocation::SecondaryRelay {
                    relay: relay6,
                    advertised: self.advertised(relay6),
                    open: false,
                }),
                None => {
                    let code = if self.pools.iter().any(|(ip, _)| ip.is_ipv6()) {
                        ErrorCode::INSUFFICIENT_CAPACITY
                    } else {
                        ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED
                    };
                    address_error = Some((AddressFamily::V6, code));
                    None
                }
            }
        } else {
            None
        };
        self.insert_pending_allocation(
            now,
            from,
            msg,
            echo,
            auth,
            PendingPlan {
                relay,
                advertised,
                lifetime,
                reservation_token: reservation,
                address_error,
                secondary,
                relay_tcp,
            },
        );
        self.commands.push_back(if relay_tcp {
            Command::OpenTcpRelay { relay }
        } else {
            Command::OpenRelay { relay }
        });
        if let Some(s) = secondary {
            self.commands
                .push_back(Command::OpenRelay { relay: s.relay });
        }
        Ok(Answer::Deferred)
    }

    /// Shared relay socket mode's end of Allocate (RFC 8656 §7.2): the
    /// relayed address is the shard's shared socket for the family; no port
    /// is taken. Answered at once when the socket is open, else when it opens.
    #[allow(clippy::too_many_arguments)]
    fn allocate_shared(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        echo: &RequestEcho,
        auth: Authenticated,
        family: AddressFamily,
        address_error: Option<(AddressFamily, ErrorCode)>,
        lifetime: std::time::Duration,
    ) -> Result<Answer, Refusal> {
        use super::shared::SharedState;
        let of_family =
            |ip: &std::net::IpAddr| AddressFamily::of(&SocketAddr::new(*ip, 0)) == family;
        let relays = self
            .shared
            .as_ref()
            .map(|s| s.relays.as_slice())
            .unwrap_or(&[]);
        let index = relays
            .iter()
            .position(|r| of_family(&r.ip) && r.state == SharedState::Open)
            .or_else(|| relays.iter().position(|r| of_family(&r.ip)));
        let Some(index) = index else {
            return Err((
                ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                "No relay address of that family",
            ));
        };
        let state = relays.get(index).map(|r| r.state);
        // Closed: never opened, or every port tried failed: try again now.
        if state == Some(SharedState::Closed) && !self.open_shared(index, 1) {
            return Err((
                ErrorCode::INSUFFICIENT_CAPACITY,
                "Insufficient Capacity (no relay port free)",
            ));
        }
        let Some(relay) = self
            .shared
            .as_ref()
            .and_then(|s| s.relays.get(index))
            .map(|r| r.addr)
        else {
            return Err((ErrorCode::SERVER_ERROR, "Server Error"));
        };
        let open = state == Some(SharedState::Open);
        let advertised = self.advertised(relay);
        let id = self.insert_pending_allocation(
            now,
            from,
            msg,
            echo,
            auth,
            PendingPlan {
                relay,
                advertised,
                lifetime,
                reservation_token: None,
                address_error,
                secondary: None,
                relay_tcp: false,
            },
        );
        if open {
            self.activate_allocation(now, id);
        }
        Ok(Answer::Deferred)
    }

    /// The end both Allocate paths share: the user's quota counts it, the
    /// allocation goes in as Opening, and the request waits for its answer (a
    /// retransmission meanwhile is ignored, RFC 8489 §6.3.4).
    fn insert_pending_allocation(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        echo: &RequestEcho,
        auth: Authenticated,
        plan: PendingPlan,
    ) -> AllocationId {
        if let Some(owner) = &auth.owner {
            *self.per_user.entry(owner.username.clone()).or_insert(0) += 1;
        }
        let tid = msg.transaction_id();
        let max_bps = self.config.max_bps;
        let id = self.insert_allocation(|id| Allocation {
            id,
            client: from,
            relay: plan.relay,
            advertised: plan.advertised,
            owner: auth.owner,
            expires: now + plan.lifetime,
            state: AllocationState::Opening { attempts: 1 },
            creating_transaction: tid,
            lifetime: plan.lifetime,
            timer_at: now + plan.lifetime,
            reservation_token: plan.reservation_token,
            address_error: plan.address_error,
            secondary: plan.secondary,
            relay_tcp: plan.relay_tcp,
            primary_open: false,
            permissions: smallvec::SmallVec::new(),
            channels: smallvec::SmallVec::new(),
            claims: smallvec::SmallVec::new(),
            session: 0,
            created: now,
            traffic: Default::default(),
            limit: (max_bps > 0)
                .then(|| Box::new(super::bandwidth::DuplexLimit::new(max_bps, now))),
            fast_path_hold: None,
        });
        let session = self.next_session();
        if let Some(a) = self.allocation_mut(id) {
            a.session = session;
        }
        self.pending.insert(
            id,
            super::server::PendingAllocate {
                echo: *echo,
                integrity: auth.integrity,
            },
        );
        self.cache_response(now, from.client, tid, CachedResponse::InProgress);
        id
    }

    /// Turns a RESERVATION-TOKEN back into the relay address it holds.
    fn redeem_reservation(&mut self, token: &[u8; 8]) -> Option<SocketAddr> {
        let ips: Vec<std::net::IpAddr> = self.pools.iter().map(|(ip, _)| *ip).collect();
        let relay = crate::auth::NonceKey::reservation_port(token).and_then(|port| {
            ips.into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .find(|r| {
                    bool::from(subtle::ConstantTimeEq::ct_eq(
                        &self.nonce_key.reservation_token(*r)[..],
                        &token[..],
                    ))
                })
        })?;
        if self.reservations.remove(&relay).is_some() {
            self.timers.cancel(&TimerKey::Reservation(relay));
            return Some(relay); // ours, already out of the pool
        }
        let pool = self
            .pools
            .iter_mut()
            .find(|(ip, _)| *ip == relay.ip())
            .map(|(_, p)| p)?;
        if pool.owns(relay.port()) && !pool.take_specific(relay.port()) {
            return None; // ours, but expired and handed out since
        }
        // Reserved by another shard: use it; that shard keeps it out of its pool until the token expires.
        Some(relay)
    }

    /// The success response to the Allocate that created `id`.
    fn allocate_success(
        &self,
        id: AllocationId,
        echo: &RequestEcho,
        i: Option<&ReplyIntegrity>,
    ) -> Option<Vec<u8>> {
        let alloc = self.allocation(id)?;
        let (advertised, client, lifetime, token, pending_error) = (
            alloc.advertised,
            alloc.client.client,
            alloc.lifetime,
            alloc.reservation_token,
            alloc.address_error,
        );
        let second = alloc.secondary.map(|s| s.advertised);
        self.encode_reply(echo, Class::SuccessResponse, i, |w| {
            w.add(&XorRelayedAddress(advertised))?;
            // RFC 8656 §7.2: a dual allocation answers with both relayed addresses.
            if let Some(second) = second {
                w.add(&XorRelayedAddress(second))?;
            }
            w.add(&Lifetime(
                u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            ))?;
            if let Some(t) = token {
                w.add(&ReservationToken(t))?;
            }
            if let Some((family, code)) = pending_error {
                let reason = if code == ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED {
                    "IPv6 relaying is not configured"
                } else {
                    "No IPv6 relay port free"
                };
                w.add(&AddressErrorCode {
                    family,
                    code,
                    reason,
                })?;
            }
            w.add(&XorMappedAddress(client))
        })
    }

    /// The relay socket is open: the allocation goes live and is answered.
    pub(crate) fn activate_allocation(&mut self, now: Instant, id: AllocationId) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let Some(alloc) = self.allocation_mut(id) else {
            return;
        };
        if !matches!(alloc.state, AllocationState::Opening { .. }) {
            return;
        }
        alloc.state = AllocationState::Active;
        let (expires, client, tid) = (alloc.expires, alloc.client, alloc.creating_transaction);
        self.schedule(expires, TimerKey::Allocation(id));
        self.stats.allocations_created += 1;
        if let Some(bytes) = self.allocate_success(id, &pending.echo, pending.integrity.as_ref()) {
            self.count_response(Method::ALLOCATE, None);
            self.cache_response(
                now,
                client.client,
                tid,
                CachedResponse::Done(Method::ALLOCATE, &bytes),
            );
            self.queue(client, bytes);
        }
        if let Some(a) = self.allocation(id) {
            super::session_log::created(a, &self.credentials.realm);
        }
    }

    /// The I/O layer could not open the relay socket: try another port, and
    /// after a few attempts answer 508.
    pub(crate) fn retry_relay_port(&mut self, now: Instant, id: AllocationId) {
        let Some(alloc) = self.allocation(id) else {
            return;
        };
        let AllocationState::Opening { attempts } = alloc.state else {
            return;
        };
        let old = alloc.relay;
        let next = if attempts < self.config.relay_open_attempts {
            self.pools
                .iter_mut()
                .find(|(ip, _)| *ip == old.ip())
                .and_then(|(_, pool)| pool.take_any(&mut self.rng))
        } else {
            None
        };
        // The failed port goes back at the end; someone else holds it now.
        self.release_port(old);
        match next {
            Some(port) => {
                let relay = SocketAddr::new(old.ip(), port);
                let advertised = self.advertised(relay);
                self.rebind_relay(id, old, relay, advertised, attempts + 1);
                self.commands.push_back(Command::OpenRelay { relay });
            }
            None => self.fail_pending_allocation(now, id),
        }
    }

    /// An opening allocation whose relay socket cannot be had: it goes, and
    /// its Allocate gets 508 (kept for retransmissions).
    pub(crate) fn fail_pending_allocation(&mut self, now: Instant, id: AllocationId) {
        let pending = self.pending.remove(&id);
        if let Some(alloc) = self.remove_allocation(now, id, EndReason::RelayFailed) {
            if let Some(p) = pending {
                let r = self.reply_error(
                    alloc.client,
                    &p.echo,
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    "Insufficient Capacity (relay socket)",
                    p.integrity.as_ref(),
                );
                if let Some(bytes) = r {
                    self.cache_response(
                        now,
                        alloc.client.client,
                        alloc.creating_transaction,
                        CachedResponse::Done(Method::ALLOCATE, &bytes),
                    );
                }
            }
        }
    }
}
