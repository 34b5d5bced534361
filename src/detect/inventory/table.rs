//! The service inventory's shared table: which home hosts answer on which
//! ports (Zeek's `known_services`), with first and last seen and a sketch
//! of distinct clients; and the `target_service` lookup every detection
//! about a home target makes.
//!
//! Why shared, and how it stays deterministic: dispatch shards by the
//! initiator's address, so the SYN-ACKs of one server land in every worker
//! (one per client), while a detection in worker A may ask about a service
//! worker B saw. The table is one `DashMap` (sharded locks) written by every
//! worker on SYN-ACKs, RSTs and UDP replies, and read once per detection.
//! A lookup asks "as of packet time T" (`known_through`: two seconds before
//! the last tick the asking worker has passed, or the end of input) and counts only what was
//! first seen before T. In a replay it first waits until every worker has
//! passed T (`progress`, one atomic per worker, stored when a worker takes a
//! tick; the reader flushes every batch before a tick, so a worker that has
//! taken tick T has analysed every packet before T). The minimum worker
//! never waits, so nobody waits forever; the wall clock only bounds a wait
//! that a bug would make endless (`wait_timeouts`). So a replay gives the
//! same `target_service` with any `--workers`, as long as the table is not
//! full (which entry a full table refuses depends on timing) and no host
//! sits at its idle limit. Live capture does not wait: an answer seen by
//! another worker a moment ago may count a second later.
//!
//! Bounds and fairness: at most `max_hosts` hosts, `max_services_per_host`
//! services each (a host answering on more, a tarpit or a honeypot, is
//! marked and its other ports read `unknown`). A host seen answering in one
//! second only is on probation, and probation holds at most a quarter of
//! the table: a flood of forged answers from home addresses fills only
//! that quarter and cannot push out hosts already confirmed. Nothing is
//! evicted for room; what is refused is counted (`cap_hits`). Live, idle
//! entries expire after `idle_s` of packet time; a replay keeps them (its
//! files may come in any date order, and which answers an expiry sweep
//! would catch would then depend on thread timing), within the same caps.

use crate::detect::keys::Distinct256;
use crate::homenet::HomeNet;
use crate::stats::{Stats, Table};
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

crate::rules_section! {
    /// SIGNATURES.md section 7 (port guide) and 9: which home hosts answer on which ports, learned from SYN-ACKs and UDP replies (Zeek's known_services); every detection about a home target says target_service.
    pub struct InventoryRules["service_inventory"] {
        /// SIGNATURES.md section 9: learn services and report them
        enabled: bool = true;
        /// SIGNATURES.md section 9: a host or service not seen answering for a day is forgotten (Zeek's known_services expiry)
        idle_s: f64 = 86_400.0, above(0.0, 2_592_000.0);
        /// SIGNATURES.md section 9: hosts held across all workers
        max_hosts: usize = 8192, entries();
        /// SIGNATURES.md section 9: services kept per host; a host answering on more is a tarpit or honeypot
        max_services_per_host: usize = 64, ints(1, 1024);
        /// SIGNATURES.md section 9: hosts listed in one service_inventory event (the rest are counted)
        report_max_hosts: usize = 256, ints(1, 65_536);
    }
}

/// Whether the home target of a detection offers the service it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetService {
    /// The host was seen answering on that protocol and port.
    Offered,
    /// The host was seen answering, never on that port.
    NotOffered,
    /// The sensor cannot know: the host was never seen answering (no
    /// return path, or it never spoke), or it answers on too many ports.
    Unknown,
}

impl TargetService {
    pub fn name(self) -> &'static str {
        match self {
            TargetService::Offered => "offered",
            TargetService::NotOffered => "not_offered",
            TargetService::Unknown => "unknown",
        }
    }
}

/// One service of a host.
#[derive(Clone, Debug)]
pub struct Service {
    pub proto: u8,
    pub port: u16,
    pub first_us: i64,
    pub last_us: i64,
    pub clients: Distinct256,
}

/// One home host seen answering.
#[derive(Clone, Debug)]
pub struct Host {
    pub first_us: i64,
    pub last_us: i64,
    /// Seen answering in two different seconds: out of probation.
    pub confirmed: bool,
    pub services: Vec<Service>,
    /// Services refused by `max_services_per_host`.
    pub over_quota: u64,
}

