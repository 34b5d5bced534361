//! `syn_flood` and `reflection`: packet floods toward one victim
//! (SIGNATURES.md section 4, denial of service), keyed by the victim.
//!
//! - `syn_flood`: TCP connection attempts to one (victim, port) at a high
//!   rate: at least `[syn_flood] min_pps` SYNs within one second (a sliding
//!   one-second bucket of packet time). Snort's manual gives 100 connection
//!   attempts per second as its `rate_filter` example for SYN floods (gen 135,
//!   sid 1), and Wang, Zhang and Shin ("Detecting SYN flooding attacks",
//!   INFOCOM 2002) show ordinary servers' SYN arrivals are matched by their
//!   handshakes, so a rate alone is not enough: a busy service at that rate
//!   with ordinary SYNs that it answers is not a flood. The detection also
//!   needs one piece of flood evidence: SYNs no real stack sends (no MSS
//!   option, every operating system's SYN carries one; window 0), a handful of
//!   sources (<= 3) making the whole rate, SYNs left unanswered (less than 20%
//!   answered with the victim's return path in view), TTLs all over the
//!   range, or impossible source addresses. Whether the sources are forged is
//!   judged separately (`spoofed`: "likely" from many sources that each sent
//!   one or two SYNs, random TTLs or impossible sources; "unlikely" from a
//!   few sources with a steady TTL; else "unknown").
//! - `reflection`: answers nobody asked for, from many reflectors to one
//!   victim: UDP from a known amplifying service port (`AMPLIFIERS`, after
//!   US-CERT TA14-017A and Rossow's "Amplification Hell", NDSS 2014), or TCP
//!   SYN-ACKs (SYN-ACK reflection: servers answering SYNs forged with the
//!   victim's address), at least `[reflection] min_pps` a second from at
//!   least `min_reflectors` sources, with the victim's own requests (UDP to
//!   that port; SYNs, for SYN-ACKs) at most `max_solicited_share` of the
//!   answers. A resolver or a browser receives answers too, but to requests
//!   it sent.
//!
//! Where state lives: the dispatcher shards a packet by the address that
//! started its exchange, so the SYNs of a spoofed flood land in every worker.
//! Rather than an aggregator thread, the dispatcher gives this detector a
//! per-victim shard (`pipeline::dispatch`, `PacketSummary::victim`): a
//! packet whose destination's (`victim::DST`) or source's (`victim::SRC`)
//! flood state lives in another worker than its owner is copied there
//! (`victim::COPY`, seen by this detector alone). Only SYNs, SYN-ACKs and
//! UDP to or from an `AMPLIFIERS` port are routed so, and with one worker
//! nothing is copied. Each victim's packets thus meet in one worker in
//! packet order, and the results do not depend on `--workers`.
//!
//! State: keys (victim, vector, port) seen once wait in a probation
//! (`max_probation`, oldest out first); a second packet promotes the key to the tier
//! (`max_tracked`, weighted clock, a confirmed detection pinned). Both split
//! between workers, what they drop counted in `state.flood`. A detection ends
//! `idle_s` after the victim's last packet of that kind.

use super::fair::{Probation, Tier, Weighted};
use super::sources::Sources;
use crate::decode::summary::{L4, PacketSummary, victim};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::keys::{Distinct, Distinct256, SWEEP_US, addr_key};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

crate::rules_section! {
    /// SIGNATURES.md section 4: TCP connection attempts to one service at a flood
    /// rate, with evidence that they are not a busy service's clients.
    pub struct SynFloodRules["syn_flood"] {
        /// SIGNATURES.md section 4: report SYN floods
        enabled: bool = true;
        /// SIGNATURES.md section 4 (floods at one victim); the Snort manual's rate_filter example allows 100 connection attempts a second: SYNs to one (victim, port) within one second
        min_pps: u32 = 100, ints(10, 100_000_000);
        /// SIGNATURES.md section 4: a flood ends after this long without a SYN to the service
        idle_s: f64 = 10.0, above(0.0, 3_600.0);
        /// SIGNATURES.md section 4: cap on (victim, port) entries that repeated, across all workers
        max_tracked: usize = 8192, entries();
        /// SIGNATURES.md section 4: cap on keys seen once (a port scan churns these), across all workers
        max_probation: usize = 32768, entries();
    }
}

crate::rules_section! {
    /// SIGNATURES.md section 4: unsolicited answers from many reflectors to one victim
    /// (UDP amplification from the US-CERT TA14-017A services, TCP SYN-ACK reflection).
    pub struct ReflectionRules["reflection"] {
        /// SIGNATURES.md section 4: report reflection and amplification
        enabled: bool = true;
        /// SIGNATURES.md section 4: answers a second from one service to one victim (an RRSIG amplification sample peaks at 90 DNS answers a second, each 4 KB)
        min_pps: u32 = 50, ints(5, 100_000_000);
        /// SIGNATURES.md section 4: distinct reflectors before the answers are called a reflection
        min_reflectors: u32 = 10, ints(2, 1_000_000);
        /// SIGNATURES.md section 4: the victim's own requests at most this share of the answers (a resolver asked for its answers)
        max_solicited_share: f64 = 0.1, floats(0.0, 1.0);
        /// SIGNATURES.md section 4: an attack ends after this long without an answer to the victim
        idle_s: f64 = 10.0, above(0.0, 3_600.0);
    }
}

