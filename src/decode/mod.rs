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
//! UDP, payload), `tcp`, `icmp`, `nbns`, `wire` (checked byte readers),
//! `network` (an IP packet into the summary), `defrag` (IPv4 / IPv6
//! fragment reassembly, run by the dispatcher in the reader thread).

pub mod defrag;
mod icmp;
mod ip;
mod link;
mod nbns;
mod network;
mod payload;
pub mod summary;
mod tcp;
mod transport;
mod wire;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use crate::decode::summary::{LinkKind, PacketSummary};

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
        network::decode(packet, s);
    }
}
