//! Frame decoding: link layer -> IP -> TCP/UDP/ICMP -> payload facts, into a
//! `PacketSummary`. Runs in the reader thread; allocates nothing.
//!
//! Contract: `decode` never panics on any input; it decodes as far as the
//! bytes allow and records where it stopped in `PacketSummary::error`.
//!
//! etherparse's `LaxSlicedPacket` slices each frame once; the files below
//! read facts out of its slices and hand-parse only what etherparse does not
//! (capture pseudo-headers, IPv4 and TCP option walks, partial TCP headers,
//! ICMP quotes, NBNS). One concern per file:
//! `link` (link headers), `ip` (network layer), `transport` (L4 dispatch,
//! UDP, payload), `tcp`, `icmp`, `nbns`, `wire` (checked byte readers).

mod icmp;
mod ip;
mod link;
mod nbns;
mod tcp;
mod transport;
mod wire;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use etherparse::err::{Layer, ip::LaxHeaderSliceError, packet::SliceError};
use etherparse::{LaxNetSlice, LaxSlicedPacket};

use crate::summary::{DecodeError, LinkKind, PacketSummary};

/// Decodes one captured frame of the given link type.
pub fn decode(link: LinkKind, ts_us: i64, wire_len: u32, data: &[u8]) -> PacketSummary {
    let mut s = PacketSummary::new(ts_us, wire_len, wire::len32(data.len()));
    if let Some(pkt) = link::slice(link, data, &mut s) {
        network(&pkt, &mut s);
    }
    s
}

/// Fills the IP facts and, unless the IP layer stopped early, the transport.
fn network(pkt: &LaxSlicedPacket<'_>, s: &mut PacketSummary) {
    let (info, payload) = match &pkt.net {
        Some(LaxNetSlice::Ipv4(v4)) => ip::v4(v4),
        Some(LaxNetSlice::Ipv6(v6)) => ip::v6(v6),
        Some(LaxNetSlice::Arp(_)) | None => return,
    };
    s.ip = Some(info);
    if s.error.is_none() {
        transport::decode(&payload, pkt.transport.as_ref(), s);
    }
}

/// Records where etherparse stopped, if it stopped in the link or IP layer.
/// Transport-layer stops are left to `transport`, which also decodes what
/// etherparse skips (first fragments, partial TCP headers).
fn record_stop(pkt: &LaxSlicedPacket<'_>, s: &mut PacketSummary) {
    if let Some((err, layer)) = &pkt.stop_err {
        if let Some(e) = stop_error(err, *layer) {
            s.error = Some(e);
        }
    }
}

/// Maps an etherparse stop to picket's error kind; `None` for layers
/// picket does not report (ARP) or decodes itself (transport).
fn stop_error(err: &SliceError, layer: Layer) -> Option<DecodeError> {
    let truncated = matches!(err, SliceError::Len(_));
    match layer {
        Layer::LinuxSllHeader
        | Layer::Ethernet2Header
        | Layer::EtherPayload
        | Layer::VlanHeader
        | Layer::MacsecHeader
        | Layer::MacsecPacket => Some(DecodeError::TruncatedLink),
        Layer::IpHeader
        | Layer::Ipv4Header
        | Layer::Ipv4Packet
        | Layer::IpAuthHeader
        | Layer::Ipv6Header
        | Layer::Ipv6Packet
        | Layer::Ipv6ExtHeader
        | Layer::Ipv6HopByHopHeader
        | Layer::Ipv6DestOptionsHeader
        | Layer::Ipv6RouteHeader
        | Layer::Ipv6FragHeader => Some(if truncated { DecodeError::TruncatedIp } else { DecodeError::MalformedIp }),
        _ => None,
    }
}

/// Error kind for an IP header etherparse could not slice at all.
fn ip_header_error(e: &LaxHeaderSliceError) -> DecodeError {
    match e {
        LaxHeaderSliceError::Len(_) => DecodeError::TruncatedIp,
        LaxHeaderSliceError::Content(_) => DecodeError::MalformedIp,
    }
}
