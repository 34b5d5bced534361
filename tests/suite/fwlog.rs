//! `picket fwlog`: every real firewall log in ../shared/corpus/fwlogs parses
//! with the expected format and line counts; the `fw_correlation` histograms
//! match counts made here independently; hostile input (random bytes,
//! truncations, overlong lines) never panics and never hides the good lines
//! around it; a missing file is one clear error.

use crate::common;
use common::*;
use picket::fwlog::time::{TimeCtx, parse_reference};
use picket::fwlog::{FileTally, LineCtx, LineParser, MAX_LINE, read_lines};
use std::collections::BTreeMap;

/// (name, format, lines, records, other, bad).
type Expected = (&'static str, Option<&'static str>, u64, u64, u64, u64);

/// Per corpus file: (name, format detected, lines, records, other lines, bad lines).
/// Counts checked by hand:
/// - `ufw_internet_vps_rafmio.log` ends mid-line: its last line is bad.
/// - `ossec_docs_windows_firewall.log`: line 83 holds two records glued
///   together, and 20 lines have the documentation's redacted source
///   `x.x.x.79` (not an address): 21 bad.
/// - `winfw_pfirewall_lab03.log`: 17 lines have the destination
///   `192.168.1.10055`, which is no address: bad. Its 5 other lines are the
///   4 `#` directives and a blank line.
/// - `loghub_linux_2k.log` (2,000 syslog lines, sshd/ftpd/kernel...),
///   `fail2ban_scanlogd.log` and `ossec_docs_iplog.log` (scanlogd and iplog
///   are not firewall formats picket reads): other, never bad.
/// - ASA: 30 of 73 Elastic sample lines are messages naming no denied packet
///   (302013 connection builds, 305011 NAT...); OSSEC's PIX sample has 36 such
///   (710001 "access requested" before each 710002, DHCP, AAA...).
/// - TCP Wrappers: only `connect from` / `refused connect from` lines are
///   records (3 and 9); `ftpd: connection from`, logins, warnings are other.
const EXPECTED: [Expected; 27] = [
    ("elastic_beats_cisco_asa_sample.log", Some("asa"), 73, 43, 30, 0),
    ("fail2ban_portsentry_history.log", Some("portsentry"), 4, 2, 2, 0),
    ("fail2ban_scanlogd.log", None, 8, 0, 8, 0),
    ("iptables_azure_backscatter_dunneja.log", Some("netfilter"), 1182, 1182, 0, 0),
    ("loghub_linux_2k.log", None, 2000, 0, 2000, 0),
    ("ossec_docs_cisco_pix.log", Some("asa"), 105, 69, 36, 0),
    ("ossec_docs_iplog.log", None, 31, 0, 31, 0),
    ("ossec_docs_pf.log", Some("pf"), 30, 30, 0, 0),
    ("ossec_docs_smeserver_iptables.log", Some("netfilter"), 50, 50, 0, 0),
    ("ossec_docs_windows_firewall.log", Some("winfw"), 222, 200, 1, 21),
    ("ossec_hids_tcpwrappers_ftpd.log", Some("tcpwrappers"), 15, 3, 12, 0),
    ("ossec_hids_tcpwrappers_telnetd.log", Some("tcpwrappers"), 15, 9, 6, 0),
    ("psad_iptables_ack_scan.log", Some("netfilter"), 302, 302, 0, 0),
    ("psad_iptables_fin_scan.log", Some("netfilter"), 302, 302, 0, 0),
    ("psad_iptables_icmp_bad_code.log", Some("netfilter"), 5, 5, 0, 0),
    ("psad_iptables_ipv6_connect_scan.log", Some("netfilter"), 1009, 1009, 0, 0),
    ("psad_iptables_ms_sql_1433.log", Some("netfilter"), 2, 2, 0, 0),
    ("psad_iptables_null_scan.log", Some("netfilter"), 303, 303, 0, 0),
    ("psad_iptables_proto_scan.log", Some("netfilter"), 510, 510, 0, 0),
    ("psad_iptables_syn_scan.log", Some("netfilter"), 1002, 1002, 0, 0),
    ("psad_iptables_syn_sweep.log", Some("netfilter"), 12, 12, 0, 0),
    ("psad_iptables_udp_scan.log", Some("netfilter"), 302, 302, 0, 0),
    ("psad_iptables_xmas_scan.log", Some("netfilter"), 302, 302, 0, 0),
    ("ufw_internet_vps_rafmio.log", Some("netfilter"), 3979, 3978, 0, 1),
    ("winfw_pfirewall_betahydri.log", Some("winfw"), 16814, 16807, 7, 0),
    ("winfw_pfirewall_lab03.log", Some("winfw"), 272, 250, 5, 17),
    ("winfw_pfirewall_pmbibe.log", Some("winfw"), 46410, 46404, 6, 0),
];

