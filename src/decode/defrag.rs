//! IP fragment reassembly (IPv4: RFC 791 section 3.2, RFC 815; IPv6: RFC
//! 8200 section 4.5) in fixed, preallocated memory, run by the dispatcher in
//! the reader thread, before summaries are sharded. The detectors then see
//! one summary per datagram, with its whole transport header (ports,
//! flags), instead of fragments without one.
//!
//! What is kept: the detectors read headers and the first payload bytes
//! only, so a datagram in reassembly holds its IP header (from the first
//! fragment) and its first `HEAD` bytes; beyond them only which ranges
//! arrived is tracked (to know when the datagram is complete). Memory is
//! `LANES * WAYS` slots of about 700 bytes, allocated once; a packet that
//! is not a fragment pays one test of two header fields.
//!
//! Bounds and fairness: slots are grouped in lanes by source address. A
//! new datagram takes a free slot of its source's lane, else a finished
//! one, else one past its timeout (30 s for IPv4 as Linux's ipfrag_time,
//! 60 s for IPv6 as RFC 8200); if none, the lane evicts a datagram of the
//! source holding the most slots in it: of those, one that has had a single
//! fragment (on probation, as `detect::fair` tables keep a key seen once)
//! before one that has had two or more, then the oldest. A source flooding
//! fragments therefore pushes out its own datagrams first, never those of a
//! source holding fewer, and a spoofed flood of one fragment per forged
//! source pushes out its own one-fragment datagrams before a datagram
//! whose fragments keep arriving. Timeouts run on packet time (`expire`, once per tick).
//!
//! Overlaps: first wins. Bytes already held are kept; a later fragment only
//! fills what is missing (Snort's "first" / Windows policy). Targets
//! differ (BSD and Linux once favoured later data, Linux and RFC 5722 now
//! drop the datagram), so the sensor cannot know which bytes a target used:
//! the overlap itself is reported (`frag::OVERLAP`, an `anomaly` of kind
//! `fragment_overlap`). A fragment wholly inside what was held, with the
//! same bytes where the sensor holds them, is a duplicate (a frame captured
//! twice): counted, not an anomaly.
//!
//! A datagram the reassembler gives up on (timeout, eviction, end of a
//! file) is still delivered once, marked `frag::INCOMPLETE`, when its first
//! fragment arrived or it carried an anomaly: its evidence is not lost.

use std::net::IpAddr;

use super::link;
use super::network;
use super::wire::{be16, len32, u8_at};
use crate::decode::summary::{L4, LinkKind, PAYLOAD_HEAD, PacketSummary, frag};

/// Lanes (by source address hash); a power of two.
pub const LANES: usize = 64;
/// Datagrams one lane holds.
pub const WAYS: usize = 16;
/// Datagrams in reassembly at most.
pub const MAX_DATAGRAMS: usize = LANES * WAYS;
/// Leading bytes of each datagram's fragmentable part kept: a TCP header
/// with options (60), an ICMP error's quote, NBNS facts, the payload head.
pub const HEAD: usize = 256;
/// IP header bytes kept: IPv4's 60, or IPv6's 40 plus the extension
/// headers up to and including the fragment header.
const HDR_MAX: usize = 128;
/// Disjoint ranges one datagram may have (holes between out-of-order
/// fragments); one more and the datagram is given up.
const MAX_RANGES: usize = 24;
/// Reassembly timeouts in packet time: Linux's ipfrag_time (IPv4) and
/// RFC 8200 section 4.5's 60 s (IPv6).
pub const TIMEOUT_V4_US: i64 = 30_000_000;
pub const TIMEOUT_V6_US: i64 = 60_000_000;
/// Largest IPv4 datagram (total length) and IPv6 payload.
const MAX_LEN: u32 = 65_535;
/// Smallest transport headers a first fragment must hold (RFC 1858 for
/// TCP; UDP and ICMP headers are 8 bytes).
const TCP_MIN: u32 = 20;
const SMALL_MIN: u32 = 8;

/// IPv6 extension headers that may precede the fragment header.
mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const DEST_OPTS: u8 = 60;
    /// Fixed IPv6 header length; next header at 6, payload length at 4.
    pub const FIXED: usize = 40;
    pub const NEXT: usize = 6;
    pub const PAYLOAD_LEN: usize = 4;
    /// Fragment header length, and its offset-and-flags field.
    pub const FRAG_LEN: usize = 8;
    pub const FRAG_OFFSET: usize = 2;
}

/// What the reassembler did, for the `fragments` object of the stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragCounts {
    /// Fragments read (IPv4 MF or offset set; IPv6 fragment header that fragments).
    pub fragments: u64,
    /// Datagrams completed and delivered.
    pub reassembled: u64,
    /// Datagrams delivered without all their fragments (timed out, evicted, pending at the end).
    pub incomplete: u64,
    /// Datagrams still incomplete after their timeout.
    pub timeouts: u64,
    /// Datagrams pushed out for room (the lane's biggest holder's oldest).
    pub evicted: u64,
    /// Datagrams pending when a file ended.
    pub pending_at_end: u64,
    /// Fragments overlapping others with a different extent or bytes.
    pub overlaps: u64,
    /// Fragments that repeated what was held (same range, same bytes).
    pub duplicates: u64,
    /// First fragments too short for the transport header.
    pub tiny: u64,
    /// Fragments passed on as decoded: unparseable fragment header, a
    /// non-last fragment not a multiple of 8 bytes, a datagram past 65,535
    /// bytes, headers too long to keep, or too many holes.
    pub unreassembled: u64,
    /// Datagrams in reassembly now.
    pub held: u64,
}

