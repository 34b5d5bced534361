//! Windows Firewall's `pfirewall.log`: W3C extended log format. The
//! `#Fields:` header decides the column order (Windows writes `date time
//! action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn
//! tcpack tcpwin icmptype icmpcode info path`, newer versions add `pid`);
//! `-` is an empty value. Times are local (`#Time Format: Local`), so
//! `--fw-tz` applies.
//!
//! Actions: `DROP`, `ALLOW`, `OPEN`/`OPEN-INBOUND` (accept), `CLOSE` (log);
//! `INFO-EVENTS-LOST` lines name no packet and count as other.

use super::record::{Action, Format, FwRecord, Label, Skip, bad, flags};
use super::text::{dec, ip, port, proto_number};
use super::time::{TimeCtx, iso};

/// Most columns a header may name.
pub const MAX_COLUMNS: usize = 32;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Date,
    Time,
    Action,
    Protocol,
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    Size,
    TcpFlags,
    IcmpType,
    IcmpCode,
    Path,
    Other,
}

/// The column order from a `#Fields:` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    fields: [Field; MAX_COLUMNS],
    n: usize,
}

impl Columns {
    /// Windows' own order, for headerless files read with `--fw-format winfw`.
    pub fn windows_default() -> Columns {
        header(b"#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path")
            .unwrap_or(Columns { fields: [Field::Other; MAX_COLUMNS], n: 0 })
    }
}

/// Reads a `#Fields:` header line.
pub fn header(line: &[u8]) -> Option<Columns> {
    let rest = line.strip_prefix(b"#Fields:")?;
    let mut c = Columns { fields: [Field::Other; MAX_COLUMNS], n: 0 };
    for name in rest.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty()) {
        if c.n == MAX_COLUMNS {
            return None;
        }
        c.fields[c.n] = match name.to_ascii_lowercase().as_slice() {
            b"date" => Field::Date,
            b"time" => Field::Time,
            b"action" => Field::Action,
            b"protocol" => Field::Protocol,
            b"src-ip" => Field::SrcIp,
            b"dst-ip" => Field::DstIp,
            b"src-port" => Field::SrcPort,
            b"dst-port" => Field::DstPort,
            b"size" => Field::Size,
            b"tcpflags" => Field::TcpFlags,
            b"icmptype" => Field::IcmpType,
            b"icmpcode" => Field::IcmpCode,
            b"path" => Field::Path,
            _ => Field::Other,
        };
        c.n += 1;
    }
    (c.n > 0).then_some(c)
}

