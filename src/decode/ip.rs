//! Network layer: IPv4 / IPv6 header facts read from etherparse's lax IP
//! slices, the IPv4 option walk (RFC 791 section 3.1), the IPv6 fragment
//! header, and the `IpPayload` handed to the transport decoder. Used for the
//! outer packet and for the packet an ICMP error quotes.

use etherparse::{LaxIpPayloadSlice, LaxIpv4Slice, LaxIpv6Slice, LenSource};

use super::wire::{be16, be32, len32, u8_at};
use crate::decode::summary::{IpInfo, ipopt};

/// IPv6 fixed header length (RFC 8200 section 3).
const IPV6_HEADER_LEN: u32 = 40;

/// IPv6 extension headers (RFC 8200 section 4; AH: RFC 4302 section 2.2).
mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTS: u8 = 60;
    /// Fragment header: offset (13 bits) and M flag, then identification.
    pub const FRAG_OFFSET: usize = 2;
    pub const FRAG_ID: usize = 4;
}

/// IPv4 option kinds (RFC 791 section 3.1, IANA "ip-parameters").
mod opt {
    /// End of option list: the rest is padding.
    pub const EOL: u8 = 0;
    /// No operation: a single byte.
    pub const NOP: u8 = 1;
    pub const RR: u8 = 7;
    pub const TS: u8 = 68;
    pub const LSRR: u8 = 131;
    pub const SSRR: u8 = 137;
    /// Offset of the length byte of a multi-byte option.
    pub const LEN_AT: usize = 1;
    /// Smallest legal length of a multi-byte option (kind + length).
    pub const MIN_LEN: usize = 2;
}

/// What the IP layer hands to the transport decoder.
#[derive(Clone, Copy, Debug)]
pub(super) struct IpPayload<'a> {
    /// Final protocol number (after any IPv4 AH / IPv6 extension headers).
    pub proto: u8,
    /// The captured payload, bounded by the IP length field when it fits.
    pub bytes: &'a [u8],
    /// Payload length as the IP header claims it.
    pub claimed_len: u32,
    /// Fragment offset is 0: the transport header is here.
    pub first_fragment: bool,
}

/// Facts and payload of an IPv4 packet.
pub(super) fn v4<'a>(ip: &LaxIpv4Slice<'a>) -> (IpInfo, IpPayload<'a>) {
    let h = ip.header();
    let auth_len = ip.extensions().auth.map_or(0, |a| a.slice().len());
    let headers_len = len32(h.slice().len().saturating_add(auth_len));
    let payload = ip.payload();
    let frag_offset = h.fragments_offset().value();
    let info = IpInfo {
        src: h.source_addr().into(),
        dst: h.destination_addr().into(),
        ttl: h.ttl(),
        ip_id: u32::from(h.identification()),
        df: h.dont_fragment(),
        mf: h.more_fragments(),
        frag_offset,
        options: options(h.options()),
        proto: payload.ip_number.0,
        total_len: u32::from(h.total_len()),
    };
    (info, ip_payload(payload, info.total_len, headers_len, frag_offset))
}

/// Facts and payload of an IPv6 packet; the fragment header, if any,
/// supplies the id, MF and offset.
pub(super) fn v6<'a>(ip: &LaxIpv6Slice<'a>) -> (IpInfo, IpPayload<'a>) {
    let h = ip.header();
    let exts = ip.extensions();
    let frag = fragment(ip);
    let payload = ip.payload();
    let frag_offset = frag.offset;
    let total_len = u32::from(h.payload_length()).saturating_add(IPV6_HEADER_LEN);
    let headers_len = len32(exts.slice().len()).saturating_add(IPV6_HEADER_LEN);
    let info = IpInfo {
        src: h.source_addr().into(),
        dst: h.destination_addr().into(),
        ttl: h.hop_limit(),
        ip_id: frag.id,
        df: false,
        mf: frag.more,
        frag_offset,
        options: 0,
        proto: payload.ip_number.0,
        total_len,
    };
    (info, ip_payload(payload, total_len, headers_len, frag_offset))
}

/// The IPv6 fragment header's fields (RFC 8200 section 4.5), zero if absent.
#[derive(Default)]
struct Fragment {
    id: u32,
    offset: u16,
    more: bool,
}

