//! Run-wide counters and the `stats` event.
//!
//! Threads keep plain local tallies on the hot path and add them into the
//! shared atomics once per batch (`LocalCounts::flush_into`), so a SIGUSR1
//! snapshot is at most one batch behind and no packet pays for an atomic.

use crate::decode::defrag::FragCounts;
use crate::decode::summary::{DecodeError, L4, LinkKind, PacketSummary};
use crate::report::tally::{Summary, Tally};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

/// Transport classes counted in `stats.protocols`.
pub const PROTOS: [&str; 6] = ["tcp", "udp", "icmp", "icmpv6", "other_ip", "non_ip"];

/// Bounded state tables, for eviction and cap accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `syn_retry`'s (source, destination, port) entries.
    SynRetry,
    /// The per-source table (distinct ports and hosts per source).
    Sources,
    /// `traceroute`'s (tracer, target, method) entries.
    Traceroute,
    /// `smurf`/`fraggle`'s victims and echo/chargen host pairs.
    Smurf,
    /// `netbios_nodestatus`'s (source, stack) entries.
    Netbios,
    /// `periodic_probe` and `source_port_sequence`'s (source, destination,
    /// protocol, port) entries.
    Periodic,
    /// The long memory of addresses: first contact and baseline TTL.
    TtlHistory,
    /// `decoy_scan`'s per-worker (source, destination) probe records.
    DecoyProbes,
    /// `decoy_scan`'s aggregator: (destination, source) candidates.
    Decoy,
    /// `port_scan`'s sources: probation (seen once) and promoted.
    PortScan,
    /// `known_probe`'s sources (trojan ports, proxy hunters, sscan).
    KnownProbe,
    /// `host_sweep`'s sources: probation (one host pinged) and promoted.
    HostSweep,
    /// `anomaly`'s (kind, source) entries.
    Anomaly,
    /// `brute_force`'s open connections and (source, port) entries.
    BruteForce,
    /// `syn_flood` and `reflection`'s (victim, vector, port) entries:
    /// probation (seen once) and promoted.
    Flood,
    /// The service inventory's (home host, service) entries, shared by
    /// every worker (`detect::inventory`).
    Services,
    /// `worm_phase`'s per-worker attempts waiting for an answer, and the
    /// keys settled unanswered.
    WormWaiting,
    /// `worm_phase`'s aggregator: (host, sentry) counters, probation and promoted.
    Worm,
    /// `stats.summary`'s per-source entries and port pairs (`report::tally`).
    Summary,
    /// The firewall-log report's per-source counts (`fwlog::report`):
    /// probation (seen once) and promoted.
    FwSources,
}

impl Table {
    pub const ALL: [Table; 20] = [
        Table::SynRetry,
        Table::Sources,
        Table::Traceroute,
        Table::Smurf,
        Table::Netbios,
        Table::Periodic,
        Table::TtlHistory,
        Table::DecoyProbes,
        Table::Decoy,
        Table::PortScan,
        Table::KnownProbe,
        Table::HostSweep,
        Table::Anomaly,
        Table::BruteForce,
        Table::Flood,
        Table::Services,
        Table::WormWaiting,
        Table::Worm,
        Table::Summary,
        Table::FwSources,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Table::SynRetry => "syn_retry",
            Table::Sources => "sources",
            Table::Traceroute => "traceroute",
            Table::Smurf => "smurf",
            Table::Netbios => "netbios_nodestatus",
            Table::Periodic => "periodic",
            Table::TtlHistory => "ttl_history",
            Table::DecoyProbes => "decoy_probes",
            Table::Decoy => "decoy_scan",
            Table::PortScan => "port_scan",
            Table::KnownProbe => "known_probe",
            Table::HostSweep => "host_sweep",
            Table::Anomaly => "anomaly",
            Table::BruteForce => "brute_force",
            Table::Flood => "flood",
            Table::Services => "service_inventory",
            Table::WormWaiting => "worm_waiting",
            Table::Worm => "worm_phase",
            Table::Summary => "summary",
            Table::FwSources => "fw_sources",
        }
    }
}
const NTABLES: usize = Table::ALL.len();

pub use crate::detect::fair::TableCounters;

