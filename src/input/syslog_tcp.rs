//! Syslog over a byte stream: `--syslog-listen tcp://ADDR:PORT` (RFC 6587)
//! and `tls://ADDR:PORT` (RFC 5425, through [`super::syslog_tls`]).
//!
//! Framing ([`next_frame`], a pure function over bytes so that it can be
//! fuzzed): a frame is either octet-counted (`LEN SP MSG`, LEN a decimal
//! without a leading zero) or newline-terminated (`MSG LF`); senders may mix
//! them, so the framing is detected per frame: a frame starting with a digit
//! 1-9 is octet-counted, any other (normally `<`) runs to the next LF.
//! [`Deframer`] keeps one connection's partial frame across reads in a
//! buffer allocated once, and skips (and counts) frames longer than
//! [`MAX_FRAME`], however far they run.
//!
//! The listener ([`StreamHub`]): one acceptor thread per listening socket
//! and one thread per connection, capped in total ([`MAX_CONNECTIONS`]) and
//! per sender address ([`MAX_PER_PEER`], so one flooding address cannot
//! take every slot); a connection over a cap is accepted and closed at once
//! and counted. `--syslog-allow` is checked when the TCP handshake is
//! complete (the accept), before any byte is read or any TLS work is done;
//! a TLS connection delivers nothing before its TLS handshake is complete
//! (and, with `--syslog-tls-client-ca`, the client's certificate verified).
//! Every connection reads with a short timeout, so a peer that completes no
//! frame (silent, or trickling bytes) is closed
//! after [`IDLE`] (a TLS handshake must end within [`HANDSHAKE`]) and
//! shutdown is seen. The messages go in batches (one per read) through a
//! bounded channel to the live log thread, which only ever `try_recv`s: a
//! slow or hostile peer stalls its own thread, never the analysis; a sender
//! faster than the log thread waits on its socket (TCP's flow control), so
//! nothing is dropped uncounted. Batches are recycled, not allocated per
//! read. Counts go to `stats.fw_live.syslog_tcp` (TCP and TLS together).

use super::syslog_udp::{canonical_ip, split_pri};
use crate::homenet::HomeNet;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest message kept (as the firewall-log reader's longest line);
/// longer frames are skipped and counted in `bad_frames`.
pub const MAX_FRAME: usize = crate::fwlog::MAX_LINE;
/// Connections open at once, over every stream listener.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections open at once from one sender address.
pub const MAX_PER_PEER: usize = 8;
/// A connection that sends nothing for this long is closed (senders such
/// as rsyslog reconnect when they have something to say).
pub const IDLE: Duration = Duration::from_secs(600);
/// A TLS handshake must be over within this.
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// How often a blocked read, accept or hand-over looks at shutdown and the
/// idle clock.
const TICK: Duration = Duration::from_millis(200);
/// Batches in flight to the log thread.
const QUEUE: usize = 64;

/// One `--syslog-listen` value: `[udp://]ADDR:PORT`, `tcp://ADDR:PORT` or
/// `tls://ADDR:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Tls(SocketAddr),
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Endpoint, String> {
        let (kind, rest) = match s.split_once("://") {
            Some((k, r)) => (k, r),
            None => ("udp", s),
        };
        let addr: SocketAddr =
            rest.parse().map_err(|_| format!("{rest:?} is not ADDR:PORT (e.g. 0.0.0.0:514 or [::]:6514)"))?;
        match kind.to_ascii_lowercase().as_str() {
            "udp" => Ok(Endpoint::Udp(addr)),
            "tcp" => Ok(Endpoint::Tcp(addr)),
            "tls" => Ok(Endpoint::Tls(addr)),
            _ => Err(format!("unknown transport {kind:?}: udp://, tcp:// or tls://")),
        }
    }
}

impl Endpoint {
    /// `udp`, `tcp` or `tls`: the channel records name.
    pub fn channel(&self) -> &'static str {
        match self {
            Endpoint::Udp(_) => "udp",
            Endpoint::Tcp(_) => "tcp",
            Endpoint::Tls(_) => "tls",
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match *self {
            Endpoint::Udp(a) | Endpoint::Tcp(a) | Endpoint::Tls(a) => a,
        }
    }
}

