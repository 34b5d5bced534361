//! What `picket fwlog` reports: records aggregated into per-port and
//! per-source histograms of denials (SIGNATURES.md section 10: "destination
//! port counts and shares, as in a spreadsheet of the log, sorted, with the
//! known meaning of each port"), and the `fw_correlation` event that carries
//! them with the per-file line counts.
//!
//! Log-only for now: the wire-side fields (`matched`, `unlogged_packets`,
//! `clock_offset_s`) are zero or null until records are correlated with a
//! capture. Every table here is bounded; what does not fit is counted.

use super::correlate::Outcome;
use super::reader::FileTally;
use super::record::{Action, Format, FwRecord, Label};
use crate::detect::fair::{Inserted, Probation, Tier, Weighted};
use crate::output::event::{EventBuilder, EventLine, proto_name};
use crate::output::timefmt::rfc3339_us;
use crate::ports::PortTable;
use foldhash::{HashMap, HashSet, HashSetExt};
use serde_json::{Value, json};
use std::net::IpAddr;

/// Sources counted one by one (the promoted tier); under pressure a new
/// source must repeat to get in (see [`Aggregate`]).
pub const MAX_SOURCES: usize = 1 << 16;
/// Sources seen once, waiting for a second record, once the tier is full.
pub const MAX_PROBATION: usize = 1 << 14;
/// Distinct (source, protocol, port) triples kept for `by_source[].ports`.
pub const MAX_SOURCE_PORTS: usize = 1 << 19;
/// Entries listed in `by_port`.
pub const TOP_PORTS: usize = 20;
/// (protocol, port) pairs counted for protocols other than TCP and UDP, and
/// for records without a port; denials of further pairs are counted
/// together in `by_port_untracked`.
pub const MAX_OTHER_PORTS: usize = 4096;

/// The nonzero counters of a dense per-port array, as (protocol, port) pairs.
fn dense(proto: u8, counts: &[u64]) -> impl Iterator<Item = ((u8, Option<u16>), u64)> + '_ {
    counts.iter().enumerate().filter(|(_, c)| **c > 0).map(move |(p, c)| ((proto, Some(p as u16)), *c))
}

/// Denials by (protocol, destination port), bounded whatever the log
/// holds: TCP and UDP ports in two dense arrays of 65,536 counters (made
/// at the first denial of that protocol, 512 KiB each), every other pair
/// in a map of at most [`MAX_OTHER_PORTS`] keys. Hostile logs could
/// otherwise name all 256 x 65,536 pairs.
#[derive(Default)]
struct PortCounts {
    tcp: Vec<u64>,
    udp: Vec<u64>,
    other: HashMap<(u8, Option<u16>), u64>,
    /// Denials of pairs the map had no room for.
    untracked: u64,
}

impl PortCounts {
    fn add(&mut self, proto: u8, port: Option<u16>) {
        let dense = match (proto, port) {
            (6, Some(p)) => Some((&mut self.tcp, p)),
            (17, Some(p)) => Some((&mut self.udp, p)),
            _ => None,
        };
        if let Some((counts, p)) = dense {
            if counts.is_empty() {
                counts.resize(1 << 16, 0);
            }
            if let Some(c) = counts.get_mut(usize::from(p)) {
                *c += 1;
            }
            return;
        }
        let room = self.other.len() < MAX_OTHER_PORTS;
        match self.other.get_mut(&(proto, port)) {
            Some(c) => *c += 1,
            None if room => {
                self.other.insert((proto, port), 1);
            }
            None => self.untracked += 1,
        }
    }

    /// Every counted pair with its denials.
    fn iter(&self) -> impl Iterator<Item = ((u8, Option<u16>), u64)> + '_ {
        dense(6, &self.tcp).chain(dense(17, &self.udp)).chain(self.other.iter().map(|(k, c)| (*k, *c)))
    }
}
/// Default entries listed in `by_source`.
pub const TOP_SOURCES: usize = 10;

