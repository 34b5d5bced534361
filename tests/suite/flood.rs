//! `syn_flood`, `reflection` and the return path, on captures written by the
//! test (a spoofed flood of thousands of sources and answers from dozens of
//! reflectors are not something the namespace lab can produce honestly):
//! the events' facts, their independence from `--workers`, the silence of
//! `syn_retry` on a flood, and what an inbound-only capture lets picket say.

use crate::common;

use common::craft::T0_US;
use common::craft::{syn_frame, udp_frame};
use common::{replay, tempdir, write_pcap};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::Path;

/// The i-th of many outside addresses, spread over 45.0.0.0 - 172.0.0.0.
fn outside(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x2d00_0000u32 + (i.wrapping_mul(2_654_435_761) % 0x7f00_0000))
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn finals<'a>(ev: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["event_type"] == kind && e[kind]["status"] == "final").collect()
}

/// 1500 SYNs (no TCP options, as hping3 sends them) from 1500 forged
/// sources to 192.0.2.10:80 within 0.75 s, then 3 retransmitting clients'
/// worth of nothing: the victim never answers (an inbound-only sample).
fn spoofed_flood(path: &Path) {
    let dst = Ipv4Addr::new(192, 0, 2, 10);
    let frames: Vec<(i64, Vec<u8>)> = (0..1500u32)
        .map(|i| {
            let f = syn_frame(outside(i), dst, 1024 + (i % 60000) as u16, 80, i.wrapping_mul(0x9e37_79b9), i as u16);
            (T0_US + i64::from(i) * 500, f)
        })
        .collect();
    write_pcap(path, &frames);
}

#[test]
fn a_spoofed_syn_flood_is_one_syn_flood_whatever_the_workers() {
    let d = tempdir("flood-syn");
    let f = d.join("spoofed_flood.pcap");
    spoofed_flood(&f);
    let mut seen = Vec::new();
    for workers in ["1", "3"] {
        let r = replay(&[&f], &["--workers", workers]);
        let ev = lines(&r.stdout);
        let fl = finals(&ev, "syn_flood");
        assert_eq!(fl.len(), 1, "{}", r.stdout);
        let s = &fl[0]["syn_flood"];
        assert_eq!(s["victim"], "192.0.2.10");
        assert_eq!(s["port"], 80);
        assert_eq!(s["packets"], 1500);
        assert_eq!(s["peak_pps"], 1500);
        assert_eq!(s["spoofed"], "likely");
        assert_eq!(s["return_path_seen"], false);
        let sources = s["sources"].as_u64().unwrap();
        assert!((1400..=1500).contains(&sources), "{sources}");
        assert!(s["evidence"].as_array().unwrap().iter().any(|e| e == "no_mss_option"), "{s}");
        // Many sources: the envelope names the victim only.
        assert!(fl[0]["src_ip"].is_null());
        assert_eq!(fl[0]["dest_ip"], "192.0.2.10");
        let summary = fl[0]["summary"].as_str().unwrap();
        assert!(summary.starts_with("SYN flood: 1500 SYNs to TCP 192.0.2.10:80"), "{summary}");
        assert!(summary.contains("likely forged"), "{summary}");
        // No other detector takes the flood's SYNs for something else.
        for kind in ["syn_retry", "periodic_probe", "port_scan", "verdict", "host_sweep"] {
            assert!(finals(&ev, kind).is_empty(), "{kind}: {}", r.stdout);
        }
        let stats = &ev.last().unwrap()["stats"];
        if workers == "3" {
            assert!(stats["flood_copies"].as_u64().unwrap() > 0, "{stats}");
        }
        seen.push(s.clone());
    }
    assert_eq!(seen[0], seen[1], "the detection must not depend on --workers");
}

