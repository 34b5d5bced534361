//! Linux netfilter log lines: the `LOG` target of iptables/ip6tables and
//! nftables (`log prefix ...`), and ulogd's LOGEMU output, behind a syslog,
//! journald, RFC 5424 or bare `dmesg` prefix.
//!
//! The kernel (`nf_log_syslog.c`) writes `PREFIX IN= OUT= [MAC=] SRC= DST=
//! LEN= TOS= PREC= TTL= ID= [CE] [DF] [MF] [FRAG:n] PROTO=...`; IPv6 has `TC=
//! HOPLIMIT= FLOWLBL=` instead of TOS/TTL/ID. Then per protocol: TCP `SPT= DPT=
//! [SEQ= ACK=] WINDOW= RES= <flags> URGP=`, UDP `SPT= DPT= LEN=`, ICMP `TYPE=
//! CODE= ...`, and for ICMP errors the quoted packet in `[...]` (skipped
//! here: its SRC/DST are the quoted packet's). A non-first fragment stops
//! after `PROTO=`, a packet too short for its header says `INCOMPLETE`.
//! A line that ends before its protocol's last field is truncated: bad.
//!
//! The verdict is not in the line; it is read from the log prefix (`DROP`,
//! `[UFW BLOCK]`, `IPTABLES:BLOCKED-CONN:`, `denylog`), else [`Action::Log`].

use super::record::{Action, Format, FwRecord, Label, Skip, bad, flags};
use super::text::{dec, find_token, ip, next_token, num, port, proto_number, trim};
use super::time::{Header, TimeCtx, header};

/// Parses one netfilter line; `Skip::Other(None)` if it is not one.
pub fn parse(line: &[u8], tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    let Some(in_at) = find_token(line, b"IN=") else { return Err(Skip::Other(None)) };
    let h = header(&line[..in_at]);
    let mut rec = FwRecord::new(Format::Netfilter, Action::Log);
    rec.ts_us = h.stamp.map(|s| s.resolve(tctx));
    let (prefix, uptime) = prefix_of(&h);
    rec.uptime_us = h.uptime_us.or(uptime);
    rec.rule = Label::new(prefix);
    rec.action = action_of(prefix);
    fields(&line[in_at..], &mut rec)?;
    Ok(rec)
}

/// The log prefix between the syslog header and `IN=`, and a kernel uptime
/// found after the host and `kernel:` tag.
fn prefix_of<'a>(h: &Header<'a>) -> (&'a [u8], Option<i64>) {
    let mut b = h.rest;
    if h.host_follows {
        // A host name never ends with ':'; a log prefix often does
        // (`dmesg --time-format iso` has no host: `<time> PK-IN-DROP: IN=`).
        let (host, rest) = next_token(b);
        if !host.ends_with(b":") {
            b = rest;
        }
    }
    let (tag, after) = next_token(b);
    // `kernel:` and `name[pid]:` are syslog tags, not part of the prefix.
    if tag == b"kernel:" || (tag.ends_with(b"]:") && tag.contains(&b'[')) {
        b = after;
    }
    let mut up = None;
    if let Some((u, used)) = super::time::uptime(b) {
        up = Some(u);
        b = &b[used.min(b.len())..];
    }
    (trim(b), up)
}

/// The verdict a log prefix names.
fn action_of(prefix: &[u8]) -> Action {
    let upper: [u8; 64] = {
        let mut a = [0u8; 64];
        for (d, s) in a.iter_mut().zip(prefix) {
            *d = s.to_ascii_uppercase();
        }
        a
    };
    let p = &upper[..prefix.len().min(64)];
    let has = |w: &[u8]| super::text::find(p, w).is_some();
    if has(b"REJECT") {
        Action::Reject
    } else if has(b"DROP") {
        Action::Drop
    } else if has(b"BLOCK") || has(b"DENY") || has(b"DENIED") {
        Action::Deny
    } else if has(b"ACCEPT") || has(b"ALLOW") || has(b"PASS") {
        Action::Accept
    } else {
        Action::Log
    }
}