/// The shared table (see the module comment).
pub struct Inventory {
    hosts: DashMap<IpAddr, Host, foldhash::fast::RandomState>,
    held: AtomicUsize,
    probation: AtomicUsize,
    max_hosts: usize,
    max_probation: usize,
    max_services: usize,
    idle_us: i64,
    pub report_max_hosts: usize,
    pub enabled: bool,
    home: HomeNet,
    /// Per worker: the last tick taken (i64::MAX once its input ended).
    progress: Box<[AtomicI64]>,
    /// Replay: lookups wait for every worker to reach their time.
    wait: bool,
    stats: Option<Arc<Stats>>,
    pub wait_timeouts: AtomicUsize,
}

/// A bug's bound on one wait (never reached when the pipeline runs).
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Inventory {
    /// A table for `workers` workers; `wait`: a replay (lookups wait for
    /// every worker's progress; see the module comment).
    pub fn new(r: &InventoryRules, home: HomeNet, workers: usize, wait: bool) -> Inventory {
        Inventory {
            hosts: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            held: AtomicUsize::new(0),
            probation: AtomicUsize::new(0),
            max_hosts: r.max_hosts,
            max_probation: (r.max_hosts / 4).max(1),
            max_services: r.max_services_per_host,
            idle_us: (r.idle_s * 1e6) as i64,
            report_max_hosts: r.report_max_hosts,
            enabled: r.enabled,
            home,
            progress: (0..workers).map(|_| AtomicI64::new(i64::MIN)).collect(),
            wait,
            stats: None,
            wait_timeouts: AtomicUsize::new(0),
        }
    }

    /// Counts refusals and expiries in `stats` (`Table::Services`).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Inventory {
        self.stats = Some(stats);
        self
    }

    fn count(&self, f: impl FnOnce(&crate::stats::TableCounters)) {
        if let Some(s) = &self.stats {
            f(s.table(Table::Services));
        }
    }

    /// A home address (every address without a home net).
    #[inline]
    pub fn is_home(&self, a: IpAddr) -> bool {
        self.home.is_empty() || self.home.contains(a)
    }

    /// Worker `w` has analysed every packet before `ts`.
    pub fn progress(&self, w: usize, ts: i64) {
        if let Some(p) = self.progress.get(w) {
            p.fetch_max(ts, Release);
        }
    }

    /// `host` answered `client` on `proto`/`port` at `ts`.
    pub fn learn(&self, host: IpAddr, proto: u8, port: u16, client: IpAddr, ts: i64) {
        let ck = crate::detect::keys::addr_key(client);
        if let Some(mut h) = self.hosts.get_mut(&host) {
            self.touched(&mut h, ts);
            if let Some(s) = h.services.iter_mut().find(|s| s.proto == proto && s.port == port) {
                s.last_us = s.last_us.max(ts);
                s.first_us = s.first_us.min(ts);
                s.clients.insert(ck);
            } else if h.services.len() < self.max_services {
                let mut clients = Distinct256::default();
                clients.insert(ck);
                h.services.push(Service { proto, port, first_us: ts, last_us: ts, clients });
                self.count(|c| {
                    c.entries.fetch_add(1, Relaxed);
                });
            } else {
                h.over_quota = h.over_quota.saturating_add(1);
            }
            return;
        }
        let mut clients = Distinct256::default();
        clients.insert(ck);
        self.insert(host, ts, Some(Service { proto, port, first_us: ts, last_us: ts, clients }));
    }

    /// `host` answered at `ts` without offering a service (an RST).
    pub fn answered(&self, host: IpAddr, ts: i64) {
        if let Some(mut h) = self.hosts.get_mut(&host) {
            self.touched(&mut h, ts);
            return;
        }
        self.insert(host, ts, None);
    }

    fn touched(&self, h: &mut Host, ts: i64) {
        if !h.confirmed && (ts - h.first_us).abs() >= 1_000_000 {
            h.confirmed = true;
            self.probation.fetch_sub(1, Relaxed);
        }
        h.last_us = h.last_us.max(ts);
        h.first_us = h.first_us.min(ts);
    }

    fn insert(&self, host: IpAddr, ts: i64, s: Option<Service>) {
        if self.held.load(Relaxed) >= self.max_hosts || self.probation.load(Relaxed) >= self.max_probation {
            self.count(|c| {
                c.cap_hits.fetch_add(1, Relaxed);
            });
            return;
        }
        let n = usize::from(s.is_some()) as u64;
        let fresh =
            Host { first_us: ts, last_us: ts, confirmed: false, services: s.into_iter().collect(), over_quota: 0 };
        match self.hosts.entry(host) {
            dashmap::Entry::Occupied(mut o) => {
                // Another worker inserted it meanwhile: merge.
                let h = o.get_mut();
                self.touched(h, ts);
                for s in fresh.services {
                    if let Some(x) = h.services.iter_mut().find(|x| x.proto == s.proto && x.port == s.port) {
                        x.first_us = x.first_us.min(s.first_us);
                        x.last_us = x.last_us.max(s.last_us);
                        x.clients = x.clients.union(&s.clients);
                    } else if h.services.len() < self.max_services {
                        h.services.push(s);
                        self.count(|c| {
                            c.entries.fetch_add(1, Relaxed);
                        });
                    } else {
                        h.over_quota = h.over_quota.saturating_add(1);
                    }
                }
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(fresh);
                self.held.fetch_add(1, Relaxed);
                self.probation.fetch_add(1, Relaxed);
                self.count(|c| {
                    c.entries.fetch_add(n, Relaxed);
                });
            }
        }
    }

    /// Forgets hosts and services idle for `idle_s` as of `now` (call with
    /// the lowest time every worker has passed).
    pub fn expire(&self, now: i64) {
        let from = now.saturating_sub(self.idle_us);
        let mut gone = 0u64;
        self.hosts.retain(|_, h| {
            let before = h.services.len();
            h.services.retain(|s| s.last_us >= from);
            gone += (before - h.services.len()) as u64;
            if h.last_us >= from {
                return true;
            }
            gone += h.services.len() as u64;
            self.held.fetch_sub(1, Relaxed);
            if !h.confirmed {
                self.probation.fetch_sub(1, Relaxed);
            }
            false
        });
        if gone > 0 {
            self.count(|c| {
                c.expired.fetch_add(gone, Relaxed);
                c.entries.fetch_sub(gone, Relaxed);
            });
        }
    }

    /// The lowest progress of all workers.
    pub fn low_watermark(&self) -> i64 {
        self.progress.iter().map(|p| p.load(Acquire)).min().unwrap_or(i64::MAX)
    }

    /// Waits (replay only) until every worker has passed `t`.
    fn wait_for(&self, t: i64) {
        if !self.wait || self.low_watermark() >= t {
            return;
        }
        let start = std::time::Instant::now();
        while self.low_watermark() < t {
            if start.elapsed() > WAIT_LIMIT {
                self.wait_timeouts.fetch_add(1, Relaxed);
                return;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    /// Whether home host `host` offers `proto`/`port`, as of packet time
    /// `known_through` (answers first seen before it).
    pub fn target_service(&self, host: IpAddr, proto: u8, port: u16, known_through: i64) -> TargetService {
        if !self.enabled {
            return TargetService::Unknown;
        }
        self.wait_for(known_through);
        let Some(h) = self.hosts.get(&host) else { return TargetService::Unknown };
        if h.first_us >= known_through {
            return TargetService::Unknown;
        }
        if h.services.iter().any(|s| s.proto == proto && s.port == port && s.first_us < known_through) {
            TargetService::Offered
        } else if h.over_quota > 0 {
            TargetService::Unknown
        } else {
            TargetService::NotOffered
        }
    }

    /// Hosts with at least one service, sorted by address, and the number
    /// of such hosts; at most `max` are returned.
    pub fn snapshot(&self, max: usize) -> (Vec<(IpAddr, Host)>, usize) {
        let mut all: Vec<(IpAddr, Host)> = Vec::new();
        let mut total = 0usize;
        for e in self.hosts.iter() {
            if e.services.is_empty() {
                continue;
            }
            total += 1;
            all.push((*e.key(), e.value().clone()));
        }
        all.sort_by_key(|(a, _)| *a);
        all.truncate(max);
        for (_, h) in &mut all {
            h.services.sort_by_key(|s| (s.proto, s.port));
        }
        (all, total)
    }

    /// A replay (lookups wait; the table does not expire, see `Learner`).
    pub fn is_replay(&self) -> bool {
        self.wait
    }

    /// Hosts held (with or without services).
    pub fn len(&self) -> usize {
        self.held.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn inv(r: InventoryRules) -> Inventory {
        Inventory::new(&r, HomeNet::parse("192.0.2.0/24").unwrap(), 1, false)
    }

    #[test]
    fn offered_not_offered_unknown() {
        let t = inv(InventoryRules::default());
        let (web, c) = (ip("192.0.2.80"), ip("198.51.100.1"));
        assert_eq!(t.target_service(web, 6, 80, i64::MAX), TargetService::Unknown, "never seen");
        t.learn(web, 6, 80, c, 5_000_000);
        assert_eq!(t.target_service(web, 6, 80, i64::MAX), TargetService::Offered);
        assert_eq!(t.target_service(web, 6, 81, i64::MAX), TargetService::NotOffered);
        assert_eq!(t.target_service(web, 17, 80, i64::MAX), TargetService::NotOffered, "UDP is another service");
        assert_eq!(t.target_service(web, 6, 80, 5_000_000), TargetService::Unknown, "not yet known at that time");
        // An RST-only host: known, offers nothing.
        t.answered(ip("192.0.2.9"), 1);
        assert_eq!(t.target_service(ip("192.0.2.9"), 6, 22, i64::MAX), TargetService::NotOffered);
    }

    #[test]
    fn clients_first_and_last_seen() {
        let t = inv(InventoryRules::default());
        let web = ip("192.0.2.80");
        for i in 0..10u8 {
            t.learn(web, 6, 443, IpAddr::from([198, 51, 100, i % 5]), 10_000_000 + i64::from(i) * 1_000_000);
        }
        let (hosts, total) = t.snapshot(10);
        assert_eq!(total, 1);
        let s = &hosts[0].1.services[0];
        assert_eq!((s.port, s.first_us, s.last_us, s.clients.estimate()), (443, 10_000_000, 19_000_000, 5));
        assert!(hosts[0].1.confirmed);
    }

    #[test]
    fn bounded_with_a_probation_quarter_and_a_per_host_quota() {
        let t = inv(InventoryRules { max_hosts: 8, max_services_per_host: 4, ..Default::default() });
        let c = ip("198.51.100.1");
        // Two confirmed servers.
        for h in [1u8, 2] {
            t.learn(IpAddr::from([192, 0, 2, h]), 6, 80, c, 0);
            t.learn(IpAddr::from([192, 0, 2, h]), 6, 80, c, 2_000_000);
        }
        // A flood of one-shot answers from forged home addresses: only the
        // probation quarter (2) fills, the servers stay.
        for h in 10..200u8 {
            t.learn(IpAddr::from([192, 0, 2, h]), 6, 80, c, 3_000_000);
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.target_service(ip("192.0.2.1"), 6, 80, i64::MAX), TargetService::Offered);
        // A tarpit answering on every port: 4 kept, the rest unknown.
        for p in 1..100u16 {
            t.learn(ip("192.0.2.1"), 6, p, c, 4_000_000);
        }
        assert_eq!(t.target_service(ip("192.0.2.1"), 6, 99, i64::MAX), TargetService::Unknown);
        // Expiry: a day idle.
        t.expire(4_000_000 + 86_400_000_001);
        assert!(t.is_empty());
    }

    #[test]
    fn a_replay_lookup_waits_for_every_worker() {
        let t = Arc::new(Inventory::new(&InventoryRules::default(), HomeNet::default(), 2, true));
        t.progress(0, 10);
        let t2 = Arc::clone(&t);
        let h = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            t2.learn(ip("192.0.2.1"), 6, 25, ip("198.51.100.1"), 5);
            t2.progress(1, 10);
        });
        // Worker 1 has not passed 10 yet: the lookup waits for its answer at 5.
        assert_eq!(t.target_service(ip("192.0.2.1"), 6, 25, 10), TargetService::Offered);
        h.join().unwrap();
    }
}
