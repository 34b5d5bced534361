//! Lines on stderr (notes, warnings, errors), each written with one `write`
//! call: `eprintln!` writes a formatted line in pieces on unbuffered
//! stderr, so a reader of the pipe could see half a line, and lines from two
//! threads could interleave. Every stderr line in picket goes through
//! `note!`. `--quiet` silences the `picket: note:` lines (warnings and
//! errors stay); while a progress bar is drawn (`progress`), a line is
//! written above it.

use std::fmt::{Arguments, Write as _};
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

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

#[cfg(test)]
mod tests {
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
