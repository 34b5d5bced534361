//! The worker side of `decoy_scan`: for the addresses this worker owns, the
//! long memory (`TtlHistory`) and one probe record per (source,
//! destination), and the hand-off of candidate records to the aggregator
//! (see `decoy/mod.rs`).
//!
//! A probe is a TCP segment without ACK (SYN, FIN, NULL, Xmas, other
//! combinations), a bare ACK without data, or a UDP datagram, sent by the
//! address this worker owns. A port on which the source then sends data
//! after the handshake (or gets a UDP answer) is marked completed: clients
//! complete, probes do not.
//!
//! Bounded by `max_tracked` records (split between workers); a full table
//! drops records holding one probe (a spoofed flood leaves those; at most
//! once per second, counted as `evicted`), then refuses new pairs
//! (`cap_hits`). Records idle for `window_s` expire. Per packet nothing is
//! allocated: the queue of changed candidates is reused.

use super::{AggMsg, Link, PortSlot, Record, kind};
use crate::config::DecoyScanRules;
use crate::detect::ttl::{Sent, TtlHistory};
use crate::detect::{FastMap, SWEEP_US, Shared};
use crate::stats::{Stats, Table};
use crate::summary::{IpInfo, L4, PacketSummary, TcpInfo, tcpflag};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

struct Pair {
    rec: Record,
    candidate: bool,
    queued: bool,
}

/// One worker's `decoy_scan` state.
pub struct Tap {
    link: Link,
    hist: TtlHistory,
    pairs: FastMap<(IpAddr, IpAddr), Pair>,
    /// Candidates changed since the last tick.
    queue: Vec<(IpAddr, IpAddr)>,
    cap: usize,
    min_ports: u64,
    idle_us: i64,
    last_sweep_us: i64,
    last_evict_us: i64,
}

/// The probe type of a TCP segment from its initiator, if it is one.
fn tcp_probe(t: &TcpInfo, payload: u32) -> Option<u8> {
    let f = t.flags & 0xff;
    let (syn, fin, ack, rst) = (t.has(tcpflag::SYN), t.has(tcpflag::FIN), t.has(tcpflag::ACK), t.has(tcpflag::RST));
    if rst {
        return None;
    }
    if ack {
        return (f == tcpflag::ACK && payload == 0).then_some(kind::ACK);
    }
    Some(match (syn, fin) {
        (true, false) if f & (tcpflag::PSH | tcpflag::URG) == 0 => kind::SYN,
        (false, _) if f == 0 => kind::NULL,
        (false, true) if f == tcpflag::FIN => kind::FIN,
        (false, true) if f & (tcpflag::PSH | tcpflag::URG) == (tcpflag::PSH | tcpflag::URG) => kind::XMAS,
        _ => kind::OTHER,
    })
}

