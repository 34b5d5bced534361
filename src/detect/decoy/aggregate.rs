//! The `decoy_scan` aggregator: one thread that groups the workers'
//! candidate records by destination, judges them and writes the events
//! (see `decoy/mod.rs` for the data flow and why it is deterministic).
//! After its own grouping it hands each judged destination's remaining
//! candidates to `port_scan::distributed` (many sources dividing one host's
//! ports), which owns that pattern's rules, state and events.
//!
//! Judgement, per destination, at each tag (a tick's packet time):
//! - candidates: sources whose record was updated within `window_s`, that
//!   probed at least `min_ports` ports there, with at most
//!   `max_completed_share` of them carrying real conversations;
//! - the group: the largest set of candidates whose port sets all overlap
//!   the set of one of them (Jaccard >= `min_overlap`), at least
//!   `min_sources` strong;
//! - shared fingerprints (same source port, ISN, IP ID per port, one IP ID
//!   counter, or one fixed TTL across all of them) show one machine sent
//!   every source's probes; a source whose fixed scan TTL contradicts its
//!   own baseline (from earlier conversations) is forged;
//! - the suspect, only when forgery is shown: the one source whose scan TTL
//!   fits its baseline, else the one source that held a two-way
//!   conversation before the scan (decoys have no history), else the one
//!   that held one later. Otherwise null.
//! - confidence: `high` with forgery shown and a suspect, `medium` with
//!   forgery shown and no suspect, `low` for the port pattern alone.
//!
//! Bounded by `max_candidates` (destination, source) records and
//! `MAX_PER_DEST` sources per destination; a full table refuses new ones
//! (`state.decoy_scan.cap_hits`). A detection ends `window_s` after its
//! sources' last probes.

use super::record::{AggMsg, Record, kind};
use super::rules::{Confidence, DecoyScanRules};
use crate::detect::agg::{Aggregate, Watermarks};
use crate::detect::core::{Ctx, EndReason, Shared};
use crate::detect::keys::FastMap;
use crate::detect::port_scan::{PortScanRules, distributed::Distributed};
use crate::detect::severity::Fact;
use crate::detect::ttl::{hops, initial_ttl, os_family};
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::{Stats, Table};
use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Sources tracked per destination.
pub const MAX_PER_DEST: usize = 256;
/// Sources listed in one event; more are counted.
const LISTED: usize = 64;

#[derive(Default)]
struct Dest {
    /// Latest snapshot per source, in arrival order.
    srcs: Vec<Record>,
    /// Open detections, one per group (one machine) at this destination.
    dets: Vec<Detection>,
}

struct Detection {
    first_us: i64,
    /// Sources that joined the group, in order (at most `LISTED`).
    members: Vec<IpAddr>,
    members_more: u32,
    last_emit_us: i64,
    /// (members, ports) at the last event, to tell growth.
    shown: (usize, u64),
}

/// The aggregator's state.
pub struct Aggregator {
    rules: DecoyScanRules,
    /// Watermark per worker (`i64::MIN` until its first tick, `MAX` when done).
    marks: Watermarks,
    pending: Vec<Record>,
    /// `pending` indices in (tag, destination, source) order, reused:
    /// records are about 650 bytes, so they are sorted by index, not moved.
    order: Vec<(i64, IpAddr, IpAddr, u32)>,
    /// Destinations of one tag's records, reused.
    dsts: Vec<IpAddr>,
    dests: FastMap<IpAddr, Dest>,
    held: usize,
    /// No record is older than this `last_us` except members of a live
    /// detection whose newest member is at least this recent: until the
    /// window passes it, `expire` has nothing to do (kept conservative:
    /// it only moves forward in a full sweep).
    quiet_from: i64,
    clock: i64,
    update_us: i64,
    window_us: i64,
    /// `decoy_scan` is on (the aggregator also runs for `distributed` alone).
    decoy_on: bool,
    /// `port_scan`'s `distributed` pattern, judged on the same records.
    distributed: Option<Distributed>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contact {
    Before,
    After,
    None,
}

impl Contact {
    fn name(self) -> &'static str {
        match self {
            Contact::Before => "before",
            Contact::After => "after",
            Contact::None => "none",
        }
    }
}

/// What the evidence says about one source.
#[derive(Clone, Copy, Debug)]
struct View {
    contact: Contact,
    /// Any packet from it before its first probe here.
    earlier: bool,
    baseline: Option<(u8, u8)>,
    /// Scan TTL within `ttl_tolerance` of the baseline.
    consistent: Option<bool>,
    /// The scan TTL varies more than the tolerance allows: crafted per packet.
    randomised: bool,
}

