//! `known_probe` on the lab capture `pcaps/known_probes.pcap` (hping3 and
//! curl in the namespace lab; pcaps/README.md): a SubSeven probe from one
//! source port to two hosts, a proxy hunter, and sscan's probes, each named
//! once; and nothing in the third-party corpus, whose scans hold trojan and
//! proxy ports among hundreds of others (port_scan's).

use crate::common;
use common::*;
use serde_json::Value;

fn finals(path: &std::path::Path) -> Vec<Value> {
    let r = replay(&[path], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event_type"] == "known_probe" && e["known_probe"]["status"] == "final")
        .collect()
}

#[test]
fn the_lab_probes_are_named() {
    let evs = finals(&pcap("known_probes.pcap"));
    let by =
        |name: &str| evs.iter().find(|e| e["known_probe"]["name"] == name).unwrap_or_else(|| panic!("{name}: {evs:?}"));
    assert_eq!(evs.len(), 3, "{evs:?}");
    let s7 = by("subseven");
    assert_eq!(s7["src_ip"], "198.51.100.10");
    let d = &s7["known_probe"];
    assert_eq!((d["port"].as_u64(), d["targets"].as_u64(), d["probes"].as_u64()), (Some(27374), Some(2), Some(4)));
    assert_eq!(
        (d["crafted"].as_bool(), d["source_port"].as_u64(), d["answered"].as_u64()),
        (Some(true), Some(31000), Some(0))
    );
    assert!(d["note"].as_str().unwrap_or_default().contains("SubSeven"));
    let px = by("proxy_hunter");
    assert_eq!(px["src_ip"], "203.0.113.34");
    assert_eq!(px["known_probe"]["ports"], serde_json::json!([80, 3128, 8080]));
    let ss = by("sscan");
    assert_eq!(ss["src_ip"], "203.0.113.10");
    assert_eq!(
        (ss["known_probe"]["ack_pings"].as_u64(), ss["known_probe"]["low_port_syns"].as_u64()),
        (Some(2), Some(1))
    );
    // None of these is a port scan.
    let r = replay(&[&pcap("known_probes.pcap")], &[]);
    assert!(r.of_type("port_scan").is_empty(), "{}", r.stdout);
}

#[test]
fn the_corpus_scans_are_not_trojan_probes() {
    let Some(dir) = corpus() else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return;
    };
    for f in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        assert!(finals(&f).is_empty(), "{}", f.display());
    }
}
