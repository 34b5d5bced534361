//! Replays the lab captures in pcaps/ (recorded with real tools by
//! scripts/record-pcaps; see pcaps/README.md) and checks the detections.

use crate::common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn one_final(name: &str) -> (Run, SynRetry) {
    let r = replay(&[&pcap(name)], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let f = r.syn_retry_finals();
    assert_eq!(f.len(), 1, "{name}: {}", r.stdout);
    let d = f[0].clone();
    (r, d)
}

#[test]
fn hping_syns_to_a_dropped_port_are_a_retry_loop_with_new_source_ports() {
    let (r, d) = one_final("syn_retry_hping_drop.pcap");
    assert_eq!(d.attempts, 6);
    assert_eq!(d.retransmissions, 0);
    assert_eq!(d.source_ports, 6);
    assert_eq!(d.last_source_port.wrapping_sub(d.first_source_port), 5, "hping3 increments the source port");
    assert_eq!(d.payload_bytes, 0);
    assert!(!d.answered);
    assert_eq!(d.rejected_by, "none");
    assert_eq!(d.service.as_deref(), Some("pcmail-srv"));
    assert_eq!(d.direction.as_deref(), Some("inbound"));
    assert_eq!(d.end_reason.as_deref(), Some("end_of_input"));
    let ev = r.of_type("syn_retry");
    // Confirmed while the attempts went on, then ended at the end of input, one id.
    assert_eq!(ev[0].syn_retry.as_ref().unwrap().status, "new");
    assert!(ev.iter().all(|e| e.syn_retry.as_ref().unwrap().id == d.id));
    let last = ev.last().unwrap();
    assert_eq!(last.dest_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(last.dest_port, Some(158));
    assert_eq!(last.proto.as_deref(), Some("TCP"));
    assert!(last.community_id.as_deref().is_some_and(|c| c.starts_with("1:") && c.len() == 30));
    assert!(last.summary.as_deref().unwrap().contains("pcmail-srv"));
    assert_eq!(last.sensor, "syn_retry_hping_drop.pcap");
}

/// A rules directory asking for one attempt's back-off to be reported.
fn single_attempt_rules() -> std::path::PathBuf {
    let dir = tempdir("single-attempt");
    std::fs::write(dir.join("picket.toml"), "[syn_retry]\nmin_distinct_attempts = 1\n").unwrap();
    dir
}

#[test]
fn kernel_retransmissions_of_one_attempt_are_counted_as_retransmissions() {
    // By default one SYN and its own back-off is one failed connection, not
    // a program retrying: no detection.
    let r = replay(&[&pcap("syn_retry_kernel_retrans.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.syn_retry_finals().is_empty(), "{}", r.stdout);
    // The rules can ask for it.
    let dir = single_attempt_rules();
    let r = replay(&[&pcap("syn_retry_kernel_retrans.pcap")], &["--rules", dir.to_str().unwrap()]);
    let f = r.syn_retry_finals();
    assert_eq!(f.len(), 1, "{}", r.stdout);
    let d = &f[0];
    assert_eq!(d.attempts, 1);
    assert!(d.retransmissions >= 2, "{d:?}");
    assert_eq!(d.source_ports, 1);
    assert!(!d.answered);
}

#[test]
fn a_syn_retransmitted_then_answered_is_not_a_detection() {
    let r = replay(&[&pcap("syn_answered_after_retrans.pcap")], &[]);
    assert!(r.of_type("syn_retry").is_empty(), "{}", r.stdout);
    assert!(r.stats().protocols["tcp"] > 3);
}

#[test]
fn rst_rejections_are_reported() {
    let (_, d) = one_final("syn_rejected_rst.pcap");
    assert_eq!(d.attempts, 5);
    assert!(d.answered);
    assert_eq!(d.rejected_by, "rst");
}

#[test]
fn icmp_rejections_are_matched_through_the_quoted_header() {
    let (_, d) = one_final("syn_rejected_icmp.pcap");
    assert_eq!(d.attempts, 4);
    assert!(!d.answered);
    assert_eq!(d.rejected_by, "icmp");
}

#[test]
fn ipv6_retries_are_detected() {
    let (r, d) = one_final("syn_retry_v6.pcap");
    assert_eq!(d.attempts, 3);
    assert_eq!(d.retransmissions, 3);
    assert_eq!(d.direction.as_deref(), Some("inbound"));
    let ev = r.of_type("syn_retry");
    assert!(ev.last().unwrap().dest_ip.as_deref().unwrap().starts_with("2001:db8:"));
}

#[test]
fn an_nmap_port_scan_is_not_a_retry_loop() {
    let r = replay(&[&pcap("nmap_syn_scan.pcap")], &[]);
    assert!(r.of_type("syn_retry").is_empty(), "{}", r.stdout);
    assert!(r.stats().protocols["tcp"] > 300);
}

#[test]
fn benign_traffic_produces_no_detection() {
    let r = replay(&[&pcap("benign_web_dns.pcap")], &[]);
    assert_eq!(r.events.len(), 1, "{}", r.stdout);
    assert!(r.stats().packets > 20);
}

fn sorted_detections(r: &Run) -> Vec<String> {
    let mut v: Vec<String> =
        r.stdout.lines().filter(|l| !l.contains("\"event_type\":\"stats\"")).map(String::from).collect();
    v.sort();
    v
}

#[test]
fn replay_is_deterministic_whatever_the_thread_count() {
    let dir = root().join("pcaps");
    let a = replay(&[&dir], &["--workers", "1"]);
    let b = replay(&[&dir], &["--workers", "3"]);
    let c = replay(&[&dir], &["--workers", "3"]);
    assert!(!sorted_detections(&a).is_empty());
    assert_eq!(sorted_detections(&a), sorted_detections(&b));
    assert_eq!(sorted_detections(&b), sorted_detections(&c));
    assert_eq!(a.stats().packets, b.stats().packets);
}

#[test]
fn a_directory_replays_every_capture_in_name_order_as_one_timeline() {
    // Three captures from different sources (in pcaps/ one lab host also
    // scans, which rightly keeps its retries from being called a retry loop).
    let dir = tempdir("dir");
    let names = ["a_syn_retry_kernel_retrans.pcap", "b_syn_retry_v6.pcap", "c_benign_web_dns.pcap"];
    for n in names {
        std::fs::copy(pcap(&n[2..]), dir.join(n)).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "not a capture").unwrap();
    let rules = single_attempt_rules();
    let all = replay(&[&dir], &["--rules", rules.to_str().unwrap()]);
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    let total: u64 = names.iter().map(|n| count_packets(&dir.join(n))).sum();
    assert_eq!(all.stats().packets, total);
    for name in &names[..2] {
        assert!(
            all.events.iter().any(|e| e.sensor == *name && e.syn_retry.as_ref().is_some_and(|d| d.status == "final")),
            "{name} missing from the directory replay: {}",
            all.stdout
        );
    }
}

#[test]
fn stdin_replay_matches_file_replay() {
    let f = pcap("syn_retry_hping_drop.pcap");
    let bytes = std::fs::read(&f).unwrap();
    let mut child = Command::new(bin())
        .args(["replay", "-", "--home-net", "192.0.2.0/24,2001:db8:d::/48"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let piped = finish(child.wait_with_output().unwrap());
    let file = replay(&[&f], &[]);
    let strip = |r: &Run| -> Vec<SynRetry> { r.events.iter().filter_map(|e| e.syn_retry.clone()).collect() };
    assert_eq!(strip(&piped), strip(&file));
    assert!(piped.events.iter().all(|e| e.sensor == "stdin"));
}

#[test]
fn output_file_is_appended_not_truncated() {
    let d = tempdir("append");
    let out = d.join("ev.json");
    let f = pcap("syn_rejected_rst.pcap");
    for _ in 0..2 {
        let r = replay(&[&f], &["-o", out.to_str().unwrap()]);
        assert!(r.stdout.is_empty());
    }
    let ev = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(ev.iter().filter(|e| e.event_type == "stats").count(), 2);
}

#[test]
fn a_cisco_hdlc_capture_link_type_104_replays() {
    // A router's serial-line capture (LINKTYPE_C_HDLC): unicast address
    // 0x0f, control 0, EtherType 0x0800, then IPv4. Six SYNs 5 s apart to a
    // silent port, a new source port each: the retry loop must be found
    // through the HDLC framing (issue 13: DLT 104 was refused).
    let dir = tempdir("chdlc");
    let f = dir.join("chdlc.pcap");
    {
        let cap = pcap::Capture::dead(pcap::Linktype(104)).expect("dead capture");
        let mut out = cap.savefile(&f).expect("savefile");
        for i in 0..6u16 {
            let mut frame = vec![0x0f, 0x00, 0x08, 0x00];
            etherparse::PacketBuilder::ipv4([203, 0, 113, 9], [192, 0, 2, 10], 52)
                .tcp(40000 + i, 158, 1000 + u32::from(i), 64240)
                .syn()
                .write(&mut frame, &[])
                .expect("build");
            let ts = libc_timeval(1_700_000_000 + 5 * i64::from(i));
            let h = pcap::PacketHeader { ts, caplen: frame.len() as u32, len: frame.len() as u32 };
            out.write(&pcap::Packet::new(&h, &frame));
        }
    }
    let r = replay(&[&f], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stats().packets, 6);
    assert!(!r.of_type("syn_retry").is_empty(), "{}", r.stdout);
}

fn libc_timeval(secs: i64) -> libc::timeval {
    libc::timeval { tv_sec: secs as libc::time_t, tv_usec: 0 }
}
