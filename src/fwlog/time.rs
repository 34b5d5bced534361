//! Timestamps in log lines: syslog (`Mon DD HH:MM:SS`, with or without a
//! year), ISO 8601 / RFC 5424, `MM/DD/YYYY`, Unix epoch, daemontools TAI64N
//! labels, and kernel `[uptime]` stamps; the syslog header in front of a
//! message; and turning what was found into microseconds since the epoch, UTC.
//!
//! Syslog time has neither year nor zone. The zone is the operator's
//! `--fw-tz` (a fixed offset). The year comes from a reference time (now for
//! `picket fwlog`, the capture's time once logs are correlated): a line is in
//! the reference's year unless that puts it more than [`FUTURE_SLACK_US`]
//! after the reference, in which case it is from the year before. So a log
//! running from December into January, read in January, gets both years
//! right.

use super::text::{dec, leading_dec, trim_start};
use crate::output::timefmt::{civil_from_days, days_from_civil};

/// Microseconds per second, minute, day.
const US: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US;
/// How far after the reference a year-less line may be and still belong to
/// the reference's year (clock skew between hosts, zones, a log read a little
/// before its last line was written).
pub const FUTURE_SLACK_US: i64 = US_PER_DAY;

/// What turns a found timestamp into UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeCtx {
    /// Reference for year inference, µs since the epoch (UTC).
    pub reference_us: i64,
    /// Offset of the log's local time from UTC, in seconds (`--fw-tz`).
    pub tz_offset_s: i32,
}

/// A timestamp as the text gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// Zone known: µs since the epoch, UTC.
    Utc(i64),
    /// Local time with a year: days since the epoch and µs into the day.
    Local { days: i64, us_of_day: i64 },
    /// Local time without a year (BSD syslog).
    NoYear { month: u32, day: u32, us_of_day: i64 },
}

impl Stamp {
    /// µs since the epoch, UTC.
    pub fn resolve(self, ctx: &TimeCtx) -> i64 {
        let tz = i64::from(ctx.tz_offset_s) * US;
        match self {
            Stamp::Utc(t) => t,
            Stamp::Local { days, us_of_day } => days * US_PER_DAY + us_of_day - tz,
            Stamp::NoYear { month, day, us_of_day } => {
                let (ref_year, _, _) = civil_from_days((ctx.reference_us + tz).div_euclid(US_PER_DAY));
                let at = |y: i64| days_from_civil(y, month, day) * US_PER_DAY + us_of_day - tz;
                let t = at(ref_year);
                if t > ctx.reference_us.saturating_add(FUTURE_SLACK_US) { at(ref_year - 1) } else { t }
            }
        }
    }
}

const MONTHS: [&[u8; 3]; 12] =
    [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];

fn month(b: &[u8]) -> Option<u32> {
    let b = b.get(..3)?;
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(b)).map(|i| i as u32 + 1)
}

fn days_in_month(y: Option<i64>, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 => match y {
            Some(y) if !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) => 28,
            _ => 29,
        },
        _ => 31,
    }
}

