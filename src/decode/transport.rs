//! Transport dispatch: picks the TCP / UDP / ICMP decoder for an IP payload
//! (first fragments included). Also owns UDP (RFC 768) and the
//! `payload_len` / `payload_head` fields.

use etherparse::{IpNumber, UdpSlice, ip_number};

use super::ip::IpPayload;
use super::payload::set_payload;
use super::{icmp, nbns, tcp};
use crate::decode::summary::{DecodeError, L4, PacketSummary, UdpInfo};

/// UDP header length (RFC 768).
const UDP_HEADER_LEN: u16 = 8;

/// Decodes the transport header of `p`. Non-first fragments carry no
/// header: their payload is fragment data.
pub(super) fn decode(p: &IpPayload<'_>, s: &mut PacketSummary) {
    if !p.first_fragment {
        set_payload(s, p.bytes, p.claimed_len);
        return;
    }
    match IpNumber(p.proto) {
        ip_number::TCP => tcp::decode(p, s),
        ip_number::UDP => match UdpSlice::from_slice_lax(p.bytes) {
            Ok(u) => udp(&u, p, s),
            Err(_) => s.error = Some(DecodeError::TruncatedUdp),
        },
        ip_number::ICMP => icmp::decode_v4(p, s),
        ip_number::IPV6_ICMP => icmp::decode_v6(p, s),
        _ => other(p, s),
    }
}

/// UDP ports, payload and NBNS facts. A length field below the header size
/// is impossible (0 is left alone: IPv6 jumbograms and offloaded sends).
fn udp(u: &UdpSlice<'_>, p: &IpPayload<'_>, s: &mut PacketSummary) {
    let (sport, dport) = (u.source_port(), u.destination_port());
    s.l4 = L4::Udp(UdpInfo { sport, dport });
    let claimed = match u.length() {
        0 => p.claimed_len.saturating_sub(u32::from(UDP_HEADER_LEN)),
        len => {
            if len < UDP_HEADER_LEN {
                s.error = Some(DecodeError::TruncatedUdp);
            }
            u32::from(len.saturating_sub(UDP_HEADER_LEN))
        }
    };
    set_payload(s, u.payload(), claimed);
    s.payload_facts = nbns::facts(sport, dport, u.payload());
}

/// A protocol picket does not decode: the whole IP payload is payload.
fn other(p: &IpPayload<'_>, s: &mut PacketSummary) {
    s.l4 = L4::Other;
    set_payload(s, p.bytes, p.claimed_len);
}
