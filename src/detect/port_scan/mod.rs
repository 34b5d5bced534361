//! `port_scan`: one source probing many ports or hosts (SIGNATURES.md
//! sections 2 and 7), decided by a sequential hypothesis test on the
//! source's first contacts, with Zeek's classic counts as the outer bound.
//!
//! - A *first contact* is the first probe from a source to a (host,
//!   protocol, port) it has not probed before: a SYN, a FIN, NULL or Xmas
//!   segment, a bare ACK or FIN+ACK that belongs to no connection seen, or a
//!   UDP datagram to a unicast address that is not a service's reply.
//!   Retransmissions and retries of one contact count once, so a client
//!   retrying a dead service (`syn_retry`) is never a scan.
//! - Its outcome: a SYN-ACK or a UDP reply is a success (the port is open:
//!   what the scanner learned); a RST or an ICMP unreachable is a failure
//!   (closed, or filtered by whoever sent the ICMP); silence for `settle_s`
//!   is a failure (filtered) for SYN and UDP probes. FIN, NULL, Xmas and
//!   other crafted flag sets have no use outside scanning and fail at once;
//!   a bare ACK fails on a RST, and silence proves nothing for it (it may
//!   belong to a connection older than the capture).
//! - Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan, IEEE S&P
//!   2004): each success multiplies the likelihood ratio by
//!   `scanner_success / benign_success`, each failure by `(1 -
//!   scanner_success) / (1 - benign_success)`. The source is a scanner when
//!   the ratio reaches `detection_probability / false_positive_probability`
//!   (4 failures with the defaults). The ratio never drops below the benign
//!   bound, so a client with a long good history that starts scanning is
//!   still caught, a few failures later; the walk restarts every `window_s`.
//! - The outer bound (Zeek's scan.zeek): `vertical_ports` failed ports on
//!   one host or `horizontal_hosts` failed hosts on one port within
//!   `window_s` confirm a scan the walk did not (a scanner that also found
//!   many open ports). `decided_by` says which test decided.
//!
//! Only packets whose source this worker owns are probes (the dispatcher
//! sends a SYN, FIN, NULL and Xmas segment to its source's worker, and
//! answers to it); an outbound UDP or ACK scan from a home host is sharded
//! by its targets and is not seen whole here.
//!
//! State is fair (`detect::fair`): a source with one first contact lives
//! in `probation` (a spoofed flood churns only that); its second first
//! contact promotes it to `scans`, where a confirmed scanner is pinned and
//! summarised in one entry (counters, sketches, a port bitmap), never key
//! by key. Sources with more failures outlive those with fewer; a promoted
//! source with two or more failures that is evicted or refused is counted
//! in `lost_detections`.

pub mod distributed;
pub mod tools;

use super::fair::{Fifo, Inserted, Probation, Tier, Weighted};
use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, TcpInfo, tcpflag};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::keys::{AddrKey, Distinct256, Distinct1024, addr_key, mix, sweep_every, unicast};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use tools::{MAX_TOOLS, ToolTable};

crate::rules_section! {
    /// SIGNATURES.md sections 2 and 7: many ports of one host (vertical), one port
    /// across many hosts (horizontal), or both (block), from one source.
    pub struct PortScanRules["port_scan"] check(check_port_scan) {
        /// SIGNATURES.md section 2: a vertical or horizontal scan is worth naming
        enabled: bool = true;
        /// SIGNATURES.md section 2 (TRW, Jung et al. 2004): chance that a benign source's first contact succeeds
        benign_success: f64 = 0.8, floats(0.01, 0.99);
        /// SIGNATURES.md section 2 (TRW): chance that a scanner's first contact succeeds; below benign_success
        scanner_success: f64 = 0.2, floats(0.01, 0.99);
        /// SIGNATURES.md section 2 (TRW): wanted probability of detecting a scanner
        detection_probability: f64 = 0.99, floats(0.5, 0.999999);
        /// SIGNATURES.md section 2 (TRW): tolerated probability of calling a benign source a scanner; below detection_probability
        false_positive_probability: f64 = 0.01, floats(0.000001, 0.5);
        /// SIGNATURES.md section 2 (Zeek scan.zeek): failed ports on one host that make a vertical scan
        vertical_ports: u32 = 15, ints(2, 65_536);
        /// SIGNATURES.md section 2 (Zeek scan.zeek): failed hosts on one port that make a horizontal scan
        horizontal_hosts: u32 = 25, ints(2, 1 << 24);
        /// SIGNATURES.md section 2 (Zeek scan.zeek): the counts and the walk hold for this long
        window_s: f64 = 300.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 2: a SYN or UDP probe unanswered this long failed (filtered)
        settle_s: f64 = 3.0, floats(0.1, 60.0);
        /// SIGNATURES.md section 2: a scan with no new probe for this long has ended
        idle_s: f64 = 300.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 2 (Snort's distributed portscan): sources, each probing at least decoy_scan.min_ports ports of one host, that make a distributed scan of it
        distributed_min_sources: u32 = 4, ints(2, 256);
        /// SIGNATURES.md section 2: ports those sources probed between them, at least, and at least twice what the busiest probed alone (the work is divided)
        distributed_min_ports: u32 = 30, ints(2, 65_536);
        /// SIGNATURES.md section 2: mean pairwise Jaccard similarity of their port sets, at most: slices of one scan barely overlap; unrelated scanners meeting at one host probe the same popular ports
        distributed_max_overlap: f64 = 0.2, floats(0.0, 1.0);
        /// SIGNATURES.md section 2: sources with two or more first contacts tracked, across all workers
        max_tracked: usize = 8192, entries();
        /// SIGNATURES.md section 2: sources seen once (a spoofed flood lands here), across all workers
        max_probation: usize = 65536, entries();
    }
}

/// The walk needs a scanner to fail more often than a benign source, and
/// the detection probability to beat the false positives.
fn check_port_scan(r: &PortScanRules, s: &Spans) -> Result<(), ConfigError> {
    if r.scanner_success >= r.benign_success {
        return Err(s.out_of_order(
            "scanner_success",
            "benign_success",
            format!("scanner_success ({}) must be less than benign_success ({})", r.scanner_success, r.benign_success),
        ));
    }
    if r.false_positive_probability >= r.detection_probability {
        return Err(s.out_of_order(
            "false_positive_probability",
            "detection_probability",
            format!(
                "false_positive_probability ({}) must be less than detection_probability ({})",
                r.false_positive_probability, r.detection_probability
            ),
        ));
    }
    Ok(())
}

const KIND: &str = "port_scan";
/// Probes of one unconfirmed source matched to their answers one by one;
/// beyond, answers count by themselves (a scanner is summarised, and cannot
/// fill the wait table that other sources need).
const WAIT_QUOTA: u32 = 64;
/// First contacts remembered per source, to seed a scanner's port list.
const EARLY_KEPT: usize = 32;
/// Sources whose bare ACKs a worker examines one by one.
const ACK_SUSPECTS: usize = 4096;
/// Exact port lists (8 KiB each) a worker keeps, for confirmed scanners and
/// sources past `EARLY_KEPT` first contacts; given back when they go.
/// Beyond, an event lists the first ports and the estimate.
const PORT_MAPS: usize = 1024;
/// Bits of the per-source filter of contacts already seen.
const SEEN_WORDS: usize = 32;
/// Bits of the per-source filter of answers already counted.
const ANSWERED_WORDS: usize = 8;
/// Answers the filter deduplicates (32 in its 512 bits: a real answer taken
/// for a repeat about once in 300 scans). Past this its false positives
/// would drop real answers (half of them by the 300th: realworld
/// acd_nmapSV's 1,000 closed ports read 628 filtered), so later answers are
/// counted as they come, never more than the contacts.
const DEDUP_MAX: u32 = 32;
/// Open ports remembered per scan, for the event.
const OPEN_KEPT: usize = 8;
/// Targets named per scan, for the event.
const TARGETS_KEPT: usize = 4;
/// Hosts and ports whose failures are counted one by one (the outer bound).
const SPREAD_SLOTS: usize = 2;
/// Port ranges written in an event.
const RANGES_KEPT: usize = 32;

/// The kind of probe, from its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Probe {
    Syn = 0,
    Fin,
    Null,
    Xmas,
    Ack,
    Maimon,
    Udp,
    /// Other crafted flag sets (SYN+FIN, PSH alone, ...).
    Odd,
}

