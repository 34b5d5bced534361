//! The per-source table: for every source this worker owns, how many distinct
//! destination ports and hosts it has probed lately. Detectors ask it whether
//! a source behaves like a scanner (SIGNATURES.md section 2: many
//! destination ports from one source is a vertical scan).
//!
//! "Lately" means the current and the previous period of
//! `general.source_idle_s`: each entry keeps two sketches and rotates them,
//! so a scan ages out after two periods even while the source stays active
//! (a retry client that once scanned is not a scanner forever).
//!
//! Each entry also holds the source's first contact (its first probe) and
//! whether the other side has answered it (SYN-ACK, UDP reply, echo
//! reply): `decoy_scan`'s long memory (`detect::ttl`) takes an address only
//! once it holds an answered conversation, so a spoofed flood costs one
//! entry here and none there.
//!
//! Fair state (`detect::fair`): a source's first probe makes a probation
//! entry; its second promotes it. `general.max_sources` (split between
//! workers) bounds them. A spoofed flood (one probe per forged address)
//! churns the probation tier only (a quarter of the cap), oldest out first,
//! in O(1), and a source whose first probe it pushed out is still promoted
//! by its second (`fair::Fair`'s memory of evicted keys); promoted (half the cap)
//! sources are evicted by the weighted clock, busier sources last. What
//! is pushed out is counted (`stats.state.sources`: evicted, cap_hits, and
//! lost_detections for sources that had sent two or more probes). An entry
//! idle for `general.source_idle_s` is dropped on a later tick.

use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::fair::{Fair, Weighted, credit_of};
use crate::detect::keys::sweep_every;
use crate::detect::keys::{AddrKey, Distinct256, addr_key};
use crate::stats::{Stats, Table};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// First probe seen from the source: its first contact.
    first_us: i64,
    last_us: i64,
    /// The other side has answered one of its probes.
    answered: bool,
    /// Start of the current period.
    period_us: i64,
    dports: [Distinct256; 2],
    hosts: [Distinct256; 2],
    probes: u32,
    /// TTL of its latest ICMP echo request (0: none): an answered ping
    /// gives `decoy_scan`'s long memory a baseline.
    echo_ttl: u8,
}

impl Weighted for Entry {
    /// One hand pass per doubling of its probes: a busy source outlives
    /// a quiet one.
    fn credit(&self) -> u8 {
        credit_of(u64::from(self.probes))
    }
    fn pinned(&self) -> bool {
        false
    }
    /// A source with two probes or more is what the detectors ask about.
    fn evidence(&self) -> bool {
        self.probes >= 2
    }
}

impl Entry {
    /// Moves to the period holding `now`: the current sketches become the
    /// previous ones, or both are cleared after a long silence.
    fn rotate(&mut self, now: i64, period: i64) {
        let age = now.saturating_sub(self.period_us);
        if age < period {
            return;
        }
        if age >= 2 * period {
            self.dports = [Distinct256::default(); 2];
            self.hosts = [Distinct256::default(); 2];
            self.probes = 0;
        } else {
            self.dports = [Distinct256::default(), self.dports[0]];
            self.hosts = [Distinct256::default(), self.hosts[0]];
        }
        self.period_us = now;
    }
}

/// What the table knows of a source's contact with the home side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact {
    pub first_us: i64,
    pub last_us: i64,
    pub answered: bool,
}

/// Per-source probe counts.
pub struct Sources {
    map: Fair<AddrKey, Entry>,
    idle_us: i64,
    /// Packet time of the last expiry sweep (one per `sweep_every`).
    last_sweep_us: i64,
    /// `Distinct256` estimate by count of clear bits (0..=256).
    estimates: Vec<u64>,
}

