//! Least privilege and a vanishing interface, end to end (issue 17):
//! `picket live --user` captures on a veth inside a network namespace this
//! test creates, and the kernel's view of the process (`/proc/PID/status`
//! of every thread) shows uid 65534, no capability and no_new_privs while
//! hping3's packets are still captured and detected; the output is reopened
//! on SIGHUP as that user. Started unprivileged with file or ambient
//! capabilities (the README's setcap and systemd recipes) it captures and
//! then clears them. Deleting the interface under a live capture gives one
//! error line, the final stats and exit status 1.
//! Needs root (CI runs as root); without it the lab tests say so and return.

use crate::common;
use common::lab::{Lab, must, sh, snapshot_fw_records, wait_exit, wait_for, wait_until};
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

const NOBODY: u32 = 65534;

/// The `Name:\tvalue` lines of a /proc status file.
fn proc_status(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

/// Checks the process and each of its threads: every uid and gid is
/// 65534, the capability sets are empty (`bounding` too when picket could
/// empty it), no_new_privs is set. Returns the number of threads checked.
fn assert_unprivileged(pid: u32, bounding: bool) -> usize {
    let mut files = vec![std::path::PathBuf::from(format!("/proc/{pid}/status"))];
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    files.extend(tasks.map(|t| t.unwrap().path().join("status")));
    let ids = format!("{NOBODY} {NOBODY} {NOBODY} {NOBODY}");
    for f in &files {
        let s = proc_status(f);
        let who = format!("{}: {s:?}", f.display());
        assert_eq!(s["Uid"], ids, "real, effective, saved and fs uid: {who}");
        assert_eq!(s["Gid"], ids, "{who}");
        assert!(!s["Groups"].split(' ').any(|g| g == "0"), "root's group kept: {who}");
        let mut sets = vec!["CapInh", "CapPrm", "CapEff", "CapAmb"];
        if bounding {
            sets.push("CapBnd");
        }
        for set in sets {
            assert_eq!(s[set], "0000000000000000", "{set}: {who}");
        }
        assert_eq!(s["NoNewPrivs"], "1", "{who}");
    }
    files.len() - 1
}

/// The events of a file, the last of which must be the final stats.
fn final_stats(path: &Path) -> (Vec<Event>, Stats) {
    let events = parse(&std::fs::read_to_string(path).unwrap());
    let last = events.last().unwrap_or_else(|| panic!("{} is empty", path.display()));
    let st = last.stats.clone().unwrap_or_else(|| panic!("the last line is not stats: {last:?}"));
    assert!(st.is_final, "{st:?}");
    (events, st)
}

/// `count` SYNs from namespace b to 192.0.2.10:158, 200 ms apart, each from
/// the next source port (hping3 exits non-zero when nothing answers).
fn syns(lab: &Lab, count: u32) {
    let c = count.to_string();
    sh(&["ip", "netns", "exec", &lab.b, "hping3", "-q", "-S", "-p", "158", "-c", &c, "-i", "u200000", "192.0.2.10"]);
}

/// Creates `path` (root's, mode 0600) holding `text`.
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(path).unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

/// A netfilter LOG line for a SYN to 192.0.2.10:158, stamped now.
fn nf_line(sport: u16) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let ts = picket::output::timefmt::rfc3339_us(now.as_micros() as i64);
    format!(
        "{ts} fw1 kernel: PK-IN-DROP: IN=eth0 OUT=eth1 SRC=192.0.2.99 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 \
         TTL=64 PROTO=TCP SPT={sport} DPT=158 WINDOW=512 RES=0x00 SYN URGP=0\n"
    )
}

/// A directory `uid` owns (for the output picket reopens as that user).
fn dir_for(tag: &str, uid: u32) -> std::path::PathBuf {
    let dir = tempdir(tag);
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    dir
}

fn lab_ready(extra: &[&str]) -> bool {
    let mut tools = vec!["ip", "hping3", "nsenter"];
    tools.extend_from_slice(extra);
    common::lab::lab_ready("this privilege test", &tools)
}

