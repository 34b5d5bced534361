//! `netbios_nodestatus`: NetBIOS NodeStatus ("*", NBSTAT) queries to UDP 137
//! (SIGNATURES.md section 5), per querying source and stack.
//!
//! - The decoder marks the query (`fact::NBNS_NODESTATUS_STAR`: one question,
//!   the name "*" as `CKAAAA...`, type NBSTAT 0x21, class IN). This module
//!   only counts it.
//! - `stack` is `windows` when the source port is 137 and `unix` otherwise;
//!   the two are tracked apart, so one host's Windows-style lookup and a
//!   scanner it runs from a dynamic port are two detections.
//! - Timing comes from the intervals between queries to the same target:
//!   `windows_1.5s` (3 queries about 1.5 s apart), `progressive` (15 s, 30 s,
//!   1 min timeouts of some personal firewalls) or `other`.
//! - `verdict`: `scan` once a source has queried `scan_min_targets` targets;
//!   otherwise `lookup` (up to `lookup_max_targets` it is the textbook
//!   lookup; between the two thresholds it is still called a lookup of
//!   several targets, a host resolving the names of its peers, with a higher
//!   severity). A source that has lately probed `port_scan_min_ports`
//!   destination ports (the per-source table) gets `port_scan`: its query is
//!   one probe of a port scanner or fingerprinting tool, not a lookup.
//! - `followed_by_smb`: connection attempts (SYN) from the same source to TCP
//!   139 or 445 of a queried target, within `smb_window_s` after the last
//!   query. Sharding keys probes by source, so the SYNs reach this worker.
//!   (With a home net, an inside host querying outside hosts is sharded by
//!   the outside address, so such an outbound scan is split between workers
//!   and may stay under the scan threshold in each.)
//! - Answers are tallied too: NBNS responses from a queried target and ICMP
//!   unreachables quoting a query.
//!
//! Lifecycle: a scan is emitted `new` when it crosses `scan_min_targets`,
//! `update` at most once per `general.update_interval_s`, and `final` when the
//! source has been idle `idle_s`. A lookup is emitted once, `final`: when it
//! is complete (the Windows pattern ends after its third query, end reason
//! `complete`) or idle for `idle_s` (long enough for the 1 min progressive
//! timeout), or at the end of input.
//!
//! State: one entry per (source, stack), about 1 KB, capped at
//! `max_tracked` (split between workers); a full table first drops entries
//! holding a single query (a spoofed flood), at most once per second, then
//! refuses new sources. Both are counted.

use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, fact};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::fair::{Fair, Weighted, credit_of};
use crate::detect::keys::SWEEP_US;
use crate::detect::keys::{Distinct256, Distinct1024, addr_key};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

crate::rules_section! {
    /// SIGNATURES.md section 5: NetBIOS NodeStatus ("*", NBSTAT) queries to UDP 137.
    /// A Windows host sends 3 when a reverse DNS lookup fails (harmless); one
    /// source querying many hosts, often followed by TCP 139/445, is a scan or worm.
    pub struct NetbiosRules["netbios_nodestatus"] check(check_netbios) {
        /// SIGNATURES.md section 5: the most common line in any reject log, classified
        enabled: bool = true;
        /// SIGNATURES.md section 5: a lookup queries one target (two allowed); 3..scan_min_targets-1 is "lookup of several hosts"
        lookup_max_targets: u32 = 2, ints(1, 1000);
        /// SIGNATURES.md section 5: one source, many targets = NetBIOS scan; emitted as soon as it reaches this many; more than lookup_max_targets
        scan_min_targets: u32 = 10, ints(2, 65_536);
        /// SIGNATURES.md section 2: a querier that probed this many destination ports lately is a port scanner (masscan, xprobe), verdict port_scan
        port_scan_min_ports: u32 = 10, ints(2, 65_536);
        /// SIGNATURES.md section 5: progressive timeouts wait up to 1 min between queries; idle this long ends a detection
        idle_s: f64 = 120.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 5: a scan is often followed by TCP 139/445; SYNs to queried hosts this long after the last query count
        smb_window_s: f64 = 60.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 5: Windows sends 3 NodeStatus queries per target, then gives up; timing "windows_1.5s" allows at most this many
        windows_queries: u16 = 3, ints(1, 16);
        /// SIGNATURES.md section 5: ...1.5 s apart (median retry gap)
        windows_interval_s: f64 = 1.5, above(0.0, 60.0);
        /// SIGNATURES.md section 5: accepted deviation of that median from windows_interval_s
        windows_tolerance_s: f64 = 0.3, floats(0.0, 60.0);
        /// SIGNATURES.md section 5: personal firewalls retry with progressive 15 s / 30 s / 1 min timeouts; the first gap falls in min..max
        progressive_first_min_s: f64 = 12.0, above(0.0, 3_600.0);
        /// SIGNATURES.md section 5: upper bound of that first gap; at least progressive_first_min_s
        progressive_first_max_s: f64 = 20.0, above(0.0, 3_600.0);
        /// SIGNATURES.md section 5: the longest gap is at least this many times the first (15 -> 30 -> 60 s doubles)
        progressive_growth: f64 = 1.6, floats(1.0, 100.0);
        /// SIGNATURES.md section 5: cap on (source, stack) entries that queried again (promoted), across all workers, about 1 KB each
        max_tracked: usize = 16384, entries();
        /// SIGNATURES.md section 5: cap on (source, stack) entries with one query (a spoofed flood lands here, oldest out first), across all workers
        max_probation: usize = 16384, entries();
    }
}

