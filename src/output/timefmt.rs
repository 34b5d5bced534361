//! Packet-time formatting: RFC 3339 UTC with microseconds, no wall clock.

/// Microseconds per day.
const US_PER_DAY: i64 = 86_400_000_000;
/// `0000-01-01T00:00:00.000000Z` in microseconds since the Unix epoch.
pub const MIN_TS_US: i64 = -62_167_219_200_000_000;
/// `9999-12-31T23:59:59.999999Z` in microseconds since the Unix epoch.
pub const MAX_TS_US: i64 = 253_402_300_799_999_999;

/// Formats microseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
///
/// Values outside years 0000..=9999 are clamped to the nearest end of that
/// range, so the output is always 27 bytes and never panics.
pub fn rfc3339_us(ts_us: i64) -> String {
    let mut s = String::with_capacity(27);
    write_rfc3339_us(&mut s, ts_us);
    s
}

/// Appends the [`rfc3339_us`] rendering of `ts_us` to `out`.
pub fn write_rfc3339_us(out: &mut String, ts_us: i64) {
    let ts = ts_us.clamp(MIN_TS_US, MAX_TS_US);
    let days = ts.div_euclid(US_PER_DAY);
    let in_day = ts.rem_euclid(US_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    out.reserve(27);
    push_digits(out, y, 4);
    out.push('-');
    push_digits(out, i64::from(m), 2);
    out.push('-');
    push_digits(out, i64::from(d), 2);
    out.push('T');
    push_digits(out, secs / 3600, 2);
    out.push(':');
    push_digits(out, (secs / 60) % 60, 2);
    out.push(':');
    push_digits(out, secs % 60, 2);
    out.push('.');
    push_digits(out, frac, 6);
    out.push('Z');
}

/// Pushes the low `width` decimal digits of non-negative `v`, zero padded.
fn push_digits(out: &mut String, v: i64, width: u32) {
    let mut div = 10i64.pow(width - 1);
    let v = v.max(0);
    while div > 0 {
        let digit = ((v / div) % 10) as u8;
        out.push(char::from(b'0' + digit));
        div /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01 (Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32, hh: i64, mm: i64, ss: i64, us: i64) -> i64 {
        (days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000 + us
    }

    #[test]
    fn epoch() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn brief_example() {
        let ts = at(2026, 11, 22, 7, 6, 0, 123_456);
        assert_eq!(rfc3339_us(ts), "2026-11-22T07:06:00.123456Z");
        // Known absolute value: 2026-11-22T07:06:00Z = 1795331160 s.
        assert_eq!(ts, 1_795_331_160_123_456);
    }

    #[test]
    fn leap_day_2024() {
        // 2024-02-29T12:34:56Z = 1709210096 s.
        assert_eq!(rfc3339_us(1_709_210_096_000_001), "2024-02-29T12:34:56.000001Z");
        assert_eq!(rfc3339_us(at(2024, 3, 1, 0, 0, 0, 0) - 1), "2024-02-29T23:59:59.999999Z");
    }

    #[test]
    fn march_first_2000() {
        // 2000-03-01T00:00:00Z = 951868800 s (2000 is a leap year).
        assert_eq!(rfc3339_us(951_868_800_000_000), "2000-03-01T00:00:00.000000Z");
        assert_eq!(rfc3339_us(951_868_800_000_000 - 1), "2000-02-29T23:59:59.999999Z");
    }

    #[test]
    fn end_of_year() {
        // 2025-01-01T00:00:00Z = 1735689600 s.
        assert_eq!(rfc3339_us(1_735_689_600_000_000 - 1), "2024-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_us(1_735_689_600_000_000), "2025-01-01T00:00:00.000000Z");
    }

    #[test]
    fn microsecond_padding() {
        assert_eq!(rfc3339_us(1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(rfc3339_us(1_000_010), "1970-01-01T00:00:01.000010Z");
        assert_eq!(rfc3339_us(999_999), "1970-01-01T00:00:00.999999Z");
    }

    #[test]
    fn negative_values() {
        assert_eq!(rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_us(-86_400_000_000), "1969-12-31T00:00:00.000000Z");
    }

    #[test]
    fn extremes_clamp_without_panic() {
        assert_eq!(rfc3339_us(i64::MIN), "0000-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_us(i64::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_us(MIN_TS_US), "0000-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_us(MAX_TS_US), "9999-12-31T23:59:59.999999Z");
        assert_eq!(MIN_TS_US, at(0, 1, 1, 0, 0, 0, 0));
        assert_eq!(MAX_TS_US, at(10000, 1, 1, 0, 0, 0, 0) - 1);
    }

    #[test]
    fn append_does_not_clear() {
        let mut s = String::from("t=");
        write_rfc3339_us(&mut s, 0);
        assert_eq!(s, "t=1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn roundtrip_days() {
        for z in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
