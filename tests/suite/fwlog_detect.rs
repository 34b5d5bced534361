//! Detection from firewall logs alone (`picket fwlog`, issue 4 "Detect from
//! logs"): the story of SIGNATURES.md section 1 as the firewall saw it.
//!
//! A day of a client retrying TCP 158 every 30 s, source port +1 from 1024
//! and wrapping near 5000, with a five-minute silence, cannot be recorded
//! with real tools in reasonable time, so the log is written here, line by
//! line, in two documented formats:
//! - iptables `LOG` through syslog (the kernel's documented field order:
//!   IN= OUT= MAC= SRC= DST= LEN= TOS= PREC= TTL= ID= PROTO= SPT= DPT=
//!   WINDOW= RES= SYN URGP=), for the first client;
//! - Cisco ASA %ASA-4-106023 (Cisco's message reference: "Deny protocol
//!   src [interface:]ip/port dst [interface:]ip/port by access-group
//!   acl_ID"), which has no TCP flags, TTL or IP ID, for the second.
//!
//! Lines from other traffic and broken lines are mixed in.

use crate::common;
use common::*;
use std::fmt::Write as _;

const DAY_START: i64 = 1_700_006_400; // 2023-11-15T00:00:00Z
const SERVER: &str = "192.0.2.10";
const NF_CLIENT: &str = "198.51.100.7";
const ASA_CLIENT: &str = "203.0.113.44";

fn syslog_time(t: i64) -> String {
    let secs_of_day = t.rem_euclid(86_400);
    let day = 15 + t.div_euclid(86_400) - DAY_START / 86_400;
    format!("Nov {day:>2} {:02}:{:02}:{:02}", secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60)
}

/// One day of 30 s attempts, source port +1 from 3200, wrapping from 5000
/// to 1024 (at 15:00), and a reboot at 20:00: five minutes of silence, then
/// the count starts again at 1024. `line` writes one attempt.
fn day_of_retries(mut line: impl FnMut(i64, u16, u32)) -> usize {
    let mut n = 0;
    let mut port = 3200u16;
    let mut t = DAY_START;
    while t < DAY_START + 86_400 {
        if (DAY_START + 72_000..DAY_START + 72_300).contains(&t) {
            port = 1024;
            t += 30;
            continue;
        }
        line(t, port, n as u32);
        n += 1;
        port = if port >= 5000 { 1024 } else { port + 1 };
        t += 30;
    }
    n
}

/// Writes the log; returns its path, the retry attempts and the other denials in it.
fn write_logs(dir: &std::path::Path) -> (std::path::PathBuf, usize, usize) {
    let mut log = String::new();
    let mut attempts = 0;
    let mut other = 0;
    attempts += day_of_retries(|t, port, i| {
        let _ = writeln!(
            log,
            "{} fw1 kernel: [{}.{:06}] DROP-IN: IN=eth0 OUT=eth1 MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 \
             SRC={NF_CLIENT} DST={SERVER} LEN=48 TOS=0x00 PREC=0x00 TTL=113 ID={} DF PROTO=TCP SPT={port} DPT=158 \
             WINDOW=8192 RES=0x00 SYN URGP=0 ",
            syslog_time(t),
            t - DAY_START + 1000,
            123_456,
            20_000 + i
        );
        // Unrelated traffic and noise every few minutes.
        if i % 7 == 3 {
            other += 1;
            let _ = writeln!(
                log,
                "{} fw1 kernel: [{}.000001] DROP-IN: IN=eth0 OUT= SRC=192.0.2.200 DST=198.51.100.{} LEN=60 TTL=64 \
                 ID=1 PROTO=UDP SPT=53 DPT={} LEN=40 ",
                syslog_time(t + 1),
                t - DAY_START + 1001,
                i % 250,
                30_000 + i % 1000
            );
        }
        if i % 500 == 17 {
            let _ = writeln!(log, "{} fw1 kernel: [{}.5] DROP-IN: IN=eth0 SRC=198.51.100.7 DST=", syslog_time(t), t);
            let _ = writeln!(log, "{} fw1 sshd[811]: Accepted publickey for ops from 192.0.2.5", syslog_time(t));
        }
    });
    attempts += day_of_retries(|t, port, _| {
        let _ = writeln!(
            log,
            "{} asa1 : %ASA-4-106023: Deny tcp src outside:{ASA_CLIENT}/{port} dst dmz:{SERVER}/158 by access-group \
             \"outside_in\" [0x0, 0x0]",
            syslog_time(t + 7)
        );
    });
    let path = dir.join("fw-day.log");
    std::fs::write(&path, log).unwrap();
    (path, attempts, other)
}

