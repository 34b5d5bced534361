//! The worker side of `decoy_scan`: for the addresses this worker owns, the
//! long memory (`TtlHistory`, fed from the worker's per-source table
//! `Sources`, which holds first contacts and answers) and one probe record
//! per (source, destination), and the hand-off of candidate records to the
//! aggregator (see `decoy/mod.rs`).
//!
//! A probe is a TCP segment without ACK (SYN, FIN, NULL, Xmas, other
//! combinations), a bare ACK without data, or a UDP datagram, sent by the
//! address this worker owns. A port on which the source then sends data
//! after the handshake (or gets a UDP answer) is marked completed: clients
//! complete, probes do not.
//!
//! Two tiers, so that ordinary clients and a spoofed flood cost little: a
//! pair starts as a `First` (about 100 bytes: its first port and the
//! fingerprint so far) and becomes a full `Record` (about 650 bytes) when it
//! probes a second port. The first tier is a fair probation tier
//! (`detect::fair`) of `max_probation` pairs, oldest out first in O(1) (a
//! spoofed flood churns it and nothing else); the full tier holds
//! `max_tracked` records (both split between workers), evicted by the
//! weighted clock: a candidate (enough ports) outlives any non-candidate,
//! a pair with more ports one with fewer. Both count `evicted` in
//! `state.decoy_probes`, a promotion the full tier refuses `cap_hits`
//! (the pair stays in the first tier), and a candidate or a pair of three
//! ports or more pushed out `lost_detections`. Pairs idle for `window_s`
//! expire. Per packet nothing is allocated: the queue of
//! changed candidates is reused.

use super::record::{AggMsg, Link, PortSlot, Record, Same, answer, kind};
use super::rules::DecoyScanRules;
use crate::decode::summary::{IpInfo, L4, PacketSummary, TcpInfo, tcpflag};
use crate::detect::agg::send;
use crate::detect::core::Shared;
use crate::detect::fair::{Inserted, Probation, Tier, Weighted, credit_of};
use crate::detect::keys::PairKey;
use crate::detect::keys::sweep_every;
use crate::detect::sources::Sources;
use crate::detect::ttl::{Memory, TtlHistory};
use crate::stats::{Stats, Table};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// A pair that has probed one port so far.
#[derive(Clone, Copy, Debug)]
struct First {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    probes: u32,
    kinds: u8,
    ttl_min: u8,
    ttl_max: u8,
    slot: PortSlot,
    first_sport: u16,
    sport: Same<u16>,
    isn: Same<u32>,
    window: Same<u16>,
    options: Same<u32>,
    ipid: (i64, u16),
}

impl First {
    /// The full record holding what this one saw.
    fn promote(&self, src: IpAddr, dst: IpAddr) -> Record {
        let mut r = Record::new(src, dst, self.sensor, self.first_us, self.first_sport);
        r.last_us = self.last_us;
        r.probes = self.probes;
        r.kinds = self.kinds;
        r.ttl_min = self.ttl_min;
        r.ttl_max = self.ttl_max;
        r.sport = self.sport;
        r.isn = self.isn;
        r.window = self.window;
        r.options = self.options;
        r.ports[0] = self.slot;
        r.nports = 1;
        r.sketch.insert(port_key(self.slot.port, self.slot.udp));
        r.ipids[0] = self.ipid;
        r.nipids = 1;
        r
    }
}

fn port_key(port: u16, udp: bool) -> u64 {
    u64::from(port) | (u64::from(udp) << 16)
}

/// One probe's facts.
#[derive(Clone, Copy, Debug)]
struct Probe {
    ts: i64,
    sensor: u16,
    kind: u8,
    ttl: u8,
    port: u16,
    udp: bool,
    sport: u16,
    ip_id: u16,
    /// TCP: sequence number, window, option layout.
    tcp: Option<(u32, u16, u32)>,
}

struct Pair {
    rec: Record,
    candidate: bool,
    queued: bool,
}

impl Weighted for Pair {
    /// A candidate gets the most credit; others one pass per doubling of
    /// their ports.
    fn credit(&self) -> u8 {
        if self.candidate { 15 } else { credit_of(u64::from(self.rec.nports)) }
    }
    fn pinned(&self) -> bool {
        false
    }
    /// Two ports are a client of 80 and 443; three are a scan in the making.
    fn evidence(&self) -> bool {
        self.candidate || self.rec.nports > 2
    }
}

/// One worker's `decoy_scan` state.
pub struct Tap {
    link: Link,
    hist: TtlHistory,
    first: Probation<PairKey, First>,
    pairs: Tier<PairKey, Pair>,
    /// Candidates changed since the last tick.
    queue: Vec<(IpAddr, IpAddr)>,
    min_ports: u64,
    idle_us: i64,
    last_sweep_us: i64,
}

