//! `port_scan`'s `distributed` pattern: many sources dividing one host's
//! ports among them (Snort's distributed portscan; SIGNATURES.md section 2).
//!
//! Per-source state cannot see it: workers shard by the prober's address,
//! so each source lands in a different worker. It runs in the `decoy_scan`
//! aggregator, which already groups the workers' (source, destination)
//! probe records by destination, in packet-time order (see `decoy/mod.rs`
//! for why that is deterministic). The aggregator calls [`Distributed`] for
//! each destination it judges, after its own decoy grouping, and passes the
//! sources it put into decoy groups, which are not this pattern's.
//!
//! A detection needs, at one destination within `window_s`:
//! - `distributed_min_sources` sources, each with a probe record there (the
//!   taps record a pair from `decoy_scan.min_ports` ports, mostly without
//!   conversations);
//! - together at least `distributed_min_ports` ports, and at least twice
//!   what the busiest of them probed alone: the work is divided;
//! - slices that barely overlap: mean pairwise Jaccard similarity of their
//!   port sets at most `distributed_max_overlap`. Unrelated scanners that
//!   happen to meet at one host probe the same popular ports and overlap
//!   heavily; a scan divided among many hosts does not.
//!
//! The event says what is unknown: low overlap is evidence of one operator,
//! not proof (several independent scanners could divide ports by chance),
//! and sources that each probe fewer ports than a record needs are not seen.
//! State: one open detection per destination, at most `MAX_DETS` of them
//! (a refused one is counted in `stats.state.port_scan`), at most
//! `MAX_MEMBERS` members and `MAX_PORTS` exact ports each, ended
//! `window_s` after its members' last probe.

use super::{KIND, PortScanRules};
use crate::detect::core::{Ctx, EndReason};
use crate::detect::decoy::record::{Record, answer, kind};
use crate::detect::keys::{Distinct1024, FastMap};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Open detections (destinations) at once; a new one beyond is refused and
/// counted in `stats.state.port_scan` (`cap_hits`, `lost_detections`).
const MAX_DETS: usize = 1024;
/// Members kept per detection (the aggregator holds at most 256 sources per
/// destination).
const MAX_MEMBERS: usize = 256;
/// Members listed in an event; more are counted.
const LISTED: usize = 64;
/// Exact (port, protocol) slots kept per detection.
const MAX_PORTS: usize = 4096;
/// Pairs compared for the overlap test (the first sources, in first-probe order).
const OVERLAP_SOURCES: usize = 64;

struct Member {
    src: IpAddr,
    probes: u32,
    ports: u64,
    first_us: i64,
    last_us: i64,
}

struct Det {
    first_us: i64,
    last_us: i64,
    sensor: u16,
    members: Vec<Member>,
    /// Every member's probed (protocol, port), for `ports_probed`.
    sketch: Distinct1024,
    /// (port, udp, answer), sorted by (udp, port).
    exact: Vec<(u16, bool, u8)>,
    exact_more: bool,
    kinds: u8,
    /// Every member used one source port for all its probes.
    sport_fixed: bool,
    overlap: f64,
    first_sport: u16,
    first_port: (u16, bool),
    last_emit_us: i64,
    shown: (usize, u64),
}

/// The pattern's state, owned by the aggregator thread.
pub struct Distributed {
    min_sources: usize,
    min_ports: u64,
    max_overlap: f64,
    window_us: i64,
    update_us: i64,
    dets: FastMap<IpAddr, Det>,
}

impl Distributed {
    /// `None` when port_scan is off (the pattern is one of its events).
    pub fn new(rules: &PortScanRules, update_interval_s: f64) -> Option<Distributed> {
        rules.enabled.then(|| Distributed {
            min_sources: rules.distributed_min_sources as usize,
            min_ports: u64::from(rules.distributed_min_ports),
            max_overlap: rules.distributed_max_overlap,
            window_us: (rules.window_s * 1e6) as i64,
            update_us: (update_interval_s * 1e6) as i64,
            dets: FastMap::default(),
        })
    }

    /// A detection of `dst` is open.
    pub fn open_at(&self, dst: IpAddr) -> bool {
        self.dets.contains_key(&dst)
    }

    /// Fewest candidate sources worth a look at one destination.
    pub fn min_sources(&self) -> usize {
        self.min_sources
    }

