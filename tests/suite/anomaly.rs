//! `anomaly` on `pcaps/anomalies.pcap` (hping3 in the namespace lab; see
//! pcaps/README.md): one detection per kind the capture holds, from the
//! right source; no anomaly in ordinary traffic; and in the corpus only
//! what is there (nmap -O's SYN+FIN, masscan's port 0).

use crate::common;
use common::*;
use serde_json::Value;

fn finals(path: &std::path::Path) -> Vec<(String, String)> {
    let r = replay(&[path], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let mut v: Vec<(String, String)> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == "anomaly" && e["anomaly"]["status"] == "final")
        .map(|e| {
            (e["anomaly"]["kind"].as_str().unwrap_or("").to_string(), e["src_ip"].as_str().unwrap_or("").to_string())
        })
        .collect();
    v.sort();
    v
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

#[test]
fn each_kind_in_the_lab_capture_is_one_detection() {
    let got = finals(&pcap("anomalies.pcap"));
    let o1 = "198.51.100.10";
    assert_eq!(
        got,
        pairs(&[
            ("port_zero", o1),
            ("syn_fin", o1),
            ("bogon_source", "10.1.2.3"),
            ("land", "192.0.2.10"),
            ("source_route", o1),
            ("icmp_redirect", o1),
            ("icmp_source_quench", o1),
        ])
    );
}

#[test]
fn ordinary_traffic_has_no_anomaly_and_the_corpus_only_what_is_there() {
    for f in
        ["benign_mixed.pcap", "benign_web_dns.pcap", "benign_dmz_browsing.pcap", "syn_retry_v6.pcap", "netbios.pcap"]
    {
        assert!(finals(&pcap(f)).is_empty(), "{f}");
    }
    let Some(dir) = corpus() else {
        println!("skipping the corpus: ../shared/corpus/pcaps is absent");
        return;
    };
    let want: &[(&str, &[(&str, &str)])] = &[
        ("cs_activeosfingerprinting.pcapng", &[("syn_fin", "172.16.16.128")]),
        ("esnet_masscan_tcp_0_1000.pcap", &[("port_zero", "172.31.15.102")]),
        ("esnet_masscan_udp_0_1000.pcap", &[("port_zero", "172.31.15.102")]),
        ("evilfingers_xscan.pcap", &[("syn_fin", "192.168.1.125")]),
        ("nfpc_puzzle4_evidence04.pcap", &[("syn_fin", "10.42.42.253")]),
        // The sweep included the sweeper's own address.
        ("sgr_tcp_syn_ping_sweep.pcapng", &[("land", "10.0.0.128")]),
    ];
    for f in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let expected = want.iter().find(|w| w.0 == name).map(|w| pairs(w.1)).unwrap_or_default();
        assert_eq!(finals(&f), expected, "{name}");
    }
}

#[test]
fn answers_to_a_forged_home_address_are_backscatter() {
    // nmap -D 192.0.2.10,ME and hping3 -a 192.0.2.10 against an outside
    // host: only its answers to 192.0.2.10 cross the span.
    let r = replay(&[&pcap("backscatter.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let evs: Vec<Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == "anomaly")
        .collect();
    let fin = evs.iter().find(|e| e["anomaly"]["status"] == "final").expect("a final backscatter event");
    assert_eq!(finals(&pcap("backscatter.pcap")), pairs(&[("backscatter", "203.0.113.10")]));
    let d = &fin["anomaly"];
    assert_eq!(fin["dest_ip"], "192.0.2.10");
    assert_eq!(d["answers"]["syn_ack"], 1, "{d}");
    assert_eq!(d["answers"]["rst"], 21, "{d}");
    assert_eq!(d["flows"], 22, "{d}");
    assert_eq!(d["return_path_seen"], true);
    assert!(fin["summary"].as_str().unwrap().contains("forged its address"), "{fin}");
    // Scans whose home targets answer, and a decoy scan of the home net,
    // make no backscatter: those answers go out, and every answer that
    // comes in follows a SYN the home host sent.
    for f in ["nmap_syn_scan.pcap", "decoy_scan_nmap.pcap", "scan_nmap_connect.pcap", "benign_dmz_browsing.pcap"] {
        assert!(!finals(&pcap(f)).iter().any(|(k, _)| k == "backscatter"), "{f}");
    }
}
