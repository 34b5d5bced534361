//! `port_scan`'s unit tests: each scan type, pattern and test on crafted
//! packets, the benign cases that must stay silent, and fairness under a flood.
//!
//! Test-only: compiled under #[cfg(test)] (see `port_scan/mod.rs`), so its
//! unwrap/expect calls fail a test, never a run.

use super::*;
use crate::decode::summary::{IcmpInfo, Quoted, UdpInfo, tcpflag::*, testutil};
use crate::detect::testrig::{Rig, s};

const SCANNER: &str = "198.51.100.10";
const TARGET: &str = "192.0.2.20";

fn rig_with(tweak: impl FnOnce(&mut PortScanRules)) -> Rig<PortScan> {
    Rig::with(
        |r| tweak(&mut r.port_scan),
        |sh, r| {
            PortScan::new(
                &r.port_scan,
                &r.scanners,
                (r.traceroute.udp_port_min, r.traceroute.udp_port_max),
                sh.per_worker(r.port_scan.max_tracked),
                sh.per_worker(r.port_scan.max_probation),
                r.general.update_interval_s,
            )
        },
    )
}

fn rig() -> Rig<PortScan> {
    rig_with(|_| {})
}

fn tcp(t: f64, src: &str, dst: &str, ports: (u16, u16), flags: u16) -> PacketSummary {
    testutil::tcp(s(t), src, dst, ports, flags, 1000, if flags & ACK != 0 { 1001 } else { 0 })
}

fn udp(t: f64, src: &str, dst: &str, sport: u16, dport: u16) -> PacketSummary {
    let mut p = testutil::tcp(s(t), src, dst, (sport, dport), 0, 0, 0);
    if let Some(ip) = &mut p.ip {
        ip.proto = 17;
    }
    p.l4 = L4::Udp(UdpInfo { sport, dport });
    p
}

/// An ICMP error from `from` quoting the probe (src -> dst:dport, proto).
fn icmp_err(t: f64, from: &str, probe: (&str, &str, u8, u16, u16), icmp_type: u8, code: u8) -> PacketSummary {
    let (src, dst, proto, sport, dport) = probe;
    let mut p = testutil::tcp(s(t), from, src, (0, 0), 0, 0, 0);
    if let Some(ip) = &mut p.ip {
        ip.proto = 1;
    }
    let quoted = Quoted {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto,
        ttl: 1,
        ip_id: 0,
        sport,
        dport,
        has_ports: true,
        tcp_seq: None,
        icmp_type: None,
    };
    p.l4 = L4::Icmp(IcmpInfo { v6: false, icmp_type, code, echo: None, quoted: Some(quoted) });
    p
}

