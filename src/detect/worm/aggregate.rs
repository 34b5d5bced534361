//! The `worm_phase` aggregator (one thread): the sentries' counters per
//! (host, sentry), the phase ladder, the worm name guess, and the daily
//! `worm_summary` of troubled hosts (see `worm/mod.rs` for why one thread).
//!
//! Each unanswered attempt counts in the port sentry of its (protocol,
//! port), if there is one, and in the sentry `any`. Counters are fair
//! tables (`detect::fair`): a (host, sentry) seen once waits in probation,
//! a second attempt promotes it; a counter that alerted in the last 24 h is
//! pinned (the once-per-day rule needs its memory). Per counter, the
//! distinct targets are a 2,048-bit sketch, not a list.

use super::ladder::{DAY_US, Ladder, Reason, Steps, roman};
use super::record::{Attempt, Chunk, MARK_PORTS, WormMsg};
use super::rules::WormPhaseRules;
use super::tap::Key as FlowKey;
use crate::detect::agg::{Aggregate, Watermarks};
use crate::detect::core::{Ctx, EndReason, Shared};
use crate::detect::fair::{Probation, Tier, Weighted};
use crate::detect::keys::{Distinct, FastMap, addr_key, hash_pair, mix};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes};
use crate::output::timefmt::{civil_from_days, rfc3339_us};
use crate::stats::Table;
use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Attempts buffered until every worker's watermark passes them: 262,144
/// (about 20 MB) hold 2.6 s of a 100 kpps spoofed flood, whose every SYN
/// is an unanswered attempt, while watermarks lag by a tick or two. More
/// are refused and counted (`stats.state.worm_phase.cap_hits`). It was
/// 2^20 (about 80 MB, beyond the memory budget under a heavier flood).
const MAX_BUFFERED: usize = 1 << 18;
/// Hosts remembered for the day's summary.
const MAX_TROUBLED: usize = 4096;
/// Sentries remembered per troubled host.
const SENTRIES_LISTED: usize = 8;
/// SQL Slammer's datagram: 376 bytes of UDP payload to 1434.
const SLAMMER_PAYLOAD: u16 = 376;
/// The sentry that counts every port.
pub const ANY: u32 = 0;

/// A sentry: `ANY`, or (protocol << 16) | port.
pub fn sentry_name(s: u32) -> String {
    if s == ANY { "any".to_string() } else { format!("{}/{}", s & 0xffff, if s >> 16 == 17 { "udp" } else { "tcp" }) }
}

fn sentry_of(proto: u8, port: u16) -> u32 {
    (u32::from(proto) << 16) | u32::from(port)
}

/// (host, sentry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    host: IpAddr,
    sentry: u32,
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_pair(&self.host, &self.host, self.sentry, h);
    }
}

/// When a flow last came from each origin (`i64::MIN`: never).
#[derive(Clone, Copy, Debug)]
struct Origins {
    wire_us: i64,
    log_us: i64,
}

/// A (host, sentry) seen once.
#[derive(Clone, Copy, Debug)]
struct Seen {
    a: Attempt,
    at: i64,
}

/// The day's facts of one (host, sentry).
#[derive(Clone, Copy, Debug)]
struct Counter {
    ladder: Ladder,
    first_us: i64,
    last_us: i64,
    packets: u64,
    targets: Distinct<32>,
    /// Attempts whose first datagram was 376 bytes of UDP to 1434, and
    /// attempts of a single packet.
    slammer_shaped: u32,
    single: u32,
    sensor: u16,
    /// The latest attempt, for the event's flow fields.
    last: (IpAddr, u8, u16, u16),
    /// Queued for the next judgement.
    dirty: bool,
}

impl Counter {
    fn new() -> Counter {
        Counter {
            ladder: Ladder::default(),
            first_us: i64::MAX,
            last_us: i64::MIN,
            packets: 0,
            targets: Distinct::default(),
            slammer_shaped: 0,
            single: 0,
            sensor: 0,
            last: (IpAddr::from([0, 0, 0, 0]), 0, 0, 0),
            dirty: false,
        }
    }

