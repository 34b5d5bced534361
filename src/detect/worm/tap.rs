//! The worker side of `worm_phase`: attempts waiting for their answer, and
//! the hand-off of the unanswered ones to the aggregator (see `worm/mod.rs`).
//!
//! An attempt is a TCP connection attempt (SYN without ACK) or a UDP
//! datagram to a unicast address, keyed by (host, target, protocol, port):
//! the dispatcher gives a SYN and its SYN-ACK, and a datagram and its
//! reply, to the same worker, so the answer is seen here. Two FIFO tables,
//! both bounded (`max_pending` split between workers):
//!
//! - `waiting`: attempts not answered yet, oldest first. A SYN-ACK or a UDP
//!   reply takes the attempt out; one still there `answer_wait_s` after its
//!   first packet is settled as unanswered at the next tick. When the table
//!   is full the oldest is settled early (counted as `evicted` in
//!   `state.worm_waiting`), so a flood costs accuracy, not memory.
//! - `settled`: the keys settled in the last `hold_s`. Packets to a settled
//!   key (retransmissions, a one-way stream, a client retrying one server)
//!   add to nothing: the attempt was counted once.
//!
//! Per packet: one or two lookups for a SYN, SYN-ACK or UDP datagram,
//! nothing for other segments; nothing is allocated (the tables grow up to
//! their cap, the hand-off buffers are reused).

use super::record::{Attempt, Chunk, Link, MARK_PORTS, WormMsg};
use crate::decode::summary::{L4, PacketSummary};
use crate::detect::agg::send;
use crate::detect::core::Shared;
use crate::detect::fair::Fifo;
use crate::detect::keys::{hash_pair, unicast};
use crate::stats::{Stats, Table};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Attempts settled between ticks (evicted early, answered marks) held for
/// the next tick's tag; beyond, they are counted as dropped.
const EARLY: usize = 4096;

/// (host, target, protocol, port): one attempt (the aggregator keys its
/// `fed_by_log` memory by it too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    host: IpAddr,
    target: IpAddr,
    proto_port: u32,
}

impl Key {
    pub(super) fn new(host: IpAddr, target: IpAddr, proto: u8, port: u16) -> Key {
        Key { host, target, proto_port: (u32::from(proto) << 16) | u32::from(port) }
    }
    fn proto(&self) -> u8 {
        (self.proto_port >> 16) as u8
    }
    fn port(&self) -> u16 {
        self.proto_port as u16
    }
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_pair(&self.host, &self.target, self.proto_port, h);
    }
}

/// An attempt waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct Wait {
    first_us: i64,
    last_us: i64,
    packets: u32,
    payload: u16,
    sport: u16,
    sensor: u16,
}

/// A settled key: when, and its latest packet since.
#[derive(Clone, Copy, Debug)]
struct Settled {
    at_us: i64,
    last_us: i64,
}

/// One worker's `worm_phase` state.
pub struct Tap {
    link: Link,
    waiting: Fifo<Key, Wait>,
    settled: Fifo<Key, Settled>,
    early: Vec<Attempt>,
    chunk: Chunk,
    wait_us: i64,
    hold_us: i64,
}

impl Tap {
    pub fn new(rules: &super::rules::WormPhaseRules, shared: &Shared, link: Link) -> Tap {
        let cap = shared.per_worker(rules.max_pending);
        Tap {
            link,
            waiting: Fifo::new(cap),
            settled: Fifo::new(cap),
            early: Vec::with_capacity(64),
            chunk: Chunk::empty(),
            wait_us: (rules.answer_wait_s * 1e6) as i64,
            hold_us: (rules.hold_s * 1e6) as i64,
        }
    }

    /// Keys held (waiting and settled).
    pub fn len(&self) -> usize {
        self.waiting.len() + self.settled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Handles one packet this worker owns.
    #[inline]
    pub fn packet(&mut self, p: &PacketSummary, sensor: u16, stats: &Stats) {
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            L4::Tcp(t) => {
                if t.is_connection_attempt() {
                    self.attempt(Key::new(ip.src, ip.dst, 6, t.dport), p, sensor, stats);
                } else if t.is_syn_ack() {
                    self.answer(Key::new(ip.dst, ip.src, 6, t.sport), stats);
                }
            }
            // A datagram that answers none waiting is an attempt itself.
            L4::Udp(u) if !self.answer(Key::new(ip.dst, ip.src, 17, u.sport), stats) => {
                self.attempt(Key::new(ip.src, ip.dst, 17, u.dport), p, sensor, stats);
            }
            _ => {}
        }
    }

