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
//! A live capture on an idle link also ticks from the wall clock
//! (`clock::LiveClock`, `idle_tick`), so detections settle on time.
//! Batch buffers come back through a return channel and are reused.
//!
//! Time order: detectors run on packet time and expect it never to go
//! back. A replay holds the last `REORDER` summaries sorted by time and
//! releases the oldest, so a capture stored a little out of order (merged
//! interfaces, multi-queue NICs, files cut and pasted together) is analysed
//! in time order. A packet earlier than one already released (too far out
//! of place, or any step back in a live capture, which holds nothing) is
//! analysed at the time of the packets before it: durations never go
//! negative. Each file's disorder is counted (`Disorder`) for the stats
//! and the reader's note on stderr.
//!
//! IP fragments are reassembled here, before sharding (`push_frame` hands
//! them to `decode::defrag`): the workers see one summary per datagram,
//! with its transport header, at the time of its last fragment. The
//! reassembler expires datagrams on each tick's packet time and delivers
//! what is pending when a file ends.

use crate::decode::defrag::Defrag;
use crate::decode::summary::{L4, LinkKind, PacketSummary, tcpflag, victim};
use crate::homenet::HomeNet;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Packets per batch.
pub const BATCH: usize = 1024;
/// Batches in flight per worker.
pub const QUEUE: usize = 16;
/// Packet-time interval between ticks.
pub const TICK_US: i64 = 1_000_000;
/// Summaries a replay holds to put packets stored out of time order back in
/// order (192 bytes each: 768 KiB). A packet at most this many places out
/// of order is analysed at its own time.
pub const REORDER: usize = 4096;

/// How far one file's (or a live capture's) packets strayed from time order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disorder {
    /// Packets earlier than a packet stored before them.
    pub backwards: u64,
    /// The largest step back, in microseconds: how far a packet was behind
    /// the latest one before it.
    pub max_step_back_us: i64,
    /// Of `backwards`, the packets too far out of place to be put back in
    /// order: analysed at the time of the packets released before them.
    pub late: u64,
    /// The position (1-based) of the first packet that went back.
    pub first_at: u64,
    /// The one step back of the file, to (or before) its first packet, with
    /// time in order on both sides: two captures, or two copies of one,
    /// stored one after the other.
    pub restarts: bool,
}

/// One file's clock: the latest time read and released.
#[derive(Clone, Copy, Debug)]
struct Order {
    /// Packets pushed from this file.
    n: u64,
    /// The first packet's time.
    start: i64,
    /// The previous packet's time.
    prev: i64,
    /// Packets earlier than the one just before them.
    steps: u64,
    /// The first of them went back to the file's start.
    to_start: bool,
    /// The latest packet time read.
    seen_max: i64,
    /// The latest packet time handed to the workers.
    released_max: i64,
    disorder: Disorder,
}

impl Default for Order {
    fn default() -> Order {
        Order {
            n: 0,
            start: i64::MIN,
            prev: i64::MIN,
            steps: 0,
            to_start: false,
            seen_max: i64::MIN,
            released_max: i64::MIN,
            disorder: Disorder::default(),
        }
    }
}

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
        L4::Udp(u) if u.sport == u.dport && is_response(u.dport, p) => outside(src, dst, home).unwrap_or(dst),
        L4::Udp(u) => unflagged(src, dst, u.sport, u.dport, home),
        _ => outside(src, dst, home).unwrap_or(src),
    })
}

/// Which side of `p` its owner is: (the source, the destination). A host
/// talking to itself (a loopback capture: realworld acd_nmapSV, nmap -sV
/// against 127.0.0.1) is both, so the packet's role decides: an answer (a
/// SYN-ACK, a RST, an ICMP reply or error, a datagram from the lower port)
/// belongs to the side that asked, its destination.
pub fn owner_sides(p: &PacketSummary, owner: Option<IpAddr>) -> (bool, bool) {
    let (Some(o), Some(ip)) = (owner, p.ip.as_ref()) else { return (false, false) };
    if ip.src != ip.dst {
        return (o == ip.src, o == ip.dst);
    }
    if o != ip.src {
        return (false, false);
    }
    let answer = match &p.l4 {
        L4::Icmp(i) => i.quoted.is_some() || icmp_is_reply(i.v6, i.icmp_type),
        L4::Tcp(t) if t.is_syn_only() || !(t.has(tcpflag::ACK) || t.has(tcpflag::RST)) => false,
        L4::Tcp(t) if t.is_syn_ack() || t.has(tcpflag::RST) => true,
        L4::Tcp(t) => t.sport < t.dport,
        L4::Udp(u) => u.sport < u.dport,
        _ => false,
    };
    (!answer, answer)
}

