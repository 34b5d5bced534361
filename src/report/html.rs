//! The report page: one self-contained HTML file (inline CSS and SVG, no
//! script, nothing fetched), built from EVE events alone so the merged
//! events of many sensors make one report. Each chart is drawn by `plotters`
//! (SVG backend) and followed by the table of its numbers.
//!
//! Every string that came from the EVE is hostile: page text goes through
//! [`esc`]; chart labels go through [`label`], which keeps only characters
//! that cannot start markup. Each `<section>` carries `data-*` counts (what
//! its chart and table show) for tests and scripts.

use crate::output::timefmt::{days_from_civil, rfc3339_us};
use crate::ports::PortTable;
use crate::report::eve::{self, Eve};
use plotters::prelude::*;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Bars drawn in a histogram (the table lists every port).
const MAX_BARS: usize = 40;
/// The clipped histogram's ceiling.
const CLIP: u64 = 10;
/// Source-port charts drawn at most.
const MAX_SRC_CHARTS: usize = 24;
/// Rows of a table before "N more".
const MAX_ROWS: usize = 200;
/// Bins of the events-over-time chart.
const TIME_BINS: usize = 48;

/// Event types that are run-wide reports, not detections.
const NOT_DETECTIONS: &[&str] = &["stats", "service_inventory", "fw_correlation", "fw_report", "worm_summary"];
/// Detections whose source port over time tells the story (retry loops,
/// periodic probes, source-port sequences and their verdict).
const SEQUENCE_TYPES: &[&str] = &["syn_retry", "periodic_probe", "source_port_sequence", "verdict"];

/// HTML-escapes `s` for text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// A chart label from untrusted text: letters, digits and `.:/_-+ ` only,
/// at most 40 characters.
pub fn label(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || ".:/_-+ ".contains(*c)).take(40).collect()
}

/// RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.f]Z` or `+HH:MM`) to microseconds.
pub fn parse_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse::<u32>().ok().map(i64::from) };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_us = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut scale = 100_000;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            frac_us += i64::from(c - b'0') * scale;
            scale /= 10;
            i += 1;
        }
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    Some(secs * 1_000_000 + frac_us)
}

fn s<'a>(ev: &'a Map<String, Value>, k: &str) -> &'a str {
    ev.get(k).and_then(Value::as_str).unwrap_or("")
}

fn details(ev: &Map<String, Value>) -> Option<&Map<String, Value>> {
    ev.get(s(ev, "event_type")).and_then(Value::as_object)
}

fn detail_str<'a>(ev: &'a Map<String, Value>, k: &str) -> &'a str {
    details(ev).and_then(|d| d.get(k)).and_then(Value::as_str).unwrap_or("")
}

fn num_u(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

/// One detection: its latest event (a `final` one wins).
struct Detection<'a> {
    ev: &'a Map<String, Value>,
    kind: &'a str,
    ts_us: Option<i64>,
    severity: Option<i64>,
}

/// What the page is built from.
struct Model<'a> {
    events: Vec<&'a Map<String, Value>>,
    detections: Vec<Detection<'a>>,
    stats: Vec<&'a Map<String, Value>>,
    first_us: Option<i64>,
    last_us: Option<i64>,
}

