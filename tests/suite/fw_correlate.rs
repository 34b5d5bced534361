//! `picket replay --fw-log` (issue 4, "Correlate") on the lab pairs: a
//! span-port capture and the log three real firewalls wrote at the same time
//! (pcaps/fw_*.pcap + .log; pcaps/README.md). What the pairs hold is checked
//! independently in tests/suite/fw_lab_pairs.rs: 205 inbound drops each on the
//! span as one SYN (TTL one lower in the log), 32 egress TCP/445 drops the
//! span never sees, and a kernel clock 0.88 s behind the capture.

use crate::common;
use common::*;

fn correlate(name: &str) -> Run {
    let log = pcap(&format!("{name}.log"));
    let r = replay(&[&pcap(&format!("{name}.pcap"))], &["--fw-log", log.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
    r
}

fn fw(r: &Run) -> FwCorrelation {
    let evs = r.of_type("fw_correlation");
    assert_eq!(evs.len(), 1, "one fw_correlation event");
    evs[0].fw_correlation.clone().expect("details")
}

#[test]
fn every_inbound_record_meets_its_packet_and_the_egress_sweep_is_log_only() {
    for (name, offset) in [
        ("fw_iptables_dmesg", Some((-0.95, -0.80))),
        ("fw_nftables", Some((-0.95, -0.80))),
        ("fw_iptables_nflog", None),
    ] {
        let r = correlate(name);
        let c = fw(&r);
        assert_eq!(c.mode, "capture", "{name}");
        assert_eq!((c.records, c.matched, c.unmatched_records), (237, 205, 32), "{name}");
        // The unmatched ones are the egress 445 sweep: 32 records on that port.
        let p445 = c.by_port.iter().find(|p| p.port == Some(445)).map(|p| p.count);
        assert_eq!(p445, Some(32), "{name}");
        // Attempts toward the DMZ the firewall did not log (it logs its drops).
        assert!(c.unlogged_packets < 10, "{name}: {}", c.unlogged_packets);
        let off = c.clock_offset_s.expect("an offset");
        match offset {
            Some((lo, hi)) => assert!((lo..hi).contains(&off), "{name}: {off}"),
            // ulogd's syslog time has whole seconds: within one of the wire.
            None => assert!(off.abs() < 1.0, "{name}: {off}"),
        }
        // The stats count the log lines too.
        assert_eq!(r.stats().fw_lines, 237, "{name}");
        assert_eq!(r.stats().fw_bad_lines, 0, "{name}");
    }
}

#[test]
fn detections_carry_what_the_firewall_logged_about_them() {
    let r = correlate("fw_iptables_dmesg");
    let retries: Vec<&Event> = r.of_type("syn_retry");
    assert!(!retries.is_empty(), "the 30 s retry client is on the span");
    for e in retries {
        let f = e.firewall.as_ref().unwrap_or_else(|| panic!("no firewall object: {e:?}"));
        assert_eq!(f.scope, "flow");
        assert!(f.records >= 3, "{f:?}");
        assert_eq!(f.actions, ["drop"]);
        assert_eq!(f.rules, ["PK-IN-DROP:"]);
        // Where the claim comes from: the log file, by its path (issue 17).
        let path = pcap("fw_iptables_dmesg.log").display().to_string();
        assert_eq!(f.via, [serde_json::json!({"channel": "file", "sender": path})], "{f:?}");
        assert!(!f.spoofable);
    }
    // Without --fw-log there is no such object.
    let plain = replay(&[&pcap("fw_iptables_dmesg.pcap")], &[]);
    assert!(plain.events.iter().all(|e| e.firewall.is_none()));
    assert!(plain.of_type("fw_correlation").is_empty());
}

#[test]
fn a_log_from_another_network_matches_nothing_and_a_missing_log_is_an_error() {
    // A real corpus log (psad's SYN scan) names none of the lab's packets.
    if let Some(dir) = fw_corpus() {
        let log = dir.join("psad_iptables_syn_scan.log");
        let r = replay(&[&pcap("fw_iptables_dmesg.pcap")], &["--fw-log", log.to_str().unwrap()]);
        let c = fw(&r);
        assert!(c.records > 0);
        assert_eq!((c.matched, c.unmatched_records), (0, c.records));
        assert_eq!(c.clock_offset_s, None);
    } else {
        eprintln!("skipped the corpus half: ../shared/corpus/fwlogs is absent");
    }
    let r =
        picket_raw(&["replay", pcap("fw_iptables_dmesg.pcap").to_str().unwrap(), "--fw-log", "/nonexistent/fw.log"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("/nonexistent/fw.log"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
}
