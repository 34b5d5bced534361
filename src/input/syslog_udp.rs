//! Receiving syslog over UDP (`--syslog-listen ADDR:PORT`), the way a Cisco
//! ASA, a router or rsyslog forwards its log: one message per datagram
//! (RFC 5426), starting with a `<PRI>` (RFC 3164 / RFC 5424).
//!
//! The listener strips the PRI and a trailing newline and hands the rest to
//! the firewall-log parsers as one line, with the arrival time (some
//! devices send no timestamp of their own) and the sender. A datagram that
//! is not UTF-8 or has no PRI is still handed over: deciding what it is
//! belongs to the parsers, which count what they cannot read.
//!
//! Datagrams are read in batches (`recvmmsg`, up to [`BATCH`] a call,
//! through nix's safe wrapper) into buffers allocated once. The socket's
//! receive buffer is set large (`--syslog-rcvbuf`; past
//! `net.core.rmem_max`, root's `SO_RCVBUFFORCE` is tried) so a burst waits
//! in the kernel rather than being dropped, and what the kernel did drop
//! all the same is read from `SO_RXQ_OVFL` (the socket's drop counter,
//! carried on each datagram) into [`SyslogListener::kernel_drops`].
//!
//! [`SyslogListener::spawn_reader`] moves the receiving to a thread of its
//! own ([`SyslogReader`]): it only reads the socket and copies each batch's
//! messages into a reused buffer, handed over through a bounded channel
//! ([`QUEUE`] batches), so the socket is drained while the log thread
//! parses and correlates (on two cores the two overlap), and a correlation
//! window that takes a while does not leave the socket unread. When the
//! queue is full the reader waits: what does not fit then waits in the
//! kernel's buffer, and what overflows that is counted as kernel drops.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, getsockopt, recvmmsg, setsockopt, sockopt,
};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest datagram kept whole; longer ones are truncated by the kernel
/// (and counted by the caller as overlong through `Message::truncated`).
pub const MAX_DATAGRAM: usize = 8192;

/// Datagrams read per system call.
pub const BATCH: usize = 64;

/// The default `--syslog-rcvbuf`: the kernel charges about 1 KiB per small
/// datagram (and grants twice what is asked), so some 60,000 netfilter
/// lines, 300 ms of a 200,000-a-second stream. Kernel memory, used only
/// while the reader falls behind; not the process's RSS.
pub const DEFAULT_RCVBUF: usize = 32 << 20;

/// Batches in flight between a [`SyslogReader`] thread and its consumer
/// (at most `BATCH` messages each).
pub const QUEUE: usize = 64;

/// One received batch, copied out of the receive buffers: the texts end to
/// end in `data`, and each message's place and metadata.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    msgs: Vec<Meta>,
}

#[derive(Clone, Copy)]
struct Meta {
    start: usize,
    end: usize,
    pri: Option<(u8, u8)>,
    received_us: i64,
    peer: SocketAddr,
    truncated: bool,
}

