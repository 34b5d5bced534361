//! The live clock (issue 17): on an idle link packet time still moves, so a
//! retry loop that went silent is reported `settle_s` after its last
//! attempt, not when the next packet happens to arrive. picket captures a
//! veth inside a network namespace; a Python client in a second namespace
//! makes three connection attempts (a new source port each) to a port the
//! first namespace drops, then nothing more crosses the capture filter.
//! Needs root (CI runs as root); without it the test says so and returns.

use crate::common;
use common::lab::{Lab, lab_ready, must};
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A program retrying: three connects, each on a new socket (a new source
/// port), given up after 0.8 s (before the kernel's first retransmission
/// at 1 s). Prints the wall time of the last attempt.
const CLIENT: &str = r#"
import socket, time
last = 0.0
for i in range(3):
    s = socket.socket()
    s.settimeout(0.8)
    last = time.time()
    try:
        s.connect(("192.0.2.10", 158))
    except OSError:
        pass
    s.close()
    if i < 2:
        time.sleep(0.4)
print(last)
"#;

fn wall_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn an_unanswered_retry_loop_is_reported_on_an_idle_link() {
    if !lab_ready("the live clock test", &["ip", "iptables", "python3", "nsenter"]) {
        return;
    }
    let lab = Lab::up("clock", "c");
    lab.drop_tcp(158);
    let dir = tempdir("live-clock");
    let out = dir.join("events.json");
    let netns = format!("--net=/var/run/netns/{}", lab.a);
    // Only the client's SYNs pass the filter: after them, silence.
    let mut child = Command::new("nsenter")
        .args([netns.as_str(), bin(), "live", "-i", lab.va.as_str(), "--home-net", "192.0.2.0/28"])
        .args(["-f", "tcp port 158", "-o", out.to_str().unwrap(), "--workers", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start picket live");
    let mut stderr = child.stderr.take().unwrap();
    let seen = std::thread::spawn(move || {
        use std::io::Read;
        let mut seen = String::new();
        let mut buf = [0u8; 1024];
        while !seen.contains("capturing on") {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        (seen, stderr)
    });
    let (seen, stderr) = seen.join().unwrap();
    assert!(seen.contains("capturing on"), "picket did not start: {seen}");

    let client = Command::new("ip").args(["netns", "exec", &lab.b, "python3", "-c", CLIENT]).output().unwrap();
    assert!(client.status.success(), "client: {}", String::from_utf8_lossy(&client.stderr));
    let last: f64 = String::from_utf8_lossy(&client.stdout).trim().parse().expect("the last attempt's time");

    // settle_s is 3 s: the event must come within 3 + 2 s of the last SYN,
    // with no packet after it to move packet time.
    let settle_s = 3.0;
    let started = Instant::now();
    let arrived = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.lines().any(|l| l.contains("\"event_type\":\"syn_retry\"")) {
            break wall_s();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no syn_retry event 15 s after the client ended");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = arrived - last;
    must(&["kill", "-TERM", &child.id().to_string()]);
    let status = child.wait().unwrap();
    drop(stderr);
    assert!(status.success(), "exit status {status:?}");
    println!("syn_retry written {took:.2} s after the last attempt");
    assert!(
        took <= settle_s + 2.0,
        "the syn_retry event came {took:.2} s after the last attempt (settle_s {settle_s})"
    );

    let events = parse(&std::fs::read_to_string(&out).unwrap());
    let first = events.iter().find(|e| e.event_type == "syn_retry").unwrap();
    let d = first.syn_retry.as_ref().unwrap();
    assert_eq!(d.status, "new", "reported while the capture ran, not at shutdown: {first:?}");
    assert_eq!(d.attempts, 3);
    assert_eq!(d.source_ports, 3);
    assert!(!d.answered);
    let s = events.last().and_then(|e| e.stats.as_ref()).expect("final stats");
    assert!(s.is_final);
    assert_eq!(s.packets, 3, "only the three SYNs crossed the filter: {s:?}");
}
