//! Writes a deterministic benchmark capture: a classic little-endian pcap of
//! Ethernet frames with a DMZ-like traffic mix over ~10 minutes of packet time.
//!
//! ```text
//! cargo run --release --example gen_bench_pcap -- OUT.pcap [N_PACKETS] [SEED]
//! cargo run --release --example gen_bench_pcap -- --flood OUT.pcap [N_PACKETS]
//! ```
//!
//! `--flood` writes only a spoofed flood instead, for the memory benchmark:
//! every packet from a fresh random source (80% SYNs, 20% UDP datagrams) to a
//! random home address and port, 100,000 packets per second of packet time.
//!
//! The mix (share of packets): ordinary TCP flows 67.5% (handshake, request,
//! response segments with delayed ACKs, FIN or RST; ~8% of flows IPv6, ~10%
//! outbound from the DMZ), UDP DNS/NTP 10% (a few answered by ICMP port
//! unreachable), ICMP echo 5%, scans 10% (two vertical SYN scanners, two
//! horizontal sweepers, with the targets' RST / SYN-ACK answers), a spoofed
//! SYN flood 5.5% (every packet a fresh random source: 110k sources at the
//! default size, so the per-source tables are pushed past their caps), and a
//! SYN retry client 2% (a new client every 30 s retrying one dead port with
//! source ports +1 each attempt). The flood is above the nominal 3% so that
//! the default 2M-packet file carries 100k+ distinct spoofed sources.
//!
//! Everything comes from one seeded xorshift, so the same arguments write the
//! same bytes. The generator's memory is constant (fixed pools of open
//! conversations), whatever the packet count. IPv4 header checksums are
//! right; TCP/UDP/ICMP checksums are left zero.
//!
//! `benches/pipeline.rs` includes this file as a module and uses `Generator`
//! and the frame builders directly.

use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// First packet time: 2024-03-01T12:00:00Z.
pub const START_US: i64 = 1_709_294_400_000_000;
/// Packet time the capture spans.
pub const SPAN_US: u64 = 600_000_000;
pub const DEFAULT_PACKETS: u64 = 2_000_000;
pub const DEFAULT_SEED: u64 = 0x5eed_b16b_00b5_1e55;
/// Ethernet minimum frame (without FCS) and the largest frame written.
pub const MIN_FRAME: usize = 60;
pub const MAX_FRAME: usize = 1514;

/// xorshift64* (Vigna): small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // Never zero; stir the seed so nearby seeds diverge at once.
        let mut s = XorShift(seed ^ 0x9e37_79b9_7f4a_7c15 | 1);
        for _ in 0..4 {
            s.next_u64();
        }
        s
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    #[inline]
    pub fn next_u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }
    /// Uniform in `0..n` (n > 0).
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(n)) >> 32) as u32
    }
    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `per_mille / 1000`.
    #[inline]
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille
    }
}

// ---------------------------------------------------------------------------
// Frame building
// ---------------------------------------------------------------------------

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

const MAC_FIREWALL: [u8; 6] = [0x00, 0x1b, 0x17, 0x00, 0x01, 0x01];

/// 192.0.2.0/24 and 2001:db8:d3a::/48 are the DMZ.
pub fn is_home(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.octets()[..3] == [192, 0, 2],
        IpAddr::V6(v) => v.segments()[..3] == [0x2001, 0xdb8, 0xd3a],
    }
}

fn host_mac(a: IpAddr) -> [u8; 6] {
    let o = match a {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(v) => {
            let o = v.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x52, 0x54, 0x00, o[1], o[2], o[3]]
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IP-level facts of one packet.
#[derive(Clone, Copy, Debug)]
pub struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub id: u16,
}

/// Starts a frame in `buf`: Ethernet and IPv4/IPv6 headers for an L4
/// segment of `l4_len` bytes of protocol `proto`. MACs follow the side of
/// the firewall each address is on.
pub fn begin(buf: &mut Vec<u8>, ip: &Ip, proto: u8, l4_len: usize) {
    buf.clear();
    let (smac, dmac) =
        if is_home(ip.src) { (host_mac(ip.src), MAC_FIREWALL) } else { (MAC_FIREWALL, host_mac(ip.dst)) };
    buf.extend_from_slice(&dmac);
    buf.extend_from_slice(&smac);
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf.extend_from_slice(&[0x08, 0x00]);
            let start = buf.len();
            let total = (20 + l4_len) as u16;
            let df = if proto == 6 { 0x40 } else { 0x00 };
            buf.extend_from_slice(&[0x45, 0x00]);
            buf.extend_from_slice(&total.to_be_bytes());
            buf.extend_from_slice(&ip.id.to_be_bytes());
            buf.extend_from_slice(&[df, 0x00, ip.ttl, proto, 0, 0]);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
            let c = ipv4_checksum(&buf[start..start + 20]);
            buf[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            buf.extend_from_slice(&[0x86, 0xdd]);
            let flow = u32::from(ip.id) & 0x000f_ffff;
            buf.extend_from_slice(&(0x6000_0000u32 | flow).to_be_bytes());
            buf.extend_from_slice(&(l4_len as u16).to_be_bytes());
            buf.extend_from_slice(&[proto, ip.ttl]);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
        }
        _ => panic!("gen_bench_pcap: mixed address families in one packet"),
    }
}

