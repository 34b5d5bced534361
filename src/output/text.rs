//! `--format text`: the same event objects as the JSON lines, rendered for a
//! person at a terminal. One line per detection (time, type, source ->
//! target, severity, summary), written when the detection ends (its `final`
//! event; `new` and `update` stay in JSON), one line for run-wide events
//! (`fw_correlation`, `service_inventory`, ...), and at the `stats` event a
//! closing table: final events by type with their worst severity, then the
//! run's packets, bytes and span.
//!
//! The renderer reads the serialized line back (events are rare next to
//! packets), so text shows exactly what JSON would have carried, enrichment
//! included. A line it cannot read is shown as it is.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Width of the type column.
const TYPE_W: usize = 20;
/// Width of the "source -> target" column.
const FLOW_W: usize = 44;

/// Tallies of one event type, for the closing table: its final events
/// (one per detection) and their worst severity.
#[derive(Default)]
struct Tally {
    detections: u64,
    worst: Option<i64>,
}

/// Renders event lines as text; keeps per-type tallies (bounded by the
/// number of event types) for the closing table.
#[derive(Default)]
pub struct Text {
    by_type: BTreeMap<String, Tally>,
}

impl Text {
    pub fn new() -> Text {
        Text::default()
    }

    /// Appends the text of one JSON event line to `out` (nothing for the
    /// `new` and `update` events of a detection); returns how many lines it
    /// appended.
    pub fn render(&mut self, line: &str, out: &mut Vec<u8>) -> u64 {
        let mut s = String::new();
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(obj)) => self.render_obj(&obj, &mut s),
            _ => {
                s.push_str(line);
                s.push('\n');
            }
        }
        out.extend_from_slice(s.as_bytes());
        s.bytes().filter(|b| *b == b'\n').count() as u64
    }

    fn render_obj(&mut self, obj: &Map<String, Value>, s: &mut String) {
        let kind = obj.get("event_type").and_then(Value::as_str).unwrap_or("event");
        if kind == "stats" {
            self.table(obj, s);
            return;
        }
        let details = obj.get(kind).and_then(Value::as_object);
        let status = details.and_then(|d| d.get("status")).and_then(Value::as_str);
        if status.is_some_and(|st| st != "final") {
            return;
        }
        let severity = obj.get("severity").and_then(Value::as_i64);
        let t = self.by_type.entry(kind.to_string()).or_default();
        t.detections += 1;
        t.worst = match (t.worst, severity) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // When the detection began (a final event is written when it ends).
        let began = details.and_then(|d| d.get("first_seen")).and_then(Value::as_str);
        let time = began.or(obj.get("timestamp").and_then(Value::as_str)).map_or_else(|| "-".to_string(), short_time);
        let flow = flow(obj, kind, details);
        let sev = severity.map_or_else(|| "   ".to_string(), |v| format!("{v:+}"));
        let summary = obj.get("summary").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(s, "{time}  {kind:<TYPE_W$} {flow:<FLOW_W$} {sev:>3}  {summary}");
    }

    /// The closing table (at the final `stats` event, or a SIGUSR1
    /// snapshot's).
    fn table(&self, obj: &Map<String, Value>, s: &mut String) {
        let st = obj.get("stats").and_then(Value::as_object);
        let n = |k: &str| st.and_then(|m| m.get(k)).and_then(Value::as_u64).unwrap_or(0);
        let is_final = st.and_then(|m| m.get("final")).and_then(Value::as_bool).unwrap_or(true);
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", if is_final { "Summary" } else { "Summary so far" });
        let _ = writeln!(s, "  {:<TYPE_W$} {:>10}  {:>5}", "event type", "events", "worst");
        let mut total = 0;
        for (kind, t) in &self.by_type {
            let worst = t.worst.map_or_else(|| "-".to_string(), |v| format!("{v:+}"));
            let _ = writeln!(s, "  {kind:<TYPE_W$} {:>10}  {worst:>5}", t.detections);
            total += t.detections;
        }
        if self.by_type.is_empty() {
            let _ = writeln!(s, "  (no events)");
        }
        let _ = writeln!(s, "  {:<TYPE_W$} {total:>10}", "total");
        let sensor = obj.get("sensor").and_then(Value::as_str).unwrap_or("-");
        let _ = writeln!(s, "  {} packets, {} bytes read from {sensor}", n("packets"), n("bytes"));
        if let Some(w) = st.and_then(|m| m.get("wall_time_s")).and_then(Value::as_f64) {
            let pps = st.and_then(|m| m.get("packets_per_second")).and_then(Value::as_f64).unwrap_or(0.0);
            let _ = writeln!(s, "  {w:.1} s of wall time, {pps:.0} packets/s");
        }
    }
}

/// `2026-11-22T07:34:17.694020Z` as `2026-11-22 07:34:17`.
fn short_time(ts: &str) -> String {
    let base = ts.get(..19).unwrap_or(ts);
    base.replacen('T', " ", 1)
}

