//! Decoder tests over the fixtures: one per case, every truncation of every
//! fixture, and random mutations. None of them may panic. The file is
//! compiled only under #[cfg(test)] (see `mod tests` in mod.rs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decode;
use super::fixtures::*;
use crate::decode::summary::{
    DecodeError, IcmpInfo, IpInfo, L4, LinkKind, PacketSummary, Quoted, TcpInfo, UdpInfo, fact, ipopt, tcpflag,
};

fn run(link: LinkKind, data: &[u8]) -> PacketSummary {
    decode(link, 1_700_000_000_000_000, 1514, data)
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn ip(s: &PacketSummary) -> IpInfo {
    s.ip.expect("ip")
}

fn tcp(s: &PacketSummary) -> TcpInfo {
    *s.tcp().expect("tcp")
}

fn udp(s: &PacketSummary) -> UdpInfo {
    *s.udp().expect("udp")
}

fn icmp(s: &PacketSummary) -> IcmpInfo {
    *s.icmp().expect("icmp")
}

fn quoted(s: &PacketSummary) -> Quoted {
    icmp(s).quoted.expect("quoted")
}

#[test]
fn ethernet_ipv4_tcp_syn_with_options() {
    let s = run(LinkKind::Ethernet, ETH_IPV4_TCP_SYN);
    assert_eq!(s.error, None);
    assert_eq!((s.ts_us, s.wire_len, s.cap_len), (1_700_000_000_000_000, 1514, 74));
    assert_eq!((s.ether_type, s.vlan), (0x0800, None));
    let i = ip(&s);
    assert_eq!((i.src, i.dst), (v4(203, 0, 113, 5), v4(192, 0, 2, 10)));
    assert_eq!((i.ttl, i.ip_id, i.df, i.mf, i.frag_offset), (64, 0x1234, true, false, 0));
    assert_eq!((i.proto, i.total_len, i.options), (6, 60, 0));
    assert!(!i.is_v6());
    let t = tcp(&s);
    assert_eq!((t.sport, t.dport, t.seq, t.ack, t.window), (40000, 158, 0x0102_0304, 0, 64240));
    assert_eq!(t.flags, tcpflag::SYN);
    assert!(t.is_syn_only());
    assert_eq!(t.opts.mss, Some(1460));
    assert!(t.opts.sack_permitted && !t.opts.sack);
    assert_eq!(t.opts.timestamp, Some((1, 0)));
    assert_eq!(t.opts.wscale, Some(7));
    // MSS, SACKP, TS, NOP, WS in wire order, first in the low nibble.
    assert_eq!((t.opts.layout, t.opts.count), (0x0003_1842, 5));
    assert_eq!((s.payload_len, s.payload_head, s.payload_facts), (0, [0; 8], 0));
}

#[test]
fn snaplen_68_cuts_syn_options() {
    let s = run(LinkKind::Ethernet, &ETH_IPV4_TCP_SYN[..68]);
    assert_eq!(s.error, Some(DecodeError::TruncatedTcp));
    let t = tcp(&s);
    assert_eq!((t.sport, t.dport, t.flags), (40000, 158, tcpflag::SYN));
    assert_eq!(t.opts.mss, Some(1460));
    assert!(t.opts.sack_permitted);
    assert_eq!(t.opts.timestamp, None);
    assert_eq!(t.opts.count, 2);
}

#[test]
fn bad_tcp_option_length_is_malformed() {
    let mut f = ETH_IPV4_TCP_SYN.to_vec();
    f[14 + 20 + 20 + 1] = 9; // MSS length 9
    let s = run(LinkKind::Ethernet, &f);
    assert_eq!(s.error, Some(DecodeError::MalformedTcpOptions));
    assert_eq!(tcp(&s).opts.count, 0);
    assert_eq!(tcp(&s).sport, 40000);
}

#[test]
fn tcp_data_offset_below_five_is_an_error() {
    let mut f = ETH_IPV4_TCP_SYN.to_vec();
    f[14 + 20 + 12] = 0x40;
    let s = run(LinkKind::Ethernet, &f);
    assert_eq!(s.error, Some(DecodeError::TruncatedTcp));
    assert_eq!(s.l4, L4::None);
}

#[test]
fn ns_flag_is_bit_8() {
    let mut f = ETH_IPV4_TCP_SYN.to_vec();
    f[14 + 20 + 12] |= 0x01;
    f[14 + 20 + 13] = 0xc2; // CWR ECE SYN
    let t = tcp(&run(LinkKind::Ethernet, &f));
    assert_eq!(t.flags, tcpflag::NS | tcpflag::CWR | tcpflag::ECE | tcpflag::SYN);
}

fn assert_dns_udp(s: &PacketSummary) {
    assert_eq!(s.error, None);
    assert_eq!(s.ether_type, 0x0800);
    let i = ip(s);
    assert_eq!((i.src, i.dst, i.proto), (v4(192, 0, 2, 10), v4(198, 51, 100, 7), 17));
    assert_eq!(udp(s), UdpInfo { sport: 53000, dport: 53 });
    assert_eq!(s.payload_len, 4);
    assert_eq!(s.payload_head, [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]);
}

#[test]
fn dot1q_tag() {
    let s = run(LinkKind::Ethernet, ETH_VLAN);
    assert_dns_udp(&s);
    assert_eq!(s.vlan, Some(100));
}

#[test]
fn qinq_reports_outer_tag_and_inner_ethertype() {
    let s = run(LinkKind::Ethernet, ETH_QINQ);
    assert_dns_udp(&s);
    assert_eq!(s.vlan, Some(200));
    let s = run(LinkKind::Ethernet, ETH_QINQ_9100);
    assert_dns_udp(&s);
    assert_eq!(s.vlan, Some(300));
}

#[test]
fn truncated_tag_is_a_link_error() {
    let s = run(LinkKind::Ethernet, &ETH_QINQ[..20]);
    assert_eq!(s.error, Some(DecodeError::TruncatedLink));
    assert_eq!(s.vlan, Some(200));
    assert_eq!(s.ip, None);
}

#[test]
fn linux_cooked_v1() {
    let s = run(LinkKind::LinuxSll, SLL_IPV4_UDP);
    assert_dns_udp(&s);
    assert_eq!(s.vlan, None);
}

#[test]
fn linux_cooked_v2() {
    let s = run(LinkKind::LinuxSll2, SLL2_IPV4_TCP);
    assert_eq!(s.error, None);
    assert_eq!(s.ether_type, 0x0800);
    assert_eq!(ip(&s).ttl, 128);
    let t = tcp(&s);
    assert_eq!((t.sport, t.dport, t.seq, t.ack, t.window), (443, 50000, 100, 200, 256));
    assert_eq!(t.flags, tcpflag::ACK);
    assert_eq!((t.opts.count, t.opts.layout), (0, 0));
}

#[test]
fn short_link_headers() {
    for (link, len) in
        [(LinkKind::Ethernet, 13), (LinkKind::LinuxSll, 15), (LinkKind::LinuxSll2, 19), (LinkKind::Null, 3)]
    {
        let s = run(link, &SLL2_IPV4_TCP[..len]);
        assert_eq!(s.error, Some(DecodeError::TruncatedLink), "{link:?}");
    }
}

#[test]
fn bsd_null_little_endian_ipv4() {
    let s = run(LinkKind::Null, NULL_LE_IPV4_ICMP);
    assert_eq!(s.error, None);
    assert_eq!(s.ether_type, 0);
    assert_eq!(ip(&s).src, v4(127, 0, 0, 1));
    let i = icmp(&s);
    assert_eq!((i.v6, i.icmp_type, i.code, i.echo), (false, 8, 0, Some((42, 1))));
    assert!(i.is_echo_request());
    assert_eq!(s.payload_head, *b"abcdefgh");
}

#[test]
fn bsd_loop_big_endian_ipv6_and_every_af_inet6() {
    let s = run(LinkKind::Null, LOOP_BE_IPV6_UDP);
    assert_eq!(s.error, None);
    assert_eq!(ip(&s).src, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(udp(&s), UdpInfo { sport: 54321, dport: 53 });
    for af in [10u32, 24, 28, 30] {
        for bytes in [af.to_le_bytes(), af.to_be_bytes()] {
            let mut f = LOOP_BE_IPV6_UDP.to_vec();
            f[..4].copy_from_slice(&bytes);
            assert!(run(LinkKind::Null, &f).ip.is_some(), "AF {af}");
        }
    }
    let mut f = LOOP_BE_IPV6_UDP.to_vec();
    f[..4].copy_from_slice(&18u32.to_le_bytes()); // AF_LINK: not IP
    let s = run(LinkKind::Null, &f);
    assert_eq!((s.ip, s.error), (None, None));
}

#[test]
fn raw_ipv4_traceroute_probe() {
    for link in [LinkKind::Raw, LinkKind::Ipv4] {
        let s = run(link, RAW_IPV4_TRACEROUTE);
        assert_eq!(s.error, None);
        assert_eq!(s.ether_type, 0);
        assert_eq!((ip(&s).ttl, ip(&s).ip_id), (1, 0x4a4b));
        assert_eq!(udp(&s), UdpInfo { sport: 40001, dport: 33434 });
        assert_eq!((s.payload_len, s.payload_head), (32, [0x40; 8]));
    }
}

#[test]
fn ppp_hdlc_and_mpls_reach_the_ip_packet() {
    for (link, frame) in [
        (LinkKind::Ppp, PPP_IPV4),
        (LinkKind::Ppp, PPP_MPLS_IPV4),
        (LinkKind::Ethernet, ETH_MPLS_IPV4),
        (LinkKind::Ppp, CHDLC_IPV4),
    ] {
        let s = run(link, frame);
        assert_eq!(s.error, None);
        assert_eq!((ip(&s).ttl, ip(&s).ip_id), (1, 0x4a4b));
        assert_eq!(udp(&s), UdpInfo { sport: 40001, dport: 33434 });
    }
    // A label stack cut before its bottom entry is a truncated link header.
    assert_eq!(run(LinkKind::Ppp, &PPP_MPLS_IPV4[..5]).error, Some(DecodeError::TruncatedLink));
    // PPP LCP (0xc021) is not IP.
    assert_eq!(run(LinkKind::Ppp, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]).ip, None);
}

#[test]
fn raw_ipv6_icmpv6_echo() {
    for link in [LinkKind::Raw, LinkKind::Ipv6] {
        let s = run(link, RAW_IPV6_ICMPV6_ECHO);
        assert_eq!(s.error, None);
        let i = ip(&s);
        assert!(i.is_v6());
        assert_eq!((i.src, i.dst, i.ttl, i.proto, i.total_len), (v6(1), v6(2), 64, 58, 56));
        let m = icmp(&s);
        assert!(m.v6 && m.is_echo_request());
        assert_eq!(m.echo, Some((0x1234, 7)));
        assert_eq!((s.payload_len, s.payload_head), (8, *b"pingping"));
    }
}

#[test]
fn raw_garbage_and_empty() {
    assert_eq!(run(LinkKind::Raw, &[]).error, Some(DecodeError::TruncatedIp));
    assert_eq!(run(LinkKind::Raw, &[0x50; 40]).error, Some(DecodeError::MalformedIp));
    assert_eq!(run(LinkKind::Raw, &[0x44; 40]).error, Some(DecodeError::MalformedIp));
    assert_eq!(run(LinkKind::Raw, &RAW_IPV4_TRACEROUTE[..19]).error, Some(DecodeError::TruncatedIp));
}

#[test]
fn ipv6_tcp_syn_ack() {
    let s = run(LinkKind::Ethernet, ETH_IPV6_TCP);
    assert_eq!(s.error, None);
    assert_eq!(s.ether_type, 0x86dd);
    let i = ip(&s);
    assert_eq!((i.src, i.dst, i.ttl, i.proto, i.ip_id, i.total_len), (v6(2), v6(1), 57, 6, 0, 64));
    let t = tcp(&s);
    assert!(t.is_syn_ack());
    assert_eq!((t.sport, t.dport, t.seq, t.ack), (80, 40000, 0x0a0b_0c0d, 0x0102_0305));
    assert_eq!((t.opts.mss, t.opts.layout, t.opts.count), (Some(1440), 2, 1));
}

#[test]
fn nbns_node_status_star() {
    assert_eq!(ETH_NBNS_STAR.len(), 92);
    let s = run(LinkKind::Ethernet, ETH_NBNS_STAR);
    assert_eq!(s.error, None);
    assert_eq!(udp(&s), UdpInfo { sport: 137, dport: 137 });
    assert_eq!(s.payload_len, 50);
    assert_eq!(s.payload_facts, fact::NBNS_NODESTATUS_STAR);
    assert_eq!(ip(&s).ip_id, 0x0100);
    // From a dynamic port (Samba, personal firewalls), to a non-137 port too.
    let mut f = ETH_NBNS_STAR.to_vec();
    f[34..38].copy_from_slice(&[0x04, 0x01, 0x13, 0x88]);
    let s = run(LinkKind::Ethernet, &f);
    assert_eq!(s.payload_facts, fact::NBNS_NODESTATUS_STAR);
}

#[test]
fn udp_to_137_that_is_not_nbns() {
    let s = run(LinkKind::Ethernet, ETH_UDP_137_NOT_NBNS);
    assert_eq!(s.error, None);
    assert_eq!(udp(&s).dport, 137);
    assert_eq!(s.payload_facts, 0);
    assert_eq!((s.payload_len, s.payload_head), (8, *b"GET / HT"));
}

#[test]
fn icmp_echo_request() {
    let s = run(LinkKind::Ethernet, ETH_ICMP_ECHO);
    assert_eq!(s.error, None);
    assert_eq!(ip(&s).dst, v4(192, 0, 2, 255));
    let i = icmp(&s);
    assert_eq!((i.v6, i.icmp_type, i.code), (false, 8, 0));
    assert_eq!((i.echo, i.quoted), (Some((0x0200, 1)), None));
    assert_eq!((s.payload_len, s.payload_head), (8, *b"abcdefgh"));
}

#[test]
fn icmp_port_unreachable_quotes_traceroute_probe() {
    let s = run(LinkKind::Ethernet, ETH_ICMP_PORT_UNREACH_UDP);
    assert_eq!(s.error, None, "a short quote is normal");
    let i = icmp(&s);
    assert!(i.is_unreachable());
    assert_eq!((i.code, i.echo), (3, None));
    let q = quoted(&s);
    assert_eq!((q.src, q.dst), (v4(203, 0, 113, 5), v4(192, 0, 2, 10)));
    assert_eq!((q.proto, q.ttl, q.ip_id), (17, 1, 0x4a5e));
    assert_eq!((q.sport, q.dport, q.has_ports), (40001, 33464, true));
    assert_eq!((q.tcp_seq, q.icmp_type), (None, None));
    assert_eq!(s.payload_len, 28);
}

#[test]
fn icmp_quote_without_ip_header_is_malformed() {
    let s = run(LinkKind::Ethernet, &ETH_ICMP_PORT_UNREACH_UDP[..14 + 20 + 8 + 10]);
    assert_eq!(s.error, Some(DecodeError::MalformedIcmpQuote));
    assert_eq!(icmp(&s).icmp_type, 3);
    assert_eq!(icmp(&s).quoted, None);
    // Quote cut inside the ports: addresses still count, ports do not.
    let s = run(LinkKind::Ethernet, &ETH_ICMP_PORT_UNREACH_UDP[..14 + 20 + 8 + 22]);
    assert_eq!(s.error, None);
    assert!(!quoted(&s).has_ports);
}

#[test]
fn icmp_cut_inside_header() {
    let s = run(LinkKind::Ethernet, &ETH_ICMP_ECHO[..14 + 20 + 4]);
    assert_eq!(s.error, Some(DecodeError::TruncatedIcmp));
    assert_eq!((icmp(&s).icmp_type, icmp(&s).echo), (8, None));
}

#[test]
fn icmp_time_exceeded_quotes_tcp_syn() {
    let s = run(LinkKind::Ethernet, ETH_ICMP_TIME_EXCEEDED_TCP);
    assert_eq!(s.error, None);
    let i = icmp(&s);
    assert!(i.is_time_exceeded());
    let q = quoted(&s);
    assert_eq!((q.proto, q.ttl, q.ip_id), (6, 1, 0x7788));
    assert_eq!((q.sport, q.dport, q.has_ports), (50000, 80, true));
    assert_eq!(q.tcp_seq, Some(0xdead_beef));
}

#[test]
fn icmp_error_quoting_an_echo() {
    // Windows tracert: time exceeded quoting an echo request.
    let mut f = ETH_ICMP_TIME_EXCEEDED_TCP.to_vec();
    f[14 + 20 + 8 + 9] = 1; // quoted proto ICMP
    f[14 + 20 + 8 + 20..].copy_from_slice(&[8, 0, 0, 0, 0x02, 0x00, 0x00, 0x2a]);
    let q = quoted(&run(LinkKind::Ethernet, &f));
    assert_eq!((q.icmp_type, q.sport, q.dport, q.has_ports), (Some(8), 0x0200, 42, true));
    assert_eq!(q.tcp_seq, None);
}

#[test]
fn icmpv6_echo() {
    let s = run(LinkKind::Ethernet, ETH_ICMPV6_ECHO);
    assert_eq!(s.error, None);
    let i = icmp(&s);
    assert!(i.v6 && i.is_echo_request());
    assert_eq!(i.echo, Some((0xbeef, 1)));
    assert_eq!((s.payload_len, &s.payload_head[..4]), (4, &b"ping"[..]));
}

#[test]
fn icmpv6_unreachable_quotes_tcp() {
    let s = run(LinkKind::Ethernet, ETH_ICMPV6_UNREACH_TCP);
    assert_eq!(s.error, None);
    let i = icmp(&s);
    assert!(i.v6 && i.is_unreachable());
    assert_eq!(i.code, 4);
    let q = quoted(&s);
    assert_eq!((q.src, q.dst, q.proto, q.ttl, q.ip_id), (v6(1), v6(2), 6, 63, 0));
    assert_eq!((q.sport, q.dport, q.has_ports), (40000, 443, true));
    assert_eq!(q.tcp_seq, Some(0x1122_3344));
}

#[test]
fn ipv4_lsrr_option() {
    let s = run(LinkKind::Ethernet, ETH_IPV4_LSRR);
    assert_eq!(s.error, None);
    assert_eq!(ip(&s).options, ipopt::PRESENT | ipopt::LSRR);
    assert_eq!(udp(&s), UdpInfo { sport: 1024, dport: 23 });
    assert_eq!(s.payload_len, 0);
    let mut f = ETH_IPV4_LSRR.to_vec();
    f[14 + 22] = 9; // LSRR length past the option area
    let s = run(LinkKind::Ethernet, &f);
    assert_eq!(ip(&s).options, ipopt::PRESENT | ipopt::MALFORMED);
    assert_eq!(s.error, None);
}

#[test]
fn non_first_fragment_has_no_l4() {
    let s = run(LinkKind::Ethernet, ETH_IPV4_FRAGMENT);
    assert_eq!(s.error, None);
    let i = ip(&s);
    assert_eq!((i.ip_id, i.mf, i.frag_offset, i.proto), (0xabcd, false, 185, 17));
    assert_eq!(s.l4, L4::None);
    assert_eq!((s.payload_len, s.payload_head), (16, [0, 1, 2, 3, 4, 5, 6, 7]));
}

#[test]
fn ipv4_first_fragment_keeps_l4() {
    let mut f = ETH_IPV4_FRAGMENT.to_vec();
    f[14 + 6] = 0x20; // MF set, offset 0
    f[14 + 7] = 0x00;
    let s = run(LinkKind::Ethernet, &f);
    assert_eq!(s.error, None);
    assert!(ip(&s).mf);
    assert_eq!(udp(&s), UdpInfo { sport: 1, dport: 0x0203 });
    assert_eq!(s.payload_len, 0x0405 - 8);
}

#[test]
fn ipv6_first_fragment_keeps_l4_and_id() {
    let s = run(LinkKind::Ethernet, ETH_IPV6_FIRST_FRAGMENT);
    assert_eq!(s.error, None);
    let i = ip(&s);
    assert_eq!((i.ip_id, i.mf, i.frag_offset, i.proto), (0xdead_beef, true, 0, 17));
    assert_eq!(udp(&s), UdpInfo { sport: 5000, dport: 5001 });
    assert_eq!((s.payload_len, s.payload_head), (1492, *b"fragment"));
}

#[test]
fn arp_is_not_ip_and_not_an_error() {
    let s = run(LinkKind::Ethernet, ETH_ARP);
    assert_eq!((s.ether_type, s.ip, s.l4, s.error), (0x0806, None, L4::None, None));
    let s = run(LinkKind::Ethernet, &ETH_ARP[..20]);
    assert_eq!((s.ip, s.error), (None, None));
}

#[test]
fn tagged_arp_keeps_tag_and_ethertype() {
    let mut f = ETH_ARP[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]); // 802.1Q, VID 10
    f.extend_from_slice(&ETH_ARP[12..]);
    let s = run(LinkKind::Ethernet, &f);
    assert_eq!((s.ether_type, s.vlan, s.ip, s.error), (0x0806, Some(10), None, None));
}

