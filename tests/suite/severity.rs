//! Severity and the service inventory on lab captures (issue 14,
//! SIGNATURES.md section 9): a small `assets.toml` in a rules directory
//! changes the target terms of real detections, `severity_terms` explains
//! every number, `target_service` says whether the probe hit a service the
//! host runs (lowering lethality when it does not), and the
//! `service_inventory` event lists what the home hosts answered on, the
//! same with 1 or 3 workers.

use crate::common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const ASSETS: &str = r#"
[home]
criticality = 2
system_countermeasures = 3
network_countermeasures = 3

[[asset]]
cidr = "192.0.2.0/24"
name = "dmz"
criticality = 4
system_countermeasures = 2
network_countermeasures = 2

[[asset]]
cidr = "192.0.2.20/32"
name = "ftp and mail"
criticality = 5
system_countermeasures = 1
network_countermeasures = 2
"#;

/// A rules directory holding `ASSETS`, one per test (tests run in parallel).
fn rules_dir(tag: &str) -> PathBuf {
    let d = tempdir(&format!("severity-rules-{tag}"));
    std::fs::write(d.join("assets.toml"), ASSETS).unwrap();
    d
}

/// Every line of a replay as JSON, with the lab's home net.
fn lines(pcap_name: &str, rules: Option<&Path>, workers: &str) -> Vec<Value> {
    let p = pcap(pcap_name);
    let mut args = vec!["replay", "--home-net", "192.0.2.0/24,2001:db8:d::/48", "--workers", workers];
    let r = rules.map(|r| r.to_string_lossy().into_owned());
    if let Some(r) = &r {
        args.extend(["--rules", r]);
    }
    let ps = p.to_string_lossy().into_owned();
    args.push(&ps);
    let run = picket_raw(&args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn finals<'a>(v: &'a [Value], ty: &str) -> Vec<&'a Value> {
    v.iter().filter(|e| e["event_type"] == ty && e[ty]["status"] == "final").collect()
}

