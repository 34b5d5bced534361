//! The analyzers that run inside each worker, and what they share: the
//! per-worker context (rules, home net, output) and small bounded building
//! blocks (distinct-value sketches, the detection lifecycle).
//!
//! A detection is emitted with `status: "new"` when first confirmed, again
//! with `"update"` as it grows (at most once per `general.update_interval_s`
//! of packet time), and exactly once with `"final"` when it ends: its state
//! expired, its table entry was evicted, or the input ended / picket shut
//! down. A detection first confirmed at the end of input gets only `final`.

pub mod cadence;
pub mod decoy;
pub mod netbios;
pub mod periodic;
pub mod slab;
pub mod smurf;
pub mod sources;
pub mod syn_retry;
#[cfg(test)]
pub mod testrig;
pub mod traceroute;
pub mod ttl;

use crate::config::Rules;
use crate::decode::summary::PacketSummary;
use crate::homenet::HomeNet;
use crate::output::event::EventLine;
use crate::stats::{Stats, Table};
use crossbeam_channel::Sender;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

/// One analyzer inside a worker. The worker calls `on_packet` for every
/// summary it owns, `on_tick` once per second of packet time, and `flush`
/// once at the end. `sources` is the worker's per-source table, already
/// updated with the current packet.
pub trait Detector: Send {
    /// The detector's state table, for the stats.
    fn table(&self) -> Table;
    /// The `class` bits of the packets `on_packet` acts on; the worker
    /// skips the call for the others (most packets are segments of
    /// established connections that no detector looks at).
    fn interest(&self) -> u16 {
        class::ALL
    }
    /// Keys currently held.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, sources: &sources::Sources, cx: &Ctx);
    fn on_tick(&mut self, sources: &sources::Sources, cx: &Ctx);
    /// Ends every open detection (end of input or shutdown).
    fn flush(&mut self, reason: EndReason, sources: &sources::Sources, cx: &Ctx);
}

/// Every detector, built from the rules for one worker. A new detector is
/// one line here.
pub fn all(shared: &Shared) -> Vec<Box<dyn Detector>> {
    let r = &shared.rules;
    vec![
        Box::new(syn_retry::SynRetry::new(
            &r.syn_retry,
            shared.per_worker(r.syn_retry.max_tracked),
            r.general.update_interval_s,
        )),
        Box::new(traceroute::Traceroute::new(
            &r.traceroute,
            shared.per_worker(r.traceroute.max_tracked),
            r.general.update_interval_s,
        )),
        Box::new(smurf::Smurf::new(
            &r.smurf,
            &shared.home,
            shared.per_worker(r.smurf.max_tracked),
            r.general.update_interval_s,
        )),
        Box::new(netbios::Netbios::new(
            &r.netbios,
            shared.per_worker(r.netbios.max_tracked),
            r.general.update_interval_s,
        )),
        Box::new(periodic::Periodic::new(r, shared.per_worker(r.periodic_probe.max_tracked))),
    ]
}

/// Packet classes for `Detector::interest`: bits that may be set together.
pub mod class {
    use crate::decode::summary::{L4, PacketSummary, tcpflag};

    /// A TCP connection attempt (`TcpInfo::is_connection_attempt`).
    pub const TCP_ATTEMPT: u16 = 1 << 0;
    /// A TCP SYN+ACK.
    pub const TCP_SYN_ACK: u16 = 1 << 1;
    /// A TCP segment with RST.
    pub const TCP_RST: u16 = 1 << 2;
    /// A TCP segment without ACK (SYN, FIN, NULL, Xmas... probes).
    pub const TCP_NO_ACK: u16 = 1 << 3;
    /// Any TCP segment.
    pub const TCP: u16 = 1 << 4;
    pub const UDP: u16 = 1 << 5;
    pub const ICMP: u16 = 1 << 6;
    /// No transport header decoded (not IP, other protocols, fragments).
    pub const OTHER: u16 = 1 << 7;
    pub const ALL: u16 = u16::MAX;

    /// The class bits of one packet.
    #[inline]
    pub fn of(p: &PacketSummary) -> u16 {
        match &p.l4 {
            L4::Tcp(t) => {
                let mut c = TCP;
                if t.is_connection_attempt() {
                    c |= TCP_ATTEMPT;
                }
                if t.is_syn_ack() {
                    c |= TCP_SYN_ACK;
                }
                if t.has(tcpflag::RST) {
                    c |= TCP_RST;
                }
                if !t.has(tcpflag::ACK) {
                    c |= TCP_NO_ACK;
                }
                c
            }
            L4::Udp(_) => UDP,
            L4::Icmp(_) => ICMP,
            _ => OTHER,
        }
    }
}

/// Read-only facts every worker shares.
pub struct Shared {
    pub rules: Rules,
    pub home: HomeNet,
    pub community_id_seed: u16,
    /// Sensor names (interface or file names), indexed by `Batch::sensor`.
    pub sensors: Vec<String>,
    pub stats: Arc<Stats>,
    /// Analyzer threads: table caps in the rules are split between them.
    pub workers: usize,
    /// The input is firewall-log records (`picket fwlog`), not packets:
    /// summaries count records.
    pub from_log: bool,
}

