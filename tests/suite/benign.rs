//! The benign corpus (issue 3): ordinary traffic recorded with real tools in
//! the lab must produce no detection at all. So that the test cannot pass on
//! an empty or unreadable capture, it first checks, with a reader written
//! here independently of picket (libpcap + etherparse), that each capture
//! holds what pcaps/README.md says: many web clients on 80 and 443 at
//! several hop distances, DNS over UDP and TCP, NTP, IPv6, ICMP echo, and
//! real TCP retransmissions.

use crate::common;
use common::*;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// What the capture holds, counted without picket.
#[derive(Default, Debug)]
struct Facts {
    packets: u64,
    /// Distinct client addresses that opened TCP connections to each port.
    clients: HashMap<u16, HashSet<IpAddr>>,
    /// Distinct TTLs / hop limits seen on those SYNs.
    syn_ttls: HashSet<u8>,
    udp_to: HashMap<u16, u64>,
    tcp_to_53: u64,
    ipv6: u64,
    icmp_echo: u64,
    /// Data segments seen twice (same flow, sequence number and length).
    retransmissions: u64,
    /// RSTs answering a SYN (a refused connection).
    resets: u64,
    /// Every TCP connection attempt (client, client port, server, server
    /// port) and the capture time (s) of its first SYN.
    syns: HashMap<Conn, f64>,
    /// Attempts the server answered with a SYN-ACK, and with a RST.
    syn_acked: HashSet<Conn>,
    refused: HashSet<Conn>,
    /// SMTP: sessions whose client sent MAIL FROM, and sessions whose
    /// server said 354 (send the message) and then 250 after it.
    smtp_mail_from: HashSet<Conn>,
    smtp_delivered: HashSet<Conn>,
    /// UDP datagrams per (source, source port, destination, destination port).
    udp_flows: HashMap<Conn, u64>,
    /// ICMP / ICMPv6 port unreachables, by the address that sent them.
    port_unreachable_from: HashMap<IpAddr, u64>,
}

/// (source or client, its port, destination or server, its port).
type Conn = (IpAddr, u16, IpAddr, u16);

fn facts(name: &str) -> Facts {
    let mut cap = pcap::Capture::from_file(pcap(name)).expect("open capture");
    let mut f = Facts::default();
    let mut segs: HashSet<(IpAddr, IpAddr, u16, u16, u32, usize)> = HashSet::new();
    // SMTP sessions whose server has said 354, waiting for the 250 after the message.
    let mut smtp_data: HashSet<Conn> = HashSet::new();
    while let Ok(p) = cap.next_packet() {
        f.packets += 1;
        let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
        let Ok(s) = etherparse::SlicedPacket::from_ethernet(p.data) else { continue };
        let (src, dst, ttl): (IpAddr, IpAddr, u8) = match &s.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                (h.source_addr().into(), h.destination_addr().into(), h.ttl())
            }
            Some(etherparse::NetSlice::Ipv6(ip)) => {
                f.ipv6 += 1;
                let h = ip.header();
                (h.source_addr().into(), h.destination_addr().into(), h.hop_limit())
            }
            _ => continue,
        };
        match &s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let (sport, dport) = (t.source_port(), t.destination_port());
                // The flow as its client sees it (this segment is the server's).
                let back = (dst, dport, src, sport);
                if t.syn() && !t.ack() {
                    f.clients.entry(dport).or_default().insert(src);
                    f.syn_ttls.insert(ttl);
                    f.syns.entry((src, sport, dst, dport)).or_insert(ts);
                }
                if t.syn() && t.ack() {
                    f.syn_acked.insert(back);
                }
                if t.rst() {
                    f.resets += 1;
                    f.refused.insert(back);
                }
                let data = t.payload();
                if dport == 25 && data.len() >= 10 && data[..10].eq_ignore_ascii_case(b"MAIL FROM:") {
                    f.smtp_mail_from.insert((src, sport, dst, dport));
                }
                if sport == 25 && data.starts_with(b"354") {
                    smtp_data.insert(back);
                }
                if sport == 25 && data.starts_with(b"250") && smtp_data.remove(&back) {
                    f.smtp_delivered.insert(back);
                }
                if t.destination_port() == 53 {
                    f.tcp_to_53 += 1;
                }
                let len = t.payload().len();
                let key = (src, dst, t.source_port(), t.destination_port(), t.sequence_number(), len);
                if len > 0 && !segs.insert(key) {
                    f.retransmissions += 1;
                }
            }
            Some(etherparse::TransportSlice::Udp(u)) => {
                *f.udp_to.entry(u.destination_port()).or_default() += 1;
                *f.udp_flows.entry((src, u.source_port(), dst, u.destination_port())).or_default() += 1;
            }
            Some(etherparse::TransportSlice::Icmpv4(i)) => {
                use etherparse::{Icmpv4Type, icmpv4::DestUnreachableHeader};
                f.icmp_echo += u64::from(matches!(i.icmp_type(), Icmpv4Type::EchoRequest(_)));
                if matches!(i.icmp_type(), Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port)) {
                    *f.port_unreachable_from.entry(src).or_default() += 1;
                }
            }
            Some(etherparse::TransportSlice::Icmpv6(i)) => {
                use etherparse::{Icmpv6Type, icmpv6::DestUnreachableCode};
                f.icmp_echo += u64::from(matches!(i.icmp_type(), Icmpv6Type::EchoRequest(_)));
                if matches!(i.icmp_type(), Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port)) {
                    *f.port_unreachable_from.entry(src).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    f
}

