//! `known_probe`: named probe patterns from SIGNATURES.md section 7, read
//! from the port table (`rules/ports.toml`):
//!
//! - **trojan**: connection attempts (SYN) or UDP datagrams to ports whose
//!   category is `trojan` or `backdoor` (SubSeven 27374 and 1243, NetBus
//!   12345, Back Orifice 31337, MyDoom 3127, Bagle 2745, ...): one
//!   detection per source, listing every such port it tried (`ports`). A
//!   SYN repeating its source port and sequence number is the stack's
//!   retransmission of one attempt, not a new probe; `crafted: true` when
//!   two or more distinct attempts came from one source port (a tool, not
//!   a stack). A target that answers SYN-ACK has something listening
//!   there, which the summary says first; one that answers RST refused.
//! - **proxy_hunter**: one source trying `min_proxy_ports` of the proxy
//!   ports (category `proxy`, plus 80) within `proxy_window_s`, and little
//!   else (the Ring0 pattern: 80, 8080 and 3128 within a minute). A general
//!   port scan that includes them is `port_scan`'s. A hunter tries each
//!   port once or twice: a source with more than `max_attempts_per_port`
//!   attempts per port lately (a NAT gateway whose users also mistyped
//!   8080 and 81, lab capture `benign_busy_server`) is a client at work.
//! - **sscan**: bare ACK "pings" whose source port equals the destination
//!   port (23, 25, 80, 110, 143), and SYNs from source ports 1 to 5 (its OS
//!   fingerprinting).
//!
//! One trojan detection per source (up to 8 ports listed), and one per
//! (source, name) for `proxy_hunter` and `sscan`, each with the lifecycle
//! new / update / final. State is one entry per source that sent such a
//! probe (rare in ordinary traffic), in a fair tier (`detect::fair`): a
//! source with more probes outlives one with fewer, a confirmed one is
//! kept. Ports past the 8th of one source are not listed (not counted).

use super::fair::{Tier, Weighted};
use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::keys::{AddrKey, Distinct256, addr_key, sweep_every};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

crate::rules_section! {
    /// SIGNATURES.md section 7: trojan ports, proxy hunters and sscan, named.
    pub struct KnownProbeRules["known_probe"] check(check_known_probe) {
        /// SIGNATURES.md section 7: "other signatures worth naming"
        enabled: bool = true;
        /// SIGNATURES.md section 7: probes to trojan ports before a detection (2: a retry or a second host, not one stray packet)
        min_trojan_probes: u32 = 2, ints(1, 1000);
        /// SIGNATURES.md section 7: the Ring0 trojan made 3 probes to 80/8080/3128
        min_proxy_ports: u32 = 3, ints(2, 9);
        /// SIGNATURES.md section 7: ...within one minute
        proxy_window_s: f64 = 60.0, above(0.0, 3600.0);
        /// SIGNATURES.md section 7: a proxy hunter probes little else; more other ports than this is a port scan
        max_other_ports: u32 = 2, ints(0, 100);
        /// SIGNATURES.md section 7: a proxy hunter tries each port once or twice (with retransmissions); a source with more connection attempts per port lately is a client at work (a NAT gateway, a browser that mistyped a port), not a hunter
        max_attempts_per_port: u32 = 4, ints(1, 1000);
        /// SIGNATURES.md section 2: a source that probed more ports lately is a port scanner whose list happens to hold these ports (port_scan names it), not a trojan prober or proxy hunter
        max_scan_ports: u32 = 8, ints(1, 65_536);
        /// SIGNATURES.md section 7: sscan's ACK pings and source-port 1-5 SYNs that make a detection
        min_sscan_probes: u32 = 2, ints(1, 100);
        /// SIGNATURES.md section 7: a probe pattern idle this long has ended
        idle_s: f64 = 600.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 7: sources tracked across all workers
        max_tracked: usize = 16384, entries();
    }
}

