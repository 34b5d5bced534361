//! `picket report` (README "picket report"): the page of a lab capture's
//! events rendered in a real browser (headless Chromium, Debian's package):
//! every section and chart is there with the counts computed here from the
//! EVE, and the screenshot is not blank. Plus bad input (not JSON, a
//! truncated last line, a newer picket's event types and fields), stdin,
//! and `stats.summary` being the same with any `--workers`.

use crate::common;

use common::{bin, pcap, replay, tempdir};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOT_DETECTIONS: &[&str] = &["stats", "service_inventory", "fw_correlation", "fw_report", "worm_summary"];
const SEQUENCE: &[&str] = &["syn_retry", "periodic_probe", "source_port_sequence", "verdict"];

fn lines(eve: &str) -> Vec<Value> {
    eve.lines().map(|l| serde_json::from_str(l).expect("EVE line")).collect()
}

/// `sensor/type/id` of each detection.
fn detections(evs: &[Value]) -> BTreeSet<(String, String, String)> {
    evs.iter()
        .filter(|e| !NOT_DETECTIONS.contains(&e["event_type"].as_str().unwrap()))
        .map(|e| {
            let t = e["event_type"].as_str().unwrap().to_string();
            let d = &e[&t];
            let id = d["detection_id"].as_str().or(d["id"].as_str()).expect("detection id").to_string();
            (e["sensor"].as_str().unwrap().to_string(), t, id)
        })
        .collect()
}

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
            return c;
        }
    }
    panic!("chromium is not installed: scripts/test installs it (scripts/lib/deps.sh), or apt-get install chromium");
}

/// Runs headless Chromium on `html` with `args`, killed after two minutes.
fn run_chromium(html: &Path, profile: &Path, args: &[String]) -> String {
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("reader")
}

/// The value of `data-NAME` on the element with id `id`.
fn data(dom: &str, id: &str, name: &str) -> u64 {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let tag_end = at + dom[at..].find('>').expect("tag end");
    let tag_start = dom[..at].rfind('<').expect("tag start");
    let tag = &dom[tag_start..tag_end];
    let key = format!("data-{name}=\"");
    let v = tag.find(&key).unwrap_or_else(|| panic!("no data-{name} on #{id}: {tag}"));
    let rest = &tag[v + key.len()..];
    rest[..rest.find('"').unwrap()].parse().unwrap_or_else(|e| panic!("data-{name} of #{id}: {e}"))
}

/// The text between `<section id="ID"` and its `</section>`.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!("<section id=\"{id}\"")).unwrap_or_else(|| panic!("no section #{id}"));
    let end = at + dom[at..].find("</section>").expect("section end");
    &dom[at..end]
}

fn write_eve(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write EVE");
    p
}

