//! Firewall logs while picket captures live (`picket live --fw-log FILE
//! --syslog-listen ADDR:PORT`): one thread follows the files like `tail -F`
//! (`follow`), receives syslog datagrams (`syslog_udp`) and takes what the
//! TCP and TLS connections' threads read (`syslog_tcp`, never waiting on
//! them), parses every line, and correlates the records with the attempts
//! the capture saw, in windows of packet time.
//!
//! - The reader thread's [`LiveTap`] keeps the attempts toward the firewall
//!   (`correlate::Attempt`, a few dozen bytes each) and hands them over in
//!   batches through a bounded channel; a full channel drops the batch and
//!   counts it (`fw_attempts_dropped`), so the capture never waits for the
//!   logs.
//! - Every `STEP_US` of the sensor's packet clock, the records whose time
//!   (less the clock offset found so far) is more than `LAG_US` old are
//!   correlated with the attempts kept (`correlate::Correlator`), and
//!   attempts older than `MARGIN_US` before the cut are let go. Unlogged
//!   attempts are counted per window, once the log has said anything.
//! - Every report interval of packet time, and at shutdown, an
//!   `fw_correlation` event (`mode: live`, `final` false until the end)
//!   gives the running totals. Records also feed the `firewall` object of
//!   detection events as they arrive.
//! - Files are followed from their end: lines written before picket
//!   started describe traffic it never saw. A syslog message without a
//!   time of its own takes its arrival time.
//! - `worm_phase` (issue 14): the denials also feed the worm sentries, as
//!   `picket fwlog` feeds them, so an egress sweep the firewall drops
//!   before the span reaches phase III from the log alone. At each window,
//!   every due record that `feed::to_summary` makes into a TCP connection
//!   attempt or a UDP datagram goes to the worm aggregator as a
//!   `worm::Attempt` marked `logged`, at its time less the clock offset,
//!   then the window's cut as this thread's watermark (the aggregator
//!   waits for it, so worm events come up to `LAG_US + STEP_US` of packet
//!   time later than without a log). A denial is not counted twice: the
//!   correlator cannot tell (it only pairs attempts toward the home net,
//!   so an egress denial the span did see would stay "unmatched"), so the
//!   aggregator counts a (host, target, protocol, port) once within
//!   `hold_s`, from the wire or from the log, whichever comes first
//!   (`worm::Aggregator::fed_by_log`).
//!
//! Memory is bounded: records waiting for their window (`PENDING_BYTES`)
//! and attempts kept (`MAX_ATTEMPTS`) are capped, and what a cap refuses is
//! counted in the stats; the index behind the `firewall` object is bounded
//! by bytes and age (`correlate::FwIndex`). The live clock
//! (`pipeline::clock`) moves the sensor clock on an idle link, so records
//! are correlated and let go on time.

use super::correlate::{Attempt, Correlator, FwIndex, Outcome, Span};
use super::feed;
use super::reader::{FileTally, LineCtx, LineParser, MAX_LINE};
use super::record::{Format, FwRecord};
use super::report::{self, Aggregate, ReportInput};
use super::time::TimeCtx;
use crate::decode::summary::PacketSummary;
use crate::detect::Shared;
use crate::detect::agg::{self, Msg};
use crate::detect::keys::FastMap;
use crate::detect::worm::{self, Chunk};
use crate::homenet::HomeNet;
use crate::input::follow::Follower;
use crate::input::syslog_tcp::{Endpoint, StreamHub};
use crate::input::syslog_tls::{self, TlsFiles};
use crate::input::syslog_udp::{SyslogListener, SyslogReader};
use crate::output::event::EventLine;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Attempts per batch the reader hands over.
const TAP_BATCH: usize = 1024;
/// Batches in flight.
const TAP_QUEUE: usize = 64;
/// Packet time between correlation windows.
const STEP_US: i64 = 30_000_000;
/// A record is correlated once the sensor clock is this far past it: the
/// firewall may log late and the log reach picket later still.
const LAG_US: i64 = 30_000_000;
/// Attempts kept this long before a window's cut, for records that arrive late.
const MARGIN_US: i64 = 60_000_000;
/// Bytes of records waiting for their window (a record is copied whole,
/// about 190 bytes: some 88,000 records, about 1,500 a second for the
/// minute a record may wait; the window's copy doubles it for a moment).
/// Under a flood the rest are counted (`records_uncorrelated`), so that
/// RSS stays under 200 MB.
const PENDING_BYTES: usize = 16 << 20;
/// Records waiting for their window.
const MAX_PENDING: usize = PENDING_BYTES / std::mem::size_of::<(FwRecord, i64)>();
/// Attempts kept for correlation.
const MAX_ATTEMPTS: usize = 2_000_000;
/// Datagrams read in one pass before the files get their turn.
const MAX_DATAGRAMS_PER_PASS: usize = 32_768;
/// TCP/TLS batches (one connection's read each) taken in one pass.
const MAX_STREAM_BATCHES_PER_PASS: usize = 1024;
/// Syslog senders with a tally of their own; the rest share one per channel.
const MAX_SENDERS: usize = 64;
/// Window offset estimates kept for the run's median.
const MAX_OFFSET_SAMPLES: usize = 1024;
/// How long the thread waits for a datagram or sleeps between file polls.
const POLL: Duration = Duration::from_millis(100);
/// Packet time after which a partly filled batch of attempts is handed over.
const TAP_MAX_AGE_US: i64 = 1_000_000;
/// How long the reader waits to hand over its last batch at shutdown.
const FINISH_WAIT: Duration = Duration::from_secs(2);

/// The reader's side: attempts toward the firewall, batched.
pub struct LiveTap {
    home: HomeNet,
    buf: Vec<Attempt>,
    tx: Sender<Vec<Attempt>>,
    pool: Receiver<Vec<Attempt>>,
    stats: Arc<Stats>,
}

