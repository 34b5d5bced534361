//! `anomaly`: packets that should not exist on the outside of a firewall
//! (SIGNATURES.md section 7), one detection per (kind, source) with counts:
//!
//! - `port_zero`: TCP or UDP to or from port 0 (OS fingerprinting);
//! - `bogon_source`: a source in `bogon_sources` (RFC 1918, loopback,
//!   link-local, 0.0.0.0/8, broadcast, multicast...) arriving for the home
//!   net from outside it: forged, or a leak (link-local with TTL 255 is
//!   the sensor's own link talking, e.g. IPv6 neighbour discovery); a
//!   home host whose own address is private is reached over a private
//!   network, where only never-a-source addresses (0/8, loopback,
//!   multicast, 240/4) are claimed;
//! - `source_route`: IPv4 loose or strict source routing (LSRR, SSRR);
//! - `land`: a TCP or UDP packet whose source address is its destination
//!   (the old LAND DoS);
//! - `syn_fin`: SYN and FIN together (no stack sends it; scanners and
//!   fingerprinting do);
//! - `icmp_redirect`, `icmp_param_problem`, `icmp_source_quench`,
//!   `router_advertisement`: ICMP that only a router next to the host
//!   should send, arriving from outside;
//! - `backscatter`: SYN-ACKs, and RSTs answering a SYN, arriving for a home
//!   host that never sent the SYN they answer, though the sensor sees that
//!   host's own packets (the dispatcher's `dst_spoke`): someone forged the
//!   home address (a decoy in another's scan, or the source of a spoofed
//!   flood). One detection per home host, from `backscatter_min_flows`
//!   distinct unsolicited exchanges. Without the return path on the wire
//!   nothing is claimed: an inbound-only tap cannot tell an answer to a
//!   SYN it never saw from a forged one. ICMP errors are left out: they
//!   also quote the host's own data segments (a vanished client, path MTU),
//!   which are not tracked here.
//! - `tiny_fragment`: a first IP fragment too short to hold the transport
//!   header (RFC 1858; `nmap -f`, `fragroute`), so a filter matching ports
//!   or flags on single packets sees none;
//! - `fragment_overlap`: fragments of one datagram overlapping with a
//!   different extent or different bytes (RFC 1858, RFC 5722: the
//!   Teardrop / Ptacek-Newsham evasions), so the sensor and the target may
//!   reassemble different data. Both come from the reassembler
//!   (`decode::defrag`), as `PacketSummary::frag` bits.
//!
//! Each kind's summary says what it means and how worried to be. State: one
//! entry per (kind, source), except `bogon_source`, per destination /24 or
//! /64 (a spoofed flood from random addresses is one detection, not
//! thousands), in a fair tier (more packets outlive fewer; a
//! confirmed detection is kept), so a flood of one kind from spoofed
//! sources cannot push out the others.

use super::fair::{Tier, Weighted};
use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, frag, ipopt, tcpflag};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::keys::{Distinct1024, addr_key, mix, sweep_every};
use crate::detect::severity::Fact;
use crate::homenet::HomeNet;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// The usual bogons: addresses that never source Internet traffic.
pub fn default_bogons() -> HomeNet {
    HomeNet::parse(
        "0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,127.0.0.0/8,169.254.0.0/16,172.16.0.0/12,192.168.0.0/16,\
         224.0.0.0/4,240.0.0.0/4,::/128,::1/128,fc00::/7,fe80::/10,ff00::/8",
    )
    .unwrap_or_default()
}

/// Addresses no host sends from on any network: "this network" (0/8 and
/// ::), loopback, multicast and the reserved 240/4.
fn never_a_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[0] == 0 || a.is_loopback() || a.octets()[0] >= 224,
        IpAddr::V6(a) => a.is_unspecified() || a.is_loopback() || a.is_multicast(),
    }
}