impl FragCounts {
    /// The names of the stats fields, in `values` order.
    pub const NAMES: [&'static str; 11] = [
        "fragments",
        "reassembled",
        "incomplete",
        "timeouts",
        "evicted",
        "pending_at_end",
        "overlaps",
        "duplicates",
        "tiny",
        "unreassembled",
        "held",
    ];

    /// The counts, in `NAMES` order.
    pub fn values(&self) -> [u64; 11] {
        [
            self.fragments,
            self.reassembled,
            self.incomplete,
            self.timeouts,
            self.evicted,
            self.pending_at_end,
            self.overlaps,
            self.duplicates,
            self.tiny,
            self.unreassembled,
            self.held,
        ]
    }
}

/// Identifies a datagram: RFC 791's (source, destination, protocol, id);
/// RFC 8200's (source, destination, id), protocol 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// Waiting for fragments.
    Live,
    /// Delivered; kept (until its room is needed or its timeout) so late
    /// copies of its fragments are recognised, not taken for a new datagram.
    Done,
}

/// One datagram in reassembly.
struct Slot {
    state: State,
    key: Key,
    v6: bool,
    first_us: i64,
    last_us: i64,
    /// The IP header bytes (see `HDR_MAX`), and where IPv6's fragment header is.
    hdr: [u8; HDR_MAX],
    hdr_len: u8,
    frag_at: u8,
    /// The offset-0 fragment arrived (its header is in `hdr`).
    have_first: bool,
    /// Fragments added (saturating): one means still on probation.
    pieces: u8,
    /// The first `HEAD` bytes of the fragmentable part, and which are known.
    head: [u8; HEAD],
    known: [u64; HEAD / 64],
    /// Sorted, disjoint byte ranges received.
    ranges: [(u32, u32); MAX_RANGES],
    nranges: u8,
    /// Length of the datagram's fragmentable part, from the last fragment.
    end: Option<u32>,
    /// `frag::TINY` / `frag::OVERLAP`.
    bits: u8,
    wire: u32,
    ether_type: u16,
    vlan: Option<u16>,
}

impl Slot {
    fn empty() -> Slot {
        let any = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        Slot {
            state: State::Free,
            key: Key { src: any, dst: any, id: 0, proto: 0 },
            v6: false,
            first_us: 0,
            last_us: 0,
            hdr: [0; HDR_MAX],
            hdr_len: 0,
            frag_at: 0,
            have_first: false,
            pieces: 0,
            head: [0; HEAD],
            known: [0; HEAD / 64],
            ranges: [(0, 0); MAX_RANGES],
            nranges: 0,
            end: None,
            bits: 0,
            wire: 0,
            ether_type: 0,
            vlan: None,
        }
    }

    fn ranges(&self) -> &[(u32, u32)] {
        self.ranges.get(..usize::from(self.nranges)).unwrap_or_default()
    }

    /// Whether `[a, b)` touches, and whether it lies wholly inside, what arrived.
    fn coverage(&self, a: u32, b: u32) -> (bool, bool) {
        let mut touches = false;
        for &(s, e) in self.ranges() {
            if s < b && a < e {
                touches = true;
                if s <= a && b <= e {
                    return (true, true);
                }
            }
        }
        (touches, false)
    }

    /// Adds `[a, b)` to the ranges, merging neighbours; false when the
    /// datagram has too many holes to track.
    fn add_range(&mut self, a: u32, b: u32) -> bool {
        let n = usize::from(self.nranges);
        let mut merged = (a, b);
        let mut out = [(0u32, 0u32); MAX_RANGES];
        let mut k = 0;
        let mut placed = false;
        for &(s, e) in self.ranges.get(..n).unwrap_or_default() {
            if e < merged.0 {
                // Wholly before the new range.
                if let Some(o) = out.get_mut(k) {
                    *o = (s, e);
                }
                k += 1;
            } else if merged.1 < s {
                if !placed {
                    if let Some(o) = out.get_mut(k) {
                        *o = merged;
                    }
                    k += 1;
                    placed = true;
                }
                if let Some(o) = out.get_mut(k) {
                    *o = (s, e);
                }
                k += 1;
            } else {
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        if !placed {
            if let Some(o) = out.get_mut(k) {
                *o = merged;
            }
            k += 1;
        }
        if k > MAX_RANGES {
            return false;
        }
        self.ranges = out;
        self.nranges = k as u8;
        true
    }

    /// Whether a piece only repeats a delivered datagram: wholly inside it,
    /// the same bytes where held, the same end.
    fn repeats(&self, p: &Piece<'_>) -> bool {
        let (a, b) = (p.offset, p.offset + p.claimed);
        let same_end = match (p.more, self.end) {
            (false, Some(end)) => end == b,
            (true, Some(end)) => b <= end,
            (_, None) => false,
        };
        let same_bytes = p.data.iter().enumerate().all(|(i, &byte)| {
            let pos = a as usize + i;
            pos >= HEAD
                || self.known.get(pos / 64).is_none_or(|w| w & (1u64 << (pos % 64)) == 0)
                || self.head.get(pos) == Some(&byte)
        });
        same_end && same_bytes && self.coverage(a, b).1
    }

    /// Copies the fragment's bytes that fall in `head` and are not yet
    /// known (first wins); true when a held byte differs from the new one.
    fn fill(&mut self, at: u32, bytes: &[u8]) -> bool {
        let mut differs = false;
        let start = at as usize;
        for (i, &b) in bytes.iter().enumerate() {
            let pos = start + i;
            if pos >= HEAD {
                break;
            }
            let (w, bit) = (pos / 64, 1u64 << (pos % 64));
            let (Some(word), Some(slot)) = (self.known.get_mut(w), self.head.get_mut(pos)) else { break };
            if *word & bit != 0 {
                differs |= *slot != b;
            } else {
                *slot = b;
                *word |= bit;
            }
        }
        differs
    }

    /// Known bytes at the start of `head`, up to `len`.
    fn known_prefix(&self, len: usize) -> usize {
        let len = len.min(HEAD);
        (0..len).find(|&i| self.known.get(i / 64).is_none_or(|w| w & (1u64 << (i % 64)) == 0)).unwrap_or(len)
    }

    fn complete(&self) -> bool {
        self.end.is_some_and(|end| self.nranges == 1 && self.ranges[0] == (0, end))
    }

    fn timeout(&self) -> i64 {
        if self.v6 { TIMEOUT_V6_US } else { TIMEOUT_V4_US }
    }

    /// Delivered when given up: it saw the transport header's start or an anomaly.
    fn has_evidence(&self) -> bool {
        self.have_first || self.bits != 0
    }
}

/// A fragment as sliced from the raw packet.
struct Piece<'a> {
    key: Key,
    v6: bool,
    /// Header bytes to keep, and (IPv6) where the fragment header is in them.
    hdr: &'a [u8],
    frag_at: usize,
    /// Byte offset in the datagram's fragmentable part, and whether more follow.
    offset: u32,
    more: bool,
    /// Length the header claims, and the bytes captured (maybe fewer).
    claimed: u32,
    data: &'a [u8],
    /// Protocol of the fragmentable part (IPv6: the fragment header's next header).
    proto: u8,
}

/// The reassembler. One per reader; not shared.
pub struct Defrag {
    slots: Box<[Slot]>,
    counts: FragCounts,
    /// Live plus finished slots: the sweep is skipped when none.
    used: usize,
    /// Where a datagram is rebuilt for decoding.
    scratch: Box<[u8; HDR_MAX + HEAD]>,
}

impl Default for Defrag {
    fn default() -> Defrag {
        Defrag::new()
    }
}

impl Defrag {
    /// Allocates every slot up front.
    pub fn new() -> Defrag {
        let slots = (0..MAX_DATAGRAMS).map(|_| Slot::empty()).collect();
        Defrag { slots, counts: FragCounts::default(), used: 0, scratch: Box::new([0; HDR_MAX + HEAD]) }
    }

