//! Fleet outputs (issue 18): `-o` fans every event out to each target.
//! Redis is a real `redis-server` the test starts on a free loopback port
//! (and kills, and starts again, mid-run); syslog:// is a UDP socket bound
//! here, its RFC 5424 header parsed; unix: is a datagram socket bound here.
//! Every target must carry exactly the lines the file output carries.

use crate::common;
use common::lab::{have, lab_ready, sh, wait_exit, wait_for, wait_until};
use common::*;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lines of a file output.
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

/// The final stats line's `stats.output.sinks[]` entry for `target`.
fn sink_stats(stats_line: &str, target: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(stats_line).unwrap();
    assert_eq!(v["event_type"], "stats", "{stats_line}");
    v["stats"]["output"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == target)
        .unwrap_or_else(|| panic!("no sink {target} in {stats_line}"))
        .clone()
}

/// A free loopback TCP port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` on a port (inside a namespace when `ns` is given),
/// killed when dropped.
struct Redis {
    child: Child,
    port: u16,
    ns: Option<String>,
}

impl Redis {
    fn start(port: u16, ns: Option<&str>) -> Redis {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-server"]);
                c
            }
            None => Command::new("redis-server"),
        };
        let child = cmd
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let r = Redis { child, port, ns: ns.map(str::to_string) };
        wait_until("redis-server to answer", || r.cli(&["PING"]).trim() == "PONG");
        r
    }

    /// `redis-cli ARGS` against this server; its raw output.
    fn cli(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-cli"]);
                c
            }
            None => Command::new("redis-cli"),
        };
        let o = cmd.args(["-h", "127.0.0.1", "-p", &port, "--raw"]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The list's items (each event is one line of JSON).
    fn list(&self, key: &str) -> Vec<String> {
        self.cli(&["LRANGE", key, "0", "-1"]).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    fn llen(&self, key: &str) -> usize {
        self.cli(&["LLEN", key]).trim().parse().unwrap_or(0)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `tools` present (scripts/lib/deps.sh installs them), or the test fails
/// (`PICKET_SKIP_LAB=1` skips it instead, and says so).
fn need(tools: &[&str]) -> bool {
    if have(tools) {
        return true;
    }
    common::lab::skip_or_fail(&format!("this test needs {tools:?} (scripts/test installs them)"))
}

#[test]
fn redis_gets_every_event_once_and_in_order_as_the_file_does() {
    if !need(&["redis-server", "redis-cli"]) {
        return;
    }
    let redis = Redis::start(free_port(), None);
    let dir = tempdir("out-redis");
    let file = dir.join("eve.json");
    let target = format!("redis://127.0.0.1:{}/picket", redis.port);
    let run = Command::new(bin())
        .args(["replay", "--home-net", "192.0.2.0/24", "-o", file.to_str().unwrap(), "-o", &target])
        .arg(pcap("anomalies.pcap"))
        .arg(pcap("nmap_syn_scan.pcap"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let want = lines(&file);
    assert!(want.len() > 10, "the replay made events: {}", want.len());
    assert_eq!(redis.list("picket"), want, "redis holds the file's lines, once each, in order");
    let s = sink_stats(want.last().unwrap(), &target);
    assert_eq!(s["events_dropped"], 0, "{s}");
}

#[test]
fn redis_publish_sends_each_event_on_the_channel() {
    if !need(&["redis-server", "redis-cli"]) {
        return;
    }
    let redis = Redis::start(free_port(), None);
    // A subscriber (the redis crate), reading until the final stats line.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let got = std::thread::spawn(move || {
        let mut con = client.get_connection().unwrap();
        let mut ps = con.as_pubsub();
        ps.subscribe("events").unwrap();
        ps.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        ready_tx.send(()).unwrap();
        let mut msgs = Vec::new();
        while let Ok(m) = ps.get_message() {
            let l: String = m.get_payload().unwrap();
            let last = l.contains("\"final\":true");
            msgs.push(l);
            if last {
                break;
            }
        }
        msgs
    });
    ready.recv().unwrap();
    let dir = tempdir("out-pub");
    let file = dir.join("eve.json");
    let target = format!("redis://127.0.0.1:{}/events?publish", redis.port);
    let run = Command::new(bin())
        .args(["replay", "--home-net", "192.0.2.0/24", "-o", file.to_str().unwrap(), "-o", &target])
        .arg(pcap("anomalies.pcap"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let msgs = got.join().unwrap();
    assert_eq!(msgs, lines(&file));
}

/// Live in a namespace, a stats snapshot (SIGUSR1) is an event on demand.
/// Redis is killed after three, three more are made while it is away, it
/// comes back empty (no persistence), and two more follow: the list then
/// holds every event made since, in order, and what it lacks is what the
/// stats say was lost.
#[test]
fn redis_killed_and_restarted_mid_run_loses_only_what_the_stats_say() {
    if !lab_ready("the redis restart test", &["redis-server", "redis-cli", "ip", "nsenter"]) {
        println!("skipping: the live redis test needs root");
        return;
    }
    let ns = format!("outputs-rd-{}", std::process::id() % 100_000);
    let _ = sh(&["ip", "netns", "del", &ns]);
    assert!(sh(&["ip", "netns", "add", &ns]));
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = sh(&["ip", "netns", "del", &self.0]);
        }
    }
    let _ns = Ns(ns.clone());
    assert!(sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]));
    let port = 6379;
    let mut redis = Redis::start(port, Some(&ns));
    let dir = tempdir("out-redis-live");
    let file = dir.join("eve.json");
    let target = format!("redis://127.0.0.1:{port}/picket");
    let netns = format!("--net=/var/run/netns/{ns}");
    let mut child = Command::new("nsenter")
        .args([netns.as_str(), bin(), "live", "-i", "lo", "-f", "not tcp port 6379"])
        .args(["-o", file.to_str().unwrap(), "-o", &target])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (said, stderr) = wait_for(child.stderr.take().unwrap(), &["capturing on"]);
    let usr1 = |n: usize| {
        for _ in 0..n {
            assert!(sh(&["kill", "-USR1", &pid]));
            std::thread::sleep(Duration::from_millis(150));
        }
    };
    usr1(3);
    wait_until("three snapshots in redis", || redis.llen("picket") == 3);
    let before = redis.list("picket");
    // Away: three more snapshots wait in picket's queue.
    redis.kill();
    usr1(3);
    std::thread::sleep(Duration::from_millis(500));
    let mut redis = Redis::start(port, Some(&ns));
    let start = Instant::now();
    while redis.llen("picket") < 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "the events made while redis was away never came");
        std::thread::sleep(Duration::from_millis(100));
    }
    usr1(2);
    assert!(sh(&["kill", "-TERM", &pid]));
    let status = wait_exit(&mut child, 30);
    drop(stderr);
    assert!(status.success(), "{said}");
    let after = redis.list("picket");
    redis.kill();
    let want = lines(&file);
    // The file has the 8 snapshots and the final stats.
    assert_eq!(want.iter().filter(|l| l.contains(r#""event_type":"stats""#)).count(), 9, "{want:?}");
    let got: Vec<String> = before.iter().chain(after.iter()).cloned().collect();
    let s = sink_stats(want.last().unwrap(), &target);
    let dropped = s["events_dropped"].as_u64().unwrap() as usize;
    assert!(s["write_errors"].as_u64().unwrap() >= 1, "the broken connection is counted: {s}");
    assert!(s["reconnects"].as_u64().unwrap() >= 1, "{s}");
    // What arrived is the file's lines in order, each once, less exactly
    // what the stats count as lost.
    assert_eq!(got.len() + dropped, want.len(), "arrived {got:?}\nstats {s}");
    let mut it = want.iter();
    for g in &got {
        assert!(it.any(|w| w == g), "{g} arrived out of order or twice");
    }
    // With a queue of thousands, nothing had to be lost here.
    assert_eq!(dropped, 0, "{s}");
}

/// A redis nobody listens on: the replay is not held up, the file gets
/// every event, and every one is counted lost for redis.
#[test]
fn a_dead_redis_never_stalls_the_run_and_counts_what_it_lost() {
    let dir = tempdir("out-dead");
    let file = dir.join("eve.json");
    let target = format!("redis://127.0.0.1:{}/picket", free_port());
    let start = Instant::now();
    let run = Command::new(bin())
        .args(["replay", "--home-net", "192.0.2.0/24", "-o", file.to_str().unwrap(), "-o", &target])
        .arg(pcap("anomalies.pcap"))
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a target that got nothing fails the run: {stderr}");
    let want = lines(&file);
    assert!(want.len() > 5);
    // The final stats on stderr count every event of the file lost for redis.
    let last = stderr.lines().rfind(|l| l.starts_with('{')).expect("the final stats on stderr");
    let s = sink_stats(last, &target);
    assert_eq!(s["events_dropped"].as_u64().unwrap() as usize, want.len(), "{s}");
    assert_eq!(s["events_written"], 0);
    assert!(stderr.contains(&format!("{target}:")), "noted: {stderr}");
}

#[test]
fn syslog_udp_sends_one_rfc5424_message_per_event() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let target = format!("syslog://127.0.0.1:{}", sock.local_addr().unwrap().port());
    let dir = tempdir("out-syslog");
    let file = dir.join("eve.json");
    let mut child = Command::new(bin())
        .args(["replay", "--home-net", "192.0.2.0/24", "-o", file.to_str().unwrap(), "-o", &target])
        .arg(pcap("anomalies.pcap"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut msgs = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        let m = String::from_utf8(buf[..n].to_vec()).unwrap();
        let last = m.contains("\"final\":true");
        msgs.push(m);
        if last {
            break;
        }
    }
    assert!(wait_exit(&mut child, 30).success());
    let want = lines(&file);
    assert_eq!(msgs.len(), want.len());
    for (m, w) in msgs.iter().zip(&want) {
        // <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG
        let mut f = m.splitn(8, ' ');
        let (head, ts, host, app, procid, msgid, sd, msg) = (
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
        );
        let v: serde_json::Value = serde_json::from_str(msg).unwrap();
        let kind = v["event_type"].as_str().unwrap();
        // local0, notice for events and info for stats.
        let pri = if kind == "stats" { "<134>1" } else { "<133>1" };
        assert_eq!(head, pri, "{m}");
        assert!(ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert!(!host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()), "{host}");
        assert_eq!((app, procid, msgid, sd), ("picket", pid.as_str(), kind, "-"), "{m}");
        assert_eq!(msg, w, "the message is the file's line");
    }
}

#[test]
fn unix_datagrams_stdout_and_a_file_get_identical_lines() {
    let dir = tempdir("out-unix");
    let path = dir.join("reader.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let file = dir.join("eve.json");
    let unix = format!("unix:{}", path.display());
    let mut child = Command::new(bin())
        .args(["replay", "--home-net", "192.0.2.0/24", "-o", "-", "-o", file.to_str().unwrap(), "-o", &unix])
        .arg(pcap("anomalies.pcap"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let mut grams = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        let m = String::from_utf8(buf[..n].to_vec()).unwrap();
        assert!(m.ends_with('\n') && m.matches('\n').count() == 1, "one line per datagram: {m:?}");
        let last = m.contains("\"final\":true");
        grams.push(m.trim_end().to_string());
        if last {
            break;
        }
    }
    assert!(wait_exit(&mut child, 30).success());
    let stdout: Vec<String> = out.join().unwrap().lines().map(str::to_string).collect();
    let want = lines(&file);
    assert!(want.len() > 5);
    assert_eq!(stdout, want, "stdout and the file");
    assert_eq!(grams, want, "the unix socket and the file");
    for t in ["stdout", file.to_str().unwrap(), unix.as_str()] {
        let s = sink_stats(want.last().unwrap(), t);
        assert_eq!(s["events_dropped"], 0, "{s}");
    }
}