fn valid_date(y: Option<i64>, m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

/// Exactly `n` digits at the start of `b`.
fn digits(b: &[u8], n: usize) -> Option<u64> {
    dec(b.get(..n)?)
}

/// `HH:MM:SS[.frac]` at the start of `b`: (µs into the day, bytes used).
fn clock(b: &[u8]) -> Option<(i64, usize)> {
    let h = digits(b, 2)?;
    let m = digits(b.get(3..)?, 2)?;
    let s = digits(b.get(6..)?, 2)?;
    if b[2] != b':' || b[5] != b':' || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut used = 8;
    let mut frac = 0i64;
    if b.get(8) == Some(&b'.') || b.get(8) == Some(&b',') {
        let n = b[9..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, c) in b[9..9 + n].iter().enumerate().take(6) {
            frac += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
        used = 9 + n;
    }
    Some(((h as i64 * 3600 + m as i64 * 60 + s as i64) * US + frac, used))
}

/// BSD syslog `Mon DD HH:MM:SS[.frac]` or, as Cisco writes it,
/// `Mon DD YYYY HH:MM:SS`. The day may be space-padded (`Mar  5`).
pub fn bsd(b: &[u8]) -> Option<(Stamp, usize)> {
    let m = month(b)?;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 4;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let nd = b[i.min(b.len())..].iter().take(2).take_while(|c| c.is_ascii_digit()).count();
    let d = dec(b.get(i..i + nd)?)?;
    i += nd;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let mut year = None;
    if b.get(i + 4) == Some(&b' ') {
        year = Some(digits(&b[i..], 4)? as i64);
        i += 5;
    }
    let d = d as u32;
    if !valid_date(year, m, d) {
        return None;
    }
    let (us_of_day, used) = clock(b.get(i..)?)?;
    let stamp = match year {
        Some(y) => Stamp::Local { days: days_from_civil(y, m, d), us_of_day },
        None => Stamp::NoYear { month: m, day: d, us_of_day },
    };
    Some((stamp, i + used))
}

/// ISO 8601 `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM|±HH]`; without a zone
/// it is local time.
pub fn iso(b: &[u8]) -> Option<(Stamp, usize)> {
    let y = digits(b, 4)? as i64;
    let m = digits(b.get(5..)?, 2)? as u32;
    let d = digits(b.get(8..)?, 2)? as u32;
    if b[4] != b'-' || b[7] != b'-' || !valid_date(Some(y), m, d) || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (us_of_day, used) = clock(b.get(11..)?)?;
    let mut i = 11 + used;
    let days = days_from_civil(y, m, d);
    let offset = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            Some(0)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let z = &b[i + 1..];
            let hh = digits(z, 2)? as i64;
            let (mm, n) = if z.get(2) == Some(&b':') {
                (digits(z.get(3..)?, 2)? as i64, 5)
            } else if let Some(mm) = z.get(2..).and_then(|r| digits(r, 2)) {
                (mm as i64, 4)
            } else {
                (0, 2)
            };
            if hh > 14 || mm > 59 {
                return None;
            }
            i += 1 + n;
            let off = (hh * 3600 + mm * 60) * US;
            Some(if sign == b'-' { -off } else { off })
        }
        _ => None,
    };
    let stamp = match offset {
        Some(off) => Stamp::Utc(days * US_PER_DAY + us_of_day - off),
        None => Stamp::Local { days, us_of_day },
    };
    Some((stamp, i))
}

/// `MM/DD/YYYY HH:MM:SS` (PortSentry's history file, many CSV exports).
pub fn us_date(b: &[u8]) -> Option<(Stamp, usize)> {
    let m = digits(b, 2)? as u32;
    let d = digits(b.get(3..)?, 2)? as u32;
    let y = digits(b.get(6..)?, 4)? as i64;
    if b[2] != b'/' || b[5] != b'/' || b.get(10) != Some(&b' ') || !valid_date(Some(y), m, d) {
        return None;
    }
    let (us_of_day, used) = clock(b.get(11..)?)?;
    Some((Stamp::Local { days: days_from_civil(y, m, d), us_of_day }, 11 + used))
}