    /// Whether the reassembler must see this summary: an IPv4 packet with
    /// MF or an offset, an IPv6 one whose fragment header fragments.
    #[inline]
    pub fn is_fragment(s: &PacketSummary) -> bool {
        s.ip.as_ref().is_some_and(|ip| ip.mf || ip.frag_offset != 0)
    }

    /// What was done so far (`held` is current).
    pub fn counts(&self) -> FragCounts {
        let mut c = self.counts;
        c.held = self.slots.iter().filter(|s| s.state == State::Live).count() as u64;
        c
    }

    /// Takes one fragment (`s` is its decoded summary, `data` the frame).
    /// Pushes onto `out` what the detectors should see now: the datagram
    /// it completes, one given up to make room, or the fragment itself when
    /// it cannot be held.
    pub fn feed(&mut self, link: LinkKind, data: &[u8], s: &PacketSummary, out: &mut Vec<PacketSummary>) {
        self.counts.fragments += 1;
        let mut scratch = PacketSummary::new(0, 0, 0);
        let piece = link::strip(link, data, &mut scratch).and_then(slice);
        let Some(piece) = piece.filter(valid) else {
            self.pass(s, out);
            return;
        };
        let lane = lane_of(piece.key.src);
        let found = self.lane(lane).find(|&i| self.slots[i].state != State::Free && self.slots[i].key == piece.key);
        let i = match found {
            Some(i) if self.slots[i].state == State::Done => {
                if self.slots[i].repeats(&piece) {
                    self.counts.duplicates += 1;
                    return;
                }
                // The sender reused the id after the datagram was complete:
                // a new datagram, as for the target, which freed the old one.
                self.start(i, &piece, s);
                i
            }
            Some(i) => i,
            None => {
                let i = self.make_room(lane, s.ts_us, out);
                self.start(i, &piece, s);
                self.used += 1;
                i
            }
        };
        self.add(i, &piece, s, out);
    }

    /// Ends datagrams past their timeout (packet time `now`), delivering
    /// their evidence; forgets finished ones as old.
    pub fn expire(&mut self, now: i64, out: &mut Vec<PacketSummary>) {
        if self.used == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.state == State::Free || now.saturating_sub(s.first_us) <= s.timeout() {
                continue;
            }
            if s.state == State::Live {
                self.counts.timeouts += 1;
                self.give_up(i, now, out);
            }
            self.free(i);
        }
    }