fn check_known_probe(_r: &KnownProbeRules, _s: &Spans) -> Result<(), ConfigError> {
    Ok(())
}

const KIND: &str = "known_probe";
/// Trojan and backdoor ports tracked per source.
const NAMES: usize = 8;
/// The proxy ports of SIGNATURES.md section 7, for the bitmask.
const PROXY_PORTS: [u16; 9] = [80, 81, 88, 1080, 3128, 8000, 8080, 8081, 8888];

#[derive(Clone, Debug)]
struct Trojan {
    port: u16,
    proto: u8,
    probes: u64,
    /// Distinct attempts: probes less the stack's retransmissions.
    attempts: u64,
    hosts: Distinct256,
    first_target: IpAddr,
    /// Targets that answered SYN-ACK: something listens on the port.
    answered: u64,
    /// RSTs from targets: nothing listens there.
    refused: u64,
    first_sport: u16,
    last_sport: u16,
    last_seq: Option<u32>,
    last_target: IpAddr,
    sport_changed: bool,
    first_us: i64,
    last_us: i64,
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    trojans: Vec<Trojan>,
    /// The source's trojan detection, once confirmed (one per source).
    trojan: Option<Pattern>,
    trojan_emit_us: i64,
    /// Proxy ports probed (bits of `PROXY_PORTS`), other ports probed, and
    /// when the proxy window started.
    proxy_bits: u16,
    other_ports: Distinct256,
    proxy_start_us: i64,
    proxy_target: Option<IpAddr>,
    proxy: Option<Pattern>,
    sscan_acks: u64,
    sscan_syns: u64,
    sscan_target: Option<IpAddr>,
    sscan: Option<Pattern>,
    probes: u64,
    first_us: i64,
    last_us: i64,
}

/// A confirmed proxy-hunter or sscan detection.
#[derive(Clone, Copy, Debug)]
struct Pattern {
    first_us: i64,
}

impl Weighted for Entry {
    fn credit(&self) -> u8 {
        (64 - self.probes.leading_zeros()).saturating_sub(1).min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.proxy.is_some() || self.sscan.is_some() || self.trojan.is_some()
    }
}

impl Entry {
    fn new(sensor: u16, ts: i64) -> Entry {
        Entry {
            sensor,
            trojans: Vec::new(),
            trojan: None,
            trojan_emit_us: ts,
            proxy_bits: 0,
            other_ports: Distinct256::default(),
            proxy_start_us: ts,
            proxy_target: None,
            proxy: None,
            sscan_acks: 0,
            sscan_syns: 0,
            sscan_target: None,
            sscan: None,
            probes: 0,
            first_us: ts,
            last_us: ts,
        }
    }
}

/// The detector's per-worker state.
pub struct KnownProbe {
    rules: KnownProbeRules,
    /// Trojan and backdoor ports of the port table, one bit each: TCP in
    /// the first 1024 words, UDP in the second (a bit test per probe).
    trojan_ports: Box<[u64; 2048]>,
    map: Tier<AddrKey, Entry>,
    update_us: i64,
    last_sweep_us: i64,
}

/// What a packet is, for this detector.
enum Seen {
    /// A SYN or UDP probe to (port, proto) with this source port and, for
    /// TCP, sequence number.
    Probe { proto: u8, port: u16, sport: u16, seq: Option<u32> },
    /// A bare ACK whose source port equals its destination port (sscan).
    SscanAck,
}