#[test]
fn every_corpus_log_parses_with_its_format_and_known_counts() {
    let Some(dir) = fw_corpus() else {
        println!("skipping: ../shared/corpus/fwlogs is absent");
        return;
    };
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    for n in &names {
        assert!(listed.contains(&n.as_str()), "{n} is in the corpus but not in EXPECTED: add its counts");
    }
    for (name, format, lines, records, other, bad) in EXPECTED {
        let Some(p) = shared(&format!("corpus/fwlogs/{name}")) else { continue };
        let r = fwlog(&[&p], &[]);
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        let fw = r.fw();
        let f = &fw.files[0];
        assert_eq!(f.format.as_deref(), format, "{name}");
        assert_eq!((f.lines, f.records, f.other_lines, f.bad_lines), (lines, records, other, bad), "{name}");
        assert_eq!(fw.records, records, "{name}");
        assert_eq!(fw.bad_lines[0].count, bad, "{name}");
        let s = r.stats();
        assert_eq!((s.fw_lines, s.fw_records, s.fw_other_lines, s.fw_bad_lines), (lines, records, other, bad));
        assert_eq!(s.events.get("fw_correlation"), Some(&1));
        // Independent line count: newlines, plus a last line without one.
        let bytes = std::fs::read(&p).unwrap();
        let nl = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(lines, nl + u64::from(!bytes.ends_with(b"\n")), "{name}");
    }
}

#[test]
fn truncated_last_line_is_named_with_its_reason() {
    let Some(p) = shared("corpus/fwlogs/ufw_internet_vps_rafmio.log") else {
        println!("skipping: corpus absent");
        return;
    };
    let r = fwlog(&[&p], &[]);
    let b = &r.fw().bad_lines[0];
    assert_eq!(b.first.len(), 1);
    assert_eq!(b.first[0].line, 3979);
    assert!(b.first[0].reason.contains("truncated"), "{}", b.first[0].reason);
}

/// `(PROTO, DPT)` and `SRC` counted with plain string splitting, as `grep -o` would.
/// (protocol, port) -> count, and source -> (count, distinct ports).
type Counts = (BTreeMap<(String, u16), u64>, BTreeMap<String, (u64, Vec<u16>)>);

fn count_netfilter(text: &str) -> Counts {
    let mut ports = BTreeMap::new();
    let mut sources: BTreeMap<String, (u64, Vec<u16>)> = BTreeMap::new();
    for line in text.lines() {
        let field = |k: &str| line.split(' ').find_map(|t| t.strip_prefix(k)).map(str::to_string);
        let (Some(proto), Some(src)) = (field("PROTO="), field("SRC=")) else { continue };
        let dpt = field("DPT=").map(|d| d.parse::<u16>().unwrap());
        if let Some(d) = dpt {
            *ports.entry((proto, d)).or_insert(0) += 1;
        }
        let e = sources.entry(src).or_default();
        e.0 += 1;
        if let Some(d) = dpt
            && !e.1.contains(&d)
        {
            e.1.push(d);
        }
    }
    (ports, sources)
}

#[test]
fn by_port_and_by_source_match_an_independent_count() {
    let Some(p) = shared("corpus/fwlogs/ufw_internet_vps_rafmio.log") else {
        println!("skipping: corpus absent");
        return;
    };
    let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
    let (ports, sources) = count_netfilter(&text);
    let total: u64 = sources.values().map(|s| s.0).sum();
    assert_eq!(total, 3978);
    let r = fwlog(&[&p], &[]);
    let fw = r.fw();
    assert_eq!(fw.denials, total);
    assert_eq!(fw.by_action.get("deny"), Some(&total)); // every prefix is [UFW BLOCK]
    assert_eq!(fw.by_port.len(), 20);
    let mut expected: Vec<((String, u16), u64)> = ports.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(fw.by_port_more as usize, expected.len() - 20);
    for (got, ((proto, port), count)) in fw.by_port.iter().zip(&expected) {
        assert_eq!((got.proto.as_deref(), got.port, got.count), (Some(proto.as_str()), Some(*port), *count));
        assert!((got.share - *count as f64 / total as f64).abs() < 1e-4);
    }
    assert_eq!(fw.by_port[0].port, Some(80));
    assert_eq!(fw.by_port[0].count, 400);
    assert_eq!(fw.by_port[0].service.as_deref(), Some("http"));
    let mut srcs: Vec<(String, (u64, Vec<u16>))> = sources.into_iter().collect();
    srcs.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    assert_eq!(fw.by_source.len(), 10);
    for (got, (src, (count, dports))) in fw.by_source.iter().zip(&srcs) {
        assert_eq!((got.src.as_deref(), got.count, got.ports), (Some(src.as_str()), *count, dports.len() as u64));
    }
    assert_eq!(fw.by_source[0].src.as_deref(), Some("31.220.1.38"));
    assert_eq!(fw.by_source[0].count, 1390);
    assert_eq!(fw.sources as usize, srcs.len());
    // Log-only: nothing on the wire side.
    assert_eq!((fw.matched, fw.unmatched_records, fw.unlogged_packets, fw.clock_offset_s), (0, 0, 0, None));
    assert_eq!(fw.mode, "log_only");
    assert_eq!(fw.first_record.as_deref(), Some("2026-08-20T00:01:05.000000Z"));
}

