//! The fixed-size packet summary: everything the analyzers may know about one
//! frame, decoded once in the reader thread.
//!
//! `PacketSummary` is `Copy` and owns no heap data, so batches of them cross
//! the crossbeam channels by value and the reader never allocates per packet.
//! A field that the frame did not carry (or that the capture cut off) is
//! `None`; `error` records where decoding stopped, if it stopped early.

use std::net::IpAddr;

/// Link-layer header types picket can decode (the pcap `LINKTYPE_*` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// LINKTYPE_ETHERNET (1), with any 802.1Q / QinQ tags.
    Ethernet,
    /// LINKTYPE_NULL (0) and LINKTYPE_LOOP (108): 4-byte address family.
    Null,
    /// LINKTYPE_RAW (101, and DLT_RAW 12/14 on some systems): bare IPv4 or IPv6.
    Raw,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
    /// LINKTYPE_PPP (9) and LINKTYPE_PPP_HDLC (50), including Cisco HDLC framing.
    Ppp,
    /// LINKTYPE_PFLOG (117): OpenBSD/FreeBSD pf's log interface.
    Pflog,
}

impl LinkKind {
    /// Every supported kind, in the order stats report them.
    pub const ALL: [LinkKind; 9] = [
        LinkKind::Ethernet,
        LinkKind::Null,
        LinkKind::Raw,
        LinkKind::Ipv4,
        LinkKind::Ipv6,
        LinkKind::LinuxSll,
        LinkKind::LinuxSll2,
        LinkKind::Ppp,
        LinkKind::Pflog,
    ];

    /// Maps a pcap data-link type number to a supported kind.
    pub fn from_dlt(dlt: i32) -> Option<LinkKind> {
        match dlt {
            1 => Some(LinkKind::Ethernet),
            0 | 108 => Some(LinkKind::Null),
            12 | 14 | 101 => Some(LinkKind::Raw),
            228 => Some(LinkKind::Ipv4),
            229 => Some(LinkKind::Ipv6),
            113 => Some(LinkKind::LinuxSll),
            276 => Some(LinkKind::LinuxSll2),
            // LINKTYPE_C_HDLC (104): Cisco HDLC, decoded by the PPP framing.
            9 | 50 | 104 => Some(LinkKind::Ppp),
            117 => Some(LinkKind::Pflog),
            _ => None,
        }
    }

    /// Stable name used in stats and errors.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Ethernet => "ethernet",
            LinkKind::Null => "null",
            LinkKind::Raw => "raw",
            LinkKind::Ipv4 => "ipv4",
            LinkKind::Ipv6 => "ipv6",
            LinkKind::LinuxSll => "linux_sll",
            LinkKind::LinuxSll2 => "linux_sll2",
            LinkKind::Ppp => "ppp",
            LinkKind::Pflog => "pflog",
        }
    }

    /// Index into per-kind counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where and why decoding stopped early. Counted per kind in the stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The link-layer header is shorter than its fixed size.
    TruncatedLink,
    /// The IP header is cut short or its length fields are impossible.
    TruncatedIp,
    /// The IP header is malformed (bad version, bad IHL, bad extension header).
    MalformedIp,
    /// The TCP header is cut short or its data offset is impossible.
    TruncatedTcp,
    /// The UDP header is cut short or its length field is impossible.
    TruncatedUdp,
    /// The ICMP / ICMPv6 header is cut short.
    TruncatedIcmp,
    /// TCP options run past the header or have an impossible length.
    MalformedTcpOptions,
    /// An ICMP error quotes a packet that cannot be decoded.
    MalformedIcmpQuote,
}

impl DecodeError {
    /// Every kind, in the order stats report them.
    pub const ALL: [DecodeError; 8] = [
        DecodeError::TruncatedLink,
        DecodeError::TruncatedIp,
        DecodeError::MalformedIp,
        DecodeError::TruncatedTcp,
        DecodeError::TruncatedUdp,
        DecodeError::TruncatedIcmp,
        DecodeError::MalformedTcpOptions,
        DecodeError::MalformedIcmpQuote,
    ];