/// The progressive-timeout bounds and the lookup/scan thresholds in order.
fn check_netbios(r: &NetbiosRules, s: &Spans) -> Result<(), ConfigError> {
    if r.progressive_first_max_s < r.progressive_first_min_s {
        return Err(s.out_of_order(
            "progressive_first_max_s",
            "progressive_first_min_s",
            format!(
                "progressive_first_max_s ({}) must be at least progressive_first_min_s ({})",
                r.progressive_first_max_s, r.progressive_first_min_s
            ),
        ));
    }
    if r.scan_min_targets <= r.lookup_max_targets {
        return Err(s.out_of_order(
            "scan_min_targets",
            "lookup_max_targets",
            format!(
                "scan_min_targets ({}) must be greater than lookup_max_targets ({})",
                r.scan_min_targets, r.lookup_max_targets
            ),
        ));
    }
    Ok(())
}

const KIND: &str = "netbios_nodestatus";
/// The NetBIOS name service port.
const NBNS: u16 = 137;
/// Targets listed in an event (and matched exactly for SMB follow-ups).
const SAMPLE: usize = 16;
/// Targets whose retry intervals are measured. A query after an answer
/// from the same target starts a new lookup and is not a retry.
const SLOTS: usize = 4;
/// Retry intervals kept for the median and the timing pattern.
const INTERVALS: usize = 16;
/// Packet time between make-room sweeps of a full table.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Stack {
    Windows,
    Unix,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Windows => "windows",
            Stack::Unix => "unix",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    stack: Stack,
}

/// A target whose repeated queries are timed.
#[derive(Clone, Copy, Debug)]
struct Slot {
    addr: IpAddr,
    last_us: i64,
    /// Queries of the current lookup (the first and its retries).
    queries: u16,
    /// The last query was answered: the next one is a new lookup, not a retry.
    answered: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    first_us: i64,
    /// Last query.
    last_query_us: i64,
    /// Last activity (query, follow-up SYN or answer).
    last_us: i64,
    first_sport: u16,
    queries: u32,
    targets: Distinct1024,
    /// Membership of queried targets beyond the sample.
    queried: Bloom,
    sample: [Option<IpAddr>; SAMPLE],
    sample_len: usize,
    slots: [Option<Slot>; SLOTS],
    intervals: [i64; INTERVALS],
    intervals_len: usize,
    ttl_min: u8,
    ttl_max: u8,
    answers: u32,
    unreachables: u32,
    smb_targets: Distinct256,
    smb_syns: u32,
    smb_139: bool,
    smb_445: bool,
    /// Most distinct destination ports the source had probed lately (the
    /// per-source table), seen at a query or follow-up SYN.
    ports_probed: u64,
    /// `new` was emitted (scans only).
    confirmed: bool,
    last_emit_us: i64,
}

impl Entry {
    fn new(sensor: u16, ts: i64, sport: u16, ttl: u8) -> Entry {
        Entry {
            sensor,
            first_us: ts,
            last_query_us: ts,
            last_us: ts,
            first_sport: sport,
            queries: 0,
            targets: Distinct1024::default(),
            queried: Bloom::default(),
            sample: [None; SAMPLE],
            sample_len: 0,
            slots: [None; SLOTS],
            intervals: [0; INTERVALS],
            intervals_len: 0,
            ttl_min: ttl,
            ttl_max: ttl,
            answers: 0,
            unreachables: 0,
            smb_targets: Distinct256::default(),
            smb_syns: 0,
            smb_139: false,
            smb_445: false,
            ports_probed: 0,
            confirmed: false,
            last_emit_us: ts,
        }
    }

    fn query(&mut self, dst: IpAddr, ts: i64, ttl: u8) {
        self.queries = self.queries.saturating_add(1);
        self.last_query_us = self.last_query_us.max(ts);
        self.last_us = self.last_us.max(ts);
        self.ttl_min = self.ttl_min.min(ttl);
        self.ttl_max = self.ttl_max.max(ttl);
        let h = mix(addr_key(dst));
        self.targets.insert(h);
        self.queried.insert(h);
        if self.sample_len < SAMPLE && !self.in_sample(dst) {
            self.sample[self.sample_len] = Some(dst);
            self.sample_len += 1;
        }
        let interval = match self.slots.iter_mut().flatten().find(|s| s.addr == dst) {
            Some(s) => {
                let gap = ts.saturating_sub(s.last_us);
                let retry = !s.answered;
                s.last_us = ts;
                s.answered = false;
                s.queries = if retry { s.queries.saturating_add(1) } else { 1 };
                retry.then_some(gap)
            }
            None => {
                if let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) {
                    *free = Some(Slot { addr: dst, last_us: ts, queries: 1, answered: false });
                }
                None
            }
        };
        if let Some(gap) = interval {
            if self.intervals_len == INTERVALS {
                self.intervals.copy_within(1.., 0);
                self.intervals_len -= 1;
            }
            self.intervals[self.intervals_len] = gap;
            self.intervals_len += 1;
        }
    }

    fn in_sample(&self, a: IpAddr) -> bool {
        self.sample[..self.sample_len].contains(&Some(a))
    }

    /// Whether `a` was queried: exact while every target is in the sample,
    /// else by the Bloom filter (under 1% false positives up to a /24).
    fn was_queried(&self, a: IpAddr) -> bool {
        if self.in_sample(a) {
            return true;
        }
        self.sample_len == SAMPLE && self.queried.contains(mix(addr_key(a)))
    }

    /// Distinct targets: exact while they all fit in the sample, else the
    /// sketch's estimate (within a few percent up to several hundred).
    fn target_count(&self) -> u64 {
        if self.sample_len < SAMPLE { self.sample_len as u64 } else { self.targets.estimate().max(SAMPLE as u64) }
    }

    /// Median retry interval, in microseconds.
    fn median_interval(&self) -> Option<i64> {
        if self.intervals_len == 0 {
            return None;
        }
        let mut v = self.intervals;
        let v = &mut v[..self.intervals_len];
        v.sort_unstable();
        let n = v.len();
        Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2 })
    }

    fn max_queries_per_target(&self) -> u16 {
        self.slots.iter().flatten().map(|s| s.queries).max().unwrap_or(0)
    }

    /// SIGNATURES.md section 5: which retry pattern the queries follow:
    /// Windows' 3 queries 1.5 s apart, or progressive timeouts that start
    /// near 15 s and grow (15 s, 30 s, 1 min). The bounds are rules keys.
    fn timing(&self, r: &NetbiosRules) -> &'static str {
        let Some(median) = self.median_interval() else {
            return "other";
        };
        let us = |s: f64| (s * 1e6) as i64;
        if (median - us(r.windows_interval_s)).abs() <= us(r.windows_tolerance_s)
            && self.max_queries_per_target() <= r.windows_queries
        {
            return "windows_1.5s";
        }
        let mut v = self.intervals;
        let v = &mut v[..self.intervals_len];
        v.sort_unstable();
        let (min, max) = (v[0], v[v.len() - 1]);
        let first_ok = (us(r.progressive_first_min_s)..=us(r.progressive_first_max_s)).contains(&min);
        if first_ok && (v.len() == 1 || max as f64 >= min as f64 * r.progressive_growth) {
            return "progressive";
        }
        "other"
    }

    /// The Windows lookup is over after its last query (the third) to each target.
    fn windows_complete(&self, r: &NetbiosRules) -> bool {
        let targets = self.target_count();
        targets <= u64::from(r.lookup_max_targets)
            && self.slots.iter().flatten().count() as u64 == targets
            && self.slots.iter().flatten().all(|s| s.queries >= r.windows_queries)
            && self.timing(r) == "windows_1.5s"
    }

    fn smb_followed(&self) -> bool {
        self.smb_syns > 0
    }
}