/// What [`next_frame`] found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message at `msg` (a range of the buffer); the next frame
    /// starts at `next`.
    Msg { msg: std::ops::Range<usize>, next: usize },
    /// More bytes are needed.
    Incomplete,
    /// A frame longer than the limit: the caller counts it and skips
    /// `Some(n)` bytes from the start (octet counting; `n` may be past the
    /// buffer's end), or, for `None`, everything to the next LF.
    Oversize(Option<usize>),
}

/// The longest octet count read (ten digits: up to 9,999,999,999).
const MAX_DIGITS: usize = 10;

/// The first frame of `buf`, with messages of at most `max` bytes.
pub fn next_frame(buf: &[u8], max: usize) -> Frame {
    match buf.first() {
        None => Frame::Incomplete,
        Some(b'1'..=b'9') => octet_counted(buf, max),
        Some(_) => newline_framed(buf, max),
    }
}

fn octet_counted(buf: &[u8], max: usize) -> Frame {
    let digits = buf.iter().take(MAX_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_DIGITS {
        // Not a count a sender would write: read it as a newline frame.
        return newline_framed(buf, max);
    }
    match buf.get(digits) {
        None => return Frame::Incomplete,
        Some(b' ') => {}
        // Digits not followed by a space: a message that starts with digits.
        Some(_) => return newline_framed(buf, max),
    }
    let len = buf[..digits].iter().fold(0usize, |a, &d| a.saturating_mul(10).saturating_add(usize::from(d - b'0')));
    let start = digits + 1;
    if len > max {
        return Frame::Oversize(Some(start.saturating_add(len)));
    }
    let end = start + len;
    if buf.len() < end { Frame::Incomplete } else { Frame::Msg { msg: start..end, next: end } }
}

fn newline_framed(buf: &[u8], max: usize) -> Frame {
    match buf.iter().take(max.saturating_add(1)).position(|&b| b == b'\n') {
        Some(i) => {
            let end = if i > 0 && buf[i - 1] == b'\r' { i - 1 } else { i };
            Frame::Msg { msg: 0..end, next: i + 1 }
        }
        None if buf.len() > max => Frame::Oversize(None),
        None => Frame::Incomplete,
    }
}

/// One connection's framing state: a buffer allocated once, the partial
/// frame at its start, and what is left to skip of an oversize frame.
pub struct Deframer {
    buf: Box<[u8]>,
    len: usize,
    max: usize,
    /// Bytes still to skip of an octet-counted frame longer than `max`.
    skip: usize,
    /// Skipping a newline frame longer than `max`, up to its LF.
    skip_line: bool,
}

impl Deframer {
    /// Frames of messages up to `max` bytes. The buffer holds a whole
    /// frame of `max` with its count, so a partial frame always fits.
    pub fn new(max: usize) -> Deframer {
        Deframer { buf: vec![0; max + MAX_DIGITS + 2].into_boxed_slice(), len: 0, max, skip: 0, skip_line: false }
    }

    /// Where the next read goes (never empty).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// `n` bytes were read into [`spare`](Self::spare): gives each complete
    /// message (the frame's content, PRI and all) to `each`, keeps a partial
    /// frame for the next read. Returns the oversize frames skipped.
    pub fn filled(&mut self, n: usize, mut each: impl FnMut(&[u8])) -> u64 {
        self.len = (self.len + n).min(self.buf.len());
        let mut at = 0;
        let mut oversize = 0;
        loop {
            if self.skip > 0 {
                let k = self.skip.min(self.len - at);
                at += k;
                self.skip -= k;
                if self.skip > 0 {
                    break;
                }
            }
            if self.skip_line {
                match self.buf[at..self.len].iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        at += i + 1;
                        self.skip_line = false;
                    }
                    None => {
                        at = self.len;
                        break;
                    }
                }
            }
            let rest = &self.buf[at..self.len];
            match next_frame(rest, self.max) {
                Frame::Msg { msg, next } => {
                    if !msg.is_empty() {
                        each(&rest[msg]);
                    }
                    at += next;
                }
                Frame::Incomplete => break,
                Frame::Oversize(Some(skip)) => {
                    oversize += 1;
                    self.skip = skip;
                }
                Frame::Oversize(None) => {
                    oversize += 1;
                    self.skip_line = true;
                }
            }
        }
        self.buf.copy_within(at..self.len, 0);
        self.len -= at;
        if self.len == self.buf.len() {
            // Cannot happen (a partial frame fits, see `new`); if it did,
            // the buffer is dropped whole rather than stall the connection.
            oversize += 1;
            self.len = 0;
        }
        oversize
    }
}

