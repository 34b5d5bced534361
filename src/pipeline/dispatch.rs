//! Sharding and batching: which analyzer thread owns a packet, and how
//! summaries travel there.
//!
//! Every packet is keyed on the address of the side that *initiated* the
//! exchange (see `shard_addr`), so a SYN, its SYN-ACK or RST, and an ICMP
//! error quoting it all reach the same worker, and a source's probes across
//! many hosts and ports meet in one per-source table. Each worker owns its
//! state outright; nothing on the hot path takes a lock.
//!
//! The reader fills one batch per worker and sends it when full, when packet
//! time crosses a tick boundary (then every worker gets a `Tick`, so idle
//! workers still expire state on packet time), or when a live capture idles.
//! Batch buffers come back through a return channel and are reused.

use crate::decode::summary::{L4, PacketSummary, tcpflag, victim};
use crate::homenet::HomeNet;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Packets per batch.
pub const BATCH: usize = 1024;
/// Batches in flight per worker.
pub const QUEUE: usize = 16;
/// Packet-time interval between ticks.
pub const TICK_US: i64 = 1_000_000;

/// A run of summaries for one worker, all from one sensor (file/interface).
pub struct Batch {
    pub sensor: u16,
    pub pkts: Vec<PacketSummary>,
}

/// What a worker receives.
pub enum Msg {
    Batch(Batch),
    /// Packet time advanced to this instant; the second value counts the
    /// packets toward the home net read so far (all packets without a home
    /// net), so detectors can state a share of the traffic that does not
    /// depend on thread timing.
    Tick(i64, u64),
    /// Write a stats snapshot of your tables (SIGUSR1).
    Report,
}

/// The address that owns a packet's state.
///
/// - ICMP errors belong to whoever owns the packet they quote, by the same
///   rules (a quoted TCP segment is taken as the SYN or probe it usually is).
/// - A SYN (or a FIN, NULL or Xmas probe: no ACK, no RST) belongs to its
///   source; a SYN-ACK or RST to its destination.
/// - ICMP queries belong to their source, replies to their destination.
/// - Otherwise, with a home net, the outside address; without one (or when
///   both or neither side is inside), the side with the higher port, taken as
///   the client.
pub fn shard_addr(p: &PacketSummary, home: &HomeNet) -> Option<IpAddr> {
    let ip = p.ip.as_ref()?;
    let (src, dst) = (ip.src, ip.dst);
    Some(match &p.l4 {
        L4::Icmp(i) => match (&i.quoted, icmp_is_reply(i.v6, i.icmp_type)) {
            (Some(q), _) => match q.proto {
                17 if q.has_ports => unflagged(q.src, q.dst, q.sport, q.dport, home),
                _ => q.src,
            },
            (None, true) => dst,
            (None, false) => src,
        },
        // A SYN, and the probes with neither ACK nor RST (FIN, NULL, Xmas),
        // belong to the prober, like the RSTs that answer them.
        L4::Tcp(t) if t.is_syn_only() || !(t.has(tcpflag::ACK) || t.has(tcpflag::RST)) => src,
        L4::Tcp(t) if t.is_syn_ack() || t.has(tcpflag::RST) => dst,
        L4::Tcp(t) => unflagged(src, dst, t.sport, t.dport, home),
        L4::Udp(u) => unflagged(src, dst, u.sport, u.dport, home),
        _ => outside(src, dst, home).unwrap_or(src),
    })
}

/// Owner of a packet with no request/answer marker: the outside address,
/// else the side with the higher port (the client), else the source.
#[inline]
fn unflagged(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, home: &HomeNet) -> IpAddr {
    outside(src, dst, home).unwrap_or(if sport < dport { dst } else { src })
}

/// The one address outside the home net, when exactly one is.
#[inline]
fn outside(src: IpAddr, dst: IpAddr, home: &HomeNet) -> Option<IpAddr> {
    if home.is_empty() {
        return None;
    }
    match (home.contains(src), home.contains(dst)) {
        (true, false) => Some(dst),
        (false, true) => Some(src),
        _ => None,
    }
}

