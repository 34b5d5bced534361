//! `periodic_probe` and `source_port_sequence` (SIGNATURES.md sections 1 and
//! 2): one table of attempts per (source, destination, protocol, port) feeds
//! both detections.
//!
//! - An *attempt* is a TCP connection attempt (a SYN a real stack would send;
//!   a retransmission, same source port and ISN as a recent attempt, is not a
//!   new attempt), a UDP datagram, or an ICMP echo request (port 0). Segments
//!   inside established connections are not attempts: only initiations count.
//! - Answers are counted: a SYN-ACK for a recent attempt, a UDP datagram back
//!   from the port to a recent source port, an echo reply. UDP and ICMP
//!   exchanges answered more often than not (NTP polls, DNS, monitoring
//!   pings) are services at work, not probes, and never fire
//!   `periodic_probe`; nor do TCP bursts that are mostly answered (a browser
//!   loading pages). Periodic TCP connections that succeed still fire (a
//!   beacon); the event says they were answered.
//! - `periodic_probe`: the newest `RING` attempt times are analysed by
//!   `cadence` (period folding, jitter, gaps, bursts, score), at most once per
//!   second of packet time per entry. Confirmed when at least `min_cycles`
//!   attempts sit on a period of at least `min_period_s` with jitter within
//!   `max_jitter_ratio` of it and `min_regular_share` of the intervals fitting,
//!   or when `min_bursts` bursts are seen. After that every new attempt is
//!   classified against the period, so cycles, missed probes and gaps count
//!   over the whole detection, not only the ring.
//! - `source_port_sequence`: counted incrementally per attempt: deltas between
//!   consecutive source ports (step 1..=16 counted), wraps (a drop back, e.g.
//!   from ~5000 to 1024), the port range. Confirmed when at least
//!   `min_attempts` attempts show `min_step_share` of their deltas (wraps
//!   aside) equal to one step of at most `max_step`, with at most one wrap
//!   per four deltas. Keyed on the destination and port, so a browser's many
//!   connections to many servers never form a sequence.
//!
//! - `verdict` (SIGNATURES.md section 1, "the verdict a person would
//!   write"): when at least two of the three views of one (source,
//!   destination, protocol, port) hold: a confirmed `periodic_probe`, a
//!   confirmed `source_port_sequence`, and (TCP) attempts never answered,
//!   one combined event says what an analyst would conclude: a
//!   misconfigured client retrying a dead service (not a scan), a client
//!   retrying in bursts, an answered beacon, or, when the wire cannot tell
//!   (an inside host calling out, a trojan or backdoor port, no home net),
//!   `beacon_or_misconfigured_client`: a beacon to a dead C2 or a
//!   misconfigured client, said as such. It names the service from
//!   `rules/ports.toml` and the key's share of the packets toward the home
//!   net since its first attempt. Every one of these events, and
//!   `syn_retry`'s, carries the same `incident` id for the key.
//! - A (source, TCP port) that `brute_force` claims (its short sessions to a
//!   login service) starts none of these detections: a guessing tool's
//!   connections come on a rhythm from consecutive ports, and are neither a
//!   beacon nor a client retrying (issue 13).
//!
//! State, in two fair tiers as in `syn_retry` (`detect::fair`): `first`
//! (probation) holds a key's first attempt, and a full one lets its oldest
//! go; `map` the full entry (a ring of 64 attempts) from its second, where a
//! clock hand picks the victim when full: a confirmed detection is never
//! taken and a key with more attempts outlives one with fewer; a victim or
//! a refused key is a lost detection (`lost_detections`). Capped at
//! `[periodic_probe] max_probation` and `max_tracked`, split between workers. Entries expire
//! after `idle_s` without an attempt (checked every tenth of it,
//! `sweep_every`), which ends their detections.

use super::brute_force::Claims;
use super::cadence::{self, Cadence, Fold, Params};
use super::sources::Sources;
use crate::decode::summary::{L4, PacketSummary};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::fair::{Probation, Tier, Weighted};
use crate::detect::keys::{site_local, sweep_every, unicast};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, incident_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

crate::rules_section! {
    /// SIGNATURES.md sections 1 and 2: SYNs (new attempts, not retransmissions),
    /// UDP datagrams or ICMP echoes from one source to one destination and port,
    /// repeating on a period (the 30 s pcmail-srv client) or in bursts (PowWow).
    pub struct PeriodicProbeRules["periodic_probe"] {
        /// SIGNATURES.md section 1: periodicity is half of "a forgotten client, not a scan"
        enabled: bool = true;
        /// SIGNATURES.md section 1: attempts on the period before it is called periodic
        min_cycles: u32 = 5, ints(3, 64);
        /// SIGNATURES.md section 1: jitter (MAD of the folded intervals) at most 10% of the period
        max_jitter_ratio: f64 = 0.1, floats(0.0, 1.0);
        /// SIGNATURES.md section 2: faster is a tool's default interval (hping3 -i 1, nmblookup and traceroute retries), a stack's back-off or a page load, not a polling client
        min_period_s: f64 = 1.5, above(0.0, 86_400.0);
        /// SIGNATURES.md section 1: an interval within 15% of k periods counts as k cycles (robust to a missed probe)
        fold_tolerance: f64 = 0.15, above(0.0, 0.45);
        /// SIGNATURES.md section 1: silences longer than 3 periods are gaps (the five-minute reboot)
        gap_periods: u32 = 3, ints(2, 16);
        /// SIGNATURES.md section 1: at least half the intervals (gaps aside) must fit the period
        min_regular_share: f64 = 0.5, floats(0.0, 1.0);
        /// SIGNATURES.md section 1: probes seen / probes the period predicts; a lost probe is fine, a period that needs many is not
        min_coverage: f64 = 0.75, floats(0.0, 1.0);
        /// SIGNATURES.md section 1: a pause is at least 3x the longest interval inside a burst
        burst_break_ratio: f64 = 3.0, floats(1.5, 1000.0);
        /// SIGNATURES.md section 1: PowWow: 5 to 8 tries within about 45 s
        max_burst_spread_s: f64 = 60.0, above(0.0, 3600.0);
        /// SIGNATURES.md section 1: attempts that make a burst
        min_burst_size: u32 = 3, ints(2, 64);
        /// SIGNATURES.md section 1: bursts that make a pattern
        min_bursts: u32 = 3, ints(2, 32);
        /// SIGNATURES.md section 1: PowWow waits 30 s to 2 min between bursts; traceroute's 3 probes per hop (section 3) and NetBIOS retries (section 5) pause far less
        min_burst_pause_s: f64 = 20.0, floats(0.0, 86_400.0);
        /// SIGNATURES.md section 2: a source probing more ports is a scanner; neither event fires for it
        max_dest_ports_per_source: u32 = 8, ints(1, 65_536);
        /// SIGNATURES.md section 2: a source probing more hosts is a horizontal sweeper; neither event fires for it, unless the key's attempts are mostly answered (a busy client's beacon)
        max_dest_hosts_per_source: u32 = 16, ints(1, 1 << 24);
        /// SIGNATURES.md section 1: the five-minute silence must not end the detection; state dropped after 30 min without an attempt
        idle_s: f64 = 1800.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 1: cap on (src, dst, proto, dport) keys that repeated (full entries, about 1.4 KB each), across all workers, shared with source_port_sequence
        max_tracked: usize = 12288, entries();
        /// SIGNATURES.md section 1: cap on keys seen once (their first attempt), across all workers
        max_probation: usize = 65536, entries();
    }
}
crate::rules_section! {
    /// SIGNATURES.md section 1: the source port counts up by one per attempt and
    /// wraps from about 5000 back to 1024 (classic Windows ephemeral ports).
    pub struct SourcePortSequenceRules["source_port_sequence"] {
        /// SIGNATURES.md section 1: sequential source ports to one destination and port
        enabled: bool = true;
        /// SIGNATURES.md section 1: new attempts (retransmissions excluded) before a sequence is called
        min_attempts: u32 = 5, ints(3, 64);
        /// SIGNATURES.md section 1: share of consecutive source-port deltas equal to the step, wraps aside
        min_step_share: f64 = 0.8, above(0.0, 1.0);
        /// SIGNATURES.md section 1: a "small positive step": +1 typically
        max_step: u32 = 4, ints(1, 16);
        /// SIGNATURES.md section 1: a retrying program, not a tool session (nmap -A scripts, a page load): attempts at least 1 s apart on average
        min_mean_interval_s: f64 = 1.0, floats(0.0, 86_400.0);
    }
}