crate::rules_section! {
    /// SIGNATURES.md section 7: packets that should not exist outside a firewall.
    pub struct AnomalyRules["anomaly"] check(check_anomaly) {
        /// SIGNATURES.md section 7: port 0, bogon sources, source routing, land, SYN+FIN, ICMP a router should not get from outside, tiny and overlapping IP fragments
        enabled: bool = true;
        /// SIGNATURES.md section 7: 0.0.0.0, broadcast and private or link-local sources (10/8, 172.16/12, 192.168/16, 169.254/16, 127/8) on the outside; sources inside the home net are never bogons
        bogon_sources: HomeNet = default_bogons();
        /// SIGNATURES.md section 7: packets of one kind from one source that make a detection
        min_packets: u32 = 1, ints(1, 1000);
        /// SIGNATURES.md section 7: a kind silent this long from a source has ended
        idle_s: f64 = 600.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 7: distinct unsolicited answers (SYN-ACKs, RSTs to SYNs, from distinct peers or ports) to one home host that make a backscatter detection; one or two are a SYN the sensor missed
        backscatter_min_flows: u32 = 5, ints(2, 10_000);
        /// SIGNATURES.md section 7: (kind, source) entries across all workers
        max_tracked: usize = 16384, entries();
    }
}

fn check_anomaly(_r: &AnomalyRules, _s: &Spans) -> Result<(), ConfigError> {
    Ok(())
}