/// Shared, lock-free run counters.
#[derive(Default)]
pub struct Stats {
    /// Latest packet time the reader has seen (updated per tick).
    pub clock_us: AtomicI64,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub by_link: [AtomicU64; LinkKind::ALL.len()],
    pub by_proto: [AtomicU64; PROTOS.len()],
    pub decode_errors: [AtomicU64; DecodeError::ALL.len()],
    /// The fragment reassembler's counts (`FragCounts::NAMES`), published
    /// by the reader once per tick and at the end.
    pub fragments: [AtomicU64; FragCounts::NAMES.len()],
    /// Packets dropped because an analyzer channel was full (live only).
    pub channel_drops: AtomicU64,
    /// Records a worker could not hand to the decoy aggregator (live only).
    pub decoy_drops: AtomicU64,
    /// Attempts a worker could not hand to the worm aggregator (live only).
    pub worm_drops: AtomicU64,
    /// A signal (or a closed output) stopped a replay or `picket fwlog`
    /// before the end of its input: the figures cover what was read.
    pub interrupted: AtomicBool,
    /// libpcap's counters (live only): received, dropped, if_dropped.
    pub pcap_received: AtomicU64,
    pub pcap_dropped: AtomicU64,
    pub pcap_if_dropped: AtomicU64,
    /// Files that could not be read to the end.
    pub bad_files: AtomicU64,
    /// Packets earlier than a packet stored before them (`time_disorder`).
    pub time_backwards: AtomicU64,
    /// The largest such step back, in microseconds.
    pub time_max_step_back_us: AtomicI64,
    /// Packets too far out of order to be put back: analysed late.
    pub time_late: AtomicU64,
    pub tables: [TableCounters; NTABLES],
    /// Episodes of table pressure and their stderr note (`note::Pressure`).
    pub pressure: crate::note::Pressure,
    /// Detections a detector declined because a per-source rule said "scan".
    pub syn_retry_suppressed_scan: AtomicU64,
    /// syn_retry detections left to known_probe (a trojan or backdoor port).
    pub syn_retry_suppressed_known_probe: AtomicU64,
    /// Retry-loop candidates left to `syn_flood`: SYNs at a flood rate.
    pub syn_retry_suppressed_flood: AtomicU64,
    /// Retry-loop candidates whose every SYN fits a mass scanner's probe
    /// (`rules/scanners.toml`, role "scanner"): a scanner's retries.
    pub syn_retry_suppressed_scan_tool: AtomicU64,
    /// Retry-loop candidates whose service answered most attempts: lost
    /// SYNs of a working service, not a retry loop.
    pub syn_retry_suppressed_answered: AtomicU64,
    /// Datagrams periodic_probe left alone: LAN device discovery polls
    /// (`discovery` ports between site-local addresses).
    pub periodic_suppressed_discovery: AtomicU64,
    /// Firewall-log lines read (`picket fwlog`), and how they ended: records,
    /// other lines (not packet records), bad lines (unreadable, overlong).
    pub fw_lines: AtomicU64,
    pub fw_records: AtomicU64,
    pub fw_other_lines: AtomicU64,
    pub fw_bad_lines: AtomicU64,
    /// `picket fwlog`: records fed to the detectors as packets, records not
    /// fed by `fwlog::record::Unfed` reason, and sources whose missing fields
    /// were not remembered (table full).
    pub fw_fed: AtomicU64,
    pub fw_not_fed: [AtomicU64; 3],
    pub fw_sources_untracked: AtomicU64,
    /// `live --fw-log`: attempts the log thread could not keep (channel or
    /// table full), records beyond the pending cap, followed-file rotations
    /// and truncations.
    pub fw_attempts_dropped: AtomicU64,
    pub fw_records_uncorrelated: AtomicU64,
    pub fw_rotations: AtomicU64,
    pub fw_truncations: AtomicU64,
    /// Syslog datagrams from senders outside `--syslog-allow`.
    pub fw_syslog_rejected: AtomicU64,
    /// Syslog datagrams the kernel dropped, its receive buffer full (SO_RXQ_OVFL).
    pub fw_syslog_kernel_drops: AtomicU64,
    /// Syslog over TCP and TLS (`syslog_tcp`): connections accepted,
    /// refused by `--syslog-allow`, closed at once over the connection caps,
    /// failed TLS handshakes, closed for idling; frames read, frames over
    /// the length limit (skipped), bytes read.
    pub fw_syslog_tcp_accepted: AtomicU64,
    pub fw_syslog_tcp_refused: AtomicU64,
    pub fw_syslog_tcp_over_cap: AtomicU64,
    pub fw_syslog_tcp_handshake_failed: AtomicU64,
    pub fw_syslog_tcp_idle_closed: AtomicU64,
    pub fw_syslog_tcp_frames: AtomicU64,
    pub fw_syslog_tcp_bad_frames: AtomicU64,
    pub fw_syslog_tcp_bytes: AtomicU64,
    /// What the capture shows of the home net's return path (written by the
    /// reader at the end of the input).
    pub return_path: ReturnPath,
    /// The output thread: failed writes, and events that could not be
    /// written (a replay stopped by the failure, or live, past the hold).
    pub output_write_errors: AtomicU64,
    pub output_events_dropped: AtomicU64,
    /// Each `-o` target's own counts (`stats.output.sinks`; the two above
    /// are their sums).
    pub output_sinks: Mutex<Vec<std::sync::Arc<SinkStats>>>,
    /// `--fw-log`: the firewall index behind the `firewall` object: its
    /// tallies and estimated bytes, and the tallies that left it for room
    /// or (live) for age.
    pub fw_index_tallies: AtomicU64,
    pub fw_index_bytes: AtomicU64,
    pub fw_index_evicted: AtomicU64,
    pub fw_index_expired: AtomicU64,
    /// Events written, by type (written by the output thread only).
    pub events: Mutex<BTreeMap<&'static str, u64>>,
    /// The workers' `report::tally` summaries, merged as each one ends;
    /// the final `stats` event carries it as `summary`.
    pub summary: Mutex<Option<Box<Summary>>>,
}

