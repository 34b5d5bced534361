//! TCP (RFC 9293 section 3.1): header fields from etherparse's `TcpSlice`,
//! the option walk that fingerprints the sending stack, and headers the
//! capture cut off inside the options (etherparse rejects those whole).

use etherparse::TcpSlice;

use super::ip::IpPayload;
use super::payload::set_payload;
use super::wire::{be16, be32, len32, u8_at};
use crate::decode::summary::{DecodeError, L4, PacketSummary, TcpInfo, TcpOpts, tcpflag};

/// Fixed part of the header (RFC 9293 section 3.1).
const MIN_HEADER_LEN: usize = 20;
/// Byte holding the data offset (high nibble) and the NS flag (bit 0).
const DATA_OFFSET: usize = 12;
/// Byte holding CWR..FIN.
const FLAGS: usize = 13;
/// Offset of a multi-byte option's length byte, and the smallest legal length.
const OPT_LEN_AT: usize = 1;
const OPT_MIN_LEN: usize = 2;
/// Options `TcpOpts::layout` has room for (one nibble each in a `u32`).
const LAYOUT_SLOTS: u8 = 8;

/// Option kinds (IANA "tcp-parameters"; RFC 9293, RFC 7323, RFC 2018).
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMP: u8 = 8;
    /// Layout nibble for any kind not listed above.
    pub const OTHER_NIBBLE: u32 = 0xF;
}

/// Decodes the TCP header at the start of an IP payload etherparse did not
/// slice (first fragments, headers cut inside the options).
pub(super) fn decode(p: &IpPayload<'_>, s: &mut PacketSummary) {
    match TcpSlice::from_slice(p.bytes) {
        Ok(t) => from_slice(&t, p, s),
        Err(_) => partial(p.bytes, s),
    }
}

/// Fills the TCP facts and payload from a complete header.
fn from_slice(t: &TcpSlice<'_>, p: &IpPayload<'_>, s: &mut PacketSummary) {
    let (opts, malformed) = walk_options(t.options());
    s.l4 = L4::Tcp(info(t, opts));
    if malformed {
        s.error = Some(DecodeError::MalformedTcpOptions);
    }
    let header_len = len32(t.header_slice().len());
    set_payload(s, t.payload(), p.claimed_len.saturating_sub(header_len));
}

/// A header whose options the capture cut short: the fixed 20 bytes are
/// sliced on their own (data offset forced to 5) and the options walked as
/// far as captured. An impossible data offset (< 5) yields no TCP facts.
fn partial(bytes: &[u8], s: &mut PacketSummary) {
    s.error = Some(DecodeError::TruncatedTcp);
    let Some(fixed) = bytes.first_chunk::<MIN_HEADER_LEN>() else {
        return;
    };
    let header_len = usize::from(fixed[DATA_OFFSET] >> 4) * 4;
    if header_len < MIN_HEADER_LEN {
        return;
    }
    let mut base = *fixed;
    base[DATA_OFFSET] = (base[DATA_OFFSET] & 0x0f) | 0x50;
    let Ok(t) = TcpSlice::from_slice(&base) else {
        return;
    };
    let captured = bytes.get(MIN_HEADER_LEN..).unwrap_or_default();
    let opts = captured.get(..header_len - MIN_HEADER_LEN).unwrap_or(captured);
    s.l4 = L4::Tcp(info(&t, walk_options(opts).0));
}

/// The header fields picket keeps.
fn info(t: &TcpSlice<'_>, opts: TcpOpts) -> TcpInfo {
    let ns = if t.ns() { tcpflag::NS } else { 0 };
    TcpInfo {
        sport: t.source_port(),
        dport: t.destination_port(),
        flags: u8_at(t.header_slice(), FLAGS).map_or(0, u16::from) | ns,
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        window: t.window_size(),
        opts,
    }
}

/// Walks the options (RFC 9293 section 3.2). Returns what was read and
/// whether an option had an impossible length; the walk stops there.
fn walk_options(opts: &[u8]) -> (TcpOpts, bool) {
    if let Some(o) = timestamp_only(opts) {
        return (o, false);
    }
    walk_options_slow(opts)
}

/// Fast path for NOP, NOP, Timestamp: what nearly every segment of an
/// established Linux or BSD connection carries. Same result as the walk.
#[inline]
fn timestamp_only(opts: &[u8]) -> Option<TcpOpts> {
    let b: &[u8; 12] = opts.try_into().ok()?;
    if b[..4] != [kind::NOP, kind::NOP, kind::TIMESTAMP, 10] {
        return None;
    }
    let ts = (be32(b, 4)?, be32(b, 8)?);
    let layout = nibble(kind::NOP) | (nibble(kind::NOP) << 4) | (nibble(kind::TIMESTAMP) << 8);
    Some(TcpOpts { timestamp: Some(ts), layout, count: 3, ..TcpOpts::default() })
}