/// `src -> dst:port/proto`, or the subject of an event about a group or a
/// victim, or `-`. The source port is left out (a retry loop's or a scan's
/// changes from probe to probe; the summary tells its pattern), and so is
/// the destination port of a scan of many ports.
fn flow(obj: &Map<String, Value>, kind: &str, details: Option<&Map<String, Value>>) -> String {
    let get = |k: &str| obj.get(k).and_then(Value::as_str);
    let port = |k: &str| obj.get(k).and_then(Value::as_u64);
    let end = |ip: Option<&str>, p: Option<u64>| match (ip, p) {
        (Some(ip), Some(p)) if ip.contains(':') => format!("[{ip}]:{p}"),
        (Some(ip), Some(p)) => format!("{ip}:{p}"),
        (Some(ip), None) => ip.to_string(),
        (None, Some(p)) => format!("*:{p}"),
        (None, None) => "*".to_string(),
    };
    let src = get("src_ip")
        .or_else(|| details.and_then(|d| d.get("suspected_source").or(d.get("source"))).and_then(Value::as_str));
    let dst = get("dest_ip").or_else(|| details.and_then(|d| d.get("victim")).and_then(Value::as_str));
    if src.is_none() && dst.is_none() && port("dest_port").is_none() {
        return "-".to_string();
    }
    let dport = if matches!(kind, "port_scan" | "decoy_scan") { None } else { port("dest_port") };
    let mut f = format!("{} -> {}", end(src, None), end(dst, dport));
    if let Some(p) = get("proto") {
        let _ = write!(f, "/{}", p.to_ascii_lowercase());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &mut Text, line: &str) -> String {
        let mut out = Vec::new();
        let n = t.render(line, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(n as usize, s.lines().count());
        s
    }

    #[test]
    fn a_final_detection_is_one_line_with_time_type_flow_severity_and_summary() {
        let mut t = Text::new();
        let line = r#"{"timestamp":"2026-11-22T07:34:17.694020Z","event_type":"syn_retry","src_ip":"203.0.113.34","src_port":40000,"dest_ip":"192.0.2.10","dest_port":158,"proto":"TCP","community_id":"1:x","severity":2,"summary":"7 SYNs never answered","syn_retry":{"status":"final","first_seen":"2026-11-22T07:30:00.000001Z"}}"#;
        let s = render(&mut t, line);
        assert_eq!(s.lines().count(), 1);
        assert!(s.starts_with("2026-11-22 07:30:00  syn_retry "), "{s}");
        assert!(s.contains(" 203.0.113.34 -> 192.0.2.10:158/tcp "), "{s}");
        assert!(s.contains(" +2  7 SYNs never answered"), "{s}");
    }

    #[test]
    fn new_and_update_events_are_not_shown_and_the_table_counts_finals() {
        let mut t = Text::new();
        for st in ["new", "update"] {
            let l =
                format!(r#"{{"event_type":"port_scan","severity":3,"summary":"s","port_scan":{{"status":"{st}"}}}}"#);
            assert_eq!(render(&mut t, &l), "");
        }
        render(&mut t, r#"{"event_type":"port_scan","severity":3,"summary":"s","port_scan":{"status":"final"}}"#);
        render(&mut t, r#"{"event_type":"port_scan","severity":-1,"summary":"s","port_scan":{"status":"final"}}"#);
        let table = render(
            &mut t,
            r#"{"event_type":"stats","sensor":"x.pcap","stats":{"packets":10,"bytes":640,"final":true}}"#,
        );
        let row = table.lines().find(|l| l.trim_start().starts_with("port_scan")).expect(&table);
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols, ["port_scan", "2", "+3"], "{table}");
        assert!(table.contains("10 packets, 640 bytes read from x.pcap"), "{table}");
    }

    #[test]
    fn a_port_scan_names_no_single_port() {
        let mut t = Text::new();
        let s = render(
            &mut t,
            r#"{"event_type":"port_scan","src_ip":"198.51.100.10","src_port":37934,"dest_ip":"192.0.2.20","dest_port":23,"proto":"TCP","summary":"s","port_scan":{"status":"final"}}"#,
        );
        assert!(s.contains(" 198.51.100.10 -> 192.0.2.20/tcp "), "{s}");
    }

    #[test]
    fn a_line_that_is_not_json_is_shown_as_it_is() {
        let mut t = Text::new();
        assert_eq!(render(&mut t, "not json"), "not json\n");
    }

    #[test]
    fn an_event_about_a_victim_names_it_as_the_target() {
        let mut t = Text::new();
        let s = render(
            &mut t,
            r#"{"event_type":"smurf","summary":"s","smurf":{"status":"final","victim":"198.51.100.7"}}"#,
        );
        assert!(s.contains("* -> 198.51.100.7"), "{s}");
    }
}