/// The consumer's end of a reader thread (see the module doc). Dropping
/// it stops the thread (within the poll interval).
pub struct SyslogReader {
    rx: Receiver<Batch>,
    recycle: Sender<Batch>,
    drops: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for SyslogReader {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

impl SyslogReader {
    /// Takes one batch (waiting up to `wait` for it), giving each message
    /// to `each`. Returns how many there were; 0 when none came in time
    /// (or the thread ended on a socket error).
    pub fn recv(&self, wait: Duration, mut each: impl FnMut(Message<'_>)) -> usize {
        let b = match self.rx.try_recv() {
            Ok(b) => b,
            Err(_) => match self.rx.recv_timeout(wait) {
                Ok(b) => b,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return 0,
            },
        };
        for m in &b.msgs {
            let text = b.data.get(m.start..m.end).unwrap_or_default();
            each(Message { text, pri: m.pri, received_us: m.received_us, peer: m.peer, truncated: m.truncated });
        }
        let n = b.msgs.len();
        let _ = self.recycle.try_send(b);
        n
    }

    /// The kernel's drop count, as of the reader's last batch.
    pub fn kernel_drops(&self) -> u64 {
        self.drops.load(Relaxed)
    }
}

/// One received message.
#[derive(Debug)]
pub struct Message<'a> {
    /// The message after the PRI, without a trailing newline.
    pub text: &'a [u8],
    /// Facility and severity from the PRI, if there was a valid one.
    pub pri: Option<(u8, u8)>,
    /// Arrival time, microseconds since the Unix epoch.
    pub received_us: i64,
    /// The sender (an IPv4-mapped address given as IPv4, [`canonical_ip`]).
    pub peer: SocketAddr,
    /// The datagram was longer than [`MAX_DATAGRAM`] (it was cut short).
    pub truncated: bool,
}

/// A bound UDP socket with a receive timeout, so a reader thread can check
/// for shutdown between batches.
pub struct SyslogListener {
    sock: UdpSocket,
    /// `BATCH` slots of `MAX_DATAGRAM` bytes.
    bufs: Vec<u8>,
    /// The socket's drop counter, as last reported by the kernel.
    drops: u32,
    rcvbuf: usize,
}

impl SyslogListener {
    /// Binds `addr`, asks for a receive buffer of `rcvbuf` bytes and turns
    /// on the kernel's drop counter. Each receive waits at most `poll`.
    pub fn bind(addr: SocketAddr, poll: Duration, rcvbuf: usize) -> io::Result<SyslogListener> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_read_timeout(Some(poll))?;
        setsockopt(&sock, sockopt::RxqOvfl, &1)?;
        let rcvbuf = set_rcvbuf(&sock, rcvbuf);
        Ok(SyslogListener { sock, bufs: vec![0; BATCH * MAX_DATAGRAM], drops: 0, rcvbuf })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The receive buffer the kernel granted (as `SO_RCVBUF` reads it back:
    /// twice what it holds of payload, for its own bookkeeping).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    /// Datagrams the kernel dropped because the receive buffer was full,
    /// since the socket was bound (as of the last datagram read).
    pub fn kernel_drops(&self) -> u64 {
        u64::from(self.drops)
    }

    /// Starts a thread that reads this socket (a duplicate of its
    /// descriptor, with buffers of its own) and hands the messages over in
    /// batches; see the module doc. Start it after `--user` has dropped
    /// privileges, so the thread holds none.
    pub fn spawn_reader(&self) -> io::Result<SyslogReader> {
        let sock = self.sock.try_clone()?;
        let mut l =
            SyslogListener { sock, bufs: vec![0; BATCH * MAX_DATAGRAM], drops: self.drops, rcvbuf: self.rcvbuf };
        let (tx, rx) = bounded::<Batch>(QUEUE);
        let (recycle, pool) = bounded::<Batch>(QUEUE + 2);
        let drops = Arc::new(AtomicU64::new(u64::from(self.drops)));
        let published = Arc::clone(&drops);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new().name("syslog-udp".into()).spawn(move || {
            let mut b = Batch::default();
            while !stopped.load(Relaxed) {
                b.data.clear();
                b.msgs.clear();
                let got = l.recv_batch(|m| {
                    let start = b.data.len();
                    b.data.extend_from_slice(m.text);
                    let end = b.data.len();
                    let (pri, received_us, peer, truncated) = (m.pri, m.received_us, m.peer, m.truncated);
                    b.msgs.push(Meta { start, end, pri, received_us, peer, truncated });
                });
                published.store(l.kernel_drops(), Relaxed);
                match got {
                    Ok(0) => {}
                    Ok(_) => {
                        let next = pool.try_recv().unwrap_or_default();
                        // Waits while the queue is full (the kernel buffers meanwhile).
                        if tx.send(std::mem::replace(&mut b, next)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        crate::note!("picket: warning: syslog socket: {e}; no more datagrams are read");
                        return;
                    }
                }
            }
        })?;
        Ok(SyslogReader { rx, recycle, drops, stop })
    }

    /// Reads what is waiting, up to [`BATCH`] datagrams (waiting up to the
    /// poll interval for the first), giving each to `each`. Returns how
    /// many were read; 0 when the interval passed without one.
    pub fn recv_batch(&mut self, mut each: impl FnMut(Message<'_>)) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        let mut slots = self.bufs.chunks_mut(MAX_DATAGRAM);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
        // Fresh headers for each call (a few small allocations per batch, not
        // per datagram): nix's recvmmsg does not reset each header's control
        // length, which the kernel shrinks to 0 for a datagram without one,
        // so reused headers would lose the drop counter for good.
        let mut headers = MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(u32)));
        let res = recvmmsg(fd, &mut headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None);
        let msgs = match res {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        Ok(Self::deliver(msgs, &mut self.drops, &mut each))
    }

    fn deliver<'a>(
        msgs: impl Iterator<Item = nix::sys::socket::RecvMsg<'a, 'a, SockaddrStorage>>,
        drops: &mut u32,
        each: &mut impl FnMut(Message<'_>),
    ) -> usize {
        let received_us = now_us();
        let mut n = 0;
        for m in msgs {
            n += 1;
            if let Ok(cmsgs) = m.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::RxqOvfl(d) = c {
                        *drops = (*drops).max(d);
                    }
                }
            }
            let Some(peer) = m.address.as_ref().and_then(socket_addr) else { continue };
            let peer = SocketAddr::new(canonical_ip(peer.ip()), peer.port());
            let truncated = m.flags.contains(MsgFlags::MSG_TRUNC) || m.bytes > MAX_DATAGRAM;
            let data = m.iovs().next().map(|s| s.get(..m.bytes.min(s.len())).unwrap_or_default()).unwrap_or_default();
            let (pri, text) = split_pri(data);
            let text = trim_end_newlines(text);
            each(Message { text, pri, received_us, peer, truncated });
        }
        n
    }
}

/// Sets `SO_RCVBUF` to `want` bytes; when `net.core.rmem_max` caps it
/// lower, tries `SO_RCVBUFFORCE` (root, or CAP_NET_ADMIN). Returns what the
/// kernel reports.
fn set_rcvbuf(sock: &UdpSocket, want: usize) -> usize {
    let _ = setsockopt(sock, sockopt::RcvBuf, &want);
    let got = getsockopt(sock, sockopt::RcvBuf).unwrap_or(0);
    // The kernel doubles what it grants.
    if got / 2 < want {
        let _ = setsockopt(sock, sockopt::RcvBufForce, &want);
    }
    getsockopt(sock, sockopt::RcvBuf).unwrap_or(got)
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The sender's address as the allow-list and the records name it: an
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a `[::]` socket
/// reports for an IPv4 sender) is the IPv4 address it carries.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Splits a leading `<PRI>` (0..=191) off a message.
pub fn split_pri(data: &[u8]) -> (Option<(u8, u8)>, &[u8]) {
    let Some(rest) = data.strip_prefix(b"<") else { return (None, data) };
    let Some(end) = rest.iter().take(4).position(|&b| b == b'>') else { return (None, data) };
    let digits = rest.get(..end).unwrap_or_default();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return (None, data);
    }
    let v: u32 = digits.iter().fold(0, |a, &d| a * 10 + u32::from(d - b'0'));
    if v > 191 {
        return (None, data);
    }
    ((Some(((v / 8) as u8, (v % 8) as u8))), rest.get(end + 1..).unwrap_or_default())
}

fn trim_end_newlines(mut t: &[u8]) -> &[u8] {
    while let Some(x) = t.strip_suffix(b"\n").or_else(|| t.strip_suffix(b"\r")).or_else(|| t.strip_suffix(b"\0")) {
        t = x;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_is_split_and_checked() {
        assert_eq!(split_pri(b"<166>%ASA-6-106015: Deny"), (Some((20, 6)), &b"%ASA-6-106015: Deny"[..]));
        assert_eq!(split_pri(b"<0>x"), (Some((0, 0)), &b"x"[..]));
        for bad in [&b"<192>x"[..], b"<>x", b"<1a>x", b"<12345>x", b"no pri", b"<", b""] {
            assert_eq!(split_pri(bad), (None, bad), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(trim_end_newlines(b"msg\r\n\0"), b"msg");
    }

    #[test]
    fn ipv4_mapped_senders_are_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(canonical_ip(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(canonical_ip(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        // Not mapped: left as they are (an IPv4-compatible ::a.b.c.d is not an IPv4 sender).
        for s in ["::1", "2001:db8::1", "::127.0.0.1", "192.0.2.1"] {
            assert_eq!(canonical_ip(ip(s)), ip(s), "{s}");
        }
    }

    /// The next datagram, as (text length, truncated, peer), if one came
    /// within the poll interval.
    fn recv_one(l: &mut SyslogListener) -> Option<(usize, bool, SocketAddr)> {
        let mut got = None;
        l.recv_batch(|m| got = got.or(Some((m.text.len(), m.truncated, m.peer)))).unwrap();
        got
    }

    /// A datagram of exactly `MAX_DATAGRAM` bytes is whole; one byte more is cut.
    #[test]
    fn only_datagrams_longer_than_the_limit_are_truncated() {
        let mut l =
            SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(500), DEFAULT_RCVBUF).unwrap();
        let to = l.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for (len, cut) in [(MAX_DATAGRAM, false), (MAX_DATAGRAM + 1, true), (MAX_DATAGRAM + 500, true)] {
            tx.send_to(&vec![b'x'; len], to).unwrap();
            let (n, truncated, _) = recv_one(&mut l).expect("a datagram on loopback");
            assert_eq!((n, truncated), (len.min(MAX_DATAGRAM), cut), "{len} bytes");
        }
    }

    /// Datagrams sent while nobody reads overflow a small receive buffer:
    /// the kernel's drop counter (SO_RXQ_OVFL, carried by the datagrams
    /// queued after a drop) says how many were lost, and those read plus
    /// those dropped are all that were sent.
    #[test]
    fn kernel_drops_are_counted() {
        let mut l = SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(100), 4096).unwrap();
        assert!(l.rcvbuf() < 64 << 10, "a small buffer: {}", l.rcvbuf());
        let to = l.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 2000u64;
        for _ in 0..sent {
            tx.send_to(b"<164>%ASA-4-106023: Deny tcp src outside:203.0.113.5/1024 dst dmz:192.0.2.10/158", to)
                .unwrap();
        }
        let mut read = 0u64;
        let mut drain = |l: &mut SyslogListener| {
            while let Ok(n) = l.recv_batch(|_| {}) {
                if n == 0 {
                    break;
                }
                read += n as u64;
            }
        };
        drain(&mut l);
        // One more, queued after the drops, brings the count.
        tx.send_to(b"<13>after", to).unwrap();
        let sent = sent + 1;
        drain(&mut l);
        assert!(read > 0 && l.kernel_drops() > 0, "read {read}, dropped {}", l.kernel_drops());
        assert_eq!(read + l.kernel_drops(), sent, "read {read}, dropped {}", l.kernel_drops());
    }

    /// The default buffer is granted (past rmem_max through SO_RCVBUFFORCE as root).
    #[test]
    fn the_receive_buffer_is_large() {
        let l =
            SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(100), DEFAULT_RCVBUF).unwrap();
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let root = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")));
        let expect = if root { DEFAULT_RCVBUF } else { rmem_max.min(DEFAULT_RCVBUF) };
        assert!(l.rcvbuf() >= expect, "granted {}, expected at least {expect}", l.rcvbuf());
    }

    /// Several datagrams waiting are read in one call, each with its sender.
    #[test]
    fn a_batch_reads_every_waiting_datagram() {
        let mut l =
            SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(500), DEFAULT_RCVBUF).unwrap();
        let to = l.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..10 {
            tx.send_to(format!("<13>m{i}").as_bytes(), to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut got = Vec::new();
        let n = l.recv_batch(|m| got.push((String::from_utf8_lossy(m.text).into_owned(), m.peer))).unwrap();
        assert_eq!(n, 10);
        let want: Vec<_> = (0..10).map(|i| (format!("m{i}"), tx.local_addr().unwrap())).collect();
        assert_eq!(got, want);
    }

    /// The reader thread hands over every datagram, in order, with its
    /// sender, and the kernel's drop count; dropping it ends the thread.
    #[test]
    fn a_reader_thread_hands_over_every_datagram() {
        let l =
            SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(50), DEFAULT_RCVBUF).unwrap();
        let to = l.local_addr().unwrap();
        let r = l.spawn_reader().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 5000;
        for i in 0..sent {
            tx.send_to(format!("<13>m{i}\n").as_bytes(), to).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < sent {
            let n = r.recv(Duration::from_secs(2), |m| {
                assert_eq!((m.pri, m.peer, m.truncated), (Some((1, 5)), tx.local_addr().unwrap(), false));
                got.push(String::from_utf8_lossy(m.text).into_owned());
            });
            assert!(n > 0, "stalled after {} of {sent}", got.len());
        }
        let want: Vec<String> = (0..sent).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want);
        assert_eq!(r.kernel_drops(), 0);
        drop(r);
        // The thread has let go of its descriptor: nothing reads the socket,
        // so what is sent now stays queued for the listener itself.
        std::thread::sleep(Duration::from_millis(200));
        tx.send_to(b"<13>after", to).unwrap();
        let mut l = l;
        let mut after = None;
        l.recv_batch(|m| after = Some(m.text.to_vec())).unwrap();
        assert_eq!(after.as_deref(), Some(&b"after"[..]));
    }

    /// A real sender: util-linux `logger` (bsdutils) over UDP to loopback.
    #[test]
    fn receives_what_logger_sends() {
        let mut l =
            SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(200), DEFAULT_RCVBUF).unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let msg = "%ASA-4-106023: Deny tcp src outside:203.0.113.5/1024 dst dmz:192.0.2.10/158 by access-group \"outside_in\"";
        let st = std::process::Command::new("logger")
            .args(["-n", "127.0.0.1", "-P", &port, "--udp", "-p", "local4.warning", "--rfc3164", "-t", "asa", msg])
            .status()
            .expect("logger (bsdutils) is installed by scripts/test");
        assert!(st.success());
        let mut got = None;
        for _ in 0..25 {
            l.recv_batch(|m| {
                got = got.take().or(Some((
                    m.pri,
                    String::from_utf8_lossy(m.text).into_owned(),
                    m.received_us,
                    m.truncated,
                )))
            })
            .unwrap();
            if got.is_some() {
                break;
            }
        }
        let (pri, text, at, truncated) = got.expect("a datagram from logger");
        assert_eq!(pri, Some((20, 4)), "local4.warning");
        assert!(text.ends_with(msg), "{text}");
        assert!(text.contains("asa:") || text.contains("asa["), "RFC 3164 tag: {text}");
        assert!(at > 1_600_000_000_000_000 && !truncated);
    }
}
