//! Link layer: turns a captured frame of any supported `LinkKind` into
//! etherparse's lax slicing of everything below it, and records the link
//! facts (inner EtherType, outermost VLAN id).
//!
//! etherparse handles Ethernet II with 802.1Q / QinQ (0x8100, 0x88a8, 0x9100)
//! tags and bare IP. The capture pseudo-headers it does not know (Linux
//! cooked v2, BSD loopback) are stripped here by hand; Linux cooked v1 is
//! stripped the same way so both cooked formats share one path.

use etherparse::{EtherType, LaxLinkExtSlice, LaxSlicedPacket, ether_type};

use super::wire::{be16, be32, le32};
use crate::summary::{DecodeError, LinkKind, PacketSummary};

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

/// Slices the frame below the link header. Returns `None` (with `s.error`
/// set when the link header was cut short) when there is nothing to slice.
pub(super) fn slice<'a>(link: LinkKind, data: &'a [u8], s: &mut PacketSummary) -> Option<LaxSlicedPacket<'a>> {
    let pkt = match link {
        LinkKind::Ethernet => ethernet(data, s)?,
        LinkKind::LinuxSll => cooked(data, sll::LEN, sll::PROTOCOL, s)?,
        LinkKind::LinuxSll2 => cooked(data, sll2::LEN, sll2::PROTOCOL, s)?,
        LinkKind::Null => return loopback(data, s),
        LinkKind::Raw | LinkKind::Ipv4 | LinkKind::Ipv6 => return raw_ip(data, s),
    };
    record_link_facts(&pkt, s);
    Some(pkt)
}

/// Ethernet II, tags included.
fn ethernet<'a>(data: &'a [u8], s: &mut PacketSummary) -> Option<LaxSlicedPacket<'a>> {
    match LaxSlicedPacket::from_ethernet(data) {
        Ok(pkt) => Some(pkt),
        Err(_) => {
            s.error = Some(DecodeError::TruncatedLink);
            None
        }
    }
}

/// Linux cooked v1/v2: a fixed header carrying an EtherType at `proto_at`.
fn cooked<'a>(data: &'a [u8], len: usize, proto_at: usize, s: &mut PacketSummary) -> Option<LaxSlicedPacket<'a>> {
    let (Some(proto), Some(rest)) = (be16(data, proto_at), data.get(len..)) else {
        s.error = Some(DecodeError::TruncatedLink);
        return None;
    };
    s.ether_type = proto;
    Some(LaxSlicedPacket::from_ether_type(EtherType(proto), rest))
}

/// BSD loopback: the address family, in either byte order, picks IPv4 or
/// IPv6. Other families (e.g. AF_LINK) are not IP and decode to nothing.
fn loopback<'a>(data: &'a [u8], s: &mut PacketSummary) -> Option<LaxSlicedPacket<'a>> {
    let (Some(be), Some(le), Some(rest)) = (be32(data, 0), le32(data, 0), data.get(null::LEN..)) else {
        s.error = Some(DecodeError::TruncatedLink);
        return None;
    };
    let is = |af: u32| be == af || le == af;
    let ether = if is(null::AF_INET) {
        ether_type::IPV4
    } else if null::AF_INET6.iter().any(|&af| is(af)) {
        ether_type::IPV6
    } else {
        return None;
    };
    let pkt = LaxSlicedPacket::from_ether_type(ether, rest);
    super::record_stop(&pkt, s);
    Some(pkt)
}

/// Bare IPv4 or IPv6; etherparse dispatches on the version nibble.
fn raw_ip<'a>(data: &'a [u8], s: &mut PacketSummary) -> Option<LaxSlicedPacket<'a>> {
    match LaxSlicedPacket::from_ip(data) {
        Ok(pkt) => {
            super::record_stop(&pkt, s);
            Some(pkt)
        }
        Err(e) => {
            s.error = Some(super::ip_header_error(&e));
            None
        }
    }
}

/// Inner EtherType, outermost VLAN id, and any stop in the link or IP layer.
fn record_link_facts(pkt: &LaxSlicedPacket<'_>, s: &mut PacketSummary) {
    if let Some(p) = pkt.ether_payload() {
        s.ether_type = p.ether_type.0;
    }
    s.vlan = pkt.link_exts.iter().find_map(|ext| match ext {
        LaxLinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
        LaxLinkExtSlice::Macsec(_) => None,
    });
    super::record_stop(pkt, s);
}