    /// Judges `dst` at packet time `now`: `elig` are its probe records that
    /// qualify (recent, enough ports, mostly without conversations), in
    /// first-probe order, minus the decoy groups' members.
    pub fn evaluate(&mut self, dst: IpAddr, elig: &[&Record], cx: &Ctx, now: i64) {
        if let Some(det) = self.dets.get_mut(&dst) {
            for r in elig {
                merge(det, r);
            }
            let grew = (det.members.len(), det.exact.len() as u64) != det.shown;
            if grew && now.saturating_sub(det.last_emit_us) >= self.update_us {
                det.last_emit_us = now;
                det.shown = (det.members.len(), det.exact.len() as u64);
                cx.emit(render(dst, det, "update", None, cx, now));
            }
            return;
        }
        if elig.len() < self.min_sources {
            return;
        }
        let union = elig.iter().fold(Distinct1024::default(), |u, r| u.union(&r.sketch));
        let together = union.estimate();
        let busiest = elig.iter().map(|r| r.distinct_ports()).max().unwrap_or(0);
        if together < self.min_ports || together < busiest.saturating_mul(2) {
            return;
        }
        let overlap = mean_overlap(elig);
        if overlap > self.max_overlap {
            return;
        }
        let Some(first) = elig.first() else { return };
        if self.dets.len() >= MAX_DETS {
            let t = cx.shared.stats.table(Table::PortScan);
            t.cap_hits.fetch_add(1, Relaxed);
            t.lost_detections.fetch_add(1, Relaxed);
            return;
        }
        let fp = first.port_slots().first().map_or((0, false), |s| (s.port, s.udp));
        let mut det = Det {
            first_us: first.first_us,
            last_us: first.last_us,
            sensor: first.sensor,
            members: Vec::new(),
            sketch: Distinct1024::default(),
            exact: Vec::new(),
            exact_more: false,
            kinds: 0,
            sport_fixed: true,
            overlap,
            first_sport: first.first_sport,
            first_port: fp,
            last_emit_us: now,
            shown: (0, 0),
        };
        for r in elig {
            merge(&mut det, r);
        }
        det.shown = (det.members.len(), det.exact.len() as u64);
        cx.emit(render(dst, &det, "new", None, cx, now));
        self.dets.insert(dst, det);
    }

    /// Ends the detections whose members have all been quiet for `window_s`.
    pub fn expire(&mut self, now: i64, cx: &Ctx) {
        let from = now.saturating_sub(self.window_us);
        if self.dets.values().all(|d| d.last_us >= from) {
            return;
        }
        let mut finals: Vec<(i64, IpAddr, EventLine)> = Vec::new();
        self.dets.retain(|dst, det| {
            if det.last_us >= from {
                return true;
            }
            finals.push((det.first_us, *dst, render(*dst, det, "final", Some(EndReason::Expired), cx, now)));
            false
        });
        finals.sort_by_key(|(t, d, _)| (*t, *d));
        finals.into_iter().for_each(|(_, _, ev)| cx.emit(ev));
    }

    /// Ends every open detection (end of input or shutdown), in order of
    /// first probe.
    pub fn finish(&mut self, end: EndReason, cx: &Ctx, now: i64) {
        let mut open: Vec<(&IpAddr, &Det)> = self.dets.iter().collect();
        open.sort_by_key(|(d, det)| (det.first_us, **d));
        for (dst, det) in open {
            cx.emit(render(*dst, det, "final", Some(end), cx, now));
        }
        self.dets.clear();
    }
}

/// Mean Jaccard similarity of the sources' port sets, over the pairs of the
/// first `OVERLAP_SOURCES`.
fn mean_overlap(elig: &[&Record]) -> f64 {
    let v = elig.get(..elig.len().min(OVERLAP_SOURCES)).unwrap_or(elig);
    let (mut sum, mut n) = (0.0, 0u32);
    for (i, a) in v.iter().enumerate() {
        for b in v.iter().skip(i + 1) {
            sum += a.sketch.jaccard(&b.sketch);
            n += 1;
        }
    }
    if n == 0 { 1.0 } else { sum / f64::from(n) }
}

/// Takes a member's latest snapshot into the detection.
fn merge(det: &mut Det, r: &Record) {
    let full = det.members.len() >= MAX_MEMBERS;
    match det.members.iter_mut().find(|m| m.src == r.src) {
        Some(m) => {
            m.probes = r.probes;
            m.ports = r.distinct_ports();
            m.last_us = m.last_us.max(r.last_us);
        }
        None if full => return,
        None => det.members.push(Member {
            src: r.src,
            probes: r.probes,
            ports: r.distinct_ports(),
            first_us: r.first_us,
            last_us: r.last_us,
        }),
    }
    det.first_us = det.first_us.min(r.first_us);
    det.last_us = det.last_us.max(r.last_us);
    det.sketch = det.sketch.union(&r.sketch);
    det.kinds |= r.kinds;
    det.sport_fixed &= r.sport.value().is_some();
    det.exact_more |= r.ports_more;
    for s in r.port_slots() {
        let key = (s.udp, s.port);
        match det.exact.binary_search_by_key(&key, |(p, u, _)| (*u, *p)) {
            Ok(i) => {
                if let Some(e) = det.exact.get_mut(i)
                    && s.answer != answer::NONE
                {
                    e.2 = s.answer;
                }
            }
            Err(i) if det.exact.len() < MAX_PORTS => det.exact.insert(i, (s.port, s.udp, s.answer)),
            Err(_) => det.exact_more = true,
        }
    }
}