#[test]
fn many_files_and_formats_in_one_run() {
    let Some(dir) = fw_corpus() else {
        println!("skipping: corpus absent");
        return;
    };
    let a = dir.join("psad_iptables_syn_sweep.log");
    let b = dir.join("ossec_docs_pf.log");
    let c = dir.join("loghub_linux_2k.log");
    let r = fwlog(&[&a, &b, &c], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let fw = r.fw();
    assert_eq!(fw.files.len(), 3);
    assert_eq!(fw.records, 12 + 30);
    assert_eq!(fw.formats.get("netfilter"), Some(&12));
    assert_eq!(fw.formats.get("pf"), Some(&30));
    assert_eq!(r.events.last().unwrap().sensor, "3 files");
}

#[test]
fn fw_tz_and_reference_change_the_times() {
    let d = tempdir("fwtz");
    let p = d.join("x.log");
    std::fs::write(&p, "Dec 31 23:30:00 fw kernel: DROP IN=eth0 OUT= SRC=198.51.100.7 DST=192.0.2.10 LEN=40 TTL=50 ID=1 PROTO=TCP SPT=1 DPT=158 WINDOW=1 RES=0x00 SYN URGP=0\n").unwrap();
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(bin());
        cmd.arg("fwlog").args(extra).arg(&p);
        finish(cmd.output().unwrap())
    };
    // Read in January: December is last year.
    let r = run(&["--fw-reference", "2027-01-02"]);
    assert_eq!(r.fw().first_record.as_deref(), Some("2026-12-31T23:30:00.000000Z"));
    let r = run(&["--fw-reference", "2027-01-02", "--fw-tz", "-05:00"]);
    assert_eq!(r.fw().first_record.as_deref(), Some("2027-01-01T04:30:00.000000Z"));
    let r = run(&["--fw-reference", "2027-01-02", "--fw-tz", "Europe/Paris"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--fw-tz"), "{}", r.stderr);
    // Forcing another format finds no record in a netfilter line.
    let r = run(&["--fw-reference", "2027-01-02", "--fw-format", "asa"]);
    assert_eq!((r.fw().records, r.fw().files[0].other_lines), (0, 1));
    let r = run(&["--fw-format", "nosuch"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--fw-format"), "{}", r.stderr);
}

#[test]
fn missing_file_is_one_clear_error() {
    let r = picket(&["fwlog", "/nonexistent/fw.log"]);
    assert_eq!(r.code, Some(2));
    let lines = r.error_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("/nonexistent/fw.log"), "{}", lines[0]);
    assert!(r.stdout.is_empty());
}

/// Rotated logs are gzipped by logrotate (`kern.log.2.gz`): picket knows
/// gzip by its magic number, not the name, and reads it like the plain log,
/// member after member as zcat does, from a file or stdin. A cut-off gzip
/// keeps the lines before the cut and is a bad file (exit 2).
#[test]
fn gzipped_logs_read_like_the_plain_ones() {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let plain = pcap("fw_nftables.log");
    let text = std::fs::read(&plain).expect("lab log");
    let gz = |data: &[u8]| {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    };
    let dir = tempdir("fwlog-gz");
    let rotated = dir.join("kern.log.2"); // no .gz: the bytes say what it is
    std::fs::write(&rotated, gz(&text)).expect("write");
    let want = fwlog(&[&plain], &[]);
    let got = fwlog(&[&rotated], &[]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert_eq!(want.fw().records, 237);
    assert_eq!((got.fw().records, got.fw().files[0].lines), (want.fw().records, want.fw().files[0].lines));
    assert_eq!(got.fw().by_port, want.fw().by_port);

    let two = dir.join("two.gz");
    std::fs::write(&two, [gz(&text), gz(&text)].concat()).expect("write");
    assert_eq!(fwlog(&[&two], &[]).fw().records, 2 * 237);

    let mut child = std::process::Command::new(bin())
        .args(["fwlog", "--fw-reference", "2026-11-22", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let data = gz(&text);
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let r = finish(child.wait_with_output().expect("run"));
    feeder.join().expect("feeder").expect("write stdin");
    assert_eq!(r.fw().records, 237, "{}", r.stderr);

    let cut = dir.join("cut.gz");
    let whole = gz(&text);
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    let r = fwlog(&[&cut], &[]);
    assert_eq!(r.code, Some(2));
    let lines = r.error_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("cut.gz") && lines[0].contains("after line"), "{}", lines[0]);
    let read = r.fw().records;
    assert!(read > 0 && read < 237, "the lines before the cut are kept: {read}");
    assert_eq!(r.stats().bad_files, 1);
}

/// A capture handed to `fwlog` is one clear error pointing at `replay`; a
/// text file with no record in it is read, with a warning that names it.
#[test]
fn a_capture_is_refused_and_a_file_without_records_is_named() {
    let cap = pcap("fw_nftables.pcap");
    let r = picket(&["fwlog", cap.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    let lines = r.error_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("fw_nftables.pcap") && lines[0].contains("picket replay"), "{}", lines[0]);
    assert!(r.stdout.is_empty());

    let toml = root().join("Cargo.toml");
    let r = fwlog(&[&toml], &[]);
    assert_eq!(r.code, Some(0));
    assert_eq!(r.fw().records, 0);
    let warn: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warn.len(), 1, "{}", r.stderr);
    assert!(warn[0].contains("Cargo.toml") && warn[0].contains("no firewall record"), "{}", warn[0]);
    // A real log gets no such warning.
    let r = fwlog(&[&pcap("fw_nftables.log")], &[]);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

const GOOD: [&str; 6] = [
    "Mar 11 20:35:14 linux kernel: [463493.257294] DROP IN=eth1 OUT= SRC=192.168.10.55 DST=192.168.10.1 LEN=44 TOS=0x00 PREC=0x00 TTL=39 ID=54575 PROTO=TCP SPT=56247 DPT=1433 WINDOW=1024 RES=0x00 SYN URGP=0 OPT (020405B4) ",
    "Apr 30 2013 09:23:40: %ASA-4-106023: Deny tcp src outside:192.0.2.126/53638 dst inside:10.0.0.132/8111 by access-group \"acl_out\" [0x71761f18, 0x0]",
    "Mar 30 15:55:20 enigma pf: Mar 30 15:55:14.265470 rule 3/(match) pass out on xl0: 192.168.2.10.1514 > 192.168.2.26.3875:  udp 57",
    "May 27 16:48:29 valhalla telnetd[5010]: refused connect from 88.226.34.75",
    "1403884279 - 06/27/2014 17:51:19 Host: 192.168.56.1/192.168.56.1 Port: 1 TCP Blocked",
    "Nov 22 07:06:00 dmz portsentry[811]: attackalert: Connect from host: 198.51.100.7/198.51.100.7 to TCP port: 158",
];

fn ctx() -> LineCtx {
    LineCtx {
        time: TimeCtx { reference_us: parse_reference("2026-11-22").unwrap(), tz_offset_s: 0 },
        forced: None,
        file: 0,
    }
}

fn read(data: &[u8]) -> (FileTally, u64) {
    let mut t = FileTally::new("t");
    let mut n = 0;
    read_lines(data, &mut LineParser::new(ctx()), &mut t, |_| n += 1).unwrap();
    (t, n)
}

/// A small seeded generator (xorshift64*): reproducible, no crate needed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_truncation_of_every_fixture_is_safe() {
    let p = &mut LineParser::new(ctx());
    for g in GOOD {
        assert!(p.parse(g.as_bytes(), 1).is_ok(), "{g}");
        for cut in 0..g.len() {
            let _ = LineParser::new(ctx()).parse(&g.as_bytes()[..cut], 1);
        }
    }
}

#[test]
fn hostile_lines_never_hide_the_good_lines_around_them() {
    let mut rng = Rng(0x5eed_f00d_1234_5678);
    for round in 0..300 {
        let mut data = Vec::new();
        let mut good = 0u64;
        let mut overlong = 0u64;
        let mut lines = 0u64;
        for _ in 0..20 {
            match rng.below(6) {
                0 | 1 => {
                    data.extend_from_slice(GOOD[rng.below(GOOD.len())].as_bytes());
                    good += 1;
                }
                2 => {
                    // Random bytes, newlines excluded, non-UTF-8 included.
                    let n = rng.below(300);
                    data.extend((0..n).map(|_| match rng.next() as u8 {
                        b'\n' => b' ',
                        b => b,
                    }));
                }
                3 => {
                    // A good line cut short and mutated.
                    let g = GOOD[rng.below(GOOD.len())].as_bytes();
                    let mut cut = g[..rng.below(g.len())].to_vec();
                    if !cut.is_empty() {
                        let i = rng.below(cut.len());
                        cut[i] = (rng.next() as u8).max(1) & 0xfe | 1; // never a newline
                    }
                    data.extend_from_slice(&cut);
                }
                4 if rng.below(10) == 0 => {
                    data.extend(std::iter::repeat_n(b'A', MAX_LINE + 1 + rng.below(5000)));
                    overlong += 1;
                }
                _ => data.extend_from_slice(b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown"),
            }
            data.push(b'\n');
            lines += 1;
        }
        let (t, records) = read(&data);
        assert_eq!(t.lines, lines, "round {round}");
        assert!(records >= good, "round {round}: {records} records < {good} good lines");
        assert_eq!(t.overlong, overlong, "round {round}");
        assert_eq!(t.records + t.other + t.bad, t.lines, "round {round}");
    }
}

#[test]
fn hostile_file_through_the_cli() {
    let d = tempdir("fwhostile");
    let p = d.join("hostile.log");
    let mut data = Vec::new();
    data.extend_from_slice(GOOD[0].as_bytes());
    data.extend_from_slice(b"\n\xff\xfe\x00garbage \x80\x81 IN=\xff OUT= SRC=\n");
    data.extend(std::iter::repeat_n(b'x', 200_000));
    data.extend_from_slice(b"\n");
    data.extend_from_slice(GOOD[1].as_bytes());
    data.extend_from_slice(b"\n");
    data.extend_from_slice(&GOOD[0].as_bytes()[..120]); // truncated, no newline at the end
    std::fs::write(&p, &data).unwrap();
    let r = fwlog(&[&p], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let f = &r.fw().files[0];
    assert_eq!((f.lines, f.records, f.bad_lines, f.overlong_lines), (5, 2, 3, 1));
    let lines: Vec<u32> = r.fw().bad_lines[0].first.iter().map(|b| b.line).collect();
    assert_eq!(lines, [2, 3, 5]);
}

/// SIGINT stops `picket fwlog` while its input is still open: it reads on to
/// its next stop check (every 4096 lines), ends what is open with
/// `shutdown`, writes `fw_correlation` and stats marked `interrupted`, and
/// exits 0. Only the signal can end this run: stdin is never closed.
#[test]
fn sigint_stops_a_log_read_midway_and_says_so() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let line = |i: u32| {
        format!(
            "Nov 22 {:02}:{:02}:{:02} fw kernel: IN=eth0 OUT= SRC=203.0.113.5 DST=192.0.2.10 LEN=60 TTL=50 ID={i} PROTO=TCP SPT={} DPT=158 SEQ={i} WINDOW=8192 SYN URGP=0\n",
            10 + i / 3600,
            (i / 60) % 60,
            i % 60,
            1024 + (i % 4000)
        )
    };
    let batch = |from: u32, n: u32| (from..from + n).map(line).collect::<String>();
    let mut child = Command::new(bin())
        .args(["fwlog", "--home-net", "192.0.2.0/24", "--fw-reference", "2026-11-22", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn picket");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let mut stdin = child.stdin.take().expect("stdin");
    // Short of the first stop check, at line 4096.
    stdin.write_all(batch(0, 4000).as_bytes()).expect("first lines");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(700));
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    // Past the check; 200 lines fit in the pipe, so this never blocks. The
    // pipe stays open.
    stdin.write_all(batch(4000, 200).as_bytes()).expect("more lines");
    stdin.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("picket fwlog did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let r = finish(std::process::Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    });
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = r.stats();
    assert!(s.interrupted, "stats say the input was cut short");
    assert_eq!(s.fw_lines, 4095, "stopped at the check after the signal");
    assert_eq!(r.fw().records, s.fw_lines, "fw_correlation covers what was read");
    let finals = r.syn_retry_finals();
    assert_eq!(finals.len(), 1, "the retry client's detection is flushed");
    assert_eq!(finals[0].end_reason.as_deref(), Some("shutdown"), "an interrupted run ends detections with shutdown");
}
