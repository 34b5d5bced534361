//! `syn_retry`: repeated, failing TCP connection attempts from one source to
//! one destination address and port (SIGNATURES.md sections 1 and 2).
//!
//! - A retransmission repeats an attempt's source port and ISN; a new source
//!   port or ISN is a new attempt.
//! - An attempt that draws a SYN-ACK succeeded and stops counting. A RST or an
//!   ICMP unreachable quoting it rejects it: it still failed, and the event
//!   says who rejected it.
//! - An attempt has *failed* once it is rejected, once the client has moved on
//!   to a newer attempt, or once `settle_s` passed after its last SYN with no
//!   SYN-ACK (at the end of input, every unanswered attempt has failed). The
//!   detection is confirmed when `min_attempts` SYNs (attempts or
//!   retransmissions) of failed attempts fall within `window_s`, from at
//!   least `min_distinct_attempts` attempts (2: one SYN and its own back-off
//!   is a single failed connection, not a program retrying). So one SYN
//!   retransmitted and then answered never fires.
//! - Retries to a trojan or backdoor port (`rules/ports.toml`) are left to
//!   `known_probe`, which names the prober (a worm's connect() retried),
//!   and counted in `stats.suppressed.syn_retry_as_known_probe`.
//! - A source that is probing more than `max_dest_ports_per_source` ports or
//!   `max_dest_hosts_per_source` hosts is a scanner or a sweeper, not a retry
//!   loop: it is left to the scan detectors and counted.
//! - A service that answered at least `max_answered_share` of the key's
//!   attempts is up: a few lost SYNs among answered connections are loss,
//!   not a program retrying (`stats.suppressed.syn_retry_mostly_answered`).
//! - SYNs that all fit one mass scanner's probe fingerprint
//!   (`rules/scanners.toml`, role "scanner": masscan's window 1024 and no
//!   options, zmap's IP ID 54321) are a scanner's retries, not a client's:
//!   left to the scan detectors (`stats.suppressed.syn_retry_as_scan_tool`).
//! - A (source, port) that `brute_force` claims starts no detection: the
//!   attempts a busy server left unanswered in a password-guessing run are
//!   the brute force's, not a client retrying a dead service.
//!
//! State, in two fair tiers (`detect::fair`), so a flood of one-off SYNs
//! costs little memory and never touches the keys that repeated:
//! - `first` (probation): a 32-byte record of a key's first SYN, under a
//!   64-bit fingerprint of the key (`fair::Fingerprinted`). Most keys (scans, a spoofed
//!   flood, ordinary connections) never get further. When full, the oldest
//!   first SYN makes room (O(1), counted as evicted). A source already
//!   beyond the scan limits takes no slot here at all.
//! - `second` (probation's second segment, half its size): a key's first
//!   two SYNs, moved here by the second and last in line, until a third
//!   promotes the key (with `min_attempts` 2, the second does). One-off
//!   SYNs never touch this segment, and a flood that repeats each forged
//!   key once (what a retry loop's first two attempts look like) churns it
//!   but never reaches the tier. A record pushed out that held two attempts
//!   is a lost detection.
//! - `map` (the tier): the full entry, made when a key gets its third SYN,
//!   or a SYN of it is rejected or (after two) answered. When full, a clock hand picks the victim: a
//!   confirmed detection is never taken, a key with more attempts outlives
//!   one with fewer, and an entry already suppressed (a scanner's, a
//!   service that answers) goes first, so a scanner's keys cannot take a
//!   retrying client's slot. A victim or a refused key that held two
//!   attempts is counted in `lost_detections`.
//!
//! Capped at `max_probation` and `max_tracked` (split between workers), they expire after
//! `window_s` without a SYN (checked every `sweep_every(window)` of packet time: a tenth of it).
//! Entries that may confirm once their attempts settle sit in a short
//! pending list, so a tick never walks the whole table.

use super::brute_force::Claims;
use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::fair::{Fingerprinted, Tier, Weighted};
use crate::detect::keys::Distinct1024;
use crate::detect::keys::sweep_every;
use crate::detect::port_scan::tools::ToolTable;
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, Flow, detection_id, incident_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

crate::rules_section! {
    /// SIGNATURES.md sections 1 and 2: unanswered SYNs repeated by a program (new
    /// source port each attempt) -> "misconfigured software retrying", not a scan.
    pub struct SynRetryRules["syn_retry"] check(check_syn_retry) {
        /// SIGNATURES.md section 1: the detector the sensor exists for
        enabled: bool = true;
        /// SIGNATURES.md section 2: 3+ new-source-port attempts = a program retrying
        min_attempts: u32 = 3, ints(2, 16);
        /// SIGNATURES.md section 2: a program retrying opens a new attempt (new source port or ISN) each time; 1 also reports one SYN's own back-off
        min_distinct_attempts: u32 = 2, ints(1, 16);
        /// SIGNATURES.md section 1: 30 s period plus the 5-minute silence fit in 10 min
        window_s: f64 = 600.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 2: first SYN retransmit ~3 s; unanswered this long = failed; less than window_s
        settle_s: f64 = 3.0, floats(0.0, 60.0);
        /// SIGNATURES.md section 2: many destination ports from one source = vertical scan
        max_dest_ports_per_source: u32 = 8, ints(1, 65_536);
        /// SIGNATURES.md section 2: stacks back off >= 1 s; a same-port, same-ISN repeat sooner is a crafted probe (nmap -O), not a retransmission
        min_retransmit_gap_s: f64 = 0.5, floats(0.0, 10.0);
        /// SIGNATURES.md section 2: one port across many destination hosts = horizontal sweep
        max_dest_hosts_per_source: u32 = 16, ints(1, 1 << 24);
        /// SIGNATURES.md section 2: a service that answered at least this share of the key's attempts is up, and its few lost SYNs are loss, not a retry loop; 1 reports them too
        max_answered_share: f64 = 0.5, floats(0.0, 1.0);
        /// SIGNATURES.md section 1: cap on (src, dst, dport) keys that repeated (full entries, about 800 B each), across all workers; the story's 65,536 warnings a day come from far fewer keys at once
        max_tracked: usize = 16384, entries();
        /// SIGNATURES.md section 1: cap on keys seen once (a first SYN, about 65 B with its share of its bucket; a spoofed flood or a scan lands here), across all workers; 131,072 outlast a 1 s retransmission inside a 100 kpps flood; keys seen twice wait for their third SYN in a second segment of half this size (about 100 B each)
        max_probation: usize = 131072, entries();
    }
}

/// An attempt must be able to settle inside the window.
fn check_syn_retry(r: &SynRetryRules, s: &Spans) -> Result<(), ConfigError> {
    if r.settle_s >= r.window_s {
        return Err(s.out_of_order(
            "settle_s",
            "window_s",
            format!("settle_s ({}) must be less than window_s ({})", r.settle_s, r.window_s),
        ));
    }
    Ok(())
}

const KIND: &str = "syn_retry";
/// Attempts remembered per entry, for matching answers to them.
const RING: usize = 8;
/// Failed SYN times remembered per entry, for the window test (>= min_attempts).
const WIN: usize = 16;
/// Packet time between confirmation checks of one entry from its SYNs.
const EVAL_US: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
}

impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        crate::detect::keys::hash_pair(&self.src, &self.dst, u32::from(self.dport), h);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Outcome {
    #[default]
    Pending,
    SynAck,
    /// A router answered time-exceeded: a TTL-limited probe (tcptraceroute),
    /// not an attempt that reached its target.
    TtlExpired,
    Rst,
    Icmp,
}

