//! The output thread: the only writer of event lines, to stdout or appended
//! to `-o FILE`. Reopens the file on SIGHUP, writes SIGUSR1 stats snapshots,
//! counts events by type, and treats a closed pipe (`picket ... | head`) as a
//! request to stop, not an error.
//!
//! A line is written whole or not at all: lines wait whole in the thread's
//! own buffer, and when a write stops part way through a line (a full
//! disk, a file size limit) the part written is cut back off a regular file
//! (or, on a pipe, the next write starts with a newline), and the line
//! stays waiting. When the output fails in a replay the replay stops, and
//! the final stats go to stderr. Live (`Sink::patient`), capture goes on:
//! events wait (up to `HOLD_BYTES`), writing is retried every `RETRY`,
//! what could not wait is counted (`stats.output`), and writing resumes
//! once space returns.
use crate::fwlog::correlate::FwIndex;
use crate::fwlog::feed::Evidence;
use crate::output::event::{EventBuilder, EventLine};
use crate::output::sinks::{Ctl, Datagram, GRACE, Line, Redis};
use crate::output::target::Target;
use crate::signals::Flags;
use crate::stats::{SinkStats, Stats};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Lines gathered before a write while the output keeps up.
const BATCH_BYTES: usize = 1 << 16;
/// Live: bytes of whole lines that wait while the output fails; past
/// this, events are counted in `stats.output.events_dropped`.
pub const HOLD_BYTES: usize = 16 << 20;
/// Live: how often a failed output is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Where events go: stdout or `-o FILE` (appended), written in whole lines.
pub struct Sink {
    out: File,
    /// `-o FILE`; None for stdout.
    path: Option<PathBuf>,
    /// Whole lines not yet written, oldest first.
    buf: Vec<u8>,
    /// Lines in `buf`.
    lines: u64,
    /// Part of a line is on the output and could not be cut back: the next
    /// write starts with a newline.
    torn: bool,
    /// Live: a failed write keeps the lines and is retried.
    patient: bool,
    /// `--format text`: lines are rendered for a person (`output::text`).
    text: Option<crate::output::text::Text>,
    /// Lines written since the writer last took the count.
    written: u64,
}

impl Sink {
    /// Opens `path` for appending, or stdout when None.
    pub fn open(path: Option<&Path>) -> io::Result<Sink> {
        let out = match path {
            None => File::from(io::stdout().as_fd().try_clone_to_owned()?),
            Some(p) => OpenOptions::new().create(true).append(true).open(p)?,
        };
        Ok(Sink {
            out,
            path: path.map(Path::to_path_buf),
            buf: Vec::with_capacity(BATCH_BYTES * 2),
            lines: 0,
            torn: false,
            patient: false,
            text: None,
            written: 0,
        })
    }

    /// Live: a failed write does not stop the run (see the module doc).
    pub fn patient(mut self) -> Sink {
        self.patient = true;
        self
    }

    /// `--format text`: every line is rendered by `output::text`.
    pub fn text(mut self) -> Sink {
        self.text = Some(crate::output::text::Text::new());
        self
    }

    /// The output's name for messages.
    fn name(&self) -> String {
        self.path.as_ref().map_or_else(|| "stdout".to_string(), |p| p.display().to_string())
    }

    /// Adds one line to the waiting lines.
    fn hold(&mut self, line: &str) {
        if let Some(t) = &mut self.text {
            self.lines += t.render(line, &mut self.buf);
            return;
        }
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.lines += 1;
    }

    /// Adds one line to the waiting lines (writes them when enough wait).
    fn push(&mut self, line: &str) -> io::Result<()> {
        self.hold(line);
        if self.buf.len() >= BATCH_BYTES { self.flush() } else { Ok(()) }
    }

