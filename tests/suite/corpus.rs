//! Replays every real third-party capture in ../shared/corpus/pcaps: no
//! panic, every packet counted, every event valid, and the known behaviours
//! (see that folder's README) found or not found.

use crate::common;
use common::*;
use std::path::PathBuf;

fn corpus_files() -> Option<Vec<PathBuf>> {
    let Some(dir) = corpus() else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return None;
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    Some(v)
}

const KNOWN_EVENTS: [&str; 17] = [
    "syn_retry",
    "traceroute",
    "smurf",
    "fraggle",
    "netbios_nodestatus",
    "periodic_probe",
    "source_port_sequence",
    "verdict",
    "decoy_scan",
    "port_scan",
    "known_probe",
    "host_sweep",
    "anomaly",
    "brute_force",
    "worm_phase",
    "worm_summary",
    "stats",
];

#[test]
fn every_corpus_capture_replays_cleanly_and_counts_every_packet() {
    let Some(files) = corpus_files() else { return };
    assert!(files.len() >= 10);
    for f in &files {
        let r = replay(&[f], &[]);
        assert_eq!(r.code, Some(0), "{}: {}", f.display(), r.stderr);
        let s = r.stats();
        assert_eq!(s.packets, count_packets(f), "{}", f.display());
        assert_eq!(s.link_types.values().sum::<u64>(), s.packets);
        assert_eq!(s.protocols.values().sum::<u64>(), s.packets);
        for e in &r.events {
            assert!(KNOWN_EVENTS.contains(&e.event_type.as_str()), "{}: {:?}", f.display(), e.event_type);
            assert!(e.timestamp.ends_with('Z') && e.timestamp.len() == 27, "{}", e.timestamp);
            // stats and worm_summary are run-wide: no flow.
            if e.event_type != "stats" && e.event_type != "worm_summary" {
                assert!(e.summary.as_deref().is_some_and(|s| s.len() > 20));
                assert!(e.community_id.as_deref().is_some_and(|c| c.starts_with("1:")));
                assert!(e.severity.is_some());
            }
        }
    }
}

#[test]
fn unanswered_syn_sent_three_times_is_a_syn_retry() {
    let Some(f) = corpus_file("cs_nowebaccess3_syn_retry.pcapng") else {
        println!("skipping: corpus absent");
        return;
    };
    // One attempt's own back-off is reported only when the rules ask.
    let r = replay(&[&f], &[]);
    assert!(r.syn_retry_finals().is_empty(), "{:?}", r.stdout);
    let dir = tempdir("corpus-single-attempt");
    std::fs::write(dir.join("picket.toml"), "[syn_retry]\nmin_distinct_attempts = 1\n").unwrap();
    let r = replay(&[&f], &["--rules", dir.to_str().unwrap()]);
    let d = r.syn_retry_finals();
    assert_eq!(d.len(), 1, "{:?}", r.stdout);
    assert_eq!(d[0].attempts, 1);
    assert_eq!(d[0].retransmissions, 2);
    assert!(!d[0].answered);
    assert_eq!(d[0].rejected_by, "none");
}

#[test]
fn retransmitted_then_answered_is_not_a_syn_retry() {
    let Some(f) = corpus_file("suricata_syn_retransmit.pcap") else {
        println!("skipping: corpus absent");
        return;
    };
    let r = replay(&[&f], &[]);
    assert!(r.of_type("syn_retry").is_empty(), "{}", r.stdout);
}

#[test]
fn scans_and_os_fingerprinting_are_not_syn_retries() {
    for name in [
        "evilfingers_nmap_tcp_syn_scan.pcap",
        "sgr_nmap_syn_ports_1_10000.pcapng",
        "esnet_masscan_tcp_0_1000.pcap",
        "cs_synscan.pcapng",
        // nmap -O: SYN+FIN probes and same-ISN re-sends 0.17 s apart with new IP IDs.
        "cs_activeosfingerprinting.pcapng",
        "evilfingers_xscan.pcap",
    ] {
        let Some(f) = corpus_file(name) else {
            println!("skipping {name}: corpus absent");
            continue;
        };
        let r = replay(&[&f], &[]);
        assert!(r.of_type("syn_retry").is_empty(), "{name}: {}", r.stdout);
    }
}

