//! The personal firewalls of the seed write-ups (issue 18, "The logs people
//! have"): `picket fwlog` over the crafted samples `pcaps/fw_norton_crafted.log`
//! and `pcaps/fw_zonealarm_crafted.log` (layouts from the write-ups, Norton's
//! message catalogue and ZoneAlarm's log documentation; see pcaps/README.md).
//! Each file is recognised without `--fw-format`, every line ends as a
//! record, an other line or a bad line (bad ones named by file and line), and
//! the detections are the ones an analyst expects: ZoneAlarm's FWIN lines
//! hold a vertical SYN scan, Norton's records a trojan prober.

use crate::common;
use common::*;
use serde_json::Value;

fn events(run: &Run) -> Vec<Value> {
    run.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn fw_file(run: &Run) -> Value {
    let evs = events(run);
    let fw = evs.iter().find(|e| e["event_type"] == "fw_correlation").expect("fw_correlation");
    fw["fw_correlation"]["files"][0].clone()
}

fn bad_lines(run: &Run) -> Vec<(u32, String)> {
    run.fw().bad_lines[0].first.iter().map(|b| (b.line, b.reason.clone())).collect()
}

#[test]
fn zonealarm_log_is_detected_and_holds_a_port_scan() {
    let path = pcap("fw_zonealarm_crafted.log");
    let text = std::fs::read_to_string(&path).unwrap();
    // Counted independently, with plain string tests: records are the
    // FWIN/FWIN_OK lines with six fields; the rest are kinds, header lines
    // and the Windows banner.
    let lines: Vec<&str> = text.lines().collect();
    let six = |l: &str| l.split(',').count() == 6;
    let fwin =
        lines.iter().filter(|l| l.starts_with("FWIN,") || l.starts_with("FWIN_OK,")).filter(|l| six(l)).count() as u64;
    let broken = lines.iter().filter(|l| l.starts_with("FWIN,")).filter(|l| !six(l)).count() as u64;
    let kind = |k: &str| lines.iter().filter(|l| l.starts_with(&format!("{k},"))).count() as u64;
    assert_eq!((fwin, broken), (33, 1));

    let run = fwlog(&[&path], &["--home-net", "192.0.2.0/24"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let f = fw_file(&run);
    assert_eq!(f["format"], "zonealarm");
    assert_eq!(f["lines"], lines.len() as u64);
    assert_eq!(f["records"], fwin);
    assert_eq!(f["bad_lines"], broken);
    // Other lines: 2 FWOUT, 2 PE, 1 ACCESS, 2 column/banner header lines
    // named, and the Windows version line (no kind).
    assert_eq!(f["other_lines"], lines.len() as u64 - fwin - broken);
    let kinds = &f["other_kinds"];
    assert_eq!((kinds["FWOUT"].as_u64(), kinds["PE"].as_u64()), (Some(kind("FWOUT")), Some(kind("PE"))));
    assert_eq!((kinds["ACCESS"].as_u64(), kinds["header"].as_u64()), (Some(kind("ACCESS")), Some(2)));
    assert_eq!(bad_lines(&run), vec![(21, "fewer than six fields".to_string())]);
    assert_eq!(lines[20], "FWIN,2026/11/22,05:00:02 -5:00 GMT,203.0.113.50:54321,192.0.2.");
    let fw = run.fw();
    // `-5:00 GMT` honoured: 04:58:30 local is 09:58:30 UTC.
    assert_eq!(fw.first_record.as_deref(), Some("2026-11-22T09:58:30.000000Z"));
    assert_eq!(fw.by_action.get("deny"), Some(&32));
    assert_eq!(fw.by_action.get("accept"), Some(&1));

    // The analyst's reading: 203.0.113.50 swept 30 ports of 192.0.2.10 in 5 s.
    let scans = run.port_scan_finals();
    assert_eq!(scans.len(), 1, "{:?}", run.of_type("port_scan"));
    let (ev, ps) = scans[0];
    assert_eq!((ev.src_ip.as_deref(), ev.dest_ip.as_deref()), (Some("203.0.113.50"), Some("192.0.2.10")));
    assert_eq!((ps.ports_probed, ps.pattern.as_str(), ps.scan_type.as_str()), (30, "vertical", "syn"));
    assert_eq!(ev.origin.as_deref(), Some("firewall_log"));
    // Nothing else: the lone ping, the LAN's NetBIOS broadcast and the
    // accepted DHCP packet are no detections.
    let detections: Vec<_> =
        run.events.iter().filter(|e| !matches!(e.event_type.as_str(), "stats" | "fw_correlation")).collect();
    assert!(detections.iter().all(|e| e.event_type == "port_scan"), "{detections:?}");

    // Forced, the same.
    let forced = fwlog(&[&path], &["--home-net", "192.0.2.0/24", "--fw-format", "zonealarm"]);
    assert_eq!(fw_file(&forced)["records"], fwin);
}

#[test]
fn norton_log_is_detected_and_holds_a_trojan_prober() {
    let path = pcap("fw_norton_crafted.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Records start with a date: 10 first lines, two of them cut short.
    let firsts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with("11/22/2026 ")).map(|i| i + 1).collect();
    assert_eq!(firsts.len(), 10);

    let run = fwlog(&[&path], &["--home-net", "192.0.2.0/24"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let f = fw_file(&run);
    assert_eq!(f["format"], "norton");
    assert_eq!(f["lines"], lines.len() as u64);
    assert_eq!(f["records"], 8);
    assert_eq!(f["bad_lines"], 2);
    assert_eq!(f["other_lines"], lines.len() as u64 - 8 - 2);
    assert_eq!(
        bad_lines(&run),
        vec![
            (31, "Norton record interrupted by the next record's first line".to_string()),
            (52, "Norton record truncated at the end of the input".to_string()),
        ]
    );
    assert!(firsts.contains(&31) && firsts.contains(&52));
    let fw = run.fw();
    assert_eq!(fw.by_action.get("deny"), Some(&6), "{:?}", fw.by_action);
    assert_eq!(fw.by_action.get("drop"), Some(&1), "the stealthed ping");
    assert_eq!(fw.by_action.get("accept"), Some(&1), "the permitted DNS query");
    // Service names mapped back to ports: Backdoor-g-1 -> 1243 (twice),
    // NetBus -> 12345, Backdoor-g-3(6776), and the unused-port telnet -> 23.
    let port = |p: u16| fw.by_port.iter().find(|x| x.port == Some(p)).map(|x| x.count);
    assert_eq!((port(1243), port(12345), port(6776), port(23)), (Some(2), Some(1), Some(1), Some(1)));
    assert_eq!(fw.first_record.as_deref(), Some("2026-11-22T09:58:12.000000Z"));

    // The analyst's reading: 203.0.113.7 knocked on three trojans' ports of 192.0.2.10.
    let evs = events(&run);
    let finals: Vec<&Value> =
        evs.iter().filter(|e| e["event_type"] == "known_probe" && e["known_probe"]["status"] == "final").collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
    let kp = &finals[0]["known_probe"];
    assert_eq!(
        (finals[0]["src_ip"].as_str(), finals[0]["dest_ip"].as_str()),
        (Some("203.0.113.7"), Some("192.0.2.10"))
    );
    let ports: Vec<u64> = kp["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
    assert_eq!(ports, vec![1243, 12345, 6776]);
    // The Backdoor-g-1 record repeated from source port 3187 is one attempt, retransmitted.
    assert_eq!((kp["attempts"].as_u64(), kp["retransmissions"].as_u64()), (Some(3), Some(1)));
    assert_eq!(finals[0]["origin"], "firewall_log");
}

/// Hostile bytes in either format: nothing panics, and every line is
/// accounted for.
#[test]
fn hostile_personal_firewall_logs_are_counted_not_fatal() {
    let dir = tempdir("fw-personal-hostile");
    let mut text = String::new();
    text.push_str("1/1/2001 0:00:00 Rule \"((((\" blocked ((((,)))).  Details:\n");
    text.push_str("Remote address,service is (\u{fffd}\u{fffd},99999999999)\n");
    text.push_str("Process name is \"\n");
    text.push_str("FWIN,9999/99/99,99:99:99 -99:00 GMT,:,:,TCP (flags:\n");
    text.push_str("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1:1,192.0.2.1:2,ICMP (type:8/subtype:999)\n");
    text.push_str(&"Local address,service is (".repeat(500));
    text.push('\n');
    for _ in 0..40 {
        text.push_str("(\n");
    }
    let path = dir.join("hostile.log");
    std::fs::write(&path, &text).unwrap();
    let run = fwlog(&[&path], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let s = run.stats();
    assert_eq!(s.fw_lines, text.lines().count() as u64);
    assert_eq!(s.fw_records + s.fw_other_lines + s.fw_bad_lines, s.fw_lines);
    assert!(s.fw_bad_lines >= 3, "{s:?}");
}