impl Outcome {
    /// Attempts that no longer count as failed.
    fn excluded(self) -> bool {
        matches!(self, Outcome::SynAck | Outcome::TtlExpired)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Attempt {
    sport: u16,
    isn: u32,
    /// IP ID of the latest copy.
    ip_id: u32,
    /// Order of the attempt within its entry (0, 1, ...).
    ord: u32,
    last_us: i64,
    packets: u16,
    outcome: Outcome,
    /// Started while an earlier attempt was still being retransmitted: a
    /// parallel connection of the same effort, not a retry after a failure.
    parallel: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Failed {
    ts: i64,
    sport: u16,
    isn: u32,
}

/// One SYN of a key in probation, before the key has a full entry.
#[derive(Clone, Copy, Debug)]
struct FirstSyn {
    ts: i64,
    isn: u32,
    ip_id: u32,
    payload: u32,
    sport: u16,
    sensor: u16,
    /// The mass-scanner fingerprints the SYN fits (`ToolTable` bits).
    tools: u16,
    ttl: u8,
    /// The dispatcher's `dst_spoke || home_spoke` for this SYN.
    spoke: bool,
}

impl FirstSyn {
    fn of(p: &PacketSummary, sensor: u16, sport: u16, isn: u32, ttl: u8, tools: u16) -> FirstSyn {
        let ip_id = p.ip.map(|i| i.ip_id).unwrap_or(0);
        let spoke = p.dst_spoke || p.home_spoke;
        FirstSyn { ts: p.ts_us, isn, ip_id, payload: p.payload_len, sport, sensor, tools, ttl, spoke }
    }

    /// Two SYNs of one key that are two attempts (a new source port or
    /// ISN), not one SYN and its retransmission.
    fn distinct(&self, other: &FirstSyn) -> bool {
        self.sport != other.sport || self.isn != other.isn
    }
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    attempts: [Attempt; RING],
    next_attempt: usize,
    win: [Failed; WIN],
    win_len: usize,
    failed_attempts: u32,
    /// Failed attempts that ran in parallel with an earlier one.
    overlapped: u32,
    retransmissions: u32,
    succeeded: u32,
    payload_bytes: u64,
    ports: Distinct1024,
    first_sport: u16,
    last_sport: u16,
    rst: u32,
    icmp: u32,
    icmp_from: Option<IpAddr>,
    ttl_min: u8,
    ttl_max: u8,
    /// Attempts started so far (the next attempt's `ord`).
    started: u32,
    confirmed: bool,
    suppressed: bool,
    /// SYN packets seen (any outcome): one means no evidence yet.
    syns: u32,
    /// Same-port, same-ISN repeats too fast to be a stack's retransmission.
    rapid_repeats: u32,
    /// Attempts a router answered with time-exceeded (TTL-limited probes).
    ttl_expired: u32,
    /// In the pending list.
    queued: bool,
    last_emit_us: i64,
    /// Packet time of the last `try_confirm` from a SYN.
    last_eval_us: i64,
    /// SYNs within one second (a sliding bucket) and the most seen: a loop
    /// at a flood rate is `syn_flood`'s, not a retry loop.
    burst_us: i64,
    burst_n: u32,
    peak_burst: u32,
    /// Left to `syn_flood` (counted once).
    flood: bool,
    /// The mass-scanner fingerprints every SYN so far fits.
    tools: u16,
    /// The destination is a home host, and whether any of the SYNs reached
    /// it with its return path in view: after it, or any home host, had
    /// been seen sending (the dispatcher's `dst_spoke`, `home_spoke`).
    dst_home: bool,
    dst_spoke: bool,
}

impl Weighted for Entry {
    /// A scanner's or an answered service's entry (suppressed) goes first;
    /// otherwise one hand pass per attempt started.
    fn credit(&self) -> u8 {
        if self.suppressed { 0 } else { self.started.min(15) as u8 }
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
}

impl Entry {
    /// Losing this entry loses a detection: two attempts or more, not yet
    /// judged something else.
    fn evidence(&self) -> bool {
        self.started >= 2 && !self.suppressed
    }

    /// A full entry for a key, replaying its first SYN, and its second
    /// when it had one in probation.
    fn promote(f: &FirstSyn, second: Option<&FirstSyn>, dst_home: bool, min_gap_us: i64) -> Entry {
        let mut e = Entry::empty(f);
        e.payload_bytes = u64::from(f.payload);
        e.syns = 1;
        e.dst_home = dst_home;
        e.dst_spoke = f.spoke;
        e.add_syn(f.sport, f.isn, f.ip_id, f.ts, 0);
        if let Some(s) = second {
            e.apply(s, dst_home, min_gap_us);
        }
        e
    }

    /// Takes one SYN's facts; false if it retransmits an attempt that
    /// already succeeded (`add_syn`).
    fn apply(&mut self, s: &FirstSyn, dst_home: bool, min_gap_us: i64) -> bool {
        self.last_us = self.last_us.max(s.ts);
        self.sensor = s.sensor;
        self.ttl_min = self.ttl_min.min(s.ttl);
        self.ttl_max = self.ttl_max.max(s.ttl);
        self.tools &= s.tools;
        self.payload_bytes += u64::from(s.payload);
        self.syns = self.syns.saturating_add(1);
        if s.ts.saturating_sub(self.burst_us) >= 1_000_000 {
            self.burst_us = s.ts;
            self.burst_n = 0;
        }
        self.burst_n += 1;
        self.peak_burst = self.peak_burst.max(self.burst_n);
        self.dst_home = dst_home;
        self.dst_spoke |= s.spoke;
        self.add_syn(s.sport, s.isn, s.ip_id, s.ts, min_gap_us)
    }

    fn empty(f: &FirstSyn) -> Entry {
        let (sport, ttl) = (f.sport, f.ttl);
        Entry {
            sensor: f.sensor,
            first_us: f.ts,
            last_us: f.ts,
            attempts: [Attempt::default(); RING],
            next_attempt: 0,
            win: [Failed::default(); WIN],
            win_len: 0,
            failed_attempts: 0,
            overlapped: 0,
            retransmissions: 0,
            succeeded: 0,
            payload_bytes: 0,
            ports: Distinct1024::default(),
            first_sport: sport,
            last_sport: sport,
            rst: 0,
            icmp: 0,
            icmp_from: None,
            ttl_min: ttl,
            ttl_max: ttl,
            started: 0,
            confirmed: false,
            suppressed: false,
            syns: 0,
            rapid_repeats: 0,
            ttl_expired: 0,
            queued: false,
            last_emit_us: f.ts,
            last_eval_us: i64::MIN,
            burst_us: f.ts,
            burst_n: 1,
            peak_burst: 1,
            flood: false,
            tools: f.tools,
            dst_home: false,
            dst_spoke: false,
        }
    }

    fn find(&mut self, sport: u16, isn: Option<u32>) -> Option<&mut Attempt> {
        let hit = |a: &Attempt| a.packets > 0 && a.sport == sport && isn.is_none_or(|i| a.isn == i);
        self.attempts.iter_mut().find(|a| hit(a))
    }

    /// Records a SYN; returns false if it retransmits an attempt that
    /// already succeeded (and so proves nothing).
    fn add_syn(&mut self, sport: u16, isn: u32, ip_id: u32, ts: i64, min_gap_us: i64) -> bool {
        let mut rapid = false;
        if let Some(a) = self.find(sport, Some(isn)) {
            if a.outcome.excluded() {
                return false;
            }
            // A new IP ID sooner than any stack's back-off: a crafted probe
            // re-sent by a scanner (nmap -O), not a retransmission. The same
            // IP ID is the same packet again (Windows keeps it on retransmit).
            rapid = ip_id != a.ip_id && ts.saturating_sub(a.last_us) < min_gap_us;
            a.last_us = ts;
            a.ip_id = ip_id;
        }
        if rapid {
            self.rapid_repeats += 1;
            return false;
        }
        if let Some(a) = self.find(sport, Some(isn)) {
            a.packets = a.packets.saturating_add(1);
            a.last_us = ts;
            let ord = a.ord;
            self.retransmissions += 1;
            // Attempts started after this one while it is still being
            // retransmitted ran beside it (a browser's or a service's
            // parallel connections while the network is down): together
            // they are one effort, not retries after a failure.
            for b in self.attempts.iter_mut().filter(|b| b.packets > 0 && b.ord > ord && !b.parallel) {
                b.parallel = true;
                if !b.outcome.excluded() {
                    self.overlapped += 1;
                }
            }
        } else {
            let ord = self.started;
            self.started += 1;
            self.attempts[self.next_attempt] =
                Attempt { sport, isn, ip_id, ord, last_us: ts, packets: 1, outcome: Outcome::Pending, parallel: false };
            self.next_attempt = (self.next_attempt + 1) % RING;
            self.failed_attempts += 1;
            self.ports.insert(u64::from(sport));
            self.last_sport = sport;
        }
        if self.win_len == WIN {
            self.win.copy_within(1.., 0);
            self.win_len -= 1;
        }
        self.win[self.win_len] = Failed { ts, sport, isn };
        self.win_len += 1;
        true
    }

    /// Failed attempts that were retries: started after the earlier ones
    /// had stopped, not beside them. The newest attempt counts once it has
    /// failed (see `failed`), not while its answer may still come.
    fn rounds(&self, now: i64, settle_us: i64, ended: bool) -> u32 {
        let newest = self.started.saturating_sub(1);
        let waiting = self.attempts.iter().any(|a| {
            a.packets > 0
                && a.ord == newest
                && !a.parallel
                && a.outcome == Outcome::Pending
                && !ended
                && now.saturating_sub(a.last_us) < settle_us
        });
        self.failed_attempts.saturating_sub(self.overlapped).saturating_sub(u32::from(waiting))
    }

    /// A SYN-ACK for the attempt: it succeeded, so it stops counting.
    fn succeed(&mut self, sport: u16, isn: Option<u32>, how: Outcome) {
        let Some(a) = self.find(sport, isn) else {
            return;
        };
        let isn = a.isn;
        if a.outcome.excluded() {
            return;
        }
        let retrans = u32::from(a.packets.saturating_sub(1));
        a.outcome = how;
        if a.parallel {
            self.overlapped = self.overlapped.saturating_sub(1);
        }
        self.failed_attempts = self.failed_attempts.saturating_sub(1);
        self.retransmissions = self.retransmissions.saturating_sub(retrans);
        if how == Outcome::SynAck {
            self.succeeded += 1;
        } else {
            self.ttl_expired += 1;
        }
        let mut kept = 0;
        for i in 0..self.win_len {
            let f = self.win[i];
            if !(f.sport == sport && f.isn == isn) {
                self.win[kept] = f;
                kept += 1;
            }
        }
        self.win_len = kept;
    }

    fn reject(&mut self, sport: u16, isn: Option<u32>, how: Outcome) -> bool {
        let Some(a) = self.find(sport, isn) else {
            return false;
        };
        if a.outcome.excluded() {
            return false;
        }
        a.outcome = how;
        true
    }

    /// Whether the attempt (sport, isn) has failed by `now` (see the module
    /// comment). `ended`: the input is over, so unanswered means failed.
    fn failed(&self, sport: u16, isn: u32, now: i64, settle_us: i64, ended: bool) -> bool {
        let newest = self.started.saturating_sub(1);
        let Some(a) = self.attempts.iter().find(|a| a.packets > 0 && a.sport == sport && a.isn == isn) else {
            return true; // pushed out of the ring by newer attempts
        };
        match a.outcome {
            Outcome::SynAck | Outcome::TtlExpired => false,
            Outcome::Rst | Outcome::Icmp => true,
            Outcome::Pending => ended || a.ord < newest || now.saturating_sub(a.last_us) >= settle_us,
        }
    }

    /// `min` SYNs of failed attempts within `window_us` of each other.
    fn over_threshold(&self, min: usize, window_us: i64, now: i64, settle_us: i64, ended: bool) -> bool {
        if min == 0 || self.win_len < min {
            return false;
        }
        let mut ts = [0i64; WIN];
        let mut n = 0;
        for f in &self.win[..self.win_len] {
            if self.failed(f.sport, f.isn, now, settle_us, ended) {
                ts[n] = f.ts;
                n += 1;
            }
        }
        n >= min && (0..=n - min).any(|i| ts[i + min - 1] - ts[i] <= window_us)
    }
}

/// Thresholds in packet-time microseconds.
#[derive(Clone, Copy)]
struct Limits {
    min: usize,
    /// Distinct failed attempts needed (one SYN's back-off alone is not a loop).
    min_distinct: u32,
    /// Trojan and backdoor ports are left to known_probe.
    defer_trojan: bool,
    window_us: i64,
    settle_us: i64,
    max_ports: u32,
    max_hosts: u32,
    min_gap_us: i64,
    /// `[syn_flood] min_pps`: SYNs within a second that make a flood.
    flood_pps: u32,
    max_answered_share: f64,
}

/// The detector's per-worker state.
pub struct SynRetry {
    /// Probation, first segment: keys with one SYN.
    first: Fingerprinted<Key, FirstSyn>,
    /// Probation, second segment: keys with two SYNs, held until a third
    /// (a retry loop's) promotes them, so a flood that repeats each forged
    /// key once never reaches the tier.
    second: Fingerprinted<Key, [FirstSyn; 2]>,
    map: Tier<Key, Entry>,
    rules: SynRetryRules,
    lim: Limits,
    update_us: i64,
    /// Keys over the threshold whose attempts have not all settled.
    pending: Vec<Key>,
    last_sweep_us: i64,
    /// What `brute_force` explains: its connections are no retry loop.
    claims: Arc<Claims>,
    /// The mass scanners' fingerprints (`rules/scanners.toml`).
    scan_tools: ToolTable,
    scan_mask: u16,
}

impl SynRetry {
    /// Leaves retries to trojan and backdoor ports to `known_probe`.
    pub fn deferring_trojan_ports(mut self, on: bool) -> SynRetry {
        self.lim.defer_trojan = on;
        self
    }

    pub fn new(rules: &SynRetryRules, cap: usize, probation: usize, update_interval_s: f64) -> SynRetry {
        let first = Fingerprinted::new(probation);
        SynRetry {
            second: first.sharing_seed(probation.div_ceil(2)),
            first,
            map: Tier::new(cap),
            pending: Vec::new(),
            last_sweep_us: i64::MIN,
            rules: rules.clone(),
            lim: Limits {
                min: rules.min_attempts as usize,
                min_distinct: rules.min_distinct_attempts,
                defer_trojan: false,
                window_us: (rules.window_s * 1e6) as i64,
                settle_us: (rules.settle_s * 1e6) as i64,
                max_ports: rules.max_dest_ports_per_source,
                max_hosts: rules.max_dest_hosts_per_source,
                min_gap_us: (rules.min_retransmit_gap_s * 1e6) as i64,
                flood_pps: crate::detect::flood::SynFloodRules::default().min_pps,
                max_answered_share: rules.max_answered_share,
            },
            update_us: (update_interval_s * 1e6) as i64,
            claims: Arc::new(Claims::default()),
            scan_tools: ToolTable::default(),
            scan_mask: 0,
        }
    }

    /// The scanner fingerprints: SYNs that all fit a mass scanner's are its
    /// retries, left to the scan detectors.
    pub fn with_scan_tools(mut self, tools: &ToolTable) -> SynRetry {
        self.scan_mask = tools.scanner_mask();
        self.scan_tools = tools.clone();
        self
    }

    /// Shares `brute_force`'s claims: a claimed (source, port) starts no detection.
    pub fn with_claims(mut self, claims: Arc<Claims>) -> SynRetry {
        self.claims = claims;
        self
    }

    /// SYNs within one second from one source to one port that make a
    /// flood, not a retry loop (`[syn_flood] min_pps`).
    pub fn flood_rate(mut self, pps: u32) -> SynRetry {
        self.lim.flood_pps = pps;
        self
    }

    /// The full entry for `key`, promoting its SYNs from probation if it
    /// has some there.
    fn entry_mut(&mut self, key: &Key, cx: &Ctx) -> Option<&mut Entry> {
        if !self.map.contains(key) {
            let fp = self.first.fp(key);
            let (f, second) = match self.second.remove_fp(fp) {
                Some([f, s]) => (f, Some(s)),
                None => (self.first.remove_fp(fp)?, None),
            };
            let table = cx.shared.stats.table(Table::SynRetry);
            let e = Entry::promote(&f, second.as_ref(), cx.shared.home.contains(key.dst), self.lim.min_gap_us);
            if !self.map.insert(*key, e).count(table, Entry::evidence) {
                return None;
            }
        }
        self.map.get_mut(key)
    }

    /// Whether probation holds SYNs of `key`.
    fn in_probation(&self, key: &Key) -> bool {
        let fp = self.first.fp(key);
        self.first.get_fp(fp).is_some() || self.second.get_fp(fp).is_some()
    }

    /// Handles one packet.
    #[inline]
    fn packet(&mut self, p: &PacketSummary, sensor: u16, src_table: &Sources, cx: &Ctx) {
        if !self.rules.enabled {
            return;
        }
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            L4::Tcp(t) if t.is_connection_attempt() => {
                let key = Key { src: ip.src, dst: ip.dst, dport: t.dport };
                let tools = if self.scan_mask == 0 { 0 } else { self.scan_tools.matches(p, t) & self.scan_mask };
                self.on_syn(key, p, sensor, t.sport, t.seq, ip.ttl, tools, src_table, cx);
            }
            L4::Tcp(t) if t.is_syn_ack() => {
                let key = Key { src: ip.dst, dst: ip.src, dport: t.sport };
                let isn = t.ack.wrapping_sub(1);
                if let Some(e) = self.map.get_mut(&key) {
                    e.succeed(t.dport, Some(isn), Outcome::SynAck);
                    return;
                }
                let fp = self.first.fp(&key);
                if self.first.get_fp(fp).is_some_and(|f| f.sport == t.dport && f.isn == isn) {
                    // An ordinary connection: nothing left to watch.
                    self.first.remove_fp(fp);
                } else if self.second.get_fp(fp).is_some()
                    && let Some(e) = self.entry_mut(&key, cx)
                {
                    e.succeed(t.dport, Some(isn), Outcome::SynAck);
                }
            }
            L4::Tcp(t) if t.has(tcpflag::RST) => {
                let key = Key { src: ip.dst, dst: ip.src, dport: t.sport };
                let isn = t.has(tcpflag::ACK).then(|| t.ack.wrapping_sub(1));
                if !self.map.contains(&key) && !self.in_probation(&key) {
                    return;
                }
                if let Some(e) = self.entry_mut(&key, cx)
                    && e.reject(t.dport, isn, Outcome::Rst)
                {
                    e.rst += 1;
                }
            }
            L4::Icmp(i) if i.is_unreachable() => {
                let Some(q) = &i.quoted else { return };
                if q.proto != 6 || !q.has_ports {
                    return;
                }
                let key = Key { src: q.src, dst: q.dst, dport: q.dport };
                if !self.map.contains(&key) && !self.in_probation(&key) {
                    return;
                }
                if let Some(e) = self.entry_mut(&key, cx)
                    && e.reject(q.sport, q.tcp_seq, Outcome::Icmp)
                {
                    e.icmp += 1;
                    e.icmp_from = Some(ip.src);
                }
            }
            L4::Icmp(i) if i.is_time_exceeded() => {
                let Some(q) = &i.quoted else { return };
                if q.proto != 6 || !q.has_ports {
                    return;
                }
                let key = Key { src: q.src, dst: q.dst, dport: q.dport };
                let fp = self.first.fp(&key);
                if self.first.get_fp(fp).is_some_and(|f| f.sport == q.sport && q.tcp_seq.is_none_or(|s| s == f.isn)) {
                    // A TTL-limited probe (tcptraceroute): no attempt to watch.
                    self.first.remove_fp(fp);
                } else if (self.map.contains(&key) || self.second.get_fp(fp).is_some())
                    && let Some(e) = self.entry_mut(&key, cx)
                {
                    e.succeed(q.sport, q.tcp_seq, Outcome::TtlExpired);
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_syn(
        &mut self,
        key: Key,
        p: &PacketSummary,
        sensor: u16,
        sport: u16,
        isn: u32,
        ttl: u8,
        tools: u16,
        src_table: &Sources,
        cx: &Ctx,
    ) {
        let (lim, update_us) = (self.lim, self.update_us);
        let claims = Arc::clone(&self.claims);
        let syn = FirstSyn::of(p, sensor, sport, isn, ttl, tools);
        // One lookup for a key already in the full tier (the common case of
        // a retry loop); probation only for keys that are not.
        let e = match self.map.get_mut(&key) {
            Some(e) => e,
            None => {
                let fp = self.first.fp(&key);
                if self.second.get_fp(fp).is_none() {
                    let Some(f) = self.first.get_fp(fp).copied() else {
                        // Per-source quota: a source already probing more
                        // ports or hosts than a retry loop does is a
                        // scanner, left to the scan detectors (`try_confirm`
                        // would suppress it); its one-off SYNs do not take
                        // probation slots from the other sources' first SYNs.
                        if !src_table.scans_beyond(key.src, lim.max_ports, lim.max_hosts) {
                            self.remember_first(fp, syn, cx);
                        }
                        return;
                    };
                    if lim.min > 2 {
                        // A second SYN cannot confirm yet: it waits in the
                        // second segment, last in line, for the third.
                        self.first.remove_fp(fp);
                        self.remember_second(fp, [f, syn], cx);
                        return;
                    }
                }
                let Some(e) = self.entry_mut(&key, cx) else { return };
                e
            }
        };
        if !e.apply(&syn, cx.shared.home.contains(key.dst), lim.min_gap_us) {
            return;
        }
        if !e.confirmed {
            // At most once per second of packet time from SYNs (a fast loop
            // or a sweeper's rounds would otherwise re-check every packet);
            // an entry over the threshold is queued, and every tick checks
            // the queue, so confirmation is never more than a second late.
            if p.ts_us.saturating_sub(e.last_eval_us) >= EVAL_US {
                e.last_eval_us = p.ts_us;
                try_confirm(&key, e, lim, &claims, src_table, cx, p.ts_us, None);
            }
            if !e.confirmed && !e.queued && e.win_len >= lim.min {
                e.queued = true;
                self.pending.push(key);
            }
        } else if p.ts_us - e.last_emit_us >= update_us {
            e.last_emit_us = p.ts_us;
            cx.emit(render(&key, e, "update", None, cx, p.ts_us));
        }
    }

    /// Records a key's first SYN; a full first segment lets its oldest go.
    fn remember_first(&mut self, fp: u64, f: FirstSyn, cx: &Ctx) {
        if self.first.insert_fp(fp, f).is_some() {
            cx.shared.stats.table(Table::SynRetry).evicted.fetch_add(1, Relaxed);
        }
    }

    /// Records a key's first two SYNs; a full second segment lets its
    /// oldest go, a lost detection when its two SYNs were two attempts.
    fn remember_second(&mut self, fp: u64, two: [FirstSyn; 2], cx: &Ctx) {
        if let Some([a, b]) = self.second.insert_fp(fp, two) {
            let t = cx.shared.stats.table(Table::SynRetry);
            t.evicted.fetch_add(1, Relaxed);
            if a.distinct(&b) {
                t.lost_detections.fetch_add(1, Relaxed);
            }
        }
    }

    /// Confirms pending entries whose attempts have settled, and every
    /// `sweep_every(window)` expires idle entries (called once per tick).
    fn tick(&mut self, src_table: &Sources, cx: &Ctx) {
        let (now, lim) = (cx.now, self.lim);
        let map = &mut self.map;
        let claims = &self.claims;
        self.pending.retain(|key| {
            let Some(e) = map.get_mut(key) else { return false };
            try_confirm(key, e, lim, claims, src_table, cx, now, None);
            // Keep waiting while an attempt may still be answered. A
            // suppressed entry is re-checked by its next SYN instead.
            let keep = !e.confirmed && !e.suppressed && e.win_len >= lim.min && now - e.last_us <= lim.settle_us;
            e.queued = keep;
            keep
        });
        if now.saturating_sub(self.last_sweep_us) < sweep_every(lim.window_us) {
            return;
        }
        self.last_sweep_us = now;
        let mut expired = self.map.retain(|key, e| {
            if now.saturating_sub(e.last_us) <= lim.window_us {
                return true;
            }
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(EndReason::Expired), cx, now));
            }
            false
        });
        expired += self.first.retain(|_, f| now.saturating_sub(f.ts) <= lim.window_us);
        expired += self.second.retain(|_, [_, s]| now.saturating_sub(s.ts) <= lim.window_us);
        cx.shared.stats.table(Table::SynRetry).expired.fetch_add(expired, Relaxed);
    }

    /// Ends every detection (end of input or shutdown). Attempts still
    /// unanswered count as failed: the input shows no answer.
    fn end(&mut self, reason: EndReason, src_table: &Sources, cx: &Ctx) {
        let lim = self.lim;
        for (key, e) in self.map.iter_mut() {
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(reason), cx, cx.now));
            } else if e.win_len >= lim.min {
                try_confirm(key, e, lim, &self.claims, src_table, cx, cx.now, Some(reason));
            }
        }
        self.map.clear();
        self.first.clear();
        self.second.clear();
        self.pending.clear();
    }
}

impl Detector for SynRetry {
    fn table(&self) -> Table {
        Table::SynRetry
    }
    fn interest(&self) -> u16 {
        class::TCP_ATTEMPT | class::TCP_SYN_ACK | class::TCP_RST | class::ICMP
    }
    /// Keys tracked, in both tiers.
    fn len(&self) -> usize {
        self.first.len() + self.second.len() + self.map.len()
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, sources: &Sources, cx: &Ctx) {
        self.packet(p, sensor, sources, cx);
    }
    fn on_tick(&mut self, sources: &Sources, cx: &Ctx) {
        self.tick(sources, cx);
    }
    fn flush(&mut self, reason: EndReason, sources: &Sources, cx: &Ctx) {
        self.end(reason, sources, cx);
    }
}

/// Confirms the detection if it is over the threshold and its source is not
/// a scanner. With `end` set the input is over, so the first event is also
/// the final one.
#[allow(clippy::too_many_arguments)]
fn try_confirm(
    key: &Key,
    e: &mut Entry,
    lim: Limits,
    claims: &Claims,
    src_table: &Sources,
    cx: &Ctx,
    now: i64,
    end: Option<EndReason>,
) {
    if e.confirmed || e.win_len < lim.min || e.rounds(now, lim.settle_us, end.is_some()) < lim.min_distinct || e.flood {
        return;
    }
    if e.peak_burst >= lim.flood_pps {
        // A retry loop is slow (a stack backs off for seconds, a program
        // retries on a timer); this many SYNs in one second is a flood.
        e.flood = true;
        cx.shared.stats.syn_retry_suppressed_flood.fetch_add(1, Relaxed);
        return;
    }
    // A brute force's connections that went unanswered (a server shedding
    // load) are the brute force's, not a client retrying a dead service.
    if claims.held(key.src, key.dport) {
        return;
    }
    // The scan check is one lookup; the threshold walks the window. A
    // scanner already counted as suppressed needs only the first.
    let scanner = src_table.scans_beyond(key.src, lim.max_ports, lim.max_hosts);
    if scanner && e.suppressed {
        return;
    }
    if !e.over_threshold(lim.min, lim.window_us, now, lim.settle_us, end.is_some()) {
        return;
    }
    // A mass scanner's probes (no client builds them) repeated: the scan's
    // retries, for the scan detectors.
    if e.tools != 0 {
        if !e.suppressed {
            cx.shared.stats.syn_retry_suppressed_scan_tool.fetch_add(1, Relaxed);
        }
        e.suppressed = true;
        return;
    }
    // The service answered most attempts: it is up, and the few that got
    // nothing were lost on the way, not a program retrying a dead service.
    let answered = f64::from(e.succeeded);
    if answered > 0.0 && answered / (answered + f64::from(e.failed_attempts)) >= lim.max_answered_share {
        if !e.suppressed {
            cx.shared.stats.syn_retry_suppressed_answered.fetch_add(1, Relaxed);
        }
        e.suppressed = true;
        return;
    }
    // A trojan or backdoor port: known_probe names the prober (a worm's
    // connect() retried), which is not a forgotten client.
    let trojan =
        cx.shared.ports.lookup(6, key.dport).is_some_and(|i| i.category == "trojan" || i.category == "backdoor");
    if trojan && lim.defer_trojan {
        e.suppressed = true;
        cx.shared.stats.syn_retry_suppressed_known_probe.fetch_add(1, Relaxed);
        return;
    }
    if scanner {
        // Re-checked on later attempts: the scan may age out while the
        // retries go on. Counted once per entry.
        e.suppressed = true;
        cx.shared.stats.syn_retry_suppressed_scan.fetch_add(1, Relaxed);
        return;
    }
    e.confirmed = true;
    e.last_emit_us = now;
    let status = if end.is_some() { "final" } else { "new" };
    cx.emit(render(key, e, status, end, cx, now));
}

/// Whether the sensor has seen the destination send: a SYN reached it after
/// it had sent something, or it answered one of these attempts.
fn return_path_seen(e: &Entry) -> bool {
    e.dst_spoke || e.succeeded > 0 || e.rst > 0
}

fn rejected_by(e: &Entry) -> &'static str {
    if e.rst > 0 {
        "rst"
    } else if e.icmp > 0 {
        "icmp"
    } else {
        "none"
    }
}