/// Every event is the final stats line (after the run's one
/// service_inventory, which lists services, not findings): no detection.
fn assert_no_detection(r: &Run, name: &str) {
    let kinds: Vec<&str> = r.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["stats"], "{name}: {}", r.stdout);
    assert_eq!(r.inventory.len(), 1, "{name}");
    assert!(
        r.stats().events.iter().all(|(k, n)| *n == 0 || k == "service_inventory"),
        "{name}: {:?}",
        r.stats().events
    );
}

/// Replayed with the lab's home net (every packet read), with one worker
/// or three, and without a home net: never a detection.
fn assert_quiet_every_way(name: &str, packets: u64) {
    let r = replay(&[&pcap(name)], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stats().packets, packets);
    assert_no_detection(&r, name);
    for extra in [&["--workers", "3"][..], &["--workers", "1"][..]] {
        assert_no_detection(&replay(&[&pcap(name)], extra), name);
    }
    assert_no_detection(&picket(&["replay", pcap(name).to_str().unwrap()]), name);
}

#[test]
fn mixed_benign_traffic_from_real_tools_produces_no_detection() {
    let name = "benign_mixed.pcap";
    let f = facts(name);
    // What the capture must hold for "no detection" to mean something.
    assert!(f.clients.get(&80).map_or(0, HashSet::len) >= 12, "{f:?}");
    assert!(f.clients.get(&443).map_or(0, HashSet::len) >= 12, "{f:?}");
    assert!(f.clients.values().flatten().any(|a| a.is_ipv6()), "IPv6 clients");
    assert!(f.syn_ttls.len() >= 3, "clients at three hop distances: {:?}", f.syn_ttls);
    assert!(f.udp_to.get(&53).copied().unwrap_or(0) >= 3, "DNS over UDP");
    assert!(f.tcp_to_53 >= 3, "DNS over TCP");
    assert!(f.udp_to.get(&123).copied().unwrap_or(0) >= 4, "NTP (chrony)");
    assert!(f.ipv6 >= 50);
    assert!(f.retransmissions >= 3, "real retransmissions under loss: {}", f.retransmissions);
    assert!(f.resets >= 1, "one refused connection");

    assert_quiet_every_way(name, f.packets);
}

#[test]
fn web_dns_and_ping_from_real_tools_produce_no_detection() {
    let name = "benign_web_dns.pcap";
    let f = facts(name);
    assert!(f.clients.get(&80).map_or(0, HashSet::len) >= 2, "{f:?}");
    assert!(f.udp_to.get(&53).copied().unwrap_or(0) >= 3, "{f:?}");
    assert!(f.icmp_echo >= 6, "{f:?}");
    assert!(f.ipv6 > 0);
    let r = replay(&[&pcap(name)], &[]);
    assert_eq!(r.stats().packets, f.packets);
    assert_no_detection(&r, name);
}

