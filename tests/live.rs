//! Live capture end to end: picket listens on a veth inside a network
//! namespace, hping3 sends real traffic from a second namespace, then picket
//! gets SIGTERM. The detections, the stats and the shutdown drain are checked.
//! Needs root (CI runs as root); without it the test says so and returns.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Lab {
    a: String,
    b: String,
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(sh(args), "command failed: {args:?}");
}

impl Lab {
    fn up(tag: &str) -> Lab {
        let a = format!("pkl-{tag}-a");
        let b = format!("pkl-{tag}-b");
        let _ = sh(&["ip", "netns", "del", &a]);
        let _ = sh(&["ip", "netns", "del", &b]);
        must(&["ip", "netns", "add", &a]);
        must(&["ip", "netns", "add", &b]);
        let (va, vb) = (format!("pk{tag}a"), format!("pk{tag}b"));
        must(&["ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b]);
        must(&["ip", "-n", &a, "addr", "add", "192.0.2.10/24", "dev", &va]);
        must(&["ip", "-n", &b, "addr", "add", "192.0.2.99/24", "dev", &vb]);
        for (ns, dev) in [(&a, &va), (&b, &vb)] {
            must(&["ip", "-n", ns, "link", "set", dev, "up"]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // The DMZ host silently drops tcp/158: the retry client's SYNs go unanswered.
        must(&["ip", "netns", "exec", &a, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "158", "-j", "DROP"]);
        Lab { a, b }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.a]);
        let _ = sh(&["ip", "netns", "del", &self.b]);
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn tools_present() -> bool {
    ["ip", "hping3", "iptables"].iter().all(|t| sh(&["sh", "-c", &format!("command -v {t}")]))
}

#[test]
fn live_capture_detects_retries_counts_everything_and_drains_on_sigterm() {
    if !is_root() || !tools_present() {
        println!("skipping: the live test needs root, iproute2, hping3 and iptables (scripts/test installs them)");
        return;
    }
    let lab = Lab::up("t1");
    let dir = tempdir("live");
    let out = dir.join("events.json");
    let dev = "pkt1a";
    // nsenter execs picket itself (ip netns exec would fork), so the SIGTERM
    // below reaches picket.
    let netns = format!("--net=/var/run/netns/{}", lab.a);
    let mut child = Command::new("nsenter")
        .args([netns.as_str(), bin(), "live", "-i", dev, "--home-net", "192.0.2.0/28"])
        .args(["-o", out.to_str().unwrap(), "--workers", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start picket live");
    // Wait for the capture to be open (picket says so on stderr).
    let mut stderr = child.stderr.take().unwrap();
    let ready = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let mut seen = String::new();
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("capturing on") {
                break;
            }
        }
        (seen, stderr)
    });
    let (seen, stderr) = ready.join().unwrap();
    assert!(seen.contains("capturing on"), "picket did not start: {seen}");

    // 5 SYNs 200 ms apart, each from the next source port (hping3 increments it).
    // hping3 exits non-zero when nothing answers, which is the point here.
    sh(&["ip", "netns", "exec", &lab.b, "hping3", "-q", "-S", "-p", "158", "-c", "5", "-i", "u200000", "192.0.2.10"]);
    // SIGUSR1: a stats snapshot now. Then logrotate's dance: move the file
    // away and SIGHUP; later events must land in a new file at the old path.
    let pid = child.id().to_string();
    must(&["kill", "-USR1", &pid]);
    std::thread::sleep(Duration::from_millis(400));
    let rotated = dir.join("events.json.1");
    std::fs::rename(&out, &rotated).unwrap();
    must(&["kill", "-HUP", &pid]);
    std::thread::sleep(Duration::from_millis(400));
    // A burst of 3000 UDP datagrams, sent as fast as hping3 can, right before SIGTERM:
    // everything the kernel captured must still be counted after shutdown.
    sh(&["ip", "netns", "exec", &lab.b, "hping3", "-q", "-2", "-p", "9", "-c", "3000", "-i", "u50", "192.0.2.10"]);
    let start = Instant::now();
    must(&["kill", "-TERM", &child.id().to_string()]);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "picket did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stderr);
    assert!(status.success(), "exit status {status:?}");

    let before = parse(&std::fs::read_to_string(&rotated).unwrap());
    let snapshot: Vec<_> = before.iter().filter_map(|e| e.stats.as_ref()).collect();
    assert_eq!(snapshot.len(), 1, "one SIGUSR1 snapshot before the rotation: {before:?}");
    assert!(!snapshot[0].is_final);
    assert!(snapshot[0].protocols["tcp"] >= 5, "{:?}", snapshot[0]);
    let events = parse(&std::fs::read_to_string(&out).unwrap());
    assert!(events.iter().all(|e| e.stats.as_ref().is_none_or(|s| s.is_final)), "snapshot written after rotation");
    let retries: Vec<_> = events.iter().filter_map(|e| e.syn_retry.as_ref()).filter(|d| d.status == "final").collect();
    assert_eq!(retries.len(), 1, "{events:?}");
    let d = retries[0];
    assert_eq!(d.attempts, 5);
    assert_eq!(d.source_ports, 5);
    assert_eq!(d.last_source_port.wrapping_sub(d.first_source_port), 4);
    assert!(!d.answered);
    assert_eq!(d.end_reason.as_deref(), Some("shutdown"));
    assert_eq!(d.direction.as_deref(), Some("inbound"));

    let last = events.last().unwrap();
    assert_eq!(last.event_type, "stats");
    let s = last.stats.as_ref().unwrap();
    assert!(s.is_final);
    assert_eq!(s.drops.channel, 0);
    assert_eq!(s.drops.kernel, 0);
    // Every UDP datagram hping3 sent was counted (plus nothing else is UDP here).
    assert_eq!(s.protocols["udp"], 3000, "{s:?}");
    assert!(s.protocols["tcp"] >= 5);
    assert_eq!(s.pcap["received"], s.packets, "libpcap received vs picket counted");
}