/// (capture, scanner, scan_type, pattern, tool): every scan in the corpus
/// is one `port_scan`, from the address the corpus README names.
const SCANS: &[(&str, &str, &str, &str, &str)] = &[
    ("cs_synscan.pcapng", "172.16.0.8", "syn", "vertical", "nmap"),
    ("esnet_masscan_tcp_0_1000.pcap", "172.31.15.102", "syn", "vertical", "masscan"),
    ("esnet_masscan_udp_0_1000.pcap", "172.31.15.102", "udp", "vertical", "unknown"),
    ("evilfingers_nmap_ack_scan.pcap", "192.168.1.10", "ack", "vertical", "unknown"),
    ("evilfingers_nmap_window_scan.pcap", "192.168.1.10", "ack", "vertical", "unknown"),
    ("evilfingers_nmap_connect_scan.pcap", "192.168.1.10", "connect", "vertical", "unknown"),
    ("evilfingers_nmap_version_scan.pcap", "192.168.1.10", "connect", "vertical", "unknown"),
    ("evilfingers_nmap_rpc_scan.pcap", "192.168.1.10", "connect", "vertical", "unknown"),
    ("evilfingers_nmap_fin_scan.pcap", "192.168.1.10", "fin", "vertical", "unknown"),
    ("evilfingers_nmap_null_scan.pcap", "192.168.1.10", "null", "vertical", "unknown"),
    ("evilfingers_nmap_xmas_scan.pcap", "192.168.1.10", "xmas", "vertical", "unknown"),
    ("evilfingers_nmap_tcp_syn_scan.pcap", "192.168.1.10", "syn", "vertical", "nmap"),
    ("evilfingers_nmap_udp_scan.pcap", "192.168.1.10", "udp", "vertical", "unknown"),
    ("evilfingers_xprobe_tcp_scan.pcap", "192.168.1.20", "syn", "vertical", "unknown"),
    ("evilfingers_xprobe_udp_scan.pcap", "192.168.1.20", "udp", "vertical", "unknown"),
    ("evilfingers_xscan.pcap", "192.168.1.125", "mixed", "vertical", "unknown"),
    ("nfpc_puzzle4_evidence04.pcap", "10.42.42.253", "connect", "block", "unknown"),
    ("ppa_portscan.pcap", "10.100.25.14", "syn", "vertical", "unknown"),
    ("sgr_nmap_syn_ports_1_10000.pcapng", "192.168.1.7", "syn", "vertical", "nmap"),
    ("sgr_tcp_syn_ping_sweep.pcapng", "10.0.0.128", "syn", "horizontal", "nmap"),
    ("sgr_udp_sweep.pcap", "246.237.45.150", "udp", "horizontal", "unknown"),
    // nmap -sV against a few hosts: a small block scan.
    ("zeek_nmap_vsn.pcap", "192.168.1.71", "mixed", "block", "unknown"),
];

#[test]
fn every_scan_in_the_corpus_is_named_and_nothing_else_is_a_scan() {
    let Some(files) = corpus_files() else { return };
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let r = replay(&[f], &[]);
        let finals = r.port_scan_finals();
        match SCANS.iter().find(|s| s.0 == name) {
            Some((_, src, ty, pattern, tool)) => {
                assert_eq!(finals.len(), 1, "{name}: {}", r.stdout);
                let (e, d) = finals[0];
                assert_eq!(e.src_ip.as_deref(), Some(*src), "{name}");
                let got = (d.scan_type.as_str(), d.pattern.as_str(), d.tool.as_str());
                assert_eq!(got, (*ty, *pattern, *tool), "{name}");
            }
            None => {
                let summaries: Vec<_> = finals.iter().map(|f| &f.0.summary).collect();
                assert!(finals.is_empty(), "{name}: {summaries:?}");
            }
        }
    }
}

/// Reviewed (issue 14): the only corpus capture with `worm_phase` is nmap's
/// TCP SYN ping sweep of a /24 on port 80 (255 SYNs, none answered): phase
/// I at 80/tcp and any, the sentries' early warning ("false positives
/// possible"), and no name. Nothing else in the corpus climbs the ladder.
#[test]
fn only_the_syn_ping_sweep_reaches_a_worm_phase() {
    let Some(files) = corpus_files() else { return };
    for f in &files {
        let r = replay(&[f], &[]);
        let got: Vec<(u8, String)> =
            r.events.iter().filter_map(|e| e.worm_phase.as_ref()).map(|w| (w.phase, w.sentry.clone())).collect();
        if f.ends_with("sgr_tcp_syn_ping_sweep.pcapng") {
            assert_eq!(got, [(1, "80/tcp".to_string()), (1, "any".to_string())], "{}", r.stdout);
            assert!(r.events.iter().filter_map(|e| e.worm_phase.as_ref()).all(|w| w.worm.is_none()));
        } else {
            assert!(got.is_empty(), "{}: {got:?}", f.display());
        }
    }
}

/// A test that reads ../shared must not pass without it: an absent path
/// fails, unless PICKET_SKIP_SHARED=1 asks to skip (then it is `None`).
#[test]
fn an_absent_shared_path_fails_unless_skipping_is_asked() {
    let got = std::panic::catch_unwind(|| shared("corpus/no-such-file.pcap"));
    if std::env::var_os("PICKET_SKIP_SHARED").is_some_and(|v| v == "1") {
        assert!(matches!(got, Ok(None)), "{got:?}");
    } else {
        let err = got.expect_err("an absent ../shared path must fail the test");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("corpus/no-such-file.pcap") && msg.contains("PICKET_SKIP_SHARED=1"), "{msg}");
    }
}