    /// Stable name used in stats.
    pub fn name(self) -> &'static str {
        match self {
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::TruncatedIp => "truncated_ip",
            DecodeError::MalformedIp => "malformed_ip",
            DecodeError::TruncatedTcp => "truncated_tcp",
            DecodeError::TruncatedUdp => "truncated_udp",
            DecodeError::TruncatedIcmp => "truncated_icmp",
            DecodeError::MalformedTcpOptions => "malformed_tcp_options",
            DecodeError::MalformedIcmpQuote => "malformed_icmp_quote",
        }
    }

    /// Index into per-kind counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// IPv4 option flags (bit set in `IpInfo::options`).
pub mod ipopt {
    /// The header has any options at all (IHL > 5).
    pub const PRESENT: u8 = 1 << 0;
    /// Loose source and record route (type 131).
    pub const LSRR: u8 = 1 << 1;
    /// Strict source and record route (type 137).
    pub const SSRR: u8 = 1 << 2;
    /// Record route (type 7).
    pub const RR: u8 = 1 << 3;
    /// Timestamp (type 68).
    pub const TIMESTAMP: u8 = 1 << 4;
    /// Options that could not be walked (bad length).
    pub const MALFORMED: u8 = 1 << 5;
}

/// Network-layer facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// IPv4 identification; for IPv6, the fragment header's id or 0.
    pub ip_id: u32,
    pub df: bool,
    pub mf: bool,
    /// Fragment offset in 8-byte units. Non-first fragments carry no L4 header.
    pub frag_offset: u16,
    /// `ipopt::*` bits.
    pub options: u8,
    /// IP protocol / final IPv6 next-header number.
    pub proto: u8,
    /// IPv4 total length or IPv6 payload length + 40, as the header claims.
    pub total_len: u32,
}

impl IpInfo {
    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// TCP flag bits as on the wire (low 8 bits of byte 13, plus NS as bit 8).
pub mod tcpflag {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
    pub const NS: u16 = 0x100;
}

/// TCP options, as far as picket cares (fingerprints and handshake facts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOpts {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// A SACK block option was present.
    pub sack: bool,
    /// Timestamp option (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
    /// Option kinds in wire order, one nibble each (first option in the low
    /// nibble): EOL=0 NOP=1 MSS=2 WS=3 SACKP=4 SACK=5 TS=8, any other kind=0xF.
    /// Up to 8 options; a fingerprint of the stack that built the SYN.
    pub layout: u32,
    /// Number of options walked (including NOPs).
    pub count: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    pub sport: u16,
    pub dport: u16,
    /// `tcpflag::*` bits.
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub opts: TcpOpts,
}

