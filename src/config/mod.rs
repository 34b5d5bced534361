//! Rules loading: detector thresholds and the port knowledge base, from TOML
//! files in a rules directory (or the copies built into the binary).
//!
//! Rule files are hostile input: nothing here panics, files over
//! [`MAX_RULES_FILE_BYTES`] are refused, unknown keys and out-of-range values
//! are errors, and every error is one line naming the file, the line and the
//! key (`rules/picket.toml:14: [syn_retry] min_attempts: must be between 2
//! and 16, got 40`).

use crate::ports::PortTable;
use serde::Deserialize;
use std::fmt;
use std::io::Read;
use std::path::Path;
use toml::Spanned;

/// Largest rules file accepted, in bytes.
pub const MAX_RULES_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The shipped detector settings (`rules/picket.toml`).
pub const BUILTIN_PICKET_TOML: &str = include_str!("../../rules/picket.toml");
/// The shipped port knowledge base (`rules/ports.toml`).
pub const BUILTIN_PORTS_TOML: &str = include_str!("../../rules/ports.toml");

/// Label used in errors for the built-in copy of `picket.toml`.
const BUILTIN_PICKET_LABEL: &str = "<built-in>/picket.toml";
/// Label used in errors for the built-in copy of `ports.toml`.
const BUILTIN_PORTS_LABEL: &str = "<built-in>/ports.toml";

/// Settings shared by every analyzer.
#[derive(Clone, Debug, PartialEq)]
pub struct General {
    /// Minimum packet-time seconds between re-emissions of a growing detection.
    pub update_interval_s: f64,
    /// Most sources tracked per worker by the per-source table.
    pub max_sources: usize,
    /// Seconds a per-source entry may stay idle before it is dropped.
    pub source_idle_s: f64,
    /// SIGNATURES.md section 9 terms for targets without asset data (1..=5).
    pub criticality: i64,
    pub system_countermeasures: i64,
    pub network_countermeasures: i64,
}

impl Default for General {
    fn default() -> General {
        General {
            update_interval_s: 60.0,
            max_sources: 65536,
            source_idle_s: 600.0,
            criticality: 3,
            system_countermeasures: 2,
            network_countermeasures: 2,
        }
    }
}

/// `[syn_retry]`: unanswered, repeated connection attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct SynRetryRules {
    pub enabled: bool,
    pub min_attempts: u32,
    pub window_s: f64,
    pub settle_s: f64,
    pub min_retransmit_gap_s: f64,
    pub max_dest_ports_per_source: u32,
    pub max_dest_hosts_per_source: u32,
    pub max_tracked: usize,
}

impl Default for SynRetryRules {
    fn default() -> SynRetryRules {
        SynRetryRules {
            enabled: true,
            min_attempts: 3,
            window_s: 600.0,
            settle_s: 3.0,
            min_retransmit_gap_s: 0.5,
            max_dest_ports_per_source: 8,
            max_dest_hosts_per_source: 16,
            max_tracked: 65536,
        }
    }
}

/// `[traceroute]`: probes with rising TTL from one tracer to one target
/// (SIGNATURES.md section 3).
#[derive(Clone, Debug, PartialEq)]
pub struct TracerouteRules {
    pub enabled: bool,
    /// Probes arriving with a TTL above this are ordinary traffic.
    pub max_probe_ttl: u8,
    /// Distinct TTL values needed (the hops the trace climbed).
    pub min_ttls: u32,
    /// Probes needed.
    pub min_probes: u32,
    /// UNIX traceroute's UDP destination ports.
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// Seconds without a probe that end a trace.
    pub idle_s: f64,
    pub max_tracked: usize,
}

impl Default for TracerouteRules {
    fn default() -> TracerouteRules {
        TracerouteRules {
            enabled: true,
            max_probe_ttl: 30,
            min_ttls: 3,
            min_probes: 4,
            udp_port_min: 33434,
            udp_port_max: 33600,
            idle_s: 60.0,
            max_tracked: 16384,
        }
    }
}

/// `[smurf]`: echo requests (smurf) and UDP echo/chargen (fraggle) sent to a
/// directed broadcast, and the echo/chargen loop (SIGNATURES.md section 4).
#[derive(Clone, Debug, PartialEq)]
pub struct SmurfRules {
    pub enabled: bool,
    /// Extra subnets whose all-ones / all-zeros addresses are broadcasts
    /// (besides the home-net blocks).
    pub broadcast_subnets: crate::homenet::HomeNet,
    /// UDP destination ports that make a broadcast datagram a fraggle.
    pub fraggle_ports: Vec<u16>,
    /// Packets to broadcasts from one victim needed to fire.
    pub min_packets: u32,
    /// Packets between UDP 7 and 19 of two hosts needed to call it a loop.
    pub loop_min_packets: u32,
    pub idle_s: f64,
    pub max_tracked: usize,
}

impl Default for SmurfRules {
    fn default() -> SmurfRules {
        SmurfRules {
            enabled: true,
            broadcast_subnets: crate::homenet::HomeNet::default(),
            fraggle_ports: vec![7, 19],
            min_packets: 3,
            loop_min_packets: 4,
            idle_s: 60.0,
            max_tracked: 16384,
        }
    }
}

/// `[netbios_nodestatus]`: NetBIOS NodeStatus lookups and scans
/// (SIGNATURES.md section 5).
#[derive(Clone, Debug, PartialEq)]
pub struct NetbiosRules {
    pub enabled: bool,
    /// Up to this many targets from one source: a lookup.
    pub lookup_max_targets: u32,
    /// From this many targets from one source: a scan.
    pub scan_min_targets: u32,
    /// A querying source that probed this many destination ports lately is
    /// a port scanner, not a host looking up a name.
    pub port_scan_min_ports: u32,
    /// Seconds without a query that end a detection.
    pub idle_s: f64,
    /// Seconds after the last query within which TCP 139/445 counts as a follow-up.
    pub smb_window_s: f64,
    /// Windows' retry pattern: at most this many queries per target...
    pub windows_queries: u16,
    /// ...spaced this many seconds apart (median)...
    pub windows_interval_s: f64,
    /// ...give or take this much.
    pub windows_tolerance_s: f64,
    /// Progressive timeouts: the first retry gap falls in this range (s)...
    pub progressive_first_min_s: f64,
    pub progressive_first_max_s: f64,
    /// ...and the longest gap is at least this many times the first.
    pub progressive_growth: f64,
    pub max_tracked: usize,
}

impl Default for NetbiosRules {
    fn default() -> NetbiosRules {
        NetbiosRules {
            enabled: true,
            lookup_max_targets: 2,
            scan_min_targets: 10,
            port_scan_min_ports: 10,
            idle_s: 120.0,
            smb_window_s: 60.0,
            windows_queries: 3,
            windows_interval_s: 1.5,
            windows_tolerance_s: 0.3,
            progressive_first_min_s: 12.0,
            progressive_first_max_s: 20.0,
            progressive_growth: 1.6,
            max_tracked: 16384,
        }
    }
}

/// `[periodic_probe]`: attempts repeating on a period, or in bursts
/// (SIGNATURES.md section 1). Its table also feeds `source_port_sequence`.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodicProbeRules {
    pub enabled: bool,
    pub min_cycles: u32,
    pub max_jitter_ratio: f64,
    pub min_period_s: f64,
    pub fold_tolerance: f64,
    pub gap_periods: u32,
    pub min_regular_share: f64,
    pub min_coverage: f64,
    pub burst_break_ratio: f64,
    pub max_burst_spread_s: f64,
    pub min_burst_size: u32,
    pub min_bursts: u32,
    pub min_burst_pause_s: f64,
    pub max_dest_ports_per_source: u32,
    pub max_dest_hosts_per_source: u32,
    pub idle_s: f64,
    pub max_tracked: usize,
}

impl Default for PeriodicProbeRules {
    fn default() -> PeriodicProbeRules {
        PeriodicProbeRules {
            enabled: true,
            min_cycles: 5,
            max_jitter_ratio: 0.1,
            min_period_s: 1.5,
            fold_tolerance: 0.15,
            gap_periods: 3,
            min_regular_share: 0.5,
            min_coverage: 0.75,
            burst_break_ratio: 3.0,
            max_burst_spread_s: 60.0,
            min_burst_size: 3,
            min_bursts: 3,
            min_burst_pause_s: 20.0,
            max_dest_ports_per_source: 8,
            max_dest_hosts_per_source: 16,
            idle_s: 1800.0,
            max_tracked: 32768,
        }
    }
}

/// `[source_port_sequence]`: source ports counting up by a small step
/// (SIGNATURES.md section 1).
#[derive(Clone, Debug, PartialEq)]
pub struct SourcePortSequenceRules {
    pub enabled: bool,
    pub min_attempts: u32,
    pub min_step_share: f64,
    pub max_step: u32,
    pub min_mean_interval_s: f64,
}

