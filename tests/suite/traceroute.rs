//! The `traceroute` detector (SIGNATURES.md section 3) against the lab's
//! real-tool capture (`traceroute -n`, `-I`, `-T -p 80`, see pcaps/README.md)
//! and the third-party corpus (Windows tracert, MPLS UDP traceroute, scans).

use crate::common;
use common::*;
use std::collections::BTreeSet;

fn by_method<'a>(f: &[&'a Traceroute], m: &str) -> &'a Traceroute {
    let v: Vec<_> = f.iter().filter(|d| d.method == m).collect();
    assert_eq!(v.len(), 1, "{m}: {f:?}");
    v[0]
}

#[test]
fn lab_traceroutes_are_three_detections_one_per_method() {
    let r = replay(&[&pcap("traceroute.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let f = r.traceroute_finals();
    assert_eq!(f.len(), 3, "{}", r.stdout);
    for d in &f {
        assert_eq!(d.direction.as_deref(), Some("inbound"));
        assert_eq!(d.routers, vec!["192.0.2.250".to_string()], "{d:?}");
        assert!(d.reached_target, "{d:?}");
        assert_eq!(d.ttl_min, 1);
        assert_eq!(d.end_reason.as_deref(), Some("end_of_input"));
    }
    let udp = by_method(&f, "udp");
    assert_eq!(udp.probes, 7);
    assert_eq!(udp.ttl_max, 3);
    assert_eq!(udp.ports, Some(PortRange { min: 33443, max: 33449 }));
    assert_eq!(udp.hops_before_sensor, Some(3), "pk-o2 is 3 hops before the edge");
    assert_eq!(udp.time_exceeded, 3);
    assert_eq!(udp.target_answers, 4, "4 port unreachables from the target");
    let icmp = by_method(&f, "icmp");
    assert_eq!(icmp.probes, 19);
    assert_eq!(icmp.ttl_max, 7);
    assert_eq!(icmp.time_exceeded, 3);
    assert_eq!(icmp.target_answers, 16, "16 echo replies");
    assert_eq!(icmp.ports, None);
    assert_eq!(icmp.hops_before_sensor, None);
    let tcp = by_method(&f, "tcp");
    assert_eq!(tcp.probes, 15);
    assert_eq!(tcp.ttl_max, 5);
    assert_eq!(tcp.dest_port, Some(80));
    assert_eq!(tcp.time_exceeded, 2, "the firewall rate-limited the third");
    assert_eq!(tcp.target_answers, 12, "12 SYN-ACKs");
    // Each detection keeps one id from new to final; the ids differ.
    let ids: BTreeSet<_> = f.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    for e in r.of_type("traceroute") {
        let d = e.traceroute.as_ref().unwrap();
        assert!(ids.contains(&d.id));
        assert_eq!(e.src_ip.as_deref(), Some("203.0.113.34"));
        assert_eq!(e.dest_ip.as_deref(), Some("192.0.2.10"));
        assert!(e.summary.as_deref().unwrap().contains("traceroute"));
    }
    // The TCP probes are not a retrying client.
    assert!(r.of_type("syn_retry").is_empty(), "{}", r.stdout);
}

#[test]
fn without_a_home_net_and_with_more_workers_the_same_traces_are_found() {
    for workers in ["1", "4"] {
        let r = picket(&["replay", pcap("traceroute.pcap").to_str().unwrap(), "--workers", workers]);
        let f = r.traceroute_finals();
        assert_eq!(f.len(), 3, "{}", r.stdout);
        let mut probes: Vec<u64> = f.iter().map(|d| d.probes).collect();
        probes.sort();
        assert_eq!(probes, vec![7, 15, 19]);
        assert!(f.iter().all(|d| d.direction.is_none() && d.reached_target && d.routers.len() == 1));
    }
}

#[test]
fn other_lab_captures_have_no_traceroute() {
    for name in [
        "benign_web_dns.pcap",
        "nmap_syn_scan.pcap",
        "decoy_scan_nmap.pcap",
        "decoy_hping_fixed_ttl.pcap",
        "smurf_fraggle.pcap",
        "netbios.pcap",
        "periodic_probe_30s.pcap",
        "burst_reconnect.pcap",
        "syn_retry_hping_drop.pcap",
        "syn_rejected_icmp.pcap",
    ] {
        let r = replay(&[&pcap(name)], &[]);
        assert!(r.of_type("traceroute").is_empty(), "{name}: {}", r.stdout);
    }
}

#[test]
fn windows_tracert_in_the_corpus_is_an_icmp_trace_with_its_routers() {
    let cases = [
        // (file, tracer, target, probes, ttl_max, first router, routers)
        ("cs_icmp_traceroute.pcapng", "192.168.100.138", "4.2.2.1", 27, 9, "192.168.100.1", 8),
        ("ppa_icmp_tracert_slow.pcap", "24.6.126.218", "198.173.244.32", 39, 13, "12.244.25.161", 11),
    ];
    for (name, tracer, target, probes, ttl_max, first_router, routers) in cases {
        let Some(f) = corpus_file(name) else {
            println!("skipping {name}: ../shared/corpus/pcaps is absent");
            continue;
        };
        let r = replay(&[&f], &[]);
        let d = r.traceroute_finals();
        assert_eq!(d.len(), 1, "{name}: {}", r.stdout);
        let d = d[0];
        assert_eq!(d.method, "icmp");
        assert_eq!(d.probes, probes, "{name}");
        assert_eq!((d.ttl_min, d.ttl_max), (1, ttl_max), "{name}");
        assert_eq!(d.routers.first().map(String::as_str), Some(first_router), "{name}");
        assert_eq!(d.routers.len(), routers, "{name}: {:?}", d.routers);
        assert!(d.reached_target, "{name}");
        let ev = r.of_type("traceroute");
        assert_eq!(ev[0].src_ip.as_deref(), Some(tracer));
        assert_eq!(ev[0].dest_ip.as_deref(), Some(target));
        // Neither end is in the lab's home net.
        assert_eq!(d.direction.as_deref(), Some("external"));
    }
}

#[test]
fn mpls_udp_traceroute_in_the_corpus() {
    let Some(f) = corpus_file("tcpdump_mpls_traceroute.pcap") else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return;
    };
    let r = replay(&[&f], &[]);
    let d = r.traceroute_finals();
    assert_eq!(d.len(), 1, "{}", r.stdout);
    assert_eq!(d[0].method, "udp");
    assert_eq!(d[0].probes, 9);
    assert_eq!((d[0].ttl_min, d[0].ttl_max), (1, 3));
    assert_eq!(d[0].routers, vec!["10.5.0.1".to_string(), "10.4.0.2".to_string()]);
    assert_eq!(d[0].ports.as_ref().map(|p| p.min), Some(33435));
    assert_eq!(d[0].hops_before_sensor, Some(0), "captured at the tracer");
}

#[test]
fn scans_and_everything_else_in_the_corpus_are_not_traceroutes() {
    let Some(dir) = corpus() else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return;
    };
    let traces = ["cs_icmp_traceroute.pcapng", "ppa_icmp_tracert_slow.pcap", "tcpdump_mpls_traceroute.pcap"];
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let f = entry.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if traces.contains(&name.as_str()) {
            continue;
        }
        let r = replay(&[&f], &[]);
        assert!(r.of_type("traceroute").is_empty(), "{name}: {}", r.stdout);
        checked += 1;
    }
    // nmap (including -A with its own traceroute), masscan, sweeps, ...
    assert!(checked >= 20, "{checked}");
}

#[test]
fn a_home_host_tracing_out_is_outbound() {
    let Some(f) = corpus_file("cs_icmp_traceroute.pcapng") else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return;
    };
    for workers in ["1", "3"] {
        let r = picket(&["replay", f.to_str().unwrap(), "--home-net", "192.168.100.0/24", "--workers", workers]);
        let d = r.traceroute_finals();
        assert_eq!(d.len(), 1, "{}", r.stdout);
        assert_eq!(d[0].direction.as_deref(), Some("outbound"));
        assert_eq!(d[0].routers.len(), 8, "every time exceeded meets its probe in one worker");
        assert!(r.of_type("traceroute")[0].summary.as_deref().unwrap().contains("inside is tracing"));
    }
}
