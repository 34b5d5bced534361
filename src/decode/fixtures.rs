//! Test frames, one per decoder case, written out field by field. Checksums
//! are zero: the decoder does not verify them. Addresses are from the
//! documentation ranges (RFC 5737, RFC 3849).

use crate::decode::summary::LinkKind;

/// Ethernet II: dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb (12 bytes),
/// followed by the EtherType in each fixture.
macro_rules! macs {
    () => {
        [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]
    };
}

/// Builds a fixture from byte groups (a const-friendly concatenation).
macro_rules! frame {
    ($($part:expr),+ $(,)?) => {{
        const LEN: usize = 0 $(+ $part.len())+;
        const OUT: [u8; LEN] = {
            let mut out = [0u8; LEN];
            let mut at = 0;
            $(
                let part = $part;
                let mut i = 0;
                while i < part.len() {
                    out[at] = part[i];
                    at += 1;
                    i += 1;
                }
            )+
            let _ = at;
            out
        };
        &OUT
    }};
}

/// Ethernet + IPv4 + TCP SYN, Linux-style options, 74 bytes.
pub const ETH_IPV4_TCP_SYN: &[u8] = frame!(
    macs!(),
    [0x08, 0x00], // EtherType IPv4
    [
        0x45, 0x00, 0x00, 0x3c, // v4, IHL 5, TOS 0, total length 60
        0x12, 0x34, 0x40, 0x00, // id 0x1234, DF, offset 0
        0x40, 0x06, 0x00, 0x00, // TTL 64, proto TCP, checksum
        0xcb, 0x00, 0x71, 0x05, // src 203.0.113.5
        0xc0, 0x00, 0x02, 0x0a, // dst 192.0.2.10
    ],
    [
        0x9c, 0x40, 0x00, 0x9e, // sport 40000, dport 158 (pcmail-srv)
        0x01, 0x02, 0x03, 0x04, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // data offset 10, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // TS 1, 0
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
    ],
);

/// IPv4 + UDP 53000 -> 53 with a 4-byte payload (32 bytes), shared by the
/// tagged and cooked fixtures.
const IPV4_UDP_DNS: [u8; 32] = [
    0x45, 0x00, 0x00, 0x20, // v4, IHL 5, total length 32
    0x00, 0x01, 0x00, 0x00, // id 1, no flags
    0x40, 0x11, 0x00, 0x00, // TTL 64, proto UDP
    0xc0, 0x00, 0x02, 0x0a, // src 192.0.2.10
    0xc6, 0x33, 0x64, 0x07, // dst 198.51.100.7
    0xcf, 0x08, 0x00, 0x35, // sport 53000, dport 53
    0x00, 0x0c, 0x00, 0x00, // UDP length 12, checksum
    0xde, 0xad, 0xbe, 0xef, // payload
];

/// Ethernet + 802.1Q VLAN 100 + IPv4 + UDP.
pub const ETH_VLAN: &[u8] = frame!(
    macs!(),
    [0x81, 0x00, 0x00, 0x64], // 802.1Q, PCP 0, VID 100
    [0x08, 0x00],             // inner EtherType IPv4
    IPV4_UDP_DNS,
);

/// Ethernet + QinQ: 802.1ad S-tag VLAN 200, C-tag VLAN 100 + IPv4 + UDP.
pub const ETH_QINQ: &[u8] = frame!(
    macs!(),
    [0x88, 0xa8, 0x00, 0xc8], // 802.1ad S-tag, VID 200
    [0x81, 0x00, 0x00, 0x64], // 802.1Q C-tag, VID 100
    [0x08, 0x00],             // inner EtherType IPv4
    IPV4_UDP_DNS,
);

/// Ethernet + legacy QinQ (0x9100) VLAN 300 + 802.1Q VLAN 100 + IPv4 + UDP.
pub const ETH_QINQ_9100: &[u8] = frame!(
    macs!(),
    [0x91, 0x00, 0x01, 0x2c], // 0x9100 outer tag, VID 300
    [0x81, 0x00, 0x00, 0x64], // 802.1Q, VID 100
    [0x08, 0x00],             // inner EtherType IPv4
    IPV4_UDP_DNS,
);