/// One `-o` target's counts (`stats.output.sinks[]`).
#[derive(Default)]
pub struct SinkStats {
    /// The target as `-o` names it.
    pub target: String,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
    /// Connections made again after one broke (redis, unix).
    pub reconnects: AtomicU64,
}

impl SinkStats {
    fn to_json(&self) -> Value {
        json!({
            "target": self.target,
            "events_written": self.written.load(Relaxed),
            "events_dropped": self.dropped.load(Relaxed),
            "write_errors": self.write_errors.load(Relaxed),
            "reconnects": self.reconnects.load(Relaxed),
        })
    }
}

/// `stats.return_path`: whether the sensor sees the home hosts' own
/// packets. A capture with traffic toward the home net and none from it (an
/// asymmetric tap, an inbound-only DDoS sample) cannot tell an answer from
/// silence.
#[derive(Default)]
pub struct ReturnPath {
    /// Home addresses that received at least one packet.
    pub home_hosts_targeted: AtomicU64,
    /// Of those, the ones never seen sending a packet in the whole run.
    pub never_seen_sending: AtomicU64,
    /// Home addresses seen sending at least one packet.
    pub home_hosts_sending: AtomicU64,
    /// Summaries the dispatcher copied to another worker for the flood
    /// detector's per-victim shard.
    pub flood_copies: AtomicU64,
}

impl ReturnPath {
    /// No home host was seen sending, though some received traffic.
    pub fn missing(&self) -> bool {
        self.home_hosts_targeted.load(Relaxed) > 0 && self.home_hosts_sending.load(Relaxed) == 0
    }

    pub fn to_json(&self) -> Value {
        let missing = self.missing();
        json!({
            "home_hosts_targeted": self.home_hosts_targeted.load(Relaxed),
            "never_seen_sending": self.never_seen_sending.load(Relaxed),
            "home_hosts_sending": self.home_hosts_sending.load(Relaxed),
            "visible": !missing,
            "explanation": if missing {
                Value::from("no packet from the home net was captured: the return path is not visible (an asymmetric tap or an inbound-only capture), so whether a home host answered is unknown")
            } else {
                Value::Null
            },
        })
    }
}

/// A thread's private tallies, flushed into `Stats` once per batch.
#[derive(Default)]
pub struct LocalCounts {
    pub packets: u64,
    pub bytes: u64,
    pub by_link: [u64; LinkKind::ALL.len()],
    pub by_proto: [u64; PROTOS.len()],
    pub decode_errors: [u64; DecodeError::ALL.len()],
}

impl LocalCounts {
    /// Counts one decoded frame.
    #[inline]
    pub fn count(&mut self, link: LinkKind, p: &PacketSummary) {
        self.packets += 1;
        self.bytes += u64::from(p.wire_len);
        self.by_link[link.index()] += 1;
        self.by_proto[proto_index(p)] += 1;
        if let Some(e) = p.error {
            self.decode_errors[e.index()] += 1;
        }
    }