impl KnownProbe {
    pub fn new(
        rules: &KnownProbeRules,
        ports: &crate::ports::PortTable,
        cap: usize,
        update_interval_s: f64,
    ) -> KnownProbe {
        let mut trojan_ports = Box::new([0u64; 2048]);
        for e in ports.entries().iter().filter(|e| e.category == "trojan" || e.category == "backdoor") {
            for proto in &e.protos {
                let base = if *proto == 17 { 1024 } else { 0 };
                for port in e.first..=e.last {
                    trojan_ports[base + usize::from(port / 64)] |= 1 << (port % 64);
                }
            }
        }
        KnownProbe {
            rules: rules.clone(),
            trojan_ports,
            map: Tier::new(cap),
            update_us: (update_interval_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    fn is_trojan_port(&self, proto: u8, port: u16) -> bool {
        let base = if proto == 17 { 1024 } else { 0 };
        self.trojan_ports.get(base + usize::from(port / 64)).is_some_and(|w| w & (1 << (port % 64)) != 0)
    }

    fn packet(&mut self, p: &PacketSummary, sensor: u16, sources: &Sources, cx: &Ctx) {
        let Some(ip) = &p.ip else { return };
        let seen = match &p.l4 {
            L4::Tcp(t) if t.is_syn_ack() && p.owner_is_dst => {
                if self.map.is_empty() {
                    return;
                }
                // A target answering a trojan probe: something listens.
                if let Some(e) = self.map.get_mut(&AddrKey(ip.dst))
                    && let Some(tr) = e.trojans.iter_mut().find(|x| x.proto == 6 && x.port == t.sport)
                {
                    tr.answered += 1;
                }
                return;
            }
            L4::Tcp(t) if t.has(tcpflag::RST) && p.owner_is_dst => {
                // A target refusing a trojan probe: nothing listens.
                if !self.map.is_empty()
                    && let Some(e) = self.map.get_mut(&AddrKey(ip.dst))
                    && let Some(tr) = e.trojans.iter_mut().find(|x| x.proto == 6 && x.port == t.sport)
                {
                    tr.refused += 1;
                }
                return;
            }
            L4::Tcp(t) if p.owner_is_src && t.is_connection_attempt() => {
                Seen::Probe { proto: 6, port: t.dport, sport: t.sport, seq: Some(t.seq) }
            }
            L4::Tcp(t)
                if p.owner_is_src
                    && t.sport == t.dport
                    && t.sport < 1024
                    && t.flags & 0x3f == tcpflag::ACK
                    && p.payload_len == 0 =>
            {
                Seen::SscanAck
            }
            L4::Udp(u) if p.owner_is_src && u.dport < u.sport.max(1024) => {
                Seen::Probe { proto: 17, port: u.dport, sport: u.sport, seq: None }
            }
            _ => return,
        };
        // Only what this detector names earns an entry.
        let trojan = match seen {
            Seen::Probe { proto, port, .. } => {
                self.is_trojan_port(proto, port) && cx.shared.ports.lookup(proto, port).is_some()
            }
            _ => false,
        };
        let proxy_bit = match seen {
            Seen::Probe { proto: 6, port, .. } => PROXY_PORTS.iter().position(|x| *x == port),
            _ => None,
        };
        let sscan_syn = matches!(seen, Seen::Probe { proto: 6, sport: 1..=5, .. });
        let key = AddrKey(ip.src);
        // Port 80 is every web client's: it never creates an entry (one
        // lookup per SYN to 80 would be most of this detector's cost). A
        // proxy hunter's 80 is found in the per-source table when one of
        // the other proxy ports creates the entry.
        let creates = trojan || proxy_bit.is_some_and(|b| b != 0) || sscan_syn || matches!(seen, Seen::SscanAck);
        let known = if creates { self.map.contains(&key) } else { !self.map.is_empty() && self.map.contains(&key) };
        if !known && !creates {
            return;
        }
        if !known {
            let mut fresh = Entry::new(sensor, p.ts_us);
            if proxy_bit.is_some() && sources.may_have_probed(ip.src, 6, 80) {
                fresh.proxy_bits |= 1;
            }
            if !self.map.insert(key, fresh).count(cx.shared.stats.table(Table::KnownProbe), |old| old.probes >= 2) {
                return;
            }
        }
        let (rules, update_us) = (&self.rules, self.update_us);
        let Some(e) = self.map.get_mut(&key) else { return };
        e.sensor = sensor;
        e.last_us = e.last_us.max(p.ts_us);
        e.probes += 1;
        let now = p.ts_us;
        match seen {
            Seen::SscanAck => {
                e.sscan_acks += 1;
                e.sscan_target.get_or_insert(ip.dst);
            }
            Seen::Probe { proto, port, sport, seq } => {
                if sscan_syn {
                    e.sscan_syns += 1;
                    e.sscan_target.get_or_insert(ip.dst);
                }
                if trojan {
                    add_trojan(e, (proto, port, sport, seq), ip.dst, now);
                }
                match proxy_bit {
                    Some(b) => {
                        if now.saturating_sub(e.proxy_start_us) > (rules.proxy_window_s * 1e6) as i64
                            && e.proxy.is_none()
                        {
                            e.proxy_bits = 0;
                            e.other_ports = Distinct256::default();
                            e.proxy_start_us = now;
                        }
                        e.proxy_bits |= 1 << b;
                        e.proxy_target.get_or_insert(ip.dst);
                    }
                    None => {
                        e.other_ports.insert(u64::from(port) | (u64::from(proto) << 16));
                    }
                }
            }
        }
        let ports_lately = sources.distinct_ports(ip.src);
        let busy = sources.probes(ip.src) > u64::from(rules.max_attempts_per_port) * ports_lately.max(1);
        judge(ip.src, e, rules, update_us, (ports_lately, busy), cx, now);
    }

    fn tick(&mut self, cx: &Ctx) {
        let now = cx.now;
        let idle = (self.rules.idle_s * 1e6) as i64;
        if now.saturating_sub(self.last_sweep_us) < sweep_every(idle) {
            return;
        }
        self.last_sweep_us = now;
        let gone = self.map.retain(|key, e| {
            if now.saturating_sub(e.last_us) <= idle {
                return true;
            }
            emit_finals(key.0, e, Some(EndReason::Expired), cx, now);
            false
        });
        cx.shared.stats.table(Table::KnownProbe).expired.fetch_add(gone, Relaxed);
    }

    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        for (key, e) in self.map.iter_mut() {
            emit_finals(key.0, e, Some(reason), cx, cx.now);
        }
        self.map.clear();
    }
}

/// Adds a probe `(proto, port, sport, seq)` to the source's trojan ports.
fn add_trojan(e: &mut Entry, probe: (u8, u16, u16, Option<u32>), dst: IpAddr, now: i64) {
    let (proto, port, sport, seq) = probe;
    let idx = match e.trojans.iter().position(|t| t.proto == proto && t.port == port) {
        Some(i) => i,
        None if e.trojans.len() < NAMES => {
            // No name is stored: events look it up in the port table.
            e.trojans.push(Trojan {
                port,
                proto,
                probes: 0,
                attempts: 0,
                hosts: Distinct256::default(),
                first_target: dst,
                answered: 0,
                refused: 0,
                first_sport: sport,
                last_sport: sport,
                last_seq: None,
                last_target: dst,
                sport_changed: false,
                first_us: now,
                last_us: now,
            });
            e.trojans.len() - 1
        }
        None => return,
    };
    let t = &mut e.trojans[idx];
    // The same source port and sequence number again: the stack
    // retransmitting one attempt (UDP carries no such mark).
    let retransmission =
        seq.is_some() && t.probes > 0 && t.last_sport == sport && t.last_seq == seq && t.last_target == dst;
    t.attempts += u64::from(!retransmission);
    t.last_target = dst;
    t.last_sport = sport;
    t.last_seq = seq;
    t.probes += 1;
    t.hosts.insert(addr_key(dst));
    t.sport_changed |= sport != t.first_sport;
    t.last_us = now;
}

/// Confirms or updates each pattern the entry holds.
/// `lately`: distinct ports the source probed lately (the per-source
/// table: a broad scanner's trojan and proxy ports are `port_scan`'s), and
/// whether it made many attempts per port (a client at work, no proxy hunter).
#[allow(clippy::too_many_arguments)]
fn judge(src: IpAddr, e: &mut Entry, r: &KnownProbeRules, update_us: i64, lately: (u64, bool), cx: &Ctx, now: i64) {
    let (ports_lately, busy) = lately;
    let scanner = ports_lately > u64::from(r.max_scan_ports);
    let probes: u64 = e.trojans.iter().map(|t| t.probes).sum();
    if e.trojan.is_none() && !scanner && !e.trojans.is_empty() && probes >= u64::from(r.min_trojan_probes) {
        e.trojan = Some(Pattern { first_us: e.trojans[0].first_us });
        e.trojan_emit_us = now;
        cx.emit(render_trojan(src, e, "new", None, cx, now));
    } else if e.trojan.is_some()
        && now.saturating_sub(e.trojan_emit_us) >= update_us
        && e.trojans.iter().any(|t| t.last_us == now)
    {
        e.trojan_emit_us = now;
        cx.emit(render_trojan(src, e, "update", None, cx, now));
    }
    let proxies = e.proxy_bits.count_ones();
    let others = e.other_ports.estimate().max(ports_lately.saturating_sub(u64::from(proxies)));
    if e.proxy.is_none() && !busy && proxies >= r.min_proxy_ports && others <= u64::from(r.max_other_ports) {
        e.proxy = Some(Pattern { first_us: e.proxy_start_us });
        cx.emit(render_pattern(src, e, "proxy_hunter", "new", None, cx, now));
    }
    if e.sscan.is_none() && e.sscan_acks + e.sscan_syns >= u64::from(r.min_sscan_probes) && e.sscan_acks > 0 {
        e.sscan = Some(Pattern { first_us: e.first_us });
        cx.emit(render_pattern(src, e, "sscan", "new", None, cx, now));
    }
}

fn emit_finals(src: IpAddr, e: &Entry, end: Option<EndReason>, cx: &Ctx, now: i64) {
    if e.trojan.is_some() {
        cx.emit(render_trojan(src, e, "final", end, cx, now));
    }
    if e.proxy.is_some() {
        cx.emit(render_pattern(src, e, "proxy_hunter", "final", end, cx, now));
    }
    if e.sscan.is_some() {
        cx.emit(render_pattern(src, e, "sscan", "final", end, cx, now));
    }
}

/// A trojan port's name, from the port table (which made it a trojan port).
fn trojan_name<'a>(cx: &'a Ctx, t: &Trojan) -> &'a str {
    cx.shared.ports.lookup(t.proto, t.port).map_or("unknown", |i| i.name.as_str())
}