/// Messages from one connection's read, handed to the log thread.
pub struct Batch {
    pub channel: &'static str,
    /// The sender (IPv4-mapped given as IPv4).
    pub peer: IpAddr,
    /// Arrival time of the read, microseconds since the Unix epoch.
    pub received_us: i64,
    /// The messages after their PRI, end to end; `ends` marks where each ends.
    text: Vec<u8>,
    ends: Vec<u32>,
}

impl Batch {
    fn empty() -> Batch {
        Batch { channel: "tcp", peer: IpAddr::from([0, 0, 0, 0]), received_us: 0, text: Vec::new(), ends: Vec::new() }
    }

    fn push(&mut self, frame: &[u8]) {
        let (_, text) = split_pri(frame);
        let mut text = text;
        while let Some(t) =
            text.strip_suffix(b"\n").or_else(|| text.strip_suffix(b"\r")).or_else(|| text.strip_suffix(b"\0"))
        {
            text = t;
        }
        self.text.extend_from_slice(text);
        self.ends.push(self.text.len() as u32);
    }

    /// The messages, in order.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0usize;
        self.ends.iter().map(move |&e| {
            let m = self.text.get(start..e as usize).unwrap_or_default();
            start = e as usize;
            m
        })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// What the acceptors and connections share.
struct Ctx {
    stats: Arc<Stats>,
    allow: Option<HomeNet>,
    tls: Option<Arc<ServerConfig>>,
    stop: AtomicBool,
    /// Open connections per sender address (at most `MAX_CONNECTIONS` entries).
    open: Mutex<HashMap<IpAddr, usize>>,
    tx: Sender<Batch>,
    pool: Receiver<Batch>,
}

/// The bound TCP and TLS syslog listeners; their threads start with
/// [`start`](Self::start) (after `--user` dropped privileges).
pub struct StreamHub {
    listeners: Vec<(&'static str, TcpListener)>,
    ctx: Arc<Ctx>,
    rx: Receiver<Batch>,
    recycle: Sender<Batch>,
    threads: Vec<JoinHandle<()>>,
}

impl StreamHub {
    /// Binds every `tcp://` and `tls://` endpoint (`tls` is the server
    /// configuration, already loaded, that `tls://` needs).
    pub fn bind(
        endpoints: &[Endpoint],
        tls: Option<Arc<ServerConfig>>,
        allow: Option<HomeNet>,
        stats: Arc<Stats>,
    ) -> Result<StreamHub, String> {
        let mut listeners = Vec::new();
        for e in endpoints {
            if matches!(e, Endpoint::Udp(_)) {
                continue;
            }
            if matches!(e, Endpoint::Tls(_)) && tls.is_none() {
                return Err(format!(
                    "--syslog-listen tls://{}: needs --syslog-tls-cert and --syslog-tls-key",
                    e.addr()
                ));
            }
            let l = TcpListener::bind(e.addr())
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|err| format!("--syslog-listen {}://{}: cannot bind: {err}", e.channel(), e.addr()))?;
            listeners.push((e.channel(), l));
        }
        let (tx, rx) = bounded(QUEUE);
        let (recycle, pool) = bounded(QUEUE);
        let ctx = Arc::new(Ctx { stats, allow, tls, stop: AtomicBool::new(false), open: Mutex::default(), tx, pool });
        Ok(StreamHub { listeners, ctx, rx, recycle, threads: Vec::new() })
    }

