//! The firewall-log pairs recorded in the lab (pcaps/fw_*.pcap + .log):
//! checks, with a parser written here independently of picket's, that each
//! pair holds what pcaps/README.md says and what the correlation relies on:
//! every inbound log line is one SYN on the span (same addresses, ports and
//! sequence number, TTL one lower after the firewall's routing, logged
//! within a few seconds), and the egress sweep is in the log only.

use crate::common;
use common::*;
use std::collections::HashMap;

/// (src, sport, dst, dport, seq) -> (packet time us, ttl)
type Syns = HashMap<(String, u16, String, u16, u32), (i64, u8)>;

fn span_syns(name: &str) -> Syns {
    let mut cap = pcap::Capture::from_file(pcap(name)).expect("open capture");
    let mut out = Syns::new();
    while let Ok(p) = cap.next_packet() {
        let Ok(s) = etherparse::SlicedPacket::from_ethernet(p.data) else { continue };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) = (&s.net, &s.transport)
        else {
            continue;
        };
        if !t.syn() || t.ack() {
            continue;
        }
        let h = ip.header();
        let ts = p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec;
        out.insert(
            (
                h.source_addr().to_string(),
                t.source_port(),
                h.destination_addr().to_string(),
                t.destination_port(),
                t.sequence_number(),
            ),
            (ts, h.ttl()),
        );
    }
    out
}

/// KEY=VALUE fields of a netfilter LOG line (LOG, NFLOG via ulogd, nft).
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace().filter_map(|w| w.split_once('=')).collect()
}

fn check_pair(name: &str, want_offset: Option<(f64, f64)>) {
    let syns = span_syns(&format!("{name}.pcap"));
    let log = std::fs::read_to_string(pcap(&format!("{name}.log"))).expect("read the log");
    let (mut inbound, mut egress, mut matched) = (0, 0, 0);
    let mut offsets = Vec::new();
    for line in log.lines() {
        let f = fields(line);
        let key = (
            f["SRC"].to_string(),
            f["SPT"].parse::<u16>().unwrap(),
            f["DST"].to_string(),
            f["DPT"].parse::<u16>().unwrap(),
            f["SEQ"].parse::<u32>().unwrap(),
        );
        let ttl: u8 = f["TTL"].parse().unwrap();
        if line.contains("PK-OUT-DROP") {
            egress += 1;
            assert_eq!(key.3, 445, "{line}");
            assert!(!syns.contains_key(&key), "an egress drop reached the span: {line}");
            continue;
        }
        assert!(line.contains("PK-IN-DROP"), "{line}");
        inbound += 1;
        let (ts, wire_ttl) = syns.get(&key).unwrap_or_else(|| panic!("{name}: not on the span: {line}"));
        assert_eq!(ttl + 1, *wire_ttl, "logged after routing: {line}");
        matched += 1;
        // ISO 8601 kernel time (dmesg --time-format iso): offset log - wire.
        if let Some(iso) = line.split_whitespace().next().filter(|t| t.starts_with("20")) {
            let hms = &iso[11..26]; // HH:MM:SS,ffffff
            let secs = |s: &str| s.parse::<f64>().unwrap();
            let log_s = secs(&hms[0..2]) * 3600.0 + secs(&hms[3..5]) * 60.0 + secs(&hms[6..].replace(',', "."));
            let wire_s = ((*ts / 1_000_000) % 86_400) as f64 + (*ts % 1_000_000) as f64 / 1e6;
            offsets.push(log_s - wire_s);
        }
    }
    assert_eq!((inbound, egress, matched), (205, 32, 205), "{name}");
    if let Some((lo, hi)) = want_offset {
        offsets.sort_by(f64::total_cmp);
        let median = offsets[offsets.len() / 2];
        assert!((lo..hi).contains(&median), "{name}: clock offset {median}");
    }
}

#[test]
fn iptables_log_via_dmesg_matches_the_span_and_runs_0_88_s_behind() {
    check_pair("fw_iptables_dmesg", Some((-0.95, -0.80)));
}

#[test]
fn nflog_via_ulogd_matches_the_span() {
    check_pair("fw_iptables_nflog", None);
}

#[test]
fn nftables_log_matches_the_span() {
    check_pair("fw_nftables", Some((-0.95, -0.80)));
}

/// picket's own parsers read every line the three real firewalls wrote.
#[test]
fn picket_fwlog_reads_every_lab_log_line() {
    for name in ["fw_iptables_dmesg", "fw_iptables_nflog", "fw_nftables"] {
        let log = pcap(&format!("{name}.log"));
        let r = picket(&["fwlog", log.to_str().unwrap(), "--fw-reference", "2026-11-22"]);
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        let c = r.of_type("fw_correlation")[0].fw_correlation.clone().expect("fw_correlation");
        assert_eq!(c.records, 237, "{name}");
        assert_eq!(c.formats.get("netfilter"), Some(&237), "{name}");
        assert!(c.bad_lines.iter().all(|b| b.count == 0), "{name}: {:?}", c.bad_lines);
        let port = |p: u16| c.by_port.iter().find(|x| x.port == Some(p)).map(|x| x.count);
        assert_eq!((port(445), port(23), port(158)), (Some(32), Some(5), Some(4)), "{name}");
    }
}