/// Linux cooked v1 + IPv4 + UDP.
pub const SLL_IPV4_UDP: &[u8] = frame!(
    [0x00, 0x00],                                     // packet type: to us
    [0x00, 0x01],                                     // ARPHRD_ETHER
    [0x00, 0x06],                                     // link-layer address length 6
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00], // address, padded to 8
    [0x08, 0x00],                                     // protocol IPv4
    IPV4_UDP_DNS,
);

/// Linux cooked v2 + IPv4 + TCP ACK.
pub const SLL2_IPV4_TCP: &[u8] = frame!(
    [0x08, 0x00],                                     // protocol IPv4
    [0x00, 0x00],                                     // reserved
    [0x00, 0x00, 0x00, 0x02],                         // interface index 2
    [0x00, 0x01],                                     // ARPHRD_ETHER
    [0x04],                                           // packet type: outgoing
    [0x06],                                           // address length 6
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00], // address
    [
        0x45, 0x00, 0x00, 0x28, // v4, total length 40
        0x00, 0x02, 0x40, 0x00, // id 2, DF
        0x80, 0x06, 0x00, 0x00, // TTL 128, TCP
        0xc0, 0x00, 0x02, 0x0a, // src 192.0.2.10
        0xc6, 0x33, 0x64, 0x07, // dst 198.51.100.7
    ],
    [
        0x01, 0xbb, 0xc3, 0x50, // sport 443, dport 50000
        0x00, 0x00, 0x00, 0x64, // seq 100
        0x00, 0x00, 0x00, 0xc8, // ack 200
        0x50, 0x10, 0x01, 0x00, // data offset 5, ACK, window 256
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
    ],
);

/// BSD NULL, little-endian AF_INET (an x86 host) + IPv4 + ICMP echo.
pub const NULL_LE_IPV4_ICMP: &[u8] = frame!(
    [0x02, 0x00, 0x00, 0x00], // AF_INET, host byte order (LE)
    [
        0x45, 0x00, 0x00, 0x24, // v4, total length 36
        0x00, 0x03, 0x00, 0x00, // id 3
        0x40, 0x01, 0x00, 0x00, // TTL 64, ICMP
        0x7f, 0x00, 0x00, 0x01, // src 127.0.0.1
        0x7f, 0x00, 0x00, 0x01, // dst 127.0.0.1
    ],
    [
        0x08, 0x00, 0x00, 0x00, // echo request, code 0, checksum
        0x00, 0x2a, 0x00, 0x01, // id 42, seq 1
    ],
    *b"abcdefgh",
);

/// BSD LOOP, big-endian AF_INET6 = 30 (macOS) + IPv6 + UDP.
pub const LOOP_BE_IPV6_UDP: &[u8] = frame!(
    [0x00, 0x00, 0x00, 0x1e], // AF_INET6 (Darwin), network byte order
    [
        0x60, 0x00, 0x00, 0x00, // v6, traffic class 0, flow 0
        0x00, 0x0c, 0x11, 0x40, // payload length 12, next UDP, hop limit 64
    ],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // src ::1
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // dst ::1
    [
        0xd4, 0x31, 0x00, 0x35, // sport 54321, dport 53
        0x00, 0x0c, 0x00, 0x00, // UDP length 12, checksum
        0x01, 0x02, 0x03, 0x04, // payload
    ],
);

/// 2001:db8::1
const V6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// 2001:db8::2
const V6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Raw IPv4: a UNIX traceroute probe, UDP to 33434 with TTL 1.
pub const RAW_IPV4_TRACEROUTE: &[u8] = frame!(
    [
        0x45, 0x00, 0x00, 0x3c, // v4, total length 60
        0x4a, 0x4b, 0x00, 0x00, // id 0x4a4b
        0x01, 0x11, 0x00, 0x00, // TTL 1, UDP
        0xcb, 0x00, 0x71, 0x05, // src 203.0.113.5
        0xc0, 0x00, 0x02, 0x0a, // dst 192.0.2.10
    ],
    [
        0x9c, 0x41, 0x82, 0x9a, // sport 40001, dport 33434
        0x00, 0x28, 0x00, 0x00, // UDP length 40, checksum
    ],
    [0x40; 32], // 32 payload bytes
);