/// Unix seconds, optionally with a fraction, making up all of `b`.
pub fn epoch(b: &[u8]) -> Option<Stamp> {
    let (secs, rest) = leading_dec(b)?;
    if !(100_000_000..=99_999_999_999).contains(&secs) {
        return None;
    }
    let mut us = secs as i64 * US;
    if let Some(f) = rest.strip_prefix(b".") {
        if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for (i, c) in f.iter().enumerate().take(6) {
            us += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
    } else if !rest.is_empty() {
        return None;
    }
    Some(Stamp::Utc(us))
}

/// A daemontools TAI64N label `@4000000046388eaa2d0f3d7c` (multilog). TAI64
/// labels count from 2^62 with TAI's 10 s offset, as libtai writes them.
pub fn tai64n(b: &[u8]) -> Option<(Stamp, usize)> {
    let hex = b.strip_prefix(b"@")?.get(..24)?;
    let mut secs: u64 = 0;
    let mut nanos: u64 = 0;
    for (i, c) in hex.iter().enumerate() {
        let v = u64::from(char::from(*c).to_digit(16)?);
        if i < 16 { secs = secs << 4 | v } else { nanos = nanos << 4 | v }
    }
    let unix = secs.checked_sub((1u64 << 62) + 10)?;
    if unix > 253_402_300_799 || nanos >= 1_000_000_000 {
        return None;
    }
    Some((Stamp::Utc(unix as i64 * US + (nanos / 1000) as i64), 25))
}

/// A kernel timestamp `[ 12345.678901]` (seconds since boot): (µs, bytes used).
pub fn uptime(b: &[u8]) -> Option<(i64, usize)> {
    let inner = b.strip_prefix(b"[")?;
    let close = inner.iter().position(|&c| c == b']')?;
    let t = trim_start(&inner[..close]);
    let dot = t.iter().position(|&c| c == b'.')?;
    let secs = dec(&t[..dot])?;
    let frac = &t[dot + 1..];
    if frac.is_empty() || frac.len() > 9 || secs > 1 << 40 {
        return None;
    }
    let mut us = secs as i64 * US;
    for (i, c) in frac.iter().enumerate().take(6) {
        if !c.is_ascii_digit() {
            return None;
        }
        us += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((us, close + 2))
}

/// `dmesg -T`'s `[Mon Mar 15 20:55:15 2021]`.
fn dmesg_human(b: &[u8]) -> Option<(Stamp, usize)> {
    let inner = b.strip_prefix(b"[")?;
    let close = inner.iter().position(|&c| c == b']')?;
    let (_, t) = super::text::next_token(&inner[..close]); // the weekday
    let (Stamp::NoYear { month, day, us_of_day }, used) = bsd(t)? else { return None };
    // Four digits, as dmesg prints it: a longer number is no year (and would
    // overflow the arithmetic in `resolve`).
    let year = super::text::trim(&t[used..]);
    let y = if year.len() == 4 { dec(year)? as i64 } else { return None };
    if !valid_date(Some(y), month, day) {
        return None;
    }
    Some((Stamp::Local { days: days_from_civil(y, month, day), us_of_day }, close + 2))
}

/// What precedes a message: its time, and what is left.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    /// The timestamp, when one was found.
    pub stamp: Option<Stamp>,
    /// A kernel `[uptime]` in front of the message.
    pub uptime_us: Option<i64>,
    /// True when a syslog timestamp was found, so a host name follows it.
    pub host_follows: bool,
    /// The bytes after the timestamp.
    pub rest: &'a [u8],
}

/// Reads the time prefix of a log line: a TAI64N label, a `<PRI>`, an RFC 5424
/// header (whose host, app, procid, msgid and structured data are skipped),
/// an ISO or BSD timestamp, and a kernel `[uptime]` or `dmesg -T` stamp.
/// A TAI64N label wins over the syslog time after it (it carries the zone).
pub fn header(line: &[u8]) -> Header<'_> {
    let mut b = line;
    let mut stamp = None;
    if let Some((s, used)) = tai64n(b) {
        stamp = Some(s);
        b = trim_start(&b[used..]);
    }
    let mut rfc5424 = false;
    if let Some(after) = b.strip_prefix(b"<")
        && let Some((_, r)) = leading_dec(after)
        && let Some(r) = r.strip_prefix(b">")
    {
        b = r;
        if let Some(r) = b.strip_prefix(b"1 ") {
            rfc5424 = true;
            b = r;
        }
    }
    let mut host_follows = false;
    if let Some((s, used)) = iso(b).or_else(|| bsd(b)) {
        stamp = stamp.or(Some(s));
        b = trim_start(&b[used..]);
        host_follows = true;
    } else if let Some((s, used)) = dmesg_human(b) {
        stamp = stamp.or(Some(s));
        b = trim_start(&b[used..]);
    }
    if rfc5424 {
        // HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
        for _ in 0..4 {
            b = super::text::next_token(b).1;
        }
        b = skip_structured_data(b);
        host_follows = false;
    }
    let mut uptime_us = None;
    if let Some((u, used)) = uptime(b) {
        uptime_us = Some(u);
        b = trim_start(&b[used..]);
    }
    Header { stamp, uptime_us, host_follows, rest: b }
}