/// Fields every source of the group shares.
#[derive(Clone, Copy, Debug, Default)]
struct Fingerprint {
    sport: Option<u16>,
    isn: Option<u32>,
    ip_id: bool,
    ip_id_sequence: bool,
    ttl: Option<u8>,
    window: Option<u16>,
    options: Option<u32>,
}

impl Fingerprint {
    /// One machine sent them all (window and options alone are tool defaults).
    fn strong(&self) -> bool {
        self.sport.is_some() || self.isn.is_some() || self.ip_id || self.ip_id_sequence || self.ttl.is_some()
    }

    fn fields(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.sport.is_some(), "sport"),
            (self.isn.is_some(), "isn"),
            (self.ip_id, "ip_id"),
            (self.ip_id_sequence, "ip_id_sequence"),
            (self.ttl.is_some(), "ttl"),
            (self.window.is_some(), "window"),
            (self.options.is_some(), "tcp_options"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

struct Verdict {
    fp: Fingerprint,
    views: Vec<View>,
    suspect: Option<usize>,
    basis: Option<&'static str>,
    spoofed: Vec<usize>,
    confidence: Confidence,
    reasons: Vec<String>,
}

/// The value all items share, if they all have the same one.
fn all_same<T: PartialEq + Copy>(mut it: impl Iterator<Item = Option<T>>) -> Option<T> {
    let first = it.next()??;
    it.all(|v| v == Some(first)).then_some(first)
}

impl View {
    /// The scan's fixed TTL contradicts the source's own baseline: its
    /// address was borrowed. (A randomised TTL contradicts nothing.)
    fn contradicts(&self) -> bool {
        self.consistent == Some(false) && !self.randomised
    }
}

/// What the evidence says about one member. `scan_start`: when the scan
/// began, from the members whose records hold probes alone. A record that
/// also holds the source's own real connection to the destination (the
/// innocent whose address was borrowed had browsed it first) starts with
/// that connection, so its history is judged against the scan's start.
fn view(r: &Record, tol: u8, scan_start: Option<i64>) -> View {
    let mem = r.memory;
    let start = if r.completed_ports() > 0 { scan_start.unwrap_or(r.first_us).max(r.first_us) } else { r.first_us };
    let contact = match mem.and_then(|m| m.conv_first_us) {
        Some(t) if t < start => Contact::Before,
        Some(_) => Contact::After,
        None => Contact::None,
    };
    let baseline = mem.and_then(|m| m.baseline());
    let (ttl_min, ttl_max) = r.scan_ttl();
    let randomised = ttl_max.saturating_sub(ttl_min) > tol.saturating_mul(2);
    View {
        contact,
        earlier: mem.is_some_and(|m| m.first_us < start),
        baseline,
        consistent: baseline.map(|(lo, hi)| ttl_min.saturating_add(tol) >= lo && ttl_max <= hi.saturating_add(tol)),
        randomised,
    }
}

/// Same non-zero IP ID on most ports every source probed (nmap -D).
fn same_ip_ids(members: &[&Record]) -> bool {
    let Some(first) = members.first() else { return false };
    let (mut common, mut same) = (0u32, 0u32);
    for s in first.port_slots() {
        let ids: Vec<u16> = members
            .iter()
            .filter_map(|r| r.port_slots().iter().find(|x| x.port == s.port && x.udp == s.udp).map(|x| x.ip_id))
            .collect();
        if ids.len() == members.len() {
            common += 1;
            if s.ip_id != 0 && ids.iter().all(|i| *i == s.ip_id) {
                same += 1;
            }
        }
    }
    same >= 2 && same * 2 > common
}

/// The sources' IP IDs, merged in time order, count up by small steps from
/// one source to the next: one counter (SIGNATURES.md section 6, including
/// the byte-swapped counter of little-endian hosts).
fn one_ip_id_counter(members: &[&Record]) -> bool {
    let mut all: Vec<(i64, usize, u16)> = Vec::new();
    for (i, r) in members.iter().enumerate() {
        all.extend(r.ipid_samples().iter().map(|(t, id)| (*t, i, *id)));
    }
    all.sort_unstable();
    let (mut cross, mut ok) = (0u32, 0u32);
    for w in all.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.1 == b.1 {
            continue;
        }
        cross += 1;
        let d = b.2.wrapping_sub(a.2);
        let ds = b.2.swap_bytes().wrapping_sub(a.2.swap_bytes());
        if (1..=32).contains(&d) || (1..=32).contains(&ds) {
            ok += 1;
        }
    }
    cross >= 3 && ok * 5 >= cross * 4
}

fn judge(members: &[&Record], rules: &DecoyScanRules) -> Verdict {
    let tol = rules.ttl_tolerance;
    let fixed_ttl = |r: &&Record| {
        let (lo, hi) = r.scan_ttl();
        (lo == hi).then_some(lo)
    };
    let fp = Fingerprint {
        sport: all_same(members.iter().map(|r| r.sport.value())),
        isn: all_same(members.iter().map(|r| r.isn.value())),
        ip_id: same_ip_ids(members),
        ip_id_sequence: one_ip_id_counter(members),
        ttl: all_same(members.iter().map(fixed_ttl)),
        window: all_same(members.iter().map(|r| r.window.value())),
        options: all_same(members.iter().map(|r| r.options.value())),
    };
    let scan_start = members.iter().filter(|r| r.completed_ports() == 0).map(|r| r.first_us).min();
    let views: Vec<View> = members.iter().map(|r| view(r, tol, scan_start)).collect();
    let only = |f: &dyn Fn(&View) -> bool| {
        let hits: Vec<usize> = (0..views.len()).filter(|i| f(&views[*i])).collect();
        (hits.len() == 1).then(|| hits[0])
    };
    let contradicted: Vec<usize> = (0..views.len()).filter(|i| views[*i].contradicts()).collect();
    let forged = fp.strong() || !contradicted.is_empty();
    let mut reasons = Vec::new();
    let (suspect, basis) = if !forged {
        (None, None)
    } else if let Some(i) = only(&|v| v.consistent == Some(true) && !v.randomised) {
        (Some(i), Some("baseline_ttl"))
    } else if let Some(i) = only(&|v| v.contact == Contact::Before && !v.contradicts()) {
        // A source whose earlier TTL contradicts the scan's is never the
        // suspect, whatever its history (it is the innocent whose address
        // the scanner borrowed).
        (Some(i), Some("only_prior_conversation"))
    } else if views.iter().all(|v| v.contact != Contact::Before || v.contradicts())
        && let Some(i) = only(&|v| v.contact == Contact::After && !v.contradicts())
    {
        (Some(i), Some("only_later_conversation"))
    } else {
        (None, None)
    };
    let n = members.len();
    if fp.strong() {
        let mut same = Vec::new();
        if let Some(p) = fp.sport {
            same.push(format!("source port {p}"));
        }
        if let Some(i) = fp.isn {
            same.push(format!("ISN {i}"));
        }
        if fp.ip_id {
            same.push("IP ID per port".to_string());
        }
        if let Some(t) = fp.ttl {
            same.push(format!("TTL {t} (initial {}, {} hops)", initial_ttl(t), hops(t)));
        }
        let mut line = if same.is_empty() {
            String::new()
        } else {
            format!("all {n} sources sent the same {}", join_words(&same))
        };
        if fp.ip_id_sequence {
            if !line.is_empty() {
                line.push_str(", and ");
            }
            line.push_str("their IP IDs count up as one counter across sources");
        }
        reasons.push(format!("{line}: one machine sent them all"));
    }
    let randomised: Vec<&Record> = (0..n).filter(|i| views[*i].randomised).map(|i| members[i]).collect();
    if !randomised.is_empty() {
        let lo = randomised.iter().map(|r| r.scan_ttl().0).min().unwrap_or(0);
        let hi = randomised.iter().map(|r| r.scan_ttl().1).max().unwrap_or(0);
        reasons.push(format!(
            "the scan TTL varies from probe to probe ({lo}..{hi}): the tool randomises it, so it ties no source to its baseline"
        ));
    }
    for i in &contradicted {
        let (r, v) = (members[*i], views[*i]);
        if let Some((lo, hi)) = v.baseline {
            reasons.push(format!(
                "{} arrived with TTL {}..{} but its earlier conversations came with {lo}..{hi}: forged",
                r.src,
                r.scan_ttl().0,
                r.scan_ttl().1
            ));
        }
    }
    match (suspect, basis) {
        (Some(i), Some(b)) => {
            let (r, v) = (members[i], views[i]);
            let base = v.baseline.map(|(lo, hi)| baseline_text(lo, hi)).unwrap_or_default();
            reasons.push(match b {
                "baseline_ttl" => format!("{}'s scan TTL fits the baseline of its own earlier conversations{base}", r.src),
                "only_prior_conversation" => format!(
                    "{} is the only source that held a two-way conversation before the scan{base}; the others had never been seen",
                    r.src
                ),
                _ => format!("{} is the only source that ever held a two-way conversation{base} (after the scan)", r.src),
            });
        }
        _ if forged => {
            let before: Vec<String> = (0..n)
                .filter(|i| views[*i].contact == Contact::Before && !views[*i].contradicts())
                .map(|i| members[i].src.to_string())
                .collect();
            reasons.push(if before.is_empty() {
                "no source held a two-way conversation before the scan, so which one is real is not known".to_string()
            } else {
                format!(
                    "{} held two-way conversations before the scan (nothing ties either to the probes), so which one is real is not known",
                    join_words(&before)
                )
            });
        }
        _ => reasons.push(
            "no shared fingerprint or TTL contradiction ties the sources to one machine: possibly independent scanners"
                .to_string(),
        ),
    }
    let mut spoofed: Vec<usize> = contradicted.into_iter().filter(|i| Some(*i) != suspect).collect();
    if let Some(s) = suspect
        && fp.strong()
    {
        spoofed = (0..n).filter(|i| *i != s).collect();
    }
    let confidence = match (forged, suspect.is_some()) {
        (true, true) => Confidence::High,
        (true, false) => Confidence::Medium,
        _ => Confidence::Low,
    };
    Verdict { fp, views, suspect, basis, spoofed, confidence, reasons }
}

fn baseline_text(lo: u8, hi: u8) -> String {
    let init = initial_ttl(hi);
    let ttl = if lo == hi { lo.to_string() } else { format!("{lo}..{hi}") };
    format!(" (TTL {ttl}: initial {init}, {} hops, {})", init - hi, os_family(init))
}

fn join_words(v: &[String]) -> String {
    match v.len() {
        0 => String::new(),
        1 => v[0].clone(),
        n => format!("{} and {}", v[..n - 1].join(", "), v[n - 1]),
    }
}

impl Aggregate for Aggregator {
    type Data = Record;