/// PPP (address/control FF 03, protocol 0x0021) + the IPv4 traceroute probe.
pub const PPP_IPV4: &[u8] = frame!([0xff, 0x03, 0x00, 0x21], RAW_IPV4_TRACEROUTE);

/// PPP without address/control, protocol 0x0281 (MPLS unicast), two labels
/// (16, 17; the second with bottom-of-stack), then the IPv4 probe.
pub const PPP_MPLS_IPV4: &[u8] = frame!(
    [0x02, 0x81],             // PPP protocol MPLS unicast
    [0x00, 0x01, 0x00, 0x40], // label 16, TC 0, S 0, TTL 64
    [0x00, 0x01, 0x11, 0x40], // label 17, TC 0, S 1, TTL 64
    RAW_IPV4_TRACEROUTE,
);

/// Ethernet, EtherType 0x8847 (MPLS unicast), one label with S set, IPv4 probe.
pub const ETH_MPLS_IPV4: &[u8] = frame!(
    macs!(),
    [0x88, 0x47],             // MPLS unicast
    [0x00, 0x01, 0x01, 0x3f], // label 16, S 1, TTL 63
    RAW_IPV4_TRACEROUTE,
);

/// Cisco HDLC (unicast 0x0f, control 0x00, EtherType 0x0800) + IPv4 probe.
pub const CHDLC_IPV4: &[u8] = frame!([0x0f, 0x00, 0x08, 0x00], RAW_IPV4_TRACEROUTE);

/// Raw IPv6 + ICMPv6 echo request.
pub const RAW_IPV6_ICMPV6_ECHO: &[u8] = frame!(
    [
        0x60, 0x00, 0x00, 0x00, // v6
        0x00, 0x10, 0x3a, 0x40, // payload length 16, next ICMPv6, hop limit 64
    ],
    V6_A, // src 2001:db8::1
    V6_B, // dst 2001:db8::2
    [
        0x80, 0x00, 0x00, 0x00, // echo request, code 0, checksum
        0x12, 0x34, 0x00, 0x07, // id 0x1234, seq 7
    ],
    *b"pingping",
);

/// Ethernet + IPv6 + TCP SYN-ACK with MSS 1440.
pub const ETH_IPV6_TCP: &[u8] = frame!(
    macs!(),
    [0x86, 0xdd], // EtherType IPv6
    [
        0x60, 0x00, 0x00, 0x00, // v6
        0x00, 0x18, 0x06, 0x39, // payload length 24, next TCP, hop limit 57
    ],
    V6_B, // src 2001:db8::2
    V6_A, // dst 2001:db8::1
    [
        0x00, 0x50, 0x9c, 0x40, // sport 80, dport 40000
        0x0a, 0x0b, 0x0c, 0x0d, // seq
        0x01, 0x02, 0x03, 0x05, // ack
        0x60, 0x12, 0xff, 0xff, // data offset 6, SYN+ACK, window 65535
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
        0x02, 0x04, 0x05, 0xa0, // MSS 1440
    ],
);