impl Default for SourcePortSequenceRules {
    fn default() -> SourcePortSequenceRules {
        SourcePortSequenceRules {
            enabled: true,
            min_attempts: 5,
            min_step_share: 0.8,
            max_step: 4,
            min_mean_interval_s: 1.0,
        }
    }
}

/// How sure a `decoy_scan` verdict is (ordered: low < medium < high).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    fn parse(s: &str) -> Option<Confidence> {
        match s {
            "low" => Some(Confidence::Low),
            "medium" => Some(Confidence::Medium),
            "high" => Some(Confidence::High),
            _ => None,
        }
    }
}

/// `[decoy_scan]`: several sources probing the same ports of one
/// destination, one machine behind them (SIGNATURES.md section 6).
#[derive(Clone, Debug, PartialEq)]
pub struct DecoyScanRules {
    pub enabled: bool,
    /// Sources probing the same ports of one destination needed.
    pub min_sources: u32,
    /// Distinct ports each source must probe on the destination.
    pub min_ports: u32,
    /// Jaccard similarity of two sources' port sets to call them one set.
    pub min_overlap: f64,
    /// Most of a source's probed ports that may carry real conversations.
    pub max_completed_share: f64,
    /// Sources count together when their probes fall within this window;
    /// a detection ends after this long without new probes.
    pub window_s: f64,
    /// TTL drift (hops) still consistent with an address's baseline.
    pub ttl_tolerance: u8,
    /// Verdicts below this confidence are not reported.
    pub min_confidence: Confidence,
    /// How long the long memory keeps an idle address.
    pub history_idle_s: f64,
    pub history_max_tracked: usize,
    /// (source, destination) probe records across all workers.
    pub max_tracked: usize,
    /// (destination, source) candidates held by the aggregator.
    pub max_candidates: usize,
}

impl Default for DecoyScanRules {
    fn default() -> DecoyScanRules {
        DecoyScanRules {
            enabled: true,
            min_sources: 3,
            min_ports: 5,
            min_overlap: 0.8,
            max_completed_share: 0.5,
            window_s: 300.0,
            ttl_tolerance: 2,
            min_confidence: Confidence::Low,
            history_idle_s: 86_400.0,
            history_max_tracked: 262_144,
            max_tracked: 32_768,
            max_candidates: 16_384,
        }
    }
}

/// Everything loaded from a rules directory.
#[derive(Clone, Debug)]
pub struct Rules {
    pub general: General,
    pub syn_retry: SynRetryRules,
    pub periodic_probe: PeriodicProbeRules,
    pub source_port_sequence: SourcePortSequenceRules,
    pub netbios: NetbiosRules,
    pub traceroute: TracerouteRules,
    pub smurf: SmurfRules,
    pub decoy_scan: DecoyScanRules,
    pub ports: PortTable,
}

/// A rules file that could not be used.
///
/// `Display` is one line: `FILE:LINE: MESSAGE`, or `FILE: MESSAGE` when no line
/// applies (unreadable file, unknown file name, missing directory).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or directory) the error is about, as given to the loader.
    pub file: String,
    /// 1-based line in `file`, when the error points into the document.
    pub line: Option<usize>,
    /// The offending key, e.g. `[syn_retry] min_attempts`, when known.
    pub key: Option<String>,
    /// What is wrong; already mentions `key` when there is one.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it one line whatever the parser put in the message.
        let msg = printable(&self.message, MAX_MESSAGE_CHARS);
        let file = printable(&self.file, MAX_MESSAGE_CHARS);
        match self.line {
            Some(line) => write!(f, "{file}:{line}: {msg}"),
            None => write!(f, "{file}: {msg}"),
        }
    }
}

/// Longest file name or message shown by [`ConfigError`]'s `Display`.
const MAX_MESSAGE_CHARS: usize = 400;

/// One printable line: whitespace runs become one space, other control
/// characters become `?`, and the text is cut to `max` characters.
fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in one_line(s).chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// Collapses whitespace runs (including newlines) into single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl ConfigError {
    /// An error about a whole file or directory (no line).
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { file: file.into(), line: None, key: None, message: message.into() }
    }

    /// An error at byte offset `at` of `text`, about `key`.
    pub fn at(file: &str, text: &str, at: usize, key: Option<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { file: file.to_string(), line: Some(line_of(text, at)), key, message: message.into() }
    }

    /// A value error for `key` whose value sits at `span` in `text`:
    /// `FILE:LINE: KEY: MESSAGE`.
    pub fn value(
        file: &str,
        text: &str,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::at(file, text, span.start, Some(key.to_string()), format!("{key}: {message}"))
    }

    /// Converts a TOML syntax or type error into a one-line error.
    pub fn from_toml(file: &str, text: &str, err: &toml::de::Error) -> ConfigError {
        let raw = friendly_types(&one_line(err.message()));
        let start = err.span().map(|s| s.start);
        let table = start.map(|s| table_at(text, s)).unwrap_or_default();
        let on_header = start.is_some_and(|s| line_text(text, s).trim_start().starts_with('['));
        // serde's deny_unknown_fields message: "unknown field `x`, expected ...".
        let (key, message) = if let Some(name) =
            raw.strip_prefix("unknown field `").and_then(|r| r.split_once('`')).map(|(n, _)| n.to_string())
        {
            let expected = raw.split_once(", expected ").map(|(_, e)| format!(" (expected {e})")).unwrap_or_default();
            let what = if on_header {
                format!("unknown table `{name}`")
            } else if table.is_empty() {
                format!("unknown key `{name}` at top level")
            } else {
                format!("unknown key `{name}` in {table}")
            };
            (Some(name.clone()), format!("{what}{expected}"))
        } else if let Some(name) =
            raw.strip_prefix("missing field `").and_then(|r| r.split_once('`')).map(|(n, _)| n.to_string())
        {
            let where_ = if table.is_empty() { "at top level".to_string() } else { format!("in {table}") };
            (Some(name.clone()), format!("missing key `{name}` {where_}"))
        } else if let Some(name) =
            raw.strip_prefix("unknown variant `").and_then(|r| r.split_once('`')).map(|(n, _)| n.to_string())
        {
            (None, format!("unknown table `{name}`: {raw}"))
        } else {
            // Type errors point at the value; name the key on that line.
            let key = start.and_then(|s| key_on_line(text, s));
            let message = match (&key, table.is_empty()) {
                (Some(k), false) => format!("{table} {k}: {raw}"),
                (Some(k), true) => format!("{k}: {raw}"),
                (None, false) if on_header => format!("{table}: {raw}"),
                (None, _) => raw,
            };
            (key, message)
        };
        ConfigError { file: file.to_string(), line: start.map(|s| line_of(text, s)), key, message }
    }
}

/// Rewrites serde's Rust type names into words an operator knows.
fn friendly_types(msg: &str) -> String {
    let mut m = msg.to_string();
    for (from, to) in [
        (" as i128", ""),
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
    ] {
        m = m.replace(from, to);
    }
    if m.starts_with("invalid type: integer") && m.ends_with("expected an integer") {
        m = m.replace("invalid type: integer", "integer out of range:");
        m = m.replace(", expected an integer", "");
    }
    m
}

/// The text of the line holding byte offset `at`.
fn line_text(text: &str, at: usize) -> &str {
    let at = floor_char_boundary(text, at);
    let start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    text[start..].split('\n').next().unwrap_or("")
}

/// Largest char boundary <= `at` (clamped to the text).
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// 1-based line number of byte offset `at` in `text` (clamped to the text).
pub fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The `[table]` / `[[array]]` header in force at byte offset `at`, or "".
fn table_at(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let mut header = String::new();
    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        if pos > at {
            break;
        }
        let t = line.trim();
        if t.starts_with('[') {
            let close = if t.starts_with("[[") { "]]" } else { "]" };
            header = match t.find(close) {
                Some(end) => t[..end + close.len()].to_string(),
                None => t.to_string(),
            };
        }
        pos += line.len();
    }
    header
}

/// The bare key at the start of the line holding byte offset `at`, if any.
fn key_on_line(text: &str, at: usize) -> Option<String> {
    let line = line_text(text, at);
    let (k, _) = line.split_once('=')?;
    let k = k.trim();
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
        Some(k.to_string())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// picket.toml
// ---------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PicketFile {
    general: Option<GeneralFile>,
    syn_retry: Option<SynRetryFile>,
    // Parsed by `parse_behaviour_sections`.
    #[allow(dead_code)]
    traceroute: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    smurf: Option<serde::de::IgnoredAny>,
    /// Checked here for unknown keys and types; values read by [`parse_netbios_toml`].
    #[allow(dead_code)]
    netbios_nodestatus: Option<NetbiosFile>,
    // Read by `parse_periodic_toml`; listed here so the keys are checked.
    #[allow(dead_code)]
    periodic_probe: Option<PeriodicProbeFile>,
    #[allow(dead_code)]
    source_port_sequence: Option<SourcePortSequenceFile>,
    /// Checked here for unknown keys and types; values read by [`parse_decoy_toml`].
    #[allow(dead_code)]
    decoy_scan: Option<DecoyScanFile>,
}