impl Probe {
    const ALL: [Probe; 8] =
        [Probe::Syn, Probe::Fin, Probe::Null, Probe::Xmas, Probe::Ack, Probe::Maimon, Probe::Udp, Probe::Odd];

    fn name(self) -> &'static str {
        match self {
            Probe::Syn => "syn",
            Probe::Fin => "fin",
            Probe::Null => "null",
            Probe::Xmas => "xmas",
            Probe::Ack => "ack",
            Probe::Maimon => "maimon",
            Probe::Udp => "udp",
            Probe::Odd => "odd",
        }
    }

    /// Crafted probes that no ordinary stack sends to start anything.
    fn crafted(self) -> bool {
        matches!(self, Probe::Fin | Probe::Null | Probe::Xmas | Probe::Odd)
    }

    /// What silence after the probe means: a failure (filtered) for a SYN,
    /// and for a bare ACK or FIN+ACK (only a source already caught
    /// sending ones that belong to no connection is waited for: the
    /// stateful firewall dropped it). For crafted probes the failure was
    /// counted when they were sent.
    fn silence_fails(self) -> bool {
        matches!(self, Probe::Syn | Probe::Ack | Probe::Maimon)
    }
}

/// The TCP flags that matter for classifying a probe.
const FLAGS: u16 = tcpflag::FIN | tcpflag::SYN | tcpflag::RST | tcpflag::PSH | tcpflag::ACK | tcpflag::URG;

/// The probe kind of a TCP segment, or None for a segment that is part of
/// (or answers) a connection.
pub fn tcp_probe(t: &TcpInfo, payload_len: u32) -> Option<Probe> {
    let f = t.flags & FLAGS;
    if f & tcpflag::RST != 0 {
        return None;
    }
    if t.is_connection_attempt() {
        return Some(Probe::Syn);
    }
    Some(match f {
        0 => Probe::Null,
        tcpflag::FIN => Probe::Fin,
        x if x == tcpflag::FIN | tcpflag::PSH | tcpflag::URG => Probe::Xmas,
        tcpflag::ACK if payload_len == 0 => Probe::Ack,
        x if x == tcpflag::FIN | tcpflag::ACK && payload_len == 0 => Probe::Maimon,
        x if x & tcpflag::ACK == 0 => Probe::Odd,
        _ => return None,
    })
}

/// Whether a UDP datagram from `sport` to `dport` looks like a service
/// answering (DNS, NTP, DHCP, SSDP replies; NetBIOS 137 to 137, which
/// `netbios_nodestatus` reads), not a probe: it comes from a service port
/// to one no lower. (A scan from source port 53, the old trick to slip past
/// stateless filters, is missed; SIGNATURES.md section 7.)
fn udp_reply(sport: u16, dport: u16, known_service: bool) -> bool {
    (sport < 1024 || known_service) && dport >= sport
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Outcome {
    #[default]
    Pending,
    /// SYN-ACK, or a UDP reply.
    Open,
    /// RST, or ICMP port unreachable from the target itself.
    Closed,
    /// Another ICMP unreachable (a filter talking), or silence after a SYN
    /// or UDP probe.
    Filtered,
    /// Silence where silence proves nothing (crafted probes: open or
    /// filtered).
    Silent,
    /// A UDP probe with no answer: open or filtered. Much UDP is one-way
    /// (syslog, traps, discovery), so it counts toward the outer bound
    /// but not as a failure of the walk.
    NoReply,
}

/// One first contact.
#[derive(Clone, Copy, Debug)]
struct Contact {
    dst: IpAddr,
    port: u16,
    proto: u8,
    probe: Probe,
    outcome: Outcome,
    sport: u16,
    ts: i64,
    /// SYN probes: the fingerprints it matches (`ToolTable::matches`).
    tools: u16,
    /// Known only from its answer (a RST to a bare ACK not looked at):
    /// not a probe packet seen.
    inferred: bool,
    /// SYN probes: the ISN, and whether the SYN came from an OS stack
    /// (SACK permitted: connect(), not a raw packet).
    isn: u32,
    stack: bool,
    /// The probe went to a home host while no home host had been seen
    /// sending (the dispatcher's `dst_spoke`, `home_spoke`): its silence
    /// proves nothing.
    unseen: bool,
}

impl Contact {
    fn new(dst: IpAddr, proto: u8, port: u16, probe: Probe, sport: u16, ts: i64) -> Contact {
        Contact {
            dst,
            port,
            proto,
            probe,
            outcome: Outcome::Pending,
            sport,
            ts,
            tools: 0,
            inferred: false,
            isn: 0,
            stack: false,
            unseen: false,
        }
    }

    fn hash(&self) -> u64 {
        addr_key(self.dst) ^ (u64::from(self.port) << 40) ^ (u64::from(self.proto) << 56)
    }

    fn matches(&self, dst: IpAddr, proto: u8, port: u16) -> bool {
        self.port == port && self.proto == proto && self.dst == dst
    }

    /// What no answer within `settle_s` means for this probe.
    fn silence(&self) -> Outcome {
        match self.probe {
            Probe::Udp => Outcome::NoReply,
            p if p.silence_fails() => Outcome::Filtered,
            _ => Outcome::Silent,
        }
    }
}

/// A probe waiting for its answer, keyed by (source, target, proto, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WaitKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    port: u16,
}

impl std::hash::Hash for WaitKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        crate::detect::keys::hash_pair(&self.src, &self.dst, u32::from(self.port) | (u32::from(self.proto) << 16), h);
    }
}

#[derive(Clone, Copy, Debug)]
struct Waiting {
    probe: Probe,
    ts: i64,
}

/// A source with one first contact.
#[derive(Clone, Copy, Debug)]
struct First {
    contact: Contact,
    sensor: u16,
    last_us: i64,
    traced: bool,
}

/// Which test confirmed the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decider {
    Trw,
    Threshold,
}

/// Failures counted for one host (its ports) or one port (its hosts).
#[derive(Clone, Copy, Debug, Default)]
struct Spread {
    key: u64,
    used: bool,
    seen: Distinct256,
}

impl Spread {
    /// Adds `v` to the slot for `key` (one of `SPREAD_SLOTS`); the estimate.
    fn add(slots: &mut [Spread; SPREAD_SLOTS], key: u64, v: u64) -> u64 {
        let slot = match slots.iter().position(|s| s.used && s.key == key) {
            Some(i) => i,
            None => match slots.iter().position(|s| !s.used) {
                Some(i) => {
                    slots[i] = Spread { key, used: true, seen: Distinct256::default() };
                    i
                }
                None => return 0,
            },
        };
        slots[slot].seen.insert(v);
        slots[slot].seen.estimate()
    }
}

