//! Live capture end to end: picket listens on a veth inside a network
//! namespace, hping3 sends real traffic from a second namespace, then picket
//! gets SIGTERM. The detections, the stats and the shutdown drain are checked.
//! Needs root (CI runs as root); without it the test says so and returns.

use crate::common;
use common::lab::{Lab, append, lab_ready, must, sh, snapshot_fw_records, wait_exit, wait_for, wait_until};
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the live tests run in their namespaces.
const TOOLS: [&str; 3] = ["ip", "hping3", "iptables"];

#[test]
fn live_capture_detects_retries_counts_everything_and_drains_on_sigterm() {
    if !lab_ready("the live test", &TOOLS) {
        return;
    }
    let lab = Lab::up("pk", "t1");
    lab.drop_tcp(158);
    let dir = tempdir("live");
    let out = dir.join("events.json");
    let dev = lab.va.as_str();
    // nsenter execs picket itself (ip netns exec would fork), so the SIGTERM
    // below reaches picket.
    let netns = format!("--net=/var/run/netns/{}", lab.a);
    let mut child = Command::new("nsenter")
        .args([netns.as_str(), bin(), "live", "-i", dev, "--home-net", "192.0.2.0/28"])
        .args(["-o", out.to_str().unwrap(), "--workers", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start picket live");
    // Wait for the capture to be open (picket says so on stderr).
    let (seen, stderr) = wait_for(child.stderr.take().unwrap(), &["capturing on"]);
    assert!(seen.contains("capturing on"), "picket did not start: {seen}");

    // 5 SYNs 200 ms apart, each from the next source port (hping3 increments it).
    // hping3 exits non-zero when nothing answers, which is the point here.
    sh(&["ip", "netns", "exec", &lab.b, "hping3", "-q", "-S", "-p", "158", "-c", "5", "-i", "u200000", "192.0.2.10"]);
    // SIGUSR1: a stats snapshot now. Then logrotate's dance: move the file
    // away and SIGHUP; later events must land in a new file at the old path.
    // Each step waits for its effect, not a fixed time: on a loaded machine
    // picket may take longer than any sleep.
    let pid = child.id().to_string();
    must(&["kill", "-USR1", &pid]);
    wait_until("the SIGUSR1 snapshot", || std::fs::read_to_string(&out).is_ok_and(|t| t.contains("\"final\":false")));
    let rotated = dir.join("events.json.1");
    std::fs::rename(&out, &rotated).unwrap();
    must(&["kill", "-HUP", &pid]);
    wait_until("the file reopened after SIGHUP", || out.exists());
    // A burst of 3000 UDP datagrams, sent as fast as hping3 can, right before SIGTERM:
    // everything the kernel captured must still be counted after shutdown.
    sh(&["ip", "netns", "exec", &lab.b, "hping3", "-q", "-2", "-p", "9", "-c", "3000", "-i", "u50", "192.0.2.10"]);
    let start = Instant::now();
    must(&["kill", "-TERM", &child.id().to_string()]);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "picket did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stderr);
    assert!(status.success(), "exit status {status:?}");

    let before = parse(&std::fs::read_to_string(&rotated).unwrap());
    let snapshot: Vec<_> = before.iter().filter_map(|e| e.stats.as_ref()).collect();
    assert_eq!(snapshot.len(), 1, "one SIGUSR1 snapshot before the rotation: {before:?}");
    assert!(!snapshot[0].is_final);
    assert!(snapshot[0].protocols["tcp"] >= 5, "{:?}", snapshot[0]);
    let events = parse(&std::fs::read_to_string(&out).unwrap());
    assert!(events.iter().all(|e| e.stats.as_ref().is_none_or(|s| s.is_final)), "snapshot written after rotation");
    let retries: Vec<_> = events.iter().filter_map(|e| e.syn_retry.as_ref()).filter(|d| d.status == "final").collect();
    assert_eq!(retries.len(), 1, "{events:?}");
    let d = retries[0];
    assert_eq!(d.attempts, 5);
    assert_eq!(d.source_ports, 5);
    assert_eq!(d.last_source_port.wrapping_sub(d.first_source_port), 4);
    assert!(!d.answered);
    assert_eq!(d.end_reason.as_deref(), Some("shutdown"));
    assert_eq!(d.direction.as_deref(), Some("inbound"));

    let last = events.last().unwrap();
    assert_eq!(last.event_type, "stats");
    let s = last.stats.as_ref().unwrap();
    assert!(s.is_final);
    assert_eq!(s.drops.channel, 0);
    assert_eq!(s.drops.kernel, 0);
    // Every UDP datagram hping3 sent was counted (plus nothing else is UDP here).
    assert_eq!(s.protocols["udp"], 3000, "{s:?}");
    assert!(s.protocols["tcp"] >= 5);
    assert_eq!(s.pcap["received"], s.packets, "libpcap received vs picket counted");
}

/// Asks for stats snapshots (SIGUSR1) until the one in `out` counts `n`
/// firewall records, then stops picket with SIGTERM and waits (up to 10 s)
/// for a clean exit.
fn stop_after_records(child: &mut std::process::Child, out: &std::path::Path, n: u64) {
    let pid = child.id().to_string();
    wait_until(&format!("{n} firewall records"), || {
        must(&["kill", "-USR1", &pid]);
        std::thread::sleep(Duration::from_millis(200));
        snapshot_fw_records(out) >= n
    });
    must(&["kill", "-TERM", &pid]);
    let status = wait_exit(child, 10);
    assert!(status.success(), "exit status {status:?}");
}

/// A netfilter LOG line for a SYN, stamped now (ISO time, as rsyslog writes it).
fn nf_line(src: &str, dst: &str, sport: u16, dport: u16) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let ts = picket::output::timefmt::rfc3339_us(now.as_micros() as i64);
    format!(
        "{ts} fw1 kernel: PK-IN-DROP: IN=eth0 OUT=eth1 SRC={src} DST={dst} LEN=40 TOS=0x00 PREC=0x00 TTL=64 \
         PROTO=TCP SPT={sport} DPT={dport} WINDOW=512 RES=0x00 SYN URGP=0\n"
    )
}

/// `live --fw-log` and `--syslog-listen`: a log file written while picket
/// runs (and rotated in the middle) and an ASA message sent with util-linux
/// `logger` over UDP are read once each, and correlated with the SYNs
/// hping3 really sent.
#[test]
fn live_follows_a_rotated_log_and_receives_syslog() {
    if !lab_ready("the live syslog test", &["ip", "hping3", "iptables", "logger"]) {
        return;
    }
    let lab = Lab::up("pk", "t2");
    lab.drop_tcp(158);
    let dir = tempdir("live-fw");
    let out = dir.join("events.json");
    let log = dir.join("fw.log");
    append(&log, "Nov 22 09:00:00 fw1 kernel: written before picket started: not read\n");
    let netns = format!("--net=/var/run/netns/{}", lab.a);
    let mut child = Command::new("nsenter")
        .args([netns.as_str(), bin(), "live", "-i", lab.va.as_str(), "--home-net", "192.0.2.0/28"])
        .args(["-o", out.to_str().unwrap(), "--workers", "1", "--fw-log", log.to_str().unwrap()])
        .args(["--syslog-listen", "127.0.0.1:5514"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start picket live");
    let (seen, stderr) = wait_for(child.stderr.take().unwrap(), &["capturing on", "receiving syslog"]);
    assert!(seen.contains("capturing on") && seen.contains("receiving syslog on udp 127.0.0.1:5514"), "{seen}");

    // Four SYNs from source ports 40000..40003 (hping3 counts up from -s).
    sh(&[
        "ip",
        "netns",
        "exec",
        &lab.b,
        "hping3",
        "-q",
        "-S",
        "-p",
        "158",
        "-s",
        "40000",
        "-c",
        "4",
        "-i",
        "u200000",
        "192.0.2.10",
    ]);
    // The firewall's lines for them, two before a rotation and two after,
    // then an egress drop the span port never saw, and a broken line.
    append(&log, &nf_line("192.0.2.99", "192.0.2.10", 40000, 158));
    append(&log, &nf_line("192.0.2.99", "192.0.2.10", 40001, 158));
    std::thread::sleep(Duration::from_millis(400));
    std::fs::rename(&log, dir.join("fw.log.1")).unwrap();
    append(&log, &nf_line("192.0.2.99", "192.0.2.10", 40002, 158));
    append(&log, &nf_line("192.0.2.99", "192.0.2.10", 40003, 158));
    append(&log, &nf_line("192.0.2.10", "198.51.100.50", 50123, 445));
    append(&log, "Nov 22 10:00:00 fw1 kernel: PK-IN-DROP: IN=eth0 SRC=192.0.2.99 DST=\n");
    // A Cisco ASA's denial, received over syslog (RFC 3164, as an ASA sends it).
    let asa =
        "%ASA-4-106023: Deny tcp src dmz:192.0.2.11/51000 dst outside:198.51.100.60/6667 by access-group \"dmz_out\"";
    must(&[
        "ip",
        "netns",
        "exec",
        &lab.a,
        "logger",
        "-n",
        "127.0.0.1",
        "-P",
        "5514",
        "--udp",
        "--rfc3164",
        "-t",
        "asa",
        asa,
    ]);
    // Every record read (asked for with SIGUSR1 snapshots) before SIGTERM.
    stop_after_records(&mut child, &out, 6);
    drop(stderr);

    let run = Run {
        code: Some(0),
        events: parse(&std::fs::read_to_string(&out).unwrap()),
        inventory: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
    };
    let fw = run.fw();
    assert_eq!(fw.mode, "live");
    assert!(fw.is_final, "the report written at shutdown is the final one");
    assert_eq!(fw.records, 6, "4 SYNs + 1 egress drop + 1 ASA line, each read once: {fw:?}");
    assert_eq!(fw.formats.get("netfilter"), Some(&6), "5 records + the broken line: {fw:?}");
    assert_eq!(fw.formats.get("asa"), Some(&1));
    assert_eq!(fw.bad_lines.iter().map(|b| b.count).sum::<u64>(), 1);
    assert_eq!(fw.matched, 4, "each logged SYN met its packet: {fw:?}");
    assert_eq!(fw.unmatched_records, 2, "the egress drops never crossed the span");
    assert!(fw.attempts_on_wire >= 4);
    let st = run.stats();
    assert_eq!(st.fw_records, 6);
    // The syn_retry detection names the firewall's records for its flow.
    let retry =
        run.of_type("syn_retry").into_iter().find(|e| e.syn_retry.as_ref().is_some_and(|r| r.status == "final"));
    let retry = retry.expect("hping3's four SYNs are a syn_retry");
    let f = retry.firewall.as_ref().expect("a firewall object");
    assert_eq!(f.scope, "flow");
    assert_eq!(f.rules, vec!["PK-IN-DROP:".to_string()]);
}

/// Issue 14: in `live --fw-log` the firewall's denials feed the worm
/// sentries too. An inside host's egress sweep the firewall dropped before
/// the span (70 denials in the log, nothing on the wire) reaches phase III
/// from the log alone; an outside host's 30 SYNs that the span saw and
/// the firewall also logged (each twice, with its retransmission) count
/// once each: 30 attempts, phase I, not III. Phases are lowered to 20, 40
/// and 60 for the test.
#[test]
fn live_fw_log_denials_feed_the_worm_sentries_once() {
    if !lab_ready("the live test", &TOOLS) {
        return;
    }
    let lab = Lab::up("pk", "t3");
    lab.drop_tcp(158);
    // The outside host's sweep goes through the DMZ host's side of the veth,
    // where the span listens, and nothing answers (no forwarding there).
    must(&["ip", "-n", &lab.b, "route", "add", "198.18.0.0/24", "via", "192.0.2.10"]);
    let dir = tempdir("live-worm");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("picket.toml"), "[worm_phase]\nphase1 = 20\nphase2 = 40\nphase3 = 60\n").unwrap();
    let out = dir.join("events.json");
    let log = dir.join("fw.log");
    append(&log, "");
    let netns = format!("--net=/var/run/netns/{}", lab.a);
    let mut child = Command::new("nsenter")
        .args([netns.as_str(), bin(), "live", "-i", lab.va.as_str(), "--home-net", "192.0.2.0/28"])
        .args(["-o", out.to_str().unwrap(), "--workers", "2", "--fw-log", log.to_str().unwrap()])
        .args(["--rules", rules.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start picket live");
    let (seen, stderr) = wait_for(child.stderr.take().unwrap(), &["capturing on"]);
    assert!(seen.contains("capturing on"), "picket did not start: {seen}");

    // One SYN to each of 198.18.0.1..30 port 445 (hping3 waits a second
    // for an answer that never comes: the 30 run side by side).
    let sweep = "for i in $(seq 1 30); do hping3 -q -S -p 445 -c 1 198.18.0.$i >/dev/null 2>&1 & done; wait";
    sh(&["ip", "netns", "exec", &lab.b, "sh", "-c", sweep]);
    let mut lines = String::new();
    for i in 1..=30u16 {
        // The SYN and its retransmission, both logged.
        lines.push_str(&nf_line("192.0.2.99", &format!("198.18.0.{i}"), 40_000 + i, 445));
        lines.push_str(&nf_line("192.0.2.99", &format!("198.18.0.{i}"), 40_000 + i, 445));
    }
    for i in 1..=70u16 {
        lines.push_str(&nf_line("192.0.2.10", &format!("198.19.0.{i}"), 50_000 + i, 445));
    }
    append(&log, &lines);
    stop_after_records(&mut child, &out, 130);
    drop(stderr);

    let text = std::fs::read_to_string(&out).unwrap();
    let events = parse(&text);
    let st = events.iter().rev().find_map(|e| e.stats.as_ref()).expect("the final stats");
    assert!(st.protocols["tcp"] >= 30, "the span saw the outside host's SYNs: {st:?}");
    let max_phase = |host: &str| {
        events.iter().filter_map(|e| e.worm_phase.as_ref()).filter(|w| w.host == host).map(|w| w.phase).max()
    };
    assert_eq!(max_phase("192.0.2.10"), Some(3), "the log-only sweep reaches phase III: {text}");
    assert_eq!(max_phase("192.0.2.99"), Some(1), "seen on the wire and logged, counted once: {text}");
    let summary = events.iter().rev().find_map(|e| e.worm_summary.as_ref()).expect("a worm_summary");
    let attempts = |host: &str| summary.hosts.iter().find(|h| h.host == host).map(|h| h.attempts);
    assert_eq!(attempts("192.0.2.10"), Some(70), "{summary:?}");
    assert_eq!(attempts("192.0.2.99"), Some(30), "{summary:?}");
}