/// The sections `parse_periodic_toml` reads (the rest is checked by `PicketFile`).
#[derive(Deserialize, Default)]
struct PeriodicSections {
    periodic_probe: Option<PeriodicProbeFile>,
    source_port_sequence: Option<SourcePortSequenceFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PeriodicProbeFile {
    enabled: Option<Spanned<bool>>,
    min_cycles: Option<Spanned<i64>>,
    max_jitter_ratio: Option<Spanned<f64>>,
    min_period_s: Option<Spanned<f64>>,
    fold_tolerance: Option<Spanned<f64>>,
    gap_periods: Option<Spanned<i64>>,
    min_regular_share: Option<Spanned<f64>>,
    min_coverage: Option<Spanned<f64>>,
    burst_break_ratio: Option<Spanned<f64>>,
    max_burst_spread_s: Option<Spanned<f64>>,
    min_burst_size: Option<Spanned<i64>>,
    min_bursts: Option<Spanned<i64>>,
    max_dest_hosts_per_source: Option<Spanned<i64>>,
    min_burst_pause_s: Option<Spanned<f64>>,
    max_dest_ports_per_source: Option<Spanned<i64>>,
    idle_s: Option<Spanned<f64>>,
    max_tracked: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SourcePortSequenceFile {
    enabled: Option<Spanned<bool>>,
    min_attempts: Option<Spanned<i64>>,
    min_step_share: Option<Spanned<f64>>,
    max_step: Option<Spanned<i64>>,
    min_mean_interval_s: Option<Spanned<f64>>,
}

/// Parses the `[periodic_probe]` and `[source_port_sequence]` sections of a
/// `picket.toml` (the whole file is validated by [`parse_picket_toml`]).
pub fn parse_periodic_toml(
    file: &str,
    text: &str,
) -> Result<(PeriodicProbeRules, SourcePortSequenceRules), ConfigError> {
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(file, text.len() as u64));
    }
    let doc: PeriodicSections = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    let mut pp = PeriodicProbeRules::default();
    let mut ps = SourcePortSequenceRules::default();
    if let Some(s) = doc.periodic_probe {
        let k = |n: &str| format!("[periodic_probe] {n}");
        if let Some(v) = &s.enabled {
            pp.enabled = *v.get_ref();
        }
        if let Some(v) = &s.min_cycles {
            pp.min_cycles = int_in(file, text, &k("min_cycles"), v, 3, 64)? as u32;
        }
        if let Some(v) = &s.max_jitter_ratio {
            pp.max_jitter_ratio = float_in(file, text, &k("max_jitter_ratio"), v, 0.0, false, 1.0)?;
        }
        if let Some(v) = &s.min_period_s {
            pp.min_period_s = float_in(file, text, &k("min_period_s"), v, 0.0, true, 86_400.0)?;
        }
        if let Some(v) = &s.fold_tolerance {
            pp.fold_tolerance = float_in(file, text, &k("fold_tolerance"), v, 0.0, true, 0.45)?;
        }
        if let Some(v) = &s.gap_periods {
            pp.gap_periods = int_in(file, text, &k("gap_periods"), v, 2, 16)? as u32;
        }
        if let Some(v) = &s.min_regular_share {
            pp.min_regular_share = float_in(file, text, &k("min_regular_share"), v, 0.0, false, 1.0)?;
        }
        if let Some(v) = &s.min_coverage {
            pp.min_coverage = float_in(file, text, &k("min_coverage"), v, 0.0, false, 1.0)?;
        }
        if let Some(v) = &s.burst_break_ratio {
            pp.burst_break_ratio = float_in(file, text, &k("burst_break_ratio"), v, 1.5, false, 1000.0)?;
        }
        if let Some(v) = &s.max_burst_spread_s {
            pp.max_burst_spread_s = float_in(file, text, &k("max_burst_spread_s"), v, 0.0, true, 3600.0)?;
        }
        if let Some(v) = &s.min_burst_size {
            pp.min_burst_size = int_in(file, text, &k("min_burst_size"), v, 2, 64)? as u32;
        }
        if let Some(v) = &s.min_bursts {
            pp.min_bursts = int_in(file, text, &k("min_bursts"), v, 2, 32)? as u32;
        }
        if let Some(v) = &s.min_burst_pause_s {
            pp.min_burst_pause_s = float_in(file, text, &k("min_burst_pause_s"), v, 0.0, false, 86_400.0)?;
        }
        if let Some(v) = &s.max_dest_ports_per_source {
            pp.max_dest_ports_per_source = int_in(file, text, &k("max_dest_ports_per_source"), v, 1, 65_536)? as u32;
        }
        if let Some(v) = &s.max_dest_hosts_per_source {
            pp.max_dest_hosts_per_source = int_in(file, text, &k("max_dest_hosts_per_source"), v, 1, 1 << 24)? as u32;
        }
        if let Some(v) = &s.idle_s {
            pp.idle_s = float_in(file, text, &k("idle_s"), v, 0.0, true, 86_400.0)?;
        }
        if let Some(v) = &s.max_tracked {
            pp.max_tracked = int_in(file, text, &k("max_tracked"), v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
        }
    }
    if let Some(s) = doc.source_port_sequence {
        let k = |n: &str| format!("[source_port_sequence] {n}");
        if let Some(v) = &s.enabled {
            ps.enabled = *v.get_ref();
        }
        if let Some(v) = &s.min_attempts {
            ps.min_attempts = int_in(file, text, &k("min_attempts"), v, 3, 64)? as u32;
        }
        if let Some(v) = &s.min_step_share {
            ps.min_step_share = float_in(file, text, &k("min_step_share"), v, 0.0, true, 1.0)?;
        }
        if let Some(v) = &s.max_step {
            ps.max_step = int_in(file, text, &k("max_step"), v, 1, 16)? as u32;
        }
        if let Some(v) = &s.min_mean_interval_s {
            ps.min_mean_interval_s = float_in(file, text, &k("min_mean_interval_s"), v, 0.0, false, 86_400.0)?;
        }
    }
    Ok((pp, ps))
}

/// The `[netbios_nodestatus]` table alone (read by [`parse_netbios_toml`]).
#[derive(Deserialize, Default)]
struct NetbiosOnly {
    netbios_nodestatus: Option<NetbiosFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NetbiosFile {
    enabled: Option<Spanned<bool>>,
    lookup_max_targets: Option<Spanned<i64>>,
    scan_min_targets: Option<Spanned<i64>>,
    port_scan_min_ports: Option<Spanned<i64>>,
    idle_s: Option<Spanned<f64>>,
    smb_window_s: Option<Spanned<f64>>,
    windows_queries: Option<Spanned<i64>>,
    windows_interval_s: Option<Spanned<f64>>,
    windows_tolerance_s: Option<Spanned<f64>>,
    progressive_first_min_s: Option<Spanned<f64>>,
    progressive_first_max_s: Option<Spanned<f64>>,
    progressive_growth: Option<Spanned<f64>>,
    max_tracked: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GeneralFile {
    update_interval_s: Option<Spanned<f64>>,
    max_sources: Option<Spanned<i64>>,
    source_idle_s: Option<Spanned<f64>>,
    criticality: Option<Spanned<i64>>,
    system_countermeasures: Option<Spanned<i64>>,
    network_countermeasures: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SynRetryFile {
    enabled: Option<Spanned<bool>>,
    min_attempts: Option<Spanned<i64>>,
    window_s: Option<Spanned<f64>>,
    settle_s: Option<Spanned<f64>>,
    min_retransmit_gap_s: Option<Spanned<f64>>,
    max_dest_ports_per_source: Option<Spanned<i64>>,
    max_dest_hosts_per_source: Option<Spanned<i64>>,
    max_tracked: Option<Spanned<i64>>,
}

/// Most entries any per-worker table may be configured to hold.
pub const MAX_TABLE_ENTRIES: u64 = 16 * 1024 * 1024;

/// Checks integer `v` is within `lo..=hi`.
fn int_in(file: &str, text: &str, key: &str, v: &Spanned<i64>, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    let x = *v.get_ref();
    if x < lo || x > hi {
        return Err(ConfigError::value(file, text, v.span(), key, format!("must be between {lo} and {hi}, got {x}")));
    }
    Ok(x)
}

/// Checks float `v` is finite and within `lo..=hi` (`lo` excluded when
/// `lo_open`).
fn float_in(
    file: &str,
    text: &str,
    key: &str,
    v: &Spanned<f64>,
    lo: f64,
    lo_open: bool,
    hi: f64,
) -> Result<f64, ConfigError> {
    let x = *v.get_ref();
    let low_ok = if lo_open { x > lo } else { x >= lo };
    if !x.is_finite() || !low_ok || x > hi {
        let range = if lo_open {
            format!("must be greater than {lo} and at most {hi}")
        } else {
            format!("must be between {lo} and {hi}")
        };
        return Err(ConfigError::value(file, text, v.span(), key, format!("{range}, got {x}")));
    }
    Ok(x)
}

/// Parses the text of a `picket.toml`; `file` names it in errors. Missing keys
/// take the built-in defaults ([`General::default`], [`SynRetryRules::default`]).
pub fn parse_picket_toml(file: &str, text: &str) -> Result<(General, SynRetryRules), ConfigError> {
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(file, text.len() as u64));
    }
    let doc: PicketFile = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    let mut general = General::default();
    let mut syn = SynRetryRules::default();

    if let Some(g) = doc.general {
        if let Some(v) = &g.update_interval_s {
            general.update_interval_s = float_in(file, text, "[general] update_interval_s", v, 0.0, false, 86_400.0)?;
        }
        if let Some(v) = &g.max_sources {
            general.max_sources = int_in(file, text, "[general] max_sources", v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
        }
        if let Some(v) = &g.source_idle_s {
            general.source_idle_s = float_in(file, text, "[general] source_idle_s", v, 0.0, true, 86_400.0)?;
        }
        for (key, slot, val) in [
            ("[general] criticality", &mut general.criticality, &g.criticality),
            ("[general] system_countermeasures", &mut general.system_countermeasures, &g.system_countermeasures),
            ("[general] network_countermeasures", &mut general.network_countermeasures, &g.network_countermeasures),
        ] {
            if let Some(v) = val {
                *slot = int_in(file, text, key, v, 1, 5)?;
            }
        }
    }

    if let Some(s) = doc.syn_retry {
        if let Some(v) = &s.enabled {
            syn.enabled = *v.get_ref();
        }
        if let Some(v) = &s.min_attempts {
            syn.min_attempts = int_in(file, text, "[syn_retry] min_attempts", v, 2, 16)? as u32;
        }
        if let Some(v) = &s.window_s {
            syn.window_s = float_in(file, text, "[syn_retry] window_s", v, 0.0, true, 86_400.0)?;
        }
        if let Some(v) = &s.settle_s {
            syn.settle_s = float_in(file, text, "[syn_retry] settle_s", v, 0.0, false, 60.0)?;
        }
        if let Some(v) = &s.min_retransmit_gap_s {
            syn.min_retransmit_gap_s = float_in(file, text, "[syn_retry] min_retransmit_gap_s", v, 0.0, false, 10.0)?;
        }
        if let Some(v) = &s.max_dest_ports_per_source {
            syn.max_dest_ports_per_source =
                int_in(file, text, "[syn_retry] max_dest_ports_per_source", v, 1, 65_536)? as u32;
        }
        if let Some(v) = &s.max_dest_hosts_per_source {
            syn.max_dest_hosts_per_source =
                int_in(file, text, "[syn_retry] max_dest_hosts_per_source", v, 1, 1 << 24)? as u32;
        }
        if let Some(v) = &s.max_tracked {
            syn.max_tracked = int_in(file, text, "[syn_retry] max_tracked", v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
        }
        // Cross-field check: an attempt must be able to settle inside the window.
        if syn.settle_s >= syn.window_s {
            let (span, key) = match (&s.settle_s, &s.window_s) {
                (Some(v), _) => (v.span(), "[syn_retry] settle_s"),
                (None, Some(v)) => (v.span(), "[syn_retry] window_s"),
                (None, None) => (0..0, "[syn_retry] settle_s"),
            };
            return Err(ConfigError::value(
                file,
                text,
                span,
                key,
                format!("settle_s ({}) must be less than window_s ({})", syn.settle_s, syn.window_s),
            ));
        }
    }
    Ok((general, syn))
}

// [traceroute] and [smurf] (SIGNATURES.md sections 3 and 4).

#[derive(Deserialize, Default)]
struct BehaviourFile {
    traceroute: Option<TracerouteFile>,
    smurf: Option<SmurfFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TracerouteFile {
    enabled: Option<Spanned<bool>>,
    max_probe_ttl: Option<Spanned<i64>>,
    min_ttls: Option<Spanned<i64>>,
    min_probes: Option<Spanned<i64>>,
    udp_port_min: Option<Spanned<i64>>,
    udp_port_max: Option<Spanned<i64>>,
    idle_s: Option<Spanned<f64>>,
    max_tracked: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SmurfFile {
    enabled: Option<Spanned<bool>>,
    broadcast_subnets: Option<Spanned<Vec<Spanned<String>>>>,
    fraggle_ports: Option<Spanned<Vec<Spanned<i64>>>>,
    min_packets: Option<Spanned<i64>>,
    loop_min_packets: Option<Spanned<i64>>,
    idle_s: Option<Spanned<f64>>,
    max_tracked: Option<Spanned<i64>>,
}

/// Most entries in `[smurf] broadcast_subnets` and `fraggle_ports`.
const MAX_RULE_LIST: usize = 256;

/// Parses the `[traceroute]` and `[smurf]` sections of a `picket.toml` (the
/// rest of the file is checked by [`parse_picket_toml`]).
pub fn parse_behaviour_sections(file: &str, text: &str) -> Result<(TracerouteRules, SmurfRules), ConfigError> {
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(file, text.len() as u64));
    }
    let doc: BehaviourFile = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    let mut tr = TracerouteRules::default();
    let mut sm = SmurfRules::default();
    if let Some(t) = doc.traceroute {
        if let Some(v) = &t.enabled {
            tr.enabled = *v.get_ref();
        }
        if let Some(v) = &t.max_probe_ttl {
            tr.max_probe_ttl = int_in(file, text, "[traceroute] max_probe_ttl", v, 2, 64)? as u8;
        }
        if let Some(v) = &t.min_ttls {
            tr.min_ttls = int_in(file, text, "[traceroute] min_ttls", v, 2, 64)? as u32;
        }
        if let Some(v) = &t.min_probes {
            tr.min_probes = int_in(file, text, "[traceroute] min_probes", v, 2, 1000)? as u32;
        }
        if let Some(v) = &t.udp_port_min {
            tr.udp_port_min = int_in(file, text, "[traceroute] udp_port_min", v, 1, 65_535)? as u16;
        }
        if let Some(v) = &t.udp_port_max {
            tr.udp_port_max = int_in(file, text, "[traceroute] udp_port_max", v, 1, 65_535)? as u16;
        }
        if let Some(v) = &t.idle_s {
            tr.idle_s = float_in(file, text, "[traceroute] idle_s", v, 0.0, true, 86_400.0)?;
        }
        if let Some(v) = &t.max_tracked {
            tr.max_tracked = int_in(file, text, "[traceroute] max_tracked", v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
        }
        if tr.udp_port_min > tr.udp_port_max {
            let span = t.udp_port_max.as_ref().or(t.udp_port_min.as_ref()).map(|v| v.span()).unwrap_or(0..0);
            return Err(ConfigError::value(
                file,
                text,
                span,
                "[traceroute] udp_port_max",
                format!("udp_port_min ({}) must not exceed udp_port_max ({})", tr.udp_port_min, tr.udp_port_max),
            ));
        }
    }
    if let Some(s) = doc.smurf {
        if let Some(v) = &s.enabled {
            sm.enabled = *v.get_ref();
        }
        if let Some(list) = &s.broadcast_subnets {
            let key = "[smurf] broadcast_subnets";
            if list.get_ref().len() > MAX_RULE_LIST {
                return Err(ConfigError::value(
                    file,
                    text,
                    list.span(),
                    key,
                    format!("at most {MAX_RULE_LIST} subnets"),
                ));
            }
            let mut all = Vec::new();
            for item in list.get_ref() {
                let cidr = item.get_ref().trim();
                if cidr.is_empty() || cidr.contains(',') {
                    return Err(ConfigError::value(file, text, item.span(), key, "expected one CIDR per string"));
                }
                crate::homenet::HomeNet::parse(cidr)
                    .map_err(|e| ConfigError::value(file, text, item.span(), key, e))?;
                all.push(cidr.to_string());
            }
            sm.broadcast_subnets = crate::homenet::HomeNet::parse(&all.join(","))
                .map_err(|e| ConfigError::value(file, text, list.span(), key, e))?;
        }
        if let Some(list) = &s.fraggle_ports {
            let key = "[smurf] fraggle_ports";
            if list.get_ref().len() > MAX_RULE_LIST {
                return Err(ConfigError::value(file, text, list.span(), key, format!("at most {MAX_RULE_LIST} ports")));
            }
            let mut ports = Vec::new();
            for item in list.get_ref() {
                let p = int_in(file, text, key, item, 1, 65_535)? as u16;
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
            sm.fraggle_ports = ports;
        }
        if let Some(v) = &s.min_packets {
            sm.min_packets = int_in(file, text, "[smurf] min_packets", v, 1, 1_000_000)? as u32;
        }
        if let Some(v) = &s.loop_min_packets {
            sm.loop_min_packets = int_in(file, text, "[smurf] loop_min_packets", v, 2, 1_000_000)? as u32;
        }
        if let Some(v) = &s.idle_s {
            sm.idle_s = float_in(file, text, "[smurf] idle_s", v, 0.0, true, 86_400.0)?;
        }
        if let Some(v) = &s.max_tracked {
            sm.max_tracked = int_in(file, text, "[smurf] max_tracked", v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
        }
    }
    Ok((tr, sm))
}

/// Two keys of one table whose values are in the wrong order: the error
/// points at the first of them that the file sets (else the second).
fn out_of_order<A, B>(
    (file, text, table): (&str, &str, &str),
    (first, a): (&str, &Option<Spanned<A>>),
    (second, b): (&str, &Option<Spanned<B>>),
    msg: String,
) -> ConfigError {
    let (span, key) = match (a, b) {
        (Some(v), _) => (v.span(), first),
        (None, Some(v)) => (v.span(), second),
        (None, None) => (0..0, first),
    };
    ConfigError::value(file, text, span, &format!("{table} {key}"), msg)
}

/// Parses the `[netbios_nodestatus]` table of a `picket.toml` (the rest of
/// the file is checked by [`parse_picket_toml`]). Missing keys take
/// [`NetbiosRules::default`].
pub fn parse_netbios_toml(file: &str, text: &str) -> Result<NetbiosRules, ConfigError> {
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(file, text.len() as u64));
    }
    let doc: NetbiosOnly = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    let mut r = NetbiosRules::default();
    let Some(n) = doc.netbios_nodestatus else {
        return Ok(r);
    };
    const T: &str = "[netbios_nodestatus]";
    if let Some(v) = &n.enabled {
        r.enabled = *v.get_ref();
    }
    if let Some(v) = &n.lookup_max_targets {
        r.lookup_max_targets = int_in(file, text, &format!("{T} lookup_max_targets"), v, 1, 1000)? as u32;
    }
    if let Some(v) = &n.scan_min_targets {
        r.scan_min_targets = int_in(file, text, &format!("{T} scan_min_targets"), v, 2, 65_536)? as u32;
    }
    if let Some(v) = &n.port_scan_min_ports {
        r.port_scan_min_ports = int_in(file, text, &format!("{T} port_scan_min_ports"), v, 2, 65_536)? as u32;
    }
    if let Some(v) = &n.idle_s {
        r.idle_s = float_in(file, text, &format!("{T} idle_s"), v, 0.0, true, 86_400.0)?;
    }
    if let Some(v) = &n.smb_window_s {
        r.smb_window_s = float_in(file, text, &format!("{T} smb_window_s"), v, 0.0, true, 86_400.0)?;
    }
    if let Some(v) = &n.windows_queries {
        r.windows_queries = int_in(file, text, &format!("{T} windows_queries"), v, 1, 16)? as u16;
    }
    if let Some(v) = &n.windows_interval_s {
        r.windows_interval_s = float_in(file, text, &format!("{T} windows_interval_s"), v, 0.0, true, 60.0)?;
    }
    if let Some(v) = &n.windows_tolerance_s {
        r.windows_tolerance_s = float_in(file, text, &format!("{T} windows_tolerance_s"), v, 0.0, false, 60.0)?;
    }
    if let Some(v) = &n.progressive_first_min_s {
        r.progressive_first_min_s =
            float_in(file, text, &format!("{T} progressive_first_min_s"), v, 0.0, true, 3_600.0)?;
    }
    if let Some(v) = &n.progressive_first_max_s {
        r.progressive_first_max_s =
            float_in(file, text, &format!("{T} progressive_first_max_s"), v, 0.0, true, 3_600.0)?;
    }
    if let Some(v) = &n.progressive_growth {
        r.progressive_growth = float_in(file, text, &format!("{T} progressive_growth"), v, 1.0, false, 100.0)?;
    }
    if r.progressive_first_max_s < r.progressive_first_min_s {
        return Err(out_of_order(
            (file, text, T),
            ("progressive_first_max_s", &n.progressive_first_max_s),
            ("progressive_first_min_s", &n.progressive_first_min_s),
            format!(
                "progressive_first_max_s ({}) must be at least progressive_first_min_s ({})",
                r.progressive_first_max_s, r.progressive_first_min_s
            ),
        ));
    }
    if let Some(v) = &n.max_tracked {
        r.max_tracked = int_in(file, text, &format!("{T} max_tracked"), v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
    }
    if r.scan_min_targets <= r.lookup_max_targets {
        return Err(out_of_order(
            (file, text, T),
            ("scan_min_targets", &n.scan_min_targets),
            ("lookup_max_targets", &n.lookup_max_targets),
            format!(
                "scan_min_targets ({}) must be greater than lookup_max_targets ({})",
                r.scan_min_targets, r.lookup_max_targets
            ),
        ));
    }
    Ok(r)
}

/// The `[decoy_scan]` table alone (read by [`parse_decoy_toml`]).
#[derive(Deserialize, Default)]
struct DecoyOnly {
    decoy_scan: Option<DecoyScanFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecoyScanFile {
    enabled: Option<Spanned<bool>>,
    min_sources: Option<Spanned<i64>>,
    min_ports: Option<Spanned<i64>>,
    min_overlap: Option<Spanned<f64>>,
    max_completed_share: Option<Spanned<f64>>,
    window_s: Option<Spanned<f64>>,
    ttl_tolerance: Option<Spanned<i64>>,
    min_confidence: Option<Spanned<String>>,
    history_idle_s: Option<Spanned<f64>>,
    history_max_tracked: Option<Spanned<i64>>,
    max_tracked: Option<Spanned<i64>>,
    max_candidates: Option<Spanned<i64>>,
}

/// Parses the `[decoy_scan]` table of a `picket.toml` (the rest of the file
/// is checked by [`parse_picket_toml`]). Missing keys take
/// [`DecoyScanRules::default`].
pub fn parse_decoy_toml(file: &str, text: &str) -> Result<DecoyScanRules, ConfigError> {
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(file, text.len() as u64));
    }
    let doc: DecoyOnly = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    let mut r = DecoyScanRules::default();
    let Some(d) = doc.decoy_scan else {
        return Ok(r);
    };
    let k = |n: &str| format!("[decoy_scan] {n}");
    if let Some(v) = &d.enabled {
        r.enabled = *v.get_ref();
    }
    if let Some(v) = &d.min_sources {
        r.min_sources = int_in(file, text, &k("min_sources"), v, 2, 256)? as u32;
    }
    if let Some(v) = &d.min_ports {
        r.min_ports = int_in(file, text, &k("min_ports"), v, 2, 1024)? as u32;
    }
    if let Some(v) = &d.min_overlap {
        r.min_overlap = float_in(file, text, &k("min_overlap"), v, 0.0, true, 1.0)?;
    }
    if let Some(v) = &d.max_completed_share {
        r.max_completed_share = float_in(file, text, &k("max_completed_share"), v, 0.0, false, 1.0)?;
    }
    if let Some(v) = &d.window_s {
        r.window_s = float_in(file, text, &k("window_s"), v, 0.0, true, 86_400.0)?;
    }
    if let Some(v) = &d.ttl_tolerance {
        r.ttl_tolerance = int_in(file, text, &k("ttl_tolerance"), v, 0, 64)? as u8;
    }
    if let Some(v) = &d.min_confidence {
        r.min_confidence = Confidence::parse(v.get_ref()).ok_or_else(|| {
            ConfigError::value(
                file,
                text,
                v.span(),
                &k("min_confidence"),
                format!("must be \"low\", \"medium\" or \"high\", got {:?}", printable(v.get_ref(), 40)),
            )
        })?;
    }
    if let Some(v) = &d.history_idle_s {
        r.history_idle_s = float_in(file, text, &k("history_idle_s"), v, 0.0, true, 30.0 * 86_400.0)?;
    }
    if let Some(v) = &d.history_max_tracked {
        r.history_max_tracked = int_in(file, text, &k("history_max_tracked"), v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
    }
    if let Some(v) = &d.max_tracked {
        r.max_tracked = int_in(file, text, &k("max_tracked"), v, 1, MAX_TABLE_ENTRIES as i64)? as usize;
    }
    if let Some(v) = &d.max_candidates {
        r.max_candidates = int_in(file, text, &k("max_candidates"), v, 1, 1 << 20)? as usize;
    }
    Ok(r)
}

fn too_big(file: &str, len: u64) -> ConfigError {
    ConfigError::file(file, format!("file is {len} bytes; rules files are limited to {MAX_RULES_FILE_BYTES} bytes"))
}

/// Reads a rules file as UTF-8, refusing anything over [`MAX_RULES_FILE_BYTES`].
fn read_rules_file(path: &Path) -> Result<String, ConfigError> {
    let label = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| ConfigError::file(&label, format!("cannot open: {e}")))?;
    if let Ok(meta) = f.metadata() {
        if !meta.is_file() {
            return Err(ConfigError::file(&label, "not a regular file"));
        }
        if meta.len() > MAX_RULES_FILE_BYTES {
            return Err(too_big(&label, meta.len()));
        }
    }
    let mut buf = Vec::new();
    f.take(MAX_RULES_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ConfigError::file(&label, format!("cannot read: {e}")))?;
    if buf.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(&label, buf.len() as u64));
    }
    String::from_utf8(buf)
        .map_err(|e| ConfigError::file(&label, format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to())))
}

/// Where a loaded piece of the rules came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from this file.
    File(String),
    /// The copy built into the binary.
    Builtin,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => f.write_str(p),
            Source::Builtin => f.write_str("built-in"),
        }
    }
}