/// The probe type of a TCP segment from its initiator, if it is one.
fn tcp_probe(t: &TcpInfo, payload: u32) -> Option<u8> {
    let f = t.flags & 0xff;
    let (syn, fin, ack, rst) = (t.has(tcpflag::SYN), t.has(tcpflag::FIN), t.has(tcpflag::ACK), t.has(tcpflag::RST));
    if rst {
        return None;
    }
    if ack {
        // A bare ACK carrying a timestamp option belongs to an established
        // connection (RFC 7323: once negotiated, every segment carries it);
        // ACK-scan probes (nmap -sA, hping3 -A) carry no options. Skipping
        // those keeps ordinary traffic out of the probe table.
        return (f == tcpflag::ACK && payload == 0 && t.opts.timestamp.is_none()).then_some(kind::ACK);
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
        Tap {
            link,
            hist: TtlHistory::new(shared.per_worker(rules.history_max_tracked), rules.history_idle_s),
            first: Probation::new(shared.per_worker(rules.max_probation)),
            pairs: Tier::new(shared.per_worker(rules.max_tracked)),
            queue: Vec::with_capacity(256),
            min_ports: u64::from(rules.min_ports),
            idle_us: (rules.window_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    /// What the long memory holds about `addr`.
    pub fn memory(&self, addr: IpAddr) -> Option<&Memory> {
        self.hist.get(addr)
    }

    /// What is known of `addr`: its long memory, else its first contact
    /// from the per-source table.
    fn recall(&self, addr: IpAddr, sources: &Sources) -> Option<Memory> {
        self.hist.get(addr).copied().or_else(|| {
            sources.contact(addr).map(|c| {
                let mut m = Memory::new(c.first_us);
                m.last_us = c.last_us;
                m.answered = c.answered;
                m
            })
        })
    }

    /// Addresses remembered and probe records held (both tiers).
    pub fn sizes(&self) -> (usize, usize) {
        (self.hist.len(), self.first.len() + self.pairs.len())
    }

    /// Handles one packet this worker received; `owner` is its
    /// `dispatch::shard_addr`. `sources` is the worker's per-source table,
    /// which has already seen the packet.
    #[inline]
    pub fn packet(
        &mut self,
        p: &PacketSummary,
        sensor: u16,
        owner: Option<IpAddr>,
        sources: &mut Sources,
        shared: &Shared,
    ) {
        let Some(ip) = &p.ip else { return };
        if owner == Some(ip.src) {
            self.sent(p, ip, sensor, sources, &shared.stats);
        } else if owner == Some(ip.dst) {
            self.received(p, ip, sources, &shared.stats);
        }
    }

    /// A packet sent by an owned address.
    fn sent(&mut self, p: &PacketSummary, ip: &IpInfo, sensor: u16, sources: &Sources, stats: &Stats) {
        let (probe, conv) = match &p.l4 {
            L4::Tcp(t) => {
                // One conversation packet per connection is enough for the
                // baseline and for marking the port completed: the
                // initiator's FIN after the handshake. Data segments are
                // not looked at (one lookup per connection, not per segment).
                let conv = t.has(tcpflag::ACK) && !t.has(tcpflag::RST) && t.has(tcpflag::FIN);
                (tcp_probe(t, p.payload_len).map(|k| (k, t.dport, false)), conv)
            }
            L4::Udp(u) => (Some((kind::UDP, u.dport, true)), false),
            _ => (None, false),
        };
        if probe.is_none() && !conv {
            return;
        }
        if conv {
            self.hist.conversation(ip.src, p.ts_us, ip.ttl, sources.contact(ip.src), stats);
            let port = p.tcp().map_or(0, |t| t.dport);
            self.complete((ip.src, ip.dst), port, false);
        }
        if let Some((kind, port, udp)) = probe {
            let (sport, tcp) = match &p.l4 {
                L4::Tcp(t) => (t.sport, Some((t.seq, t.window, t.opts.layout))),
                L4::Udp(u) => (u.sport, None),
                _ => (0, None),
            };
            let pr = Probe { ts: p.ts_us, sensor, kind, ttl: ip.ttl, port, udp, sport, ip_id: ip.ip_id as u16, tcp };
            self.probe((ip.src, ip.dst), &pr, stats);
        }
    }

    /// A packet sent to an owned address: an answer proves it was reachable.
    fn received(&mut self, p: &PacketSummary, ip: &IpInfo, sources: &mut Sources, stats: &Stats) {
        // What each probed port answered, for port_scan's `distributed`
        // pattern (one lookup per SYN-ACK, RST or ICMP error).
        let answer = match &p.l4 {
            // The SYN-ACK is enough: data to it follows one (one lookup per
            // connection, not per segment).
            L4::Tcp(t) => {
                if t.is_syn_ack() {
                    self.answered((ip.dst, ip.src), t.sport, false, answer::OPEN);
                } else if t.has(tcpflag::RST) {
                    self.answered((ip.dst, ip.src), t.sport, false, answer::CLOSED);
                }
                t.is_syn_ack()
            }
            L4::Udp(u) => {
                self.complete((ip.dst, ip.src), u.sport, true);
                self.answered((ip.dst, ip.src), u.sport, true, answer::OPEN);
                true
            }
            L4::Icmp(i) => {
                if let Some(q) = &i.quoted
                    && q.has_ports
                    && q.src == ip.dst
                    && matches!(q.proto, 6 | 17)
                {
                    self.answered((q.src, q.dst), q.dport, q.proto == 17, answer::UNREACHABLE);
                }
                i.is_echo_reply()
            }
            _ => false,
        };
        if answer {
            sources.mark_answered(ip.dst);
            // An answered ping is an earlier contact too: its request's TTL
            // is a baseline (issue 12: a scanner that only pinged first).
            if matches!(&p.l4, L4::Icmp(i) if i.is_echo_reply())
                && let Some(ttl) = sources.echo_ttl(ip.dst)
            {
                self.hist.conversation(ip.dst, p.ts_us, ttl, sources.contact(ip.dst), stats);
            }
        }
    }

    /// Notes what a probed port of an existing record answered.
    fn answered(&mut self, key: (IpAddr, IpAddr), port: u16, udp: bool, what: u8) {
        self.update_port(key, port, udp, |s| std::mem::replace(&mut s.answer, what) != what);
    }

    /// Marks a port of an existing record as carrying a real conversation.
    fn complete(&mut self, key: (IpAddr, IpAddr), port: u16, udp: bool) {
        self.update_port(key, port, udp, |s| !std::mem::replace(&mut s.completed, true));
    }

    /// Applies `change` to the slot of `port` in the pair's record, if the
    /// pair and port are known; `change` says whether it changed anything,
    /// and a changed candidate is queued for the next snapshot.
    fn update_port(&mut self, key: (IpAddr, IpAddr), port: u16, udp: bool, change: impl FnOnce(&mut PortSlot) -> bool) {
        if let Some(f) = self.first.get_mut(&PairKey::from(key)) {
            if f.slot.port == port && f.slot.udp == udp {
                change(&mut f.slot);
            }
            return;
        }
        let Some(e) = self.pairs.get_mut(&PairKey::from(key)) else { return };
        let n = usize::from(e.rec.nports);
        if let Some(s) = e.rec.ports.iter_mut().take(n).find(|s| s.port == port && s.udp == udp)
            && change(s)
            && e.candidate
            && !e.queued
        {
            e.queued = true;
            self.queue.push(key);
        }
    }

    fn probe(&mut self, key: (IpAddr, IpAddr), pr: &Probe, stats: &Stats) {
        // Most pairs stay in the first tier: look there first.
        let first = self.first.get_mut(&PairKey::from(key));
        if let Some(f) = first {
            if f.slot.port == pr.port && f.slot.udp == pr.udp {
                see_first(f, pr);
                return;
            }
            // A second port: the pair gets a full record.
            let Some(f) = self.first.remove(&PairKey::from(key)) else { return };
            let rec = f.promote(key.0, key.1);
            let table = stats.table(Table::DecoyProbes);
            match self.pairs.insert(PairKey::from(key), Pair { rec, candidate: false, queued: false }) {
                Inserted::Refused(_) => {
                    // Every slot the hand looked at earned its place: the
                    // pair stays a first-tier one.
                    table.cap_hits.fetch_add(1, Relaxed);
                    let mut f = f;
                    see_first(&mut f, pr);
                    self.first.insert(PairKey::from(key), f);
                    return;
                }
                Inserted::Replaced(_, old) => {
                    table.evicted.fetch_add(1, Relaxed);
                    if old.evidence() {
                        table.lost_detections.fetch_add(1, Relaxed);
                    }
                }
                Inserted::Stored => {}
            }
        } else if !self.pairs.contains(&PairKey::from(key)) {
            self.first_probe(key, pr, stats);
            return;
        }
        let min_ports = self.min_ports;
        let Some(e) = self.pairs.get_mut(&PairKey::from(key)) else { return };
        let r = &mut e.rec;
        r.sensor = pr.sensor;
        r.first_us = r.first_us.min(pr.ts);
        r.last_us = r.last_us.max(pr.ts);
        r.probes = r.probes.saturating_add(1);
        r.kinds |= pr.kind;
        r.ttl_min = r.ttl_min.min(pr.ttl);
        r.ttl_max = r.ttl_max.max(pr.ttl);
        r.sport.see(pr.sport);
        if let Some((seq, window, layout)) = pr.tcp {
            r.isn.see(seq);
            r.window.see(window);
            r.options.see(layout);
        }
        if let Some(slot) = r.ipids.get_mut(usize::from(r.nipids)) {
            *slot = (pr.ts, pr.ip_id);
            r.nipids += 1;
        }
        let n = usize::from(r.nports);
        let known = r.ports.iter().take(n).any(|s| s.port == pr.port && s.udp == pr.udp);
        if !known {
            match r.ports.get_mut(n) {
                Some(slot) => {
                    *slot = PortSlot {
                        port: pr.port,
                        ip_id: pr.ip_id,
                        udp: pr.udp,
                        completed: false,
                        answer: answer::NONE,
                        ttl: pr.ttl,
                    };
                    r.nports += 1;
                }
                None => r.ports_more = true,
            }
        }
        r.sketch.insert(port_key(pr.port, pr.udp));
        if !e.candidate && r.distinct_ports() >= min_ports {
            e.candidate = true;
        }
        if e.candidate && !e.queued {
            e.queued = true;
            self.queue.push(key);
        }
    }

    /// A pair's first probe: a small first-tier record.
    fn first_probe(&mut self, key: (IpAddr, IpAddr), pr: &Probe, stats: &Stats) {
        let mut f = First {
            sensor: pr.sensor,
            first_us: pr.ts,
            last_us: pr.ts,
            probes: 0,
            kinds: 0,
            ttl_min: u8::MAX,
            ttl_max: 0,
            slot: PortSlot {
                port: pr.port,
                ip_id: pr.ip_id,
                udp: pr.udp,
                completed: false,
                answer: answer::NONE,
                ttl: pr.ttl,
            },
            first_sport: pr.sport,
            sport: Same::default(),
            isn: Same::default(),
            window: Same::default(),
            options: Same::default(),
            ipid: (pr.ts, pr.ip_id),
        };
        see_first(&mut f, pr);
        let evicted = self.first.insert(PairKey::from(key), f);
        stats.table(Table::DecoyProbes).evicted.fetch_add(evicted, Relaxed);
    }

    /// Sends the candidates changed since the last tick, tagged `tag`.
    fn send_changed(&mut self, tag: i64, sources: &Sources, stats: &Stats) {
        let mut queue = std::mem::take(&mut self.queue);
        for key in queue.drain(..) {
            let Some(e) = self.pairs.get_mut(&PairKey::from(key)) else { continue };
            e.queued = false;
            let mut rec = e.rec;
            rec.tag = tag;
            rec.memory = self.recall(key.0, sources);
            send(&self.link, AggMsg::Data(rec), stats);
        }
        self.queue = queue;
    }

    /// A tick at packet time `ts`: hand over the changed candidates and the
    /// watermark, then expire idle state. Expiry runs on the ticks' times
    /// alone, which every worker shares, so what expires when does not
    /// depend on how sources are spread over workers.
    pub fn tick(&mut self, ts: i64, sources: &Sources, shared: &Shared) {
        let stats = &shared.stats;
        self.send_changed(ts, sources, stats);
        send(&self.link, AggMsg::Watermark { worker: self.link.worker, ts }, stats);
        self.hist.expire(ts, stats);
        if ts.saturating_sub(self.last_sweep_us) < sweep_every(self.idle_us) {
            return;
        }
        self.last_sweep_us = ts;
        let (now, idle) = (ts, self.idle_us);
        let mut gone = self.pairs.retain(|_, e| now.saturating_sub(e.rec.last_us) <= idle);
        gone += self.first.retain(|_, f| now.saturating_sub(f.last_us) <= idle);
        self.queue.retain(|k| self.pairs.contains(&PairKey::from(*k)));
        stats.table(Table::DecoyProbes).expired.fetch_add(gone, Relaxed);
    }

    /// End of input or shutdown: the last snapshots, then `Done`.
    pub fn finish(&mut self, sources: &Sources, shared: &Shared) {
        self.send_changed(i64::MAX, sources, &shared.stats);
        send(&self.link, AggMsg::Done { worker: self.link.worker }, &shared.stats);
    }
}

/// Adds a probe to the same port of a first-tier pair.
fn see_first(f: &mut First, pr: &Probe) {
    f.sensor = pr.sensor;
    f.first_us = f.first_us.min(pr.ts);
    f.last_us = f.last_us.max(pr.ts);
    f.probes = f.probes.saturating_add(1);
    f.kinds |= pr.kind;
    f.ttl_min = f.ttl_min.min(pr.ttl);
    f.ttl_max = f.ttl_max.max(pr.ttl);
    f.sport.see(pr.sport);
    if let Some((seq, window, layout)) = pr.tcp {
        f.isn.see(seq);
        f.window.see(window);
        f.options.see(layout);
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