const KIND: &str = "anomaly";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    PortZero,
    BogonSource,
    SourceRoute,
    Land,
    SynFin,
    IcmpRedirect,
    IcmpParamProblem,
    IcmpSourceQuench,
    RouterAdvertisement,
    Backscatter,
    TinyFragment,
    FragmentOverlap,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PortZero => "port_zero",
            Kind::BogonSource => "bogon_source",
            Kind::SourceRoute => "source_route",
            Kind::Land => "land",
            Kind::SynFin => "syn_fin",
            Kind::IcmpRedirect => "icmp_redirect",
            Kind::IcmpParamProblem => "icmp_param_problem",
            Kind::IcmpSourceQuench => "icmp_source_quench",
            Kind::RouterAdvertisement => "router_advertisement",
            Kind::Backscatter => "backscatter",
            Kind::TinyFragment => "tiny_fragment",
            Kind::FragmentOverlap => "fragment_overlap",
        }
    }

    /// What it means, and how worried to be (the summary's second half).
    fn meaning(self) -> &'static str {
        match self {
            Kind::PortZero => {
                "port 0 is reserved and carries no service: OS fingerprinting or a crafted probe (low worry alone, reconnaissance)"
            }
            Kind::BogonSource => {
                "this address never sources Internet traffic: forged (a spoofed flood or a decoy) or leaked by a misrouted network; the edge should drop it (medium worry)"
            }
            Kind::SourceRoute => {
                "the sender dictates the path, which can slip past filters that trust the route; nothing legitimate needs it today (high worry)"
            }
            Kind::Land => {
                "source equals destination: the LAND attack that hung old stacks answering themselves (medium worry; forged, unless a sweep included the sender's own address)"
            }
            Kind::SynFin => {
                "SYN and FIN together never come from a real stack: a scanner or fingerprinting probe slipping past filters that match SYN alone (medium worry)"
            }
            Kind::IcmpRedirect => {
                "a redirect tells a host to route through someone else; from outside it is an attempt to reroute traffic (high worry)"
            }
            Kind::IcmpParamProblem => {
                "a parameter problem from outside is rarely genuine: most often a probe or an attack on the stack (medium worry)"
            }
            Kind::IcmpSourceQuench => {
                "source quench is deprecated (RFC 6633); from outside it is a way to slow connections down (medium worry)"
            }
            Kind::RouterAdvertisement => {
                "a router advertisement offers a default route; from outside it is a rogue router (high worry)"
            }
            Kind::TinyFragment => {
                "the first fragment is too short to hold the transport header, so a filter that judges single packets sees no ports or flags; no stack fragments like this, scanners do to slip past filters (nmap -f, fragroute; RFC 1858) (medium worry)"
            }
            Kind::FragmentOverlap => {
                "fragments of one datagram overlap with different extents or bytes, so the sensor and the target may reassemble different data: an evasion (RFC 1858, Ptacek-Newsham) or an attack on the reassembler (Teardrop); the sensor kept the first bytes it received (medium worry)"
            }
            Kind::Backscatter => {
                "the host never sent the SYNs these answer, though the sensor sees its own traffic: someone forged its address, as a decoy in a scan of others or as the source of a spoofed flood against the hosts answering; nothing attacks this host itself, but its address is being abused and the targets may blame it (medium worry)"
            }
        }
    }

    /// SIGNATURES.md section 9: the row of `[lethality]` that scores it.
    fn fact(self) -> Fact {
        match self {
            Kind::SourceRoute | Kind::IcmpRedirect | Kind::RouterAdvertisement => Fact::AnomalySteering,
            Kind::PortZero => Fact::PortZero,
            _ => Fact::Anomaly,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: Kind,
    src: IpAddr,
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    packets: u64,
    targets: Distinct1024,
    /// `bogon_source` (keyed by destination): the sources seen.
    sources: Distinct1024,
    first_src: IpAddr,
    first_dst: IpAddr,
    first_ports: Option<(u16, u16)>,
    proto: u8,
    first_us: i64,
    last_us: i64,
    confirmed: bool,
    /// `backscatter`: SYN-ACKs and RSTs counted.
    syn_acks: u32,
    resets: u32,
}

impl Weighted for Entry {
    fn credit(&self) -> u8 {
        (64 - self.packets.leading_zeros()).saturating_sub(1).min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
}

/// The detector's per-worker state.
pub struct Anomaly {
    rules: AnomalyRules,
    map: Tier<Key, Entry>,
    last_sweep_us: i64,
    sent: SentProbes,
}

/// The connection openings (TCP without ACK: SYN, FIN, NULL, Xmas) home
/// hosts sent lately, as a two-generation bit filter of flow hashes:
/// remembered 60 to 120 s of packet time, long past any SYN-ACK
/// retransmission. The dispatcher gives such a packet and its answers to
/// the home host's worker, so both meet here. A collision hides an
/// unsolicited answer (never invents one).
struct SentProbes {
    gens: [Box<[u64]>; 2],
    cur: usize,
    rotated_us: i64,
}

impl SentProbes {
    const WORDS: usize = 1 << 12;
    const GENERATION_US: i64 = 60_000_000;

    fn new() -> SentProbes {
        let g = || vec![0u64; Self::WORDS].into_boxed_slice();
        SentProbes { gens: [g(), g()], cur: 0, rotated_us: i64::MIN }
    }

    #[inline]
    fn slot(home: IpAddr, peer: IpAddr, hport: u16, pport: u16) -> (usize, u64) {
        let h = mix(addr_key(home) ^ addr_key(peer).rotate_left(32) ^ (u64::from(hport) << 16 | u64::from(pport)));
        (((h >> 6) as usize) & (Self::WORDS - 1), 1u64 << (h & 63))
    }

    fn rotate(&mut self, now: i64) {
        if self.rotated_us == i64::MIN {
            self.rotated_us = now;
        } else if now.saturating_sub(self.rotated_us) >= Self::GENERATION_US {
            // After two generations of silence both are stale.
            if now.saturating_sub(self.rotated_us) >= 2 * Self::GENERATION_US {
                self.gens.iter_mut().for_each(|g| g.fill(0));
            }
            self.rotated_us = now;
            self.cur ^= 1;
            if let Some(g) = self.gens.get_mut(self.cur) {
                g.fill(0);
            }
        }
    }

    fn insert(&mut self, home: IpAddr, peer: IpAddr, hport: u16, pport: u16) {
        let (w, b) = Self::slot(home, peer, hport, pport);
        if let Some(x) = self.gens.get_mut(self.cur).and_then(|g| g.get_mut(w)) {
            *x |= b;
        }
    }

    fn contains(&self, home: IpAddr, peer: IpAddr, hport: u16, pport: u16) -> bool {
        let (w, b) = Self::slot(home, peer, hport, pport);
        self.gens.iter().any(|g| g.get(w).is_some_and(|x| x & b != 0))
    }
}

impl Anomaly {
    pub fn new(rules: &AnomalyRules, cap: usize) -> Anomaly {
        Anomaly { rules: rules.clone(), map: Tier::new(cap), last_sweep_us: i64::MIN, sent: SentProbes::new() }
    }

    /// `backscatter`: remembers what home hosts open, and tells whether an
    /// inbound SYN-ACK or RST answers nothing they sent. Only a packet
    /// owned by the home host (the dispatcher's rule for openings and
    /// their answers) is looked at.
    #[inline]
    fn unsolicited(&mut self, p: &PacketSummary, home: &HomeNet) -> bool {
        let (Some(ip), L4::Tcp(t)) = (&p.ip, &p.l4) else { return false };
        if home.is_empty() {
            return false;
        }
        self.sent.rotate(p.ts_us);
        if p.owner_is_src && !t.has(tcpflag::ACK) && !t.has(tcpflag::RST) && home.contains(ip.src) {
            self.sent.insert(ip.src, ip.dst, t.sport, t.dport);
            return false;
        }
        // A SYN-ACK, or the RST a stack sends to a SYN (RST+ACK, seq 0).
        let answer = t.is_syn_ack() || (t.has(tcpflag::RST) && t.has(tcpflag::ACK) && t.seq == 0);
        // `dst_spoke` is set only on packets from outside to a home host:
        // the dispatcher has already tested both addresses.
        answer && p.owner_is_dst && p.dst_spoke && !self.sent.contains(ip.dst, ip.src, t.dport, t.sport)
    }

    /// The anomalies of one packet (at most a few), as a bit set over kinds.
    fn kinds(&self, p: &PacketSummary, home: &HomeNet, backscatter: bool) -> [Option<Kind>; 6] {
        let mut out = [None; 6];
        let Some(ip) = &p.ip else { return out };
        let mut n = 0;
        let mut push = |k: Kind| {
            if let Some(slot) = out.get_mut(n) {
                *slot = Some(k);
                n += 1;
            }
        };
        // Segments of established connections (ACK set, most packets)
        // can carry only some kinds: skip the address tests for them.
        let starts = match &p.l4 {
            L4::Tcp(t) => !t.has(tcpflag::ACK),
            _ => true,
        };
        if backscatter {
            push(Kind::Backscatter);
        }
        if p.frag & frag::TINY != 0 {
            push(Kind::TinyFragment);
        }
        if p.frag & frag::OVERLAP != 0 {
            push(Kind::FragmentOverlap);
        }
        if !starts && ip.options == 0 && ip.src != ip.dst {
            return out;
        }
        let outside = !home.is_empty() && !home.contains(ip.src);
        let inbound = outside && home.contains(ip.dst);
        // Link-local sources talk on the link the sensor is on (IPv6
        // neighbour discovery between the edge and the firewall): not
        // bogons unless they were routed, which their TTL of 255 denies.
        let on_link = match ip.src {
            IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80 && ip.ttl == 255,
            IpAddr::V4(a) => a.is_link_local() && ip.ttl == 255,
        };
        // A home host with a private address is reached over a private
        // network (a lab, a LAN, a DMZ behind NAT): private sources there
        // are ordinary, and only addresses that never source a packet on
        // any wire are claimed.
        let bogon = self.rules.bogon_sources.contains(ip.src)
            && (never_a_source(ip.src) || !self.rules.bogon_sources.contains(ip.dst));
        if inbound && starts && !on_link && bogon {
            push(Kind::BogonSource);
        }
        if ip.options & (ipopt::LSRR | ipopt::SSRR) != 0 {
            push(Kind::SourceRoute);
        }
        // LAND: a TCP or UDP packet to its own source (a host pinging its
        // own address, or a forged multicast source, is something else).
        if ip.src == ip.dst
            && matches!(p.l4, L4::Tcp(_) | L4::Udp(_))
            && !(ip.src.is_loopback() || ip.src.is_multicast() || ip.src.is_unspecified())
        {
            push(Kind::Land);
        }
        match &p.l4 {
            L4::Tcp(t) => {
                if (t.sport == 0 || t.dport == 0) && !t.has(tcpflag::RST) {
                    push(Kind::PortZero);
                }
                if t.has(tcpflag::SYN) && t.has(tcpflag::FIN) {
                    push(Kind::SynFin);
                }
            }
            L4::Udp(u) if u.sport == 0 || u.dport == 0 => push(Kind::PortZero),
            L4::Icmp(i) if inbound || (home.is_empty() && !i.v6) => match (i.v6, i.icmp_type) {
                (false, 5) | (true, 137) => push(Kind::IcmpRedirect),
                (false, 12) | (true, 4) => push(Kind::IcmpParamProblem),
                (false, 4) => push(Kind::IcmpSourceQuench),
                (false, 9) | (true, 134) => push(Kind::RouterAdvertisement),
                _ => {}
            },
            _ => {}
        }
        out
    }

    fn packet(&mut self, p: &PacketSummary, sensor: u16, cx: &Ctx) {
        let Some(ip) = &p.ip else { return };
        // Every packet reaches one worker only, so each is counted once.
        let backscatter = self.unsolicited(p, &cx.shared.home);
        for kind in self.kinds(p, &cx.shared.home, backscatter).into_iter().flatten() {
            // A bogon source is forged or leaked, one packet per address in
            // a spoofed flood: keyed by the destination's /24 (/64), so a
            // flood is one detection (with its counts of sources and
            // targets), not thousands. Backscatter is keyed by the home
            // host whose address was forged.
            let key = match kind {
                Kind::BogonSource => Key { kind, src: block_of(ip.dst) },
                Kind::Backscatter => Key { kind, src: ip.dst },
                _ => Key { kind, src: ip.src },
            };
            let ports = match &p.l4 {
                L4::Tcp(t) => Some((t.sport, t.dport)),
                L4::Udp(u) => Some((u.sport, u.dport)),
                _ => None,
            };
            if !self.map.contains(&key) {
                let e = Entry {
                    sensor,
                    packets: 0,
                    targets: Distinct1024::default(),
                    sources: Distinct1024::default(),
                    first_src: ip.src,
                    first_dst: ip.dst,
                    first_ports: ports,
                    proto: ip.proto,
                    first_us: p.ts_us,
                    last_us: p.ts_us,
                    confirmed: false,
                    syn_acks: 0,
                    resets: 0,
                };
                let st = cx.shared.stats.table(Table::Anomaly);
                if !self.map.insert(key, e).count(st, |old| old.packets >= 2) {
                    continue;
                }
            }
            let min = u64::from(self.rules.min_packets);
            let Some(e) = self.map.get_mut(&key) else { continue };
            e.packets += 1;
            e.sensor = sensor;
            e.last_us = e.last_us.max(p.ts_us);
            e.sources.insert(mix(addr_key(ip.src)));
            let enough = if let (Kind::Backscatter, L4::Tcp(t)) = (kind, &p.l4) {
                // Distinct exchanges: a SYN-ACK's retransmissions are one.
                e.targets
                    .insert(mix(addr_key(ip.src).rotate_left(32) ^ (u64::from(t.sport) << 16 | u64::from(t.dport))));
                if t.is_syn_ack() {
                    e.syn_acks = e.syn_acks.saturating_add(1);
                } else {
                    e.resets = e.resets.saturating_add(1);
                }
                e.targets.estimate() >= u64::from(self.rules.backscatter_min_flows)
            } else {
                e.targets.insert(mix(addr_key(ip.dst)));
                e.packets >= min
            };
            if !e.confirmed && enough {
                e.confirmed = true;
                cx.emit(render(&key, e, "new", None, cx, p.ts_us));
            }
        }
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
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(EndReason::Expired), cx, now));
            }
            false
        });
        cx.shared.stats.table(Table::Anomaly).expired.fetch_add(gone, Relaxed);
    }

    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        for (key, e) in self.map.iter_mut() {
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(reason), cx, cx.now));
            }
        }
        self.map.clear();
    }
}

