//! `periodic_probe` and `source_port_sequence`: the lab captures in pcaps/
//! (hping3 -S -i 30, curl reconnecting in bursts, hping3 -i 2), crafted long
//! captures (two hours of the SIGNATURES.md section 1 story; PowWow bursts),
//! and the third-party corpus (a RAT's ~10 s C2 beacons with +1 source ports;
//! nmap and masscan scans, which must produce neither event).

use crate::common;
use common::*;

fn one<'a, T>(v: Vec<(&'a Event, &'a T)>, what: &str, out: &str) -> (&'a Event, &'a T) {
    assert_eq!(v.len(), 1, "{what}: {out}");
    v[0]
}

#[test]
fn hping_every_30_s_is_periodic_with_sequential_source_ports() {
    let r = replay(&[&pcap("periodic_probe_30s.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (ev, d) = one(r.periodic_finals(), "periodic", &r.stdout);
    assert!((d.period_s - 30.0).abs() < 0.01, "{d:?}");
    assert!(d.jitter_s < 0.005, "{d:?}");
    assert_eq!((d.cycles, d.attempts, d.missed), (7, 7, 0));
    assert!(d.gaps.is_empty() && d.burst.is_none());
    assert_eq!(d.answered, 0);
    assert!(d.score > 0.9, "{d:?}");
    assert_eq!(d.service.as_deref(), Some("pcmail-srv"));
    assert_eq!(d.end_reason.as_deref(), Some("end_of_input"));
    // The envelope carries what the verdict needs to tie it to syn_retry.
    assert_eq!(ev.src_ip.as_deref(), Some("203.0.113.34"));
    assert_eq!(ev.dest_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!((ev.dest_port, ev.proto.as_deref()), (Some(158), Some("TCP")));
    assert!(ev.summary.as_deref().unwrap().contains("every 30"), "{:?}", ev.summary);
    // Confirmed while the probes went on (at the 5th), with the same id.
    let all: Vec<_> = r.events.iter().filter_map(|e| e.periodic_probe.as_ref()).collect();
    assert_eq!(all[0].status, "new");
    assert!(all.iter().all(|x| x.id == d.id));

    let (ev, s) = one(r.sequence_finals(), "sequence", &r.stdout);
    assert_eq!((s.step, s.first_port, s.last_port, s.min_port, s.max_port), (1, 1666, 1672, 1666, 1672));
    assert_eq!((s.attempts, s.wraps_total), (7, 0));
    assert_eq!(
        (ev.src_ip.as_deref(), ev.dest_port, ev.proto.as_deref()),
        (Some("203.0.113.34"), Some(158), Some("TCP"))
    );
    assert_eq!(r.syn_retry_finals().len(), 1);
}

#[test]
fn reconnecting_in_bursts_is_a_burst_pattern_not_a_1_s_period() {
    let r = replay(&[&pcap("burst_reconnect.pcap")], &[]);
    let (_, d) = one(r.periodic_finals(), "periodic", &r.stdout);
    let b = d.burst.as_ref().expect("a burst shape");
    assert_eq!((b.bursts, b.size_min, b.size_max), (3, 6, 6), "{d:?}");
    assert!((b.spread_s - 5.1).abs() < 0.3, "{b:?}");
    assert!((41.0..41.2).contains(&b.pause_s_min) && (41.0..41.2).contains(&b.pause_s_max), "{b:?}");
    assert!((d.period_s - 46.2).abs() < 0.2, "{d:?}");
    assert_eq!(d.retransmissions, 1, "the kernel retransmission of sport 50052 is not a new attempt");
    assert_eq!(d.attempts, 18);
    // Every event of the detection is a burst pattern (no early 1 s "period").
    assert!(r.events.iter().filter_map(|e| e.periodic_probe.as_ref()).all(|x| x.burst.is_some()), "{}", r.stdout);
    // Kernel-chosen ports: no sequence.
    assert!(r.of_type("source_port_sequence").is_empty(), "{}", r.stdout);
}

/// Decision (README): six SYNs exactly 2 s apart are periodic. They are only
/// called at the end of input, because a train shorter than one burst
/// (`max_burst_spread_s`) may still turn out to be the first burst.
#[test]
fn hping_every_2_s_is_periodic_at_the_end_and_a_sequence_at_once() {
    let r = replay(&[&pcap("syn_retry_hping_drop.pcap")], &[]);
    let (_, d) = one(r.periodic_finals(), "periodic", &r.stdout);
    assert!((d.period_s - 2.0).abs() < 0.01);
    assert_eq!(d.cycles, 6);
    let statuses: Vec<_> =
        r.events.iter().filter_map(|e| e.periodic_probe.as_ref()).map(|x| x.status.clone()).collect();
    assert_eq!(statuses, ["final"]);
    let (_, s) = one(r.sequence_finals(), "sequence", &r.stdout);
    assert_eq!((s.step, s.min_port, s.max_port, s.attempts), (1, 1198, 1203, 6));
    assert!(r.of_type("source_port_sequence").iter().any(|e| e.source_port_sequence.as_ref().unwrap().status == "new"));
}

#[test]
fn benign_and_unrelated_lab_captures_produce_neither_event() {
    for name in [
        "benign_web_dns.pcap",
        "nmap_syn_scan.pcap",
        "netbios.pcap",
        "traceroute.pcap",
        "syn_answered_after_retrans.pcap",
    ] {
        let r = replay(&[&pcap(name)], &[]);
        assert!(r.of_type("periodic_probe").is_empty(), "{name}: {}", r.stdout);
        assert!(r.of_type("source_port_sequence").is_empty(), "{name}: {}", r.stdout);
    }
}

#[test]
fn two_hours_of_30_s_syns_with_a_lost_probe_a_reboot_and_port_wraps() {
    let dir = tempdir("forgotten");
    let f = dir.join("forgotten_client.pcap");
    craft::forgotten_client(&f);
    let r = replay(&[&f], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (ev, d) = one(r.periodic_finals(), "periodic", &r.stdout);
    assert!((d.period_s - 30.0).abs() < 0.1, "{d:?}");
    assert!(d.jitter_s < 0.1, "{d:?}");
    assert_eq!(d.missed, 1, "the lost probe at 1200 s folds as two periods: {d:?}");
    assert_eq!(d.gaps_total, 1, "{d:?}");
    assert!((d.gaps[0].seconds - 330.0).abs() < 0.2, "{:?}", d.gaps);
    let start = &d.gaps[0].start;
    assert!(start.starts_with("2026-11-22T00:59:59.9") || start.starts_with("2026-11-22T01:00:00.0"), "{start}");
    assert!(d.cycles >= 225 && d.cycles <= d.attempts, "{d:?}");
    assert_eq!(d.attempts, 230);
    assert!(d.burst.is_none());
    assert!(d.score > 0.8, "{d:?}");
    assert_eq!(ev.dest_port, Some(158));
    assert!(ev.summary.as_deref().unwrap().contains("every 30 s"), "{:?}", ev.summary);

    let (_, s) = one(r.sequence_finals(), "sequence", &r.stdout);
    assert_eq!((s.step, s.min_port, s.max_port, s.first_port), (1, 1024, 5000, 4900));
    assert_eq!(s.wraps_total, 2, "{s:?}");
    assert_eq!((s.wraps[0].from, s.wraps[0].to), (5000, 1024));
    assert_eq!(s.wraps[1].to, 1024, "the reboot restarts the ports at 1024");
    assert!(s.step_share > 0.99);
    // Updates along the way, one id per detection.
    let ids: std::collections::BTreeSet<_> =
        r.events.iter().filter_map(|e| e.periodic_probe.as_ref()).map(|x| x.id.clone()).collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn powwow_bursts_from_two_sources() {
    let dir = tempdir("powwow");
    let f = dir.join("powwow.pcap");
    craft::powwow_bursts(&f);
    let r = replay(&[&f], &[]);
    let finals = r.periodic_finals();
    assert_eq!(finals.len(), 2, "{}", r.stdout);
    for (ev, d) in finals {
        let b = d.burst.as_ref().unwrap_or_else(|| panic!("no burst: {d:?}"));
        assert_eq!(b.bursts, 6, "{d:?}");
        assert!(b.size_min >= 5 && b.size_max <= 8, "{b:?}");
        assert!(b.spread_s <= 42.0 + 0.001, "{b:?}");
        assert!(b.pause_s_min >= 30.0 - 0.001 && b.pause_s_max <= 120.0 + 0.001, "{b:?}");
        assert_eq!(ev.dest_port, Some(13223));
        assert!(ev.summary.as_deref().unwrap().contains("bursts"), "{:?}", ev.summary);
    }
    assert!(r.of_type("source_port_sequence").is_empty(), "{}", r.stdout);
}

#[test]
fn rat_c2_beacons_every_10_s_with_sequential_ports() {
    let Some(f) = corpus_file("cs_ratinfected.pcapng") else { return };
    let r = replay(&[&f], &[]);
    let (ev, d) = one(r.periodic_finals(), "periodic", &r.stdout);
    assert!((d.period_s - 10.0).abs() < 0.1, "{d:?}");
    assert!(d.cycles >= 5, "{d:?}");
    assert!(d.answered > 0, "the C2 answers: {d:?}");
    assert_eq!(ev.dest_port, Some(4433));
    assert!(ev.summary.as_deref().unwrap_or_default().contains("a scheduled client or a beacon"), "{ev:?}");
    // Its source ports count up 6641..6648, but every connection was
    // answered: consecutive ports on answered connections are how stacks
    // allocate them, no retrying program (issue 13), so no sequence.
    assert!(r.sequence_finals().is_empty(), "{}", r.stdout);
}

#[test]
fn scans_produce_neither_event() {
    for name in [
        "esnet_masscan_tcp_0_1000.pcap",
        "esnet_masscan_udp_0_1000.pcap",
        "esnet_nmap_80_A.pcap",
        "evilfingers_nmap_connect_scan.pcap",
        "evilfingers_nmap_tcp_syn_scan.pcap",
        "evilfingers_nmap_udp_scan.pcap",
        "evilfingers_xscan.pcap",
        "sgr_nmap_syn_ports_1_10000.pcapng",
        "sgr_udp_sweep.pcap",
        "sgr_tcp_syn_ping_sweep.pcapng",
        "cs_synscan.pcapng",
    ] {
        let Some(f) = corpus_file(name) else { continue };
        let r = replay(&[&f], &[]);
        assert!(r.of_type("periodic_probe").is_empty(), "{name}: {}", r.stdout);
        assert!(r.of_type("source_port_sequence").is_empty(), "{name}: {}", r.stdout);
    }
}

/// The `verdict` events of a run, as raw JSON (final ones last).
fn verdicts(r: &Run) -> Vec<serde_json::Value> {
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event_type"] == "verdict")
        .collect()
}

fn one_final_verdict(r: &Run) -> serde_json::Value {
    let finals: Vec<_> = verdicts(r).into_iter().filter(|v| v["verdict"]["status"] == "final").collect();
    assert_eq!(finals.len(), 1, "{}", r.stdout);
    finals.into_iter().next().unwrap()
}

/// Packets toward the home net, counted by libpcap's own filter.
fn inbound_packets(p: &std::path::Path) -> u64 {
    let mut cap = pcap::Capture::from_file(p).expect("open capture");
    cap.filter(
        "(ip and dst net 192.0.2.0/24 and not src net 192.0.2.0/24) or \
         (ip6 and dst net 2001:db8:d::/48 and not src net 2001:db8:d::/48)",
        true,
    )
    .expect("filter");
    let mut n = 0;
    while cap.next_packet().is_ok() {
        n += 1;
    }
    n
}

#[test]
fn the_verdict_ties_the_30_s_client_together_and_says_what_it_is() {
    let f = pcap("periodic_probe_30s.pcap");
    let r = replay(&[&f], &[]);
    let v = one_final_verdict(&r);
    let d = &v["verdict"];
    assert_eq!(d["conclusion"], "misconfigured_client", "{v}");
    assert_eq!(d["parts"], serde_json::json!(["syn_retry", "periodic_probe", "source_port_sequence"]));
    assert_eq!(d["service"], "pcmail-srv");
    assert_eq!((d["attempts"].as_u64(), d["answered"].as_u64()), (Some(7), Some(0)));
    assert_eq!(d["first_port"], 1666);
    // The share is of the packets toward the home net, as libpcap counts them.
    let share = d["share_of_inbound"].as_f64().unwrap();
    let want = 7.0 / inbound_packets(&f) as f64;
    assert!((share - want).abs() < 0.001, "{share} vs {want}");
    let summary = v["summary"].as_str().unwrap();
    for part in [
        "203.0.113.34 has retried TCP 192.0.2.10:158 (pcmail-srv) every 30 s since",
        "source ports counting up from 1666",
        "misconfigured client",
        "not a scan",
        &format!("{:.0}% of inbound packets", want * 100.0),
    ] {
        assert!(summary.contains(part), "{part:?} not in {summary:?}");
    }
    // One incident id on every detection of the key, verdict included.
    let incident = d["incident"].as_str().unwrap();
    for kind in ["syn_retry", "periodic_probe", "source_port_sequence", "verdict"] {
        let evs = r.of_type(kind);
        assert!(!evs.is_empty(), "{kind}");
        for l in r.stdout.lines().filter(|l| l.contains(&format!("\"event_type\":\"{kind}\""))) {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(e[kind]["incident"], incident, "{kind}: {l}");
        }
    }
    // Confirmed while the probes went on, not only at the end.
    assert_eq!(verdicts(&r)[0]["verdict"]["status"], "new");
}

#[test]
fn the_verdict_of_bursts_of_reconnects_and_of_answered_beacons() {
    let r = replay(&[&pcap("burst_reconnect.pcap")], &[]);
    let v = one_final_verdict(&r);
    assert_eq!(v["verdict"]["conclusion"], "reconnecting_client", "{v}");
    assert_eq!(v["verdict"]["burst"], true);
    assert!(v["summary"].as_str().unwrap().contains("(powwow) in bursts of 6-6"), "{v}");

    // The answered RAT beacon: one view (periodic_probe, which says "a
    // scheduled client or a beacon"), so no verdict; its answered
    // sequential ports are no second view (issue 13).
    let Some(f) = corpus_file("cs_ratinfected.pcapng") else { return };
    let r = replay(&[&f], &[]);
    assert!(verdicts(&r).is_empty(), "{}", r.stdout);
    assert_eq!(r.periodic_finals().len(), 1, "{}", r.stdout);
}

#[test]
fn the_two_hour_client_verdict_counts_the_wraps() {
    let dir = tempdir("forgotten-verdict");
    let f = dir.join("forgotten_client.pcap");
    craft::forgotten_client(&f);
    let r = replay(&[&f], &[]);
    let v = one_final_verdict(&r);
    assert_eq!(v["verdict"]["conclusion"], "misconfigured_client");
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .contains("198.51.100.7 has retried TCP 192.0.2.10:158 (pcmail-srv) every 30 s since 2026-11-2"),
        "{v}"
    );
    assert!(v["summary"].as_str().unwrap().contains("counting up from 4900, wrapping 2 time(s)"), "{v}");
}

#[test]
fn no_verdict_without_a_retry_pattern() {
    for name in [
        "benign_web_dns.pcap",
        "nmap_syn_scan.pcap",
        "netbios.pcap",
        "traceroute.pcap",
        "syn_answered_after_retrans.pcap",
        "decoy_scan_nmap.pcap",
        "decoy_hping_fixed_ttl.pcap",
        "smurf_fraggle.pcap",
    ] {
        let r = replay(&[&pcap(name)], &[]);
        assert!(verdicts(&r).is_empty(), "{name}: {}", r.stdout);
    }
}
