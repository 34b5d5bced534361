//! PortSentry's alerts: 1.x syslog lines (`attackalert: Connect from host:
//! NAME/ADDR to TCP port: N`, the stealth modes' `TCP SYN/Normal scan from
//! host: ...`, `UDP scan from host: ...`), its history file (`EPOCH -
//! MM/DD/YYYY HH:MM:SS Host: NAME/ADDR Port: N TCP Blocked`), and 2.x's `Scan
//! from: [ADDR] (NAME) protocol: [TCP] port: [N] type: [...] ... blocked:
//! [true]`.
//!
//! Formats from PortSentry's sources (1.2 `portsentry.c`, 2.0 `sentry.c`).
//! Follow-up lines that name no new packet (`Host ... has been blocked`,
//! `is already blocked`, `has IP options set`) are other lines of the format.

use super::record::{Action, Format, FwRecord, Label, Skip, bad, flags};
use super::text::{find, ip, leading_dec, next_token, port, proto_number, trim};
use super::time::{TimeCtx, epoch, header, us_date};

/// Parses one PortSentry line; `Skip::Other(None)` if it is not one.
pub fn parse(line: &[u8], tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    if let Some(at) = find(line, b"attackalert: ") {
        return v1(line, at, tctx);
    }
    if let Some(at) = find(line, b"Scan from: [") {
        return v2(line, at, tctx);
    }
    if find(line, b" Host: ").is_some() && find(line, b" Port: ").is_some() {
        return history(line);
    }
    Err(Skip::Other(None))
}

/// `NAME/ADDR` as PortSentry 1.x writes a host: the address is after the
/// last `/` (the name may be the address again).
fn host(rec: &mut FwRecord, t: &[u8]) -> Option<()> {
    let (name, addr) = match t.iter().rposition(|&c| c == b'/') {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, t),
    };
    rec.src = Some(ip(addr)?);
    if ip(name).is_none() && !name.is_empty() {
        rec.src_name = Label::new(name);
    }
    Some(())
}

fn v1(line: &[u8], at: usize, tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    let msg = trim(&line[at + 13..]);
    let Some(from) = find(msg, b"from host: ") else { return Err(Skip::Other(Some(Format::PortSentry))) };
    let kind = trim(&msg[..from]);
    if kind.starts_with(b"Packet") {
        return Err(Skip::Other(Some(Format::PortSentry))); // "has IP options set": a second line for one packet
    }
    let mut rec = FwRecord::new(Format::PortSentry, Action::Alert);
    rec.ts_us = header(&line[..at]).stamp.map(|s| s.resolve(tctx));
    let broken = || bad(Format::PortSentry, "attackalert line fields missing");
    let (h, rest) = next_token(&msg[from + 11..]);
    host(&mut rec, h).ok_or_else(broken)?;
    // "to TCP port: N"
    let (to, rest) = next_token(rest);
    let (proto, rest) = next_token(rest);
    let (kw, rest) = next_token(rest);
    if to != b"to" || kw != b"port:" {
        return Err(broken());
    }
    rec.proto = Some(proto_number(proto).ok_or_else(broken)?);
    rec.dport = Some(port(next_token(rest).0).ok_or_else(broken)?);
    rec.rule = Label::new(kind);
    if rec.proto == Some(6) {
        rec.tcp_flags = scan_flags(kind);
    }
    Ok(rec)
}

/// The TCP flags a 1.x/2.x scan type names.
fn scan_flags(kind: &[u8]) -> Option<u8> {
    let has = |w: &[u8]| find(kind, w).is_some();
    if has(b"SYN/Normal") || kind == b"SYN" {
        Some(flags::SYN)
    } else if has(b"FIN scan") {
        Some(flags::FIN)
    } else if has(b"NULL scan") {
        Some(0)
    } else if has(b"XMAS scan") {
        Some(flags::FIN | flags::URG | flags::PSH)
    } else if has(b"Flags:") {
        // "Unknown Type: TCP Packet Flags: SYN: 1 FIN: 0 ACK: 1 PSH: 0 URG: 0 RST: 0"
        let mut bits = 0;
        for (name, bit) in [
            (&b"SYN: "[..], flags::SYN),
            (b"FIN: ", flags::FIN),
            (b"ACK: ", flags::ACK),
            (b"PSH: ", flags::PSH),
            (b"URG: ", flags::URG),
            (b"RST: ", flags::RST),
        ] {
            if let Some(i) = find(kind, name)
                && kind.get(i + name.len()) == Some(&b'1')
            {
                bits |= bit;
            }
        }
        Some(bits)
    } else {
        None
    }
}

