//! The per-source table: for every source this worker owns, how many distinct
//! destination ports and hosts it has probed lately. Detectors ask it whether
//! a source behaves like a scanner (SIGNATURES.md section 2: many
//! destination ports from one source is a vertical scan).
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
    dports: Distinct256,
    hosts: Distinct256,
    probes: u32,
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
                dports: Distinct256::default(),
                hosts: Distinct256::default(),
                probes: 0,
            }),
        };
        if p.ts_us.saturating_sub(e.last_us) > self.idle_us {
            e.dports = Distinct256::default();
            e.hosts = Distinct256::default();
            e.probes = 0;
        }
        e.last_us = e.last_us.max(p.ts_us);
        e.dports.insert(u64::from(dport) | (u64::from(ip.proto) << 16));
        e.hosts.insert(addr_key(ip.dst));
        e.probes = e.probes.saturating_add(1);
    }

    /// Distinct destination ports `src` has probed lately (estimate).
    pub fn distinct_ports(&self, src: IpAddr) -> u64 {
        self.map.get(&src).map(|e| e.dports.estimate()).unwrap_or(0)
    }

    /// Distinct destination hosts `src` has probed lately (estimate).
    pub fn distinct_hosts(&self, src: IpAddr) -> u64 {
        self.map.get(&src).map(|e| e.hosts.estimate()).unwrap_or(0)
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