impl Tap {
    pub fn new(rules: &DecoyScanRules, shared: &Shared, link: Link) -> Tap {
        let cap = shared.per_worker(rules.max_tracked);
        Tap {
            link,
            hist: TtlHistory::new(shared.per_worker(rules.history_max_tracked), rules.history_idle_s),
            pairs: FastMap::with_capacity_and_hasher(cap.min(4096), Default::default()),
            queue: Vec::with_capacity(256),
            cap,
            min_ports: u64::from(rules.min_ports),
            idle_us: (rules.window_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
            last_evict_us: i64::MIN,
        }
    }

    /// What the long memory holds about `addr`.
    pub fn memory(&self, addr: IpAddr) -> Option<&crate::detect::ttl::Memory> {
        self.hist.get(addr)
    }

    /// Addresses remembered and probe records held.
    pub fn sizes(&self) -> (usize, usize) {
        (self.hist.len(), self.pairs.len())
    }

    /// Handles one packet this worker received; `owner` is its
    /// `dispatch::shard_addr`.
    #[inline]
    pub fn packet(&mut self, p: &PacketSummary, sensor: u16, owner: Option<IpAddr>, shared: &Shared) {
        let Some(ip) = &p.ip else { return };
        if owner == Some(ip.src) {
            self.sent(p, ip, sensor, &shared.stats);
        } else if owner == Some(ip.dst) {
            self.received(p, ip);
        }
    }

    /// A packet sent by an owned address.
    fn sent(&mut self, p: &PacketSummary, ip: &IpInfo, sensor: u16, stats: &Stats) {
        let (probe, conv) = match &p.l4 {
            L4::Tcp(t) => {
                let conv = t.has(tcpflag::ACK) && !t.has(tcpflag::RST) && (p.payload_len > 0 || t.has(tcpflag::FIN));
                (tcp_probe(t, p.payload_len).map(|k| (k, t.dport, false)), conv)
            }
            L4::Udp(u) => (Some((kind::UDP, u.dport, true)), false),
            _ => (None, false),
        };
        let what = if conv { Sent::Conversation } else { Sent::Other };
        self.hist.sent(ip.src, p.ts_us, ip.ttl, what, stats);
        if conv {
            let port = p.tcp().map_or(0, |t| t.dport);
            self.complete((ip.src, ip.dst), port, false);
        }
        if let Some((k, port, udp)) = probe {
            self.probe(p, ip, sensor, k, port, udp, stats);
        }
    }

    /// A packet sent to an owned address: an answer proves it was reachable.
    fn received(&mut self, p: &PacketSummary, ip: &IpInfo) {
        let answer = match &p.l4 {
            L4::Tcp(t) => t.is_syn_ack() || (t.has(tcpflag::ACK) && !t.has(tcpflag::RST) && p.payload_len > 0),
            L4::Udp(u) => {
                self.complete((ip.dst, ip.src), u.sport, true);
                true
            }
            L4::Icmp(i) => i.is_echo_reply(),
            _ => false,
        };
        if answer {
            self.hist.answered(ip.dst, p.ts_us);
        }
    }

    /// Marks a port of an existing record as carrying a real conversation.
    fn complete(&mut self, key: (IpAddr, IpAddr), port: u16, udp: bool) {
        let Some(e) = self.pairs.get_mut(&key) else { return };
        let n = usize::from(e.rec.nports);
        if let Some(s) = e.rec.ports.iter_mut().take(n).find(|s| s.port == port && s.udp == udp)
            && !s.completed
        {
            s.completed = true;
            if e.candidate && !e.queued {
                e.queued = true;
                self.queue.push(key);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn probe(&mut self, p: &PacketSummary, ip: &IpInfo, sensor: u16, k: u8, port: u16, udp: bool, stats: &Stats) {
        let key = (ip.src, ip.dst);
        let sport = match &p.l4 {
            L4::Tcp(t) => t.sport,
            L4::Udp(u) => u.sport,
            _ => 0,
        };
        if !self.pairs.contains_key(&key) {
            if self.pairs.len() >= self.cap && !self.make_room(p.ts_us, stats) {
                stats.table(Table::DecoyProbes).cap_hits.fetch_add(1, Relaxed);
                return;
            }
            let rec = Record::new(ip.src, ip.dst, sensor, p.ts_us, sport);
            self.pairs.insert(key, Pair { rec, candidate: false, queued: false });
        }
        let min_ports = self.min_ports;
        let Some(e) = self.pairs.get_mut(&key) else { return };
        let r = &mut e.rec;
        r.sensor = sensor;
        r.first_us = r.first_us.min(p.ts_us);
        r.last_us = r.last_us.max(p.ts_us);
        r.probes = r.probes.saturating_add(1);
        r.kinds |= k;
        r.ttl_min = r.ttl_min.min(ip.ttl);
        r.ttl_max = r.ttl_max.max(ip.ttl);
        r.sport.see(sport);
        if let L4::Tcp(t) = &p.l4 {
            r.isn.see(t.seq);
            r.window.see(t.window);
            r.options.see(t.opts.layout);
        }
        let id = ip.ip_id as u16;
        if let Some(slot) = r.ipids.get_mut(usize::from(r.nipids)) {
            *slot = (p.ts_us, id);
            r.nipids += 1;
        }
        let n = usize::from(r.nports);
        let known = r.ports.iter().take(n).any(|s| s.port == port && s.udp == udp);
        if !known {
            match r.ports.get_mut(n) {
                Some(slot) => {
                    *slot = PortSlot { port, ip_id: id, udp, completed: false };
                    r.nports += 1;
                }
                None => r.ports_more = true,
            }
        }
        r.sketch.insert(u64::from(port) | (u64::from(udp) << 16));
        if !e.candidate && r.distinct_ports() >= min_ports {
            e.candidate = true;
        }
        if e.candidate && !e.queued {
            e.queued = true;
            self.queue.push(key);
        }
    }

    /// When full, drops records holding a single probe (at most once per
    /// second of packet time). Returns true if room was made.
    fn make_room(&mut self, now: i64, stats: &Stats) -> bool {
        if now.saturating_sub(self.last_evict_us) < 1_000_000 {
            return false;
        }
        self.last_evict_us = now;
        let before = self.pairs.len();
        self.pairs.retain(|_, e| e.candidate || e.rec.probes > 1);
        stats.table(Table::DecoyProbes).evicted.fetch_add((before - self.pairs.len()) as u64, Relaxed);
        self.pairs.len() < self.cap
    }

    /// Sends the candidates changed since the last tick, tagged `tag`.
    fn send_changed(&mut self, tag: i64, stats: &Stats) {
        let mut queue = std::mem::take(&mut self.queue);
        for key in queue.drain(..) {
            let Some(e) = self.pairs.get_mut(&key) else { continue };
            e.queued = false;
            let mut rec = e.rec;
            rec.tag = tag;
            rec.memory = self.hist.get(key.0).copied();
            send(&self.link, AggMsg::Record(rec), stats);
        }
        self.queue = queue;
    }

    /// A tick at packet time `ts`: hand over the changed candidates and the
    /// watermark, then expire idle state. Expiry runs on the ticks' times
    /// alone, which every worker shares, so what expires when does not
    /// depend on how sources are spread over workers.
    pub fn tick(&mut self, ts: i64, shared: &Shared) {
        let stats = &shared.stats;
        self.send_changed(ts, stats);
        send(&self.link, AggMsg::Watermark { worker: self.link.worker, ts }, stats);
        self.hist.expire(ts, stats);
        if ts.saturating_sub(self.last_sweep_us) < SWEEP_US {
            return;
        }
        self.last_sweep_us = ts;
        let (now, idle) = (ts, self.idle_us);
        let before = self.pairs.len();
        self.pairs.retain(|_, e| now.saturating_sub(e.rec.last_us) <= idle);
        self.queue.retain(|k| self.pairs.contains_key(k));
        stats.table(Table::DecoyProbes).expired.fetch_add((before - self.pairs.len()) as u64, Relaxed);
    }

    /// End of input or shutdown: the last snapshots, then `Done`.
    pub fn finish(&mut self, shared: &Shared) {
        self.send_changed(i64::MAX, &shared.stats);
        send(&self.link, AggMsg::Done { worker: self.link.worker }, &shared.stats);
    }
}

fn send(link: &Link, msg: AggMsg, stats: &Stats) {
    if link.lossy {
        if link.tx.try_send(msg).is_err() {
            stats.decoy_drops.fetch_add(1, Relaxed);
        }
    } else {
        // An aggregator that hung up has already failed; the run goes on.
        let _ = link.tx.send(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(flags: u16) -> TcpInfo {
        TcpInfo { sport: 1, dport: 2, flags, seq: 0, ack: 0, window: 0, opts: Default::default() }
    }

    #[test]
    fn probe_types() {
        use tcpflag::*;
        assert_eq!(tcp_probe(&t(SYN), 0), Some(kind::SYN));
        assert_eq!(tcp_probe(&t(SYN | ECE | CWR), 0), Some(kind::SYN));
        assert_eq!(tcp_probe(&t(0), 0), Some(kind::NULL));
        assert_eq!(tcp_probe(&t(FIN), 0), Some(kind::FIN));
        assert_eq!(tcp_probe(&t(FIN | PSH | URG), 0), Some(kind::XMAS));
        assert_eq!(tcp_probe(&t(ACK), 0), Some(kind::ACK));
        assert_eq!(tcp_probe(&t(SYN | FIN), 0), Some(kind::OTHER));
        for not in [t(ACK | PSH), t(SYN | ACK), t(RST), t(RST | ACK), t(FIN | ACK)] {
            assert_eq!(tcp_probe(&not, 0), None, "{not:?}");
        }
        assert_eq!(tcp_probe(&t(ACK), 10), None, "data is not a probe");
    }
}
