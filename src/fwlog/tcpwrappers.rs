//! TCP Wrappers (tcpd/libwrap) verdicts: `daemon[pid]: connect from CLIENT`
//! (allowed, logged with `-DLOG_CONNECT`-style severity) and `daemon[pid]:
//! refused connect from CLIENT`, behind a syslog header, optionally with
//! Solaris' `[ID n facility.level]` tag. CLIENT is an address, a host name,
//! `user@host`, or `name (addr)`.
//!
//! The log names the daemon, not the port: the destination port comes from
//! the daemon's well-known service (`in.telnetd` -> 23) when it is one of
//! [`DAEMONS`], and stays unknown otherwise. The destination address is never
//! logged.

use super::record::{Action, Format, FwRecord, Label, Skip, bad};
use super::text::{find, ip, next_token, service_port, trim};
use super::time::{TimeCtx, header};

/// Daemon names whose service (and so TCP port) is known.
pub const DAEMONS: [(&[u8], &[u8]); 16] = [
    (b"telnetd", b"telnet"),
    (b"ftpd", b"ftp"),
    (b"vsftpd", b"ftp"),
    (b"proftpd", b"ftp"),
    (b"sshd", b"ssh"),
    (b"rshd", b"rsh"),
    (b"rlogind", b"login"),
    (b"rexecd", b"exec"),
    (b"fingerd", b"finger"),
    (b"sendmail", b"smtp"),
    (b"smtpd", b"smtp"),
    (b"ipop3d", b"pop3"),
    (b"pop3d", b"pop3"),
    (b"imapd", b"imap4"),
    (b"identd", b"ident"),
    (b"portmap", b"sunrpc"),
];

/// Parses one TCP Wrappers line; `Skip::Other(None)` if it is not one.
pub fn parse(line: &[u8], tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    let Some((daemon, msg_at)) = tagged_message(line) else { return Err(Skip::Other(None)) };
    let msg = &line[msg_at..];
    let (action, client) = if let Some(c) = msg.strip_prefix(b"refused connect from") {
        (Action::Reject, c)
    } else if let Some(c) = msg.strip_prefix(b"connect from") {
        (Action::Accept, c)
    } else {
        return Err(Skip::Other(None));
    };
    if !(client.is_empty() || client.starts_with(b" ")) {
        return Err(Skip::Other(None));
    }
    let mut rec = FwRecord::new(Format::TcpWrappers, action);
    rec.ts_us = header(line).stamp.map(|s| s.resolve(tctx));
    let client = trim(client);
    if client.is_empty() {
        return Err(bad(Format::TcpWrappers, "no client after `connect from`"));
    }
    let (first, rest) = next_token(client);
    // `user@host`: the host is what matters.
    let host = first.iter().rposition(|&c| c == b'@').map_or(first, |i| &first[i + 1..]);
    rec.src = ip(host);
    if rec.src.is_none() {
        rec.src_name = Label::new(host);
        // sshd's libwrap writes `name (addr)`.
        let paren = rest.strip_prefix(b"(").and_then(|r| r.split(|&c| c == b')').next());
        rec.src = paren.and_then(ip);
    }
    let name = daemon.rsplit(|&c| c == b'.').next().unwrap_or(daemon); // in.telnetd -> telnetd
    rec.rule = Label::new(daemon);
    if let Some((_, svc)) = DAEMONS.iter().find(|(d, _)| *d == name) {
        rec.dport = service_port(svc);
        rec.proto = Some(6);
    }
    Ok(rec)
}

/// Finds the `name[pid]:` (or `name:`) tag after the syslog header and
/// returns the daemon name and where the message starts (after an optional
/// Solaris `[ID n fac.level]`).
fn tagged_message(line: &[u8]) -> Option<(&[u8], usize)> {
    let at = find(line, b"connect from")?;
    let h = header(&line[..at]);
    let mut b = h.rest;
    if h.host_follows {
        b = next_token(b).1;
    }
    let (tag, mut rest) = next_token(b);
    let tag = tag.strip_suffix(b":")?;
    let daemon = tag.split(|&c| c == b'[').next()?;
    if daemon.is_empty() || !daemon.iter().all(|c| c.is_ascii_alphanumeric() || b"._-/".contains(c)) {
        return None;
    }
    if rest.starts_with(b"[ID ") {
        let close = rest.iter().position(|&c| c == b']')?;
        rest = super::text::trim_start(&rest[close + 1..]);
    }
    // `rest` is a suffix of `line[..at]`; the message continues into `line[at..]`.
    Some((daemon, at - rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fwlog::testutil::tctx;

    fn ok(line: &str) -> FwRecord {
        crate::fwlog::testutil::parsed(parse, line)
    }

    // Real lines (corpus: OSSEC's tcpwrappers test logs), plus variations
    // written from tcpd's `refused connect from %s` / `connect from %s`.
    #[test]
    fn refused_and_allowed() {
        let r = ok("May 27 16:48:29 valhalla telnetd[5010]: refused connect from 88.226.34.75");
        assert_eq!(
            (r.action, r.src, r.dport, r.proto),
            (Action::Reject, "88.226.34.75".parse().ok(), Some(23), Some(6))
        );
        assert_eq!(r.rule.as_str(), "telnetd");
        let r = ok(
            "Jun  2 09:50:28 queen in.telnetd[19636]: [ID 947420 local2.warning] refused connect from 220-129-149-114.dynamic.hinet.net",
        );
        assert_eq!(
            (r.src, r.src_name.as_str().into_owned(), r.dport),
            (None, "220-129-149-114.dynamic.hinet.net".into(), Some(23))
        );
        let r = ok("May 29 11:04:16 queen ftpd[417946]: connect from vlh102.tncc.mu.edu");
        assert_eq!((r.action, r.dport), (Action::Accept, Some(21)));
    }

    #[test]
    fn variations() {
        let r = ok("Nov 22 07:06:00 dmz sshd[42]: refused connect from scanner.example.net (198.51.100.7)");
        assert_eq!((r.src, r.dport), ("198.51.100.7".parse().ok(), Some(22)));
        let r = ok("Nov 22 07:06:00 dmz in.fingerd[42]: connect from root@2001:db8::7");
        assert_eq!((r.src, r.dport), ("2001:db8::7".parse().ok(), Some(79)));
        let r = ok("Nov 22 07:06:00 dmz in.tftpd[42]: refused connect from 198.51.100.7");
        assert_eq!((r.dport, r.proto), (None, None));
    }

    #[test]
    fn other_and_bad() {
        assert_eq!(
            parse(b"Jun 17 07:07:00 combo ftpd[29504]: connection from 24.54.76.216 (x) at Fri Jun 17", &tctx()),
            Err(Skip::Other(None))
        );
        assert_eq!(
            parse(b"May 28 15:50:36 valhalla ftpd[28370]: FTP LOGIN FROM x, user12", &tctx()),
            Err(Skip::Other(None))
        );
        assert!(matches!(
            parse(b"May 27 16:48:29 valhalla telnetd[5010]: refused connect from", &tctx()),
            Err(Skip::Bad { .. })
        ));
    }
}
