//! The UDP syslog listener (`src/input/syslog_udp.rs`) on a real loopback
//! socket: each input is one datagram, received by `SyslogListener::recv_batch`
//! (PRI split, trailing newlines cut, the length limit) and then parsed as
//! the live firewall-log reader does (auto-detected format; the syslog
//! header, RFC 3164 or RFC 5424, read by `fwlog::time`). The first byte's
//! bit 0 stretches the datagram past `MAX_DATAGRAM` by repeating it, so
//! the truncation path is reached. Nothing may panic; the message must be
//! a part of what was sent, and cut exactly when the datagram was too long.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{FileTally, LineCtx, LineParser};
use picket::input::syslog_udp::{MAX_DATAGRAM, Message, SyslogListener};
use picket_fuzz::{TIME, check_outcome, check_tally};
use std::cell::RefCell;
use std::net::UdpSocket;
use std::time::Duration;

/// The largest UDP payload over IPv4.
const MAX_UDP: usize = 65_507;

thread_local! {
    static NET: RefCell<(SyslogListener, UdpSocket)> = RefCell::new({
        let l = SyslogListener::bind("127.0.0.1:0".parse().expect("addr"), Duration::from_secs(2), 1 << 20).expect("bind");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind the sender");
        tx.connect(l.local_addr().expect("local addr")).expect("connect");
        (l, tx)
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let sent: Vec<u8> = if mode & 1 == 1 && !body.is_empty() {
        body.iter().copied().cycle().take(MAX_DATAGRAM + 1 + usize::from(mode >> 1)).collect()
    } else {
        body[..body.len().min(MAX_UDP)].to_vec()
    };
    NET.with(|net| {
        let (l, tx) = &mut *net.borrow_mut();
        assert_eq!(tx.send(&sent).expect("send on loopback"), sent.len());
        let mut got = 0;
        l.recv_batch(|m| {
            got += 1;
            check(&sent, m);
        })
        .expect("recv");
        assert_eq!(got, 1, "one datagram sent on loopback arrives");
    });
});

/// The message must be the datagram after its PRI, cut exactly when too long.
fn check(sent: &[u8], m: Message<'_>) {
    assert_eq!(m.truncated, sent.len() > MAX_DATAGRAM);
    let kept = &sent[..sent.len().min(MAX_DATAGRAM)];
    assert!(m.text.len() <= kept.len());
    let at = if m.pri.is_some() { kept.iter().position(|&b| b == b'>').expect("a PRI ends in '>'") + 1 } else { 0 };
    assert_eq!(&kept[at..at + m.text.len()], m.text, "the message is the datagram after its PRI");
    if let Some((facility, severity)) = m.pri {
        assert!(facility < 24 && severity < 8);
    }
    let mut tally = FileTally::new("syslog");
    if m.truncated {
        tally.count_overlong(1);
        return check_tally(&tally, 0);
    }
    let res = LineParser::new(LineCtx { time: TIME, forced: None, file: 0 }).parse(m.text, 1);
    tally.count(1, &res);
    check_outcome(None, &res);
    check_tally(&tally, u64::from(res.is_ok()));
}