fn kinds(evs: &[Value]) -> Vec<(String, String)> {
    evs.iter()
        .filter(|e| e["event_type"] == KIND)
        .map(|e| (e["port_scan"]["status"].as_str().unwrap().to_string(), e["src_ip"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_thousand_closed_ports_read_closed_not_filtered() {
    // Every port answered RST: the per-scan answer filter must not take
    // later answers for repeats once it fills (realworld nmap scans of
    // 1,000 ports read "366 closed, 633 filtered"). Also on loopback,
    // where the scanner and the target are one address.
    for (scanner, target) in [(SCANNER, TARGET), ("127.0.0.1", "127.0.0.1")] {
        let mut r = rig();
        for port in 1..=1000u16 {
            let t = f64::from(port) * 0.001;
            r.feed_owned(tcp(t, scanner, target, (40000, port), SYN));
            let answer = if port == 22 { SYN | ACK } else { RST | ACK };
            r.feed_owned(tcp(t + 0.0001, target, scanner, (port, 40000), answer));
        }
        let evs = r.end();
        let d = &evs.last().unwrap()["port_scan"];
        assert_eq!(d["status"], "final");
        assert_eq!(
            (d["closed"].as_u64(), d["filtered"].as_u64(), d["open"].as_u64()),
            (Some(999), Some(0), Some(1)),
            "{scanner}: {d}"
        );
    }
}

#[test]
fn a_syn_scan_answered_by_rst_is_confirmed_by_the_walk_after_four_failures() {
    let mut r = rig();
    let mut t = 0.0;
    for port in 1..=20u16 {
        t += 0.01;
        r.feed_owned(tcp(t, SCANNER, TARGET, (40000, port), SYN));
        let answer = if port == 13 { SYN | ACK } else { RST | ACK };
        r.feed_owned(tcp(t + 0.001, TARGET, SCANNER, (port, 40000), answer));
        if port == 4 {
            assert!(r.events().is_empty(), "three failures and no decision yet");
            r.tick(t + 0.002);
            let evs = r.events();
            assert_eq!(kinds(&evs), [("new".to_string(), SCANNER.to_string())], "{evs:?}");
            assert_eq!(evs[0]["port_scan"]["decided_by"], "trw");
        }
    }
    // The source completes nothing: a SYN scan, and nmap-style it keeps one source port.
    r.feed_owned(tcp(t + 0.1, SCANNER, TARGET, (40000, 13), SYN));
    r.feed_owned(tcp(t + 0.1, TARGET, SCANNER, (13, 40000), SYN | ACK));
    let evs = r.end();
    let d = &evs.last().unwrap()["port_scan"];
    assert_eq!(d["status"], "final");
    assert_eq!((d["scan_type"].as_str(), d["pattern"].as_str()), (Some("syn"), Some("vertical")));
    assert_eq!(d["ports_probed"], 20, "{d}");
    assert_eq!(d["ports"]["tcp"], json!(["1-20"]));
    assert_eq!((d["open_ports"][0]["port"].as_u64(), d["open"].as_u64()), (Some(13), Some(1)), "{d}");
    assert_eq!((d["closed"].as_u64(), d["filtered"].as_u64()), (Some(19), Some(0)));
    assert_eq!(d["likelihood_ratio"], 256.0, "four failures at 4x each");
    assert_eq!(d["source_ports"], "fixed");
    assert_eq!(d["direction"], "inbound");
    let summary = evs.last().unwrap()["summary"].as_str().unwrap();
    assert!(summary.contains("vertical SYN (half-open) scan of 20 ports of 192.0.2.20"), "{summary}");
    assert!(summary.contains("found open: 192.0.2.20:13"), "{summary}");
}

#[test]
fn silence_fails_a_syn_only_once_settle_s_has_passed() {
    let mut r = rig();
    for port in 1..=6u16 {
        r.feed_owned(tcp(f64::from(port) * 0.1, SCANNER, TARGET, (40000, port), SYN));
    }
    r.tick(2.0);
    assert!(r.events().is_empty(), "unanswered for less than settle_s: no failure yet");
    r.tick(4.0);
    let evs = r.events();
    assert_eq!(kinds(&evs), [("new".to_string(), SCANNER.to_string())]);
    assert_eq!(evs[0]["port_scan"]["filtered"], 6);
}

#[test]
fn a_client_whose_first_contacts_succeed_is_never_a_scan() {
    // A DMZ host browsing 40 sites, each answered, one of them twice
    // refused: the walk goes down, not up.
    let mut r = rig();
    for i in 0..40u16 {
        let site = format!("203.0.113.{}", i + 1);
        let t = f64::from(i) * 0.5;
        r.feed_owned(tcp(t, "192.0.2.10", &site, (50000 + i, 443), SYN));
        let answer = if i == 7 || i == 30 { RST | ACK } else { SYN | ACK };
        r.feed_owned(tcp(t + 0.05, &site, "192.0.2.10", (443, 50000 + i), answer));
    }
    r.tick(30.0);
    assert!(kinds(&r.end()).is_empty());
}

#[test]
fn a_client_retrying_one_dead_service_is_one_contact() {
    let mut r = rig();
    for i in 0..20u16 {
        r.feed_owned(tcp(f64::from(i) * 30.0, "203.0.113.9", "192.0.2.10", (1024 + i, 158), SYN));
        r.tick(f64::from(i) * 30.0 + 5.0);
    }
    assert!(kinds(&r.end()).is_empty(), "syn_retry's case, not a scan");
}

#[test]
fn a_horizontal_sweep_of_one_port_is_named_so() {
    let mut r = rig();
    for h in 1..=30u8 {
        r.feed_owned(tcp(f64::from(h) * 0.01, SCANNER, &format!("192.0.2.{h}"), (40000, 445), SYN));
    }
    let evs = r.end();
    let d = &evs.last().unwrap()["port_scan"];
    assert_eq!(d["pattern"], "horizontal");
    assert_eq!(d["targets"], 30);
    assert!(evs.last().unwrap()["summary"].as_str().unwrap().contains("port 445 on 30 hosts"));
}

#[test]
fn crafted_probes_fail_when_sent_and_name_the_scan_type() {
    for (flags, ty) in [(FIN, "fin"), (0, "null"), (FIN | PSH | URG, "xmas")] {
        let mut r = rig();
        for port in 1..=5u16 {
            r.feed_owned(tcp(f64::from(port) * 0.01, SCANNER, TARGET, (40000, port), flags));
        }
        r.tick(0.1);
        let evs = r.events();
        assert_eq!(kinds(&evs).len(), 1, "{ty}: confirmed without waiting for answers");
        assert_eq!(evs[0]["port_scan"]["scan_type"], ty);
    }
}

#[test]
fn an_ack_scan_is_seen_through_its_rst_answers() {
    let mut r = rig();
    for port in 1..=6u16 {
        let t = f64::from(port) * 0.01;
        r.feed_owned(tcp(t, SCANNER, TARGET, (40000, port), ACK));
        // RST without ACK: the answer to an ACK that belongs to nothing.
        r.feed_owned(tcp(t + 0.001, TARGET, SCANNER, (port, 40000), RST));
    }
    let evs = r.end();
    let d = &evs.last().unwrap()["port_scan"];
    assert_eq!(d["scan_type"], "ack");
    assert_eq!(d["unfiltered"], 6);
}

#[test]
fn a_udp_scan_with_port_unreachables_is_a_udp_scan_and_dns_answers_are_not() {
    let mut r = rig();
    for port in [53u16, 111, 123, 137, 161, 500, 1900] {
        r.feed_owned(udp(0.1, SCANNER, TARGET, 45000, port));
        if port != 53 {
            r.feed_owned(icmp_err(0.2, TARGET, (SCANNER, TARGET, 17, 45000, port), 3, 3));
        } else {
            r.feed_owned(udp(0.2, TARGET, SCANNER, 53, 45000));
        }
    }
    // A resolver answering a home client from port 53 to many high ports.
    for i in 0..50u16 {
        r.feed_owned(udp(1.0, "203.0.113.53", "192.0.2.10", 53, 30000 + i * 7));
    }
    let evs = r.end();
    assert_eq!(kinds(&evs), [("final".to_string(), SCANNER.to_string())], "{evs:?}");
    let d = &evs[0]["port_scan"];
    assert_eq!((d["scan_type"].as_str(), d["closed"].as_u64()), (Some("udp"), Some(6)));
    assert_eq!(d["open_ports"][0]["port"], 53);
}

#[test]
fn a_udp_traceroute_is_not_a_scan() {
    let mut r = rig();
    let mut port = 33434u16;
    for hop in 1..=4u8 {
        for _ in 0..3 {
            r.feed_owned(udp(f64::from(hop) * 0.1, SCANNER, TARGET, 40000, port));
            let p = if hop < 4 {
                icmp_err(f64::from(hop) * 0.1 + 0.01, "192.0.2.250", (SCANNER, TARGET, 17, 40000, port), 11, 0)
            } else {
                icmp_err(f64::from(hop) * 0.1 + 0.01, TARGET, (SCANNER, TARGET, 17, 40000, port), 3, 3)
            };
            r.feed_owned(p);
            port += 1;
        }
    }
    assert!(kinds(&r.end()).is_empty());
}

#[test]
fn a_spoofed_flood_does_not_push_out_a_scanner_and_refusals_of_evidence_are_counted() {
    let mut r = rig_with(|p| {
        p.max_probation = 64;
        p.max_tracked = 4;
    });
    // The scanner's first two contacts promote it...
    r.feed_owned(tcp(0.0, SCANNER, TARGET, (40000, 1), SYN));
    r.feed_owned(tcp(0.0, SCANNER, TARGET, (40000, 2), SYN));
    // ...then 20,000 spoofed one-SYN sources churn probation only.
    for i in 0..20_000u32 {
        let src = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        r.feed_owned(tcp(0.001 * f64::from(i), &src, TARGET, (1234, 80), SYN));
    }
    for port in 3..=8u16 {
        r.feed_owned(tcp(20.0, SCANNER, TARGET, (40000, port), SYN));
        r.feed_owned(tcp(20.0, TARGET, SCANNER, (port, 40000), RST | ACK));
    }
    r.tick(21.0);
    assert_eq!(kinds(&r.events()), [("new".to_string(), SCANNER.to_string())]);
    let stats = std::sync::Arc::clone(&r.shared.stats);
    let st = stats.table(Table::PortScan);
    assert!(st.evicted.load(Relaxed) > 19_000, "probation churned");
    assert_eq!(st.lost_detections.load(Relaxed), 0);
    // Now fill the tier with confirmed scanners: a newcomer with
    // evidence is refused, and that is a lost detection.
    for k in 0..3u8 {
        let src = format!("203.0.113.{k}");
        for port in 1..=5u16 {
            r.feed_owned(tcp(22.0, &src, TARGET, (40000, port), SYN));
            r.feed_owned(tcp(22.0, TARGET, &src, (port, 40000), RST | ACK));
        }
    }
    r.tick(23.0);
    let late = "203.0.113.200";
    r.feed_owned(tcp(24.0, late, TARGET, (40000, 1), SYN));
    r.feed_owned(tcp(24.0, TARGET, late, (1, 40000), RST | ACK));
    r.feed_owned(tcp(24.0, TARGET, late, (1, 40000), RST | ACK));
    r.feed_owned(tcp(24.1, late, TARGET, (40000, 2), SYN));
    assert_eq!(st.cap_hits.load(Relaxed), 1);
    assert_eq!(st.lost_detections.load(Relaxed), 0, "one failure is not yet evidence");
    // Two FIN probes are two failures: refusing them loses a detection.
    r.feed_owned(tcp(25.0, "203.0.113.201", TARGET, (40000, 1), FIN));
    r.feed_owned(tcp(25.0, "203.0.113.201", TARGET, (40000, 2), FIN));
    assert_eq!((st.cap_hits.load(Relaxed), st.lost_detections.load(Relaxed)), (2, 1));
}

#[test]
fn tcp_probe_kinds() {
    let t = |flags| TcpInfo { sport: 1, dport: 2, flags, seq: 0, ack: 0, window: 1024, opts: Default::default() };
    assert_eq!(tcp_probe(&t(SYN), 0), Some(Probe::Syn));
    assert_eq!(tcp_probe(&t(SYN | ECE | CWR), 0), Some(Probe::Syn));
    assert_eq!(tcp_probe(&t(FIN | PSH | URG), 0), Some(Probe::Xmas));
    assert_eq!(tcp_probe(&t(FIN | ACK), 0), Some(Probe::Maimon));
    assert_eq!(tcp_probe(&t(FIN | ACK), 10), None, "a close with data");
    assert_eq!(tcp_probe(&t(ACK | PSH), 100), None);
    assert_eq!(tcp_probe(&t(SYN | FIN), 0), Some(Probe::Odd));
    assert_eq!(tcp_probe(&t(RST), 0), None);
    assert!(udp_reply(53, 40000, false) && udp_reply(1900, 40000, true));
    assert!(!udp_reply(45000, 53, false) && !udp_reply(3000, 40000, false));
    assert!(!unicast("192.0.2.255".parse().unwrap()) && !unicast("239.255.255.250".parse().unwrap()));
}

#[test]
fn a_probers_rst_to_the_syn_acks_it_got_does_not_make_the_server_a_scanner() {
    // tcptraceroute, nmap and masscan tear down each SYN-ACK with a RST of
    // their own, from a new high port each time, to the server's port 80.
    let mut r = rig();
    for i in 0..12u16 {
        let t = f64::from(i) * 0.01;
        r.feed_owned(tcp(t, "192.0.2.10", SCANNER, (80, 33000 + i * 97), SYN | ACK));
        r.feed_owned(tcp(t + 0.001, SCANNER, "192.0.2.10", (33000 + i * 97, 80), RST));
    }
    assert!(kinds(&r.end()).is_empty());
}

/// The bit-by-bit walk `ranges` replaced: the reference its output must match.
fn ranges_bit_by_bit(bits: &[u64]) -> (Vec<String>, u64) {
    let (mut out, mut more) = (Vec::new(), 0);
    let mut start: Option<u32> = None;
    let is_set = |p: u32| bits.get((p / 64) as usize).is_some_and(|w| w & (1 << (p % 64)) != 0);
    for p in 0..=65_536u32 {
        let set = p < 65_536 && is_set(p);
        match (set, start) {
            (true, None) => start = Some(p),
            (false, Some(s)) => {
                if out.len() < RANGES_KEPT {
                    out.push(if s == p - 1 { s.to_string() } else { format!("{s}-{}", p - 1) });
                } else {
                    more += 1;
                }
                start = None;
            }
            _ => {}
        }
    }
    (out, more)
}

#[test]
fn port_ranges_word_by_word_match_the_bit_walk() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut cases: Vec<Vec<u64>> = vec![vec![0; 1024], vec![u64::MAX; 1024]];
    // Runs across word edges, the first and the last port, single ports.
    let mut edges = vec![0u64; 1024];
    for p in [0u32, 63, 64, 65, 127, 128, 1000, 1001, 1002, 4095, 4096, 65_534, 65_535] {
        edges[(p / 64) as usize] |= 1 << (p % 64);
    }
    cases.push(edges);
    for density in [1u32, 8, 32, 60] {
        // Sparse words, dense words, and whole words set or clear.
        cases.push(
            (0..1024)
                .map(|_| match next() % 4 {
                    0 => 0,
                    1 => u64::MAX,
                    _ => (0..64).filter(|_| (next() % 64) < u64::from(density)).fold(0, |w, b| w | 1 << b),
                })
                .collect(),
        );
    }
    for bits in &cases {
        let (mut out, mut more) = (Vec::new(), 0);
        ranges(bits, &mut out, &mut more);
        assert_eq!((out, more), ranges_bit_by_bit(bits));
    }
    let (mut out, mut more) = (Vec::new(), 0);
    ranges(&cases[2], &mut out, &mut more);
    assert_eq!(out, ["0", "63-65", "127-128", "1000-1002", "4095-4096", "65534-65535"]);
}
