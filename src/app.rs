//! Wiring a run together: reader, analyzer workers, the decoy aggregator and
//! the output thread, started and joined in the right order so that every
//! event is written before the final stats line.

use crate::detect::decoy::{self, Aggregator};
use crate::detect::{EndReason, Rules, Shared};
use crate::fwlog::correlate::{Correlator, FwIndex};
use crate::fwlog::feed::Evidence;
use crate::fwlog::live::{LiveConfig, LiveFw};
use crate::fwlog::{self, FileTally, LineCtx, LineParser, report};
use crate::homenet::HomeNet;
use crate::input::capture::{self, CaptureError, LiveOpts};
use crate::output::event::EventLine;
use crate::output::writer::{self, Sink, StatsSource};
use crate::pipeline::dispatch::Dispatcher;
use crate::pipeline::worker::Worker;
use crate::signals::Flags;
use crate::stats::Stats;
use crossbeam_channel::{Sender, bounded};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
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
    pub output: Option<PathBuf>,
    pub community_id_seed: u16,
    /// Firewall logs to correlate with a replay (`--fw-log`).
    pub fw: Option<FwLogs>,
    /// Firewall logs followed, and syslog received, while live.
    pub fw_live: Option<LiveConfig>,
}

/// `--fw-log` files and how to read them.
pub struct FwLogs {
    pub files: Vec<PathBuf>,
    pub forced: Option<fwlog::Format>,
    pub tz_offset_s: i32,
    /// `--fw-reference`; by default the capture's first packet time.
    pub reference_us: Option<i64>,
}

/// Records read into memory for correlation; beyond, they are counted only.
const MAX_FW_RECORDS: usize = 4_000_000;

/// The firewall side of a replay: every record read, the tallies, and the
/// correlator the reader feeds.
struct FwSide {
    agg: report::Aggregate,
    tallies: Vec<FileTally>,
    corr: Correlator,
    index: Arc<RwLock<FwIndex>>,
    reference_us: i64,
}