    /// Writes every waiting line. On an error the lines written whole are
    /// gone from the buffer, the rest wait, and no part line is left on
    /// the output that the next write would glue onto.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.torn {
            write_once(&mut self.out, b"\n")?;
            self.torn = false;
        }
        let mut off = 0;
        while off < self.buf.len() {
            match self.out.write(&self.buf[off..]) {
                Ok(0) => return Err(self.settle(off, io::ErrorKind::WriteZero.into())),
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.settle(off, e)),
            }
        }
        self.buf.clear();
        self.written += self.lines;
        self.lines = 0;
        Ok(())
    }

    /// A write stopped after `off` bytes of the buffer: drops the whole
    /// lines written, and cuts the part of the next one off the file (or
    /// remembers to start a new line).
    #[cold]
    fn settle(&mut self, off: usize, e: io::Error) -> io::Error {
        let whole = self.buf[..off].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let part = (off - whole) as u64;
        if part > 0 && !cut_back(&mut self.out, part) {
            self.torn = true;
        }
        let done = self.buf[..whole].iter().filter(|b| **b == b'\n').count() as u64;
        self.lines -= done;
        self.written += done;
        self.buf.drain(..whole);
        e
    }

    /// Drops the waiting lines (they could not be written); how many.
    fn discard(&mut self) -> u64 {
        let n = self.lines;
        self.buf.clear();
        self.lines = 0;
        n
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Some(path) = &self.path {
            // What waits goes to the new file.
            self.out = OpenOptions::new().create(true).append(true).open(path)?;
            self.torn = false;
        }
        Ok(())
    }
}