const SYN_KIND: &str = "syn_flood";
const REFL_KIND: &str = "reflection";
/// The rate bucket.
const BUCKET_US: i64 = 1_000_000;
/// At most this many sources make the whole rate: "a handful of machines".
const FEW_SOURCES: u64 = 3;

/// UDP services abused for amplification: port, name and the bandwidth
/// amplification factor US-CERT TA14-017A (and, for memcached, TA18-060A;
/// ISAKMP/IKE: Cisco's CVE-2016-1287 advisory; WS-Discovery, ARD, CoAP and
/// Ubiquiti discovery: later CISA updates of TA14-017A) reports.
pub const AMPLIFIERS: &[(u16, &str, &str)] = &[
    (17, "qotd", "140.3"),
    (19, "chargen", "358.8"),
    (53, "dns", "28 to 54"),
    (69, "tftp", "60"),
    (111, "portmap", "7 to 28"),
    (123, "ntp", "556.9"),
    (137, "netbios", "3.8"),
    (161, "snmp", "6.3"),
    (389, "cldap", "56 to 70"),
    (500, "isakmp", "unknown"),
    (520, "rip", "131.24"),
    (1434, "mssql", "25"),
    (1900, "ssdp", "30.8"),
    (3283, "ard", "35.5"),
    (3702, "ws-discovery", "10 to 153"),
    (4500, "isakmp-nat-t", "unknown"),
    (5683, "coap", "10 to 50"),
    (10001, "ubiquiti", "30 to 35"),
    (11211, "memcached", "10000 to 51000"),
];

/// The amplifier entry of a UDP port.
#[inline]
pub fn amplifier(port: u16) -> Option<&'static (u16, &'static str, &'static str)> {
    match port {
        17 | 19 | 53 | 69 | 111 | 123 | 137 | 161 | 389 | 500 | 520 | 1434 | 1900 | 3283 | 3702 | 4500 | 5683
        | 10001 | 11211 => AMPLIFIERS.iter().find(|a| a.0 == port),
        _ => None,
    }
}

/// The `victim::DST`/`victim::SRC` roles a packet can play for this
/// detector, for the dispatcher: a SYN counts toward its destination (a
/// flood) and as its source's request (for SYN-ACK reflection); a SYN-ACK
/// toward its destination (reflection) and as its source's answer (a
/// flooded service answering); UDP from an amplifier port toward its
/// destination, UDP to one as its source's request.
#[inline]
pub fn victim_roles(p: &PacketSummary) -> u8 {
    match &p.l4 {
        L4::Tcp(t) if t.is_connection_attempt() || t.is_syn_ack() => victim::DST | victim::SRC,
        L4::Udp(u) => {
            let mut r = 0;
            if amplifier(u.sport).is_some() {
                r |= victim::DST;
            }
            if amplifier(u.dport).is_some() {
                r |= victim::SRC;
            }
            r
        }
        _ => 0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Vector {
    /// SYNs to (victim, port).
    Syn,
    /// SYN-ACKs to the victim, any reflector port (port 0).
    SynAck,
    /// UDP answers from an amplifier port to the victim.
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    victim: IpAddr,
    vector: Vector,
    port: u16,
}

impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        crate::detect::keys::hash_pair(
            &self.victim,
            &self.victim,
            u32::from(self.port) | (self.vector as u32) << 16,
            h,
        );
    }
}

/// Distinct sources: 4096 bits, within a few percent up to about 30,000.
type Sources4096 = Distinct<64>;

/// A majority vote (Boyer-Moore): the value holding more than half, if any.
#[derive(Clone, Copy, Debug)]
struct Vote<T> {
    value: T,
    count: u64,
}

