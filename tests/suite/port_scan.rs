//! `port_scan` on captures of the real tools (issue 12): nmap's SYN,
//! connect, FIN, Xmas, NULL, ACK and UDP scans and a 445 sweep, masscan,
//! zmap and hping3, all recorded by scripts/record-pcaps in the namespace
//! lab (pcaps/README.md). Each capture must give exactly one scan, from the
//! scanner's address, of the right type and pattern, with what it found
//! open, and name the tool when its fingerprint (rules/scanners.toml) fits.
//! Ordinary traffic and the other detectors' captures must give none.

use crate::common;
use common::*;

struct Want {
    file: &'static str,
    src: &'static str,
    scan_type: &'static str,
    pattern: &'static str,
    tool: &'static str,
    /// Ports (or hosts, for a sweep) the tool was told to probe.
    spread: u64,
    open: &'static [u16],
    ranges: &'static [(&'static str, &'static str)],
}

const WANT: &[Want] = &[
    Want {
        file: "nmap_syn_scan.pcap",
        src: "198.51.100.10",
        scan_type: "syn",
        pattern: "vertical",
        tool: "nmap",
        spread: 300,
        open: &[80],
        ranges: &[("tcp", "1-300")],
    },
    Want {
        file: "scan_nmap_connect.pcap",
        src: "198.51.100.10",
        scan_type: "connect",
        pattern: "vertical",
        tool: "unknown",
        spread: 100,
        open: &[80],
        ranges: &[("tcp", "1-100")],
    },
    Want {
        file: "scan_nmap_fin.pcap",
        src: "198.51.100.10",
        scan_type: "fin",
        pattern: "vertical",
        tool: "unknown",
        spread: 40,
        open: &[],
        ranges: &[("tcp", "1-40")],
    },
    Want {
        file: "scan_nmap_xmas.pcap",
        src: "198.51.100.10",
        scan_type: "xmas",
        pattern: "vertical",
        tool: "unknown",
        spread: 40,
        open: &[],
        ranges: &[("tcp", "1-40")],
    },
    Want {
        file: "scan_nmap_null.pcap",
        src: "198.51.100.10",
        scan_type: "null",
        pattern: "vertical",
        tool: "unknown",
        spread: 40,
        open: &[],
        ranges: &[("tcp", "1-40")],
    },
    Want {
        file: "scan_nmap_udp.pcap",
        src: "203.0.113.10",
        scan_type: "udp",
        pattern: "vertical",
        tool: "unknown",
        spread: 45,
        open: &[7, 19, 53],
        ranges: &[],
    },
    Want {
        file: "scan_nmap_sweep.pcap",
        src: "203.0.113.34",
        scan_type: "syn",
        pattern: "horizontal",
        tool: "nmap",
        spread: 64,
        open: &[],
        ranges: &[("tcp", "445")],
    },
    Want {
        file: "scan_masscan.pcap",
        src: "198.51.100.10",
        scan_type: "syn",
        pattern: "vertical",
        tool: "masscan",
        spread: 200,
        open: &[80],
        ranges: &[("tcp", "1-200")],
    },
    Want {
        file: "scan_zmap.pcap",
        src: "203.0.113.34",
        scan_type: "syn",
        pattern: "horizontal",
        tool: "zmap",
        spread: 64,
        open: &[80],
        ranges: &[("tcp", "80")],
    },
    Want {
        file: "scan_hping3.pcap",
        src: "203.0.113.10",
        scan_type: "syn",
        pattern: "vertical",
        tool: "hping3",
        spread: 100,
        open: &[80],
        ranges: &[("tcp", "1-100")],
    },
];

#[test]
fn each_tools_scan_is_one_detection_of_the_right_kind() {
    for w in WANT {
        let r = replay(&[&pcap(w.file)], &[]);
        assert_eq!(r.code, Some(0), "{}: {}", w.file, r.stderr);
        let finals = r.port_scan_finals();
        assert_eq!(finals.len(), 1, "{}: {}", w.file, r.stdout);
        let (e, d) = finals[0];
        let f = w.file;
        assert_eq!(e.src_ip.as_deref(), Some(w.src), "{f}");
        assert_eq!((d.scan_type.as_str(), d.pattern.as_str()), (w.scan_type, w.pattern), "{f}");
        assert_eq!(d.tool, w.tool, "{f}");
        assert_eq!(d.direction.as_deref(), Some("inbound"), "{f}");
        assert_eq!(d.decided_by, "trw", "{f}: four failed first contacts decide");
        let spread = if w.pattern == "horizontal" { d.targets } else { d.ports_probed };
        assert_eq!(spread, w.spread, "{f}");
        let mut open: Vec<u16> = d.open_ports.iter().map(|o| o.port).collect();
        open.sort_unstable();
        assert_eq!(open, w.open, "{f}: what answered as open");
        for (proto, range) in w.ranges {
            assert_eq!(d.ports.get(*proto).map(|v| v.join(",")).as_deref(), Some(*range), "{f}");
        }
        let summary = e.summary.as_deref().unwrap_or_default();
        assert!(summary.starts_with(w.src), "{f}: {summary}");
        if w.tool != "unknown" {
            assert!(summary.contains(&format!("by {}", w.tool)), "{f}: {summary}");
        }
        assert!(e.severity.is_some());
    }
}