    /// The listening sockets: (channel, address).
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.listeners.iter().filter_map(|(c, l)| l.local_addr().ok().map(|a| (*c, a))).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// Starts one acceptor thread per listener.
    pub fn start(&mut self) -> io::Result<()> {
        for (channel, l) in &self.listeners {
            let (l, ctx, channel) = (l.try_clone()?, Arc::clone(&self.ctx), *channel);
            let t = std::thread::Builder::new()
                .name(format!("picket-{channel}-accept"))
                .spawn(move || accept(l, channel, ctx))?;
            self.threads.push(t);
        }
        Ok(())
    }

    /// Waits up to `timeout` for a batch to be waiting (without taking it).
    pub fn wait(&self, timeout: Duration) {
        let end = Instant::now() + timeout;
        while self.rx.is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5).min(timeout));
        }
    }

    /// Hands each waiting message to `each(channel, peer, text, received_us)`,
    /// up to `max` batches; returns the batches taken. Never blocks.
    pub fn drain(&self, max: usize, mut each: impl FnMut(&'static str, IpAddr, &[u8], i64)) -> usize {
        let mut n = 0;
        while n < max {
            let Ok(mut b) = self.rx.try_recv() else { break };
            n += 1;
            for m in b.messages() {
                each(b.channel, b.peer, m, b.received_us);
            }
            b.text.clear();
            b.ends.clear();
            let _ = self.recycle.try_send(b);
        }
        n
    }

    /// Stops accepting and tells every connection to close; waits for the
    /// acceptors (connections see it within a read timeout).
    pub fn stop(&mut self) {
        self.ctx.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for StreamHub {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Accepts until shutdown: the allow-list and the caps decide at once;
/// a connection let in gets its own thread.
fn accept(l: TcpListener, channel: &'static str, ctx: Arc<Ctx>) {
    let s = &ctx.stats;
    while !ctx.stop.load(Relaxed) {
        let (sock, peer) = match l.accept() {
            Ok(x) => x,
            // Nothing waiting, or out of descriptors for a moment.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let ip = canonical_ip(peer.ip());
        if ctx.allow.as_ref().is_some_and(|a| !a.contains(ip)) {
            s.fw_syslog_tcp_refused.fetch_add(1, Relaxed);
            continue;
        }
        if !reserve(&ctx, ip) {
            s.fw_syslog_tcp_over_cap.fetch_add(1, Relaxed);
            continue;
        }
        let c = Arc::clone(&ctx);
        let spawned = std::thread::Builder::new().name(format!("picket-{channel}-conn")).spawn(move || {
            let _slot = Slot { ctx: &c, ip };
            serve(sock, channel, ip, &c);
        });
        match spawned {
            Ok(_) => {
                s.fw_syslog_tcp_accepted.fetch_add(1, Relaxed);
            }
            Err(_) => {
                release(&ctx, ip);
                s.fw_syslog_tcp_over_cap.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Takes a connection slot for `ip`, if the caps allow it.
fn reserve(ctx: &Ctx, ip: IpAddr) -> bool {
    let Ok(mut open) = ctx.open.lock() else { return false };
    let total: usize = open.values().sum();
    let mine = open.get(&ip).copied().unwrap_or(0);
    if total >= MAX_CONNECTIONS || mine >= MAX_PER_PEER {
        return false;
    }
    *open.entry(ip).or_insert(0) += 1;
    true
}

fn release(ctx: &Ctx, ip: IpAddr) {
    if let Ok(mut open) = ctx.open.lock()
        && let Some(n) = open.get_mut(&ip)
    {
        *n -= 1;
        if *n == 0 {
            open.remove(&ip);
        }
    }
}

/// A connection's slot, given back when its thread ends (even by a panic).
struct Slot<'a> {
    ctx: &'a Ctx,
    ip: IpAddr,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        release(self.ctx, self.ip);
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// One connection, until the peer closes it, it idles past `IDLE`, it
/// fails, or picket stops.
fn serve(mut sock: TcpStream, channel: &'static str, peer: IpAddr, ctx: &Ctx) {
    if sock.set_nonblocking(false).is_err()
        || sock.set_read_timeout(Some(TICK)).is_err()
        || sock.set_write_timeout(Some(HANDSHAKE)).is_err()
    {
        return;
    }
    match (channel, &ctx.tls) {
        ("tls", Some(cfg)) => {
            let Ok(mut conn) = rustls::ServerConnection::new(Arc::clone(cfg)) else { return };
            let until = Instant::now() + HANDSHAKE;
            while conn.is_handshaking() {
                match conn.complete_io(&mut sock) {
                    Ok((0, 0)) if conn.is_handshaking() => {
                        // The peer closed during the handshake.
                        ctx.stats.fw_syslog_tcp_handshake_failed.fetch_add(1, Relaxed);
                        return;
                    }
                    Ok(_) => {}
                    Err(e) if timed_out(&e) && Instant::now() < until && !ctx.stop.load(Relaxed) => {}
                    Err(_) => {
                        ctx.stats.fw_syslog_tcp_handshake_failed.fetch_add(1, Relaxed);
                        // Tell the client why (the alert rustls queued), if it listens.
                        let _ = conn.write_tls(&mut sock);
                        return;
                    }
                }
            }
            read_frames(&mut rustls::Stream::new(&mut conn, &mut sock), channel, peer, ctx);
        }
        _ => read_frames(&mut sock, channel, peer, ctx),
    }
}

/// Reads frames from `r` and hands them over, a batch per read.
fn read_frames(r: &mut impl Read, channel: &'static str, peer: IpAddr, ctx: &Ctx) {
    let s = &ctx.stats;
    let mut d = Deframer::new(MAX_FRAME);
    let mut last = Instant::now();
    // A batch that took no frame, kept for the next read.
    let mut spare: Option<Batch> = None;
    while !ctx.stop.load(Relaxed) {
        let n = match r.read(d.spare()) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if timed_out(&e) => {
                if last.elapsed() >= IDLE {
                    s.fw_syslog_tcp_idle_closed.fetch_add(1, Relaxed);
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        // The idle clock restarts only on a whole frame: a peer that
        // trickles a byte now and then, never finishing one, is idle.
        s.fw_syslog_tcp_bytes.fetch_add(n as u64, Relaxed);
        let mut b = spare.take().or_else(|| ctx.pool.try_recv().ok()).unwrap_or_else(Batch::empty);
        let bad = d.filled(n, |m| b.push(m));
        s.fw_syslog_tcp_bad_frames.fetch_add(bad, Relaxed);
        if b.is_empty() {
            spare = Some(b);
            continue;
        }
        s.fw_syslog_tcp_frames.fetch_add(b.len() as u64, Relaxed);
        (b.channel, b.peer, b.received_us) = (channel, peer, now_us());
        // The log thread is behind: wait (the sender waits on TCP's window).
        let mut pending = b;
        loop {
            match ctx.tx.send_timeout(pending, TICK) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(b)) if !ctx.stop.load(Relaxed) => pending = b,
                Err(_) => return,
            }
        }
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of a stream, as `next_frame` splits it (skipping
    /// oversize frames), and whether the end was a partial frame.
    fn split(mut buf: &[u8], max: usize) -> (Vec<&[u8]>, usize, bool) {
        let (mut out, mut oversize) = (Vec::new(), 0);
        loop {
            match next_frame(buf, max) {
                Frame::Msg { msg, next } => {
                    out.push(&buf[msg]);
                    buf = &buf[next..];
                }
                Frame::Incomplete => return (out, oversize, !buf.is_empty()),
                Frame::Oversize(skip) => {
                    oversize += 1;
                    let n = skip.unwrap_or_else(|| buf.iter().position(|&b| b == b'\n').map_or(buf.len(), |i| i + 1));
                    buf = buf.get(n..).unwrap_or_default();
                }
            }
        }
    }

    #[test]
    fn octet_counting_and_newline_framing_are_told_apart_per_frame() {
        let stream = b"5 <13>a<14>b\n10 <13>x\ny\nzz<15>c\r\n";
        let (msgs, oversize, partial) = split(stream, 100);
        assert_eq!(msgs, [&b"<13>a"[..], b"<14>b", b"<13>x\ny\nzz", b"<15>c"]);
        assert_eq!((oversize, partial), (0, false));
    }

    #[test]
    fn partial_frames_wait_for_more() {
        for part in [&b"1"[..], b"12", b"12 ", b"12 <13>abc", b"<13>no newline yet"] {
            assert_eq!(next_frame(part, 100), Frame::Incomplete, "{:?}", String::from_utf8_lossy(part));
        }
    }

    #[test]
    fn oversize_frames_are_skipped_whole_and_the_next_is_read() {
        let (msgs, oversize, _) = split(b"20 <13>0123456789abcdef<13>ok\n", 10);
        assert_eq!((msgs, oversize), (vec![&b"<13>ok"[..]], 1));
        let (msgs, oversize, _) = split(b"<13>0123456789abcdef\n<13>ok\n", 10);
        assert_eq!((msgs, oversize), (vec![&b"<13>ok"[..]], 1));
        // A huge count does not overflow.
        assert_eq!(next_frame(b"9999999999 x", 10), Frame::Oversize(Some(9_999_999_999 + 11)));
    }

    #[test]
    fn digits_without_a_space_are_a_newline_frame() {
        let (msgs, _, _) = split(b"123abc\n12345678901 too many digits\n", 100);
        assert_eq!(msgs, [&b"123abc"[..], b"12345678901 too many digits"]);
    }

    /// Hostile bytes never panic and always make progress or wait.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (x % 64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    [b'1', b'0', b' ', b'\n', b'<', b'a', b'\r', 0xff][(x % 8) as usize]
                })
                .collect();
            if let Frame::Msg { msg, next } = next_frame(&buf, 16) {
                assert!(msg.end <= buf.len() && next > 0 && next <= buf.len());
            }
        }
    }
    /// Every message a `Deframer` gives for `stream` read in pieces of
    /// `step` bytes, and the oversize frames it skipped.
    fn deframe(stream: &[u8], max: usize, step: usize) -> (Vec<Vec<u8>>, u64) {
        let mut d = Deframer::new(max);
        let (mut out, mut bad) = (Vec::new(), 0);
        let mut rest = stream;
        while !rest.is_empty() {
            let spare = d.spare();
            let n = step.min(spare.len()).min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            bad += d.filled(n, |m| out.push(m.to_vec()));
        }
        (out, bad)
    }

    /// Octet counting and newline framing mixed, an oversize frame of each
    /// kind (skipped whole, even past the buffer), and blank lines: the
    /// same messages whatever size the reads are.
    #[test]
    fn a_stream_reads_the_same_in_any_pieces() {
        let mut stream = b"5 <13>a<14>b\n\n30 ".to_vec();
        stream.extend_from_slice(&[b'x'; 30]);
        stream.extend_from_slice(b"<15>c\r\n");
        stream.extend_from_slice(&[b'y'; 40]);
        stream.extend_from_slice(b"\n10 <13>x\ny\nzz");
        let want: Vec<Vec<u8>> =
            [&b"<13>a"[..], b"<14>b", b"<15>c", b"<13>x\ny\nzz"].iter().map(|m| m.to_vec()).collect();
        for step in [1, 2, 3, 7, 16, 1000] {
            assert_eq!(deframe(&stream, 16, step), (want.clone(), 2), "reads of {step} bytes");
        }
    }

    /// The PRI is split off and trailing line ends trimmed, in order.
    #[test]
    fn a_batch_keeps_its_messages_apart() {
        let mut b = Batch::empty();
        b.push(b"<164>%ASA-4-106023: Deny\r\n");
        b.push(b"no pri");
        b.push(b"<13>");
        let got: Vec<&[u8]> = b.messages().collect();
        assert_eq!(got, [&b"%ASA-4-106023: Deny"[..], b"no pri", b""]);
    }

    #[test]
    fn endpoints_name_their_transport() {
        let a: SocketAddr = "127.0.0.1:514".parse().unwrap();
        assert_eq!("127.0.0.1:514".parse(), Ok(Endpoint::Udp(a)));
        assert_eq!("udp://127.0.0.1:514".parse(), Ok(Endpoint::Udp(a)));
        assert_eq!("tcp://127.0.0.1:514".parse(), Ok(Endpoint::Tcp(a)));
        assert_eq!("TLS://127.0.0.1:514".parse(), Ok(Endpoint::Tls(a)));
        assert_eq!("tls://[::]:6514".parse::<Endpoint>().map(|e| e.channel()), Ok("tls"));
        for bad in ["http://127.0.0.1:514", "tcp://127.0.0.1", "tcp://", "localhost:514"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    fn hub(allow: Option<&str>) -> (StreamHub, Arc<Stats>, SocketAddr) {
        let stats = Arc::new(Stats::default());
        let allow = allow.map(|a| HomeNet::parse(a).unwrap());
        let mut h =
            StreamHub::bind(&[Endpoint::Tcp("127.0.0.1:0".parse().unwrap())], None, allow, Arc::clone(&stats)).unwrap();
        h.start().unwrap();
        let to = h.local_addrs()[0].1;
        (h, stats, to)
    }

    fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Frames from a connection reach `drain`, with the channel and the
    /// sender; an oversize frame is counted and the next one still read.
    #[test]
    fn frames_reach_the_log_thread_with_their_sender() {
        use std::io::Write;
        let (h, stats, to) = hub(Some("127.0.0.0/8"));
        let mut c = TcpStream::connect(to).unwrap();
        let mut huge = format!("{} <13>", MAX_FRAME + 1).into_bytes();
        huge.resize(huge.len() + MAX_FRAME + 1 - 4, b'z');
        c.write_all(b"17 <13>octet counted<14>newline framed\n").unwrap();
        c.write_all(&huge).unwrap();
        c.write_all(b"<15>after\n").unwrap();
        let mut got = Vec::new();
        wait_for("three messages", || {
            h.drain(16, |ch, peer, m, at| {
                assert!(at > 0);
                got.push((ch, peer.to_string(), String::from_utf8_lossy(m).into_owned()))
            });
            got.len() >= 3
        });
        let want = |m: &str| ("tcp", "127.0.0.1".to_string(), m.to_string());
        assert_eq!(got, [want("octet counted"), want("newline framed"), want("after")]);
        assert_eq!(stats.fw_syslog_tcp_frames.load(Relaxed), 3);
        assert_eq!(stats.fw_syslog_tcp_bad_frames.load(Relaxed), 1);
        assert_eq!(stats.fw_syslog_tcp_accepted.load(Relaxed), 1);
    }

    /// A sender outside `--syslog-allow` is closed at accept and counted.
    #[test]
    fn senders_outside_the_allow_list_are_refused() {
        use std::io::Write;
        let (h, stats, to) = hub(Some("192.0.2.1/32"));
        let mut c = TcpStream::connect(to).unwrap();
        let _ = c.write_all(b"<13>forged\n");
        wait_for("the refusal", || stats.fw_syslog_tcp_refused.load(Relaxed) == 1);
        let mut buf = [0u8; 8];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)), "the connection is closed");
        assert_eq!(h.drain(16, |_, _, _, _| panic!("nothing is read")), 0);
        assert_eq!(stats.fw_syslog_tcp_accepted.load(Relaxed), 0);
    }

    /// One address holds at most `MAX_PER_PEER` connections; the rest are
    /// closed and counted, and a slot freed is taken again.
    #[test]
    fn connections_past_the_per_sender_cap_are_counted() {
        let (_h, stats, to) = hub(None);
        let conns: Vec<TcpStream> = (0..MAX_PER_PEER + 5).map(|_| TcpStream::connect(to).unwrap()).collect();
        wait_for("the caps", || {
            stats.fw_syslog_tcp_accepted.load(Relaxed) + stats.fw_syslog_tcp_over_cap.load(Relaxed)
                == (MAX_PER_PEER + 5) as u64
        });
        assert_eq!(stats.fw_syslog_tcp_accepted.load(Relaxed), MAX_PER_PEER as u64);
        assert_eq!(stats.fw_syslog_tcp_over_cap.load(Relaxed), 5);
        drop(conns);
        // The closed connections give their slots back.
        wait_for("free slots", || {
            let _c = TcpStream::connect(to).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            stats.fw_syslog_tcp_accepted.load(Relaxed) > MAX_PER_PEER as u64
        });
    }
}