/// Pads to the Ethernet minimum.
pub fn finish(buf: &mut Vec<u8>) {
    if buf.len() < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
}

/// Largest TCP payload that keeps the frame within `MAX_FRAME`.
pub fn tcp_mss(v6: bool, opts_len: usize) -> usize {
    MAX_FRAME - 14 - if v6 { 40 } else { 20 } - 20 - opts_len
}

/// One TCP segment's header fields.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub win: u16,
}

/// A whole TCP frame; `opts` is a multiple of 4 bytes, the payload is filler.
pub fn tcp_frame(buf: &mut Vec<u8>, ip: &Ip, s: &Seg, opts: &[u8], payload: usize) {
    let hlen = 20 + opts.len();
    begin(buf, ip, 6, hlen + payload);
    buf.extend_from_slice(&s.sport.to_be_bytes());
    buf.extend_from_slice(&s.dport.to_be_bytes());
    buf.extend_from_slice(&s.seq.to_be_bytes());
    buf.extend_from_slice(&s.ack.to_be_bytes());
    buf.extend_from_slice(&[((hlen / 4) as u8) << 4, s.flags]);
    buf.extend_from_slice(&s.win.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    buf.extend_from_slice(opts);
    // TLS application-data-looking filler.
    let n = buf.len();
    buf.resize(n + payload, 0xa5);
    if payload >= 5 {
        buf[n..n + 3].copy_from_slice(&[0x17, 0x03, 0x03]);
    }
    finish(buf);
}

/// A whole UDP frame carrying `payload`.
pub fn udp_frame(buf: &mut Vec<u8>, ip: &Ip, sport: u16, dport: u16, payload: &[u8]) {
    let len = 8 + payload.len();
    begin(buf, ip, 17, len);
    buf.extend_from_slice(&sport.to_be_bytes());
    buf.extend_from_slice(&dport.to_be_bytes());
    buf.extend_from_slice(&(len as u16).to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(payload);
    finish(buf);
}

/// An ICMP / ICMPv6 echo request or reply with 56 payload bytes.
pub fn echo_frame(buf: &mut Vec<u8>, ip: &Ip, request: bool, id: u16, seq: u16) {
    let v6 = ip.src.is_ipv6();
    let (proto, typ) = match (v6, request) {
        (false, true) => (1, 8),
        (false, false) => (1, 0),
        (true, true) => (58, 128),
        (true, false) => (58, 129),
    };
    begin(buf, ip, proto, 8 + 56);
    buf.extend_from_slice(&[typ, 0, 0, 0]);
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    for i in 0..56u8 {
        buf.push(0x10 + i);
    }
    finish(buf);
}

/// An ICMPv4 destination unreachable (type 3, `code`) from `ip.src` to
/// `ip.dst`, quoting the IPv4 header and first 8 bytes of `quoted_frame`
/// (a whole Ethernet frame as built above).
pub fn icmp_unreach_frame(buf: &mut Vec<u8>, ip: &Ip, code: u8, quoted_frame: &[u8]) {
    let q = &quoted_frame[14..];
    let ihl = usize::from(q[0] & 0x0f) * 4;
    let quote = &q[..(ihl + 8).min(q.len())];
    begin(buf, ip, 1, 8 + quote.len());
    buf.extend_from_slice(&[3, code, 0, 0, 0, 0, 0, 0]);
    buf.extend_from_slice(quote);
    finish(buf);
}

/// SYN option layouts of common stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    Linux,
    Windows,
    MacOs,
    /// nmap -sS: MSS only.
    Nmap,
    /// masscan / hping3: no options.
    Bare,
}

/// Options of a SYN (`tsecr` = None) or SYN-ACK from `stack`; returns the length.
pub fn syn_options(stack: Stack, mss: u16, tsval: u32, tsecr: Option<u32>, out: &mut [u8; 40]) -> usize {
    let m = mss.to_be_bytes();
    let ts = |out: &mut [u8], at: usize| {
        out[at..at + 2].copy_from_slice(&[8, 10]);
        out[at + 2..at + 6].copy_from_slice(&tsval.to_be_bytes());
        out[at + 6..at + 10].copy_from_slice(&tsecr.unwrap_or(0).to_be_bytes());
    };
    match stack {
        Stack::Linux => {
            // MSS, SACK_PERM, TS, NOP, WS 7
            out[..4].copy_from_slice(&[2, 4, m[0], m[1]]);
            out[4..6].copy_from_slice(&[4, 2]);
            ts(out, 6);
            out[16..20].copy_from_slice(&[1, 3, 3, 7]);
            20
        }
        Stack::Windows => {
            // MSS, NOP, WS 8, NOP, NOP, SACK_PERM
            out[..12].copy_from_slice(&[2, 4, m[0], m[1], 1, 3, 3, 8, 1, 1, 4, 2]);
            12
        }
        Stack::MacOs => {
            // MSS, NOP, WS 6, NOP, NOP, TS, SACK_PERM, EOL, EOL
            out[..8].copy_from_slice(&[2, 4, m[0], m[1], 1, 3, 3, 6]);
            out[8..10].copy_from_slice(&[1, 1]);
            ts(out, 10);
            out[20..24].copy_from_slice(&[4, 2, 0, 0]);
            24
        }
        Stack::Nmap => {
            out[..4].copy_from_slice(&[2, 4, m[0], m[1]]);
            4
        }
        Stack::Bare => 0,
    }
}

/// NOP, NOP, TS: the options of every segment of a flow that negotiated timestamps.
pub fn ts_options(tsval: u32, tsecr: u32) -> [u8; 12] {
    let mut o = [1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    o[4..8].copy_from_slice(&tsval.to_be_bytes());
    o[8..12].copy_from_slice(&tsecr.to_be_bytes());
    o
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

const CLIENT_FIRST_OCTETS: [u8; 16] = [23, 31, 45, 62, 77, 81, 94, 103, 109, 151, 178, 185, 188, 203, 212, 217];

fn mix32(x: u32) -> u32 {
    let mut x = x.wrapping_mul(0x9e37_79b1);
    x ^= x >> 15;
    x = x.wrapping_mul(0x85eb_ca77);
    x ^ (x >> 13)
}

/// Client number `i` of a population: a stable public-looking IPv4 address.
fn client_v4(i: u32) -> IpAddr {
    let h = mix32(i);
    let first = CLIENT_FIRST_OCTETS[(h >> 28) as usize];
    let o = (h & 0x00ff_ffff).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(first, o[1], o[2], o[3].max(1)))
}

fn client_v6(i: u32) -> IpAddr {
    let h = mix32(i);
    IpAddr::V6(Ipv6Addr::new(0x2a02, 0x0c7d + (h >> 29) as u16, (h >> 13) as u16, 0, 0, 0, (h >> 16) as u16, h as u16))
}

fn dmz_v4(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, host))
}