    /// Adds the tallies into `stats` and zeroes them.
    pub fn flush_into(&mut self, stats: &Stats) {
        if self.packets == 0 {
            return;
        }
        stats.packets.fetch_add(self.packets, Relaxed);
        stats.bytes.fetch_add(self.bytes, Relaxed);
        add_all(&stats.by_link, &self.by_link);
        add_all(&stats.by_proto, &self.by_proto);
        add_all(&stats.decode_errors, &self.decode_errors);
        *self = LocalCounts::default();
    }
}

fn add_all(dst: &[AtomicU64], src: &[u64]) {
    for (d, s) in dst.iter().zip(src) {
        if *s != 0 {
            d.fetch_add(*s, Relaxed);
        }
    }
}

fn proto_index(p: &PacketSummary) -> usize {
    match (&p.ip, &p.l4) {
        (None, _) => 5,
        (Some(_), L4::Tcp(_)) => 0,
        (Some(_), L4::Udp(_)) => 1,
        (Some(_), L4::Icmp(i)) if i.v6 => 3,
        (Some(_), L4::Icmp(_)) => 2,
        (Some(_), _) => 4,
    }
}

impl Stats {
    /// Publishes the reassembler's running totals.
    pub fn publish_fragments(&self, c: &FragCounts) {
        for (d, v) in self.fragments.iter().zip(c.values()) {
            d.store(v, Relaxed);
        }
    }

    pub fn table(&self, t: Table) -> &TableCounters {
        &self.tables[t as usize]
    }

    /// Keys evicted or refused for room so far, every table: what
    /// `note::Pressure` watches.
    pub fn pushed_out(&self) -> u64 {
        self.tables.iter().map(|c| c.evicted.load(Relaxed) + c.cap_hits.load(Relaxed)).sum()
    }

    /// Counts one event of `kind` written to the output.
    pub fn count_event(&self, kind: &'static str) {
        if let Ok(mut m) = self.events.lock() {
            *m.entry(kind).or_insert(0) += 1;
        }
    }

    /// Adds a worker's summary tallies at the end of its input.
    pub fn merge_summary(&self, t: &Tally) {
        if let Ok(mut m) = self.summary.lock() {
            match m.as_mut() {
                Some(s) => s.merge(t),
                None => {
                    let mut s = Box::<Summary>::default();
                    s.merge(t);
                    *m = Some(s);
                }
            }
        }
    }