fn icmp_is_reply(v6: bool, t: u8) -> bool {
    if v6 { matches!(t, 129 | 131 | 136) } else { matches!(t, 0 | 14 | 16 | 18) }
}

/// Home addresses seen sending, as one bit per address hash (4 Mi bits,
/// 512 KiB, never cleared): read in packet order by the reader alone, so the
/// `dst_spoke` flag it sets is the same whatever the workers' timing. A hash
/// collision can only claim a host spoke when it did not, which makes the
/// detectors that need a return path (anomaly's `backscatter`) speak where
/// they would have stayed silent: with 10,000 home hosts, 1 in 400.
struct Spoke {
    bits: Box<[u64]>,
}

impl Spoke {
    const WORDS: usize = 1 << 16;

    fn new() -> Spoke {
        Spoke { bits: vec![0u64; Self::WORDS].into_boxed_slice() }
    }

    #[inline]
    fn slot(a: IpAddr) -> (usize, u64) {
        let h = crate::detect::keys::mix(crate::detect::keys::addr_key(a));
        (((h >> 6) as usize) & (Self::WORDS - 1), 1u64 << (h & 63))
    }

    #[inline]
    fn mark(&mut self, a: IpAddr) {
        let (w, b) = Self::slot(a);
        if let Some(x) = self.bits.get_mut(w) {
            *x |= b;
        }
    }

    #[inline]
    fn has(&self, a: IpAddr) -> bool {
        let (w, b) = Self::slot(a);
        self.bits.get(w).is_some_and(|x| x & b != 0)
    }
}