    fn marks(&mut self) -> &mut Watermarks {
        &mut self.marks
    }

    fn take(&mut self, r: Record, shared: &Shared) {
        if self.pending.len() >= self.rules.max_candidates.saturating_mul(4) {
            shared.stats.table(Table::Decoy).cap_hits.fetch_add(1, Relaxed);
        } else {
            self.pending.push(r);
        }
    }

    fn advance(&mut self, shared: &Shared, out: &Sender<EventLine>) {
        self.advance_records(shared, out);
    }
}

impl Aggregator {
    pub fn new(
        rules: &DecoyScanRules,
        port_scan: &PortScanRules,
        workers: usize,
        update_interval_s: f64,
    ) -> Aggregator {
        Aggregator {
            decoy_on: rules.enabled,
            distributed: Distributed::new(port_scan, update_interval_s),
            rules: rules.clone(),
            marks: Watermarks::new(workers),
            pending: Vec::new(),
            order: Vec::new(),
            dsts: Vec::new(),
            dests: FastMap::default(),
            held: 0,
            quiet_from: i64::MAX,
            clock: i64::MIN,
            update_us: (update_interval_s * 1e6) as i64,
            window_us: (rules.window_s * 1e6) as i64,
        }
    }

    /// Runs until every worker is done (or gone), then ends every open
    /// detection with `end`.
    pub fn run(mut self, rx: Receiver<AggMsg>, shared: &Shared, out: Sender<EventLine>, end: EndReason) {
        self.drain(rx, shared, &out);
        self.finish(end.unless_interrupted(shared.stats.interrupted.load(Relaxed)), shared, &out);
    }

