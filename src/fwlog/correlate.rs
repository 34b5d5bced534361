//! Lining firewall records up with the packets on the wire (issue 4,
//! "Correlate"), for `picket replay --fw-log`.
//!
//! Data flow: the logs are read before the capture (`Correlator::new`
//! indexes every record that names a flow by (protocol, source,
//! destination, ports); ICMP by type and code). The reader thread then shows
//! the correlator each *attempt* going toward the firewall (toward the home
//! net, or every packet without one): a TCP segment without ACK, a UDP
//! datagram, an ICMP echo request. An attempt whose flow a record names becomes a
//! candidate (rec, packet time, TTL, sequence number, IP ID); any other is
//! counted in a per-second histogram, for `unlogged_packets`. One lookup per
//! attempt, nothing allocated per packet; candidates are capped (counted in
//! `candidates_dropped`).
//!
//! At the end (`finish`):
//! 1. the clock offset (firewall minus sensor) is the median of the time
//!    differences of the *strong* candidates: those whose logged TCP
//!    sequence number or IP ID equals the packet's. Without any, of every
//!    candidate within a day. A median ignores the stray pairs (a record
//!    meeting another attempt of the same flow);
//! 2. each record takes the closest unused candidate within `WINDOW_US` of
//!    that offset whose sequence number and IP ID agree where the log has
//!    them, and whose TTL is the wire's or one lower (the firewall logged
//!    after routing, SIGNATURES.md section 10);
//! 3. `unmatched_records` are records no packet answered (egress drops the
//!    span never sees, or packets lost before the sensor); `unlogged_packets`
//!    are attempts toward the firewall within the log's time span (shifted
//!    by the offset) that no record took: traffic the firewall passed
//!    without logging, or did not log.
//!
//! Replay: the capture is read after the logs, in packet-time order, so
//! the result is deterministic. Live (`fwlog/live.rs`) feeds the same
//! matching one window of packet time at a time (`observe_attempt`,
//! `finish_within`).

use super::record::FwRecord;
use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::FastMap;
use crate::homenet::HomeNet;
use std::collections::HashSet;
use std::net::IpAddr;

/// A record and its packet are at most this far apart once the clock
/// offset is applied (syslog's one-second resolution and logging delays).
pub const WINDOW_US: i64 = 3_000_000;
/// Pairs further apart than this never count toward the offset.
const COARSE_US: i64 = 86_400_000_000;
/// Candidates kept per record on average before new ones are dropped.
const CANDIDATES_PER_RECORD: usize = 8;
/// Seconds of unlogged-attempt histogram kept (about 12 days).
const MAX_BINS: usize = 1 << 20;

/// (protocol, source, destination, source port or ICMP type, destination
/// port or ICMP code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey(u8, IpAddr, IpAddr, u16, u16);

#[derive(Clone, Copy, Debug)]
struct Rec {
    ts: i64,
    ttl: Option<u8>,
    seq: Option<u32>,
    ip_id: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    rec: u32,
    /// Attempt number (identifies the packet across its candidates).
    pkt: u64,
    ts: i64,
    ttl: u8,
    seq: Option<u32>,
    ip_id: u32,
}

/// What the correlation found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    pub records: u64,
    /// Records naming a flow and a time (the others cannot be matched).
    pub matchable: u64,
    pub matched: u64,
    pub unmatched_records: u64,
    pub unlogged_packets: u64,
    /// Firewall clock minus sensor clock, seconds.
    pub clock_offset_s: Option<f64>,
    /// Pairs the offset was estimated from, and whether they were strong
    /// (sequence number or IP ID equal).
    pub offset_pairs: u64,
    pub offset_strong: bool,
    /// Attempts toward the firewall seen on the wire.
    pub attempts: u64,
    pub candidates_dropped: u64,
}

/// The correlator (see the module doc).
pub struct Correlator {
    recs: Vec<Rec>,
    /// Record indices per flow, in file order.
    index: FastMap<FlowKey, Vec<u32>>,
    records: u64,
    home: HomeNet,
    cands: Vec<Cand>,
    cap: usize,
    dropped: u64,
    /// Attempts whose flow no record names, per second of packet time.
    bins: FastMap<i64, u32>,
    bins_dropped: u64,
    attempts: u64,
}

