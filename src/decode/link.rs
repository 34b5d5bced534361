//! Link layer: strips the capture's link header (Ethernet II with 802.1Q /
//! QinQ tags, Linux cooked v1/v2, BSD loopback, PPP / Cisco HDLC, pflog, raw IP)
//! and any MPLS label stack, and returns the IP packet behind it, recording
//! the inner EtherType and outermost VLAN id.
//!
//! Ethernet and VLAN tags are sliced by etherparse; the capture
//! pseudo-headers it does not know (cooked v2, loopback) and cooked v1 (so
//! both cooked formats share one path) are read by hand.

use etherparse::{EtherPayloadSlice, EtherType, Ethernet2Slice, SingleVlanSlice, ether_type};

use super::wire::{be16, be32, le32};
use crate::decode::summary::{DecodeError, LinkKind, PacketSummary};

/// Linux cooked capture v1 header (LINKTYPE_LINUX_SLL).
/// <https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html>
mod sll {
    /// Fixed header length.
    pub const LEN: usize = 16;
    /// Protocol type (an EtherType for IP, ARP and VLAN frames).
    pub const PROTOCOL: usize = 14;
}

/// Linux cooked capture v2 header (LINKTYPE_LINUX_SLL2).
/// <https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html>
mod sll2 {
    /// Fixed header length.
    pub const LEN: usize = 20;
    /// Protocol type, first field in v2.
    pub const PROTOCOL: usize = 0;
}

/// BSD loopback header (LINKTYPE_NULL / LINKTYPE_LOOP): a 4-byte address
/// family, host byte order for NULL and network order for LOOP.
mod null {
    /// Fixed header length.
    pub const LEN: usize = 4;
    /// AF_INET, the same on every OS.
    pub const AF_INET: u32 = 2;
    /// AF_INET6: Linux 10, NetBSD/OpenBSD/DragonFly 24, FreeBSD 28,
    /// macOS/iOS 30 (tcpdump's LINKTYPE_NULL page lists all of them).
    pub const AF_INET6: [u32; 4] = [10, 24, 28, 30];
}

/// PPP (RFC 1661) and Cisco HDLC framing.
/// <https://www.tcpdump.org/linktypes/LINKTYPE_PPP.html>
mod ppp {
    /// HDLC address and control bytes that may precede the protocol (RFC 1662).
    pub const ADDR_CTRL: [u8; 2] = [0xff, 0x03];
    /// Cisco HDLC unicast / multicast address byte; an EtherType follows at 2.
    pub const CISCO: [u8; 2] = [0x0f, 0x8f];
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
    pub const MPLS_UC: u16 = 0x0281;
    pub const MPLS_MC: u16 = 0x0283;
}

/// pf's log header (LINKTYPE_PFLOG): OpenBSD net/if_pflog.h `struct
/// pfloghdr`. Byte 0 is the header length (100 on current OpenBSD, 61 on
/// FreeBSD), padded to a 4-byte boundary on the wire (tcpdump's
/// `BPF_WORDALIGN`); byte 1 the address family, byte 2 pf's action, byte 3
/// the reason; the IP packet follows the padded header.
/// <https://www.tcpdump.org/linktypes/LINKTYPE_PFLOG.html>
mod pflog {
    /// tcpdump's MIN_PFLOG_HDRLEN: the fields up to the rule numbers.
    pub const MIN_LEN: usize = 45;
}

/// MPLS label stack entries (RFC 3032): 4 bytes each, bottom-of-stack bit
/// in byte 2; the payload's IP version nibble says what follows.
mod mpls {
    pub const ENTRY: usize = 4;
    pub const BOS_BYTE: usize = 2;
    pub const BOS_BIT: u8 = 0x01;
    /// Labels walked before giving up.
    pub const MAX_LABELS: usize = 8;
    pub const ETHER_UC: u16 = 0x8847;
    pub const ETHER_MC: u16 = 0x8848;
}

/// VLAN tags walked before giving up: S-tag + C-tag, with room for one
/// more (etherparse's `LaxSlicedPacket` stops at 3 as well).
const MAX_TAGS: usize = 3;

/// The IP packet carried by the frame, or `None` for non-IP frames and
/// link headers cut short (then `s.error` is set).
pub(super) fn strip<'a>(link: LinkKind, data: &'a [u8], s: &mut PacketSummary) -> Option<&'a [u8]> {
    match link {
        LinkKind::Ethernet => ethernet(data, s),
        LinkKind::LinuxSll => cooked(data, sll::LEN, sll::PROTOCOL, s),
        LinkKind::LinuxSll2 => cooked(data, sll2::LEN, sll2::PROTOCOL, s),
        LinkKind::Null => loopback(data, s),
        LinkKind::Raw | LinkKind::Ipv4 | LinkKind::Ipv6 => Some(data),
        LinkKind::Ppp => point_to_point(data, s),
        LinkKind::Pflog => pf_log(data, s),
    }
}

