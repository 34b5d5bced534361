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
use crate::output::event::{EventBuilder, EventLine, proto_name};
use crate::output::timefmt::rfc3339_us;
use crate::ports::PortTable;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use serde_json::{Value, json};
use std::net::IpAddr;

/// Distinct sources counted; more are tallied in `sources_untracked`.
pub const MAX_SOURCES: usize = 1 << 20;
/// Distinct (source, protocol, port) triples kept for `by_source[].ports`.
pub const MAX_SOURCE_PORTS: usize = 1 << 22;
/// Entries listed in `by_port`.
pub const TOP_PORTS: usize = 20;
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

/// Running totals over every record of a run.
#[derive(Default)]
pub struct Aggregate {
    pub records: u64,
    /// Records whose action is not `accept`: what the histograms count.
    pub denials: u64,
    pub by_action: [u64; Action::ALL.len()],
    /// (protocol or 255 when unknown, destination port) -> denials.
    by_port: HashMap<(u8, Option<u16>), u64>,
    by_source: HashMap<SourceKey, u64>,
    source_ports: HashSet<(SourceKey, u8, u16)>,
    pub sources_untracked: u64,
    pub source_ports_untracked: u64,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
}

impl Aggregate {
    pub fn new() -> Aggregate {
        Aggregate {
            by_port: HashMap::new(),
            by_source: HashMap::new(),
            source_ports: HashSet::new(),
            ..Default::default()
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
        *self.by_port.entry((proto, r.dport)).or_insert(0) += 1;
        let key = SourceKey::of(r);
        let tracked = self.by_source.len();
        if let Some(n) = self.by_source.get_mut(&key) {
            *n += 1;
        } else if tracked < MAX_SOURCES {
            self.by_source.insert(key, 1);
        } else {
            self.sources_untracked += 1;
        }
        if let Some(p) = r.dport
            && !self.source_ports.contains(&(key, proto, p))
        {
            if self.source_ports.len() < MAX_SOURCE_PORTS {
                self.source_ports.insert((key, proto, p));
            } else {
                self.source_ports_untracked += 1;
            }
        }
    }

    /// `by_port`: the top entries by count (ties by protocol and port), and how many more.
    pub fn top_ports(&self, ports: &PortTable) -> (Vec<Value>, usize) {
        let mut v: Vec<(&(u8, Option<u16>), &u64)> = self.by_port.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let more = v.len().saturating_sub(TOP_PORTS);
        let list = v
            .into_iter()
            .take(TOP_PORTS)
            .map(|(&(proto, port), &count)| {
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
        let mut ports: HashMap<SourceKey, u64> = HashMap::new();
        for (k, _, _) in &self.source_ports {
            *ports.entry(*k).or_insert(0) += 1;
        }
        let mut v: Vec<(&SourceKey, &u64)> = self.by_source.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let more = v.len().saturating_sub(n);
        let list = v
            .into_iter()
            .take(n)
            .map(|(k, &count)| {
                json!({
                    "src": k.text(),
                    "count": count,
                    "share": share(count, self.denials),
                    "ports": ports.get(k).copied().unwrap_or(0),
                })
            })
            .collect();
        (list, more)
    }

    /// Distinct sources seen in denials.
    pub fn sources(&self) -> usize {
        self.by_source.len()
    }
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