fn dmz_v6(host: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xd3a, 0, 0, 0, 0, host))
}

/// DMZ servers and their main service.
const SERVERS: [(u8, u16); 8] = [(10, 443), (11, 443), (12, 25), (13, 22), (14, 443), (15, 80), (16, 993), (17, 8443)];
/// Hosts in the DMZ that exist (answer probes); all others are silent.
fn dmz_host_alive(h: u8) -> bool {
    (10..=17).contains(&h) || (30..=37).contains(&h) || h == 53 || h == 123
}
/// Ports open on every live DMZ host.
fn dmz_port_open(h: u8, port: u16) -> bool {
    SERVERS.iter().any(|&(s, p)| s == h && p == port) || port == 22 && h == 13 || port == 53 && h == 53
}

// ---------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------

/// Categories of the mix, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Tcp6,
    Udp,
    Icmp,
    Scan,
    Flood,
    Retry,
}

impl Kind {
    pub const ALL: [Kind; 7] = [Kind::Tcp, Kind::Tcp6, Kind::Udp, Kind::Icmp, Kind::Scan, Kind::Flood, Kind::Retry];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp flows (IPv4)",
            Kind::Tcp6 => "tcp flows (IPv6)",
            Kind::Udp => "udp dns/ntp",
            Kind::Icmp => "icmp echo",
            Kind::Scan => "scans",
            Kind::Flood => "spoofed syn flood",
            Kind::Retry => "syn retry client",
        }
    }
}

/// An ordinary TCP connection, one packet per call.
#[derive(Clone, Copy, Debug)]
struct TcpFlow {
    c: IpAddr,
    s: IpAddr,
    sport: u16,
    dport: u16,
    cseq: u32,
    sseq: u32,
    c_ttl: u8,
    s_ttl: u8,
    stack: Stack,
    ts: bool,
    tsval: u32,
    stage: u8,
    req_len: u16,
    resp_left: u16,
    unacked: u8,
    rst_end: bool,
}

impl TcpFlow {
    fn new(rng: &mut XorShift) -> TcpFlow {
        let v6 = rng.chance(80);
        let outbound = rng.chance(100);
        let (c, s, dport) = if outbound {
            let (h, _) = SERVERS[rng.below(8) as usize];
            let c = if v6 { dmz_v6(u16::from(h)) } else { dmz_v4(h) };
            let s = if v6 { client_v6(1_000_000 + rng.below(200)) } else { client_v4(1_000_000 + rng.below(200)) };
            (c, s, if rng.chance(800) { 443 } else { 80 })
        } else {
            let (h, port) = SERVERS[rng.below(8) as usize];
            let s = if v6 { dmz_v6(u16::from(h)) } else { dmz_v4(h) };
            let c = if v6 { client_v6(rng.below(20_000)) } else { client_v4(rng.below(200_000)) };
            (c, s, port)
        };
        let stack = match rng.below(10) {
            0..=4 => Stack::Linux,
            5..=7 => Stack::Windows,
            _ => Stack::MacOs,
        };
        let size = rng.below(100);
        let resp_left = match size {
            0..=64 => rng.range(1, 3),
            65..=92 => rng.range(4, 12),
            _ => rng.range(13, 100),
        } as u16;
        TcpFlow {
            c,
            s,
            sport: rng.range(32768, 60999) as u16,
            dport,
            cseq: rng.next_u32(),
            sseq: rng.next_u32(),
            c_ttl: if stack == Stack::Windows { 128 } else { 64 } - rng.range(5, 20) as u8,
            s_ttl: 64,
            stack,
            ts: stack != Stack::Windows,
            tsval: rng.next_u32(),
            stage: 0,
            req_len: rng.range(80, 900) as u16,
            resp_left,
            unacked: 0,
            rst_end: rng.chance(50),
        }
    }