const PERIODIC: &str = "periodic_probe";
const SEQUENCE: &str = "source_port_sequence";
const VERDICT: &str = "verdict";
/// Attempts remembered per entry.
const RING: usize = cadence::MAX_TIMES;
/// Recent attempts checked for a retransmission or an answer.
const RECENT: usize = 8;
/// Gaps and wraps kept per entry (the rest are counted).
const MAX_LIST: usize = 8;
/// Steps counted for `source_port_sequence`.
const MAX_STEP: usize = 16;
/// Packet time between analyses of one unconfirmed entry.
const EVAL_US: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    dport: u16,
}

impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        crate::detect::keys::hash_pair(&self.src, &self.dst, (u32::from(self.proto) << 16) | u32::from(self.dport), h);
    }
}

/// A key's first attempt.
#[derive(Clone, Copy, Debug)]
struct First {
    ts: i64,
    isn: u32,
    sport: u16,
    sensor: u16,
    answered: bool,
    retransmissions: u32,
    /// `Ctx::inbound` at the first attempt.
    inbound: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Wrap {
    ts: i64,
    from: u16,
    to: u16,
}

/// One detection's lifecycle.
#[derive(Clone, Copy, Debug, Default)]
struct Life {
    confirmed: bool,
    last_emit_us: i64,
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    /// The last attempt or retransmission: what expiry looks at.
    seen_us: i64,
    times: [i64; RING],
    sports: [u16; RING],
    isns: [u32; RING],
    /// Next slot to write; the ring holds `min(attempts, RING)` attempts.
    head: usize,
    attempts: u64,
    retransmissions: u64,
    answered: u64,
    payload_bytes: u64,
    // source_port_sequence
    first_port: u16,
    last_port: u16,
    min_port: u16,
    max_port: u16,
    steps: [u32; MAX_STEP],
    deltas: u32,
    wraps: u32,
    wrap_list: [Wrap; MAX_LIST],
    // periodic_probe, over the whole detection once confirmed
    cad: Option<Cadence>,
    cycles: u64,
    missed: u64,
    off_period: u64,
    prev_on: bool,
    gaps: [cadence::Gap; MAX_LIST],
    n_gaps: u32,
    last_eval_us: i64,
    pp: Life,
    ps: Life,
    vd: Life,
    /// `Ctx::inbound` at the first attempt.
    inbound_at_start: u64,
    /// An attempt reached the destination with its return path in view:
    /// after it, or any home host, had been seen sending (the dispatcher's
    /// `dst_spoke` and `home_spoke`, set for home destinations only).
    dst_spoke: bool,
}

impl Weighted for Entry {
    /// One hand pass per attempt.
    fn credit(&self) -> u8 {
        self.attempts.min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.pp.confirmed || self.ps.confirmed || self.vd.confirmed
    }
}

impl Entry {
    /// Losing this entry loses a detection: it held two attempts or more.
    fn evidence(&self) -> bool {
        self.attempts >= 2
    }

    fn new(f: &First) -> Entry {
        let mut e = Entry {
            sensor: f.sensor,
            first_us: f.ts,
            last_us: f.ts,
            seen_us: f.ts,
            times: [0; RING],
            sports: [0; RING],
            isns: [0; RING],
            head: 0,
            attempts: 0,
            retransmissions: u64::from(f.retransmissions),
            answered: u64::from(f.answered),
            payload_bytes: 0,
            first_port: f.sport,
            last_port: f.sport,
            min_port: f.sport,
            max_port: f.sport,
            steps: [0; MAX_STEP],
            deltas: 0,
            wraps: 0,
            wrap_list: [Wrap::default(); MAX_LIST],
            cad: None,
            cycles: 0,
            missed: 0,
            off_period: 0,
            prev_on: false,
            gaps: [cadence::Gap::default(); MAX_LIST],
            n_gaps: 0,
            last_eval_us: i64::MIN,
            pp: Life::default(),
            ps: Life::default(),
            vd: Life::default(),
            inbound_at_start: f.inbound,
            dst_spoke: false,
        };
        e.push(f.ts, f.sport, f.isn);
        e
    }

    fn len(&self) -> usize {
        (self.attempts as usize).min(RING)
    }

    /// Ring index of the `i`-th newest attempt (0 = newest).
    fn newest(&self, i: usize) -> usize {
        (self.head + RING - 1 - i) % RING
    }

    /// Whether (sport, isn) repeats one of the recent attempts.
    fn is_retransmission(&self, sport: u16, isn: u32) -> bool {
        (0..self.len().min(RECENT)).any(|i| {
            let j = self.newest(i);
            self.sports[j] == sport && self.isns[j] == isn
        })
    }

    /// Whether `sport` is one of the recent attempts' source ports.
    fn recent_sport(&self, sport: u16) -> bool {
        (0..self.len().min(RECENT)).any(|i| self.sports[self.newest(i)] == sport)
    }

    /// Records a new attempt (the caller has excluded retransmissions).
    fn push(&mut self, ts: i64, sport: u16, isn: u32) {
        if self.attempts > 0 {
            let prev = self.last_port;
            if sport < prev {
                if (self.wraps as usize) < MAX_LIST {
                    self.wrap_list[self.wraps as usize] = Wrap { ts, from: prev, to: sport };
                }
                self.wraps += 1;
            } else {
                let d = usize::from(sport - prev);
                if (1..=MAX_STEP).contains(&d) {
                    self.steps[d - 1] += 1;
                }
            }
            self.deltas += 1;
        }
        self.last_port = sport;
        self.min_port = self.min_port.min(sport);
        self.max_port = self.max_port.max(sport);
        self.times[self.head] = ts;
        self.sports[self.head] = sport;
        self.isns[self.head] = isn;
        self.head = (self.head + 1) % RING;
        self.attempts += 1;
        self.last_us = self.last_us.max(ts);
    }

    /// The ring's times, oldest first.
    fn ring_times(&self, out: &mut [i64; RING]) -> usize {
        let n = self.len();
        for (i, slot) in out.iter_mut().enumerate().take(n) {
            *slot = self.times[(self.head + RING - n + i) % RING];
        }
        n
    }

    /// The dominant step, its count, and its share of the non-wrap deltas.
    fn step(&self) -> (u32, u32, f64) {
        let (mut best, mut count) = (0usize, 0u32);
        for (i, c) in self.steps.iter().enumerate() {
            if *c > count {
                (best, count) = (i + 1, *c);
            }
        }
        let denom = self.deltas.saturating_sub(self.wraps);
        let share = if denom == 0 { 0.0 } else { f64::from(count) / f64::from(denom) };
        (best as u32, count, share)
    }