    /// Adds one attempt settled at `at`.
    fn see(&mut self, a: &Attempt, at: i64) {
        if self.ladder.roll(at) {
            let (ladder, dirty) = (self.ladder, self.dirty);
            *self = Counter { ladder, dirty, ..Counter::new() };
        }
        self.ladder.add(at, 1);
        self.first_us = self.first_us.min(a.first_us);
        self.last_us = self.last_us.max(a.last_us);
        self.packets = self.packets.saturating_add(u64::from(a.packets));
        self.targets.insert(mix(addr_key(a.target)));
        let shaped = a.proto == 17 && a.dport == 1434 && a.payload == SLAMMER_PAYLOAD;
        self.slammer_shaped = self.slammer_shaped.saturating_add(u32::from(shaped));
        self.single = self.single.saturating_add(u32::from(a.packets == 1));
        self.sensor = a.sensor;
        self.last = (a.target, a.proto, a.sport, a.dport);
    }
}

impl Weighted for Counter {
    fn credit(&self) -> u8 {
        (32 - self.ladder.count.leading_zeros()).min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.ladder.last_alert() != i64::MIN
    }
}

/// A host in the day's summary.
#[derive(Clone, Debug)]
struct Trouble {
    phase: u8,
    sentries: Vec<u32>,
    sentries_more: u32,
    packets: u64,
    attempts: u64,
    targets: u64,
    first_us: i64,
    last_us: i64,
    worm: Option<&'static str>,
    sensor: u16,
}

/// The aggregator's state.
pub struct Aggregator {
    steps: Steps,
    any: bool,
    tcp_ports: Vec<u16>,
    udp_ports: Vec<u16>,
    summary_hosts: usize,
    marks: Watermarks,
    buffered: Vec<Attempt>,
    probation: Probation<Key, Seen>,
    tier: Tier<Key, Counter>,
    /// Marks of worm traffic per host today: bit i for `MARK_PORTS[i]`.
    host_marks: FastMap<IpAddr, u8>,
    troubled: FastMap<IpAddr, Trouble>,
    troubled_more: u64,
    /// The UTC day of the newest packet time handled.
    day: i64,
    clock: i64,
    last_sweep: i64,
    events_today: u64,
    /// The minute of packet time being counted; counters touched in it
    /// (`dirty`) are judged when it closes.
    minute: i64,
    dirty: Vec<Key>,
    /// Live `--fw-log` only (see `fed_by_log`): the flows counted lately,
    /// and from which origin.
    recent: Option<Probation<FlowKey, Origins>>,
    hold_us: i64,
}

impl Aggregate for Aggregator {
    type Data = Chunk;

    fn marks(&mut self) -> &mut Watermarks {
        &mut self.marks
    }

    fn take(&mut self, c: Chunk, shared: &Shared) {
        for a in c.attempts() {
            if self.buffered.len() >= MAX_BUFFERED {
                shared.stats.table(Table::Worm).cap_hits.fetch_add(1, Relaxed);
            } else {
                self.buffered.push(*a);
            }
        }
    }

    fn advance(&mut self, shared: &Shared, out: &Sender<EventLine>) {
        self.advance_attempts(shared, out);
    }
}

impl Aggregator {
    pub fn new(r: &WormPhaseRules, workers: usize) -> Aggregator {
        Aggregator {
            steps: Steps {
                phases: [r.phase1, r.phase2, r.phase3],
                burst_per_minute: r.burst_per_minute,
                min_targets: r.min_targets,
            },
            any: r.any_sentry,
            tcp_ports: r.tcp_ports.clone(),
            udp_ports: r.udp_ports.clone(),
            summary_hosts: r.summary_hosts,
            marks: Watermarks::new(workers),
            buffered: Vec::new(),
            probation: Probation::new(r.max_probation),
            tier: Tier::new(r.max_tracked),
            host_marks: FastMap::default(),
            troubled: FastMap::default(),
            troubled_more: 0,
            day: i64::MIN,
            clock: i64::MIN,
            last_sweep: i64::MIN,
            events_today: 0,
            minute: i64::MIN,
            dirty: Vec::new(),
            recent: None,
            hold_us: (r.hold_s * 1e6) as i64,
        }
    }