fn record_key(r: &FwRecord) -> Option<FlowKey> {
    let (proto, src, dst) = (r.proto?, r.src?, r.dst?);
    let (a, b) = match proto {
        6 | 17 | 132 | 136 => (r.sport?, r.dport?),
        1 | 58 => r.icmp.map_or((0, 0), |(t, c)| (u16::from(t), u16::from(c))),
        _ => (0, 0),
    };
    Some(FlowKey(proto, src, dst, a, b))
}

/// An attempt toward the firewall, as the correlator keeps it: a TCP
/// segment without ACK, a UDP datagram or an ICMP echo request going to the
/// home net (anywhere without one).
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    key: FlowKey,
    seq: Option<u32>,
    ts: i64,
    ttl: u8,
    ip_id: u32,
}

impl Attempt {
    #[inline]
    pub fn of(p: &PacketSummary, home: &HomeNet) -> Option<Attempt> {
        let ip = p.ip.as_ref()?;
        if !home.is_empty() && !home.contains(ip.dst) {
            return None;
        }
        let (key, seq) = match &p.l4 {
            L4::Tcp(t) if !t.has(tcpflag::ACK) => (FlowKey(6, ip.src, ip.dst, t.sport, t.dport), Some(t.seq)),
            L4::Udp(u) => (FlowKey(ip.proto, ip.src, ip.dst, u.sport, u.dport), None),
            L4::Icmp(i) if i.is_echo_request() => {
                let proto = if i.v6 { 58 } else { 1 };
                (FlowKey(proto, ip.src, ip.dst, u16::from(i.icmp_type), u16::from(i.code)), None)
            }
            _ => return None,
        };
        Some(Attempt { key, seq, ts: p.ts_us, ttl: ip.ttl, ip_id: ip.ip_id })
    }

    /// Packet time.
    pub fn ts(&self) -> i64 {
        self.ts
    }
}

/// The sensor-time span whose unanswered attempts count as
/// `unlogged_packets`.
#[derive(Clone, Copy, Debug)]
pub enum Span {
    /// The records' own span, shifted by the offset (replay).
    Records,
    /// From `.0` (inclusive) to `.1` (exclusive): one live window.
    Between(i64, i64),
    /// Count none (live, before the log has said anything).
    Nothing,
}

impl Correlator {
    /// Indexes `records` (every record read from the logs).
    pub fn new(records: &[FwRecord], home: HomeNet) -> Correlator {
        let mut recs = Vec::new();
        let mut index: FastMap<FlowKey, Vec<u32>> = FastMap::default();
        for r in records {
            let (Some(key), Some(ts)) = (record_key(r), r.ts_us) else { continue };
            let Ok(i) = u32::try_from(recs.len()) else { break };
            recs.push(Rec { ts, ttl: r.ttl, seq: r.seq, ip_id: r.ip_id });
            index.entry(key).or_default().push(i);
        }
        let cap = recs.len().saturating_mul(CANDIDATES_PER_RECORD).max(1024);
        Correlator {
            recs,
            index,
            records: records.len() as u64,
            home,
            cands: Vec::with_capacity(cap.min(1 << 16)),
            cap,
            dropped: 0,
            bins: FastMap::default(),
            bins_dropped: 0,
            attempts: 0,
        }
    }

    /// Shows the correlator one decoded packet (reader thread, in order).
    #[inline]
    pub fn observe(&mut self, p: &PacketSummary) {
        if let Some(a) = Attempt::of(p, &self.home) {
            self.observe_attempt(&a);
        }
    }

    /// Shows the correlator one attempt toward the firewall.
    pub fn observe_attempt(&mut self, a: &Attempt) {
        self.attempts += 1;
        let pkt = self.attempts;
        match self.index.get(&a.key) {
            Some(ids) => {
                // Past the cap, a flow the log names often (a spoofed flood
                // of one 5-tuple) costs one subtraction, not a walk.
                let room = self.cap.saturating_sub(self.cands.len()).min(ids.len());
                self.dropped += (ids.len() - room) as u64;
                for &rec in ids.get(..room).unwrap_or_default() {
                    self.cands.push(Cand { rec, pkt, ts: a.ts, ttl: a.ttl, seq: a.seq, ip_id: a.ip_id });
                }
            }
            None => {
                let sec = a.ts.div_euclid(1_000_000);
                if let Some(n) = self.bins.get_mut(&sec) {
                    *n = n.saturating_add(1);
                } else if self.bins.len() < MAX_BINS {
                    self.bins.insert(sec, 1);
                } else {
                    self.bins_dropped += 1;
                }
            }
        }
    }