#[test]
fn live_as_nobody_holds_no_privilege_and_still_captures_and_reopens() {
    if !lab_ready(&["iptables"]) {
        return;
    }
    let lab = Lab::up("privs", "u");
    // The DMZ host drops tcp/158 silently: hping3's SYNs are a syn_retry.
    must(&["ip", "netns", "exec", &lab.a, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "158", "-j", "DROP"]);
    let dir = dir_for("privs-user", NOBODY);
    let out = dir.join("events.json");
    // A firewall log only root may read: opened before the drop, and
    // followed as nobody after.
    let log = dir.join("fw.log");
    write_private(&log, "");
    let err = dir.join("stderr");
    let mut child = Command::new("nsenter")
        .args([lab.enter_a().as_str(), bin(), "live", "-i", &lab.va, "--home-net", "192.0.2.0/28"])
        .args(["-o", out.to_str().unwrap(), "--workers", "2", "--user", "nobody"])
        .args(["--fw-log", log.to_str().unwrap()])
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start picket live");
    let said = || std::fs::read_to_string(&err).unwrap_or_default();
    wait_until("the privilege drop", || said().contains("running as nobody"));
    assert!(said().contains("capturing on") && said().contains("running as nobody (uid 65534"), "{}", said());
    // The output was opened as root, before the drop.
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), 0);

    let pid = child.id();
    // Reader, output thread, 2 workers and the aggregators: the drop
    // happened before any of them started (picket says so first), and
    // each inherited it.
    let tasks = || std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0);
    wait_until("the analysis threads", || tasks() >= 5);
    let threads = assert_unprivileged(pid, true);
    assert!(threads >= 5, "{threads} threads");

    syns(&lab, 5);
    // The log picket opened as root is still read; after a rotation the
    // new file is opened as nobody: unreadable, picket says so (once); made
    // readable, its lines are read.
    append(&log, &nf_line(40000));
    append(&log, &nf_line(40001));
    std::fs::rename(&log, dir.join("fw.log.1")).unwrap();
    write_private(&log, &(nf_line(40002) + &nf_line(40003)));
    wait_until("the warning about the unreadable log", || said().contains("fw.log: Permission denied"));
    std::os::unix::fs::chown(&log, Some(NOBODY), None).unwrap();
    let pid_s = pid.to_string();
    wait_until("the four firewall records", || {
        must(&["kill", "-USR1", &pid_s]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        snapshot_fw_records(&out) >= 4
    });
    // logrotate's dance: the new file is created by picket as nobody.
    std::fs::rename(&out, dir.join("events.json.1")).unwrap();
    must(&["kill", "-HUP", &pid.to_string()]);
    wait_until("the output reopened after SIGHUP", || out.exists());
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), NOBODY, "reopened as nobody");
    must(&["kill", "-TERM", &pid.to_string()]);
    let status = wait_exit(&mut child, 10);
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(said().matches("Permission denied").count(), 1, "{}", said());

    let (events, st) = final_stats(&out);
    assert!(st.protocols["tcp"] >= 5, "{st:?}");
    assert_eq!(st.fw_records, 4, "{st:?}");
    let retry = events
        .iter()
        .filter_map(|e| e.syn_retry.as_ref())
        .find(|r| r.status == "final")
        .unwrap_or_else(|| panic!("no final syn_retry: {events:?}"));
    assert_eq!(retry.attempts, 5);
}