    /// A firewall log's denials come too (`picket live --fw-log`, as
    /// `Attempt::logged`): a flow is counted once, from the wire or from
    /// the log, whichever brings it first. A denial within `hold_s` of the
    /// same (host, target, protocol, port) from the wire or from the log
    /// is a repeat (the span saw the packet, or the firewall logged a
    /// retransmission again); so is an attempt from the wire within
    /// `hold_s` of a denial counted. Up to `flows` flows are remembered,
    /// oldest out first.
    pub fn fed_by_log(mut self, flows: usize) -> Aggregator {
        self.recent = Some(Probation::new(flows));
        self
    }

    /// Runs until every worker is done (or gone), then writes the last summary.
    pub fn run(mut self, rx: Receiver<WormMsg>, shared: &Shared, out: Sender<EventLine>, end: EndReason) {
        self.drain(rx, shared, &out);
        // The end of input closes the last minute (a shutdown too).
        let _ = end;
        self.judge(shared, &out);
        self.summarise(true, shared, &out);
    }

    /// Handles every buffered attempt up to the lowest watermark, in order.
    fn advance_attempts(&mut self, shared: &Shared, out: &Sender<EventLine>) {
        let low = self.marks.low();
        if low == i64::MIN {
            return;
        }
        let mut ready: Vec<Attempt> = Vec::new();
        if self.buffered.iter().any(|a| a.tag <= low) {
            let (r, keep): (Vec<Attempt>, Vec<Attempt>) = self.buffered.drain(..).partition(|a| a.tag <= low);
            self.buffered = keep;
            ready = r;
        }
        ready.sort_unstable_by_key(|a| a.order());
        for a in &ready {
            let at = if a.tag == i64::MAX { self.clock.max(a.last_us) } else { a.tag };
            self.pass(at, shared, out);
            self.count(a, at, shared);
        }
        if low != i64::MAX {
            self.pass(low, shared, out);
            self.sweep(low, shared);
        }
        let n = self.tier.len() + self.probation.len();
        shared.stats.table(Table::Worm).entries.store(n as u64, Relaxed);
    }

    /// Packet time reached `ts`: a closed minute is judged, a new day
    /// summarises the last one.
    fn pass(&mut self, ts: i64, shared: &Shared, out: &Sender<EventLine>) {
        self.clock = self.clock.max(ts);
        let minute = Ladder::minute_of(ts);
        if minute > self.minute {
            self.judge(shared, out);
            self.minute = minute;
        }
        self.new_day(ts, shared, out);
    }

    /// Judges the counters touched since the last judgement, in the order
    /// they were first touched.
    fn judge(&mut self, shared: &Shared, out: &Sender<EventLine>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for k in dirty.drain(..) {
            let steps = self.steps;
            let Some(c) = self.tier.get_mut(&k) else { continue };
            c.dirty = false;
            let targets = c.targets.estimate();
            let Some((phase, reason)) = c.ladder.judge(targets, &steps) else { continue };
            let c = *c;
            let marks = self.host_marks.get(&k.host).copied().unwrap_or(0);
            let worm = guess(k.sentry, &c, marks);
            self.note_trouble(k, &c, phase, worm.map(|w| w.0));
            self.events_today += 1;
            let at = self.clock.max(c.last_us);
            let cx = Ctx { shared, out, now: at, inbound: 0, known_through: i64::MIN };
            cx.emit(phase_event(k, &c, phase, reason, worm, at, &cx));
        }
        self.dirty = dirty;
    }

