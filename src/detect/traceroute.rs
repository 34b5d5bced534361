//! `traceroute`: probes from one tracer to one target whose TTL climbs
//! (SIGNATURES.md section 3), one detection per (tracer, target, method).
//!
//! - `udp`: UNIX traceroute, datagrams to ports `udp_port_min..=udp_port_max`
//!   (33434 upward, +1 per probe, 3 probes per hop).
//! - `icmp`: Windows tracert and `traceroute -I`, echo requests.
//! - `tcp`: tcptraceroute / `traceroute -T`, SYNs to one port.
//!
//! A probe is a packet that arrives with a low TTL (at most `max_probe_ttl`):
//! probes reach the sensor with TTL 1, 2, 3... while ordinary traffic arrives
//! with 64, 128 or 255 minus a few hops, so everything else returns after one
//! compare. The trace is confirmed when `min_probes` probes carry at least
//! `min_ttls` distinct TTLs and the TTL mostly rises (modern traceroute sends
//! probes in parallel, so the order is not strict: at most one drop per two
//! rises). A constant TTL never fires.
//!
//! Answers are tied to the probes they quote (dispatch sends an ICMP error to
//! the worker that owns the quoted packet): ICMP time exceeded names a router
//! on the path (`routers`); a port unreachable from the target, an echo reply
//! or a SYN-ACK/RST from the target means the trace reached it.
//!
//! State: one entry per (tracer, target, method[, TCP port]), in two fair
//! tiers (`detect::fair`): a key's first probe lives in probation (at most
//! `max_probation`, oldest out first), its second promotes it (at most
//! `max_tracked`, a weighted clock picks the victim; a confirmed trace is
//! never taken). Caps are split between workers; what is pushed out is
//! counted, and a key with two probes or more as a lost detection. Entries expire after `idle_s` without a probe (checked every
//! `SWEEP_US` of packet time).

use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::fair::{Fair, Weighted, credit_of};
use crate::detect::keys::SWEEP_US;
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

crate::rules_section! {
    /// SIGNATURES.md section 3: probes from one tracer to one target whose TTL
    /// climbs (UDP to 33434+, ICMP echo, TCP SYN), tied to the time-exceeded and
    /// unreachable answers that quote them.
    pub struct TracerouteRules["traceroute"] check(check_traceroute) {
        /// SIGNATURES.md section 3: report traceroutes in and out of the home net
        enabled: bool = true;
        /// SIGNATURES.md section 3: probes are seen with TTL 1, 2, 3...; packets arriving with a higher TTL are ordinary traffic
        max_probe_ttl: u8 = 30, ints(2, 64);
        /// SIGNATURES.md section 3: TTL 1, 1, 1, 2, 2, 2, 3...: at least this many distinct rising TTLs
        min_ttls: u32 = 3, ints(2, 64);
        /// SIGNATURES.md section 3: 3 probes per hop; at least this many probes
        min_probes: u32 = 4, ints(2, 1000);
        /// SIGNATURES.md section 3: UNIX traceroute's first UDP port
        udp_port_min: u16 = 33434, ints(1, 65_535);
        /// SIGNATURES.md section 3: a sequential "scan" inside 33434-33600 is traceroute; >= udp_port_min
        udp_port_max: u16 = 33600, ints(1, 65_535);
        /// SIGNATURES.md section 3: a trace ends after this long without a probe (Windows tracert waits 4 s per silent hop)
        idle_s: f64 = 60.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 3: cap on (tracer, target, method) entries with two probes or more (promoted), across all workers
        max_tracked: usize = 16384, entries();
        /// SIGNATURES.md section 3: cap on (tracer, target, method) entries with one probe (oldest out first), across all workers
        max_probation: usize = 16384, entries();
    }
}