/// One write of a few bytes, all or nothing.
fn write_once(out: &mut File, b: &[u8]) -> io::Result<()> {
    loop {
        match out.write(b) {
            Ok(n) if n == b.len() => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Cuts the last `part` bytes off a regular file (a line written in part);
/// false when the output is no regular file or the cut failed.
fn cut_back(out: &mut File, part: u64) -> bool {
    let Ok(m) = out.metadata() else { return false };
    if !m.is_file() || m.len() < part {
        return false;
    }
    // Opened without O_APPEND (stdout redirected with `>`), the offset
    // must come back too, or the next write would leave a hole.
    out.set_len(m.len() - part).is_ok() && out.seek(io::SeekFrom::End(0)).is_ok()
}

/// What the output thread needs to write stats snapshots.
pub struct StatsSource {
    pub stats: Arc<Stats>,
    pub sensor: String,
    pub started: Instant,
}

impl StatsSource {
    /// A complete `stats` event line.
    pub fn event(&self, is_final: bool) -> EventLine {
        let wall = self.started.elapsed().as_secs_f64();
        EventBuilder::new("stats", self.stats.clock_us.load(Relaxed).max(0), &self.sensor)
            .details("stats", self.stats.to_json(wall, is_final))
    }
}

/// What the output thread adds to detection events.
#[derive(Default)]
pub struct Enrich {
    /// `--fw-log`: the `firewall` object (records naming the event's flow
    /// or source).
    pub fw: Option<Arc<RwLock<FwIndex>>>,
    /// `picket fwlog`: detections made from log records get
    /// `"origin": "firewall_log"` and a caveat in their summary.
    pub log_origin: Option<Arc<Evidence>>,
}

impl Enrich {
    fn is_empty(&self) -> bool {
        self.fw.is_none() && self.log_origin.is_none()
    }
}

/// How writing goes (see the module doc).
struct State {
    /// The output is gone (closed pipe) or failed in a replay: nothing more
    /// is written.
    broken: bool,
    /// The first error other than a closed pipe.
    first_err: Option<io::Error>,
    /// Live: the output failed; retried at this time.
    retry_at: Option<Instant>,
}

impl State {
    /// A failed write: a closed pipe stops the run quietly; another error
    /// stops a replay, and live makes the lines wait for a retry.
    fn failed(&mut self, sink: &Sink, e: io::Error, ctl: &Ctl) {
        ctl.write_error();
        if e.kind() == io::ErrorKind::BrokenPipe {
            self.broken = true;
            ctl.flags.request_stop();
            return;
        }
        if !sink.patient {
            self.broken = true;
            ctl.flags.request_stop();
        } else if self.retry_at.is_none() {
            crate::note!(
                "picket: warning: writing events to {}: {e}; capture goes on, events wait (up to {} MiB) and writing is retried every {} s",
                sink.name(),
                HOLD_BYTES >> 20,
                RETRY.as_secs()
            );
        }
        if sink.patient {
            self.retry_at = Some(Instant::now() + RETRY);
        }
        if self.first_err.is_none() {
            self.first_err = Some(e);
        }
    }

    /// Writes what waits, when a write may go now.
    fn flush(&mut self, sink: &mut Sink, ctl: &Ctl) {
        if self.broken || self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        // A progress bar on the terminal is cleared while lines are written.
        let res = crate::note::above_bar(|| sink.flush());
        ctl.written(std::mem::take(&mut sink.written));
        match res {
            Ok(()) => {
                if self.retry_at.take().is_some() {
                    crate::note!(
                        "picket: note: writing events to {} again ({} events could not wait: stats.output.sinks)",
                        sink.name(),
                        ctl.stats.dropped.load(Relaxed)
                    );
                    // Live, the run went on: the error is over.
                    self.first_err = None;
                }
            }
            Err(e) => self.failed(sink, e, ctl),
        }
    }
}

/// A file or stdout (`-o PATH`, `-o -`): writes its queue's lines until
/// the queue closes (see the module doc). Returns the first write error
/// other than a broken pipe (live: one the output did not recover from).
pub fn run_file(mut sink: Sink, rx: Receiver<Line>, ctl: &Ctl) -> io::Result<()> {
    let mut st = State { broken: false, first_err: None, retry_at: None };
    let mut final_waits = false;
    let write = |sink: &mut Sink, line: &str, st: &mut State| {
        if st.broken || (st.retry_at.is_some() && sink.buf.len() >= HOLD_BYTES) {
            ctl.dropped(1);
            return;
        }
        if st.retry_at.is_some() {
            // Failing: the line waits for the retry.
            sink.hold(line);
        } else if let Err(e) = sink.push(line) {
            ctl.written(std::mem::take(&mut sink.written));
            st.failed(sink, e, ctl);
        }
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.last => {
                // The last word: the final stats line, after every event
                // (lost with the output: it goes to stderr instead).
                if st.broken {
                    ctl.dropped(1);
                } else {
                    final_waits = true;
                    st.retry_at = st.retry_at.map(|_| Instant::now());
                    sink.hold(&line.text);
                }
            }
            Ok(line) => {
                write(&mut sink, &line.text, &mut st);
                if !rx.is_empty() {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if ctl.reopen.swap(false, Relaxed) && !st.broken {
            st.flush(&mut sink, ctl);
            if let Err(e) = sink.reopen() {
                crate::note!("picket: warning: reopening {}: {e}", sink.name());
            } else if st.retry_at.is_some() {
                // A new file: try it now.
                st.retry_at = Some(Instant::now());
            }
        }
        st.flush(&mut sink, ctl);
    }
    if final_waits {
        st.retry_at = st.retry_at.map(|_| Instant::now());
        st.flush(&mut sink, ctl);
    }
    if st.retry_at.is_some() || st.first_err.is_some() {
        // What still waits is lost (the final stats line among it, which
        // goes to stderr instead): each event counted in `stats.events` is
        // written or dropped.
        ctl.dropped(sink.discard());
        return Err(st.first_err.take().unwrap_or_else(|| io::Error::other("output failed")));
    }
    Ok(())
}

/// Every `-o` target, opened (sockets connected) before any thread starts
/// and before `--user` drops privileges.
pub struct Outputs {
    sinks: Vec<(Opened, Arc<SinkStats>)>,
    /// A replay: files and stdout hold the analysis back rather than lose
    /// events; live, no sink ever does.
    patient: bool,
}

impl Outputs {
    /// Opens each target (stdout when there is none); live (`patient`),
    /// failing files keep their lines for a retry. Each gets its counters
    /// in `stats.output.sinks`.
    pub fn open(targets: &[Target], patient: bool, text: bool, stats: &Stats) -> Result<Outputs, (Target, io::Error)> {
        let stdout = [Target::Stdout];
        let targets = if targets.is_empty() { &stdout[..] } else { targets };
        let mut sinks = Vec::with_capacity(targets.len());
        for t in targets {
            let opened = Opened::open(t, patient, text).map_err(|e| (t.clone(), e))?;
            let s = Arc::new(SinkStats { target: t.to_string(), ..SinkStats::default() });
            if let Ok(mut v) = stats.output_sinks.lock() {
                v.push(Arc::clone(&s));
            }
            sinks.push((opened, s));
        }
        Ok(Outputs { sinks, patient })
    }
}

/// Events a sink's queue holds; what does not fit is that sink's loss.
pub const SINK_QUEUE: usize = 16_384;
/// A replay's file or stdout: a short queue that holds the analysis back.
const STREAM_QUEUE: usize = 1024;

/// One running sink, as the output thread sees it.
struct Running {
    tx: Sender<Line>,
    ctl: Arc<Ctl>,
    /// The queue waits (a replay's file or stdout) rather than lose.
    waits: bool,
    /// The queue was full once (said on stderr).
    full_noted: bool,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

impl Running {
    /// Hands `line` to the sink, or counts it lost.
    fn give(&mut self, line: &Line) {
        let res = if self.waits {
            self.tx.send(line.clone()).map_err(|e| crossbeam_channel::TrySendError::Disconnected(e.0))
        } else if line.last {
            self.tx.send_timeout(line.clone(), GRACE).map_err(|e| match e {
                crossbeam_channel::SendTimeoutError::Timeout(l) => crossbeam_channel::TrySendError::Full(l),
                crossbeam_channel::SendTimeoutError::Disconnected(l) => {
                    crossbeam_channel::TrySendError::Disconnected(l)
                }
            })
        } else {
            self.tx.try_send(line.clone())
        };
        match res {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                self.ctl.dropped(1);
                if !self.full_noted {
                    self.full_noted = true;
                    crate::note!(
                        "picket: warning: {}: cannot keep up ({SINK_QUEUE} events queued); capture goes on and what it cannot take is counted in stats.output.sinks",
                        self.ctl.stats.target
                    );
                }
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => self.ctl.dropped(1),
        }
    }
}

/// The output thread: counts and enriches each event, writes SIGUSR1 stats
/// snapshots and the final stats line, and hands every line to each `-o`
/// sink's queue; each sink writes on its own thread. Returns the first
/// sink error (a replay's failed file; live, an output that had not
/// recovered at the end); the final stats then go to stderr too.
pub fn run(
    outputs: Outputs,
    rx: Receiver<EventLine>,
    flags: Flags,
    src: StatsSource,
    enrich: Enrich,
) -> io::Result<()> {
    let stats = Arc::clone(&src.stats);
    let mut running = Vec::with_capacity(outputs.sinks.len());
    for (i, (opened, sink_stats)) in outputs.sinks.into_iter().enumerate() {
        let waits = !outputs.patient && matches!(opened, Opened::File(_));
        let (tx, srx) = bounded::<Line>(if waits { STREAM_QUEUE } else { SINK_QUEUE });
        let ctl = Arc::new(Ctl::new(sink_stats, Arc::clone(&stats), flags.clone()));
        let c = Arc::clone(&ctl);
        let thread = std::thread::Builder::new().name(format!("picket-out-{i}")).spawn(move || opened.run(srx, &c))?;
        running.push(Running { tx, ctl, waits, full_noted: false, thread });
    }
    let fan = |running: &mut Vec<Running>, kind: &'static str, text: &str, last: bool| {
        stats.count_event(kind);
        let line = Line { text: Arc::from(text), kind, last };
        for r in running.iter_mut() {
            r.give(&line);
        }
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                let enriched = if enrich.is_empty() { None } else { enriched(&enrich, &ev) };
                fan(&mut running, ev.kind, enriched.as_deref().unwrap_or(&ev.line), false);
                if !rx.is_empty() {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if flags.take_stats_write() {
            let ev = src.event(false);
            fan(&mut running, ev.kind, &ev.line, false);
        }
        if flags.take_reopen() {
            for r in &running {
                r.ctl.reopen.store(true, Relaxed);
            }
        }
    }
    let ev = src.event(true);
    fan(&mut running, ev.kind, &ev.line, true);
    // Every sink's grace starts now, together.
    let mut errors = Vec::new();
    let threads: Vec<_> = running
        .into_iter()
        .map(|r| {
            r.ctl.closing.store(true, Relaxed);
            (r.ctl, r.thread)
        })
        .collect();
    for (ctl, thread) in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push((ctl.stats.target.clone(), e)),
            Err(_) => errors.push((ctl.stats.target.clone(), io::Error::other("output thread panicked"))),
        }
    }
    let Some((target, e)) = errors.into_iter().next() else { return Ok(()) };
    crate::note!(
        "picket: error: writing events to {target}: {e}; the final stats follow on stderr\n{}",
        src.event(true).line
    );
    Err(e)
}

/// A detection event with what `enrich` adds, or None to write it as it is.
fn enriched(enrich: &Enrich, ev: &EventLine) -> Option<String> {
    if matches!(ev.kind, "stats" | "fw_correlation" | "service_inventory") {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_str(&ev.line).ok()?;
    let obj = v.as_object_mut()?;
    let mut changed = false;
    if let Some(evidence) = &enrich.log_origin {
        let src = subject(obj, ev.kind);
        obj.insert("origin".into(), "firewall_log".into());
        if let Some(serde_json::Value::String(s)) = obj.get_mut("summary") {
            s.push_str(&evidence.caveat(src));
        }
        changed = true;
    }
    if let Some(ix) = &enrich.fw
        && let Ok(ix) = ix.read()
    {
        changed |= with_firewall(&ix, obj, ev.kind).is_some();
    }
    if changed { serde_json::to_string(&v).ok() } else { None }
}

/// The address an event is about: its source, or for events about a victim
/// or a group, the subject its details name.
fn subject(obj: &serde_json::Map<String, serde_json::Value>, kind: &str) -> Option<std::net::IpAddr> {
    let addr = |k: &str| obj.get(k).and_then(|x| x.as_str()).and_then(|s| s.parse::<std::net::IpAddr>().ok());
    addr("src_ip").or_else(|| {
        obj.get(kind)
            .and_then(|d| d.get("suspected_source").or(d.get("victim")))
            .and_then(|x| x.as_str())
            .and_then(|s| s.parse().ok())
    })
}

/// Adds the `firewall` object (`--fw-log`): the records naming the event's
/// flow, else its source. Events about no source, and sources the logs
/// never name, are left as they are (None).
fn with_firewall(ix: &FwIndex, obj: &mut serde_json::Map<String, serde_json::Value>, kind: &str) -> Option<()> {
    let src = subject(obj, kind)?;
    let addr = |k: &str| obj.get(k).and_then(|x| x.as_str()).and_then(|s| s.parse::<std::net::IpAddr>().ok());
    let dport = obj.get("dest_port").and_then(|x| x.as_u64()).and_then(|p| u16::try_from(p).ok());
    let fwv = ix.lookup(src, addr("dest_ip"), dport)?;
    obj.insert("firewall".into(), fwv);
    Some(())
}

/// An opened `-o` target, ready for its thread.
pub enum Opened {
    File(Sink),
    Datagram(Datagram),
    Redis(Box<Redis>),
}

impl Opened {
    /// Opens `target`; live (`patient`), a failing file keeps its lines
    /// for a retry; `text`: files and stdout get `--format text`'s lines
    /// (sockets and Redis always get JSON).
    pub fn open(target: &Target, patient: bool, text: bool) -> io::Result<Opened> {
        let file = |path: Option<&std::path::Path>| -> io::Result<Opened> {
            let s = Sink::open(path)?;
            let s = if patient { s.patient() } else { s };
            Ok(Opened::File(if text { s.text() } else { s }))
        };
        Ok(match target {
            Target::File(p) => file(Some(p))?,
            Target::Stdout => file(None)?,
            Target::Unix(_) | Target::SyslogLocal(_) | Target::SyslogUdp { .. } => {
                Opened::Datagram(Datagram::open(target)?)
            }
            Target::Redis { .. } => Opened::Redis(Box::new(Redis::open(target)?)),
        })
    }

    /// Runs the sink until its queue closes.
    pub fn run(self, rx: Receiver<Line>, ctl: &Ctl) -> io::Result<()> {
        match self {
            Opened::File(s) => run_file(s, rx, ctl),
            Opened::Datagram(d) => d.run(rx, ctl),
            Opened::Redis(r) => r.run(rx, ctl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Live on a device that is always full (`/dev/full`): the run is not
    /// stopped, lines wait up to `HOLD_BYTES`, the rest are counted, and
    /// what still waits at the end is counted too; the run reports the error.
    #[test]
    fn live_holds_lines_up_to_the_bound_and_counts_the_rest() {
        let stats = Arc::new(Stats::default());
        let Ok(outputs) = Outputs::open(&[Target::File("/dev/full".into())], true, false, &stats) else { return };
        let flags = Flags::default();
        let src = StatsSource { stats: Arc::clone(&stats), sensor: "t".into(), started: Instant::now() };
        let (tx, rx) = crossbeam_channel::unbounded();
        let line = format!("{{\"event_type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(1000));
        let per = line.len() + 1;
        let n = HOLD_BYTES / per + 100;
        for _ in 0..n {
            tx.send(EventLine { kind: "x", line: line.clone() }).unwrap();
        }
        drop(tx);
        let res = run(outputs, rx, flags.clone(), src, Enrich::default());
        assert!(res.is_err(), "the output never recovered");
        assert!(!flags.stop_requested(), "a live run is not stopped by its output");
        // Every event is lost in the end, each counted once, and so is the
        // final stats line (it goes to stderr).
        assert_eq!(stats.output_events_dropped.load(Relaxed), n as u64 + 1);
        assert!(stats.output_write_errors.load(Relaxed) >= 1);
        // ...and in the sink's own counts.
        let sinks = stats.output_sinks.lock().unwrap();
        assert_eq!(sinks[0].dropped.load(Relaxed), n as u64 + 1);
        assert_eq!(sinks[0].target, "/dev/full");
    }
}
