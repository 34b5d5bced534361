//! `smurf` and `fraggle`: amplification through directed broadcasts, and the
//! UDP echo/chargen loop (SIGNATURES.md section 4).
//!
//! - A directed broadcast is the all-ones or all-zeros address of a home-net
//!   IPv4 block or of a `broadcast_subnets` entry (blocks of /31 and /32 have
//!   none), or 255.255.255.255. The IPv6 analogue is a multicast destination
//!   (ff00::/8, e.g. ff02::1, all nodes).
//! - `smurf`: ICMP (v4 or v6) echo requests sent to one; `fraggle`: UDP to a
//!   `fraggle_ports` port (7 echo, 19 chargen) sent to one. The victim is the
//!   (forged) source: every host on the subnet answers it. One detection per
//!   victim and kind, confirmed at `min_packets`; the echo replies / UDP
//!   answers that go back to the victim are counted (dispatch hands a reply
//!   to the worker that owns the request: its source, the victim).
//! - The loop: UDP between two `fraggle_ports` ports (7 <-> 19) of two
//!   unicast hosts, both ways, `loop_min_packets` packets. Reported as a
//!   `fraggle` event with `pattern: "echo_chargen_loop"`; the victim is the
//!   source of the first packet (the forged one that started it).
//!
//! State: one entry per (kind, victim) or host pair, capped at `max_tracked`
//! (split between workers); a full table drops unconfirmed entries holding
//! one packet (at most once per second), then refuses new keys, counted.
//! Entries expire after `idle_s` without a request (checked every
//! `SWEEP_US`).

use super::sources::Sources;
use crate::config::ConfigError;
use crate::config::schema::{self, At, MAX_RULE_LIST, RuleValue};
use crate::decode::summary::{L4, PacketSummary};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::fair::{Fair, Weighted, credit_of};
use crate::detect::keys::SWEEP_US;
use crate::detect::keys::{Distinct256, addr_key};
use crate::detect::severity::Fact;
use crate::homenet::HomeNet;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;
use toml::Spanned;

crate::rules_section! {
    /// SIGNATURES.md section 4: ICMP echo (smurf) or UDP echo/chargen (fraggle) to
    /// a directed broadcast with the victim's address forged as the source, and
    /// the UDP 7 <-> 19 echo/chargen loop.
    pub struct SmurfRules["smurf"] {
        /// SIGNATURES.md section 4: report smurf, fraggle and echo/chargen loops
        enabled: bool = true;
        /// SIGNATURES.md section 4: subnets (CIDR strings, e.g. "192.0.2.128/26") whose all-ones/all-zeros addresses are directed broadcasts, besides the home-net blocks and 255.255.255.255
        broadcast_subnets: HomeNet = HomeNet::default();
        /// SIGNATURES.md section 4: UDP echo (7) and chargen (19) to a broadcast is fraggle
        fraggle_ports: Vec<u16> = vec![7, 19], ints(1, 65_535);
        /// SIGNATURES.md section 4: packets from one forged source to broadcasts before it is reported
        min_packets: u32 = 3, ints(1, 1_000_000);
        /// SIGNATURES.md section 4: UDP packets between port 7 and port 19 of two hosts before it is called a loop
        loop_min_packets: u32 = 4, ints(2, 1_000_000);
        /// SIGNATURES.md section 4: an attack ends after this long without a packet
        idle_s: f64 = 60.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 4: cap on victims and host pairs seen again (promoted), across all workers
        max_tracked: usize = 16384, entries();
        /// SIGNATURES.md section 4: cap on victims and host pairs seen once (a spoofed flood lands here, oldest out first), across all workers
        max_probation: usize = 16384, entries();
    }
}