    fn mss(&self) -> usize {
        tcp_mss(self.c.is_ipv6(), if self.ts { 12 } else { 0 })
    }

    /// Writes the next packet; returns true when the flow is over.
    fn next(&mut self, rng: &mut XorShift, buf: &mut Vec<u8>) -> bool {
        let cip = Ip { src: self.c, dst: self.s, ttl: self.c_ttl, id: rng.next_u16() };
        let sip = Ip { src: self.s, dst: self.c, ttl: self.s_ttl, id: rng.next_u16() };
        let c2s = |seq, ack, flags| Seg { sport: self.sport, dport: self.dport, seq, ack, flags, win: 502 };
        let s2c = |seq, ack, flags| Seg { sport: self.dport, dport: self.sport, seq, ack, flags, win: 509 };
        self.tsval = self.tsval.wrapping_add(rng.range(1, 40));
        let tso = ts_options(self.tsval, self.tsval.wrapping_sub(7));
        let opts: &[u8] = if self.ts { &tso } else { &[] };
        let v6 = self.c.is_ipv6();
        let mss = if v6 { 1440 } else { 1460 };
        let mut o = [0u8; 40];
        match self.stage {
            0 => {
                let n = syn_options(self.stack, mss, self.tsval, None, &mut o);
                let mut seg = c2s(self.cseq, 0, TCP_SYN);
                seg.win = if self.stack == Stack::Windows { 64240 } else { 65535 };
                tcp_frame(buf, &cip, &seg, &o[..n], 0);
                self.cseq = self.cseq.wrapping_add(1);
            }
            1 => {
                let stack = if self.ts { Stack::Linux } else { Stack::Windows };
                let n = syn_options(stack, mss, self.tsval ^ 0x5555, Some(self.tsval), &mut o);
                let mut seg = s2c(self.sseq, self.cseq, TCP_SYN | TCP_ACK);
                seg.win = 65160;
                tcp_frame(buf, &sip, &seg, &o[..n], 0);
                self.sseq = self.sseq.wrapping_add(1);
            }
            2 => tcp_frame(buf, &cip, &c2s(self.cseq, self.sseq, TCP_ACK), opts, 0),
            3 => {
                let len = usize::from(self.req_len);
                tcp_frame(buf, &cip, &c2s(self.cseq, self.sseq, TCP_PSH | TCP_ACK), opts, len);
                self.cseq = self.cseq.wrapping_add(len as u32);
            }
            4 => {
                // Response data, a client ACK after every second segment.
                if self.unacked >= 2 {
                    tcp_frame(buf, &cip, &c2s(self.cseq, self.sseq, TCP_ACK), opts, 0);
                    self.unacked = 0;
                    return false;
                }
                let len = if self.resp_left == 1 { rng.range(100, self.mss() as u32) as usize } else { self.mss() };
                let flags = if self.resp_left == 1 { TCP_PSH | TCP_ACK } else { TCP_ACK };
                tcp_frame(buf, &sip, &s2c(self.sseq, self.cseq, flags), opts, len);
                self.sseq = self.sseq.wrapping_add(len as u32);
                self.unacked += 1;
                self.resp_left -= 1;
                if self.resp_left > 0 {
                    return false;
                }
            }
            5 => {
                if self.rst_end {
                    tcp_frame(buf, &cip, &c2s(self.cseq, self.sseq, TCP_RST | TCP_ACK), &[], 0);
                    return true;
                }
                tcp_frame(buf, &cip, &c2s(self.cseq, self.sseq, TCP_FIN | TCP_ACK), opts, 0);
                self.cseq = self.cseq.wrapping_add(1);
            }
            6 => {
                tcp_frame(buf, &sip, &s2c(self.sseq, self.cseq, TCP_FIN | TCP_ACK), opts, 0);
                self.sseq = self.sseq.wrapping_add(1);
            }
            _ => {
                tcp_frame(buf, &cip, &c2s(self.cseq, self.sseq, TCP_ACK), opts, 0);
                return true;
            }
        }
        self.stage += 1;
        false
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UdpApp {
    /// Internet clients asking the DMZ's authoritative DNS server.
    DnsIn,
    /// DMZ hosts asking an outside resolver.
    DnsOut,
    Ntp,
}

/// A UDP query and its answer (or an ICMP port unreachable).
#[derive(Clone, Copy, Debug)]
struct UdpTx {
    app: UdpApp,
    c: IpAddr,
    s: IpAddr,
    sport: u16,
    id: u16,
    name: u8,
    answered: bool,
    /// Nothing listens: the server answers with ICMP port unreachable.
    unreachable: bool,
}

const DNS_NAMES: [&[u8]; 6] = [
    b"\x03www\x07example\x03com\x00",
    b"\x04mail\x07example\x03com\x00",
    b"\x07example\x03com\x00",
    b"\x03api\x07example\x03net\x00",
    b"\x06_dmarc\x07example\x03com\x00",
    b"\x03cdn\x07example\x03org\x00",
];

impl UdpTx {
    fn new(rng: &mut XorShift) -> UdpTx {
        let app = match rng.below(10) {
            0..=5 => UdpApp::DnsIn,
            6..=7 => UdpApp::DnsOut,
            _ => UdpApp::Ntp,
        };
        let (c, s) = match app {
            UdpApp::DnsIn => (client_v4(rng.below(200_000)), dmz_v4(53)),
            UdpApp::DnsOut => (dmz_v4(SERVERS[rng.below(8) as usize].0), IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9))),
            UdpApp::Ntp => (client_v4(rng.below(200_000)), dmz_v4(123)),
        };
        UdpTx {
            app,
            c,
            s,
            sport: if app == UdpApp::Ntp && rng.chance(500) { 123 } else { rng.range(1024, 65535) as u16 },
            id: rng.next_u16(),
            name: rng.below(DNS_NAMES.len() as u32) as u8,
            answered: false,
            unreachable: app == UdpApp::Ntp && rng.chance(60),
        }
    }