/// Inside the lab's home net (192.0.2.0/24, 2001:db8:d::/48).
fn home(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.octets()[..3] == [192, 0, 2],
        IpAddr::V6(a) => a.segments()[..3] == [0x2001, 0xdb8, 0xd],
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn busy_web_and_mail_server_with_a_nat_gateway_produces_no_detection() {
    let name = "benign_busy_server.pcap";
    let f = facts(name);
    let web = ip("192.0.2.10");
    let to_web = |c: &&Conn| c.2 == web && (c.3 == 80 || c.3 == 443);
    // Many outside visitors on 80 and 443, at three hop distances, IPv6 too
    // (2001:db8:d::10 is the same server), every attempt answered.
    let visitors: HashSet<IpAddr> = f
        .syns
        .keys()
        .filter(|c| (c.2 == web || c.2 == ip("2001:db8:d::10")) && (c.3 == 80 || c.3 == 443))
        .map(|c| c.0)
        .collect();
    assert!(visitors.len() >= 60, "{} web clients: {visitors:?}", visitors.len());
    assert!(visitors.iter().all(|a| !home(a)));
    assert!(visitors.iter().filter(|a| a.is_ipv6()).count() >= 4, "IPv6 visitors");
    assert!(f.clients.get(&80).map_or(0, HashSet::len) >= 30, "{:?}", f.clients.get(&80));
    assert!(f.clients.get(&443).map_or(0, HashSet::len) >= 30, "{:?}", f.clients.get(&443));
    assert!(f.syn_ttls.len() >= 3, "three hop distances: {:?}", f.syn_ttls);
    let web_syns: Vec<&Conn> = f.syns.keys().filter(|c| c.3 == 80 || c.3 == 443).collect();
    let unanswered: Vec<&&Conn> = web_syns.iter().filter(|c| !f.syn_acked.contains(**c)).collect();
    assert!(unanswered.is_empty(), "web SYNs without a SYN-ACK: {unanswered:?}");
    // Most visitors make a few requests, none more than four.
    let mut per_visitor: HashMap<IpAddr, usize> = HashMap::new();
    for c in f.syns.keys().filter(to_web) {
        *per_visitor.entry(c.0).or_default() += 1;
    }

    // The NAT gateway: one address, >= 30 connections to 80 and 443 within a
    // few seconds (a new source port each), all served; its users' typos
    // reach 2 or 3 closed ports once each, refused by RST.
    let (nat, n) = per_visitor.iter().max_by_key(|(_, n)| **n).map(|(a, n)| (*a, *n)).unwrap();
    assert_eq!(nat, ip("198.51.100.90"));
    assert!(n >= 30, "NAT connections: {n}");
    let nat_conns: Vec<(&Conn, &f64)> = f.syns.iter().filter(|(c, _)| c.0 == nat && to_web(c)).collect();
    let sports: HashSet<u16> = nat_conns.iter().map(|(c, _)| c.1).collect();
    assert_eq!(sports.len(), nat_conns.len(), "a new source port per connection");
    let ports: HashSet<u16> = nat_conns.iter().map(|(c, _)| c.3).collect();
    assert_eq!(ports, HashSet::from([80, 443]));
    let times: Vec<f64> = nat_conns.iter().map(|(_, t)| **t).collect();
    let spread = times.iter().cloned().fold(f64::MIN, f64::max) - times.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 5.0, "the NAT burst spans {spread} s");
    let typos: Vec<&Conn> = f.syns.keys().filter(|c| c.0 == nat && c.3 != 80 && c.3 != 443).collect();
    assert!((2..=3).contains(&typos.len()), "{typos:?}");
    assert!(typos.iter().all(|c| f.refused.contains(*c) && !f.syn_acked.contains(*c)), "{typos:?}");
    let typo_ports: HashSet<u16> = typos.iter().map(|c| c.3).collect();
    assert_eq!(typo_ports.len(), typos.len(), "each closed port once");
    for (a, k) in &per_visitor {
        assert!(*a == nat || (1..=4).contains(k), "{a} made {k} connections");
    }

    // Mail: >= 5 outside MTAs deliver to the DMZ mail server (MAIL FROM,
    // then 354 and 250: a message accepted), and the mail server delivers
    // out to >= 2 outside MX hosts, one of which refuses (a dead MX).
    let mx = ip("192.0.2.20");
    let inbound: HashSet<IpAddr> = f.smtp_delivered.iter().filter(|c| c.2 == mx).map(|c| c.0).collect();
    assert!(inbound.len() >= 5, "MTAs that delivered: {inbound:?}");
    assert!(inbound.iter().all(|a| !home(a)));
    assert!(f.smtp_delivered.iter().filter(|c| c.2 == mx).count() >= 6, "{:?}", f.smtp_delivered);
    assert!(f.smtp_mail_from.len() >= f.smtp_delivered.len());
    let outbound: HashSet<IpAddr> = f.smtp_delivered.iter().filter(|c| c.0 == mx).map(|c| c.2).collect();
    assert!(outbound.len() >= 2, "outside MX hosts delivered to: {outbound:?}");
    let dead: Vec<&Conn> = f.syns.keys().filter(|c| c.0 == mx && c.3 == 25 && f.refused.contains(*c)).collect();
    assert_eq!(dead.len(), 1, "one refused delivery: {dead:?}");

    assert_quiet_every_way(name, f.packets);
}

