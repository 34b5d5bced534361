//! picket on a terminal and on a pipe (issue 18): under a pseudo-terminal
//! (`script` from bsdutils) a replay prints text (one line per detection and
//! a summary table) and draws its progress on stderr; `--quiet` silences
//! notes and progress, `CI` keeps progress off; on a pipe stdout holds JSON
//! lines only and stderr no progress.

use std::path::Path;
use std::process::Command;

const CAP: &str = "pcaps/periodic_probe_30s.pcap";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_picket")
}

/// Runs `picket ARGS` under a pseudo-terminal (stdout and stderr both the
/// terminal); what the terminal received, carriage returns dropped.
fn on_tty(args: &str, ci: bool) -> String {
    on_tty_raw(args, ci).replace('\r', "")
}

/// What the terminal received, byte for byte.
fn on_tty_raw(args: &str, ci: bool) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut c = Command::new("script");
    c.args(["-qfec", &format!("{} {args}", bin()), "/dev/null"]).current_dir(root).env("TERM", "xterm");
    if ci {
        c.env("CI", "true");
    } else {
        c.env_remove("CI");
    }
    let out = c.output().expect("run script (bsdutils)");
    assert!(out.status.success(), "{args}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines as a terminal shows them, roughly: a carriage return starts
/// the line over (the progress bar redraws itself so, and is cleared so
/// before a text line is written), and cursor and erase sequences
/// (`ESC [ ... letter`) are dropped.
fn screen(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.split('\n') {
        let shown = line.rsplit('\r').find(|seg| !seg.is_empty()).unwrap_or("");
        let mut chars = shown.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' && chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
                continue;
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

/// The progress bar's own words (its template in src/progress.rs).
fn has_progress(s: &str) -> bool {
    s.contains("replay ") && s.contains("ETA") && s.contains(" B/")
}

#[test]
fn on_a_terminal_a_replay_prints_text_and_its_progress() {
    let raw = on_tty_raw(&format!("replay --home-net 192.0.2.0/24 {CAP}"), false);
    assert!(has_progress(&raw), "no progress drawn:\n{raw}");
    // The event lines as the terminal shows them (the bar, when drawn
    // before one, is erased first).
    let s = screen(&raw);
    assert!(!s.lines().any(|l| l.starts_with("{\"")), "JSON on a terminal:\n{s}");
    let line = s.lines().find(|l| l.contains("periodic_probe ") && l.contains("203.0.113.34 -> 192.0.2.10:158/tcp"));
    let line = line.unwrap_or_else(|| panic!("no text line for the periodic probe:\n{s}"));
    assert!(line.starts_with("2026-11-22 07:36:30  periodic_probe"), "{line}");
    assert!(line.contains("every 30 s"), "the summary is missing: {line}");
    assert!(s.contains("\nSummary\n"), "no summary table:\n{s}");
    let row = s.lines().find(|l| l.trim_start().starts_with("periodic_probe ")).expect("a table row");
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{row}");
}

#[test]
fn quiet_silences_notes_and_progress_and_ci_silences_progress() {
    // Without --home-net picket writes a note; --quiet drops it.
    let loud = on_tty(&format!("replay {CAP}"), false);
    assert!(loud.contains("picket: note: no --home-net"), "{loud}");
    let quiet = on_tty(&format!("replay --quiet {CAP}"), false);
    assert!(!quiet.contains("picket: note:"), "{quiet}");
    assert!(!has_progress(&quiet), "progress despite --quiet:\n{quiet}");
    assert!(quiet.contains("Summary"), "the events still come:\n{quiet}");
    let ci = on_tty(&format!("replay --home-net 192.0.2.0/24 {CAP}"), true);
    assert!(!has_progress(&ci), "progress with CI set:\n{ci}");
}

#[test]
fn format_json_on_a_terminal_writes_json() {
    let s = on_tty(&format!("replay --quiet --format json --home-net 192.0.2.0/24 {CAP}"), false);
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 5, "{s}");
    for l in lines {
        let l = l.trim_start_matches("\u{1b}[2K");
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}

#[test]
fn on_a_pipe_stdout_is_json_lines_and_stderr_has_no_progress() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(bin())
        .args(["replay", "--home-net", "192.0.2.0/24", CAP])
        .current_dir(root)
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut kinds = Vec::new();
    for l in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        kinds.push(v["event_type"].as_str().unwrap_or("").to_string());
    }
    assert!(kinds.iter().any(|k| k == "periodic_probe"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("stats"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\u{1b}') && !stderr.contains("ETA"), "progress on a pipe: {stderr}");
    // --format text on a pipe is text.
    let out = Command::new(bin())
        .args(["replay", "--format", "text", "--home-net", "192.0.2.0/24", CAP])
        .current_dir(root)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\nSummary\n") && !text.contains("{\""), "{text}");
}