/// A 2048-bit Bloom filter with 3 probes: about 0.5% false positives at 128
/// members, 5% at 300.
#[derive(Clone, Copy, Debug, Default)]
struct Bloom([u64; 32]);

impl Bloom {
    const BITS: u64 = 2048;

    fn probes(h: u64) -> [u64; 3] {
        [h % Self::BITS, (h >> 21) % Self::BITS, (h >> 42) % Self::BITS]
    }

    fn insert(&mut self, h: u64) {
        for b in Self::probes(h) {
            if let Some(w) = self.0.get_mut((b / 64) as usize) {
                *w |= 1 << (b % 64);
            }
        }
    }

    fn contains(&self, h: u64) -> bool {
        Self::probes(h).iter().all(|b| self.0.get((*b / 64) as usize).is_some_and(|w| w & (1 << (b % 64)) != 0))
    }
}

/// The detector's per-worker state.
pub struct Netbios {
    map: Fair<Key, Entry>,
    rules: NetbiosRules,
    update_us: i64,
    idle_us: i64,
    smb_window_us: i64,
    last_sweep_us: i64,
}

impl Netbios {
    pub fn new(rules: &NetbiosRules, (cap, probation): (usize, usize), update_interval_s: f64) -> Netbios {
        Netbios {
            map: Fair::new(probation, cap),
            rules: rules.clone(),
            update_us: (update_interval_s * 1e6) as i64,
            idle_us: (rules.idle_s * 1e6) as i64,
            smb_window_us: (rules.smb_window_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    #[inline]
    fn packet(&mut self, p: &PacketSummary, sensor: u16, sources: &Sources, cx: &Ctx) {
        if !self.rules.enabled {
            return;
        }
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            L4::Udp(u) if p.payload_facts & fact::NBNS_NODESTATUS_STAR != 0 => {
                let ports = sources.distinct_ports(ip.src);
                self.on_query(p, sensor, (ip.src, ip.dst), u.sport, ip.ttl, ports, cx);
            }
            L4::Udp(u) if u.sport == NBNS && !self.map.is_empty() && is_nbns_response(p) => {
                // An answer from a queried target.
                self.each_of(ip.dst, |e| {
                    if e.was_queried(ip.src) {
                        if let Some(slot) = e.slots.iter_mut().flatten().find(|s| s.addr == ip.src) {
                            slot.answered = true;
                        }
                        e.answers = e.answers.saturating_add(1);
                        e.last_us = e.last_us.max(p.ts_us);
                    }
                });
            }
            L4::Tcp(t) if (t.dport == 139 || t.dport == 445) && t.is_connection_attempt() && !self.map.is_empty() => {
                let (window, update_us) = (self.smb_window_us, self.update_us);
                let ports = sources.distinct_ports(ip.src);
                for stack in [Stack::Windows, Stack::Unix] {
                    let key = Key { src: ip.src, stack };
                    let Some(e) = self.map.get_mut(&key) else { continue };
                    if p.ts_us.saturating_sub(e.last_query_us) > window || !e.was_queried(ip.dst) {
                        continue;
                    }
                    let first = !e.smb_followed();
                    e.smb_syns = e.smb_syns.saturating_add(1);
                    e.smb_targets.insert(mix(addr_key(ip.dst)));
                    e.smb_139 |= t.dport == 139;
                    e.smb_445 |= t.dport == 445;
                    e.ports_probed = e.ports_probed.max(ports);
                    e.last_us = e.last_us.max(p.ts_us);
                    // A confirmed scan that turns to SMB is news: update at
                    // once (the severity rises), then at the usual pace.
                    if e.confirmed && (first || p.ts_us - e.last_emit_us >= update_us) {
                        e.last_emit_us = p.ts_us;
                        cx.emit(render(&key, e, "update", None, &self.rules, cx, p.ts_us));
                    }
                }
            }
            L4::Icmp(i) if i.is_unreachable() && !self.map.is_empty() => {
                let Some(q) = &i.quoted else { return };
                if q.proto != 17 || !q.has_ports || q.dport != NBNS {
                    return;
                }
                let stack = if q.sport == NBNS { Stack::Windows } else { Stack::Unix };
                if let Some(e) = self.map.get_mut(&Key { src: q.src, stack })
                    && e.was_queried(q.dst)
                {
                    e.unreachables = e.unreachables.saturating_add(1);
                    e.last_us = e.last_us.max(p.ts_us);
                }
            }
            _ => {}
        }
    }

    /// Applies `f` to the entries of `src` (both stacks): two lookups.
    fn each_of(&mut self, src: IpAddr, mut f: impl FnMut(&mut Entry)) {
        for stack in [Stack::Windows, Stack::Unix] {
            if let Some(e) = self.map.get_mut(&Key { src, stack }) {
                f(e);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_query(
        &mut self,
        p: &PacketSummary,
        sensor: u16,
        (src, dst): (IpAddr, IpAddr),
        sport: u16,
        ttl: u8,
        ports_probed: u64,
        cx: &Ctx,
    ) {
        let stack = if sport == NBNS { Stack::Windows } else { Stack::Unix };
        let key = Key { src, stack };
        let now = p.ts_us;
        let (scan_min, update_us) = (u64::from(self.rules.scan_min_targets), self.update_us);
        let table = cx.shared.stats.table(Table::Netbios);
        let Some(e) = self.map.touch(key, table, || Entry::new(sensor, now, sport, ttl)) else { return };
        e.sensor = sensor;
        e.query(dst, now, ttl);
        e.ports_probed = e.ports_probed.max(ports_probed);
        if e.confirmed {
            if now - e.last_emit_us >= update_us {
                e.last_emit_us = now;
                cx.emit(render(&key, e, "update", None, &self.rules, cx, now));
            }
            return;
        }
        if e.target_count() >= scan_min {
            e.confirmed = true;
            e.last_emit_us = now;
            cx.emit(render(&key, e, "new", None, &self.rules, cx, now));
            return;
        }
        if e.windows_complete(&self.rules) {
            cx.emit(render(&key, e, "final", Some(End::Complete), &self.rules, cx, now));
            self.map.remove(&key);
        }
    }

    fn tick(&mut self, cx: &Ctx) {
        let now = cx.now;
        if now.saturating_sub(self.last_sweep_us) < SWEEP_US {
            return;
        }
        self.last_sweep_us = now;
        let idle = self.idle_us;
        let rules = &self.rules;
        let mut expired = 0u64;
        self.map.retain(|key, e| {
            if now.saturating_sub(e.last_us) <= idle {
                return true;
            }
            cx.emit(render(key, e, "final", Some(End::Reason(EndReason::Expired)), rules, cx, now));
            expired += 1;
            false
        });
        cx.shared.stats.table(Table::Netbios).expired.fetch_add(expired, Relaxed);
    }

    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        // Deterministic order for the output.
        let mut keys: Vec<(i64, Key)> = self.map.iter().map(|(k, e)| (e.first_us, *k)).collect();
        keys.sort_by_key(|(t, k)| (*t, ip_bytes(&k.src), k.stack == Stack::Unix));
        for (_, key) in keys {
            if let Some(e) = self.map.get(&key) {
                cx.emit(render(&key, e, "final", Some(End::Reason(reason)), &self.rules, cx, cx.now));
            }
        }
        self.map.clear();
    }
}

/// Scrambles an address key so that consecutive addresses (a scan of a
/// subnet) land in the sketch like random ones: linear counting assumes
/// random collisions and would over-count a perfectly spread sweep.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A UDP payload from port 137 whose flags have the response bit.
fn is_nbns_response(p: &PacketSummary) -> bool {
    p.payload_len >= 12 && p.payload_head[2] & 0x80 != 0
}

impl Weighted for Entry {
    /// One hand pass per doubling of its queries.
    fn credit(&self) -> u8 {
        credit_of(u64::from(self.queries))
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
    fn evidence(&self) -> bool {
        self.confirmed || self.queries >= 2
    }
}

impl Detector for Netbios {
    fn table(&self) -> Table {
        Table::Netbios
    }
    fn interest(&self) -> u16 {
        class::TCP_ATTEMPT | class::UDP | class::ICMP
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, sources: &Sources, cx: &Ctx) {
        self.packet(p, sensor, sources, cx);
    }
    fn on_tick(&mut self, _sources: &Sources, cx: &Ctx) {
        self.tick(cx);
    }
    fn flush(&mut self, reason: EndReason, _sources: &Sources, cx: &Ctx) {
        self.end(reason, cx);
    }
}

/// Why a detection ended: the shared reasons, or a lookup that completed.
#[derive(Clone, Copy)]
enum End {
    Reason(EndReason),
    Complete,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Reason(r) => r.name(),
            End::Complete => "complete",
        }
    }
}

fn verdict(e: &Entry, rules: &NetbiosRules) -> &'static str {
    if e.target_count() >= u64::from(rules.scan_min_targets) {
        "scan"
    } else if e.ports_probed >= u64::from(rules.port_scan_min_ports) {
        "port_scan"
    } else {
        "lookup"
    }
}

/// SIGNATURES.md section 9: the row of `[lethality]` that scores it.
fn fact(e: &Entry, rules: &NetbiosRules) -> Fact {
    let targets = e.target_count();
    match (verdict(e, rules), e.smb_followed()) {
        ("scan" | "port_scan", true) => Fact::NetbiosScanThenSmb,
        ("scan" | "port_scan", false) => Fact::NetbiosScan,
        (_, true) => Fact::NetbiosLookupThenSmb,
        _ if targets > u64::from(rules.lookup_max_targets) => Fact::NetbiosSeveral,
        _ => Fact::NetbiosLookup,
    }
}

fn smb_ports(e: &Entry) -> Vec<u16> {
    let mut v = Vec::new();
    if e.smb_139 {
        v.push(139);
    }
    if e.smb_445 {
        v.push(445);
    }
    v
}

fn render(key: &Key, e: &Entry, status: &str, end: Option<End>, rules: &NetbiosRules, cx: &Ctx, now: i64) -> EventLine {
    let id = detection_id(KIND, &[&ip_bytes(&key.src), key.stack.name().as_bytes(), &e.first_us.to_be_bytes()]);
    let targets = e.target_count();
    let sample: Vec<String> = e.sample[..e.sample_len].iter().flatten().map(IpAddr::to_string).collect();
    let interval = e.median_interval().map(secs);
    let smb_targets = if e.smb_followed() { e.smb_targets.estimate() } else { 0 };
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(End::name),
        "stack": key.stack.name(),
        "verdict": verdict(e, rules),
        "queries": e.queries,
        "targets": targets,
        "sample_targets": sample,
        "more_targets": targets.saturating_sub(e.sample_len as u64),
        "interval_s": interval,
        "timing": e.timing(rules),
        "followed_by_smb": {
            "targets": smb_targets,
            "syns": e.smb_syns,
            "ports": smb_ports(e),
        },
        "answers": e.answers,
        "unreachables": e.unreachables,
        "ports_probed": e.ports_probed,
        "source_port": e.first_sport,
        "ttl": {"min": e.ttl_min, "max": e.ttl_max},
        "direction": e.sample[0].and_then(|d| cx.direction(key.src, d)),
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let dst = e.sample[0].unwrap_or(key.src);
    let flow = Flow { src: key.src, dst, proto: 17, ports: Some((e.first_sport, NBNS)) };
    EventBuilder::new(KIND, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(key.src, dst), Some((17, NBNS)), fact(e, rules)))
        .summary(summary(key, e, rules))
        .details(KIND, details)
}

/// One sentence an analyst can act on.
fn summary(key: &Key, e: &Entry, rules: &NetbiosRules) -> String {
    let targets = e.target_count();
    let first = e.sample[0].map(|a| a.to_string()).unwrap_or_default();
    let how = match key.stack {
        Stack::Windows => "from port 137 (Windows)".to_string(),
        Stack::Unix => format!("from dynamic port {} (UNIX/Samba tool or personal firewall)", e.first_sport),
    };
    let timing = match (e.timing(rules), e.median_interval()) {
        ("windows_1.5s", _) => ", 1.5 s apart as Windows retries".to_string(),
        ("progressive", _) => ", with progressive 15/30/60 s timeouts".to_string(),
        (_, Some(i)) => format!(", retried every {} s", secs(i)),
        _ => String::new(),
    };
    let answered = if e.answers > 0 {
        format!("; {} answered", e.answers)
    } else if e.unreachables > 0 {
        format!("; {} ICMP unreachable, no NBNS answer", e.unreachables)
    } else {
        "; no answer seen".to_string()
    };
    let smb = if e.smb_followed() {
        let ports: Vec<String> = smb_ports(e).iter().map(u16::to_string).collect();
        format!(
            "; then {} to TCP {} on {} of the queried hosts",
            plural(u64::from(e.smb_syns), "connection attempt"),
            ports.join("/"),
            e.smb_targets.estimate()
        )
    } else {
        String::new()
    };
    let queries = plural(u64::from(e.queries), "NetBIOS NodeStatus query");
    let tgt = if targets <= 1 { first } else { plural(targets, "host") };
    match verdict(e, rules) {
        "scan" => format!(
            "{} ran a NetBIOS scan: NodeStatus queries to {targets} hosts {how}{answered}{smb}: reconnaissance for file shares, or a worm",
            key.src
        ),
        "port_scan" => format!(
            "{} sent {queries} to {tgt} {how}{answered}{smb} while probing {} destination ports: one probe of a port scan or fingerprinting tool, not a name lookup",
            key.src, e.ports_probed
        ),
        _ if targets > u64::from(rules.lookup_max_targets) => format!(
            "{} sent {queries} to {tgt} {how}{timing}{answered}{smb}: name lookups of several peers, short of a scan; check the host",
            key.src
        ),
        _ => {
            let tail = if e.smb_followed() {
                "a name lookup followed by file-sharing attempts"
            } else {
                "a harmless name lookup (a reverse DNS lookup that failed falls back to NetBIOS)"
            };
            format!("{} sent {queries} to {tgt} {how}{timing}{answered}{smb}: {tail}", key.src)
        }
    }
}

/// "1 query", "2 queries", "3 hosts".
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else if let Some(stem) = what.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Rules;