#[test]
fn recursive_resolver_ntp_client_and_cdn_fetches_produce_no_detection() {
    let name = "benign_resolver_ntp.pcap";
    let f = facts(name);
    let resolver = ip("192.0.2.20");
    // The DMZ resolver asks >= 30 outside servers on UDP 53 (IPv6 among
    // them) from random source ports; >= 30 answer, and >= 3 never do (the
    // lame delegations), 2 of them with ICMP port unreachable.
    let queried: HashSet<IpAddr> = f
        .udp_flows
        .keys()
        .filter(|c| c.0 == resolver || c.0 == ip("2001:db8:d::20"))
        .filter(|c| c.3 == 53)
        .map(|c| c.2)
        .collect();
    assert!(queried.len() >= 30, "{} servers queried: {queried:?}", queried.len());
    assert!(queried.iter().all(|a| !home(a)));
    assert!(queried.iter().any(|a| a.is_ipv6()), "IPv6 servers: {queried:?}");
    let answering: HashSet<IpAddr> = f.udp_flows.keys().filter(|c| c.1 == 53 && home(&c.2)).map(|c| c.0).collect();
    assert!(answering.len() >= 30, "{answering:?}");
    let lame: HashSet<&IpAddr> = queried.difference(&answering).collect();
    assert!(lame.len() >= 3, "lame servers: {lame:?}");
    let unreachable: Vec<&IpAddr> = lame.iter().copied().filter(|a| f.port_unreachable_from.contains_key(a)).collect();
    assert!(unreachable.len() >= 2, "lame servers answering ICMP port unreachable: {:?}", f.port_unreachable_from);
    let query_ports: HashSet<u16> = f.udp_flows.keys().filter(|c| c.0 == resolver && c.3 == 53).map(|c| c.1).collect();
    assert!(query_ports.len() >= 100, "random source ports: {}", query_ports.len());
    // TCP too, answered.
    let tcp_dns: Vec<&Conn> = f.syns.keys().filter(|c| c.0 == resolver && c.3 == 53).collect();
    assert!(tcp_dns.len() >= 3 && tcp_dns.iter().all(|c| f.syn_acked.contains(*c)), "{tcp_dns:?}");

    // NTP: >= 4 outside servers asked, each answered.
    let ntp: HashSet<IpAddr> = f.udp_flows.keys().filter(|c| home(&c.0) && c.3 == 123).map(|c| c.2).collect();
    let ntp_answers: HashSet<IpAddr> = f.udp_flows.keys().filter(|c| c.1 == 123 && home(&c.2)).map(|c| c.0).collect();
    assert!(ntp.len() >= 4, "NTP servers: {ntp:?}");
    assert_eq!(ntp, ntp_answers);

    // CDN-like: >= 18 addresses of one outside /24 on 443 within 10 s, all answered.
    let cdn: Vec<(&Conn, &f64)> = f.syns.iter().filter(|(c, _)| c.0 == ip("192.0.2.10") && c.3 == 443).collect();
    let hosts: HashSet<IpAddr> = cdn.iter().map(|(c, _)| c.2).collect();
    let nets: HashSet<[u8; 3]> = hosts
        .iter()
        .map(|a| match a {
            IpAddr::V4(a) => [a.octets()[0], a.octets()[1], a.octets()[2]],
            IpAddr::V6(_) => [0; 3],
        })
        .collect();
    assert!(hosts.len() >= 18, "{hosts:?}");
    assert_eq!(nets.len(), 1, "one /24: {hosts:?}");
    assert!(cdn.iter().all(|(c, _)| f.syn_acked.contains(*c)));
    let times: Vec<f64> = cdn.iter().map(|(_, t)| **t).collect();
    let spread = times.iter().cloned().fold(f64::MIN, f64::max) - times.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 10.0, "the CDN fetches span {spread} s");

    assert_quiet_every_way(name, f.packets);
}