fn walk_options_slow(opts: &[u8]) -> (TcpOpts, bool) {
    let mut o = TcpOpts::default();
    let mut at = 0;
    while let Some(k) = u8_at(opts, at) {
        if k == kind::EOL || k == kind::NOP {
            record(&mut o, k);
            if k == kind::EOL {
                break; // the rest is padding
            }
            at += 1;
            continue;
        }
        let Some(body) = option_body(opts, at) else {
            return (o, true);
        };
        if apply(&mut o, k, body).is_none() {
            return (o, true);
        }
        record(&mut o, k);
        at += body.len() + OPT_MIN_LEN;
    }
    (o, false)
}

/// The data bytes of the multi-byte option at `at`, if its length is legal
/// and it fits.
fn option_body(opts: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u8_at(opts, at.checked_add(OPT_LEN_AT)?)?);
    if len < OPT_MIN_LEN {
        return None;
    }
    opts.get(at.checked_add(OPT_MIN_LEN)?..at.checked_add(len)?)
}

/// Stores a known option's value; `None` when its length is wrong for its
/// kind. Unknown kinds are skipped by their length.
fn apply(o: &mut TcpOpts, k: u8, body: &[u8]) -> Option<()> {
    match (k, body.len()) {
        (kind::MSS, 2) => o.mss = be16(body, 0),
        (kind::WS, 1) => o.wscale = u8_at(body, 0),
        (kind::SACK_PERMITTED, 0) => o.sack_permitted = true,
        // 1 to 4 blocks of (left edge, right edge) (RFC 2018 section 3).
        (kind::SACK, n) if n > 0 && n % 8 == 0 => o.sack = true,
        (kind::TIMESTAMP, 8) => o.timestamp = Some((be32(body, 0)?, be32(body, 4)?)),
        (kind::MSS | kind::WS | kind::SACK_PERMITTED | kind::SACK | kind::TIMESTAMP, _) => {
            return None;
        }
        _ => {}
    }
    Some(())
}

/// Appends a kind to the layout (first eight options) and counts it.
fn record(o: &mut TcpOpts, k: u8) {
    if o.count < LAYOUT_SLOTS {
        o.layout |= nibble(k) << (4 * u32::from(o.count));
    }
    o.count = o.count.saturating_add(1);
}

/// The layout nibble of an option kind, as `TcpOpts::layout` documents.
fn nibble(k: u8) -> u32 {
    match k {
        kind::EOL..=kind::SACK | kind::TIMESTAMP => u32::from(k),
        _ => kind::OTHER_NIBBLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_syn_options() {
        // MSS 1460, SACKP, TS (1, 0), NOP, WS 7.
        let o = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        let (opts, bad) = walk_options(&o);
        assert!(!bad);
        assert_eq!(opts.mss, Some(1460));
        assert!(opts.sack_permitted);
        assert_eq!(opts.timestamp, Some((1, 0)));
        assert_eq!(opts.wscale, Some(7));
        assert_eq!(opts.layout, 0x0003_1842);
        assert_eq!(opts.count, 5);
    }

    #[test]
    fn the_timestamp_fast_path_matches_the_walk() {
        let o = [1, 1, 8, 10, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 9];
        let fast = timestamp_only(&o).expect("NOP NOP TS takes the fast path");
        assert_eq!((fast, false), walk_options_slow(&o));
        assert_eq!(fast.timestamp, Some((0x1234_5678, 9)));
        // Anything else (a wrong TS length, other kinds) takes the walk.
        assert!(timestamp_only(&[1, 1, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(timestamp_only(&o[..11]).is_none());
        let (_, bad) = walk_options(&[1, 1, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(bad);
    }

    #[test]
    fn layout_keeps_eight_and_counts_all() {
        let o = [1u8; 12];
        let (opts, bad) = walk_options(&o);
        assert!(!bad);
        assert_eq!(opts.layout, 0x1111_1111);
        assert_eq!(opts.count, 12);
    }

    #[test]
    fn eol_ends_the_walk_and_unknown_kinds_are_skipped() {
        // kind 30 (MPTCP) len 4, EOL, garbage padding.
        let (opts, bad) = walk_options(&[30, 4, 0, 0, 0, 99, 99]);
        assert!(!bad);
        assert_eq!(opts.layout, 0x0F);
        assert_eq!(opts.count, 2);
    }

    #[test]
    fn impossible_lengths_are_malformed() {
        assert!(walk_options(&[2, 3, 5]).1); // MSS of length 3
        assert!(walk_options(&[2, 4, 5]).1); // MSS past the end
        assert!(walk_options(&[30, 1]).1); // length below 2
        assert!(walk_options(&[30, 0]).1);
        assert!(walk_options(&[1, 30]).1); // no length byte
        assert!(walk_options(&[5, 2]).1); // SACK with no block
        let (opts, bad) = walk_options(&[1, 3, 3, 7, 8, 9]);
        assert!(bad);
        assert_eq!((opts.wscale, opts.count), (Some(7), 2));
    }
}