impl LiveTap {
    /// Looks at one decoded packet. A batch goes when it is full, or when
    /// its oldest attempt is `TAP_MAX_AGE_US` of packet time old (a busy
    /// link with few attempts must not hold them past their window).
    #[inline]
    pub fn push(&mut self, p: &PacketSummary) {
        if let Some(a) = Attempt::of(p, &self.home) {
            self.buf.push(a);
            if self.buf.len() >= TAP_BATCH {
                self.flush();
            }
        }
        if let Some(first) = self.buf.first()
            && p.ts_us.saturating_sub(first.ts()) >= TAP_MAX_AGE_US
        {
            self.flush();
        }
    }

    /// The capture is over: hands over the last batch, waiting (up to
    /// `FINISH_WAIT`) for room, since the log thread is still draining.
    pub fn finish(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let last = std::mem::take(&mut self.buf);
        if let Err(e) = self.tx.send_timeout(last, FINISH_WAIT) {
            self.stats.fw_attempts_dropped.fetch_add(e.into_inner().len() as u64, Relaxed);
        }
    }

    /// Hands over what is buffered (also on an idle link).
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let fresh = self.pool.try_recv().unwrap_or_else(|_| Vec::with_capacity(TAP_BATCH));
        let full = std::mem::replace(&mut self.buf, fresh);
        if let Err(TrySendError::Full(mut v) | TrySendError::Disconnected(mut v)) = self.tx.try_send(full) {
            self.stats.fw_attempts_dropped.fetch_add(v.len() as u64, Relaxed);
            v.clear();
            self.buf = v;
        }
    }
}

/// The log thread's end of the worm aggregator's channel.
struct WormFeed {
    link: worm::Link,
    chunk: Chunk,
    /// The last watermark sent.
    mark: i64,
}

impl WormFeed {
    /// Sends what the chunk holds.
    fn flush(&mut self, stats: &Stats) {
        if self.chunk.len > 0 {
            agg::send(&self.link, Msg::Data(self.chunk), stats);
            self.chunk.len = 0;
        }
    }
}

/// What the live log thread reads and how.
pub struct LiveConfig {
    pub files: Vec<PathBuf>,
    pub syslog: Option<SocketAddr>,
    /// `--syslog-listen tcp://` and `tls://` endpoints.
    pub syslog_streams: Vec<Endpoint>,
    /// `--syslog-tls-cert`, `-key` and `-client-ca` (read by `LiveFw::new`).
    pub syslog_tls: TlsFiles,
    /// `--syslog-rcvbuf`: the UDP socket's receive buffer, bytes.
    pub syslog_rcvbuf: usize,
    /// Senders whose datagrams are read; `None` reads every sender's.
    pub syslog_allow: Option<HomeNet>,
    pub forced: Option<Format>,
    pub tz_offset_s: i32,
    /// Packet time between `fw_correlation` reports.
    pub interval_us: i64,
    pub top_sources: usize,
}

