//! Lines on stderr (notes, warnings, errors), each written with one `write`
//! call: `eprintln!` writes a formatted line in pieces on unbuffered
//! stderr, so a reader of the pipe could see half a line, and lines from two
//! threads could interleave. Every stderr line in picket goes through
//! `note!`. `--quiet` silences the `picket: note:` lines (warnings and
//! errors stay); while a progress bar is drawn (`progress`), a line is
//! written above it.
//!
//! `Pressure` also lives here: the one note per episode of table pressure
//! ("state under pressure from N sources since T: detections may be
//! missed"), on packet time.

use std::fmt::{Arguments, Write as _};
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

/// `--quiet`: `picket: note:` lines are not written.
static QUIET: AtomicBool = AtomicBool::new(false);
/// The progress bar on stderr, if one is drawn.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// `--quiet`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Relaxed);
}

/// Whether stderr is a terminal (progress is drawn only there).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Runs `write` (a write to stderr or to the terminal stdout shares) with
/// the progress bar, if one is drawn, cleared meanwhile.
pub fn above_bar<R>(write: impl FnOnce() -> R) -> R {
    match BAR.lock().ok().as_deref().and_then(Option::as_ref) {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// The progress bar lines are written above (None when it is gone).
pub fn set_bar(bar: Option<indicatif::ProgressBar>) {
    if let Ok(mut b) = BAR.lock() {
        *b = bar;
    }
}

/// Formats one line and writes it, newline included, in one `write_all` on
/// locked stderr (a pipe takes up to 4096 bytes atomically). Errors writing
/// to stderr are ignored, as `eprintln!` would panic on them instead.
pub fn line(args: Arguments<'_>) {
    let mut s = String::with_capacity(160);
    let _ = s.write_fmt(args);
    if QUIET.load(Relaxed) && s.starts_with("picket: note:") {
        return;
    }
    s.push('\n');
    above_bar(|| {
        let _ = std::io::stderr().lock().write_all(s.as_bytes());
    });
}

/// `eprintln!` in one write: `picket::note!("picket: note: {x}")`.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::note::line(format_args!($($arg)*))
    };
}

/// Packet time without a key evicted or refused that ends an episode of
/// table pressure.
pub const CALM_US: i64 = 10_000_000;

/// Episodes of state pressure: one note when tables start pushing keys out
/// (evicting or refusing them for room), none while that goes on, and a new
/// one only after `CALM_US` of packet time without any. Shared by the
/// workers (atomics); each calls `observe` once per tick.
pub struct Pressure {
    /// Keys pushed out (evictions plus cap hits, all tables) at the last look.
    seen: AtomicU64,
    /// Packet time the episode began, or `IDLE`.
    since_us: AtomicI64,
    /// Packet time a push-out was last seen.
    last_us: AtomicI64,
    /// Episodes begun (`stats.state_pressure.episodes`).
    pub episodes: AtomicU64,
}

const IDLE: i64 = i64::MIN;

impl Default for Pressure {
    fn default() -> Pressure {
        Pressure {
            seen: AtomicU64::new(0),
            since_us: AtomicI64::new(IDLE),
            last_us: AtomicI64::new(IDLE),
            episodes: AtomicU64::new(0),
        }
    }
}

impl Pressure {
    /// One look at packet time `now`: `pushed_out` is the run's total of
    /// keys evicted or refused for room, `sources` the sources held in the
    /// per-source table. Returns the note's text when an episode begins
    /// (the caller's `observe` prints it; tests read it).
    pub fn look(&self, pushed_out: u64, now: i64, sources: u64) -> Option<String> {
        let before = self.seen.fetch_max(pushed_out, Relaxed);
        if pushed_out > before {
            self.last_us.fetch_max(now, Relaxed);
            if self.since_us.compare_exchange(IDLE, now, Relaxed, Relaxed).is_ok() {
                self.episodes.fetch_add(1, Relaxed);
                return Some(format!(
                    "picket: note: state under pressure from {sources} sources since {}: detections may be missed",
                    crate::output::timefmt::rfc3339_us(now)
                ));
            }
            return None;
        }
        let since = self.since_us.load(Relaxed);
        if since != IDLE && now.saturating_sub(self.last_us.load(Relaxed)) >= CALM_US {
            let _ = self.since_us.compare_exchange(since, IDLE, Relaxed, Relaxed);
        }
        None
    }

    /// `look`, printing the note.
    pub fn observe(&self, pushed_out: u64, now: i64, sources: u64) {
        if let Some(n) = self.look(pushed_out, now, sources) {
            line(format_args!("{n}"));
        }
    }

    /// Whether an episode is going on.
    pub fn active(&self) -> bool {
        self.since_us.load(Relaxed) != IDLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_note_per_episode_on_packet_time() {
        let p = Pressure::default();
        assert_eq!(p.look(0, 1_000_000, 5), None, "no push-out, no note");
        let n = p.look(10, 2_000_000, 70_000).expect("pressure begins");
        assert!(n.contains("state under pressure from 70000 sources since 1970-01-01T00:00:02"), "{n}");
        assert!(n.ends_with("detections may be missed"), "{n}");
        // Still pushing out, for a while: no new note.
        for s in 3..30 {
            assert_eq!(p.look(10 + s as u64, s * 1_000_000, 70_000), None);
        }
        assert!(p.active());
        // Calm, but not long enough yet; then long enough: the episode ends.
        assert_eq!(p.look(39, 35_000_000, 1), None);
        assert!(p.active());
        assert_eq!(p.look(39, 40_000_000, 1), None);
        assert!(!p.active());
        // Pressure again: a second note.
        assert!(p.look(40, 41_000_000, 3).is_some_and(|n| n.contains("from 3 sources")));
        assert_eq!(p.episodes.load(Relaxed), 2);
    }

    /// Every stderr line goes through `note!`: no `eprintln!` or `eprint!`
    /// left in src/ (they write a line in pieces).
    #[test]
    fn no_piecewise_stderr_writes_in_src() {
        fn walk(dir: &std::path::Path, bad: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, bad);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("note.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for (i, l) in text.lines().enumerate() {
                        let code = l.split("//").next().unwrap_or("");
                        if code.contains("eprintln!") || code.contains("eprint!") || code.contains("stderr()") {
                            bad.push(format!("{}:{}: {}", p.display(), i + 1, l.trim()));
                        }
                    }
                }
            }
        }
        let mut bad = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut bad);
        assert!(bad.is_empty(), "write stderr lines with picket::note!, in one write:\n{}", bad.join("\n"));
    }
}
