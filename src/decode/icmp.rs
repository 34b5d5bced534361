//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443): type, code, echo id/seq, and the
//! packet an error message quotes. RFC 792 quotes "the internet header plus
//! the first 64 bits of the original datagram's data"; RFC 1812 4.3.2.3 and
//! RFC 4443 2.4 allow more. The quoted IP length usually claims more than
//! is quoted: that is normal, and etherparse's lax slicing accepts it.

use etherparse::{Icmpv4Slice, Icmpv6Slice, LaxIpSlice, ip_number};

use super::ip::{self, IpPayload};
use super::payload::set_payload;
use super::wire::{be16, be32, u8_at};
use crate::decode::summary::{DecodeError, IcmpInfo, L4, PacketSummary, Quoted};

/// ICMP header length: type, code, checksum, 4 type-specific bytes.
const HEADER_LEN: u32 = 8;

/// ICMPv4 types (RFC 792).
mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// ICMPv6 types (RFC 4443 section 2.1).
mod v6 {
    pub const UNREACHABLE: u8 = 1;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

/// Fields of the first 8 bytes of a quoted transport header.
mod quote {
    /// TCP/UDP source and destination ports.
    pub const SPORT: usize = 0;
    pub const DPORT: usize = 2;
    /// TCP sequence number.
    pub const TCP_SEQ: usize = 4;
    /// ICMP type; echo identifier and sequence number.
    pub const ICMP_TYPE: usize = 0;
    pub const ECHO_ID: usize = 4;
    pub const ECHO_SEQ: usize = 6;
}

/// Decodes an ICMPv4 message etherparse did not slice.
pub(super) fn decode_v4(p: &IpPayload<'_>, s: &mut PacketSummary) {
    match Icmpv4Slice::from_slice(p.bytes) {
        Ok(i) => v4(&i, p, s),
        Err(_) => partial(false, p.bytes, s),
    }
}

/// Decodes an ICMPv6 message etherparse did not slice.
pub(super) fn decode_v6(p: &IpPayload<'_>, s: &mut PacketSummary) {
    match Icmpv6Slice::from_slice(p.bytes) {
        Ok(i) => v6(&i, p, s),
        Err(_) => partial(true, p.bytes, s),
    }
}

/// Fills the facts of a sliced ICMPv4 message.
fn v4(i: &Icmpv4Slice<'_>, p: &IpPayload<'_>, s: &mut PacketSummary) {
    let msg = Message { v6: false, icmp_type: i.type_u8(), code: i.code_u8(), rest: i.bytes5to8() };
    fill(&msg, i.payload(), p, s);
}

/// Fills the facts of a sliced ICMPv6 message.
fn v6(i: &Icmpv6Slice<'_>, p: &IpPayload<'_>, s: &mut PacketSummary) {
    let msg = Message { v6: true, icmp_type: i.type_u8(), code: i.code_u8(), rest: i.bytes5to8() };
    fill(&msg, i.payload(), p, s);
}

/// The fixed header of either ICMP version.
struct Message {
    v6: bool,
    icmp_type: u8,
    code: u8,
    /// Bytes 4..8: echo id and sequence, or unused / MTU / pointer.
    rest: [u8; 4],
}

/// Echo id/seq, quoted packet and payload of one message.
fn fill(m: &Message, body: &[u8], p: &IpPayload<'_>, s: &mut PacketSummary) {
    let mut info = IcmpInfo { v6: m.v6, icmp_type: m.icmp_type, code: m.code, echo: None, quoted: None };
    if is_echo(m.v6, m.icmp_type) {
        let [id0, id1, seq0, seq1] = m.rest;
        info.echo = Some((u16::from_be_bytes([id0, id1]), u16::from_be_bytes([seq0, seq1])));
    }
    if is_error(m.v6, m.icmp_type) {
        info.quoted = quoted(body);
        if info.quoted.is_none() {
            s.error = Some(DecodeError::MalformedIcmpQuote);
        }
    }
    s.l4 = L4::Icmp(info);
    set_payload(s, body, p.claimed_len.saturating_sub(HEADER_LEN));
}

/// A message cut inside its 8-byte header: type and code if captured.
fn partial(v6: bool, bytes: &[u8], s: &mut PacketSummary) {
    s.error = Some(DecodeError::TruncatedIcmp);
    if let (Some(icmp_type), Some(code)) = (u8_at(bytes, 0), u8_at(bytes, 1)) {
        s.l4 = L4::Icmp(IcmpInfo { v6, icmp_type, code, echo: None, quoted: None });
    }
}

fn is_echo(v6: bool, t: u8) -> bool {
    if v6 { t == v6::ECHO_REQUEST || t == v6::ECHO_REPLY } else { t == v4::ECHO_REQUEST || t == v4::ECHO_REPLY }
}

/// Error messages, which quote the offending packet.
fn is_error(v6: bool, t: u8) -> bool {
    if v6 {
        (v6::UNREACHABLE..=v6::PARAMETER_PROBLEM).contains(&t)
    } else {
        matches!(t, v4::UNREACHABLE | v4::SOURCE_QUENCH | v4::REDIRECT | v4::TIME_EXCEEDED | v4::PARAMETER_PROBLEM)
    }
}

/// The quoted packet, or `None` when not even its IP header is there.
fn quoted(body: &[u8]) -> Option<Quoted> {
    let (ip, stop) = LaxIpSlice::from_slice(body).ok()?;
    let (info, payload) = match &ip {
        LaxIpSlice::Ipv4(v4) => ip::v4(v4),
        LaxIpSlice::Ipv6(v6) => ip::v6(v6),
    };
    let mut q = Quoted {
        src: info.src,
        dst: info.dst,
        proto: info.proto,
        ttl: info.ttl,
        ip_id: info.ip_id,
        sport: 0,
        dport: 0,
        has_ports: false,
        tcp_seq: None,
        icmp_type: None,
    };
    if stop.is_none() && payload.first_fragment {
        quoted_transport(&mut q, payload.bytes);
    }
    Some(q)
}

/// Ports, TCP sequence number or ICMP type/echo ids from the quoted
/// packet's first 8 payload bytes, as far as they were quoted.
fn quoted_transport(q: &mut Quoted, b: &[u8]) {
    match etherparse::IpNumber(q.proto) {
        ip_number::TCP | ip_number::UDP => {
            if let (Some(sport), Some(dport)) = (be16(b, quote::SPORT), be16(b, quote::DPORT)) {
                (q.sport, q.dport, q.has_ports) = (sport, dport, true);
            }
            if q.proto == ip_number::TCP.0 {
                q.tcp_seq = be32(b, quote::TCP_SEQ);
            }
        }
        ip_number::ICMP | ip_number::IPV6_ICMP => {
            let v6 = q.proto == ip_number::IPV6_ICMP.0;
            q.icmp_type = u8_at(b, quote::ICMP_TYPE);
            let echo = q.icmp_type.is_some_and(|t| is_echo(v6, t));
            if let (true, Some(id), Some(seq)) = (echo, be16(b, quote::ECHO_ID), be16(b, quote::ECHO_SEQ)) {
                (q.sport, q.dport, q.has_ports) = (id, seq, true);
            }
        }
        _ => {}
    }
}