/// The first fragment header among the extension headers etherparse
/// validated. Walked by hand: etherparse 0.21's `Ipv6ExtensionSliceIter`
/// reads past the slice when the lax parse stopped at a bad header.
fn fragment(ip: &LaxIpv6Slice<'_>) -> Fragment {
    let exts = ip.extensions();
    let (mut next, b) = match exts.first_header() {
        Some(first) => (first.0, exts.slice()),
        None => return Fragment::default(),
    };
    let mut at = 0;
    while at < b.len() {
        let len = match next {
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS => u8_at(b, at + 1).map(|l| (usize::from(l) + 1) * 8),
            ext::AUTH => u8_at(b, at + 1).map(|l| (usize::from(l) + 2) * 4),
            ext::FRAGMENT => return fragment_at(b, at),
            _ => None,
        };
        let (Some(len), Some(n)) = (len, u8_at(b, at)) else {
            break;
        };
        (next, at) = (n, at + len);
    }
    Fragment::default()
}

/// The fragment header at `at` (RFC 8200 section 4.5).
fn fragment_at(b: &[u8], at: usize) -> Fragment {
    let offset_and_m = be16(b, at + ext::FRAG_OFFSET).unwrap_or(0);
    Fragment { id: be32(b, at + ext::FRAG_ID).unwrap_or(0), offset: offset_and_m >> 3, more: offset_and_m & 1 != 0 }
}

/// The transport's view of the IP payload. When the length field was
/// unusable (0 or smaller than the headers, as with segmentation offload)
/// etherparse fell back to the captured bytes, and so does the claim.
fn ip_payload<'a>(p: &LaxIpPayloadSlice<'a>, total_len: u32, headers_len: u32, frag_offset: u16) -> IpPayload<'a> {
    let claimed_len = if p.len_source == LenSource::Slice && !p.incomplete {
        len32(p.payload.len())
    } else {
        total_len.saturating_sub(headers_len)
    };
    IpPayload { proto: p.ip_number.0, bytes: p.payload, claimed_len, first_fragment: frag_offset == 0 }
}

/// Walks the IPv4 options (RFC 791 section 3.1) into `ipopt` bits. Bounded by
/// the 40 option bytes an IHL of 15 allows.
fn options(opts: &[u8]) -> u8 {
    if opts.is_empty() {
        return 0;
    }
    let mut bits = ipopt::PRESENT;
    let mut at = 0;
    while let Some(kind) = u8_at(opts, at) {
        match kind {
            opt::EOL => break,
            opt::NOP => at += 1,
            _ => match option_len(opts, at) {
                Some(len) => {
                    bits |= option_bit(kind);
                    at += len;
                }
                None => return bits | ipopt::MALFORMED,
            },
        }
    }
    bits
}

/// Length of the multi-byte option at `at`, if it is legal and fits.
fn option_len(opts: &[u8], at: usize) -> Option<usize> {
    let len = usize::from(u8_at(opts, at.checked_add(opt::LEN_AT)?)?);
    let fits = at.checked_add(len).is_some_and(|end| end <= opts.len());
    (len >= opt::MIN_LEN && fits).then_some(len)
}

/// The `ipopt` bit for an option kind picket reports.
fn option_bit(kind: u8) -> u8 {
    match kind {
        opt::LSRR => ipopt::LSRR,
        opt::SSRR => ipopt::SSRR,
        opt::RR => ipopt::RR,
        opt::TS => ipopt::TIMESTAMP,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_walk() {
        assert_eq!(options(&[]), 0);
        // NOP, LSRR len 7 (pointer 4, one address), EOL.
        let lsrr = [1, 131, 7, 4, 10, 0, 0, 1, 0];
        assert_eq!(options(&lsrr), ipopt::PRESENT | ipopt::LSRR);
        // RR then TS, exactly filling the area.
        let two = [7, 3, 4, 68, 4, 5, 0, 0];
        assert_eq!(options(&two), ipopt::PRESENT | ipopt::RR | ipopt::TIMESTAMP);
        // SSRR whose length runs past the end.
        assert_eq!(options(&[137, 9, 4, 0]), ipopt::PRESENT | ipopt::MALFORMED);
        // Length below 2 would never advance.
        assert_eq!(options(&[68, 1, 0, 0]), ipopt::PRESENT | ipopt::MALFORMED);
        // Kind with no length byte.
        assert_eq!(options(&[1, 1, 1, 7]), ipopt::PRESENT | ipopt::MALFORMED);
    }
}