    fn dport(&self) -> u16 {
        if self.app == UdpApp::Ntp { 123 } else { 53 }
    }

    fn payload(&self, answer: bool, out: &mut Vec<u8>) {
        out.clear();
        if self.app == UdpApp::Ntp {
            out.resize(48, 0);
            out[0] = if answer { 0x24 } else { 0x23 };
            return;
        }
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(if answer {
            &[0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]
        } else {
            &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        });
        out.extend_from_slice(DNS_NAMES[usize::from(self.name)]);
        out.extend_from_slice(&[0, 1, 0, 1]);
        if answer {
            out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 10 + self.name]);
        }
    }

    fn next(&mut self, rng: &mut XorShift, buf: &mut Vec<u8>, scratch: &mut Vec<u8>) -> bool {
        let ttl = if is_home(self.c) { 64 } else { 50 };
        let q = Ip { src: self.c, dst: self.s, ttl, id: rng.next_u16() };
        self.payload(false, scratch);
        udp_frame(buf, &q, self.sport, self.dport(), scratch);
        if !self.answered {
            self.answered = true;
            return false;
        }
        if self.unreachable {
            let quoted = std::mem::take(buf);
            let from = Ip { src: self.s, dst: self.c, ttl: 64, id: rng.next_u16() };
            icmp_unreach_frame(buf, &from, 3, &quoted);
            return true;
        }
        let a = Ip { src: self.s, dst: self.c, ttl: if is_home(self.s) { 64 } else { 57 }, id: rng.next_u16() };
        self.payload(true, scratch);
        udp_frame(buf, &a, self.dport(), self.sport, scratch);
        true
    }
}

/// An ICMP echo request and (usually) its reply.
#[derive(Clone, Copy, Debug)]
struct Echo {
    c: IpAddr,
    s: IpAddr,
    id: u16,
    seq: u16,
    left: u8,
    asked: bool,
}

impl Echo {
    fn new(rng: &mut XorShift) -> Echo {
        let v6 = rng.chance(150);
        let host = [10, 11, 12, 13, 14, 15, 16, 17, 53, 123][rng.below(10) as usize];
        let (c, s) = match (v6, rng.chance(200)) {
            (false, false) => (client_v4(rng.below(200_000)), dmz_v4(host)),
            (false, true) => (dmz_v4(host), IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))),
            (true, _) => (client_v6(rng.below(20_000)), dmz_v6(u16::from(host))),
        };
        Echo { c, s, id: rng.next_u16(), seq: 1, left: rng.range(1, 4) as u8, asked: false }
    }

    fn next(&mut self, rng: &mut XorShift, buf: &mut Vec<u8>) -> bool {
        if !self.asked || rng.chance(50) {
            // A request (sometimes one that goes unanswered).
            let ip = Ip { src: self.c, dst: self.s, ttl: 55, id: rng.next_u16() };
            echo_frame(buf, &ip, true, self.id, self.seq);
            self.asked = true;
            return false;
        }
        let ip = Ip { src: self.s, dst: self.c, ttl: 64, id: rng.next_u16() };
        echo_frame(buf, &ip, false, self.id, self.seq);
        self.asked = false;
        self.seq = self.seq.wrapping_add(1);
        self.left -= 1;
        self.left == 0
    }
}