impl<T: PartialEq + Copy> Vote<T> {
    #[inline]
    fn see(&mut self, v: T) {
        if self.count == 0 {
            self.value = v;
            self.count = 1;
        } else if self.value == v {
            self.count += 1;
        } else {
            self.count -= 1;
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    /// SYNs (Syn) or answers (SynAck, Udp) toward the victim.
    packets: u64,
    /// IP bytes of those packets (UDP: the datagram length its header claims).
    bytes: u64,
    sources: Sources4096,
    first_src: IpAddr,
    first_sport: u16,
    top_src: Vote<IpAddr>,
    /// Reflector ports (SynAck).
    ports: Distinct256,
    top_port: Vote<u16>,
    bucket_us: i64,
    bucket_n: u32,
    peak_pps: u32,
    /// Buckets that reached the rule's rate.
    seconds_over: u32,
    /// TTL values seen (a 256-bit set).
    ttls: [u64; 4],
    ttl_min: u8,
    ttl_max: u8,
    /// SYNs without an MSS option, SYNs with window 0.
    no_mss: u64,
    zero_window: u64,
    /// Sources no packet can come from (0/8, 127/8, multicast, 240/4).
    bogon: u64,
    /// Syn: SYN-ACKs from the victim's port. Others: the victim's requests.
    answered: u64,
    /// A packet toward the victim arrived after the victim was seen sending
    /// (the dispatcher's `dst_spoke`), or this worker saw the victim send.
    spoke: bool,
    /// The victim is in the home net (so `spoke` means something).
    home: bool,
    confirmed: bool,
    queued: bool,
    last_emit_us: i64,
    emitted_packets: u64,
}

impl Entry {
    fn new(sensor: u16, ts: i64, src: IpAddr, sport: u16) -> Entry {
        Entry {
            sensor,
            first_us: ts,
            last_us: ts,
            packets: 0,
            bytes: 0,
            sources: Sources4096::default(),
            first_src: src,
            first_sport: sport,
            top_src: Vote { value: src, count: 0 },
            ports: Distinct256::default(),
            top_port: Vote { value: 0, count: 0 },
            bucket_us: i64::MIN,
            bucket_n: 0,
            peak_pps: 0,
            seconds_over: 0,
            ttls: [0; 4],
            ttl_min: u8::MAX,
            ttl_max: 0,
            no_mss: 0,
            zero_window: 0,
            bogon: 0,
            answered: 0,
            spoke: false,
            home: false,
            confirmed: false,
            queued: false,
            last_emit_us: ts,
            emitted_packets: 0,
        }
    }

    /// Distinct sources (the sketch's estimate, never more than the packets).
    fn sources(&self) -> u64 {
        self.sources.estimate().min(self.packets)
    }

    fn ttl_values(&self) -> u32 {
        self.ttls.iter().map(|w| w.count_ones()).sum()
    }

    fn rate_pps(&self) -> f64 {
        let span = (self.last_us - self.first_us).max(BUCKET_US) as f64 / 1e6;
        (self.packets as f64 / span * 10.0).round() / 10.0
    }

    fn answered_share(&self) -> f64 {
        if self.packets == 0 { 0.0 } else { (self.answered as f64 / self.packets as f64 * 1000.0).round() / 1000.0 }
    }
}

impl Weighted for Entry {
    fn credit(&self) -> u8 {
        (64 - self.packets.leading_zeros()).min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
}

/// A source address no packet can honestly carry.
fn bogon(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets()[0];
            o == 0 || o == 127 || o >= 224
        }
        IpAddr::V6(v) => v.is_loopback() || v.is_unspecified() || v.is_multicast(),
    }
}

/// What one packet toward a victim adds to its entry: the few facts
/// `add` reads, so probation can keep a key's first packet in 48 bytes
/// instead of a whole `Entry` (~700): a spoofed flood puts one key per
/// packet there.
#[derive(Clone, Copy, Debug)]
struct Seen {
    ts: i64,
    sensor: u16,
    src: IpAddr,
    /// The source port (TCP, UDP), else 0.
    sport: u16,
    ttl: u8,
    /// IP bytes (UDP: the datagram length its header claims).
    bytes: u32,
    bogon: bool,
    spoke: bool,
    tcp: bool,
    no_mss: bool,
    zero_window: bool,
}

impl Seen {
    #[inline]
    fn of(p: &PacketSummary, ip: &crate::decode::summary::IpInfo, sensor: u16) -> Seen {
        let mut s = Seen {
            ts: p.ts_us,
            sensor,
            src: ip.src,
            sport: 0,
            ttl: ip.ttl,
            bytes: 0,
            bogon: bogon(ip.src) && !bogon(ip.dst),
            spoke: p.dst_spoke || p.home_spoke,
            tcp: false,
            no_mss: false,
            zero_window: false,
        };
        match &p.l4 {
            L4::Tcp(t) => {
                s.sport = t.sport;
                s.tcp = true;
                s.bytes = ip.total_len;
                s.no_mss = t.opts.mss.is_none();
                s.zero_window = t.window == 0;
            }
            L4::Udp(u) => {
                s.sport = u.sport;
                s.bytes = p.payload_len.saturating_add(8 + if ip.is_v6() { 40 } else { 20 });
            }
            _ => {}
        }
        s
    }
}

/// A key seen once, in probation: its first packet, toward the victim or
/// (`answer`) the victim's own.
#[derive(Clone, Copy, Debug)]
struct First {
    seen: Seen,
    answer: bool,
}

/// Counts one packet toward `key.victim` in its entry; true when it makes
/// the key hot (its one-second bucket reached `min`).
#[inline]
fn add(e: &mut Entry, key: &Key, s: &Seen, min: u32) -> bool {
    let ts = s.ts;
    e.last_us = e.last_us.max(ts);
    e.sensor = s.sensor;
    e.packets += 1;
    e.spoke |= s.spoke;
    e.sources.insert(addr_key(s.src));
    e.top_src.see(s.src);
    e.ttls[usize::from(s.ttl >> 6)] |= 1u64 << (s.ttl & 63);
    e.ttl_min = e.ttl_min.min(s.ttl);
    e.ttl_max = e.ttl_max.max(s.ttl);
    e.bogon += u64::from(s.bogon);
    e.bytes += u64::from(s.bytes);
    if s.tcp {
        if key.vector == Vector::Syn {
            e.no_mss += u64::from(s.no_mss);
            e.zero_window += u64::from(s.zero_window);
        } else {
            e.ports.insert(u64::from(s.sport));
            e.top_port.see(s.sport);
        }
    }
    if ts.saturating_sub(e.bucket_us) >= BUCKET_US {
        e.bucket_us = ts;
        e.bucket_n = 0;
    }
    e.bucket_n += 1;
    e.peak_pps = e.peak_pps.max(e.bucket_n);
    if e.bucket_n == min {
        e.seconds_over += 1;
        if !e.confirmed && !e.queued {
            e.queued = true;
            return true;
        }
    }
    false
}

/// The detector's per-worker state.
pub struct Flood {
    syn: SynFloodRules,
    refl: ReflectionRules,
    probation: Probation<Key, First>,
    tier: Tier<Key, Entry>,
    /// Hot keys (a bucket reached the rate) not confirmed yet.
    pending: Vec<Key>,
    update_us: i64,
    last_sweep_us: i64,
}

impl Flood {
    pub fn new(
        syn: &SynFloodRules,
        refl: &ReflectionRules,
        cap: usize,
        probation_cap: usize,
        update_interval_s: f64,
    ) -> Flood {
        Flood {
            syn: syn.clone(),
            refl: refl.clone(),
            probation: Probation::new(probation_cap),
            tier: Tier::new(cap),
            pending: Vec::new(),
            update_us: (update_interval_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    fn enabled(&self, v: Vector) -> bool {
        match v {
            Vector::Syn => self.syn.enabled,
            Vector::SynAck | Vector::Udp => self.refl.enabled,
        }
    }

    fn min_pps(&self, v: Vector) -> u32 {
        match v {
            Vector::Syn => self.syn.min_pps,
            Vector::SynAck | Vector::Udp => self.refl.min_pps,
        }
    }

    /// The entry for `key` when the tier holds it, or when this packet is
    /// the key's second: the probation record is promoted into a new entry
    /// that counts the first packet again. `create`: a first packet is
    /// kept in probation (returning `None`), `Some(answer)` saying whether
    /// it was the victim's own packet rather than one toward it.
    fn entry(&mut self, key: Key, seen: &Seen, create: Option<bool>, cx: &Ctx) -> Option<&mut Entry> {
        if self.tier.contains(&key) {
            return self.tier.get_mut(&key);
        }
        let table = cx.shared.stats.table(Table::Flood);
        match self.probation.remove(&key) {
            Some(first) => {
                let mut e = Entry::new(first.seen.sensor, first.seen.ts, first.seen.src, first.seen.sport);
                e.home = cx.shared.home.contains(key.victim);
                if first.answer {
                    e.answered += 1;
                    e.spoke = true;
                } else {
                    // A first packet is never hot unless the rate is 1/s:
                    // then the second (this one) queues the key.
                    add(&mut e, &key, &first.seen, 0);
                }
                let stored = self.tier.insert(key, e).count(table, |e| e.packets >= 2);
                if stored { self.tier.get_mut(&key) } else { None }
            }
            None => {
                if let Some(answer) = create {
                    table.evicted.fetch_add(self.probation.insert(key, First { seen: *seen, answer }), Relaxed);
                }
                None
            }
        }
    }

    fn packet(&mut self, p: &PacketSummary, sensor: u16, cx: &Ctx) {
        let Some(ip) = p.ip else { return };
        let roles = p.victim;
        if roles & victim::DST != 0 {
            let key = match &p.l4 {
                L4::Tcp(t) if t.is_connection_attempt() => {
                    Some(Key { victim: ip.dst, vector: Vector::Syn, port: t.dport })
                }
                L4::Tcp(t) if t.is_syn_ack() => Some(Key { victim: ip.dst, vector: Vector::SynAck, port: 0 }),
                L4::Udp(u) if amplifier(u.sport).is_some() => {
                    Some(Key { victim: ip.dst, vector: Vector::Udp, port: u.sport })
                }
                _ => None,
            };
            if let Some(key) = key
                && self.enabled(key.vector)
            {
                self.toward(key, p, sensor, cx);
            }
        }
        if roles & victim::SRC != 0 {
            // The source's own traffic: its requests, or its answers.
            let (key, create) = match &p.l4 {
                L4::Tcp(t) if t.is_connection_attempt() => {
                    (Some(Key { victim: ip.src, vector: Vector::SynAck, port: 0 }), Some(true))
                }
                L4::Tcp(t) if t.is_syn_ack() => {
                    (Some(Key { victim: ip.src, vector: Vector::Syn, port: t.sport }), None)
                }
                L4::Udp(u) if amplifier(u.dport).is_some() => {
                    (Some(Key { victim: ip.src, vector: Vector::Udp, port: u.dport }), Some(true))
                }
                _ => (None, None),
            };
            if let Some(key) = key
                && self.enabled(key.vector)
                && let Some(e) = self.entry(key, &Seen::of(p, &ip, sensor), create, cx)
            {
                e.answered += 1;
                e.spoke = true;
            }
        }
    }

    /// One packet toward `key.victim`.
    fn toward(&mut self, key: Key, p: &PacketSummary, sensor: u16, cx: &Ctx) {
        let min = self.min_pps(key.vector);
        let update_us = self.update_us;
        let Some(ip) = p.ip else { return };
        let seen = Seen::of(p, &ip, sensor);
        let Some(e) = self.entry(key, &seen, Some(false), cx) else { return };
        let hot = add(e, &key, &seen, min);
        let ts = seen.ts;
        if e.confirmed && ts - e.last_emit_us >= update_us && e.packets > e.emitted_packets {
            e.last_emit_us = ts;
            e.emitted_packets = e.packets;
            cx.emit(render(&key, e, "update", None, cx, ts));
        }
        if hot {
            self.pending.push(key);
        }
    }

    /// Confirms hot keys that now hold their evidence.
    fn settle(&mut self, cx: &Ctx, end: Option<EndReason>) {
        let keys = std::mem::take(&mut self.pending);
        for key in keys {
            let (syn, refl) = (&self.syn, &self.refl);
            let Some(e) = self.tier.get_mut(&key) else { continue };
            if e.confirmed {
                e.queued = false;
                continue;
            }
            if judge(&key, e, syn, refl) {
                e.confirmed = true;
                e.queued = false;
                e.last_emit_us = cx.now;
                e.emitted_packets = e.packets;
                let status = if end.is_some() { "final" } else { "new" };
                cx.emit(render(&key, e, status, end, cx, cx.now));
            } else if end.is_none() && cx.now.saturating_sub(e.last_us) <= BUCKET_US * 10 {
                self.pending.push(key);
            } else {
                e.queued = false;
            }
        }
    }

    fn tick(&mut self, cx: &Ctx) {
        self.settle(cx, None);
        let now = cx.now;
        if now.saturating_sub(self.last_sweep_us) < SWEEP_US {
            return;
        }
        self.last_sweep_us = now;
        let (syn_idle, refl_idle) = ((self.syn.idle_s * 1e6) as i64, (self.refl.idle_s * 1e6) as i64);
        let idle = |k: &Key| if k.vector == Vector::Syn { syn_idle } else { refl_idle };
        let mut expired = self.tier.retain(|key, e| {
            if now.saturating_sub(e.last_us) <= idle(key) {
                return true;
            }
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(EndReason::Expired), cx, now));
            }
            false
        });
        expired += self.probation.retain(|k, f| now.saturating_sub(f.seen.ts) <= idle(k));
        cx.shared.stats.table(Table::Flood).expired.fetch_add(expired, Relaxed);
    }

    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        // Detections confirmed earlier end here; hot keys judged now get
        // their first and final event from `settle`.
        let mut done: Vec<(&Key, &mut Entry)> = self.tier.iter_mut().filter(|(_, e)| e.confirmed).collect();
        done.sort_by_key(|(k, e)| (e.first_us, k.port));
        for (key, e) in done {
            cx.emit(render(key, e, "final", Some(reason), cx, cx.now));
        }
        self.settle(cx, Some(reason));
        self.tier.clear();
        self.probation.clear();
        self.pending.clear();
    }
}

