//! Bad input on the command line: each case gives one clear stderr line
//! naming the problem, a non-zero exit status, and never a panic.

use crate::common;
use common::*;

fn assert_one_error(r: &Run, needle: &str) {
    assert_ne!(r.code, Some(0), "expected failure, stderr: {}", r.stderr);
    assert!(r.code.is_some(), "killed by a signal");
    let lines = r.error_lines();
    assert_eq!(lines.len(), 1, "expected one error line, got {lines:?}");
    assert!(lines[0].contains(needle), "{:?} does not name {needle:?}", lines[0]);
}

#[test]
fn missing_file() {
    let r = picket(&["replay", "/nonexistent/picket.pcap"]);
    assert_one_error(&r, "/nonexistent/picket.pcap");
    assert!(r.stdout.is_empty());
}

#[test]
fn not_a_pcap() {
    let p = root().join("Cargo.toml");
    let r = picket(&["replay", p.to_str().unwrap()]);
    assert_one_error(&r, "Cargo.toml");
    assert!(r.error_lines()[0].contains("unknown file format"));
}

#[test]
fn truncated_pcap_keeps_what_was_read_and_names_the_position() {
    let d = tempdir("trunc");
    let p = d.join("cut.pcap");
    let frame = vec![0u8; 60];
    write_pcap(&p, &[(1_000_000, frame.clone()), (2_000_000, frame.clone()), (3_000_000, frame)]);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 20]).unwrap();
    let r = picket(&["replay", "--home-net", "192.0.2.0/24", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    let lines = r.error_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("cut.pcap") && lines[0].contains("packet 3"), "{}", lines[0]);
    assert!(lines[0].contains("byte offset 176"), "{}", lines[0]); // 24 + 2 * (16 + 60)
    let s = r.stats();
    assert_eq!(s.packets, 2);
    assert_eq!(s.bad_files, 1);
}

/// A directory holding a good capture and two unreadable files (no pcap
/// header at all, and a pcapng whose header was overwritten), plus a path
/// that does not exist: the good capture is analysed, each bad one is named
/// on stderr with what is wrong where, counted in `bad_files`, and the exit
/// status says the input was bad.
#[test]
fn unreadable_files_are_named_and_skipped_and_the_others_analysed() {
    let d = tempdir("badfiles");
    std::fs::copy(pcap("syn_retry_hping_drop.pcap"), d.join("b_good.pcap")).unwrap();
    std::fs::write(d.join("a_text.pcap"), "not a capture at all\n").unwrap();
    // A pcapng whose Section Header Block was zeroed (as realworld
    // hk_nmap_sn_remote.pcapng is).
    let mut ng = std::fs::read(pcap("syn_retry_kernel_retrans.pcap")).unwrap();
    ng[..16].fill(0);
    std::fs::write(d.join("c_zeroed.pcapng"), ng).unwrap();
    let missing = d.join("missing.pcap");
    let r = picket(&["replay", "--home-net", "192.0.2.0/24", d.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let f = r.syn_retry_finals();
    assert_eq!(f.len(), 1, "the good capture's retry loop: {}", r.stdout);
    assert!(r.of_type("syn_retry").iter().all(|e| e.sensor == "b_good.pcap"));
    let lines = r.error_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("a_text.pcap") && lines[0].contains("at byte 0"), "{}", lines[0]);
    assert!(lines[0].contains("6e 6f 74 20"), "the bytes found ('not '): {}", lines[0]);
    assert!(lines[1].contains("c_zeroed.pcapng") && lines[1].contains("unknown file format"), "{}", lines[1]);
    assert!(lines[2].contains("missing.pcap"), "{}", lines[2]);
    assert!(lines.iter().all(|l| l.contains("skipped")), "{lines:?}");
    let s = r.stats();
    assert_eq!(s.bad_files, 3);
    assert_eq!(s.packets, count_packets(&pcap("syn_retry_hping_drop.pcap")));
}

/// When no file can be read there is nothing to analyse: each is named once
/// and the run writes nothing.
#[test]
fn no_readable_file_names_each_once() {
    let d = tempdir("allbad");
    std::fs::write(d.join("one.pcap"), "x").unwrap();
    std::fs::write(d.join("two.pcap"), "not a capture either").unwrap();
    let r = picket(&["replay", d.join("one.pcap").to_str().unwrap(), d.join("two.pcap").to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    let lines = r.error_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("one.pcap") && lines[1].contains("two.pcap"), "{lines:?}");
    assert!(r.stdout.is_empty());
}

#[test]
fn bad_bpf_filter() {
    let d = tempdir("bpf");
    let p = d.join("ok.pcap");
    write_pcap(&p, &[(1_000_000, vec![0u8; 60])]);
    let r = picket(&["replay", "-f", "tcp and and", p.to_str().unwrap()]);
    assert_one_error(&r, "tcp and and");
}

#[test]
fn unknown_interface() {
    let r = picket(&["live", "-i", "picketnosuch0", "--home-net", "192.0.2.0/24"]);
    assert_one_error(&r, "picketnosuch0");
}

#[test]
fn bad_rules_file_names_file_line_and_key() {
    let d = tempdir("rules");
    std::fs::write(d.join("picket.toml"), "[syn_retry]\nmin_attempts = 3\nmin_atempts = 4\n").unwrap();
    let p = d.join("x.pcap");
    write_pcap(&p, &[(1_000_000, vec![0u8; 60])]);
    let r = picket(&["replay", "--rules", d.to_str().unwrap(), p.to_str().unwrap()]);
    assert_one_error(&r, "picket.toml:3");
    assert!(r.error_lines()[0].contains("min_atempts"));
    let r = picket_raw(&["rules", "check", d.to_str().unwrap()]);
    assert_one_error(&r, "min_atempts");
}

#[test]
fn bad_home_net() {
    let d = tempdir("home");
    let p = d.join("x.pcap");
    write_pcap(&p, &[(1_000_000, vec![0u8; 60])]);
    let r = picket(&["replay", "--home-net", "192.0.2.0/33", p.to_str().unwrap()]);
    assert_one_error(&r, "192.0.2.0/33");
}

#[test]
fn shipped_rules_check_clean() {
    let r = picket_raw(&["rules", "check", root().join("rules").to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn bad_syslog_allow_list() {
    let r = picket_raw(&["live", "-i", "lo", "--syslog-listen", "127.0.0.1:5599", "--syslog-allow", "1.2.3.400"]);
    assert_one_error(&r, "--syslog-allow");
    assert!(r.error_lines()[0].contains("1.2.3.400"), "{}", r.stderr);
    // Only with --syslog-listen (clap's usage error, exit 2).
    let r = picket_raw(&["live", "-i", "lo", "--syslog-allow", "192.0.2.1"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--syslog-listen"), "{}", r.stderr);
}