    /// Handles every buffered record up to the lowest watermark, tag by tag.
    fn advance_records(&mut self, shared: &Shared, out: &Sender<EventLine>) {
        let low = self.marks.low();
        if low == i64::MIN {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(
            pending.iter().enumerate().filter(|(_, r)| r.tag <= low).map(|(i, r)| (r.tag, r.dst, r.src, i as u32)),
        );
        order.sort_unstable();
        let mut i = 0;
        while i < order.len() {
            let tag = order[i].0;
            let j = order[i..].iter().position(|o| o.0 != tag).map_or(order.len(), |k| i + k);
            let group = &order[i..j];
            let mut dsts = std::mem::take(&mut self.dsts);
            dsts.clear();
            dsts.extend(group.iter().map(|o| o.1));
            dsts.dedup(); // sorted by (tag, dst, src)
            let records = group.iter().filter_map(|o| pending.get(o.3 as usize));
            if tag == i64::MAX {
                // The end: apply the last snapshots, then judge at the latest packet time.
                records.for_each(|r| self.apply(r, &shared.stats));
                let now = self.clock;
                self.judge_dests(&dsts, now, shared, out);
                self.expire(now, shared, out);
            } else {
                self.clock = self.clock.max(tag);
                self.expire(tag, shared, out);
                records.for_each(|r| self.apply(r, &shared.stats));
                self.judge_dests(&dsts, tag, shared, out);
            }
            self.dsts = dsts;
            i = j;
        }
        self.order = order;
        self.pending = pending;
        self.pending.retain(|r| r.tag > low);
        if low != i64::MAX {
            self.clock = self.clock.max(low);
            self.expire(low, shared, out);
        }
        shared.stats.table(Table::Decoy).entries.store(self.held as u64, Relaxed);
    }

    fn judge_dests(&mut self, dsts: &[IpAddr], now: i64, shared: &Shared, out: &Sender<EventLine>) {
        for dst in dsts {
            self.evaluate(*dst, now, shared, out);
        }
    }

    fn apply(&mut self, r: &Record, stats: &Stats) {
        self.clock = self.clock.max(r.last_us);
        let full = self.held >= self.rules.max_candidates;
        if full && !self.dests.contains_key(&r.dst) {
            stats.table(Table::Decoy).cap_hits.fetch_add(1, Relaxed);
            return;
        }
        let d = self.dests.entry(r.dst).or_default();
        if let Some(slot) = d.srcs.iter_mut().find(|x| x.src == r.src) {
            *slot = *r;
        } else if full || d.srcs.len() >= MAX_PER_DEST {
            stats.table(Table::Decoy).cap_hits.fetch_add(1, Relaxed);
        } else {
            d.srcs.push(*r);
            self.held += 1;
        }
        self.quiet_from = self.quiet_from.min(r.last_us);
    }

    /// Looks for groups at `dst` and opens or grows their detections.
    fn evaluate(&mut self, dst: IpAddr, now: i64, shared: &Shared, out: &Sender<EventLine>) {
        let rules = &self.rules;
        let from = now.saturating_sub(self.window_us);
        let Some(d) = self.dests.get_mut(&dst) else { return };
        let Dest { srcs, dets } = d;
        // Most destinations see one scanner at a time: no group to look for
        // (unless a distributed scan of it is open, which new sources join).
        let need = match &self.distributed {
            Some(x) if x.open_at(dst) => 1,
            Some(x) if self.decoy_on => x.min_sources().min(rules.min_sources as usize),
            Some(x) => x.min_sources(),
            None => rules.min_sources as usize,
        };
        if srcs.iter().filter(|r| candidate(rules, r, from)).nth(need.saturating_sub(1)).is_none() {
            return;
        }
        let mut elig: Vec<&Record> = srcs.iter().filter(|r| candidate(rules, r, from)).collect();
        elig.sort_by_key(|r| (r.first_us, r.src));
        let cx = Ctx { shared, out, now, inbound: 0, known_through: now }; // no traffic shares here
        let decoy_groups = if self.decoy_on && elig.len() >= rules.min_sources as usize {
            groups(elig.clone(), rules)
        } else {
            Vec::new()
        };
        for group in decoy_groups {
            if judge(&group, rules).confidence < rules.min_confidence {
                continue;
            }
            let ips: Vec<IpAddr> = group.iter().map(|r| r.src).collect();
            match dets.iter_mut().find(|det| det.members.iter().any(|m| ips.contains(m))) {
                None => {
                    let mut det = Detection {
                        first_us: group.iter().map(|r| r.first_us).min().unwrap_or(now),
                        members: ips.into_iter().take(LISTED).collect(),
                        members_more: 0,
                        last_emit_us: now,
                        shown: (0, 0),
                    };
                    let ev = render(dst, &det, srcs, rules, "new", None, &cx, now);
                    det.shown = ev.1;
                    dets.push(det);
                    cx.emit(ev.0);
                }
                Some(det) => {
                    for ip in ips {
                        if det.members.contains(&ip) {
                            continue;
                        }
                        if det.members.len() < LISTED {
                            det.members.push(ip);
                        } else {
                            det.members_more = det.members_more.saturating_add(1);
                        }
                    }
                    let ports = members_of(det, srcs).iter().map(|r| r.distinct_ports()).max().unwrap_or(0);
                    let grew = (det.members.len(), ports) != det.shown;
                    if grew && now.saturating_sub(det.last_emit_us) >= self.update_us {
                        det.last_emit_us = now;
                        let ev = render(dst, det, srcs, rules, "update", None, &cx, now);
                        det.shown = ev.1;
                        cx.emit(ev.0);
                    }
                }
            }
        }
        // Sources that joined no decoy group may be dividing the ports.
        if let Some(dist) = &mut self.distributed {
            elig.retain(|r| !dets.iter().any(|det| det.members.contains(&r.src)));
            dist.evaluate(dst, &elig, &cx, now);
        }
    }

    /// Ends detections whose sources have all been quiet for `window_s`, and
    /// forgets records that old (a member of an open detection stays).
    fn expire(&mut self, now: i64, shared: &Shared, out: &Sender<EventLine>) {
        if let Some(dist) = &mut self.distributed {
            dist.expire(now, &Ctx { shared, out, now, inbound: 0, known_through: now });
        }
        let from = now.saturating_sub(self.window_us);
        if from <= self.quiet_from {
            return;
        }
        let mut quiet_from = i64::MAX;
        let cx = Ctx { shared, out, now, inbound: 0, known_through: now }; // no traffic shares here
        let mut finals: Vec<(i64, IpAddr, EventLine)> = Vec::new();
        let mut gone = 0usize;
        for (dst, d) in self.dests.iter_mut() {
            let Dest { srcs, dets } = d;
            dets.retain(|det| {
                if members_of(det, srcs).iter().any(|r| r.last_us >= from) {
                    return true;
                }
                let ev = render(*dst, det, srcs, &self.rules, "final", Some(EndReason::Expired), &cx, now);
                finals.push((det.first_us, *dst, ev.0));
                false
            });
            let before = srcs.len();
            srcs.retain(|r| r.last_us >= from || dets.iter().any(|det| det.members.contains(&r.src)));
            gone += before - srcs.len();
            // What the next sweep could end: a detection when its newest
            // member goes quiet, any other record when it does.
            for det in dets.iter() {
                let newest = members_of(det, srcs).iter().map(|r| r.last_us).max().unwrap_or(i64::MIN);
                quiet_from = quiet_from.min(newest);
            }
            for r in srcs.iter().filter(|r| !dets.iter().any(|det| det.members.contains(&r.src))) {
                quiet_from = quiet_from.min(r.last_us);
            }
        }
        self.quiet_from = quiet_from;
        if gone > 0 {
            self.held = self.held.saturating_sub(gone);
            self.dests.retain(|_, d| !d.srcs.is_empty() || !d.dets.is_empty());
            shared.stats.table(Table::Decoy).expired.fetch_add(gone as u64, Relaxed);
        }
        finals.sort_by_key(|(t, dst, _)| (*t, *dst));
        for (_, _, ev) in finals {
            cx.emit(ev);
        }
    }

    /// Ends every open detection (end of input or shutdown), in order of
    /// first probe.
    fn finish(&mut self, end: EndReason, shared: &Shared, out: &Sender<EventLine>) {
        let now = self.clock.max(0);
        let cx = Ctx { shared, out, now, inbound: 0, known_through: now }; // no traffic shares here
        let mut open: Vec<(i64, IpAddr, &Detection, &[Record])> = Vec::new();
        for (dst, d) in &self.dests {
            open.extend(d.dets.iter().map(|det| (det.first_us, *dst, det, d.srcs.as_slice())));
        }
        open.sort_by_key(|(t, dst, _, _)| (*t, *dst));
        for (_, dst, det, srcs) in open {
            cx.emit(render(dst, det, srcs, &self.rules, "final", Some(end), &cx, now).0);
        }
        if let Some(dist) = &mut self.distributed {
            dist.finish(end, &cx, now);
        }
        self.dests.clear();
        self.held = 0;
        shared.stats.table(Table::Decoy).entries.store(0, Relaxed);
    }
}

/// Probed enough ports there lately, mostly without conversations.
fn candidate(rules: &DecoyScanRules, r: &Record, from: i64) -> bool {
    let exact = u64::from(r.nports).max(1);
    r.last_us >= from
        && r.distinct_ports() >= u64::from(rules.min_ports)
        && r.completed_ports() as f64 <= rules.max_completed_share * exact as f64
}

/// Two sources carry a fingerprint of one machine: the same fixed source
/// port, ISN or TTL, or the same IP IDs on the ports both probed.
fn linked(a: &Record, b: &Record, ip_ids: bool) -> bool {
    let eq = |x: Option<u32>, y: Option<u32>| x.is_some() && x == y;
    let fixed = |r: &Record| {
        let (lo, hi) = r.scan_ttl();
        (lo == hi).then_some(u32::from(lo))
    };
    eq(a.sport.value().map(u32::from), b.sport.value().map(u32::from))
        || eq(a.isn.value(), b.isn.value())
        || eq(fixed(a), fixed(b))
        || (ip_ids && same_ip_ids(&[a, b]))
}

/// The groups at one destination. Candidates (sorted by first probe) whose
/// port sets overlap form a set, largest first, repeatedly; within it,
/// sources linked by a fingerprint form one group each (one machine), and
/// the unlinked rest one more. Groups smaller than `min_sources` are dropped.
fn groups<'a>(mut elig: Vec<&'a Record>, rules: &DecoyScanRules) -> Vec<Vec<&'a Record>> {
    let min = rules.min_sources as usize;
    let mut out = Vec::new();
    while elig.len() >= min {
        // The seed whose overlap set is largest (counted, then listed once).
        let overlaps = |i: usize, j: usize| j == i || elig[i].sketch.jaccard(&elig[j].sketch) >= rules.min_overlap;
        let (mut seed, mut most) = (0, 0);
        for i in 0..elig.len() {
            let n = (0..elig.len()).filter(|j| overlaps(i, *j)).count();
            if n > most {
                (seed, most) = (i, n);
            }
        }
        if most < min {
            break;
        }
        let best: Vec<usize> = (0..elig.len()).filter(|j| overlaps(seed, *j)).collect();
        let set: Vec<&Record> = best.iter().map(|i| elig[*i]).collect();
        let mut k = 0;
        elig.retain(|_| {
            k += 1;
            !best.contains(&(k - 1))
        });
        // Union-find over fingerprint links.
        let n = set.len();
        let mut root: Vec<usize> = (0..n).collect();
        fn find(root: &mut [usize], mut i: usize) -> usize {
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        let ip_ids = n <= 64;
        for i in 0..n {
            for j in i + 1..n {
                if linked(set[i], set[j], ip_ids) {
                    let (a, b) = (find(&mut root, i), find(&mut root, j));
                    root[a.max(b)] = a.min(b);
                }
            }
        }
        let roots: Vec<usize> = (0..n).map(|i| find(&mut root, i)).collect();
        let mut rest: Vec<&Record> = Vec::new();
        let mut firsts: Vec<usize> = roots.clone();
        firsts.sort_unstable();
        firsts.dedup();
        for r in firsts {
            let g: Vec<&Record> = (0..n).filter(|i| roots[*i] == r).map(|i| set[i]).collect();
            if g.len() >= min {
                out.push(g);
            } else {
                rest.extend(g);
            }
        }
        if rest.len() >= min {
            rest.sort_by_key(|r| (r.first_us, r.src));
            out.push(rest);
        }
    }
    out
}

/// The records of a detection's members, in member order.
fn members_of<'a>(det: &Detection, srcs: &'a [Record]) -> Vec<&'a Record> {
    det.members.iter().filter_map(|ip| srcs.iter().find(|r| r.src == *ip)).collect()
}