fn render(
    key: &Key,
    e: &Entry,
    status: &str,
    end: Option<EndReason>,
    cx: &Ctx,
    now: i64,
) -> crate::output::event::EventLine {
    let id = detection_id(
        KIND,
        &[&ip_bytes(&key.src), &ip_bytes(&key.dst), &key.dport.to_be_bytes(), &e.first_us.to_be_bytes()],
    );
    let service = cx.service(6, key.dport);
    let details = json!({
        "id": id,
        "incident": incident_id(&key.src, &key.dst, 6, key.dport),
        "status": status,
        "end_reason": end.map(EndReason::name),
        "attempts": e.failed_attempts,
        "retransmissions": e.retransmissions,
        "rapid_repeats": e.rapid_repeats,
        "ttl_expired": e.ttl_expired,
        "succeeded": e.succeeded,
        "source_ports": e.ports.estimate(),
        "first_source_port": e.first_sport,
        "last_source_port": e.last_sport,
        "payload_bytes": e.payload_bytes,
        "answered": e.rst > 0 || e.succeeded > 0,
        "rejected_by": rejected_by(e),
        "rejections": {"rst": e.rst, "icmp": e.icmp, "icmp_from": e.icmp_from.map(|a| a.to_string())},
        "ttl": {"min": e.ttl_min, "max": e.ttl_max},
        "return_path_seen": if e.dst_home { json!(return_path_seen(e)) } else { Value::Null },
        "service": service,
        "direction": cx.direction(key.src, key.dst),
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let flow = Flow { src: key.src, dst: key.dst, proto: 6, ports: Some((e.first_sport, key.dport)) };
    EventBuilder::new(KIND, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(key.src, key.dst), Some((6, key.dport)), Fact::RetryingClient))
        .summary(summary(key, e, service))
        .details(KIND, details)
}

/// One sentence an analyst can act on.
fn summary(key: &Key, e: &Entry, service: Option<&str>) -> String {
    let svc = service.map(|s| format!(" ({s})")).unwrap_or_default();
    let target = match key.dst {
        IpAddr::V6(a) => format!("[{a}]:{}", key.dport),
        IpAddr::V4(a) => format!("{a}:{}", key.dport),
    };
    let span = secs(e.last_us - e.first_us);
    // With no packet from the target in view, "failed" is more than the
    // capture shows: the attempts drew no answer *that was captured*.
    let unseen = e.dst_home && !return_path_seen(e) && e.succeeded == 0;
    let what = if e.failed_attempts <= 1 {
        let end = if unseen { "no answer captured" } else { "never answered" };
        format!(
            "{} retransmitted one SYN to TCP {target}{svc} {} times over {span} s (same source port {}): the stack's back-off, {end}",
            key.src, e.retransmissions, e.first_sport
        )
    } else {
        let ports = e.ports.estimate();
        let sport_note =
            if ports >= u64::from(e.failed_attempts) { "each from a new source port" } else { "reusing source ports" };
        let parallel =
            if e.overlapped > 0 { format!(", {} of them beside an earlier one", e.overlapped) } else { String::new() };
        let kind = if unseen { "unanswered" } else { "failed" };
        format!(
            "{} made {} {kind} connection attempts ({} retransmissions) to TCP {target}{svc} over {span} s, {sport_note}{parallel}",
            key.src, e.failed_attempts, e.retransmissions
        )
    };
    let answer = match rejected_by(e) {
        "rst" => "; the target answers RST: nothing listens there, yet the client keeps trying".to_string(),
        "icmp" => {
            format!("; rejected by ICMP unreachable from {}", e.icmp_from.map(|a| a.to_string()).unwrap_or_default())
        }
        // Confirmed on failures, then another attempt drew a SYN-ACK: the
        // service is there some of the time (realworld mal_asyncrat_2).
        _ if e.succeeded > 0 => format!(
            "; {} other attempt(s) were answered (SYN-ACK): the service answers only some of the time",
            e.succeeded
        ),
        _ if e.dst_home && !return_path_seen(e) => format!(
            "; no answer was captured, but the return path is not visible to the sensor (no packet from {} was captured), so whether it answered is unknown",
            key.dst
        ),
        _ => "; nothing came back: the SYNs are dropped (firewall) or the host is gone".to_string(),
    };
    let payload = if e.payload_bytes > 0 {
        format!("; the SYNs carried {} payload bytes, unusual outside scanners and fingerprinting", e.payload_bytes)
    } else {
        String::new()
    };
    format!("{what}{answer}{payload}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Rules;

    use crate::decode::summary::{IcmpInfo, Quoted};

    const CLIENT: &str = "198.51.100.7";
    const SERVER: &str = "192.0.2.10";

    use crate::detect::testrig::s;

    type Rig = crate::detect::testrig::Rig<SynRetry>;

    fn rig(tweak: impl FnOnce(&mut Rules)) -> Rig {
        Rig::with(tweak, |_, r| {
            SynRetry::new(&r.syn_retry, r.syn_retry.max_tracked, r.syn_retry.max_probation, r.general.update_interval_s)
        })
    }

    #[allow(clippy::too_many_arguments)] // mirrors the TCP header fields a test sets
    fn tcp(ts: f64, src: &str, dst: &str, sport: u16, dport: u16, flags: u16, seq: u32, ack: u32) -> PacketSummary {
        let mut p = crate::decode::summary::testutil::tcp(s(ts), src, dst, (sport, dport), flags, seq, ack);
        if let Some(ip) = &mut p.ip {
            ip.ttl = 52;
        }
        p
    }

    fn syn(ts: f64, sport: u16, isn: u32) -> PacketSummary {
        tcp(ts, CLIENT, SERVER, sport, 158, tcpflag::SYN, isn, 0)
    }

    #[test]
    fn attempts_at_a_flood_rate_are_left_to_syn_flood() {
        let mut r = rig(|_| {});
        // 200 attempts in 0.2 s (suricata-verify's syn-flood test): no retry loop.
        for i in 0..200u16 {
            r.feed(syn(f64::from(i) * 0.001, 40000 + i, 1000 + u32::from(i)));
        }
        r.tick(5.0);
        assert!(r.end().is_empty());
        assert_eq!(r.shared.stats.syn_retry_suppressed_flood.load(Relaxed), 1);
        // The same attempts at a retry loop's pace still fire.
        let mut r = rig(|_| {});
        for i in 0..20u16 {
            r.feed(syn(f64::from(i) * 2.0, 40000 + i, 1000 + u32::from(i)));
        }
        let ev = r.end();
        assert_eq!(ev.iter().filter(|e| e["syn_retry"]["status"] == "final").count(), 1, "{ev:?}");
    }

    #[test]
    fn unanswered_attempts_with_new_ports_fire_once_new_then_final() {
        let mut r = rig(|_| {});
        for i in 0..5u16 {
            r.feed(syn(f64::from(i) * 30.0, 1024 + i, 1000 * u32::from(i)));
        }
        let live = r.events();
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0]["syn_retry"]["status"], "new");
        let fin = r.end();
        assert_eq!(fin.len(), 1);
        let d = &fin[0]["syn_retry"];
        assert_eq!(d["status"], "final");
        assert_eq!(d["attempts"], 5);
        assert_eq!(d["retransmissions"], 0);
        assert_eq!(d["source_ports"], 5);
        assert_eq!(d["answered"], false);
        assert_eq!(d["rejected_by"], "none");
        assert_eq!(d["direction"], "inbound");
        assert_eq!(d["id"], live[0]["syn_retry"]["id"]);
        assert_eq!(fin[0]["dest_port"], 158);
    }

    #[test]
    fn a_claimed_brute_force_is_not_a_retry_loop() {
        let claims = Arc::new(Claims::default());
        claims.claim(CLIENT.parse().unwrap(), 158, 0);
        let mut r =
            Rig::with(|_| {}, |_, rules| SynRetry::new(&rules.syn_retry, 1000, 1000, 60.0).with_claims(claims.clone()));
        for i in 0..5u16 {
            r.feed(syn(f64::from(i) * 2.0, 3000 + i, u32::from(i)));
        }
        assert!(r.end().is_empty(), "the unanswered attempts are brute_force's");
        let mut r = rig(|_| {});
        for i in 0..5u16 {
            r.feed(syn(f64::from(i) * 2.0, 3000 + i, u32::from(i)));
        }
        assert_eq!(r.end().len(), 2, "unclaimed: new and final");
    }

    #[test]
    fn a_confirmed_loop_whose_later_attempt_is_answered_says_so() {
        let mut r = rig(|_| {});
        // Attempt A fails (retransmitted, then abandoned); attempt B is
        // retransmitted and confirms the loop, then draws a SYN-ACK.
        r.feed(syn(0.0, 40000, 555));
        r.feed(syn(3.0, 40000, 555));
        r.feed(syn(10.0, 40001, 777));
        r.feed(syn(13.0, 40001, 777));
        r.tick(16.5);
        r.feed(tcp(17.0, SERVER, CLIENT, 158, 40001, tcpflag::SYN | tcpflag::ACK, 9, 778));
        let ev = r.end();
        let last = ev.last().expect("confirmed before the answer");
        let summary = last["summary"].as_str().unwrap();
        assert!(summary.contains("1 other attempt(s) were answered"), "{summary}");
        assert!(!summary.contains("nothing came back"), "{summary}");
    }

    fn syn_ack(ts: f64, sport: u16, isn: u32) -> PacketSummary {
        tcp(ts, SERVER, CLIENT, 158, sport, tcpflag::SYN | tcpflag::ACK, 9, isn.wrapping_add(1))
    }

    #[test]
    fn parallel_attempts_while_the_network_is_down_are_one_effort() {
        // Realworld mal_asyncrat_2 / mal_agenttesla: at boot a host opens
        // three connections at once, each retransmitted while the others
        // are, then a later one is answered. No retry loop.
        let boot = |answered: bool| {
            let mut r = rig(|_| {});
            for t in [0.0, 3.0, 9.0] {
                for (i, sport) in [40000u16, 40001, 40002].into_iter().enumerate() {
                    r.feed(syn(t + 0.1 * i as f64, sport, 100 + u32::from(sport)));
                }
            }
            r.tick(25.0);
            r.feed(syn(30.0, 40010, 5));
            if answered {
                r.feed(syn_ack(30.05, 40010, 5));
            }
            r.tick(40.0);
            r.end()
        };
        assert!(boot(true).is_empty(), "{:?}", boot(true));
        // Unanswered, the later attempt is a retry after the first effort
        // failed: that is a loop.
        let ev = boot(false);
        assert_eq!(ev.iter().filter(|e| e["syn_retry"]["status"] == "final").count(), 1, "{ev:?}");
        // The same three attempts one after another (each abandoned before
        // the next) are three rounds.
        let mut r = rig(|_| {});
        for (i, sport) in [40000u16, 40001, 40002].into_iter().enumerate() {
            let t = 10.0 * i as f64;
            r.feed(syn(t, sport, u32::from(sport)));
            r.feed(syn(t + 3.0, sport, u32::from(sport)));
        }
        assert_eq!(r.end().len(), 2, "new and final");
    }

    #[test]
    fn a_service_that_answers_most_attempts_is_no_retry_loop() {
        let feed = |r: &mut Rig| {
            // A fails, B and C are answered, D fails: half answered.
            r.feed(syn(0.0, 40000, 1));
            r.feed(syn(3.0, 40000, 1));
            r.feed(syn(10.0, 40001, 2));
            r.feed(syn_ack(10.05, 40001, 2));
            r.feed(syn(20.0, 40002, 3));
            r.feed(syn_ack(20.05, 40002, 3));
            r.feed(syn(30.0, 40003, 4));
            r.feed(syn(33.0, 40003, 4));
            r.tick(40.0);
        };
        let mut r = rig(|_| {});
        feed(&mut r);
        assert!(r.end().is_empty());
        assert_eq!(r.shared.stats.syn_retry_suppressed_answered.load(Relaxed), 1);
        let mut r = rig(|rules| rules.syn_retry.max_answered_share = 1.0);
        feed(&mut r);
        assert_eq!(r.end().len(), 2, "max_answered_share = 1 reports it");
    }

    #[test]
    fn a_mass_scanners_repeated_probes_are_left_to_the_scan_detectors() {
        let tools = ToolTable::parse("scanners.toml", crate::config::BUILTIN_SCANNERS_TOML).unwrap();
        // masscan: window 1024, no options, no DF, TTL from 255, one source
        // port, a new ISN per probe (realworld sddos_amp.dns: 46.148.20.13).
        let probe = |t: f64, isn: u32| {
            let mut p = syn(t, 60000, isn);
            if let L4::Tcp(tcp) = &mut p.l4 {
                tcp.window = 1024;
                tcp.opts = Default::default();
            }
            if let Some(ip) = &mut p.ip {
                ip.ttl = 243;
                ip.df = false;
            }
            p
        };
        let run = |tools: &ToolTable| {
            let mut r =
                Rig::with(|_| {}, |_, rules| SynRetry::new(&rules.syn_retry, 1000, 1000, 60.0).with_scan_tools(tools));
            for i in 0..6u32 {
                r.feed(probe(f64::from(i) * 4.0, 7 + i * 7919));
            }
            let ev = r.end();
            (ev, r.shared.stats.syn_retry_suppressed_scan_tool.load(Relaxed))
        };
        let (ev, n) = run(&tools);
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(n, 1);
        // Without the fingerprints the same probes read as a loop.
        let (ev, n) = run(&ToolTable::default());
        assert_eq!((ev.len(), n), (2, 0));
        // hping3 is a packet crafter: its SYNs may be anything, a loop too.
        let mut r =
            Rig::with(|_| {}, |_, rules| SynRetry::new(&rules.syn_retry, 1000, 1000, 60.0).with_scan_tools(&tools));
        for i in 0..6u16 {
            let mut p = syn(f64::from(i) * 4.0, 3000 + i, u32::from(i));
            if let L4::Tcp(tcp) = &mut p.l4 {
                tcp.window = 512;
                tcp.opts = Default::default();
            }
            if let Some(ip) = &mut p.ip {
                ip.ttl = 64;
                ip.df = false;
            }
            r.feed(p);
        }
        assert_eq!(r.end().len(), 2, "hping3's SYNs still make a loop");
    }

    #[test]
    fn retransmitted_then_answered_never_fires() {
        let mut r = rig(|_| {});
        for t in [0.0, 1.0, 3.0, 7.0] {
            r.feed(syn(t, 40000, 555));
        }
        r.feed(tcp(7.05, SERVER, CLIENT, 158, 40000, tcpflag::SYN | tcpflag::ACK, 9, 556));
        r.tick(20.0);
        assert!(r.end().is_empty());
    }

    #[test]
    fn crafted_probes_are_not_retransmissions() {
        // nmap -O style: the same port and ISN re-sent 0.1 s apart, and SYN+FIN.
        let mut r = rig(|_| {});
        for i in 0..4u16 {
            let mut p = syn(f64::from(i) * 0.1, 53953, 7);
            if let Some(ip) = &mut p.ip {
                ip.ip_id = 1000 + u32::from(i) * 7919; // nmap picks a new IP ID each time
            }
            r.feed(p);
            r.feed(tcp(f64::from(i) * 0.1, CLIENT, SERVER, 53951, 158, tcpflag::SYN | tcpflag::FIN, 7, 0));
        }
        assert!(r.end().is_empty());
        // The same repeats at a stack's back-off are retransmissions (shown
        // when one attempt's back-off is asked for).
        let mut r = rig(|r| r.syn_retry.min_distinct_attempts = 1);
        for t in [0.0, 1.0, 3.0] {
            r.feed(syn(t, 53953, 7));
        }
        assert_eq!(r.end()[0]["syn_retry"]["retransmissions"], 2);
    }

    #[test]
    fn ttl_limited_syns_answered_by_time_exceeded_are_not_attempts() {
        // tcptraceroute: SYNs to one port, each answered by a router's time-exceeded.
        let mut r = rig(|_| {});
        for i in 0..5u16 {
            let t = f64::from(i) * 0.5;
            r.feed(syn(t, 40000 + i, 100 + u32::from(i)));
            let mut p = PacketSummary::new(s(t + 0.001), 70, 70);
            p.ip = Some(crate::decode::summary::testutil::ipv4("198.51.100.1", CLIENT, 1));
            p.l4 = L4::Icmp(IcmpInfo {
                v6: false,
                icmp_type: 11,
                code: 0,
                echo: None,
                quoted: Some(Quoted {
                    src: CLIENT.parse().unwrap(),
                    dst: SERVER.parse().unwrap(),
                    proto: 6,
                    ttl: 1,
                    ip_id: 1,
                    sport: 40000 + i,
                    dport: 158,
                    has_ports: true,
                    tcp_seq: Some(100 + u32::from(i)),
                    icmp_type: None,
                }),
            });
            r.feed(p);
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn one_attempt_and_its_own_back_off_is_not_a_retry_loop() {
        let mut r = rig(|_| {});
        for t in [0.0, 3.0, 9.0] {
            r.feed(syn(t, 40000, 555));
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn unanswered_retransmissions_count_at_end_of_input() {
        let mut r = rig(|r| r.syn_retry.min_distinct_attempts = 1);
        for t in [0.0, 3.0, 9.0] {
            r.feed(syn(t, 40000, 555));
        }
        let ev = r.end();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["syn_retry"]["attempts"], 1);
        assert_eq!(ev[0]["syn_retry"]["retransmissions"], 2);
        assert_eq!(ev[0]["syn_retry"]["end_reason"], "end_of_input");
    }

    #[test]
    fn rst_and_icmp_rejections_are_reported() {
        let mut r = rig(|_| {});
        for i in 0..3u16 {
            let t = f64::from(i);
            r.feed(syn(t, 2000 + i, 7 + u32::from(i)));
            r.feed(tcp(t + 0.001, SERVER, CLIENT, 158, 2000 + i, tcpflag::RST | tcpflag::ACK, 0, 8 + u32::from(i)));
        }
        let ev = r.end();
        assert_eq!(ev[0]["syn_retry"]["rejected_by"], "rst");
        assert_eq!(ev[0]["syn_retry"]["answered"], true);
        assert_eq!(ev[0]["syn_retry"]["rejections"]["rst"], 3);

        let mut r = rig(|_| {});
        for i in 0..3u16 {
            let t = f64::from(i);
            r.feed(syn(t, 2000 + i, 7 + u32::from(i)));
            let mut p = PacketSummary::new(s(t + 0.001), 70, 70);
            p.ip = Some(crate::decode::summary::testutil::ipv4("192.0.2.1", CLIENT, 1));
            p.l4 = L4::Icmp(IcmpInfo {
                v6: false,
                icmp_type: 3,
                code: 13,
                echo: None,
                quoted: Some(Quoted {
                    src: CLIENT.parse().unwrap(),
                    dst: SERVER.parse().unwrap(),
                    proto: 6,
                    ttl: 51,
                    ip_id: 1,
                    sport: 2000 + i,
                    dport: 158,
                    has_ports: true,
                    tcp_seq: Some(7 + u32::from(i)),
                    icmp_type: None,
                }),
            });
            r.feed(p);
        }
        let ev = r.end();
        assert_eq!(ev[0]["syn_retry"]["rejected_by"], "icmp");
        assert_eq!(ev[0]["syn_retry"]["answered"], false);
        assert_eq!(ev[0]["syn_retry"]["rejections"]["icmp_from"], "192.0.2.1");
    }

    #[test]
    fn a_port_scan_with_retries_is_not_a_retry_loop() {
        let mut r = rig(|_| {});
        let mut t = 0.0;
        for round in 0..3 {
            for port in 1..=100u16 {
                t += 0.01;
                r.feed(tcp(t, CLIENT, SERVER, 45000, port, tcpflag::SYN, 99 + round, 0));
            }
        }
        r.tick(t + 10.0);
        assert!(r.end().is_empty());
        assert!(r.shared.stats.syn_retry_suppressed_scan.load(Relaxed) > 0);
    }

    #[test]
    fn attempts_spread_wider_than_the_window_do_not_fire() {
        let mut r = rig(|rules| rules.syn_retry.window_s = 60.0);
        for i in 0..4u16 {
            r.feed(syn(f64::from(i) * 50.0, 3000 + i, u32::from(i)));
            r.tick(f64::from(i) * 50.0 + 1.0);
        }
        assert!(r.end().is_empty());
    }

    #[test]
    fn a_spoofed_flood_churns_probation_only_and_the_cap_is_counted_not_exceeded() {
        let mut r = rig(|rules| (rules.syn_retry.max_tracked, rules.syn_retry.max_probation) = (10, 10));
        // A real retry client: two SYNs so far.
        r.feed(syn(0.0, 1024, 1));
        r.feed(syn(0.5, 1025, 2));
        for i in 0..50u16 {
            let src = format!("203.0.113.{}", i + 1);
            r.feed(tcp(1.0 + f64::from(i) * 0.001, &src, SERVER, 5000, 80, tcpflag::SYN, 1, 0));
        }
        // The client's two SYNs in probation's second segment, which
        // one-off SYNs never touch, and a full first segment of the newest
        // ten flood keys: the oldest forty made room, one at a time.
        assert_eq!((r.det.map.len(), r.det.second.len(), r.det.first.len()), (0, 1, 10));
        let t = r.shared.stats.table(Table::SynRetry);
        assert_eq!(t.evicted.load(Relaxed), 40);
        assert_eq!((t.cap_hits.load(Relaxed), t.lost_detections.load(Relaxed)), (0, 0), "one-off SYNs are no loss");
        // The client survives the flood and is confirmed by its third attempt.
        r.feed(syn(30.0, 1026, 3));
        r.tick(40.0);
        let ev = r.end();
        let fin: Vec<_> = ev.iter().filter(|e| e["syn_retry"]["status"] == "final").collect();
        assert_eq!(fin.len(), 1, "{ev:?}");
        assert_eq!(fin[0]["syn_retry"]["attempts"], 3);
    }

    #[test]
    fn a_repeating_flood_cannot_push_out_a_confirmed_loop_and_its_losses_are_counted() {
        let mut r = rig(|rules| rules.syn_retry.max_tracked = 8);
        // The client's loop is confirmed first.
        for i in 0..4u16 {
            r.feed(syn(f64::from(i) * 3.0, 1024 + i, u32::from(i)));
        }
        r.tick(20.0);
        assert!(r.events().iter().any(|e| e["syn_retry"]["status"] == "new"));
        // An adversarial flood that repeats every spoofed key twice (three
        // attempts each: what promotes a key) fills the promoted tier.
        let mut t = 21.0;
        for i in 0..200u16 {
            let src = format!("198.51.100.{}", i + 1);
            for round in 0..3u16 {
                t += 0.01;
                r.feed(tcp(t, &src, SERVER, 6000 + round, 80, tcpflag::SYN, 7 + u32::from(round), 0));
            }
        }
        assert!(r.det.map.len() <= 8, "the cap holds: {}", r.det.map.len());
        let c = r.shared.stats.table(Table::SynRetry);
        let lost = c.lost_detections.load(Relaxed);
        assert!(lost > 0, "keys with two attempts pushed out or refused are lost detections");
        assert!(c.evicted.load(Relaxed) + c.cap_hits.load(Relaxed) >= lost);
        // The confirmed loop is still tracked: one more attempt updates it
        // and the end reports all five.
        r.feed(syn(t + 1.0, 1030, 9));
        let ev = r.end();
        let fin: Vec<_> = ev.iter().filter(|e| e["syn_retry"]["status"] == "final" && e["src_ip"] == CLIENT).collect();
        assert_eq!(fin.len(), 1, "{ev:?}");
        assert_eq!(fin[0]["syn_retry"]["attempts"], 5);
    }

    #[test]
    fn a_flood_that_repeats_each_key_once_never_reaches_the_tier_and_a_loop_inside_it_is_confirmed() {
        // The probation is set-associative (8-way buckets): 8,000 leave every
        // bucket of the second segment room for the 300 keys.
        let mut r = rig(|rules| (rules.syn_retry.max_tracked, rules.syn_retry.max_probation) = (4, 8_000));
        let forged = |i: u32| format!("198.51.{}.{}", 100 + i / 250, 1 + i % 250);
        // 300 forged keys, each sent twice 1 s apart, 100 new keys a second,
        // around a client retrying every second.
        let mut fed = 0;
        for step in 0..400u32 {
            let t = f64::from(step) * 0.01;
            if step < 300 {
                r.feed(tcp(t, &forged(step), SERVER, 6000, 80, tcpflag::SYN, 7, 0));
            }
            if let Some(k) = step.checked_sub(100).filter(|k| *k < 300) {
                r.feed(tcp(t + 0.005, &forged(k), SERVER, 6001, 80, tcpflag::SYN, 8, 0));
            }
            if step % 100 == 50 && fed < 3 {
                r.feed(syn(t, 1024 + fed as u16, fed));
                fed += 1;
            }
        }
        assert_eq!(fed, 3);
        // Forged keys hold two SYNs at most: none took a tier slot.
        assert_eq!(r.det.map.len(), 1, "the client's key alone was promoted");
        r.tick(10.0);
        let ev = r.end();
        let fin: Vec<_> = ev.iter().filter(|e| e["syn_retry"]["status"] == "final").collect();
        assert_eq!(fin.len(), 1, "{ev:?}");
        assert_eq!(fin[0]["src_ip"], CLIENT);
        assert_eq!(fin[0]["syn_retry"]["attempts"], 3);
        let c = r.shared.stats.table(Table::SynRetry);
        assert_eq!((c.cap_hits.load(Relaxed), c.lost_detections.load(Relaxed)), (0, 0));

        // A second segment too small for a second of the flood loses the
        // forged two-attempt keys it pushes out, and counts each.
        let mut r = rig(|rules| rules.syn_retry.max_probation = 40);
        for i in 0..100u32 {
            let t = f64::from(i) * 0.01;
            r.feed(tcp(t, &forged(i), SERVER, 6000, 80, tcpflag::SYN, 7, 0));
            r.feed(tcp(t + 0.005, &forged(i), SERVER, 6001, 80, tcpflag::SYN, 8, 0));
        }
        let c = r.shared.stats.table(Table::SynRetry);
        // 20 slots, rounded up to three whole buckets of 7.
        let held = r.det.second.len() as u64;
        assert!((14..=21).contains(&held), "{held}");
        assert_eq!(c.lost_detections.load(Relaxed), 100 - held, "two attempts each, pushed out");
    }

    #[test]
    fn updates_are_rate_limited_and_expiry_ends_the_detection() {
        let mut r = rig(|_| {});
        for i in 0..20u16 {
            let t = f64::from(i) * 10.0;
            r.feed(syn(t, 1024 + i, u32::from(i)));
            r.tick(t + 0.5);
        }
        let ev = r.events();
        let statuses: Vec<&str> = ev.iter().map(|e| e["syn_retry"]["status"].as_str().unwrap()).collect();
        // new at ~23 s; updates at most once per 60 s over the remaining ~170 s.
        assert_eq!(statuses.iter().filter(|s| **s == "new").count(), 1, "{statuses:?}");
        let updates = statuses.iter().filter(|s| **s == "update").count();
        assert!((1..=3).contains(&updates), "{statuses:?}");
        r.tick(190.0 + 601.0);
        let ev = r.events();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["syn_retry"]["end_reason"], "expired");
        assert_eq!(ev[0]["syn_retry"]["attempts"], 20);
    }
}

/// The rules section's own checks (the loader's are in `crate::rules`).
#[cfg(test)]
mod rules_tests {
    use super::SynRetryRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges_and_order() {
        let r = SynRetryRules::parse("x", "[syn_retry]\nmin_attempts = 5\nwindow_s = 30\n").unwrap();
        assert_eq!((r.min_attempts, r.window_s, r.settle_s), (5, 30.0, 3.0));
        for bad in [
            "[syn_retry]\nmin_attempts = 1",
            "[syn_retry]\nmin_attempts = -5",
            "[syn_retry]\nwindow_s = 0",
            "[syn_retry]\nwindow_s = 86401",
            "[syn_retry]\nwindow_s = nan",
            "[syn_retry]\nsettle_s = 61",
            "[syn_retry]\nsettle_s = -1",
            "[syn_retry]\nmax_dest_ports_per_source = 0",
            "[syn_retry]\nmax_tracked = 0",
            "[syn_retry]\nmax_tracked = 99999999999",
            "[syn_retry]\nmin_atempts = 3",
        ] {
            let e = SynRetryRules::parse("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(2), "{bad}: {e}");
            assert!(e.to_string().starts_with("rules/picket.toml:2: "), "{e}");
        }
        let e = SynRetryRules::parse("f", "[syn_retry]\nwindow_s = 2\nsettle_s = 3\n").unwrap_err();
        assert_eq!(e.to_string(), "f:3: [syn_retry] settle_s: settle_s (3) must be less than window_s (2)");
        let e = SynRetryRules::parse("f", "[syn_retry]\nwindow_s = 2\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("[syn_retry] window_s"), "the key the file set: {e}");
    }
}
