//! The network layer into a summary: slices an IP packet (laxly), records
//! its facts and hands the payload to the transport decoder. Shared by the
//! frame decoder and the reassembler, which decodes a rebuilt datagram.

use etherparse::LaxIpSlice;
use etherparse::err::{ip::LaxHeaderSliceError, ipv6_exts::HeaderSliceError};

use super::{ip, transport};
use crate::decode::summary::{DecodeError, PacketSummary};

/// Fills the IP facts and, unless the IP layer stopped early, the transport.
pub(super) fn decode(packet: &[u8], s: &mut PacketSummary) {
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