#[test]
fn a_day_of_30_second_retries_is_found_in_the_log_alone() {
    let dir = tempdir("fwlog-detect");
    let (path, attempts, other) = write_logs(&dir);
    assert_eq!(attempts, 2 * (2880 - 10));
    let run = fwlog(&[&path], &["--home-net", "192.0.2.0/24", "--workers", "2"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // The log side: every line read, the broken ones counted, none fatal.
    assert_eq!(run.stats().fw_bad_lines, 6, "six truncated DROP-IN lines");
    for client in [NF_CLIENT, ASA_CLIENT] {
        let periodic: Vec<_> =
            run.periodic_finals().into_iter().filter(|(e, _)| e.src_ip.as_deref() == Some(client)).collect();
        assert_eq!(periodic.len(), 1, "{client}: {:?}", run.of_type("periodic_probe"));
        let (ev, p) = periodic[0];
        assert_eq!(ev.origin.as_deref(), Some("firewall_log"));
        assert_eq!(ev.dest_port, Some(158));
        assert!((p.period_s - 30.0).abs() < 0.5, "{client}: period {}", p.period_s);
        assert!(p.cycles >= 2800, "{client}: {} cycles", p.cycles);
        assert!(p.gaps.iter().any(|g| g.seconds >= 290.0 && g.seconds <= 340.0), "{client}: {:?}", p.gaps);
        assert_eq!(p.direction.as_deref(), Some("inbound"));
        let summary = ev.summary.as_deref().unwrap_or_default();
        assert!(summary.contains("From firewall log records"), "{summary}");
        if client == ASA_CLIENT {
            assert!(summary.contains("no TCP flags"), "ASA 106023 has no flags: {summary}");
        } else {
            assert!(!summary.contains("no TCP flags"), "netfilter logs flags: {summary}");
        }

        let seq: Vec<_> =
            run.sequence_finals().into_iter().filter(|(e, _)| e.src_ip.as_deref() == Some(client)).collect();
        assert_eq!(seq.len(), 1, "{client}: {:?}", run.of_type("source_port_sequence"));
        let (ev, s) = seq[0];
        assert_eq!(ev.origin.as_deref(), Some("firewall_log"));
        assert_eq!(s.step, 1);
        assert_eq!((s.min_port, s.max_port), (1024, 5000));
        assert!(s.wraps_total >= 1, "{client}: wraps at 5000 -> 1024");

        let retries: Vec<_> = run
            .of_type("syn_retry")
            .into_iter()
            .filter(|e| {
                e.src_ip.as_deref() == Some(client) && e.syn_retry.as_ref().is_some_and(|r| r.status == "final")
            })
            .collect();
        assert!(!retries.is_empty(), "{client}: syn_retry from the log");
        assert!(retries.iter().all(|e| e.origin.as_deref() == Some("firewall_log")));

        // The verdict ties the three together and counts its share in log records, not packets.
        let verdicts: Vec<_> = run
            .of_type("verdict")
            .into_iter()
            .filter(|e| e.src_ip.as_deref() == Some(client) && e.origin.as_deref() == Some("firewall_log"))
            .collect();
        let last = verdicts.last().unwrap_or_else(|| panic!("{client}: no verdict"));
        let summary = last.summary.as_deref().unwrap_or_default();
        assert!(summary.contains("% of inbound firewall log records"), "{summary}");
        assert!(!summary.contains("inbound packets"), "{summary}");
    }
    // The unrelated UDP (DNS answers toward outside hosts) is not a retry loop.
    assert!(run.of_type("periodic_probe").iter().all(|e| e.src_ip.as_deref() != Some("192.0.2.200")));
    let st = run.stats();
    assert_eq!(st.fw_fed, (attempts + other) as u64, "every denial with a flow is fed");
}