    /// End of a file (or of the run): delivers what is pending, empties
    /// every slot. `now` is the last packet time.
    pub fn flush(&mut self, now: i64, out: &mut Vec<PacketSummary>) {
        if self.used == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            if self.slots[i].state == State::Live {
                self.counts.pending_at_end += 1;
                self.give_up(i, now, out);
            }
            self.free(i);
        }
    }

    fn lane(&self, lane: usize) -> std::ops::Range<usize> {
        lane * WAYS..(lane + 1) * WAYS
    }

    fn free(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i)
            && s.state != State::Free
        {
            s.state = State::Free;
            self.used = self.used.saturating_sub(1);
        }
    }

    /// A fragment that cannot be held goes on as decoded.
    fn pass(&mut self, s: &PacketSummary, out: &mut Vec<PacketSummary>) {
        self.counts.unreassembled += 1;
        let mut p = *s;
        p.frag |= frag::UNREASSEMBLED;
        out.push(p);
    }

    /// A slot for a new datagram in `lane` (see the module comment).
    fn make_room(&mut self, lane: usize, now: i64, out: &mut Vec<PacketSummary>) -> usize {
        let r = self.lane(lane);
        if let Some(i) = r.clone().find(|&i| self.slots[i].state == State::Free) {
            return i;
        }
        let done = r.clone().filter(|&i| self.slots[i].state == State::Done).min_by_key(|&i| self.slots[i].last_us);
        if let Some(i) = done {
            self.free(i);
            return i;
        }
        let stale = r.clone().find(|&i| now.saturating_sub(self.slots[i].first_us) > self.slots[i].timeout());
        if let Some(i) = stale {
            self.counts.timeouts += 1;
            self.give_up(i, now, out);
            self.free(i);
            return i;
        }
        // Every slot is live: the source holding the most gives up a
        // one-fragment datagram if it has one, else its oldest.
        let held = |src: IpAddr| r.clone().filter(|&j| self.slots[j].key.src == src).count();
        let victim = r
            .clone()
            .max_by_key(|&i| {
                let s = &self.slots[i];
                (held(s.key.src), s.pieces < 2, std::cmp::Reverse(s.first_us))
            })
            .unwrap_or(r.start);
        self.counts.evicted += 1;
        self.give_up(victim, now, out);
        self.free(victim);
        victim
    }

    /// Claims slot `i` for the piece's datagram.
    fn start(&mut self, i: usize, p: &Piece<'_>, s: &PacketSummary) {
        let Some(slot) = self.slots.get_mut(i) else { return };
        slot.state = State::Live;
        slot.key = p.key;
        slot.v6 = p.v6;
        slot.first_us = s.ts_us;
        slot.last_us = s.ts_us;
        slot.hdr_len = 0;
        slot.have_first = false;
        slot.known = [0; HEAD / 64];
        slot.nranges = 0;
        slot.end = None;
        slot.bits = 0;
        slot.pieces = 0;
        slot.wire = 0;
        slot.ether_type = s.ether_type;
        slot.vlan = s.vlan;
        keep_header(slot, p);
    }

    /// Adds a fragment to slot `i`; delivers the datagram when complete.
    fn add(&mut self, i: usize, p: &Piece<'_>, s: &PacketSummary, out: &mut Vec<PacketSummary>) {
        let Some(slot) = self.slots.get_mut(i) else { return };
        slot.pieces = slot.pieces.saturating_add(1);
        let (a, b) = (p.offset, p.offset + p.claimed);
        let (touches, inside) = slot.coverage(a, b);
        let differs = slot.fill(a, p.data);
        // The last fragment fixes the length; fragments must agree on it.
        let end_clash = match (p.more, slot.end) {
            (false, Some(end)) => end != b,
            (false, None) => {
                let beyond = slot.ranges().last().is_some_and(|&(_, e)| e > b);
                slot.end = Some(b);
                beyond
            }
            (true, Some(end)) => b > end,
            (true, None) => false,
        };
        if inside && !differs && !end_clash {
            self.counts.duplicates += 1;
        } else if touches || end_clash {
            self.counts.overlaps += 1;
            slot.bits |= frag::OVERLAP;
        }
        slot.last_us = slot.last_us.max(s.ts_us);
        slot.wire = slot.wire.saturating_add(s.wire_len);
        if a == 0 && !slot.have_first {
            keep_header(slot, p);
            slot.have_first = true;
            if tiny(p) {
                self.counts.tiny += 1;
                slot.bits |= frag::TINY;
            }
        }
        if !slot.add_range(a, b) {
            // Too many holes: give up on it now.
            self.counts.unreassembled += 1;
            self.give_up(i, s.ts_us, out);
            self.free(i);
            return;
        }
        if slot.complete() {
            self.counts.reassembled += 1;
            self.deliver(i, s.ts_us, 0, out);
            if let Some(slot) = self.slots.get_mut(i) {
                slot.state = State::Done;
            }
        }
    }

    /// Delivers an unfinished datagram with evidence, marked incomplete.
    fn give_up(&mut self, i: usize, now: i64, out: &mut Vec<PacketSummary>) {
        if self.slots.get(i).is_some_and(|s| s.state == State::Live && s.has_evidence()) {
            self.counts.incomplete += 1;
            self.deliver(i, now, frag::INCOMPLETE, out);
        }
    }

    /// Rebuilds slot `i`'s datagram (its header patched to say unfragmented,
    /// its known leading bytes) and decodes it into a summary.
    fn deliver(&mut self, i: usize, ts: i64, extra: u8, out: &mut Vec<PacketSummary>) {
        let Some(slot) = self.slots.get(i) else { return };
        let hdr_len = usize::from(slot.hdr_len);
        let total = slot.end.unwrap_or_else(|| slot.ranges().last().map_or(0, |r| r.1));
        let data_len = if slot.have_first { slot.known_prefix(total as usize) } else { 0 };
        let buf = &mut self.scratch;
        let (Some(h), Some(d)) = (buf.get_mut(..hdr_len), slot.hdr.get(..hdr_len)) else { return };
        h.copy_from_slice(d);
        patch_header(h, slot, total);
        let (Some(body), Some(src)) = (buf.get_mut(hdr_len..hdr_len + data_len), slot.head.get(..data_len)) else {
            return;
        };
        body.copy_from_slice(src);
        let mut p = PacketSummary::new(ts, slot.wire, len32(hdr_len + data_len));
        p.ether_type = slot.ether_type;
        p.vlan = slot.vlan;
        if let Some(packet) = buf.get(..hdr_len + data_len) {
            network::decode(packet, &mut p);
        }
        if !slot.have_first {
            strip_transport(&mut p);
        }
        p.frag = frag::REASSEMBLED | slot.bits | extra;
        out.push(p);
    }
}

/// The lane of a source address (a multiplicative hash of its bits).
fn lane_of(a: IpAddr) -> usize {
    let v = match a {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            (x as u64) ^ ((x >> 64) as u64).rotate_left(29)
        }
    };
    (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize & (LANES - 1)
}

