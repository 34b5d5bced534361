//! The `-o` targets other than files: datagram sinks (`unix:PATH`,
//! `syslog:`, `syslog://HOST:PORT`) and Redis (`redis://HOST:PORT/KEY`),
//! each run on its own thread behind its own bounded queue (see
//! `writer::run`, which fans events out to them).
//!
//! Every sink is opened (sockets connected) before `live --user` drops
//! privileges; a target that cannot be reached then is a warning, not a
//! failure, and is tried again while the run goes on.
//!
//! Datagram sinks send one event per datagram, as Suricata's unix_dgram
//! does: what the peer cannot take (no reader, a full buffer for a second,
//! a message too large) is lost, counted in `stats.output.sinks[]` and
//! noted once; a `unix:` socket whose reader went away is connected again
//! at most once a second. Redis keeps events: a batch that fails stays,
//! the connection is made again with back-off (0.1 s doubling to 5 s),
//! and what queued meanwhile is sent after, in order; only what the queue
//! cannot hold is lost. A batch is sent again after a broken connection,
//! so one the server took just before it died may arrive twice.

use crate::note;
use crate::output::target::Target;
use crate::output::timefmt;
use crate::signals::Flags;
use crate::stats::{SinkStats, Stats};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::fmt::Write as _;
use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Once the input has ended, how long a sink may still try to deliver
/// what waits before the rest is counted as lost.
pub const GRACE: Duration = Duration::from_secs(3);
/// Redis: events sent in one command at most.
const BATCH: usize = 512;
/// Redis: the longest wait between two connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// How long one send may block before the event counts as lost (datagram)
/// or the connection as broken (Redis).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// syslog facility local0; notice for events, info for stats.
const FACILITY: u8 = 16;

/// One event on its way to a sink.
#[derive(Clone)]
pub struct Line {
    pub text: Arc<str>,
    pub kind: &'static str,
    /// The final stats line, the last of the run.
    pub last: bool,
}

/// What a sink's thread shares with the output thread: its counters and
/// its signals.
pub struct Ctl {
    pub stats: Arc<SinkStats>,
    pub total: Arc<Stats>,
    pub flags: Flags,
    /// SIGHUP: files reopen.
    pub reopen: AtomicBool,
    /// The input has ended: deliver within `GRACE`, then count the rest.
    pub closing: AtomicBool,
    /// A loss was noted on stderr (once per sink).
    noted: AtomicBool,
}

impl Ctl {
    pub fn new(stats: Arc<SinkStats>, total: Arc<Stats>, flags: Flags) -> Ctl {
        Ctl {
            stats,
            total,
            flags,
            reopen: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            noted: AtomicBool::new(false),
        }
    }

    /// `n` events this sink lost.
    pub fn dropped(&self, n: u64) {
        if n > 0 {
            self.stats.dropped.fetch_add(n, Relaxed);
            self.total.output_events_dropped.fetch_add(n, Relaxed);
        }
    }

    pub fn write_error(&self) {
        self.stats.write_errors.fetch_add(1, Relaxed);
        self.total.output_write_errors.fetch_add(1, Relaxed);
    }

    pub fn written(&self, n: u64) {
        self.stats.written.fetch_add(n, Relaxed);
    }

    /// Says `what` on stderr, the first time only.
    pub fn note_once(&self, what: std::fmt::Arguments<'_>) {
        if !self.noted.swap(true, Relaxed) {
            note!("picket: warning: {}: {what}", self.stats.target);
        }
    }
}

/// Counts everything still queued as lost.
fn drain_lost(rx: &Receiver<Line>, ctl: &Ctl) {
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    ctl.dropped(n);
}

/// The socket of a datagram sink.
enum Socket {
    Unix(UnixDatagram),
    Udp(UdpSocket),
}

impl Socket {
    fn send(&self, b: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.send(b),
            Socket::Udp(s) => s.send(b),
        }
    }
}

/// How a datagram sink frames an event.
enum Framing {
    /// `unix:`: the JSON line and its newline.
    Line,
    /// `syslog:`: `<PRI>picket[PID]: JSON`, as the local syslog reads it.
    Local,
    /// `syslog://`: RFC 5424, `<PRI>1 TIME HOST picket PID EVENT_TYPE - JSON`.
    Rfc5424,
}

/// `unix:PATH`, `syslog:` or `syslog://HOST:PORT`.
pub struct Datagram {
    target: Target,
    framing: Framing,
    sock: Option<Socket>,
    next_connect: Instant,
    host: String,
    pid: u32,
    buf: String,
}

impl Datagram {
    /// Connects now (before `--user`); a failure is noted and retried.
    pub fn open(target: &Target) -> io::Result<Datagram> {
        let framing = match target {
            Target::Unix(_) => Framing::Line,
            Target::SyslogLocal(_) => Framing::Local,
            Target::SyslogUdp { .. } => Framing::Rfc5424,
            _ => return Err(io::Error::other("not a datagram target")),
        };
        let mut d = Datagram {
            target: target.clone(),
            framing,
            sock: None,
            next_connect: Instant::now(),
            host: hostname(),
            pid: std::process::id(),
            buf: String::with_capacity(4096),
        };
        match d.connect() {
            Ok(s) => d.sock = Some(s),
            // A UDP address that does not resolve is a usage error.
            Err(e) if matches!(d.target, Target::SyslogUdp { .. }) => return Err(e),
            Err(e) => {
                note!(
                    "picket: warning: {target}: {e}; events are lost until it can be reached (tried again each second)"
                );
                d.next_connect = Instant::now() + SEND_TIMEOUT;
            }
        }
        Ok(d)
    }