    /// Estimates the offset, pairs records with packets and counts.
    pub fn finish(&self) -> Outcome {
        self.finish_within(Span::Records)
    }

    /// `finish`, counting unlogged attempts within `span` only.
    pub fn finish_within(&self, span: Span) -> Outcome {
        self.finish_taken(span).0
    }

    /// `finish_within`, also returning the attempts records took, by their
    /// 1-based order of `observe_attempt`.
    pub fn finish_taken(&self, span: Span) -> (Outcome, HashSet<u64>) {
        let strong = |c: &Cand| {
            let r = &self.recs[c.rec as usize];
            // An IP ID of 0 (DF packets of many stacks) identifies nothing.
            (r.seq.is_some() && r.seq == c.seq) || (r.seq.is_none() && r.ip_id.is_some_and(|i| i != 0 && i == c.ip_id))
        };
        let delta = |c: &Cand| self.recs[c.rec as usize].ts - c.ts;
        let mut deltas: Vec<i64> = self.cands.iter().filter(|c| strong(c)).map(delta).collect();
        let offset_strong = !deltas.is_empty();
        if deltas.is_empty() {
            deltas = self.cands.iter().map(delta).filter(|d| d.abs() <= COARSE_US).collect();
        }
        deltas.sort_unstable();
        let offset = deltas.get(deltas.len() / 2).copied();
        let mut out = Outcome {
            records: self.records,
            matchable: self.recs.len() as u64,
            clock_offset_s: offset.map(|o| o as f64 / 1e6),
            offset_pairs: deltas.len() as u64,
            offset_strong,
            attempts: self.attempts,
            candidates_dropped: self.dropped + self.bins_dropped,
            ..Outcome::default()
        };
        let off = offset.unwrap_or(0);
        // Candidates by record, best first.
        let mut by_rec: Vec<Vec<&Cand>> = vec![Vec::new(); self.recs.len()];
        for c in &self.cands {
            let r = &self.recs[c.rec as usize];
            let fits = (delta(c) - off).abs() <= WINDOW_US
                && r.seq.is_none_or(|s| c.seq.is_none_or(|cs| cs == s))
                && r.ip_id.is_none_or(|i| i == c.ip_id || r.seq.is_some())
                && r.ttl.is_none_or(|t| t == c.ttl || t.saturating_add(1) == c.ttl);
            if fits && let Some(v) = by_rec.get_mut(c.rec as usize) {
                v.push(c);
            }
        }
        let mut taken: HashSet<u64> = HashSet::new();
        for cands in &mut by_rec {
            cands.sort_by_key(|c| ((delta(c) - off).abs(), c.pkt));
            if let Some(c) = cands.iter().find(|c| !taken.contains(&c.pkt)) {
                taken.insert(c.pkt);
                out.matched += 1;
            }
        }
        out.unmatched_records = out.records - out.matched;
        // Attempts within the log's span (in sensor time) that no record took.
        let range = match span {
            Span::Records => self
                .recs
                .iter()
                .map(|r| r.ts)
                .min()
                .zip(self.recs.iter().map(|r| r.ts).max())
                .map(|(first, last)| (first - off - WINDOW_US, last - off + WINDOW_US)),
            Span::Between(lo, hi) => Some((lo, hi.saturating_sub(1))),
            Span::Nothing => None,
        };
        if let Some((lo, hi)) = range {
            let mut seen: HashSet<u64> = HashSet::new();
            for c in &self.cands {
                if (lo..=hi).contains(&c.ts) && !taken.contains(&c.pkt) && seen.insert(c.pkt) {
                    out.unlogged_packets += 1;
                }
            }
            let (lo_s, hi_s) = (lo.div_euclid(1_000_000), hi.div_euclid(1_000_000));
            out.unlogged_packets +=
                self.bins.iter().filter(|(s, _)| (lo_s..=hi_s).contains(*s)).map(|(_, n)| u64::from(*n)).sum::<u64>();
        }
        (out, taken)
    }
}