/// `broadcast_subnets`: at most [`MAX_RULE_LIST`] CIDR strings, one per entry.
impl RuleValue for HomeNet {
    type Raw = Vec<Spanned<String>>;
    type Bounds = ();
    fn from_raw(raw: &Spanned<Self::Raw>, _: &(), at: &At) -> Result<HomeNet, ConfigError> {
        if raw.get_ref().len() > MAX_RULE_LIST {
            return Err(at.err(raw.span(), format!("at most {MAX_RULE_LIST} subnets")));
        }
        let mut all = Vec::new();
        for item in raw.get_ref() {
            let cidr = item.get_ref().trim();
            if cidr.is_empty() || cidr.contains(',') {
                return Err(at.err(item.span(), "expected one CIDR per string"));
            }
            HomeNet::parse(cidr).map_err(|e| at.err(item.span(), e))?;
            all.push(cidr.to_string());
        }
        HomeNet::parse(&all.join(",")).map_err(|e| at.err(raw.span(), e))
    }
    fn to_toml(&self) -> String {
        let blocks = self.to_string();
        let quoted: Vec<String> = blocks.split(',').filter(|b| !b.is_empty()).map(schema::quoted).collect();
        format!("[{}]", quoted.join(", "))
    }
    fn describe(_: &()) -> String {
        format!("at most {MAX_RULE_LIST}")
    }
}

/// Broadcast addresses remembered per detection; more are counted.
const AMPS: usize = 16;
/// Destination ports remembered per detection.
const PORTS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Smurf,
    Fraggle,
    Loop,
}

impl Kind {
    fn event(self) -> &'static str {
        match self {
            Kind::Smurf => "smurf",
            Kind::Fraggle | Kind::Loop => "fraggle",
        }
    }
    fn pattern(self) -> &'static str {
        match self {
            Kind::Smurf | Kind::Fraggle => "directed_broadcast",
            Kind::Loop => "echo_chargen_loop",
        }
    }
}

/// (kind, victim, unspecified) or (loop, lower address, higher address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: Kind,
    a: IpAddr,
    b: IpAddr,
}

const NONE: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    victim: IpAddr,
    packets: u64,
    /// Loop: packets sent by the victim (the rest went to it).
    from_victim: u64,
    amps: [Option<IpAddr>; AMPS],
    amps_more: u32,
    ports: [u16; PORTS],
    nports: usize,
    first_sport: u16,
    replies: u64,
    responders: Distinct256,
    confirmed: bool,
    last_emit_us: i64,
}

impl Entry {
    fn new(ts: i64, sensor: u16, victim: IpAddr, sport: u16) -> Entry {
        Entry {
            sensor,
            first_us: ts,
            last_us: ts,
            victim,
            packets: 0,
            from_victim: 0,
            amps: [None; AMPS],
            amps_more: 0,
            ports: [0; PORTS],
            nports: 0,
            first_sport: sport,
            replies: 0,
            responders: Distinct256::default(),
            confirmed: false,
            last_emit_us: ts,
        }
    }

    fn add_amp(&mut self, a: IpAddr) {
        if self.amps.iter().flatten().any(|x| *x == a) {
            return;
        }
        match self.amps.iter_mut().find(|x| x.is_none()) {
            Some(slot) => *slot = Some(a),
            None => self.amps_more = self.amps_more.saturating_add(1),
        }
    }

    fn add_port(&mut self, p: u16) {
        if self.nports < PORTS && !self.ports[..self.nports].contains(&p) {
            self.ports[self.nports] = p;
            self.nports += 1;
        }
    }

    fn pps(&self) -> f64 {
        let d = self.last_us - self.first_us;
        if d <= 0 {
            return self.packets as f64;
        }
        let v = (self.packets.saturating_sub(1)) as f64 / (d as f64 / 1e6);
        (v * 1000.0).round() / 1000.0
    }
}

/// The detector's per-worker state.
pub struct Smurf {
    map: Fair<Key, Entry>,
    enabled: bool,
    /// Sorted IPv4 broadcast addresses with their subnet (network, prefix).
    bcast: Vec<(u32, u32, u8)>,
    ports: Vec<u16>,
    min_packets: u64,
    loop_min: u64,
    idle_us: i64,
    update_us: i64,
    last_sweep_us: i64,
}

