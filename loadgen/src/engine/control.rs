//! The worker's control transactions: Allocate (with its 401 challenge),
//! CreatePermission, ChannelBind, their refreshes and Refresh(0); the
//! allocation storm's cycles, retransmissions and timeouts, and what a lost
//! stream connection means for its client.

use std::net::SocketAddr;

use ringturn::auth::keys::md5_key;
use ringturn::stun::{
    ChannelNumberAttr, Class, EncodeAttribute, ErrorCodeAttr, Lifetime, Message, MessageType,
    MessageWriter, Method, Nonce, Realm, RequestedTransport, TransactionId, TransportProtocol,
    Username, XorPeerAddress, XorRelayedAddress,
};

use super::conn::Conn;
use super::{
    State, Step, Tx, Worker, CHANNEL, MAX_TRIES, PHASE_MEASURE, PHASE_SETUP, PHASE_WARMUP,
    REFRESH_EVERY_NS,
};
use crate::config::Mode;

impl Worker {
    fn next_tid(&mut self, ci: usize) -> TransactionId {
        let base = self.flow_base() as usize + ci;
        let Some(c) = self.clients.get_mut(ci) else {
            return TransactionId([0; 12]);
        };
        c.tid_counter = c.tid_counter.wrapping_add(1);
        let mut t = [0u8; 12];
        t[0] = 0x11; // bit 0x80 of byte 3 stays clear: not a binding stamp
        t[4..8].copy_from_slice(&(base as u32).to_be_bytes());
        t[8..12].copy_from_slice(&c.tid_counter.to_be_bytes());
        t[1] = (self.unix_now & 0xff) as u8;
        TransactionId(t)
    }

