//! Signal handling (signal-hook): each signal only sets a flag; the reader
//! and the output thread poll the flags.
//!
//! - SIGINT / SIGTERM: stop capturing, drain, flush detections, write stats,
//!   exit 0. A second SIGINT exits at once (status 130).
//! - SIGHUP: reopen the output file (logrotate).
//! - SIGUSR1: write a stats event now.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The flags signals set.
#[derive(Clone, Default)]
pub struct Flags {
    stop: Arc<AtomicBool>,
    reopen: Arc<AtomicBool>,
    stats_req: Arc<AtomicBool>,
    stats_write: Arc<AtomicBool>,
}

impl Flags {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Flags> {
        let f = Flags::default();
        // Order matters: the conditional exit is registered first, so it sees
        // the stop flag as it was before this SIGINT set it.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&f.stop))?;
        signal_hook::flag::register(SIGINT, Arc::clone(&f.stop))?;
        signal_hook::flag::register(SIGTERM, Arc::clone(&f.stop))?;
        signal_hook::flag::register(SIGHUP, Arc::clone(&f.reopen))?;
        signal_hook::flag::register(SIGUSR1, Arc::clone(&f.stats_req))?;
        Ok(f)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Asks everything to stop (also used when the output pipe closes).
    pub fn request_stop(&self) {
        self.stop.store(true, Relaxed);
    }

    /// True once per SIGHUP.
    pub fn take_reopen(&self) -> bool {
        self.reopen.swap(false, Relaxed)
    }

    /// True once per SIGUSR1 (seen by the reader).
    pub fn take_stats_request(&self) -> bool {
        self.stats_req.swap(false, Relaxed)
    }

    /// The reader passes a SIGUSR1 on to the output thread.
    pub fn request_stats_write(&self) {
        self.stats_write.store(true, Relaxed);
    }

    /// True once per stats write request (seen by the output thread).
    pub fn take_stats_write(&self) -> bool {
        self.stats_write.swap(false, Relaxed)
    }
}