/// Ethernet + IPv4 + UDP 137 -> 137: the Windows NodeStatus query for "*"
/// (SIGNATURES.md section 5): 50-byte payload, 92-byte frame.
pub const ETH_NBNS_STAR: &[u8] = frame!(
    macs!(),
    [0x08, 0x00],
    [
        0x45, 0x00, 0x00, 0x4e, // v4, total length 78
        0x01, 0x00, 0x00, 0x00, // id 0x0100 (a little-endian host's 1)
        0x80, 0x11, 0x00, 0x00, // TTL 128, UDP
        0xc6, 0x33, 0x64, 0x07, // src 198.51.100.7
        0xc0, 0x00, 0x02, 0x0a, // dst 192.0.2.10
    ],
    [
        0x00, 0x89, 0x00, 0x89, // sport 137, dport 137
        0x00, 0x3a, 0x00, 0x00, // UDP length 58, checksum
    ],
    [
        0x80, 0x01, // transaction id
        0x00, 0x00, // flags: query, opcode 0, no flags
        0x00, 0x01, // QDCOUNT 1
        0x00, 0x00, // ANCOUNT
        0x00, 0x00, // NSCOUNT
        0x00, 0x00, // ARCOUNT
        0x20, // name length 32
    ],
    *b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // "*" + 15 NULs, half-ASCII
    [
        0x00, // end of name
        0x00, 0x21, // type NBSTAT
        0x00, 0x01, // class IN
    ],
);

/// Ethernet + IPv4 + UDP 50001 -> 137 whose payload is not NBNS.
pub const ETH_UDP_137_NOT_NBNS: &[u8] = frame!(
    macs!(),
    [0x08, 0x00],
    [
        0x45, 0x00, 0x00, 0x24, // v4, total length 36
        0x00, 0x07, 0x00, 0x00, // id 7
        0x40, 0x11, 0x00, 0x00, // TTL 64, UDP
        0xc6, 0x33, 0x64, 0x07, // src 198.51.100.7
        0xc0, 0x00, 0x02, 0x0a, // dst 192.0.2.10
    ],
    [
        0xc3, 0x51, 0x00, 0x89, // sport 50001, dport 137
        0x00, 0x10, 0x00, 0x00, // UDP length 16
    ],
    *b"GET / HT",
);

/// Ethernet + IPv4 + ICMP echo request to a directed broadcast.
pub const ETH_ICMP_ECHO: &[u8] = frame!(
    macs!(),
    [0x08, 0x00],
    [
        0x45, 0x00, 0x00, 0x24, // v4, total length 36
        0x00, 0x08, 0x00, 0x00, // id 8
        0x80, 0x01, 0x00, 0x00, // TTL 128, ICMP
        0xc6, 0x33, 0x64, 0x07, // src 198.51.100.7
        0xc0, 0x00, 0x02, 0xff, // dst 192.0.2.255
    ],
    [
        0x08, 0x00, 0x00, 0x00, // echo request, code 0
        0x02, 0x00, 0x00, 0x01, // id 0x0200, seq 1 (Windows ping)
    ],
    *b"abcdefgh",
);

/// Ethernet + IPv4 + ICMP port unreachable from a traceroute target,
/// quoting the probe (UDP to 33464) whose length claims 60 bytes.
pub const ETH_ICMP_PORT_UNREACH_UDP: &[u8] = frame!(
    macs!(),
    [0x08, 0x00],
    [
        0x45, 0x00, 0x00, 0x38, // v4, total length 56
        0x00, 0x09, 0x00, 0x00, // id 9
        0x40, 0x01, 0x00, 0x00, // TTL 64, ICMP
        0xc0, 0x00, 0x02, 0x0a, // src 192.0.2.10 (the target)
        0xcb, 0x00, 0x71, 0x05, // dst 203.0.113.5 (the tracer)
    ],
    [
        0x03, 0x03, 0x00, 0x00, // destination unreachable, port unreachable
        0x00, 0x00, 0x00, 0x00, // unused
    ],
    [
        0x45, 0x00, 0x00, 0x3c, // quoted: v4, total length 60 (only 28 quoted)
        0x4a, 0x5e, 0x00, 0x00, // quoted id 0x4a5e
        0x01, 0x11, 0x00, 0x00, // quoted TTL 1, UDP
        0xcb, 0x00, 0x71, 0x05, // quoted src 203.0.113.5
        0xc0, 0x00, 0x02, 0x0a, // quoted dst 192.0.2.10
        0x9c, 0x41, 0x82, 0xb8, // quoted sport 40001, dport 33464
        0x00, 0x28, 0x00, 0x00, // quoted UDP length 40
    ],
);