/// Everything the thread owns.
pub struct LiveFw {
    cfg: LiveConfig,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
    out: Sender<EventLine>,
    index: Arc<RwLock<FwIndex>>,
    listener: Option<SyslogListener>,
    /// The TCP and TLS listeners (threads started by `run`).
    streams: Option<StreamHub>,
    /// The thread reading `listener`, started at the first read.
    reader: Option<SyslogReader>,
    followers: Vec<Follower>,
    /// One parser and tally per file, then one per syslog sender.
    parsers: Vec<LineParser>,
    /// Syslog senders' tallies by (channel, address).
    senders: FastMap<(&'static str, IpAddr), usize>,
    tallies: Vec<FileTally>,
    line_no: Vec<u32>,
    agg: Aggregate,
    /// Records waiting for their window, with the sensor clock when each
    /// was read.
    pending: Vec<(FwRecord, i64)>,
    /// Attempts kept for records still to come, and whether a record took
    /// each (an attempt is matched once, across windows).
    attempts: Vec<Attempt>,
    taken: Vec<bool>,
    /// Per followed file, the read error last reported.
    last_error: Vec<Option<String>>,
    rx: Receiver<Vec<Attempt>>,
    recycle: Sender<Vec<Attempt>>,
    total: Outcome,
    attempts_seen: u64,
    offset_us: Option<i64>,
    /// Per-window offset estimates (µs), from sequence-number/IP-ID pairs
    /// and from times alone.
    strong_offsets: Vec<i64>,
    weak_offsets: Vec<i64>,
    /// Sensor time from which attempts no record took count as unlogged:
    /// set when the log first says anything (a silent log, or the wrong
    /// file, does not make every packet "unlogged").
    counting_from: Option<i64>,
    next_step: i64,
    next_report: i64,
    /// Records read in the current poll, added to the index in one go.
    fresh: Vec<FwRecord>,
    /// The worm sentries' feed, when `worm_phase` is on.
    worm: Option<WormFeed>,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl LiveFw {
    /// Binds the syslog socket and opens the files (a file not there yet
    /// is waited for). Returns the thread's state and the reader's tap.
    /// `worm` is this thread's link to the worm aggregator, if any.
    pub fn new(
        cfg: LiveConfig,
        shared: Arc<Shared>,
        out: Sender<EventLine>,
        index: Arc<RwLock<FwIndex>>,
        worm: Option<worm::Link>,
    ) -> Result<(LiveFw, LiveTap), String> {
        let stats = Arc::clone(&shared.stats);
        let listener = match cfg.syslog {
            Some(addr) => Some(
                SyslogListener::bind(addr, POLL, cfg.syslog_rcvbuf)
                    .map_err(|e| format!("--syslog-listen {addr}: cannot bind: {e}"))?,
            ),
            None => None,
        };
        // The key is read here, before `--user` drops privileges.
        let tls = syslog_tls::server_config(&cfg.syslog_tls)?;
        let streams = if cfg.syslog_streams.is_empty() {
            None
        } else {
            let hub = StreamHub::bind(&cfg.syslog_streams, tls, cfg.syslog_allow.clone(), Arc::clone(&stats))?;
            Some(hub)
        };
        let mut followers = Vec::new();
        let mut tallies = Vec::new();
        for p in &cfg.files {
            if !p.exists() {
                crate::note!("picket: note: {}: not there yet; waiting for it", p.display());
            } else if let Err(e) = std::fs::File::open(p) {
                return Err(format!("{}: {e}", p.display()));
            }
            followers.push(Follower::new(p, true, MAX_LINE));
            tallies.push(FileTally::new(&p.display().to_string()));
        }
        for (i, p) in cfg.files.iter().enumerate() {
            if let Ok(mut ix) = index.write() {
                ix.set_origin(i as u16, "file", &p.display().to_string());
            }
        }
        let time = TimeCtx { reference_us: now_us(), tz_offset_s: cfg.tz_offset_s };
        let parsers =
            (0..tallies.len()).map(|i| LineParser::new(LineCtx { time, forced: cfg.forced, file: i as u16 })).collect();
        let (tx, rx) = bounded(TAP_QUEUE);
        let (recycle, pool) = bounded(TAP_QUEUE + 2);
        let tap = LiveTap {
            home: shared.home.clone(),
            buf: Vec::with_capacity(TAP_BATCH),
            tx,
            pool,
            stats: Arc::clone(&stats),
        };
        let followers_len = followers.len();
        let n = tallies.len();
        let fw = LiveFw {
            cfg,
            shared,
            stats,
            out,
            index,
            listener,
            streams,
            reader: None,
            followers,
            parsers,
            senders: FastMap::default(),
            tallies,
            line_no: vec![0; n],
            agg: Aggregate::new(),
            pending: Vec::new(),
            attempts: Vec::new(),
            taken: Vec::new(),
            last_error: vec![None; followers_len],
            rx,
            recycle,
            total: Outcome::default(),
            attempts_seen: 0,
            offset_us: None,
            strong_offsets: Vec::new(),
            weak_offsets: Vec::new(),
            counting_from: None,
            next_step: i64::MIN,
            next_report: i64::MIN,
            fresh: Vec::new(),
            worm: worm.map(|link| WormFeed { link, chunk: Chunk::empty(), mark: i64::MIN }),
        };
        Ok((fw, tap))
    }

    /// Links the feed to the worm aggregator after it was opened (`--user`
    /// drops privileges between opening and the analysis threads' start).
    pub fn with_worm(mut self, worm: Option<worm::Link>) -> LiveFw {
        if let Some(link) = worm {
            self.worm = Some(WormFeed { link, chunk: Chunk::empty(), mark: i64::MIN });
        }
        self
    }

    /// The local address of the syslog socket (for `:0` in tests).
    pub fn syslog_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TCP and TLS listening sockets: (channel, address).
    pub fn stream_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.streams.as_ref().map(StreamHub::local_addrs).unwrap_or_default()
    }

    /// Runs until the reader hangs up its tap (end of capture), then reads
    /// the logs one last time and writes the final report.
    pub fn run(mut self) {
        if let Some(h) = &mut self.streams
            && let Err(e) = h.start()
        {
            crate::note!("picket: warning: syslog over TCP/TLS: cannot start: {e}");
        }
        loop {
            let done = self.take_attempts();
            self.read_logs();
            let now = self.stats.clock_us.load(Relaxed);
            if self.next_step == i64::MIN && now > 0 {
                self.next_step = now + STEP_US;
                self.next_report = now + self.cfg.interval_us;
            }
            if now > 0 && now >= self.next_step {
                self.step(now - LAG_US);
                self.next_step = now + STEP_US;
            }
            if now > 0 && now >= self.next_report {
                self.report(now, false);
                self.next_report = now + self.cfg.interval_us;
            }
            if done {
                break;
            }
        }
        if let Some(h) = &mut self.streams {
            h.stop();
        }
        self.read_logs();
        let now = self.stats.clock_us.load(Relaxed);
        self.step(i64::MAX);
        if let Some(w) = &self.worm {
            agg::send(&w.link, Msg::Done { worker: w.link.worker }, &self.stats);
        }
        self.report(now, true);
    }

    /// Moves the reader's batches into `attempts`; true once the reader is gone.
    fn take_attempts(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(mut v) => {
                    self.attempts_seen += v.len() as u64;
                    let room = MAX_ATTEMPTS.saturating_sub(self.attempts.len());
                    if v.len() > room {
                        self.stats.fw_attempts_dropped.fetch_add((v.len() - room) as u64, Relaxed);
                        v.truncate(room);
                    }
                    self.attempts.extend_from_slice(&v);
                    self.taken.resize(self.attempts.len(), false);
                    v.clear();
                    let _ = self.recycle.try_send(v);
                }
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Reads what the files and the socket have (waiting up to `POLL`).
    fn read_logs(&mut self) {
        let reference = now_us();
        for p in &mut self.parsers {
            p.ctx.time.reference_us = reference;
        }
        if self.reader.is_none()
            && let Some(l) = &self.listener
        {
            // Started here, in the log thread's run (after `--user`).
            match l.spawn_reader() {
                Ok(r) => self.reader = Some(r),
                Err(e) => crate::note!("picket: warning: syslog reader thread: {e}"),
            }
        }
        if self.reader.is_some() {
            // Up to `MAX_DATAGRAMS_PER_PASS`, and about `POLL`, per pass: a
            // steady stream must not keep the files, the windows and
            // shutdown waiting.
            let deadline = Instant::now() + POLL;
            let mut read = 0;
            while read < MAX_DATAGRAMS_PER_PASS {
                let wait = deadline.saturating_duration_since(Instant::now());
                let Some(r) = self.reader.take() else { break };
                let got = r.recv(wait, |m| self.take_message("udp", m.peer.ip(), m.text, m.received_us, m.truncated));
                self.stats.fw_syslog_kernel_drops.store(r.kernel_drops(), Relaxed);
                self.reader = Some(r);
                if got == 0 || wait.is_zero() {
                    break;
                }
                read += got;
            }
        } else if let Some(h) = &self.streams {
            h.wait(POLL);
        } else {
            std::thread::sleep(POLL);
        }
        if let Some(h) = self.streams.take() {
            h.drain(MAX_STREAM_BATCHES_PER_PASS, |channel, peer, text, at| {
                self.take_message(channel, peer, text, at, false)
            });
            self.streams = Some(h);
        }
        for (i, f) in self.followers.iter_mut().enumerate() {
            let before = f.counts;
            let (parser, tally, ln, fresh) =
                (&mut self.parsers[i], &mut self.tallies[i], &mut self.line_no[i], &mut self.fresh);
            let res = f.poll(|line| {
                let n = bump(ln);
                if let Ok(r) = parser.parse_counted(line, n, tally) {
                    fresh.push(r);
                }
            });
            // A failing file is named once per distinct error, not every poll.
            let err = res.err().map(|e| e.to_string());
            if let Some(e) = &err
                && self.last_error.get(i) != Some(&err)
            {
                crate::note!("picket: warning: {}: {e}", f.path().display());
            }
            if let Some(slot) = self.last_error.get_mut(i) {
                *slot = err;
            }
            for _ in before.overlong_lines..f.counts.overlong_lines {
                tally.count_overlong(*ln);
            }
            self.stats.fw_rotations.fetch_add(f.counts.rotations - before.rotations, Relaxed);
            self.stats.fw_truncations.fetch_add(f.counts.truncations - before.truncations, Relaxed);
        }
        let lines: u64 = self.tallies.iter().map(|t| t.lines).sum();
        let bad: u64 = self.tallies.iter().map(|t| t.bad).sum();
        let other: u64 = self.tallies.iter().map(|t| t.other).sum();
        let records: u64 = self.tallies.iter().map(|t| t.records).sum();
        self.stats.fw_lines.store(lines, Relaxed);
        self.stats.fw_bad_lines.store(bad, Relaxed);
        self.stats.fw_other_lines.store(other, Relaxed);
        self.stats.fw_records.store(records, Relaxed);
        if self.fresh.is_empty() {
            return;
        }
        if let Ok(mut ix) = self.index.write() {
            for r in &self.fresh {
                ix.add(r);
            }
            ix.publish(&self.stats);
        }
        let read_at = self.stats.clock_us.load(Relaxed);
        let mut uncorrelated = 0;
        for r in self.fresh.drain(..) {
            self.agg.add(&r);
            if self.pending.len() < MAX_PENDING {
                self.pending.push((r, read_at));
            } else {
                uncorrelated += 1;
            }
        }
        self.stats.fw_records_uncorrelated.fetch_add(uncorrelated, Relaxed);
        self.agg.publish(&self.stats);
    }

    /// One syslog message from `peer` over `channel`: checked against the
    /// allow-list, then parsed into the sender's own tally (records carry
    /// the sender as their origin).
    fn take_message(&mut self, channel: &'static str, peer: IpAddr, text: &[u8], at: i64, truncated: bool) {
        if let Some(allow) = &self.cfg.syslog_allow
            && !allow.contains(peer)
        {
            self.stats.fw_syslog_rejected.fetch_add(1, Relaxed);
            return;
        }
        let (ix, shared) = self.sender_ix(channel, peer);
        let ln = bump(&mut self.line_no[ix]);
        let tally = &mut self.tallies[ix];
        if shared {
            // Senders past MAX_SENDERS share this parser: each message
            // stands alone (no header or multi-line record carries over).
            self.parsers[ix].forget_stream(tally);
        }
        if truncated {
            tally.count_overlong(ln);
            return;
        }
        if let Ok(mut r) = self.parsers[ix].parse_counted(text, ln, tally) {
            r.ts_us = r.ts_us.or(Some(at));
            self.fresh.push(r);
        }
    }

    /// The tally (and parser) of a syslog sender, made on its first
    /// message; past `MAX_SENDERS`, one shared tally per channel takes the
    /// rest (a spoofed flood cannot grow the table), and the second value
    /// says so.
    fn sender_ix(&mut self, channel: &'static str, peer: IpAddr) -> (usize, bool) {
        let key = if self.senders.len() < MAX_SENDERS || self.senders.contains_key(&(channel, peer)) {
            (channel, peer)
        } else {
            (channel, IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
        };
        let shared = key.1.is_unspecified();
        if let Some(&ix) = self.senders.get(&key) {
            return (ix, shared);
        }
        let ix = self.tallies.len();
        let sender = if key.1.is_unspecified() { "other senders".to_string() } else { key.1.to_string() };
        let listener = self.listener.as_ref().and_then(|l| l.local_addr().ok());
        let name = match listener {
            Some(a) if channel == "udp" => format!("syslog {channel} {sender} to {a}"),
            _ => format!("syslog {channel} {sender}"),
        };
        self.tallies.push(FileTally::network(channel, &sender, &name));
        self.parsers.push(LineParser::new(LineCtx { time: self.time_ctx(), forced: self.cfg.forced, file: ix as u16 }));
        self.line_no.push(0);
        self.senders.insert(key, ix);
        if let Ok(mut index) = self.index.write() {
            index.set_origin(ix as u16, channel, &sender);
        }
        (ix, shared)
    }

    fn time_ctx(&self) -> TimeCtx {
        TimeCtx { reference_us: now_us(), tz_offset_s: self.cfg.tz_offset_s }
    }

    /// Correlates the records due before `cut` (sensor time) with the
    /// attempts no record has taken yet, then lets attempts older than the
    /// margin go, counting those no record took as unlogged.
    ///
    /// A record is due once the sensor clock at which it was read, or its
    /// own time shifted by the offset, is before the cut: so a firewall
    /// clock minutes ahead (an unknown offset) does not keep it waiting
    /// until its attempts are gone.
    fn step(&mut self, cut: i64) {
        // Whole seconds, so the unlogged histogram's bins fall in one window.
        let cut = if cut == i64::MAX { cut } else { cut.div_euclid(1_000_000) * 1_000_000 };
        let off = self.offset_us.unwrap_or(0);
        let due = |(r, at): &(FwRecord, i64)| *at < cut || r.ts_us.is_none_or(|t| t.saturating_sub(off) < cut);
        let ready: Vec<FwRecord> = self.pending.iter().filter(|p| due(p)).map(|p| p.0).collect();
        if self.counting_from.is_none()
            && let Some(first) = self.pending.iter().filter(|p| due(p)).map(|p| p.1).min()
        {
            // The log's first word: it covers from about one logging delay before.
            self.counting_from = Some(first.saturating_sub(LAG_US));
        }
        self.pending.retain(|p| !due(p));
        if !ready.is_empty() {
            let mut c = Correlator::new(&ready, self.shared.home.clone());
            // Correlator order (1-based) -> index in `attempts`.
            let mut order = Vec::new();
            for (i, a) in self.attempts.iter().enumerate() {
                if !self.taken[i] {
                    c.observe_attempt(a);
                    order.push(i);
                }
            }
            let (o, took) = c.finish_taken(Span::Nothing);
            for pkt in took {
                if let Some(&i) = usize::try_from(pkt).ok().and_then(|k| order.get(k.wrapping_sub(1))) {
                    self.taken[i] = true;
                }
            }
            let t = &mut self.total;
            t.records += o.records;
            t.matchable += o.matchable;
            t.matched += o.matched;
            t.unmatched_records += o.unmatched_records;
            t.offset_pairs += o.offset_pairs;
            t.offset_strong |= o.offset_strong;
            t.candidates_dropped += o.candidates_dropped;
            // The offset over the whole run: the median of the windows'
            // estimates, from sequence-number pairs once there are any.
            if let Some(w) = o.clock_offset_s {
                let samples = if o.offset_strong { &mut self.strong_offsets } else { &mut self.weak_offsets };
                if samples.len() >= MAX_OFFSET_SAMPLES {
                    samples.remove(0);
                }
                samples.push((w * 1e6).round() as i64);
                let samples = if self.strong_offsets.is_empty() { &self.weak_offsets } else { &self.strong_offsets };
                let mut sorted = samples.clone();
                sorted.sort_unstable();
                if let Some(&median) = sorted.get(sorted.len() / 2) {
                    t.clock_offset_s = Some(median as f64 / 1e6);
                    self.offset_us = Some(median);
                }
            }
        }
        self.feed_worm(&ready, cut);
        // Attempts past the margin: no record will come for them any more.
        let keep_from = cut.saturating_sub(MARGIN_US);
        let from = self.counting_from;
        let mut unlogged = 0u64;
        let mut k = 0;
        for i in 0..self.attempts.len() {
            let (a, took) = (self.attempts[i], self.taken[i]);
            if a.ts() >= keep_from {
                self.attempts[k] = a;
                self.taken[k] = took;
                k += 1;
            } else if !took && from.is_some_and(|f| a.ts() >= f) {
                unlogged += 1;
            }
        }
        self.attempts.truncate(k);
        self.taken.truncate(k);
        self.total.unlogged_packets += unlogged;
    }

    /// Hands the window's denials to the worm sentries (see the module
    /// doc), each at its time in sensor time (no earlier than the last
    /// watermark, no later than `cut`), then `cut` as the watermark.
    fn feed_worm(&mut self, ready: &[FwRecord], cut: i64) {
        let Some(w) = &mut self.worm else { return };
        let off = self.offset_us.unwrap_or(0);
        for r in ready {
            let Ok(f) = feed::to_summary(r) else { continue };
            let at = f.pkt.ts_us.saturating_sub(off);
            let tag = at.min(cut).max(w.mark);
            if let Some(a) = worm::Attempt::logged(&f.pkt, at, tag, 0)
                && w.chunk.push(a)
            {
                w.flush(&self.stats);
            }
        }
        w.flush(&self.stats);
        if cut != i64::MAX && cut > w.mark {
            w.mark = cut;
            agg::send(&w.link, Msg::Watermark { worker: w.link.worker, ts: cut }, &self.stats);
        }
    }

    fn report(&mut self, now: i64, is_final: bool) {
        self.total.attempts = self.attempts_seen;
        let sensor = self.shared.sensors.first().map(String::as_str).unwrap_or("live");
        let input = ReportInput {
            files: &self.tallies,
            ports: &self.shared.ports,
            sensor,
            fallback_us: now,
            top_sources: self.cfg.top_sources,
            live: true,
            is_final,
        };
        let _ = self.out.send(report::fw_correlation_with(&self.agg, &input, Some((&self.total, now))));
    }
}

/// The next line number of a source.
fn bump(n: &mut u32) -> u32 {
    *n = n.saturating_add(1);
    *n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::tcpflag;
    use crate::decode::summary::testutil::tcp;
    use crate::detect::Rules;
    use crossbeam_channel::unbounded;
    use std::io::Write;

    /// A netfilter line for a SYN logged at `ts_us`.
    fn line(ts_us: i64, sport: u16) -> String {
        format!(
            "{} fw1 kernel: DROP-IN: IN=eth0 OUT= SRC=198.51.100.7 DST=192.0.2.10 LEN=40 TTL=64 PROTO=TCP SPT={sport} DPT=158 SYN URGP=0\n",
            crate::output::timefmt::rfc3339_us(ts_us)
        )
    }

    /// A fresh, empty directory for one test.
    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("picket-live-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A live log thread following `path` (and listening on `syslog`), with
    /// the lab's home net; returns it with its tap, its events and shared state.
    fn setup(
        path: &std::path::Path,
        syslog: Option<SocketAddr>,
        allow: Option<&str>,
    ) -> (LiveFw, LiveTap, crossbeam_channel::Receiver<EventLine>, Arc<Stats>, Arc<RwLock<FwIndex>>) {
        setup_with(path, syslog, allow, None)
    }

    /// `setup`, with a link to the worm aggregator.
    fn setup_with(
        path: &std::path::Path,
        syslog: Option<SocketAddr>,
        allow: Option<&str>,
        worm: Option<worm::Link>,
    ) -> (LiveFw, LiveTap, crossbeam_channel::Receiver<EventLine>, Arc<Stats>, Arc<RwLock<FwIndex>>) {
        let stats = Arc::new(Stats::default());
        let mut shared = crate::detect::testrig::shared(&Rules::builtin(), "192.0.2.0/24", 1);
        shared.sensors = vec!["eth1".into()];
        shared.stats = Arc::clone(&stats);
        let shared = Arc::new(shared);
        let (out, events) = unbounded();
        let cfg = LiveConfig {
            files: vec![path.to_path_buf()],
            syslog,
            syslog_streams: Vec::new(),
            syslog_tls: TlsFiles::default(),
            syslog_rcvbuf: crate::input::syslog_udp::DEFAULT_RCVBUF,
            syslog_allow: allow.map(|a| HomeNet::parse(a).unwrap()),
            forced: None,
            tz_offset_s: 0,
            interval_us: 60_000_000,
            top_sources: 10,
        };
        let index = Arc::new(RwLock::new(FwIndex::default()));
        let (fw, tap) = LiveFw::new(cfg, shared, out, Arc::clone(&index), worm).unwrap();
        (fw, tap, events, stats, index)
    }

    /// Records read from syslog senders (every tally but the files').
    fn syslog_records(fw: &LiveFw) -> u64 {
        fw.tallies.iter().filter(|t| t.channel != "file").map(|t| t.records).sum()
    }

    /// Records carry their origin: a followed file's path, or the channel
    /// and address of the syslog sender, in the `firewall` object of events
    /// (with `spoofable` for UDP) and in `fw_correlation`'s `files`.
    #[test]
    fn records_name_the_file_or_the_syslog_sender_they_came_from() {
        let dir = scratch("origin");
        let path = dir.join("fw.log");
        std::fs::write(&path, "").unwrap();
        let (mut fw, _tap, events, _stats, index) = setup(&path, Some("127.0.0.1:0".parse().unwrap()), None);
        let to = fw.listener.as_ref().unwrap().local_addr().unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        tx.send_to(
            b"<164>%ASA-4-106023: Deny tcp src outside:203.0.113.5/1024 dst dmz:192.0.2.10/158 by access-group \"in\"",
            to,
        )
        .unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(line(1_795_000_000_000_000, 40_000).as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        fw.read_logs();
        let ix = index.read().unwrap();
        let by_udp = ix.lookup("203.0.113.5".parse().unwrap(), None, None).expect("the ASA record");
        assert_eq!(by_udp["via"], serde_json::json!([{"channel": "udp", "sender": "127.0.0.2"}]), "{by_udp}");
        assert_eq!(by_udp["spoofable"], true);
        let by_file = ix.lookup("198.51.100.7".parse().unwrap(), None, None).expect("the netfilter record");
        let p = path.display().to_string();
        assert_eq!(by_file["via"], serde_json::json!([{"channel": "file", "sender": p}]), "{by_file}");
        assert_eq!(by_file["spoofable"], false);
        drop(ix);
        fw.report(1_795_000_000_000_000, true);
        let ev: serde_json::Value = serde_json::from_str(&events.try_recv().unwrap().line).unwrap();
        let files = &ev["fw_correlation"]["files"];
        assert_eq!((files[0]["channel"].as_str(), files[0]["sender"].as_str()), (Some("file"), Some(p.as_str())));
        assert_eq!((files[1]["channel"].as_str(), files[1]["sender"].as_str()), (Some("udp"), Some("127.0.0.2")));
        assert_eq!(files[1]["records"], 1, "{files}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Drives `fw` by hand through one attempt a minute for `minutes`: the
    /// SYN at t, its log line stamped `t + fw_ahead_us` and read `read_lag_us`
    /// of packet time later, a step every 30 s as the thread would take.
    fn drive(
        fw: &mut LiveFw,
        tap: &mut LiveTap,
        stats: &Stats,
        path: &std::path::Path,
        fw_ahead_us: i64,
        read_lag_us: i64,
    ) {
        let t0 = 1_795_000_000_000_000i64;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        let mut lines: Vec<(i64, String)> = Vec::new();
        for m in 0..6i64 {
            let ts = t0 + m * 60_000_000;
            tap.push(&tcp(ts, "198.51.100.7", "192.0.2.10", (40_000 + m as u16, 158), tcpflag::SYN, 1, 0));
            lines.push((ts + read_lag_us, line(ts + fw_ahead_us, 40_000 + m as u16)));
        }
        tap.finish();
        fw.take_attempts();
        let mut now = t0;
        while now < t0 + 8 * 60_000_000 {
            now += STEP_US;
            for (at, l) in lines.iter().filter(|(at, _)| *at <= now && *at > now - STEP_US) {
                stats.clock_us.store(*at, Relaxed);
                f.write_all(l.as_bytes()).unwrap();
                f.flush().unwrap();
                fw.read_logs();
            }
            stats.clock_us.store(now, Relaxed);
            fw.step(now - LAG_US);
        }
        fw.step(i64::MAX);
    }

    /// Issue 4's live correlation, at the edges found in review: a firewall
    /// clock five minutes ahead still meets its packets (and the offset is
    /// learnt), and a record read 45 s late matches its packet without that
    /// packet also being counted as unlogged.
    #[test]
    fn a_clock_minutes_ahead_and_a_late_record_still_match_once() {
        for (ahead, lag) in [(300_200_000i64, 500_000i64), (200_000, 45_000_000)] {
            let dir = scratch(&format!("edge-{lag}"));
            let path = dir.join("fw.log");
            std::fs::write(&path, "").unwrap();
            let (mut fw, mut tap, _events, stats, _index) = setup(&path, None, None);
            drive(&mut fw, &mut tap, &stats, &path, ahead, lag);
            let t = &fw.total;
            assert_eq!((t.records, t.matched, t.unmatched_records), (6, 6, 0), "ahead {ahead} µs, lag {lag} µs: {t:?}");
            assert_eq!(t.unlogged_packets, 0, "a matched packet is not also unlogged: {t:?}");
            let off = t.clock_offset_s.expect("an offset");
            assert!((off - ahead as f64 / 1e6).abs() < 1e-6, "offset {off}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Issue 14: each window's denials go to the worm sentries, from the
    /// log alone (the egress SYN and the UDP datagram no packet showed),
    /// at their time less the clock offset, then the window's cut as the
    /// log thread's watermark. A denied ACK, a datagram to a broadcast
    /// address and an accepted connection are no attempts.
    #[test]
    fn denials_feed_the_worm_sentries_then_the_window_cut() {
        let dir = scratch("worm");
        let path = dir.join("fw.log");
        std::fs::write(&path, "").unwrap();
        let (mut links, rx) = crate::detect::agg::testing::links::<Chunk>(2);
        let (mut fw, _tap, _events, stats, _index) = setup_with(&path, None, None, links.pop());
        let t0 = 1_795_000_000_000_000i64;
        let at = crate::output::timefmt::rfc3339_us(t0);
        let nf = |verdict: &str, rest: &str| format!("{at} fw1 kernel: {verdict}: IN=eth1 OUT=eth0 {rest}\n");
        let lines = [
            nf("DROP-OUT", "SRC=192.0.2.10 DST=198.51.100.50 LEN=60 TTL=63 PROTO=TCP SPT=50123 DPT=445 SYN URGP=0"),
            nf("DROP-OUT", "SRC=192.0.2.10 DST=198.51.100.51 LEN=404 TTL=63 PROTO=UDP SPT=1025 DPT=1434 LEN=384"),
            nf("DROP-OUT", "SRC=192.0.2.10 DST=198.51.100.52 LEN=40 TTL=63 PROTO=TCP SPT=50124 DPT=445 ACK URGP=0"),
            nf("DROP-OUT", "SRC=192.0.2.10 DST=192.0.2.255 LEN=78 TTL=64 PROTO=UDP SPT=137 DPT=137 LEN=58"),
            nf("ACCEPT-OUT", "SRC=192.0.2.10 DST=198.51.100.53 LEN=60 TTL=63 PROTO=TCP SPT=50125 DPT=443 SYN URGP=0"),
        ];
        std::fs::write(&path, lines.concat()).unwrap();
        stats.clock_us.store(t0, Relaxed);
        fw.read_logs();
        assert_eq!(fw.tallies[0].records, 5);
        fw.offset_us = Some(2_000_000);
        fw.step(t0 + 40_000_000);
        let msgs: Vec<_> = rx.try_iter().collect();
        let [Msg::Data(c), Msg::Watermark { worker: 1, ts }] = msgs.as_slice() else { panic!("{msgs:?}") };
        assert_eq!(*ts, t0 + 40_000_000);
        let got: Vec<_> =
            c.attempts().iter().map(|a| (a.host.to_string(), a.target.to_string(), a.proto, a.dport)).collect();
        let want = |dst: &str, proto, dport| ("192.0.2.10".to_string(), dst.to_string(), proto, dport);
        assert_eq!(got, vec![want("198.51.100.50", 6, 445), want("198.51.100.51", 17, 1434)]);
        for a in c.attempts() {
            assert!(a.logged && !a.answered && a.packets == 1, "{a:?}");
            assert_eq!((a.first_us, a.tag), (t0 - 2_000_000, t0 - 2_000_000), "the firewall's clock runs 2 s ahead");
        }
        assert_eq!(c.attempts()[1].payload, 376, "the datagram's payload, for Slammer's size");
        // Nothing new: the next window sends its watermark only.
        fw.step(t0 + 70_000_000);
        let msgs: Vec<_> = rx.try_iter().collect();
        assert!(matches!(msgs.as_slice(), [Msg::Watermark { worker: 1, ts }] if *ts == t0 + 70_000_000), "{msgs:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two ASA datagrams from 127.0.0.1 to a listener on `listen` with
    /// `--syslog-allow allow`: (records read, datagrams rejected).
    fn allow_outcome(tag: &str, listen: &str, allow: &str) -> (u64, u64) {
        let asa =
            b"<164>%ASA-4-106023: Deny tcp src outside:203.0.113.5/1024 dst dmz:192.0.2.10/158 by access-group \"in\"";
        let dir = scratch(tag);
        let path = dir.join("fw.log");
        std::fs::write(&path, "").unwrap();
        let (mut fw, _tap, _events, stats, _index) = setup(&path, Some(listen.parse().unwrap()), Some(allow));
        let port = fw.listener.as_ref().unwrap().local_addr().unwrap().port();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(asa, ("127.0.0.1", port)).unwrap();
        tx.send_to(asa, ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        fw.read_logs();
        let _ = std::fs::remove_dir_all(&dir);
        (syslog_records(&fw), stats.fw_syslog_rejected.load(Relaxed))
    }

    /// `--syslog-allow`: a datagram from another sender is dropped and
    /// counted, not read as a firewall record.
    #[test]
    fn syslog_from_senders_outside_the_allow_list_is_dropped() {
        assert_eq!(allow_outcome("allow-out", "127.0.0.1:0", "192.0.2.1/32"), (0, 2));
        assert_eq!(allow_outcome("allow-in", "127.0.0.1:0", "127.0.0.0/8,192.0.2.1"), (2, 0));
    }

    /// Issue 17: on a dual-stack `[::]` listener an IPv4 sender is seen as
    /// `::ffff:127.0.0.1`; it still matches an IPv4 allow-list entry (it was
    /// rejected), and one outside the list is still refused.
    #[test]
    fn an_ipv4_sender_on_a_dual_stack_listener_matches_ipv4_allow_entries() {
        assert_eq!(allow_outcome("v6-in", "[::]:0", "127.0.0.1/32"), (2, 0));
        assert_eq!(allow_outcome("v6-out", "[::]:0", "192.0.2.1"), (0, 2));
    }

    /// Past `MAX_SENDERS`, senders share one parser; a CSV header from one
    /// of them (here with source and destination swapped, to pin a scan on
    /// an innocent address) must not decide how another's rows read. A
    /// sender with its own parser keeps its header.
    #[test]
    fn a_shared_parser_carries_no_header_from_one_sender_to_the_next() {
        let dir = scratch("shared-parser");
        let path = dir.join("fw.log");
        let (mut fw, _tap, _events, _stats, _index) = setup(&path, None, None);
        let header = b"time,dst,src,dport";
        let row = b"2026-11-22T07:06:00Z,198.51.100.7,192.0.2.10,158";
        let peer = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        // The first sender has a parser of its own: its header holds.
        fw.take_message("udp", peer(0), header, 0, false);
        fw.take_message("udp", peer(0), row, 0, false);
        assert_eq!(fw.fresh.len(), 1);
        assert_eq!(fw.fresh[0].src, "192.0.2.10".parse().ok(), "its own header's order");
        for i in 1..MAX_SENDERS as u32 {
            fw.take_message("udp", peer(i), b"hello", 0, false);
        }
        fw.fresh.clear();
        // Two senders past the table share a parser.
        fw.take_message("udp", peer(1000), header, 0, false);
        fw.take_message("udp", peer(1001), row, 0, false);
        assert!(fw.fresh.is_empty(), "a row without its own header is no record: {:?}", fw.fresh);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A batch goes when full or when its oldest attempt is 1 s old in
    /// packet time (whatever packet brings the clock there); `finish` hands
    /// over the rest.
    #[test]
    fn the_tap_hands_over_old_attempts_and_the_last_batch() {
        let dir = scratch("tap");
        let path = dir.join("fw.log");
        let (fw, mut tap, _events, _stats, _index) = setup(&path, None, None);
        let t0 = 1_795_000_000_000_000i64;
        let syn = |t: i64, sport: u16| tcp(t, "198.51.100.7", "192.0.2.10", (sport, 158), tcpflag::SYN, 1, 0);
        // Established traffic: not an attempt, but it moves the clock.
        let ack = |t: i64| tcp(t, "198.51.100.9", "192.0.2.10", (50_000, 443), tcpflag::ACK, 9, 9);
        tap.push(&syn(t0, 40_000));
        tap.push(&ack(t0 + 900_000));
        assert!(fw.rx.try_recv().is_err(), "0.9 s old: still buffered");
        tap.push(&ack(t0 + 1_000_000));
        assert_eq!(fw.rx.try_recv().map(|v| v.len()), Ok(1), "1 s old: handed over");
        tap.push(&syn(t0 + 1_100_000, 40_001));
        tap.push(&syn(t0 + 1_200_000, 40_002));
        assert!(fw.rx.try_recv().is_err());
        tap.finish();
        assert_eq!(fw.rx.try_recv().map(|v| v.len()), Ok(2), "the last batch at shutdown");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A steady syslog stream (a datagram every 10 ms, never a 100 ms lull)
    /// does not hold one pass for 4096 datagrams (41 s): each pass takes
    /// about `POLL`, and the followed file gets its turn.
    #[test]
    fn a_steady_syslog_stream_does_not_starve_the_files() {
        let dir = scratch("steady");
        let path = dir.join("fw.log");
        std::fs::write(&path, "").unwrap();
        let (mut fw, _tap, _events, _stats, _index) = setup(&path, Some("127.0.0.1:0".parse().unwrap()), None);
        let to = fw.listener.as_ref().unwrap().local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                while !stop.load(Relaxed) {
                    let _ = tx.send_to(b"<164>%ASA-4-106023: Deny tcp src outside:203.0.113.5/1024 dst dmz:192.0.2.10/158 by access-group \"in\"", to);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(line(1_795_000_000_000_000, 40_000).as_bytes()).unwrap();
        f.flush().unwrap();
        let started = Instant::now();
        fw.read_logs();
        let took = started.elapsed();
        stop.store(true, Relaxed);
        sender.join().unwrap();
        assert!(took < Duration::from_secs(2), "one pass took {took:?}");
        assert_eq!(fw.tallies[0].records, 1, "the file line was read in the same pass");
        assert!(syslog_records(&fw) >= 1, "and the datagrams: {}", syslog_records(&fw));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Drives the thread with packet time: reports come every interval of
    /// the sensor clock (not the wall clock), records written to the
    /// followed file meet the attempts the tap handed over, and the last
    /// report is the final one.
    #[test]
    fn reports_every_interval_of_packet_time_then_a_final_one() {
        let dir = scratch("unit");
        let path = dir.join("fw.log");
        std::fs::write(&path, "Nov 22 09:00:00 fw1 kernel: before the start, not read\n").unwrap();
        let (fw, mut tap, events, stats, index) = setup(&path, None, None);
        let thread = std::thread::spawn(move || fw.run());
        let t0 = 1_795_000_000_000_000i64;
        // Three minutes of packet time: one SYN (and its log line) a minute.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        for minute in 0..4i64 {
            let ts = t0 + minute * 60_000_000;
            tap.push(&tcp(ts, "198.51.100.7", "192.0.2.10", (40_000 + minute as u16, 158), tcpflag::SYN, 1, 0));
            tap.flush();
            f.write_all(line(ts + 200_000, 40_000 + minute as u16).as_bytes()).unwrap();
            f.flush().unwrap();
            stats.clock_us.store(ts, Relaxed);
            std::thread::sleep(POLL * 3);
        }
        // An egress drop the span never saw.
        f.write_all(line(t0 + 3 * 60_000_000, 9).replace("DPT=158", "DPT=445").as_bytes()).unwrap();
        drop(f);
        std::thread::sleep(POLL * 3);
        drop(tap);
        thread.join().unwrap();
        let reports: Vec<serde_json::Value> =
            events.try_iter().map(|e| serde_json::from_str(&e.line).unwrap()).collect();
        assert!(reports.len() >= 3, "a report at each minute boundary and one at the end: {}", reports.len());
        let (last, earlier) = reports.split_last().unwrap();
        assert!(earlier.iter().all(|r| r["fw_correlation"]["final"] == false && r["fw_correlation"]["mode"] == "live"));
        let c = &last["fw_correlation"];
        assert_eq!(c["final"], true);
        assert_eq!(c["records"], 5, "the line written before the start is not read: {c}");
        assert_eq!(c["matched"], 4, "{c}");
        assert_eq!(c["unmatched_records"], 1, "{c}");
        assert_eq!(c["unlogged_packets"], 0, "{c}");
        assert_eq!(c["attempts_on_wire"], 4);
        let off = c["clock_offset_s"].as_f64().unwrap();
        assert!((off - 0.2).abs() < 1e-6, "the firewall logged 0.2 s after the wire: {off}");
        // Records also reached the index behind the `firewall` object.
        let ix = index.read().unwrap();
        assert!(ix.lookup("198.51.100.7".parse().unwrap(), Some("192.0.2.10".parse().unwrap()), Some(158)).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
