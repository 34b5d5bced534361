//! The `smurf` / `fraggle` detector (SIGNATURES.md section 4) against the
//! lab's hping3 capture (forged 198.51.100.50 to 192.0.2.191, the broadcast
//! of 192.0.2.128/26, see pcaps/README.md), a crafted echo/chargen loop, and
//! the third-party corpus (IPv6 rsmurf6, a unicast chargen packet).

use crate::common;
use common::*;
use std::path::{Path, PathBuf};

/// A rules directory that declares the lab's /26 as a broadcast subnet.
fn lab_rules(tag: &str) -> PathBuf {
    let d = tempdir(tag);
    std::fs::write(d.join("picket.toml"), "[smurf]\nbroadcast_subnets = [\"192.0.2.128/26\"]\n").unwrap();
    d
}

#[test]
fn hping3_smurf_and_fraggle_to_a_configured_broadcast() {
    let rules = lab_rules("smurf-lab");
    let r = replay(&[&pcap("smurf_fraggle.pcap")], &["--rules", rules.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = r.amplification_finals("smurf");
    assert_eq!(s.len(), 1, "{}", r.stdout);
    let s = s[0];
    assert_eq!(s.victim, "198.51.100.50");
    assert_eq!(s.amplifiers, vec!["192.0.2.191".to_string()]);
    assert_eq!(s.subnets, vec!["192.0.2.128/26".to_string()]);
    assert_eq!(s.packets, 5);
    assert!((s.pps - 1.0).abs() < 0.05, "{}", s.pps);
    assert_eq!(s.replies, 10, "2 echo replies per request");
    assert_eq!(s.responders, 2);
    assert_eq!(s.dest_port, None);
    assert_eq!(s.direction.as_deref(), Some("inbound"));
    let f = r.amplification_finals("fraggle");
    assert_eq!(f.len(), 1, "one event per victim: {}", r.stdout);
    let f = f[0];
    assert_eq!(f.pattern, "directed_broadcast");
    assert_eq!(f.victim, "198.51.100.50");
    assert_eq!(f.packets, 10);
    assert_eq!(f.dest_ports, vec![7, 19]);
    assert_eq!(f.dest_port, Some(7));
    assert_eq!(f.replies, 20, "2 echoes and 2 chargen answers per request");
    for e in r.of_type("smurf").into_iter().chain(r.of_type("fraggle")) {
        assert_eq!(e.src_ip.as_deref(), Some("198.51.100.50"));
        assert_eq!(e.dest_ip.as_deref(), Some("192.0.2.191"));
        let d = e.smurf.as_ref().or(e.fraggle.as_ref()).unwrap();
        assert!(d.id == s.id || d.id == f.id);
        assert!(e.summary.as_deref().unwrap().contains("victim"));
    }
    assert_ne!(s.id, f.id);
}

#[test]
fn without_the_subnet_rule_192_0_2_191_is_an_ordinary_host() {
    let r = replay(&[&pcap("smurf_fraggle.pcap")], &[]);
    assert!(r.of_type("smurf").is_empty() && r.of_type("fraggle").is_empty(), "{}", r.stdout);
}

#[test]
fn other_lab_captures_have_no_smurf_or_fraggle() {
    let rules = lab_rules("smurf-others");
    for name in ["benign_web_dns.pcap", "traceroute.pcap", "netbios.pcap", "nmap_syn_scan.pcap", "decoy_scan_nmap.pcap"]
    {
        let r = replay(&[&pcap(name)], &["--rules", rules.to_str().unwrap()]);
        assert!(r.of_type("smurf").is_empty() && r.of_type("fraggle").is_empty(), "{name}: {}", r.stdout);
    }
}

/// Ethernet + IPv4 + UDP frame.
fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(b'x', payload));
    f
}

#[test]
fn a_crafted_echo_chargen_loop_is_reported() {
    // One forged packet "from" 192.0.2.10:7 to 192.0.2.20:19 starts it; then
    // chargen and echo answer each other (no real tool makes this safely).
    let d = tempdir("echo-loop");
    let p = d.join("loop.pcap");
    let (a, b) = ([192, 0, 2, 10], [192, 0, 2, 20]);
    let mut frames = vec![(1_000_000i64, udp_frame(a, b, 7, 19, 1))];
    for i in 0..20i64 {
        let t = 1_000_000 + (i + 1) * 1000;
        let f = if i % 2 == 0 { udp_frame(b, a, 19, 7, 74) } else { udp_frame(a, b, 7, 19, 74) };
        frames.push((t, f));
    }
    write_pcap(&p, &frames);
    let r = replay(&[Path::new(&p)], &[]);
    let f = r.amplification_finals("fraggle");
    assert_eq!(f.len(), 1, "{}", r.stdout);
    assert_eq!(f[0].pattern, "echo_chargen_loop");
    assert_eq!(f[0].victim, "192.0.2.10");
    assert_eq!(f[0].amplifiers, vec!["192.0.2.20".to_string()]);
    assert_eq!(f[0].packets, 21);
    assert!(r.of_type("smurf").is_empty());
}

#[test]
fn ipv6_rsmurf6_is_a_smurf_to_all_nodes() {
    let Some(f) = corpus_file("suricata_ipv6_rsmurf6.pcap") else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return;
    };
    let r = replay(&[&f], &[]);
    let s = r.amplification_finals("smurf");
    assert_eq!(s.len(), 1, "{}", r.stdout);
    assert_eq!(s[0].victim, "ff02::1");
    assert_eq!(s[0].amplifiers, vec!["ff02::1".to_string()]);
    assert_eq!(s[0].packets, 1000);
    assert!(r.of_type("smurf").last().unwrap().summary.as_deref().unwrap().contains("multicast"));
}

#[test]
fn the_rest_of_the_corpus_has_no_smurf_or_fraggle() {
    let Some(dir) = corpus() else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return;
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let f = entry.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name == "suricata_ipv6_rsmurf6.pcap" {
            continue;
        }
        // Includes evilfingers_udp_echo7_chargen19.pcap: one unicast packet to
        // chargen and a fragment back, neither a broadcast nor a loop; and
        // sgr_icmp_ping_sweep.pcap, whose ping to 10.0.0.255 is not ours.
        let r = replay(&[&f], &[]);
        assert!(r.of_type("smurf").is_empty() && r.of_type("fraggle").is_empty(), "{name}: {}", r.stdout);
    }
}
