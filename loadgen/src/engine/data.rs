//! The worker's data path: pacing (the timer heap, or a --max window),
//! sending bursts over UDP or a stream, the echo peers, and receiving
//! (ChannelData, Data indications, Binding answers) into the flows' counters.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;

use ringturn::stun::{ChannelData, Class, Data, ErrorCodeAttr, Message, Method};

use super::conn::{flush_stream, Compose, Conn};
use super::{State, Worker, CONTROL_RESERVE, DATA_OVERHEAD, IDLE_WAIT_NS, PHASE_MEASURE, STALL_NS};
use crate::config::{Mode, Rate};
use crate::net::BATCH;
use crate::payload::{self, Stamp};
use crate::stream::Fill;
use crate::track::{Seen, Timeline};

impl Worker {
    fn is_sender(&self, ci: usize) -> bool {
        match self.cfg.mode {
            Mode::Relay | Mode::Pair => self
                .clients
                .get(ci)
                .is_some_and(|c| c.state == State::Ready),
            Mode::Binding => true,
            Mode::Allocate => false,
        }
    }

    pub(super) fn start_sending(&mut self, now: u64) {
        self.sending = true;
        let origin = self
            .shared
            .warmup_start_ns
            .load(Ordering::Acquire)
            .max(1)
            .min(now);
        let max_points = ((self.cfg.warmup + self.cfg.duration + self.cfg.drain).as_nanos()
            / self.cfg.interval.as_nanos().max(1)) as usize
            + 64;
        self.timeline = Timeline::new(
            origin,
            self.cfg.interval.as_nanos() as u64,
            max_points.min(1_000_000),
        );
        if matches!(self.cfg.rate, Rate::Pps(_)) {
            for ci in 0..self.clients.len() {
                if self.is_sender(ci) {
                    self.schedule(ci, now);
                }
            }
        }
        for f in &mut self.flows {
            f.last_progress_ns = now;
        }
    }

    /// Puts a paced client on the timer heap, its phase spread over one interval.
    pub(super) fn schedule(&mut self, ci: usize, now: u64) {
        if !matches!(self.cfg.rate, Rate::Pps(_)) {
            return;
        }
        let Some(c) = self.clients.get(ci) else {
            return;
        };
        let interval = c.shape.interval_ns.max(1);
        let n = self.clients.len().max(1) as u64;
        let offset = interval * (ci as u64) / n;
        self.heap.push(Reverse((now + offset, ci as u32)));
    }

    /// Sends what is due; returns the epoll timeout until the next send (ns).
    pub(super) fn send_due(&mut self, now: u64, phase: u8) -> u64 {
        if self.count_done {
            return IDLE_WAIT_NS;
        }
        match self.cfg.rate {
            Rate::Pps(_) => {
                let mut budget = 4096usize; // bounded work per loop turn
                while let Some(Reverse((due, ci))) = self.heap.peek().copied() {
                    if due > now || budget == 0 {
                        break;
                    }
                    self.heap.pop();
                    let ci = ci as usize;
                    if !self.is_sender(ci) {
                        continue;
                    }
                    let Some(shape) = self.clients.get(ci).map(|c| c.shape) else {
                        continue;
                    };
                    let interval = shape.interval_ns.max(1);
                    self.send_burst(ci, shape.burst as usize, now, phase);
                    budget = budget.saturating_sub(shape.burst as usize);
                    let mut next = due + interval;
                    if next + 3 * interval < now {
                        self.counters.late += 1;
                        next = now + interval;
                    }
                    self.heap.push(Reverse((next, ci as u32)));
                    if self.count_done {
                        break;
                    }
                }
                match self.heap.peek() {
                    Some(Reverse((due, _))) if *due > now => (*due - now).min(IDLE_WAIT_NS),
                    Some(_) => 0,
                    None => IDLE_WAIT_NS,
                }
            }
            Rate::Max { window } => {
                let mut any_room = false;
                for ci in 0..self.clients.len() {
                    if !self.is_sender(ci) {
                        continue;
                    }
                    let Some(f) = self.flows.get_mut(ci) else {
                        continue;
                    };
                    let mut in_flight = f.sent_all.saturating_sub(f.rx.unique_all + f.written_off);
                    if in_flight >= u64::from(window)
                        && now.saturating_sub(f.last_progress_ns) > STALL_NS
                    {
                        f.written_off += in_flight;
                        f.last_progress_ns = now;
                        in_flight = 0;
                    }
                    let room = u64::from(window)
                        .saturating_sub(in_flight)
                        .min(BATCH as u64) as usize;
                    if room > 0 {
                        let sent = self.send_burst(ci, room, now, phase);
                        any_room |= sent == room;
                    }
                    if self.count_done {
                        break;
                    }
                }
                if any_room {
                    0
                } else {
                    1_000_000
                }
            }
        }
    }

