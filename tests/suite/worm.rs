//! `worm_phase` and `worm_summary` on the worm lab's captures
//! (`scripts/record-pcaps --worm`, pcaps/README.md): an egress 445 sweep
//! only the firewall log saw, an inbound sweep on the span, a Slammer-like
//! UDP 1434 sweep and a slow SMTP sweep; the same events with any number
//! of workers; no worm events on the other lab captures.

use crate::common;
use common::*;

const HOME: &str = "192.0.2.0/24";

/// (phase, sentry, host, direction, worm) of each `worm_phase`, in order.
fn phases(r: &Run) -> Vec<(u8, String, String, String, Option<String>)> {
    r.events
        .iter()
        .filter_map(|e| e.worm_phase.as_ref())
        .map(|w| (w.phase, w.sentry.clone(), w.host.clone(), w.direction.clone().unwrap_or_default(), w.worm.clone()))
        .collect()
}

fn summary(r: &Run) -> &WormSummary {
    let s: Vec<&WormSummary> = r.events.iter().filter_map(|e| e.worm_summary.as_ref()).collect();
    assert_eq!(s.len(), 1, "{}", r.stdout);
    s[0]
}

fn p(
    phase: u8,
    sentry: &str,
    host: &str,
    dir: &str,
    worm: Option<&str>,
) -> (u8, String, String, String, Option<String>) {
    (phase, sentry.into(), host.into(), dir.into(), worm.map(String::from))
}

#[test]
fn an_egress_445_sweep_only_the_firewall_log_saw_reaches_phase_three_from_the_log() {
    let log = pcap("worm_egress_445_fwlog.log");
    let r = fwlog(&[&log], &["--home-net", HOME]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let got = phases(&r);
    let h = "192.0.2.10";
    assert_eq!(
        got,
        vec![
            p(1, "445/tcp", h, "outbound", None),
            p(1, "any", h, "outbound", None),
            p(3, "445/tcp", h, "outbound", None),
            p(3, "any", h, "outbound", None),
        ],
        "{}",
        r.stdout
    );
    let third: Vec<&WormPhase> =
        r.events.iter().filter_map(|e| e.worm_phase.as_ref()).filter(|w| w.phase == 3).collect();
    // 8,192 denials within about 13 s: more than 1,000 within a minute.
    assert_eq!(third[0].reason, "per_minute");
    assert!(third[0].per_minute > 1000, "{third:?}");
    assert!(third[0].attempts > 5000 && third[0].attempts <= 8192, "{third:?}");
    assert!(third[0].targets > 7500, "{third:?}");
    assert_eq!(third[0].status, "final");
    for e in r.of_type("worm_phase") {
        assert_eq!(e.src_ip.as_deref(), Some(h));
        assert!(e.summary.as_deref().is_some_and(|s| s.contains("From firewall log records")));
    }
    let s = summary(&r);
    assert_eq!((s.hosts_total, s.hosts_phase3, s.phase_events), (1, 1, 4));
    assert_eq!(s.hosts[0].host, h);
    assert_eq!(s.hosts[0].phase, 3);
    assert_eq!(s.hosts[0].sentries, ["445/tcp", "any"]);
    assert!(s.is_final);
    // The same with 4 workers.
    let r4 = fwlog(&[&log], &["--home-net", HOME, "--workers", "4"]);
    assert_eq!(phases(&r4), got);
    // The span saw none of it.
    let span = replay(&[&pcap("worm_egress_445_fwlog.pcap")], &[]);
    assert!(span.of_type("worm_phase").is_empty(), "{}", span.stdout);
}

#[test]
fn an_inbound_sweep_on_the_span_is_phase_one_inbound() {
    let r = replay(&[&pcap("worm_inbound_445.pcap")], &[]);
    let h = "198.51.100.10";
    assert_eq!(phases(&r), vec![p(1, "445/tcp", h, "inbound", None), p(1, "any", h, "inbound", None)], "{}", r.stdout);
    let w = r.events.iter().find_map(|e| e.worm_phase.as_ref()).unwrap();
    // 254 SYNs; the two RSTs are no SYN-ACK, so every attempt is unanswered.
    assert!((240..=254).contains(&w.attempts), "{w:?}");
    assert!((240..=270).contains(&w.targets), "{w:?}");
    assert_eq!(w.reason, "count");
    assert_eq!(summary(&r).hosts[0].direction.as_deref(), Some("inbound"));
}

#[test]
fn a_slammer_like_sweep_goes_straight_to_phase_three_and_is_named() {
    for workers in ["1", "3"] {
        let r = replay(&[&pcap("worm_slammer_1434.pcap")], &["--workers", workers]);
        let h = "192.0.2.10";
        assert_eq!(
            phases(&r),
            vec![p(3, "1434/udp", h, "outbound", Some("SQL Slammer")), p(3, "any", h, "outbound", None)],
            "{}",
            r.stdout
        );
        let w = r.events.iter().find_map(|e| e.worm_phase.as_ref()).unwrap();
        assert_eq!(w.reason, "per_minute");
        assert!(w.per_minute > 2000 && w.attempts > 2000, "{w:?}");
        let s = summary(&r);
        assert_eq!(s.hosts[0].worm.as_deref(), Some("SQL Slammer"));
        assert_eq!(s.hosts_phase3, 1);
    }
}

#[test]
fn a_slow_sweep_stays_in_phase_one() {
    let r = replay(&[&pcap("worm_slow_smtp.pcap")], &[]);
    let h = "192.0.2.10";
    assert_eq!(phases(&r), vec![p(1, "25/tcp", h, "outbound", None), p(1, "any", h, "outbound", None)], "{}", r.stdout);
    let w = r.events.iter().find_map(|e| e.worm_phase.as_ref()).unwrap();
    assert!(w.per_minute <= 320, "5 a second: {w:?}");
    assert_eq!(summary(&r).hosts_phase3, 0);
    // Lower thresholds take the same capture further: the ladder is the rules'.
    let dir = tempdir("worm-rules");
    std::fs::write(dir.join("picket.toml"), "[worm_phase]\nphase1 = 50\nphase2 = 100\nphase3 = 240\n").unwrap();
    let r = replay(&[&pcap("worm_slow_smtp.pcap")], &["--rules", dir.to_str().unwrap()]);
    let got: Vec<u8> = phases(&r).iter().filter(|x| x.1 == "25/tcp").map(|x| x.0).collect();
    // The first minute closes with about 120 attempts, past phases I and II
    // at once: the ladder reports the highest; 240 comes in the next minute.
    assert_eq!(got, [2, 3], "{}", r.stdout);
}

#[test]
fn the_other_lab_captures_raise_no_worm_phase() {
    for f in std::fs::read_dir(root().join("pcaps")).unwrap() {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".pcap") || name.starts_with("worm_") {
            continue;
        }
        let r = replay(&[&path], &[]);
        assert!(r.of_type("worm_phase").is_empty(), "{name}: {}", r.stdout);
        assert!(r.of_type("worm_summary").is_empty(), "{name}");
    }
}
