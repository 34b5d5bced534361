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

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, getsockopt, recvmmsg, setsockopt, sockopt,
};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest datagram kept whole; longer ones are truncated by the kernel
/// (and counted by the caller as overlong through `Message::truncated`).
pub const MAX_DATAGRAM: usize = 8192;

/// Datagrams read per system call.
pub const BATCH: usize = 64;

/// The default `--syslog-rcvbuf`: about 30,000 netfilter lines, 150 ms of
/// a 200,000-a-second stream.
pub const DEFAULT_RCVBUF: usize = 8 << 20;

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