/// Every TCP and UDP port probed by a confirmed scanner: TCP in the first
/// 1024 words, UDP in the second (8 KiB).
type PortBits = Box<[u64; 2048]>;

/// A promoted source: counters and sketches, never one record per contact.
#[derive(Clone, Debug)]
struct Scan {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    walk_start_us: i64,
    llr: f64,
    /// The walk's log-likelihood ratio when the test decided.
    decided_llr: f64,
    decided: Option<Decider>,
    confirmed: bool,
    last_emit_us: i64,
    contacts: u64,
    probes: u64,
    by_probe: [u64; Probe::ALL.len()],
    open: u64,
    closed: u64,
    /// Rejected by an ICMP unreachable that is not the target's own port
    /// unreachable, or a SYN/UDP probe unanswered.
    filtered: u64,
    /// Bare ACKs answered by RST.
    unfiltered: u64,
    failures: u64,
    /// Handshakes the source completed with a bare ACK (a connect scan).
    completed: u64,
    ports: Distinct256,
    hosts: Distinct1024,
    host_ports: [Spread; SPREAD_SLOTS],
    port_hosts: [Spread; SPREAD_SLOTS],
    seen: [u64; SEEN_WORDS],
    /// The first contacts' (proto, port), to seed `port_bits`.
    early: [(u8, u16); EARLY_KEPT],
    early_len: usize,
    targets: [Option<IpAddr>; TARGETS_KEPT],
    open_ports: [Option<(IpAddr, u8, u16)>; OPEN_KEPT],
    port_bits: Option<PortBits>,
    /// Probes of this source in the worker's wait table.
    waiting: u32,
    /// More probes than its wait quota: answers count without a match.
    overflowed: bool,
    /// ICMP echo requests the source sent meanwhile: a sweep of one port
    /// with a ping per host is host discovery (nmap -sn), `host_sweep`'s.
    pinged: u64,
    /// Routers answered some probes with time exceeded: a traceroute,
    /// whose last hops draw port unreachables by design. Only the outer
    /// bound may call it a scan.
    traced: bool,
    ttl_expired: u64,
    first_dst: IpAddr,
    first_port: u16,
    first_sport: u16,
    first_proto: u8,
    sports: SportTrack,
    /// First-contact SYN probes, how many matched each fingerprint, how
    /// many came from an OS stack, and how many repeated the previous ISN.
    syn_contacts: u64,
    /// Probes to home hosts never seen sending (`Contact::unseen`), and
    /// the others: with no answer and no other probe, the return path is
    /// not visible to the sensor.
    unseen_probes: u64,
    seen_probes: u64,
    tool_hits: [u32; MAX_TOOLS],
    stack_syns: u64,
    same_isn: u64,
    last_isn: Option<u32>,
    /// Answers already counted (a filter), so a retransmitted answer
    /// counts once.
    answered: [u64; ANSWERED_WORDS],
    /// Answers put in `answered`.
    answered_n: u32,
}

/// How the source port moves from one first contact to the next.
#[derive(Clone, Copy, Debug, Default)]
struct SportTrack {
    last: Option<u16>,
    same: u64,
    plus_one: u64,
    other: u64,
}

impl SportTrack {
    fn add(&mut self, sport: u16) {
        match self.last {
            Some(l) if l == sport => self.same += 1,
            Some(l) if l.wrapping_add(1) == sport => self.plus_one += 1,
            Some(_) => self.other += 1,
            None => {}
        }
        self.last = Some(sport);
    }

    fn name(&self) -> &'static str {
        let n = self.same + self.plus_one + self.other;
        if n == 0 {
            "unknown"
        } else if self.same * 10 >= n * 9 {
            "fixed"
        } else if self.plus_one * 10 >= n * 9 {
            "incrementing"
        } else {
            "varying"
        }
    }
}

impl Weighted for Scan {
    /// log2 of the failures: one failure is no evidence yet.
    fn credit(&self) -> u8 {
        (64 - self.failures.leading_zeros()).saturating_sub(1).min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
}

/// Thresholds in packet-time microseconds and log-likelihood units.
#[derive(Clone, Copy, Debug)]
struct Limits {
    step_fail: f64,
    step_success: f64,
    upper: f64,
    lower: f64,
    vertical: u64,
    horizontal: u64,
    window_us: i64,
    settle_us: i64,
    idle_us: i64,
}

impl Limits {
    fn of(r: &PortScanRules) -> Limits {
        Limits {
            step_fail: ((1.0 - r.scanner_success) / (1.0 - r.benign_success)).ln(),
            step_success: (r.scanner_success / r.benign_success).ln(),
            upper: (r.detection_probability / r.false_positive_probability).ln(),
            lower: ((1.0 - r.detection_probability) / (1.0 - r.false_positive_probability)).ln(),
            vertical: u64::from(r.vertical_ports),
            horizontal: u64::from(r.horizontal_hosts),
            window_us: (r.window_s * 1e6) as i64,
            settle_us: (r.settle_s * 1e6) as i64,
            idle_us: (r.idle_s * 1e6) as i64,
        }
    }
}

impl Scan {
    fn new(f: &First) -> Scan {
        Scan {
            sensor: f.sensor,
            first_us: f.contact.ts,
            last_us: f.last_us,
            walk_start_us: f.contact.ts,
            llr: 0.0,
            decided_llr: 0.0,
            decided: None,
            confirmed: false,
            last_emit_us: f.contact.ts,
            contacts: 0,
            probes: 0,
            by_probe: [0; Probe::ALL.len()],
            open: 0,
            closed: 0,
            filtered: 0,
            unfiltered: 0,
            failures: 0,
            completed: 0,
            ports: Distinct256::default(),
            hosts: Distinct1024::default(),
            host_ports: [Spread::default(); SPREAD_SLOTS],
            port_hosts: [Spread::default(); SPREAD_SLOTS],
            seen: [0; SEEN_WORDS],
            early: [(0, 0); EARLY_KEPT],
            early_len: 0,
            targets: [None; TARGETS_KEPT],
            open_ports: [None; OPEN_KEPT],
            port_bits: None,
            waiting: 0,
            overflowed: false,
            pinged: 0,
            traced: false,
            ttl_expired: 0,
            first_dst: f.contact.dst,
            first_port: f.contact.port,
            first_sport: f.contact.sport,
            first_proto: f.contact.proto,
            sports: SportTrack::default(),
            syn_contacts: 0,
            unseen_probes: u64::from(f.contact.unseen),
            seen_probes: u64::from(!f.contact.unseen),
            tool_hits: [0; MAX_TOOLS],
            stack_syns: 0,
            same_isn: 0,
            last_isn: None,
            answered: [0; ANSWERED_WORDS],
            answered_n: 0,
        }
    }

    fn seen_bits(h: u64) -> [(usize, u64); 2] {
        let z = mix(h);
        let bits = (SEEN_WORDS * 64) as u64;
        let (a, b) = (z % bits, (z >> 32) % bits);
        [((a / 64) as usize, 1 << (a % 64)), ((b / 64) as usize, 1 << (b % 64))]
    }

    /// Whether the contact was probed before (a filter: a rare false "yes"
    /// undercounts a large scan, never invents one).
    fn seen_before(&self, c: &Contact) -> bool {
        // A port the exact list lacks is new for every host.
        if let Some(bits) = self.port_bits.as_ref()
            && !port_set(bits, c.proto, c.port)
        {
            return false;
        }
        Scan::seen_bits(c.hash()).iter().all(|(w, b)| self.seen.get(*w).is_some_and(|x| x & b != 0))
    }

