//! The TCP/TLS syslog framing (`src/input/syslog_tcp.rs`, RFC 6587): the
//! input after two selector bytes is one connection's byte stream, given
//! to a `Deframer` as the listener does, read by read. The first byte is
//! the read size (0: as much as the buffer takes), the second sets the
//! longest message (16 to 271 bytes, so oversize frames of both kinds are
//! common). Nothing may panic; every message is at most the limit, none
//! longer in all than the stream; and the messages and the oversize count
//! are the same whatever the read size (a frame is never decided on a
//! partial read). Each message then goes through the PRI split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::input::syslog_tcp::Deframer;
use picket::input::syslog_udp::split_pri;

/// Messages and oversize frames of `stream` read `step` bytes at a time.
fn deframe(stream: &[u8], max: usize, step: usize) -> (Vec<Vec<u8>>, u64) {
    let mut d = Deframer::new(max);
    let (mut out, mut bad) = (Vec::new(), 0);
    let mut rest = stream;
    while !rest.is_empty() {
        let spare = d.spare();
        assert!(!spare.is_empty(), "the buffer always takes more");
        let n = step.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        bad += d.filled(n, |m| out.push(m.to_vec()));
    }
    (out, bad)
}

fuzz_target!(|data: &[u8]| {
    let [step, max, stream @ ..] = data else { return };
    let max = 16 + usize::from(*max);
    let step = if *step == 0 { usize::MAX } else { usize::from(*step) };
    let (msgs, bad) = deframe(stream, max, step);
    let mut consumed = 0usize;
    for m in &msgs {
        assert!(!m.is_empty() && m.len() <= max, "a message of {} bytes, limit {max}", m.len());
        consumed += m.len();
        let (pri, text) = split_pri(m);
        assert!(text.len() <= m.len() && pri.is_none_or(|(f, s)| f < 24 && s < 8));
    }
    assert!(consumed <= stream.len());
    if step != usize::MAX {
        assert_eq!((msgs, bad), deframe(stream, max, usize::MAX), "read size {step} changed the frames");
    }
});