/// Ethernet + IPv4 + ICMP time exceeded from a router, quoting a TCP SYN.
pub const ETH_ICMP_TIME_EXCEEDED_TCP: &[u8] = frame!(
    macs!(),
    [0x08, 0x00],
    [
        0x45, 0xc0, 0x00, 0x38, // v4, TOS 0xc0, total length 56
        0x00, 0x0a, 0x00, 0x00, // id 10
        0xff, 0x01, 0x00, 0x00, // TTL 255, ICMP
        0xc6, 0x33, 0x64, 0x01, // src 198.51.100.1 (router)
        0xc0, 0x00, 0x02, 0x0a, // dst 192.0.2.10
    ],
    [
        0x0b, 0x00, 0x00, 0x00, // time exceeded, TTL exceeded in transit
        0x00, 0x00, 0x00, 0x00, // unused
    ],
    [
        0x45, 0x00, 0x00, 0x3c, // quoted: v4, total length 60
        0x77, 0x88, 0x40, 0x00, // quoted id 0x7788, DF
        0x01, 0x06, 0x00, 0x00, // quoted TTL 1, TCP
        0xc0, 0x00, 0x02, 0x0a, // quoted src 192.0.2.10
        0xcb, 0x00, 0x71, 0x05, // quoted dst 203.0.113.5
        0xc3, 0x50, 0x00, 0x50, // quoted sport 50000, dport 80
        0xde, 0xad, 0xbe, 0xef, // quoted seq
    ],
);

/// Ethernet + IPv6 + ICMPv6 echo request.
pub const ETH_ICMPV6_ECHO: &[u8] = frame!(
    macs!(),
    [0x86, 0xdd],
    [
        0x60, 0x00, 0x00, 0x00, // v6
        0x00, 0x0c, 0x3a, 0x40, // payload length 12, ICMPv6, hop limit 64
    ],
    V6_A,
    V6_B,
    [
        0x80, 0x00, 0x00, 0x00, // echo request
        0xbe, 0xef, 0x00, 0x01, // id 0xbeef, seq 1
    ],
    *b"ping",
);

/// Ethernet + IPv6 + ICMPv6 port unreachable quoting a TCP SYN whose IPv6
/// payload length claims 40 bytes (20 quoted).
pub const ETH_ICMPV6_UNREACH_TCP: &[u8] = frame!(
    macs!(),
    [0x86, 0xdd],
    [
        0x60, 0x00, 0x00, 0x00, // v6
        0x00, 0x44, 0x3a, 0x40, // payload length 68, ICMPv6, hop limit 64
    ],
    V6_B,
    V6_A,
    [
        0x01, 0x04, 0x00, 0x00, // destination unreachable, port unreachable
        0x00, 0x00, 0x00, 0x00, // unused
    ],
    [
        0x60, 0x00, 0x00, 0x00, // quoted: v6
        0x00, 0x28, 0x06, 0x3f, // quoted payload length 40, TCP, hop limit 63
    ],
    V6_A, // quoted src
    V6_B, // quoted dst
    [
        0x9c, 0x40, 0x01, 0xbb, // quoted sport 40000, dport 443
        0x11, 0x22, 0x33, 0x44, // quoted seq
        0x00, 0x00, 0x00, 0x00, // quoted ack
        0x50, 0x02, 0xfa, 0xf0, // quoted data offset 5, SYN
        0x00, 0x00, 0x00, 0x00, // quoted checksum, urgent pointer
    ],
);

