//! `netbios_nodestatus` on the lab capture (pcaps/netbios.pcap: nmblookup,
//! a Windows-style 137 -> 137 lookup, nbtscan then TCP 445; see
//! pcaps/README.md) and on the real NBNS capture of the corpus.

use crate::common;
use common::*;

fn netbios_run() -> Run {
    let r = replay(&[&pcap("netbios.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r
}

fn find<'a>(r: &'a Run, src: &str, stack: &str) -> (&'a Event, &'a Netbios) {
    let f: Vec<_> =
        r.netbios_finals().into_iter().filter(|(e, d)| e.src_ip.as_deref() == Some(src) && d.stack == stack).collect();
    assert_eq!(f.len(), 1, "{src} {stack}: {}", r.stdout);
    f[0]
}

#[test]
fn the_lab_capture_gives_two_lookups_and_one_scan() {
    let r = netbios_run();
    assert_eq!(r.netbios_finals().len(), 3, "{}", r.stdout);
    assert_eq!(
        r.stats().events.get("netbios_nodestatus"),
        Some(&5),
        "3 finals, the scan's new, and its update when TCP 445 followed"
    );
}

#[test]
fn nmblookup_from_a_dynamic_port_is_a_unix_lookup() {
    let r = netbios_run();
    let (e, d) = find(&r, "198.51.100.10", "unix");
    assert_eq!(d.verdict, "lookup");
    assert_eq!(d.queries, 10);
    assert_eq!(d.targets, 1);
    assert_eq!(d.sample_targets, ["192.0.2.10"]);
    assert_eq!(d.source_port, 38737);
    assert_eq!(d.timing, "other", "nmblookup retries every second");
    assert!((d.interval_s.unwrap() - 1.0).abs() < 0.05, "{d:?}");
    assert_eq!(d.followed_by_smb.syns, 0);
    assert_eq!(d.end_reason.as_deref(), Some("end_of_input"));
    assert_eq!(d.direction.as_deref(), Some("inbound"));
    assert_eq!(e.dest_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!((e.src_port, e.dest_port, e.proto.as_deref()), (Some(38737), Some(137), Some("UDP")));
    assert!(e.community_id.as_deref().is_some_and(|c| c.starts_with("1:")));
    assert_eq!(e.severity, Some(0), "a lookup is benign");
    assert!(e.summary.as_deref().unwrap().contains("harmless name lookup"), "{e:?}");
}

#[test]
fn a_137_to_137_query_three_times_1_5_s_apart_is_a_windows_lookup_complete_at_once() {
    let r = netbios_run();
    let (e, d) = find(&r, "203.0.113.10", "windows");
    assert_eq!(d.verdict, "lookup");
    assert_eq!(d.queries, 3);
    assert_eq!(d.sample_targets, ["192.0.2.20"]);
    assert_eq!(d.timing, "windows_1.5s");
    assert!((d.interval_s.unwrap() - 1.5).abs() < 0.05, "{d:?}");
    assert_eq!(d.end_reason.as_deref(), Some("complete"), "reported after its third query");
    assert_eq!(d.followed_by_smb.syns, 0, "the 445 SYNs belong to the scan from the dynamic port");
    // Emitted at the third query, not at the end of the capture.
    assert_eq!(e.timestamp, d.last_seen);
    assert_eq!(e.src_port, Some(137));
    assert_eq!(e.severity, Some(0));
}

#[test]
fn nbtscan_of_a_slash_25_followed_by_445_is_a_scan() {
    let r = netbios_run();
    let (e, d) = find(&r, "203.0.113.10", "unix");
    assert_eq!(d.verdict, "scan");
    assert_eq!(d.queries, 128);
    assert!((120..=136).contains(&d.targets), "128 targets, estimated: {}", d.targets);
    assert_eq!(d.sample_targets.len(), 16);
    assert_eq!(d.sample_targets[0], "192.0.2.0");
    assert_eq!(d.more_targets, d.targets - 16);
    assert_eq!(d.source_port, 49118);
    assert_eq!(d.followed_by_smb, SmbFollowUp { targets: 4, syns: 8, ports: vec![445] });
    assert_eq!(d.unreachables, 1, "192.0.2.1 answers ICMP port unreachable");
    assert_eq!(d.answers, 0);
    assert_eq!(d.timing, "other");
    assert_eq!(d.interval_s, None, "one query per target: no retries to time");
    assert_eq!(e.severity, Some(4), "a scan followed by SMB is serious");
    let s = e.summary.as_deref().unwrap();
    assert!(s.contains("NetBIOS scan") && s.contains("TCP 445"), "{s}");
    // The scan was announced as soon as it crossed the threshold, same id.
    let all: Vec<&Netbios> =
        r.events.iter().filter_map(|e| e.netbios_nodestatus.as_ref()).filter(|x| x.id == d.id).collect();
    assert_eq!(all[0].status, "new");
    assert_eq!(all[0].targets, 10);
    assert_eq!(all[1].status, "update");
    assert_eq!(all[1].followed_by_smb.syns, 1, "updated at the first SYN to 445");
    assert_eq!(all.last().unwrap().status, "final");
}

#[test]
fn ids_are_stable_across_runs_and_worker_counts() {
    let ids = |r: &Run| {
        let mut v: Vec<String> = r.netbios_finals().iter().map(|(_, d)| d.id.clone()).collect();
        v.sort();
        v
    };
    let a = replay(&[&pcap("netbios.pcap")], &["--workers", "1"]);
    let b = replay(&[&pcap("netbios.pcap")], &["--workers", "4"]);
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(ids(&a).len(), 3);
}

#[test]
fn no_netbios_detection_in_unrelated_lab_captures() {
    for name in [
        "benign_web_dns.pcap",
        "nmap_syn_scan.pcap",
        "smurf_fraggle.pcap",
        "traceroute.pcap",
        "decoy_scan_nmap.pcap",
        "syn_retry_hping_drop.pcap",
    ] {
        let r = replay(&[&pcap(name)], &[]);
        assert!(r.of_type("netbios_nodestatus").is_empty(), "{name}: {}", r.stdout);
    }
}

#[test]
fn rules_thresholds_are_honoured() {
    let dir = tempdir("netbios-rules");
    std::fs::write(dir.join("picket.toml"), "[netbios_nodestatus]\nlookup_max_targets = 200\nscan_min_targets = 500\n")
        .unwrap();
    let r = replay(&[&pcap("netbios.pcap")], &["--rules", dir.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (_, d) = find(&r, "203.0.113.10", "unix");
    assert_eq!(d.verdict, "lookup", "128 targets is under a 500-target scan threshold");
    std::fs::write(dir.join("picket.toml"), "[netbios_nodestatus]\nenabled = false\n").unwrap();
    let r = replay(&[&pcap("netbios.pcap")], &["--rules", dir.to_str().unwrap()]);
    assert!(r.of_type("netbios_nodestatus").is_empty());
}

#[test]
fn the_corpus_nbns_capture_shows_two_answered_lookups() {
    let Some(f) = corpus_file("ndpi_netbios.pcap") else { return };
    let r = replay(&[&f], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Mostly broadcast name queries and registrations (not NodeStatus); the
    // only NBSTAT "*" queries are two pairs to 10.0.4.24, each answered.
    let mut f = r.netbios_finals();
    f.sort_by(|a, b| a.0.src_ip.cmp(&b.0.src_ip));
    assert_eq!(f.len(), 2, "{}", r.stdout);
    let (e, d) = f[0];
    assert_eq!(e.src_ip.as_deref(), Some("10.0.1.87"));
    assert_eq!((d.stack.as_str(), d.verdict.as_str(), d.queries, d.answers), ("unix", "lookup", 2, 2));
    let (e, d) = f[1];
    assert_eq!(e.src_ip.as_deref(), Some("10.0.5.233"));
    assert_eq!((d.stack.as_str(), d.verdict.as_str(), d.queries, d.answers), ("windows", "lookup", 2, 2));
    for (e, d) in &f {
        assert_eq!(d.sample_targets, ["10.0.4.24"]);
        assert_eq!(d.timing, "other", "answered queries are new lookups, not retries");
        assert_eq!(d.interval_s, None);
        assert_eq!(d.followed_by_smb.syns, 0);
        assert_eq!(e.severity, Some(0));
    }
}

#[test]
fn nbstat_probes_of_corpus_port_scanners_are_not_called_lookups() {
    // masscan's UDP scan, xprobe2's fingerprinting and X-Scan each send
    // NodeStatus "*" among many other probes; X-Scan then hammers 139/445.
    for (name, src, stack, min_ports, smb_ports) in [
        ("esnet_masscan_udp_0_1000.pcap", "172.31.15.102", "unix", 900, vec![]),
        ("evilfingers_xprobe_tcp_scan.pcap", "192.168.1.20", "windows", 100, vec![139]),
        ("evilfingers_xscan.pcap", "192.168.1.125", "unix", 200, vec![139, 445]),
    ] {
        let Some(f) = corpus_file(name) else { continue };
        let r = replay(&[&f], &[]);
        let (e, d) = find(&r, src, stack);
        assert_eq!(r.netbios_finals().len(), 1, "{name}: {}", r.stdout);
        assert_eq!(d.verdict, "port_scan", "{name}: {d:?}");
        assert_eq!(d.targets, 1, "{name}");
        assert!(d.ports_probed >= min_ports, "{name}: {d:?}");
        assert_eq!(d.followed_by_smb.ports, smb_ports, "{name}");
        assert!(e.severity.unwrap() >= 2, "{name}");
        assert!(e.summary.as_deref().unwrap().contains("not a name lookup"), "{name}");
    }
}

/// An Ethernet + IPv4 + UDP frame carrying `payload`.
fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, ttl, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// The 50-byte NodeStatus query for "*" (SIGNATURES.md section 5).
fn nbstat_payload(txid: u16) -> Vec<u8> {
    let mut p = txid.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x20]);
    p.extend_from_slice(b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    p.extend_from_slice(&[0, 0, 0x21, 0, 1]);
    assert_eq!(p.len(), 50);
    p
}

#[test]
fn crafted_personal_firewall_progressive_timeouts_are_one_lookup() {
    // A personal firewall resolving a blocked peer: queries from a dynamic
    // port with 15 s, 30 s and 1 min timeouts (at 0, 15, 45, 105 s), then
    // silence; an unrelated DNS query at 400 s moves packet time on so the
    // lookup expires before the end of the input.
    let t0 = 1_795_000_000_000_000i64;
    let mut frames = Vec::new();
    for (i, t) in [0i64, 15, 45, 105].iter().enumerate() {
        let f = udp_frame([198, 51, 100, 20], [192, 0, 2, 30], 1030, 137, 120, &nbstat_payload(0x100 + i as u16));
        frames.push((t0 + t * 1_000_000, f));
    }
    frames.push((t0 + 400_000_000, udp_frame([198, 51, 100, 21], [192, 0, 2, 20], 40000, 53, 60, &[0; 30])));
    let dir = tempdir("netbios-progressive");
    let path = dir.join("personal_firewall_nbstat.pcap");
    write_pcap(&path, &frames);
    let r = replay(&[&path], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let f = r.netbios_finals();
    assert_eq!(f.len(), 1, "the 1 min pause does not split the lookup: {}", r.stdout);
    let (e, d) = f[0];
    assert_eq!(e.src_ip.as_deref(), Some("198.51.100.20"));
    assert_eq!((d.stack.as_str(), d.verdict.as_str(), d.queries), ("unix", "lookup", 4));
    assert_eq!(d.timing, "progressive");
    assert_eq!(d.interval_s, Some(30.0), "median of 15, 30, 60 s");
    assert_eq!(d.end_reason.as_deref(), Some("expired"));
    assert_eq!(e.severity, Some(0));
    assert!(e.summary.as_deref().unwrap().contains("progressive"), "{e:?}");
    assert_eq!(r.events.len(), 2, "one detection and the stats: {}", r.stdout);
}
