//! Firewall logs in a run: reading `--fw-log` files before a replay (and the
//! `fw_correlation` event after it), and `picket fwlog`, where the logs alone
//! feed the detectors.

use super::stages::{self, Analysis, Output, RunReport, SharedInput};
use crate::detect::{EndReason, Rules, Shared};
use crate::fwlog::correlate::{Correlator, FwIndex};
use crate::fwlog::feed::Evidence;
use crate::fwlog::reader::Input as LogInput;
use crate::fwlog::{self, FileTally, LineCtx, LineParser, report};
use crate::homenet::HomeNet;
use crate::input::capture::{self, CaptureError};
use crate::output::event::EventLine;
use crate::output::writer::{Enrich, StatsSource};
use crate::signals::Flags;
use crate::stats::Stats;
use crossbeam_channel::Sender;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::Instant;

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
pub(super) struct FwSide {
    agg: report::Aggregate,
    tallies: Vec<FileTally>,
    pub corr: Correlator,
    pub index: Arc<RwLock<FwIndex>>,
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
        crate::note!("{w}");
    }
}

fn open_logs(files: &[PathBuf]) -> Result<Vec<LogInput>, CaptureError> {
    fwlog::open_inputs(files).map_err(|e| CaptureError::Path { path: e.path, msg: e.msg })
}

/// Reads one log to its end (or a stop signal), giving each record to
/// `each`; its tally is added to the stats.
fn read_log(
    (name, reader): LogInput,
    ctx: LineCtx,
    sensor: &str,
    stats: &Stats,
    flags: &Flags,
    each: impl FnMut(&fwlog::FwRecord),
) -> (FileTally, Result<(), CaptureError>) {
    let mut parser = LineParser::new(ctx);
    let mut tally = FileTally::new(sensor);
    let res = fwlog::read_lines_until(reader, &mut parser, &mut tally, || flags.stop_requested(), each)
        .map(drop)
        .map_err(|e| CaptureError::Path { path: name, msg: format!("read error after line {}: {e}", tally.lines) });
    count_fw_file(stats, &tally);
    (tally, res)
}

/// Reads every `--fw-log` before the capture (a file that cannot be opened
/// fails the run; bad lines are counted and skipped).
pub(super) fn read_fw_logs(
    fw: &FwLogs,
    captures: &[PathBuf],
    home: &HomeNet,
    stats: &Stats,
    flags: &Flags,
) -> Result<FwSide, CaptureError> {
    let inputs = open_logs(&fw.files)?;
    let reference_us = fw.reference_us.unwrap_or_else(|| capture_start_us(captures));
    let ctx = LineCtx {
        time: fwlog::time::TimeCtx { reference_us, tz_offset_s: fw.tz_offset_s },
        forced: fw.forced,
        file: 0,
    };
    let mut agg = report::Aggregate::new();
    let mut tallies = Vec::new();
    let mut records = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let sensor = capture::sensor_name(&fw.files[i]);
        let (tally, res) = read_log(input, LineCtx { file: i as u16, ..ctx }, &sensor, stats, flags, |r| {
            agg.add(r);
            if records.len() < MAX_FW_RECORDS {
                records.push(*r);
            }
        });
        res?;
        let mut tally = tally;
        tally.sender = fw.files[i].display().to_string();
        tallies.push(tally);
    }
    let corr = Correlator::new(&records, home.clone());
    let mut index = FwIndex::new(&records);
    for (i, path) in fw.files.iter().enumerate() {
        index.set_origin(i as u16, "file", &path.display().to_string());
    }
    index.publish(stats);
    let index = Arc::new(RwLock::new(index));
    Ok(FwSide { agg, tallies, corr, index, reference_us })
}

impl FwSide {
    /// After the replay: the `fw_correlation` event, what the log said
    /// against what the wire showed.
    pub(super) fn send_correlation(self, shared: &Shared, sensor: &str, stats: &Stats, tx: &Sender<EventLine>) {
        let outcome = self.corr.finish();
        let input = report::ReportInput {
            files: &self.tallies,
            ports: &shared.ports,
            sensor,
            fallback_us: self.reference_us,
            top_sources: 10,
            live: false,
            is_final: true,
        };
        let at = stats.clock_us.load(Relaxed);
        self.agg.publish(stats);
        let _ = tx.send(report::fw_correlation_with(&self.agg, &input, Some((&outcome, at))));
    }
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
    pub output: Vec<crate::output::target::Target>,
    pub top_sources: usize,
    /// `--format text`.
    pub text: bool,
}