    /// At the first packet time of a new UTC day: the last day's summary.
    fn new_day(&mut self, ts: i64, shared: &Shared, out: &Sender<EventLine>) {
        let day = ts.div_euclid(DAY_US);
        if day <= self.day {
            return;
        }
        if self.day != i64::MIN {
            self.judge(shared, out);
            self.summarise(false, shared, out);
        }
        self.day = day;
        self.troubled.clear();
        self.troubled_more = 0;
        self.host_marks.clear();
        self.events_today = 0;
    }

    /// Drops the counters of earlier days that alerted more than 24 h ago
    /// (once a minute of packet time).
    fn sweep(&mut self, now: i64, shared: &Shared) {
        if now.saturating_sub(self.last_sweep) < 60_000_000 {
            return;
        }
        self.last_sweep = now;
        let today = now.div_euclid(DAY_US);
        let gone = self.tier.retain(|_, c| {
            c.ladder.day >= today
                || now.saturating_sub(c.ladder.last_alert()) < DAY_US && c.ladder.last_alert() != i64::MIN
        });
        shared.stats.table(Table::Worm).expired.fetch_add(gone, Relaxed);
    }

    /// One attempt into its sentries.
    fn count(&mut self, a: &Attempt, at: i64, shared: &Shared) {
        if let Some(i) = MARK_PORTS.iter().position(|p| *p == a.dport && a.proto == 6) {
            if self.host_marks.len() < MAX_TROUBLED || self.host_marks.contains_key(&a.host) {
                *self.host_marks.entry(a.host).or_default() |= 1 << i;
            }
        }
        if a.answered || self.repeat(a) {
            return;
        }
        let listed = match a.proto {
            6 => self.tcp_ports.contains(&a.dport),
            17 => self.udp_ports.contains(&a.dport),
            _ => false,
        };
        if listed {
            self.count_in(Key { host: a.host, sentry: sentry_of(a.proto, a.dport) }, a, at, shared);
        }
        if self.any {
            self.count_in(Key { host: a.host, sentry: ANY }, a, at, shared);
        }
    }

    /// Whether `a` was counted already from the other origin, or is a
    /// logged repeat (see `fed_by_log`); remembers it either way.
    fn repeat(&mut self, a: &Attempt) -> bool {
        let Some(recent) = &mut self.recent else { return false };
        let (t, hold) = (a.first_us, self.hold_us.unsigned_abs());
        let near = |u: i64| u != i64::MIN && t.abs_diff(u) <= hold;
        let k = FlowKey::new(a.host, a.target, a.proto, a.dport);
        let Some(o) = recent.get_mut(&k) else {
            let (wire_us, log_us) = if a.logged { (i64::MIN, t) } else { (t, i64::MIN) };
            recent.insert(k, Origins { wire_us, log_us });
            return false;
        };
        let seen = near(o.log_us) || (a.logged && near(o.wire_us));
        let last = if a.logged { &mut o.log_us } else { &mut o.wire_us };
        *last = (*last).max(t);
        seen
    }