/// The arithmetic holds on every detection line, with its terms in range.
fn check_terms(v: &[Value]) -> usize {
    let mut n = 0;
    for e in v.iter().filter(|e| e["severity"].is_i64()) {
        let t = &e["severity_terms"];
        let get = |k: &str| t[k].as_i64().unwrap_or_else(|| panic!("{k} missing: {e}"));
        for k in ["criticality", "lethality", "system_countermeasures", "network_countermeasures"] {
            assert!((1..=5).contains(&get(k)), "{k} out of 1..5: {e}");
        }
        let want =
            get("criticality") + get("lethality") - get("system_countermeasures") - get("network_countermeasures");
        assert_eq!(e["severity"].as_i64(), Some(want), "{e}");
        assert!(t["asset"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        assert!(t["why"].as_str().is_some_and(|s| s.contains(" = ")), "{e}");
        n += 1;
    }
    n
}

#[test]
fn brute_force_on_served_ports_scores_with_the_assets_file() {
    let rules = rules_dir("t1");
    let v = lines("brute_force.pcap", Some(&rules), "1");
    assert!(check_terms(&v) >= 2);
    let bf = finals(&v, "brute_force");
    let on = |dst: &str| *bf.iter().find(|e| e["dest_ip"] == dst).unwrap_or_else(|| panic!("no final to {dst}"));
    // hydra on FTP at 192.0.2.20, which served it (a login succeeded):
    // (5 + 4) - (1 + 2) = 6 on the /32, not the /24 that also covers it.
    let ftp = on("192.0.2.20");
    assert_eq!(ftp["target_service"], "offered");
    assert_eq!(ftp["severity_terms"]["asset"], "ftp and mail");
    assert_eq!(ftp["severity_terms"]["lethality"], 4);
    assert_eq!(ftp["severity"], 6);
    // SSH guessing at 192.0.2.10, in the dmz block: (4 + 3) - (2 + 2) = 3.
    let ssh = on("192.0.2.10");
    assert_eq!(ssh["target_service"], "offered");
    assert_eq!(ssh["severity_terms"]["asset"], "dmz");
    assert_eq!(ssh["severity"], 3);
    // Without the file: the shipped defaults, (3 + 4) - (2 + 2) = 3.
    let plain = lines("brute_force.pcap", None, "1");
    let ftp = finals(&plain, "brute_force").into_iter().find(|e| e["dest_ip"] == "192.0.2.20").unwrap().clone();
    assert_eq!((ftp["severity"].as_i64(), ftp["severity_terms"]["asset"].as_str()), (Some(3), Some("home net")));
}

#[test]
fn a_probe_of_a_service_the_host_does_not_run_is_less_lethal() {
    let rules = rules_dir("t2");
    // nmap -sU: 192.0.2.20 answers other UDP probes (ICMP unreachables are
    // not answers) but nothing on 137; it RSTs TCP, so it is known.
    let v = lines("scan_nmap_udp.pcap", Some(&rules), "1");
    check_terms(&v);
    let nb = finals(&v, "netbios_nodestatus");
    assert_eq!(nb.len(), 1, "{nb:?}");
    assert_eq!(nb[0]["target_service"], "not_offered");
    assert_eq!(nb[0]["severity_terms"]["lethality"], 2, "netbios_scan 3 minus 1");
    assert!(nb[0]["severity_terms"]["why"].as_str().unwrap().contains("does not offer udp/137"), "{}", nb[0]);
    // (5 + 2) - (1 + 2) = 4.
    assert_eq!(nb[0]["severity"], 4);
    // A client retrying a port the host refuses by RST: not offered, and
    // lethality stays at its floor of 1. dmz: (4 + 1) - (2 + 2) = 1.
    let v = lines("syn_rejected_rst.pcap", Some(&rules), "1");
    let sr = finals(&v, "syn_retry");
    assert_eq!(sr.len(), 1);
    assert_eq!(sr[0]["dest_port"], 3306);
    assert_eq!(sr[0]["target_service"], "not_offered");
    assert_eq!((sr[0]["severity_terms"]["lethality"].as_i64(), sr[0]["severity"].as_i64()), (Some(1), Some(1)));
    // A target never seen answering: unknown, no discount.
    let v = lines("syn_retry_hping_drop.pcap", Some(&rules), "1");
    let sr = finals(&v, "syn_retry");
    assert_eq!(sr[0]["target_service"], "unknown");
    // A port scan that found an open port is high: port_scan_open = 4.
    let v = lines("nmap_syn_scan.pcap", Some(&rules), "1");
    let ps = finals(&v, "port_scan");
    assert_eq!(ps[0]["severity_terms"]["lethality"], 4);
    assert_eq!(ps[0]["severity"], 6, "(5 + 4) - (1 + 2) on 192.0.2.20");
}

#[test]
fn service_inventory_lists_what_home_hosts_answered_on() {
    let v = lines("benign_busy_server.pcap", None, "2");
    let inv: Vec<&Value> = v.iter().filter(|e| e["event_type"] == "service_inventory").collect();
    assert_eq!(inv.len(), 1, "one at the end of the replay");
    let d = &inv[0]["service_inventory"];
    assert_eq!(d["reason"], "end_of_input");
    assert_eq!(v.last().unwrap()["event_type"], "stats", "the inventory comes before the stats line");
    let host = |h: &str| d["hosts"].as_array().unwrap().iter().find(|x| x["host"] == h).cloned();
    let svc = |h: &str, port: u64| {
        host(h).and_then(|x| x["services"].as_array().unwrap().iter().find(|s| s["port"] == port).cloned())
    };
    // pcaps/README.md: 73 connections to 80 and 154 to 443 of 192.0.2.10
    // from 79 addresses; 14 inbound SMTP sessions from 6 MTAs to .20.
    let web = svc("192.0.2.10", 443).expect("443 on 192.0.2.10");
    assert_eq!((web["proto"].as_str(), web["service"].as_str()), (Some("tcp"), Some("https")));
    let clients = web["clients"].as_u64().unwrap();
    assert!((60..=90).contains(&clients), "distinct clients of 443: {clients}");
    assert!(web["first_seen"].as_str() < web["last_seen"].as_str());
    assert!(svc("192.0.2.10", 80).is_some());
    assert_eq!(svc("192.0.2.20", 25).unwrap()["clients"], 6, "six MTAs");
    assert!(svc("2001:db8:d::10", 443).is_some(), "IPv6 too");
    // The typo'd ports drew RSTs: not services. Outside MTAs are not home hosts.
    assert!(svc("192.0.2.10", 8080).is_none() && svc("192.0.2.10", 81).is_none());
    assert!(host("198.51.100.94").is_none());
    assert_eq!(d["hosts_total"], 3);
    assert_eq!(d["truncated"], false);
}

#[test]
fn severity_target_service_and_the_inventory_do_not_depend_on_workers() {
    let rules = rules_dir("t3");
    // What varies with thread timing: the order of lines and wall-clock stats.
    let key = |v: &[Value]| {
        let mut k: Vec<String> = v
            .iter()
            .filter(|e| e["event_type"] != "stats")
            .map(|e| {
                format!(
                    "{} {} {} {} {} {} {} {}",
                    e["event_type"],
                    e["src_ip"],
                    e["dest_ip"],
                    e["dest_port"],
                    e["severity"],
                    e["target_service"],
                    e["severity_terms"],
                    if e["event_type"] == "service_inventory" {
                        e["service_inventory"].to_string()
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        k.sort();
        k
    };
    for f in ["brute_force.pcap", "scan_nmap_udp.pcap", "benign_busy_server.pcap", "scan_distributed.pcap"] {
        let one = key(&lines(f, Some(&rules), "1"));
        let three = key(&lines(f, Some(&rules), "3"));
        assert_eq!(one, three, "{f}");
        assert!(one.iter().any(|l| l.starts_with("\"service_inventory\"")), "{f}");
    }
}

#[test]
fn a_bad_assets_file_is_refused_with_its_line() {
    let d = tempdir("severity-bad");
    std::fs::write(d.join("assets.toml"), ASSETS.replace("criticality = 5", "criticality = 9")).unwrap();
    let r = picket_raw(&["rules", "check", &d.to_string_lossy()]);
    assert_ne!(r.code, Some(0));
    let file = d.join("assets.toml");
    assert!(
        r.stderr.contains(&format!("{}:17: [[asset]] criticality: must be between 1 and 5, got 9", file.display())),
        "{}",
        r.stderr
    );
}