/// What reading the logs of a `picket fwlog` run left behind.
struct LogsRead {
    agg: report::Aggregate,
    tallies: Vec<FileTally>,
    file_errors: Vec<CaptureError>,
}

/// Reads the logs in file order, feeding each denial to the detectors as a
/// packet; a read error ends that file, is reported, and the run goes on.
fn feed_logs(
    inputs: Vec<LogInput>,
    ctx: LineCtx,
    names: &[String],
    analysis: &mut Analysis,
    evidence: &Evidence,
    stats: &Stats,
    flags: &Flags,
) -> LogsRead {
    let mut out = LogsRead { agg: report::Aggregate::new(), tallies: Vec::new(), file_errors: Vec::new() };
    for (i, input) in inputs.into_iter().enumerate() {
        if flags.stop_requested() {
            break;
        }
        analysis.dispatcher.set_sensor(i as u16);
        let ctx = LineCtx { file: i as u16, ..ctx };
        let (tally, res) = read_log(input, ctx, &names[i], stats, flags, |r| {
            out.agg.add(r);
            if let Some(p) = evidence.feed(r, stats) {
                analysis.dispatcher.push(&p);
            }
        });
        if let Err(e) = res {
            crate::note!("picket: error: {e}");
            stats.bad_files.fetch_add(1, Relaxed);
            out.file_errors.push(e);
        }
        out.tallies.push(tally);
    }
    if flags.stop_requested() {
        stats.interrupted.store(true, Relaxed);
    }
    out
}

/// Reads every log, feeding its denials to the detectors as packets (in
/// file order; `fwlog::feed`), then writes the detections, the
/// `fw_correlation` event and the final stats. A file that cannot be opened
/// fails the run before any is read; a read error in the middle of one is
/// reported and the run goes on.
pub fn run_fwlog(cfg: FwRunConfig, flags: Flags) -> Result<RunReport, CaptureError> {
    let started = Instant::now();
    let inputs = open_logs(&cfg.files)?;
    let names: Vec<String> = cfg.files.iter().map(|p| capture::sensor_name(p)).collect();
    let sensor = stages::sensor_label(&names);
    let stats = Arc::new(Stats::default());
    let outputs = stages::open_outputs(&cfg.output, false, cfg.text, &stats)?;
    let src = StatsSource { stats: Arc::clone(&stats), sensor: sensor.clone(), started };
    let evidence = Arc::new(Evidence::default());
    let enrich = Enrich { fw: None, log_origin: Some(Arc::clone(&evidence)) };
    let (output, out_tx) = Output::start(outputs, &flags, src, enrich)?;
    let rules = Arc::new(cfg.rules);
    let shared = stages::shared(SharedInput {
        rules: &rules,
        home: &cfg.home,
        community_id_seed: cfg.community_id_seed,
        sensors: names.clone(),
        stats: &stats,
        workers: cfg.workers,
        from_log: true,
        replay: true,
        inventory_every_s: None,
    });
    let mut analysis = Analysis::start(&shared, &rules, cfg.home, (false, false), EndReason::EndOfInput, &out_tx)?;
    let mut read = feed_logs(inputs, cfg.ctx, &names, &mut analysis, &evidence, &stats, &flags);
    for (t, path) in read.tallies.iter_mut().zip(&cfg.files) {
        t.sender = path.display().to_string();
    }
    analysis.finish();
    let input = report::ReportInput {
        files: &read.tallies,
        ports: &shared.ports,
        sensor: &sensor,
        fallback_us: cfg.ctx.time.reference_us,
        top_sources: cfg.top_sources,
        live: false,
        is_final: true,
    };
    stats.clock_us.store(read.agg.last_us.unwrap_or(cfg.ctx.time.reference_us), Relaxed);
    read.agg.publish(&stats);
    let _ = out_tx.send(report::fw_correlation(&read.agg, &input));
    drop(out_tx);
    drop(shared);
    Ok(RunReport { file_errors: read.file_errors, output_error: output.join() })
}