    /// Counts a probe packet.
    fn count_probe(&mut self, c: &Contact, sensor: u16) {
        if c.inferred {
            return;
        }
        self.probes += 1;
        if c.unseen {
            self.unseen_probes += 1;
        } else {
            self.seen_probes += 1;
        }
        self.by_probe[c.probe as usize] += 1;
        self.last_us = self.last_us.max(c.ts);
        self.sensor = sensor;
    }

    /// Adds a first contact; `outcome` is its answer if already known.
    fn add_contact(&mut self, c: &Contact, lim: &Limits, maps_left: &mut usize) {
        if c.ts.saturating_sub(self.walk_start_us) > lim.window_us && !self.confirmed {
            self.restart(c.ts);
        }
        for (w, b) in Scan::seen_bits(c.hash()) {
            if let Some(x) = self.seen.get_mut(w) {
                *x |= b;
            }
        }
        self.contacts += 1;
        self.sports.add(c.sport);
        if c.probe == Probe::Syn {
            self.syn_contacts += 1;
            for (i, hits) in self.tool_hits.iter_mut().enumerate() {
                if c.tools & (1 << i) != 0 {
                    *hits += 1;
                }
            }
            self.stack_syns += u64::from(c.stack);
            if self.last_isn == Some(c.isn) {
                self.same_isn += 1;
            }
            self.last_isn = Some(c.isn);
        }
        self.ports.insert(mix(u64::from(c.port) | (u64::from(c.proto) << 16)));
        self.hosts.insert(mix(addr_key(c.dst)));
        if !self.targets.contains(&Some(c.dst))
            && let Some(slot) = self.targets.iter_mut().find(|t| t.is_none())
        {
            *slot = Some(c.dst);
        }
        match self.early.get_mut(self.early_len) {
            Some(e) => {
                *e = (c.proto, c.port);
                self.early_len += 1;
            }
            // More first contacts than a client makes: keep every port.
            None => self.start_port_bits(maps_left),
        }
        if let Some(bits) = self.port_bits.as_mut() {
            set_port(bits, c.proto, c.port);
        }
        if c.probe.crafted() {
            // No stack sends these to start anything: a failure when sent
            // (a RST back still says "closed").
            self.fail(c.dst, c.proto, c.port, lim);
        }
    }

    /// Host discovery, not a port scan: one or two ports across hosts it
    /// also pinged (nmap -sn's SYN to 443 and ACK to 80).
    fn discovery(&self) -> bool {
        self.pinged * 2 >= self.contacts && ports_probed(self) <= 2 && targets(self) > 2
    }

    fn restart(&mut self, now: i64) {
        self.walk_start_us = now;
        self.llr = 0.0;
        self.host_ports = [Spread::default(); SPREAD_SLOTS];
        self.port_hosts = [Spread::default(); SPREAD_SLOTS];
    }

    /// A failed contact: the walk steps up and the outer bound counts it.
    fn fail(&mut self, dst: IpAddr, proto: u8, port: u16, lim: &Limits) {
        self.failures += 1;
        self.llr += lim.step_fail;
        self.spread_only(dst, proto, port, lim);
    }

    /// Counts an unanswered contact for the outer bound (and decides).
    fn spread_only(&mut self, dst: IpAddr, proto: u8, port: u16, lim: &Limits) {
        let pk = u64::from(port) | (u64::from(proto) << 16);
        let v = Spread::add(&mut self.host_ports, addr_key(dst), mix(pk));
        let h = Spread::add(&mut self.port_hosts, pk, mix(addr_key(dst)));
        if self.decided.is_none() {
            if self.llr >= lim.upper && !self.traced {
                self.decided = Some(Decider::Trw);
                self.decided_llr = self.llr;
            } else if v >= lim.vertical || h >= lim.horizontal {
                self.decided = Some(Decider::Threshold);
                self.decided_llr = self.llr;
            }
        }
    }

    /// The outcome of one contact of `probe` (None: a contact no longer
    /// matched, counted from the answer alone).
    fn resolve(&mut self, dst: IpAddr, proto: u8, port: u16, probe: Option<Probe>, outcome: Outcome, lim: &Limits) {
        if matches!(outcome, Outcome::Silent | Outcome::Pending) {
            return;
        }
        // One outcome per contact: a retransmitted probe's second answer, or
        // an ICMP error after the silence already counted, is not another.
        if self.answered_n < DEDUP_MAX {
            let h = Contact::new(dst, proto, port, Probe::Syn, 0, 0).hash() ^ 0x5bd1_e995;
            let bits = Scan::seen_bits(h).map(|(w, b)| (w % ANSWERED_WORDS, b));
            if bits.iter().all(|(w, b)| self.answered[*w] & b != 0) {
                return;
            }
            for (w, b) in bits {
                self.answered[w] |= b;
            }
            self.answered_n += 1;
        } else if self.open + self.closed + self.unfiltered + self.filtered >= self.contacts {
            return;
        }
        let crafted = probe.is_some_and(Probe::crafted);
        match (outcome, probe) {
            (Outcome::Open, _) => {
                let v = Some((dst, proto, port));
                if self.open_ports.contains(&v) {
                    // A SYN-ACK retransmitted (the scanner never completes).
                    return;
                }
                self.open += 1;
                if let Some(slot) = self.open_ports.iter_mut().find(|s| s.is_none()) {
                    *slot = v;
                }
                if !crafted && !self.confirmed {
                    self.llr = (self.llr + lim.step_success).max(lim.lower);
                }
            }
            (Outcome::Closed, Some(Probe::Ack | Probe::Maimon)) => {
                self.unfiltered += 1;
                self.fail(dst, proto, port, lim);
            }
            (Outcome::Closed, _) => {
                self.closed += 1;
                if !crafted {
                    self.fail(dst, proto, port, lim);
                }
            }
            (Outcome::Filtered, _) => {
                self.filtered += 1;
                if !crafted {
                    self.fail(dst, proto, port, lim);
                }
            }
            (Outcome::NoReply, _) => {
                self.filtered += 1;
                self.spread_only(dst, proto, port, lim);
            }
            (Outcome::Silent | Outcome::Pending, _) => {}
        }
    }

