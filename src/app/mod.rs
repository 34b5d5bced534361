//! Wiring a run together: reader, analyzer workers, the decoy aggregator and
//! the output thread, started and joined in the right order so that every
//! event is written before the final stats line. `run` reads as its stages:
//! open the inputs, read the firewall logs, open the output and the live
//! firewall feed, drop privileges (`live --user`, while no thread runs),
//! start the output, the analysis and the live feed, read, drain, join. The shared
//! stages are in `stages`, the firewall-log side in `fw`.

mod fw;
mod stages;

pub use fw::{FwLogs, FwRunConfig, run_fwlog};
pub use stages::RunReport;

use crate::decode::summary::LinkKind;
use crate::detect::worm;
use crate::detect::{EndReason, Rules, Shared};
use crate::fwlog::correlate::{Correlator, FwIndex};
use crate::fwlog::live::{LiveConfig, LiveFw, LiveTap};
use crate::homenet::HomeNet;
use crate::input::capture::{self, CaptureError, LiveOpts};
use crate::output::event::EventLine;
use crate::output::writer::{Enrich, StatsSource};
use crate::signals::Flags;
use crate::stats::Stats;
use crossbeam_channel::Sender;
use pcap::{Active, Capture};
use stages::{Analysis, Output, SharedInput, spawn_err};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

/// What to read.
pub enum Input {
    Live(LiveOpts),
    Files { paths: Vec<PathBuf>, filter: Option<String> },
}

/// Everything a run needs, built from the command line.
pub struct RunConfig {
    pub input: Input,
    pub rules: Rules,
    pub home: HomeNet,
    pub workers: usize,
    /// `-o`: every target (stdout when none).
    pub output: Vec<crate::output::target::Target>,
    pub community_id_seed: u16,
    /// Firewall logs to correlate with a replay (`--fw-log`).
    pub fw: Option<FwLogs>,
    /// Firewall logs followed, and syslog received, while live.
    pub fw_live: Option<LiveConfig>,
    /// Live: seconds of packet time between `service_inventory` events.
    pub inventory_interval_s: Option<u32>,
    /// Live `--user`: who picket becomes once everything is opened.
    pub user: Option<crate::privs::Target>,
    /// `--format text`: events rendered by `output::text`.
    pub text: bool,
    /// A replay draws its progress on stderr (`progress`).
    pub progress: bool,
}

/// The default worker count: one per available core, live and replay
/// alike. The reader shares a core with a worker; on 2 cores two workers
/// replay 1.6x the packets per second of one (the reader is lighter than a
/// worker, so a core left to it alone idles). Every detection's packets meet
/// in one worker whatever the count (`pipeline::dispatch::shard_addr`).
pub fn default_workers(_live: bool) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    cores.max(1)
}

/// The packet inputs, opened (or, for files, checked) before any thread
/// starts.
enum Opened<'a> {
    Live(Capture<Active>, LinkKind, &'a str),
    Files { paths: Vec<PathBuf>, filter: Option<&'a str> },
}

impl Opened<'_> {
    /// The capture files of a replay; none when live.
    fn files(&self) -> &[PathBuf] {
        match self {
            Opened::Files { paths, .. } => paths,
            Opened::Live(..) => &[],
        }
    }
}