/// Skips RFC 5424 structured data: `-` or one or more `[...]` elements
/// (a `]` escaped as `\]` inside a value does not end one).
fn skip_structured_data(b: &[u8]) -> &[u8] {
    if let Some(r) = b.strip_prefix(b"-") {
        return trim_start(r);
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut esc = false;
        i += 1;
        while i < b.len() {
            let c = b[i];
            i += 1;
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b']' {
                break;
            }
        }
    }
    trim_start(&b[i.min(b.len())..])
}

/// Parses `UTC`, `Z` or `±HH:MM` / `±HHMM` / `±HH` into seconds east of UTC.
pub fn parse_tz(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("gmt") {
        return Ok(0);
    }
    let err = || format!("`{s}` is not a zone: use UTC or a fixed offset such as +02:00 or -05:00");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(err()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) {
        return Err(err());
    }
    let hh: i32 = digits[..2].parse().map_err(|_| err())?;
    let mm: i32 = if digits.len() == 4 { digits[2..].parse().map_err(|_| err())? } else { 0 };
    if hh > 14 || mm > 59 {
        return Err(err());
    }
    Ok(sign * (hh * 3600 + mm * 60))
}

/// Parses a reference date `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[Z|±HH:MM]`
/// (UTC when no zone is given).
pub fn parse_reference(s: &str) -> Result<i64, String> {
    let b = s.trim().as_bytes();
    let err = || format!("`{s}` is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    if b.len() == 10 {
        let mut full = b.to_vec();
        full.extend_from_slice(b"T00:00:00Z");
        return parse_reference(std::str::from_utf8(&full).map_err(|_| err())?);
    }
    match iso(b) {
        Some((st, used)) if used == b.len() => Ok(st.resolve(&TimeCtx { reference_us: 0, tz_offset_s: 0 })),
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::timefmt::rfc3339_us;

    fn ctx(reference: &str, tz: i32) -> TimeCtx {
        TimeCtx { reference_us: parse_reference(reference).unwrap(), tz_offset_s: tz }
    }

    fn at(b: &[u8], c: &TimeCtx) -> String {
        let h = header(b);
        rfc3339_us(h.stamp.expect("a stamp").resolve(c))
    }

    #[test]
    fn bsd_syslog_takes_the_reference_year() {
        let c = ctx("2026-11-22T12:00:00Z", 0);
        assert_eq!(at(b"Mar 15 20:55:15 linux kernel: x", &c), "2026-03-15T20:55:15.000000Z");
        assert_eq!(at(b"Mar  5 21:44:43 srv scanlogd", &c), "2026-03-05T21:44:43.000000Z");
        assert_eq!(at(b"Nov 23 11:00:00 h x", &c), "2026-11-23T11:00:00.000000Z"); // within the slack
    }

    #[test]
    fn december_lines_read_in_january_are_last_year() {
        let c = ctx("2027-01-01T00:10:00Z", 0);
        assert_eq!(at(b"Dec 31 23:59:59 h k: x", &c), "2026-12-31T23:59:59.000000Z");
        assert_eq!(at(b"Jan  1 00:05:00 h k: x", &c), "2027-01-01T00:05:00.000000Z");
        // A line months "in the future" is from the year before.
        assert_eq!(at(b"Jun 14 15:16:01 combo x", &c), "2026-06-14T15:16:01.000000Z");
    }

    #[test]
    fn zone_offsets_shift_local_time() {
        let c = ctx("2026-11-22T12:00:00Z", 2 * 3600);
        assert_eq!(at(b"Mar 15 20:55:15 linux kernel: x", &c), "2026-03-15T18:55:15.000000Z");
        assert_eq!(at(b"2021-06-22 12:19:41 DROP", &c), "2021-06-22T10:19:41.000000Z");
        // An explicit zone ignores --fw-tz.
        assert_eq!(at(b"2023-08-20T00:01:05.5+02:00 host kernel: x", &c), "2023-08-19T22:01:05.500000Z");
        assert_eq!(at(b"2023-08-20T00:01:05Z host", &c), "2023-08-20T00:01:05.000000Z");
        assert_eq!(at(b"2023-08-20T00:01:05-0530 host", &c), "2023-08-20T05:31:05.000000Z");
    }

    #[test]
    fn cisco_dates_carry_a_year() {
        let c = ctx("2026-11-22T12:00:00Z", 0);
        assert_eq!(at(b"Apr 15 2013 09:36:50: %ASA-4-106023", &c), "2013-04-15T09:36:50.000000Z");
    }

    #[test]
    fn tai64n_is_utc() {
        // multilog label of the smeserver corpus log, syslog time 09:14:08 EDT.
        let c = ctx("2026-11-22T12:00:00Z", 0);
        assert_eq!(
            at(b"@4000000046388eaa2d0f3d7c May  2 09:14:08 gluon denylog: IN=", &c),
            "2007-05-02T13:14:08.755973Z"
        );
    }

    #[test]
    fn kernel_and_rfc5424_headers() {
        let h = header(b"[810294.788657] DROP IN=eth0");
        assert_eq!(h.uptime_us, Some(810_294_788_657));
        assert!(h.stamp.is_none());
        assert_eq!(h.rest, b"DROP IN=eth0");
        let h = header(b"Mar 15 20:55:15 linux kernel: [  5.000001] X");
        assert!(h.host_follows);
        assert_eq!(h.rest, b"linux kernel: [  5.000001] X");
        let h = header(b"<4>1 2023-08-20T00:01:05Z fw kernel - - [meta x=\"a\\]b\"] [UFW BLOCK] IN=eth0");
        assert_eq!(h.rest, b"[UFW BLOCK] IN=eth0");
        assert!(!h.host_follows);
        let h = header(b"[Mon Mar 15 20:55:15 2021] DROP IN=eth0");
        assert_eq!(h.rest, b"DROP IN=eth0");
        assert!(h.stamp.is_some());
    }

    #[test]
    fn other_forms() {
        let c = ctx("2026-11-22T12:00:00Z", 0);
        let (s, n) = us_date(b"06/27/2014 17:51:19 Host").unwrap();
        assert_eq!(n, 19);
        assert_eq!(rfc3339_us(s.resolve(&c)), "2014-06-27T17:51:19.000000Z");
        assert_eq!(epoch(b"1403884279").map(|s| s.resolve(&c)), Some(1_403_884_279_000_000));
        assert_eq!(epoch(b"1403884279.25").map(|s| s.resolve(&c)), Some(1_403_884_279_250_000));
        assert_eq!(epoch(b"14x"), None);
    }

    #[test]
    fn garbage_is_not_a_time() {
        for b in [
            &b"Foo 15 20:55:15"[..],
            b"Mar 32 20:55:15",
            b"Feb 30 2021 10:00:00",
            b"Mar 15 25:00:00",
            b"2021-13-01T00:00:00",
        ] {
            assert!(header(b).stamp.is_none(), "{}", String::from_utf8_lossy(b));
        }
        // Found by the fuzz targets fw_netfilter, fw_asa and fw_pf: a
        // `dmesg -T` stamp with a 13-digit year overflowed `resolve`.
        for b in [&b"[Mon Nov 22 10:36:04 2023611583523]: IN=eth0"[..], b"[Mon Mar 15 20:55:15 20210] x"] {
            let h = header(b);
            assert!(h.stamp.is_none(), "{}", String::from_utf8_lossy(b));
            assert_eq!(h.rest, b, "not taken as a stamp");
        }
        assert!(uptime(b"[12.]").is_none());
        assert!(uptime(b"[abc.1]").is_none());
    }

    #[test]
    fn tz_and_reference_options() {
        assert_eq!(parse_tz("UTC"), Ok(0));
        assert_eq!(parse_tz("+02:00"), Ok(7200));
        assert_eq!(parse_tz("-0530"), Ok(-19800));
        assert!(parse_tz("Europe/Paris").is_err());
        assert!(parse_tz("+25:00").is_err());
        assert_eq!(parse_reference("1970-01-02"), Ok(86_400_000_000));
        assert!(parse_reference("yesterday").is_err());
    }
}