impl TcpInfo {
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
    /// A connection attempt: SYN set, ACK clear.
    pub fn is_syn_only(&self) -> bool {
        self.has(tcpflag::SYN) && !self.has(tcpflag::ACK)
    }
    /// A connection attempt a real stack would send: SYN, and none of ACK,
    /// FIN, RST, PSH, URG (ECN's ECE/CWR are allowed). SYN+FIN and friends
    /// are crafted probes (nmap -O, Xmas variants), not attempts.
    pub fn is_connection_attempt(&self) -> bool {
        let others = tcpflag::ACK | tcpflag::FIN | tcpflag::RST | tcpflag::PSH | tcpflag::URG;
        self.has(tcpflag::SYN) && self.flags & others == 0
    }
    /// A handshake answer: SYN and ACK set.
    pub fn is_syn_ack(&self) -> bool {
        self.has(tcpflag::SYN) && self.has(tcpflag::ACK)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpInfo {
    pub sport: u16,
    pub dport: u16,
}

/// The packet an ICMP error quotes (its IP header and first 8 payload bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ttl: u8,
    pub ip_id: u32,
    /// TCP/UDP source port; for a quoted ICMP echo, its identifier.
    pub sport: u16,
    /// TCP/UDP destination port; for a quoted ICMP echo, its sequence number.
    pub dport: u16,
    /// Whether the quoted ports (the first 4 payload bytes) were present;
    /// `tcp_seq` needs all 8.
    pub has_ports: bool,
    /// Quoted TCP sequence number (bytes 4..8 of the TCP header).
    pub tcp_seq: Option<u32>,
    /// Quoted ICMP type, when the quoted packet is ICMP.
    pub icmp_type: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpInfo {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// Echo request/reply identifier and sequence.
    pub echo: Option<(u16, u16)>,
    /// The quoted packet of an error message (unreachable, time exceeded,
    /// parameter problem, source quench, redirect; ICMPv6 1..=4).
    pub quoted: Option<Quoted>,
}

impl IcmpInfo {
    /// ICMPv4 type 3 / ICMPv6 type 1.
    pub fn is_unreachable(&self) -> bool {
        if self.v6 { self.icmp_type == 1 } else { self.icmp_type == 3 }
    }
    /// ICMPv4 type 11 / ICMPv6 type 3.
    pub fn is_time_exceeded(&self) -> bool {
        if self.v6 { self.icmp_type == 3 } else { self.icmp_type == 11 }
    }
    /// ICMPv4 type 8 / ICMPv6 type 128.
    pub fn is_echo_request(&self) -> bool {
        if self.v6 { self.icmp_type == 128 } else { self.icmp_type == 8 }
    }
    /// ICMPv4 type 0 / ICMPv6 type 129.
    pub fn is_echo_reply(&self) -> bool {
        if self.v6 { self.icmp_type == 129 } else { self.icmp_type == 0 }
    }
}

/// The transport layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum L4 {
    /// No transport header (non-IP frame, non-first fragment, cut short).
    #[default]
    None,
    Tcp(TcpInfo),
    Udp(UdpInfo),
    Icmp(IcmpInfo),
    /// An IP protocol picket does not decode (GRE, ESP, ...): see `IpInfo::proto`.
    Other,
}

/// Facts about the first payload bytes (bits of `PacketSummary::payload_facts`).
pub mod fact {
    /// UDP payload is an NBNS NodeStatus (NBSTAT, 0x21) query for the name "*"
    /// (SIGNATURES.md section 5).
    pub const NBNS_NODESTATUS_STAR: u8 = 1 << 0;
    /// UDP payload parses as an NBNS query of any other kind.
    pub const NBNS_QUERY: u8 = 1 << 1;
}

/// How a summary relates to IP fragmentation (bits of `PacketSummary::frag`),
/// set by the reassembler (`decode::defrag`).
pub mod frag {
    /// The summary is a datagram reassembled from fragments: its transport
    /// facts come from the whole datagram, its time is the last fragment's.
    pub const REASSEMBLED: u8 = 1 << 0;
    /// Delivered without all its fragments (timed out, evicted, or pending
    /// at the end of the input): what the fragments held was decoded.
    pub const INCOMPLETE: u8 = 1 << 1;
    /// A first fragment too short to hold the transport header (RFC 1858):
    /// an `anomaly` of kind `tiny_fragment`.
    pub const TINY: u8 = 1 << 2;
    /// Fragments of the datagram overlapped with different extents or bytes
    /// (RFC 1858, RFC 5722): an `anomaly` of kind `fragment_overlap`.
    pub const OVERLAP: u8 = 1 << 3;
    /// A fragment the reassembler could not hold, passed on as decoded.
    pub const UNREASSEMBLED: u8 = 1 << 4;
}

/// Number of leading payload bytes kept in every summary.
pub const PAYLOAD_HEAD: usize = 8;

/// One decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketSummary {
    /// Packet time, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    /// Length on the wire.
    pub wire_len: u32,
    /// Bytes captured (may be less than `wire_len` under a snaplen).
    pub cap_len: u32,
    /// The frame's EtherType (0 when the link type carries none, e.g. raw IP).
    pub ether_type: u16,
    /// Outermost VLAN id, if tagged.
    pub vlan: Option<u16>,
    pub ip: Option<IpInfo>,
    pub l4: L4,
    /// Transport payload length, as the headers claim it (not as captured).
    pub payload_len: u32,
    /// The first captured payload bytes, zero-padded.
    pub payload_head: [u8; PAYLOAD_HEAD],
    /// `fact::*` bits.
    pub payload_facts: u8,
    /// Set when decoding stopped before the end of the headers.
    pub error: Option<DecodeError>,
    /// `frag::*` bits: 0 for a packet that was never fragmented.
    pub frag: u8,
    /// Set by the dispatcher: the packet was sharded by its source address,
    /// so this worker owns the source's per-source state.
    pub owner_is_src: bool,
    /// Set by the dispatcher: the packet was sharded by its destination.
    pub owner_is_dst: bool,
    /// Set by the dispatcher on packets from outside to a home host: that
    /// host had been seen sending (any packet, to anyone) earlier in the run,
    /// in packet order. False means the sensor has no evidence that it sees
    /// the host's return path (an inbound-only tap, or a silent host).
    pub dst_spoke: bool,
    /// Set by the dispatcher: some home host had been seen sending earlier
    /// in the run. With neither this nor `dst_spoke`, the capture holds no
    /// packet from the home net so far: its return path is not visible (an
    /// inbound-only tap or sample), and silence proves nothing.
    pub home_spoke: bool,
    /// Set by the dispatcher (`victim::*` bits): whether the flood state of
    /// the destination (`DST`) or of the source (`SRC`) lives in this
    /// worker, and whether this summary is a copy made only for that state
    /// (`COPY`: no other detector sees it). See `detect::flood`.
    pub victim: u8,
}