/// A `[value]` after `key` in a 2.x line.
fn bracketed<'a>(msg: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = find(msg, key)? + key.len();
    let rest = msg[at..].strip_prefix(b"[")?;
    let end = rest.iter().position(|&c| c == b']')?;
    Some(&rest[..end])
}

fn v2(line: &[u8], at: usize, tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    let msg = &line[at..];
    let mut rec = FwRecord::new(Format::PortSentry, Action::Alert);
    rec.ts_us = header(&line[..at]).stamp.map(|s| s.resolve(tctx));
    let broken = || bad(Format::PortSentry, "Scan from: line fields missing");
    rec.src = Some(bracketed(msg, b"Scan from: ").and_then(ip).ok_or_else(broken)?);
    if let Some(open) = find(msg, b"] (") {
        let name = &msg[open + 3..];
        let name = &name[..name.iter().position(|&c| c == b')').unwrap_or(name.len())];
        if ip(name).is_none() {
            rec.src_name = Label::new(name);
        }
    }
    rec.proto = Some(bracketed(msg, b"protocol: ").and_then(proto_number).ok_or_else(broken)?);
    rec.dport = Some(bracketed(msg, b"port: ").and_then(port).ok_or_else(broken)?);
    let kind = bracketed(msg, b"type: ").ok_or_else(broken)?;
    rec.rule = Label::new(kind);
    if rec.proto == Some(6) && kind != b"Connect" {
        rec.tcp_flags = scan_flags(kind);
    }
    if bracketed(msg, b"blocked: ") == Some(b"true") {
        rec.action = Action::Deny;
    }
    Ok(rec)
}

