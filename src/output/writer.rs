//! The output thread: the only writer of event lines, to stdout or appended
//! to `-o FILE`. Reopens the file on SIGHUP, writes SIGUSR1 stats snapshots,
//! counts events by type, and treats a closed pipe (`picket ... | head`) as a
//! request to stop, not an error.

use crate::fwlog::correlate::FwIndex;
use crate::fwlog::feed::Evidence;
use crate::output::event::{EventBuilder, EventLine};
use crate::signals::Flags;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Where events go.
pub enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File { path: PathBuf, w: BufWriter<File> },
}

impl Sink {
    /// Opens `path` for appending, or stdout when None.
    pub fn open(path: Option<&Path>) -> io::Result<Sink> {
        match path {
            None => Ok(Sink::Stdout(BufWriter::with_capacity(1 << 16, io::stdout()))),
            Some(p) => {
                let f = OpenOptions::new().create(true).append(true).open(p)?;
                Ok(Sink::File { path: p.to_path_buf(), w: BufWriter::with_capacity(1 << 16, f) })
            }
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(w) => w,
            Sink::File { w, .. } => w,
        }
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let w = self.writer();
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Sink::File { path, w } = self {
            w.flush()?;
            let f = OpenOptions::new().create(true).append(true).open(&*path)?;
            *w = BufWriter::with_capacity(1 << 16, f);
        }
        Ok(())
    }
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

/// Writes events until every sender is gone. Returns the first write error
/// other than a broken pipe.
pub fn run(mut sink: Sink, rx: Receiver<EventLine>, flags: Flags, src: StatsSource, enrich: Enrich) -> io::Result<()> {
    let mut broken = false;
    let mut first_err: Option<io::Error> = None;
    let mut write = |sink: &mut Sink, ev: &EventLine, broken: &mut bool| {
        src.stats.count_event(ev.kind);
        if *broken {
            return;
        }
        let enriched = if enrich.is_empty() { None } else { enriched(&enrich, ev) };
        if let Err(e) = sink.write_line(enriched.as_deref().unwrap_or(&ev.line)) {
            *broken = true;
            flags.request_stop();
            if e.kind() != io::ErrorKind::BrokenPipe && first_err.is_none() {
                first_err = Some(e);
            }
        }
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                write(&mut sink, &ev, &mut broken);
                if !rx.is_empty() {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if flags.take_stats_write() {
            write(&mut sink, &src.event(false), &mut broken);
        }
        if flags.take_reopen() && !broken {
            let _ = sink.reopen();
        }
        if !broken {
            let _ = sink.flush();
        }
    }
    write(&mut sink, &src.event(true), &mut broken);
    if !broken
        && let Err(e) = sink.flush()
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e);
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
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
