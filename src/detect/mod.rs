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
pub mod smurf;
pub mod sources;
pub mod syn_retry;
#[cfg(test)]
pub mod testrig;
pub mod traceroute;
pub mod ttl;

use crate::config::Rules;
use crate::event::EventLine;
use crate::homenet::HomeNet;
use crate::stats::{Stats, Table};
use crate::summary::PacketSummary;
use crossbeam_channel::Sender;
use std::net::IpAddr;
use std::sync::Arc;

/// One analyzer inside a worker. The worker calls `on_packet` for every
/// summary it owns, `on_tick` once per second of packet time, and `flush`
/// once at the end. `sources` is the worker's per-source table, already
/// updated with the current packet.
pub trait Detector: Send {
    /// The detector's state table, for the stats.
    fn table(&self) -> Table;
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
        let ones: u64 = self.0.iter().map(|w| u64::from(w.count_ones())).sum();
        let zeros = Self::BITS - ones;
        if zeros == 0 {
            return Self::BITS * 6; // saturated: "very many"
        }
        let m = Self::BITS as f64;
        (-m * (zeros as f64 / m).ln()).round() as u64
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