    fn attempt(&mut self, k: Key, p: &PacketSummary, sensor: u16, stats: &Stats) {
        if !unicast(k.target) {
            return;
        }
        let ts = p.ts_us;
        if let Some(s) = self.settled.get_mut(&k) {
            s.last_us = s.last_us.max(ts);
            return;
        }
        if let Some(w) = self.waiting.get_mut(&k) {
            w.packets = w.packets.saturating_add(1);
            w.last_us = w.last_us.max(ts);
            return;
        }
        let payload = u16::try_from(p.payload_len).unwrap_or(u16::MAX);
        let sport = match &p.l4 {
            L4::Tcp(t) => t.sport,
            L4::Udp(u) => u.sport,
            _ => 0,
        };
        let w = Wait { first_us: ts, last_us: ts, packets: 1, payload, sport, sensor };
        if let Some((old, ow)) = self.waiting.insert_evicting(k, w) {
            // Full: the oldest has waited longest; it counts as unanswered now.
            stats.table(Table::WormWaiting).evicted.fetch_add(1, Relaxed);
            self.hold_early(attempt(old, &ow, 0, false), stats);
            self.settle_key(old, ow.last_us, stats);
        }
    }

    /// An answer to the attempt `k`, if one is waiting: it is taken out.
    fn answer(&mut self, k: Key, stats: &Stats) -> bool {
        let Some(w) = self.waiting.remove(&k) else { return false };
        if k.proto() == 6 && MARK_PORTS.contains(&k.port()) {
            self.hold_early(attempt(k, &w, 0, true), stats);
        }
        true
    }

    fn hold_early(&mut self, a: Attempt, stats: &Stats) {
        if self.early.len() < EARLY {
            self.early.push(a);
        } else {
            stats.worm_drops.fetch_add(1, Relaxed);
        }
    }

    fn settle_key(&mut self, k: Key, last_us: i64, stats: &Stats) {
        if self.settled.insert(k, Settled { at_us: last_us, last_us }) > 0 {
            stats.table(Table::WormWaiting).evicted.fetch_add(1, Relaxed);
        }
    }

    /// A tick at packet time `ts`: settles what waited long enough, hands
    /// everything over tagged `ts`, sends the watermark, expires settled keys.
    pub fn tick(&mut self, ts: i64, stats: &Stats) {
        self.flush_early(ts, stats);
        let wait = self.wait_us;
        while let Some((k, w)) = self.waiting.pop_due(|w| w.first_us.saturating_add(wait) <= ts) {
            self.push(attempt(k, &w, ts, false), stats);
            self.settle_key(k, w.last_us, stats);
        }
        self.send_chunk(stats);
        send(&self.link, WormMsg::Watermark { worker: self.link.worker, ts }, stats);
        let hold = self.hold_us;
        let mut gone = 0u64;
        while let Some((k, s)) = self.settled.pop_due(|s| s.at_us.saturating_add(hold) <= ts) {
            if s.last_us.saturating_add(hold) > ts {
                // Still in use: it stays, queued again from its latest packet.
                self.settled.insert(k, Settled { at_us: s.last_us, last_us: s.last_us });
            } else {
                gone += 1;
            }
        }
        stats.table(Table::WormWaiting).expired.fetch_add(gone, Relaxed);
    }

    /// End of input or shutdown: what is still waiting was never answered.
    pub fn finish(&mut self, stats: &Stats) {
        self.flush_early(i64::MAX, stats);
        while let Some((k, w)) = self.waiting.pop_due(|_| true) {
            self.push(attempt(k, &w, i64::MAX, false), stats);
        }
        self.send_chunk(stats);
        send(&self.link, WormMsg::Done { worker: self.link.worker }, stats);
    }

    fn flush_early(&mut self, tag: i64, stats: &Stats) {
        let mut early = std::mem::take(&mut self.early);
        for mut a in early.drain(..) {
            a.tag = tag;
            self.push(a, stats);
        }
        self.early = early;
    }

    fn push(&mut self, a: Attempt, stats: &Stats) {
        if self.chunk.push(a) {
            self.send_chunk(stats);
        }
    }

    fn send_chunk(&mut self, stats: &Stats) {
        if self.chunk.len > 0 {
            send(&self.link, WormMsg::Data(self.chunk), stats);
            self.chunk.len = 0;
        }
    }
}

fn attempt(k: Key, w: &Wait, tag: i64, answered: bool) -> Attempt {
    Attempt {
        tag,
        host: k.host,
        target: k.target,
        first_us: w.first_us,
        last_us: w.last_us,
        packets: w.packets,
        dport: k.port(),
        sport: w.sport,
        payload: w.payload,
        sensor: w.sensor,
        proto: k.proto(),
        answered,
        logged: false,
    }
}
