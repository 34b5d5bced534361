//! Syslog over TCP and TLS end to end (issue 17), with real clients, in a
//! network namespace of the test's own (`tcp-syslog-PID`, loopback only):
//! `picket live -i lo` listens on `tcp://` and `tls://` (a client
//! certificate required), and
//! - util-linux `logger --tcp --octet-count` sends a netfilter record;
//! - a private rsyslogd (its own config, pid file and work dir, nothing of
//!   the system's rsyslog) takes records on `imudp` from `logger` and
//!   forwards each with `omfwd` over TCP (newline framing) and over TLS
//!   (the ossl stream driver, octet counting, with a client certificate);
//! - `openssl s_client` without a client certificate fails the handshake;
//! - a sender outside `--syslog-allow` is refused at accept;
//! - 40 connections held open from one address hit the per-sender cap, and
//!   `logger` is still served.
//!
//! The certificates are made by `openssl` at test time (no key is
//! committed). Needs root (CI runs as root); without it, or without the
//! tools (scripts/test installs them), the test says so and returns.

use crate::common;
use common::lab::{lab_ready, must, sh, wait_exit, wait_for, wait_until};
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TCP: &str = "5601";
const TLS: &str = "5602";
const RELAY: &str = "5603";

/// The namespace, and the processes started in it; all gone on drop.
struct Ns {
    name: String,
    children: Vec<Child>,
}

impl Ns {
    fn up() -> Ns {
        let name = format!("tcp-syslog-{}", std::process::id() % 100_000);
        let _ = sh(&["ip", "netns", "del", &name]);
        must(&["ip", "netns", "add", &name]);
        must(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Ns { name, children: Vec::new() }
    }

    /// A command run inside the namespace (nsenter execs it: its pid is the command's).
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{}", self.name)).arg(prog);
        c
    }

