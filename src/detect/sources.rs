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
//! Bounded by `general.max_sources`; an entry idle for `general.source_idle_s`
//! is dropped on the next tick. A full table refuses new sources and counts
//! the refusal.

use super::{Distinct256, addr_key};
use crate::stats::{Stats, Table};
use crate::summary::{L4, PacketSummary, tcpflag};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Clone, Copy, Debug)]
struct Entry {
    last_us: i64,
    /// Start of the current period.
    period_us: i64,
    dports: [Distinct256; 2],
    hosts: [Distinct256; 2],
    probes: u32,
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

/// Per-source probe counts.
pub struct Sources {
    map: HashMap<IpAddr, Entry>,
    cap: usize,
    idle_us: i64,
}

impl Sources {
    pub fn new(cap: usize, idle_s: f64) -> Sources {
        Sources { map: HashMap::with_capacity(cap.min(4096)), cap, idle_us: (idle_s * 1e6) as i64 }
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
        let full = self.map.len() >= self.cap;
        let e = match self.map.get_mut(&ip.src) {
            Some(e) => e,
            None if full => {
                stats.table(Table::Sources).cap_hits.fetch_add(1, Relaxed);
                return;
            }
            None => self.map.entry(ip.src).or_insert(Entry {
                last_us: p.ts_us,
                period_us: p.ts_us,
                dports: [Distinct256::default(); 2],
                hosts: [Distinct256::default(); 2],
                probes: 0,
            }),
        };
        e.rotate(p.ts_us, self.idle_us);
        e.last_us = e.last_us.max(p.ts_us);
        e.dports[0].insert(u64::from(dport) | (u64::from(ip.proto) << 16));
        e.hosts[0].insert(addr_key(ip.dst));
        e.probes = e.probes.saturating_add(1);
    }

    /// Distinct destination ports `src` has probed lately (estimate).
    pub fn distinct_ports(&self, src: IpAddr) -> u64 {
        self.map.get(&src).map(|e| e.dports[0].union(&e.dports[1]).estimate()).unwrap_or(0)
    }

    /// Distinct destination hosts `src` has probed lately (estimate).
    pub fn distinct_hosts(&self, src: IpAddr) -> u64 {
        self.map.get(&src).map(|e| e.hosts[0].union(&e.hosts[1]).estimate()).unwrap_or(0)
    }

    /// Drops sources idle for longer than the idle time.
    pub fn expire(&mut self, now: i64, stats: &Stats) {
        let idle = self.idle_us;
        let before = self.map.len();
        self.map.retain(|_, e| now.saturating_sub(e.last_us) <= idle);
        let gone = (before - self.map.len()) as u64;
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
        crate::summary::testutil::tcp(t * 1_000_000, "198.51.100.7", "192.0.2.10", (1, dport), tcpflag::SYN, 0, 0)
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

    #[test]
    fn the_cap_refuses_and_counts() {
        let st = Stats::default();
        let mut s = Sources::new(1, 600.0);
        s.observe(&syn(0, 1), &st);
        let mut p = syn(0, 1);
        if let Some(ip) = &mut p.ip {
            ip.src = "198.51.100.8".parse().unwrap();
        }
        s.observe(&p, &st);
        assert_eq!(s.len(), 1);
        assert_eq!(st.table(Table::Sources).cap_hits.load(Relaxed), 1);
    }
}