/// The flood evidence of a `syn_flood` (any one suffices with the rate).
fn syn_evidence(e: &Entry) -> Vec<&'static str> {
    let mut v = Vec::new();
    if e.no_mss * 2 >= e.packets {
        v.push("no_mss_option");
    }
    if e.zero_window * 2 >= e.packets {
        v.push("zero_window");
    }
    // A handful of machines at this rate is a flood unless the service
    // answers nearly all of it (a brute-force tool or a load test
    // completing its handshakes: not a SYN flood).
    if e.sources() <= FEW_SOURCES && (!return_seen(e) || e.answered * 2 < e.packets) {
        v.push("few_sources");
    }
    if return_seen(e) && e.answered * 5 < e.packets {
        v.push("unanswered");
    }
    if e.ttl_values() >= 64 {
        v.push("random_ttl");
    }
    if e.bogon * 10 >= e.packets && e.bogon > 0 {
        v.push("bogon_sources");
    }
    v
}

/// The victim's own packets are in view: without a home net, any answer
/// seen; with one, the dispatcher's `dst_spoke` or an answer.
fn return_seen(e: &Entry) -> bool {
    if e.home { e.spoke } else { e.answered > 0 }
}

/// Why the sources are thought forged, and the verdict.
fn spoof_view(e: &Entry) -> (&'static str, Vec<&'static str>) {
    let sources = e.sources();
    let mut v = Vec::new();
    if sources >= 100 && e.packets <= 2 * sources {
        v.push("one_packet_per_source");
    }
    if e.ttl_values() >= 64 {
        v.push("random_ttl");
    }
    if e.bogon > 0 {
        v.push("bogon_sources");
    }
    let verdict = if !v.is_empty() {
        "likely"
    } else if sources <= FEW_SOURCES && e.ttl_max.saturating_sub(e.ttl_min) <= 2 {
        "unlikely"
    } else {
        "unknown"
    };
    (verdict, v)
}

