//! Replays every real third-party capture in ../shared/corpus/pcaps: no
//! panic, every packet counted, every event valid, and the known behaviours
//! (see that folder's README) found or not found.

mod common;
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

const KNOWN_EVENTS: [&str; 10] = [
    "syn_retry",
    "traceroute",
    "smurf",
    "fraggle",
    "netbios_nodestatus",
    "periodic_probe",
    "source_port_sequence",
    "verdict",
    "decoy_scan",
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
            if e.event_type != "stats" {
                assert!(e.summary.as_deref().is_some_and(|s| s.len() > 20));
                assert!(e.community_id.as_deref().is_some_and(|c| c.starts_with("1:")));
                assert!(e.severity.is_some());
            }
        }
    }
}

fn corpus_file(name: &str) -> Option<PathBuf> {
    let p = corpus()?.join(name);
    p.exists().then_some(p)
}

#[test]
fn unanswered_syn_sent_three_times_is_a_syn_retry() {
    let Some(f) = corpus_file("cs_nowebaccess3_syn_retry.pcapng") else {
        println!("skipping: corpus absent");
        return;
    };
    let r = replay(&[&f], &[]);
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