#[test]
fn an_unknown_user_fails_before_anything_is_opened() {
    // Looked up first: no root needed, and the interface (which does not
    // exist either) is never tried.
    let r = picket_raw(&["live", "-i", "no-such-if0", "--user", "no-such-user-picket"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("picket: error: --user no-such-user-picket: no such user"), "{}", r.stderr);
    assert!(!r.stderr.contains("no-such-if0"), "{}", r.stderr);
    let r = picket_raw(&["live", "-i", "no-such-if0", "--user", "nobody:no-such-group-picket"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--user nobody:no-such-group-picket: no such group"), "{}", r.stderr);
}

/// The README's two unprivileged setups: `setcap cap_net_raw+ep` on the
/// binary, and systemd's `AmbientCapabilities=CAP_NET_RAW` (what setpriv
/// `--ambient-caps` does). Started as 65534 either way, picket captures,
/// and `--user 65534` (itself) then clears the capability. Naming another
/// user from there fails, naming the user, and captures nothing.
#[test]
fn unprivileged_with_file_or_ambient_capabilities_captures_then_clears_them() {
    if !lab_ready(&["setpriv", "setcap"]) {
        return;
    }
    let lab = Lab::up("privs", "c");
    let dir = dir_for("privs-caps", NOBODY);
    // Copies 65534 can run: one with the file capability, one plain.
    let (filecap, plain) = (dir.join("picket-setcap"), dir.join("picket"));
    std::fs::copy(bin(), &filecap).unwrap();
    std::fs::copy(bin(), &plain).unwrap();
    must(&["setcap", "cap_net_raw+ep", filecap.to_str().unwrap()]);
    let as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let runs: [(&str, Vec<&str>, &Path); 2] =
        [("file", vec![], &filecap), ("ambient", vec!["--inh-caps=+net_raw", "--ambient-caps=+net_raw"], &plain)];
    for (name, caps, exe) in runs {
        let out = dir.join(format!("events-{name}.json"));
        let mut child = Command::new("nsenter")
            .arg(lab.enter_a())
            .args(as_nobody)
            .args(&caps)
            .args([exe.to_str().unwrap(), "live", "-i", &lab.va, "--home-net", "192.0.2.0/28"])
            .args(["-o", out.to_str().unwrap(), "--user", "65534"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start picket live");
        let (seen, stderr) = wait_for(child.stderr.take().unwrap(), &["running as 65534"]);
        assert!(seen.contains("capturing on"), "{name}: {seen}");
        // No CAP_SETPCAP to empty the bounding set with; no_new_privs
        // makes it moot.
        assert_unprivileged(child.id(), false);
        syns(&lab, 3);
        must(&["kill", "-TERM", &child.id().to_string()]);
        let status = wait_exit(&mut child, 10);
        drop(stderr);
        assert!(status.success(), "{name}: exit status {status:?}");
        let (_, st) = final_stats(&out);
        assert!(st.protocols["tcp"] >= 3, "{name}: {st:?}");
    }

    let out = dir.join("events-root.json");
    let r = Command::new("nsenter")
        .arg(lab.enter_a())
        .args(as_nobody)
        .args([filecap.to_str().unwrap(), "live", "-i", &lab.va, "-o", out.to_str().unwrap(), "--user", "root"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_ne!(r.status.code(), Some(0), "{stderr}");
    assert!(r.status.code().is_some(), "killed, not exited: {stderr}");
    assert!(stderr.contains("picket: error: --user root: switching users needs root"), "{stderr}");
    assert!(!stderr.contains("running as"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap_or_default(), "", "nothing written");
}

#[test]
fn a_deleted_interface_ends_the_capture_with_one_error_line_stats_and_status_1() {
    if !lab_ready(&[]) {
        return;
    }
    let lab = Lab::up("privs", "v");
    let dir = tempdir("privs-vanish");
    let out = dir.join("events.json");
    let mut child = Command::new("nsenter")
        .args([lab.enter_a().as_str(), bin(), "live", "-i", &lab.va, "--home-net", "192.0.2.0/28"])
        .args(["-o", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start picket live");
    let (seen, stderr) = wait_for(child.stderr.take().unwrap(), &["capturing on"]);
    assert!(seen.contains("capturing on"), "{seen}");
    syns(&lab, 3);
    must(&["ip", "-n", &lab.a, "link", "del", &lab.va]);
    let status = wait_exit(&mut child, 10);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut { stderr }, &mut rest).unwrap();
    assert_eq!(status.code(), Some(1), "exit status {status:?}; stderr: {seen}{rest}");
    let errors: Vec<&str> = rest.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {rest}");
    let want = format!("picket: error: interface {}: libpcap error: ", lab.va);
    assert!(errors[0].starts_with(&want), "names the interface and libpcap's message: {}", errors[0]);
    assert!(errors[0].len() > want.len() + "; capture ended".len(), "libpcap's words are there: {}", errors[0]);
    let (_, st) = final_stats(&out);
    assert!(st.protocols["tcp"] >= 3, "the packets before the deletion are counted: {st:?}");
}