    /// The body of a `stats` event.
    pub fn to_json(&self, wall_s: f64, is_final: bool) -> Value {
        let packets = self.packets.load(Relaxed);
        let named = |names: &mut dyn Iterator<Item = &'static str>, vals: &[AtomicU64]| {
            let mut m = Map::new();
            for (n, v) in names.zip(vals) {
                m.insert(n.to_string(), json!(v.load(Relaxed)));
            }
            Value::Object(m)
        };
        let mut tables = Map::new();
        for t in Table::ALL {
            let c = self.table(t);
            tables.insert(
                t.name().to_string(),
                json!({
                    "entries": c.entries.load(Relaxed),
                    "expired": c.expired.load(Relaxed),
                    "evicted": c.evicted.load(Relaxed),
                    "cap_hits": c.cap_hits.load(Relaxed),
                    "lost_detections": c.lost_detections.load(Relaxed),
                }),
            );
        }
        let fw_not_fed: Map<String, Value> = crate::fwlog::record::Unfed::ALL
            .iter()
            .zip(&self.fw_not_fed)
            .map(|(u, n)| (u.name().to_string(), n.load(Relaxed).into()))
            .collect();
        let events: BTreeMap<&str, u64> = self.events.lock().map(|m| m.clone()).unwrap_or_default();
        let pps = if wall_s > 0.0 { packets as f64 / wall_s } else { 0.0 };
        let summary = match self.summary.lock() {
            Ok(m) if is_final => m.as_ref().map(|t| t.to_json()),
            _ => None,
        };
        let mut body = json!({
            "final": is_final,
            "interrupted": self.interrupted.load(Relaxed),
            "packets": packets,
            "bytes": self.bytes.load(Relaxed),
            "link_types": named(&mut LinkKind::ALL.iter().map(|l| l.name()), &self.by_link),
            "protocols": named(&mut PROTOS.iter().copied(), &self.by_proto),
            "decode_errors": named(&mut DecodeError::ALL.iter().map(|e| e.name()), &self.decode_errors),
            "fragments": named(&mut FragCounts::NAMES.iter().copied(), &self.fragments),
            "drops": {
                "kernel": self.pcap_dropped.load(Relaxed),
                "interface": self.pcap_if_dropped.load(Relaxed),
                "channel": self.channel_drops.load(Relaxed),
                "decoy_records": self.decoy_drops.load(Relaxed),
                "worm_records": self.worm_drops.load(Relaxed),
            },
            "pcap": { "received": self.pcap_received.load(Relaxed) },
            "state": tables,
            "state_pressure": {
                "episodes": self.pressure.episodes.load(Relaxed),
                "active": self.pressure.active(),
            },
            "suppressed": {
                "syn_retry_as_scan": self.syn_retry_suppressed_scan.load(Relaxed),
                "syn_retry_as_known_probe": self.syn_retry_suppressed_known_probe.load(Relaxed),
                "syn_retry_as_flood": self.syn_retry_suppressed_flood.load(Relaxed),
                "syn_retry_as_scan_tool": self.syn_retry_suppressed_scan_tool.load(Relaxed),
                "syn_retry_mostly_answered": self.syn_retry_suppressed_answered.load(Relaxed),
                "periodic_lan_discovery": self.periodic_suppressed_discovery.load(Relaxed),
            },
            "return_path": self.return_path.to_json(),
            "flood_copies": self.return_path.flood_copies.load(Relaxed),
            "fw_index": {
                "tallies": self.fw_index_tallies.load(Relaxed),
                "bytes": self.fw_index_bytes.load(Relaxed),
                "evicted": self.fw_index_evicted.load(Relaxed),
                "expired": self.fw_index_expired.load(Relaxed),
            },
            "output": {
                "write_errors": self.output_write_errors.load(Relaxed),
                "events_dropped": self.output_events_dropped.load(Relaxed),
                "sinks": self.output_sinks.lock().map(|v| v.iter().map(|s| s.to_json()).collect::<Vec<_>>()).unwrap_or_default(),
            },
            "bad_files": self.bad_files.load(Relaxed),
            "time_disorder": {
                "backwards": self.time_backwards.load(Relaxed),
                "max_step_back_s": self.time_max_step_back_us.load(Relaxed) as f64 / 1e6,
                "late": self.time_late.load(Relaxed),
            },
            "fw_lines": self.fw_lines.load(Relaxed),
            "fw_records": self.fw_records.load(Relaxed),
            "fw_other_lines": self.fw_other_lines.load(Relaxed),
            "fw_bad_lines": self.fw_bad_lines.load(Relaxed),
            "fw_fed": self.fw_fed.load(Relaxed),
            "fw_not_fed": fw_not_fed,
            "fw_sources_untracked": self.fw_sources_untracked.load(Relaxed),
            "fw_live": {
                "attempts_dropped": self.fw_attempts_dropped.load(Relaxed),
                "records_uncorrelated": self.fw_records_uncorrelated.load(Relaxed),
                "rotations": self.fw_rotations.load(Relaxed),
                "truncations": self.fw_truncations.load(Relaxed),
                "syslog_rejected": self.fw_syslog_rejected.load(Relaxed),
                "syslog_kernel_drops": self.fw_syslog_kernel_drops.load(Relaxed),
                "syslog_tcp": {
                    "accepted": self.fw_syslog_tcp_accepted.load(Relaxed),
                    "refused": self.fw_syslog_tcp_refused.load(Relaxed),
                    "over_cap": self.fw_syslog_tcp_over_cap.load(Relaxed),
                    "handshake_failed": self.fw_syslog_tcp_handshake_failed.load(Relaxed),
                    "idle_closed": self.fw_syslog_tcp_idle_closed.load(Relaxed),
                    "frames": self.fw_syslog_tcp_frames.load(Relaxed),
                    "bad_frames": self.fw_syslog_tcp_bad_frames.load(Relaxed),
                    "bytes": self.fw_syslog_tcp_bytes.load(Relaxed),
                },
            },
            "events": events,
            "wall_time_s": (wall_s * 1000.0).round() / 1000.0,
            "packets_per_second": pps.round(),
        });
        if let (Some(sum), Some(o)) = (summary, body.as_object_mut()) {
            o.insert("summary".into(), sum);
        }
        body
    }
}