impl Shared {
    /// One worker's share of a run-wide table cap.
    pub fn per_worker(&self, cap: usize) -> usize {
        cap.div_ceil(self.workers.max(1)).max(1)
    }
}

/// Packet time between expiry sweeps of a whole table: expiry is checked to
/// within this much, and a tick does not walk every entry.
pub const SWEEP_US: i64 = 10_000_000;

/// Packet time between expiry sweeps of a table whose entries idle out
/// after `idle_us`: `SWEEP_US`, or a tenth of the idle time when that is
/// longer. Walking a large table is a pass over memory, so a table kept for
/// ten minutes is swept every minute, not every ten seconds; entries live
/// at most 10% longer than their idle time.
#[inline]
pub fn sweep_every(idle_us: i64) -> i64 {
    SWEEP_US.max(idle_us / 10)
}

/// The hash map every detector table uses: foldhash is several times faster
/// than SipHash on small keys and is seeded per process, so spoofed keys
/// cannot be chosen to collide.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What a detector may use while handling one packet or tick.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub out: &'a Sender<EventLine>,
    /// Current packet time (monotonic per worker).
    pub now: i64,
    /// Packets toward the home net read so far (all packets without a
    /// home net), as of the last tick: the denominator of traffic shares.
    pub inbound: u64,
}

impl Ctx<'_> {
    /// Sends an event to the output thread. A closed output (broken pipe,
    /// shutdown) is not the detector's problem: the line is dropped.
    pub fn emit(&self, ev: EventLine) {
        let _ = self.out.send(ev);
    }

    pub fn sensor(&self, idx: u16) -> &str {
        self.shared.sensors.get(usize::from(idx)).map(String::as_str).unwrap_or("?")
    }

    /// `inbound`, `outbound`, `internal`, `external`, or None without a home net.
    pub fn direction(&self, src: IpAddr, dst: IpAddr) -> Option<&'static str> {
        let h = &self.shared.home;
        if h.is_empty() {
            return None;
        }
        Some(match (h.contains(src), h.contains(dst)) {
            (false, true) => "inbound",
            (true, false) => "outbound",
            (true, true) => "internal",
            (false, false) => "external",
        })
    }

    /// A port's service name from the port table, if known.
    pub fn service(&self, proto: u8, port: u16) -> Option<&str> {
        self.shared.rules.ports.lookup(proto, port).map(|i| i.name.as_str())
    }

    /// SIGNATURES.md section 9: (criticality + lethality) - (system + network
    /// countermeasures), each 1..5, so -8..+8. Until per-asset data exists the
    /// target terms come from `[general]`.
    pub fn severity(&self, lethality: i64) -> i64 {
        let g = &self.shared.rules.general;
        (g.criticality + lethality) - (g.system_countermeasures + g.network_countermeasures)
    }
}

/// Why a detection's final event was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// No activity for the detector's window.
    Expired,
    /// The replay reached the end of its input.
    EndOfInput,
    /// picket was asked to stop (signal).
    Shutdown,
}

impl EndReason {
    /// The reason a run planned (`EndOfInput` for replay), unless a signal
    /// cut the input short: then it is `Shutdown`.
    pub fn unless_interrupted(self, interrupted: bool) -> EndReason {
        if interrupted && self == EndReason::EndOfInput { EndReason::Shutdown } else { self }
    }

    pub fn name(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// A fixed-size distinct-value sketch (linear counting) of `64 * W` bits:
/// exact for a handful of values, within a few percent up to about `64 * W`,
/// and never larger than `8 * W` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Distinct<const W: usize>([u64; W]);

/// 256 bits: distinct ports or hosts per source.
pub type Distinct256 = Distinct<4>;
/// 1024 bits: distinct source ports of a retry loop.
pub type Distinct1024 = Distinct<16>;

impl<const W: usize> Default for Distinct<W> {
    fn default() -> Self {
        Distinct([0; W])
    }
}

impl<const W: usize> Distinct<W> {
    const BITS: u64 = 64 * W as u64;

    /// Adds a value; returns true if its bit was new.
    #[inline]
    pub fn insert(&mut self, v: u64) -> bool {
        let h = (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % Self::BITS;
        let (w, b) = ((h / 64) as usize, h % 64);
        let Some(word) = self.0.get_mut(w) else {
            return false;
        };
        let new = *word & (1 << b) == 0;
        *word |= 1 << b;
        new
    }

    /// The sketch of the union of both sets.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
        out
    }

    /// Jaccard similarity of the two sets as the sketches see them: shared
    /// bits over all set bits (1.0 for identical sets, 0.0 if either is empty).
    pub fn jaccard(&self, other: &Self) -> f64 {
        let (mut both, mut any) = (0u32, 0u32);
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            both += (a & b).count_ones();
            any += (a | b).count_ones();
        }
        if any == 0 { 0.0 } else { f64::from(both) / f64::from(any) }
    }

    /// The estimated number of distinct values inserted.
    pub fn estimate(&self) -> u64 {
        Self::estimate_from_zeros(self.zeros())
    }

    /// Bits still clear.
    #[inline]
    pub fn zeros(&self) -> u64 {
        let ones: u64 = self.0.iter().map(|w| u64::from(w.count_ones())).sum();
        Self::BITS - ones
    }

    /// The linear-counting estimate for a sketch with `zeros` clear bits
    /// (a function of that count alone, so callers on a hot path may
    /// tabulate it).
    pub fn estimate_from_zeros(zeros: u64) -> u64 {
        if zeros == 0 {
            return Self::BITS * 6; // saturated: "very many"
        }
        let m = Self::BITS as f64;
        (-m * (zeros.min(Self::BITS) as f64 / m).ln()).round() as u64
    }
}

/// Feeds two addresses and a small tag (protocol, port) to a hasher in as
/// few calls as possible: one for an IPv4 pair. Table keys hash with this
/// instead of the derived `Hash` (an enum tag and a length-prefixed byte
/// slice per address: several hasher calls each), which was a tenth of a
/// worker's time. Equal keys still hash equal; IPv4 and IPv6 keys never
/// compare equal, so their hashes may overlap.
#[inline]
pub fn hash_pair<H: Hasher>(a: &IpAddr, b: &IpAddr, tag: u32, h: &mut H) {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => h.write_u64((u64::from(x.to_bits()) << 32) | u64::from(y.to_bits())),
        _ => {
            h.write_u128(v6_bits(a));
            h.write_u128(v6_bits(b));
        }
    }
    h.write_u32(tag);
}