/// The all-ones and all-zeros addresses of every block (prefix 1..=30) and
/// 255.255.255.255, sorted, each with its subnet.
fn broadcasts(home: &HomeNet, extra: &HomeNet) -> Vec<(u32, u32, u8)> {
    let mut v = vec![(u32::MAX, u32::MAX, 32u8)];
    for (net, prefix) in home.blocks_v4().chain(extra.blocks_v4()) {
        if !(1..=30).contains(&prefix) {
            continue;
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        v.push((net, net, prefix));
        v.push((net | !mask, net, prefix));
    }
    // The most specific subnet first for each address, then one per address.
    v.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
    v.dedup_by_key(|x| x.0);
    v
}

/// The subnet a broadcast address belongs to, as CIDR text.
fn subnet_of(bcast: &[(u32, u32, u8)], a: IpAddr) -> Option<String> {
    match a {
        IpAddr::V4(v) => {
            let i = bcast.binary_search_by_key(&u32::from(v), |b| b.0).ok()?;
            let (_, net, prefix) = bcast.get(i)?;
            Some(format!("{}/{prefix}", Ipv4Addr::from(*net)))
        }
        IpAddr::V6(_) => None,
    }
}

fn is_multicast_v6(a: &Ipv6Addr) -> bool {
    a.octets()[0] == 0xff
}

impl Smurf {
    pub fn new(rules: &SmurfRules, home: &HomeNet, (cap, probation): (usize, usize), update_interval_s: f64) -> Smurf {
        Smurf {
            map: Fair::new(probation, cap),
            enabled: rules.enabled,
            bcast: broadcasts(home, &rules.broadcast_subnets),
            ports: rules.fraggle_ports.clone(),
            min_packets: u64::from(rules.min_packets),
            loop_min: u64::from(rules.loop_min_packets),
            idle_us: (rules.idle_s * 1e6) as i64,
            update_us: (update_interval_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    #[inline]
    fn is_broadcast(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(v) => self.bcast.binary_search_by_key(&u32::from(v), |b| b.0).is_ok(),
            IpAddr::V6(v) => is_multicast_v6(&v),
        }
    }

    #[inline]
    fn packet(&mut self, p: &PacketSummary, sensor: u16, cx: &Ctx) {
        if !self.enabled {
            return;
        }
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            L4::Icmp(i) if i.is_echo_request() && self.is_broadcast(ip.dst) => {
                let key = Key { kind: Kind::Smurf, a: ip.src, b: NONE };
                self.request(key, p.ts_us, sensor, ip.src, ip.dst, None, 0, cx);
            }
            L4::Icmp(i) if i.is_echo_reply() && !self.map.is_empty() => {
                let key = Key { kind: Kind::Smurf, a: ip.dst, b: NONE };
                if let Some(e) = self.map.get_mut(&key) {
                    e.replies += 1;
                    e.responders.insert(addr_key(ip.src));
                }
            }
            L4::Udp(u) => {
                let to = self.ports.contains(&u.dport);
                let from = self.ports.contains(&u.sport);
                if !to && !from {
                    return;
                }
                if to && self.is_broadcast(ip.dst) {
                    let key = Key { kind: Kind::Fraggle, a: ip.src, b: NONE };
                    self.request(key, p.ts_us, sensor, ip.src, ip.dst, Some(u.dport), u.sport, cx);
                    return;
                }
                if from && !self.map.is_empty() {
                    let key = Key { kind: Kind::Fraggle, a: ip.dst, b: NONE };
                    if let Some(e) = self.map.get_mut(&key) {
                        e.replies += 1;
                        e.responders.insert(addr_key(ip.src));
                        return;
                    }
                }
                if to && from && ip.src != ip.dst {
                    let (a, b) = if ip.src < ip.dst { (ip.src, ip.dst) } else { (ip.dst, ip.src) };
                    let key = Key { kind: Kind::Loop, a, b };
                    self.request(key, p.ts_us, sensor, ip.src, ip.dst, Some(u.dport), u.sport, cx);
                }
            }
            _ => {}
        }
    }

    /// Records a packet to an amplifier (or one leg of a loop).
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        key: Key,
        ts: i64,
        sensor: u16,
        src: IpAddr,
        dst: IpAddr,
        dport: Option<u16>,
        sport: u16,
        cx: &Ctx,
    ) {
        let (min, loop_min, update_us) = (self.min_packets, self.loop_min, self.update_us);
        let table = cx.shared.stats.table(Table::Smurf);
        let Some(e) = self.map.touch(key, table, || Entry::new(ts, sensor, src, sport)) else { return };
        e.sensor = sensor;
        e.packets += 1;
        e.last_us = e.last_us.max(ts);
        if src == e.victim {
            e.from_victim += 1;
            e.add_amp(dst);
        }
        if let Some(port) = dport {
            e.add_port(port);
        }
        if !e.confirmed {
            if ready(key.kind, e, min, loop_min) {
                e.confirmed = true;
                e.last_emit_us = ts;
                cx.emit(render(&self.bcast, &key, e, "new", None, cx, ts));
            }
        } else if ts - e.last_emit_us >= update_us {
            e.last_emit_us = ts;
            cx.emit(render(&self.bcast, &key, e, "update", None, cx, ts));
        }
    }

    fn tick(&mut self, cx: &Ctx) {
        let now = cx.now;
        if now.saturating_sub(self.last_sweep_us) < SWEEP_US {
            return;
        }
        self.last_sweep_us = now;
        let (idle, bcast) = (self.idle_us, &self.bcast);
        let mut expired = 0u64;
        self.map.retain(|key, e| {
            if now.saturating_sub(e.last_us) <= idle {
                return true;
            }
            if e.confirmed {
                cx.emit(render(bcast, key, e, "final", Some(EndReason::Expired), cx, now));
            }
            expired += 1;
            false
        });
        cx.shared.stats.table(Table::Smurf).expired.fetch_add(expired, Relaxed);
    }

    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        let (min, loop_min) = (self.min_packets, self.loop_min);
        // In order of first packet, so a replay writes the same lines in the same order.
        let mut done: Vec<(&Key, &Entry)> =
            self.map.iter().filter(|(k, e)| e.confirmed || ready(k.kind, e, min, loop_min)).collect();
        done.sort_by_key(|(k, e)| (e.first_us, k.kind as u8));
        for (key, e) in done {
            cx.emit(render(&self.bcast, key, e, "final", Some(reason), cx, cx.now));
        }
        self.map.clear();
    }

    #[cfg(test)]
    fn subnet(&self, a: &str) -> Option<String> {
        subnet_of(&self.bcast, a.parse().ok()?)
    }
}