/// Opens the interface, or checks that every capture file opens (stdin
/// opens later), so a bad input is known before threads start. A file that
/// cannot be read (missing, not a capture, no valid header) is named on
/// stderr, counted in `stats.bad_files`, left out, and the run goes on with
/// the others; its error comes back in the third value (exit 2 at the end).
/// Only when nothing is left to read, or the filter is bad, does the run
/// fail here. Returns the inputs and their sensor names.
fn open_inputs<'a>(
    input: &'a Input,
    stats: &Stats,
) -> Result<(Opened<'a>, Vec<String>, Vec<CaptureError>), CaptureError> {
    match input {
        Input::Live(o) => {
            let (cap, link) = capture::open_live(o)?;
            let mode = if o.promisc { "promiscuous" } else { "not promiscuous" };
            crate::note!("picket: note: capturing on {} ({}, {mode}, snaplen {})", o.iface, link.name(), o.snaplen);
            Ok((Opened::Live(cap, link, &o.iface), vec![o.iface.clone()], Vec::new()))
        }
        Input::Files { paths, filter } => {
            let expanded = capture::expand_inputs(paths);
            let mut errors = Vec::new();
            if expanded.len() > usize::from(u16::MAX) {
                return Err(CaptureError::Path {
                    path: "replay".into(),
                    msg: format!("too many files ({})", expanded.len()),
                });
            }
            let mut good = Vec::with_capacity(expanded.len());
            for p in expanded {
                let p = match p {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                if p.as_os_str() == "-" {
                    good.push(p);
                    continue;
                }
                match capture::open_file(&p, filter.as_deref()) {
                    Ok(_) => good.push(p),
                    // The same filter fails on every file: a usage error.
                    Err(e @ CaptureError::Filter { .. }) => return Err(e),
                    Err(e) => errors.push(e),
                }
            }
            if good.is_empty() {
                // Nothing to read: the run fails, naming every file once
                // (the last one through the caller).
                let last = errors.pop().unwrap_or_else(|| CaptureError::Path {
                    path: "replay".into(),
                    msg: "no capture files given".into(),
                });
                for e in &errors {
                    crate::note!("picket: error: {e}");
                }
                return Err(last);
            }
            for e in &errors {
                crate::note!("picket: error: {e}; skipped, reading the other files");
                stats.bad_files.fetch_add(1, Relaxed);
            }
            let sensors = good.iter().map(|p| capture::sensor_name(p)).collect();
            Ok((Opened::Files { paths: good, filter: filter.as_deref() }, sensors, errors))
        }
    }
}

/// The live firewall feed: its thread, and the tap the reader feeds with
/// attempts.
struct LiveFwThread {
    thread: JoinHandle<()>,
    tap: LiveTap,
}

/// Binds the syslog socket and opens the `--fw-log` files while live (no
/// thread yet: `--user` drops privileges after this).
fn open_live_fw(
    lc: LiveConfig,
    shared: &Arc<Shared>,
    out: &Sender<EventLine>,
    index: Arc<RwLock<FwIndex>>,
) -> Result<(LiveFw, LiveTap), CaptureError> {
    let (fw, tap) = LiveFw::new(lc, Arc::clone(shared), out.clone(), index, None)
        .map_err(|msg| CaptureError::Path { path: "--fw-log".into(), msg })?;
    if let Some(a) = fw.syslog_addr() {
        crate::note!("picket: note: receiving syslog on udp {a}");
    }
    for (channel, a) in fw.stream_addrs() {
        crate::note!("picket: note: receiving syslog on {channel} {a}");
    }
    Ok((fw, tap))
}

/// Starts following `--fw-log` files and receiving syslog while live.
fn start_live_fw((fw, tap): (LiveFw, LiveTap), worm: Option<worm::Link>) -> Result<LiveFwThread, CaptureError> {
    let fw = fw.with_worm(worm);
    let thread = std::thread::Builder::new().name("picket-fwlog".into()).spawn(move || fw.run()).map_err(spawn_err)?;
    Ok(LiveFwThread { thread, tap })
}

/// Captures until a signal or the interface goes away; then hangs up the
/// live firewall feed and waits for it. A capture that fails (the
/// interface was deleted) is one stderr line naming the interface and
/// libpcap's words; the run still drains and writes its final stats.
fn read_live(
    (cap, link, iface): (Capture<Active>, LinkKind, &str),
    analysis: &mut Analysis,
    stats: &Stats,
    flags: &Flags,
    live_fw: Option<LiveFwThread>,
) -> Vec<CaptureError> {
    let (thread, mut tap) = live_fw.map_or((None, None), |l| (Some(l.thread), Some(l.tap)));
    let res = capture::read_live(cap, link, &mut analysis.dispatcher, stats, flags, tap.as_mut());
    // Hanging up the tap tells the log thread the capture is over.
    drop(tap);
    if let Some(h) = thread {
        let _ = h.join();
    }
    let err = res.err().map(|e| match e {
        CaptureError::Interface { msg, .. } => CaptureError::Interface { iface: iface.to_string(), msg },
        e => e,
    });
    if let Some(e) = &err {
        crate::note!("picket: error: {e}; capture ended");
    }
    err.into_iter().collect()
}

/// Replays the files in order; a damaged file is reported and the next one
/// read.
fn replay(
    paths: &[PathBuf],
    filter: Option<&str>,
    analysis: &mut Analysis,
    stats: &Stats,
    flags: &Flags,
    mut corr: Option<&mut Correlator>,
) -> Vec<CaptureError> {
    let mut file_errors = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        if flags.stop_requested() {
            break;
        }
        analysis.dispatcher.set_sensor(i as u16);
        let res = capture::open_file(path, filter).and_then(|(cap, link)| {
            capture::read_file(path, cap, link, &mut analysis.dispatcher, stats, flags, corr.as_deref_mut())
        });
        if let Err(e) = res {
            stats.bad_files.fetch_add(1, Relaxed);
            crate::note!("picket: error: {e}");
            file_errors.push(e);
        }
    }
    // A signal cut the replay short: say so in the stats, and end the open
    // detections with `shutdown`, not `end_of_input`.
    if flags.stop_requested() {
        stats.interrupted.store(true, Relaxed);
    }
    file_errors
}