#[test]
fn ipv6_cut_inside_extension_header() {
    let s = run(LinkKind::Ethernet, &ETH_IPV6_FIRST_FRAGMENT[..14 + 40 + 4]);
    assert_eq!(s.error, Some(DecodeError::TruncatedIp));
    let i = ip(&s);
    assert_eq!((i.src, i.proto, i.ip_id), (v6(1), 44, 0));
    assert_eq!(s.l4, L4::None);
}

#[test]
fn unknown_ip_protocol_is_other() {
    let mut f = ETH_UDP_137_NOT_NBNS.to_vec();
    f[14 + 9] = 47; // GRE
    let s = run(LinkKind::Ethernet, &f);
    assert_eq!((s.l4, s.error, ip(&s).proto), (L4::Other, None, 47));
    assert_eq!(s.payload_len, 16);
}

#[test]
fn every_full_fixture_decodes_cleanly() {
    for (name, link, data) in ALL {
        let s = run(*link, data);
        assert_eq!(s.error, None, "{name}");
        assert_eq!(s.cap_len as usize, data.len(), "{name}");
    }
}

/// What a prefix of a frame decodes must agree with the whole frame.
fn assert_consistent(name: &str, n: usize, p: &PacketSummary, full: &PacketSummary) {
    let at = format!("{name} cut at {n}");
    assert_eq!(p.cap_len as usize, n, "{at}");
    if p.vlan.is_some() {
        assert_eq!(p.vlan, full.vlan, "{at}");
    }
    if let Some(ip) = p.ip {
        let f = full.ip.expect(&at);
        assert_eq!((ip.src, ip.dst, ip.ttl, ip.total_len), (f.src, f.dst, f.ttl, f.total_len), "{at}");
        if p.error.is_none() {
            assert_eq!(ip, f, "{at}");
        }
    }
    match (&p.l4, &full.l4) {
        (L4::None, _) => {}
        (L4::Tcp(a), L4::Tcp(b)) => {
            assert_eq!((a.sport, a.dport, a.flags, a.seq, a.ack), (b.sport, b.dport, b.flags, b.seq, b.ack), "{at}");
            assert!(a.opts.count <= b.opts.count, "{at}");
            assert!(a.opts.mss.is_none() || a.opts.mss == b.opts.mss, "{at}");
        }
        (L4::Icmp(a), L4::Icmp(b)) => {
            assert_eq!((a.v6, a.icmp_type, a.code), (b.v6, b.icmp_type, b.code), "{at}");
            assert!(a.echo.is_none() || a.echo == b.echo, "{at}");
            if let (Some(qa), Some(qb)) = (a.quoted, b.quoted) {
                assert_eq!((qa.src, qa.dst, qa.proto), (qb.src, qb.dst, qb.proto), "{at}");
                assert!(!qa.has_ports || (qa.sport, qa.dport) == (qb.sport, qb.dport), "{at}");
            }
        }
        (a, b) => assert_eq!(a, b, "{at}"),
    }
    if p.l4 != L4::None && p.error.is_none() {
        assert_eq!(p.payload_len, full.payload_len, "{at}");
    }
    for (a, b) in p.payload_head.iter().zip(full.payload_head.iter()) {
        assert!(*a == 0 || a == b, "{at}");
    }
    assert_eq!(p.payload_facts & !full.payload_facts, 0, "{at}");
}