/// What the logs say about one flow or one source, for the `firewall`
/// object of detection events.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub records: u64,
    /// Bits of `Action::ALL` positions.
    actions: u8,
    /// The first [`RULES_LISTED`] distinct rule names, inline (no
    /// allocation per tally: a flood makes a new tally per record).
    rules: [super::record::Label<40>; RULES_LISTED],
    n_rules: u8,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    /// Where the records came from: their `FwRecord::file` (an index into
    /// [`FwIndex`]'s origins), the first [`VIA_LISTED`] distinct ones.
    via: [u16; VIA_LISTED],
    n_via: u8,
    /// More origins than listed.
    via_more: bool,
}

/// Rule prefixes listed per tally.
const RULES_LISTED: usize = 4;
/// Origins (files, syslog senders) listed per tally.
const VIA_LISTED: usize = 4;

/// Where records of one `FwRecord::file` index came from: the channel
/// (`file`, `udp`, `tcp`, `tls`) and the sender (a path or a peer address).
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub channel: &'static str,
    pub sender: String,
}

impl Tally {
    fn rules(&self) -> &[super::record::Label<40>] {
        self.rules.get(..usize::from(self.n_rules)).unwrap_or_default()
    }

    fn via(&self) -> &[u16] {
        self.via.get(..usize::from(self.n_via)).unwrap_or_default()
    }

    fn add(&mut self, r: &FwRecord) {
        self.records += 1;
        if let Some(i) = super::record::Action::ALL.iter().position(|a| *a == r.action) {
            self.actions |= 1 << i;
        }
        if !r.rule.is_empty()
            && usize::from(self.n_rules) < RULES_LISTED
            && !self.rules().contains(&r.rule)
            && let Some(slot) = self.rules.get_mut(usize::from(self.n_rules))
        {
            *slot = r.rule;
            self.n_rules += 1;
        }
        if let Some(t) = r.ts_us {
            self.first_us = Some(self.first_us.map_or(t, |f| f.min(t)));
            self.last_us = Some(self.last_us.map_or(t, |l| l.max(t)));
        }
        if !self.via().contains(&r.file) {
            match self.via.get_mut(usize::from(self.n_via)) {
                Some(slot) => {
                    *slot = r.file;
                    self.n_via += 1;
                }
                None => self.via_more = true,
            }
        }
    }

    /// The `firewall` object: `scope` says whether the records name the
    /// event's flow (source, destination, port) or only its source.
    /// `via` names the channel and sender of the records (`origins` maps
    /// their file index to them), and `spoofable` says whether any came
    /// over UDP, where the sender's address proves nothing.
    pub fn to_json(&self, scope: &str, origins: &[Origin]) -> serde_json::Value {
        let actions: Vec<&str> = super::record::Action::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.actions & (1 << i) != 0)
            .map(|(_, a)| a.name())
            .collect();
        let via: Vec<serde_json::Value> = self
            .via()
            .iter()
            .map(|&f| match origins.get(usize::from(f)) {
                Some(o) => serde_json::json!({"channel": o.channel, "sender": o.sender}),
                None => serde_json::json!({"channel": null, "sender": null}),
            })
            .collect();
        let spoofable = self.via_more
            || self.via().iter().any(|&f| origins.get(usize::from(f)).is_some_and(|o| o.channel == "udp"));
        serde_json::json!({
            "scope": scope,
            "via": via,
            "via_more": self.via_more,
            "spoofable": spoofable,
            "records": self.records,
            "actions": actions,
            "rules": self.rules().iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "first_record": self.first_us.map(crate::output::timefmt::rfc3339_us),
            "last_record": self.last_us.map(crate::output::timefmt::rfc3339_us),
        })
    }
}