/// The first packet time of the first capture that has one (for syslog's
/// missing year), or now.
fn capture_start_us(files: &[PathBuf]) -> i64 {
    for p in files.iter().filter(|p| p.as_os_str() != "-") {
        if let Ok(mut cap) = crate::input::savefile::open(p)
            && let Ok(pkt) = cap.next_packet()
        {
            return pkt.header.ts.tv_sec.saturating_mul(1_000_000).saturating_add(pkt.header.ts.tv_usec);
        }
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Adds one firewall log's line tallies to the stats, and names the file on
/// stderr if it gave no record at all.
fn count_fw_file(stats: &Stats, tally: &FileTally) {
    stats.fw_lines.fetch_add(tally.lines, Relaxed);
    stats.fw_records.fetch_add(tally.records, Relaxed);
    stats.fw_other_lines.fetch_add(tally.other, Relaxed);
    stats.fw_bad_lines.fetch_add(tally.bad, Relaxed);
    if let Some(w) = tally.no_record_warning() {
        eprintln!("{w}");
    }
}

/// Reads every `--fw-log` before the capture (a file that cannot be opened
/// fails the run; bad lines are counted and skipped).
fn read_fw_logs(
    fw: &FwLogs,
    captures: &[PathBuf],
    home: &HomeNet,
    stats: &Stats,
    flags: &Flags,
) -> Result<FwSide, CaptureError> {
    let inputs = fwlog::open_inputs(&fw.files).map_err(|e| CaptureError::Path { path: e.path, msg: e.msg })?;
    let reference_us = fw.reference_us.unwrap_or_else(|| capture_start_us(captures));
    let ctx = LineCtx {
        time: fwlog::time::TimeCtx { reference_us, tz_offset_s: fw.tz_offset_s },
        forced: fw.forced,
        file: 0,
    };
    let mut agg = report::Aggregate::new();
    let mut tallies = Vec::new();
    let mut records = Vec::new();
    for (i, (name, reader)) in inputs.into_iter().enumerate() {
        let mut parser = LineParser::new(LineCtx { file: i as u16, ..ctx });
        let mut tally = FileTally::new(&capture::sensor_name(&fw.files[i]));
        let res = fwlog::read_lines_until(
            reader,
            &mut parser,
            &mut tally,
            || flags.stop_requested(),
            |r| {
                agg.add(r);
                if records.len() < MAX_FW_RECORDS {
                    records.push(*r);
                }
            },
        );
        if let Err(e) = res {
            return Err(CaptureError::Path { path: name, msg: format!("read error after line {}: {e}", tally.lines) });
        }
        count_fw_file(stats, &tally);
        tallies.push(tally);
    }
    let corr = Correlator::new(&records, home.clone());
    let index = Arc::new(RwLock::new(FwIndex::new(&records)));
    Ok(FwSide { agg, tallies, corr, index, reference_us })
}

/// The analysis side of a run: the dispatcher the reader pushes summaries
/// into, the analyzer workers and the decoy aggregator.
struct Analysis {
    dispatcher: Dispatcher,
    workers: Vec<std::thread::JoinHandle<()>>,
    aggregator: Option<std::thread::JoinHandle<()>>,
}

fn spawn_err(e: std::io::Error) -> CaptureError {
    CaptureError::Path { path: "thread".into(), msg: e.to_string() }
}

impl Analysis {
    /// Starts `shared.workers` analyzer threads (and the aggregator), each
    /// sending its events to `out`.
    fn start(
        shared: &Arc<Shared>,
        rules: &Arc<Rules>,
        home: HomeNet,
        lossy: bool,
        end: EndReason,
        out: &Sender<EventLine>,
    ) -> Result<Analysis, CaptureError> {
        let (dispatcher, ports) = Dispatcher::new(shared.workers, home, lossy, Arc::clone(&shared.stats));
        // The decoy aggregator: one thread, fed by every worker (detect/decoy).
        let mut links = Vec::new();
        let mut aggregator = None;
        if rules.decoy_scan.enabled {
            let (l, rx) = decoy::channel(ports.len(), lossy);
            links = l;
            let sh = Arc::clone(shared);
            let tx = out.clone();
            let agg = Aggregator::new(&rules.decoy_scan, ports.len(), rules.general.update_interval_s);
            let h = std::thread::Builder::new()
                .name("picket-decoy".into())
                .spawn(move || agg.run(rx, &sh, tx, end))
                .map_err(spawn_err)?;
            aggregator = Some(h);
        }
        let mut links = links.into_iter();
        let mut workers = Vec::new();
        for (i, port) in ports.into_iter().enumerate() {
            let sh = Arc::clone(shared);
            let rules = Arc::clone(rules);
            let tx = out.clone();
            let link = links.next();
            let h = std::thread::Builder::new()
                .name(format!("picket-worker-{i}"))
                .spawn(move || Worker::new(&sh, &rules, link).run(port, &sh, tx, end))
                .map_err(spawn_err)?;
            workers.push(h);
        }
        Ok(Analysis { dispatcher, workers, aggregator })
    }

    /// Closes the channels and waits until every detection is flushed.
    fn finish(self) {
        self.dispatcher.finish();
        for h in self.workers {
            let _ = h.join();
        }
        // Every worker has sent `Done` (or dropped its link): the aggregator ends.
        if let Some(h) = self.aggregator {
            let _ = h.join();
        }
    }
}

/// How a run ended.
pub struct RunReport {
    /// Per-file errors that did not stop the run (damaged captures).
    pub file_errors: Vec<CaptureError>,
    pub output_error: Option<std::io::Error>,
}

/// The default worker count: available cores minus the reader, at least 1.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get().saturating_sub(1)).unwrap_or(1).max(1)
}

/// Runs to completion. Errors that stop the run before any packet is read
/// (unopenable input, bad filter) come back as `Err`.
pub fn run(cfg: RunConfig, flags: Flags) -> Result<RunReport, CaptureError> {
    let started = Instant::now();
    let stats = Arc::new(Stats::default());
    // Open everything up front so a bad input fails before threads start.
    let (opened_live, files, sensors) = match &cfg.input {
        Input::Live(o) => {
            let (cap, link) = capture::open_live(o)?;
            let mode = if o.promisc { "promiscuous" } else { "not promiscuous" };
            eprintln!("picket: note: capturing on {} ({}, {mode}, snaplen {})", o.iface, link.name(), o.snaplen);
            (Some((cap, link)), Vec::new(), vec![o.iface.clone()])
        }
        Input::Files { paths, filter } => {
            let paths = capture::expand_inputs(paths)?;
            if paths.len() > usize::from(u16::MAX) {
                return Err(CaptureError::Path {
                    path: "replay".into(),
                    msg: format!("too many files ({})", paths.len()),
                });
            }
            // Check that every file opens before reading any of them; stdin opens later.
            for p in paths.iter().filter(|p| p.as_os_str() != "-") {
                capture::open_file(p, filter.as_deref())?;
            }
            let sensors = paths.iter().map(|p| capture::sensor_name(p)).collect();
            (None, paths, sensors)
        }
    };
    let mut fw_side = match &cfg.fw {
        Some(fw) => Some(read_fw_logs(fw, &files, &cfg.home, &stats, &flags)?),
        None => None,
    };
    let sink = Sink::open(cfg.output.as_deref()).map_err(|e| CaptureError::Path {
        path: cfg.output.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        msg: format!("cannot open output: {e}"),
    })?;
    let lossy = opened_live.is_some();
    let end = if lossy { EndReason::Shutdown } else { EndReason::EndOfInput };
    let rules = Arc::new(cfg.rules);
    let shared = Arc::new(Shared {
        general: rules.general.clone(),
        ports: rules.ports.clone(),
        home: cfg.home.clone(),
        community_id_seed: cfg.community_id_seed,
        sensors: sensors.clone(),
        stats: Arc::clone(&stats),
        workers: cfg.workers.max(1),
        from_log: false,
    });
    let (out_tx, out_rx) = bounded::<EventLine>(4096);
    let stats_src = StatsSource {
        stats: Arc::clone(&stats),
        sensor: if sensors.len() == 1 { sensors[0].clone() } else { format!("{} files", sensors.len()) },
        started,
    };
    let out_flags = flags.clone();
    let live_index = (cfg.fw_live.is_some() && lossy).then(|| Arc::new(RwLock::new(FwIndex::default())));
    let fw_index = fw_side.as_ref().map(|f| Arc::clone(&f.index)).or_else(|| live_index.clone());
    let enrich = writer::Enrich { fw: fw_index, log_origin: None };
    let out_thread = std::thread::Builder::new()
        .name("picket-output".into())
        .spawn(move || writer::run(sink, out_rx, out_flags, stats_src, enrich))
        .map_err(spawn_err)?;

    let mut analysis = Analysis::start(&shared, &rules, cfg.home, lossy, end, &out_tx)?;
    // Live firewall logs: their own thread, fed attempts by the reader.
    let mut live_fw = None;
    if let (Some(lc), Some(index)) = (cfg.fw_live, live_index) {
        let (fw, tap) = LiveFw::new(lc, Arc::clone(&shared), out_tx.clone(), index)
            .map_err(|msg| CaptureError::Path { path: "--fw-log".into(), msg })?;
        if let Some(a) = fw.syslog_addr() {
            eprintln!("picket: note: receiving syslog on udp {a}");
        }
        let h = std::thread::Builder::new().name("picket-fwlog".into()).spawn(move || fw.run()).map_err(spawn_err)?;
        live_fw = Some((h, tap));
    }
    // The fw_correlation event is written after the workers' events.
    let fw_tx = fw_side.as_ref().map(|_| out_tx.clone());
    drop(out_tx);

    let mut file_errors = Vec::new();
    if let Some((cap, link)) = opened_live {
        let (fw_thread, mut tap) = live_fw.map_or((None, None), |(h, t)| (Some(h), Some(t)));
        if let Err(e) = capture::read_live(cap, link, &mut analysis.dispatcher, &stats, &flags, tap.as_mut()) {
            file_errors.push(e);
        }
        // Hanging up the tap tells the log thread the capture is over.
        drop(tap);
        if let Some(h) = fw_thread {
            let _ = h.join();
        }
    } else if let Input::Files { filter, .. } = &cfg.input {
        for (i, path) in files.iter().enumerate() {
            if flags.stop_requested() {
                break;
            }
            analysis.dispatcher.set_sensor(i as u16);
            let res = capture::open_file(path, filter.as_deref()).and_then(|(cap, link)| {
                let corr = fw_side.as_mut().map(|f| &mut f.corr);
                capture::read_file(path, cap, link, &mut analysis.dispatcher, &stats, &flags, corr)
            });
            if let Err(e) = res {
                stats.bad_files.fetch_add(1, Relaxed);
                eprintln!("picket: error: {e}");
                file_errors.push(e);
            }
        }
        // A signal cut the replay short: say so in the stats, and end the
        // open detections with `shutdown`, not `end_of_input`.
        if flags.stop_requested() {
            stats.interrupted.store(true, Relaxed);
        }
    }
    analysis.finish();
    if let (Some(fw), Some(tx)) = (fw_side, fw_tx) {
        let outcome = fw.corr.finish();
        let sensor = if sensors.len() == 1 { sensors[0].clone() } else { format!("{} files", sensors.len()) };
        let input = report::ReportInput {
            files: &fw.tallies,
            ports: &shared.ports,
            sensor: &sensor,
            fallback_us: fw.reference_us,
            top_sources: 10,
            live: false,
            is_final: true,
        };
        let at = stats.clock_us.load(Relaxed);
        let _ = tx.send(report::fw_correlation_with(&fw.agg, &input, Some((&outcome, at))));
    }
    drop(shared);
    let output_error = match out_thread.join() {
        Ok(r) => r.err(),
        Err(_) => Some(std::io::Error::other("output thread panicked")),
    };
    Ok(RunReport { file_errors, output_error })
}

/// A `picket fwlog` run: firewall logs alone, no capture.
pub struct FwRunConfig {
    pub files: Vec<PathBuf>,
    /// Format, zone and reference time; the file index is set per file.
    pub ctx: LineCtx,
    pub rules: Rules,
    pub home: HomeNet,
    pub workers: usize,
    pub community_id_seed: u16,
    pub output: Option<PathBuf>,
    pub top_sources: usize,
}

/// Reads every log, feeding its denials to the detectors as packets (in
/// file order; `fwlog::feed`), then writes the detections, the
/// `fw_correlation` event and the final stats. A file that cannot be opened
/// fails the run before any is read; a read error in the middle of one is
/// reported and the run goes on.
pub fn run_fwlog(cfg: FwRunConfig, flags: Flags) -> Result<RunReport, CaptureError> {
    let started = Instant::now();
    let inputs = fwlog::open_inputs(&cfg.files).map_err(|e| CaptureError::Path { path: e.path, msg: e.msg })?;
    let sink = Sink::open(cfg.output.as_deref()).map_err(|e| CaptureError::Path {
        path: cfg.output.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        msg: format!("cannot open output: {e}"),
    })?;
    let names: Vec<String> = cfg.files.iter().map(|p| capture::sensor_name(p)).collect();
    let sensor = if names.len() == 1 { names[0].clone() } else { format!("{} files", names.len()) };
    let stats = Arc::new(Stats::default());
    let (out_tx, out_rx) = bounded::<EventLine>(4096);
    let src = StatsSource { stats: Arc::clone(&stats), sensor: sensor.clone(), started };
    let out_flags = flags.clone();
    let evidence = Arc::new(Evidence::default());
    let enrich = writer::Enrich { fw: None, log_origin: Some(Arc::clone(&evidence)) };
    let out_thread = std::thread::Builder::new()
        .name("picket-output".into())
        .spawn(move || writer::run(sink, out_rx, out_flags, src, enrich))
        .map_err(spawn_err)?;
    let rules = Arc::new(cfg.rules);
    let shared = Arc::new(Shared {
        general: rules.general.clone(),
        ports: rules.ports.clone(),
        home: cfg.home.clone(),
        community_id_seed: cfg.community_id_seed,
        sensors: names.clone(),
        stats: Arc::clone(&stats),
        workers: cfg.workers.max(1),
        from_log: true,
    });
    let mut analysis = Analysis::start(&shared, &rules, cfg.home, false, EndReason::EndOfInput, &out_tx)?;

    let mut agg = report::Aggregate::new();
    let mut tallies = Vec::new();
    let mut file_errors = Vec::new();
    for (i, (name, reader)) in inputs.into_iter().enumerate() {
        if flags.stop_requested() {
            break;
        }
        analysis.dispatcher.set_sensor(i as u16);
        let mut parser = LineParser::new(LineCtx { file: i as u16, ..cfg.ctx });
        let mut tally = FileTally::new(&names[i]);
        let res = fwlog::read_lines_until(
            reader,
            &mut parser,
            &mut tally,
            || flags.stop_requested(),
            |r| {
                agg.add(r);
                if let Some(p) = evidence.feed(r, &stats) {
                    analysis.dispatcher.push(&p);
                }
            },
        );
        if let Err(e) = res {
            let e = CaptureError::Path { path: name, msg: format!("read error after line {}: {e}", tally.lines) };
            eprintln!("picket: error: {e}");
            stats.bad_files.fetch_add(1, Relaxed);
            file_errors.push(e);
        }
        count_fw_file(&stats, &tally);
        tallies.push(tally);
    }
    if flags.stop_requested() {
        stats.interrupted.store(true, Relaxed);
    }
    analysis.finish();
    let input = report::ReportInput {
        files: &tallies,
        ports: &shared.ports,
        sensor: &sensor,
        fallback_us: cfg.ctx.time.reference_us,
        top_sources: cfg.top_sources,
        live: false,
        is_final: true,
    };
    stats.clock_us.store(agg.last_us.unwrap_or(cfg.ctx.time.reference_us), Relaxed);
    let _ = out_tx.send(report::fw_correlation(&agg, &input));
    drop(out_tx);
    drop(shared);
    let output_error = match out_thread.join() {
        Ok(r) => r.err(),
        Err(_) => Some(std::io::Error::other("output thread panicked")),
    };
    Ok(RunReport { file_errors, output_error })
}
