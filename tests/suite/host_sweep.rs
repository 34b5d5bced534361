//! `host_sweep` on `pcaps/host_sweep_nmap.pcap` (nmap -sn in the namespace
//! lab: ICMP echo, TCP SYN 443, TCP ACK 80 and ICMP timestamp per address)
//! and on the corpus's ICMP ping sweep; nothing else in the corpus or the
//! lab captures is a sweep, and nmap -sn's SYNs are not also a port scan.

use crate::common;
use common::*;
use serde_json::Value;

fn finals(path: &std::path::Path, kind: &str) -> Vec<Value> {
    let r = replay(&[path], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == kind && e[kind]["status"] == "final")
        .collect()
}

#[test]
fn nmap_sn_is_one_host_sweep_and_no_port_scan() {
    let evs = finals(&pcap("host_sweep_nmap.pcap"), "host_sweep");
    assert_eq!(evs.len(), 1, "{evs:?}");
    let d = &evs[0]["host_sweep"];
    assert_eq!(evs[0]["src_ip"], "203.0.113.34");
    assert_eq!((d["method"].as_str(), d["targets"].as_u64()), (Some("icmp_echo"), Some(64)));
    let methods: Vec<&str> = d["methods"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(methods, ["icmp_echo", "icmp_timestamp", "tcp_syn", "tcp_ack"]);
    let mut alive: Vec<&str> = d["alive"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    alive.sort_unstable();
    assert!(alive.contains(&"192.0.2.10") && alive.contains(&"192.0.2.20"), "{alive:?}");
    assert!(finals(&pcap("host_sweep_nmap.pcap"), "port_scan").is_empty());
}

#[test]
fn only_the_ping_sweeps_are_sweeps() {
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(root().join("pcaps")).unwrap().map(|e| e.unwrap().path()).collect();
    match corpus() {
        Some(dir) => files.extend(std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path())),
        None => println!("skipping the corpus: ../shared/corpus/pcaps is absent"),
    }
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e != "md" && e != "log")) {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let evs = finals(f, "host_sweep");
        match name {
            "host_sweep_nmap.pcap" => {}
            "sgr_icmp_ping_sweep.pcap" => {
                assert_eq!(evs.len(), 1, "{name}");
                assert_eq!(evs[0]["src_ip"], "10.0.0.128");
                assert!(evs[0]["host_sweep"]["targets"].as_u64().unwrap() > 200);
            }
            _ => assert!(evs.is_empty(), "{name}: {evs:?}"),
        }
    }
}