/// `1403884279 - 06/27/2014 17:51:19 Host: NAME/ADDR Port: 1 TCP Blocked`.
fn history(line: &[u8]) -> Result<FwRecord, Skip> {
    let (first, rest) = next_token(line);
    let Some(t) = epoch(first) else { return Err(Skip::Other(None)) };
    let broken = || bad(Format::PortSentry, "history line fields missing");
    let (dash, rest) = next_token(rest);
    if dash != b"-" || us_date(rest).is_none() {
        return Err(Skip::Other(None));
    }
    let mut rec = FwRecord::new(Format::PortSentry, Action::Deny);
    rec.ts_us = Some(t.resolve(&TimeCtx { reference_us: 0, tz_offset_s: 0 }));
    let h = find(rest, b"Host: ").ok_or_else(broken)?;
    let (hosttok, _) = next_token(&rest[h + 6..]);
    host(&mut rec, hosttok).ok_or_else(broken)?;
    let p = find(rest, b"Port: ").ok_or_else(broken)?;
    let (portnum, after) = leading_dec(&rest[p + 6..]).ok_or_else(broken)?;
    rec.dport = Some(u16::try_from(portnum).map_err(|_| broken())?);
    let (proto, after) = next_token(after);
    rec.proto = Some(proto_number(proto).ok_or_else(broken)?);
    rec.rule = Label::new(next_token(after).0);
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::timefmt::rfc3339_us;

    use crate::fwlog::testutil::tctx;

    fn ok(line: &str) -> FwRecord {
        crate::fwlog::testutil::parsed(parse, line)
    }

    // The history lines are real (corpus: fail2ban's test log). The syslog
    // lines are written from the format strings in PortSentry's sources: no
    // real `attackalert` sample was found.
    #[test]
    fn history_file() {
        let r = ok("1403884279 - 06/27/2014 17:51:19 Host: 192.168.56.1/192.168.56.1 Port: 1 UDP Blocked");
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2014-06-27T15:51:19.000000Z");
        assert_eq!((r.action, r.proto, r.dport, r.src), (Action::Deny, Some(17), Some(1), "192.168.56.1".parse().ok()));
        assert!(r.src_name.is_empty());
    }

    #[test]
    fn v1_connect_and_stealth_modes() {
        let r = ok(
            "Nov 22 07:06:00 dmz portsentry[811]: attackalert: Connect from host: scanner.example.net/198.51.100.7 to TCP port: 158",
        );
        assert_eq!((r.action, r.proto, r.dport), (Action::Alert, Some(6), Some(158)));
        assert_eq!(
            (r.src, r.src_name.as_str().into_owned()),
            ("198.51.100.7".parse().ok(), "scanner.example.net".into())
        );
        assert_eq!(r.tcp_flags, None);
        let r = ok(
            "Nov 22 07:06:00 dmz portsentry[811]: attackalert: TCP SYN/Normal scan from host: 198.51.100.7/198.51.100.7 to TCP port: 31337",
        );
        assert_eq!((r.tcp_flags, r.dport), (Some(flags::SYN), Some(31337)));
        let r = ok(
            "Nov 22 07:06:00 dmz portsentry[811]: attackalert: TCP XMAS scan from host: 198.51.100.7/198.51.100.7 to TCP port: 1",
        );
        assert_eq!(r.tcp_flags, Some(flags::FIN | flags::URG | flags::PSH));
        let r = ok(
            "Nov 22 07:06:00 dmz portsentry[811]: attackalert: Unknown Type: TCP Packet Flags: SYN: 1 FIN: 1 ACK: 0 PSH: 0 URG: 0 RST: 0 from host: 198.51.100.7/198.51.100.7 to TCP port: 80",
        );
        assert_eq!(r.tcp_flags, Some(flags::SYN | flags::FIN));
        let r = ok(
            "Nov 22 07:06:00 dmz portsentry[811]: attackalert: UDP scan from host: 2001:db8::7/2001:db8::7 to UDP port: 137",
        );
        assert_eq!((r.proto, r.src), (Some(17), "2001:db8::7".parse().ok()));
    }

    #[test]
    fn v2_scan_from() {
        let r = ok(
            "2026-11-22T07:06:00+00:00 Scan from: [198.51.100.7] (scanner.example.net) protocol: [TCP] port: [21] type: [TCP SYN/Normal scan] IP opts: [not set] ignored: [false] triggered: [true] noblock: [false] blocked: [true]",
        );
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2026-11-22T07:06:00.000000Z");
        assert_eq!((r.action, r.dport, r.tcp_flags), (Action::Deny, Some(21), Some(flags::SYN)));
        assert_eq!(r.src_name.as_str(), "scanner.example.net");
        let r = ok(
            "Nov 22 07:06:00 dmz portsentry[9]: Scan from: [198.51.100.7] (198.51.100.7) protocol: [UDP] port: [137] type: [Connect] IP opts: [unknown] ignored: [false] triggered: [true] noblock: [unset] blocked: [false]",
        );
        assert_eq!((r.action, r.proto, r.tcp_flags), (Action::Alert, Some(17), None));
    }

    #[test]
    fn follow_ups_are_other_and_broken_lines_bad() {
        let o = Err(Skip::Other(Some(Format::PortSentry)));
        assert_eq!(parse(b"Nov 22 07:06:00 dmz portsentry[811]: attackalert: Host 198.51.100.7 has been blocked via wrappers with string: \"ALL: 198.51.100.7\"", &tctx()), o);
        assert_eq!(
            parse(
                b"portsentry[811]: attackalert: Host: 198.51.100.7/198.51.100.7 is already blocked Ignoring",
                &tctx()
            ),
            o
        );
        assert!(matches!(
            parse(b"portsentry[811]: attackalert: Connect from host: 198.51.100.7/198.51.100.7 to TCP po", &tctx()),
            Err(Skip::Bad { .. })
        ));
        assert!(matches!(
            parse(b"Scan from: [198.51.100.7] (x) protocol: [TCP] port: [2", &tctx()),
            Err(Skip::Bad { .. })
        ));
        assert_eq!(parse(b"Jun 14 15:16:01 combo sshd: Host: x Port: y", &tctx()), Err(Skip::Other(None)));
    }
}