#[inline]
fn v6_bits(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(x) => u128::from(x.to_bits()),
        IpAddr::V6(x) => x.to_bits(),
    }
}

/// An ordered address pair as a table key, hashed in one call for IPv4
/// (see `hash_pair`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairKey(pub IpAddr, pub IpAddr);

impl Hash for PairKey {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_pair(&self.0, &self.1, 0, h);
    }
}

impl From<(IpAddr, IpAddr)> for PairKey {
    fn from((a, b): (IpAddr, IpAddr)) -> PairKey {
        PairKey(a, b)
    }
}

/// An address as a table key, hashed in one call (see `hash_pair`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrKey(pub IpAddr);

impl Hash for AddrKey {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self.0 {
            IpAddr::V4(x) => h.write_u32(x.to_bits()),
            IpAddr::V6(x) => h.write_u128(x.to_bits()),
        }
    }
}

/// Hashes an address for the sketches.
#[inline]
pub fn addr_key(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_classes_separate_what_detectors_want_from_bulk_segments() {
        use crate::decode::summary::{UdpInfo, tcpflag::*, testutil};
        let seg = |flags| class::of(&testutil::tcp(0, "198.51.100.7", "192.0.2.10", (40000, 80), flags, 1, 1));
        assert_eq!(seg(SYN), class::TCP | class::TCP_ATTEMPT | class::TCP_NO_ACK);
        assert_eq!(seg(SYN | ACK), class::TCP | class::TCP_SYN_ACK);
        assert_eq!(seg(RST | ACK), class::TCP | class::TCP_RST);
        assert_eq!(seg(FIN | PSH | URG), class::TCP | class::TCP_NO_ACK, "Xmas");
        assert_eq!(seg(SYN | FIN), class::TCP | class::TCP_NO_ACK, "a crafted SYN+FIN is not an attempt");
        // Data of an established connection: no detector's class but TCP.
        assert_eq!(seg(ACK | PSH), class::TCP);
        let mut u = PacketSummary::new(0, 60, 60);
        assert_eq!(class::of(&u), class::OTHER);
        u.l4 = crate::decode::summary::L4::Udp(UdpInfo { sport: 1, dport: 2 });
        assert_eq!(class::of(&u), class::UDP);
    }

    #[test]
    fn distinct_is_exact_when_small_and_close_when_large() {
        let mut d = Distinct256::default();
        for p in [1024u64, 1025, 1026, 1024] {
            d.insert(p);
        }
        assert_eq!(d.estimate(), 3);
        let mut d = Distinct256::default();
        for p in 0..150u64 {
            d.insert(p);
        }
        let e = d.estimate();
        assert!((135..=165).contains(&e), "{e}");
    }

    #[test]
    fn jaccard_of_port_sets() {
        let set = |ports: &[u64]| {
            let mut d = Distinct1024::default();
            ports.iter().for_each(|p| {
                d.insert(*p);
            });
            d
        };
        let a = set(&[20, 21, 22, 23, 80, 443]);
        assert_eq!(a.jaccard(&set(&[443, 80, 23, 22, 21, 20])), 1.0);
        let j = a.jaccard(&set(&[20, 21, 22, 23, 80, 8080]));
        assert!((j - 5.0 / 7.0).abs() < 1e-9, "{j}");
        assert_eq!(a.jaccard(&set(&[1, 2, 3])), 0.0);
        assert_eq!(Distinct1024::default().jaccard(&Distinct1024::default()), 0.0);
    }
}