/// Who a record came from: an address, or only a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    Ip(IpAddr),
    Name(Label<48>),
    Unknown,
}

impl SourceKey {
    fn of(r: &FwRecord) -> SourceKey {
        match (r.src, r.src_name.is_empty()) {
            (Some(a), _) => SourceKey::Ip(a),
            (None, false) => SourceKey::Name(r.src_name),
            (None, true) => SourceKey::Unknown,
        }
    }

    fn text(&self) -> Value {
        match self {
            SourceKey::Ip(a) => json!(a.to_string()),
            SourceKey::Name(n) => json!(n.as_str()),
            SourceKey::Unknown => Value::Null,
        }
    }
}

/// A source counted one by one: its denials and distinct ports.
#[derive(Clone, Copy, Debug)]
struct SourceCount {
    count: u64,
    ports: u32,
    /// Names this entry's ports in `source_ports` (a new id each time a
    /// source is stored, so an evicted source's ports are not counted for
    /// it if it comes back, nor for the source that took its slot).
    id: u64,
}

impl Weighted for SourceCount {
    /// More records, more hand passes survived (log2, at most 15).
    fn credit(&self) -> u8 {
        (64 - self.count.leading_zeros()).saturating_sub(1).min(15) as u8
    }
    fn pinned(&self) -> bool {
        false
    }
}

/// Running totals over every record of a run.
///
/// Bounded and fair: per-source counts live in a `detect::fair` tier of
/// [`MAX_SOURCES`]. While it has room every source goes in at its first
/// record (exact counts for any ordinary log); once it is full, a new
/// source waits in probation ([`MAX_PROBATION`], oldest out first) and
/// enters the tier at its second record, taking the slot of a source with
/// fewer records (a weighted clock), so a flood of spoofed sources seen
/// once each churns the probation and cannot push out the scanners. Denials
/// not counted in a source's tally (waiting in probation, refused, or held
/// by a source pushed out) are `sources_untracked`. Distinct ports are kept
/// for tier sources only, [`MAX_SOURCE_PORTS`] in all.
pub struct Aggregate {
    pub records: u64,
    /// Records whose action is not `accept`: what the histograms count.
    pub denials: u64,
    pub by_action: [u64; Action::ALL.len()],
    /// (protocol or 255 when unknown, destination port) -> denials.
    by_port: PortCounts,
    by_source: Tier<SourceKey, SourceCount>,
    source_cap: usize,
    /// Sources seen once while the tier was full, with their first record's port.
    probation: Probation<SourceKey, (u8, Option<u16>)>,
    /// (entry id << 24 | protocol << 16 | port) of tier sources.
    source_ports: HashSet<u64>,
    ports_cap: usize,
    next_id: u64,
    /// Ports in `source_ports` of entries no longer in the tier.
    stale_ports: u64,
    pub sources_untracked: u64,
    pub source_ports_untracked: u64,
    /// Tier sources pushed out for a newcomer; newcomers refused; of
    /// either, those with two or more denials (`state.fw_sources`).
    pub sources_evicted: u64,
    pub sources_refused: u64,
    pub sources_lost: u64,
    /// Sources that left probation without a second record.
    pub probation_evicted: u64,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
}

impl Default for Aggregate {
    fn default() -> Aggregate {
        Aggregate::new()
    }
}

impl Aggregate {
    pub fn new() -> Aggregate {
        Aggregate::with_caps(MAX_SOURCES, MAX_PROBATION, MAX_SOURCE_PORTS)
    }

    fn with_caps(sources: usize, probation: usize, ports: usize) -> Aggregate {
        Aggregate {
            ports_cap: ports,
            records: 0,
            denials: 0,
            by_action: [0; Action::ALL.len()],
            by_port: PortCounts::default(),
            by_source: Tier::new(sources),
            source_cap: sources,
            probation: Probation::new(probation),
            source_ports: HashSet::new(),
            next_id: 0,
            stale_ports: 0,
            sources_untracked: 0,
            source_ports_untracked: 0,
            sources_evicted: 0,
            sources_refused: 0,
            sources_lost: 0,
            probation_evicted: 0,
            first_us: None,
            last_us: None,
        }
    }