/// Ethernet + IPv4 with a loose source route option + UDP to telnet.
pub const ETH_IPV4_LSRR: &[u8] = frame!(
    macs!(),
    [0x08, 0x00],
    [
        0x47, 0x00, 0x00, 0x24, // v4, IHL 7, total length 36
        0x00, 0x0b, 0x00, 0x00, // id 11
        0x40, 0x11, 0x00, 0x00, // TTL 64, UDP
        0xcb, 0x00, 0x71, 0x05, // src 203.0.113.5
        0xc0, 0x00, 0x02, 0x0a, // dst 192.0.2.10
        0x01, // option NOP
        0x83, 0x07, 0x04, // option LSRR, length 7, pointer 4
        0xc6, 0x33, 0x64, 0x01, // route: 198.51.100.1
    ],
    [
        0x04, 0x00, 0x00, 0x17, // sport 1024, dport 23
        0x00, 0x08, 0x00, 0x00, // UDP length 8 (no payload)
    ],
);

/// Ethernet + IPv4 non-first fragment (offset 185 * 8 = 1480) of UDP.
pub const ETH_IPV4_FRAGMENT: &[u8] = frame!(
    macs!(),
    [0x08, 0x00],
    [
        0x45, 0x00, 0x00, 0x24, // v4, total length 36
        0xab, 0xcd, 0x00, 0xb9, // id 0xabcd, MF clear, offset 185
        0x40, 0x11, 0x00, 0x00, // TTL 64, UDP
        0xcb, 0x00, 0x71, 0x05, // src 203.0.113.5
        0xc0, 0x00, 0x02, 0x0a, // dst 192.0.2.10
    ],
    [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07], // fragment data
    [0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f],
);

/// Ethernet + IPv6 + fragment header (first fragment) + UDP.
pub const ETH_IPV6_FIRST_FRAGMENT: &[u8] = frame!(
    macs!(),
    [0x86, 0xdd],
    [
        0x60, 0x00, 0x00, 0x00, // v6
        0x00, 0x18, 0x2c, 0x40, // payload length 24, next Fragment, hop limit 64
    ],
    V6_A,
    V6_B,
    [
        0x11, 0x00, 0x00, 0x01, // next UDP, reserved, offset 0, M=1
        0xde, 0xad, 0xbe, 0xef, // identification
    ],
    [
        0x13, 0x88, 0x13, 0x89, // sport 5000, dport 5001
        0x05, 0xdc, 0x00, 0x00, // UDP length 1500 (whole datagram)
    ],
    *b"fragment",
);

/// Ethernet + ARP who-has 192.0.2.1 tell 192.0.2.10.
pub const ETH_ARP: &[u8] = frame!(
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // dst broadcast
    [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb], // src
    [0x08, 0x06],                         // EtherType ARP
    [
        0x00, 0x01, 0x08, 0x00, // hardware Ethernet, protocol IPv4
        0x06, 0x04, 0x00, 0x01, // sizes 6 and 4, operation request
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // sender MAC
        0xc0, 0x00, 0x02, 0x0a, // sender IP 192.0.2.10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC
        0xc0, 0x00, 0x02, 0x01, // target IP 192.0.2.1
    ],
);

/// Every fixture with its link type.
/// OpenBSD pflog header (net/if_pflog.h, `struct pfloghdr`, 100 bytes since
/// OpenBSD 5.x): length 100, AF_INET, action PF_DROP (1), reason 0,
/// ifname "em0", no ruleset, rule 3, subrule -1, uid/pid fields, dir PF_IN
/// (1), rewritten 0, naf AF_INET, pad, saddr/daddr (unused here), ports.
const PFLOG_OPENBSD_V4_HDR: [u8; 100] = {
    let mut h = [0u8; 100];
    h[0] = 100;
    h[1] = 2;
    h[2] = 1;
    h[4] = b'e';
    h[5] = b'm';
    h[6] = b'0';
    h[39] = 3; // rulenr 3 (network order, bytes 36..40)
    h[40] = 0xff; // subrulenr -1
    h[41] = 0xff;
    h[42] = 0xff;
    h[43] = 0xff;
    h[60] = 1; // dir: in
    h[62] = 2; // naf
    h
};