    /// Sends up to `k` payloads (or Binding requests) from client `ci`; returns how many went.
    fn send_burst(&mut self, ci: usize, k: usize, now: u64, phase: u8) -> usize {
        let measured = phase == PHASE_MEASURE;
        let mut k = k.min(BATCH);
        if measured {
            if let Some(share) = self.plan.count_share {
                let left = share.saturating_sub(self.counters.sent);
                if left == 0 {
                    self.count_done = true;
                    return 0;
                }
                k = k.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
        }
        let flow_id = self.flow_base() + ci as u32;
        let mode = self.cfg.mode;
        let indications = self.cfg.indications;
        let (Some(c), Some(f)) = (self.clients.get(ci), self.flows.get(ci)) else {
            return 0;
        };
        let size = c.shape.size;
        let target = c.target;
        let first_seq = f.next_seq;
        let what = Compose {
            mode,
            indications,
            size,
            target,
            flow_id,
        };
        let stamp = |j: usize| Stamp {
            flow: flow_id,
            seq: first_seq + j as u64,
            sent_ns: now,
            measured,
        };
        let (batch, sent) =
            if let Some(Conn::Stream(st)) = self.clients.get_mut(ci).map(|c| &mut c.conn) {
                // Composed in place in the connection's send buffer, written with one
                // flush; a full buffer (the server reads slower than we send) is
                // backpressure: fewer go, and they are not counted as sent.
                if st.closed {
                    return 0;
                }
                let max = size + DATA_OVERHEAD;
                let scratch = &mut self.scratch;
                let mut n = 0;
                for j in 0..k {
                    if st.room() < max + CONTROL_RESERVE {
                        break;
                    }
                    let stamp = stamp(j);
                    if !st.tx.push(max, |out| what.write(&stamp, scratch, out)) {
                        break;
                    }
                    n += 1;
                }
                if n > 0 {
                    flush_stream(&self.epoll, ci, st);
                }
                (k, n)
            } else {
                self.send.clear();
                for j in 0..k {
                    let stamp = stamp(j);
                    let scratch = &mut self.scratch;
                    if !self.send.push(None, |out| what.write(&stamp, scratch, out)) {
                        break;
                    }
                }
                let batch = self.send.len();
                if batch == 0 {
                    return 0;
                }
                let Some(Conn::Udp(sock)) = self.clients.get(ci).map(|c| &c.conn) else {
                    return 0;
                };
                let sent = match self.send.send(sock, false) {
                    Ok(n) => n,
                    Err(_) => {
                        self.counters.send_errors += 1;
                        0
                    }
                };
                (batch, sent)
            };
        if sent < batch {
            self.counters.send_blocked += 1;
        }
        let Some(f) = self.flows.get_mut(ci) else {
            return sent;
        };
        let was_idle = f.sent_all == f.rx.unique_all + f.written_off;
        f.next_seq += sent as u64;
        f.sent_all += sent as u64;
        if was_idle {
            f.last_progress_ns = now;
        }
        self.counters.sent_all += sent as u64;
        self.timeline.add_sent(now, sent as u64);
        if measured {
            f.sent_measured += sent as u64;
            self.counters.sent += sent as u64;
            self.counters.bytes_sent += (sent * size) as u64;
            if let Some(share) = self.plan.count_share {
                if self.counters.sent >= share {
                    self.count_done = true;
                }
            }
        }
        sent
    }

    pub(super) fn echo(&mut self, p: usize) {
        let (Some(sock), Some(batch)) = (self.peers.get(p), self.recv.as_mut()) else {
            return;
        };
        for _ in 0..8 {
            match batch.recv(sock) {
                Ok(0) => break,
                Ok(n) => match batch.echo(sock) {
                    Ok(sent) => {
                        self.counters.echoed += sent as u64;
                        if sent < n {
                            self.counters.send_blocked += 1;
                        }
                    }
                    Err(_) => self.counters.send_errors += 1,
                },
                Err(_) => {
                    self.counters.recv_errors += 1;
                    break;
                }
            }
        }
    }

    pub(super) fn receive(&mut self, ci: usize, now: u64, phase: u8) {
        if let Some(Conn::Stream(_)) = self.clients.get(ci).map(|c| &c.conn) {
            self.receive_stream(ci, now, phase);
            return;
        }
        let Some(mut batch) = self.recv.take() else {
            return;
        };
        for _ in 0..8 {
            let n = {
                let Some(Conn::Udp(sock)) = self.clients.get(ci).map(|c| &c.conn) else {
                    break;
                };
                match batch.recv(sock) {
                    Ok(n) => n,
                    Err(_) => {
                        // ICMP errors (a server that went away) surface here on connected sockets.
                        self.counters.recv_errors += 1;
                        0
                    }
                }
            };
            if n == 0 {
                break;
            }
            for i in 0..n {
                self.handle_datagram(ci, batch.datagram(i), now, phase);
            }
            if n < BATCH {
                break;
            }
        }
        self.recv = Some(batch);
    }

    /// A stream client's socket is ready: write what waits, read what came,
    /// and handle every complete message (bounded turns per wake-up).
    fn receive_stream(&mut self, ci: usize, now: u64, phase: u8) {
        let mut lost = None;
        for _ in 0..16 {
            let Some(Conn::Stream(s)) = self.clients.get_mut(ci).map(|c| &mut c.conn) else {
                return;
            };
            if s.closed {
                return;
            }
            if s.wants_write() {
                flush_stream(&self.epoll, ci, s);
            }
            if let Some(why) = s.failed.take() {
                lost = Some(why);
                break;
            }
            let fill = s.fill();
            // Taken out while its messages are handled (they borrow it); an
            // empty Deframer does not allocate.
            let mut rx = std::mem::take(&mut s.rx);
            let mut garbage = None;
            // Bounded by what one read brought in.
            loop {
                match rx.next_frame() {
                    Ok(Some(frame)) => self.handle_datagram(ci, frame, now, phase),
                    Ok(None) => break,
                    Err(e) => {
                        garbage = Some(e);
                        break;
                    }
                }
            }
            if let Some(Conn::Stream(s)) = self.clients.get_mut(ci).map(|c| &mut c.conn) {
                s.rx = rx;
            }
            if let Some(e) = garbage {
                self.counters.foreign += 1;
                lost = Some(format!("the server sent something that is not TURN: {e}"));
                break;
            }
            match fill {
                Ok(Fill::Data(0)) => break,
                Ok(Fill::Data(_)) => {}
                Ok(Fill::Closed) => {
                    lost = Some("closed by the server".into());
                    break;
                }
                Err(e) => {
                    self.counters.recv_errors += 1;
                    lost = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(why) = lost {
            self.on_conn_lost(ci, why, now);
        }
    }

    fn handle_datagram(&mut self, ci: usize, d: &[u8], now: u64, phase: u8) {
        match d.first() {
            Some(0x40..=0x7F) => match ChannelData::parse(d) {
                Ok(cd) => self.on_payload(ci, cd.data, now),
                Err(_) => self.counters.foreign += 1,
            },
            Some(0x00..=0x3F) => {
                let Ok(msg) = Message::parse(d) else {
                    self.counters.foreign += 1;
                    return;
                };
                match (msg.class(), msg.method()) {
                    (Class::Indication, Method::DATA) => match msg.get::<Data>() {
                        Some(Ok(data)) => self.on_payload(ci, data.0, now),
                        _ => self.counters.foreign += 1,
                    },
                    (Class::SuccessResponse | Class::ErrorResponse, Method::BINDING)
                        if self.cfg.mode == Mode::Binding =>
                    {
                        self.on_binding_response(ci, &msg, now);
                    }
                    (Class::SuccessResponse | Class::ErrorResponse, _) => {
                        self.on_control_response(ci, &msg, now)
                    }
                    _ => self.counters.foreign += 1,
                }
            }
            _ => self.counters.foreign += 1,
        }
        let _ = phase;
    }

    fn on_payload(&mut self, ci: usize, data: &[u8], now: u64) {
        let Some(stamp) = payload::read(data) else {
            self.counters.foreign += 1;
            return;
        };
        let expected = match self.cfg.mode {
            Mode::Pair => self.partner(ci),
            _ => ci,
        };
        let local = stamp.flow.wrapping_sub(self.flow_base()) as usize;
        if local != expected {
            self.counters.foreign += 1;
            return;
        }
        self.on_stamp(local, &stamp, now);
    }

    fn on_stamp(&mut self, flow: usize, stamp: &Stamp, now: u64) {
        let Some(f) = self.flows.get_mut(flow) else {
            self.counters.foreign += 1;
            return;
        };
        if stamp.seq >= f.next_seq {
            // Never sent: not ours after all.
            self.counters.foreign += 1;
            return;
        }
        match f.rx.record(stamp.seq, stamp.measured) {
            Some(Seen::First) => {
                f.last_progress_ns = now;
                self.counters.received_all += 1;
                self.timeline.add_received(now, 1);
                if stamp.measured {
                    self.counters.received += 1;
                    let _ = self
                        .latency
                        .record(now.saturating_sub(stamp.sent_ns).max(1));
                }
            }
            Some(Seen::Duplicate) => {}
            None => self.counters.foreign += 1,
        }
    }

    fn on_binding_response(&mut self, ci: usize, msg: &Message<'_>, now: u64) {
        let Some(stamp) = payload::read_binding_tid(&msg.transaction_id(), now) else {
            self.counters.foreign += 1;
            return;
        };
        let local = stamp.flow.wrapping_sub(self.flow_base() & 0x00ff_ffff) as usize;
        if local != ci {
            self.counters.foreign += 1;
            return;
        }
        if msg.class() == Class::ErrorResponse {
            let code = msg
                .get::<ErrorCodeAttr>()
                .and_then(|r| r.ok())
                .map_or(0, |e| e.code.0);
            *self.alloc.errors.entry(code).or_default() += 1;
        }
        // Only the low 32 bits of seq travel; restore the rest from what was sent.
        let Some(f) = self.flows.get(local) else {
            return;
        };
        let high = f.next_seq & !0xffff_ffff;
        let mut seq = high | stamp.seq;
        if seq >= f.next_seq {
            seq = seq.wrapping_sub(1 << 32);
        }
        let full = Stamp { seq, ..stamp };
        self.on_stamp(local, &full, now);
    }
}