    fn add_gap(&mut self, g: cadence::Gap) {
        let n = (self.n_gaps as usize).min(MAX_LIST);
        if self.gaps[..n].iter().any(|x| x.start_us == g.start_us) {
            return;
        }
        if n < MAX_LIST {
            self.gaps[n] = g;
        }
        self.n_gaps += 1;
    }
}

/// Thresholds in packet-time microseconds.
#[derive(Clone, Copy)]
struct Limits {
    par: Params,
    min_cycles: u32,
    max_jitter_ratio: f64,
    min_regular_share: f64,
    min_coverage: f64,
    idle_us: i64,
    update_us: i64,
    pp_on: bool,
    ps_on: bool,
    ps_min: u64,
    ps_share: f64,
    ps_max_step: u32,
    max_ports: u32,
    max_hosts: u32,
    ps_min_gap_us: i64,
}

/// The detector's per-worker state.
pub struct Periodic {
    first: Probation<Key, First>,
    /// Full entries, about 1.4 KB each.
    map: Tier<Key, Entry>,
    lim: Limits,
    last_sweep_us: i64,
    /// What `brute_force` explains: a guessing tool's connections come on a
    /// rhythm from consecutive ports, and are no beacon or retrying client.
    claims: Arc<Claims>,
}

impl Periodic {
    pub fn new(
        pp: &PeriodicProbeRules,
        ps: &SourcePortSequenceRules,
        cap: usize,
        probation: usize,
        update_interval_s: f64,
    ) -> Periodic {
        Periodic {
            first: Probation::new(probation),
            map: Tier::new(cap),
            last_sweep_us: i64::MIN,
            claims: Arc::new(Claims::default()),
            lim: Limits {
                par: Params {
                    min_period_us: (pp.min_period_s * 1e6) as i64,
                    fold_tolerance: pp.fold_tolerance,
                    gap_periods: pp.gap_periods,
                    burst_break_ratio: pp.burst_break_ratio,
                    max_burst_spread_us: (pp.max_burst_spread_s * 1e6) as i64,
                    min_burst_size: pp.min_burst_size,
                    min_bursts: pp.min_bursts,
                    min_burst_pause_us: (pp.min_burst_pause_s * 1e6) as i64,
                },
                max_ports: pp.max_dest_ports_per_source,
                max_hosts: pp.max_dest_hosts_per_source,
                ps_min_gap_us: (ps.min_mean_interval_s * 1e6) as i64,
                min_cycles: pp.min_cycles,
                max_jitter_ratio: pp.max_jitter_ratio,
                min_regular_share: pp.min_regular_share,
                min_coverage: pp.min_coverage,
                idle_us: (pp.idle_s * 1e6) as i64,
                update_us: (update_interval_s * 1e6) as i64,
                pp_on: pp.enabled,
                ps_on: ps.enabled,
                ps_min: u64::from(ps.min_attempts),
                ps_share: ps.min_step_share,
                ps_max_step: ps.max_step,
            },
        }
    }

    /// Shares `brute_force`'s claims: a claimed (source, TCP port) starts no
    /// detection here.
    pub fn with_claims(mut self, claims: Arc<Claims>) -> Periodic {
        self.claims = claims;
        self
    }