/// A FreeBSD-style pflog header: `length` 61 (PFLOG_REAL_HDRLEN, the
/// header up to its padding), word-aligned to 64 bytes on the wire, AF_INET6
/// as FreeBSD numbers it (28), action PF_PASS (0).
const PFLOG_FREEBSD_V6_HDR: [u8; 64] = {
    let mut h = [0u8; 64];
    h[0] = 61;
    h[1] = 28;
    h[4] = b'v';
    h[5] = b't';
    h[6] = b'n';
    h[7] = b'e';
    h[8] = b't';
    h[9] = b'0';
    h[60] = 1;
    h
};

/// pflog (LINKTYPE_PFLOG, 117), OpenBSD header, carrying the traceroute probe.
pub const PFLOG_IPV4: &[u8] = frame!(PFLOG_OPENBSD_V4_HDR, RAW_IPV4_TRACEROUTE);
/// pflog, FreeBSD header, carrying an ICMPv6 echo request.
pub const PFLOG_IPV6: &[u8] = frame!(PFLOG_FREEBSD_V6_HDR, RAW_IPV6_ICMPV6_ECHO);

pub const ALL: &[(&str, LinkKind, &[u8])] = &[
    ("eth_ipv4_tcp_syn", LinkKind::Ethernet, ETH_IPV4_TCP_SYN),
    ("eth_vlan", LinkKind::Ethernet, ETH_VLAN),
    ("eth_qinq", LinkKind::Ethernet, ETH_QINQ),
    ("eth_qinq_9100", LinkKind::Ethernet, ETH_QINQ_9100),
    ("sll", LinkKind::LinuxSll, SLL_IPV4_UDP),
    ("sll2", LinkKind::LinuxSll2, SLL2_IPV4_TCP),
    ("null_le", LinkKind::Null, NULL_LE_IPV4_ICMP),
    ("loop_be_v6", LinkKind::Null, LOOP_BE_IPV6_UDP),
    ("raw_ipv4", LinkKind::Raw, RAW_IPV4_TRACEROUTE),
    ("raw_ipv6", LinkKind::Raw, RAW_IPV6_ICMPV6_ECHO),
    ("ipv4_link", LinkKind::Ipv4, RAW_IPV4_TRACEROUTE),
    ("ipv6_link", LinkKind::Ipv6, RAW_IPV6_ICMPV6_ECHO),
    ("eth_ipv6_tcp", LinkKind::Ethernet, ETH_IPV6_TCP),
    ("nbns_star", LinkKind::Ethernet, ETH_NBNS_STAR),
    ("udp_137_not_nbns", LinkKind::Ethernet, ETH_UDP_137_NOT_NBNS),
    ("icmp_echo", LinkKind::Ethernet, ETH_ICMP_ECHO),
    ("icmp_port_unreach", LinkKind::Ethernet, ETH_ICMP_PORT_UNREACH_UDP),
    ("icmp_time_exceeded", LinkKind::Ethernet, ETH_ICMP_TIME_EXCEEDED_TCP),
    ("icmpv6_echo", LinkKind::Ethernet, ETH_ICMPV6_ECHO),
    ("icmpv6_unreach", LinkKind::Ethernet, ETH_ICMPV6_UNREACH_TCP),
    ("ipv4_lsrr", LinkKind::Ethernet, ETH_IPV4_LSRR),
    ("ipv4_fragment", LinkKind::Ethernet, ETH_IPV4_FRAGMENT),
    ("ipv6_first_fragment", LinkKind::Ethernet, ETH_IPV6_FIRST_FRAGMENT),
    ("arp", LinkKind::Ethernet, ETH_ARP),
    ("ppp_ipv4", LinkKind::Ppp, PPP_IPV4),
    ("ppp_mpls_ipv4", LinkKind::Ppp, PPP_MPLS_IPV4),
    ("eth_mpls_ipv4", LinkKind::Ethernet, ETH_MPLS_IPV4),
    ("chdlc_ipv4", LinkKind::Ppp, CHDLC_IPV4),
    ("pflog_ipv4", LinkKind::Pflog, PFLOG_IPV4),
    ("pflog_ipv6", LinkKind::Pflog, PFLOG_IPV6),
];