    fn count_in(&mut self, k: Key, a: &Attempt, at: i64, shared: &Shared) {
        let table = shared.stats.table(Table::Worm);
        if self.tier.get(&k).is_none() {
            let Some(seen) = self.probation.remove(&k) else {
                if self.probation.insert(k, Seen { a: *a, at }) > 0 {
                    table.evicted.fetch_add(1, Relaxed);
                }
                return;
            };
            let mut c = Counter::new();
            c.see(&seen.a, seen.at);
            if !self.tier.insert(k, c).count(table, |c| c.ladder.count >= 2) {
                return;
            }
        }
        let Some(c) = self.tier.get_mut(&k) else { return };
        c.see(a, at);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(k);
        }
    }

    fn note_trouble(&mut self, k: Key, c: &Counter, phase: u8, worm: Option<&'static str>) {
        if !self.troubled.contains_key(&k.host) && self.troubled.len() >= MAX_TROUBLED {
            self.troubled_more += 1;
            return;
        }
        let t = self.troubled.entry(k.host).or_insert_with(|| Trouble {
            phase: 0,
            sentries: Vec::new(),
            sentries_more: 0,
            packets: 0,
            attempts: 0,
            targets: 0,
            first_us: c.first_us,
            last_us: c.last_us,
            worm: None,
            sensor: c.sensor,
        });
        t.phase = t.phase.max(phase);
        if !t.sentries.contains(&k.sentry) {
            if t.sentries.len() < SENTRIES_LISTED {
                t.sentries.push(k.sentry);
            } else {
                t.sentries_more += 1;
            }
        }
        t.worm = t.worm.or(worm);
    }

    /// The day's `worm_summary`, if any phase alerted (`last`: end of input).
    fn summarise(&mut self, last: bool, shared: &Shared, out: &Sender<EventLine>) {
        if self.troubled.is_empty() {
            return;
        }
        // Bring each host's totals up to date from its counters.
        let hosts: Vec<IpAddr> = self.troubled.keys().copied().collect();
        for h in hosts {
            let Some(t) = self.troubled.get(&h) else { continue };
            let mut t = t.clone();
            for s in &t.sentries {
                if let Some(c) = self.tier.get(&Key { host: h, sentry: *s })
                    && c.ladder.day == self.day
                {
                    t.packets = t.packets.max(c.packets);
                    t.attempts = t.attempts.max(u64::from(c.ladder.count));
                    t.targets = t.targets.max(c.targets.estimate());
                    t.first_us = t.first_us.min(c.first_us);
                    t.last_us = t.last_us.max(c.last_us);
                }
            }
            self.troubled.insert(h, t);
        }
        let mut list: Vec<(&IpAddr, &Trouble)> = self.troubled.iter().collect();
        list.sort_by(|a, b| b.1.phase.cmp(&a.1.phase).then(b.1.attempts.cmp(&a.1.attempts)).then(a.0.cmp(b.0)));
        let total = list.len() as u64 + self.troubled_more;
        let ts = self.clock.max(list.iter().map(|(_, t)| t.last_us).max().unwrap_or(0));
        let cx = Ctx { shared, out, now: ts, inbound: 0, known_through: i64::MIN };
        let shown: Vec<Value> = list
            .iter()
            .take(self.summary_hosts)
            .map(|(h, t)| {
                json!({
                    "host": h.to_string(),
                    "direction": direction(&cx, **h),
                    "phase": t.phase,
                    "sentries": t.sentries.iter().map(|s| sentry_name(*s)).collect::<Vec<_>>(),
                    "attempts": t.attempts,
                    "packets": t.packets,
                    "targets": t.targets,
                    "first_seen": rfc3339_us(t.first_us),
                    "last_seen": rfc3339_us(t.last_us),
                    "worm": t.worm,
                })
            })
            .collect();
        let (y, m, d) = civil_from_days(self.day);
        let day = format!("{y:04}-{m:02}-{d:02}");
        let worst = list.first().map(|(h, t)| format!("; worst {h} (phase {})", roman(t.phase))).unwrap_or_default();
        let phase3 = list.iter().filter(|(_, t)| t.phase == 3).count();
        let sensor = list.first().map_or(0, |(_, t)| t.sensor);
        let details = json!({
            "day": day,
            "final": last,
            "hosts_total": total,
            "hosts_phase3": phase3,
            "phase_events": self.events_today,
            "hosts": shown,
        });
        let line = EventBuilder::new("worm_summary", ts, cx.sensor(sensor))
            .judged(cx.judge(
                list.first().map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |(h, _)| **h),
                None,
                Fact::worm_phase(list.first().map_or(1, |(_, t)| t.phase.clamp(1, 3))),
            ))
            .summary(format!(
                "worm early warning for {day}: {total} troubled host{} ({phase3} in phase III){worst}",
                if total == 1 { "" } else { "s" }
            ))
            .details("worm_summary", details);
        cx.emit(line);
    }
}

