//! ZoneAlarm's `ZAlog.txt`: one event per line, six fields separated by a
//! comma (the default), a tab or a semicolon, as the user chose:
//! `TYPE,YYYY/MM/DD,HH:MM:SS -5:00 GMT,SRC:PORT,DST:PORT,TRANSPORT`.
//!
//! The time is local, followed by its offset from GMT (`-5:00 GMT`, also
//! written `-8:00GMT`); the offset is honoured, so `--fw-tz` matters only for
//! a line without one. TRANSPORT is `TCP (flags:S)` (letters S F R P A U,
//! and 4 and 8 for the two bits above URG), `UDP`, or `ICMP
//! (type:8/subtype:0)`, where the address fields carry port 0.
//!
//! Only `FWIN` (an inbound packet the firewall blocked) and `FWIN_OK` (one it
//! let in, an accepted record) are packet records. The other event types
//! are counted by kind and skipped: `FWOUT` (blocked outbound: the host's own
//! traffic), `FWROUTE`, `FWLOOP`, `LOCK`, `PE` (a program asked for access),
//! `ACCESS` (Program Control), `MS` (MailSafe), ..., and the file's header
//! lines (`ZoneAlarm Logging Client v...`, `type,date,time,...`).

use super::record::{Action, Format, FwRecord, Skip, bad, flags};
use super::text::{dec, ip_port, proto_number, strip_prefix_ci, trim};
use super::time::Stamp;
use crate::output::timefmt::days_from_civil;

/// Event types that start a line, and the kind the tallies name them by.
/// `FWIN` and `FWIN_OK` are read; the rest are counted and skipped.
const TYPES: [&str; 14] = [
    "FWIN",
    "FWIN_OK",
    "FWOUT",
    "FWOUT_OK",
    "FWROUTE",
    "FWROUTE_OK",
    "FWLOOP",
    "LOCK",
    "PE",
    "ACCESS",
    "MS",
    "ZLUpdate",
    "ANTIVIRUS",
    "IMSECURITY",
];

const US: i64 = 1_000_000;

/// Parses one ZoneAlarm line; `Skip::Other(None)` if it is not one.
pub fn parse(line: &[u8], tctx: &super::time::TimeCtx) -> Result<FwRecord, Skip> {
    let line = trim(line);
    if header_line(line) {
        return Err(Skip::Kind { format: Format::ZoneAlarm, kind: "header" });
    }
    let Some(sep) = line.iter().copied().find(|c| matches!(c, b',' | b'\t' | b';')) else {
        return Err(Skip::Other(None));
    };
    let mut fields = line.split(|&c| c == sep);
    let ty = fields.next().unwrap_or_default();
    let date = fields.next().unwrap_or_default();
    let Some(kind) = TYPES.iter().find(|t| t.as_bytes().eq_ignore_ascii_case(ty)) else {
        return Err(Skip::Other(None));
    };
    let Some(days) = ymd(trim(date)) else { return Err(Skip::Other(None)) };
    let action = match *kind {
        "FWIN" => Action::Deny,
        "FWIN_OK" => Action::Accept,
        other => return Err(Skip::Kind { format: Format::ZoneAlarm, kind: other }),
    };
    let (Some(time), Some(src), Some(dst), Some(transport)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad(Format::ZoneAlarm, "fewer than six fields"));
    };
    let mut rec = FwRecord::new(Format::ZoneAlarm, action);
    rec.rule = super::record::Label::new(kind.as_bytes());
    let stamp = clock_and_zone(trim(time), days).ok_or(bad(Format::ZoneAlarm, "bad time or GMT offset"))?;
    rec.ts_us = Some(stamp.resolve(tctx));
    let (s, sp) = ip_port(trim(src), b':').ok_or(bad(Format::ZoneAlarm, "bad source address:port"))?;
    let (d, dp) = ip_port(trim(dst), b':').ok_or(bad(Format::ZoneAlarm, "bad destination address:port"))?;
    rec.src = Some(s);
    rec.dst = Some(d);
    let transport = trim(transport);
    let name_len = transport.iter().position(|c| !c.is_ascii_alphanumeric()).unwrap_or(transport.len());
    let proto = proto_number(&transport[..name_len]).ok_or(bad(Format::ZoneAlarm, "unknown transport"))?;
    rec.proto = Some(proto);
    let detail = trim(&transport[name_len..]);
    let detail = match detail {
        [] => None,
        [b'(', inner @ .., b')'] => Some(trim(inner)),
        _ => return Err(bad(Format::ZoneAlarm, "text after the transport is not `(...)`")),
    };
    match proto {
        6 | 17 => {
            rec.sport = Some(sp);
            rec.dport = Some(dp);
            if proto == 6 {
                let letters = detail
                    .and_then(|d| strip_prefix_ci(d, b"flags:"))
                    .ok_or(bad(Format::ZoneAlarm, "TCP without `(flags:...)`"))?;
                rec.tcp_flags = Some(tcp_flags(trim(letters)).ok_or(bad(Format::ZoneAlarm, "unknown TCP flag"))?);
            }
        }
        1 => {
            let d = detail.ok_or(bad(Format::ZoneAlarm, "ICMP without `(type:N/subtype:N)`"))?;
            rec.icmp = Some(icmp_type(d).ok_or(bad(Format::ZoneAlarm, "bad ICMP type/subtype"))?);
        }
        _ => {}
    }
    Ok(rec)
}