/// Over the threshold: enough packets; a loop also needs both directions.
fn ready(kind: Kind, e: &Entry, min: u64, loop_min: u64) -> bool {
    match kind {
        Kind::Smurf | Kind::Fraggle => e.packets >= min,
        Kind::Loop => e.packets >= loop_min && e.from_victim > 0 && e.from_victim < e.packets,
    }
}

impl Weighted for Entry {
    /// One hand pass per doubling of its packets.
    fn credit(&self) -> u8 {
        credit_of(self.packets)
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
    fn evidence(&self) -> bool {
        self.confirmed || self.packets >= 2
    }
}

impl Detector for Smurf {
    fn table(&self) -> Table {
        Table::Smurf
    }
    fn interest(&self) -> u16 {
        class::UDP | class::ICMP
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

fn render(
    bcast: &[(u32, u32, u8)],
    key: &Key,
    e: &Entry,
    status: &str,
    end: Option<EndReason>,
    cx: &Ctx,
    now: i64,
) -> EventLine {
    let kind = key.kind.event();
    let id = detection_id(
        kind,
        &[key.kind.pattern().as_bytes(), &ip_bytes(&key.a), &ip_bytes(&key.b), &e.first_us.to_be_bytes()],
    );
    let amps: Vec<IpAddr> = e.amps.iter().flatten().copied().collect();
    let subnets: Vec<String> = amps.iter().filter_map(|a| subnet_of(bcast, *a)).collect();
    let ports = &e.ports[..e.nports];
    let services: Vec<Option<&str>> = ports.iter().map(|p| cx.service(17, *p)).collect();
    let dest_port = ports.first().copied();
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "pattern": key.kind.pattern(),
        "victim": e.victim.to_string(),
        "amplifiers": amps.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "amplifiers_more": e.amps_more,
        "subnets": subnets,
        "packets": e.packets,
        "pps": e.pps(),
        "replies": e.replies,
        "responders": e.responders.estimate(),
        "dest_port": dest_port,
        "dest_ports": ports,
        "services": services,
        "direction": amps.first().and_then(|a| cx.direction(e.victim, *a)),
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let dst = amps.first().copied().unwrap_or(if key.a == e.victim { key.b } else { key.a });
    let flow = match key.kind {
        Kind::Smurf if e.victim.is_ipv6() => Flow { src: e.victim, dst, proto: 58, ports: Some((128, 0)) },
        Kind::Smurf => Flow { src: e.victim, dst, proto: 1, ports: Some((8, 0)) },
        Kind::Fraggle | Kind::Loop => {
            Flow { src: e.victim, dst, proto: 17, ports: Some((e.first_sport, dest_port.unwrap_or(0))) }
        }
    };
    EventBuilder::new(kind, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(e.victim, None, Fact::Smurf))
        .summary(summary(key.kind, e, &amps, &subnets, ports, cx))
        .details(kind, details)
}

fn port_text(ports: &[u16], cx: &Ctx) -> String {
    ports
        .iter()
        .map(|p| match cx.service(17, *p) {
            Some(s) => format!("{p} ({s})"),
            None => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// One sentence an analyst can act on.
fn summary(kind: Kind, e: &Entry, amps: &[IpAddr], subnets: &[String], ports: &[u16], cx: &Ctx) -> String {
    let amp_text = {
        let list = amps.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
        let nets = if subnets.is_empty() { String::new() } else { format!(" (broadcast of {})", subnets.join(", ")) };
        let more = if e.amps_more > 0 { format!(" and {} more", e.amps_more) } else { String::new() };
        format!("{list}{nets}{more}")
    };
    let replies = if e.replies > 0 {
        format!("; {} answers from about {} hosts went back to it", e.replies, e.responders.estimate())
    } else {
        String::new()
    };
    let odd_source = match e.victim {
        IpAddr::V6(v) if is_multicast_v6(&v) => {
            "; the source is itself a multicast address, so every answer goes to all nodes (rsmurf6 style)"
        }
        _ => "",
    };
    match kind {
        Kind::Smurf => format!(
            "{} is the victim of a smurf attack: {} ICMP echo requests forged with its address were sent to {amp_text} at {} pps, so every host there answers it{replies}{odd_source}; stop forwarding directed broadcasts and drop echo requests to broadcast addresses at the border",
            e.victim,
            e.packets,
            e.pps()
        ),
        Kind::Fraggle => format!(
            "{} is the victim of a fraggle attack: {} UDP packets to port {} forged with its address were sent to {amp_text} at {} pps{replies}{odd_source}; stop forwarding directed broadcasts and block UDP echo/chargen at the border",
            e.victim,
            e.packets,
            port_text(ports, cx),
            e.pps()
        ),
        Kind::Loop => format!(
            "UDP echo/chargen loop between {} and {}: {} packets between ports {} ({} from {}, {} back), started by a packet that claimed to come from {}; the two services will bounce traffic until one is stopped: disable echo/chargen or block UDP 7 and 19",
            e.victim,
            amps.first().map(|a| a.to_string()).unwrap_or_default(),
            e.packets,
            port_text(ports, cx),
            e.from_victim,
            e.victim,
            e.packets - e.from_victim,
            e.victim
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Rules;

    use crate::decode::summary::{IcmpInfo, UdpInfo};

    use serde_json::Value;

    const VICTIM: &str = "198.51.100.50";
    const BCAST: &str = "192.0.2.191";

    use crate::detect::testrig::s;

    type Rig = crate::detect::testrig::Rig<Smurf>;

    fn rig(tweak: impl FnOnce(&mut Rules)) -> Rig {
        Rig::with(
            |rules| {
                rules.smurf.broadcast_subnets = crate::homenet::HomeNet::parse("192.0.2.128/26").expect("subnet");
                tweak(rules)
            },
            |sh, r| {
                Smurf::new(
                    &r.smurf,
                    &sh.home,
                    (r.smurf.max_tracked, r.smurf.max_probation),
                    r.general.update_interval_s,
                )
            },
        )
    }

    fn echo(t: f64, src: &str, dst: &str, reply: bool) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), 42, 42);
        let src_ip: IpAddr = src.parse().unwrap();
        let v6 = src_ip.is_ipv6();
        if v6 {
            let mut ip = crate::decode::summary::testutil::ipv4("0.0.0.0", "0.0.0.0", 58);
            ip.src = src_ip;
            ip.dst = dst.parse().unwrap();
            p.ip = Some(ip);
        } else {
            p.ip = Some(crate::decode::summary::testutil::ipv4(src, dst, 1));
        }
        let icmp_type = match (v6, reply) {
            (false, false) => 8,
            (false, true) => 0,
            (true, false) => 128,
            (true, true) => 129,
        };
        p.l4 = L4::Icmp(IcmpInfo { v6, icmp_type, code: 0, echo: Some((1, 1)), quoted: None });
        p
    }

    fn udp(t: f64, src: &str, dst: &str, sport: u16, dport: u16) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), 42, 42);
        p.ip = Some(crate::decode::summary::testutil::ipv4(src, dst, 17));
        p.l4 = L4::Udp(UdpInfo { sport, dport });
        p
    }

    #[test]
    fn broadcast_set_covers_home_blocks_extra_subnets_and_all_ones() {
        let r = rig(|_| {});
        for a in ["192.0.2.0", "192.0.2.255", "192.0.2.128", "192.0.2.191", "255.255.255.255"] {
            assert!(r.det.is_broadcast(a.parse().unwrap()), "{a}");
        }
        for a in ["192.0.2.10", "192.0.2.190", "10.0.0.255", "2001:db8:d::1"] {
            assert!(!r.det.is_broadcast(a.parse().unwrap()), "{a}");
        }
        assert!(r.det.is_broadcast("ff02::1".parse().unwrap()));
        assert_eq!(r.det.subnet("192.0.2.191").as_deref(), Some("192.0.2.128/26"));
        assert_eq!(r.det.subnet("192.0.2.255").as_deref(), Some("192.0.2.0/24"));
        // Without the extra subnet, .191 of a /24 is an ordinary host.
        let r = rig(|rules| rules.smurf.broadcast_subnets = HomeNet::default());
        assert!(!r.det.is_broadcast(BCAST.parse().unwrap()));
    }

    #[test]
    fn smurf_fires_once_per_victim_and_counts_replies() {
        let mut r = rig(|_| {});
        for i in 0..5 {
            let t = f64::from(i);
            r.feed(echo(t, VICTIM, BCAST, false));
            r.feed(echo(t + 0.001, "192.0.2.130", VICTIM, true));
            r.feed(echo(t + 0.001, "192.0.2.140", VICTIM, true));
        }
        r.feed(echo(5.0, "198.51.100.7", "192.0.2.10", false)); // ordinary ping
        let live = r.events();
        assert_eq!(live.len(), 1, "{live:?}");
        let fin = r.end();
        assert_eq!(fin.len(), 1);
        let d = &fin[0]["smurf"];
        assert_eq!(fin[0]["event_type"], "smurf");
        assert_eq!(d["id"], live[0]["smurf"]["id"]);
        assert_eq!(d["victim"], VICTIM);
        assert_eq!(d["amplifiers"], json!([BCAST]));
        assert_eq!(d["subnets"], json!(["192.0.2.128/26"]));
        assert_eq!(d["packets"], 5);
        assert_eq!(d["pps"], 1.0);
        assert_eq!(d["replies"], 10);
        assert_eq!(d["responders"], 2);
        assert_eq!(d["dest_port"], Value::Null);
        assert_eq!(fin[0]["src_ip"], VICTIM);
        assert_eq!(fin[0]["dest_ip"], BCAST);
    }

    #[test]
    fn fraggle_to_echo_and_chargen_is_one_event_per_victim() {
        let mut r = rig(|_| {});
        for i in 0..5u16 {
            r.feed(udp(f64::from(i), VICTIM, BCAST, 2854 + i, 7));
            r.feed(udp(f64::from(i) + 0.001, "192.0.2.130", VICTIM, 7, 2854 + i));
        }
        for i in 0..5u16 {
            r.feed(udp(10.0 + f64::from(i), VICTIM, BCAST, 2634 + i, 19));
        }
        let ev = r.end();
        let fin: Vec<_> = ev.iter().filter(|e| e["fraggle"]["status"] == "final").collect();
        assert_eq!(fin.len(), 1, "{ev:?}");
        let d = &fin[0]["fraggle"];
        assert_eq!(d["pattern"], "directed_broadcast");
        assert_eq!(d["packets"], 10);
        assert_eq!(d["dest_ports"], json!([7, 19]));
        assert_eq!(d["dest_port"], 7);
        assert_eq!(d["replies"], 5);
        // No loop was reported for the answers from port 7.
        assert!(ev.iter().all(|e| e["fraggle"]["pattern"] != "echo_chargen_loop"));
    }

    #[test]
    fn below_threshold_unicast_and_other_ports_do_not_fire() {
        let mut r = rig(|_| {});
        r.feed(echo(0.0, VICTIM, BCAST, false));
        r.feed(echo(1.0, VICTIM, BCAST, false));
        for i in 0..10u16 {
            r.feed(udp(f64::from(i), VICTIM, "192.0.2.10", 3000 + i, 19)); // unicast chargen
            r.feed(udp(f64::from(i), VICTIM, BCAST, 3000 + i, 53)); // not echo/chargen
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn echo_chargen_loop_needs_both_directions() {
        let mut r = rig(|_| {});
        let (a, b) = ("192.0.2.10", "192.0.2.20");
        r.feed(udp(0.0, a, b, 7, 19));
        for i in 1..6 {
            r.feed(udp(f64::from(i) * 0.01, b, a, 19, 7));
            r.feed(udp(f64::from(i) * 0.01 + 0.001, a, b, 7, 19));
        }
        let ev = r.end();
        let ev: Vec<_> = ev.into_iter().filter(|e| e["fraggle"]["status"] == "final").collect();
        assert_eq!(ev.len(), 1, "{ev:?}");
        let d = &ev[0]["fraggle"];
        assert_eq!(d["pattern"], "echo_chargen_loop");
        assert_eq!(d["victim"], a);
        assert_eq!(d["amplifiers"], json!([b]));
        assert_eq!(d["packets"], 11);
        // One way only is not a loop.
        let mut r = rig(|_| {});
        for i in 0..10 {
            r.feed(udp(f64::from(i), a, b, 7, 19));
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn ipv6_echo_to_multicast_is_a_smurf() {
        let mut r = rig(|_| {});
        for i in 0..4 {
            r.feed(echo(f64::from(i) * 0.001, "ff02::1", "ff02::1", false));
        }
        let ev = r.end();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[1]["smurf"]["status"], "final");
        assert_eq!(ev[1]["smurf"]["packets"], 4);
        assert_eq!(ev[0]["proto"], "IPv6-ICMP");
        assert!(ev[0]["summary"].as_str().unwrap().contains("multicast"));
    }

    #[test]
    fn expiry_and_fair_caps() {
        let mut r = rig(|rules| {
            rules.smurf.max_tracked = 2;
            rules.smurf.max_probation = 2;
        });
        for i in 0..3 {
            r.feed(echo(f64::from(i), VICTIM, BCAST, false));
        }
        // Forged one-off victims churn probation and leave the detection alone.
        for i in 0..50 {
            r.feed(echo(3.0, &format!("203.0.113.{i}"), "192.0.2.255", false));
        }
        let st = r.shared.stats.clone();
        let t = st.table(Table::Smurf);
        // (A forged victim the memory of evicted keys takes for a repeat, a
        // rare false positive, goes to the tier instead.)
        assert!((45..=48).contains(&t.evicted.load(Relaxed)), "{}", t.evicted.load(Relaxed));
        assert_eq!(t.lost_detections.load(Relaxed), 0);
        assert_eq!(r.det.map.sizes().0, 2);
        // Victims seen twice fill the tier but never take the confirmed one.
        for i in 0..20 {
            let v = format!("198.51.100.{i}");
            r.feed(echo(4.0, &v, "192.0.2.255", false));
            r.feed(echo(4.0, &v, "192.0.2.255", false));
        }
        assert!(t.lost_detections.load(Relaxed) >= 18, "{}", t.lost_detections.load(Relaxed));
        assert!(r.det.map.get(&Key { kind: Kind::Smurf, a: VICTIM.parse().unwrap(), b: NONE }).is_some());
        r.tick(200.0);
        let ev = r.events();
        assert_eq!(ev.last().unwrap()["smurf"]["end_reason"], "expired");
        assert!(r.det.map.is_empty());
    }
}

/// The rules section's own checks (the loader's are in `crate::rules`).
#[cfg(test)]
mod rules_tests {
    use super::SmurfRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_reads_subnets_and_ports() {
        let text = "[smurf]\nbroadcast_subnets = [\"192.0.2.128/26\", \"10.1.2.0/25\"]\nfraggle_ports = [7, 19, 7]\n";
        let sm = SmurfRules::parse("x", text).unwrap();
        assert_eq!(sm.broadcast_subnets.len(), 2);
        assert!(sm.broadcast_subnets.contains("192.0.2.191".parse().unwrap()));
        assert_eq!(sm.fraggle_ports, vec![7, 19], "duplicates dropped");
        use crate::config::schema::Described;
        let dumped: Vec<_> = sm.keys().into_iter().map(|k| (k.name, k.value)).collect();
        assert!(dumped.contains(&("broadcast_subnets", "[\"192.0.2.128/26\", \"10.1.2.0/25\"]".into())), "{dumped:?}");
        assert!(dumped.contains(&("fraggle_ports", "[7, 19]".into())), "{dumped:?}");
        let many = format!("[smurf]\nfraggle_ports = [{}]\n", vec!["7"; 257].join(","));
        for (bad, line, key) in [
            ("[smurf]\nbroadcast_subnets = [\"192.0.2.300/26\"]\n", 2, "broadcast_subnets"),
            ("[smurf]\n\nbroadcast_subnets = [\"a,b\"]\n", 3, "broadcast_subnets"),
            ("[smurf]\nbroadcast_subnets = [\"\"]\n", 2, "broadcast_subnets"),
            ("[smurf]\nfraggle_ports = [7, 70000]\n", 2, "fraggle_ports"),
            (many.as_str(), 2, "fraggle_ports"),
            ("[smurf]\nmin_packets = 0\n", 2, "min_packets"),
            ("[smurf]\nloop_min_packets = 1\n", 2, "loop_min_packets"),
        ] {
            let e = SmurfRules::parse("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
    }
}