/// Reads every packet: live until a signal, or each file in turn.
fn read(
    opened: Opened<'_>,
    analysis: &mut Analysis,
    stats: &Stats,
    flags: &Flags,
    live_fw: Option<LiveFwThread>,
    corr: Option<&mut Correlator>,
) -> Vec<CaptureError> {
    match opened {
        Opened::Live(cap, link, iface) => read_live((cap, link, iface), analysis, stats, flags, live_fw),
        Opened::Files { paths, filter } => replay(&paths, filter, analysis, stats, flags, corr),
    }
}

/// Runs to completion. Errors that stop the run before any packet is read
/// (unopenable input, bad filter) come back as `Err`.
pub fn run(cfg: RunConfig, flags: Flags) -> Result<RunReport, CaptureError> {
    let started = Instant::now();
    let stats = Arc::new(Stats::default());
    let (opened, sensors, skipped) = open_inputs(&cfg.input, &stats)?;
    let mut fw_side = match &cfg.fw {
        Some(fw) => Some(fw::read_fw_logs(fw, opened.files(), &cfg.home, &stats, &flags)?),
        None => None,
    };
    let lossy = matches!(opened, Opened::Live(..));
    // Live, a failed write does not stop the capture.
    let outputs = stages::open_outputs(&cfg.output, lossy, cfg.text, &stats)?;
    let end = if lossy { EndReason::Shutdown } else { EndReason::EndOfInput };
    let rules = Arc::new(cfg.rules);
    let shared = stages::shared(SharedInput {
        rules: &rules,
        home: &cfg.home,
        community_id_seed: cfg.community_id_seed,
        sensors: sensors.clone(),
        stats: &stats,
        workers: cfg.workers,
        from_log: false,
        replay: !lossy,
        inventory_every_s: if lossy { cfg.inventory_interval_s } else { None },
    });
    let src = StatsSource { stats: Arc::clone(&stats), sensor: stages::sensor_label(&sensors), started };
    let live_index = (cfg.fw_live.is_some() && lossy).then(|| Arc::new(RwLock::new(FwIndex::live())));
    let fw_index = fw_side.as_ref().map(|f| Arc::clone(&f.index)).or_else(|| live_index.clone());
    let (out_tx, out_rx) = Output::queue();
    let has_live_fw = live_index.is_some();
    let live_fw = match (cfg.fw_live, live_index) {
        (Some(lc), Some(index)) => Some(open_live_fw(lc, &shared, &out_tx, index)?),
        _ => None,
    };
    // Everything privileged is open and no thread runs yet: become --user.
    if let Some(user) = &cfg.user {
        let line = user
            .drop_privileges()
            .map_err(|e| CaptureError::Path { path: format!("--user {}", e.spec), msg: e.msg })?;
        crate::note!("{line}");
    }
    let output = Output::start_on(outputs, out_rx, &flags, src, Enrich { fw: fw_index, log_origin: None })?;
    let mut analysis = Analysis::start(&shared, &rules, cfg.home, (lossy, has_live_fw), end, &out_tx)?;
    let worm_log = analysis.worm_log.take();
    let live_fw = live_fw.map(|f| start_live_fw(f, worm_log)).transpose()?;
    // The fw_correlation event is written after the workers' events.
    let fw_tx = fw_side.as_ref().map(|_| out_tx.clone());
    drop(out_tx);

    let corr = fw_side.as_mut().map(|f| &mut f.corr);
    let mut file_errors = skipped;
    let progress =
        (cfg.progress && !lossy).then(|| crate::progress::Progress::start(opened.files(), Arc::clone(&stats)));
    file_errors.extend(read(opened, &mut analysis, &stats, &flags, live_fw, corr));
    analysis.finish();
    if let Some(p) = progress {
        p.finish();
    }
    if stats.return_path.missing() {
        let n = stats.return_path.home_hosts_targeted.load(Relaxed);
        crate::note!(
            "picket: note: no packet from the home net was captured ({n} home host(s) received traffic): the return path is not visible (an asymmetric tap or an inbound-only capture), so whether a home host answered is unknown"
        );
    }
    if let (Some(fw), Some(tx)) = (fw_side, fw_tx) {
        fw.send_correlation(&shared, &stages::sensor_label(&sensors), &stats, &tx);
    }
    drop(shared);
    Ok(RunReport { file_errors, output_error: output.join() })
}