fn kinds_names(k: u8) -> Vec<&'static str> {
    kind::NAMES.iter().filter(|(b, _)| k & b != 0).map(|(_, n)| *n).collect()
}

/// The ports every member probed (exactly known ones), sorted.
fn common_ports(members: &[&Record]) -> Vec<u16> {
    let Some(first) = members.first() else { return Vec::new() };
    let mut v: Vec<u16> = first
        .port_slots()
        .iter()
        .filter(|s| members.iter().all(|r| r.port_slots().iter().any(|x| x.port == s.port && x.udp == s.udp)))
        .map(|s| s.port)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// "20-30, 80, 443".
fn ranges(ports: &[u16]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let mut j = i;
        while j + 1 < ports.len() && ports[j + 1] == ports[j].wrapping_add(1) {
            j += 1;
        }
        out.push(if j > i { format!("{}-{}", ports[i], ports[j]) } else { ports[i].to_string() });
        i = j + 1;
    }
    out.join(", ")
}

fn ttl_json(lo: u8, hi: u8) -> Value {
    let init = initial_ttl(hi);
    json!({"min": lo, "max": hi, "initial_ttl": init, "hops_min": init.saturating_sub(hi), "hops_max": init.saturating_sub(lo)})
}

/// The event line, and (members, ports) it showed.
#[allow(clippy::too_many_arguments)]
fn render(
    dst: IpAddr,
    det: &Detection,
    srcs: &[Record],
    rules: &DecoyScanRules,
    status: &str,
    end: Option<EndReason>,
    cx: &Ctx,
    now: i64,
) -> (EventLine, (usize, u64)) {
    let members = members_of(det, srcs);
    let v = judge(&members, rules);
    let ports = common_ports(&members);
    let probed = members.iter().map(|r| r.distinct_ports()).max().unwrap_or(0);
    let kinds = members.iter().fold(0u8, |k, r| k | r.kinds);
    let last_us = members.iter().map(|r| r.last_us).max().unwrap_or(now);
    let sensor = members.first().map_or(0, |r| r.sensor);
    let ip = |i: usize| members.get(i).map(|r| r.src.to_string());
    let suspect = v.suspect.and_then(ip);
    let spoofed: Vec<String> = v.spoofed.iter().filter_map(|i| ip(*i)).collect();
    let evidence: Vec<Value> = members
        .iter()
        .zip(v.views.iter())
        .map(|(r, w)| {
            let first_contact = r.memory.map_or(r.first_us, |m| m.first_us.min(r.first_us));
            json!({
                "src": r.src.to_string(),
                "probes": r.probes,
                "ports": r.distinct_ports(),
                "completed_ports": r.completed_ports(),
                "probe_types": kinds_names(r.kinds),
                "ttl": ttl_json(r.scan_ttl().0, r.scan_ttl().1),
                "ttl_randomised": w.randomised,
                "baseline_ttl": w.baseline.map(|(lo, hi)| {
                    let mut b = ttl_json(lo, hi);
                    b["os"] = json!(os_family(initial_ttl(hi)));
                    b
                }),
                "ttl_consistent": w.consistent,
                "conversation": w.contact.name(),
                "earlier_contact": w.earlier,
                "first_contact": rfc3339_us(first_contact),
                "first_probe": rfc3339_us(r.first_us),
                "source_port": r.sport.value(),
                "isn": r.isn.value(),
                "window": r.window.value(),
            })
        })
        .collect();
    let fp = &v.fp;
    let id = detection_id("decoy_scan", &[&ip_bytes(&dst), &det.first_us.to_be_bytes()]);
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "sources": members.iter().map(|r| r.src.to_string()).collect::<Vec<_>>(),
        "sources_more": det.members_more,
        "suspected_source": suspect,
        "suspect_basis": v.basis,
        "spoofed": spoofed,
        "ports": ports,
        "ports_probed": probed,
        "probe_types": kinds_names(kinds),
        "shared_fingerprint": {
            "fields": fp.fields(),
            "sport": fp.sport,
            "isn": fp.isn,
            "ip_id": fp.ip_id,
            "ip_id_sequence": fp.ip_id_sequence,
            "ttl": fp.ttl,
            "window": fp.window,
            "tcp_options": fp.options.map(|o| format!("{o:#x}")),
        },
        "evidence": evidence,
        "confidence": v.confidence.name(),
        "reasons": v.reasons,
        "direction": members.first().and_then(|r| cx.direction(r.src, dst)),
        "first_seen": rfc3339_us(det.first_us),
        "last_seen": rfc3339_us(last_us),
        "duration_s": secs(last_us - det.first_us),
    });
    let lead = v.suspect.and_then(|i| members.get(i)).or(members.first()).copied();
    let udp_only = kinds == kind::UDP;
    let proto = if udp_only { 17 } else { 6 };
    let (src, sport) = lead.map_or((dst, 0), |r| (r.src, r.first_sport));
    let dport = lead.and_then(|r| r.port_slots().first().map(|s| s.port)).unwrap_or(0);
    let flow = Flow { src, dst, proto, ports: Some((sport, dport)) };
    let ts = if status == "final" { last_us } else { now };
    let line = EventBuilder::new("decoy_scan", ts, cx.sensor(sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(dst, None, Fact::DecoyScan))
        .summary(summary(
            dst,
            &members,
            &v,
            &ports,
            probed,
            last_us - det.first_us,
            if udp_only { "UDP" } else { "TCP" },
        ))
        .details("decoy_scan", details);
    (line, (det.members.len(), probed))
}