impl<'a> Model<'a> {
    fn new(eve: &'a Eve) -> Model<'a> {
        let events: Vec<&Map<String, Value>> = eve.events.iter().collect();
        let mut by_id: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        let mut detections: Vec<Detection> = Vec::new();
        let (mut first_us, mut last_us) = (None::<i64>, None::<i64>);
        for (i, ev) in events.iter().enumerate() {
            let kind = s(ev, "event_type");
            let ts = parse_ts(s(ev, "timestamp"));
            if let Some(t) = ts {
                first_us = Some(first_us.map_or(t, |f| f.min(t)));
                last_us = Some(last_us.map_or(t, |l| l.max(t)));
            }
            if NOT_DETECTIONS.contains(&kind) {
                continue;
            }
            let d = details(ev);
            let id = d
                .and_then(|d| d.get("detection_id").or_else(|| d.get("id")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("line-{i}"));
            let det = Detection { ev, kind, ts_us: ts, severity: ev.get("severity").and_then(Value::as_i64) };
            let key = (s(ev, "sensor").to_string(), kind.to_string(), id);
            match by_id.get(&key) {
                Some(&j) => {
                    let old_final = detail_str(detections[j].ev, "status") == "final";
                    if !old_final || detail_str(ev, "status") == "final" {
                        detections[j] = det;
                    }
                }
                None => {
                    by_id.insert(key, detections.len());
                    detections.push(det);
                }
            }
        }
        let stats = events.iter().copied().filter(|e| s(e, "event_type") == "stats").collect();
        Model { events, detections, stats, first_us, last_us }
    }

    /// The final `stats` event of each run (the last one of each sensor
    /// when none says final).
    fn final_stats(&self) -> Vec<&'a Map<String, Value>> {
        let mut last: BTreeMap<&str, &Map<String, Value>> = BTreeMap::new();
        let mut finals = Vec::new();
        for st in &self.stats {
            let body = st.get("stats").and_then(Value::as_object);
            if body.and_then(|b| b.get("final")).and_then(Value::as_bool) == Some(true) {
                finals.push(*st);
            } else {
                last.insert(s(st, "sensor"), st);
            }
        }
        if finals.is_empty() { last.into_values().collect() } else { finals }
    }
}

/// Renders the report. `inputs` names the files read.
pub fn render(eve: &Eve, ports: &PortTable, inputs: &[String]) -> String {
    let m = Model::new(eve);
    let mut h = String::with_capacity(256 * 1024);
    h.push_str(HEAD);
    let _ = write!(
        h,
        "<h1>picket report</h1>\n<p class=\"inputs\">From {}: {} events read.</p>\n",
        esc(&inputs.join(", ")),
        m.events.len()
    );
    run_summary(&mut h, &m);
    port_histogram(&mut h, &m, ports);
    source_ports(&mut h, &m);
    port_pairs(&mut h, &m, ports);
    services(&mut h, &m);
    timeline(&mut h, &m);
    evidence(&mut h, &m);
    input_problems(&mut h, eve);
    h.push_str("</body>\n</html>\n");
    h
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>picket report</title>
<style>
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1000px; color: #111; background: #fff; }
h1 { border-bottom: 3px solid #234; }
h2 { border-bottom: 1px solid #999; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #e8ecf0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.low-low td { background: #fde2e2; font-weight: bold; }
.sev-high { color: #a00; font-weight: bold; }
figure.chart { margin: 0.5em 0; }
figure.chart svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #444; }
details { border: 1px solid #ccc; margin: 4px 0; padding: 2px 6px; }
details pre { white-space: pre-wrap; word-break: break-all; font-size: 0.8em; }
.note { color: #555; font-size: 0.9em; }
@media print {
  body { max-width: none; margin: 0; }
  section { break-inside: avoid-page; }
  figure.chart { break-inside: avoid; }
  details { break-inside: avoid; }
  details > *:not(summary) { display: block; }
}
</style>
</head>
<body>
"#;

/// A chart's SVG, or a note saying why it could not be drawn.
fn figure(h: &mut String, id: &str, caption: &str, draw: impl FnOnce(&mut String) -> Result<(), String>) {
    let mut svg = String::new();
    let _ = writeln!(h, "<figure class=\"chart\" id=\"{id}\">");
    match draw(&mut svg) {
        Ok(()) => h.push_str(&svg),
        Err(e) => {
            let _ = write!(h, "<p class=\"note\">chart not drawn: {}</p>", esc(&e));
        }
    }
    let _ = write!(h, "\n<figcaption>{}</figcaption>\n</figure>\n", esc(caption));
}

/// A vertical bar chart of `bars` (label, value), values above `clip` cut
/// at it and drawn in red. `title` is the caller's own text, never the EVE's.
fn bars_svg(svg: &mut String, title: &str, bars: &[(String, u64)], clip: Option<u64>) -> Result<(), String> {
    let n = bars.len().max(1) as u32;
    let top = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let ymax = clip.unwrap_or(top.saturating_add(top / 10).saturating_add(1));
    let labels: Vec<String> = bars.iter().map(|b| label(&b.0)).collect();
    let root = SVGBackend::with_string(svg, (960, 340)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(90)
        .y_label_area_size(60)
        .build_cartesian_2d((0u32..n - 1).into_segmented(), 0u64..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1))
        .x_label_style(if bars.len() > 8 {
            ("sans-serif", 11).into_font().transform(FontTransform::Rotate90)
        } else {
            ("sans-serif", 12).into_font()
        })
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("count")
        .draw()
        .map_err(|e| e.to_string())?;
    let c = clip;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let clipped = c.is_some_and(|c| b.1 > c);
            let v = if clipped { c.unwrap_or(b.1) } else { b.1 };
            let color = if clipped { RED.mix(0.8).filled() } else { BLUE.mix(0.7).filled() };
            let x = i as u32;
            let mut r = Rectangle::new([(SegmentValue::Exact(x), 0), (SegmentValue::Exact(x + 1), v)], color);
            r.set_margin(0, 0, 2, 2);
            r
        }))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn run_summary(h: &mut String, m: &Model) {
    let finals = m.final_stats();
    let packets: u64 =
        finals.iter().map(|st| num_u(st.get("stats").and_then(|b| b.get("packets")))).fold(0, u64::saturating_add);
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for ev in &m.events {
        *by_type.entry(s(ev, "event_type")).or_insert(0) += 1;
    }
    let mut by_sev: BTreeMap<i64, u64> = BTreeMap::new();
    for d in &m.detections {
        if let Some(sv) = d.severity {
            *by_sev.entry(sv).or_insert(0) += 1;
        }
    }
    // Sources ranked by their worst detection.
    struct Src<'a> {
        worst: i64,
        n: u64,
        kinds: BTreeSet<&'a str>,
        verdict: String,
        summary: &'a str,
    }
    let mut srcs: BTreeMap<&str, Src> = BTreeMap::new();
    for d in &m.detections {
        let ip = s(d.ev, "src_ip");
        if ip.is_empty() {
            continue;
        }
        let sev = d.severity.unwrap_or(i64::MIN);
        let e = srcs.entry(ip).or_insert(Src {
            worst: i64::MIN,
            n: 0,
            kinds: BTreeSet::new(),
            verdict: String::new(),
            summary: "",
        });
        e.n += 1;
        e.kinds.insert(d.kind);
        if d.kind == "verdict" {
            e.verdict = detail_str(d.ev, "conclusion").to_string();
        }
        if sev > e.worst || e.summary.is_empty() {
            e.worst = e.worst.max(sev);
            e.summary = s(d.ev, "summary");
        }
    }
    let mut ranked: Vec<(&str, Src)> = srcs.into_iter().collect();
    ranked.sort_by(|a, b| b.1.worst.cmp(&a.1.worst).then(b.1.n.cmp(&a.1.n)).then(a.0.cmp(b.0)));
    let span = match (m.first_us, m.last_us) {
        (Some(f), Some(l)) => format!("{} to {} ({:.1} s)", rfc3339_us(f), rfc3339_us(l), (l - f) as f64 / 1e6),
        _ => "unknown (no timestamps)".into(),
    };
    let sensors: BTreeSet<&str> = m.events.iter().map(|e| s(e, "sensor")).filter(|s| !s.is_empty()).collect();
    let _ = write!(
        h,
        "<section id=\"run-summary\" data-events=\"{}\" data-detections=\"{}\" data-packets=\"{}\" data-sources=\"{}\">\n\
         <h2>Run summary</h2>\n<table class=\"facts\">\n<tr><th>span</th><td>{}</td></tr>\n\
         <tr><th>packets</th><td class=\"n\">{}</td></tr>\n<tr><th>events</th><td class=\"n\">{}</td></tr>\n\
         <tr><th>detections</th><td class=\"n\">{}</td></tr>\n<tr><th>sensors</th><td>{}</td></tr>\n</table>\n",
        m.events.len(),
        m.detections.len(),
        packets,
        ranked.len(),
        esc(&span),
        packets,
        m.events.len(),
        m.detections.len(),
        esc(&sensors.into_iter().collect::<Vec<_>>().join(", "))
    );
    let sev_bars: Vec<(String, u64)> = by_sev.iter().map(|(k, v)| (format!("severity {k}"), *v)).collect();
    figure(h, "chart-severity", "Detections by severity (-8 benign .. +8 critical).", |svg| {
        bars_svg(svg, "detections by severity", &sev_bars, None)
    });
    h.push_str("<table id=\"events-by-type\">\n<tr><th>event type</th><th>events</th><th>detections</th></tr>\n");
    for (k, v) in &by_type {
        let dets = m.detections.iter().filter(|d| d.kind == *k).count();
        let _ = writeln!(h, "<tr><td>{}</td><td class=\"n\">{v}</td><td class=\"n\">{dets}</td></tr>", esc(k));
    }
    h.push_str("</table>\n<table id=\"events-by-severity\">\n<tr><th>severity</th><th>detections</th></tr>\n");
    for (k, v) in &by_sev {
        let _ = writeln!(h, "<tr><td class=\"n\">{k}</td><td class=\"n\">{v}</td></tr>");
    }
    h.push_str("</table>\n<h3>Sources, worst first</h3>\n<table id=\"sources\">\n<tr><th>source</th><th>worst severity</th><th>detections</th><th>verdict</th><th>worst finding</th></tr>\n");
    for (ip, sr) in ranked.iter().take(MAX_ROWS) {
        let sev = if sr.worst == i64::MIN { String::from("-") } else { sr.worst.to_string() };
        let verdict = if sr.verdict.is_empty() {
            sr.kinds.iter().copied().collect::<Vec<_>>().join(", ")
        } else {
            sr.verdict.clone()
        };
        let cls = if sr.worst >= 4 { " class=\"sev-high\"" } else { "" };
        let _ = writeln!(
            h,
            "<tr class=\"source\"><td>{}</td><td class=\"n\"{cls}>{sev}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(ip),
            sr.n,
            esc(&verdict),
            esc(sr.summary)
        );
    }
    more(h, ranked.len());
    h.push_str("</table>\n</section>\n");
}

fn more(h: &mut String, n: usize) {
    if n > MAX_ROWS {
        let _ = writeln!(h, "<tr><td colspan=\"5\" class=\"note\">{} more not listed</td></tr>", n - MAX_ROWS);
    }
}

/// (protocol, port).
type PortKey = (String, u16);
/// (attempts, unanswered).
type Counts = (u64, u64);
/// (time in seconds, source port, destination port).
type SrcSample = (f64, u16, u16);
/// (protocol, source port class, destination port).
type PairKey = (String, String, u16);

/// Sums the `summary` of every final stats event.
#[derive(Default)]
struct Summary {
    /// (proto, port) -> (attempts, unanswered)
    ports: BTreeMap<(String, u16), (u64, u64)>,
    /// (src ip) -> samples (t_s, sport, dport)
    samples: BTreeMap<String, Vec<(f64, u16, u16)>>,
    /// (proto, src class, dport) -> (count, low_to_low)
    pairs: BTreeMap<(String, String, u16), (u64, bool)>,
    /// Summaries found.
    found: usize,
}

fn summary(m: &Model) -> Summary {
    let mut out = Summary::default();
    for st in m.final_stats() {
        let Some(sum) = st.get("stats").and_then(|b| b.get("summary")).and_then(Value::as_object) else { continue };
        out.found += 1;
        for r in sum.get("unanswered_by_port").and_then(Value::as_array).into_iter().flatten() {
            let (Some(proto), Some(port)) =
                (r.get("proto").and_then(Value::as_str), r.get("port").and_then(Value::as_u64))
            else {
                continue;
            };
            let Ok(port) = u16::try_from(port) else { continue };
            let e = out.ports.entry((proto.chars().take(8).collect(), port)).or_insert((0, 0));
            e.0 = e.0.saturating_add(num_u(r.get("attempts")));
            e.1 = e.1.saturating_add(num_u(r.get("unanswered")));
        }
        for r in sum.get("source_port_samples").and_then(Value::as_array).into_iter().flatten() {
            let Some(ip) = r.get("src_ip").and_then(Value::as_str) else { continue };
            let v = out.samples.entry(ip.to_string()).or_default();
            for p in r.get("samples").and_then(Value::as_array).into_iter().flatten() {
                let (Some(t), Some(sp), Some(dp)) = (
                    p.get(0).and_then(Value::as_f64),
                    p.get(1).and_then(Value::as_u64).and_then(|x| u16::try_from(x).ok()),
                    p.get(2).and_then(Value::as_u64).and_then(|x| u16::try_from(x).ok()),
                ) else {
                    continue;
                };
                if t.is_finite() && v.len() < 4096 {
                    v.push((t, sp, dp));
                }
            }
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        for r in sum.get("port_pairs").and_then(Value::as_array).into_iter().flatten() {
            let proto = r.get("proto").and_then(Value::as_str).unwrap_or("?");
            let src = match r.get("src_port") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(x)) => x.clone(),
                _ => continue,
            };
            let Some(dst) = r.get("dest_port").and_then(Value::as_u64).and_then(|x| u16::try_from(x).ok()) else {
                continue;
            };
            let low = r.get("low_to_low").and_then(Value::as_bool).unwrap_or(false);
            let e = out
                .pairs
                .entry((proto.chars().take(8).collect(), src.chars().take(8).collect(), dst))
                .or_insert((0, low));
            e.0 = e.0.saturating_add(num_u(r.get("count")));
        }
    }
    out
}

fn service<'a>(ports: &'a PortTable, proto: &str, port: u16) -> &'a str {
    let p = if proto.eq_ignore_ascii_case("udp") { 17 } else { 6 };
    ports.lookup(p, port).map(|i| i.name.as_str()).unwrap_or("")
}

fn port_histogram(h: &mut String, m: &Model, ports: &PortTable) {
    let sum = summary(m);
    // (proto, port) -> (attempts, unanswered); without a summary, the
    // detections' destination ports.
    let mut rows: Vec<((String, u16), (u64, u64))> = if sum.found > 0 {
        sum.ports.into_iter().filter(|r| r.1.1 > 0).collect()
    } else {
        let mut c: BTreeMap<(String, u16), (u64, u64)> = BTreeMap::new();
        for d in &m.detections {
            if let Some(p) = d.ev.get("dest_port").and_then(Value::as_u64).and_then(|x| u16::try_from(x).ok()) {
                let e = c.entry((s(d.ev, "proto").to_ascii_lowercase().chars().take(8).collect(), p)).or_insert((0, 0));
                e.0 += 1;
                e.1 += 1;
            }
        }
        c.into_iter().collect()
    };
    let total: u64 = rows.iter().map(|r| r.1.1).fold(0, u64::saturating_add);
    let source = if sum.found > 0 {
        "attempts without an answer (stats.summary.unanswered_by_port)"
    } else {
        "no stats summary in the input: detections by destination port"
    };
    let _ = write!(
        h,
        "<section id=\"port-histogram\" data-ports=\"{}\" data-unanswered=\"{total}\">\n<h2>Destination ports</h2>\n<p class=\"note\">{}; the {MAX_BARS} biggest bars in port order, labelled with the service from the port table.</p>\n",
        rows.len(),
        esc(source)
    );
    rows.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
    let mut bars: Vec<&(PortKey, Counts)> = rows.iter().take(MAX_BARS).collect();
    bars.sort_by(|a, b| a.0.1.cmp(&b.0.1).then(a.0.0.cmp(&b.0.0)));
    let bars: Vec<(String, u64)> = bars
        .iter()
        .map(|((proto, port), (_, u))| {
            let svc = service(ports, proto, *port);
            (format!("{port}/{proto} {svc}"), *u)
        })
        .collect();
    figure(h, "chart-ports-full", "Unanswered attempts by destination port, full scale.", |svg| {
        bars_svg(svg, "unanswered by destination port", &bars, None)
    });
    figure(h, "chart-ports-clipped", "The same, clipped at 10 so the small spikes show (red bars go beyond).", |svg| {
        bars_svg(svg, "unanswered by destination port, clipped at 10", &bars, Some(CLIP))
    });
    h.push_str("<table id=\"ports\">\n<tr><th>port</th><th>proto</th><th>service</th><th>attempts</th><th>unanswered</th></tr>\n");
    for ((proto, port), (a, u)) in rows.iter().take(MAX_ROWS) {
        let _ = writeln!(
            h,
            "<tr class=\"port\"><td class=\"n\">{port}</td><td>{}</td><td>{}</td><td class=\"n\">{a}</td><td class=\"n\">{u}</td></tr>",
            esc(proto),
            esc(service(ports, proto, *port))
        );
    }
    more(h, rows.len());
    h.push_str("</table>\n</section>\n");
}

fn source_ports(h: &mut String, m: &Model) {
    let sum = summary(m);
    let seq: Vec<&Detection> = m.detections.iter().filter(|d| SEQUENCE_TYPES.contains(&d.kind)).collect();
    // One chart per source named by such a detection.
    let mut srcs: BTreeMap<&str, Vec<&Detection>> = BTreeMap::new();
    for d in &seq {
        srcs.entry(s(d.ev, "src_ip")).or_default().push(d);
    }
    let charted: Vec<(&str, &Vec<SrcSample>)> = srcs
        .keys()
        .filter_map(|ip| sum.samples.get(*ip).filter(|v| !v.is_empty()).map(|v| (*ip, v)))
        .take(MAX_SRC_CHARTS)
        .collect();
    let _ = write!(
        h,
        "<section id=\"source-ports\" data-detections=\"{}\" data-sources=\"{}\" data-charts=\"{}\">\n<h2>Source port over time</h2>\n\
         <p class=\"note\">For each source of a retry or sequence detection: its source ports over the run, as sampled by the sensor (stats.summary.source_port_samples). +1 steps, wrap-around and gaps (a reboot) show here.</p>\n",
        seq.len(),
        srcs.len(),
        charted.len()
    );
    for (i, (ip, pts)) in charted.iter().enumerate() {
        let t0 = pts.first().map(|p| p.0).unwrap_or(0.0);
        let t1 = pts.last().map(|p| p.0).unwrap_or(0.0);
        let xs: Vec<(f64, u32)> = pts.iter().map(|p| (p.0 - t0, u32::from(p.1))).collect();
        let start = rfc3339_us((t0 * 1e6) as i64);
        let kinds: BTreeSet<&str> = srcs.get(ip).into_iter().flatten().map(|d| d.kind).collect();
        let cap = format!(
            "{ip}: {} samples from {start} over {:.1} s ({})",
            pts.len(),
            t1 - t0,
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        );
        figure(h, &format!("chart-srcport-{i}"), &cap, |svg| {
            let xmax = (t1 - t0).max(1.0) * 1.02;
            let root = SVGBackend::with_string(svg, (960, 300)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(label(&format!("source port of {ip}")), ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..xmax, 0u32..65_536u32)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("seconds since first sample")
                .y_desc("source port")
                .draw()
                .map_err(|e| e.to_string())?;
            chart.draw_series(LineSeries::new(xs.iter().copied(), BLUE.mix(0.3))).map_err(|e| e.to_string())?;
            chart
                .draw_series(xs.iter().map(|&(x, y)| Circle::new((x, y), 3, BLUE.filled())))
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
            Ok(())
        });
        let _ = write!(
            h,
            "<table class=\"samples\">\n<tr><th>time</th><th>+s</th><th>source port</th><th>step</th><th>dest port</th></tr>\n"
        );
        let mut prev: Option<u16> = None;
        for (t, sp, dp) in pts.iter().take(MAX_ROWS) {
            let step = prev.map(|p| (i32::from(*sp) - i32::from(p)).to_string()).unwrap_or_default();
            prev = Some(*sp);
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{sp}</td><td class=\"n\">{step}</td><td class=\"n\">{dp}</td></tr>",
                rfc3339_us((t * 1e6) as i64),
                t - t0
            );
        }
        more(h, pts.len());
        h.push_str("</table>\n");
    }
    if charted.len() < srcs.len() {
        let _ = writeln!(
            h,
            "<p class=\"note\">{} source(s) of such detections have no samples in the input's stats summary (or are beyond {MAX_SRC_CHARTS} charts).</p>",
            srcs.len() - charted.len()
        );
    }
    h.push_str("</section>\n");
}

fn port_pairs(h: &mut String, m: &Model, ports: &PortTable) {
    let sum = summary(m);
    let mut rows: Vec<(PairKey, (u64, bool))> = sum.pairs.into_iter().collect();
    rows.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(b.1.0.cmp(&a.1.0)).then(a.0.cmp(&b.0)));
    let lows = rows.iter().filter(|r| r.1.1).count();
    let _ = write!(
        h,
        "<section id=\"port-pairs\" data-pairs=\"{}\" data-low-low=\"{lows}\">\n<h2>Port pairs</h2>\n\
         <p class=\"note\">Attempts by source port (below 1024 by number, else \"high\") and destination port. Low to low pairs (both below 1024) are rare in normal traffic apart from a few protocols (DNS, NTP, NetBIOS): they are marked.</p>\n",
        rows.len()
    );
    let bars: Vec<(String, u64)> = rows
        .iter()
        .take(MAX_BARS)
        .map(|((p, src, dst), (n, low))| (format!("{}{src}-{dst}/{p}", if *low { "LOW " } else { "" }), *n))
        .collect();
    figure(h, "chart-port-pairs", "Attempts by port pair, low-to-low pairs first.", |svg| {
        bars_svg(svg, "attempts by source port class to destination port", &bars, None)
    });
    h.push_str("<table id=\"pairs\">\n<tr><th>low to low</th><th>proto</th><th>source port</th><th>destination port</th><th>service</th><th>attempts</th></tr>\n");
    for ((p, src, dst), (n, low)) in rows.iter().take(MAX_ROWS) {
        let _ = writeln!(
            h,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{dst}</td><td>{}</td><td class=\"n\">{n}</td></tr>",
            if *low { "pair low-low" } else { "pair" },
            if *low { "&#9888; low&#8594;low" } else { "" },
            esc(p),
            esc(src),
            esc(service(ports, p, *dst))
        );
    }
    more(h, rows.len());
    h.push_str("</table>\n</section>\n");
}