fn scan_type(kinds: u8) -> &'static str {
    match kinds {
        kind::SYN => "syn",
        kind::FIN => "fin",
        kind::NULL => "null",
        kind::XMAS => "xmas",
        kind::ACK => "ack",
        kind::UDP => "udp",
        _ => "mixed",
    }
}

fn render(dst: IpAddr, det: &Det, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let id = detection_id(KIND, &[b"distributed", &ip_bytes(&dst), &det.first_us.to_be_bytes()]);
    let ty = scan_type(det.kinds);
    let count = |a: u8| det.exact.iter().filter(|e| e.2 == a).count() as u64;
    let open: Vec<Value> = det
        .exact
        .iter()
        .filter(|e| e.2 == answer::OPEN)
        .map(|(port, udp, _)| {
            let proto = if *udp { 17 } else { 6 };
            json!({"host": dst.to_string(), "proto": if *udp { "udp" } else { "tcp" }, "port": port,
                   "service": cx.service(proto, *port)})
        })
        .collect();
    // An ACK scan's RSTs say "unfiltered", not "closed".
    let (closed, unfiltered) =
        if det.kinds == kind::ACK { (0, count(answer::CLOSED)) } else { (count(answer::CLOSED), 0) };
    let filtered = count(answer::NONE) + count(answer::UNREACHABLE);
    let probes: u64 = det.members.iter().map(|m| u64::from(m.probes)).sum();
    let rate = probes as f64 * 1e6 / (det.last_us - det.first_us).max(1000) as f64;
    // Exact while every member's ports fit its record, else the sketch.
    let ports_probed =
        if det.exact_more { det.sketch.estimate().max(det.exact.len() as u64) } else { det.exact.len() as u64 };
    let sources = det.members.len();
    let listed: Vec<Value> = det
        .members
        .iter()
        .take(LISTED)
        .map(|m| {
            json!({"src": m.src.to_string(), "probes": m.probes, "ports": m.ports,
                   "first_seen": rfc3339_us(m.first_us), "last_seen": rfc3339_us(m.last_us)})
        })
        .collect();
    let first_src = det.members.first().map_or(dst, |m| m.src);
    let direction = cx.direction(first_src, dst);
    // The per-source events' shape and code: {"tcp": ["1-150"], "udp": [...]}.
    let mut bits: Box<[u64; 2048]> = Box::new([0u64; 2048]);
    for (port, udp, _) in &det.exact {
        super::set_port(&mut bits, if *udp { 17 } else { 6 }, *port);
    }
    let port_ranges = super::port_ranges_json(&bits);
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "scan_type": ty,
        "pattern": "distributed",
        "direction": direction,
        "decided_by": "distributed",
        "sources": sources,
        "source_list": listed,
        "sources_more": sources.saturating_sub(LISTED),
        "mean_overlap": (det.overlap * 1000.0).round() / 1000.0,
        "ports_probed": ports_probed,
        "targets": 1,
        "target_hosts": [dst.to_string()],
        "ports": port_ranges,
        "ports_more": det.exact_more,
        "open_ports": open,
        "open": count(answer::OPEN),
        "closed": closed,
        "filtered": filtered,
        "unfiltered": unfiltered,
        "probes": probes,
        "source_ports": if det.sport_fixed { "fixed" } else { "varying" },
        "rate_pps": (rate * 10.0).round() / 10.0,
        "tool": "unknown",
        "tool_evidence": "each source's own port_scan event names its tool when it made one",
        "first_seen": rfc3339_us(det.first_us),
        "last_seen": rfc3339_us(det.last_us),
        "duration_s": secs(det.last_us - det.first_us),
    });
    let found = match open.len() {
        0 => "found nothing open".to_string(),
        n => {
            let list: Vec<String> = det.exact.iter().filter(|e| e.2 == answer::OPEN).map(|e| e.0.to_string()).collect();
            format!("found {n} open ({})", list.join(", "))
        }
    };
    let summary = format!(
        "distributed {ty} scan of {dst}: {sources} sources probed {ports_probed} ports between them in {}s, in slices that \
         barely overlap (mean Jaccard {:.2}), and {found}; one operator dividing the work (a botnet or a distributed \
         scanner) is likely, though independent scanners meeting by chance cannot be ruled out",
        secs(det.last_us - det.first_us),
        det.overlap,
    );
    let fact = if open.is_empty() { Fact::PortScan } else { Fact::PortScanOpen };
    let proto = if det.first_port.1 { 17 } else { 6 };
    let flow = Flow { src: first_src, dst, proto, ports: Some((det.first_sport, det.first_port.0)) };
    EventBuilder::new(KIND, now, cx.sensor(det.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(dst, None, fact))
        .summary(summary)
        .details(KIND, details)
}