/// One sentence an analyst can act on.
fn summary(
    dst: IpAddr,
    members: &[&Record],
    v: &Verdict,
    ports: &[u16],
    probed: u64,
    span: i64,
    proto: &str,
) -> String {
    let n = members.len();
    let port_text = if ports.len() as u64 == probed {
        format!("the same {probed} {proto} ports ({})", ranges(ports))
    } else {
        format!("the same {proto} ports (up to {probed}; {} shared: {})", ports.len(), ranges(ports))
    };
    let ip = |i: usize| members.get(i).map(|r| r.src.to_string()).unwrap_or_default();
    let who = match v.suspect {
        Some(s) => {
            let others: Vec<String> = v.spoofed.iter().map(|i| ip(*i)).collect();
            let decoys =
                if others.is_empty() { String::new() } else { format!("; {} forged (decoys)", join_words(&others)) };
            format!("the scanner is likely {}{decoys}", ip(s))
        }
        None if v.confidence > Confidence::Low => {
            let forged: Vec<String> = v.spoofed.iter().map(|i| ip(*i)).collect();
            if forged.is_empty() {
                format!("at least {} of the {n} sources are forged, which one is real is not known", n - 1)
            } else {
                format!("{} forged; the scanner is not identified", join_words(&forged))
            }
        }
        None => "they may be independent scanners".to_string(),
    };
    format!(
        "decoy scan of {dst}: {n} sources probed {port_text} within {} s; {}; {who} (confidence {})",
        secs(span),
        v.reasons.first().map(String::as_str).unwrap_or(""),
        v.confidence.name()
    )
}