/// A queued TCP answer (or the scanner's RST after a SYN-ACK).
#[derive(Clone, Copy, Debug)]
struct Pending {
    ip: Ip,
    seg: Seg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanKind {
    /// Every port of one DMZ host after another.
    Vertical,
    /// One port across the whole /24, then the next port.
    Horizontal,
}

#[derive(Clone, Debug)]
struct Scanner {
    src: IpAddr,
    kind: ScanKind,
    stack: Stack,
    ports: &'static [u16],
    sport: u16,
    i: u32,
    first_host: u8,
    pending: Vec<Pending>,
}

impl Scanner {
    fn new(src: [u8; 4], kind: ScanKind, stack: Stack, ports: &'static [u16], first_host: u8) -> Scanner {
        let src = IpAddr::V4(Ipv4Addr::from(src));
        Scanner { src, kind, stack, ports, sport: 40000 + first_host as u16, i: 0, first_host, pending: Vec::new() }
    }

    fn next(&mut self, rng: &mut XorShift, buf: &mut Vec<u8>) {
        if let Some(p) = self.pending.pop() {
            tcp_frame(buf, &p.ip, &p.seg, &[], 0);
            return;
        }
        let (host, port) = match self.kind {
            ScanKind::Vertical => {
                // A fixed permutation of 1..=65535 per host (4099 is coprime to 65535).
                let k = self.i % 65535;
                let host = self.first_host.wrapping_add((self.i / 65535) as u8);
                (host, ((u64::from(k) * 4099) % 65535 + 1) as u16)
            }
            ScanKind::Horizontal => {
                let host = (self.i % 254 + 1) as u8;
                (host, self.ports[(self.i / 254) as usize % self.ports.len()])
            }
        };
        self.i += 1;
        let dst = dmz_v4(host);
        let seq = rng.next_u32();
        let ip = Ip { src: self.src, dst, ttl: 40 + rng.below(10) as u8, id: rng.next_u16() };
        let seg = Seg { sport: self.sport, dport: port, seq, ack: 0, flags: TCP_SYN, win: 1024 };
        let mut o = [0u8; 40];
        let n = syn_options(self.stack, 1460, 0, None, &mut o);
        tcp_frame(buf, &ip, &seg, &o[..n], 0);
        if !dmz_host_alive(host) {
            return;
        }
        let back = Ip { src: dst, dst: self.src, ttl: 64, id: rng.next_u16() };
        if dmz_port_open(host, port) {
            // SYN-ACK, then the scanner's RST (queued in reverse).
            let rst = Seg { sport: self.sport, dport: port, seq: seq.wrapping_add(1), ack: 0, flags: TCP_RST, win: 0 };
            self.pending.push(Pending { ip: Ip { id: rng.next_u16(), ..ip }, seg: rst });
            let sa = Seg {
                sport: port,
                dport: self.sport,
                seq: rng.next_u32(),
                ack: seq.wrapping_add(1),
                flags: TCP_SYN | TCP_ACK,
                win: 65160,
            };
            self.pending.push(Pending { ip: back, seg: sa });
        } else if rng.chance(900) {
            let rst = Seg {
                sport: port,
                dport: self.sport,
                seq: 0,
                ack: seq.wrapping_add(1),
                flags: TCP_RST | TCP_ACK,
                win: 0,
            };
            self.pending.push(Pending { ip: back, seg: rst });
        }
    }
}

/// A client that keeps retrying one dead service; a new one every 30 s.
#[derive(Clone, Debug, Default)]
struct Retry {
    episode: u64,
    attempts: u32,
    sent: u32,
    last: Option<(u16, u32)>,
    pending_rst: Option<(u16, u32)>,
}

const RETRY_EPISODE_US: u64 = 30_000_000;
const RETRY_PORTS: [u16; 8] = [5432, 3306, 1433, 8443, 6379, 9200, 27017, 11211];

impl Retry {
    fn next(&mut self, t_us: u64, rng: &mut XorShift, buf: &mut Vec<u8>) {
        let ep = t_us / RETRY_EPISODE_US;
        if ep != self.episode {
            *self = Retry { episode: ep, ..Retry::default() };
        }
        let e = ep as u32;
        let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + (e % 200) as u8));
        let server = dmz_v4(30 + (e % 8) as u8);
        let dport = RETRY_PORTS[(e as usize / 2) % RETRY_PORTS.len()];
        // Even episodes: the port is closed (RST). Odd: filtered (silence, retransmissions).
        let closed = e % 2 == 0;
        if let Some((sport, isn)) = self.pending_rst.take() {
            let ip = Ip { src: server, dst: client, ttl: 64, id: 0 };
            let seg =
                Seg { sport: dport, dport: sport, seq: 0, ack: isn.wrapping_add(1), flags: TCP_RST | TCP_ACK, win: 0 };
            tcp_frame(buf, &ip, &seg, &[], 0);
            return;
        }
        self.sent += 1;
        let (sport, isn) = match self.last {
            // Filtered: every third SYN retransmits the previous attempt.
            Some(prev) if !closed && self.sent % 3 == 0 => prev,
            _ => {
                let sport =
                    41000u16.wrapping_add((e.wrapping_mul(997) % 20000) as u16).wrapping_add(self.attempts as u16);
                self.attempts += 1;
                (sport, rng.next_u32())
            }
        };
        self.last = Some((sport, isn));
        let ip = Ip { src: client, dst: server, ttl: 61, id: rng.next_u16() };
        let seg = Seg { sport, dport, seq: isn, ack: 0, flags: TCP_SYN, win: 64240 };
        let mut o = [0u8; 40];
        let n = syn_options(Stack::Linux, 1460, (t_us / 1000) as u32, None, &mut o);
        tcp_frame(buf, &ip, &seg, &o[..n], 0);
        if closed {
            self.pending_rst = Some((sport, isn));
        }
    }
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

