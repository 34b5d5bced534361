//! The `decoy_scan` detector (SIGNATURES.md section 6) against the lab's
//! captures (pcaps/README.md): nmap -D with an earlier contact from the real
//! source and randomised TTLs, hping3 -a with one fixed TTL; and silence on
//! every other lab and third-party capture, including single-source scans.

use crate::common;
use common::*;
use std::path::{Path, PathBuf};

const NMAP_DECOYS: [&str; 3] = ["198.51.100.77", "203.0.113.99", "198.51.100.200"];

#[test]
fn nmap_decoys_point_at_the_source_with_an_earlier_conversation() {
    let r = replay(&[&pcap("decoy_scan_nmap.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let f = r.decoy_finals();
    assert_eq!(f.len(), 1, "{}", r.stdout);
    let (e, d) = f[0];
    assert_eq!(d.sources, ["198.51.100.77", "203.0.113.99", "203.0.113.10", "198.51.100.200"]);
    assert_eq!(d.suspected_source.as_deref(), Some("203.0.113.10"));
    assert_eq!(d.suspect_basis.as_deref(), Some("only_prior_conversation"));
    assert_eq!(d.spoofed, NMAP_DECOYS);
    assert_eq!(d.confidence, "high");
    assert_eq!(d.ports, [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 80, 443]);
    assert_eq!(d.ports_probed, 13);
    assert_eq!(d.probe_types, ["syn"]);
    let fp = &d.shared_fingerprint;
    assert_eq!(fp.sport, Some(42536));
    assert_eq!(fp.isn, Some(56144679));
    assert!(fp.ip_id, "same IP ID per probe across sources");
    assert_eq!(fp.window, Some(1024));
    assert_eq!(fp.ttl, None, "nmap randomises every probe's TTL");
    for f in ["sport", "isn", "ip_id"] {
        assert!(fp.fields.iter().any(|x| x == f), "{f}: {:?}", fp.fields);
    }
    let real = d.evidence.iter().find(|x| x.src == "203.0.113.10").unwrap();
    assert_eq!(real.conversation, "before");
    assert!(real.earlier_contact);
    let base = real.baseline_ttl.as_ref().expect("baseline from the curl exchange");
    assert_eq!((base.min, base.max, base.initial_ttl, base.hops_min), (126, 126, 128, 2));
    assert!(real.ttl_randomised);
    assert_eq!(real.ttl_consistent, Some(false), "the scan TTL differs from the baseline too");
    assert!(real.first_contact < real.first_probe);
    for decoy in NMAP_DECOYS {
        let x = d.evidence.iter().find(|x| x.src == decoy).unwrap();
        assert_eq!(x.conversation, "none", "{decoy}");
        assert!(!x.earlier_contact, "{decoy}");
        assert_eq!(x.baseline_ttl, None);
        assert_eq!(x.first_contact, x.first_probe);
        assert_eq!(x.probes, 13);
        assert!((35..=57).contains(&x.ttl.min) && x.ttl.max <= 57, "{:?}", x.ttl);
    }
    assert_eq!(d.direction.as_deref(), Some("inbound"));
    assert_eq!(d.end_reason.as_deref(), Some("end_of_input"));
    assert_eq!(e.src_ip.as_deref(), Some("203.0.113.10"));
    assert_eq!(e.dest_ip.as_deref(), Some("192.0.2.20"));
    assert_eq!(e.proto.as_deref(), Some("TCP"));
    assert!(e.community_id.as_deref().is_some_and(|c| c.starts_with("1:")));
    let s = e.summary.as_deref().unwrap();
    assert!(s.contains("203.0.113.10") && s.contains("confidence high"), "{s}");
    // Confirmed during the replay (a tick came after the scan), one id.
    let all: Vec<&DecoyScan> = r.events.iter().filter_map(|e| e.decoy_scan.as_ref()).collect();
    assert_eq!(all[0].status, "new");
    assert!(all.iter().all(|x| x.id == d.id));
}

#[test]
fn hping_decoys_share_one_ttl_and_name_no_one() {
    let r = replay(&[&pcap("decoy_hping_fixed_ttl.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let f = r.decoy_finals();
    assert_eq!(f.len(), 1, "{}", r.stdout);
    let (e, d) = f[0];
    assert_eq!(d.sources, ["198.51.100.33", "203.0.113.45", "198.51.100.10", "198.51.100.123", "203.0.113.201"]);
    assert_eq!(d.shared_fingerprint.ttl, Some(49));
    assert!(d.shared_fingerprint.fields.iter().any(|x| x == "ttl"));
    assert_eq!(d.shared_fingerprint.sport, None, "hping3 counts the source port up");
    assert_eq!(d.shared_fingerprint.isn, None);
    assert_eq!(d.shared_fingerprint.window, Some(512));
    // 198.51.100.10 is pk-o1's own address, but nothing before the scan shows it.
    assert_eq!(d.suspected_source, None);
    assert!(d.spoofed.is_empty());
    assert_eq!(d.confidence, "medium");
    assert_eq!(d.ports, [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 80, 443]);
    for x in &d.evidence {
        assert_eq!((x.ttl.min, x.ttl.max, x.ttl.initial_ttl, x.ttl.hops_min), (49, 49, 64, 15), "{}", x.src);
        assert!(!x.ttl_randomised);
        assert_eq!(x.conversation, "none");
    }
    assert!(e.summary.as_deref().unwrap().contains("at least 4 of the 5 sources are forged"), "{:?}", e.summary);
}

#[test]
fn the_result_does_not_depend_on_the_number_of_workers() {
    let files = [pcap("decoy_scan_nmap.pcap"), pcap("decoy_hping_fixed_ttl.pcap"), pcap("benign_web_dns.pcap")];
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let decoy_lines = |workers: &str| {
        let r = replay(&paths, &["--workers", workers]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let mut v: Vec<String> =
            r.stdout.lines().filter(|l| l.contains("\"event_type\":\"decoy_scan\"")).map(String::from).collect();
        v.sort();
        v
    };
    let one = decoy_lines("1");
    // Both scans hit 192.0.2.20 within the window: two detections, told
    // apart by their fingerprints, each with its new and final event.
    assert_eq!(one.len(), 4, "{one:#?}");
    for w in ["2", "3", "4"] {
        assert_eq!(decoy_lines(w), one, "--workers {w}");
    }
}

#[test]
fn other_lab_captures_have_no_decoy_scan() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("pcaps")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".pcap") || name.starts_with("decoy_") {
            continue;
        }
        n += 1;
        for workers in ["1", "3"] {
            let r = replay(&[&p], &["--workers", workers]);
            assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
            assert!(r.of_type("decoy_scan").is_empty(), "{name}: {}", r.stdout);
        }
    }
    assert!(n >= 10, "{n} captures");
}

#[test]
fn a_lone_syn_scan_and_ordinary_web_and_dns_clients_are_not_decoy_scans() {
    // nmap -sS of 300 ports from one source, and 8 HTTP clients + DNS, replayed together.
    let r = replay(&[&pcap("nmap_syn_scan.pcap"), &pcap("benign_web_dns.pcap")], &[]);
    assert!(r.of_type("decoy_scan").is_empty(), "{}", r.stdout);
}

#[test]
fn third_party_scans_have_no_decoy_scan() {
    let Some(dir) = corpus() else {
        println!("skipping: ../shared/corpus/pcaps is absent");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.iter().any(|f| f.to_string_lossy().contains("masscan")));
    for f in &files {
        for extra in [&[][..], &["--workers", "3"][..]] {
            let r = replay(&[f], extra);
            assert!(r.of_type("decoy_scan").is_empty(), "{}: {}", f.display(), r.stdout);
        }
    }
}

#[test]
fn disabled_in_the_rules_means_no_events_and_no_thread() {
    let d = tempdir("decoy-off");
    std::fs::write(d.join("picket.toml"), "[decoy_scan]\nenabled = false\n").unwrap();
    let r = replay(&[&pcap("decoy_scan_nmap.pcap")], &["--rules", d.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.of_type("decoy_scan").is_empty(), "{}", r.stdout);
    let d = tempdir("decoy-high");
    std::fs::write(d.join("picket.toml"), "[decoy_scan]\nmin_confidence = \"high\"\n").unwrap();
    let r = replay(
        &[&pcap("decoy_scan_nmap.pcap"), &pcap("decoy_hping_fixed_ttl.pcap")],
        &["--rules", d.to_str().unwrap()],
    );
    let f = r.decoy_finals();
    assert_eq!(f.len(), 1, "only the nmap verdict is high: {}", r.stdout);
    assert_eq!(f[0].1.confidence, "high");
}

/// Issue 12: the real owner of a decoy address (pk-o3, "Windows", TTL 126
/// here) fetched a page before the scan, while the real scanner (pk-o2,
/// TTL 61) had only pinged. The innocent must never be named.
#[test]
fn the_innocent_whose_address_was_borrowed_is_never_named() {
    // --ttl 64: the scan TTL is pk-o2's 61, the ping's baseline; the
    // innocent's own connection (TTL 126) is in its record too, but its
    // scan TTL is read from the probes alone, which contradict it.
    let file = "decoy_innocent_windows.pcap";
    let r = replay(&[&pcap(file)], &[]);
    let f = r.decoy_finals();
    assert_eq!(f.len(), 1, "{file}: {}", r.stdout);
    let (e, d) = f[0];
    assert_eq!(d.suspected_source.as_deref(), Some("203.0.113.34"), "{file}");
    assert_eq!(d.suspect_basis.as_deref(), Some("baseline_ttl"), "{file}");
    assert!(d.spoofed.iter().any(|s| s == "203.0.113.10"), "{file}: {:?}", d.spoofed);
    let s = e.summary.as_deref().unwrap_or_default();
    assert!(s.contains("likely 203.0.113.34"), "{file}: {s}");
    let innocent = d.evidence.iter().find(|x| x.src == "203.0.113.10").unwrap();
    assert_eq!(innocent.ttl_consistent, Some(false), "{file}: its probes' TTL 61 against its own 126");
    // The scanner's ping gave it a baseline (an earlier contact).
    let scanner = d.evidence.iter().find(|x| x.src == "203.0.113.34").unwrap();
    let base = scanner.baseline_ttl.as_ref().expect("baseline from the answered ping");
    assert_eq!((base.min, base.max), (61, 61), "{file}");

    // nmap's random TTL ties no source to its baseline, and both the
    // innocent (it browsed first) and the scanner (it pinged first) held
    // conversations before the scan: which one is real is not known, and
    // the event says so instead of naming either.
    let file = "decoy_innocent_windows_random_ttl.pcap";
    let r = replay(&[&pcap(file)], &[]);
    let f = r.decoy_finals();
    assert_eq!(f.len(), 1, "{file}: {}", r.stdout);
    let (e, d) = f[0];
    assert_eq!(d.suspected_source, None, "{file}");
    assert_eq!(d.confidence, "medium", "{file}");
    assert!(d.spoofed.is_empty(), "{file}: nothing shows which are forged: {:?}", d.spoofed);
    let s = e.summary.as_deref().unwrap_or_default();
    assert!(s.contains("which one is real is not known"), "{file}: {s}");
    let both = "203.0.113.10 and 203.0.113.34 held two-way conversations before the scan";
    assert!(d.reasons.iter().any(|x| x.starts_with(both)), "{file}: {:?}", d.reasons);
}
