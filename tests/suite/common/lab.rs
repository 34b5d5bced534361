//! A two-namespace lab for live tests: network namespaces `a` (picket's
//! side, 192.0.2.10 on `va`) and `b` (the sender, 192.0.2.99 on `vb`)
//! joined by a veth pair, torn down on drop. Names carry a prefix and the
//! test's process id, so parallel checkouts do not meet. Needs root.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Lab {
    pub a: String,
    pub b: String,
    pub va: String,
}

/// Runs a command quietly; true when it succeeded.
pub fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn must(args: &[&str]) {
    assert!(sh(args), "command failed: {args:?}");
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether a test that needs root and `tools` (which `scripts/test`
/// installs; CI runs as root) can run here. When it cannot, the test fails
/// and says what is missing: a lab test that checks nothing must not pass.
/// With `PICKET_SKIP_LAB=1` it says on stderr that it skipped (past the
/// harness's capture, so it shows) and returns false.
pub fn lab_ready(what: &str, tools: &[&str]) -> bool {
    let root = is_root();
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(&[t])).collect();
    if root && missing.is_empty() {
        return true;
    }
    let need = format!(
        "{what} needs root{}{} (scripts/test installs the tools; CI runs as root)",
        if root { "" } else { ", which this user is not" },
        if missing.is_empty() { String::new() } else { format!(", and {missing:?}, missing here") }
    );
    skip_or_fail(&need)
}

/// A lab test that cannot run: false (skip) with `PICKET_SKIP_LAB=1`,
/// saying so on stderr past the harness's capture; otherwise it fails,
/// saying what it `need`s.
pub fn skip_or_fail(need: &str) -> bool {
    if std::env::var_os("PICKET_SKIP_LAB").is_some_and(|v| v == "1") {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped (PICKET_SKIP_LAB=1): {need}");
        return false;
    }
    panic!("{need}; set PICKET_SKIP_LAB=1 to skip it")
}

/// True when every command in `tools` is on the PATH.
pub fn have(tools: &[&str]) -> bool {
    tools.iter().all(|t| sh(&["sh", "-c", &format!("command -v {t}")]))
}

impl Lab {
    /// `prefix` is at most 5 bytes, `tag` at most 2 (interface names
    /// hold 15 bytes).
    pub fn up(prefix: &str, tag: &str) -> Lab {
        let id = std::process::id() % 100_000;
        let a = format!("{prefix}-{tag}-{id}-a");
        let b = format!("{prefix}-{tag}-{id}-b");
        let _ = sh(&["ip", "netns", "del", &a]);
        let _ = sh(&["ip", "netns", "del", &b]);
        must(&["ip", "netns", "add", &a]);
        must(&["ip", "netns", "add", &b]);
        let p = &prefix[..prefix.len().min(5)];
        let (va, vb) = (format!("{p}{tag}a{id}"), format!("{p}{tag}b{id}"));
        must(&["ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b]);
        must(&["ip", "-n", &a, "addr", "add", "192.0.2.10/24", "dev", &va]);
        must(&["ip", "-n", &b, "addr", "add", "192.0.2.99/24", "dev", &vb]);
        for (ns, dev) in [(&a, &va), (&b, &vb)] {
            must(&["ip", "-n", ns, "link", "set", dev, "up"]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Lab { a, b, va }
    }

    /// Namespace `a` silently drops TCP to `port` (a host behind a
    /// dropping firewall: SYNs go unanswered).
    pub fn drop_tcp(&self, port: u16) {
        let port = port.to_string();
        must(&["ip", "netns", "exec", &self.a, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"]);
    }

    /// `nsenter` into namespace `a` (it execs the program, so the child's
    /// pid is the program's own).
    pub fn enter_a(&self) -> String {
        format!("--net=/var/run/netns/{}", self.a)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.a]);
        let _ = sh(&["ip", "netns", "del", &self.b]);
    }
}

/// Polls `done` every 50 ms for up to 20 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `secs` for the child to exit.
pub fn wait_exit(child: &mut Child, secs: u64) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(secs), "picket did not exit within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the child's stderr until every one of `marks` was said (or the
/// pipe closed); returns what was read and the pipe, to keep it open.
pub fn wait_for(
    stderr: std::process::ChildStderr,
    marks: &'static [&'static str],
) -> (String, std::process::ChildStderr) {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stderr = stderr;
        let mut buf = [0u8; 4096];
        let mut seen = String::new();
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if marks.iter().all(|m| seen.contains(m)) && seen.ends_with('\n') {
                break;
            }
        }
        (seen, stderr)
    })
    .join()
    .unwrap()
}

/// The `fw_records` of the latest stats snapshot in `path` (the last line
/// may be half written: only whole lines that parse count).
pub fn snapshot_fw_records(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<super::Event>(l).ok())
        .filter_map(|e| e.stats.map(|s| s.fw_records))
        .max()
        .unwrap_or(0)
}

/// Appends `text` to `path` (a log a firewall is writing).
pub fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
