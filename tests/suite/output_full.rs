//! A full disk (issue 17): the output is a small tmpfs the test mounts
//! (CI runs as root; without root the tests say so and return). A line is
//! written whole or not at all; a replay whose output fails still gives
//! its final stats on stderr and exits non-zero; live, capture goes on,
//! events wait, and writing resumes once space returns.

use crate::common;
use common::lab::{lab_ready, sh};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs of `pages` 4 KiB pages, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(tag: &str, pages: u32) -> Tmpfs {
        let dir = tempdir(tag).join("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let size = format!("size={}k", pages * 4);
        assert!(sh(&["mount", "-t", "tmpfs", "-o", &size, "tmpfs", dir.to_str().unwrap()]), "mount tmpfs");
        Tmpfs(dir)
    }

    /// Fills every free page but `free`, with a file `filler`.
    fn fill(&self, free: u64) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let page = vec![0u8; 4096];
        while f.write_all(&page).is_ok() {}
        drop(f);
        let len = std::fs::metadata(self.0.join("filler")).unwrap().len();
        let keep = (len / 4096).saturating_sub(free) * 4096;
        std::fs::OpenOptions::new().write(true).open(self.0.join("filler")).unwrap().set_len(keep).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = sh(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

/// Every line of `path` is a whole JSON object and the file ends with a
/// newline (or is empty): no torn line for the next append to glue onto.
fn whole_lines(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line: {:?}", &text[text.len().saturating_sub(80)..]);
    parse(&text)
}

#[test]
fn a_replay_onto_a_full_disk_leaves_whole_lines_and_its_stats_on_stderr() {
    if !lab_ready("mounting a tmpfs", &["mount", "umount"]) {
        return;
    }
    let fs = Tmpfs::mount("out-replay", 16);
    // One page left: the 16 events of anomalies.pcap (15 KB) do not fit,
    // and the write stops part way through a line.
    fs.fill(1);
    let out = fs.0.join("events.json");
    let o = Command::new(bin())
        .args(["replay", "--home-net", "192.0.2.0/24", "-o", out.to_str().unwrap()])
        .arg(pcap("anomalies.pcap"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let written = whole_lines(&out);
    assert!(!written.is_empty() && written.len() < 16, "some events fit, not all: {}", written.len());
    assert!(std::fs::metadata(&out).unwrap().len() <= 4096);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // The final stats, on stderr as one JSON line.
    let stats = stderr.lines().find(|l| l.starts_with('{')).expect("the final stats on stderr");
    let ev: Event = serde_json::from_str(stats).unwrap();
    let s = ev.stats.expect("a stats event");
    assert!(s.is_final);
    assert!(s.packets > 0);
    let v: serde_json::Value = serde_json::from_str(stats).unwrap();
    let output = &v["stats"]["output"];
    assert!(output["write_errors"].as_u64().unwrap() >= 1, "{output}");
    // Every event not in the file is counted (`events` counts those made,
    // the stats line on stderr aside).
    let events: u64 = s.events.values().sum();
    assert!(events as usize > written.len());
    assert_eq!(output["events_dropped"].as_u64().unwrap(), events - written.len() as u64, "{output}");
}

#[test]
fn live_holds_events_while_the_disk_is_full_and_writes_them_once_space_returns() {
    if !lab_ready("the live output test", &["ip", "nsenter", "mount", "umount"]) {
        return;
    }
    let ns = format!("clock-out-{}", std::process::id() % 100_000);
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
    let fs = Tmpfs::mount("out-live", 64);
    let out = fs.0.join("events.json");
    let netns = format!("--net=/var/run/netns/{ns}");
    let mut child = Command::new("nsenter")
        .args([netns.as_str(), bin(), "live", "-i", "lo", "-o", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let (tx, said) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = String::new();
    let mut wait_said = |mark: &str| {
        let start = Instant::now();
        while !seen.contains(mark) {
            assert!(start.elapsed() < Duration::from_secs(20), "picket never said {mark:?}: {seen}");
            if let Ok(l) = said.recv_timeout(Duration::from_millis(100)) {
                seen.push_str(&l);
                seen.push('\n');
            }
        }
    };
    wait_said("capturing on");
    let usr1 = || assert!(sh(&["kill", "-USR1", &pid]));
    // One snapshot while there is room.
    usr1();
    let start = Instant::now();
    while whole_lines(&out).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "no snapshot written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The disk fills up: three snapshots cannot be written...
    fs.fill(0);
    for _ in 0..3 {
        usr1();
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_said("No space left on device");
    // ...and capture goes on.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "picket stopped on a full disk: {seen}");
    assert_eq!(whole_lines(&out).len(), 1, "nothing more fits");
    // Space returns: the waiting snapshots are written within the retry.
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    wait_said("again");
    assert!(sh(&["kill", "-TERM", &pid]));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {seen}");
    let events = whole_lines(&out);
    let stats: Vec<_> = events.iter().filter_map(|e| e.stats.as_ref()).collect();
    assert_eq!(stats.len(), 5, "four snapshots and the final stats, none lost: {events:?}");
    assert!(stats[..4].iter().all(|s| !s.is_final) && stats[4].is_final);
    let v: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().lines().last().unwrap()).unwrap();
    let output = &v["stats"]["output"];
    assert!(output["write_errors"].as_u64().unwrap() >= 1, "{output}");
    assert_eq!(output["events_dropped"], 0, "{output}");
}