/// The /24 (IPv4) or /64 (IPv6) holding `a`.
fn block_of(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v) & 0xffff_ff00)),
        IpAddr::V6(v) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v) & !((1u128 << 64) - 1))),
    }
}

fn render(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let id = detection_id(KIND, &[&ip_bytes(&key.src), key.kind.name().as_bytes(), &e.first_us.to_be_bytes()]);
    let by_dst = key.kind == Kind::BogonSource;
    // A sketch's estimate, never more than the packets or (for a /24 key)
    // the block's 256 addresses.
    let block = if by_dst && key.src.is_ipv4() { 256 } else { u64::MAX };
    let backscatter = key.kind == Kind::Backscatter;
    // Backscatter's `targets` sketch counts exchanges; its target is the one
    // forged home host.
    let flows = e.targets.estimate().clamp(1, e.packets);
    let targets = if backscatter { 1 } else { e.targets.estimate().clamp(1, e.packets.min(block)) };
    let sources = e.sources.estimate().clamp(1, e.packets);
    let mut details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "kind": key.kind.name(),
        "packets": e.packets,
        "targets": targets,
        "sources": sources,
        "direction": cx.direction(e.first_src, e.first_dst),
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    if backscatter {
        details["flows"] = json!(flows);
        details["answers"] = json!({"syn_ack": e.syn_acks, "rst": e.resets});
        details["return_path_seen"] = json!(true);
    }
    let whom = if targets == 1 { e.first_dst.to_string() } else { format!("{targets} hosts") };
    // A full sketch only says "more than it can count".
    let over = if e.sources.zeros() == 0 { "over " } else { "" };
    let from = if by_dst && sources > 1 {
        format!("{over}{sources} sources in bogon ranges (first {})", e.first_src)
    } else {
        e.first_src.to_string()
    };
    let summary = if backscatter {
        let peers = if sources == 1 { from.clone() } else { format!("{sources} hosts (first {from})") };
        format!(
            "backscatter: {} unsolicited answer(s) to {} ({} SYN-ACK, {} RST) in {flows} exchange(s) from {peers}: {}",
            e.packets,
            key.src,
            e.syn_acks,
            e.resets,
            key.kind.meaning()
        )
    } else {
        // The fragment kinds are counted per datagram (the reassembler marks it).
        let unit = match key.kind {
            Kind::TinyFragment | Kind::FragmentOverlap => "fragmented datagram(s)",
            _ => "packet(s)",
        };
        format!("{}: {} {unit} from {from} to {whom}: {}", key.kind.name(), e.packets, key.kind.meaning())
    };
    let flow = Flow { src: e.first_src, dst: e.first_dst, proto: e.proto, ports: e.first_ports.or(Some((0, 0))) };
    EventBuilder::new(KIND, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(flow.src, flow.dst), None, key.kind.fact()))
        .summary(summary)
        .details(KIND, details)
}