/// Bytes the index may hold, flows and sources together (`ENTRY_BYTES`
/// per tally).
const MAX_INDEX_BYTES: usize = 64 << 20;
/// What a tally costs in memory, rule names and origins included (they are
/// inline): its map slot twice (a hash table between growths is half to
/// seven eighths full), and three order entries (the queue holds up to two
/// per tally before it is rebuilt, and grows by doubling). About 720 bytes.
const ENTRY_BYTES: usize = 2 * (std::mem::size_of::<(IxKey, Slot)>() + 1) + 3 * std::mem::size_of::<(IxKey, u64)>();
/// Live: a tally no record touched for this long (of record time) leaves.
const LIVE_MAX_AGE_US: i64 = 86_400_000_000;
/// Bits remembering the flows and sources whose tallies left (1 MiB).
const GONE_BITS: usize = 1 << 23;

/// A tally's key: a flow (source, destination, destination port or ICMP
/// type) or a source alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IxKey {
    Flow(IpAddr, IpAddr, u16),
    Source(IpAddr),
}

impl IxKey {
    fn hash(&self) -> u64 {
        use crate::detect::keys::{addr_key, mix};
        match *self {
            IxKey::Flow(s, d, p) => mix(addr_key(s) ^ mix(addr_key(d) ^ u64::from(p)).rotate_left(17)),
            IxKey::Source(s) => mix(addr_key(s) ^ 0x5eed_5eed),
        }
    }
}

#[derive(Debug)]
struct Slot {
    tally: Tally,
    /// The update that last touched it (its live entry in `order`).
    seq: u64,
    /// The index clock when it was last touched.
    at: i64,
    bytes: usize,
}

/// Per-flow and per-source tallies of the records, read by the output
/// thread to give detection events their `firewall` object (see
/// `output::run`). Bounded by bytes (and, live, by age): the tally touched
/// longest ago leaves first, a new record is never refused. A flow or
/// source whose tally left is remembered (in a bit set), and its
/// `firewall` object then says `"complete": false`.
#[derive(Debug)]
pub struct FwIndex {
    map: FastMap<IxKey, Slot>,
    /// (key, update) in update order; entries whose slot was touched since
    /// are stale and skipped.
    order: std::collections::VecDeque<(IxKey, u64)>,
    seq: u64,
    bytes: usize,
    max_bytes: usize,
    max_age_us: Option<i64>,
    /// The newest record time seen.
    clock: i64,
    /// Keys whose tally left (hashed; allocated at the first).
    gone: Vec<u64>,
    /// Tallies pushed out for room, and (live) for age.
    pub evicted: u64,
    pub expired: u64,
    /// Where records come from, by `FwRecord::file`.
    origins: Vec<Origin>,
}

impl Default for FwIndex {
    fn default() -> FwIndex {
        FwIndex::bounded(MAX_INDEX_BYTES, None)
    }
}

impl FwIndex {
    pub fn new(records: &[FwRecord]) -> FwIndex {
        let mut ix = FwIndex::default();
        for r in records {
            ix.add(r);
        }
        ix
    }

    /// Live: tallies also leave a day after their last record.
    pub fn live() -> FwIndex {
        FwIndex::bounded(MAX_INDEX_BYTES, Some(LIVE_MAX_AGE_US))
    }

    fn bounded(max_bytes: usize, max_age_us: Option<i64>) -> FwIndex {
        // Sized for the bound at once: a table that doubles while records
        // stream in rehashes tens of megabytes at a time, a stall of the
        // firewall-log thread that a syslog flood turns into kernel drops.
        // Only the control bytes are written now; the slots' pages become
        // resident as tallies land in them.
        let entries = max_bytes / ENTRY_BYTES;
        FwIndex {
            map: FastMap::with_capacity_and_hasher(entries, Default::default()),
            order: std::collections::VecDeque::with_capacity(2 * entries + 1024),
            seq: 0,
            bytes: 0,
            max_bytes,
            max_age_us,
            clock: i64::MIN,
            gone: Vec::new(),
            evicted: 0,
            expired: 0,
            origins: Vec::new(),
        }
    }

    /// Names the origin of the records whose `FwRecord::file` is `file`.
    pub fn set_origin(&mut self, file: u16, channel: &'static str, sender: &str) {
        let i = usize::from(file);
        if self.origins.len() <= i {
            self.origins.resize(i + 1, Origin::default());
        }
        self.origins[i] = Origin { channel, sender: sender.to_string() };
    }