/// What the protocol part needs before the line can be called complete.
#[derive(Default)]
struct Seen {
    proto: bool,
    src: bool,
    dst: bool,
    ports: bool,
    udp_len: bool,
    urgp: bool,
    icmp_type: bool,
    icmp_code: bool,
    incomplete: bool,
    fragment: bool,
    /// PROTO was a name: the kernel decoded the header and printed its fields.
    proto_named: bool,
    ip_len: bool,
    ip_id: bool,
}

/// Reads the `KEY=VALUE` and flag tokens from `IN=` on.
fn fields(b: &[u8], rec: &mut FwRecord) -> Result<(), Skip> {
    let mut seen = Seen::default();
    let mut depth = 0usize;
    let mut tcp_flags = 0u8;
    let mut in_iface: &[u8] = b"";
    let mut out_iface: &[u8] = b"";
    for tok in b.split(|&c| c == b' ').filter(|t| !t.is_empty()) {
        if depth > 0 || tok.starts_with(b"[") {
            // The packet quoted by an ICMP error, or `INCOMPLETE [n bytes]`.
            depth += tok.iter().filter(|&&c| c == b'[').count();
            depth = depth.saturating_sub(tok.iter().filter(|&&c| c == b']').count());
            continue;
        }
        let Some(eq) = tok.iter().position(|&c| c == b'=') else {
            match tok {
                b"INCOMPLETE" => seen.incomplete = true,
                b"DF" | b"MF" | b"CE" | b"OPT" => {}
                t if t.starts_with(b"FRAG:") => seen.fragment = dec(&t[5..]).is_some_and(|o| o > 0),
                t if seen.proto => {
                    if let Some(f) = flags::from_name(t).filter(|_| t.len() == 3) {
                        tcp_flags |= f;
                    }
                }
                _ => {}
            }
            continue;
        };
        let (key, val) = (&tok[..eq], &tok[eq + 1..]);
        let bad_num = || bad(Format::Netfilter, "bad number");
        match key {
            b"IN" => in_iface = val,
            b"OUT" => out_iface = val,
            b"SRC" if !seen.src => {
                rec.src = Some(ip(val).ok_or(bad(Format::Netfilter, "bad SRC address"))?);
                seen.src = true;
            }
            b"DST" if !seen.dst => {
                rec.dst = Some(ip(val).ok_or(bad(Format::Netfilter, "bad DST address"))?);
                seen.dst = true;
            }
            b"LEN" if !seen.ip_len => {
                rec.len = Some(dec(val).and_then(|n| u32::try_from(n).ok()).ok_or_else(bad_num)?);
                seen.ip_len = true;
            }
            b"LEN" if seen.proto => seen.udp_len = dec(val).is_some(),
            b"TTL" | b"HOPLIMIT" => rec.ttl = Some(dec(val).and_then(|n| u8::try_from(n).ok()).ok_or_else(bad_num)?),
            b"ID" if !seen.ip_id && !seen.proto => {
                rec.ip_id = Some(num(val).and_then(|n| u32::try_from(n).ok()).ok_or_else(bad_num)?);
                seen.ip_id = true;
            }
            b"PROTO" if !seen.proto => {
                rec.proto = Some(proto_number(val).ok_or(bad(Format::Netfilter, "unknown PROTO"))?);
                seen.proto = true;
                seen.proto_named = dec(val).is_none();
            }
            b"SPT" if seen.proto => rec.sport = Some(port(val).ok_or_else(bad_num)?),
            b"DPT" if seen.proto => {
                rec.dport = Some(port(val).ok_or_else(bad_num)?);
                seen.ports = rec.sport.is_some();
            }
            b"SEQ" if seen.proto && rec.proto == Some(6) => rec.seq = dec(val).and_then(|n| u32::try_from(n).ok()),
            b"URGP" => seen.urgp = dec(val).is_some(),
            b"TYPE" if seen.proto && !seen.icmp_type => {
                let t = dec(val).and_then(|n| u8::try_from(n).ok()).ok_or_else(bad_num)?;
                rec.icmp = Some((t, 0));
                seen.icmp_type = true;
            }
            b"CODE" if seen.icmp_type && !seen.icmp_code => {
                let c = dec(val).and_then(|n| u8::try_from(n).ok()).ok_or_else(bad_num)?;
                rec.icmp = rec.icmp.map(|(t, _)| (t, c));
                seen.icmp_code = true;
            }
            _ => {}
        }
    }
    rec.iface = Label::new(if in_iface.is_empty() { out_iface } else { in_iface });
    if !seen.src || !seen.dst {
        return Err(bad(Format::Netfilter, "truncated: no SRC/DST"));
    }
    if !seen.proto {
        return Err(bad(Format::Netfilter, "truncated: no PROTO"));
    }
    if seen.proto_named && !(seen.fragment || seen.incomplete) {
        let complete = match rec.proto {
            Some(6) => seen.ports && seen.urgp,
            Some(17 | 136) => seen.ports && seen.udp_len,
            Some(1 | 58) => seen.icmp_code,
            _ => true,
        };
        if !complete {
            return Err(bad(Format::Netfilter, "truncated: protocol fields missing"));
        }
    }
    if rec.proto == Some(6) && !seen.fragment && !seen.incomplete {
        rec.tcp_flags = Some(tcp_flags);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::timefmt::rfc3339_us;

    use crate::fwlog::testutil::tctx;

    fn ok(line: &str) -> FwRecord {
        crate::fwlog::testutil::parsed(parse, line)
    }

    // dmesg --time-format iso has no host: the token after the time is the
    // log prefix (a line of pcaps/fw_iptables_dmesg.log), with SEQ= kept.
    #[test]
    fn an_iso_dmesg_line_keeps_its_prefix_and_sequence_number() {
        let r = ok(
            "2026-11-22T10:34:36,658061+00:00 PK-IN-DROP: IN=to-edge OUT=pk-dmz MAC=4e:ec:c3:9c:06:65:2a:19:32:b9:aa:62:08:00 SRC=203.0.113.34 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=60 ID=302 PROTO=TCP SPT=2349 DPT=158 SEQ=1158352350 ACK=649707645 WINDOW=512 RES=0x00 SYN URGP=0 ",
        );
        assert_eq!(r.rule.as_str(), "PK-IN-DROP:");
        assert_eq!(r.action, Action::Drop);
        assert_eq!((r.seq, r.ttl, r.sport, r.dport), (Some(1_158_352_350), Some(60), Some(2349), Some(158)));
        // ICMP's SEQ= is the echo sequence, not a TCP one.
        let i = ok(
            "[  5.000001] IN=eth0 OUT= SRC=198.51.100.1 DST=192.0.2.10 LEN=84 TOS=0x00 PREC=0x00 TTL=60 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=3 ",
        );
        assert_eq!(i.seq, None);
    }

    // Real lines from the corpus (psad, ufw, Azure, smeserver), one per shape.
    #[test]
    fn psad_syn_with_options() {
        let r = ok(
            "Mar 11 20:35:14 linux kernel: [463493.257294] DROP IN=eth1 OUT= MAC=23:87:fc:c6:24:58:00:21:3f:98:99:78:09:00 SRC=192.168.10.55 DST=192.168.10.1 LEN=44 TOS=0x00 PREC=0x00 TTL=39 ID=54575 PROTO=TCP SPT=56247 DPT=1433 WINDOW=1024 RES=0x00 SYN URGP=0 OPT (020405B4) ",
        );
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2026-03-11T20:35:14.000000Z");
        assert_eq!(r.uptime_us, Some(463_493_257_294));
        assert_eq!(r.action, Action::Drop);
        assert_eq!(r.rule.as_str(), "DROP");
        assert_eq!(r.iface.as_str(), "eth1");
        assert_eq!((r.proto, r.sport, r.dport), (Some(6), Some(56247), Some(1433)));
        assert_eq!(r.src, "192.168.10.55".parse().ok());
        assert_eq!(r.dst, "192.168.10.1".parse().ok());
        assert_eq!((r.ttl, r.ip_id, r.len), (Some(39), Some(54575), Some(44)));
        assert_eq!(r.tcp_flags, Some(flags::SYN));
    }

    #[test]
    fn ufw_and_azure_prefixes() {
        let r = ok(
            "Aug 20 00:01:05 localhost kernel: [3217909.838554] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:7c:d8:0f:fe:54:00:7c:d8:0f:08:00 SRC=109.205.213.90 DST=194.58.102.129 LEN=40 TOS=0x00 PREC=0x00 TTL=240 ID=1830 PROTO=TCP SPT=51638 DPT=48580 WINDOW=1024 RES=0x00 SYN URGP=0 ",
        );
        assert_eq!((r.action, r.rule.as_str().into_owned()), (Action::Deny, "[UFW BLOCK]".to_string()));
        let r = ok(
            "Dec 11 00:05:07 ixion kernel: [2687005.355645] IPTABLES:BLOCKED-CONN: IN=eth0 OUT= MAC=00:0d:3a:2f:f2:27:12:34:56:78:9a:bc:08:00 SRC=40.119.104.0 DST=10.0.0.4 LEN=72 TOS=0x00 PREC=0x00 TTL=114 ID=0 DF PROTO=TCP SPT=23456 DPT=22911 WINDOW=17280 RES=0x00 ACK SYN URGP=0 ",
        );
        assert_eq!(r.tcp_flags, Some(flags::SYN | flags::ACK));
        assert_eq!(r.action, Action::Deny);
    }

    #[test]
    fn smeserver_multilog_udp_and_proto_0() {
        let r = ok(
            "@4000000046388eaa2d0f3d7c May  2 09:14:08 gluon denylog: IN=eth1 OUT= MAC=ff:ff:ff:ff:ff:ff:00:15:c5:55:aa:9f:08:00  SRC=216.12.18.89 DST=255.255.255.255 LEN=29 TOS=00 PREC=0x00 TTL=128 ID=5373 PROTO=UDP SPT=2112 DPT=1434 LEN=9",
        );
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2007-05-02T13:14:08.755973Z");
        assert_eq!((r.proto, r.dport, r.len, r.action), (Some(17), Some(1434), Some(29), Action::Deny));
        assert_eq!(r.rule.as_str(), "denylog:");
        let r = ok(
            "@4000000046388ebe1c2e0ed4 May  2 09:14:28 gluon denylog: IN=eth1 OUT= MAC=01:00:5e:00:00:01:00:10:63:71:93:3d:08:00  SRC=216.12.21.176 DST=224.0.0.1 LEN=28 TOS=00 PREC=0x00 TTL=1 ID=0 PROTO=0",
        );
        assert_eq!((r.proto, r.dport), (Some(0), None));
    }

    #[test]
    fn icmp_echo_and_icmp_error_with_quoted_packet() {
        let r = ok(
            "Mar 23 21:29:27 linux kernel: [1503546.179768] ICMP IN=eth0 OUT= MAC=23:87:fc:c6:24:58:00:21:3f:98:99:78:09:00 SRC=192.168.10.55 DST=192.168.10.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=18443 PROTO=ICMP TYPE=8 CODE=2 ID=2158 SEQ=512",
        );
        assert_eq!((r.icmp, r.ip_id, r.action), (Some((8, 2)), Some(18443), Action::Log));
        // Kernel format of an ICMP error quoting a UDP packet (nf_log_syslog.c).
        let r = ok(
            "[  123.000001] IN=eth0 OUT= SRC=198.51.100.1 DST=192.0.2.10 LEN=56 TOS=0x00 PREC=0xC0 TTL=250 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.10 DST=198.51.100.9 LEN=28 TOS=0x00 PREC=0x00 TTL=1 ID=7 PROTO=UDP SPT=40000 DPT=33434 LEN=8 ] ",
        );
        assert_eq!(r.src, "198.51.100.1".parse().ok());
        assert_eq!((r.icmp, r.ts_us, r.uptime_us), (Some((3, 3)), None, Some(123_000_001)));
        assert_eq!(r.dport, None);
    }

    #[test]
    fn ipv6_and_odd_protocols() {
        let r = ok(
            "Mar 17 13:39:13 linux kernel: [956932.482352] DROP IN=eth0 OUT= MAC=00:13:46:3a:41:36:00:1b:b9:76:9c:e4:86:dd SRC=2001:0db8:0000:f101:0000:0000:0000:0002 DST=2001:0db8:0000:f101:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=46395 DPT=80 WINDOW=5760 RES=0x00 SYN URGP=0 ",
        );
        assert_eq!(r.src, "2001:db8:0:f101::2".parse().ok());
        assert_eq!((r.ttl, r.ip_id), (Some(64), None));
        let r = ok(
            "Mar 15 20:58:59 linux kernel: [810518.886816] DROP IN=eth0 OUT= MAC=23:87:fc:c6:24:58:00:21:3f:98:99:78:09:00 SRC=192.168.10.55 DST=192.168.10.1 LEN=20 TOS=0x00 PREC=0x00 TTL=40 ID=40147 PROTO=UDPLITE INCOMPLETE [0 bytes] ",
        );
        assert_eq!((r.proto, r.dport), (Some(136), None));
        let r = ok(
            "Mar 15 20:58:59 linux kernel: [810518.886511] DROP IN=eth0 OUT= SRC=192.168.10.55 DST=192.168.10.1 LEN=20 TOS=0x00 PREC=0x00 TTL=56 ID=50515 PROTO=162 ",
        );
        assert_eq!(r.proto, Some(162));
        // ICMPv6's number over IPv4 is not decoded by the IPv4 logger: complete as is.
        let r = ok(
            "Mar 15 20:59:04 linux kernel: [810523.507536] DROP IN=eth0 OUT= SRC=192.168.10.55 DST=192.168.10.1 LEN=20 TOS=0x00 PREC=0x00 TTL=52 ID=48031 PROTO=58 ",
        );
        assert_eq!((r.proto, r.icmp), (Some(58), None));
    }

    #[test]
    fn nftables_ulogd_and_rfc5424() {
        // nftables `log prefix "nft drop: "` through journald's short-iso output.
        let r = ok(
            "2026-11-22T07:06:00.123456+01:00 fw kernel: nft drop: IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=198.51.100.7 DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=4242 DF PROTO=TCP SPT=40000 DPT=158 WINDOW=64240 RES=0x00 SYN URGP=0",
        );
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2026-11-22T06:06:00.123456Z");
        assert_eq!((r.rule.as_str().into_owned(), r.action), ("nft drop:".to_string(), Action::Drop));
        // ulogd LOGEMU: syslog-like time and host, then the prefix.
        let r = ok(
            "Nov 22 07:06:00 fw REJECT-IN IN=eth0 OUT= MAC= SRC=198.51.100.7 DST=192.0.2.10 LEN=28 TOS=00 PREC=0x00 TTL=52 ID=1 PROTO=UDP SPT=137 DPT=137 LEN=8 ",
        );
        assert_eq!((r.rule.as_str().into_owned(), r.action), ("REJECT-IN".to_string(), Action::Reject));
        let r = ok(
            "<4>1 2026-11-22T07:06:00Z fw kernel - - - [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.7 DST=192.0.2.10 LEN=28 TTL=52 ID=1 PROTO=UDP SPT=137 DPT=137 LEN=8",
        );
        assert_eq!(r.rule.as_str(), "[UFW BLOCK]");
        // A forwarded packet logged on output only.
        let r = ok("IN= OUT=eth1 SRC=192.0.2.10 DST=198.51.100.7 LEN=28 TTL=63 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=8");
        assert_eq!(r.iface.as_str(), "eth1");
    }

    #[test]
    fn truncated_lines_are_bad() {
        let full = "Aug 20 22:07:12 localhost kernel: [3297476.722562] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:7c:d8:0f:fe:54:00:7c:d8:0f:08:00 SRC=31.220.1.38 DST=194.58.102.129 LEN=40 TOS=0x00 PREC=0x00 TTL=248 ID=46388 PROTO=TCP SPT=61000 DPT=12209 WINDOW=1024 RES=0x00 SYN URGP=0 ";
        assert!(parse(full.as_bytes(), &tctx()).is_ok());
        let start = full.find("IN=").unwrap();
        for cut in start + 3..full.trim_end().len() - 1 {
            let r = parse(&full.as_bytes()[..cut], &tctx());
            assert!(matches!(r, Err(Skip::Bad { format: Some(Format::Netfilter), .. })), "cut {cut}: {r:?}");
        }
        assert_eq!(parse(b"Jun 14 15:16:01 combo sshd[1]: x", &tctx()), Err(Skip::Other(None)));
    }
}