impl Detector for Anomaly {
    fn table(&self) -> Table {
        Table::Anomaly
    }
    fn interest(&self) -> u16 {
        if self.rules.enabled { class::ALL } else { 0 }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::{IcmpInfo, testutil};
    use crate::detect::testrig::{Rig, s};

    fn rig() -> Rig<Anomaly> {
        Rig::with(|_| {}, |sh, r| Anomaly::new(&r.anomaly, sh.per_worker(r.anomaly.max_tracked)))
    }

    fn icmp(t: f64, src: &str, dst: &str, v6: bool, icmp_type: u8) -> PacketSummary {
        let mut p = testutil::tcp(s(t), src, dst, (0, 0), 0, 0, 0);
        if let Some(ip) = &mut p.ip {
            ip.proto = if v6 { 58 } else { 1 };
        }
        p.l4 = L4::Icmp(IcmpInfo { v6, icmp_type, code: 0, echo: None, quoted: None });
        p
    }

    fn kinds(evs: &[serde_json::Value]) -> Vec<String> {
        let mut v: Vec<String> = evs
            .iter()
            .filter(|e| e["anomaly"]["status"] == "final")
            .map(|e| e["anomaly"]["kind"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn icmp_only_a_neighbouring_router_should_send_is_named_when_it_comes_from_outside() {
        // hping3 cannot send these through the lab's routers: crafted here.
        let mut r = rig();
        r.feed_owned(icmp(0.0, "198.51.100.10", "192.0.2.10", false, 12));
        r.feed_owned(icmp(0.1, "198.51.100.10", "192.0.2.10", false, 9));
        r.feed_owned(icmp(0.2, "2001:db8:1::10", "2001:db8:d::10", true, 134));
        // From inside out, the same types are not this detector's business.
        r.feed_owned(icmp(0.3, "192.0.2.1", "198.51.100.10", false, 5));
        assert_eq!(kinds(&r.end()), ["icmp_param_problem", "router_advertisement", "router_advertisement"]);
    }

    #[test]
    fn a_private_home_net_reached_over_a_private_network_has_private_sources_that_are_not_bogons() {
        // A lab or LAN capture: home 192.168.29.115, the scanner next to it.
        let mut r = Rig::with_home(
            "192.168.29.115/32",
            |_| {},
            |sh, r| Anomaly::new(&r.anomaly, sh.per_worker(r.anomaly.max_tracked)),
        );
        for (i, src) in ["192.168.29.14", "10.1.2.3", "172.16.0.9", "203.0.113.5"].iter().enumerate() {
            let t = s(i as f64);
            r.feed_owned(testutil::tcp(t, src, "192.168.29.115", (40000, 22), tcpflag::SYN, 1, 0));
        }
        assert!(r.end().is_empty(), "private sources are ordinary on a private network");
        // Loopback never sources a packet on any wire.
        let mut r = Rig::with_home(
            "192.168.29.115/32",
            |_| {},
            |sh, r| Anomaly::new(&r.anomaly, sh.per_worker(r.anomaly.max_tracked)),
        );
        r.feed_owned(testutil::tcp(s(0.0), "127.0.0.9", "192.168.29.115", (40000, 22), tcpflag::SYN, 1, 0));
        assert_eq!(kinds(&r.end()), ["bogon_source"]);
        // A public home net still claims private sources.
        let mut r = rig();
        r.feed_owned(testutil::tcp(s(0.0), "10.1.2.3", "192.0.2.10", (40000, 22), tcpflag::SYN, 1, 0));
        assert_eq!(kinds(&r.end()), ["bogon_source"]);
    }

    #[test]
    fn a_spoofed_flood_from_bogon_sources_is_one_detection_not_one_per_source() {
        let mut r = rig();
        for i in 0..2000u32 {
            let src = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let dst = format!("192.0.2.{}", i % 200 + 1);
            r.feed_owned(testutil::tcp(s(f64::from(i) * 0.001), &src, &dst, (1234, 80), tcpflag::SYN, i, 0));
        }
        let evs = r.end();
        assert_eq!(kinds(&evs), ["bogon_source"], "one /24 hit: one detection");
        let d = &evs.last().unwrap()["anomaly"];
        assert_eq!(d["packets"], 2000);
        assert!(d["sources"].as_u64().unwrap() > 1500 && d["targets"].as_u64().unwrap() <= 256, "{d}");
    }

    /// `n` outside peers each answering 192.0.2.10 with a SYN-ACK (sent
    /// twice: one retransmission) and a RST to a SYN, from `t0`; with
    /// `solicited`, the host's SYNs come first.
    fn answers(r: &mut Rig<Anomaly>, t0: f64, n: u16, solicited: bool) {
        let (sa, ra) = (tcpflag::SYN | tcpflag::ACK, tcpflag::RST | tcpflag::ACK);
        for i in 0..n {
            let peer = format!("203.0.113.{}", i + 1);
            let t = t0 + f64::from(i);
            if solicited {
                r.feed_owned(testutil::tcp(s(t), "192.0.2.10", &peer, (40000 + i, 80), tcpflag::SYN, 7, 0));
                r.feed_owned(testutil::tcp(s(t), "192.0.2.10", &peer, (50000 + i, 23), tcpflag::SYN, 7, 0));
            }
            for k in 0..2u16 {
                r.feed_owned(testutil::tcp(s(t + 0.1 * f64::from(k)), &peer, "192.0.2.10", (80, 40000 + i), sa, 9, 8));
            }
            r.feed_owned(testutil::tcp(s(t + 0.5), &peer, "192.0.2.10", (23, 50000 + i), ra, 0, 8));
        }
    }

    #[test]
    fn answers_to_syns_a_home_host_never_sent_are_backscatter() {
        let mut r = rig();
        // The host is seen talking first: the sensor has its return path.
        r.feed_owned(testutil::tcp(s(0.0), "192.0.2.10", "198.51.100.10", (443, 40001), tcpflag::ACK, 1, 1));
        answers(&mut r, 1.0, 4, false);
        let evs = r.end();
        assert_eq!(kinds(&evs), ["backscatter"], "{evs:?}");
        let d = &evs.last().unwrap()["anomaly"];
        assert_eq!(d["answers"]["syn_ack"], 8, "{d}");
        assert_eq!(d["answers"]["rst"], 4, "{d}");
        assert_eq!(d["flows"], 8, "a retransmitted SYN-ACK is one exchange: {d}");
        assert_eq!(d["sources"], 4);
        assert_eq!(evs.last().unwrap()["dest_ip"], "192.0.2.10");
    }

    #[test]
    fn answers_to_its_own_syns_a_few_strays_or_no_return_path_are_not_backscatter() {
        // The host's own SYNs are remembered: every answer is solicited.
        let mut r = rig();
        answers(&mut r, 0.0, 8, true);
        assert!(r.end().is_empty());
        // Two unsolicited exchanges (a SYN the sensor missed): below 5.
        let mut r = rig();
        r.feed_owned(testutil::tcp(s(0.0), "192.0.2.10", "198.51.100.10", (443, 40001), tcpflag::ACK, 1, 1));
        answers(&mut r, 1.0, 1, false);
        assert!(r.end().is_empty());
        // Inbound only: the home host never seen sending.
        let mut r = rig();
        answers(&mut r, 0.0, 8, false);
        assert!(r.end().is_empty(), "no return path on the wire: nothing claimed");
        // Long after the host's SYNs (past the filter's memory), an answer
        // is unsolicited again.
        let mut r = rig();
        answers(&mut r, 0.0, 4, true);
        answers(&mut r, 200.0, 4, false);
        assert_eq!(kinds(&r.end()), ["backscatter"]);
    }

    #[test]
    fn tiny_and_overlapping_fragments_the_reassembler_marked_are_named_per_source() {
        use crate::decode::summary::frag;
        let mut r = rig();
        for i in 0..3u32 {
            let mut p = testutil::tcp(
                s(f64::from(i)),
                "198.51.100.10",
                "192.0.2.10",
                (40000, 80 + i as u16),
                tcpflag::SYN,
                1,
                0,
            );
            p.frag = frag::REASSEMBLED | frag::TINY;
            r.feed_owned(p);
        }
        let mut p = testutil::tcp(s(5.0), "203.0.113.7", "192.0.2.10", (40000, 80), tcpflag::SYN, 1, 0);
        p.frag = frag::REASSEMBLED | frag::TINY | frag::OVERLAP;
        r.feed_owned(p);
        // A datagram reassembled cleanly is nothing.
        let mut p = testutil::tcp(s(6.0), "203.0.113.8", "192.0.2.10", (40000, 80), tcpflag::SYN, 1, 0);
        p.frag = frag::REASSEMBLED;
        r.feed_owned(p);
        let evs = r.end();
        assert_eq!(kinds(&evs), ["fragment_overlap", "tiny_fragment", "tiny_fragment"]);
        let tiny = evs
            .iter()
            .find(|e| e["anomaly"]["status"] == "final" && e["src_ip"] == "198.51.100.10")
            .expect("one detection for the first source");
        assert_eq!(tiny["anomaly"]["packets"], 3);
        let summary = tiny["summary"].as_str().unwrap();
        assert!(summary.starts_with("tiny_fragment: 3 fragmented datagram(s) from 198.51.100.10"), "{summary}");
        assert!(summary.contains("RFC 1858"), "{summary}");
    }

    #[test]
    fn ordinary_packets_and_on_link_chatter_are_not_anomalies() {
        let mut r = rig();
        r.feed_owned(testutil::tcp(s(0.0), "198.51.100.10", "192.0.2.10", (40000, 80), tcpflag::SYN, 1, 0));
        // A RST from port 0 answers a probe of port 0: counted once, on the probe.
        r.feed_owned(testutil::tcp(
            s(0.1),
            "192.0.2.10",
            "198.51.100.10",
            (0, 40000),
            tcpflag::RST | tcpflag::ACK,
            0,
            1,
        ));
        let mut nd = icmp(0.2, "fe80::1", "2001:db8:d:ff::2", true, 135);
        if let Some(ip) = &mut nd.ip {
            ip.ttl = 255;
        }
        r.feed_owned(nd);
        // A host pinging its own address is no LAND attack.
        r.feed_owned(icmp(0.3, "192.0.2.10", "192.0.2.10", false, 8));
        assert!(r.end().is_empty());
    }
}

#[cfg(test)]
mod rules_tests {
    use super::AnomalyRules;
    use crate::config::schema::Section;

    #[test]
    fn the_bogon_list_is_data() {
        let r = AnomalyRules::parse("x", "[anomaly]\nbogon_sources = [\"10.0.0.0/8\"]\n").unwrap();
        assert!(r.bogon_sources.contains("10.9.9.9".parse().unwrap()));
        assert!(!r.bogon_sources.contains("192.168.1.1".parse().unwrap()));
        let e = AnomalyRules::parse("rules/picket.toml", "[anomaly]\nbogon_sources = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(AnomalyRules::default().bogon_sources.contains("169.254.1.1".parse().unwrap()));
    }
}