    /// Tallies one more record (live logs).
    pub fn add(&mut self, r: &FwRecord) {
        let Some(src) = r.src else { return };
        if let Some(t) = r.ts_us {
            self.clock = self.clock.max(t);
        }
        if let (Some(dst), Some(dport)) = (r.dst, r.dport.or(r.icmp.map(|(t, _)| u16::from(t)))) {
            self.touch(IxKey::Flow(src, dst, dport), r);
        }
        self.touch(IxKey::Source(src), r);
        self.make_room();
    }

    fn touch(&mut self, k: IxKey, r: &FwRecord) {
        self.seq += 1;
        let (seq, at) = (self.seq, self.clock);
        // A new slot holds nothing yet: its bytes are added below.
        let slot = self.map.entry(k).or_insert_with(|| Slot { tally: Tally::default(), seq, at, bytes: 0 });
        let before = slot.bytes;
        slot.tally.add(r);
        slot.bytes = ENTRY_BYTES;
        slot.seq = seq;
        slot.at = at;
        self.bytes = self.bytes.saturating_sub(before) + slot.bytes;
        self.order.push_back((k, seq));
    }

    /// Lets the tallies touched longest ago go while over the byte bound
    /// or past the age: amortised O(1) per record.
    fn make_room(&mut self) {
        while let Some(&(k, seq)) = self.order.front() {
            let Some(slot) = self.map.get(&k) else {
                self.order.pop_front();
                continue;
            };
            if slot.seq != seq {
                self.order.pop_front();
                continue;
            }
            let old = self.max_age_us.is_some_and(|a| slot.at < self.clock.saturating_sub(a));
            if !old && self.bytes <= self.max_bytes {
                break;
            }
            self.order.pop_front();
            if let Some(slot) = self.map.remove(&k) {
                self.bytes = self.bytes.saturating_sub(slot.bytes);
            }
            if old {
                self.expired += 1;
            } else {
                self.evicted += 1;
            }
            self.mark_gone(k);
        }
        if self.order.len() > 2 * self.map.len() + 1024 {
            // Mostly stale entries: rebuild from the live slots.
            let mut live: Vec<(IxKey, u64)> = self.map.iter().map(|(k, s)| (*k, s.seq)).collect();
            live.sort_unstable_by_key(|e| e.1);
            self.order.clear();
            self.order.extend(live);
        }
    }

    fn mark_gone(&mut self, k: IxKey) {
        if self.gone.is_empty() {
            self.gone = vec![0u64; GONE_BITS / 64];
        }
        let h = k.hash();
        if let Some(w) = self.gone.get_mut(((h >> 6) as usize) % (GONE_BITS / 64)) {
            *w |= 1 << (h & 63);
        }
    }

    /// A tally for `k` left the index (or a key hashed like it).
    fn was_gone(&self, k: IxKey) -> bool {
        if self.gone.is_empty() {
            return false;
        }
        let h = k.hash();
        self.gone.get(((h >> 6) as usize) % (GONE_BITS / 64)).is_some_and(|w| w & (1 << (h & 63)) != 0)
    }

    /// Tallies held, and their estimated bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Publishes the index's size and what left it (`stats.fw_index`).
    pub fn publish(&self, stats: &crate::stats::Stats) {
        use std::sync::atomic::Ordering::Relaxed;
        stats.fw_index_tallies.store(self.map.len() as u64, Relaxed);
        stats.fw_index_bytes.store(self.bytes as u64, Relaxed);
        stats.fw_index_evicted.store(self.evicted, Relaxed);
        stats.fw_index_expired.store(self.expired, Relaxed);
    }

