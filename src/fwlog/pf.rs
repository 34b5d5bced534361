//! OpenBSD pf log lines as text: what `tcpdump -n -e -ttt -i pflog0` (or
//! `-r /var/log/pflog`) prints, usually relayed through syslog:
//! `[syslog header] pf: [time] rule N/(reason) ACTION DIR on IFACE: SRC.sport > DST.dport: DETAILS`.
//!
//! The time tcpdump printed is the packet's, so it wins over the syslog
//! header's. pflog captures themselves (link type PFLOG) are for replay, not
//! this module.

use super::record::{Action, Format, FwRecord, Label, Skip, bad, flags};
use super::text::{dec, find, find_token, ip, ip_port, next_token, trim};
use super::time::{TimeCtx, bsd, header, iso};
use std::net::IpAddr;

/// Parses one pf line; `Skip::Other(None)` if it is not one.
pub fn parse(line: &[u8], tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    let Some(rule_at) = rule_start(line) else { return Err(Skip::Other(None)) };
    let mut rec = FwRecord::new(Format::Pf, Action::Log);
    rec.ts_us = packet_time(&line[..rule_at], tctx);
    let (rule, rest) = next_token(&line[rule_at + 5..]);
    rec.rule = Label::new(rule.strip_suffix(b":").unwrap_or(rule));
    let (action, rest) = next_token(rest);
    rec.action = match action.strip_suffix(b":").unwrap_or(action) {
        b"pass" => Action::Accept,
        b"block" => Action::Deny,
        _ => Action::Log,
    };
    let Some(on) = find(rest, b" on ") else { return Err(bad(Format::Pf, "no `on IFACE:`")) };
    let (iface, rest) = next_token(&rest[on + 4..]);
    rec.iface = Label::new(iface.strip_suffix(b":").unwrap_or(iface));
    let Some(gt) = find(rest, b" > ") else { return Err(bad(Format::Pf, "no `SRC > DST`")) };
    let src = trim(&rest[..gt]).rsplit(|&c| c == b' ').next().unwrap_or(b"");
    let (dst, details) = next_token(&rest[gt + 3..]);
    let dst = dst.strip_suffix(b":").unwrap_or(dst);
    let (s, sp) = endpoint(src).ok_or(bad(Format::Pf, "bad source address"))?;
    let (d, dp) = endpoint(dst).ok_or(bad(Format::Pf, "bad destination address"))?;
    (rec.src, rec.sport, rec.dst, rec.dport) = (Some(s), sp, Some(d), dp);
    describe(details, &mut rec);
    Ok(rec)
}

/// Where `rule N/...` starts, if the line has one.
fn rule_start(line: &[u8]) -> Option<usize> {
    let at = find_token(line, b"rule ")?;
    let next = line.get(at + 5..)?;
    let (tok, _) = next_token(next);
    (tok.first().is_some_and(u8::is_ascii_digit) && tok.contains(&b'/')).then_some(at)
}

/// tcpdump's time before `rule`, else the syslog header's.
fn packet_time(head: &[u8], tctx: &TimeCtx) -> Option<i64> {
    let h = header(head);
    let mut rest = h.rest;
    if h.host_follows {
        rest = next_token(rest).1;
    }
    let (tag, after) = next_token(rest);
    if tag.ends_with(b":") {
        rest = after;
    }
    let inner = bsd(rest).or_else(|| iso(rest)).map(|(s, _)| s);
    inner.or(h.stamp).map(|s| s.resolve(tctx))
}

/// `A.B.C.D.port`, `A.B.C.D`, `2001:db8::1.port`.
fn endpoint(t: &[u8]) -> Option<(IpAddr, Option<u16>)> {
    if let Some(a) = ip(t) {
        return Some((a, None));
    }
    ip_port(t, b'.').map(|(a, p)| (a, Some(p)))
}

/// What tcpdump says after `DST:`: the protocol, TCP flags, ICMP type.
fn describe(d: &[u8], rec: &mut FwRecord) {
    let d = trim(d);
    if let Some(icmp) = d.strip_prefix(b"icmp: ") {
        rec.proto = Some(1);
        rec.icmp = icmp_kind(icmp);
    } else if d.starts_with(b"icmp6:") || d.starts_with(b"ICMP6") {
        rec.proto = Some(58);
    } else if d.starts_with(b"udp ") {
        rec.proto = Some(17);
    } else if rec.dport.is_some() {
        rec.proto = Some(6);
        rec.tcp_flags = Some(tcp_flags(d));
    }
    if let Some(at) = find(d, b"ttl ") {
        let (v, _) = next_token(&d[at + 4..]);
        rec.ttl = dec(v.strip_suffix(b",").unwrap_or(v)).and_then(|n| u8::try_from(n).ok());
    }
    if let Some(at) = find(d, b" id ") {
        let (v, _) = next_token(&d[at + 4..]);
        rec.ip_id = dec(v.strip_suffix(b",").unwrap_or(v)).and_then(|n| u32::try_from(n).ok());
    }
}