fn services(h: &mut String, m: &Model) {
    // The last inventory of each sensor.
    let mut inv: BTreeMap<&str, &Map<String, Value>> = BTreeMap::new();
    for ev in &m.events {
        if s(ev, "event_type") == "service_inventory" {
            inv.insert(s(ev, "sensor"), ev);
        }
    }
    if inv.is_empty() {
        return;
    }
    // host -> (proto, port, service) -> clients
    let mut hosts: BTreeMap<String, BTreeMap<(String, u64, String), u64>> = BTreeMap::new();
    for ev in inv.values() {
        let list = ev.get("service_inventory").and_then(|d| d.get("hosts")).and_then(Value::as_array);
        for hv in list.into_iter().flatten() {
            let Some(host) = hv.get("host").and_then(Value::as_str) else { continue };
            let e = hosts.entry(host.to_string()).or_default();
            for sv in hv.get("services").and_then(Value::as_array).into_iter().flatten() {
                let key = (
                    sv.get("proto").and_then(Value::as_str).unwrap_or("?").to_string(),
                    num_u(sv.get("port")),
                    sv.get("service").and_then(Value::as_str).unwrap_or("").to_string(),
                );
                let n = e.entry(key).or_insert(0);
                *n = n.saturating_add(num_u(sv.get("clients")));
            }
        }
    }
    let nsvc: usize = hosts.values().map(BTreeMap::len).sum();
    let _ = write!(
        h,
        "<section id=\"services\" data-hosts=\"{}\" data-services=\"{nsvc}\">\n<h2>Services per host</h2>\n<p class=\"note\">What each home host really answered on (service_inventory), with its distinct clients.</p>\n",
        hosts.len()
    );
    let bars: Vec<(String, u64)> = hosts
        .iter()
        .flat_map(|(host, svcs)| svcs.iter().map(move |((p, port, name), c)| (format!("{host} {port}/{p} {name}"), *c)))
        .take(MAX_BARS)
        .collect();
    figure(h, "chart-services", "Clients per service and host.", |svg| {
        bars_svg(svg, "clients per host and service", &bars, None)
    });
    h.push_str("<table id=\"service-table\">\n<tr><th>host</th><th>services (clients)</th></tr>\n");
    for (host, svcs) in &hosts {
        let list: Vec<String> = svcs.iter().map(|((p, port, name), c)| format!("{port}/{p} {name} ({c})")).collect();
        let _ = writeln!(h, "<tr class=\"host\"><td>{}</td><td>{}</td></tr>", esc(host), esc(&list.join(", ")));
    }
    h.push_str("</table>\n</section>\n");
}