    /// The `firewall` object for an event about `src` (and, when the event
    /// names them, `dst` and `dport`): the flow's records, else the
    /// source's. `complete` is false when records of that flow (or source)
    /// may have left the index; a flow or source whose tally left entirely
    /// still gets an object, with no records and `complete` false.
    pub fn lookup(&self, src: IpAddr, dst: Option<IpAddr>, dport: Option<u16>) -> Option<serde_json::Value> {
        let flow = dst.zip(dport).map(|(d, p)| IxKey::Flow(src, d, p));
        let source = IxKey::Source(src);
        let (v, complete) = if let Some(slot) = flow.and_then(|k| self.map.get(&k)) {
            (slot.tally.to_json("flow", &self.origins), !flow.is_some_and(|k| self.was_gone(k)))
        } else if flow.is_some_and(|k| self.was_gone(k)) {
            // The flow's records left: what the source still holds, or nothing.
            let t = self.map.get(&source).map(|s| &s.tally);
            (
                t.map_or_else(
                    || Tally::default().to_json("flow", &self.origins),
                    |t| t.to_json("source", &self.origins),
                ),
                false,
            )
        } else if let Some(slot) = self.map.get(&source) {
            (slot.tally.to_json("source", &self.origins), !self.was_gone(source))
        } else if self.was_gone(source) {
            (Tally::default().to_json("source", &self.origins), false)
        } else {
            return None;
        };
        let mut v = v;
        if let Some(o) = v.as_object_mut() {
            o.insert("complete".into(), complete.into());
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::testutil;
    use crate::fwlog::{Action, Format};

    fn rec(t: f64, sport: u16, seq: Option<u32>, ttl: u8) -> FwRecord {
        let mut r = FwRecord::new(Format::Netfilter, Action::Drop);
        r.ts_us = Some((t * 1e6) as i64);
        r.proto = Some(6);
        r.src = Some("203.0.113.5".parse().unwrap());
        r.dst = Some("192.0.2.10".parse().unwrap());
        r.sport = Some(sport);
        r.dport = Some(158);
        r.seq = seq;
        r.ttl = Some(ttl);
        r
    }

    fn syn(t: f64, sport: u16, seq: u32, ttl: u8) -> PacketSummary {
        let mut p = testutil::tcp((t * 1e6) as i64, "203.0.113.5", "192.0.2.10", (sport, 158), tcpflag::SYN, seq, 0);
        if let Some(ip) = &mut p.ip {
            ip.ttl = ttl;
        }
        p
    }

    fn home() -> HomeNet {
        HomeNet::parse("192.0.2.0/24").unwrap()
    }

    #[test]
    fn records_meet_their_packets_across_a_clock_offset_with_the_ttl_one_lower() {
        // The firewall's clock runs 0.9 s behind; it logs TTL one lower.
        let recs: Vec<FwRecord> =
            (0..6).map(|i| rec(100.0 + f64::from(i) * 30.0 - 0.9, 1024 + i as u16, Some(7 + i), 49)).collect();
        let mut c = Correlator::new(&recs, home());
        for i in 0..6u32 {
            c.observe(&syn(100.0 + f64::from(i) * 30.0, 1024 + i as u16, 7 + i, 50));
        }
        // Two attempts the firewall did not log, and one outbound packet.
        c.observe(&syn(120.0, 40000, 1, 50));
        c.observe(&syn(121.0, 40001, 2, 50));
        let mut out = testutil::tcp(130_000_000, "192.0.2.10", "203.0.113.5", (5, 6), tcpflag::SYN, 3, 0);
        if let Some(ip) = &mut out.ip {
            ip.ttl = 64;
        }
        c.observe(&out);
        let o = c.finish();
        assert_eq!((o.records, o.matched, o.unmatched_records, o.unlogged_packets), (6, 6, 0, 2), "{o:?}");
        let off = o.clock_offset_s.unwrap();
        assert!((off + 0.9).abs() < 1e-6, "{off}");
        assert!(o.offset_strong);
        assert_eq!(o.attempts, 8);
    }

    #[test]
    fn a_wrong_ttl_or_sequence_number_is_no_match_and_egress_records_stay_unmatched() {
        let mut recs = vec![rec(10.0, 1, Some(5), 49), rec(20.0, 2, Some(6), 30)];
        let mut egress = rec(15.0, 3, None, 63);
        egress.src = Some("192.0.2.10".parse().unwrap());
        egress.dst = Some("198.51.100.9".parse().unwrap());
        recs.push(egress);
        let mut c = Correlator::new(&recs, home());
        c.observe(&syn(10.0, 1, 5, 50)); // matches
        c.observe(&syn(20.0, 2, 6, 50)); // TTL 30 logged: not one below 50
        c.observe(&syn(20.5, 2, 99, 31)); // right TTL, wrong ISN
        let o = c.finish();
        assert_eq!((o.matched, o.unmatched_records), (1, 2), "{o:?}");
        assert_eq!(o.unlogged_packets, 2);
    }

    #[test]
    fn without_sequence_numbers_the_offset_comes_from_every_pair() {
        let recs: Vec<FwRecord> =
            (0..5).map(|i| rec(50.0 + f64::from(i) * 10.0 + 2.0, 10 + i as u16, None, 49)).collect();
        let mut c = Correlator::new(&recs, HomeNet::default());
        for i in 0..5u32 {
            c.observe(&syn(50.0 + f64::from(i) * 10.0, 10 + i as u16, i, 50));
        }
        let o = c.finish();
        assert_eq!(o.matched, 5);
        assert!(!o.offset_strong);
        assert!((o.clock_offset_s.unwrap() - 2.0).abs() < 1e-6);
    }

    /// The index is bounded by bytes: the tally touched longest ago leaves
    /// first, new records are always tallied, evictions are counted, and an
    /// event about a flow whose records left says `complete: false` (with
    /// its object, not without it).
    #[test]
    fn the_index_lets_the_oldest_go_and_says_what_is_incomplete() {
        let mut ix = FwIndex::bounded(200 * ENTRY_BYTES, None);
        let flow = |i: u32| {
            let mut r = rec(100.0 + f64::from(i), 1024, None, 50);
            r.src = Some(IpAddr::V4(std::net::Ipv4Addr::from(0xC612_0000 + i)));
            r
        };
        let dst: IpAddr = "192.0.2.10".parse().unwrap();
        // A source that keeps sending: touched all along, it stays.
        let steady = rec(0.0, 1024, None, 50);
        let steady_src = steady.src.unwrap();
        for i in 0..1000u32 {
            ix.add(&flow(i));
            let mut s = steady;
            s.ts_us = Some(100_000_000 + i64::from(i) * 1_000_000);
            ix.add(&s);
        }
        assert!(ix.bytes() <= 200 * ENTRY_BYTES + 4096, "bytes {}", ix.bytes());
        assert!(ix.evicted > 1000, "each new source took the oldest's room: {}", ix.evicted);
        // The newest flow is there, whole.
        let newest = ix.lookup(flow(999).src.unwrap(), Some(dst), Some(158)).unwrap();
        assert_eq!((newest["scope"].as_str(), newest["records"].as_u64()), (Some("flow"), Some(1)));
        assert_eq!(newest["complete"], true);
        let s = ix.lookup(steady_src, Some(dst), Some(158)).unwrap();
        assert_eq!(s["records"], 1000, "the steady flow kept all its records: {s}");
        assert_eq!(s["complete"], true);
        // The first flow left: its event still gets an object, marked incomplete.
        let gone = ix.lookup(flow(0).src.unwrap(), Some(dst), Some(158)).expect("an object for a flow that left");
        assert_eq!(gone["complete"], false, "{gone}");
        assert_eq!(gone["records"], 0);
        // A new record for it starts a new tally, still marked incomplete.
        ix.add(&flow(0));
        let back = ix.lookup(flow(0).src.unwrap(), Some(dst), Some(158)).unwrap();
        assert_eq!((back["records"].as_u64(), back["complete"].as_bool()), (Some(1), Some(false)));
        // Sources the log never named get nothing.
        assert!(ix.lookup("198.51.100.200".parse().unwrap(), Some(dst), Some(158)).is_none());
        let stats = crate::stats::Stats::default();
        ix.publish(&stats);
        assert_eq!(stats.fw_index_evicted.load(std::sync::atomic::Ordering::Relaxed), ix.evicted);
    }

    /// Live, a tally a day older than the newest record leaves.
    #[test]
    fn live_tallies_leave_a_day_after_their_last_record() {
        let mut ix = FwIndex::live();
        let dst: IpAddr = "192.0.2.10".parse().unwrap();
        let old = rec(1_000.0, 1024, None, 50);
        ix.add(&old);
        let mut new = rec(1_000.0 + 86_401.0, 1025, None, 50);
        new.src = Some("198.51.100.9".parse().unwrap());
        ix.add(&new);
        assert_eq!(ix.expired, 2, "the old flow and its source");
        assert_eq!(ix.evicted, 0);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.lookup(old.src.unwrap(), Some(dst), Some(158)).unwrap()["complete"], false);
    }
}