fn strip_transport(p: &mut PacketSummary) {
    p.l4 = L4::None;
    p.error = None;
    p.payload_len = 0;
    p.payload_head = [0; PAYLOAD_HEAD];
    p.payload_facts = 0;
}

/// Keeps the piece's header as the datagram's (the first fragment's wins).
fn keep_header(slot: &mut Slot, p: &Piece<'_>) {
    let n = p.hdr.len().min(HDR_MAX);
    if let (Some(d), Some(s)) = (slot.hdr.get_mut(..n), p.hdr.get(..n)) {
        d.copy_from_slice(s);
        slot.hdr_len = n as u8;
        slot.frag_at = p.frag_at as u8;
    }
}

/// A first fragment too short for its transport's header (RFC 1858).
fn tiny(p: &Piece<'_>) -> bool {
    let min = match p.proto {
        6 => TCP_MIN,
        17 | 1 | 58 => SMALL_MIN,
        _ => return false,
    };
    p.claimed < min
}

/// Rewrites a kept header as an unfragmented datagram of `total` bytes of
/// fragmentable part: IPv4 total length, MF and offset; IPv6 payload
/// length and the fragment header's offset and M (an atomic fragment,
/// RFC 6946, which the decoder reads through).
fn patch_header(h: &mut [u8], slot: &Slot, total: u32) {
    let hdr_len = u32::from(slot.hdr_len);
    if slot.v6 {
        let plen = hdr_len.saturating_sub(ext::FIXED as u32).saturating_add(total).min(MAX_LEN) as u16;
        put16(h, ext::PAYLOAD_LEN, plen);
        put16(h, usize::from(slot.frag_at) + ext::FRAG_OFFSET, 0);
    } else {
        put16(h, 2, hdr_len.saturating_add(total).min(MAX_LEN) as u16);
        // Keep the reserved and DF bits, clear MF and the offset.
        let flags = be16(h, 6).unwrap_or(0) & 0xc000;
        put16(h, 6, flags);
    }
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(c) = b.get_mut(at..at + 2) {
        c.copy_from_slice(&v.to_be_bytes());
    }
}

/// Slices a fragment out of an IP packet, by hand (etherparse parses a
/// non-first IPv6 fragment's data as headers).
fn slice(packet: &[u8]) -> Option<Piece<'_>> {
    match u8_at(packet, 0)? >> 4 {
        4 => slice_v4(packet),
        6 => slice_v6(packet),
        _ => None,
    }
}

fn slice_v4(b: &[u8]) -> Option<Piece<'_>> {
    let ihl = usize::from(u8_at(b, 0)? & 0x0f) * 4;
    let total = usize::from(be16(b, 2)?);
    if ihl < 20 || total < ihl || b.len() < ihl {
        return None;
    }
    let flags = be16(b, 6)?;
    let src: [u8; 4] = b.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = b.get(16..20)?.try_into().ok()?;
    let proto = u8_at(b, 9)?;
    Some(Piece {
        key: Key { src: IpAddr::from(src), dst: IpAddr::from(dst), id: u32::from(be16(b, 4)?), proto },
        v6: false,
        hdr: b.get(..ihl)?,
        frag_at: 0,
        offset: u32::from(flags & 0x1fff) * 8,
        more: flags & 0x2000 != 0,
        claimed: len32(total - ihl),
        data: b.get(ihl..total.min(b.len()))?,
        proto,
    })
}

