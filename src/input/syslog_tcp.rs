//! Syslog over a byte stream (RFC 6587 for TCP, RFC 5425 for TLS): the
//! framing only, as a pure function over bytes so that it can be fuzzed
//! (`next_frame`). The TCP/TLS listener that will use it is not built yet.
//!
//! A frame is either octet-counted (`LEN SP MSG`, LEN a decimal without a
//! leading zero) or newline-terminated (`MSG LF`); senders may mix them,
//! so the framing is detected per frame: a frame starting with a digit
//! 1-9 is octet-counted, any other (normally `<`) runs to the next LF.

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
}
