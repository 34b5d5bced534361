//! The live clock: on an idle link no packet moves packet time, so nothing
//! would settle, expire or drain until the next packet. `LiveClock` maps
//! the wall clock onto packet time for the reader's idle moments, and the
//! dispatcher ticks the workers with it (`Dispatcher::idle_tick`).
//!
//! The rule: the clock is the newest packet's time plus the monotonic time
//! elapsed since the reader first found the ring empty after it, less
//! `LAG_US`; never behind the newest packet, never going back (a late
//! packet, or the wall clock stepping, cannot move it back). The lag
//! covers the packets still sitting in an unretired TPACKET_V3 block (up to
//! the 100 ms read timeout), so a packet read later is almost never behind
//! a tick already given. A replay never uses this: it runs on packet time
//! alone and never reads the wall clock.

use std::time::Instant;

/// How far the idle clock stays behind the wall clock's mapping.
pub const LAG_US: i64 = 200_000;

/// Packet time on an idle live link (see the module doc).
#[derive(Debug, Default)]
pub struct LiveClock {
    /// (newest packet time, wall time) when the reader first found the
    /// ring empty after that packet.
    anchor: Option<(i64, Instant)>,
    /// The last time given: the clock never goes back.
    given: Option<i64>,
}

impl LiveClock {
    /// The analysis time at `wall`, the newest packet read so far being
    /// stamped `newest` (`i64::MIN` before the first packet: no clock).
    pub fn now(&mut self, newest: i64, wall: Instant) -> Option<i64> {
        if newest == i64::MIN {
            return None;
        }
        let mapped = match self.anchor {
            // A packet earlier than the newest (late) keeps the anchor.
            Some((t, at)) if newest <= t => {
                let el = i64::try_from(wall.saturating_duration_since(at).as_micros()).unwrap_or(i64::MAX);
                t.saturating_add(el.saturating_sub(LAG_US))
            }
            _ => {
                self.anchor = Some((newest, wall));
                newest
            }
        };
        let now = mapped.max(newest).max(self.given.unwrap_or(i64::MIN));
        self.given = Some(now);
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_idle_clock_follows_the_wall_never_behind_the_newest_packet() {
        let mut c = LiveClock::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(c.now(i64::MIN, t0), None, "no packet yet: no clock");
        let p = 1_795_000_000_000_000i64;
        // Idle right after a packet: its own time.
        assert_eq!(c.now(p, t0), Some(p));
        // Within the lag: still the packet's time, not behind it.
        assert_eq!(c.now(p, t0 + Duration::from_millis(150)), Some(p));
        // 3 s of silence: 3 s of packet time, less the lag.
        assert_eq!(c.now(p, t0 + s(3)), Some(p + 3_000_000 - LAG_US));
        // A packet stamped ahead of the mapping (a clock step): its time.
        let ahead = p + 60_000_000;
        assert_eq!(c.now(ahead, t0 + s(4)), Some(ahead));
        assert_eq!(c.now(ahead, t0 + s(5)), Some(ahead + 1_000_000 - LAG_US));
        // A packet stamped behind the mapping: the clock does not go back,
        // and goes on from that packet's arrival.
        let behind = ahead + 500_000;
        assert_eq!(c.now(behind, t0 + s(6)), Some(ahead + 1_000_000 - LAG_US), "never back");
        assert_eq!(c.now(behind, t0 + s(9)), Some(behind + 3_000_000 - LAG_US));
        // The wall clock stepping back (or standing still) cannot move it back.
        assert_eq!(c.now(behind, t0), Some(behind + 3_000_000 - LAG_US));
    }
}