/// Maps an address to one of `n` workers.
#[inline]
pub fn worker_of(addr: IpAddr, n: usize) -> usize {
    let h = match addr {
        IpAddr::V4(a) => u64::from(u32::from(a)).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            ((v as u64) ^ ((v >> 64) as u64).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
    };
    (((h >> 32) * n as u64) >> 32) as usize
}

/// The reader's end of the worker channels.
pub struct Dispatcher {
    home: HomeNet,
    txs: Vec<Sender<Msg>>,
    pool: Receiver<Vec<PacketSummary>>,
    pending: Vec<Vec<PacketSummary>>,
    sensor: u16,
    /// Live capture: never block; count drops instead.
    lossy: bool,
    next_tick: i64,
    last_ts: i64,
    /// Packets toward the home net (all packets without one).
    inbound: u64,
    /// Home addresses seen sending (see `Spoke`).
    spoke: Spoke,
    /// Some home address was seen sending.
    home_spoke: bool,
    /// Home addresses that received a packet (same hashing as `spoke`).
    targeted: Spoke,
    /// Summaries copied for the flood detector's per-victim shard.
    copies: u64,
    stats: std::sync::Arc<Stats>,
}

/// The worker's end: its inbox and the channel that returns empty buffers.
pub struct WorkerPort {
    pub rx: Receiver<Msg>,
    pub recycle: Sender<Vec<PacketSummary>>,
}

impl Dispatcher {
    /// Creates the channels for `workers` analyzer threads.
    pub fn new(
        workers: usize,
        home: HomeNet,
        lossy: bool,
        stats: std::sync::Arc<Stats>,
    ) -> (Dispatcher, Vec<WorkerPort>) {
        let workers = workers.max(1);
        let (recycle, pool) = bounded(workers * (QUEUE + 2));
        let mut txs = Vec::with_capacity(workers);
        let mut ports = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = bounded(QUEUE);
            txs.push(tx);
            ports.push(WorkerPort { rx, recycle: recycle.clone() });
        }
        let pending = (0..workers).map(|_| Vec::with_capacity(BATCH)).collect();
        let d = Dispatcher {
            home,
            txs,
            pool,
            pending,
            sensor: 0,
            lossy,
            next_tick: i64::MIN,
            last_ts: 0,
            inbound: 0,
            spoke: Spoke::new(),
            targeted: Spoke::new(),
            home_spoke: false,
            copies: 0,
            stats,
        };
        (d, ports)
    }

    /// Starts a new sensor (file); flushes what belongs to the previous one.
    pub fn set_sensor(&mut self, sensor: u16) {
        if sensor != self.sensor {
            self.flush_all();
            self.sensor = sensor;
        }
    }

    /// Routes one summary.
    #[inline]
    pub fn push(&mut self, p: &PacketSummary) {
        // Counted before the tick, so a tick's count includes the packet it
        // precedes.
        let mut dst_spoke = false;
        // Before this packet: a home host's own first packet does not make
        // its return path visible to itself.
        let home_spoke = self.home_spoke;
        if let Some(ip) = &p.ip {
            if self.home.is_empty() {
                self.inbound += 1;
            } else if self.home.contains(ip.src) {
                self.spoke.mark(ip.src);
                self.home_spoke = true;
            } else if self.home.contains(ip.dst) {
                self.inbound += 1;
                dst_spoke = self.spoke.has(ip.dst);
                self.targeted.mark(ip.dst);
            }
        }
        if p.ts_us >= self.next_tick {
            self.tick(p.ts_us);
        }
        let n = self.txs.len();
        let owner = shard_addr(p, &self.home);
        let owner_is_src = owner.is_some() && owner == p.ip.as_ref().map(|ip| ip.src);
        let owner_is_dst = !owner_is_src && owner.is_some() && owner == p.ip.as_ref().map(|ip| ip.dst);
        let w = match owner {
            Some(a) if n > 1 => worker_of(a, n),
            _ => 0,
        };
        self.last_ts = self.last_ts.max(p.ts_us);
        // The flood detector's per-victim shard (detect::flood): the roles
        // whose victim lives in this packet's worker are marked on it; the
        // others get a copy in the victim's worker.
        let roles = crate::detect::flood::victim_roles(p);
        let (mut here, mut away) = (roles, [(usize::MAX, 0u8); 2]);
        if roles != 0
            && n > 1
            && let Some(ip) = &p.ip
        {
            here = 0;
            for (i, (bit, addr)) in [(victim::DST, ip.dst), (victim::SRC, ip.src)].into_iter().enumerate() {
                if roles & bit == 0 {
                    continue;
                }
                let t = worker_of(addr, n);
                if t == w {
                    here |= bit;
                } else if i == 1 && away[0].0 == t {
                    away[0].1 |= bit;
                } else {
                    away[i] = (t, bit);
                }
            }
        }
        let buf = &mut self.pending[w];
        buf.push(*p);
        // Set in place: changing a copy of `p` before the push costs a copy.
        if let Some(last) = buf.last_mut() {
            last.owner_is_src = owner_is_src;
            last.owner_is_dst = owner_is_dst;
            last.dst_spoke = dst_spoke;
            last.home_spoke = home_spoke;
            last.victim = here;
        }
        if buf.len() >= BATCH {
            self.flush(w);
        }
        for (t, bits) in away {
            if bits == 0 {
                continue;
            }
            let Some(buf) = self.pending.get_mut(t) else { continue };
            buf.push(*p);
            if let Some(last) = buf.last_mut() {
                last.owner_is_src = false;
                last.owner_is_dst = false;
                last.dst_spoke = dst_spoke;
                last.home_spoke = home_spoke;
                last.victim = bits | victim::COPY;
            }
            self.copies += 1;
            if buf.len() >= BATCH {
                self.flush(t);
            }
        }
    }

    fn tick(&mut self, ts: i64) {
        let first = self.next_tick == i64::MIN;
        self.next_tick = ts.saturating_add(TICK_US);
        self.last_ts = ts;
        self.stats.clock_us.store(ts, Relaxed);
        if first {
            return;
        }
        self.flush_all();
        for w in 0..self.txs.len() {
            self.send(w, Msg::Tick(ts, self.inbound), 0);
        }
    }

    /// Asks every worker to publish its table sizes.
    pub fn report(&mut self) {
        for w in 0..self.txs.len() {
            self.send(w, Msg::Report, 0);
        }
    }

    /// Sends every partial batch (idle live link, end of a file).
    pub fn flush_all(&mut self) {
        for w in 0..self.txs.len() {
            self.flush(w);
        }
    }

    fn flush(&mut self, w: usize) {
        if self.pending[w].is_empty() {
            return;
        }
        let fresh = self.pool.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let pkts = std::mem::replace(&mut self.pending[w], fresh);
        let n = pkts.len() as u64;
        self.send(w, Msg::Batch(Batch { sensor: self.sensor, pkts }), n);
    }

    fn send(&mut self, w: usize, msg: Msg, pkts: u64) {
        let tx = &self.txs[w];
        if !self.lossy {
            // A worker that hung up has already failed; its error surfaces at join.
            let _ = tx.send(msg);
            return;
        }
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                self.stats.channel_drops.fetch_add(pkts, Relaxed);
                if let Msg::Batch(mut b) = m {
                    b.pkts.clear();
                    self.pending[w] = if self.pending[w].is_empty() { b.pkts } else { Vec::new() };
                }
            }
        }
    }

    /// The return-path figures (`stats.return_path`): home hosts that
    /// received packets, those of them never seen sending, and whether any
    /// home host was seen sending at all. Counted over hashed bits, so a
    /// collision can merge two hosts (the counts are then a little low).
    fn publish_return_path(&self) {
        let (mut targeted, mut silent, mut spoke) = (0u64, 0u64, 0u64);
        for (t, s) in self.targeted.bits.iter().zip(self.spoke.bits.iter()) {
            targeted += u64::from(t.count_ones());
            silent += u64::from((t & !s).count_ones());
            spoke += u64::from(s.count_ones());
        }
        let rp = &self.stats.return_path;
        rp.home_hosts_targeted.store(targeted, Relaxed);
        rp.never_seen_sending.store(silent, Relaxed);
        rp.home_hosts_sending.store(spoke, Relaxed);
        rp.flood_copies.store(self.copies, Relaxed);
    }

    /// Flushes everything and closes the channels, so workers finish.
    pub fn finish(mut self) {
        self.stats.clock_us.store(self.last_ts, Relaxed);
        self.publish_return_path();
        self.flush_all();
        if self.next_tick != i64::MIN {
            // The final count, for the detections flushed at the end.
            for w in 0..self.txs.len() {
                self.send(w, Msg::Tick(self.last_ts, self.inbound), 0);
            }
        }
        self.txs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::testutil::ipv4;
    use crate::decode::summary::{IcmpInfo, Quoted};

    fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u16) -> PacketSummary {
        crate::decode::summary::testutil::tcp(0, src, dst, (sport, dport), flags, 1, 0)
    }

    #[test]
    fn syn_and_answers_share_an_owner() {
        let h = HomeNet::default();
        let a: IpAddr = "198.51.100.2".parse().unwrap();
        let syn = tcp("198.51.100.2", "192.0.2.10", 2000, 3306, tcpflag::SYN);
        let rst = tcp("192.0.2.10", "198.51.100.2", 3306, 2000, tcpflag::RST | tcpflag::ACK);
        let sa = tcp("192.0.2.10", "198.51.100.2", 3306, 2000, tcpflag::SYN | tcpflag::ACK);
        assert_eq!(shard_addr(&syn, &h), Some(a));
        assert_eq!(shard_addr(&rst, &h), Some(a));
        assert_eq!(shard_addr(&sa, &h), Some(a));
        let mut icmp = PacketSummary::new(0, 70, 70);
        icmp.ip = Some(ipv4("192.0.2.1", "198.51.100.2", 1));
        icmp.l4 = L4::Icmp(IcmpInfo {
            v6: false,
            icmp_type: 3,
            code: 3,
            echo: None,
            quoted: Some(Quoted {
                src: a,
                dst: "192.0.2.10".parse().unwrap(),
                proto: 6,
                ttl: 60,
                ip_id: 1,
                sport: 2000,
                dport: 3306,
                has_ports: true,
                tcp_seq: Some(1),
                icmp_type: None,
            }),
        });
        assert_eq!(shard_addr(&icmp, &h), Some(a));
    }

    #[test]
    fn an_icmp_error_follows_the_udp_probe_it_quotes() {
        // An inside host traces out: the probe and the time-exceeded quoting it
        // must meet, with and without a home net.
        for home in [HomeNet::default(), HomeNet::parse("192.0.2.0/24").unwrap()] {
            let mut probe = PacketSummary::new(0, 60, 60);
            probe.ip = Some(ipv4("192.0.2.10", "203.0.113.9", 17));
            probe.l4 = L4::Udp(crate::decode::summary::UdpInfo { sport: 33000, dport: 33440 });
            let mut err = PacketSummary::new(0, 70, 70);
            err.ip = Some(ipv4("198.51.100.1", "192.0.2.10", 1));
            err.l4 = L4::Icmp(IcmpInfo {
                v6: false,
                icmp_type: 11,
                code: 0,
                echo: None,
                quoted: Some(Quoted {
                    src: "192.0.2.10".parse().unwrap(),
                    dst: "203.0.113.9".parse().unwrap(),
                    proto: 17,
                    ttl: 1,
                    ip_id: 5,
                    sport: 33000,
                    dport: 33440,
                    has_ports: true,
                    tcp_seq: None,
                    icmp_type: None,
                }),
            });
            assert_eq!(shard_addr(&probe, &home), shard_addr(&err, &home), "{home}");
        }
    }

    #[test]
    fn a_syn_reaches_its_victims_worker_as_a_copy_only_the_flood_detector_reads() {
        let stats = std::sync::Arc::new(Stats::default());
        let (mut d, _ports) = Dispatcher::new(4, HomeNet::default(), false, stats);
        // A source and a destination that live in different workers.
        let src = "198.51.100.2";
        let dst = (1..=255u8)
            .map(|i| format!("192.0.2.{i}"))
            .find(|a| worker_of(a.parse().unwrap(), 4) != worker_of(src.parse().unwrap(), 4))
            .unwrap();
        let (ws, wd) = (worker_of(src.parse().unwrap(), 4), worker_of(dst.parse().unwrap(), 4));
        d.push(&tcp(src, &dst, 2000, 80, tcpflag::SYN));
        let orig = d.pending[ws].last().copied().unwrap();
        assert_eq!(orig.victim, victim::SRC, "the source's own SYN stays with its owner");
        assert!(orig.owner_is_src);
        let copy = d.pending[wd].last().copied().unwrap();
        assert_eq!(copy.victim, victim::DST | victim::COPY);
        assert!(!copy.owner_is_src && !copy.owner_is_dst);
        assert_eq!(crate::detect::class::of(&copy), crate::detect::class::VICTIM_COPY);
        assert_eq!(crate::detect::class::ALL & crate::detect::class::VICTIM_COPY, 0);
        // Established data is never copied.
        let before: usize = d.pending.iter().map(Vec::len).sum();
        d.push(&tcp(src, &dst, 2000, 80, tcpflag::ACK | tcpflag::PSH));
        assert_eq!(d.pending.iter().map(Vec::len).sum::<usize>(), before + 1);
        assert_eq!(d.copies, 1);
    }

    #[test]
    fn workers_spread_and_stay_in_range() {
        let mut seen = [0usize; 4];
        for i in 0..4096u32 {
            let w = worker_of(IpAddr::V4(i.into()), 4);
            seen[w] += 1;
        }
        assert!(seen.iter().all(|&c| c > 700), "{seen:?}");
    }
}
