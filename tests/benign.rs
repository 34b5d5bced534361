//! The benign corpus (issue 3): ordinary traffic recorded with real tools in
//! the lab must produce no detection at all. So that the test cannot pass on
//! an empty or unreadable capture, it first checks, with a reader written
//! here independently of picket (libpcap + etherparse), that each capture
//! holds what pcaps/README.md says: many web clients on 80 and 443 at
//! several hop distances, DNS over UDP and TCP, NTP, IPv6, ICMP echo, and
//! real TCP retransmissions.

mod common;
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
}

fn facts(name: &str) -> Facts {
    let mut cap = pcap::Capture::from_file(pcap(name)).expect("open capture");
    let mut f = Facts::default();
    let mut segs: HashSet<(IpAddr, IpAddr, u16, u16, u32, usize)> = HashSet::new();
    while let Ok(p) = cap.next_packet() {
        f.packets += 1;
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
                if t.syn() && !t.ack() {
                    f.clients.entry(t.destination_port()).or_default().insert(src);
                    f.syn_ttls.insert(ttl);
                }
                if t.rst() {
                    f.resets += 1;
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
            Some(etherparse::TransportSlice::Udp(u)) => *f.udp_to.entry(u.destination_port()).or_default() += 1,
            Some(etherparse::TransportSlice::Icmpv4(i)) => {
                f.icmp_echo += u64::from(matches!(i.icmp_type(), etherparse::Icmpv4Type::EchoRequest(_)))
            }
            Some(etherparse::TransportSlice::Icmpv6(i)) => {
                f.icmp_echo += u64::from(matches!(i.icmp_type(), etherparse::Icmpv6Type::EchoRequest(_)))
            }
            _ => {}
        }
    }
    f
}

/// Every event is the final stats line: no detection of any type.
fn assert_no_detection(r: &Run, name: &str) {
    let kinds: Vec<&str> = r.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["stats"], "{name}: {}", r.stdout);
    assert!(r.stats().events.values().all(|n| *n == 0), "{name}: {:?}", r.stats().events);
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

    let r = replay(&[&pcap(name)], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stats().packets, f.packets);
    assert_no_detection(&r, name);
    // With one worker or three, and without a home net: still nothing.
    for extra in [&["--workers", "3"][..], &["--workers", "1"][..]] {
        assert_no_detection(&replay(&[&pcap(name)], extra), name);
    }
    let bare = picket(&["replay", pcap(name).to_str().unwrap()]);
    assert_no_detection(&bare, name);
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