/// Per-mille shares of the mix (TCP covers both address families).
const SHARE_TCP: u32 = 675;
const SHARE_UDP: u32 = 100;
const SHARE_ICMP: u32 = 50;
const SHARE_SCAN: u32 = 100;
const SHARE_FLOOD: u32 = 55;

const TCP_POOL: usize = 1024;
const UDP_POOL: usize = 64;
const ECHO_POOL: usize = 32;

/// Streams the capture one frame at a time.
pub struct Generator {
    rng: XorShift,
    total: u64,
    emitted: u64,
    t_ns: u64,
    step_ns: u64,
    tcp: Vec<TcpFlow>,
    udp: Vec<UdpTx>,
    echo: Vec<Echo>,
    scanners: Vec<Scanner>,
    retry: Retry,
    scratch: Vec<u8>,
    /// Packets written per `Kind::ALL` entry.
    pub counts: [u64; Kind::ALL.len()],
    /// Frame bytes written.
    pub bytes: u64,
    pub flows_started: u64,
}

impl Generator {
    pub fn new(total: u64, seed: u64) -> Generator {
        let mut rng = XorShift::new(seed);
        let tcp = (0..TCP_POOL).map(|_| TcpFlow::new(&mut rng)).collect();
        let udp = (0..UDP_POOL).map(|_| UdpTx::new(&mut rng)).collect();
        let echo = (0..ECHO_POOL).map(|_| Echo::new(&mut rng)).collect();
        let scanners = vec![
            Scanner::new([185, 220, 101, 7], ScanKind::Vertical, Stack::Nmap, &[], 10),
            Scanner::new([89, 248, 165, 52], ScanKind::Vertical, Stack::Bare, &[], 30),
            Scanner::new([162, 142, 125, 10], ScanKind::Horizontal, Stack::Bare, &[22, 3389, 445, 23, 5900, 8080], 0),
            Scanner::new([71, 6, 199, 23], ScanKind::Horizontal, Stack::Nmap, &[3389, 80, 443, 21, 1433, 6379], 0),
        ];
        Generator {
            rng,
            total,
            emitted: 0,
            t_ns: 0,
            step_ns: (u128::from(SPAN_US) * 1000 / u128::from(total.max(1))) as u64,
            tcp,
            udp,
            echo,
            scanners,
            retry: Retry::default(),
            scratch: Vec::with_capacity(512),
            counts: [0; Kind::ALL.len()],
            bytes: 0,
            flows_started: TCP_POOL as u64,
        }
    }

    /// Packet time of the last frame, relative to the start.
    pub fn elapsed_us(&self) -> u64 {
        self.t_ns / 1000
    }

    /// Builds the next frame into `buf` and returns its time (µs since the
    /// epoch), or None when `total` frames have been written.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<i64> {
        if self.emitted >= self.total {
            return None;
        }
        if self.emitted > 0 {
            // Inter-arrival uniform in [0, 2 * step): mean step, monotonic.
            self.t_ns += self.step_ns * u64::from(self.rng.below(2000)) / 1000;
        }
        self.emitted += 1;
        let t_us = self.t_ns / 1000;
        let rng = &mut self.rng;
        let r = rng.below(1000);
        let kind = if r < SHARE_TCP {
            let i = rng.below(TCP_POOL as u32) as usize;
            let v6 = self.tcp[i].c.is_ipv6();
            if self.tcp[i].next(rng, buf) {
                self.tcp[i] = TcpFlow::new(rng);
                self.flows_started += 1;
            }
            if v6 { Kind::Tcp6 } else { Kind::Tcp }
        } else if r < SHARE_TCP + SHARE_UDP {
            let i = rng.below(UDP_POOL as u32) as usize;
            if self.udp[i].next(rng, buf, &mut self.scratch) {
                self.udp[i] = UdpTx::new(rng);
            }
            Kind::Udp
        } else if r < SHARE_TCP + SHARE_UDP + SHARE_ICMP {
            let i = rng.below(ECHO_POOL as u32) as usize;
            if self.echo[i].next(rng, buf) {
                self.echo[i] = Echo::new(rng);
            }
            Kind::Icmp
        } else if r < SHARE_TCP + SHARE_UDP + SHARE_ICMP + SHARE_SCAN {
            let i = rng.below(self.scanners.len() as u32) as usize;
            self.scanners[i].next(rng, buf);
            Kind::Scan
        } else if r < SHARE_TCP + SHARE_UDP + SHARE_ICMP + SHARE_SCAN + SHARE_FLOOD {
            flood_syn(rng, buf);
            Kind::Flood
        } else {
            self.retry.next(t_us, rng, buf);
            Kind::Retry
        };
        self.counts[kind as usize] += 1;
        self.bytes += buf.len() as u64;
        Some(START_US + t_us as i64)
    }
}