/// Bits of `PacketSummary::victim`.
pub mod victim {
    /// Count the packet toward its destination's flood state here.
    pub const DST: u8 = 1;
    /// Count the packet as its source's own traffic (a request, an answer).
    pub const SRC: u8 = 2;
    /// A copy for the flood detector alone.
    pub const COPY: u8 = 4;
}

impl PacketSummary {
    /// An empty summary for a frame of the given time and lengths.
    pub fn new(ts_us: i64, wire_len: u32, cap_len: u32) -> PacketSummary {
        PacketSummary {
            ts_us,
            wire_len,
            cap_len,
            ether_type: 0,
            vlan: None,
            ip: None,
            l4: L4::None,
            payload_len: 0,
            payload_head: [0; PAYLOAD_HEAD],
            payload_facts: 0,
            error: None,
            frag: 0,
            owner_is_src: false,
            owner_is_dst: false,
            dst_spoke: false,
            home_spoke: false,
            victim: 0,
        }
    }

    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.l4 {
            L4::Tcp(t) => Some(t),
            _ => None,
        }
    }
    pub fn udp(&self) -> Option<&UdpInfo> {
        match &self.l4 {
            L4::Udp(u) => Some(u),
            _ => None,
        }
    }
    pub fn icmp(&self) -> Option<&IcmpInfo> {
        match &self.l4 {
            L4::Icmp(i) => Some(i),
            _ => None,
        }
    }
}

/// Builders for unit tests that drive analyzers with summaries.
#[cfg(test)]
pub mod testutil {
    use super::*;

    /// A plain IPv4 header (TTL 64) from `src` to `dst` carrying `proto`.
    pub fn ipv4(src: &str, dst: &str, proto: u8) -> IpInfo {
        IpInfo {
            src: src.parse().expect("test address"),
            dst: dst.parse().expect("test address"),
            ttl: 64,
            ip_id: 0,
            df: false,
            mf: false,
            frag_offset: 0,
            options: 0,
            proto,
            total_len: 40,
        }
    }

    /// An IPv4 TCP segment at `ts_us`.
    pub fn tcp(ts_us: i64, src: &str, dst: &str, ports: (u16, u16), flags: u16, seq: u32, ack: u32) -> PacketSummary {
        let mut p = PacketSummary::new(ts_us, 60, 60);
        p.ip = Some(ipv4(src, dst, 6));
        let (sport, dport) = ports;
        p.l4 = L4::Tcp(TcpInfo { sport, dport, flags, seq, ack, window: 64240, opts: TcpOpts::default() });
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_stays_small() {
        // The summary crosses a channel by value millions of times a second.
        assert!(std::mem::size_of::<PacketSummary>() <= 192);
    }

    #[test]
    fn dlt_mapping() {
        assert_eq!(LinkKind::from_dlt(1), Some(LinkKind::Ethernet));
        assert_eq!(LinkKind::from_dlt(276), Some(LinkKind::LinuxSll2));
        assert_eq!(LinkKind::from_dlt(105), None); // 802.11: unsupported
    }
}