    fn run(&self, prog: &str, args: &[&str]) -> bool {
        self.cmd(prog).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// A netfilter LOG message as the kernel's facility gives it to syslog.
fn nf_msg(sport: u16) -> String {
    format!(
        "PK-IN-DROP: IN=eth0 OUT=eth1 SRC=198.51.100.7 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=64 \
         ID=1 PROTO=TCP SPT={sport} DPT=158 WINDOW=512 RES=0x00 SYN URGP=0"
    )
}

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl").current_dir(dir).args(args).stderr(Stdio::null()).status().expect("openssl");
    assert!(st.success(), "openssl {args:?}");
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it.
fn make_certs(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=picket-test-ca"];
    openssl(dir, &[&["req", "-x509"][..], &ec, &ca].concat());
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        ("client", "subjectAltName=DNS:fw1.test\nextendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let (key, csr, pem, extf) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        let subj = format!("/CN=picket-test-{name}");
        openssl(dir, &[&["req", "-new"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &subj]].concat());
        openssl(
            dir,
            &["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", &pem]
                .iter()
                .chain(&["-days", "2", "-extfile", &extf])
                .copied()
                .collect::<Vec<_>>(),
        );
    }
}

/// The last stats object picket wrote.
fn last_stats(out: &Path) -> Value {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("stats").cloned())
        .unwrap_or(Value::Null)
}

/// Asks picket for a stats snapshot (SIGUSR1) until `ok` holds of it.
fn wait_stats(what: &str, pid: u32, out: &Path, ok: impl Fn(&Value) -> bool) {
    wait_until(what, || {
        must(&["kill", "-USR1", &pid.to_string()]);
        std::thread::sleep(Duration::from_millis(300));
        ok(&last_stats(out))
    });
}

fn tcp_count(st: &Value, key: &str) -> u64 {
    st["fw_live"]["syslog_tcp"][key].as_u64().unwrap_or(0)
}

/// util-linux logger, octet counting over TCP to picket.
fn logger_tcp(ns: &Ns, sport: u16) -> bool {
    ns.run(
        "logger",
        &["--tcp", "--octet-count", "--server", "127.0.0.1", "--port", TCP, "-t", "kernel", &nf_msg(sport)],
    )
}

#[test]
fn syslog_over_tcp_and_tls_from_logger_and_rsyslog() {
    if !lab_ready("syslog over TCP and TLS", &["ip", "nsenter", "logger", "rsyslogd", "openssl", "python3"]) {
        return;
    }
    let dir = tempdir("syslog-tcp");
    make_certs(&dir);
    let mut ns = Ns::up();
    let out = dir.join("events.json");
    let p = |f: &str| dir.join(f).display().to_string();
    let (tcp, tls) = (format!("tcp://127.0.0.1:{TCP}"), format!("tls://127.0.0.1:{TLS}"));
    let mut picket = ns
        .cmd(bin())
        .args(["live", "-i", "lo", "--home-net", "192.0.2.0/24", "--workers", "1", "-o", out.to_str().unwrap()])
        .args(["--syslog-listen", &tcp, "--syslog-listen", &tls])
        .args(["--syslog-allow", "127.0.0.1,127.0.0.3"])
        .args(["--syslog-tls-cert", &p("server.pem"), "--syslog-tls-key", &p("server.key")])
        .args(["--syslog-tls-client-ca", &p("ca.pem")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start picket live");
    let pid = picket.id();
    let (seen, _stderr) = wait_for(picket.stderr.take().unwrap(), &["capturing on", "receiving syslog on tls"]);
    assert!(
        seen.contains(&format!("receiving syslog on tcp 127.0.0.1:{TCP}"))
            && seen.contains(&format!("receiving syslog on tls 127.0.0.1:{TLS}")),
        "{seen}"
    );
    ns.children.push(picket);

    // 1. logger, octet counting over TCP.
    assert!(logger_tcp(&ns, 40_000), "logger --tcp");
    wait_stats("logger's record", pid, &out, |s| s["fw_records"] == 1);

    // 2. rsyslog: imudp in, omfwd out over TCP and over TLS (ossl, client certificate).
    let work = dir.join("rsyslog");
    std::fs::create_dir_all(&work).unwrap();
    let conf = format!(
        r#"global(workDirectory="{work}" maxMessageSize="8k"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{RELAY}")
if $programname == "kernel" then {{
  action(type="omfwd" target="127.0.0.1" port="{TCP}" protocol="tcp")
  action(type="omfwd" target="127.0.0.1" port="{TLS}" protocol="tcp" TCP_Framing="octet-counted"
         StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid")
}}
"#,
        work = work.display(),
        ca = p("ca.pem"),
        cert = p("client.pem"),
        key = p("client.key"),
    );
    std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
    let rsyslog = ns
        .cmd("rsyslogd")
        .args(["-n", "-f", &p("rsyslog.conf"), "-i", &p("rsyslog.pid")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    ns.children.push(rsyslog);
    wait_until("rsyslog's imudp", || ns.run("sh", &["-c", &format!("ss -Hlun 'sport = :{RELAY}' | grep -q .")]));
    for sport in 40_001..40_004 {
        assert!(ns.run("logger", &["--udp", "--server", "127.0.0.1", "--port", RELAY, "-t", "kernel", &nf_msg(sport)]));
    }
    wait_stats("rsyslog's records over TCP and TLS", pid, &out, |s| s["fw_records"] == 7);

    // 3. A TLS client without a certificate: the handshake fails, nothing is read.
    let mut s_client = ns
        .cmd("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{TLS}"), "-CAfile", &p("ca.pem")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = writeln!(s_client.stdin.as_mut().unwrap(), "<4>Dec  7 10:00:00 fw1 kernel: {}", nf_msg(41_000));
    wait_stats("the failed handshake", pid, &out, |s| tcp_count(s, "handshake_failed") >= 1);
    let _ = s_client.kill();
    let _ = s_client.wait();

    // 4. A sender outside --syslog-allow (127.0.0.9): refused at accept.
    let py =
        |code: &str| ns.cmd("python3").args(["-c", code]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let forged = format!(
        "import socket\ns=socket.socket()\ns.bind(('127.0.0.9',0))\ns.connect(('127.0.0.1',{TCP}))\n\
         s.sendall(b'<4>Dec  7 10:00:00 fw1 kernel: {}\\n')\nprint('sent', flush=True)",
        nf_msg(42_000)
    );
    let mut forger = py(&forged);
    let _ = forger.wait();
    wait_stats("the refusal", pid, &out, |s| tcp_count(s, "refused") == 1);

    // 5. 40 connections held open from 127.0.0.3 (allowed): 8 taken, 32 over
    // the per-sender cap; logger from 127.0.0.1 is still served meanwhile.
    let flood = format!(
        "import socket,sys\ncs=[]\nfor i in range(40):\n s=socket.socket(); s.bind(('127.0.0.3',0)); \
         s.connect(('127.0.0.1',{TCP})); cs.append(s)\nprint('open', flush=True)\nsys.stdin.read()"
    );
    let mut flooder = py(&flood);
    let mut line = String::new();
    BufReader::new(flooder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "open");
    wait_stats("the connection flood", pid, &out, |s| tcp_count(s, "over_cap") == 32);
    assert!(logger_tcp(&ns, 40_010), "logger --tcp during the flood");
    wait_stats("logger's record during the flood", pid, &out, |s| s["fw_records"] == 8);
    drop(flooder.stdin.take());
    let _ = flooder.wait();

    must(&["kill", "-TERM", &pid.to_string()]);
    let status = wait_exit(&mut ns.children[0], 15);
    assert!(status.success(), "exit status {status:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let st = events.iter().rev().find_map(|e| e.get("stats")).expect("the final stats");
    assert_eq!(st["fw_records"], 8, "{st}");
    let t = &st["fw_live"]["syslog_tcp"];
    assert_eq!(
        (t["refused"].as_u64(), t["over_cap"].as_u64(), t["bad_frames"].as_u64()),
        (Some(1), Some(32), Some(0)),
        "{t}"
    );
    assert!(t["handshake_failed"].as_u64() >= Some(1), "{t}");
    // logger twice, rsyslog's two connections, s_client, 8 of the flood's.
    assert!(t["accepted"].as_u64() >= Some(13), "{t}");
    assert!(t["frames"].as_u64() >= Some(8) && t["bytes"].as_u64() > Some(8 * 150), "{t}");
    // The final fw_correlation names each channel and sender, with its records.
    let fc = events.iter().rev().find_map(|e| e.get("fw_correlation")).expect("an fw_correlation event");
    assert_eq!(fc["final"], true);
    let records = |channel: &str| -> u64 {
        let files = fc["files"].as_array().expect("files");
        files
            .iter()
            .filter(|f| f["channel"] == channel && f["sender"] == "127.0.0.1")
            .map(|f| f["records"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(records("tcp"), 5, "logger twice and rsyslog's three: {fc}");
    assert_eq!(records("tls"), 3, "rsyslog's three over TLS: {fc}");
    assert_eq!(fc["records"], 8, "{fc}");
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
