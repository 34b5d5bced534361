//! NetBIOS name service (RFC 1002 section 4.2) facts about a UDP payload:
//! the NodeStatus "*" query Windows sends when a reverse DNS lookup fails
//! (SIGNATURES.md section 5), and other well-formed name queries on port 137.
//! Reads at most the header and one question; allocates nothing.

use super::wire::{be16, u8_at};
use crate::decode::summary::fact;

/// The NetBIOS name service port.
const PORT: u16 = 137;

/// Header fields (RFC 1002 section 4.2.1.1).
const FLAGS: usize = 2;
const QDCOUNT: usize = 4;
const QUESTION: usize = 12;
/// R (response) bit and OPCODE field of the flags; both 0 in a query.
const RESPONSE_AND_OPCODE: u16 = 0xF800;

/// Question name: a 0x20 length byte and 32 "half-ASCII" characters
/// 'A'..='P' (RFC 1001 section 14.1), then scope labels, then 0x00.
const ENCODED_NAME_LEN: u8 = 0x20;
/// "*" padded with NULs, encoded, as in the NodeStatus query (RFC 1002
/// section 4.2.17), with its terminating empty label.
const STAR_NAME: &[u8; 34] = b"\x20CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00";
/// DNS limits a name to 255 bytes (RFC 1035 section 2.3.4); bounds the walk.
const MAX_NAME_LEN: usize = 255;
/// Longest DNS label (RFC 1035 section 2.3.4).
const MAX_LABEL_LEN: u8 = 63;

/// Question types and class (RFC 1002 section 4.2.1.2).
const TYPE_NB: u16 = 0x0020;
const TYPE_NBSTAT: u16 = 0x0021;
const CLASS_IN: u16 = 0x0001;

/// `fact` bits for a UDP payload between the given ports.
pub(super) fn facts(sport: u16, dport: u16, payload: &[u8]) -> u8 {
    if !is_query_header(payload) {
        return 0;
    }
    if is_star_node_status(payload) {
        fact::NBNS_NODESTATUS_STAR
    } else if (sport == PORT || dport == PORT) && is_name_query(payload) {
        fact::NBNS_QUERY
    } else {
        0
    }
}

/// A request (R = 0, OPCODE = 0 "query") with exactly one question.
fn is_query_header(b: &[u8]) -> bool {
    let flags_ok = be16(b, FLAGS).is_some_and(|f| f & RESPONSE_AND_OPCODE == 0);
    flags_ok && be16(b, QDCOUNT) == Some(1)
}

/// The 50-byte NodeStatus query for "*": fixed name, NBSTAT, IN.
fn is_star_node_status(b: &[u8]) -> bool {
    let name_end = QUESTION + STAR_NAME.len();
    b.get(QUESTION..name_end) == Some(STAR_NAME.as_slice())
        && be16(b, name_end) == Some(TYPE_NBSTAT)
        && be16(b, name_end + 2) == Some(CLASS_IN)
}

/// Any NB or NBSTAT question with a well-formed encoded name.
fn is_name_query(b: &[u8]) -> bool {
    let Some(end) = name_end(b) else {
        return false;
    };
    let qtype = be16(b, end);
    (qtype == Some(TYPE_NB) || qtype == Some(TYPE_NBSTAT)) && be16(b, end + 2) == Some(CLASS_IN)
}

/// Offset just past the question name, if it is a 32-character encoded
/// NetBIOS name followed by well-formed scope labels.
fn name_end(b: &[u8]) -> Option<usize> {
    if u8_at(b, QUESTION)? != ENCODED_NAME_LEN {
        return None;
    }
    let chars = b.get(QUESTION + 1..QUESTION + 1 + usize::from(ENCODED_NAME_LEN))?;
    if !chars.iter().all(|c| (b'A'..=b'P').contains(c)) {
        return None;
    }
    let mut at = QUESTION + 1 + usize::from(ENCODED_NAME_LEN);
    loop {
        let len = u8_at(b, at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len > MAX_LABEL_LEN || at - QUESTION > MAX_NAME_LEN {
            return None;
        }
        at += 1 + usize::from(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header of a Windows NodeStatus query: id 0x8001, flags 0, 1 question.
    const HEADER: [u8; 12] = [0x80, 0x01, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut q = HEADER.to_vec();
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn star_node_status_is_recognised_on_any_port() {
        let q = query(STAR_NAME, TYPE_NBSTAT);
        assert_eq!(q.len(), 50);
        assert_eq!(facts(137, 137, &q), fact::NBNS_NODESTATUS_STAR);
        assert_eq!(facts(1025, 137, &q), fact::NBNS_NODESTATUS_STAR);
        assert_eq!(facts(40000, 5000, &q), fact::NBNS_NODESTATUS_STAR);
        assert_eq!(facts(137, 137, &q[..49]), 0);
    }

    #[test]
    fn responses_and_other_opcodes_are_not_queries() {
        let mut q = query(STAR_NAME, TYPE_NBSTAT);
        q[FLAGS] = 0x84; // R=1, AA
        assert_eq!(facts(137, 137, &q), 0);
        q[FLAGS] = 0x28; // registration
        assert_eq!(facts(137, 137, &q), 0);
    }

    #[test]
    fn name_query_needs_port_137() {
        // "FRED" padded with spaces, scope "NETBIOS" "COM".
        let mut name = vec![0x20];
        name.extend_from_slice(b"EGFCEFEECACACACACACACACACACACACA");
        name.extend_from_slice(b"\x07NETBIOS\x03COM\x00");
        let q = query(&name, TYPE_NB);
        assert_eq!(facts(137, 137, &q), fact::NBNS_QUERY);
        assert_eq!(facts(53000, 137, &q), fact::NBNS_QUERY);
        assert_eq!(facts(53000, 53, &q), 0);
        let bad = query(&[0x20, b'Z'], TYPE_NB);
        assert_eq!(facts(137, 137, &bad), 0);
        // A DNS query to port 137 is not NBNS.
        let dns = query(b"\x07example\x03com\x00", 1);
        assert_eq!(facts(137, 137, &dns), 0);
    }
}