fn judge(key: &Key, e: &Entry, syn: &SynFloodRules, refl: &ReflectionRules) -> bool {
    match key.vector {
        Vector::Syn => e.peak_pps >= syn.min_pps && !syn_evidence(e).is_empty(),
        Vector::SynAck | Vector::Udp => {
            e.peak_pps >= refl.min_pps
                && e.sources() >= u64::from(refl.min_reflectors)
                && e.answered as f64 <= refl.max_solicited_share * e.packets as f64
        }
    }
}

/// What the sensor knows of the victim's return path, for a summary.
fn return_path(e: &Entry, v: IpAddr) -> Option<String> {
    (e.home && !e.spoke).then(|| {
        format!("the return path is not visible to the sensor (no packet from {v} was captured), so whether it answered is unknown")
    })
}

fn render(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    match key.vector {
        Vector::Syn => render_syn(key, e, status, end, cx, now),
        _ => render_reflection(key, e, status, end, cx, now),
    }
}

fn common(key: &Key, e: &Entry, kind: &str, status: &str, end: Option<EndReason>) -> serde_json::Map<String, Value> {
    let id = detection_id(
        kind,
        &[&ip_bytes(&key.victim), &[key.vector as u8], &key.port.to_be_bytes(), &e.first_us.to_be_bytes()],
    );
    let v = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "victim": key.victim.to_string(),
        "packets": e.packets,
        "bytes": e.bytes,
        "rate_pps": e.rate_pps(),
        "peak_pps": e.peak_pps,
        "seconds_over": e.seconds_over,
        "return_path_seen": if e.home { Value::Bool(e.spoke) } else { Value::Null },
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn render_syn(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let mut d = common(key, e, SYN_KIND, status, end);
    let sources = e.sources();
    let (spoofed, spoof_evidence) = spoof_view(e);
    let evidence = syn_evidence(e);
    let service = cx.service(6, key.port);
    let top = (e.top_src.count > 0 && sources <= FEW_SOURCES).then_some(e.top_src.value);
    for (k, v) in [
        ("port", json!(key.port)),
        ("service", json!(service)),
        ("sources", json!(sources)),
        ("first_source", json!(e.first_src.to_string())),
        ("spoofed", json!(spoofed)),
        ("spoof_evidence", json!(spoof_evidence)),
        ("evidence", json!(evidence)),
        ("no_mss_share", json!(share(e.no_mss, e.packets))),
        ("zero_window_share", json!(share(e.zero_window, e.packets))),
        ("ttl", json!({"min": e.ttl_min, "max": e.ttl_max, "values": e.ttl_values()})),
        ("bogon_packets", json!(e.bogon)),
        ("answered", json!(e.answered)),
        ("answered_share", if e.home && !e.spoke { Value::Null } else { json!(e.answered_share()) }),
        ("direction", json!(cx.direction(e.first_src, key.victim))),
    ] {
        d.insert(k.into(), v);
    }
    let svc = service.map(|s| format!(" ({s})")).unwrap_or_default();
    let target = match key.victim {
        IpAddr::V6(a) => format!("[{a}]:{}", key.port),
        IpAddr::V4(a) => format!("{a}:{}", key.port),
    };
    let from = match top {
        Some(a) if sources <= 1 => format!("from {a}"),
        _ => format!("from {sources} sources"),
    };
    let mut s = format!(
        "SYN flood: {} SYNs to TCP {target}{svc} {from} over {} s (peak {} a second)",
        e.packets,
        secs(e.last_us - e.first_us),
        e.peak_pps
    );
    match spoofed {
        "likely" => s.push_str(&format!("; the sources are likely forged ({})", spoof_evidence.join(", "))),
        "unlikely" if sources <= 1 => s.push_str("; the source looks real (steady TTL)"),
        "unlikely" => s.push_str("; the sources look real (few, steady TTL)"),
        _ => {}
    }
    if evidence.contains(&"no_mss_option") || evidence.contains(&"zero_window") {
        s.push_str("; the SYNs are crafted (no MSS option or window 0: no real stack sends them)");
    }
    match return_path(e, key.victim) {
        Some(r) => s.push_str(&format!("; {r}")),
        None => s.push_str(&format!("; {:.0}% were answered with a SYN-ACK", e.answered_share() * 100.0)),
    }
    let mut b = EventBuilder::new(SYN_KIND, now, cx.sensor(e.sensor));
    b = match top {
        Some(a) => b.flow(
            &Flow { src: a, dst: key.victim, proto: 6, ports: Some((e.first_sport, key.port)) },
            cx.shared.community_id_seed,
        ),
        None => b.field("dest_ip", json!(key.victim.to_string())).field("proto", json!("TCP")).dest_port(key.port),
    };
    b.judged(cx.judge(key.victim, Some((6, key.port)), Fact::Flood)).summary(s).details(SYN_KIND, Value::Object(d))
}

fn share(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { (n as f64 / of as f64 * 1000.0).round() / 1000.0 }
}

fn render_reflection(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let mut d = common(key, e, REFL_KIND, status, end);
    let reflectors = e.sources();
    let (service, factor, vector, port) = match key.vector {
        Vector::Udp => {
            let a = amplifier(key.port);
            (a.map(|a| a.1).unwrap_or("udp"), a.map(|a| a.2), "udp", Some(key.port))
        }
        _ => ("syn-ack", None, "syn_ack", (e.top_port.count > 0).then_some(e.top_port.value)),
    };
    let mean = e.bytes.checked_div(e.packets).unwrap_or(0);
    for (k, v) in [
        ("vector", json!(vector)),
        ("service", json!(service)),
        ("port", json!(port)),
        ("reflector_ports", json!(if key.vector == Vector::SynAck { Some(e.ports.estimate()) } else { None })),
        ("reflectors", json!(reflectors)),
        ("first_reflector", json!(e.first_src.to_string())),
        ("response_bytes_mean", json!(mean)),
        ("known_amplification", json!(factor)),
        ("requests_seen", json!(e.answered)),
        ("direction", json!(cx.direction(e.first_src, key.victim))),
    ] {
        d.insert(k.into(), v);
    }
    let what = match key.vector {
        Vector::Udp => format!(
            "{} amplification: {} {} answers (UDP source port {}, mean {} bytes, {} bytes in all) from {} reflectors to {}",
            service.to_uppercase(),
            e.packets,
            service,
            key.port,
            mean,
            e.bytes,
            reflectors,
            key.victim
        ),
        _ => format!(
            "SYN-ACK reflection: {} SYN-ACKs from {} reflectors (mostly port {}) to {}",
            e.packets, reflectors, e.top_port.value, key.victim
        ),
    };
    let mut s = format!("{what} over {} s (peak {} a second)", secs(e.last_us - e.first_us), e.peak_pps);
    if key.vector == Vector::SynAck {
        s.push_str(": servers answering SYNs forged with its address");
    }
    if let Some(f) = factor
        && f != "unknown"
    {
        s.push_str(&format!("; the service amplifies about {f} times (US-CERT TA14-017A)"));
    }
    match return_path(e, key.victim) {
        Some(_) => s.push_str(&format!(
            "; no request from {} was seen, and no packet from it was captured at all (the return path is not visible to the sensor)",
            key.victim
        )),
        None if e.answered == 0 => s.push_str(&format!("; {} sent no request for them", key.victim)),
        None => s.push_str(&format!("; {} sent {} requests for them", key.victim, e.answered)),
    }
    let flow =
        Flow { src: e.first_src, dst: key.victim, proto: if key.vector == Vector::Udp { 17 } else { 6 }, ports: None };
    let mut b = EventBuilder::new(REFL_KIND, now, cx.sensor(e.sensor));
    b = b.flow(&flow, cx.shared.community_id_seed);
    if let Some(p) = port {
        b = b.field("src_port", json!(p));
    }
    b.judged(cx.judge(key.victim, None, Fact::Flood)).summary(s).details(REFL_KIND, Value::Object(d))
}

impl Detector for Flood {
    fn table(&self) -> Table {
        Table::Flood
    }
    fn interest(&self) -> u16 {
        if self.syn.enabled || self.refl.enabled {
            class::TCP_ATTEMPT | class::TCP_SYN_ACK | class::UDP | class::VICTIM_COPY
        } else {
            0
        }
    }
    fn len(&self) -> usize {
        self.tier.len() + self.probation.len()
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, _sources: &Sources, cx: &Ctx) {
        if p.victim & (victim::DST | victim::SRC) != 0 {
            self.packet(p, sensor, cx);
        }
    }
    fn on_tick(&mut self, _sources: &Sources, cx: &Ctx) {
        self.tick(cx);
    }
    fn flush(&mut self, reason: EndReason, _sources: &Sources, cx: &Ctx) {
        self.end(reason, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::{TcpOpts, UdpInfo, tcpflag, testutil};
    use crate::detect::testrig::s;

    type Rig = crate::detect::testrig::Rig<Flood>;

    const VICTIM: &str = "192.0.2.10";

    fn rig() -> Rig {
        Rig::with(|_| {}, |_, r| Flood::new(&r.syn_flood, &r.reflection, 1000, 1000, r.general.update_interval_s))
    }

    /// The i-th outside address, spread over the v4 space.
    fn outside(i: u32) -> String {
        std::net::Ipv4Addr::from(0x2d00_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761) % 0x8000_0000)).to_string()
    }

    fn syn(t: f64, src: &str, sport: u16, mss: bool) -> PacketSummary {
        let mut p = testutil::tcp(s(t), src, VICTIM, (sport, 80), tcpflag::SYN, 7, 0);
        if let L4::Tcp(tc) = &mut p.l4 {
            tc.opts = TcpOpts { mss: mss.then_some(1460), ..TcpOpts::default() };
        }
        p
    }

    fn udp(t: f64, src: &str, dst: &str, sport: u16, dport: u16, len: u32) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), len + 42, len + 42);
        p.ip = Some(testutil::ipv4(src, dst, 17));
        p.l4 = L4::Udp(UdpInfo { sport, dport });
        p.payload_len = len;
        p
    }

    fn of_type<'a>(ev: &'a [Value], t: &str) -> Vec<&'a Value> {
        ev.iter().filter(|e| e["event_type"] == t).collect()
    }

    #[test]
    fn a_spoofed_syn_flood_is_named_with_its_rate_and_forgery() {
        let mut r = rig();
        for i in 0..400u32 {
            r.feed_owned(syn(f64::from(i) * 0.002, &outside(i), 1024 + i as u16, false));
        }
        r.tick(2.0);
        let live = r.events();
        assert_eq!(of_type(&live, "syn_flood").len(), 1, "{live:?}");
        let fin = r.end();
        let f = &of_type(&fin, "syn_flood")[0]["syn_flood"];
        assert_eq!(f["status"], "final");
        assert_eq!(f["victim"], VICTIM);
        assert_eq!(f["port"], 80);
        assert_eq!(f["packets"], 400);
        assert_eq!(f["peak_pps"], 400);
        assert_eq!(f["spoofed"], "likely");
        assert!(f["sources"].as_u64().unwrap() > 380, "{f}");
        assert!(f["evidence"].as_array().unwrap().contains(&json!("no_mss_option")), "{f}");
        assert!(f["spoof_evidence"].as_array().unwrap().contains(&json!("one_packet_per_source")), "{f}");
        // The victim never sent: the answer is unknown, not "unanswered".
        assert_eq!(f["return_path_seen"], false);
        assert!(f["answered_share"].is_null());
    }

    #[test]
    fn a_busy_service_answering_ordinary_syns_is_not_a_flood() {
        let mut r = rig();
        for i in 0..400u32 {
            let t = f64::from(i) * 0.002;
            let (src, sport) = (outside(i), 1024 + i as u16);
            r.feed_owned(syn(t, &src, sport, true));
            r.feed_owned(testutil::tcp(s(t + 0.0005), VICTIM, &src, (80, sport), tcpflag::SYN | tcpflag::ACK, 9, 8));
        }
        r.tick(2.0);
        assert!(r.end().is_empty());
    }

    #[test]
    fn a_slow_trickle_is_not_a_flood() {
        let mut r = rig();
        for i in 0..300u32 {
            r.feed_owned(syn(f64::from(i) * 0.05, &outside(i), 1024 + i as u16, false));
        }
        assert!(r.end().is_empty(), "20 SYNs a second stay below min_pps");
    }

    #[test]
    fn dns_answers_nobody_asked_for_are_an_amplification() {
        let mut r = rig();
        for i in 0..120u32 {
            r.feed_owned(udp(f64::from(i) * 0.005, &outside(i % 30), VICTIM, 53, 4444, 3000));
        }
        let ev = r.end();
        let f = &of_type(&ev, "reflection")[0]["reflection"];
        assert_eq!(f["vector"], "udp");
        assert_eq!(f["service"], "dns");
        assert_eq!(f["port"], 53);
        assert_eq!(f["reflectors"], 30);
        assert_eq!(f["requests_seen"], 0);
        assert_eq!(f["response_bytes_mean"], 3028);
        assert_eq!(f["known_amplification"], "28 to 54");
    }

    #[test]
    fn a_resolver_receiving_the_answers_it_asked_for_is_silent() {
        let mut r = rig();
        for i in 0..120u32 {
            let t = f64::from(i) * 0.005;
            let server = outside(i % 30);
            r.feed_owned(udp(t, VICTIM, &server, 4444, 53, 40));
            r.feed_owned(udp(t + 0.001, &server, VICTIM, 53, 4444, 300));
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn syn_acks_from_many_servers_to_a_host_that_sent_no_syn_are_a_reflection() {
        let mut r = rig();
        for i in 0..200u32 {
            let p = testutil::tcp(
                s(f64::from(i) * 0.004),
                &outside(i),
                VICTIM,
                (80, 2000 + i as u16),
                tcpflag::SYN | tcpflag::ACK,
                1,
                2,
            );
            r.feed_owned(p);
        }
        let ev = r.end();
        let f = &of_type(&ev, "reflection")[0]["reflection"];
        assert_eq!(f["vector"], "syn_ack");
        assert_eq!(f["port"], 80);
        assert_eq!(f["packets"], 200);
        assert!(ev[0]["summary"].as_str().unwrap().starts_with("SYN-ACK reflection"), "{}", ev[0]["summary"]);
    }

    #[test]
    fn victim_roles_route_only_what_the_detector_reads() {
        let syn = syn(0.0, "198.51.100.1", 1000, true);
        assert_eq!(victim_roles(&syn), victim::DST | victim::SRC);
        let data = testutil::tcp(0, "198.51.100.1", VICTIM, (1000, 80), tcpflag::ACK | tcpflag::PSH, 1, 1);
        assert_eq!(victim_roles(&data), 0);
        assert_eq!(victim_roles(&udp(0.0, "198.51.100.1", VICTIM, 53, 4000, 10)), victim::DST);
        assert_eq!(victim_roles(&udp(0.0, VICTIM, "198.51.100.1", 4000, 123, 10)), victim::SRC);
        assert_eq!(victim_roles(&udp(0.0, VICTIM, "198.51.100.1", 4000, 4001, 10)), 0);
    }

    #[test]
    fn rules_sections_check_their_ranges() {
        use crate::config::schema::Section;
        let r = <SynFloodRules as Section>::parse("x", "[syn_flood]\nmin_pps = 500\n").unwrap();
        assert_eq!(r.min_pps, 500);
        let e = <SynFloodRules as Section>::parse("rules/picket.toml", "[syn_flood]\nmin_pps = 1\n").unwrap_err();
        assert!(e.to_string().contains("min_pps"), "{e}");
        let e = <ReflectionRules as Section>::parse("rules/picket.toml", "[reflection]\nmax_solicited_share = 2.0\n")
            .unwrap_err();
        assert!(e.to_string().contains("max_solicited_share"), "{e}");
    }
}
