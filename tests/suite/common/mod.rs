//! Shared helpers for the integration tests: run the picket binary and read
//! its JSON lines back as typed values.
#![allow(dead_code)]

pub mod craft;
pub mod lab;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One output line, as the README documents it.
#[derive(Debug, Deserialize, Clone)]
pub struct Event {
    pub timestamp: String,
    pub event_type: String,
    pub sensor: String,
    pub src_ip: Option<String>,
    pub src_port: Option<u16>,
    pub dest_ip: Option<String>,
    pub dest_port: Option<u16>,
    pub proto: Option<String>,
    pub community_id: Option<String>,
    pub severity: Option<i64>,
    pub summary: Option<String>,
    pub syn_retry: Option<SynRetry>,
    pub traceroute: Option<Traceroute>,
    pub smurf: Option<Amplification>,
    pub fraggle: Option<Amplification>,
    pub netbios_nodestatus: Option<Netbios>,
    pub periodic_probe: Option<PeriodicProbe>,
    pub source_port_sequence: Option<SourcePortSequence>,
    pub decoy_scan: Option<DecoyScan>,
    pub port_scan: Option<PortScan>,
    pub fw_correlation: Option<FwCorrelation>,
    pub worm_phase: Option<WormPhase>,
    pub worm_summary: Option<WormSummary>,
    pub stats: Option<Stats>,
    /// `--fw-log`: what the firewall logs say about the event's flow or source.
    #[serde(default)]
    pub firewall: Option<Firewall>,
    /// `picket fwlog`: `firewall_log` on detections made from log records.
    #[serde(default)]
    pub origin: Option<String>,
}

/// `worm_phase` (README "worm_phase").
#[derive(Debug, Deserialize, Clone)]
pub struct WormPhase {
    pub status: String,
    pub phase: u8,
    pub phase_name: String,
    pub reason: String,
    pub sentry: String,
    pub host: String,
    pub direction: Option<String>,
    pub attempts: u64,
    pub packets: u64,
    pub targets: u64,
    pub per_minute: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub worm: Option<String>,
    pub detection_id: String,
}