/// What [`Rules::load_dir_with_summary`] loaded, for `picket rules check`.
#[derive(Clone, Debug)]
pub struct Summary {
    pub dir: String,
    pub picket: Source,
    pub ports: Source,
    pub port_entries: usize,
    pub port_numbers: usize,
    pub detectors_enabled: Vec<&'static str>,
    pub detectors_disabled: Vec<&'static str>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[&str]| {
            if v.is_empty() { "none".to_string() } else { v.join(", ") }
        };
        write!(
            f,
            "rules directory {}: detector settings from {} (picket.toml), port knowledge base \
             from {} (ports.toml) with {} entries covering {} protocol/port pairs; \
             detectors enabled: {}; disabled: {}.",
            self.dir,
            self.picket,
            self.ports,
            self.port_entries,
            self.port_numbers,
            list(&self.detectors_enabled),
            list(&self.detectors_disabled),
        )
    }
}

impl Rules {
    /// The rules shipped in `rules/`, compiled into the binary.
    ///
    /// A unit test proves the shipped files parse; should they ever not, the
    /// hard-coded defaults (and an empty port table) are used instead.
    pub fn builtin() -> Rules {
        static BUILTIN: std::sync::OnceLock<Rules> = std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Rules::try_builtin().unwrap_or_else(|_| Rules {
                    general: General::default(),
                    syn_retry: SynRetryRules::default(),
                    netbios: NetbiosRules::default(),
                    periodic_probe: PeriodicProbeRules::default(),
                    source_port_sequence: SourcePortSequenceRules::default(),
                    traceroute: TracerouteRules::default(),
                    smurf: SmurfRules::default(),
                    decoy_scan: DecoyScanRules::default(),
                    ports: PortTable::default(),
                })
            })
            .clone()
    }

    /// The built-in rules, or the error that keeps them from parsing.
    pub fn try_builtin() -> Result<Rules, ConfigError> {
        let (general, syn_retry) = parse_picket_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?;
        let (traceroute, smurf) = parse_behaviour_sections(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?;
        let netbios = parse_netbios_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?;
        let (periodic_probe, source_port_sequence) = parse_periodic_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?;
        let decoy_scan = parse_decoy_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?;
        let ports = PortTable::parse(BUILTIN_PORTS_LABEL, BUILTIN_PORTS_TOML)?;
        Ok(Rules {
            general,
            syn_retry,
            traceroute,
            smurf,
            netbios,
            periodic_probe,
            source_port_sequence,
            decoy_scan,
            ports,
        })
    }

    /// Loads every `*.toml` in `dir`.
    ///
    /// `picket.toml` and `ports.toml` are the known names; any other `.toml`
    /// file is an error naming it, other files are ignored. A missing
    /// `picket.toml` or `ports.toml` falls back to the built-in copy. A
    /// missing or unreadable directory is an error naming it.
    pub fn load_dir(dir: &Path) -> Result<Rules, ConfigError> {
        Rules::load_dir_with_summary(dir).map(|(r, _)| r)
    }

    /// [`Rules::load_dir`] plus a description of what was loaded.
    pub fn load_dir_with_summary(dir: &Path) -> Result<(Rules, Summary), ConfigError> {
        let dir_label = dir.display().to_string();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::file(&dir_label, format!("cannot read rules directory: {e}")))?;
        let mut picket_path = None;
        let mut ports_path = None;
        let mut names = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| ConfigError::file(&dir_label, format!("cannot list rules directory: {e}")))?;
            let path = entry.path();
            let is_toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
            if is_toml {
                names.push(path);
            }
        }
        names.sort();
        for path in names {
            match path.file_name().and_then(|n| n.to_str()) {
                Some("picket.toml") => picket_path = Some(path),
                Some("ports.toml") => ports_path = Some(path),
                _ => {
                    return Err(ConfigError::file(
                        path.display().to_string(),
                        "unknown rules file (expected picket.toml or ports.toml)",
                    ));
                }
            }
        }

        let (general, syn_retry, picket_src, (periodic_probe, source_port_sequence)) = match &picket_path {
            Some(p) => {
                let label = p.display().to_string();
                let text = read_rules_file(p)?;
                let (g, s) = parse_picket_toml(&label, &text)?;
                let periodic = parse_periodic_toml(&label, &text)?;
                (g, s, Source::File(label), periodic)
            }
            None => {
                let (g, s) = parse_picket_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?;
                let periodic = parse_periodic_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?;
                (g, s, Source::Builtin, periodic)
            }
        };
        let (ports, ports_src) = match &ports_path {
            Some(p) => {
                let label = p.display().to_string();
                let text = read_rules_file(p)?;
                (PortTable::parse(&label, &text)?, Source::File(label))
            }
            None => (PortTable::parse(BUILTIN_PORTS_LABEL, BUILTIN_PORTS_TOML)?, Source::Builtin),
        };
        let (traceroute, smurf) = match &picket_path {
            Some(p) => parse_behaviour_sections(&p.display().to_string(), &read_rules_file(p)?)?,
            None => parse_behaviour_sections(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?,
        };
        let netbios = match &picket_path {
            Some(p) => parse_netbios_toml(&p.display().to_string(), &read_rules_file(p)?)?,
            None => parse_netbios_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?,
        };
        let decoy_scan = match &picket_path {
            Some(p) => parse_decoy_toml(&p.display().to_string(), &read_rules_file(p)?)?,
            None => parse_decoy_toml(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML)?,
        };
        let rules = Rules {
            general,
            syn_retry,
            traceroute,
            smurf,
            netbios,
            periodic_probe,
            source_port_sequence,
            decoy_scan,
            ports,
        };
        let summary = rules.summary(dir_label, picket_src, ports_src);
        Ok((rules, summary))
    }

    fn summary(&self, dir: String, picket: Source, ports: Source) -> Summary {
        let mut enabled = Vec::new();
        let mut disabled = Vec::new();
        if self.syn_retry.enabled {
            enabled.push("syn_retry");
        } else {
            disabled.push("syn_retry");
        }
        if self.netbios.enabled {
            enabled.push("netbios_nodestatus");
        } else {
            disabled.push("netbios_nodestatus");
        }
        for (on, name) in [
            (self.periodic_probe.enabled, "periodic_probe"),
            (self.source_port_sequence.enabled, "source_port_sequence"),
        ] {
            if on { enabled.push(name) } else { disabled.push(name) }
        }
        for (name, on) in [
            ("traceroute", self.traceroute.enabled),
            ("smurf", self.smurf.enabled),
            ("decoy_scan", self.decoy_scan.enabled),
        ] {
            if on {
                enabled.push(name);
            } else {
                disabled.push(name);
            }
        }
        Summary {
            dir,
            picket,
            ports,
            port_entries: self.ports.entries().len(),
            port_numbers: self.ports.len(),
            detectors_enabled: enabled,
            detectors_disabled: disabled,
        }
    }
}