    /// Counts one record.
    pub fn add(&mut self, r: &FwRecord) {
        self.records += 1;
        if let Some(i) = Action::ALL.iter().position(|a| *a == r.action) {
            self.by_action[i] += 1;
        }
        if let Some(t) = r.ts_us {
            self.first_us = Some(self.first_us.map_or(t, |f| f.min(t)));
            self.last_us = Some(self.last_us.map_or(t, |l| l.max(t)));
        }
        if !r.action.is_denial() {
            return;
        }
        self.denials += 1;
        let proto = r.proto.unwrap_or(255);
        self.by_port.add(proto, r.dport);
        let key = SourceKey::of(r);
        self.purge_ports();
        let ports = (&mut self.source_ports, self.ports_cap, &mut self.source_ports_untracked);
        if let Some(e) = self.by_source.get_mut(&key) {
            e.count += 1;
            if let Some(p) = r.dport {
                e.ports += u32::from(add_port(ports, e.id, proto, p));
            }
            return;
        }
        let mut count = 1;
        let mut first_port = None;
        if self.by_source.len() >= self.source_cap {
            match self.probation.remove(&key) {
                // The second record: promoted, both counted (the first no
                // longer as untracked).
                Some(first) => {
                    count = 2;
                    self.sources_untracked = self.sources_untracked.saturating_sub(1);
                    first_port = Some(first);
                }
                None => {
                    self.probation_evicted += self.probation.insert(key, (proto, r.dport));
                    self.sources_untracked += 1;
                    return;
                }
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        match self.by_source.insert(key, SourceCount { count, ports: 0, id }) {
            Inserted::Stored => {}
            Inserted::Replaced(_, old) => {
                self.sources_evicted += 1;
                self.sources_lost += u64::from(old.count >= 2);
                self.sources_untracked += old.count;
                self.stale_ports += u64::from(old.ports);
            }
            Inserted::Refused(_) => {
                self.sources_refused += 1;
                self.sources_lost += u64::from(count >= 2);
                self.sources_untracked += count;
                return;
            }
        }
        let mut ports = 0;
        if let Some((fp, Some(port))) = first_port {
            ports += u32::from(add_port(
                (&mut self.source_ports, self.ports_cap, &mut self.source_ports_untracked),
                id,
                fp,
                port,
            ));
        }
        if let Some(p) = r.dport {
            ports += u32::from(add_port(
                (&mut self.source_ports, self.ports_cap, &mut self.source_ports_untracked),
                id,
                proto,
                p,
            ));
        }
        if let Some(e) = self.by_source.get_mut(&key) {
            e.ports += ports;
        }
    }

    /// Lets go of the ports of sources no longer in the tier, once they
    /// are a quarter of a full set (amortised O(1) per port).
    fn purge_ports(&mut self) {
        if self.source_ports.len() < self.ports_cap || self.stale_ports * 4 < self.ports_cap as u64 {
            return;
        }
        let live: HashSet<u64> = self.by_source.iter_mut().map(|(_, e)| e.id).collect();
        self.source_ports.retain(|k| live.contains(&(k >> 24)));
        self.stale_ports = 0;
    }

    /// Sources pushed out, refused, lost (two or more denials), and held,
    /// for `state.fw_sources`.
    pub fn publish(&self, stats: &crate::stats::Stats) {
        use std::sync::atomic::Ordering::Relaxed;
        let t = stats.table(crate::stats::Table::FwSources);
        t.entries.store((self.by_source.len() + self.probation.len()) as u64, Relaxed);
        t.evicted.store(self.sources_evicted + self.probation_evicted, Relaxed);
        t.cap_hits.store(self.sources_refused, Relaxed);
        t.lost_detections.store(self.sources_lost, Relaxed);
    }
    /// Denials whose (protocol, port) pair found no room (`PortCounts`).
    pub fn ports_untracked(&self) -> u64 {
        self.by_port.untracked
    }

    /// `by_port`: the top entries by count (ties by protocol and port), and how many more.
    pub fn top_ports(&self, ports: &PortTable) -> (Vec<Value>, usize) {
        let mut v: Vec<((u8, Option<u16>), u64)> = self.by_port.iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let more = v.len().saturating_sub(TOP_PORTS);
        let list = v
            .into_iter()
            .take(TOP_PORTS)
            .map(|((proto, port), count)| {
                let service = port.and_then(|p| ports.lookup(proto, p)).map(|i| i.name.clone());
                json!({
                    "port": port,
                    "proto": if proto == 255 { Value::Null } else { json!(proto_name(proto)) },
                    "count": count,
                    "share": share(count, self.denials),
                    "service": service,
                })
            })
            .collect();
        (list, more)
    }

    /// `by_source`: the top `n` sources by count, with their distinct ports.
    pub fn top_sources(&self, n: usize) -> (Vec<Value>, usize) {
        let mut v: Vec<(&SourceKey, &SourceCount)> = self.by_source.iter().collect();
        v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        let more = v.len().saturating_sub(n);
        let list = v
            .into_iter()
            .take(n)
            .map(|(k, e)| {
                json!({
                    "src": k.text(),
                    "count": e.count,
                    "share": share(e.count, self.denials),
                    "ports": e.ports,
                })
            })
            .collect();
        (list, more)
    }

    /// Distinct sources counted one by one (the tier).
    pub fn sources(&self) -> usize {
        self.by_source.len()
    }
}

/// Adds (entry `id`, `proto`, `port`) to the set (with its cap and the
/// count of what did not fit); true when it is new.
fn add_port((set, cap, untracked): (&mut HashSet<u64>, usize, &mut u64), id: u64, proto: u8, port: u16) -> bool {
    let k = (id << 24) | (u64::from(proto) << 16) | u64::from(port);
    if set.contains(&k) {
        return false;
    }
    if set.len() >= cap {
        *untracked += 1;
        return false;
    }
    set.insert(k)
}

fn share(count: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { (count as f64 / total as f64 * 10_000.0).round() / 10_000.0 }
}

/// What the `fw_correlation` event needs besides the aggregate.
pub struct ReportInput<'a> {
    pub files: &'a [FileTally],
    pub ports: &'a PortTable,
    pub sensor: &'a str,
    /// Event time when no record had one (the reference time).
    pub fallback_us: i64,
    pub top_sources: usize,
    /// `live`: a report while following logs live (`is_final` false until
    /// shutdown). Otherwise the mode follows from the wire side: `capture`
    /// or `log_only`.
    pub live: bool,
    pub is_final: bool,
}

/// Builds the `fw_correlation` event of a log-only run.
pub fn fw_correlation(agg: &Aggregate, inp: &ReportInput<'_>) -> EventLine {
    fw_correlation_with(agg, inp, None)
}

/// Builds the `fw_correlation` event; `wire` is the correlation with a
/// capture and the event's packet time (last packet), when there was one.
pub fn fw_correlation_with(agg: &Aggregate, inp: &ReportInput<'_>, wire: Option<(&Outcome, i64)>) -> EventLine {
    let (by_port, by_port_more) = agg.top_ports(inp.ports);
    let (by_source, by_source_more) = agg.top_sources(inp.top_sources);
    let mut formats = serde_json::Map::new();
    for (i, f) in Format::ALL.iter().enumerate() {
        let n: u64 = inp.files.iter().map(|t| t.formats[i]).sum();
        if n > 0 {
            formats.insert(f.name().into(), json!(n));
        }
    }
    let mut by_action = serde_json::Map::new();
    for (a, n) in Action::ALL.iter().zip(agg.by_action) {
        if n > 0 {
            by_action.insert(a.name().into(), json!(n));
        }
    }
    let files: Vec<Value> = inp
        .files
        .iter()
        .map(|t| {
            json!({
                "file": t.name,
                "channel": t.channel,
                "sender": t.sender,
                "format": t.main_format().map(Format::name),
                "lines": t.lines,
                "records": t.records,
                "other_lines": t.other,
                "bad_lines": t.bad,
                "overlong_lines": t.overlong,
                // Other lines by kind, where a format names them (ZoneAlarm FWOUT, PE).
                "other_kinds": t.kinds.iter().map(|(_, k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let bad_lines: Vec<Value> = inp
        .files
        .iter()
        .map(|t| {
            let first: Vec<Value> = t.first_bad.iter().map(|(l, why)| json!({"line": l, "reason": why})).collect();
            json!({"file": t.name, "count": t.bad, "first": first})
        })
        .collect();
    let lines: u64 = inp.files.iter().map(|t| t.lines).sum();
    let bad: u64 = inp.files.iter().map(|t| t.bad).sum();
    let ts = |t: Option<i64>| t.map(rfc3339_us);
    let o = wire.map(|(o, _)| *o).unwrap_or_default();
    let details = json!({
        "mode": if inp.live { "live" } else if wire.is_some() { "capture" } else { "log_only" },
        "final": inp.is_final,
        "records": agg.records,
        "denials": agg.denials,
        "matched": o.matched,
        "unmatched_records": o.unmatched_records,
        "unlogged_packets": o.unlogged_packets,
        "clock_offset_s": o.clock_offset_s.map(|s| (s * 1e6).round() / 1e6),
        "offset_from": if o.offset_strong { "sequence_numbers" } else if o.offset_pairs > 0 { "times" } else { "none" },
        "attempts_on_wire": o.attempts,
        "first_record": ts(agg.first_us),
        "last_record": ts(agg.last_us),
        "by_action": by_action,
        "by_port": by_port,
        "by_port_more": by_port_more,
        "by_port_untracked": agg.ports_untracked(),
        "by_source": by_source,
        "by_source_more": by_source_more,
        "sources": agg.sources(),
        "sources_untracked": agg.sources_untracked,
        "formats": formats,
        "files": files,
        "bad_lines": bad_lines,
    });
    let mut summary = summary(agg, &by_port, &by_source, lines, bad, inp.files.len());
    if wire.is_some() {
        summary.push_str(&wire_summary(&o));
    }
    let at = wire.map(|(_, t)| t).or(agg.last_us).unwrap_or(inp.fallback_us);
    EventBuilder::new("fw_correlation", at, inp.sensor).summary(summary).details("fw_correlation", details)
}

fn summary(agg: &Aggregate, by_port: &[Value], by_source: &[Value], lines: u64, bad: u64, files: usize) -> String {
    let mut s = format!(
        "{} firewall records in {} lines of {} file{} ({} denials",
        agg.records,
        lines,
        files,
        if files == 1 { "" } else { "s" },
        agg.denials
    );
    if let Some(p) = by_port.first() {
        let what = match (p["proto"].as_str(), p["port"].as_u64()) {
            (Some(pr), Some(port)) => format!("{pr}/{port}"),
            (Some(pr), None) => pr.to_string(),
            _ => "unknown".to_string(),
        };
        let svc = p["service"].as_str().map(|n| format!(" ({n})")).unwrap_or_default();
        s +=
            &format!("; top port {what}{svc} with {} ({:.0}%)", p["count"], p["share"].as_f64().unwrap_or(0.0) * 100.0);
    }
    if let Some(src) = by_source.first() {
        s += &format!(
            "; top source {} with {} on {} port{}",
            src["src"].as_str().unwrap_or("unknown"),
            src["count"],
            src["ports"],
            if src["ports"] == 1 { "" } else { "s" }
        );
    }
    s += ")";
    if bad > 0 {
        s += &format!("; {bad} unreadable lines skipped");
    }
    s
}

/// The correlation's sentence: what matched, what only one side saw.
fn wire_summary(o: &Outcome) -> String {
    let offset = match o.clock_offset_s {
        Some(s) => format!(
            "; the firewall clock is {:.2} s {} the sensor's",
            s.abs(),
            if s < 0.0 { "behind" } else { "ahead of" }
        ),
        None => String::new(),
    };
    format!(
        ". On the wire: {} of {} records matched a packet, {} were never on the wire (egress drops the span cannot see, or lost before the sensor), {} attempts toward the firewall have no line{offset}.",
        o.matched, o.records, o.unmatched_records, o.unlogged_packets
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Rules;

    fn rec(src: &str, proto: u8, dport: u16, action: Action) -> FwRecord {
        let mut r = FwRecord::new(Format::Netfilter, action);
        r.src = src.parse().ok();
        r.proto = Some(proto);
        r.dport = Some(dport);
        r
    }

    #[test]
    fn histograms_count_denials_sorted_with_services() {
        let mut a = Aggregate::new();
        for _ in 0..3 {
            a.add(&rec("198.51.100.7", 6, 158, Action::Drop));
        }
        a.add(&rec("198.51.100.7", 6, 22, Action::Drop));
        a.add(&rec("203.0.113.9", 17, 137, Action::Deny));
        a.add(&rec("203.0.113.9", 6, 22, Action::Accept)); // not a denial
        assert_eq!((a.records, a.denials), (6, 5));
        let rules = Rules::builtin();
        let (ports, more) = a.top_ports(&rules.ports);
        assert_eq!(more, 0);
        assert_eq!(ports[0]["port"], 158);
        assert_eq!(ports[0]["proto"], "TCP");
        assert_eq!(ports[0]["count"], 3);
        assert_eq!(ports[0]["share"], 0.6);
        assert_eq!(ports[0]["service"], "pcmail-srv");
        assert_eq!(ports[1]["port"], 22); // ties sorted by protocol then port: TCP/22 before UDP/137
        let (src, _) = a.top_sources(10);
        assert_eq!(src[0]["src"], "198.51.100.7");
        assert_eq!((src[0]["count"].as_u64(), src[0]["ports"].as_u64()), (Some(4), Some(2)));
        assert_eq!(src[1]["ports"], 1);
    }

    /// Issue 17: a flood of spoofed sources, one record each, fills the
    /// tier and then only churns the probation: scanners that keep coming
    /// back keep their exact counts and ports, a source that repeats inside
    /// the flood still gets in, and what was not counted per source is.
    #[test]
    fn a_spoofed_flood_cannot_push_out_the_scanners() {
        let mut a = Aggregate::with_caps(64, 32, 1024);
        let spoofed = |i: u32| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        // Two scanners before the flood.
        for p in 0..10 {
            a.add(&rec("198.51.100.1", 6, 1000 + p, Action::Drop));
            a.add(&rec("198.51.100.2", 17, 2000 + p, Action::Drop));
        }
        let mut late = 0;
        for i in 0..100_000u32 {
            a.add(&rec(&spoofed(i), 6, (i % 60_000) as u16 + 1, Action::Drop));
            if i % 1000 == 0 {
                a.add(&rec("198.51.100.1", 6, 1010 + (i / 1000) as u16, Action::Drop));
            }
            // A third scanner that starts inside the flood, twice in a row.
            if i % 5000 == 0 {
                a.add(&rec("198.51.100.3", 6, 22, Action::Drop));
                a.add(&rec("198.51.100.3", 6, 23, Action::Drop));
                late += 2;
            }
        }
        assert!(a.sources() <= 64 && a.probation.len() <= 32, "{} {}", a.sources(), a.probation.len());
        let (top, more) = a.top_sources(3);
        let got: Vec<(&str, u64, u64)> = top
            .iter()
            .map(|v| (v["src"].as_str().unwrap(), v["count"].as_u64().unwrap(), v["ports"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, vec![("198.51.100.1", 110, 110), ("198.51.100.3", late, 2), ("198.51.100.2", 10, 10)]);
        assert_eq!(more, 61);
        // Every denial is counted per source or as untracked.
        let tracked: u64 = a.by_source.iter().map(|(_, e)| e.count).sum();
        assert_eq!(tracked + a.sources_untracked, a.denials);
        assert!(a.sources_untracked >= 100_000 - 64, "{}", a.sources_untracked);
        assert!(a.probation_evicted > 90_000 && a.sources_lost == 0, "{} {}", a.probation_evicted, a.sources_lost);
        assert_eq!(a.denials, 20 + 100_000 + 100 + late);
    }

    /// Ports of sources pushed out are let go, so the set keeps room for
    /// the sources still counted; past its cap, ports are counted as untracked.
    #[test]
    fn the_port_histogram_is_bounded_whatever_pairs_a_log_names() {
        let mut a = Aggregate::new();
        // Every TCP port once, and more odd protocols and ports than the map holds.
        for p in 0..=u16::MAX {
            a.add(&rec("198.51.100.7", 6, p, Action::Drop));
        }
        a.add(&rec("198.51.100.7", 6, 443, Action::Drop));
        let odd = MAX_OTHER_PORTS as u32 + 500;
        for i in 0..odd {
            a.add(&rec("198.51.100.8", 50 + (i % 100) as u8, (i / 100) as u16, Action::Drop));
        }
        assert_eq!(a.by_port.other.len(), MAX_OTHER_PORTS);
        assert_eq!(a.ports_untracked(), 500);
        let (top, more) = a.top_ports(&Rules::builtin().ports);
        assert_eq!(top[0]["port"], 443);
        assert_eq!(top[0]["count"], 2);
        assert_eq!(top.len() + more, 65_536 + MAX_OTHER_PORTS);
        let counted: u64 = a.by_port.iter().map(|(_, c)| c).sum();
        assert_eq!(counted + a.ports_untracked(), a.denials);
    }

    #[test]
    fn ports_of_evicted_sources_make_room() {
        let mut a = Aggregate::with_caps(4, 4, 64);
        // 40 sources of 2 records on 8 ports each... only 4 are held at a time.
        for s in 0..40u32 {
            let src = std::net::Ipv4Addr::from(0xc000_0200 + s).to_string();
            for p in 0..8 {
                a.add(&rec(&src, 6, 100 + p, Action::Drop));
            }
        }
        assert!(a.source_ports.len() <= 64, "{}", a.source_ports.len());
        let held: u64 = a.by_source.iter().map(|(_, e)| u64::from(e.ports)).sum();
        assert!(held > 0 && a.sources_evicted > 0, "held {held} evicted {}", a.sources_evicted);
        for (_, e) in a.by_source.iter() {
            assert!(e.ports <= 8, "{e:?}");
        }
    }

    #[test]
    fn event_has_the_documented_fields() {
        let mut a = Aggregate::new();
        a.add(&rec("198.51.100.7", 6, 158, Action::Drop));
        let mut t = FileTally::new("x.log");
        t.count(1, &Ok(rec("198.51.100.7", 6, 158, Action::Drop)));
        t.count(2, &Err(super::super::bad(Format::Netfilter, "truncated")));
        let rules = Rules::builtin();
        let ev = fw_correlation(
            &a,
            &ReportInput {
                files: &[t],
                ports: &rules.ports,
                sensor: "x.log",
                fallback_us: 0,
                top_sources: 10,
                live: false,
                is_final: true,
            },
        );
        let v: Value = serde_json::from_str(&ev.line).unwrap();
        assert_eq!(v["event_type"], "fw_correlation");
        let d = &v["fw_correlation"];
        for k in [
            "records",
            "matched",
            "unmatched_records",
            "unlogged_packets",
            "clock_offset_s",
            "by_port",
            "by_source",
            "formats",
            "bad_lines",
        ] {
            assert!(d.get(k).is_some(), "{k}");
        }
        assert_eq!(d["bad_lines"][0]["first"][0]["line"], 2);
        assert_eq!(d["formats"]["netfilter"], 2);
        assert_eq!(d["files"][0]["format"], "netfilter");
        assert!(v["summary"].as_str().unwrap().contains("1 unreadable"));
    }
}