#[test]
fn dns_and_snmp_answers_to_a_host_that_asked_nothing_are_named_amplification() {
    let d = tempdir("flood-amp");
    let f = d.join("amplification.pcap");
    let victim = Ipv4Addr::new(192, 0, 2, 20);
    let mut frames = Vec::new();
    for i in 0..300u32 {
        let t = T0_US + i64::from(i) * 2_000;
        frames.push((t, udp_frame(outside(i % 40), victim, 53, 20000 + (i % 7) as u16, 1400)));
        frames.push((t + 1_000, udp_frame(outside(1000 + i % 25), victim, 161, 33000, 400)));
    }
    // A host that asked: a resolver's 100 queries and their answers.
    let resolver = Ipv4Addr::new(192, 0, 2, 53);
    for i in 0..100u32 {
        let t = T0_US + i64::from(i) * 5_000;
        frames.push((t, udp_frame(resolver, outside(2000 + i % 30), 40000 + i as u16, 53, 30)));
        frames.push((t + 700, udp_frame(outside(2000 + i % 30), resolver, 53, 40000 + i as u16, 200)));
    }
    frames.sort_by_key(|(t, _)| *t);
    write_pcap(&f, &frames);
    let r = replay(&[&f], &[]);
    let ev = lines(&r.stdout);
    let fl = finals(&ev, "reflection");
    assert_eq!(fl.len(), 2, "{}", r.stdout);
    let by = |svc: &str| fl.iter().find(|e| e["reflection"]["service"] == svc).map(|e| &e["reflection"]).unwrap();
    let dns = by("dns");
    assert_eq!((dns["victim"].as_str(), dns["port"].as_u64()), (Some("192.0.2.20"), Some(53)));
    assert_eq!(dns["packets"], 300);
    assert_eq!(dns["reflectors"], 40);
    assert_eq!(dns["response_bytes_mean"], 1428);
    assert_eq!(dns["requests_seen"], 0);
    assert_eq!(dns["known_amplification"], "28 to 54");
    assert_eq!(by("snmp")["reflectors"], 25);
    // The resolver's answers were asked for: no event names it.
    assert!(!r.stdout.contains("\"victim\":\"192.0.2.53\""), "{}", r.stdout);
    // Home hosts (the resolver) were seen sending: the return path is visible.
    assert_eq!(ev.last().unwrap()["stats"]["return_path"]["visible"], true);
}

/// Six SYNs 10 s apart from new source ports to 192.0.2.10:158, nothing
/// back; `home_first`: a home host sends one datagram before them.
fn retries(path: &Path, home_first: bool) {
    let (src, dst) = (Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(192, 0, 2, 10));
    let mut frames = Vec::new();
    if home_first {
        frames.push((T0_US - 1_000_000, udp_frame(Ipv4Addr::new(192, 0, 2, 1), src, 5000, 5001, 10)));
    }
    for i in 0..6u32 {
        frames.push((T0_US + i64::from(i) * 10_000_000, syn_frame(src, dst, 3000 + i as u16, 158, 1000 + i, i as u16)));
    }
    write_pcap(path, &frames);
}

#[test]
fn an_inbound_only_capture_says_the_return_path_is_not_visible() {
    let d = tempdir("flood-rp");
    let f = d.join("inbound_only.pcap");
    retries(&f, false);
    let r = replay(&[&f], &[]);
    let ev = lines(&r.stdout);
    let sr = finals(&ev, "syn_retry");
    assert_eq!(sr.len(), 1, "{}", r.stdout);
    let summary = sr[0]["summary"].as_str().unwrap();
    assert!(
        summary.contains("the return path is not visible to the sensor (no packet from 192.0.2.10 was captured), so whether it answered is unknown"),
        "{summary}"
    );
    assert!(!summary.contains("the host is gone"), "{summary}");
    assert_eq!(sr[0]["syn_retry"]["return_path_seen"], false);
    let rp = &ev.last().unwrap()["stats"]["return_path"];
    assert_eq!(rp["visible"], false, "{rp}");
    assert_eq!((rp["home_hosts_targeted"].as_u64(), rp["never_seen_sending"].as_u64()), (Some(1), Some(1)));
    assert_eq!(r.stderr.matches("the return path is not visible").count(), 1, "{}", r.stderr);

    // The same retries once the sensor has seen the home net send: silence
    // means something again.
    let g = d.join("both_ways.pcap");
    retries(&g, true);
    let r = replay(&[&g], &[]);
    let ev = lines(&r.stdout);
    let sr = finals(&ev, "syn_retry");
    assert_eq!(sr.len(), 1, "{}", r.stdout);
    let summary = sr[0]["summary"].as_str().unwrap();
    assert!(summary.contains("nothing came back: the SYNs are dropped (firewall) or the host is gone"), "{summary}");
    assert_eq!(sr[0]["syn_retry"]["return_path_seen"], true);
    let rp = &ev.last().unwrap()["stats"]["return_path"];
    assert_eq!(rp["visible"], true, "{rp}");
    assert_eq!(rp["never_seen_sending"], 1, "192.0.2.10 itself never sent");
    assert!(!r.stderr.contains("return path"), "{}", r.stderr);
}