fn proto_name(proto: u8) -> &'static str {
    if proto == 17 { "udp" } else { "tcp" }
}

/// The source's trojan detection: every trojan or backdoor port it tried.
fn render_trojan(src: IpAddr, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let first = &e.trojans[0];
    let name = trojan_name(cx, first).replace('-', "_");
    let first_us = e.trojan.map_or(first.first_us, |p| p.first_us);
    let id = detection_id(KIND, &[&ip_bytes(&src), b"trojan", &first_us.to_be_bytes()]);
    let note = cx.shared.ports.lookup(first.proto, first.port).map(|i| i.note.clone());
    let sum = |f: fn(&Trojan) -> u64| -> u64 { e.trojans.iter().map(f).sum() };
    let (probes, attempts, answered, refused) =
        (sum(|t| t.probes), sum(|t| t.attempts), sum(|t| t.answered), sum(|t| t.refused));
    let hosts = e.trojans.iter().map(|t| t.hosts.estimate()).max().unwrap_or(1).max(1);
    let one_sport = e.trojans.iter().all(|t| !t.sport_changed && t.first_sport == first.first_sport);
    let crafted = attempts >= 2 && one_sport;
    let last_us = e.trojans.iter().map(|t| t.last_us).max().unwrap_or(first.last_us);
    let ports: Vec<serde_json::Value> = e
        .trojans
        .iter()
        .map(|t| {
            json!({"port": t.port, "proto": proto_name(t.proto), "name": trojan_name(cx, t), "probes": t.probes,
                   "attempts": t.attempts, "answered": t.answered, "refused": t.refused})
        })
        .collect();
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "name": name,
        "port": first.port,
        "proto": proto_name(first.proto),
        "ports": ports,
        "probes": probes,
        "attempts": attempts,
        "retransmissions": probes - attempts,
        "targets": hosts,
        "answered": answered,
        "refused": refused,
        "crafted": crafted,
        "source_port": if crafted { Some(first.first_sport) } else { None },
        "note": note,
        "direction": cx.direction(src, first.first_target),
        "first_seen": rfc3339_us(first_us),
        "last_seen": rfc3339_us(last_us),
        "duration_s": secs(last_us - first_us),
    });
    let open: Vec<String> = e.trojans.iter().filter(|t| t.answered > 0).map(|t| t.port.to_string()).collect();
    let listening = if !open.is_empty() {
        format!("; a target ANSWERED on {}: something listens there, check that host first", open.join(", "))
    } else if e.trojans.iter().all(|t| t.proto == 6 && t.refused > 0) {
        "; refused (RST) each time: nothing listens there".to_string()
    } else {
        "; no target answered (dropped on the way, or nothing there: the wire cannot tell)".to_string()
    };
    let how = if crafted { format!(", all from source port {} (a tool)", first.first_sport) } else { String::new() };
    let whom = if hosts == 1 { first.first_target.to_string() } else { format!("{hosts} hosts") };
    let what = if e.trojans.len() == 1 {
        let kind = category_word(cx, first);
        format!("{}/{} ({}: {kind}'s port)", proto_name(first.proto), first.port, trojan_name(cx, first))
    } else {
        let list: Vec<String> =
            e.trojans.iter().map(|t| format!("{}/{} {}", proto_name(t.proto), t.port, trojan_name(cx, t))).collect();
        format!("{} trojan and backdoor ports ({})", e.trojans.len(), list.join(", "))
    };
    let tries = if probes > attempts {
        format!("{attempts} attempt(s), {} retransmission(s)", probes - attempts)
    } else {
        format!("{attempts} attempt(s)")
    };
    let summary = format!(
        "{src} probed {what} on {whom}, {tries}{how}: a worm, bot or scanner looking for hosts already infected{listening}"
    );
    let flow = Flow { src, dst: first.first_target, proto: first.proto, ports: Some((first.first_sport, first.port)) };
    let fact = if answered > 0 { Fact::TrojanProbeAnswered } else { Fact::TrojanProbe };
    // One port on one host: did it hit a real service (the inventory)?
    let service = (e.trojans.len() == 1 && hosts == 1).then_some((first.proto, first.port));
    EventBuilder::new(KIND, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(src, first.first_target), service, fact))
        .summary(summary)
        .details(KIND, details)
}