    #[inline]
    fn packet(&mut self, p: &PacketSummary, sensor: u16, src: &Sources, cx: &Ctx) {
        if !self.lim.pp_on && !self.lim.ps_on {
            return;
        }
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            L4::Tcp(t) if t.is_connection_attempt() => {
                let key = Key { src: ip.src, dst: ip.dst, proto: 6, dport: t.dport };
                self.attempt(key, p, sensor, t.sport, t.seq, true, src, cx);
            }
            L4::Tcp(t) if t.is_syn_ack() => {
                let key = Key { src: ip.dst, dst: ip.src, proto: 6, dport: t.sport };
                let isn = t.ack.wrapping_sub(1);
                if let Some(e) = self.map.get_mut(&key) {
                    if e.is_retransmission(t.dport, isn) {
                        e.answered += 1;
                    }
                } else if let Some(f) = self.first.get_mut(&key)
                    && f.sport == t.dport
                    && f.isn == isn
                {
                    f.answered = true;
                }
            }
            L4::Udp(u) => {
                let back = Key { src: ip.dst, dst: ip.src, proto: 17, dport: u.sport };
                if let Some(e) = self.map.get_mut(&back)
                    && e.recent_sport(u.dport)
                {
                    e.answered += 1;
                    return;
                }
                if let Some(f) = self.first.get_mut(&back)
                    && f.sport == u.dport
                {
                    f.answered = true;
                    return;
                }
                // Multicast and broadcast (SSDP, mDNS, WS-Discovery, the
                // NetBIOS browser, DHCP) expect no unicast answer: silence
                // after them is no dead service (issue 13).
                if !unicast(ip.dst) {
                    return;
                }
                // LAN device discovery (a router's device map on 9999,
                // unicast mDNS, LLMNR, WS-Discovery) polls hosts that mostly
                // run no such service: their silence is no dead service
                // either (issue 13: realworld elc_*).
                if site_local(ip.src)
                    && site_local(ip.dst)
                    && cx.shared.ports.lookup(17, u.dport).is_some_and(|i| i.category == "discovery")
                {
                    cx.shared.stats.periodic_suppressed_discovery.fetch_add(1, Relaxed);
                    return;
                }
                let key = Key { src: ip.src, dst: ip.dst, proto: 17, dport: u.dport };
                self.attempt(key, p, sensor, u.sport, 0, false, src, cx);
            }
            L4::Icmp(i) if i.is_echo_request() && unicast(ip.dst) => {
                let key = Key { src: ip.src, dst: ip.dst, proto: ip.proto, dport: 0 };
                let (id, seq) = i.echo.unwrap_or((0, 0));
                self.attempt(key, p, sensor, 0, (u32::from(id) << 16) | u32::from(seq), false, src, cx);
            }
            L4::Icmp(i) if i.is_echo_reply() => {
                let key = Key { src: ip.dst, dst: ip.src, proto: ip.proto, dport: 0 };
                if let Some(e) = self.map.get_mut(&key) {
                    e.answered += 1;
                } else if let Some(f) = self.first.get_mut(&key) {
                    f.answered = true;
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &mut self,
        key: Key,
        p: &PacketSummary,
        sensor: u16,
        sport: u16,
        isn: u32,
        tcp: bool,
        src: &Sources,
        cx: &Ctx,
    ) {
        let now = p.ts_us;
        let lim = self.lim;
        let e = match self.map.get_mut(&key) {
            Some(e) => e,
            None => {
                let Some(f) = self.first.get_mut(&key) else {
                    self.remember_first(
                        key,
                        First { ts: now, isn, sport, sensor, answered: false, retransmissions: 0, inbound: cx.inbound },
                        cx,
                    );
                    return;
                };
                if tcp && f.sport == sport && f.isn == isn {
                    // A retransmission of the first attempt.
                    f.retransmissions = f.retransmissions.saturating_add(1);
                    return;
                }
                let f = *f;
                let table = cx.shared.stats.table(Table::Periodic);
                if !self.map.insert(key, Entry::new(&f)).count(table, Entry::evidence) {
                    return;
                }
                self.first.remove(&key);
                let Some(e) = self.map.get_mut(&key) else { return };
                e
            }
        };
        e.seen_us = e.seen_us.max(now);
        if tcp && e.is_retransmission(sport, isn) {
            e.retransmissions += 1;
            return;
        }
        e.sensor = sensor;
        e.dst_spoke |= p.dst_spoke || p.home_spoke;
        e.payload_bytes += u64::from(p.payload_len);
        let prev = e.last_us;
        e.push(now, sport, isn);
        if e.pp.confirmed {
            classify(e, now - prev, prev, now, &lim);
        }
        if lim.pp_on {
            if !e.pp.confirmed {
                if now.saturating_sub(e.last_eval_us) >= EVAL_US && e.len() >= lim.min_cycles as usize {
                    e.last_eval_us = now;
                    try_confirm_periodic(&key, e, &lim, &self.claims, src, cx, now, None);
                }
            } else if now - e.pp.last_emit_us >= lim.update_us {
                refresh(e, &key, &lim);
                e.pp.last_emit_us = now;
                cx.emit(render_periodic(&key, e, "update", None, cx, now));
            }
        }
        if lim.ps_on && key.proto != 1 && key.proto != 58 {
            if !e.ps.confirmed {
                try_confirm_sequence(&key, e, &lim, &self.claims, src, cx, now, None);
            } else if now - e.ps.last_emit_us >= lim.update_us {
                e.ps.last_emit_us = now;
                cx.emit(render_sequence(&key, e, "update", None, cx, now));
            }
        }
        if lim.pp_on || lim.ps_on {
            if !e.vd.confirmed {
                if verdict_holds(&key, e) {
                    e.vd = Life { confirmed: true, last_emit_us: now };
                    cx.emit(render_verdict(&key, e, "new", None, cx, now));
                }
            } else if now - e.vd.last_emit_us >= lim.update_us {
                e.vd.last_emit_us = now;
                cx.emit(render_verdict(&key, e, "update", None, cx, now));
            }
        }
    }

    /// Records a key's first attempt; a full probation tier lets its oldest go.
    fn remember_first(&mut self, key: Key, f: First, cx: &Ctx) {
        let evicted = self.first.insert(key, f);
        if evicted > 0 {
            cx.shared.stats.table(Table::Periodic).evicted.fetch_add(evicted, Relaxed);
        }
    }

    /// Every `sweep_every(idle)`, ends and drops entries idle for `idle_s`.
    fn tick(&mut self, src: &Sources, cx: &Ctx) {
        let now = cx.now;
        if now.saturating_sub(self.last_sweep_us) < sweep_every(self.lim.idle_us) {
            return;
        }
        self.last_sweep_us = now;
        let lim = self.lim;
        let claims = &self.claims;
        let mut expired = self.map.retain(|key, e| {
            if now.saturating_sub(e.seen_us) <= lim.idle_us {
                return true;
            }
            finish(key, e, &lim, claims, src, cx, now, EndReason::Expired);
            false
        });
        expired += self.first.retain(|_, f| now.saturating_sub(f.ts) <= lim.idle_us);
        cx.shared.stats.table(Table::Periodic).expired.fetch_add(expired, Relaxed);
    }

    fn end(&mut self, reason: EndReason, src: &Sources, cx: &Ctx) {
        let lim = self.lim;
        for (key, e) in self.map.iter_mut() {
            finish(key, e, &lim, &self.claims, src, cx, cx.now, reason);
        }
        self.map.clear();
        self.first.clear();
    }
}

/// Ends an entry's detections: finals for confirmed ones, and a last chance
/// (new and final at once) for the others.
#[allow(clippy::too_many_arguments)]
fn finish(
    key: &Key,
    e: &mut Entry,
    lim: &Limits,
    claims: &Claims,
    src: &Sources,
    cx: &Ctx,
    now: i64,
    reason: EndReason,
) {
    if lim.pp_on {
        if e.pp.confirmed {
            refresh(e, key, lim);
            cx.emit(render_periodic(key, e, "final", Some(reason), cx, now));
        } else if e.len() >= lim.min_cycles as usize {
            try_confirm_periodic(key, e, lim, claims, src, cx, now, Some(reason));
        }
    }
    if lim.ps_on && key.proto != 1 && key.proto != 58 {
        if e.ps.confirmed {
            cx.emit(render_sequence(key, e, "final", Some(reason), cx, now));
        } else {
            try_confirm_sequence(key, e, lim, claims, src, cx, now, Some(reason));
        }
    }
    if e.vd.confirmed || verdict_holds(key, e) {
        e.vd.confirmed = true;
        cx.emit(render_verdict(key, e, "final", Some(reason), cx, now));
    }
}

/// TCP attempts (retransmissions included) that nothing ever answered.
fn unanswered_retries(key: &Key, e: &Entry) -> bool {
    key.proto == 6 && e.answered == 0 && e.attempts + e.retransmissions >= 3
}

/// The views of one key that hold, by name.
fn verdict_parts(key: &Key, e: &Entry) -> Vec<&'static str> {
    let mut v = Vec::with_capacity(3);
    if unanswered_retries(key, e) {
        v.push("syn_retry");
    }
    if e.pp.confirmed {
        v.push(PERIODIC);
    }
    if e.ps.confirmed {
        v.push(SEQUENCE);
    }
    v
}

/// At least two views, one of them periodic_probe or source_port_sequence.
fn verdict_holds(key: &Key, e: &Entry) -> bool {
    let n = u8::from(unanswered_retries(key, e)) + u8::from(e.pp.confirmed) + u8::from(e.ps.confirmed);
    n >= 2 && (e.pp.confirmed || e.ps.confirmed)
}

/// Classifies the interval before a new attempt against the confirmed
/// period, so the counts cover the whole detection.
fn classify(e: &mut Entry, d: i64, start: i64, end: i64, lim: &Limits) {
    let Some(c) = e.cad else { return };
    if c.burst.is_some() {
        return; // burst counts come from the ring
    }
    match cadence::fold(d, c.period_us, &lim.par) {
        Fold::On(k) => {
            e.cycles += if e.prev_on { 1 } else { 2 };
            e.missed += u64::from(k - 1);
            e.prev_on = true;
        }
        Fold::Gap => {
            e.add_gap(cadence::Gap { start_us: start, end_us: end });
            e.prev_on = false;
        }
        Fold::Off => {
            e.off_period += 1;
            e.prev_on = false;
        }
    }
}

/// Re-estimates the period from the ring (for an update or the final event).
/// The whole-detection counts are kept while the pattern stays of the same
/// kind; a ring that now shows bursts instead of a plain period (or the
/// reverse) and passes the trigger replaces them.
fn refresh(e: &mut Entry, key: &Key, lim: &Limits) {
    let mut t = [0i64; RING];
    let n = e.ring_times(&mut t);
    let Some(c) = cadence::analyze(&t[..n], &lim.par) else { return };
    let same_kind = e.cad.is_none_or(|old| old.burst.is_some() == c.burst.is_some());
    if same_kind {
        let (cycles, missed, off) = (e.cycles, e.missed, e.off_period);
        for g in &c.gaps[..(c.n_gaps as usize).min(cadence::MAX_GAPS)] {
            e.add_gap(*g);
        }
        e.cad = Some(c);
        (e.cycles, e.missed, e.off_period) = (cycles, missed, off);
    } else if qualifies(&c, e, key.proto, lim, true) {
        adopt(e, &c, &t[..n], lim);
    }
}

/// Whether a cadence passes the trigger. `ended`: no more attempts will come.
fn qualifies(c: &Cadence, e: &Entry, proto: u8, lim: &Limits, ended: bool) -> bool {
    // UDP/ICMP answered more often than not: a service at work (NTP, DNS, pings).
    let answered_mostly = e.answered * 2 > e.attempts;
    if proto != 6 && answered_mostly {
        return false;
    }
    if c.period_us < lim.par.min_period_us {
        return false;
    }
    if c.burst.is_some() {
        // Reconnecting in bursts means failing: a browser's answered page loads are not it.
        return !answered_mostly;
    }
    // A train shorter than a burst may be the first burst of a burst
    // pattern: wait for more (or for the end of input) before calling it.
    let long_enough =
        ended || c.period_us.saturating_mul(i64::from(c.cycles.saturating_sub(1))) > lim.par.max_burst_spread_us;
    c.longest_run >= lim.min_cycles
        && long_enough
        && (c.jitter_us as f64) <= lim.max_jitter_ratio * c.period_us as f64
        && c.regular_share() >= lim.min_regular_share
        && c.score().coverage >= lim.min_coverage
}

#[allow(clippy::too_many_arguments)]
fn try_confirm_periodic(
    key: &Key,
    e: &mut Entry,
    lim: &Limits,
    claims: &Claims,
    src: &Sources,
    cx: &Ctx,
    now: i64,
    end: Option<EndReason>,
) {
    if is_scanner(src, key, e, lim) || brute_force(claims, key) {
        return;
    }
    let mut t = [0i64; RING];
    let n = e.ring_times(&mut t);
    // Cheap reject (a flood): the ring spans less than one minimum period.
    if n < 3 || t[n - 1] - t[0] < lim.par.min_period_us {
        return;
    }
    let Some(c) = cadence::analyze(&t[..n], &lim.par) else { return };
    if !qualifies(&c, e, key.proto, lim, end.is_some()) {
        return;
    }
    adopt(e, &c, &t[..n], lim);
    e.pp = Life { confirmed: true, last_emit_us: now };
    let status = if end.is_some() { "final" } else { "new" };
    cx.emit(render_periodic(key, e, status, end, cx, now));
}

/// Takes a ring analysis as the detection's cadence, counts included.
fn adopt(e: &mut Entry, c: &Cadence, t: &[i64], lim: &Limits) {
    let n = t.len();
    e.cad = Some(*c);
    e.cycles = u64::from(c.cycles);
    e.missed = u64::from(c.missed);
    e.off_period = u64::from(c.off_period);
    e.prev_on = n >= 2 && matches!(cadence::fold(t[n - 1] - t[n - 2], c.period_us, &lim.par), Fold::On(_));
    for g in &c.gaps[..(c.n_gaps as usize).min(cadence::MAX_GAPS)] {
        e.add_gap(*g);
    }
}

/// SIGNATURES.md section 2: a source probing many ports (a scanner) or many
/// hosts (a sweeper) is left to the scan detectors: its repeats are rounds.
/// Many hosts alone do not make a sweeper of a key that is mostly answered:
/// a busy workstation talks to hundreds of servers, and its one periodic
/// connection (a RAT's beacon, realworld `mal_quasarrat`) must not hide
/// behind them.
fn is_scanner(src: &Sources, key: &Key, e: &Entry, lim: &Limits) -> bool {
    let (ports, hosts) = src.spread(key.src);
    let answered = e.answered * 2 > e.attempts;
    ports > u64::from(lim.max_ports) || (hosts > u64::from(lim.max_hosts) && !answered)
}

/// A (source, TCP port) that `brute_force` explains: its connections are
/// password guesses, not a beacon, a retrying client or a port sequence.
fn brute_force(claims: &Claims, key: &Key) -> bool {
    key.proto == 6 && claims.held(key.src, key.dport)
}

fn sequence_holds(e: &Entry, lim: &Limits) -> bool {
    let (step, count, share) = e.step();
    let mean_gap = (e.last_us - e.first_us) / i64::try_from(e.attempts.saturating_sub(1).max(1)).unwrap_or(i64::MAX);
    e.attempts >= lim.ps_min
        && mean_gap >= lim.ps_min_gap_us
        && step >= 1
        && step <= lim.ps_max_step
        && count > 0
        && share >= lim.ps_share
        && e.wraps * 4 <= e.deltas
}

#[allow(clippy::too_many_arguments)]
fn try_confirm_sequence(
    key: &Key,
    e: &mut Entry,
    lim: &Limits,
    claims: &Claims,
    src: &Sources,
    cx: &Ctx,
    now: i64,
    end: Option<EndReason>,
) {
    if !sequence_holds(e, lim) || is_scanner(src, key, e, lim) || brute_force(claims, key) {
        return;
    }
    // Answered connections from consecutive ports are ordinary: Linux and
    // others allocate ports per destination in order (realworld mal_SSL:
    // 99 answered HTTPS connections). A retrying program is not answered.
    if e.answered * 2 > e.attempts {
        return;
    }
    e.ps = Life { confirmed: true, last_emit_us: now };
    let status = if end.is_some() { "final" } else { "new" };
    cx.emit(render_sequence(key, e, status, end, cx, now));
}

/// Seconds for a sentence: 0.1 s precision from 10 s up, 0.01 s below,
/// without a trailing ".0" ("every 30 s", "every 2.5 s").
fn human_s(us: i64) -> String {
    let x = us as f64 / 1e6;
    let t = if x >= 10.0 { format!("{x:.1}") } else { format!("{x:.2}") };
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t.is_empty() { "0".to_string() } else { t.to_string() }
}

fn target(key: &Key) -> String {
    let host = match key.dst {
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    };
    match key.proto {
        6 => format!("TCP {host}:{}", key.dport),
        17 => format!("UDP {host}:{}", key.dport),
        _ => format!("ICMP echo to {}", key.dst),
    }
}

fn service_note(key: &Key, cx: &Ctx) -> (Option<String>, String) {
    let svc = if key.proto == 6 || key.proto == 17 { cx.service(key.proto, key.dport) } else { None };
    (svc.map(String::from), svc.map(|s| format!(" ({s})")).unwrap_or_default())
}

/// SIGNATURES.md section 9: the key's score; its service is its port.
fn judge(key: &Key, cx: &Ctx, fact: Fact) -> crate::output::event::Judged {
    let service = matches!(key.proto, 6 | 17).then_some((key.proto, key.dport));
    cx.judge(cx.asset_of(key.src, key.dst), service, fact)
}

fn flow(key: &Key, e: &Entry) -> Flow {
    let ports = match key.proto {
        6 | 17 => Some((e.first_port, key.dport)),
        1 => Some((8, 0)),
        58 => Some((128, 0)),
        _ => None,
    };
    Flow { src: key.src, dst: key.dst, proto: key.proto, ports }
}

fn id(kind: &str, key: &Key, e: &Entry) -> String {
    detection_id(
        kind,
        &[&ip_bytes(&key.src), &ip_bytes(&key.dst), &[key.proto], &key.dport.to_be_bytes(), &e.first_us.to_be_bytes()],
    )
}

fn gaps_json(e: &Entry) -> Value {
    let n = (e.n_gaps as usize).min(MAX_LIST);
    Value::Array(
        e.gaps[..n]
            .iter()
            .map(|g| json!({"start": rfc3339_us(g.start_us), "end": rfc3339_us(g.end_us), "seconds": secs(g.end_us - g.start_us)}))
            .collect(),
    )
}

fn render_periodic(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let c = e.cad.unwrap_or_default();
    let sc = c.score();
    let (service, svc) = service_note(key, cx);
    let burst = c.burst.map(|b| {
        json!({
            "bursts": b.bursts,
            "size_min": b.size_min,
            "size_max": b.size_max,
            "spread_s": secs(b.spread_us),
            "pause_s_min": secs(b.pause_min_us),
            "pause_s_max": secs(b.pause_max_us),
        })
    });
    let (cycles, missed, off) =
        if c.burst.is_some() { (u64::from(c.cycles), 0, 0) } else { (e.cycles, e.missed, e.off_period) };
    let details = json!({
        "id": id(PERIODIC, key, e),
        "incident": incident_id(&key.src, &key.dst, key.proto, key.dport),
        "status": status,
        "end_reason": end.map(EndReason::name),
        "period_s": secs(c.period_us),
        "jitter_s": secs(c.jitter_us),
        "cycles": cycles,
        "missed": missed,
        "off_period": off,
        "attempts": e.attempts,
        "retransmissions": e.retransmissions,
        "answered": e.answered,
        "return_path_seen": return_path_field(key, e, cx),
        "payload_bytes": e.payload_bytes,
        "gaps": gaps_json(e),
        "gaps_total": e.n_gaps,
        "burst": burst,
        "score": sc.score,
        "score_components": {"skew": sc.skew, "madm": sc.madm, "regular_share": sc.regular_share, "coverage": sc.coverage},
        "service": service,
        "direction": cx.direction(key.src, key.dst),
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let summary = {
        let what = match key.proto {
            6 => "connection attempts",
            17 => "UDP datagrams",
            _ => "echo requests",
        };
        let rhythm = match c.burst {
            Some(b) => format!(
                "in bursts of {} {what} within {} s, repeating every ~{} s (pauses {}-{} s)",
                if b.size_min == b.size_max {
                    b.size_min.to_string()
                } else {
                    format!("{}-{}", b.size_min, b.size_max)
                },
                secs(b.spread_us),
                secs(c.period_us),
                secs(b.pause_min_us),
                secs(b.pause_max_us)
            ),
            None => format!(
                "{what} every {} s (jitter {} s) for {cycles} cycles since {}",
                human_s(c.period_us),
                secs(c.jitter_us),
                rfc3339_us(e.first_us)
            ),
        };
        let gaps = if e.n_gaps > 0 {
            let longest = e.gaps[..(e.n_gaps as usize).min(MAX_LIST)].iter().map(|g| g.end_us - g.start_us).max();
            format!(", with {} silence(s) (longest {} s, e.g. a reboot)", e.n_gaps, human_s(longest.unwrap_or(0)))
        } else {
            String::new()
        };
        let verdict = if return_unseen(key, e, cx) {
            format!(
                "; no answer was captured, but the return path is not visible to the sensor (no packet from {} was captured), so whether it answered is unknown: a client polling, not a scan",
                key.dst
            )
        } else if e.answered == 0 {
            match unanswered_doubt(key, cx) {
                Some(why) => format!(
                    "; never answered: a beacon to a dead C2, or a client polling a service that is gone ({why}): the wire cannot tell which; check what runs on {}",
                    key.src
                ),
                None => {
                    "; never answered: a client polling a service that is gone (misconfigured software), not a scan"
                        .to_string()
                }
            }
        } else if e.answered * 2 > e.attempts {
            "; answered: a scheduled client or a beacon (check what runs on the source)".to_string()
        } else {
            "; mostly unanswered: a client retrying, not a scan".to_string()
        };
        format!("{} -> {}{svc}: {rhythm}{gaps}{verdict}", key.src, target(key))
    };
    EventBuilder::new(PERIODIC, now, cx.sensor(e.sensor))
        .flow(&flow(key, e), cx.shared.community_id_seed)
        .judged(judge(key, cx, Fact::RetryingClient))
        .summary(summary)
        .details(PERIODIC, details)
}

/// No answer was seen, and the destination is a home host the sensor never
/// saw sending before these attempts: its silence proves nothing.
fn return_unseen(key: &Key, e: &Entry, cx: &Ctx) -> bool {
    e.answered == 0 && !e.dst_spoke && cx.shared.home.contains(key.dst)
}

/// `return_path_seen`: null for a destination outside the home net.
fn return_path_field(key: &Key, e: &Entry, cx: &Ctx) -> Value {
    if cx.shared.home.contains(key.dst) { Value::Bool(e.dst_spoke || e.answered > 0) } else { Value::Null }
}

fn render_sequence(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let (step, _, share) = e.step();
    let (service, svc) = service_note(key, cx);
    let n = (e.wraps as usize).min(MAX_LIST);
    let wraps: Vec<Value> =
        e.wrap_list[..n].iter().map(|w| json!({"at": rfc3339_us(w.ts), "from": w.from, "to": w.to})).collect();
    let details = json!({
        "id": id(SEQUENCE, key, e),
        "incident": incident_id(&key.src, &key.dst, key.proto, key.dport),
        "status": status,
        "end_reason": end.map(EndReason::name),
        "step": step,
        "step_share": (share * 1000.0).round() / 1000.0,
        "min_port": e.min_port,
        "max_port": e.max_port,
        "first_port": e.first_port,
        "last_port": e.last_port,
        "wraps": wraps,
        "wraps_total": e.wraps,
        "attempts": e.attempts,
        "retransmissions": e.retransmissions,
        "answered": e.answered,
        "return_path_seen": return_path_field(key, e, cx),
        "service": service,
        "direction": cx.direction(key.src, key.dst),
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let wrap_note = match e.wrap_list.first() {
        Some(w) if e.wraps > 0 => format!(", wrapping {} time(s) (first from {} back to {})", e.wraps, w.from, w.to),
        _ => String::new(),
    };
    // A stack is named only when the range proves it.
    let stack = if e.min_port >= 1024 && e.max_port <= 5000 && (e.wraps > 0 || e.max_port >= 1100) {
        " (ports within 1024..5000: classic Windows, or an old BSD)"
    } else {
        ""
    };
    let summary = format!(
        "{} made {} attempts to {}{svc} from source ports counting up by {step} ({}..{}){wrap_note}: one program allocating ports sequentially{stack}, retrying the same service",
        key.src,
        e.attempts,
        target(key),
        e.min_port,
        e.max_port
    );
    EventBuilder::new(SEQUENCE, now, cx.sensor(e.sensor))
        .flow(&flow(key, e), cx.shared.community_id_seed)
        .judged(judge(key, cx, Fact::RetryingClient))
        .summary(summary)
        .details(SEQUENCE, details)
}

/// Why a key that is never (or seldom) answered may be malware rather than
/// the section 1 story (an outside client, misconfigured, polling a home
/// address for an ordinary service): an inside host calling out with
/// machine regularity to an address that never answers may as well be
/// beaconing to a dead C2 (realworld `acd_tijcont`), and so may anything
/// aimed at a trojan or backdoor port, or a key whose side is unknown.
/// The wire cannot tell those apart, so the event says so instead of
/// picking the harmless reading.
fn unanswered_doubt(key: &Key, cx: &Ctx) -> Option<&'static str> {
    let category = cx.shared.ports.lookup(key.proto, key.dport).map(|i| i.category.as_str());
    if matches!(category, Some("trojan" | "backdoor")) {
        return Some("the port is a trojan's or a backdoor's");
    }
    match cx.direction(key.src, key.dst) {
        Some("outbound") => Some("an inside host calling out"),
        Some("external") => Some("neither side is in the home net"),
        None => Some("no --home-net: which side is ours is unknown"),
        _ => None,
    }
}

/// The combined event: what an analyst would write after reading the
/// `syn_retry`, `periodic_probe` and `source_port_sequence` events of one key.
fn render_verdict(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let c = e.cad.filter(|_| e.pp.confirmed);
    let (step, _, _) = e.step();
    let (service, svc) = service_note(key, cx);
    let direction = cx.direction(key.src, key.dst);
    // Share of the packets toward the home net (all packets without one)
    // since the first attempt; meaningless for an inside client.
    let packets = e.attempts + e.retransmissions;
    let seen = cx.inbound.saturating_sub(e.inbound_at_start).max(packets);
    let share = match direction {
        None | Some("inbound") if seen > 0 => Some(((packets as f64 / seen as f64) * 1000.0).round() / 1000.0),
        _ => None,
    };
    let answered_mostly = e.answered * 2 > e.attempts;
    let doubt = unanswered_doubt(key, cx).filter(|_| !answered_mostly);
    let conclusion = if answered_mostly {
        "beacon"
    } else if doubt.is_some() {
        "beacon_or_misconfigured_client"
    } else {
        match c.and_then(|c| c.burst) {
            Some(_) => "reconnecting_client",
            None => "misconfigured_client",
        }
    };
    let verb = match (key.proto, answered_mostly) {
        (6, false) => "has retried",
        (6, true) => "has connected to",
        (17, _) => "has sent to",
        _ => "has pinged",
    };
    let rhythm = match c {
        Some(c) => match c.burst {
            Some(b) => format!(" in bursts of {}-{} every ~{} s", b.size_min, b.size_max, human_s(c.period_us)),
            None => format!(" every {} s", human_s(c.period_us)),
        },
        None => format!(" {} times", e.attempts),
    };
    let ports = if e.ps.confirmed {
        let wraps = if e.wraps > 0 { format!(", wrapping {} time(s)", e.wraps) } else { String::new() };
        let by = if step == 1 { String::new() } else { format!(" by {step}") };
        format!(" with source ports counting up{by} from {}{wraps}", e.first_port)
    } else {
        String::new()
    };
    let meaning = match conclusion {
        "beacon" => format!(
            ": a scheduled client or a beacon, answered {} of {} times; check what runs on {}",
            e.answered, e.attempts, key.src
        ),
        "reconnecting_client" => {
            ": a client reconnecting in bursts to a service that does not answer, not a scan".to_string()
        }
        "beacon_or_misconfigured_client" => format!(
            ": a beacon to a dead C2, or a misconfigured client retrying a service that is not there ({}): the wire cannot tell which; check what runs on {}",
            doubt.unwrap_or_default(),
            key.src
        ),
        _ if return_unseen(key, e, cx) => format!(
            ": a client retrying, not a scan; the return path is not visible to the sensor (no packet from {} was captured), so whether the service answered is unknown",
            key.dst
        ),
        _ => ": a misconfigured client retrying a service that is not there, not a scan".to_string(),
    };
    let unit = if cx.shared.from_log { "firewall log records" } else { "packets" };
    let share_note = match (share, direction) {
        (Some(s), Some(_)) => format!("; {:.0}% of inbound {unit}", s * 100.0),
        (Some(s), None) => format!("; {:.0}% of all {unit}", s * 100.0),
        _ => String::new(),
    };
    let summary = format!(
        "{} {verb} {}{svc}{rhythm} since {}{ports}{meaning}{share_note}",
        key.src,
        target(key),
        rfc3339_us(e.first_us),
    );
    let details = json!({
        "id": id(VERDICT, key, e),
        "incident": incident_id(&key.src, &key.dst, key.proto, key.dport),
        "status": status,
        "end_reason": end.map(EndReason::name),
        "conclusion": conclusion,
        "parts": verdict_parts(key, e),
        "period_s": c.map(|c| secs(c.period_us)),
        "burst": c.is_some_and(|c| c.burst.is_some()),
        "step": e.ps.confirmed.then_some(step),
        "first_port": e.first_port,
        "last_port": e.last_port,
        "attempts": e.attempts,
        "retransmissions": e.retransmissions,
        "answered": e.answered,
        "return_path_seen": return_path_field(key, e, cx),
        "share_of_inbound": share,
        "service": service,
        "direction": direction,
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let fact = match conclusion {
        "beacon" => Fact::Beacon,
        "beacon_or_misconfigured_client" => Fact::BeaconOrMisconfigured,
        _ => Fact::RetryingClient,
    };
    EventBuilder::new(VERDICT, now, cx.sensor(e.sensor))
        .flow(&flow(key, e), cx.shared.community_id_seed)
        .judged(judge(key, cx, fact))
        .summary(summary)
        .details(VERDICT, details)
}

impl Detector for Periodic {
    fn table(&self) -> Table {
        Table::Periodic
    }
    fn interest(&self) -> u16 {
        class::TCP_ATTEMPT | class::TCP_SYN_ACK | class::UDP | class::ICMP
    }
    fn len(&self) -> usize {
        self.first.len() + self.map.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decode::summary::{UdpInfo, tcpflag};

    const CLIENT: &str = "198.51.100.7";
    const SERVER: &str = "192.0.2.10";

    use crate::detect::Rules;
    use crate::detect::testrig::s;

    type Rig = crate::detect::testrig::Rig<Periodic>;

    fn rig(tweak: impl FnOnce(&mut Rules)) -> Rig {
        Rig::with(tweak, |_, r| {
            Periodic::new(
                &r.periodic_probe,
                &r.source_port_sequence,
                r.periodic_probe.max_tracked,
                r.periodic_probe.max_probation,
                r.general.update_interval_s,
            )
        })
    }

    fn syn(t: f64, sport: u16, isn: u32) -> PacketSummary {
        crate::decode::summary::testutil::tcp(s(t), CLIENT, SERVER, (sport, 158), tcpflag::SYN, isn, 0)
    }

    fn udp(t: f64, src: &str, dst: &str, sport: u16, dport: u16) -> PacketSummary {
        let mut p = PacketSummary::new(s(t), 60, 60);
        p.ip = Some(crate::decode::summary::testutil::ipv4(src, dst, 17));
        p.l4 = L4::Udp(UdpInfo { sport, dport });
        p
    }

    fn kinds(ev: &[Value], kind: &str, status: &str) -> usize {
        ev.iter().filter(|e| e["event_type"] == kind && e[kind]["status"] == status).count()
    }

    #[test]
    fn an_ipv6_client_gets_all_three_views_and_a_verdict() {
        let mut r = rig(|_| {});
        let (c, srv) = ("2001:db8:99::7", "2001:db8:d::10");
        for i in 0..8u16 {
            let t = f64::from(i) * 30.0;
            r.feed(crate::decode::summary::testutil::tcp(s(t), c, srv, (1024 + i, 158), tcpflag::SYN, u32::from(i), 0));
        }
        let ev = r.end();
        assert_eq!(kinds(&ev, "periodic_probe", "final"), 1);
        assert_eq!(kinds(&ev, "source_port_sequence", "final"), 1);
        let v = ev.iter().find(|e| e["verdict"]["status"] == "final").expect("a verdict");
        assert_eq!(v["src_ip"], c);
        assert_eq!(v["verdict"]["conclusion"], "misconfigured_client");
        assert!(v["summary"].as_str().unwrap().contains("TCP [2001:db8:d::10]:158 (pcmail-srv) every 30 s"), "{v}");
        // Every packet the rig fed was this client's: the whole share.
        assert_eq!(v["verdict"]["share_of_inbound"], 1.0);
    }

    #[test]
    fn an_inside_host_calling_out_unanswered_may_be_a_dead_beacon_and_says_so() {
        // acd_tijcont's shape: a home host retrying an outside web server
        // every 42 s, source ports +1, never answered.
        let mut r = rig(|_| {});
        for i in 0..10u16 {
            let t = f64::from(i) * 42.0;
            let p = (1072 + i, 80);
            r.feed(crate::decode::summary::testutil::tcp(s(t), "192.0.2.50", "198.51.100.80", p, tcpflag::SYN, 9, 0));
        }
        let ev = r.end();
        let v = ev.iter().find(|e| e["verdict"]["status"] == "final").expect("a verdict");
        assert_eq!(v["verdict"]["conclusion"], "beacon_or_misconfigured_client", "{v}");
        let summary = v["summary"].as_str().unwrap();
        assert!(summary.contains("a beacon to a dead C2") && summary.contains("an inside host calling out"), "{v}");
        let pp = ev.iter().find(|e| e["periodic_probe"]["status"] == "final").unwrap();
        assert!(!pp["summary"].as_str().unwrap().contains("misconfigured software"), "{pp}");
    }

    #[test]
    fn a_busy_client_does_not_hide_its_answered_beacon() {
        // mal_quasarrat's shape: a workstation talking to 40 web servers
        // (answered), and beaconing to one address every 3.5 s (answered).
        let mut r = rig(|_| {});
        let (ws, c2) = ("192.0.2.50", "198.51.100.9");
        let tcp = crate::decode::summary::testutil::tcp;
        for i in 0..40u16 {
            let srv = format!("203.0.113.{}", i + 1);
            let t = f64::from(i) * 0.5;
            r.feed(tcp(s(t), ws, &srv, (40000 + i, 443), tcpflag::SYN, 100, 0));
            r.feed(tcp(s(t + 0.01), &srv, ws, (443, 40000 + i), tcpflag::SYN | tcpflag::ACK, 5, 101));
        }
        for i in 0..30u16 {
            let t = 20.0 + f64::from(i) * 3.5;
            let isn = 1000 + u32::from(i);
            r.feed(tcp(s(t), ws, c2, (50000 + i, 1337), tcpflag::SYN, isn, 0));
            r.feed(tcp(s(t + 0.02), c2, ws, (1337, 50000 + i), tcpflag::SYN | tcpflag::ACK, 7, isn + 1));
        }
        let ev = r.end();
        let pp = ev.iter().find(|e| e["periodic_probe"]["status"] == "final" && e["dest_port"] == 1337);
        assert!(pp.is_some(), "the beacon is reported: {ev:?}");
        assert!(pp.unwrap()["summary"].as_str().unwrap().contains("a beacon"));
    }

    #[test]
    fn a_claimed_brute_force_starts_no_periodic_sequence_or_verdict() {
        let run = |claim: Option<u16>| {
            let claims = Arc::new(Claims::default());
            if let Some(port) = claim {
                claims.claim(CLIENT.parse().unwrap(), port, 0);
            }
            let mut r = Rig::with(
                |_| {},
                |_, rules| {
                    Periodic::new(&rules.periodic_probe, &rules.source_port_sequence, 1000, 1000, 60.0)
                        .with_claims(claims.clone())
                },
            );
            for i in 0..8u16 {
                r.feed(syn(f64::from(i) * 30.0, 1024 + i, u32::from(i)));
            }
            r.end().len()
        };
        assert!(run(None) >= 3, "periodic_probe, source_port_sequence and verdict");
        assert_eq!(run(Some(158)), 0, "brute_force explains the connections");
        assert!(run(Some(21)) >= 3, "another port's claim changes nothing");
    }

    #[test]
    fn retransmissions_are_not_attempts() {
        let mut r = rig(|_| {});
        for i in 0..6u16 {
            let t = f64::from(i) * 30.0;
            r.feed(syn(t, 1024 + i, 7 * u32::from(i)));
            r.feed(syn(t + 3.0, 1024 + i, 7 * u32::from(i)));
        }
        let ev = r.end();
        let d = ev.iter().find(|e| e["periodic_probe"]["status"] == "final").unwrap();
        assert_eq!(d["periodic_probe"]["attempts"], 6);
        assert_eq!(d["periodic_probe"]["retransmissions"], 6);
        assert_eq!(d["periodic_probe"]["period_s"], 30.0);
        assert_eq!(kinds(&ev, "source_port_sequence", "final"), 1);
    }

    #[test]
    fn answered_udp_polls_are_a_service_but_unanswered_ones_are_probes() {
        // An NTP-like client polled every 64 s and answered each time.
        let mut r = rig(|_| {});
        for i in 0..10 {
            let t = f64::from(i) * 64.0;
            r.feed(udp(t, CLIENT, SERVER, 123, 123));
            r.feed(udp(t + 0.01, SERVER, CLIENT, 123, 123));
        }
        assert!(r.end().iter().all(|e| e["event_type"] != "periodic_probe"));
        // A game client's datagrams every 20 s to a port nobody answers on.
        let mut r = rig(|_| {});
        for i in 0..10 {
            r.feed(udp(f64::from(i) * 20.0, CLIENT, SERVER, 40000, 27015));
        }
        let ev = r.end();
        assert_eq!(kinds(&ev, "periodic_probe", "new"), 1, "{ev:?}");
        let fin = ev.iter().find(|e| e["periodic_probe"]["status"] == "final").unwrap();
        assert_eq!(fin["proto"], "UDP");
        assert_eq!(fin["dest_port"], 27015);
        // One source port all along: no sequence.
        assert_eq!(kinds(&ev, "source_port_sequence", "final"), 0);
    }

    #[test]
    fn answered_connections_from_counting_up_ports_are_no_sequence() {
        // A Linux client's connections to one server, each answered.
        let mut r = rig(|_| {});
        for i in 0..8u16 {
            let t = f64::from(i) * 20.0;
            let isn = 1000 + u32::from(i);
            r.feed(crate::decode::summary::testutil::tcp(s(t), CLIENT, SERVER, (41000 + i, 158), tcpflag::SYN, isn, 0));
            let sa = tcpflag::SYN | tcpflag::ACK;
            r.feed(crate::decode::summary::testutil::tcp(
                s(t + 0.01),
                SERVER,
                CLIENT,
                (158, 41000 + i),
                sa,
                7,
                isn + 1,
            ));
        }
        let ev = r.end();
        assert_eq!(kinds(&ev, "source_port_sequence", "final"), 0, "{ev:?}");
        // Unanswered, the same attempts are one, and 41000.. names no stack.
        let mut r = rig(|_| {});
        for i in 0..8u16 {
            r.feed(crate::decode::summary::testutil::tcp(
                s(f64::from(i) * 20.0),
                CLIENT,
                SERVER,
                (41000 + i, 158),
                tcpflag::SYN,
                9 + u32::from(i),
                0,
            ));
        }
        let ev = r.end();
        let fin = ev
            .iter()
            .find(|e| e["event_type"] == "source_port_sequence" && e["source_port_sequence"]["status"] == "final");
        let summary = fin.expect("a sequence")["summary"].as_str().unwrap().to_string();
        assert!(!summary.contains("Windows"), "{summary}");
    }

    #[test]
    fn multicast_and_broadcast_chatter_is_not_a_dead_service() {
        // SSDP, the NetBIOS browser, mDNS, DHCP and WS-Discovery on a
        // steady cadence: nothing unicast ever answers them (issue 13:
        // mal_Syslog, mk_honeynet_suspicious-time).
        let mut r = rig(|_| {});
        for i in 0..12 {
            let t = f64::from(i) * 20.0;
            r.feed(udp(t, "172.31.110.120", "239.255.255.250", 50000, 1900));
            r.feed(udp(t / 2.0, "10.0.5.15", "10.0.5.255", 138, 138));
            r.feed(udp(t, CLIENT, "224.0.0.251", 5353, 5353));
            r.feed(udp(t, "0.0.0.0", "255.255.255.255", 68, 67));
            r.feed(udp(t, "2001:db8::7", "ff02::c", 50001, 3702));
        }
        let ev = r.end();
        assert!(ev.is_empty(), "{ev:?}");
        // The same cadence to a unicast address is a probe.
        let mut r = rig(|_| {});
        for i in 0..12 {
            r.feed(udp(f64::from(i) * 20.0, "172.31.110.120", SERVER, 50000, 1900));
        }
        assert_eq!(kinds(&r.end(), "periodic_probe", "new"), 1);
    }

    #[test]
    fn lan_device_discovery_polls_are_not_a_dead_service() {
        // Realworld elc_*: an ASUS router's device map polls LAN hosts on
        // UDP 9999 in bursts of three, and sends unicast mDNS queries;
        // hosts that run neither stay silent.
        let mut r = rig(|_| {});
        for i in 0..12 {
            let t = f64::from(i) * 120.0;
            for k in 0..3 {
                r.feed(udp(t + f64::from(k), "192.168.1.1", "192.168.1.46", 9999, 9999));
            }
            r.feed(udp(t, "192.168.1.1", "192.168.1.195", 5353, 5353));
            r.feed(udp(t, "fe80::1", "fe80::2", 50000, 5355));
        }
        let ev = r.end();
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(r.shared.stats.periodic_suppressed_discovery.load(Relaxed), 12 * 5);
        // The same polls from outside the site are probes.
        let mut r = rig(|_| {});
        for i in 0..12 {
            r.feed(udp(f64::from(i) * 20.0, "198.51.100.9", "192.168.1.46", 9999, 9999));
        }
        assert_eq!(kinds(&r.end(), "periodic_probe", "new"), 1);
    }

    #[test]
    fn random_source_ports_and_irregular_times_fire_nothing() {
        let mut r = rig(|_| {});
        let mut x: u32 = 99;
        let mut t = 0.0;
        for _ in 0..40 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            t += 1.0 + f64::from(x % 50_000) / 1000.0;
            r.feed(syn(t, 32768 + (x >> 17) as u16 % 28000, x));
        }
        let ev = r.end();
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn expiry_ends_the_detections_and_a_flood_is_capped() {
        let mut r = rig(|rules| (rules.periodic_probe.max_tracked, rules.periodic_probe.max_probation) = (4, 4));
        for i in 0..6u16 {
            r.feed(syn(f64::from(i) * 30.0, 1024 + i, u32::from(i)));
        }
        assert_eq!(kinds(&r.events(), "periodic_probe", "new"), 1);
        for i in 0..20u16 {
            let src = format!("203.0.113.{}", i + 1);
            let mut p = crate::decode::summary::testutil::tcp(s(200.0), &src, SERVER, (5000, 80), tcpflag::SYN, 1, 0);
            p.ts_us += i64::from(i);
            r.feed(p);
        }
        let t = r.shared.stats.table(Table::Periodic);
        assert!(t.evicted.load(Relaxed) + t.cap_hits.load(Relaxed) > 0);
        assert!(r.det.first.len() <= 4 && r.det.map.len() <= 4);
        r.tick(150.0 + 1801.0 + 11.0);
        let ev = r.events();
        assert_eq!(kinds(&ev, "periodic_probe", "final"), 1, "{ev:?}");
        assert_eq!(ev[0]["periodic_probe"]["end_reason"], "expired");
        assert_eq!(kinds(&ev, "source_port_sequence", "final"), 1);
    }
}

/// The rules section's own checks (the loader's are in `crate::rules`).
#[cfg(test)]
mod rules_tests {
    use super::{PeriodicProbeRules, SourcePortSequenceRules};
    use crate::config::schema::Section;

    #[test]
    fn rules_sections_check_ranges() {
        let text = "[periodic_probe]\nmin_cycles = 7\n[source_port_sequence]\nmax_step = 2\n";
        let pp = PeriodicProbeRules::parse("x", text).unwrap();
        let ps = SourcePortSequenceRules::parse("x", text).unwrap();
        assert_eq!((pp.min_cycles, ps.max_step), (7, 2));
        let e =
            PeriodicProbeRules::parse("rules/picket.toml", "[periodic_probe]\n\nfold_tolerance = 0.6\n").unwrap_err();
        assert!(e.to_string().starts_with("rules/picket.toml:3: [periodic_probe] fold_tolerance: "), "{e}");
        let e = SourcePortSequenceRules::parse("x", "[source_port_sequence]\nmax_stepp = 2\n").unwrap_err();
        assert!(e.to_string().contains("unknown key `max_stepp` in [source_port_sequence]"), "{e}");
        assert!(SourcePortSequenceRules::parse("x", "[source_port_sequence]\nmin_attempts = 2\n").is_err());
        assert!(PeriodicProbeRules::parse("x", "[periodic_probe]\nburst_break_ratio = 1\n").is_err());
        assert!(PeriodicProbeRules::parse("x", "[periodic_probe]\nmin_bursts = 33\n").is_err());
    }
}