    fn build(
        &self,
        ci: usize,
        method: Method,
        tid: TransactionId,
        attrs: &[&dyn EncodeAttribute],
        sign: bool,
    ) -> Option<Vec<u8>> {
        let c = self.clients.get(ci)?;
        let mut buf = vec![0u8; 1024];
        let mut w =
            MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid).ok()?;
        for a in attrs {
            w.add(*a).ok()?;
        }
        if sign {
            if let (Some(realm), Some(nonce), Some(key)) = (&c.realm, &c.nonce, &c.key) {
                w.add(&Username(&c.user)).ok()?;
                w.add(&Realm(realm)).ok()?;
                w.add(&Nonce(nonce)).ok()?;
                w.add_message_integrity(key).ok()?;
            }
        }
        let n = w.finish();
        buf.truncate(n);
        Some(buf)
    }

    /// Starts the transaction for `step` on client `ci`.
    pub(super) fn begin(&mut self, ci: usize, step: Step, now: u64) {
        let tid = self.next_tid(ci);
        let lifetime = self.cfg.lifetime;
        let Some(c) = self.clients.get(ci) else {
            return;
        };
        let target = c.target;
        let transport = RequestedTransport(TransportProtocol::UDP);
        let bytes = match step {
            Step::AllocPlain => self.build(
                ci,
                Method::ALLOCATE,
                tid,
                &[&transport, &Lifetime(lifetime)],
                false,
            ),
            Step::AllocAuth => self.build(
                ci,
                Method::ALLOCATE,
                tid,
                &[&transport, &Lifetime(lifetime)],
                true,
            ),
            Step::Permission => match target {
                Some(t) => self.build(
                    ci,
                    Method::CREATE_PERMISSION,
                    tid,
                    &[&XorPeerAddress(t)],
                    true,
                ),
                None => None,
            },
            Step::Bind | Step::RefreshBind => match target {
                Some(t) => self.build(
                    ci,
                    Method::CHANNEL_BIND,
                    tid,
                    &[&ChannelNumberAttr(CHANNEL), &XorPeerAddress(t)],
                    true,
                ),
                None => None,
            },
            Step::RefreshAlloc => {
                self.build(ci, Method::REFRESH, tid, &[&Lifetime(lifetime)], true)
            }
            Step::Release => self.build(ci, Method::REFRESH, tid, &[&Lifetime(0)], true),
        };
        let Some(bytes) = bytes else {
            self.fail(ci, format!("cannot encode {}", step.name()));
            return;
        };
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        let sent = c.conn.send_message(&self.epoll, ci, &bytes);
        if !sent {
            self.counters.send_errors += 1;
        }
        self.alloc.requests += 1;
        let stale_retries =
            c.tx.as_ref()
                .map_or(0, |t| if t.step == step { t.stale_retries } else { 0 });
        c.tx = Some(Tx {
            tid,
            step,
            bytes,
            last_sent_ns: now,
            tries: 1,
            stale_retries,
            sent,
        });
    }

    pub(super) fn start_setups(&mut self, now: u64) {
        let sets_up = matches!(self.cfg.mode, Mode::Relay | Mode::Pair)
            || (self.cfg.mode == Mode::Allocate && self.cfg.hold.is_some());
        if !sets_up {
            return;
        }
        while self.in_setup < self.cfg.setup_concurrency && self.next_idle < self.clients.len() {
            let ci = self.next_idle;
            self.next_idle += 1;
            if let Some(c) = self.clients.get_mut(ci) {
                if c.state != State::Idle {
                    continue;
                }
                c.state = State::Setup;
                c.cycle_start_ns = now;
                c.cycle_measured = true;
            }
            self.in_setup += 1;
            self.begin(ci, Step::AllocPlain, now);
        }
    }

    /// When warm-up starts, clients whose setup has not finished are given up.
    pub(super) fn abandon_setup(&mut self) {
        for ci in 0..self.clients.len() {
            let stuck = self.clients.get(ci).is_some_and(|c| {
                matches!(c.state, State::Setup | State::WaitPartner | State::Idle)
            }) && matches!(self.cfg.mode, Mode::Relay | Mode::Pair);
            if stuck {
                self.fail(ci, "setup not finished before the run started".into());
            }
        }
    }

    /// Allocation storm: every idle client starts a new cycle while the run goes on.
    pub(super) fn start_cycles(&mut self, now: u64, phase: u8) {
        if !(phase == PHASE_WARMUP || phase == PHASE_MEASURE) || self.count_done {
            return;
        }
        let pace = self.cfg.cycle_interval_ns();
        let n = self.clients.len().max(1) as u64;
        for ci in 0..self.clients.len() {
            let idle = self
                .clients
                .get(ci)
                .is_some_and(|c| c.state == State::Idle && c.tx.is_none());
            if !idle {
                continue;
            }
            if let (Some(interval), Some(c)) = (pace, self.clients.get_mut(ci)) {
                // --pps: cycles start on a schedule (phases spread over one
                // interval), not as soon as the last one ended. A cycle that
                // took longer than its interval delays the next; one more
                // than three intervals behind is counted late and the
                // schedule restarts from now, as for paced sends.
                if c.next_cycle_ns == 0 {
                    c.next_cycle_ns = now + interval * (ci as u64) / n;
                }
                if now < c.next_cycle_ns {
                    continue;
                }
                let mut next = c.next_cycle_ns + interval;
                if next + 3 * interval < now {
                    self.counters.late += 1;
                    next = now + interval;
                }
                c.next_cycle_ns = next;
            }
            // A fresh 5-tuple each cycle, as a new client would have: servers may keep a
            // released allocation's 5-tuple for a while (coturn answers 437 on it).
            if self.clients.get(ci).is_some_and(|c| c.tid_counter > 0) {
                if let Err(e) = self.renew_socket(ci) {
                    *self
                        .failures
                        .entry(format!("cannot open a new client socket: {e}"))
                        .or_default() += 1;
                    continue;
                }
            }
            self.timeline.add_sent(now, 1);
            if let Some(c) = self.clients.get_mut(ci) {
                c.state = State::Setup;
                c.cycle_start_ns = now;
                c.cycle_measured = phase == PHASE_MEASURE;
                // The 401 challenge is part of the cost of every allocation.
                c.nonce = None;
            }
            self.begin(ci, Step::AllocPlain, now);
        }
    }

    /// Replaces client `ci`'s socket with a new one (new source port); a
    /// stream client gets a new connection (the old one, and with it any
    /// allocation still on it, is closed).
    fn renew_socket(&mut self, ci: usize) -> anyhow::Result<()> {
        let global = self.plan.first_client + ci;
        let conn = Conn::open(&self.cfg, self.shared.tls.as_ref(), global)?;
        let Some(c) = self.clients.get_mut(ci) else {
            return Ok(());
        };
        self.epoll.delete(c.conn.fd());
        self.epoll.add(conn.fd(), ci as u64)?;
        c.conn = conn;
        Ok(())
    }

    /// A stream client's connection is gone (closed by the server, reset, or
    /// not TURN): its allocation went with it (RFC 8656 §3.1).
    pub(super) fn on_conn_lost(&mut self, ci: usize, why: String, now: u64) {
        let storm = self.cfg.mode == Mode::Allocate && self.cfg.hold.is_none();
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        let Conn::Stream(s) = &mut c.conn else {
            return;
        };
        if s.closed {
            return;
        }
        self.epoll.delete(s.fd());
        s.close();
        c.allocated = false;
        let tx = c.tx.take();
        let expected = tx.is_none() && matches!(c.state, State::Idle | State::Done | State::Failed);
        if expected {
            return; // nothing was waiting on it (a storm client between cycles, or the end)
        }
        let what = format!("{} connection lost: {why}", self.cfg.transport.name());
        if storm {
            *self.failures.entry(what).or_default() += 1;
            if let Some(c) = self.clients.get_mut(ci) {
                c.state = State::Idle;
                c.cycle_start_ns = now;
            }
            return;
        }
        let in_setup = self
            .clients
            .get(ci)
            .is_some_and(|c| matches!(c.state, State::Setup | State::WaitPartner));
        match tx {
            // The reason names the step that was waiting.
            Some(t) if in_setup => {
                self.on_tx_failed(ci, t.step, format!("{}: {what}", t.step.name()), now)
            }
            // A ready client (or a held allocation) lost its allocation with the connection.
            _ => self.fail(ci, what),
        }
    }

    /// Streams whose writes failed: handled as lost connections.
    fn check_streams(&mut self, now: u64) {
        for ci in 0..self.clients.len() {
            let why = match self.clients.get_mut(ci).map(|c| &mut c.conn) {
                Some(Conn::Stream(s)) if !s.closed => s.failed.take(),
                _ => None,
            };
            if let Some(why) = why {
                self.on_conn_lost(ci, why, now);
            }
        }
    }

    pub(super) fn scan_timeouts(&mut self, now: u64, phase: u8) {
        let rto = self.cfg.rto.as_nanos() as u64;
        let stream = self.cfg.transport.is_stream();
        if stream {
            self.check_streams(now);
        }
        for ci in 0..self.clients.len() {
            let Some(c) = self.clients.get_mut(ci) else {
                continue;
            };
            if let Some(tx) = c.tx.as_mut() {
                let wait = rto.saturating_mul(1u64 << (tx.tries - 1).min(4));
                if now.saturating_sub(tx.last_sent_ns) < wait {
                    continue;
                }
                if tx.tries < MAX_TRIES && stream {
                    // RFC 8489 §6.2.2: no retransmission over a reliable transport;
                    // the transaction waits as long as the UDP schedule would. Only a
                    // request its send buffer refused is tried again.
                    tx.tries += 1;
                    tx.last_sent_ns = now;
                    if !tx.sent {
                        tx.sent = c.conn.send_message(&self.epoll, ci, &tx.bytes);
                    }
                    continue;
                }
                if tx.tries < MAX_TRIES {
                    tx.tries += 1;
                    tx.last_sent_ns = now;
                    if !c.conn.send_message(&self.epoll, ci, &tx.bytes) {
                        self.counters.send_errors += 1;
                    }
                    self.alloc.requests += 1;
                    self.alloc.retransmissions += 1;
                    continue;
                }
                let step = tx.step;
                c.tx = None;
                self.alloc.timeouts += 1;
                self.on_tx_failed(ci, step, format!("{} timed out", step.name()), now);
                continue;
            }
            // Long runs: keep permissions and channels alive.
            if c.state == State::Ready
                && now >= c.next_refresh_ns
                && (phase == PHASE_WARMUP || phase == PHASE_MEASURE)
            {
                c.next_refresh_ns = now + REFRESH_EVERY_NS;
                let step = if self.cfg.indications {
                    Step::Permission
                } else {
                    Step::RefreshBind
                };
                self.alloc.refreshes += 1;
                self.begin(ci, step, now);
            }
        }
    }

    fn on_tx_failed(&mut self, ci: usize, step: Step, why: String, now: u64) {
        let storm = self.cfg.mode == Mode::Allocate && self.cfg.hold.is_none();
        let state = self.clients.get(ci).map(|c| c.state);
        match step {
            Step::RefreshBind | Step::RefreshAlloc | Step::Release => {
                *self.failures.entry(why).or_default() += 1;
                if step == Step::Release {
                    if let Some(c) = self.clients.get_mut(ci) {
                        c.allocated = false;
                        if storm {
                            c.state = State::Idle;
                        }
                    }
                }
            }
            Step::Permission if state == Some(State::Ready) => {
                *self.failures.entry(why).or_default() += 1;
            }
            _ if storm => {
                *self.failures.entry(why).or_default() += 1;
                if let Some(c) = self.clients.get_mut(ci) {
                    c.state = State::Idle;
                    c.cycle_start_ns = now;
                }
            }
            _ => self.fail(ci, why),
        }
    }

    pub(super) fn on_control_response(&mut self, ci: usize, msg: &Message<'_>, now: u64) {
        let Some(c) = self.clients.get(ci) else {
            return;
        };
        let Some(tx) = c.tx.as_ref() else { return };
        if tx.tid != msg.transaction_id() {
            return; // a late answer to a retransmission
        }
        let step = tx.step;
        let stale_retries = tx.stale_retries;
        self.alloc.responses += 1;
        let code = msg
            .get::<ErrorCodeAttr>()
            .and_then(|r| r.ok())
            .map(|e| e.code.0);
        // The 401 challenge of the first Allocate, and 438 (stale nonce) anywhere.
        if let Some(code @ (401 | 438)) = code {
            let nonce = msg
                .get::<Nonce>()
                .and_then(|r| r.ok())
                .map(|n| n.0.to_owned());
            let realm = msg
                .get::<Realm>()
                .and_then(|r| r.ok())
                .map(|r| r.0.to_owned());
            let retry = match (code, step) {
                (401, Step::AllocPlain) => Some(Step::AllocAuth),
                (438, _) if stale_retries < 3 => Some(if step == Step::AllocPlain {
                    Step::AllocAuth
                } else {
                    step
                }),
                _ => None,
            };
            if let (Some(next), Some(nonce)) = (retry, nonce) {
                if code == 438 {
                    self.alloc.stale_nonce += 1;
                }
                if let Some(c) = self.clients.get_mut(ci) {
                    c.nonce = Some(nonce);
                    if c.realm.is_none() || self.cfg.credentials.realm_override().is_none() {
                        if let Some(r) = realm {
                            c.realm = Some(r);
                        }
                    }
                    if let Some(realm) = &c.realm {
                        c.key = Some(md5_key(&c.user, realm, &c.pass));
                    }
                    if let Some(tx) = c.tx.as_mut() {
                        if code == 438 {
                            tx.stale_retries += 1;
                        }
                    }
                }
                self.begin(ci, next, now);
                return;
            }
        }
        if let Some(code) = code {
            *self.alloc.errors.entry(code).or_default() += 1;
            if let Some(c) = self.clients.get_mut(ci) {
                c.tx = None;
            }
            let what = match code {
                401 => "401 Unauthorized (wrong credentials?)".to_string(),
                403 => "403 Forbidden (does the server allow loopback peers? coturn and ringturn need --allow-loopback-peers)".to_string(),
                437 => "437 Allocation Mismatch".to_string(),
                486 => "486 Allocation Quota Reached".to_string(),
                508 => "508 Insufficient Capacity".to_string(),
                c => format!("error {c}"),
            };
            self.on_tx_failed(ci, step, format!("{}: {what}", step.name()), now);
            return;
        }
        if msg.class() != Class::SuccessResponse {
            return;
        }
        if let Some(c) = self.clients.get_mut(ci) {
            c.tx = None;
        }
        match step {
            Step::AllocPlain | Step::AllocAuth => {
                let relayed = msg
                    .get::<XorRelayedAddress>()
                    .and_then(|r| r.ok())
                    .map(|a| a.0);
                let Some(relayed) = relayed else {
                    self.fail(ci, "Allocate success without XOR-RELAYED-ADDRESS".into());
                    return;
                };
                self.on_allocated(ci, relayed, now);
            }
            Step::Permission => {
                let next_bind = !self.cfg.indications;
                let ready = self
                    .clients
                    .get(ci)
                    .is_some_and(|c| c.state == State::Ready);
                if ready {
                    return; // a refresh
                }
                if next_bind {
                    self.begin(ci, Step::Bind, now);
                } else {
                    self.set_ready(ci, now);
                }
            }
            Step::Bind => self.set_ready(ci, now),
            Step::RefreshBind => self.begin(ci, Step::RefreshAlloc, now),
            Step::RefreshAlloc => {}
            Step::Release => {
                let storm = self.cfg.mode == Mode::Allocate && self.cfg.hold.is_none();
                if let Some(c) = self.clients.get_mut(ci) {
                    c.allocated = false;
                    c.state = if storm { State::Idle } else { State::Done };
                }
            }
        }
    }

    fn on_allocated(&mut self, ci: usize, relayed: SocketAddr, now: u64) {
        let mode = self.cfg.mode;
        let hold = self.cfg.hold.is_some();
        let peer = (mode == Mode::Relay).then(|| {
            let n = self.peers.len().max(1);
            self.peers.get(ci % n).and_then(|p| p.local_addr().ok())
        });
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        c.relayed = Some(relayed);
        c.allocated = true;
        let latency = now.saturating_sub(c.cycle_start_ns);
        let measured = c.cycle_measured;
        match mode {
            Mode::Allocate => {
                self.alloc.completed_all += 1;
                self.timeline.add_received(now, 1);
                let phase = self.shared.phase();
                let counts = if hold {
                    phase == PHASE_SETUP
                } else {
                    measured && phase == PHASE_MEASURE
                };
                if counts {
                    self.alloc.completed += 1;
                    let _ = self.latency.record(latency.max(1));
                    if let Some(share) = self.plan.count_share {
                        if !hold && self.alloc.completed >= share {
                            self.count_done = true;
                        }
                    }
                }
                if hold {
                    self.in_setup = self.in_setup.saturating_sub(1);
                    if let Some(c) = self.clients.get_mut(ci) {
                        c.state = State::Ready;
                    }
                } else {
                    self.begin(ci, Step::Release, now);
                }
            }
            Mode::Relay => {
                c.target = peer.flatten();
                self.begin(ci, Step::Permission, now);
            }
            Mode::Pair => {
                let p = self.partner(ci);
                let partner_relay = self
                    .clients
                    .get(p)
                    .and_then(|pc| pc.relayed.filter(|_| pc.state == State::WaitPartner));
                match partner_relay {
                    Some(pr) => {
                        if let Some(c) = self.clients.get_mut(ci) {
                            c.target = Some(pr);
                        }
                        if let Some(pc) = self.clients.get_mut(p) {
                            pc.target = Some(relayed);
                            pc.state = State::Setup;
                        }
                        self.begin(ci, Step::Permission, now);
                        self.begin(p, Step::Permission, now);
                    }
                    None => {
                        let partner_failed = self
                            .clients
                            .get(p)
                            .is_some_and(|pc| pc.state == State::Failed);
                        if partner_failed {
                            self.fail(ci, "partner could not allocate".into());
                        } else if let Some(c) = self.clients.get_mut(ci) {
                            c.state = State::WaitPartner;
                        }
                    }
                }
            }
            Mode::Binding => {}
        }
    }

    fn set_ready(&mut self, ci: usize, now: u64) {
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        if c.state == State::Setup {
            self.in_setup = self.in_setup.saturating_sub(1);
        }
        c.state = State::Ready;
        c.next_refresh_ns = now + REFRESH_EVERY_NS;
        if self.sending {
            self.schedule(ci, now);
        }
    }
}