/// "a trojan" or "a backdoor", from the port table.
fn category_word(cx: &Ctx, t: &Trojan) -> &'static str {
    match cx.shared.ports.lookup(t.proto, t.port).map(|i| i.category.as_str()) {
        Some("backdoor") => "a backdoor",
        _ => "a trojan",
    }
}

fn render_pattern(
    src: IpAddr,
    e: &Entry,
    name: &str,
    status: &str,
    end: Option<EndReason>,
    cx: &Ctx,
    now: i64,
) -> EventLine {
    let first = match name {
        "proxy_hunter" => e.proxy.map(|p| p.first_us),
        _ => e.sscan.map(|p| p.first_us),
    }
    .unwrap_or(e.first_us);
    let id = detection_id(KIND, &[&ip_bytes(&src), name.as_bytes(), &first.to_be_bytes()]);
    let target = if name == "proxy_hunter" { e.proxy_target } else { e.sscan_target }.unwrap_or(src);
    let ports: Vec<u16> =
        PROXY_PORTS.iter().enumerate().filter(|(i, _)| e.proxy_bits & (1 << i) != 0).map(|(_, p)| *p).collect();
    let (summary, details) = if name == "proxy_hunter" {
        (
            format!(
                "{src} tried the proxy ports {ports:?} of {target} ({} other ports since): a proxy hunter looking for an open relay to hide behind (the Ring0 pattern)",
                e.other_ports.estimate()
            ),
            json!({"ports": ports, "other_ports": e.other_ports.estimate()}),
        )
    } else {
        (
            format!(
                "{src} sent sscan's probes to {target}: {} ACK pings with source port = destination port, {} SYNs from source ports 1-5 (its OS fingerprinting)",
                e.sscan_acks, e.sscan_syns
            ),
            json!({"ack_pings": e.sscan_acks, "low_port_syns": e.sscan_syns}),
        )
    };
    let mut d = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "name": name,
        "targets": 1,
        "direction": cx.direction(src, target),
        "first_seen": rfc3339_us(first),
        "last_seen": rfc3339_us(e.last_us),
    });
    if let (Some(obj), Some(extra)) = (d.as_object_mut(), details.as_object()) {
        obj.extend(extra.clone());
    }
    let flow = Flow { src, dst: target, proto: 6, ports: Some((0, ports.first().copied().unwrap_or(0))) };
    EventBuilder::new(KIND, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(src, target), None, Fact::KnownScannerProbe))
        .summary(summary)
        .details(KIND, d)
}

