//! Reading EVE files back for `picket report`: one JSON object per line.
//! Hostile or damaged input never stops the report: a line that is not
//! JSON, not an object, has no `event_type`, is overlong, or is a truncated
//! last line (no newline at the end of the file) is counted and reported
//! with its file and line, and skipped. Events of a type this picket does not
//! know (a newer sensor) are counted and skipped; unknown fields of a known
//! type are ignored, and reported once per field name.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::BufRead;

/// The longest line read (a `stats` event with its summary is far below).
pub const MAX_LINE: usize = 4 << 20;
/// How many problems are kept to print; the rest are only counted.
pub const MAX_NOTES: usize = 50;
/// Distinct unknown field names counted by name (the rest: `unknown_fields_omitted`).
pub const MAX_UNKNOWN_FIELDS: usize = 1024;

/// The event types this picket writes (`README.md`, Events).
pub const KNOWN_TYPES: &[&str] = &[
    "syn_retry",
    "traceroute",
    "smurf",
    "fraggle",
    "syn_flood",
    "reflection",
    "netbios_nodestatus",
    "periodic_probe",
    "source_port_sequence",
    "verdict",
    "decoy_scan",
    "port_scan",
    "host_sweep",
    "anomaly",
    "known_probe",
    "brute_force",
    "service_inventory",
    "worm_phase",
    "worm_summary",
    "fw_correlation",
    "fw_report",
    "stats",
];

/// Top-level fields of the envelope (`output::event::EventBuilder`); the
/// details object named after the event type is known too.
pub const KNOWN_FIELDS: &[&str] = &[
    "timestamp",
    "event_type",
    "sensor",
    "src_ip",
    "dest_ip",
    "proto",
    "src_port",
    "dest_port",
    "community_id",
    "severity",
    "severity_terms",
    "target_service",
    "summary",
    "direction",
    "firewall",
    "origin",
];

/// One problem with the input, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// The events read, and what was wrong with the input.
#[derive(Default, Debug)]
pub struct Eve {
    pub events: Vec<Map<String, Value>>,
    /// Lines read (all files).
    pub lines: u64,
    /// Lines skipped: not JSON, not an object, no `event_type`, overlong, truncated.
    pub bad_lines: u64,
    /// Events of a type this picket does not know, skipped.
    pub unknown_types: u64,
    /// Unknown fields of known events (ignored), by name: their count.
    pub unknown_fields: BTreeMap<String, u64>,
    /// Unknown field occurrences past `MAX_UNKNOWN_FIELDS` names.
    pub unknown_fields_omitted: u64,
    /// The first `MAX_NOTES` problems, with file and line.
    pub problems: Vec<Problem>,
    /// Problems beyond those kept.
    pub problems_omitted: u64,
}

impl Eve {
    fn problem(&mut self, file: &str, line: u64, what: String) {
        if self.problems.len() < MAX_NOTES {
            self.problems.push(Problem { file: file.to_string(), line, what });
        } else {
            self.problems_omitted += 1;
        }
    }

    /// Reads every line of `r` (named `file` in problems).
    pub fn read(&mut self, file: &str, r: &mut dyn BufRead) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(4096);
        let mut n = 0u64;
        loop {
            buf.clear();
            let got = read_line_capped(r, &mut buf)?;
            if got == 0 {
                return Ok(());
            }
            n += 1;
            self.lines += 1;
            let complete = buf.last() == Some(&b'\n');
            if got > MAX_LINE {
                self.bad_lines += 1;
                self.problem(file, n, format!("line longer than {MAX_LINE} bytes, skipped"));
                continue;
            }
            let text = trim_eol(&buf);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.line(file, n, text, complete);
        }
    }

    /// Parses one line (also the fuzz target's entry point).
    pub fn line(&mut self, file: &str, n: u64, text: &[u8], complete: bool) {
        let v: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                self.bad_lines += 1;
                let what = if complete {
                    format!("not JSON ({e}), skipped")
                } else {
                    format!("truncated last line (no newline at the end; {e}), skipped")
                };
                self.problem(file, n, what);
                return;
            }
        };
        let Value::Object(obj) = v else {
            self.bad_lines += 1;
            self.problem(file, n, "not a JSON object, skipped".into());
            return;
        };
        let Some(kind) = obj.get("event_type").and_then(Value::as_str).map(str::to_string) else {
            self.bad_lines += 1;
            self.problem(file, n, "no event_type, skipped".into());
            return;
        };
        if !KNOWN_TYPES.contains(&kind.as_str()) {
            self.unknown_types += 1;
            self.problem(file, n, format!("unknown event type {kind:?} (a newer picket?), skipped"));
            return;
        }
        for k in obj.keys() {
            if k != &kind && !KNOWN_FIELDS.contains(&k.as_str()) {
                // Hostile input may name a new field on every line: past
                // MAX_UNKNOWN_FIELDS names, they are only counted.
                if self.unknown_fields.len() >= MAX_UNKNOWN_FIELDS && !self.unknown_fields.contains_key(k) {
                    self.unknown_fields_omitted += 1;
                    continue;
                }
                let c = self.unknown_fields.entry(k.clone()).or_insert(0);
                *c += 1;
                if *c == 1 && self.unknown_fields.len() <= MAX_NOTES {
                    let what = format!("unknown field {k:?} in {kind} (a newer picket?), ignored");
                    self.problem(file, n, what);
                }
            }
        }
        self.events.push(obj);
    }
}

/// Reads one line into `buf`, keeping at most `MAX_LINE + 1` bytes of it;
/// returns the line's full length (0 at the end of the input).
fn read_line_capped(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(total);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        total += take;
        r.consume(take);
        if done {
            return Ok(total);
        }
    }
}

fn trim_eol(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Eve {
        let mut e = Eve::default();
        e.read("t.json", &mut s.as_bytes()).unwrap();
        e
    }

    #[test]
    fn bad_lines_are_counted_with_their_line_and_skipped() {
        let e = read(concat!(
            "{\"event_type\":\"stats\",\"timestamp\":\"2024-01-01T00:00:00Z\"}\n",
            "garbage\n",
            "[1,2]\n",
            "{\"no_type\":1}\n",
            "{\"event_type\":\"teleport\"}\n",
            "{\"event_type\":\"port_scan\",\"new_field\":1}\n",
            "{\"event_type\":\"port_sc"
        ));
        assert_eq!(e.events.len(), 2);
        assert_eq!(e.bad_lines, 4);
        assert_eq!(e.unknown_types, 1);
        assert_eq!(e.unknown_fields.get("new_field"), Some(&1));
        let lines: Vec<u64> = e.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
        assert!(e.problems[5].what.starts_with("truncated last line"), "{}", e.problems[5]);
        assert_eq!(e.problems[0].to_string().split(':').next(), Some("t.json"));
    }

    #[test]
    fn an_overlong_line_is_skipped_without_holding_it() {
        let long = format!("{}\n{{\"event_type\":\"stats\"}}\n", "x".repeat(MAX_LINE + 10));
        let e = read(&long);
        assert_eq!(e.bad_lines, 1);
        assert_eq!(e.events.len(), 1);
        assert_eq!(e.problems[0].line, 1);
    }
}