/// Loads `dir` as [`Rules::load_dir`] does and describes what was loaded, in
/// one paragraph (for `picket rules check DIR`).
pub fn check_dir(dir: &Path) -> Result<String, ConfigError> {
    Rules::load_dir_with_summary(dir).map(|(_, s)| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh, empty directory under the system temp dir; removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("picket-config-test-{}-{}-{}", std::process::id(), tag, n));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn picket_err(text: &str) -> ConfigError {
        parse_picket_toml("rules/picket.toml", text).unwrap_err()
    }

    #[test]
    fn builtin_files_parse() {
        let r = Rules::try_builtin().unwrap();
        assert_eq!(r.general, General::default());
        assert_eq!(r.syn_retry, SynRetryRules::default());
        assert_eq!(r.periodic_probe, PeriodicProbeRules::default());
        assert_eq!(r.source_port_sequence, SourcePortSequenceRules::default());
        assert!(r.ports.len() > 200, "{}", r.ports.len());
        let b = Rules::builtin();
        assert_eq!(b.ports.len(), r.ports.len());
    }

    #[test]
    fn builtin_has_every_key_with_a_section_comment() {
        for key in [
            "update_interval_s",
            "max_sources",
            "source_idle_s",
            "criticality",
            "system_countermeasures",
            "network_countermeasures",
            "enabled",
            "min_attempts",
            "window_s",
            "settle_s",
            "max_dest_ports_per_source",
            "max_dest_hosts_per_source",
            "min_retransmit_gap_s",
            "max_tracked",
            "max_probe_ttl",
            "min_ttls",
            "min_probes",
            "udp_port_min",
            "udp_port_max",
            "idle_s",
            "broadcast_subnets",
            "fraggle_ports",
            "min_packets",
            "loop_min_packets",
            "lookup_max_targets",
            "scan_min_targets",
            "smb_window_s",
            "port_scan_min_ports",
            "min_cycles",
            "max_jitter_ratio",
            "min_period_s",
            "fold_tolerance",
            "gap_periods",
            "min_regular_share",
            "min_coverage",
            "burst_break_ratio",
            "max_burst_spread_s",
            "min_burst_size",
            "min_bursts",
            "min_burst_pause_s",
            "min_step_share",
            "max_step",
            "min_mean_interval_s",
            "min_sources",
            "min_ports",
            "min_overlap",
            "max_completed_share",
            "ttl_tolerance",
            "min_confidence",
            "history_idle_s",
            "history_max_tracked",
            "max_candidates",
        ] {
            let line = BUILTIN_PICKET_TOML
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{key} ")))
                .unwrap_or_else(|| panic!("{key} missing from rules/picket.toml"));
            assert!(line.contains("SIGNATURES.md section"), "{line}");
        }
    }

    #[test]
    fn periodic_sections_parse_and_check_ranges() {
        let (pp, ps) =
            parse_periodic_toml("x", "[periodic_probe]\nmin_cycles = 7\n[source_port_sequence]\nmax_step = 2\n")
                .unwrap();
        assert_eq!((pp.min_cycles, ps.max_step), (7, 2));
        let e = parse_periodic_toml("rules/picket.toml", "[periodic_probe]\n\nfold_tolerance = 0.6\n").unwrap_err();
        assert!(e.to_string().starts_with("rules/picket.toml:3: [periodic_probe] fold_tolerance: "), "{e}");
        let e = picket_err("[source_port_sequence]\nmax_stepp = 2\n");
        assert!(e.to_string().contains("unknown key `max_stepp` in [source_port_sequence]"), "{e}");
        assert!(parse_periodic_toml("x", "[source_port_sequence]\nmin_attempts = 2\n").is_err());
    }

    #[test]
    fn missing_keys_take_defaults() {
        let (g, s) = parse_picket_toml("x.toml", "").unwrap();
        assert_eq!(g, General::default());
        assert_eq!(s, SynRetryRules::default());
        let (g, s) = parse_picket_toml("x.toml", "[syn_retry]\nmin_attempts = 5\n").unwrap();
        assert_eq!(g, General::default());
        assert_eq!(s.min_attempts, 5);
        assert_eq!(s.window_s, 600.0);
    }

    #[test]
    fn unknown_key_names_file_line_key() {
        let e = picket_err("[general]\nmax_sources = 10\n\n[syn_retry]\nenabled = true\nmin_atempts = 3\n");
        assert_eq!(e.line, Some(6));
        let s = e.to_string();
        assert!(s.starts_with("rules/picket.toml:6: unknown key `min_atempts` in [syn_retry]"), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn unknown_table_is_an_error() {
        let e = picket_err("[syn_retyr]\nenabled = true\n");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("syn_retyr"), "{e}");
    }

    #[test]
    fn bad_value_type() {
        let e = picket_err("[syn_retry]\n\nmin_attempts = \"three\"\n");
        let s = e.to_string();
        assert!(s.starts_with("rules/picket.toml:3: "), "{s}");
        assert!(s.contains("min_attempts"), "{s}");
        assert!(!s.contains('\n'));
        let e = picket_err("[syn_retry]\nenabled = 1\n");
        assert!(e.to_string().starts_with("rules/picket.toml:2: "), "{e}");
        assert!(e.to_string().contains("enabled"), "{e}");
    }

    #[test]
    fn out_of_range_value() {
        let text = "# c\n[syn_retry]\nmin_attempts = 40\n";
        let e = picket_err(text);
        assert_eq!(e.to_string(), "rules/picket.toml:3: [syn_retry] min_attempts: must be between 2 and 16, got 40");
        assert_eq!(e.key.as_deref(), Some("[syn_retry] min_attempts"));
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
            "[general]\nmax_sources = 0",
            "[general]\nupdate_interval_s = -1",
            "[general]\nupdate_interval_s = inf",
            "[syn_retry]\nwindow_s = 2\nsettle_s = 3",
        ] {
            let e = picket_err(bad);
            assert!(e.line.is_some(), "{bad}: {e}");
            assert!(e.to_string().starts_with("rules/picket.toml:"), "{e}");
        }
    }

    #[test]
    fn netbios_section_parses_and_checks_ranges() {
        assert_eq!(Rules::builtin().netbios, NetbiosRules::default());
        let text = "[netbios_nodestatus]\nlookup_max_targets = 3\nscan_min_targets = 20\nidle_s = 30\n";
        let n = parse_netbios_toml("x", text).unwrap();
        assert_eq!((n.lookup_max_targets, n.scan_min_targets, n.idle_s), (3, 20, 30.0));
        assert_eq!(n.smb_window_s, 60.0);
        assert!(parse_picket_toml("x", text).is_ok(), "the main parser accepts the section");
        let e = parse_picket_toml("x", "[netbios_nodestatus]\nscan_min = 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown key `scan_min`"), "{e}");
        for bad in [
            "[netbios_nodestatus]\nlookup_max_targets = 0",
            "[netbios_nodestatus]\nscan_min_targets = 1",
            "[netbios_nodestatus]\nscan_min_targets = 2\nlookup_max_targets = 2",
            "[netbios_nodestatus]\nlookup_max_targets = 12",
            "[netbios_nodestatus]\nidle_s = 0",
            "[netbios_nodestatus]\nport_scan_min_ports = 1",
            "[netbios_nodestatus]\nsmb_window_s = nan",
            "[netbios_nodestatus]\nmax_tracked = 0",
            "[netbios_nodestatus]\nwindows_queries = 0",
            "[netbios_nodestatus]\nwindows_interval_s = 0",
            "[netbios_nodestatus]\nwindows_tolerance_s = -1",
            "[netbios_nodestatus]\nprogressive_growth = 0.5",
            "[netbios_nodestatus]\nprogressive_first_max_s = 10",
        ] {
            let e = parse_netbios_toml("rules/picket.toml", bad).unwrap_err();
            assert!(e.line.is_some(), "{bad}: {e}");
            assert!(e.to_string().contains("[netbios_nodestatus]"), "{e}");
        }
        let d = TempDir::new("netbios");
        d.write("picket.toml", "[netbios_nodestatus]\nenabled = false\n");
        let r = Rules::load_dir(&d.0).unwrap();
        assert!(!r.netbios.enabled);
        assert!(check_dir(&d.0).unwrap().contains("disabled: netbios_nodestatus"));
    }

    #[test]
    fn floats_accept_integers_and_fractions() {
        let (g, s) =
            parse_picket_toml("x", "[general]\nupdate_interval_s = 2.5\n[syn_retry]\nwindow_s = 30\nsettle_s = 0.5\n")
                .unwrap();
        assert_eq!(g.update_interval_s, 2.5);
        assert_eq!(s.window_s, 30.0);
        assert_eq!(s.settle_s, 0.5);
    }

    #[test]
    fn syntax_error_has_line() {
        let e = picket_err("[syn_retry]\nmin_attempts = = 3\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn valid_override() {
        let d = TempDir::new("override");
        d.write("picket.toml", "[syn_retry]\nenabled = false\nmin_attempts = 4\nwindow_s = 1200\n");
        let r = Rules::load_dir(&d.0).unwrap();
        assert!(!r.syn_retry.enabled);
        assert_eq!(r.syn_retry.min_attempts, 4);
        assert_eq!(r.syn_retry.window_s, 1200.0);
        assert_eq!(r.syn_retry.settle_s, 3.0);
        assert_eq!(r.general, General::default());
        // ports.toml missing: built-in port table.
        assert_eq!(r.ports.lookup(6, 158).unwrap().name, "pcmail-srv");

        let d2 = TempDir::new("override-ports");
        d2.write("ports.toml", "[[port]]\nport = 4242\nproto = \"udp\"\nname = \"x\"\ncategory = \"service\"\n");
        d2.write("README.txt", "ignored");
        let r = Rules::load_dir(&d2.0).unwrap();
        assert_eq!(r.ports.len(), 1);
        assert_eq!(r.ports.lookup(17, 4242).unwrap().name, "x");
        assert!(r.ports.lookup(6, 158).is_none());
        assert!(r.syn_retry.enabled);
        let summary = check_dir(&d2.0).unwrap();
        assert!(summary.contains("built-in (picket.toml)"), "{summary}");
        assert!(summary.contains("1 entries"), "{summary}");
        assert!(summary.contains("detectors enabled: syn_retry"), "{summary}");
    }

    #[test]
    fn empty_dir_is_builtin() {
        let d = TempDir::new("empty");
        let r = Rules::load_dir(&d.0).unwrap();
        assert_eq!(r.ports.len(), Rules::builtin().ports.len());
        let s = check_dir(&d.0).unwrap();
        assert!(!s.contains('\n'), "{s}");
    }

    #[test]
    fn error_in_dir_file_names_path() {
        let d = TempDir::new("bad-in-dir");
        let p = d.write("picket.toml", "[syn_retry]\nmax_tracked = 0\n");
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert_eq!(e.file, p.display().to_string());
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().contains("[syn_retry] max_tracked"), "{e}");
    }

    #[test]
    fn unknown_file_name() {
        let d = TempDir::new("unknown-file");
        d.write("picket.toml", "");
        let p = d.write("extra.toml", "");
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert_eq!(e.file, p.display().to_string());
        assert!(e.to_string().contains("extra.toml"), "{e}");
        assert!(e.to_string().contains("unknown rules file"), "{e}");
    }

    #[test]
    fn missing_dir() {
        let p = std::env::temp_dir().join(format!("picket-no-such-dir-{}", std::process::id()));
        let e = Rules::load_dir(&p).unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert!(check_dir(&p).is_err());
    }

    #[test]
    fn huge_file_rejected() {
        let d = TempDir::new("huge");
        let mut text = String::from("# padding\n");
        while (text.len() as u64) <= MAX_RULES_FILE_BYTES {
            text.push_str(&"#".repeat(1023));
            text.push('\n');
        }
        d.write("ports.toml", &text);
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert!(e.to_string().contains("limited to"), "{e}");
        assert!(parse_picket_toml("x", &text).is_err());
    }

    #[test]
    fn non_utf8_rejected() {
        let d = TempDir::new("utf8");
        std::fs::write(d.0.join("picket.toml"), b"[general]\n\xff\xfe = 1\n").unwrap();
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        for text in [
            "[",
            "[[",
            "\u{0}",
            "[general]\nupdate_interval_s = 1e400",
            "[general]\nmax_sources = 9223372036854775807",
            "[general]\nmax_sources = 1.5",
            "general = 3",
            "[syn_retry]\nenabled = [true]",
            "[syn_retry.sub]\nx = 1",
            "[[syn_retry]]\nenabled = true",
            "a = \"\u{202e}\"",
            "[general]\n[general]\n",
        ] {
            let _ = parse_picket_toml("x", text).map(|_| ()).map_err(|e| e.to_string());
            let _ = PortTable::parse("x", text).map(|_| ()).map_err(|e| e.to_string());
        }
    }

    #[test]
    fn display_is_one_short_printable_line() {
        let long = "A".repeat(100_000);
        let e = picket_err(&format!("[syn_retry]\nmin_attempts = \"{long}\x1b[31m\"\n"));
        let s = e.to_string();
        assert!(s.len() < 600, "{}", s.len());
        assert!(s.starts_with("rules/picket.toml:2: [syn_retry] min_attempts: "), "{s}");
        let e = ConfigError::file("a\nb.toml", "x\n\ty\u{1b}z");
        assert_eq!(e.to_string(), "a b.toml: x y?z");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let n = 200_000;
        let t = format!("[syn_retry]\nenabled = {}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_picket_toml("x", &t).is_err());
        let t = format!("[[port]]\nport = {}1{}", "{a=".repeat(n), "}".repeat(n));
        assert!(PortTable::parse("x", &t).is_err());
    }

    #[test]
    fn traceroute_and_smurf_sections_parse_and_validate() {
        let r = Rules::try_builtin().unwrap();
        assert_eq!(r.traceroute, TracerouteRules::default());
        assert_eq!(r.smurf, SmurfRules::default());
        let text = "[smurf]\nbroadcast_subnets = [\"192.0.2.128/26\", \"10.1.2.0/25\"]\nfraggle_ports = [7, 19, 7]\n\
                    [traceroute]\nmax_probe_ttl = 20\n";
        let (tr, sm) = parse_behaviour_sections("x", text).unwrap();
        assert_eq!(tr.max_probe_ttl, 20);
        assert_eq!(sm.broadcast_subnets.len(), 2);
        assert!(sm.broadcast_subnets.contains("192.0.2.191".parse().unwrap()));
        assert_eq!(sm.fraggle_ports, vec![7, 19]);
        for (bad, line, key) in [
            ("[smurf]\nbroadcast_subnets = [\"192.0.2.300/26\"]\n", 2, "broadcast_subnets"),
            ("[smurf]\n\nbroadcast_subnets = [\"a,b\"]\n", 3, "broadcast_subnets"),
            ("[smurf]\nfraggle_ports = [7, 70000]\n", 2, "fraggle_ports"),
            ("[smurf]\nmin_packets = 0\n", 2, "min_packets"),
            ("[traceroute]\nmax_probe_ttl = 65\n", 2, "max_probe_ttl"),
            ("[traceroute]\nudp_port_min = 40000\nudp_port_max = 33600\n", 3, "udp_port_max"),
            ("[traceroute]\nmin_tls = 3\n", 2, "min_tls"),
        ] {
            let e = parse_behaviour_sections("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
        // The general parser accepts the sections and still rejects typos elsewhere.
        assert!(parse_picket_toml("x", "[traceroute]\nenabled = false\n[smurf]\nenabled = false\n").is_ok());
        let d = TempDir::new("behaviour");
        d.write("picket.toml", "[traceroute]\nenabled = false\n[smurf]\nbroadcast_subnets = [\"192.0.2.128/26\"]\n");
        let r = Rules::load_dir(&d.0).unwrap();
        assert!(!r.traceroute.enabled);
        assert!(r.smurf.broadcast_subnets.contains("192.0.2.128".parse().unwrap()));
        let summary = check_dir(&d.0).unwrap();
        assert!(summary.contains("disabled: traceroute"), "{summary}");
        assert!(summary.contains("smurf"), "{summary}");
    }

    #[test]
    fn decoy_section_parses_and_checks_ranges() {
        assert_eq!(Rules::try_builtin().unwrap().decoy_scan, DecoyScanRules::default());
        let text = "[decoy_scan]\nmin_sources = 4\nmin_overlap = 0.9\nmin_confidence = \"medium\"\nwindow_s = 60\n";
        let d = parse_decoy_toml("x", text).unwrap();
        assert_eq!((d.min_sources, d.min_overlap, d.window_s), (4, 0.9, 60.0));
        assert_eq!(d.min_confidence, Confidence::Medium);
        assert_eq!(d.min_ports, 5);
        assert!(parse_picket_toml("x", text).is_ok(), "the main parser accepts the section");
        let e = picket_err("[decoy_scan]\nmin_source = 3\n");
        assert!(e.to_string().contains("unknown key `min_source` in [decoy_scan]"), "{e}");
        for (bad, key) in [
            ("[decoy_scan]\nmin_sources = 1", "min_sources"),
            ("[decoy_scan]\nmin_ports = 1", "min_ports"),
            ("[decoy_scan]\nmin_overlap = 0", "min_overlap"),
            ("[decoy_scan]\nmin_overlap = 1.5", "min_overlap"),
            ("[decoy_scan]\nmax_completed_share = -0.1", "max_completed_share"),
            ("[decoy_scan]\nwindow_s = nan", "window_s"),
            ("[decoy_scan]\nttl_tolerance = 65", "ttl_tolerance"),
            ("[decoy_scan]\nmin_confidence = \"sure\"", "min_confidence"),
            ("[decoy_scan]\nhistory_idle_s = 0", "history_idle_s"),
            ("[decoy_scan]\nhistory_max_tracked = 0", "history_max_tracked"),
            ("[decoy_scan]\nmax_tracked = 0", "max_tracked"),
            ("[decoy_scan]\nmax_candidates = 99999999", "max_candidates"),
        ] {
            let e = parse_decoy_toml("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(2), "{bad}: {e}");
            let s = e.to_string();
            assert!(s.starts_with("rules/picket.toml:2: [decoy_scan] "), "{s}");
            assert!(s.contains(key), "{bad}: {s}");
        }
        let d = TempDir::new("decoy");
        d.write("picket.toml", "[decoy_scan]\nenabled = false\nmin_ports = 8\n");
        let r = Rules::load_dir(&d.0).unwrap();
        assert!(!r.decoy_scan.enabled);
        assert_eq!(r.decoy_scan.min_ports, 8);
        assert!(check_dir(&d.0).unwrap().contains("disabled: decoy_scan"));
        let p = d.write("picket.toml", "[decoy_scan]\nmin_sources = 0\n");
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert_eq!(e.file, p.display().to_string());
        assert!(e.to_string().contains("[decoy_scan] min_sources"), "{e}");
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb\nc", 999), 3);
    }
}