fn slice_v6(b: &[u8]) -> Option<Piece<'_>> {
    let plen = usize::from(be16(b, ext::PAYLOAD_LEN)?);
    let end = ext::FIXED + plen;
    let mut next = u8_at(b, ext::NEXT)?;
    let mut at = ext::FIXED;
    // The extension headers before the fragment header (RFC 8200 section 4.1).
    loop {
        match next {
            ext::FRAGMENT => break,
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS => {
                let len = (usize::from(u8_at(b, at + 1)?) + 1) * 8;
                next = u8_at(b, at)?;
                at += len;
                if at + ext::FRAG_LEN > HDR_MAX {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let data_at = at + ext::FRAG_LEN;
    if end < data_at || b.len() < data_at {
        return None;
    }
    let field = be16(b, at + ext::FRAG_OFFSET)?;
    let src: [u8; 16] = b.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = b.get(24..40)?.try_into().ok()?;
    let id = u32::from_be_bytes(b.get(at + 4..at + 8)?.try_into().ok()?);
    Some(Piece {
        key: Key { src: IpAddr::from(src), dst: IpAddr::from(dst), id, proto: 0 },
        v6: true,
        hdr: b.get(..data_at)?,
        frag_at: at,
        offset: u32::from(field >> 3) * 8,
        more: field & 1 != 0,
        claimed: len32(end - data_at),
        data: b.get(data_at..end.min(b.len()))?,
        proto: u8_at(b, at)?,
    })
}

/// Fragments the reassembler refuses: empty, a non-last one whose length
/// is not a multiple of 8 (RFC 791, RFC 8200), one reaching past the
/// largest datagram (the "ping of death"), headers longer than kept.
fn valid(p: &Piece<'_>) -> bool {
    let limit = if p.v6 { MAX_LEN } else { MAX_LEN - p.hdr.len() as u32 };
    p.claimed > 0
        && (!p.more || p.claimed % 8 == 0)
        && p.offset.saturating_add(p.claimed) <= limit
        && p.hdr.len() <= HDR_MAX
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::decode::summary::tcpflag;

    /// A TCP SYN from port 40000 to `dport` with `payload` zero bytes.
    fn syn(dport: u16, payload: usize) -> Vec<u8> {
        let mut t = vec![0u8; 20 + payload];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&7u32.to_be_bytes());
        t[12] = 0x50;
        t[13] = tcpflag::SYN as u8;
        t[14..16].copy_from_slice(&1024u16.to_be_bytes());
        t
    }

    /// A UDP datagram from port 53 to `dport` with `payload` bytes.
    fn udp(dport: u16, payload: usize) -> Vec<u8> {
        let mut u = vec![0xabu8; 8 + payload];
        u[0..2].copy_from_slice(&53u16.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        u[6..8].copy_from_slice(&[0, 0]);
        u
    }

    /// An IPv4 fragment (raw IP) of `body` at byte offset `off`.
    fn v4(src: [u8; 4], id: u16, proto: u8, off: usize, more: bool, body: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let field = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&field.to_be_bytes());
        h[8] = 52;
        h[9] = proto;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&[192, 0, 2, 10]);
        h.extend_from_slice(body);
        h
    }

    /// An IPv6 fragment (raw IP) of `body` at byte offset `off`, next header `next`.
    fn v6(id: u32, next: u8, off: usize, more: bool, body: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 48];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        h[6] = 44;
        h[7] = 60;
        h[8..24].copy_from_slice(&"2001:db8:1::10".parse::<std::net::Ipv6Addr>().unwrap().octets());
        h[24..40].copy_from_slice(&"2001:db8:d::10".parse::<std::net::Ipv6Addr>().unwrap().octets());
        h[40] = next;
        let field = ((off / 8) as u16) << 3 | u16::from(more);
        h[42..44].copy_from_slice(&field.to_be_bytes());
        h[44..48].copy_from_slice(&id.to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    const SRC: [u8; 4] = [198, 51, 100, 10];

    /// Splits `body` into IPv4 fragments of `size` bytes (a multiple of 8).
    fn split4(src: [u8; 4], id: u16, proto: u8, body: &[u8], size: usize) -> Vec<Vec<u8>> {
        let n = body.len().div_ceil(size);
        (0..n)
            .map(|i| {
                let end = ((i + 1) * size).min(body.len());
                v4(src, id, proto, i * size, end < body.len(), &body[i * size..end])
            })
            .collect()
    }

    /// Feeds frames at `t0` + 1 ms each; returns what came out.
    fn feed_all(d: &mut Defrag, frames: &[Vec<u8>], t0: i64) -> Vec<PacketSummary> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let s = decode(LinkKind::Raw, t0 + i as i64 * 1000, f.len() as u32, f);
            if Defrag::is_fragment(&s) {
                d.feed(LinkKind::Raw, f, &s, &mut out);
            } else {
                out.push(s);
            }
        }
        out
    }

    #[test]
    fn nmap_f_eight_byte_fragments_in_order_make_one_syn() {
        let mut d = Defrag::new();
        let frames = split4(SRC, 77, 6, &syn(443, 200), 8);
        assert_eq!(frames.len(), 28);
        let out = feed_all(&mut d, &frames, 1_000_000);
        assert_eq!(out.len(), 1, "one datagram, at its last fragment");
        let p = &out[0];
        let t = p.tcp().expect("the whole TCP header");
        assert_eq!((t.sport, t.dport), (40000, 443));
        assert!(t.is_syn_only());
        assert_eq!(p.payload_len, 200);
        assert_eq!(p.ts_us, 1_000_000 + 27_000);
        let ip = p.ip.unwrap();
        assert_eq!((ip.mf, ip.frag_offset, ip.total_len, ip.ip_id), (false, 0, 240, 77));
        assert_eq!(p.frag, frag::REASSEMBLED | frag::TINY);
        let c = d.counts();
        assert_eq!((c.fragments, c.reassembled, c.tiny, c.overlaps, c.held), (28, 1, 1, 0, 0));
    }

    #[test]
    fn out_of_order_fragments_complete_on_the_last_arrival() {
        let mut d = Defrag::new();
        let mut frames = split4(SRC, 78, 6, &syn(22, 100), 24);
        frames.reverse();
        frames.swap(1, 3);
        let out = feed_all(&mut d, &frames, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].tcp().map(|t| t.dport), Some(22));
        assert_eq!(out[0].frag, frag::REASSEMBLED, "24 bytes of TCP is not tiny");
        assert_eq!(d.counts().reassembled, 1);
    }

    #[test]
    fn interleaved_datagrams_of_two_sources_stay_apart() {
        let mut d = Defrag::new();
        let a = split4(SRC, 1, 6, &syn(80, 40), 16);
        let b = split4([203, 0, 113, 9], 1, 6, &syn(25, 40), 16);
        let frames: Vec<Vec<u8>> = a.iter().zip(&b).flat_map(|(x, y)| [x.clone(), y.clone()]).collect();
        let out = feed_all(&mut d, &frames, 0);
        let ports: Vec<u16> = out.iter().filter_map(|p| p.tcp().map(|t| t.dport)).collect();
        assert_eq!(ports, [80, 25]);
    }

    #[test]
    fn an_overlap_keeps_the_first_bytes_and_is_marked() {
        // RFC 1858's second attack: a later fragment at offset 8 rewrites
        // the flags to something the filter never saw.
        let mut d = Defrag::new();
        let body = syn(80, 16);
        let mut frames = split4(SRC, 9, 6, &body, 16);
        let mut evil = body[8..24].to_vec();
        evil[13 - 8] = (tcpflag::ACK | tcpflag::RST) as u8;
        frames.insert(1, v4(SRC, 9, 6, 8, true, &evil));
        let out = feed_all(&mut d, &frames, 0);
        assert_eq!(out.len(), 1);
        assert!(out[0].tcp().unwrap().is_syn_only(), "first wins");
        assert_eq!(out[0].frag, frag::REASSEMBLED | frag::TINY | frag::OVERLAP);
        assert_eq!(d.counts().overlaps, 2, "the rewrite, and the genuine piece after it");
    }

    #[test]
    fn a_duplicate_fragment_is_counted_not_an_overlap() {
        let mut d = Defrag::new();
        let mut frames = split4(SRC, 10, 6, &syn(80, 40), 16);
        frames.insert(1, frames[0].clone());
        // And a copy of the last one after the datagram was delivered.
        frames.push(frames[frames.len() - 1].clone());
        let out = feed_all(&mut d, &frames, 0);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].frag, frag::REASSEMBLED | frag::TINY);
        assert_eq!((d.counts().duplicates, d.counts().overlaps), (2, 0));
        // hping3 -f sends every datagram with one IP id: once a datagram is
        // complete, the same id with other bytes is a new datagram (the
        // target freed the old one too), not an overlap.
        for dport in [81, 82] {
            let again = split4(SRC, 10, 6, &syn(dport, 40), 16);
            let out = feed_all(&mut d, &again, 100_000);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].tcp().map(|t| t.dport), Some(dport));
            assert_eq!(out[0].frag, frag::REASSEMBLED | frag::TINY);
        }
        assert_eq!((d.counts().reassembled, d.counts().overlaps), (3, 0));
    }

    #[test]
    fn a_datagram_missing_a_fragment_times_out_on_packet_time() {
        let mut d = Defrag::new();
        let frames = split4(SRC, 11, 6, &syn(3389, 40), 24);
        let out = feed_all(&mut d, &frames[..2], 0);
        assert!(out.is_empty());
        // Another datagram missing its first fragment: nothing to deliver.
        let other = split4(SRC, 12, 6, &syn(3389, 40), 24);
        assert!(feed_all(&mut d, &other[1..], 0).is_empty());
        let mut out = Vec::new();
        d.expire(TIMEOUT_V4_US - 1000, &mut out);
        assert!(out.is_empty(), "not yet");
        assert_eq!(d.counts().held, 2);
        d.expire(TIMEOUT_V4_US + 1000, &mut out);
        assert_eq!(out.len(), 1, "the one whose header arrived");
        assert_eq!(out[0].frag, frag::REASSEMBLED | frag::INCOMPLETE);
        assert_eq!(out[0].tcp().map(|t| t.dport), Some(3389));
        assert_eq!(out[0].ts_us, TIMEOUT_V4_US + 1000);
        let c = d.counts();
        assert_eq!((c.timeouts, c.incomplete, c.held, c.reassembled), (2, 1, 0, 0));
        // The late last fragment now starts a new datagram, never completed.
        assert!(feed_all(&mut d, &frames[2..], TIMEOUT_V4_US + 2000).is_empty());
    }

    #[test]
    fn pending_datagrams_are_delivered_once_at_the_end() {
        let mut d = Defrag::new();
        let frames = split4(SRC, 13, 6, &syn(8080, 8), 8);
        assert!(feed_all(&mut d, &frames[..3], 0).is_empty());
        let mut out = Vec::new();
        d.flush(5000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].frag, frag::REASSEMBLED | frag::INCOMPLETE | frag::TINY);
        assert_eq!(out[0].tcp().map(|t| t.dport), Some(8080), "24 of 28 bytes: the fixed header is there");
        d.flush(6000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(d.counts().pending_at_end, 1);
    }

    /// A source whose lane is `lane`, other than `not`.
    fn source_in_lane(lane: usize, not: [u8; 4]) -> [u8; 4] {
        (0..=255u8)
            .flat_map(|a| (0..=255u8).map(move |b| [203, 0, a, b]))
            .find(|&s| s != not && lane_of(IpAddr::from(s)) == lane)
            .expect("a source in that lane")
    }

    #[test]
    fn a_flooding_source_evicts_its_own_datagrams_not_others() {
        let mut d = Defrag::new();
        let flooder = SRC;
        let victim = source_in_lane(lane_of(IpAddr::from(flooder)), flooder);
        let honest = split4(victim, 500, 6, &syn(443, 40), 16);
        assert!(feed_all(&mut d, &honest[..1], 0).is_empty());
        // 5000 first fragments (tiny, never completed) from one source.
        let flood: Vec<Vec<u8>> = (0..5000u16).map(|id| v4(flooder, id, 6, 0, true, &[0u8; 8])).collect();
        let out = feed_all(&mut d, &flood, 1000);
        let c = d.counts();
        assert!(c.held as usize <= WAYS, "one lane at most: {c:?}");
        assert_eq!(c.evicted, 5000 - (WAYS as u64 - 1), "{c:?}");
        // The evicted ones carried evidence (a first fragment): delivered.
        assert_eq!(out.len() as u64, c.evicted);
        assert!(out.iter().all(|p| p.ip.unwrap().src == IpAddr::from(flooder)));
        let done = feed_all(&mut d, &honest[1..], 2_000_000);
        assert_eq!(done.len(), 1, "the victim's datagram survived the flood");
        assert_eq!(done[0].tcp().map(|t| t.dport), Some(443));
        assert_eq!(done[0].frag, frag::REASSEMBLED | frag::TINY);
    }

    #[test]
    fn a_spoofed_one_fragment_flood_spares_a_datagram_whose_fragments_keep_coming() {
        let mut d = Defrag::new();
        let honest_src = [198, 51, 100, 9];
        let lane = lane_of(IpAddr::from(honest_src));
        let honest = split4(honest_src, 77, 6, &syn(22, 40), 16);
        assert!(honest.len() >= 3, "{}", honest.len());
        assert!(feed_all(&mut d, &honest[..2], 0).is_empty(), "two of its fragments");
        // One first fragment each from 200 forged sources of the same lane.
        let mut forged = Vec::new();
        let mut k = 0u16;
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let s = [10, 9, a, b];
                if lane_of(IpAddr::from(s)) == lane && forged.len() < 200 {
                    forged.push(v4(s, k, 6, 0, true, &[0u8; 8]));
                    k += 1;
                }
            }
        }
        feed_all(&mut d, &forged, 1_000);
        let done = feed_all(&mut d, &honest[2..], 2_000);
        assert_eq!(done.len(), 1, "the datagram with two fragments in survived");
        assert_eq!(done[0].tcp().map(|t| t.dport), Some(22));
    }

    #[test]
    fn the_table_is_bounded_under_a_spoofed_flood() {
        let mut d = Defrag::new();
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let f = v4(src, i as u16, 17, 8, true, &[0u8; 8]);
            let s = decode(LinkKind::Raw, i64::from(i), f.len() as u32, &f);
            d.feed(LinkKind::Raw, &f, &s, &mut out);
        }
        let c = d.counts();
        assert_eq!(c.held as usize, MAX_DATAGRAMS, "every lane full, none over");
        assert_eq!(c.evicted + c.held, 20_000, "{c:?}");
        assert!(out.is_empty(), "no first fragment, no anomaly: nothing to deliver");
    }

    #[test]
    fn ipv6_fragments_reassemble_and_overlaps_are_marked() {
        let mut d = Defrag::new();
        let body = udp(5353, 100);
        let frames = [v6(0xdead, 17, 0, true, &body[..56]), v6(0xdead, 17, 56, false, &body[56..])];
        let out = feed_all(&mut d, &[frames[1].clone(), frames[0].clone()], 0);
        assert_eq!(out.len(), 1);
        let p = &out[0];
        assert_eq!(p.udp().map(|u| (u.sport, u.dport)), Some((53, 5353)));
        assert_eq!(p.payload_len, 100);
        let ip = p.ip.unwrap();
        assert_eq!((ip.ip_id, ip.mf, ip.frag_offset, ip.total_len), (0xdead, false, 0, 40 + 8 + 108));
        assert_eq!(p.frag, frag::REASSEMBLED);
        // Overlapping pieces with different bytes (RFC 5722).
        let mut other = body.clone();
        other[60] ^= 1;
        let frames = [v6(0xbeef, 17, 0, true, &body[..64]), v6(0xbeef, 17, 56, false, &other[56..])];
        let out = feed_all(&mut d, &frames, 1000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].frag, frag::REASSEMBLED | frag::OVERLAP);
        // A tiny first fragment of TCP.
        let t = syn(80, 0);
        let frames = [v6(7, 6, 0, true, &t[..8]), v6(7, 6, 8, false, &t[8..])];
        let out = feed_all(&mut d, &frames, 2000);
        assert_eq!(out[0].frag, frag::REASSEMBLED | frag::TINY);
        assert!(out[0].tcp().unwrap().is_syn_only());
    }

    #[test]
    fn malformed_fragments_pass_through_as_decoded() {
        let mut d = Defrag::new();
        // A non-last fragment of 12 bytes (not a multiple of 8).
        let a = v4(SRC, 20, 6, 0, true, &syn(80, 0)[..12]);
        // A fragment reaching past 65,535 bytes (ping of death).
        let b = v4(SRC, 21, 1, 65_528, false, &[0u8; 16]);
        let out = feed_all(&mut d, &[a, b], 0);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|p| p.frag == frag::UNREASSEMBLED));
        assert_eq!(d.counts().unreassembled, 2);
        assert_eq!(d.counts().held, 0);
    }

    #[test]
    fn every_truncation_of_every_decoder_fixture_through_the_reassembler() {
        // The decoder's fixtures (fragments among them), cut at every
        // length and fed as fragments whatever they are: no panic, and a
        // piece the reassembler cannot read goes on as decoded.
        let mut d = Defrag::new();
        let mut out = Vec::new();
        for (name, link, data) in crate::decode::fixtures::ALL {
            for n in 0..=data.len() {
                let s = decode(*link, n as i64, data.len() as u32, &data[..n]);
                let before = d.counts();
                d.feed(*link, &data[..n], &s, &mut out);
                let after = d.counts();
                assert_eq!(after.fragments, before.fragments + 1, "{name} cut at {n}");
            }
        }
        d.flush(0, &mut out);
        assert_eq!(d.counts().held, 0);
        assert!(out.len() as u64 <= d.counts().fragments);
    }

    #[test]
    fn no_truncation_or_corruption_of_a_fragment_panics() {
        let mut fixtures = split4(SRC, 30, 6, &syn(80, 30), 8);
        let u = udp(53, 60);
        fixtures.push(v6(3, 17, 0, true, &u[..32]));
        fixtures.push(v6(3, 17, 32, false, &u[32..]));
        let mut d = Defrag::new();
        let mut out = Vec::new();
        let mut rng = 0x1234_5678_9abc_def0u64;
        for (n, f) in fixtures.iter().enumerate() {
            for cut in 0..=f.len() {
                let g = &f[..cut];
                let s = decode(LinkKind::Raw, n as i64, f.len() as u32, g);
                d.feed(LinkKind::Raw, g, &s, &mut out);
            }
            for _ in 0..2000 {
                let mut g = f.clone();
                for _ in 0..3 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let at = (rng as usize) % g.len();
                    g[at] = (rng >> 32) as u8;
                }
                let s = decode(LinkKind::Raw, n as i64, g.len() as u32, &g);
                d.feed(LinkKind::Raw, &g, &s, &mut out);
                out.clear();
            }
        }
        d.expire(i64::MAX / 2, &mut out);
        d.flush(i64::MAX / 2, &mut out);
        assert_eq!(d.counts().held, 0);
    }
}