/// One SYN from a random spoofed source (hping3 --flood --rand-source style).
fn flood_syn(rng: &mut XorShift, buf: &mut Vec<u8>) {
    let mut a = rng.next_u32();
    if a >> 8 == 0x00c0_0002 {
        a ^= 0x8000_0000;
    }
    let ip = Ip { src: IpAddr::V4(Ipv4Addr::from(a)), dst: dmz_v4(15), ttl: 64, id: rng.next_u16() };
    let seg = Seg { sport: rng.next_u16() | 1024, dport: 80, seq: rng.next_u32(), ack: 0, flags: TCP_SYN, win: 512 };
    tcp_frame(buf, &ip, &seg, &[], 0);
}

// ---------------------------------------------------------------------------
// pcap writing
// ---------------------------------------------------------------------------

/// The classic pcap global header: microsecond timestamps, Ethernet.
pub fn pcap_header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone 0, sigfigs 0
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    h
}

/// A 16-byte record header for a frame captured whole.
pub fn record_header(ts_us: i64, len: usize) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

fn parse_count(s: &str) -> Option<u64> {
    s.replace('_', "").parse().ok().filter(|&n| n > 0)
}

/// Packets per second of packet time in `--flood` mode.
const FLOOD_PPS: i64 = 100_000;

/// One packet of the `--flood` capture: a SYN or a UDP datagram from a
/// random spoofed source to a random home address and port.
fn flood_any(rng: &mut XorShift, buf: &mut Vec<u8>) {
    let mut a = rng.next_u32();
    if a >> 8 == 0x00c0_0002 {
        a ^= 0x8000_0000;
    }
    let dst = dmz_v4((rng.next_u32() % 254 + 1) as u8);
    let ip = Ip { src: IpAddr::V4(Ipv4Addr::from(a)), dst, ttl: 64, id: rng.next_u16() };
    let (sport, dport) = (rng.next_u16() | 1024, rng.next_u16() % 1024 + 1);
    if rng.next_u32() % 5 == 0 {
        udp_frame(buf, &ip, sport, dport, &[0u8; 8]);
    } else {
        let seg = Seg { sport, dport, seq: rng.next_u32(), ack: 0, flags: TCP_SYN, win: 512 };
        tcp_frame(buf, &ip, &seg, &[], 0);
    }
}

fn write_flood(out: &str, n: u64) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    w.write_all(&pcap_header(65535))?;
    let mut rng = XorShift::new(DEFAULT_SEED);
    let mut buf = Vec::with_capacity(MAX_FRAME);
    for i in 0..n {
        flood_any(&mut rng, &mut buf);
        let ts = START_US + (i as i64) * 1_000_000 / FLOOD_PPS;
        w.write_all(&record_header(ts, buf.len()))?;
        w.write_all(&buf)?;
    }
    w.flush()?;
    println!("wrote {out}: {n} flood packets from random sources, {} s of packet time", n as i64 / FLOOD_PPS);
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--flood") {
        let (Some(out), n) = (args.get(2), args.get(3).and_then(|s| parse_count(s))) else {
            eprintln!("usage: gen_bench_pcap --flood OUT.pcap [N_PACKETS]");
            std::process::exit(2);
        };
        return write_flood(out, n.unwrap_or(5_000_000));
    }
    let usage = "usage: gen_bench_pcap OUT.pcap [N_PACKETS (default 2000000)] [SEED]";
    let Some(out) = args.get(1) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let n = match args.get(2) {
        Some(s) => parse_count(s).unwrap_or_else(|| {
            eprintln!("gen_bench_pcap: bad packet count {s:?}\n{usage}");
            std::process::exit(2)
        }),
        None => DEFAULT_PACKETS,
    };
    let seed = args.get(3).and_then(|s| parse_count(s)).unwrap_or(DEFAULT_SEED);

    let started = std::time::Instant::now();
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    w.write_all(&pcap_header(65535))?;
    let mut g = Generator::new(n, seed);
    let mut buf = Vec::with_capacity(MAX_FRAME);
    let (mut min_len, mut max_len) = (usize::MAX, 0);
    while let Some(ts) = g.next_frame(&mut buf) {
        min_len = min_len.min(buf.len());
        max_len = max_len.max(buf.len());
        w.write_all(&record_header(ts, buf.len()))?;
        w.write_all(&buf)?;
    }
    w.flush()?;
    drop(w);

    let file_bytes = 24 + 16 * n + g.bytes;
    println!("wrote {out}: {n} packets, {file_bytes} bytes, seed {seed:#x}");
    println!(
        "packet time: {:.1} s from 2024-03-01T12:00:00Z; frames {min_len}..{max_len} bytes, mean {:.0}",
        g.elapsed_us() as f64 / 1e6,
        g.bytes as f64 / n as f64
    );
    for k in Kind::ALL {
        let c = g.counts[k as usize];
        println!("  {:<20} {:>10} packets  {:>5.1}%", k.name(), c, 100.0 * c as f64 / n as f64);
    }
    println!(
        "  tcp flows started: {}; spoofed flood sources: ~{} (one random source per SYN)",
        g.flows_started,
        g.counts[Kind::Flood as usize]
    );
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