/// Old tcpdump: `S 1:1(0) win ...` / `. ack 5 win ...`; new: `Flags [S.], ...`.
fn tcp_flags(d: &[u8]) -> u8 {
    let (first, rest) = next_token(d);
    if first == b"Flags" {
        let (f, _) = next_token(rest);
        let f = f.strip_prefix(b"[").unwrap_or(f);
        let f = &f[..f.iter().position(|&c| c == b']').unwrap_or(f.len())];
        return f.iter().fold(0, |acc, c| acc | if *c == b'.' { flags::ACK } else { letter(*c) });
    }
    let mut bits =
        if first.iter().all(|c| b"SFRPWEU.".contains(c)) { first.iter().fold(0, |a, c| a | letter(*c)) } else { 0 };
    if find_token(d, b"ack ").is_some() {
        bits |= flags::ACK;
    }
    bits
}

fn letter(c: u8) -> u8 {
    match c {
        b'S' => flags::SYN,
        b'F' => flags::FIN,
        b'R' => flags::RST,
        b'P' => flags::PSH,
        b'U' => flags::URG,
        b'E' => flags::ECE,
        b'W' => flags::CWR,
        _ => 0,
    }
}

/// ICMP type and code from tcpdump's words.
fn icmp_kind(d: &[u8]) -> Option<(u8, u8)> {
    let has = |w: &[u8]| find(d, w).is_some();
    Some(if has(b"echo request") {
        (8, 0)
    } else if has(b"echo reply") {
        (0, 0)
    } else if has(b"unreachable") {
        let code = if has(b" port ") {
            3
        } else if has(b" protocol ") {
            2
        } else if has(b"net ") {
            0
        } else {
            1
        };
        (3, code)
    } else if has(b"time exceeded") {
        (11, if has(b"reassembly") { 1 } else { 0 })
    } else if has(b"redirect") {
        (5, 0)
    } else if has(b"source quench") {
        (4, 0)
    } else if has(b"router advertisement") {
        (9, 0)
    } else if has(b"parameter problem") {
        (12, 0)
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::timefmt::rfc3339_us;

    use crate::fwlog::testutil::tctx;

    fn ok(line: &str) -> FwRecord {
        crate::fwlog::testutil::parsed(parse, line)
    }

    // Real lines from OSSEC's pf documentation (corpus ossec_docs_pf.log).
    #[test]
    fn tcp_udp_icmp_from_the_ossec_sample() {
        let r = ok(
            "Mar 30 15:55:20 enigma pf: Mar 30 15:53:25.793256 rule 2/(match) pass in on xl0: 205.174.165.231.50425 > 192.168.2.10.22: . ack 2450721 win 73 <nop,nop,timestamp 1815379950 17589621,[|tcp]> (DF) [tos 0x10]",
        );
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2026-03-30T15:53:25.793256Z");
        assert_eq!(
            (r.action, r.rule.as_str().into_owned(), r.iface.as_str().into_owned()),
            (Action::Accept, "2/(match)".into(), "xl0".into())
        );
        assert_eq!(
            (r.src, r.sport, r.dport, r.proto),
            ("205.174.165.231".parse().ok(), Some(50425), Some(22), Some(6))
        );
        assert_eq!(r.tcp_flags, Some(flags::ACK));
        let r = ok(
            "Mar 30 15:55:20 enigma pf: Mar 30 15:55:14.265470 rule 3/(match) pass out on xl0: 192.168.2.10.1514 > 192.168.2.26.3875:  udp 57",
        );
        assert_eq!((r.proto, r.dport), (Some(17), Some(3875)));
        let r = ok(
            "Mar 30 15:55:19 enigma pf: Mar 30 15:48:03.688233 rule 3/(match) pass out on xl0: 192.168.2.10 > 192.168.2.1: icmp: 192.168.2.10 udp port 137 unreachable",
        );
        assert_eq!((r.proto, r.icmp, r.dport), (Some(1), Some((3, 3)), None));
        let r = ok(
            "Mar 30 15:55:19 enigma pf: Mar 30 15:48:02.810188 rule 2/(match) pass in on lo0: 127.0.0.1 > 127.0.0.1: icmp: echo reply",
        );
        assert_eq!(r.icmp, Some((0, 0)));
    }

    // Written from tcpdump's pflog printer output (print-pflog.c) for newer
    // OpenBSD: `rule N/M(reason)`, `Flags [S]`, IPv6; no real sample here.
    #[test]
    fn block_newer_flags_and_ipv6() {
        let r = ok(
            "Nov 22 07:06:00 fw pf: Nov 22 07:05:59.500000 rule 12/0(match): block in on em0: 198.51.100.7.40000 > 192.0.2.10.158: Flags [S], seq 1, win 16384, length 0",
        );
        assert_eq!(
            (r.action, r.tcp_flags, r.rule.as_str().into_owned()),
            (Action::Deny, Some(flags::SYN), "12/0(match)".into())
        );
        let r = ok("rule 1/(match) block in on em0: 2001:db8::7.40000 > 2001:db8:d::10.22: S 1:1(0) win 16384");
        assert_eq!(
            (r.src, r.dport, r.tcp_flags, r.ts_us),
            ("2001:db8::7".parse().ok(), Some(22), Some(flags::SYN), None)
        );
    }

    #[test]
    fn broken_and_foreign_lines() {
        assert!(matches!(
            parse(b"Mar 30 15:55:20 enigma pf: rule 2/(match) pass in on xl0: 205.174.165", &tctx()),
            Err(Skip::Bad { .. })
        ));
        assert!(matches!(
            parse(b"pf: rule 2/(match) pass in on xl0: bogus > 192.168.2.10.22: S", &tctx()),
            Err(Skip::Bad { .. })
        ));
        assert_eq!(parse(b"the rule of law", &tctx()), Err(Skip::Other(None)));
    }
}