fn timeline(h: &mut String, m: &Model) {
    let times: Vec<i64> = m.detections.iter().filter_map(|d| d.ts_us).collect();
    let worm: Vec<(&str, i64, u64, &str)> = m
        .events
        .iter()
        .filter(|e| s(e, "event_type") == "worm_phase")
        .filter_map(|e| {
            let d = details(e)?;
            let t = parse_ts(s(e, "timestamp"))?;
            Some((
                d.get("host").and_then(Value::as_str).unwrap_or("?"),
                t,
                num_u(d.get("phase")),
                d.get("phase_name").and_then(Value::as_str).unwrap_or(""),
            ))
        })
        .collect();
    let _ = write!(
        h,
        "<section id=\"timeline\" data-detections=\"{}\" data-worm-phases=\"{}\">\n<h2>Detections over time</h2>\n",
        times.len(),
        worm.len()
    );
    let (t0, t1) = (times.iter().min().copied().unwrap_or(0), times.iter().max().copied().unwrap_or(0));
    let width = ((t1 - t0) / TIME_BINS as i64).max(1_000_000);
    let mut bins: BTreeMap<i64, u64> = BTreeMap::new();
    for t in &times {
        *bins.entry((t - t0) / width).or_insert(0) += 1;
    }
    let bars: Vec<(String, u64)> =
        bins.iter().map(|(b, n)| (rfc3339_us(t0 + b * width).get(5..19).unwrap_or("").to_string(), *n)).collect();
    figure(
        h,
        "chart-timeline",
        &format!("Detections (latest event of each) per bin of {:.0} s.", width as f64 / 1e6),
        |svg| bars_svg(svg, "detections over time", &bars, None),
    );
    h.push_str("<table id=\"timeline-table\">\n<tr><th>from</th><th>detections</th></tr>\n");
    for (b, n) in &bins {
        let _ = writeln!(h, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", rfc3339_us(t0 + b * width));
    }
    h.push_str("</table>\n");
    if !worm.is_empty() {
        let w0 = worm.iter().map(|w| w.1).min().unwrap_or(0);
        let w1 = worm.iter().map(|w| w.1).max().unwrap_or(0);
        figure(
            h,
            "chart-worm-phases",
            "Worm phases (I early warning, II spreading, III by rate) over time, per host.",
            |svg| {
                let xmax = ((w1 - w0) as f64 / 1e6).max(1.0) * 1.02;
                let root = SVGBackend::with_string(svg, (960, 260)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| e.to_string())?;
                let mut chart = ChartBuilder::on(&root)
                    .caption("worm phase", ("sans-serif", 18))
                    .margin(8)
                    .x_label_area_size(40)
                    .y_label_area_size(50)
                    .build_cartesian_2d(0f64..xmax, 0u64..4u64)
                    .map_err(|e| e.to_string())?;
                chart
                    .configure_mesh()
                    .x_desc("seconds since the first worm event")
                    .y_desc("phase")
                    .y_labels(4)
                    .draw()
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series(
                        worm.iter().map(|w| Circle::new(((w.1 - w0) as f64 / 1e6, w.2.min(3)), 5, RED.filled())),
                    )
                    .map_err(|e| e.to_string())?;
                root.present().map_err(|e| e.to_string())?;
                Ok(())
            },
        );
        h.push_str("<table id=\"worm-table\">\n<tr><th>time</th><th>host</th><th>phase</th></tr>\n");
        for (host, t, _, name) in worm.iter().take(MAX_ROWS) {
            let _ = writeln!(
                h,
                "<tr class=\"worm\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                rfc3339_us(*t),
                esc(host),
                esc(name)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

fn evidence(h: &mut String, m: &Model) {
    let mut dets: Vec<&Detection> = m.detections.iter().collect();
    dets.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.ts_us.cmp(&b.ts_us)));
    let _ = write!(
        h,
        "<section id=\"evidence\" data-detections=\"{}\">\n<h2>Evidence</h2>\n<p class=\"note\">Each detection's latest event, worst first; open one for its full record.</p>\n",
        dets.len()
    );
    for d in dets {
        let sev = d.severity.map(|s| format!("severity {s}")).unwrap_or_default();
        let body = serde_json::to_string_pretty(&Value::Object(d.ev.clone())).unwrap_or_default();
        let _ = write!(
            h,
            "<details class=\"detection\"><summary>[{}] {} {} &#8594; {}: {}</summary>\n<pre>{}</pre></details>\n",
            esc(d.kind),
            esc(&sev),
            esc(s(d.ev, "src_ip")),
            esc(s(d.ev, "dest_ip")),
            esc(s(d.ev, "summary")),
            esc(&body)
        );
    }
    h.push_str("</section>\n");
}

fn input_problems(h: &mut String, eve: &Eve) {
    let _ = write!(
        h,
        "<section id=\"input\" data-lines=\"{}\" data-bad-lines=\"{}\" data-unknown-types=\"{}\" data-unknown-fields=\"{}\">\n<h2>Input</h2>\n\
         <p>{} lines read; {} bad lines skipped; {} events of unknown types skipped; {} unknown field names ignored{}.</p>\n",
        eve.lines,
        eve.bad_lines,
        eve.unknown_types,
        eve.unknown_fields.len(),
        eve.lines,
        eve.bad_lines,
        eve.unknown_types,
        eve.unknown_fields.len(),
        if eve.unknown_fields_omitted > 0 {
            format!(
                " (and {} more unknown fields past the first {} names)",
                eve.unknown_fields_omitted,
                eve::MAX_UNKNOWN_FIELDS
            )
        } else {
            String::new()
        }
    );
    if !eve.problems.is_empty() {
        h.push_str("<ul class=\"problems\">\n");
        for p in &eve.problems {
            let _ = writeln!(h, "<li>{}</li>", esc(&p.to_string()));
        }
        if eve.problems_omitted > 0 {
            let _ = writeln!(h, "<li>{} more</li>", eve.problems_omitted);
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_and_hostile_ones_do_not() {
        assert_eq!(parse_ts("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            parse_ts("2026-12-07T04:58:06.456407Z").map(rfc3339_us).as_deref(),
            Some("2026-12-07T04:58:06.456407Z")
        );
        assert_eq!(parse_ts("1970-01-01T01:00:00+01:00"), Some(0));
        for bad in [
            "",
            "x",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "２０２６-01-01T00:00:00Z",
            "2026-01-01T00:00:00+1",
        ] {
            assert_eq!(parse_ts(bad), None, "{bad}");
        }
    }

    #[test]
    fn eve_strings_are_escaped_everywhere() {
        let mut eve = Eve::default();
        let evil = "<script>alert(1)</script>";
        let line = serde_json::json!({"event_type":"port_scan","timestamp":"2026-01-01T00:00:00Z","src_ip":evil,
            "dest_ip":"\"><img src=x>","summary":evil,"severity":3,"sensor":evil,"dest_port":80,"proto":"TCP",
            "port_scan":{"status":"final","detection_id":evil}})
        .to_string();
        eve.line(evil, 1, line.as_bytes(), true);
        let html = render(&eve, &PortTable::default(), &[evil.to_string()]);
        assert!(!html.contains("<script"), "unescaped script tag");
        assert!(!html.contains("<img"), "unescaped img tag");
        assert!(html.contains("&lt;script&gt;"));
        assert_eq!(label(evil), "scriptalert1/script");
    }
}