    use crate::decode::summary::{IcmpInfo, Quoted, UdpInfo, tcpflag};

    use serde_json::Value;

    const WIN: &str = "203.0.113.10";
    const UNIX: &str = "198.51.100.10";

    use crate::detect::testrig::s;

    type Rig = crate::detect::testrig::Rig<Netbios>;

    fn rig(tweak: impl FnOnce(&mut Rules)) -> Rig {
        Rig::with(tweak, |_, r| {
            Netbios::new(&r.netbios, (r.netbios.max_tracked, r.netbios.max_probation), r.general.update_interval_s)
        })
    }

    fn udp(t: f64, src: &str, dst: &str, sport: u16, dport: u16) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), 92, 92);
        let mut ip = crate::decode::summary::testutil::ipv4(src, dst, 17);
        ip.ttl = 126;
        p.ip = Some(ip);
        p.l4 = L4::Udp(UdpInfo { sport, dport });
        p.payload_len = 50;
        p
    }

    /// A NodeStatus "*" query as the decoder marks it.
    fn nbstat(t: f64, src: &str, dst: &str, sport: u16) -> PacketSummary {
        let mut p = udp(t, src, dst, sport, 137);
        p.payload_head = [0x20, 0xa8, 0, 0, 0, 1, 0, 0];
        p.payload_facts = fact::NBNS_NODESTATUS_STAR;
        p
    }

    fn syn(t: f64, src: &str, dst: &str, dport: u16) -> PacketSummary {
        crate::decode::summary::testutil::tcp(s(t), src, dst, (40000, dport), tcpflag::SYN, 1, 0)
    }

    fn d(ev: &Value) -> &Value {
        &ev["netbios_nodestatus"]
    }

    #[test]
    fn a_windows_lookup_is_complete_after_three_queries_1_5_s_apart() {
        let mut r = rig(|_| {});
        for t in [0.0, 1.5, 3.0] {
            r.feed(nbstat(t, WIN, "192.0.2.20", 137));
        }
        let ev = r.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        let x = d(&ev[0]);
        assert_eq!(x["status"], "final");
        assert_eq!(x["end_reason"], "complete");
        assert_eq!(x["stack"], "windows");
        assert_eq!(x["verdict"], "lookup");
        assert_eq!(x["timing"], "windows_1.5s");
        assert_eq!(x["interval_s"], 1.5);
        assert_eq!(x["queries"], 3);
        assert_eq!(x["targets"], 1);
        assert_eq!(x["followed_by_smb"]["syns"], 0);
        assert_eq!(ev[0]["src_port"], 137);
        assert_eq!(ev[0]["dest_port"], 137);
        assert_eq!(ev[0]["dest_ip"], "192.0.2.20");
        assert_eq!(ev[0]["severity"], 0, "lookup: lethality 1");
        assert!(r.end().is_empty(), "nothing left open");
    }

    #[test]
    fn the_timing_patterns_follow_the_rules() {
        // A stack that retries every 2 s, four times: `other` by default...
        let feed = |r: &mut Rig| {
            for t in [0.0, 2.0, 4.0, 6.0] {
                r.feed(nbstat(t, WIN, "192.0.2.20", 137));
            }
            r.end()
        };
        let ev = feed(&mut rig(|_| {}));
        assert_eq!((ev.len(), d(&ev[0])["timing"].as_str()), (1, Some("other")), "{ev:?}");
        // ...and the Windows pattern, complete at its fourth query, once the rules say so.
        let mut r = rig(|rules| {
            rules.netbios.windows_interval_s = 2.0;
            rules.netbios.windows_queries = 4;
        });
        let ev = feed(&mut r);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            (d(&ev[0])["timing"].as_str(), d(&ev[0])["end_reason"].as_str()),
            (Some("windows_1.5s"), Some("complete"))
        );
        // Progressive bounds: a first gap of 25 s is out of the default 12..20 s.
        let prog = |r: &mut Rig| {
            for t in [0.0, 25.0, 75.0] {
                r.feed(nbstat(t, UNIX, "192.0.2.10", 1030));
                r.tick(t + 1.0);
            }
            r.end()
        };
        assert_eq!(d(&prog(&mut rig(|_| {}))[0])["timing"], "other");
        let mut r = rig(|rules| rules.netbios.progressive_first_max_s = 30.0);
        assert_eq!(d(&prog(&mut r)[0])["timing"], "progressive");
    }

    #[test]
    fn a_unix_lookup_is_reported_once_when_idle() {
        let mut r = rig(|_| {});
        for i in 0..10 {
            r.feed(nbstat(f64::from(i), UNIX, "192.0.2.10", 38737));
            r.tick(f64::from(i) + 0.5);
        }
        assert!(r.events().is_empty(), "a lookup is reported when it ends");
        r.tick(9.0 + 121.0);
        let ev = r.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        let x = d(&ev[0]);
        assert_eq!((x["status"].as_str(), x["end_reason"].as_str()), (Some("final"), Some("expired")));
        assert_eq!(x["stack"], "unix");
        assert_eq!(x["timing"], "other");
        assert_eq!(x["interval_s"], 1.0);
        assert_eq!(x["queries"], 10);
        assert_eq!(x["source_port"], 38737);
        assert!(r.end().is_empty());
    }

    #[test]
    fn progressive_timeouts_are_recognised() {
        let mut r = rig(|_| {});
        for t in [0.0, 15.0, 45.0, 105.0] {
            r.feed(nbstat(t, UNIX, "192.0.2.10", 1030));
            r.tick(t + 1.0);
        }
        assert!(r.events().is_empty(), "a 60 s pause does not end the lookup");
        let ev = r.end();
        assert_eq!(ev.len(), 1);
        assert_eq!(d(&ev[0])["timing"], "progressive");
        assert_eq!(d(&ev[0])["interval_s"], 30.0);
        assert_eq!(d(&ev[0])["queries"], 4);
    }

    #[test]
    fn a_scan_is_new_at_the_threshold_then_final_with_smb_follow_ups() {
        let mut r = rig(|_| {});
        for i in 0..128u8 {
            r.feed(nbstat(f64::from(i) * 0.0001, WIN, &format!("192.0.2.{i}"), 49118));
        }
        let ev = r.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(d(&ev[0])["status"], "new");
        assert_eq!(d(&ev[0])["verdict"], "scan");
        assert_eq!(d(&ev[0])["targets"], 10);
        let id = d(&ev[0])["id"].clone();
        for (i, host) in [10, 20, 30, 40].iter().enumerate() {
            let t = 1.0 + i as f64 * 2.0;
            r.feed(syn(t, WIN, &format!("192.0.2.{host}"), 445));
            r.feed(syn(t + 1.0, WIN, &format!("192.0.2.{host}"), 445));
        }
        // A SYN to a host that was never queried does not count.
        r.feed(syn(9.0, WIN, "192.0.2.200", 445));
        let up = r.events();
        assert_eq!(up.len(), 1, "the first SMB follow-up updates the scan at once: {up:?}");
        assert_eq!(
            (d(&up[0])["status"].as_str(), d(&up[0])["followed_by_smb"]["syns"].as_u64()),
            (Some("update"), Some(1))
        );
        assert_eq!(up[0]["severity"], 4);
        let ev = r.end();
        assert_eq!(ev.len(), 1);
        let x = d(&ev[0]);
        assert_eq!(x["status"], "final");
        assert_eq!(x["id"], id);
        let targets = x["targets"].as_u64().unwrap();
        assert!((118..=138).contains(&targets), "{targets}");
        assert_eq!(x["queries"], 128);
        assert_eq!(x["sample_targets"].as_array().unwrap().len(), SAMPLE);
        assert_eq!(x["more_targets"].as_u64().unwrap(), targets - SAMPLE as u64);
        assert_eq!(x["followed_by_smb"]["targets"], 4);
        assert_eq!(x["followed_by_smb"]["syns"], 8);
        assert_eq!(x["followed_by_smb"]["ports"], json!([445]));
        assert_eq!(x["timing"], "other");
        assert!(x["interval_s"].is_null());
        assert_eq!(ev[0]["severity"], 4, "scan followed by SMB: lethality 5");
    }

    #[test]
    fn smb_after_the_window_or_from_another_source_does_not_count() {
        let mut r = rig(|_| {});
        r.feed(nbstat(0.0, UNIX, "192.0.2.10", 40000));
        r.feed(syn(1.0, "198.51.100.99", "192.0.2.10", 445));
        r.feed(syn(61.5, UNIX, "192.0.2.10", 139));
        let ev = r.end();
        assert_eq!(d(&ev[0])["followed_by_smb"]["syns"], 0);
        let mut r = rig(|_| {});
        r.feed(nbstat(0.0, UNIX, "192.0.2.10", 40000));
        r.feed(syn(30.0, UNIX, "192.0.2.10", 139));
        let ev = r.end();
        assert_eq!(d(&ev[0])["followed_by_smb"]["ports"], json!([139]));
        assert_eq!(ev[0]["severity"], 2, "lookup followed by SMB: lethality 3");
    }

    #[test]
    fn between_the_thresholds_is_a_lookup_of_several_hosts() {
        let mut r = rig(|_| {});
        for i in 1..=5u8 {
            r.feed(nbstat(f64::from(i), UNIX, &format!("192.0.2.{i}"), 40000));
        }
        let ev = r.end();
        assert_eq!(ev.len(), 1);
        assert_eq!(d(&ev[0])["verdict"], "lookup");
        assert_eq!(d(&ev[0])["targets"], 5);
        assert_eq!(ev[0]["severity"], 1, "several hosts: lethality 2");
        assert!(ev[0]["summary"].as_str().unwrap().contains("several"));
    }

    #[test]
    fn the_two_stacks_of_one_host_are_separate_detections() {
        let mut r = rig(|_| {});
        r.feed(nbstat(0.0, WIN, "192.0.2.20", 137));
        r.feed(nbstat(0.1, WIN, "192.0.2.21", 50000));
        let ev = r.end();
        assert_eq!(ev.len(), 2);
        let stacks: Vec<&str> = ev.iter().map(|e| d(e)["stack"].as_str().unwrap()).collect();
        assert_eq!(stacks, ["windows", "unix"]);
        assert_ne!(d(&ev[0])["id"], d(&ev[1])["id"]);
    }

    #[test]
    fn answers_and_unreachables_are_tallied() {
        let mut r = rig(|_| {});
        r.feed(nbstat(0.0, UNIX, "192.0.2.10", 40000));
        let mut ans = udp(0.001, "192.0.2.10", UNIX, 137, 40000);
        ans.payload_len = 175;
        ans.payload_head = [0x20, 0xa8, 0x84, 0, 0, 0, 0, 1];
        r.feed(ans);
        r.feed(nbstat(0.0, UNIX, "192.0.2.11", 40000));
        let mut p = PacketSummary::new(s(0.002), 70, 70);
        p.ip = Some(crate::decode::summary::testutil::ipv4("192.0.2.11", UNIX, 1));
        p.l4 = L4::Icmp(IcmpInfo {
            v6: false,
            icmp_type: 3,
            code: 3,
            echo: None,
            quoted: Some(Quoted {
                src: UNIX.parse().unwrap(),
                dst: "192.0.2.11".parse().unwrap(),
                proto: 17,
                ttl: 63,
                ip_id: 1,
                sport: 40000,
                dport: 137,
                has_ports: true,
                tcp_seq: None,
                icmp_type: None,
            }),
        });
        r.feed(p);
        let ev = r.end();
        assert_eq!(d(&ev[0])["answers"], 1);
        assert_eq!(d(&ev[0])["unreachables"], 1);
    }

    #[test]
    fn other_udp_to_137_is_ignored() {
        let mut r = rig(|_| {});
        for i in 0..20u8 {
            let mut p = udp(f64::from(i), UNIX, &format!("192.0.2.{i}"), 40000, 137);
            p.payload_facts = fact::NBNS_QUERY;
            r.feed(p);
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn scan_updates_are_rate_limited_and_expiry_ends_the_scan() {
        let mut r = rig(|_| {});
        // A slow scan: one new host every 5 s for 300 s.
        for i in 0..60u8 {
            let t = f64::from(i) * 5.0;
            r.feed(nbstat(t, UNIX, &format!("192.0.2.{i}"), 40000));
            r.tick(t + 0.5);
        }
        let ev = r.events();
        let st: Vec<&str> = ev.iter().map(|e| d(e)["status"].as_str().unwrap()).collect();
        assert_eq!(st[0], "new");
        assert!((3..=5).contains(&st.iter().filter(|s| **s == "update").count()), "{st:?}");
        r.tick(295.0 + 131.0);
        let ev = r.events();
        assert_eq!(ev.len(), 1);
        assert_eq!(d(&ev[0])["end_reason"], "expired");
        assert_eq!(d(&ev[0])["queries"], 60);
    }

    #[test]
    fn a_spoofed_flood_is_evicted_and_the_cap_is_counted_not_exceeded() {
        let mut r = rig(|rules| {
            rules.netbios.max_tracked = 10;
            rules.netbios.max_probation = 10;
        });
        r.feed(nbstat(0.0, UNIX, "192.0.2.10", 40000));
        r.feed(nbstat(1.0, UNIX, "192.0.2.10", 40000));
        for i in 0..50u8 {
            r.feed(nbstat(2.0 + f64::from(i) * 0.001, &format!("203.0.113.{i}"), "192.0.2.10", 137));
        }
        assert!(r.det.map.len() <= 20);
        let t = r.shared.stats.table(Table::Netbios);
        // One query each: the forged keys stay in probation and push each
        // other out there; the tier, which holds the real lookup, is never
        // asked to make room for them.
        assert!((35..=40).contains(&t.evicted.load(Relaxed)), "{}", t.evicted.load(Relaxed));
        let ev = r.end();
        assert!(ev.iter().any(|e| e["src_ip"] == UNIX && d(e)["queries"] == 2), "the real lookup survives");
    }

    #[test]
    fn a_query_from_a_port_scanner_is_not_a_lookup() {
        // masscan's UDP scan includes one NBSTAT probe among its ports.
        let mut r = rig(|_| {});
        for port in 100..130u16 {
            r.feed(udp(f64::from(port) * 0.001, UNIX, "192.0.2.10", 51436, port));
        }
        r.feed(nbstat(0.2, UNIX, "192.0.2.10", 51436));
        let ev = r.end();
        assert_eq!(ev.len(), 1);
        assert_eq!(d(&ev[0])["verdict"], "port_scan");
        assert!(d(&ev[0])["ports_probed"].as_u64().unwrap() >= 25);
        assert_eq!(ev[0]["severity"], 2, "a scan: lethality 3");
        assert!(ev[0]["summary"].as_str().unwrap().contains("not a name lookup"), "{}", ev[0]["summary"]);
    }

    #[test]
    fn an_entry_stays_about_a_kilobyte() {
        let n = std::mem::size_of::<Entry>();
        assert!(n <= 1152, "{n}");
    }

    #[test]
    fn disabled_means_nothing() {
        let mut r = rig(|rules| rules.netbios.enabled = false);
        r.feed(nbstat(0.0, UNIX, "192.0.2.10", 40000));
        assert!(r.end().is_empty());
    }
}

/// The rules section's own checks (the loader's are in `crate::rules`).
#[cfg(test)]
mod rules_tests {
    use super::NetbiosRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges_and_order() {
        let text = "[netbios_nodestatus]\nlookup_max_targets = 3\nscan_min_targets = 20\nidle_s = 30\n";
        let n = NetbiosRules::parse("x", text).unwrap();
        assert_eq!((n.lookup_max_targets, n.scan_min_targets, n.idle_s), (3, 20, 30.0));
        assert_eq!(n.smb_window_s, 60.0);
        let e = NetbiosRules::parse("x", "[netbios_nodestatus]\nscan_min = 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown key `scan_min`"), "{e}");
        for bad in [
            "[netbios_nodestatus]\nlookup_max_targets = 0",
            "[netbios_nodestatus]\nscan_min_targets = 1",
            "[netbios_nodestatus]\nscan_min_targets = 2\nlookup_max_targets = 2",
            "[netbios_nodestatus]\nlookup_max_targets = 12",
            "[netbios_nodestatus]\nidle_s = 0",
            "[netbios_nodestatus]\nport_scan_min_ports = 1",
            "[netbios_nodestatus]\nsmb_window_s = nan",
            "[netbios_nodestatus]\nmax_tracked = 0",
            "[netbios_nodestatus]\nwindows_queries = 0",
            "[netbios_nodestatus]\nwindows_interval_s = 0",
            "[netbios_nodestatus]\nwindows_tolerance_s = -1",
            "[netbios_nodestatus]\nprogressive_growth = 0.5",
            "[netbios_nodestatus]\nprogressive_first_max_s = 10",
        ] {
            let e = NetbiosRules::parse("rules/picket.toml", bad).unwrap_err();
            assert!(e.line.is_some(), "{bad}: {e}");
            assert!(e.to_string().contains("[netbios_nodestatus]"), "{e}");
        }
    }
}