    fn connect(&self) -> io::Result<Socket> {
        match &self.target {
            Target::Unix(p) | Target::SyslogLocal(p) => {
                let s = UnixDatagram::unbound()?;
                s.connect(p)?;
                s.set_write_timeout(Some(SEND_TIMEOUT))?;
                Ok(Socket::Unix(s))
            }
            Target::SyslogUdp { host, port } => {
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| io::Error::other(format!("{host} has no address")))?;
                let local: std::net::SocketAddr =
                    if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
                let s = UdpSocket::bind(local)?;
                s.connect(addr)?;
                Ok(Socket::Udp(s))
            }
            _ => Err(io::Error::other("not a datagram target")),
        }
    }

    /// Frames `line` into `self.buf`.
    fn frame(&mut self, line: &Line) {
        self.buf.clear();
        let pri = FACILITY * 8 + if line.kind == "stats" { 6 } else { 5 };
        match self.framing {
            Framing::Line => {
                self.buf.push_str(&line.text);
                self.buf.push('\n');
            }
            Framing::Local => {
                let _ = write!(self.buf, "<{pri}>picket[{}]: {}", self.pid, line.text);
            }
            Framing::Rfc5424 => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(0));
                let _ = write!(self.buf, "<{pri}>1 ");
                timefmt::write_rfc3339_us(&mut self.buf, now);
                let _ = write!(self.buf, " {} picket {} {} - {}", self.host, self.pid, msgid(line.kind), line.text);
            }
        }
    }

    /// Sends every event until the queue closes.
    pub fn run(mut self, rx: Receiver<Line>, ctl: &Ctl) -> io::Result<()> {
        for line in rx.iter() {
            if self.sock.is_none() && Instant::now() >= self.next_connect {
                match self.connect() {
                    Ok(s) => {
                        self.sock = Some(s);
                        ctl.stats.reconnects.fetch_add(1, Relaxed);
                    }
                    Err(_) => self.next_connect = Instant::now() + SEND_TIMEOUT,
                }
            }
            if self.sock.is_none() {
                ctl.dropped(1);
                continue;
            }
            self.frame(&line);
            let Some(sock) = &self.sock else { continue };
            match sock.send(self.buf.as_bytes()) {
                Ok(_) => ctl.written(1),
                Err(e) => {
                    ctl.write_error();
                    ctl.dropped(1);
                    ctl.note_once(format_args!(
                        "{e}; this event and each one the socket cannot take are lost, counted in stats.output.sinks"
                    ));
                    // A unix socket's reader may come back on a new socket.
                    if matches!(self.sock, Some(Socket::Unix(_)))
                        && matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound | io::ErrorKind::NotConnected
                        )
                    {
                        self.sock = None;
                        self.next_connect = Instant::now() + SEND_TIMEOUT;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The RFC 5424 MSGID: the event type (printable ASCII, at most 32 bytes).
fn msgid(kind: &str) -> &str {
    if kind.is_empty() || kind.len() > 32 || !kind.bytes().all(|b| b.is_ascii_graphic()) { "-" } else { kind }
}

/// This host's name for RFC 5424's HOSTNAME (`-` when unknown).
fn hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = h.trim().chars().filter(char::is_ascii_graphic).take(255).collect();
    if h.is_empty() { "-".into() } else { h }
}

/// `redis://HOST:PORT/KEY`: RPUSH onto KEY, or PUBLISH on it (`?publish`).
pub struct Redis {
    target: String,
    client: redis::Client,
    con: Option<redis::Connection>,
    key: String,
    publish: bool,
    backoff: Duration,
    next_try: Instant,
    /// A connection was up once (the next one is a reconnect).
    was_up: bool,
    /// The connection broke and was noted; the next one is said too.
    down_noted: bool,
}

impl Redis {
    /// Connects now (before `--user`); a server that is down is noted and
    /// tried again with back-off.
    pub fn open(target: &Target) -> io::Result<Redis> {
        let Target::Redis { host, port, key, publish } = target else {
            return Err(io::Error::other("not a redis target"));
        };
        let client = redis::Client::open(redis::ConnectionAddr::Tcp(host.clone(), *port)).map_err(io::Error::other)?;
        let mut r = Redis {
            target: target.to_string(),
            client,
            con: None,
            key: key.clone(),
            publish: *publish,
            backoff: BACKOFF_MIN,
            next_try: Instant::now(),
            was_up: false,
            down_noted: false,
        };
        if let Err(e) = r.connect() {
            note!("picket: warning: {target}: {e}; events wait and the connection is tried again");
            r.down_noted = true;
        }
        Ok(r)
    }

    fn connect(&mut self) -> redis::RedisResult<()> {
        let con = match self.client.get_connection_with_timeout(REDIS_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                return Err(e);
            }
        };
        con.set_write_timeout(Some(REDIS_TIMEOUT))?;
        con.set_read_timeout(Some(REDIS_TIMEOUT))?;
        self.con = Some(con);
        self.was_up = true;
        Ok(())
    }

    /// Sends one batch, in order.
    fn send(&mut self, batch: &[Line]) -> redis::RedisResult<()> {
        let Some(con) = self.con.as_mut() else {
            return Err(redis::RedisError::from(io::Error::other("not connected")));
        };
        if self.publish {
            let mut p = redis::pipe();
            for l in batch {
                p.cmd("PUBLISH").arg(&self.key).arg(&*l.text).ignore();
            }
            p.query::<()>(con)
        } else {
            let mut c = redis::cmd("RPUSH");
            c.arg(&self.key);
            for l in batch {
                c.arg(&*l.text);
            }
            c.query::<i64>(con).map(|_| ())
        }
    }

    /// Sends every event until the queue closes; events wait while the
    /// server is away. An error when what waited at the end could not be
    /// sent within `GRACE`.
    pub fn run(mut self, rx: Receiver<Line>, ctl: &Ctl) -> io::Result<()> {
        let mut batch: Vec<Line> = Vec::with_capacity(BATCH);
        let mut closing_at: Option<Instant> = None;
        loop {
            if batch.is_empty() {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(l) => batch.push(l),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(l) => batch.push(l),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
            }
            if self.con.is_none() && Instant::now() >= self.next_try && self.connect().is_ok() {
                ctl.stats.reconnects.fetch_add(u64::from(self.was_up), Relaxed);
                if self.down_noted {
                    note!("picket: note: {}: connected; sending the events that waited", self.target);
                    self.down_noted = false;
                }
            }
            if self.con.is_some() {
                match self.send(&batch) {
                    Ok(()) => {
                        ctl.written(batch.len() as u64);
                        batch.clear();
                        self.backoff = BACKOFF_MIN;
                        continue;
                    }
                    Err(e) => {
                        // A broken connection, or an answer that will not
                        // change (a key of another type): the batch waits,
                        // and the next try backs off.
                        ctl.write_error();
                        self.con = None;
                        self.next_try = Instant::now() + self.backoff;
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                        if !self.down_noted {
                            note!(
                                "picket: warning: {}: {e}; events wait and are sent after reconnecting (what the queue cannot hold is counted in stats.output.sinks)",
                                self.target
                            );
                            self.down_noted = true;
                        }
                        continue;
                    }
                }
            }
            // Away: wait for the next attempt, unless the run is over.
            if ctl.closing.load(Relaxed) {
                let since = *closing_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= GRACE {
                    ctl.dropped(batch.len() as u64);
                    drain_lost(&rx, ctl);
                    return Err(io::Error::other(format!("{}: the server could not be reached", self.target)));
                }
            }
            std::thread::sleep(self.next_try.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, kind: &'static str) -> Line {
        Line { text: text.into(), kind, last: false }
    }

    fn ctl() -> Ctl {
        Ctl::new(Arc::new(SinkStats::default()), Arc::new(Stats::default()), Flags::default())
    }

    /// `syslog:` on a socket bound here in place of /dev/log: one
    /// datagram per event, `<PRI>picket[PID]: JSON`.
    #[test]
    fn local_syslog_frames_each_event_as_one_message() {
        let dir = std::env::temp_dir().join(format!("picket-syslog-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let rx_sock = UnixDatagram::bind(&path).unwrap();
        let d = Datagram::open(&Target::SyslogLocal(path.clone())).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(8);
        tx.send(line(r#"{"event_type":"port_scan"}"#, "port_scan")).unwrap();
        tx.send(line(r#"{"event_type":"stats"}"#, "stats")).unwrap();
        drop(tx);
        let c = ctl();
        d.run(rx, &c).unwrap();
        let mut buf = [0u8; 1024];
        let n = rx_sock.recv(&mut buf).unwrap();
        let want = format!("<133>picket[{}]: {{\"event_type\":\"port_scan\"}}", std::process::id());
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want);
        let n = rx_sock.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("<134>picket["));
        assert_eq!(c.stats.written.load(Relaxed), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A unix socket nobody bound: every event is lost and counted.
    #[test]
    fn a_unix_socket_without_a_reader_counts_every_event_lost() {
        let path = std::env::temp_dir().join(format!("picket-nobody-{}.sock", std::process::id()));
        let d = Datagram::open(&Target::Unix(path)).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(8);
        for _ in 0..5 {
            tx.send(line("{}", "x")).unwrap();
        }
        drop(tx);
        let c = ctl();
        d.run(rx, &c).unwrap();
        assert_eq!(c.stats.dropped.load(Relaxed), 5);
        assert_eq!(c.total.output_events_dropped.load(Relaxed), 5);
        assert_eq!(c.stats.written.load(Relaxed), 0);
    }
}