/// `outbound` for an inside host, `inbound` for an outside one; None
/// without a home net.
fn direction(cx: &Ctx, host: IpAddr) -> Option<&'static str> {
    let h = &cx.shared.home;
    if h.is_empty() {
        None
    } else if h.contains(host) {
        Some("outbound")
    } else {
        Some("inbound")
    }
}

/// A worm's name, when the facts prove it, with the fact.
fn guess(sentry: u32, c: &Counter, marks: u8) -> Option<(&'static str, &'static str)> {
    let mark = |port: u16| MARK_PORTS.iter().position(|p| *p == port).is_some_and(|i| marks & (1 << i) != 0);
    // Slammer picks targets at random, so a few get a second datagram.
    let n = c.ladder.count;
    if sentry == sentry_of(17, 1434) && n > 0 && c.slammer_shaped == n && u64::from(c.single) * 10 >= u64::from(n) * 9 {
        return Some((
            "SQL Slammer",
            "every attempt was a UDP datagram to 1434 with a 376-byte payload, at least 90% of targets got only one",
        ));
    }
    if sentry == sentry_of(6, 135) && mark(4444) {
        return Some(("Blaster", "a 135/tcp sweep, and connections to 4444/tcp (its remote shell)"));
    }
    if sentry == sentry_of(6, 445) && (mark(5554) || mark(9996)) {
        return Some((
            "Sasser",
            "a 445/tcp sweep, then connections to 5554/tcp or 9996/tcp (its FTP server and shell)",
        ));
    }
    None
}

fn phase_event(
    k: Key,
    c: &Counter,
    phase: u8,
    reason: Reason,
    worm: Option<(&'static str, &'static str)>,
    at: i64,
    cx: &Ctx,
) -> EventLine {
    let sentry = sentry_name(k.sentry);
    let count = c.ladder.count;
    let targets = c.targets.estimate();
    let dir = direction(cx, k.host);
    let day = c.ladder.day;
    let id = detection_id("worm_phase", &[&ip_bytes(&k.host), &k.sentry.to_be_bytes(), &[phase], &day.to_be_bytes()]);
    // Each alert is a whole detection (one per phase, host, sentry and
    // day): it is written once, as final.
    let details = json!({
        "status": "final",
        "phase": phase,
        "phase_name": roman(phase),
        "reason": reason.name(),
        "sentry": sentry,
        "host": k.host.to_string(),
        "direction": dir,
        "attempts": count,
        "packets": c.packets,
        "targets": targets,
        "per_minute": c.ladder.peak_per_minute,
        "first_seen": rfc3339_us(c.first_us),
        "last_seen": rfc3339_us(c.last_us),
        "worm": worm.map(|w| w.0),
        "worm_evidence": worm.map(|w| w.1),
        "detection_id": id,
    });
    let what = match dir {
        Some("outbound") => "inside host ",
        Some("inbound") => "outside host ",
        _ => "",
    };
    let why = match reason {
        Reason::Count => format!("{count} unanswered attempts today"),
        Reason::Rate => {
            format!("more than {} unanswered attempts within a minute", c.ladder.peak_per_minute.max(1) - 1)
        }
    };
    let name = worm.map(|w| format!("; looks like {} ({})", w.0, w.1)).unwrap_or_default();
    let advice = match phase {
        1 => "early warning, may be a false positive",
        2 => "it persists: look at the host",
        _ => "aggressive: disconnect it",
    };
    let sentry_text = if k.sentry == ANY { "any port".to_string() } else { sentry.clone() };
    // The flow fields name the latest attempt.
    let (target, proto, sport, dport) = c.last;
    let flow = Flow { src: k.host, dst: target, proto, ports: Some((sport, dport)) };
    EventBuilder::new("worm_phase", at.max(c.last_us), cx.sensor(c.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(k.host, target), None, Fact::worm_phase(phase.clamp(1, 3))))
        .summary(format!(
            "worm phase {}: {what}{} at {sentry_text}: {why}, {targets} targets{name} ({advice})",
            roman(phase),
            k.host
        ))
        .details("worm_phase", details)
}