#[test]
fn an_ack_scan_through_a_stateful_firewall_maps_the_unfiltered_ports() {
    let r = replay(&[&pcap("scan_nmap_ack.pcap")], &[]);
    let finals = r.port_scan_finals();
    assert_eq!(finals.len(), 1, "{}", r.stdout);
    let (e, d) = finals[0];
    assert_eq!(d.scan_type, "ack");
    // 22 and 25 pass the firewall and draw a RST; the rest are dropped.
    assert_eq!((d.unfiltered, d.ports_probed), (2, 40));
    assert!(e.summary.as_deref().unwrap_or_default().contains("2 unfiltered (RST)"));
}

#[test]
fn no_scan_in_ordinary_traffic_or_in_the_other_detectors_captures() {
    for f in [
        "benign_dmz_browsing.pcap",
        "benign_mixed.pcap",
        "benign_web_dns.pcap",
        "burst_reconnect.pcap",
        "periodic_probe_30s.pcap",
        "smurf_fraggle.pcap",
        "syn_answered_after_retrans.pcap",
        "syn_rejected_icmp.pcap",
        "syn_rejected_rst.pcap",
        "syn_retry_hping_drop.pcap",
        "syn_retry_kernel_retrans.pcap",
        "syn_retry_v6.pcap",
        "traceroute.pcap",
    ] {
        let r = replay(&[&pcap(f)], &[]);
        assert!(r.of_type("port_scan").is_empty(), "{f}: {}", r.stdout);
        assert!(r.stats().packets > 0, "{f}");
    }
}

#[test]
fn a_dmz_host_browsing_120_sites_is_no_scan() {
    // The capture holds what pcaps/README.md says (read here without picket):
    // one home host opening connections to over 100 outside addresses.
    let mut cap = pcap::Capture::from_file(pcap("benign_dmz_browsing.pcap")).expect("open capture");
    let mut sites = std::collections::HashSet::new();
    while let Ok(p) = cap.next_packet() {
        let Ok(s) = etherparse::SlicedPacket::from_ethernet(p.data) else { continue };
        if let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) = (&s.net, &s.transport)
            && t.syn()
            && !t.ack()
            && ip.header().source_addr() == std::net::Ipv4Addr::new(192, 0, 2, 10)
        {
            sites.insert(ip.header().destination_addr());
        }
    }
    assert!(sites.len() >= 100, "{}", sites.len());
    let r = replay(&[&pcap("benign_dmz_browsing.pcap")], &[]);
    assert!(r.of_type("port_scan").is_empty(), "{}", r.stdout);
}

#[test]
fn six_sources_dividing_one_hosts_ports_are_one_distributed_scan() {
    // Six addresses on three lab hosts, each nmap -sS -S ADDR over its own
    // 25-port slice of 192.0.2.20's ports 1-150, at once.
    for workers in ["1", "3"] {
        let r = replay(&[&pcap("scan_distributed.pcap")], &["--workers", workers]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let scans: Vec<serde_json::Value> = r
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event_type"] == "port_scan")
            .collect();
        let dist: Vec<&serde_json::Value> =
            scans.iter().filter(|e| e["port_scan"]["pattern"] == "distributed").collect();
        assert_eq!(dist.len(), 2, "one new, one final: {}", r.stdout);
        let fin = dist.iter().find(|e| e["port_scan"]["status"] == "final").expect("final");
        let d = &fin["port_scan"];
        assert_eq!(fin["dest_ip"], "192.0.2.20");
        assert_eq!(d["sources"], 6, "{d}");
        assert_eq!(d["ports_probed"], 150, "{d}");
        assert_eq!(d["ports"], serde_json::json!({"tcp": ["1-150"]}), "{d}");
        assert_eq!(d["scan_type"], "syn");
        assert_eq!(d["direction"], "inbound");
        assert!(d["mean_overlap"].as_f64().unwrap() < 0.05, "{d}");
        let open: Vec<u64> = d["open_ports"].as_array().unwrap().iter().map(|o| o["port"].as_u64().unwrap()).collect();
        assert_eq!(open, [80], "{d}");
        let mut srcs: Vec<&str> =
            d["source_list"].as_array().unwrap().iter().map(|m| m["src"].as_str().unwrap()).collect();
        srcs.sort();
        let want = ["198.51.100.10", "198.51.100.11", "203.0.113.10", "203.0.113.11", "203.0.113.34", "203.0.113.35"];
        assert_eq!(srcs, want);
        // Each source's slice is also its own vertical scan.
        let vertical: std::collections::BTreeSet<&str> = scans
            .iter()
            .filter(|e| e["port_scan"]["pattern"] == "vertical" && e["port_scan"]["status"] == "final")
            .map(|e| e["src_ip"].as_str().unwrap())
            .collect();
        assert_eq!(vertical.into_iter().collect::<Vec<_>>(), want);
    }
    // A decoy scan (the same ports from every source) and ordinary traffic
    // with many clients are not distributed scans.
    for f in ["decoy_scan_nmap.pcap", "decoy_hping_fixed_ttl.pcap", "benign_mixed.pcap", "nmap_syn_scan.pcap"] {
        let r = replay(&[&pcap(f)], &[]);
        assert!(
            !r.of_type("port_scan").iter().any(|e| e.port_scan.as_ref().is_some_and(|d| d.pattern == "distributed")),
            "{f}: {}",
            r.stdout
        );
    }
}