impl Sources {
    pub fn new(cap: usize, idle_s: f64) -> Sources {
        Sources {
            // A quarter of the cap for sources seen once, half for promoted
            // ones: less than the single table of `cap` this replaced, so a
            // flood that fills both costs no more memory than before.
            map: Fair::new(cap.div_ceil(4), cap.div_ceil(2)),
            idle_us: (idle_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
            estimates: (0..=256).map(Distinct256::estimate_from_zeros).collect(),
        }
    }

    /// Records `p` if it is a probe sent by its source: a TCP segment without
    /// ACK (SYN, FIN, NULL, Xmas), a UDP datagram, or an ICMP echo request.
    /// The caller passes only packets whose source this worker owns.
    #[inline]
    pub fn observe(&mut self, p: &PacketSummary, stats: &Stats) {
        let Some(ip) = &p.ip else { return };
        let dport = match &p.l4 {
            L4::Tcp(t) if !t.has(tcpflag::ACK) && !t.has(tcpflag::RST) => t.dport,
            L4::Udp(u) => u.dport,
            L4::Icmp(i) if i.is_echo_request() => 0,
            _ => return,
        };
        let ts = p.ts_us;
        let fresh = || Entry {
            first_us: ts,
            last_us: ts,
            answered: false,
            period_us: ts,
            dports: [Distinct256::default(); 2],
            hosts: [Distinct256::default(); 2],
            probes: 0,
            echo_ttl: 0,
        };
        let Some(e) = self.map.touch(AddrKey(ip.src), stats.table(Table::Sources), fresh) else { return };
        e.rotate(p.ts_us, self.idle_us);
        e.last_us = e.last_us.max(p.ts_us);
        e.dports[0].insert(u64::from(dport) | (u64::from(ip.proto) << 16));
        e.hosts[0].insert(addr_key(ip.dst));
        e.probes = e.probes.saturating_add(1);
        if matches!(&p.l4, L4::Icmp(i) if i.is_echo_request()) {
            e.echo_ttl = ip.ttl.max(1);
        }
    }

    /// Notes that the other side answered `addr` (a source this worker
    /// owns). Only a known source is marked: an answer creates no entry.
    #[inline]
    pub fn mark_answered(&mut self, addr: IpAddr) {
        if let Some(e) = self.map.get_mut(&AddrKey(addr)) {
            e.answered = true;
        }
    }

    /// Whether `src` may have probed (proto, port) lately (a sketch: false
    /// means certainly not).
    #[inline]
    pub fn may_have_probed(&self, src: IpAddr, proto: u8, port: u16) -> bool {
        let Some(e) = self.map.get(&AddrKey(src)) else { return false };
        let v = u64::from(port) | (u64::from(proto) << 16);
        e.dports[0].may_contain(v) || e.dports[1].may_contain(v)
    }

    /// The TTL of `addr`'s latest ICMP echo request, if it sent one.
    #[inline]
    pub fn echo_ttl(&self, addr: IpAddr) -> Option<u8> {
        self.map.get(&AddrKey(addr)).map(|e| e.echo_ttl).filter(|t| *t > 0)
    }

    /// `addr`'s first contact, last probe and whether it was answered.
    #[inline]
    pub fn contact(&self, addr: IpAddr) -> Option<Contact> {
        self.map.get(&AddrKey(addr)).map(|e| Contact { first_us: e.first_us, last_us: e.last_us, answered: e.answered })
    }

    /// Distinct destination ports `src` has probed lately (estimate).
    pub fn distinct_ports(&self, src: IpAddr) -> u64 {
        self.spread(src).0
    }

    /// Probes (connection attempts, UDP datagrams, echo requests) `src`
    /// sent lately: counted until two idle periods of silence.
    pub fn probes(&self, src: IpAddr) -> u64 {
        self.map.get(&AddrKey(src)).map_or(0, |e| u64::from(e.probes))
    }

    /// Distinct destination hosts `src` has probed lately (estimate).
    pub fn distinct_hosts(&self, src: IpAddr) -> u64 {
        self.spread(src).1
    }

    /// Distinct (ports, hosts) `src` has probed lately, in one lookup.
    /// Detectors ask this on every attempt of a suspected retry loop, so
    /// the estimate comes from a table rather than a logarithm.
    #[inline]
    pub fn spread(&self, src: IpAddr) -> (u64, u64) {
        let Some(e) = self.map.get(&AddrKey(src)) else { return (0, 0) };
        let z = |d: Distinct256| self.estimates.get(d.zeros() as usize).copied().unwrap_or(0);
        (z(e.dports[0].union(&e.dports[1])), z(e.hosts[0].union(&e.hosts[1])))
    }

    /// Whether `src` probed more than `ports` ports or `hosts` hosts lately.
    #[inline]
    pub fn scans_beyond(&self, src: IpAddr, ports: u32, hosts: u32) -> bool {
        let (p, h) = self.spread(src);
        p > u64::from(ports) || h > u64::from(hosts)
    }

    /// Drops sources idle for longer than the idle time (at most once per
    /// `sweep_every` of the idle time). Each call (one per worker tick) also
    /// looks for state pressure (`note::Pressure`).
    pub fn expire(&mut self, now: i64, stats: &Stats) {
        // Sources held by every worker as of the last tick, or by this one
        // now if more (the first tick has not published any yet).
        let held = stats.table(Table::Sources).entries.load(Relaxed).max(self.map.len() as u64);
        stats.pressure.observe(stats.pushed_out(), now, held);
        if now.saturating_sub(self.last_sweep_us) < sweep_every(self.idle_us) {
            return;
        }
        self.last_sweep_us = now;
        let idle = self.idle_us;
        let gone = self.map.retain(|_, e| now.saturating_sub(e.last_us) <= idle);
        stats.table(Table::Sources).expired.fetch_add(gone, Relaxed);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn(t: i64, dport: u16) -> PacketSummary {
        crate::decode::summary::testutil::tcp(
            t * 1_000_000,
            "198.51.100.7",
            "192.0.2.10",
            (1, dport),
            tcpflag::SYN,
            0,
            0,
        )
    }

    #[test]
    fn a_scan_ages_out_while_the_source_stays_active() {
        let st = Stats::default();
        let mut s = Sources::new(10, 600.0);
        let src: IpAddr = "198.51.100.7".parse().unwrap();
        for port in 1..=50 {
            s.observe(&syn(0, port), &st);
        }
        assert!(s.distinct_ports(src) >= 45);
        // The source keeps retrying one port every 30 s.
        for i in 1..=60 {
            s.observe(&syn(i * 30, 158), &st);
        }
        assert!(s.distinct_ports(src) <= 2, "{}", s.distinct_ports(src));
    }

    fn from(src: &str, t: i64) -> PacketSummary {
        let mut p = syn(t, 1);
        if let Some(ip) = &mut p.ip {
            ip.src = src.parse().unwrap();
        }
        p
    }

    #[test]
    fn one_probe_sources_churn_probation_and_never_push_out_a_promoted_one() {
        let st = Stats::default();
        let mut s = Sources::new(4, 600.0);
        let real: IpAddr = "198.51.100.7".parse().unwrap();
        s.observe(&from("198.51.100.7", 0), &st);
        s.observe(&from("198.51.100.7", 0), &st); // two probes: promoted
        for i in 0..10_000u32 {
            let spoofed = IpAddr::V4((0x0b00_0000 + i).into()).to_string();
            s.observe(&from(&spoofed, 1), &st);
            if i % 10 == 0 {
                s.observe(&from("198.51.100.7", 1), &st);
            }
        }
        assert_eq!(s.probes(real), 1_002, "the real source kept its entry");
        assert!(s.len() <= 3);
        let t = st.table(Table::Sources);
        // The memory of evicted keys mistakes about 1% of new ones for a
        // repeat: those go to the tier instead of pushing probation's oldest.
        assert!((9_500..=9_999).contains(&t.evicted.load(Relaxed)), "{}", t.evicted.load(Relaxed));
        assert_eq!(t.lost_detections.load(Relaxed), 0, "one-probe sources are no loss");
        // Spoofed sources that repeat once each fill the tier; a source that
        // keeps probing outlives them, and the ones pushed out are counted.
        for i in 0..1_000u32 {
            let spoofed = IpAddr::V4((0x0c00_0000 + i).into()).to_string();
            s.observe(&from(&spoofed, 2), &st);
            s.observe(&from(&spoofed, 2), &st);
            s.observe(&from("198.51.100.7", 2), &st);
        }
        assert!(s.probes(real) > 2_000, "{}", s.probes(real));
        assert!(t.lost_detections.load(Relaxed) > 900, "{}", t.lost_detections.load(Relaxed));
    }
}
