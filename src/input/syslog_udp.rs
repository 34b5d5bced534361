//! Receiving syslog over UDP (`--syslog-listen ADDR:PORT`), the way a Cisco
//! ASA, a router or rsyslog forwards its log: one message per datagram
//! (RFC 5426), starting with a `<PRI>` (RFC 3164 / RFC 5424).
//!
//! The listener strips the PRI and a trailing newline and hands the rest to
//! the firewall-log parsers as one line, with the arrival time (some
//! devices send no timestamp of their own) and the sender. A datagram that
//! is not UTF-8 or has no PRI is still handed over: deciding what it is
//! belongs to the parsers, which count what they cannot read.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest datagram kept whole; longer ones are truncated by the kernel
/// (and counted by the caller as overlong through `Message::truncated`).
pub const MAX_DATAGRAM: usize = 8192;

/// One received message.
#[derive(Debug)]
pub struct Message<'a> {
    /// The message after the PRI, without a trailing newline.
    pub text: &'a [u8],
    /// Facility and severity from the PRI, if there was a valid one.
    pub pri: Option<(u8, u8)>,
    /// Arrival time, microseconds since the Unix epoch.
    pub received_us: i64,
    pub peer: SocketAddr,
    /// The datagram was longer than [`MAX_DATAGRAM`] (it was cut short).
    pub truncated: bool,
}

/// A bound UDP socket with a receive timeout, so a reader thread can check
/// for shutdown between datagrams.
pub struct SyslogListener {
    sock: UdpSocket,
    buf: Vec<u8>,
}

impl SyslogListener {
    pub fn bind(addr: SocketAddr, poll: Duration) -> io::Result<SyslogListener> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_read_timeout(Some(poll))?;
        // One byte more than the largest message kept: a datagram that fills it
        // was longer than MAX_DATAGRAM.
        Ok(SyslogListener { sock, buf: vec![0; MAX_DATAGRAM + 1] })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The next message, or `None` when the poll interval passed without one.
    pub fn recv(&mut self) -> io::Result<Option<Message<'_>>> {
        let (n, peer) = match self.sock.recv_from(&mut self.buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        };
        let received_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let peer = SocketAddr::new(canonical_ip(peer.ip()), peer.port());
        let data = self.buf.get(..n.min(MAX_DATAGRAM)).unwrap_or_default();
        let (pri, text) = split_pri(data);
        let text = trim_end_newlines(text);
        Ok(Some(Message { text, pri, received_us, peer, truncated: n > MAX_DATAGRAM }))
    }
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

    /// A datagram of exactly `MAX_DATAGRAM` bytes is whole; one byte more is cut.
    #[test]
    fn only_datagrams_longer_than_the_limit_are_truncated() {
        let mut l = SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(500)).unwrap();
        let to = l.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for (len, cut) in [(MAX_DATAGRAM, false), (MAX_DATAGRAM + 1, true), (MAX_DATAGRAM + 500, true)] {
            tx.send_to(&vec![b'x'; len], to).unwrap();
            let m = l.recv().unwrap().expect("a datagram on loopback");
            assert_eq!((m.text.len(), m.truncated), (len.min(MAX_DATAGRAM), cut), "{len} bytes");
        }
    }

    /// A real sender: util-linux `logger` (bsdutils) over UDP to loopback.
    #[test]
    fn receives_what_logger_sends() {
        let mut l = SyslogListener::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(200)).unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let msg = "%ASA-4-106023: Deny tcp src outside:203.0.113.5/1024 dst dmz:192.0.2.10/158 by access-group \"outside_in\"";
        let st = std::process::Command::new("logger")
            .args(["-n", "127.0.0.1", "-P", &port, "--udp", "-p", "local4.warning", "--rfc3164", "-t", "asa", msg])
            .status()
            .expect("logger (bsdutils) is installed by scripts/test");
        assert!(st.success());
        let mut got = None;
        for _ in 0..25 {
            if let Some(m) = l.recv().unwrap() {
                got = Some((m.pri, String::from_utf8_lossy(m.text).into_owned(), m.received_us, m.truncated));
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