    /// Starts the exact port list (on confirmation, or past `EARLY_KEPT`
    /// first contacts), from the first contacts.
    fn start_port_bits(&mut self, maps_left: &mut usize) {
        if self.port_bits.is_some() || *maps_left == 0 {
            return;
        }
        *maps_left -= 1;
        let mut bits: PortBits = Box::new([0u64; 2048]);
        for (proto, port) in &self.early[..self.early_len] {
            set_port(&mut bits, *proto, *port);
        }
        self.port_bits = Some(bits);
    }
}

fn port_set(bits: &[u64; 2048], proto: u8, port: u16) -> bool {
    let base = if proto == 17 { 1024 } else { 0 };
    bits.get(base + usize::from(port / 64)).is_some_and(|w| w & (1 << (port % 64)) != 0)
}

fn set_port(bits: &mut [u64; 2048], proto: u8, port: u16) {
    let base = if proto == 17 { 1024 } else { 0 };
    let i = base + usize::from(port / 64);
    if let Some(w) = bits.get_mut(i) {
        *w |= 1 << (port % 64);
    }
}

/// The detector's per-worker state.
pub struct PortScan {
    rules: PortScanRules,
    tools: ToolTable,
    /// UNIX traceroute's UDP ports (`[traceroute]` udp_port_min..max).
    trace_ports: (u16, u16),
    lim: Limits,
    probation: Probation<AddrKey, First>,
    scans: Tier<AddrKey, Scan>,
    /// Probes of promoted, unconfirmed sources waiting for an answer, in
    /// time order: the tick settles the front.
    waits: Fifo<WaitKey, Waiting>,
    /// Sources whose outcome changed since the last tick.
    dirty: Vec<AddrKey>,
    /// Port lists this worker may still start before confirmation.
    maps_left: usize,
    /// Sources whose bare ACKs are probes: a RST without ACK answered one,
    /// or they are confirmed scanners (completed handshakes: connect scan).
    ack_suspects: crate::detect::keys::FastMap<AddrKey, ()>,
    update_us: i64,
    last_sweep_us: i64,
}

impl PortScan {
    pub fn new(
        rules: &PortScanRules,
        tools: &ToolTable,
        trace_ports: (u16, u16),
        cap: usize,
        probation_cap: usize,
        update_interval_s: f64,
    ) -> PortScan {
        PortScan {
            rules: rules.clone(),
            tools: tools.clone(),
            trace_ports,
            lim: Limits::of(rules),
            probation: Probation::new(probation_cap),
            scans: Tier::new(cap),
            waits: Fifo::new(cap.saturating_mul(4)),
            dirty: Vec::new(),
            maps_left: PORT_MAPS,
            ack_suspects: Default::default(),
            update_us: (update_interval_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    fn packet(&mut self, p: &PacketSummary, sensor: u16, cx: &Ctx) {
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            // Answers first: a host talking to itself (loopback) owns both ends.
            L4::Tcp(t) if p.owner_is_dst && (t.is_syn_ack() || t.has(tcpflag::RST)) => {
                let outcome = if t.is_syn_ack() { Outcome::Open } else { Outcome::Closed };
                if !self.answer(ip.dst, ip.src, 6, t.sport, outcome, t.has(tcpflag::ACK), cx)
                    && outcome == Outcome::Closed
                    && !t.has(tcpflag::ACK)
                    && t.dport > t.sport
                {
                    // A RST without ACK that answers nothing we track, from
                    // a lower port to a higher one: the answer to a bare ACK
                    // (or FIN+ACK) probe. The other way round it is a prober
                    // tearing down a SYN-ACK it got (nmap, masscan,
                    // tcptraceroute), which says nothing about the server.
                    self.ack_answered(ip.dst, ip.src, t.sport, p.ts_us, sensor, cx);
                }
            }
            L4::Tcp(t) if p.owner_is_src => {
                let Some(probe) = tcp_probe(t, p.payload_len) else { return };
                // Bare ACKs and FIN+ACKs are mostly connections going about
                // their business: looked at only for suspects (below).
                if matches!(probe, Probe::Ack | Probe::Maimon)
                    && (self.ack_suspects.is_empty() || !self.ack_suspects.contains_key(&AddrKey(ip.src)))
                {
                    return;
                }
                let mut c = Contact::new(ip.dst, 6, t.dport, probe, t.sport, p.ts_us);
                c.unseen = !(p.dst_spoke || p.home_spoke) && cx.shared.home.contains(ip.dst);
                if probe == Probe::Syn {
                    c.tools = self.tools.matches(p, t);
                    c.isn = t.seq;
                    c.stack = t.opts.sack_permitted;
                }
                self.probe(ip.src, c, sensor, cx);
            }
            L4::Udp(u) if p.owner_is_src => {
                let known = u.sport >= 1024 && u.sport <= u.dport && cx.shared.ports.lookup(17, u.sport).is_some();
                if unicast(ip.dst) && !udp_reply(u.sport, u.dport, known) {
                    if (self.trace_ports.0..=self.trace_ports.1).contains(&u.dport) {
                        // UNIX traceroute's ports (traceroute's rules): the
                        // target's port unreachables end a trace, by design,
                        // and `traceroute` reports it.
                        self.mark_traced(ip.src);
                        return;
                    }
                    let mut c = Contact::new(ip.dst, 17, u.dport, Probe::Udp, u.sport, p.ts_us);
                    c.unseen = !(p.dst_spoke || p.home_spoke) && cx.shared.home.contains(ip.dst);
                    self.probe(ip.src, c, sensor, cx);
                }
            }
            // A datagram back from a target to the source that probed it.
            L4::Udp(u) => {
                self.answer(ip.dst, ip.src, 17, u.sport, Outcome::Open, true, cx);
            }
            // A source already probing that also pings: host discovery.
            L4::Icmp(i) if p.owner_is_src && i.is_echo_request() && !self.scans.is_empty() => {
                if let Some(s) = self.scans.get_mut(&AddrKey(ip.src)) {
                    s.pinged += 1;
                }
            }
            L4::Icmp(i) if i.is_time_exceeded() => {
                let Some(q) = &i.quoted else { return };
                if q.has_ports && (q.proto == 6 || q.proto == 17) {
                    self.ttl_expired(q.src, q.dst, q.proto, q.dport);
                }
            }
            L4::Icmp(i) if i.is_unreachable() => {
                let Some(q) = &i.quoted else { return };
                if !q.has_ports || !(q.proto == 6 || q.proto == 17) {
                    return;
                }
                // Port unreachable (v4 code 3, v6 code 4) from the target
                // itself means closed; anything else is a filter talking.
                let port_unreach = if i.v6 { i.code == 4 } else { i.code == 3 };
                let outcome = if port_unreach && ip.src == q.dst { Outcome::Closed } else { Outcome::Filtered };
                self.answer(q.src, q.dst, q.proto, q.dport, outcome, true, cx);
            }
            _ => {}
        }
    }

    /// A probe from `src`.
    fn probe(&mut self, src: IpAddr, c: Contact, sensor: u16, cx: &Ctx) {
        let key = AddrKey(src);
        let lim = self.lim;
        if let Some(s) = self.scans.get_mut(&key) {
            s.count_probe(&c, sensor);
            if s.seen_before(&c) {
                // A bare ACK to a port that answered SYN-ACK completes the
                // handshake: a connect scan (or a client).
                if c.probe == Probe::Ack && s.open_ports.contains(&Some((c.dst, 6, c.port))) {
                    s.completed += 1;
                }
                return;
            }
            s.add_contact(&c, &lim, &mut self.maps_left);
            if c.outcome == Outcome::Pending {
                self.wait_for(key, &c, cx);
            } else {
                s.resolve(c.dst, c.proto, c.port, Some(c.probe), c.outcome, &lim);
            }
            self.dirty.push(key);
            return;
        }
        match self.probation.get_mut(&key) {
            Some(f) if f.contact.matches(c.dst, c.proto, c.port) => f.last_us = f.last_us.max(c.ts),
            Some(_) => {
                if let Some(f) = self.probation.remove(&key) {
                    self.promote(key, f, c, sensor, cx);
                }
            }
            None => {
                // A bare ACK from a source never seen is most often part
                // of a connection older than the capture: it waits here like
                // any first contact and fails only on a RST.
                let evicted = self.probation.insert(key, First { contact: c, sensor, last_us: c.ts, traced: false });
                if evicted > 0 {
                    cx.shared.stats.table(Table::PortScan).evicted.fetch_add(evicted, Relaxed);
                }
            }
        }
    }

    /// Puts a promoted source's contact in the wait table, within its quota.
    fn wait_for(&mut self, key: AddrKey, c: &Contact, cx: &Ctx) {
        let Some(s) = self.scans.get_mut(&key) else { return };
        if s.confirmed || s.waiting >= WAIT_QUOTA {
            s.overflowed = true;
            return;
        }
        s.waiting += 1;
        let wk = WaitKey { src: key.0, dst: c.dst, proto: c.proto, port: c.port };
        if let Some((old, w)) = self.waits.insert_evicting(wk, Waiting { probe: c.probe, ts: c.ts }) {
            // The wait table is full: the oldest probe settles early.
            let silent = Contact::new(old.dst, old.proto, old.port, w.probe, 0, w.ts).silence();
            let settled = cx.now.saturating_sub(w.ts) >= self.lim.settle_us;
            self.settle_one(old, w, if settled { silent } else { Outcome::Silent });
            cx.shared.stats.table(Table::PortScan).evicted.fetch_add(1, Relaxed);
        }
    }

    /// A waiting probe's outcome reaches its source.
    fn settle_one(&mut self, k: WaitKey, w: Waiting, outcome: Outcome) {
        let lim = self.lim;
        let key = AddrKey(k.src);
        if let Some(s) = self.scans.get_mut(&key) {
            s.waiting = s.waiting.saturating_sub(1);
            s.resolve(k.dst, k.proto, k.port, Some(w.probe), outcome, &lim);
            self.dirty.push(key);
        }
    }

    /// A second first contact: the source earns a full entry.
    fn promote(&mut self, key: AddrKey, f: First, c: Contact, sensor: u16, cx: &Ctx) {
        let lim = self.lim;
        let mut s = Scan::new(&f);
        s.traced = f.traced;
        s.count_probe(&f.contact, f.sensor);
        s.add_contact(&f.contact, &lim, &mut self.maps_left);
        let mut first_waits = false;
        match f.contact.outcome {
            Outcome::Pending if c.ts.saturating_sub(f.contact.ts) >= lim.settle_us => {
                let o = f.contact.silence();
                s.resolve(f.contact.dst, f.contact.proto, f.contact.port, Some(f.contact.probe), o, &lim);
            }
            Outcome::Pending => first_waits = true,
            o => s.resolve(f.contact.dst, f.contact.proto, f.contact.port, Some(f.contact.probe), o, &lim),
        }
        s.count_probe(&c, sensor);
        s.add_contact(&c, &lim, &mut self.maps_left);
        if c.outcome != Outcome::Pending {
            s.resolve(c.dst, c.proto, c.port, Some(c.probe), c.outcome, &lim);
        }
        let stats = cx.shared.stats.table(Table::PortScan);
        let inserted = self.scans.insert(key, s);
        if let Inserted::Replaced(_, old) = &inserted
            && old.port_bits.is_some()
        {
            self.maps_left = (self.maps_left + 1).min(PORT_MAPS);
        }
        if !inserted.count(stats, |old| old.failures >= 2) {
            return;
        }
        if first_waits {
            self.wait_for(key, &f.contact, cx);
        }
        if c.outcome == Outcome::Pending {
            self.wait_for(key, &c, cx);
        }
        self.dirty.push(key);
    }

    /// An answer from `target` to `src`'s probe of (proto, port). `ack`:
    /// a TCP answer carried ACK (a RST without one answers no SYN).
    /// Returns whether it answered something tracked.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        src: IpAddr,
        target: IpAddr,
        proto: u8,
        port: u16,
        outcome: Outcome,
        ack: bool,
        cx: &Ctx,
    ) -> bool {
        let key = AddrKey(src);
        let lim = self.lim;
        let _ = cx;
        if let Some(s) = self.scans.get_mut(&key) {
            let wk = WaitKey { src, dst: target, proto, port };
            // One lookup in the wait table, and only for a source that has
            // probes waiting.
            let waited = if s.waiting > 0 { self.waits.remove(&wk) } else { None };
            if let Some(w) = waited {
                if w.probe == Probe::Syn && outcome == Outcome::Closed && !ack {
                    // Not an answer to the SYN: keep waiting.
                    self.waits.insert(wk, w);
                    return false;
                }
                s.waiting = s.waiting.saturating_sub(1);
                s.resolve(target, proto, port, Some(w.probe), outcome, &lim);
                self.dirty.push(key);
                return true;
            }
            // Not waited for: counted from the answer alone once the source
            // is past its quota or confirmed (its probes are not matched one
            // by one any more); otherwise it answers something older.
            if (s.overflowed || s.confirmed) && ack {
                let guess = if proto == 6 { Some(Probe::Syn) } else { Some(Probe::Udp) };
                s.resolve(target, proto, port, guess, outcome, &lim);
                self.dirty.push(key);
                return true;
            }
            return false;
        }
        // A source seen once: its first contact's answer.
        if let Some(f) = self.probation.get_mut(&key)
            && f.contact.matches(target, proto, port)
            && f.contact.outcome == Outcome::Pending
            && (ack || f.contact.probe != Probe::Syn)
        {
            f.contact.outcome = outcome;
            return true;
        }
        false
    }

    fn mark_traced(&mut self, src: IpAddr) {
        let key = AddrKey(src);
        if let Some(s) = self.scans.get_mut(&key) {
            s.traced = true;
        } else if let Some(f) = self.probation.get_mut(&key) {
            f.traced = true;
        }
    }

    /// A router dropped the source's probe for its TTL: not an answer from
    /// the target, and a sign of a traceroute.
    fn ttl_expired(&mut self, src: IpAddr, target: IpAddr, proto: u8, port: u16) {
        let key = AddrKey(src);
        if let Some(s) = self.scans.get_mut(&key) {
            s.traced = true;
            s.ttl_expired += 1;
            if let Some(w) = self.waits.remove(&WaitKey { src, dst: target, proto, port }) {
                self.settle_one(WaitKey { src, dst: target, proto, port }, w, Outcome::Silent);
            }
        } else if let Some(f) = self.probation.get_mut(&key)
            && f.contact.matches(target, proto, port)
        {
            f.contact.outcome = Outcome::Silent;
            f.traced = true;
        }
    }

    /// A RST without ACK from `target`'s `port`: the source sent it a bare
    /// ACK (or FIN+ACK) that belongs to no connection. From now on the
    /// source's bare ACKs are looked at one by one.
    fn ack_answered(&mut self, src: IpAddr, target: IpAddr, port: u16, ts: i64, sensor: u16, cx: &Ctx) {
        let key = AddrKey(src);
        if self.ack_suspects.len() < ACK_SUSPECTS {
            self.ack_suspects.insert(key, ());
        }
        let mut c = Contact::new(target, 6, port, Probe::Ack, 0, ts);
        c.outcome = Outcome::Closed;
        c.inferred = true;
        self.probe(src, c, sensor, cx);
    }

    /// Confirms or updates the sources whose outcomes changed.
    fn review(&mut self, cx: &Ctx, now: i64) {
        let update_us = self.update_us;
        let tools = &self.tools;
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable_by_key(|k| addr_key(k.0));
        dirty.dedup();
        for key in &dirty {
            let Some(s) = self.scans.get_mut(key) else { continue };
            // A source is called a scanner for probes it was seen to send
            // (not only for RSTs that came its way: backscatter).
            if s.decided.is_some() && !s.confirmed && s.probes >= 2 && !s.discovery() {
                s.confirmed = true;
                s.last_emit_us = now;
                s.start_port_bits(&mut self.maps_left);
                if s.open > 0 && self.ack_suspects.len() < ACK_SUSPECTS {
                    // Its ACKs to what answered tell a connect scan.
                    self.ack_suspects.insert(*key, ());
                }
                cx.emit(render(key.0, s, tools, "new", None, cx, now));
            } else if s.confirmed && now.saturating_sub(s.last_emit_us) >= update_us {
                s.last_emit_us = now;
                cx.emit(render(key.0, s, tools, "update", None, cx, now));
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn tick(&mut self, cx: &Ctx) {
        let (now, lim) = (cx.now, self.lim);
        while let Some((k, w)) = self.waits.pop_due(|w| now.saturating_sub(w.ts) >= lim.settle_us) {
            let silent = Contact::new(k.dst, k.proto, k.port, w.probe, 0, w.ts).silence();
            self.settle_one(k, w, silent);
        }
        self.review(cx, now);
        if now.saturating_sub(self.last_sweep_us) < sweep_every(lim.idle_us.min(lim.window_us)) {
            return;
        }
        self.last_sweep_us = now;
        let stats = cx.shared.stats.table(Table::PortScan);
        let gone = self.probation.retain(|_, f| now.saturating_sub(f.last_us) <= lim.window_us);
        let maps_left = &mut self.maps_left;
        let tools = &self.tools;
        let dropped = self.scans.retain(|key, s| {
            if now.saturating_sub(s.last_us) <= lim.idle_us {
                return true;
            }
            if s.port_bits.is_some() {
                *maps_left = (*maps_left + 1).min(PORT_MAPS);
            }
            if s.confirmed {
                cx.emit(render(key.0, s, tools, "final", Some(EndReason::Expired), cx, now));
            }
            false
        });
        stats.expired.fetch_add(gone + dropped, Relaxed);
        // Suspects whose entry went go too, so the set never fills for good.
        let scans = &self.scans;
        self.ack_suspects.retain(|k, _| scans.contains(k));
    }

    /// Ends every detection: probes still unanswered have their silence.
    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        while let Some((k, w)) = self.waits.pop_due(|_| true) {
            let silent = Contact::new(k.dst, k.proto, k.port, w.probe, 0, w.ts).silence();
            self.settle_one(k, w, silent);
        }
        self.dirty.clear();
        let tools = &self.tools;
        for (key, s) in self.scans.iter_mut() {
            if s.confirmed || (s.decided.is_some() && s.probes >= 2 && !s.discovery()) {
                s.confirmed = true;
                s.start_port_bits(&mut self.maps_left);
                cx.emit(render(key.0, s, tools, "final", Some(reason), cx, cx.now));
            }
        }
        self.scans.clear();
        self.probation.clear();
        self.waits.clear();
    }
}

impl Detector for PortScan {
    fn table(&self) -> Table {
        Table::PortScan
    }
    fn interest(&self) -> u16 {
        if self.rules.enabled { class::TCP | class::UDP | class::ICMP } else { 0 }
    }
    fn len(&self) -> usize {
        self.probation.len() + self.scans.len()
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, _sources: &Sources, cx: &Ctx) {
        self.packet(p, sensor, cx);
    }
    fn on_tick(&mut self, _sources: &Sources, cx: &Ctx) {
        if self.rules.enabled {
            self.tick(cx);
        }
    }
    fn flush(&mut self, reason: EndReason, _sources: &Sources, cx: &Ctx) {
        self.end(reason, cx);
    }
}

/// The scan's type: one probe kind, `connect` when the source completed
/// the handshakes it got, or `mixed`.
fn scan_type(s: &Scan) -> &'static str {
    let total: u64 = s.by_probe.iter().sum();
    let (i, top) = s.by_probe.iter().enumerate().max_by_key(|(_, n)| **n).unwrap_or((0, &0));
    if total == 0 || *top * 10 < total * 9 {
        return "mixed";
    }
    let probe = Probe::ALL.get(i).copied().unwrap_or(Probe::Odd);
    // connect(): the OS's own SYNs (SACK permitted, which no raw scanner
    // sets), or handshakes the source completed.
    let stack = s.syn_contacts > 0 && s.stack_syns * 10 >= s.syn_contacts * 9;
    if probe == Probe::Syn && (stack || (s.open > 0 && s.completed * 2 >= s.open)) {
        return "connect";
    }
    if probe == Probe::Odd { "mixed" } else { probe.name() }
}

fn pattern(s: &Scan) -> &'static str {
    let (hosts, ports) = (targets(s), ports_probed(s));
    match (hosts, ports) {
        (0..=1, _) => "vertical",
        (_, 0..=1) => "horizontal",
        (h, p) if h >= 3 && p >= 3 => "block",
        (h, p) if h > p => "horizontal",
        _ => "vertical",
    }
}

/// Port ranges of one protocol from the bitmap: "1-300", "443".
fn ranges(bits: &[u64], out: &mut Vec<String>, more: &mut u64) {
    // Word by word: a run's ends are found with trailing_zeros, so empty
    // and full words cost one step each, not 64 (a render walked all
    // 65,536 ports bit by bit: 2.4 M instructions per event).
    let end = (bits.len() as u32).saturating_mul(64).min(65_536);
    let mut push = |s: u32, e: u32| {
        if out.len() < RANGES_KEPT {
            out.push(if s == e { s.to_string() } else { format!("{s}-{e}") });
        } else {
            *more += 1;
        }
    };
    // `p`: the next port to look at; `start`: the open run's first port.
    let (mut p, mut start) = (0u32, None::<u32>);
    while p < end {
        let Some(w) = bits.get((p / 64) as usize) else { break };
        let off = p % 64;
        // Bits at and above `p` in this word, as set (looking for a run's
        // start) or as clear (looking for its end).
        let look = if start.is_none() { w >> off } else { !w >> off };
        if look == 0 {
            p = (p - off) + 64;
            continue;
        }
        p += look.trailing_zeros();
        match start {
            None => start = Some(p),
            Some(s) => {
                push(s, p - 1);
                start = None;
            }
        }
    }
    if let Some(s) = start {
        push(s, end - 1);
    }
}

fn port_list(s: &Scan) -> Value {
    let early;
    let bits = match s.port_bits.as_ref() {
        Some(b) => b,
        None => {
            // Only the first contacts are known one by one.
            let mut b: PortBits = Box::new([0u64; 2048]);
            for (proto, port) in &s.early[..s.early_len] {
                set_port(&mut b, *proto, *port);
            }
            early = b;
            &early
        }
    };
    port_ranges_json(bits)
}

/// `{"tcp": ["1-150", ...], "udp": [...]}` from a port bitmap (TCP in the
/// first 1024 words, UDP in the rest): the first `RANGES_KEPT` ranges per
/// protocol, then "... N more ranges". Shared with `distributed`.
fn port_ranges_json(bits: &[u64; 2048]) -> Value {
    let mut obj = serde_json::Map::new();
    for (name, half) in [("tcp", &bits[..1024]), ("udp", &bits[1024..])] {
        let mut out = Vec::new();
        let mut more = 0;
        ranges(half, &mut out, &mut more);
        if !out.is_empty() {
            if more > 0 {
                out.push(format!("... {more} more ranges"));
            }
            obj.insert(name.into(), json!(out));
        }
    }
    Value::Object(obj)
}

/// Distinct ports probed: exact from a scanner's port list, else the sketch
/// (never more than the first contacts).
fn ports_probed(s: &Scan) -> u64 {
    match s.port_bits.as_ref() {
        Some(b) => b.iter().map(|w| u64::from(w.count_ones())).sum::<u64>().max(s.ports.estimate().min(1)),
        None => s.ports.estimate().min(s.contacts),
    }
}

/// Distinct hosts probed (the sketch, never more than the first contacts).
fn targets(s: &Scan) -> u64 {
    s.hosts.estimate().min(s.contacts).max(1)
}

/// First contacts that got no answer or were rejected by a filter (for
/// FIN, NULL and Xmas probes: open or filtered).
fn filtered(s: &Scan) -> u64 {
    s.contacts.saturating_sub(s.open + s.closed + s.unfiltered).max(s.filtered)
}

fn endpoint(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V6(v) => format!("[{v}]:{port}"),
        IpAddr::V4(v) => format!("{v}:{port}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn render(
    src: IpAddr,
    s: &Scan,
    tools: &ToolTable,
    status: &str,
    end: Option<EndReason>,
    cx: &Ctx,
    now: i64,
) -> EventLine {
    let id = detection_id(KIND, &[&ip_bytes(&src), &s.first_us.to_be_bytes()]);
    let ty = scan_type(s);
    let pat = pattern(s);
    let same_isn = s.syn_contacts > 1 && (s.same_isn + 1) * 10 >= s.syn_contacts * 9;
    let tool = if ty == "syn" { tools.name_of(&s.tool_hits, s.syn_contacts, same_isn, s.sports.name()) } else { None };
    let hosts: Vec<String> = s.targets.iter().flatten().map(|a| a.to_string()).collect();
    let open: Vec<Value> = s
        .open_ports
        .iter()
        .flatten()
        .map(|(a, proto, port)| {
            json!({"host": a.to_string(), "proto": if *proto == 17 { "udp" } else { "tcp" }, "port": port,
                   "service": cx.service(*proto, *port)})
        })
        .collect();
    let span_s = secs(s.last_us - s.first_us);
    // Probes per second over the scan's span (at least 1 ms, so a burst of
    // probes within one millisecond is a finite rate).
    let rate = s.probes as f64 * 1e6 / (s.last_us - s.first_us).max(1000) as f64;
    let direction = cx.direction(src, s.first_dst);
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "scan_type": ty,
        "pattern": pat,
        "direction": direction,
        "decided_by": match s.decided { Some(Decider::Trw) => "trw", Some(Decider::Threshold) => "threshold", None => "end_of_input" },
        "likelihood_ratio": (s.decided_llr.exp() * 100.0).round() / 100.0,
        "ports_probed": ports_probed(s),
        "targets": targets(s),
        "target_hosts": hosts,
        "ports": port_list(s),
        "open_ports": open,
        "open": s.open,
        "closed": s.closed,
        "filtered": filtered(s),
        "unfiltered": s.unfiltered,
        "return_path_seen": if s.unseen_probes > 0 { Value::Bool(!return_unseen(s)) } else { Value::Null },
        "source_ports": s.sports.name(),
        "probes": s.probes,
        "ttl_expired": s.ttl_expired,
        "probe_kinds": Probe::ALL.iter().filter(|p| s.by_probe[**p as usize] > 0)
            .map(|p| (p.name().to_string(), json!(s.by_probe[*p as usize]))).collect::<serde_json::Map<_, _>>(),
        "rate_pps": (rate * 10.0).round() / 10.0,
        "tool": tool.map(|t| t.name.as_str()).unwrap_or("unknown"),
        "tool_evidence": tool.map(|t| t.evidence.as_str()),
        "first_seen": rfc3339_us(s.first_us),
        "last_seen": rfc3339_us(s.last_us),
        "duration_s": span_s,
    });
    let fact = if s.open > 0 { Fact::PortScanOpen } else { Fact::PortScan };
    // The envelope's flow is the first contact: its Community ID ties the
    // scan to that flow in other tools.
    let flow = Flow { src, dst: s.first_dst, proto: s.first_proto, ports: Some((s.first_sport, s.first_port)) };
    EventBuilder::new(KIND, now, cx.sensor(s.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(src, s.first_dst), None, fact))
        .summary(summary(src, s, ty, pat, direction, tool.map(|t| t.name.as_str()), cx))
        .details(KIND, details)
}

/// Who, what kind of scan, how many ports and hosts, and what it found.
fn summary(
    src: IpAddr,
    s: &Scan,
    ty: &str,
    pat: &str,
    direction: Option<&str>,
    tool: Option<&str>,
    cx: &Ctx,
) -> String {
    let (hosts, ports) = (targets(s), ports_probed(s));
    let what = match ty {
        "syn" => "SYN (half-open) scan",
        "connect" => "connect scan (full handshakes)",
        "fin" => "FIN scan",
        "null" => "NULL scan (no flags)",
        "xmas" => "Xmas scan (FIN+PSH+URG)",
        "ack" => "ACK scan (firewall mapping)",
        "maimon" => "Maimon scan (FIN+ACK)",
        "udp" => "UDP scan",
        _ => "mixed-probe scan",
    };
    let whom = if hosts <= 1 {
        format!("{ports} ports of {}", s.first_dst)
    } else if ports <= 1 {
        format!("port {} on {hosts} hosts", s.first_port)
    } else {
        format!("{ports} ports on {hosts} hosts")
    };
    let out =
        if direction == Some("outbound") { " (outbound: a home host scanning out, likely compromised)" } else { "" };
    let found = if s.open == 0 {
        if return_unseen(s) { String::new() } else { "; nothing answered as open".to_string() }
    } else {
        let shown: Vec<String> = s
            .open_ports
            .iter()
            .flatten()
            .take(8)
            .map(|(a, proto, port)| {
                let svc = cx.service(*proto, *port).map(|n| format!(" {n}")).unwrap_or_default();
                format!("{}{svc}", endpoint(*a, *port))
            })
            .collect();
        format!("; found open: {}{}", shown.join(", "), if s.open > 8 { ", ..." } else { "" })
    };
    let by = tool.map(|t| format!(" by {t}")).unwrap_or_default();
    // What silence means depends on the probe (nmap's own words for it).
    let answers = match ty {
        _ if return_unseen(s) => format!("{} unanswered", filtered(s)),
        "ack" | "maimon" => format!("{} unfiltered (RST), {} filtered", s.unfiltered, filtered(s)),
        "fin" | "null" | "xmas" | "udp" => format!("{} closed, {} open|filtered", s.closed, filtered(s)),
        _ => format!("{} closed, {} filtered", s.closed, filtered(s)),
    };
    let rp = if return_unseen(s) {
        let host = if hosts <= 1 { s.first_dst.to_string() } else { "the targeted home hosts".to_string() };
        format!(
            "; the return path is not visible to the sensor (no packet from {host} was captured), so whether it answered is unknown"
        )
    } else {
        String::new()
    };
    format!("{src}: {pat} {what}{by} of {whom}{out}, {} probes ({answers}){found}{rp}", s.probes)
}

/// Every probe went to home hosts never seen sending, and nothing answered:
/// "filtered" would be a guess.
fn return_unseen(s: &Scan) -> bool {
    s.unseen_probes > 0 && s.seen_probes == 0 && s.open == 0 && s.closed == 0 && s.unfiltered == 0
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rules_tests {
    use super::PortScanRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges_and_order() {
        let r = PortScanRules::parse("x", "[port_scan]\nvertical_ports = 30\n").unwrap();
        assert_eq!((r.vertical_ports, r.horizontal_hosts), (30, 25));
        for (bad, line, key) in [
            ("[port_scan]\nvertical_ports = 1\n", 2, "vertical_ports"),
            ("[port_scan]\nbenign_success = 0.3\nscanner_success = 0.5\n", 3, "scanner_success"),
            ("[port_scan]\ndetection_probability = 0.5\nfalse_positive_probability = 0.5\n", 3, "false_positive"),
            ("[port_scan]\nwindow = 3\n", 2, "window"),
        ] {
            let e = PortScanRules::parse("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
    }
}