#[test]
fn every_truncation_of_every_fixture() {
    for (name, link, data) in ALL {
        let full = run(*link, data);
        for n in 0..=data.len() {
            let p = run(*link, &data[..n]);
            assert_consistent(name, n, &p, &full);
        }
    }
}

/// xorshift64 (Marsaglia 2003): enough randomness for mutation tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(256);
    for (_, link, data) in ALL {
        for _ in 0..2000 {
            buf.clear();
            buf.extend_from_slice(data);
            for _ in 0..=rng.below(4) {
                let at = rng.below(buf.len());
                buf[at] = rng.next() as u8;
            }
            let cut = buf.len() - rng.below(8).min(buf.len());
            let kind = LinkKind::ALL[rng.below(LinkKind::ALL.len())];
            let _ = run(*link, &buf[..cut]);
            let _ = run(kind, &buf[..cut]);
        }
    }
}

#[test]
fn every_link_kind_on_every_fixture() {
    for (_, _, data) in ALL {
        for kind in LinkKind::ALL {
            for n in 0..=data.len() {
                let _ = run(kind, &data[..n]);
            }
        }
    }
}

#[test]
fn pflog_headers_of_both_lengths_reach_the_ip_packet() {
    let s = run(LinkKind::Pflog, PFLOG_IPV4);
    assert_eq!(s.error, None);
    assert_eq!((ip(&s).ttl, ip(&s).ip_id), (1, 0x4a4b));
    assert_eq!(udp(&s), UdpInfo { sport: 40001, dport: 33434 });
    let s = run(LinkKind::Pflog, PFLOG_IPV6);
    assert_eq!(s.error, None);
    assert!(ip(&s).is_v6());
    assert!(s.icmp().is_some_and(|i| i.is_echo_request()));
    // A header cut short, or claiming less than the minimum, is a link error.
    assert_eq!(run(LinkKind::Pflog, &PFLOG_IPV4[..80]).error, Some(DecodeError::TruncatedLink));
    let mut short = PFLOG_IPV4.to_vec();
    short[0] = 20;
    assert_eq!(run(LinkKind::Pflog, &short).error, Some(DecodeError::TruncatedLink));
    assert_eq!(LinkKind::from_dlt(117), Some(LinkKind::Pflog));
}

#[test]
fn cisco_hdlc_captures_link_type_104_are_decoded() {
    // Issue 13: the README lists Cisco HDLC, but DLT 104 was refused.
    let kind = LinkKind::from_dlt(104).expect("LINKTYPE_C_HDLC is supported");
    let s = run(kind, CHDLC_IPV4);
    assert_eq!(s.error, None);
    assert!(s.ip.is_some() && s.udp().is_some(), "{s:?}");
}