fn report(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin()).arg("report").args(args).output().expect("run picket report");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "picket panicked: {stderr}");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn report_of_a_lab_capture_renders_in_chromium_with_every_section_and_count() {
    let dir = tempdir("report");
    // A retry loop with +1 source ports (periodic_probe_30s: syn_retry,
    // periodic_probe, source_port_sequence) and an nmap SYN scan.
    let run = replay(&[&pcap("periodic_probe_30s.pcap"), &pcap("nmap_syn_scan.pcap")], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let evs = lines(&run.stdout);
    let eve = write_eve(&dir, "eve.json", &run.stdout);

    // What the page must show, computed from the EVE.
    let dets = detections(&evs);
    let seq: Vec<_> = dets.iter().filter(|d| SEQUENCE.contains(&d.1.as_str())).collect();
    assert!(!seq.is_empty() && dets.iter().any(|d| d.1 == "port_scan"), "the captures' detections: {dets:?}");
    let stats: Vec<&Value> = evs.iter().filter(|e| e["event_type"] == "stats").collect();
    assert_eq!(stats.len(), 1);
    let st = &stats[0]["stats"];
    let sum = &st["summary"];
    let unanswered: u64 =
        sum["unanswered_by_port"].as_array().unwrap().iter().map(|r| r["unanswered"].as_u64().unwrap()).sum();
    let ports =
        sum["unanswered_by_port"].as_array().unwrap().iter().filter(|r| r["unanswered"].as_u64() > Some(0)).count();
    let pairs = sum["port_pairs"].as_array().unwrap();
    let low_low = pairs.iter().filter(|p| p["low_to_low"] == true).count();
    // nmap's 300 ports are unanswered (the lab's firewall drops them) and
    // the retry loop's 158/tcp too.
    assert!(unanswered >= 300, "{sum}");
    let seq_sources: BTreeSet<&str> = evs
        .iter()
        .filter(|e| SEQUENCE.contains(&e["event_type"].as_str().unwrap()))
        .map(|e| e["src_ip"].as_str().unwrap())
        .collect();
    let sampled: BTreeSet<&str> =
        sum["source_port_samples"].as_array().unwrap().iter().map(|s| s["src_ip"].as_str().unwrap()).collect();
    let charted = seq_sources.intersection(&sampled).count();
    assert_eq!(charted, seq_sources.len(), "every retry source is sampled: {seq_sources:?} {sampled:?}");
    let sources: BTreeSet<&str> = evs
        .iter()
        .filter(|e| !NOT_DETECTIONS.contains(&e["event_type"].as_str().unwrap()))
        .filter_map(|e| e["src_ip"].as_str())
        .collect();
    let inventory = evs.iter().rfind(|e| e["event_type"] == "service_inventory");
    let hosts = inventory.map_or(0, |i| i["service_inventory"]["hosts"].as_array().unwrap().len());

    let html = dir.join("report.html");
    let (code, _, stderr) = report(&[eve.to_str().unwrap(), "-o", html.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "clean EVE, no notes: {stderr}");
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: no script, nothing loaded (the SVG namespace URI is a name, not a fetch).
    for bad in ["<script", " src=", "<link", "@import", "url(", "href=\"http"] {
        assert!(!page.contains(bad), "the page holds {bad:?}");
    }

    let dom = run_chromium(&html, &dir.join("profile"), &["--dump-dom".into()]);
    assert!(dom.contains("<h1>picket report</h1>"), "the browser rendered the page: {}", &dom[..dom.len().min(500)]);
    assert_eq!(data(&dom, "run-summary", "events"), evs.len() as u64);
    assert_eq!(data(&dom, "run-summary", "detections"), dets.len() as u64);
    assert_eq!(data(&dom, "run-summary", "packets"), st["packets"].as_u64().unwrap());
    assert_eq!(data(&dom, "run-summary", "sources"), sources.len() as u64);
    assert_eq!(section(&dom, "run-summary").matches("<tr class=\"source\">").count(), sources.len());
    assert_eq!(data(&dom, "port-histogram", "unanswered"), unanswered);
    assert_eq!(data(&dom, "port-histogram", "ports"), ports as u64);
    assert_eq!(section(&dom, "port-histogram").matches("<tr class=\"port\">").count(), ports.min(200));
    assert!(section(&dom, "port-histogram").contains("pcmail-srv"), "158/tcp labelled with its service");
    assert_eq!(data(&dom, "source-ports", "detections"), seq.len() as u64);
    assert_eq!(data(&dom, "source-ports", "charts"), charted as u64);
    assert_eq!(data(&dom, "port-pairs", "pairs"), pairs.len() as u64);
    assert_eq!(data(&dom, "port-pairs", "low-low"), low_low as u64);
    assert_eq!(section(&dom, "port-pairs").matches("class=\"pair low-low\"").count(), low_low);
    assert_eq!(data(&dom, "services", "hosts"), hosts as u64);
    assert_eq!(data(&dom, "timeline", "detections"), dets.len() as u64);
    assert_eq!(data(&dom, "evidence", "detections"), dets.len() as u64);
    assert_eq!(section(&dom, "evidence").matches("<details class=\"detection\">").count(), dets.len());
    assert_eq!(data(&dom, "input", "bad-lines"), 0);
    // Every chart is an inline SVG with bars or points drawn in it.
    let mut charts =
        vec!["chart-severity", "chart-ports-full", "chart-ports-clipped", "chart-port-pairs", "chart-timeline"];
    let src_charts: Vec<String> = (0..charted).map(|i| format!("chart-srcport-{i}")).collect();
    charts.extend(src_charts.iter().map(String::as_str));
    if hosts > 0 {
        charts.push("chart-services");
    }
    for c in &charts {
        let at = dom.find(&format!("<figure class=\"chart\" id=\"{c}\">")).unwrap_or_else(|| panic!("no chart {c}"));
        let fig = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        assert!(fig.contains("<svg"), "{c} has no SVG");
        assert!(fig.contains("<rect") || fig.contains("<circle"), "{c} draws nothing");
    }
    assert_eq!(dom.matches("<figure class=\"chart\"").count(), charts.len());
    // The clipped histogram cuts the retry loop's 15 and nmap's bars... at 10.
    let clipped = section(&dom, "port-histogram");
    assert!(clipped.contains("clipped at 10"));

    // The screenshot is not blank: many colours, a good share not white.
    let png = dir.join("shot.png");
    run_chromium(
        &html,
        &dir.join("profile"),
        &[format!("--screenshot={}", png.display()), "--window-size=1100,2400".into()],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).expect("screenshot written")));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let bpp = info.color_type.samples();
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(bpp).collect();
    let colours: BTreeSet<Vec<u8>> = px.iter().map(|p| p[..3.min(bpp)].to_vec()).collect();
    let non_white = px.iter().filter(|p| p[..3.min(bpp)].iter().any(|&c| c < 200)).count();
    assert!(info.width >= 1000 && info.height >= 2000, "{}x{}", info.width, info.height);
    assert!(colours.len() > 50, "screenshot has only {} colours", colours.len());
    assert!(non_white * 100 > px.len() * 2, "screenshot nearly blank: {non_white} of {} pixels drawn", px.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_reported_with_file_and_line_and_the_report_still_renders() {
    let dir = tempdir("report-bad");
    let run = replay(&[&pcap("periodic_probe_30s.pcap")], &[]);
    let good: Vec<&str> = run.stdout.lines().collect();
    assert!(good.len() >= 3);
    let mut text = String::new();
    text.push_str(good[0]);
    text.push('\n');
    text.push_str("this is not json\n");
    text.push_str(r#"{"event_type":"teleport","timestamp":"2026-11-22T07:40:00Z","sensor":"x"}"#);
    text.push('\n');
    let mut newer: Value = serde_json::from_str(good[1]).unwrap();
    newer["threat_intel"] = Value::from("<b>new</b>");
    text.push_str(&newer.to_string());
    text.push('\n');
    for l in &good[2..] {
        text.push_str(l);
        text.push('\n');
    }
    text.push_str(&good[0][..good[0].len() / 2]);
    let eve = write_eve(&dir, "bad.json", &text);
    let other = write_eve(&dir, "other.json", &format!("{}\n", good[0]));
    let html = dir.join("r.html");
    let (code, _, stderr) = report(&[eve.to_str().unwrap(), other.to_str().unwrap(), "-o", html.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let name = eve.display().to_string();
    let last = good.len() + 3;
    for (line, what) in [
        (2, "not JSON"),
        (3, "unknown event type \"teleport\""),
        (4, "unknown field \"threat_intel\""),
        (last, "truncated last line"),
    ] {
        let want = format!("picket: report: {name}:{line}: {what}");
        assert!(stderr.contains(&want), "missing {want:?} in\n{stderr}");
    }
    assert!(stderr.contains("2 bad lines and 1 events of unknown types skipped"), "{stderr}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-bad-lines=\"2\"") && page.contains("data-unknown-types=\"1\""), "counted in the page");
    // Every good line (and the newer one, its field ignored) in both files.
    let events = good.len() + 1;
    assert!(page.contains(&format!("data-events=\"{events}\"")), "{events} events expected");
    assert!(!page.contains("<b>new</b>"), "escaped");
    assert!(page.contains("</html>"));

    // Stdin, to stdout.
    let mut child = Command::new(bin())
        .args(["report", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"\x00\xff garbage\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("<stdin>:1: not JSON"), "{stderr}");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("data-bad-lines=\"1\""));

    // A missing file is an error, not an empty report.
    let (code, _, stderr) = report(&[dir.join("absent.json").to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_summary_is_the_same_with_any_workers() {
    let caps = [pcap("periodic_probe_30s.pcap"), pcap("nmap_syn_scan.pcap"), pcap("syn_retry_hping_drop.pcap")];
    let paths: Vec<&Path> = caps.iter().map(PathBuf::as_path).collect();
    let summary = |w: &str| {
        let run = replay(&paths, &["--workers", w]);
        let evs = lines(&run.stdout);
        let st = evs.iter().find(|e| e["event_type"] == "stats").expect("stats").clone();
        st["stats"]["summary"].clone()
    };
    let one = summary("1");
    assert!(one["port_pairs"].as_array().is_some_and(|p| !p.is_empty()), "{one}");
    assert_eq!(one, summary("3"));
}