/// `ZoneAlarm Logging Client v6.5...` and the column legend lines
/// (`type,date,time,source,destination,transport (Security)`, older files
/// `ACCESS,DATE,TIME,SOURCE,DESTINATION,TRANSPORT`).
pub fn header_line(line: &[u8]) -> bool {
    if strip_prefix_ci(line, b"ZoneAlarm Logging Client").is_some() {
        return true;
    }
    [&b"type"[..], b"access"].iter().any(|first| {
        strip_prefix_ci(line, first).is_some_and(|r| {
            matches!(r.first(), Some(b',' | b'\t' | b';')) && strip_prefix_ci(&r[1..], b"date").is_some()
        })
    })
}

/// `YYYY/MM/DD` as days since the epoch.
fn ymd(b: &[u8]) -> Option<i64> {
    if b.len() != 10 || b[4] != b'/' || b[7] != b'/' {
        return None;
    }
    let y = dec(&b[..4])? as i64;
    let m = dec(&b[5..7])? as u32;
    let d = dec(&b[8..])? as u32;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `HH:MM:SS`, then optionally ` -5:00 GMT` / `-8:00GMT` / `+1:00 GMT`: UTC
/// when the offset is given, local time otherwise.
fn clock_and_zone(b: &[u8], days: i64) -> Option<Stamp> {
    let (clock, zone) = match b.iter().position(|&c| c == b' ' || c == b'+' || c == b'-') {
        Some(i) => (&b[..i], trim(&b[i..])),
        None => (b, &b""[..]),
    };
    let mut hms = clock.split(|&c| c == b':');
    let (h, m, s) = (dec(hms.next()?)?, dec(hms.next()?)?, dec(hms.next()?)?);
    if hms.next().is_some() || clock.len() > 8 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let us_of_day = (h as i64 * 3600 + m as i64 * 60 + s as i64) * US;
    if zone.is_empty() {
        return Some(Stamp::Local { days, us_of_day });
    }
    let (sign, z) = match zone.split_first()? {
        (b'+', z) => (1, z),
        (b'-', z) => (-1, z),
        _ => return None,
    };
    let end = z.iter().position(|c| !(c.is_ascii_digit() || *c == b':')).unwrap_or(z.len());
    let (off, gmt) = z.split_at(end);
    // What follows the offset names GMT (ZoneAlarm writes `GMT`, and some
    // builds `GMTGMT`), or nothing.
    let gmt = trim(gmt);
    if !(gmt.is_empty() || gmt.iter().all(|c| b"GMTgmt".contains(c))) {
        return None;
    }
    let (oh, om) = match off.iter().position(|&c| c == b':') {
        Some(i) => (dec(&off[..i])?, dec(&off[i + 1..])?),
        None => (dec(off)?, 0),
    };
    if oh > 14 || om > 59 || off.len() > 5 {
        return None;
    }
    let offset = sign * (oh as i64 * 3600 + om as i64 * 60) * US;
    Some(Stamp::Utc(days * 86_400 * US + us_of_day - offset))
}

/// ZoneAlarm's flag letters: S F R P A U, and `4` and `8` for the low- and
/// high-order bits above URG (ECE and CWR today).
fn tcp_flags(letters: &[u8]) -> Option<u8> {
    letters.iter().try_fold(0u8, |acc, c| {
        let bit = match c {
            b'4' => flags::ECE,
            b'8' => flags::CWR,
            _ => flags::from_name(std::slice::from_ref(c))?,
        };
        Some(acc | bit)
    })
}

/// `type:8/subtype:0` as (type, code).
fn icmp_type(d: &[u8]) -> Option<(u8, u8)> {
    let (t, c) = d.iter().position(|&x| x == b'/').map(|i| (&d[..i], &d[i + 1..]))?;
    let t = strip_prefix_ci(trim(t), b"type:")?;
    let c = strip_prefix_ci(trim(c), b"subtype:")?;
    Some((u8::try_from(dec(trim(t))?).ok()?, u8::try_from(dec(trim(c))?).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fwlog::testutil::{parsed, tctx};
    use crate::output::timefmt::rfc3339_us;

    #[test]
    fn fwin_tcp_every_field() {
        let r = parsed(parse, "FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.122:1140,192.0.2.164:27374,TCP (flags:S)");
        assert_eq!((r.format, r.action), (Format::ZoneAlarm, Action::Deny));
        // 07:27:42 at GMT-5 is 12:27:42 UTC.
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2002-03-19T12:27:42.000000Z");
        assert_eq!(r.src, "203.0.113.122".parse().ok());
        assert_eq!(r.dst, "192.0.2.164".parse().ok());
        assert_eq!((r.sport, r.dport, r.proto), (Some(1140), Some(27374), Some(6)));
        assert_eq!(r.tcp_flags, Some(flags::SYN));
        assert_eq!(r.icmp, None);
        assert_eq!(r.rule.as_str(), "FWIN");
    }

    #[test]
    fn udp_icmp_and_flag_letters() {
        let r = parsed(parse, "FWIN,2006/09/27,09:43:48 -5:00 GMT,10.62.3.14:1043,172.16.1.60:38293,UDP");
        assert_eq!((r.proto, r.sport, r.dport, r.tcp_flags), (Some(17), Some(1043), Some(38293), None));
        let r = parsed(parse, "FWIN,2004/02/01,20:05:26 -5:00 GMT,198.51.100.1:0,192.0.2.93:0,ICMP (type:8/subtype:0)");
        assert_eq!((r.proto, r.icmp, r.sport, r.dport), (Some(1), Some((8, 0)), None, None));
        let r = parsed(parse, "FWIN,2004/02/01,20:42:20 -5:00 GMT,127.0.0.1:80,192.0.2.93:1349,TCP (flags:AR)");
        assert_eq!(r.tcp_flags, Some(flags::ACK | flags::RST));
        let r = parsed(parse, "FWIN,2004/02/01,20:42:20 -5:00 GMT,192.0.2.1:80,192.0.2.93:1349,TCP (flags:SF48)");
        assert_eq!(r.tcp_flags, Some(flags::SYN | flags::FIN | flags::ECE | flags::CWR));
        // FWIN_OK: let in, an accepted record.
        let r = parsed(parse, "FWIN_OK,2006/09/27,08:32:14 -5:00 GMT,0.0.0.0:68,255.255.255.255:67,UDP");
        assert_eq!(r.action, Action::Accept);
    }

    #[test]
    fn zone_offsets_and_separators() {
        let t = |l: &str| rfc3339_us(parsed(parse, l).ts_us.unwrap());
        assert_eq!(
            t("FWIN,2001/12/31,17:48:00 -8:00GMT,192.0.2.1:7138,192.0.2.101:0,UDP"),
            "2002-01-01T01:48:00.000000Z"
        );
        assert_eq!(
            t("FWIN,2001/12/31,17:48:00 +1:00 GMT,192.0.2.1:7138,192.0.2.101:0,UDP"),
            "2001-12-31T16:48:00.000000Z"
        );
        assert_eq!(
            t("FWIN,2001/12/31,17:48:00 +5:30 GMT,192.0.2.1:1,192.0.2.101:2,UDP"),
            "2001-12-31T12:18:00.000000Z"
        );
        // No offset: local time, `--fw-tz` (here UTC).
        assert_eq!(t("FWIN,2001/12/31,17:48:00,192.0.2.1:1,192.0.2.101:2,UDP"), "2001-12-31T17:48:00.000000Z");
        for sep in ["\t", ";"] {
            let l = ["FWIN", "2002/03/19", "07:27:42 -5:00 GMT", "203.0.113.1:1140", "192.0.2.1:80", "TCP (flags:S)"]
                .join(sep);
            assert_eq!(parsed(parse, &l).dport, Some(80), "{sep:?}");
        }
    }

    #[test]
    fn other_kinds_are_named_and_skipped() {
        let kind = |l: &str| parse(l.as_bytes(), &tctx());
        let k = |kind: &'static str| Err(Skip::Kind { format: Format::ZoneAlarm, kind });
        assert_eq!(
            kind("FWOUT,2006/09/09,22:27:22 -5:00 GMT,172.16.70.135:1134,172.16.100.195:445,TCP (flags:S)"),
            k("FWOUT")
        );
        assert_eq!(
            kind("PE,2004/02/01,20:31:46 -5:00 GMTGMT, Download Accelerator Plus,66.94.216.250:53,N/A"),
            k("PE")
        );
        assert_eq!(kind("ACCESS,2006/11/15,14:57:42 -5:00 GMT,X was blocked (192.0.2.5:DNS).,N/A,N/A"), k("ACCESS"));
        assert_eq!(kind("FWROUTE,2004/02/01,19:34:40 -5:00 GMT,209.254.50.93:1027,192.42.93.32:53,UDP"), k("FWROUTE"));
        assert_eq!(kind("ZoneAlarm Logging Client v4.5.538.000"), k("header"));
        assert_eq!(kind("type,date,time,source,destination,transport"), k("header"));
        assert_eq!(kind("ACCESS,DATE,TIME,SOURCE,DESTINATION,TRANSPORT"), k("header"));
        // Not ZoneAlarm at all.
        assert_eq!(kind("FWIN is a word"), Err(Skip::Other(None)));
        assert_eq!(kind("date,src,dst"), Err(Skip::Other(None)));
        assert_eq!(kind("PE,not a date,x"), Err(Skip::Other(None)));
    }

    #[test]
    fn broken_fwin_lines_are_bad() {
        for (l, why) in [
            ("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1:1140", "fewer than six"),
            ("FWIN,2002/03/19,07:27 -5:00 GMT,203.0.113.1:1,192.0.2.1:2,UDP", "time"),
            ("FWIN,2002/03/19,07:27:42 -5:00 EST,203.0.113.1:1,192.0.2.1:2,UDP", "time"),
            ("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1,192.0.2.1:2,UDP", "source"),
            ("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1:1,192.0.2.1:99999,UDP", "destination"),
            ("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1:1,192.0.2.1:2,TCP", "flags"),
            ("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1:1,192.0.2.1:2,TCP (flags:SZ)", "flag"),
            ("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1:1,192.0.2.1:2,ICMP (type:300/subtype:0)", "ICMP"),
            ("FWIN,2002/03/19,07:27:42 -5:00 GMT,203.0.113.1:1,192.0.2.1:2,XYZ", "transport"),
        ] {
            match parse(l.as_bytes(), &tctx()) {
                Err(Skip::Bad { format: Some(Format::ZoneAlarm), reason }) => {
                    assert!(reason.contains(why), "{l}: {reason}")
                }
                other => panic!("{l}: {other:?}"),
            }
        }
    }
}
