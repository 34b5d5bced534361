//! `brute_force` on `pcaps/brute_force.pcap` (hydra against pyftpdlib and
//! sshd in the namespace lab, next to a user logging in three times over FTP
//! and ssh) and on the public brute-force captures in
//! ../shared/realworld/pcaps (skipped only with PICKET_SKIP_SHARED=1): each guesser is named
//! once, with what the server's replies show, and none of its connections is
//! also called a beacon, a retrying client or a port sequence.

use crate::common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn events(path: &Path, extra: &[&str]) -> Vec<Value> {
    let r = replay(&[path], extra);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r.stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
}

fn finals<'a>(evs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["event_type"] == kind && e[kind]["status"] == "final").collect()
}

/// The detectors a brute force used to be mistaken for.
const MISREAD: [&str; 4] = ["periodic_probe", "source_port_sequence", "verdict", "syn_retry"];

#[test]
fn hydra_on_ftp_and_ssh_is_named_and_the_user_is_not() {
    for workers in ["1", "3"] {
        let evs = events(&pcap("brute_force.pcap"), &["--workers", workers]);
        let bf = finals(&evs, "brute_force");
        assert_eq!(bf.len(), 2, "{bf:?}");
        let ftp = bf.iter().find(|e| e["dest_port"] == 21).expect("the FTP guesser");
        let d = &ftp["brute_force"];
        assert_eq!((ftp["src_ip"].as_str(), d["target"].as_str()), (Some("198.51.100.10"), Some("192.0.2.20")));
        assert_eq!(d["service"], "ftp");
        // hydra tries three passwords per connection; the 28th was right.
        assert_eq!((d["failed_logins"].as_u64(), d["successful_logins"].as_u64()), (Some(27), Some(1)));
        assert_eq!(d["login_outcome"], "succeeded");
        assert!(d["completed"].as_u64().unwrap() >= 10, "{d}");
        assert!(ftp["summary"].as_str().unwrap().contains("a login succeeded"));
        let ssh = bf.iter().find(|e| e["dest_port"] == 22).expect("the SSH guesser");
        let d = &ssh["brute_force"];
        assert_eq!(ssh["src_ip"], "203.0.113.34");
        assert_eq!(d["login_outcome"], "not_visible");
        assert!(d["failed_logins"].is_null());
        assert!(d["completed"].as_u64().unwrap() >= 10 && d["short_sessions"] == d["completed"], "{d}");
        // The user's three FTP logins (with passive data connections) and
        // three ssh logins are nothing.
        let user: Vec<&Value> = evs.iter().filter(|e| e["src_ip"] == "203.0.113.10").collect();
        assert!(user.is_empty(), "{user:?}");
        for k in MISREAD {
            assert!(finals(&evs, k).is_empty(), "{k}: {:?}", finals(&evs, k));
        }
    }
}

fn realworld(name: &str) -> Option<PathBuf> {
    shared(&format!("realworld/pcaps/{name}"))
}

/// Replays a realworld capture with the home net its MANIFEST gives.
fn realworld_events(name: &str, home: &str) -> Option<Vec<Value>> {
    let p = realworld(name)?;
    let r = picket(&["replay", "--home-net", home, p.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    Some(r.stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect())
}

/// A realworld capture: file, home net, guesser, target, port, completed
/// sessions at least, failed logins.
type Case = (&'static str, &'static str, &'static str, &'static str, u64, u64, Option<u64>);

#[test]
fn the_public_brute_force_captures_are_brute_forces_and_nothing_else() {
    // (file, home net, guesser, target, port, completed sessions at least, failed logins)
    let cases: [Case; 3] = [
        ("zeek_ftp_bruteforce.pcap", "192.168.56.101/32", "192.168.56.1", "192.168.56.101", 21, 30, Some(30)),
        ("zeek_ssh_sshguess.pcap", "192.168.56.103/32", "192.168.56.1", "192.168.56.103", 22, 11, None),
        ("ppa_ftp-crack.pcap", "10.121.70.151/32", "10.234.125.254", "10.121.70.151", 21, 1000, Some(1390)),
    ];
    for (name, home, src, dst, port, completed, failed) in cases {
        let Some(evs) = realworld_events(name, home) else { continue };
        let bf = finals(&evs, "brute_force");
        assert_eq!(bf.len(), 1, "{name}: {bf:?}");
        let (e, d) = (bf[0], &bf[0]["brute_force"]);
        assert_eq!(
            (e["src_ip"].as_str(), d["target"].as_str(), d["port"].as_u64()),
            (Some(src), Some(dst), Some(port))
        );
        assert!(d["completed"].as_u64().unwrap() >= completed, "{name}: {d}");
        assert_eq!(d["failed_logins"].as_u64(), failed, "{name}");
        assert_eq!(d["successful_logins"].as_u64(), failed.map(|_| 0), "{name}");
        let s = e["summary"].as_str().unwrap();
        assert!(s.contains("password guessing") && !s.contains("misconfigured"), "{name}: {s}");
        // zeek_ftp_bruteforce was a periodic_probe 'answered: a scheduled
        // client or a beacon', ppa_ftp-crack a syn_retry of 14 attempts.
        for k in MISREAD {
            assert!(finals(&evs, k).is_empty(), "{name}: {k}: {:?}", finals(&evs, k));
        }
    }
}

#[test]
fn no_other_lab_capture_is_a_brute_force() {
    let dir = root().join("pcaps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "pcap")) {
        if f.ends_with("brute_force.pcap") {
            continue;
        }
        let evs = events(f, &[]);
        assert!(finals(&evs, "brute_force").is_empty(), "{}", f.display());
    }
}