/// `worm_summary`: the day's troubled hosts.
#[derive(Debug, Deserialize, Clone)]
pub struct WormSummary {
    pub day: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub hosts_total: u64,
    pub hosts_phase3: u64,
    pub phase_events: u64,
    pub hosts: Vec<WormHost>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct WormHost {
    pub host: String,
    pub direction: Option<String>,
    pub phase: u8,
    pub sentries: Vec<String>,
    pub attempts: u64,
    pub packets: u64,
    pub targets: u64,
    pub worm: Option<String>,
}

/// The `firewall` object of a detection event (`replay --fw-log`).
#[derive(Debug, Deserialize, Clone)]
pub struct Firewall {
    pub scope: String,
    pub records: u64,
    pub actions: Vec<String>,
    pub rules: Vec<String>,
    pub first_record: Option<String>,
    pub last_record: Option<String>,
    /// Where the records came from: `{channel, sender}` (issue 17).
    #[serde(default)]
    pub via: Vec<serde_json::Value>,
    #[serde(default)]
    pub spoofable: bool,
}

/// The `fw_correlation` event (`picket fwlog`, `replay --fw-log`).
#[derive(Debug, Deserialize, Clone)]
pub struct FwCorrelation {
    pub mode: String,
    pub records: u64,
    pub denials: u64,
    pub matched: u64,
    pub unmatched_records: u64,
    pub unlogged_packets: u64,
    pub clock_offset_s: Option<f64>,
    pub first_record: Option<String>,
    pub last_record: Option<String>,
    pub by_action: BTreeMap<String, u64>,
    pub by_port: Vec<FwPort>,
    pub by_port_more: u64,
    pub by_source: Vec<FwSource>,
    pub by_source_more: u64,
    pub sources: u64,
    pub formats: BTreeMap<String, u64>,
    pub files: Vec<FwFile>,
    pub bad_lines: Vec<FwBadLines>,
    #[serde(default)]
    pub attempts_on_wire: u64,
    #[serde(rename = "final", default)]
    pub is_final: bool,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct FwPort {
    pub port: Option<u16>,
    pub proto: Option<String>,
    pub count: u64,
    pub share: f64,
    pub service: Option<String>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct FwSource {
    pub src: Option<String>,
    pub count: u64,
    pub share: f64,
    pub ports: u64,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct FwFile {
    pub file: String,
    pub format: Option<String>,
    pub lines: u64,
    pub records: u64,
    pub other_lines: u64,
    pub bad_lines: u64,
    pub overlong_lines: u64,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct FwBadLines {
    pub file: String,
    pub count: u64,
    pub first: Vec<FwBadLine>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct FwBadLine {
    pub line: u32,
    pub reason: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct TtlRange {
    pub min: u8,
    pub max: u8,
    pub initial_ttl: u8,
    pub hops_min: u8,
    pub hops_max: u8,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct SharedFingerprint {
    pub fields: Vec<String>,
    pub sport: Option<u16>,
    pub isn: Option<u32>,
    pub ip_id: bool,
    pub ip_id_sequence: bool,
    pub ttl: Option<u8>,
    pub window: Option<u16>,
    pub tcp_options: Option<String>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct DecoyEvidence {
    pub src: String,
    pub probes: u64,
    pub ports: u64,
    pub completed_ports: u64,
    pub probe_types: Vec<String>,
    pub ttl: TtlRange,
    pub ttl_randomised: bool,
    pub baseline_ttl: Option<TtlRange>,
    pub ttl_consistent: Option<bool>,
    pub conversation: String,
    pub earlier_contact: bool,
    pub first_contact: String,
    pub first_probe: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct DecoyScan {
    pub id: String,
    pub status: String,
    pub end_reason: Option<String>,
    pub sources: Vec<String>,
    pub sources_more: u64,
    pub suspected_source: Option<String>,
    pub suspect_basis: Option<String>,
    pub spoofed: Vec<String>,
    pub ports: Vec<u16>,
    pub ports_probed: u64,
    pub probe_types: Vec<String>,
    pub shared_fingerprint: SharedFingerprint,
    pub evidence: Vec<DecoyEvidence>,
    pub confidence: String,
    pub reasons: Vec<String>,
    pub direction: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Traceroute {
    pub id: String,
    pub status: String,
    pub end_reason: Option<String>,
    pub method: String,
    pub direction: Option<String>,
    pub probes: u64,
    pub ttl_min: u8,
    pub ttl_max: u8,
    pub distinct_ttls: u64,
    pub ports: Option<PortRange>,
    pub dest_port: Option<u16>,
    pub hops_before_sensor: Option<u16>,
    pub reached_target: bool,
    pub target_answers: u64,
    pub time_exceeded: u64,
    pub unreachable: u64,
    pub routers: Vec<String>,
    pub routers_more: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// The details of `smurf` and `fraggle` events.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Amplification {
    pub id: String,
    pub status: String,
    pub end_reason: Option<String>,
    pub pattern: String,
    pub victim: String,
    pub amplifiers: Vec<String>,
    pub amplifiers_more: u64,
    pub subnets: Vec<String>,
    pub packets: u64,
    pub pps: f64,
    pub replies: u64,
    pub responders: u64,
    pub dest_port: Option<u16>,
    pub dest_ports: Vec<u16>,
    pub direction: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Gap {
    pub start: String,
    pub end: String,
    pub seconds: f64,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct BurstShape {
    pub bursts: u32,
    pub size_min: u32,
    pub size_max: u32,
    pub spread_s: f64,
    pub pause_s_min: f64,
    pub pause_s_max: f64,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct ScoreComponents {
    pub skew: f64,
    pub madm: f64,
    pub regular_share: f64,
    pub coverage: f64,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct PeriodicProbe {
    pub id: String,
    pub status: String,
    pub end_reason: Option<String>,
    pub period_s: f64,
    pub jitter_s: f64,
    pub cycles: u64,
    pub missed: u64,
    pub off_period: u64,
    pub attempts: u64,
    pub retransmissions: u64,
    pub answered: u64,
    pub gaps: Vec<Gap>,
    pub gaps_total: u64,
    pub burst: Option<BurstShape>,
    pub score: f64,
    pub score_components: ScoreComponents,
    pub service: Option<String>,
    pub direction: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Wrap {
    pub at: String,
    pub from: u16,
    pub to: u16,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct SourcePortSequence {
    pub id: String,
    pub status: String,
    pub end_reason: Option<String>,
    pub step: u32,
    pub step_share: f64,
    pub min_port: u16,
    pub max_port: u16,
    pub first_port: u16,
    pub last_port: u16,
    pub wraps: Vec<Wrap>,
    pub wraps_total: u64,
    pub attempts: u64,
    pub retransmissions: u64,
    pub answered: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct SynRetry {
    pub id: String,
    pub status: String,
    pub end_reason: Option<String>,
    pub attempts: u64,
    pub retransmissions: u64,
    pub succeeded: u64,
    pub source_ports: u64,
    pub first_source_port: u16,
    pub last_source_port: u16,
    pub payload_bytes: u64,
    pub answered: bool,
    pub rejected_by: String,
    pub service: Option<String>,
    pub direction: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Netbios {
    pub id: String,
    pub status: String,
    pub end_reason: Option<String>,
    pub stack: String,
    pub verdict: String,
    pub queries: u64,
    pub targets: u64,
    pub sample_targets: Vec<String>,
    pub more_targets: u64,
    pub interval_s: Option<f64>,
    pub timing: String,
    pub followed_by_smb: SmbFollowUp,
    pub answers: u64,
    pub unreachables: u64,
    pub ports_probed: u64,
    pub source_port: u16,
    pub direction: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct SmbFollowUp {
    pub targets: u64,
    pub syns: u64,
    pub ports: Vec<u16>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct Drops {
    pub kernel: u64,
    pub interface: u64,
    pub channel: u64,
}

#[derive(Debug, Deserialize, Clone)]
pub struct Stats {
    #[serde(rename = "final")]
    pub is_final: bool,
    pub packets: u64,
    pub bytes: u64,
    pub link_types: BTreeMap<String, u64>,
    pub protocols: BTreeMap<String, u64>,
    pub decode_errors: BTreeMap<String, u64>,
    pub drops: Drops,
    pub events: BTreeMap<String, u64>,
    pub bad_files: u64,
    /// A signal stopped a replay or `picket fwlog` before the end of its input.
    pub interrupted: bool,
    #[serde(default)]
    pub fw_lines: u64,
    #[serde(default)]
    pub fw_records: u64,
    #[serde(default)]
    pub fw_other_lines: u64,
    #[serde(default)]
    pub fw_bad_lines: u64,
    #[serde(default)]
    pub fw_fed: u64,
    #[serde(default)]
    pub fw_not_fed: BTreeMap<String, u64>,
    pub pcap: BTreeMap<String, u64>,
    pub wall_time_s: f64,
    pub packets_per_second: f64,
}

/// The `port_scan` details.
#[derive(Debug, Deserialize, Clone)]
pub struct PortScan {
    pub status: String,
    pub scan_type: String,
    pub pattern: String,
    pub direction: Option<String>,
    pub decided_by: String,
    pub ports_probed: u64,
    pub targets: u64,
    pub ports: BTreeMap<String, Vec<String>>,
    pub open_ports: Vec<OpenPort>,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    pub unfiltered: u64,
    pub probes: u64,
    pub rate_pps: f64,
    pub tool: String,
    pub source_ports: String,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Deserialize, Clone)]
pub struct OpenPort {
    pub host: String,
    pub proto: String,
    pub port: u16,
    pub service: Option<String>,
}

/// A finished run.
pub struct Run {
    pub code: Option<i32>,
    /// Every line but `service_inventory`, which describes the run (one
    /// per replay, whatever was found) and is kept in `inventory`.
    pub events: Vec<Event>,
    pub inventory: Vec<serde_json::Value>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of_type(&self, t: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.event_type == t).collect()
    }
    /// The final stats event (must be the last line).
    pub fn stats(&self) -> &Stats {
        let last = self.events.last().expect("no output at all");
        assert_eq!(last.event_type, "stats", "last line is not stats");
        let s = last.stats.as_ref().expect("stats body");
        assert!(s.is_final);
        s
    }
    /// syn_retry detections, final events only.
    pub fn syn_retry_finals(&self) -> Vec<&SynRetry> {
        self.events.iter().filter_map(|e| e.syn_retry.as_ref()).filter(|d| d.status == "final").collect()
    }
    /// traceroute detections, final events only.
    pub fn traceroute_finals(&self) -> Vec<&Traceroute> {
        self.events.iter().filter_map(|e| e.traceroute.as_ref()).filter(|d| d.status == "final").collect()
    }
    /// smurf (or fraggle) detections, final events only.
    pub fn amplification_finals(&self, kind: &str) -> Vec<&Amplification> {
        self.events
            .iter()
            .filter(|e| e.event_type == kind)
            .filter_map(|e| e.smurf.as_ref().or(e.fraggle.as_ref()))
            .filter(|d| d.status == "final")
            .collect()
    }
    /// netbios_nodestatus detections, final events only, with their envelope.
    pub fn netbios_finals(&self) -> Vec<(&Event, &Netbios)> {
        self.events
            .iter()
            .filter_map(|e| e.netbios_nodestatus.as_ref().map(|d| (e, d)))
            .filter(|(_, d)| d.status == "final")
            .collect()
    }
    /// periodic_probe detections, final events only, with their envelopes.
    pub fn periodic_finals(&self) -> Vec<(&Event, &PeriodicProbe)> {
        self.events
            .iter()
            .filter_map(|e| e.periodic_probe.as_ref().map(|d| (e, d)))
            .filter(|(_, d)| d.status == "final")
            .collect()
    }
    /// source_port_sequence detections, final events only, with their envelopes.
    pub fn sequence_finals(&self) -> Vec<(&Event, &SourcePortSequence)> {
        self.events
            .iter()
            .filter_map(|e| e.source_port_sequence.as_ref().map(|d| (e, d)))
            .filter(|(_, d)| d.status == "final")
            .collect()
    }
    /// decoy_scan detections, final events only, with their envelopes.
    pub fn decoy_finals(&self) -> Vec<(&Event, &DecoyScan)> {
        self.events
            .iter()
            .filter_map(|e| e.decoy_scan.as_ref().map(|d| (e, d)))
            .filter(|(_, d)| d.status == "final")
            .collect()
    }
    /// port_scan detections, final events only, with their envelopes.
    pub fn port_scan_finals(&self) -> Vec<(&Event, &PortScan)> {
        self.events
            .iter()
            .filter_map(|e| e.port_scan.as_ref().map(|d| (e, d)))
            .filter(|(_, d)| d.status == "final")
            .collect()
    }
    /// stderr lines that are not notes.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.starts_with("picket: note:") && !l.trim().is_empty()).collect()
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_picket")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A capture from the project's own `pcaps/`.
pub fn pcap(name: &str) -> PathBuf {
    let p = root().join("pcaps").join(name);
    assert!(p.exists(), "missing test capture {}", p.display());
    p
}

/// `../shared/REL`, the shared data beside the checkout (CI lays it there).
/// Absent, the test fails: a test that checks nothing must not pass. With
/// `PICKET_SKIP_SHARED=1` it says on stderr that it skipped (written past
/// the test harness's capture, so it shows) and returns `None`.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = root().join("../shared").join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("PICKET_SKIP_SHARED").is_some_and(|v| v == "1") {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped (PICKET_SKIP_SHARED=1): ../shared/{rel} is absent");
        return None;
    }
    panic!(
        "../shared/{rel} is absent: this test reads the shared data beside the checkout; set PICKET_SKIP_SHARED=1 to skip it"
    )
}

/// `../shared/corpus/pcaps` (see [`shared`]).
pub fn corpus() -> Option<PathBuf> {
    shared("corpus/pcaps")
}

/// `../shared/corpus/pcaps/NAME` (see [`shared`]).
pub fn corpus_file(name: &str) -> Option<PathBuf> {
    shared(&format!("corpus/pcaps/{name}"))
}

/// `../shared/corpus/fwlogs` (see [`shared`]).
pub fn fw_corpus() -> Option<PathBuf> {
    shared("corpus/fwlogs")
}

/// Runs `picket fwlog` with a fixed reference date (2026-11-22) so syslog
/// years do not depend on the day the tests run.
pub fn fwlog(paths: &[&Path], extra: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.arg("fwlog").args(["--fw-reference", "2026-11-22"]).args(extra).args(paths);
    finish(cmd.output().expect("run picket"))
}

impl Run {
    /// The `fw_correlation` event (exactly one).
    pub fn fw(&self) -> &FwCorrelation {
        let v: Vec<&FwCorrelation> = self.events.iter().filter_map(|e| e.fw_correlation.as_ref()).collect();
        assert_eq!(v.len(), 1, "{}", self.stdout);
        v[0]
    }
}

/// Parses stdout into events; panics (failing the test) on a bad line.
pub fn parse(stdout: &str) -> Vec<Event> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

pub fn finish(out: Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "picket panicked: {stderr}");
    let inventory = stdout
        .lines()
        .filter(|l| l.contains("\"event_type\":\"service_inventory\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad inventory line {l:?}: {e}")))
        .collect();
    let events = parse(&stdout).into_iter().filter(|e| e.event_type != "service_inventory").collect();
    Run { code: out.status.code(), events, inventory, stdout, stderr }
}

/// Runs `picket ARGS...`.
pub fn picket(args: &[&str]) -> Run {
    let out = Command::new(bin()).args(args).output().expect("run picket");
    finish(out)
}

/// Runs `picket ARGS...` whose stdout is not JSON (e.g. `rules check`).
pub fn picket_raw(args: &[&str]) -> Run {
    let out = Command::new(bin()).args(args).output().expect("run picket");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "picket panicked: {stderr}");
    Run {
        code: out.status.code(),
        events: Vec::new(),
        inventory: Vec::new(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// Replays `paths` with the lab's home net.
pub fn replay(paths: &[&Path], extra: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.arg("replay").args(paths).args(["--home-net", "192.0.2.0/24,2001:db8:d::/48"]).args(extra);
    finish(cmd.output().expect("run picket"))
}

/// Counts packets with libpcap directly, as an independent tally.
pub fn count_packets(p: &Path) -> u64 {
    let mut cap = pcap::Capture::from_file(p).expect("open capture");
    let mut n = 0;
    while cap.next_packet().is_ok() {
        n += 1;
    }
    n
}

/// A fresh temporary directory.
pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("picket-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}

/// Writes a classic pcap (Ethernet, microseconds) holding `frames`.
pub fn write_pcap(path: &Path, frames: &[(i64, Vec<u8>)]) {
    write_pcap_link(path, 1, frames)
}

/// Writes a classic pcap of link type `link` (microseconds) holding `frames`.
pub fn write_pcap_link(path: &Path, link: u32, frames: &[(i64, Vec<u8>)]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&link.to_le_bytes());
    for (ts, f) in frames {
        b.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).expect("write pcap");
}