/// Parses one data line under `cols`.
pub fn parse(line: &[u8], cols: &Columns, tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    let mut vals: [&[u8]; MAX_COLUMNS] = [b""; MAX_COLUMNS];
    let mut n = 0;
    for v in line.split(|&b| b == b' ' || b == b'\t').filter(|t| !t.is_empty()) {
        if n == cols.n {
            return Err(bad(Format::WinFw, "more values than #Fields columns"));
        }
        vals[n] = v;
        n += 1;
    }
    if n != cols.n {
        return Err(bad(Format::WinFw, "fewer values than #Fields columns"));
    }
    let get = |f: Field| cols.fields[..n].iter().position(|&x| x == f).map(|i| vals[i]).filter(|v| *v != b"-");
    let action = get(Field::Action).ok_or(bad(Format::WinFw, "no action"))?;
    let action = match action {
        b"DROP" => Action::Drop,
        b"ALLOW" | b"OPEN" | b"OPEN-INBOUND" => Action::Accept,
        b"CLOSE" => Action::Log,
        a if a.starts_with(b"INFO-") => return Err(Skip::Other(Some(Format::WinFw))),
        a => Action::from_word(a).ok_or(bad(Format::WinFw, "unknown action"))?,
    };
    let mut rec = FwRecord::new(Format::WinFw, action);
    let bad_value = |what| bad(Format::WinFw, what);
    if let (Some(d), Some(t)) = (get(Field::Date), get(Field::Time)) {
        let mut both = [0u8; 40];
        let len = d.len() + 1 + t.len();
        if len > both.len() {
            return Err(bad_value("bad date/time"));
        }
        both[..d.len()].copy_from_slice(d);
        both[d.len()] = b' ';
        both[d.len() + 1..len].copy_from_slice(t);
        match iso(&both[..len]) {
            Some((s, used)) if used == len => rec.ts_us = Some(s.resolve(tctx)),
            _ => return Err(bad_value("bad date/time")),
        }
    }
    rec.proto = match get(Field::Protocol) {
        Some(p) => Some(proto_number(p).ok_or(bad_value("unknown protocol"))?),
        None => None,
    };
    rec.src = get(Field::SrcIp).map(|v| ip(v).ok_or(bad_value("bad src-ip"))).transpose()?;
    rec.dst = get(Field::DstIp).map(|v| ip(v).ok_or(bad_value("bad dst-ip"))).transpose()?;
    rec.sport = get(Field::SrcPort).map(|v| port(v).ok_or(bad_value("bad src-port"))).transpose()?;
    rec.dport = get(Field::DstPort).map(|v| port(v).ok_or(bad_value("bad dst-port"))).transpose()?;
    rec.len = get(Field::Size).and_then(dec).and_then(|v| u32::try_from(v).ok());
    if rec.proto == Some(6) {
        rec.tcp_flags = get(Field::TcpFlags).and_then(flags::from_letters);
    }
    if let Some(t) = get(Field::IcmpType).and_then(dec).and_then(|v| u8::try_from(v).ok()) {
        let c = get(Field::IcmpCode).and_then(dec).and_then(|v| u8::try_from(v).ok()).unwrap_or(0);
        rec.icmp = Some((t, c));
    }
    if let Some(p) = get(Field::Path) {
        rec.rule = Label::new(p);
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::timefmt::rfc3339_us;

    const STD: &[u8] = b"#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path";

    fn tctx(tz: i32) -> TimeCtx {
        TimeCtx { reference_us: super::super::time::parse_reference("2026-11-22").unwrap(), tz_offset_s: tz }
    }

    // The first three lines are real (corpus winfw_* and OSSEC's sample); the
    // reordered header, IPv6 and ICMP lines follow Microsoft's documented
    // pfirewall.log fields, written here.
    #[test]
    fn real_lines() {
        let c = header(STD).unwrap();
        let r = parse(
            b"2021-06-22 12:19:41 DROP UDP 192.168.178.25 224.0.0.251 5353 5353 73 - - - - - - - RECEIVE",
            &c,
            &tctx(0),
        )
        .unwrap();
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2021-06-22T12:19:41.000000Z");
        assert_eq!(
            (r.action, r.proto, r.sport, r.dport, r.len),
            (Action::Drop, Some(17), Some(5353), Some(5353), Some(73))
        );
        assert_eq!(r.rule.as_str(), "RECEIVE");
        let r = parse(b"2006-09-20 10:38:21 DROP TCP 192.168.72.196 10.20.72.12 445 2459 48 SA 4175551841 892874455 17520 - - - RECEIVE", &c, &tctx(3600)).unwrap();
        assert_eq!(r.tcp_flags, Some(flags::SYN | flags::ACK));
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2006-09-20T09:38:21.000000Z");
        let r =
            parse(b"2006-09-19 03:04:29 OPEN TCP 192.168.72.12 10.20.72.204 3599 445 - - - - - - - - -", &c, &tctx(0))
                .unwrap();
        assert_eq!((r.action, r.len, r.tcp_flags), (Action::Accept, None, None));
    }

    #[test]
    fn header_decides_the_order_and_variations() {
        let c = header(
            b"#Fields: action time date dst-port src-port protocol dst-ip src-ip size icmptype icmpcode path pid",
        )
        .unwrap();
        let r =
            parse(b"DROP 07:06:00 2026-11-22 158 40000 TCP 2001:db8:d::10 2001:db8::7 60 - - RECEIVE 4", &c, &tctx(0))
                .unwrap();
        assert_eq!(
            (r.src, r.dst, r.sport, r.dport),
            ("2001:db8::7".parse().ok(), "2001:db8:d::10".parse().ok(), Some(40000), Some(158))
        );
        let r =
            parse(b"ALLOW 07:06:00 2026-11-22 - - ICMP 192.0.2.10 198.51.100.7 60 8 0 SEND 4", &c, &tctx(0)).unwrap();
        assert_eq!((r.icmp, r.dport), (Some((8, 0)), None));
    }

    #[test]
    fn broken_lines() {
        let c = header(STD).unwrap();
        // Two records glued together (OSSEC's sample has one such line).
        let glued = b"2006-09-19 03:38:39 OPEN UDP 192.168.72.12 129.6.15.28 123 123 - - - - - - - - -2006-09-19 03:39:05 CLOSE UDP 192.168.72.12 10.20.72.186 1025 53 - - - - - - - - -";
        assert!(matches!(parse(glued, &c, &tctx(0)), Err(Skip::Bad { .. })));
        assert!(matches!(parse(b"2021-06-22 12:19:41 DROP UDP 192.168.178.25", &c, &tctx(0)), Err(Skip::Bad { .. })));
        assert!(matches!(
            parse(
                b"2021-06-22 12:19:41 DROP UDP 192.168.178 224.0.0.251 5353 5353 73 - - - - - - - RECEIVE",
                &c,
                &tctx(0)
            ),
            Err(Skip::Bad { .. })
        ));
        let lost = b"2021-06-22 12:48:21 INFO-EVENTS-LOST - - - - - - - - - - - - 7 -";
        assert_eq!(parse(lost, &c, &tctx(0)), Err(Skip::Other(Some(Format::WinFw))));
        assert!(header(b"#Version: 1.5").is_none());
    }
}
