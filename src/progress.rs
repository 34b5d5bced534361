//! Progress of a replay on stderr (indicatif): bytes read of the files'
//! bytes, packets per second, events written so far, and the time left.
//! Drawn only when stderr is a terminal, never when `CI` is set, never with
//! `--quiet`; a thread reads the run's counters a few times a second and
//! the bar is cleared when the replay ends. Lines written meanwhile through
//! `note!` appear above the bar.
//!
//! Bytes read are counted as the reader's packet bytes plus each classic
//! pcap record's 16-byte header: exact for untruncated classic pcap, an
//! estimate for pcapng (its blocks are larger) and for truncated packets.

use crate::stats::Stats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the counters are read.
const EVERY: Duration = Duration::from_millis(200);

/// Whether a replay shows progress: stderr is a terminal, `CI` is not set,
/// and not `--quiet`.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::env::var_os("CI").is_none() && crate::note::stderr_is_terminal()
}

/// A drawn progress bar and the thread updating it.
pub struct Progress {
    bar: ProgressBar,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing the progress of reading `paths` (stdin, `-`, has no
    /// size: the bar then shows bytes without a total).
    pub fn start(paths: &[PathBuf], stats: Arc<Stats>) -> Progress {
        let sizes: Option<u64> = paths
            .iter()
            .map(|p| if p.as_os_str() == "-" { None } else { std::fs::metadata(p).ok().map(|m| m.len()) })
            .sum();
        let target = ProgressDrawTarget::stderr_with_hz(5);
        let bar = match sizes {
            Some(total) => ProgressBar::with_draw_target(Some(total), target).with_style(
                ProgressStyle::with_template(
                    "{spinner} replay {bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec}, {msg}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{spinner} replay {bytes} {binary_bytes_per_sec}, {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message("0 packets, 0 events");
        bar.tick();
        crate::note::set_bar(Some(bar.clone()));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bar, done) = (bar.clone(), Arc::clone(&done));
            std::thread::Builder::new().name("picket-progress".into()).spawn(move || update(&bar, &stats, &done)).ok()
        };
        Progress { bar, done, thread }
    }

    /// Stops the thread and clears the bar.
    pub fn finish(mut self) {
        self.done.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        crate::note::set_bar(None);
        self.bar.finish_and_clear();
    }
}

/// Reads the counters into the bar until `done`.
fn update(bar: &ProgressBar, stats: &Stats, done: &AtomicBool) {
    let started = Instant::now();
    while !done.load(Relaxed) {
        let packets = stats.packets.load(Relaxed);
        let read = stats.bytes.load(Relaxed).saturating_add(packets.saturating_mul(16));
        bar.set_position(bar.length().map_or(read, |len| read.min(len)));
        let events: u64 =
            stats.events.lock().map(|m| m.iter().filter(|(k, _)| **k != "stats").map(|(_, v)| *v).sum()).unwrap_or(0);
        let secs = started.elapsed().as_secs_f64();
        let pps = if secs > 0.0 { packets as f64 / secs } else { 0.0 };
        bar.set_message(format!("{packets} packets ({pps:.0}/s), {events} events"));
        std::thread::sleep(EVERY);
    }
}