fn check_traceroute(r: &TracerouteRules, s: &Spans) -> Result<(), ConfigError> {
    if r.udp_port_min > r.udp_port_max {
        return Err(s.out_of_order(
            "udp_port_max",
            "udp_port_min",
            format!("udp_port_min ({}) must not exceed udp_port_max ({})", r.udp_port_min, r.udp_port_max),
        ));
    }
    Ok(())
}

const KIND: &str = "traceroute";
/// Routers remembered per trace; more are counted.
const ROUTERS: usize = 16;
/// UNIX traceroute's first destination port (SIGNATURES.md section 3).
const UDP_BASE: u16 = 33434;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Method {
    Udp,
    Icmp,
    Tcp,
}

impl Method {
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        match self {
            Method::Udp => "udp",
            Method::Icmp => "icmp",
            Method::Tcp => "tcp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    tracer: IpAddr,
    target: IpAddr,
    method: Method,
    /// The destination port for TCP; 0 otherwise.
    port: u16,
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    probes: u32,
    ttl_min: u8,
    ttl_max: u8,
    /// Bit `ttl - 1` set for every TTL seen (TTLs are at most 64).
    ttls: u64,
    last_ttl: u8,
    /// TTL steps up and down between consecutive probes.
    ups: u32,
    downs: u32,
    first_sport: u16,
    port_min: u16,
    port_max: u16,
    /// ICMP echo identifier of the first probe.
    echo_id: u16,
    v6: bool,
    time_exceeded: u32,
    /// Unreachables quoting a probe, from anyone.
    unreachable: u32,
    /// Answers from the target itself (port unreachable, echo reply, SYN-ACK, RST).
    target_answers: u32,
    routers: [Option<IpAddr>; ROUTERS],
    routers_more: u32,
    confirmed: bool,
    last_emit_us: i64,
}

impl Entry {
    fn new(ts: i64, sensor: u16, ttl: u8, sport: u16, dport: u16, echo_id: u16, v6: bool) -> Entry {
        Entry {
            sensor,
            first_us: ts,
            last_us: ts,
            probes: 0,
            ttl_min: ttl,
            ttl_max: ttl,
            ttls: 0,
            last_ttl: ttl,
            ups: 0,
            downs: 0,
            first_sport: sport,
            port_min: dport,
            port_max: dport,
            echo_id,
            v6,
            time_exceeded: 0,
            unreachable: 0,
            target_answers: 0,
            routers: [None; ROUTERS],
            routers_more: 0,
            confirmed: false,
            last_emit_us: ts,
        }
    }

    fn add_probe(&mut self, ts: i64, ttl: u8, dport: u16) {
        if self.probes > 0 {
            if ttl > self.last_ttl {
                self.ups += 1;
            } else if ttl < self.last_ttl {
                self.downs += 1;
            }
        }
        self.probes = self.probes.saturating_add(1);
        self.last_ttl = ttl;
        self.last_us = self.last_us.max(ts);
        self.ttl_min = self.ttl_min.min(ttl);
        self.ttl_max = self.ttl_max.max(ttl);
        if (1..=64).contains(&ttl) {
            self.ttls |= 1 << (ttl - 1);
        }
        self.port_min = self.port_min.min(dport);
        self.port_max = self.port_max.max(dport);
    }

    fn distinct_ttls(&self) -> u32 {
        self.ttls.count_ones()
    }

    /// Enough probes, enough distinct TTLs, and the TTL mostly rising.
    fn is_trace(&self, lim: &Limits) -> bool {
        self.probes >= lim.min_probes
            && self.distinct_ttls() >= lim.min_ttls
            && self.ups + 1 >= lim.min_ttls
            && self.downs * 2 <= self.ups
    }

    fn add_router(&mut self, a: IpAddr) {
        if self.routers.iter().flatten().any(|r| *r == a) {
            return;
        }
        match self.routers.iter_mut().find(|r| r.is_none()) {
            Some(slot) => *slot = Some(a),
            None => self.routers_more = self.routers_more.saturating_add(1),
        }
    }