impl Detector for KnownProbe {
    fn table(&self) -> Table {
        Table::KnownProbe
    }
    fn interest(&self) -> u16 {
        if self.rules.enabled { class::TCP_ATTEMPT | class::TCP_SYN_ACK | class::TCP | class::UDP } else { 0 }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::{tcpflag::*, testutil};
    use crate::detect::testrig::{Rig, s};

    fn rig() -> Rig<KnownProbe> {
        Rig::with(
            |_| {},
            |sh, r| KnownProbe::new(&r.known_probe, &sh.ports, sh.per_worker(r.known_probe.max_tracked), 60.0),
        )
    }

    fn syn(t: f64, src: &str, dst: &str, sport: u16, dport: u16) -> PacketSummary {
        testutil::tcp(s(t), src, dst, (sport, dport), SYN, 7, 0)
    }

    fn names(evs: &[serde_json::Value], status: &str) -> Vec<String> {
        evs.iter()
            .filter(|e| e["known_probe"]["status"] == status)
            .map(|e| e["known_probe"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn trojan_ports_from_the_port_table_are_named_with_crafted_and_answered() {
        let mut r = rig();
        r.feed_owned(syn(0.0, "198.51.100.7", "192.0.2.10", 4000, 31337));
        assert!(r.events().is_empty(), "one stray packet is not enough");
        r.feed_owned(syn(1.0, "198.51.100.7", "192.0.2.20", 4000, 31337));
        // 192.0.2.20 answers: something listens on Back Orifice's port.
        r.feed_owned(testutil::tcp(s(1.01), "192.0.2.20", "198.51.100.7", (31337, 4000), SYN | ACK, 9, 8));
        let evs = r.end();
        assert_eq!(names(&evs, "new"), ["back_orifice"]);
        let d = &evs.last().unwrap()["known_probe"];
        assert_eq!(
            (d["crafted"].as_bool(), d["targets"].as_u64(), d["answered"].as_u64()),
            (Some(true), Some(2), Some(1))
        );
        let summary = evs.last().unwrap()["summary"].as_str().unwrap();
        assert!(summary.contains("ANSWERED on 31337"), "{summary}");
    }

    #[test]
    fn a_worm_trying_several_backdoor_ports_is_one_detection_with_its_retransmissions_and_refusals() {
        // A Windows stack's connect() to Bagle, MyDoom and DameWare ports,
        // each SYN refused and sent again (same source port and sequence).
        let mut r = rig();
        let (w, home) = ("198.51.100.7", "192.0.2.10");
        for (i, port) in [2745u16, 3127, 6129].iter().enumerate() {
            let sport = 1300 + i as u16;
            for k in 0..3 {
                let t = i as f64 * 0.1 + f64::from(k) * 0.5;
                r.feed_owned(testutil::tcp(s(t), w, home, (sport, *port), SYN, 1000 + u32::from(*port), 0));
                let rst = testutil::tcp(s(t + 0.001), home, w, (*port, sport), RST | ACK, 0, 1001 + u32::from(*port));
                r.feed_owned(rst);
            }
        }
        let evs = r.end();
        let finals: Vec<_> = evs.iter().filter(|e| e["known_probe"]["status"] == "final").collect();
        assert_eq!(finals.len(), 1, "one detection per source: {evs:?}");
        let d = &finals[0]["known_probe"];
        assert_eq!((d["probes"].as_u64(), d["attempts"].as_u64()), (Some(9), Some(3)));
        assert_eq!((d["retransmissions"].as_u64(), d["refused"].as_u64()), (Some(6), Some(9)));
        assert_eq!(d["crafted"], false, "a new source port per attempt is a stack, not a tool");
        let ports: Vec<u64> = d["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
        assert_eq!(ports, [2745, 3127, 6129]);
        let summary = finals[0]["summary"].as_str().unwrap();
        assert!(summary.contains("3 trojan and backdoor ports") && summary.contains("refused (RST)"), "{summary}");
    }

    #[test]
    fn a_port_scanner_whose_list_holds_trojan_ports_is_left_to_port_scan() {
        let mut r = rig();
        for port in 1..=40u16 {
            r.feed_owned(syn(0.0, "198.51.100.7", "192.0.2.10", 4000, port));
        }
        for t in [0.1, 1.1] {
            r.feed_owned(syn(t, "198.51.100.7", "192.0.2.10", 4000, 12345));
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn proxy_hunters_and_sscan() {
        let mut r = rig();
        for (i, port) in [80u16, 8080, 3128].iter().enumerate() {
            r.feed_owned(syn(i as f64, "203.0.113.34", "192.0.2.20", 40000 + i as u16, *port));
        }
        for port in [25u16, 80] {
            r.feed_owned(testutil::tcp(s(5.0), "203.0.113.10", "192.0.2.10", (port, port), ACK, 1, 1));
        }
        let evs = r.end();
        let mut got = names(&evs, "final");
        got.sort();
        assert_eq!(got, ["proxy_hunter", "sscan"]);
        // Three proxy ports spread over minutes are not the pattern. (Port
        // 80 comes from the per-source table, which keeps no time: the
        // window starts at the first other proxy port.)
        let mut r = rig();
        for (i, port) in [80u16, 8080, 3128].iter().enumerate() {
            r.feed_owned(syn(i as f64 * 70.0, "203.0.113.34", "192.0.2.20", 40000 + i as u16, *port));
        }
        assert!(r.end().is_empty());
    }
}

#[cfg(test)]
mod rules_tests {
    use super::KnownProbeRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges() {
        let r = KnownProbeRules::parse("x", "[known_probe]\nmin_proxy_ports = 4\n").unwrap();
        assert_eq!((r.min_proxy_ports, r.min_trojan_probes), (4, 2));
        for (bad, key) in
            [("[known_probe]\nmin_proxy_ports = 1\n", "min_proxy_ports"), ("[known_probe]\nidle_s = 0\n", "idle_s")]
        {
            let e = KnownProbeRules::parse("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(2), "{bad}: {e}");
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
    }
}