/// Ports whose datagrams start with a DNS-format header (RFC 1035 section
/// 4.1.1; NetBIOS name service, RFC 1002 section 4.2.1.1): DNS, NBNS, mDNS,
/// LLMNR. Between two such ports the QR bit tells the answer from the query.
const DNS_FORMAT_PORTS: [u16; 4] = [53, 137, 5353, 5355];

/// A datagram between two equal DNS-format ports (NetBIOS 137 to 137, DNS
/// 53 to 53 between servers) whose header has the response bit set: it
/// belongs with the query it answers, to its destination. Without this the
/// port rule below sends a query and its answer to two owners.
#[inline]
fn is_response(port: u16, p: &PacketSummary) -> bool {
    DNS_FORMAT_PORTS.contains(&port) && p.payload_len >= 3 && p.payload_head[2] & 0x80 != 0
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
    /// The fragment reassembler, and the summaries it hands back (kept to
    /// reuse its capacity).
    defrag: Defrag,
    defrag_out: Vec<PacketSummary>,
    /// Some home address was seen sending.
    home_spoke: bool,
    /// Home addresses that received a packet (same hashing as `spoke`).
    targeted: Spoke,
    /// Summaries copied for the flood detector's per-victim shard.
    copies: u64,
    stats: std::sync::Arc<Stats>,
    /// Summaries held back to restore time order, oldest first (replay).
    held: VecDeque<PacketSummary>,
    /// How many may be held: `REORDER` in a replay, 0 live.
    reach: usize,
    /// The current file's clock and disorder.
    order: Order,
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
            defrag: Defrag::new(),
            defrag_out: Vec::with_capacity(crate::decode::defrag::MAX_DATAGRAMS + 2),
            targeted: Spoke::new(),
            home_spoke: false,
            copies: 0,
            stats,
            // A live capture holds nothing: an event must not wait for
            // 4096 more packets on a quiet link.
            held: VecDeque::with_capacity(if lossy { 0 } else { REORDER + 1 }),
            reach: if lossy { 0 } else { REORDER },
            order: Order::default(),
        };
        (d, ports)
    }

    /// Starts a new sensor (file): releases and sends what belongs to the
    /// previous one, and starts the new file's time order afresh.
    pub fn set_sensor(&mut self, sensor: u16) {
        // Fragments never join across files.
        self.defrag_flush();
        self.release_all();
        self.flush_batches();
        self.sensor = sensor;
        self.order = Order::default();
    }

    /// Routes one decoded frame: a fragment goes to the reassembler (`data`
    /// is the frame it was decoded from), anything else straight on.
    #[inline]
    pub fn push_frame(&mut self, link: LinkKind, data: &[u8], p: &PacketSummary) {
        if Defrag::is_fragment(p) {
            self.fragment(link, data, p);
        } else {
            self.push(p);
        }
    }

    /// A fragment: live, its time drives the ticks (and so the
    /// reassembler's timeouts) even while it is held (a replay ticks on the
    /// reordered packets, in `route`); what the reassembler hands back goes
    /// through `push`, into time order.
    fn fragment(&mut self, link: LinkKind, data: &[u8], p: &PacketSummary) {
        if self.reach == 0 && p.ts_us >= self.next_tick {
            self.tick(p.ts_us);
        }
        let mut out = std::mem::take(&mut self.defrag_out);
        self.defrag.feed(link, data, p, &mut out);
        self.route_all(&mut out);
    }

    fn route_all(&mut self, out: &mut Vec<PacketSummary>) {
        for q in out.iter() {
            self.push(q);
        }
        out.clear();
        self.defrag_out = std::mem::take(out);
    }

    /// Delivers what the reassembler still holds (end of a file or run).
    fn defrag_flush(&mut self) {
        let mut out = std::mem::take(&mut self.defrag_out);
        self.defrag.flush(self.last_ts, &mut out);
        self.route_all(&mut out);
        self.stats.publish_fragments(&self.defrag.counts());
    }

    /// This file's disorder so far; the counts start again from zero.
    pub fn take_disorder(&mut self) -> Disorder {
        let o = &mut self.order;
        o.disorder.restarts = o.steps == 1 && o.to_start;
        std::mem::take(&mut o.disorder)
    }

    /// Takes one summary, in the order the input stored it, and hands it to
    /// its worker in time order (see the module comment).
    #[inline]
    pub fn push(&mut self, p: &PacketSummary) {
        let ts = p.ts_us;
        self.order.n += 1;
        if self.order.n == 1 {
            self.order.start = ts;
        }
        if ts < self.order.prev {
            self.step_back(ts);
        }
        self.order.prev = ts;
        if ts >= self.order.seen_max {
            self.order.seen_max = ts;
        } else {
            self.went_back(ts);
            if ts < self.order.released_max {
                self.late(p);
                return;
            }
        }
        if self.reach == 0 {
            self.order.released_max = ts;
            self.route(p);
            return;
        }
        if self.held.back().is_none_or(|b| b.ts_us <= ts) {
            self.held.push_back(*p);
        } else {
            // After the packets of the same time: stored order among equals.
            let i = self.held.partition_point(|q| q.ts_us <= ts);
            self.held.insert(i, *p);
        }
        if self.held.len() > self.reach
            && let Some(q) = self.held.pop_front()
        {
            self.order.released_max = q.ts_us;
            self.route(&q);
        }
    }

    /// A packet earlier than the one just before it.
    #[cold]
    fn step_back(&mut self, ts: i64) {
        let o = &mut self.order;
        o.steps += 1;
        if o.steps == 1 {
            o.to_start = ts <= o.start;
        }
    }

    /// A packet earlier than one stored before it.
    #[cold]
    fn went_back(&mut self, ts: i64) {
        let step = self.order.seen_max.saturating_sub(ts);
        let d = &mut self.order.disorder;
        d.backwards += 1;
        if d.first_at == 0 {
            d.first_at = self.order.n;
        }
        d.max_step_back_us = d.max_step_back_us.max(step);
        self.stats.time_backwards.fetch_add(1, Relaxed);
        self.stats.time_max_step_back_us.fetch_max(step, Relaxed);
    }

    /// A packet earlier than one already released: too late to be put in
    /// order, it is analysed at the time of the packets released before it.
    #[cold]
    fn late(&mut self, p: &PacketSummary) {
        self.order.disorder.late += 1;
        self.stats.time_late.fetch_add(1, Relaxed);
        let mut q = *p;
        q.ts_us = self.order.released_max;
        self.route(&q);
    }

    /// Releases every held summary, oldest first.
    fn release_all(&mut self) {
        while let Some(q) = self.held.pop_front() {
            self.order.released_max = q.ts_us;
            self.route(&q);
        }
    }

    /// Routes one summary, in time order, to its worker's batch.
    #[inline]
    fn route(&mut self, p: &PacketSummary) {
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
        let (owner_is_src, owner_is_dst) = owner_sides(p, owner);
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
        self.flush_batches();
        for w in 0..self.txs.len() {
            self.send(w, Msg::Tick(ts, self.inbound), 0);
        }
        // Datagrams past their timeout go on at this tick's time.
        let mut out = std::mem::take(&mut self.defrag_out);
        self.defrag.expire(ts, &mut out);
        self.route_all(&mut out);
        self.stats.publish_fragments(&self.defrag.counts());
    }

    /// Live, on an idle link: packet time has reached `ts` by the wall
    /// clock (`clock::LiveClock`), so the workers tick with it once a tick
    /// interval has passed. Nothing before the first packet.
    pub fn idle_tick(&mut self, ts: i64) {
        if self.next_tick != i64::MIN && ts >= self.next_tick && ts >= self.last_ts {
            self.tick(ts);
        }
    }

    /// Asks every worker to publish its table sizes.
    pub fn report(&mut self) {
        for w in 0..self.txs.len() {
            self.send(w, Msg::Report, 0);
        }
    }

    /// Releases what is held and sends every partial batch (idle live link).
    pub fn flush_all(&mut self) {
        self.release_all();
        self.flush_batches();
    }

    /// Sends every partial batch.
    fn flush_batches(&mut self) {
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
        self.defrag_flush();
        self.release_all();
        self.stats.clock_us.store(self.last_ts, Relaxed);
        self.publish_return_path();
        self.flush_batches();
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
    fn a_query_and_its_answer_between_equal_ports_share_an_owner() {
        // NetBIOS 137 to 137 inside the home net and with no home net: the
        // answer (QR bit set) follows its query to the asker.
        let asker: IpAddr = "192.0.2.7".parse().unwrap();
        for home in [HomeNet::default(), HomeNet::parse("192.0.2.0/24").unwrap()] {
            for port in DNS_FORMAT_PORTS {
                let dgram = |src, dst, flags: u8| {
                    let mut p = PacketSummary::new(0, 92, 92);
                    p.ip = Some(ipv4(src, dst, 17));
                    p.l4 = L4::Udp(crate::decode::summary::UdpInfo { sport: port, dport: port });
                    p.payload_len = 50;
                    p.payload_head = [0x12, 0x34, flags, 0, 0, 1, 0, 0];
                    p
                };
                let query = dgram("192.0.2.7", "192.0.2.20", 0x01);
                let answer = dgram("192.0.2.20", "192.0.2.7", 0x85);
                assert_eq!(shard_addr(&query, &home), Some(asker), "port {port}");
                assert_eq!(shard_addr(&answer, &home), Some(asker), "port {port}");
            }
        }
        // Other equal ports keep the port rule (the source), and with a home
        // net the outside address owns both directions as before.
        let mut ike = PacketSummary::new(0, 92, 92);
        ike.ip = Some(ipv4("192.0.2.20", "192.0.2.7", 17));
        ike.l4 = L4::Udp(crate::decode::summary::UdpInfo { sport: 500, dport: 500 });
        ike.payload_len = 50;
        ike.payload_head = [0, 0, 0x80, 0, 0, 0, 0, 0];
        assert_eq!(shard_addr(&ike, &HomeNet::default()), Some("192.0.2.20".parse().unwrap()));
        let mut out = ike;
        out.l4 = L4::Udp(crate::decode::summary::UdpInfo { sport: 137, dport: 137 });
        out.ip = Some(ipv4("192.0.2.20", "198.51.100.9", 17));
        assert_eq!(shard_addr(&out, &HomeNet::parse("192.0.2.0/24").unwrap()), Some("198.51.100.9".parse().unwrap()));
    }

    #[test]
    fn a_host_talking_to_itself_owns_the_asking_side() {
        use crate::decode::summary::{tcpflag::*, testutil};
        let lo = "127.0.0.1";
        let syn = testutil::tcp(0, lo, lo, (45081, 80), SYN, 1, 0);
        let rst = testutil::tcp(1, lo, lo, (81, 45081), RST | ACK, 0, 2);
        let syn_ack = testutil::tcp(1, lo, lo, (80, 45081), SYN | ACK, 5, 2);
        let owner = Some(lo.parse().unwrap());
        assert_eq!(owner_sides(&syn, owner), (true, false));
        assert_eq!(owner_sides(&rst, owner), (false, true));
        assert_eq!(owner_sides(&syn_ack, owner), (false, true));
        // Two addresses: the owner is the side with its address.
        let other = testutil::tcp(1, "192.0.2.20", "198.51.100.10", (80, 40000), RST | ACK, 0, 2);
        assert_eq!(owner_sides(&other, Some("198.51.100.10".parse().unwrap())), (false, true));
        assert_eq!(owner_sides(&other, None), (false, false));
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

    /// The packet times one worker received, in order.
    fn received(port: &WorkerPort) -> Vec<i64> {
        let mut ts = Vec::new();
        for m in port.rx.try_iter() {
            if let Msg::Batch(b) = m {
                ts.extend(b.pkts.iter().map(|p| p.ts_us));
            }
        }
        ts
    }

    fn at(ts: i64) -> PacketSummary {
        crate::decode::summary::testutil::tcp(ts, "198.51.100.2", "192.0.2.10", (2000, 445), tcpflag::SYN, 1, 0)
    }

    #[test]
    fn a_replay_puts_packets_back_in_time_order_and_counts_the_disorder() {
        let stats = std::sync::Arc::new(Stats::default());
        let (mut d, ports) = Dispatcher::new(1, HomeNet::default(), false, std::sync::Arc::clone(&stats));
        // Blocks stored newest first, as realworld mal_445_scan.pcap is.
        for ts in [900, 901, 500, 502, 501, 100, 103] {
            d.push(&at(ts * 1_000_000));
        }
        let dis = d.take_disorder();
        assert_eq!(dis.backwards, 5);
        assert_eq!(dis.first_at, 3);
        assert_eq!(dis.max_step_back_us, 801_000_000);
        assert_eq!(dis.late, 0);
        assert!(!dis.restarts);
        d.finish();
        let got: Vec<i64> = received(&ports[0]).iter().map(|t| t / 1_000_000).collect();
        assert_eq!(got, [100, 103, 500, 501, 502, 900, 901]);
        assert_eq!(stats.time_backwards.load(Relaxed), 5);
        assert_eq!(stats.time_late.load(Relaxed), 0);
    }

    #[test]
    fn a_packet_beyond_reach_is_analysed_at_the_clock_never_before_it() {
        let stats = std::sync::Arc::new(Stats::default());
        let (mut d, ports) = Dispatcher::new(1, HomeNet::default(), false, std::sync::Arc::clone(&stats));
        let worker = std::thread::spawn(move || {
            let mut ts = Vec::new();
            for m in ports[0].rx.iter() {
                if let Msg::Batch(b) = m {
                    ts.extend(b.pkts.iter().map(|p| p.ts_us));
                }
            }
            ts
        });
        let n = REORDER as i64 + 10;
        for i in 0..n {
            d.push(&at(1_000 + i));
        }
        // Behind every held packet, and behind the 10 already released.
        d.push(&at(5));
        let dis = d.take_disorder();
        assert_eq!((dis.backwards, dis.late), (1, 1));
        d.finish();
        let got = worker.join().unwrap();
        assert_eq!(got.len() as i64, n + 1);
        assert!(got.windows(2).all(|w| w[0] <= w[1]), "time order kept");
        assert!(!got.contains(&5), "the late packet takes the clock's time");
        assert_eq!(stats.time_late.load(Relaxed), 1);
    }

    #[test]
    fn a_file_stored_twice_is_a_restart_and_live_holds_nothing() {
        let stats = std::sync::Arc::new(Stats::default());
        let (mut d, ports) = Dispatcher::new(1, HomeNet::default(), true, std::sync::Arc::clone(&stats));
        for ts in [10, 11, 12, 10, 11, 12] {
            d.push(&at(ts));
        }
        d.flush_all();
        // Live: released at once, the repeats at the clock's time.
        assert_eq!(received(&ports[0]), [10, 11, 12, 12, 12, 12]);
        let dis = d.take_disorder();
        assert_eq!((dis.backwards, dis.late, dis.first_at), (2, 2, 4));
        assert!(dis.restarts);
        // A new file starts its own clock: no disorder across files.
        d.set_sensor(1);
        d.push(&at(1));
        assert_eq!(d.take_disorder(), Disorder::default());
    }

    #[test]
    fn a_syn_reaches_its_victims_worker_as_a_copy_only_the_flood_detector_reads() {
        let stats = std::sync::Arc::new(Stats::default());
        // Live (lossy): nothing is held for time order, so a push is routed at once.
        let (mut d, _ports) = Dispatcher::new(4, HomeNet::default(), true, stats);
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