    fn router_list(&self) -> Vec<String> {
        self.routers.iter().flatten().map(|a| a.to_string()).collect()
    }
}

#[derive(Clone, Copy)]
struct Limits {
    max_ttl: u8,
    min_ttls: u32,
    min_probes: u32,
    port_min: u16,
    port_max: u16,
    idle_us: i64,
}

/// The detector's per-worker state.
pub struct Traceroute {
    map: Fair<Key, Entry>,
    /// Entries per method (at least: keys pushed out for room are
    /// subtracted at the next sweep), so answers of a kind nobody traces
    /// (every SYN-ACK, every echo reply) skip the hash lookup.
    per_method: [usize; 3],
    enabled: bool,
    lim: Limits,
    update_us: i64,
    last_sweep_us: i64,
}

impl Traceroute {
    pub fn new(rules: &TracerouteRules, (cap, probation): (usize, usize), update_interval_s: f64) -> Traceroute {
        Traceroute {
            map: Fair::new(probation, cap),
            per_method: [0; 3],
            enabled: rules.enabled,
            lim: Limits {
                max_ttl: rules.max_probe_ttl,
                min_ttls: rules.min_ttls,
                min_probes: rules.min_probes,
                port_min: rules.udp_port_min,
                port_max: rules.udp_port_max,
                idle_us: (rules.idle_s * 1e6) as i64,
            },
            update_us: (update_interval_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    #[inline]
    fn packet(&mut self, p: &PacketSummary, sensor: u16, cx: &Ctx) {
        if !self.enabled {
            return;
        }
        let Some(ip) = &p.ip else { return };
        let low = ip.ttl <= self.lim.max_ttl;
        match &p.l4 {
            L4::Udp(u) if low && (self.lim.port_min..=self.lim.port_max).contains(&u.dport) => {
                let key = Key { tracer: ip.src, target: ip.dst, method: Method::Udp, port: 0 };
                self.probe(key, p.ts_us, sensor, ip.ttl, (u.sport, u.dport), 0, cx);
            }
            L4::Icmp(i) if low && i.is_echo_request() => {
                let key = Key { tracer: ip.src, target: ip.dst, method: Method::Icmp, port: 0 };
                let id = i.echo.map(|(id, _)| id).unwrap_or(0);
                self.probe(key, p.ts_us, sensor, ip.ttl, (0, 0), id, cx);
            }
            L4::Tcp(t) if low && t.is_connection_attempt() => {
                let key = Key { tracer: ip.src, target: ip.dst, method: Method::Tcp, port: t.dport };
                self.probe(key, p.ts_us, sensor, ip.ttl, (t.sport, t.dport), 0, cx);
            }
            _ if self.map.is_empty() => {}
            L4::Icmp(i) if i.is_time_exceeded() || i.is_unreachable() => {
                let Some(q) = &i.quoted else { return };
                let (method, port) = match q.proto {
                    17 if q.has_ports && (self.lim.port_min..=self.lim.port_max).contains(&q.dport) => (Method::Udp, 0),
                    1 | 58 if q.icmp_type.is_some_and(|t| t == 8 || t == 128) => (Method::Icmp, 0),
                    6 if q.has_ports => (Method::Tcp, q.dport),
                    _ => return,
                };
                let key = Key { tracer: q.src, target: q.dst, method, port };
                let Some(e) = self.map.get_mut(&key) else { return };
                if method == Method::Icmp && q.has_ports && q.sport != e.echo_id {
                    return; // another program's echo (quoted sport = echo identifier)
                }
                if i.is_time_exceeded() {
                    e.time_exceeded = e.time_exceeded.saturating_add(1);
                    e.add_router(ip.src);
                } else {
                    e.unreachable = e.unreachable.saturating_add(1);
                    if ip.src == key.target {
                        e.target_answers = e.target_answers.saturating_add(1);
                    }
                }
            }
            L4::Icmp(i) if i.is_echo_reply() && self.per_method[Method::Icmp.index()] > 0 => {
                let key = Key { tracer: ip.dst, target: ip.src, method: Method::Icmp, port: 0 };
                if let Some(e) = self.map.get_mut(&key)
                    && i.echo.is_some_and(|(id, _)| id == e.echo_id)
                {
                    e.target_answers = e.target_answers.saturating_add(1);
                }
            }
            L4::Tcp(t) if (t.is_syn_ack() || t.has(tcpflag::RST)) && self.per_method[Method::Tcp.index()] > 0 => {
                let key = Key { tracer: ip.dst, target: ip.src, method: Method::Tcp, port: t.sport };
                if let Some(e) = self.map.get_mut(&key) {
                    e.target_answers = e.target_answers.saturating_add(1);
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn probe(&mut self, key: Key, ts: i64, sensor: u16, ttl: u8, ports: (u16, u16), echo_id: u16, cx: &Ctx) {
        if !self.map.contains(&key) {
            self.per_method[key.method.index()] += 1;
        }
        let (lim, update_us) = (self.lim, self.update_us);
        let table = cx.shared.stats.table(Table::Traceroute);
        let make = || Entry::new(ts, sensor, ttl, ports.0, ports.1, echo_id, key.tracer.is_ipv6());
        let Some(e) = self.map.touch(key, table, make) else { return };
        e.sensor = sensor;
        e.add_probe(ts, ttl, ports.1);
        if !e.confirmed {
            if e.is_trace(&lim) {
                e.confirmed = true;
                e.last_emit_us = ts;
                cx.emit(render(&key, e, "new", None, cx, ts));
            }
        } else if ts - e.last_emit_us >= update_us {
            e.last_emit_us = ts;
            cx.emit(render(&key, e, "update", None, cx, ts));
        }
    }

    fn tick(&mut self, cx: &Ctx) {
        let now = cx.now;
        if now.saturating_sub(self.last_sweep_us) < SWEEP_US {
            return;
        }
        self.last_sweep_us = now;
        let idle = self.lim.idle_us;
        let mut expired = 0u64;
        self.map.retain(|key, e| {
            if now.saturating_sub(e.last_us) <= idle {
                return true;
            }
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(EndReason::Expired), cx, now));
            }
            expired += 1;
            false
        });
        self.recount();
        cx.shared.stats.table(Table::Traceroute).expired.fetch_add(expired, Relaxed);
    }

    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        let lim = self.lim;
        // In order of first probe, so a replay writes the same lines in the same order.
        let mut done: Vec<(&Key, &Entry)> = self.map.iter().filter(|(_, e)| e.confirmed || e.is_trace(&lim)).collect();
        done.sort_by_key(|(k, e)| (e.first_us, k.method.index()));
        for (key, e) in done {
            cx.emit(render(key, e, "final", Some(reason), cx, cx.now));
        }
        self.map.clear();
        self.per_method = [0; 3];
    }

    fn recount(&mut self) {
        self.per_method = [0; 3];
        for (k, _) in self.map.iter() {
            self.per_method[k.method.index()] += 1;
        }
    }
}

impl Weighted for Entry {
    /// One hand pass per doubling of its probes.
    fn credit(&self) -> u8 {
        credit_of(u64::from(self.probes))
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
    fn evidence(&self) -> bool {
        self.confirmed || self.probes >= 2
    }
}

impl Detector for Traceroute {
    fn table(&self) -> Table {
        Table::Traceroute
    }
    fn interest(&self) -> u16 {
        class::TCP_ATTEMPT | class::TCP_SYN_ACK | class::TCP_RST | class::UDP | class::ICMP
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, _sources: &Sources, cx: &Ctx) {
        self.packet(p, sensor, cx);
    }
    fn on_tick(&mut self, _sources: &Sources, cx: &Ctx) {
        self.tick(cx);
    }
    fn flush(&mut self, reason: EndReason, _sources: &Sources, cx: &Ctx) {
        self.end(reason, cx);
    }
}

fn render(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let id = detection_id(
        KIND,
        &[
            &ip_bytes(&key.tracer),
            &ip_bytes(&key.target),
            key.method.name().as_bytes(),
            &key.port.to_be_bytes(),
            &e.first_us.to_be_bytes(),
        ],
    );
    let direction = cx.direction(key.tracer, key.target);
    let routers = e.router_list();
    let reached = e.target_answers > 0;
    // SIGNATURES.md section 3: UNIX traceroute spends 3 ports per hop from
    // 33434, so the first port seen here tells how far away the tracer is.
    let hops_before =
        (key.method == Method::Udp && e.ttl_min == 1 && e.port_min >= UDP_BASE).then(|| (e.port_min - UDP_BASE) / 3);
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "method": key.method.name(),
        "direction": direction,
        "probes": e.probes,
        "ttl_min": e.ttl_min,
        "ttl_max": e.ttl_max,
        "distinct_ttls": e.distinct_ttls(),
        "ports": (key.method == Method::Udp).then(|| json!({"min": e.port_min, "max": e.port_max})),
        "dest_port": (key.method == Method::Tcp).then_some(key.port),
        "hops_before_sensor": hops_before,
        "reached_target": reached,
        "target_answers": e.target_answers,
        "time_exceeded": e.time_exceeded,
        "unreachable": e.unreachable,
        "routers": routers,
        "routers_more": e.routers_more,
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let (proto, ports) = match key.method {
        Method::Udp => (17, Some((e.first_sport, e.port_min))),
        Method::Tcp => (6, Some((e.first_sport, key.port))),
        Method::Icmp if e.v6 => (58, Some((128, 0))),
        Method::Icmp => (1, Some((8, 0))),
    };
    let flow = Flow { src: key.tracer, dst: key.target, proto, ports };
    EventBuilder::new(KIND, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(key.tracer, key.target), None, Fact::Traceroute))
        .summary(summary(key, e, direction, &routers, &cx.shared.home))
        .details(KIND, details)
}

/// One sentence an analyst can act on.
fn summary(
    key: &Key,
    e: &Entry,
    direction: Option<&str>,
    routers: &[String],
    home: &crate::homenet::HomeNet,
) -> String {
    let how = match key.method {
        Method::Udp => format!("a UDP traceroute (ports {}..{})", e.port_min, e.port_max),
        Method::Icmp => "an ICMP traceroute (echo requests, as Windows tracert or traceroute -I)".to_string(),
        Method::Tcp => format!("a TCP traceroute (SYNs to port {})", key.port),
    };
    let who = match direction {
        Some("inbound") => " (someone outside is mapping the path into the home net)",
        Some("outbound") => " (a host inside is tracing a path out)",
        _ => "",
    };
    let reached = if e.target_answers > 0 {
        format!("; it reached the target ({} answers from it)", e.target_answers)
    } else {
        "; the target never answered".to_string()
    };
    let routers = if routers.is_empty() {
        String::new()
    } else {
        let more = if e.routers_more > 0 { format!(" and {} more", e.routers_more) } else { String::new() };
        let inside = e.routers.iter().flatten().filter(|a| home.contains(**a)).count();
        let leak = if inside > 0 && direction == Some("inbound") {
            format!(" ({inside} of them home addresses answering outward: the trace maps your edge)")
        } else {
            String::new()
        };
        format!("; time exceeded came from {}{more}{leak}", routers.join(", "))
    };
    format!(
        "{} ran {how} toward {}{who}: {} probes with TTL rising {}..{} as seen here{reached}{routers}",
        key.tracer, key.target, e.probes, e.ttl_min, e.ttl_max
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Rules;

    use crate::decode::summary::{IcmpInfo, Quoted, UdpInfo};

    use serde_json::Value;

    const TRACER: &str = "203.0.113.34";
    const TARGET: &str = "192.0.2.10";
    const ROUTER: &str = "192.0.2.250";

    use crate::detect::testrig::s;

    type Rig = crate::detect::testrig::Rig<Traceroute>;

    fn rig(tweak: impl FnOnce(&mut Rules)) -> Rig {
        Rig::with(tweak, |_, r| {
            Traceroute::new(
                &r.traceroute,
                (r.traceroute.max_tracked, r.traceroute.max_probation),
                r.general.update_interval_s,
            )
        })
    }

    fn udp(t: f64, src: &str, dst: &str, sport: u16, dport: u16, ttl: u8) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), 74, 74);
        let mut ip = crate::decode::summary::testutil::ipv4(src, dst, 17);
        ip.ttl = ttl;
        p.ip = Some(ip);
        p.l4 = L4::Udp(UdpInfo { sport, dport });
        p
    }

    fn echo(t: f64, src: &str, dst: &str, reply: bool, id: u16, ttl: u8) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), 74, 74);
        let mut ip = crate::decode::summary::testutil::ipv4(src, dst, 1);
        ip.ttl = ttl;
        p.ip = Some(ip);
        let icmp_type = if reply { 0 } else { 8 };
        p.l4 = L4::Icmp(IcmpInfo { v6: false, icmp_type, code: 0, echo: Some((id, 1)), quoted: None });
        p
    }

    fn icmp_err(t: f64, from: &str, icmp_type: u8, code: u8, q: Quoted) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), 102, 102);
        p.ip = Some(crate::decode::summary::testutil::ipv4(from, &q.src.to_string(), 1));
        p.l4 = L4::Icmp(IcmpInfo { v6: false, icmp_type, code, echo: None, quoted: Some(q) });
        p
    }

    fn quoted_udp(sport: u16, dport: u16) -> Quoted {
        Quoted {
            src: TRACER.parse().unwrap(),
            dst: TARGET.parse().unwrap(),
            proto: 17,
            ttl: 1,
            ip_id: 1,
            sport,
            dport,
            has_ports: true,
            tcp_seq: None,
            icmp_type: None,
        }
    }

    #[test]
    fn udp_traceroute_with_answers_fires_once() {
        let mut r = rig(|_| {});
        // Parallel probes: TTL 1,1,1,2,2,2,3 to 33443.. as in the lab capture.
        for (n, ttl) in [1u8, 1, 1, 2, 2, 2, 3].iter().enumerate() {
            let t = n as f64 * 0.001;
            let (sport, dport) = (40000 + n as u16, 33443 + n as u16);
            r.feed(udp(t, TRACER, TARGET, sport, dport, *ttl));
            if *ttl == 1 {
                r.feed(icmp_err(t + 0.0001, ROUTER, 11, 0, quoted_udp(sport, dport)));
            } else {
                r.feed(icmp_err(t + 0.0001, TARGET, 3, 3, quoted_udp(sport, dport)));
            }
        }
        let live = r.events();
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0]["traceroute"]["status"], "new");
        let fin = r.end();
        assert_eq!(fin.len(), 1);
        let d = &fin[0]["traceroute"];
        assert_eq!(d["status"], "final");
        assert_eq!(d["id"], live[0]["traceroute"]["id"]);
        assert_eq!(d["method"], "udp");
        assert_eq!(d["direction"], "inbound");
        assert_eq!(d["probes"], 7);
        assert_eq!((d["ttl_min"].as_u64(), d["ttl_max"].as_u64()), (Some(1), Some(3)));
        assert_eq!(d["ports"]["min"], 33443);
        assert_eq!(d["ports"]["max"], 33449);
        assert_eq!(d["hops_before_sensor"], 3);
        assert_eq!(d["reached_target"], true);
        assert_eq!(d["target_answers"], 4);
        assert_eq!(d["time_exceeded"], 3);
        assert_eq!(d["routers"], json!([ROUTER]));
        assert_eq!(fin[0]["proto"], "UDP");
    }

    #[test]
    fn ipv6_udp_trace_with_icmpv6_time_exceeded() {
        let mut r = rig(|_| {});
        let (tracer, target, router) = ("2001:db8:5::34", "2001:db8:d::10", "2001:db8:d:ff::2");
        for (n, ttl) in [1u8, 1, 1, 2, 2, 2, 3, 3].iter().enumerate() {
            let mut p = udp(n as f64 * 0.01, "0.0.0.0", "0.0.0.0", 40000, 33434 + n as u16, *ttl);
            if let Some(ip) = &mut p.ip {
                ip.src = tracer.parse().unwrap();
                ip.dst = target.parse().unwrap();
            }
            r.feed(p);
            if *ttl == 1 {
                let mut q = quoted_udp(40000, 33434 + n as u16);
                q.src = tracer.parse().unwrap();
                q.dst = target.parse().unwrap();
                let mut e = icmp_err(n as f64 * 0.01, "0.0.0.0", 3, 0, q);
                if let Some(ip) = &mut e.ip {
                    ip.src = router.parse().unwrap();
                    ip.dst = tracer.parse().unwrap();
                }
                if let L4::Icmp(i) = &mut e.l4 {
                    i.v6 = true;
                }
                r.feed(e);
            }
        }
        let ev = r.end();
        let fin: Vec<_> = ev.iter().filter(|e| e["traceroute"]["status"] == "final").collect();
        assert_eq!(fin.len(), 1, "{ev:?}");
        let d = &fin[0]["traceroute"];
        assert_eq!(d["probes"], 8);
        assert_eq!(d["time_exceeded"], 3);
        assert_eq!(d["routers"], json!([router]));
        assert_eq!(d["direction"], "inbound", "2001:db8:d::/48 is in the rig's home net");
    }

    #[test]
    fn constant_ttl_and_high_ttl_never_fire() {
        let mut r = rig(|_| {});
        for i in 0..20u16 {
            // DNS-like UDP and pings with a constant low TTL, then rising but high TTLs.
            r.feed(udp(f64::from(i), TRACER, TARGET, 5000 + i, 33434 + i, 12));
            r.feed(echo(f64::from(i), TRACER, TARGET, false, 7, 5));
            r.feed(echo(f64::from(i), "198.51.100.9", TARGET, false, 7, 40 + i as u8));
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn udp_outside_the_traceroute_ports_is_not_a_probe() {
        let mut r = rig(|_| {});
        for (n, ttl) in [1u8, 2, 3, 4, 5, 6].iter().enumerate() {
            r.feed(udp(n as f64, TRACER, TARGET, 40000, 53, *ttl));
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn icmp_trace_counts_echo_replies_and_mostly_rising_order_is_enough() {
        let mut r = rig(|_| {});
        // Sequential (Windows) then a second round (mtr-like cycling): still one trace.
        let mut t = 0.0;
        for round in 0..2 {
            for ttl in 1..=6u8 {
                for _ in 0..3 {
                    t += 0.5;
                    r.feed(echo(t, TRACER, TARGET, false, 512, ttl));
                }
                if ttl == 6 && round == 1 {
                    r.feed(echo(t + 0.01, TARGET, TRACER, true, 512, 61));
                    r.feed(echo(t + 0.01, TARGET, TRACER, true, 999, 61)); // someone else's ping
                }
            }
        }
        let ev = r.end();
        let fin: Vec<_> = ev.iter().filter(|e| e["traceroute"]["status"] == "final").collect();
        assert_eq!(fin.len(), 1, "{ev:?}");
        let d = &fin[0]["traceroute"];
        assert_eq!(d["method"], "icmp");
        assert_eq!(d["probes"], 36);
        assert_eq!(d["reached_target"], true);
        assert_eq!(d["target_answers"], 1);
        assert_eq!(d["ports"], Value::Null);
    }

    #[test]
    fn random_ttls_are_not_a_trace() {
        let mut r = rig(|_| {});
        let ttls = [9u8, 3, 17, 2, 25, 4, 11, 1, 20, 6, 14, 3];
        for (n, ttl) in ttls.iter().enumerate() {
            r.feed(echo(n as f64, TRACER, TARGET, false, 1, *ttl));
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn tcp_trace_is_keyed_by_port_and_tied_to_syn_acks() {
        let mut r = rig(|_| {});
        for (n, ttl) in [1u8, 1, 1, 2, 2, 2, 3, 3, 3].iter().enumerate() {
            let t = n as f64 * 0.01;
            let mut p =
                crate::decode::summary::testutil::tcp(s(t), TRACER, TARGET, (40000 + n as u16, 80), tcpflag::SYN, 1, 0);
            if let Some(ip) = &mut p.ip {
                ip.ttl = *ttl;
            }
            r.feed(p);
            if *ttl > 1 {
                let sa = tcpflag::SYN | tcpflag::ACK;
                r.feed(crate::decode::summary::testutil::tcp(s(t), TARGET, TRACER, (80, 40000 + n as u16), sa, 5, 2));
            }
        }
        let ev = r.end();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[1]["traceroute"]["status"], "final");
        let d = &ev[1]["traceroute"];
        assert_eq!(d["method"], "tcp");
        assert_eq!(d["dest_port"], 80);
        assert_eq!(d["target_answers"], 6);
        assert_eq!(ev[0]["dest_port"], 80);
    }

    #[test]
    fn expiry_ends_the_trace_and_a_full_table_is_counted() {
        let mut r = rig(|rules| {
            rules.traceroute.max_tracked = 2;
            rules.traceroute.max_probation = 2;
        });
        for (n, ttl) in [1u8, 2, 3, 4].iter().enumerate() {
            r.feed(echo(n as f64, TRACER, TARGET, false, 1, *ttl));
        }
        // One probe each: probation churns, the trace stays.
        for i in 0..10u8 {
            r.feed(echo(5.0, &format!("198.51.100.{i}"), TARGET, false, 1, 3));
        }
        let st = r.shared.stats.clone();
        let t = st.table(Table::Traceroute);
        // (Rarely the memory of evicted keys takes one for a repeat.)
        assert!((6..=8).contains(&t.evicted.load(Relaxed)), "{}", t.evicted.load(Relaxed));
        assert_eq!(t.lost_detections.load(Relaxed), 0);
        // Two probes each: they fill the tier around the confirmed trace, and
        // those pushed out are lost detections.
        for i in 20..30u8 {
            r.feed(echo(6.0, &format!("198.51.100.{i}"), TARGET, false, 1, 3));
            r.feed(echo(6.5, &format!("198.51.100.{i}"), TARGET, false, 1, 4));
        }
        assert!(t.lost_detections.load(Relaxed) >= 8, "{}", t.lost_detections.load(Relaxed));
        assert_eq!(r.det.map.sizes().1, 2);
        r.tick(100.0);
        let ev = r.events();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[1]["traceroute"]["end_reason"], "expired");
        assert!(r.det.map.is_empty());
    }
}

/// The rules section's own checks (the loader's are in `crate::rules`).
#[cfg(test)]
mod rules_tests {
    use super::TracerouteRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges_and_order() {
        let r = TracerouteRules::parse("x", "[traceroute]\nmax_probe_ttl = 20\n").unwrap();
        assert_eq!((r.max_probe_ttl, r.min_ttls), (20, 3));
        for (bad, line, key) in [
            ("[traceroute]\nmax_probe_ttl = 65\n", 2, "max_probe_ttl"),
            ("[traceroute]\nudp_port_min = 40000\nudp_port_max = 33600\n", 3, "udp_port_max"),
            ("[traceroute]\nudp_port_min = 40000\n", 2, "udp_port_min"),
            ("[traceroute]\nmin_tls = 3\n", 2, "min_tls"),
            ("[traceroute]\nidle_s = 0\n", 2, "idle_s"),
        ] {
            let e = TracerouteRules::parse("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
    }
}