/// PPP with or without address/control bytes and with a compressed (odd,
/// 1-byte) or full protocol field; or Cisco HDLC with an EtherType.
fn point_to_point<'a>(data: &'a [u8], s: &mut PacketSummary) -> Option<&'a [u8]> {
    let first = *data.first()?;
    if ppp::CISCO.contains(&first) {
        return cooked(data, 4, 2, s);
    }
    let rest = if data.starts_with(&ppp::ADDR_CTRL) { data.get(2..)? } else { data };
    let (proto, payload) = match rest.first() {
        Some(b) if b & 1 == 1 => (u16::from(*b), rest.get(1..)),
        Some(_) => (be16(rest, 0).unwrap_or(0), rest.get(2..)),
        None => return truncated(s),
    };
    let Some(payload) = payload else { return truncated(s) };
    match proto {
        ppp::IPV4 | ppp::IPV6 => Some(payload),
        ppp::MPLS_UC | ppp::MPLS_MC => {
            s.ether_type = mpls::ETHER_UC;
            label_stack(payload, s)
        }
        _ => None,
    }
}

/// Skips an MPLS label stack; returns the IP packet under it.
fn label_stack<'a>(mut data: &'a [u8], s: &mut PacketSummary) -> Option<&'a [u8]> {
    for _ in 0..mpls::MAX_LABELS {
        let (Some(entry), Some(rest)) = (data.get(..mpls::ENTRY), data.get(mpls::ENTRY..)) else {
            return truncated(s);
        };
        data = rest;
        if entry[mpls::BOS_BYTE] & mpls::BOS_BIT != 0 {
            return matches!(data.first().map(|b| b >> 4), Some(4 | 6)).then_some(data);
        }
    }
    None
}

/// Ethernet II, tags included.
fn ethernet<'a>(data: &'a [u8], s: &mut PacketSummary) -> Option<&'a [u8]> {
    match Ethernet2Slice::from_slice_without_fcs(data) {
        Ok(eth) => ether_payload(eth.payload(), s),
        Err(_) => truncated(s),
    }
}

/// Linux cooked v1/v2: a fixed header carrying an EtherType at `proto_at`.
fn cooked<'a>(data: &'a [u8], len: usize, proto_at: usize, s: &mut PacketSummary) -> Option<&'a [u8]> {
    match (be16(data, proto_at), data.get(len..)) {
        (Some(proto), Some(payload)) => ether_payload(ether(proto, payload), s),
        _ => truncated(s),
    }
}

/// BSD loopback: the address family, in either byte order, says IPv4 or
/// IPv6. Other families (e.g. AF_LINK) are not IP. No EtherType is set:
/// this link type carries none.
fn loopback<'a>(data: &'a [u8], s: &mut PacketSummary) -> Option<&'a [u8]> {
    let (Some(be), Some(le), Some(payload)) = (be32(data, 0), le32(data, 0), data.get(null::LEN..)) else {
        return truncated(s);
    };
    let is = |af: u32| be == af || le == af;
    let ip = is(null::AF_INET) || null::AF_INET6.iter().any(|&af| is(af));
    ip.then_some(payload)
}

/// pflog: skips the padded header. The IP version nibble says what follows
/// (address family numbers for IPv6 differ between the BSDs). A length
/// below the minimum is a broken header.
fn pf_log<'a>(data: &'a [u8], s: &mut PacketSummary) -> Option<&'a [u8]> {
    let Some(&len) = data.first() else { return truncated(s) };
    let len = usize::from(len);
    if len < pflog::MIN_LEN {
        return truncated(s);
    }
    let Some(payload) = data.get((len + 3) & !3..) else { return truncated(s) };
    matches!(payload.first().map(|b| b >> 4), Some(4 | 6)).then_some(payload)
}

/// Walks VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, legacy QinQ 0x9100) and
/// returns the payload if the inner EtherType is IPv4 or IPv6. A cut tag
/// leaves its own type as the EtherType, which is not IP.
fn ether_payload<'a>(mut p: EtherPayloadSlice<'a>, s: &mut PacketSummary) -> Option<&'a [u8]> {
    for _ in 0..MAX_TAGS {
        if !is_tag(p.ether_type) {
            break;
        }
        match SingleVlanSlice::from_slice(p.payload) {
            Ok(tag) => {
                s.vlan = s.vlan.or(Some(tag.vlan_identifier().value()));
                p = tag.payload();
            }
            Err(_) => {
                s.error = Some(DecodeError::TruncatedLink);
                break;
            }
        }
    }
    s.ether_type = p.ether_type.0;
    match p.ether_type.0 {
        mpls::ETHER_UC | mpls::ETHER_MC => label_stack(p.payload, s),
        _ => matches!(p.ether_type, ether_type::IPV4 | ether_type::IPV6).then_some(p.payload),
    }
}

fn is_tag(t: EtherType) -> bool {
    matches!(t, ether_type::VLAN_TAGGED_FRAME | ether_type::PROVIDER_BRIDGING | ether_type::VLAN_DOUBLE_TAGGED_FRAME)
}

fn ether(proto: u16, payload: &[u8]) -> EtherPayloadSlice<'_> {
    EtherPayloadSlice { ether_type: EtherType(proto), len_source: etherparse::LenSource::Slice, payload }
}

fn truncated<'a>(s: &mut PacketSummary) -> Option<&'a [u8]> {
    s.error = Some(DecodeError::TruncatedLink);
    None
}
