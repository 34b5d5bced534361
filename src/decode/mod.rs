//! Frame decoding: link layer -> IP -> TCP/UDP/ICMP -> payload facts, into a
//! `PacketSummary`. Runs in the reader thread; allocates nothing.
//!
//! Contract: `decode` never panics on any input; it decodes as far as the
//! bytes allow and records where it stopped in `PacketSummary::error`.
//!
//! Each header is sliced once with etherparse's per-layer slices (the same
//! ones its `LaxSlicedPacket` is built from, without moving that 328-byte
//! struct through every layer: that was half of the decode time). IP is
//! sliced laxly: a length field claiming more than was captured is not an
//! error. Hand-parsed is only what etherparse does not do: capture
//! pseudo-headers, IPv4 and TCP option walks, partial TCP headers, ICMP
//! quotes, NBNS. One concern per file:
//! `link` (link headers), `ip` (network layer), `transport` (L4 dispatch,
//! UDP, payload), `tcp`, `icmp`, `nbns`, `wire` (checked byte readers).

mod icmp;
mod ip;
mod link;
mod nbns;
mod payload;
pub mod summary;
mod tcp;
mod transport;
mod wire;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use etherparse::LaxIpSlice;
use etherparse::err::{ip::LaxHeaderSliceError, ipv6_exts::HeaderSliceError};

use crate::decode::summary::{DecodeError, LinkKind, PacketSummary};

/// Decodes one captured frame of the given link type.
pub fn decode(link: LinkKind, ts_us: i64, wire_len: u32, data: &[u8]) -> PacketSummary {
    let mut s = PacketSummary::new(0, 0, 0);
    decode_into(link, ts_us, wire_len, data, &mut s);
    s
}

/// `decode` into a summary the caller keeps (the reader reuses one), so
/// the 160-byte summary is not moved through every call on the hot path.
/// Every field of `s` is overwritten.
#[inline]
pub fn decode_into(link: LinkKind, ts_us: i64, wire_len: u32, data: &[u8], s: &mut PacketSummary) {
    *s = PacketSummary::new(ts_us, wire_len, wire::len32(data.len()));
    if let Some(packet) = link::strip(link, data, s) {
        network(packet, s);
    }
}

/// Fills the IP facts and, unless the IP layer stopped early, the transport.
fn network(packet: &[u8], s: &mut PacketSummary) {
    let (ip, stop) = match LaxIpSlice::from_slice(packet) {
        Ok(sliced) => sliced,
        Err(e) => {
            s.error = Some(ip_header_error(&e));
            return;
        }
    };
    let (info, payload) = match &ip {
        LaxIpSlice::Ipv4(v4) => ip::v4(v4),
        LaxIpSlice::Ipv6(v6) => ip::v6(v6),
    };
    s.ip = Some(info);
    match stop {
        Some((e, _)) => s.error = Some(ext_header_error(&e)),
        None => transport::decode(&payload, s),
    }
}

/// Error kind for an IP header etherparse could not slice at all.
fn ip_header_error(e: &LaxHeaderSliceError) -> DecodeError {
    match e {
        LaxHeaderSliceError::Len(_) => DecodeError::TruncatedIp,
        LaxHeaderSliceError::Content(_) => DecodeError::MalformedIp,
    }
}

/// Error kind for an IPv4 AH or IPv6 extension header etherparse stopped at.
fn ext_header_error(e: &HeaderSliceError) -> DecodeError {
    match e {
        HeaderSliceError::Len(_) => DecodeError::TruncatedIp,
        HeaderSliceError::Content(_) => DecodeError::MalformedIp,
    }
}
