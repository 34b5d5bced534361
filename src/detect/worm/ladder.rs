//! The phase ladder of one (host, sentry) (SIGNATURES.md section 8): phases
//! I, II and III at `phase1`, `phase2` and `phase3` unanswered attempts
//! within a day of packet time (UTC days: the counters reset at midnight),
//! straight to III when more than `burst_per_minute` fall within a minute,
//! and at most one alert per phase per 24 hours of packet time. Pure
//! arithmetic on packet times, so it is tested on its own.

/// A day of packet time.
pub const DAY_US: i64 = 86_400_000_000;
const MINUTE_US: i64 = 60_000_000;
const NEVER: i64 = i64::MIN;

/// The ladder's settings (from `WormPhaseRules`).
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    /// Attempts for phases I, II and III.
    pub phases: [u32; 3],
    pub burst_per_minute: u32,
    pub min_targets: u32,
}

/// Why a phase was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The day's count reached the phase's threshold.
    Count,
    /// More than `burst_per_minute` within a minute: straight to III.
    Rate,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Count => "count",
            Reason::Rate => "per_minute",
        }
    }
}

/// One (host, sentry)'s day.
#[derive(Clone, Copy, Debug)]
pub struct Ladder {
    /// The UTC day the counters belong to.
    pub day: i64,
    /// Unanswered attempts today.
    pub count: u32,
    /// Highest phase reached today (0: none).
    pub reached: u8,
    /// The minute of packet time `this_minute` counts.
    minute: i64,
    this_minute: u32,
    /// The latest attempt's packet time.
    last_us: i64,
    /// Highest count of one minute today.
    pub peak_per_minute: u32,
    /// When each phase last raised an alert.
    alerted: [i64; 3],
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder {
            day: NEVER,
            count: 0,
            reached: 0,
            minute: NEVER,
            this_minute: 0,
            last_us: NEVER,
            peak_per_minute: 0,
            alerted: [NEVER; 3],
        }
    }
}

impl Ladder {
    /// Starts a new day if `ts` is in a later one; true if it did.
    pub fn roll(&mut self, ts: i64) -> bool {
        let day = ts.div_euclid(DAY_US);
        if day <= self.day {
            return false;
        }
        let alerted = self.alerted;
        *self = Ladder { day, alerted, ..Ladder::default() };
        true
    }

    /// The minute of packet time `ts` falls in.
    pub fn minute_of(ts: i64) -> i64 {
        ts.div_euclid(MINUTE_US)
    }

    /// Adds `n` unanswered attempts settled at `ts` (packet times in
    /// order; a late one of an earlier day counts in the current day).
    pub fn add(&mut self, ts: i64, n: u32) {
        self.roll(ts);
        self.count = self.count.saturating_add(n);
        let minute = Ladder::minute_of(ts);
        if minute > self.minute {
            (self.minute, self.this_minute) = (minute, n);
        } else {
            self.this_minute = self.this_minute.saturating_add(n);
        }
        self.last_us = self.last_us.max(ts);
    }

    /// Judges the ladder once its latest minute has closed (or at the end
    /// of input), like the operator's cycle: by that minute's count (more
    /// than `burst_per_minute`: straight to phase III) and by the day's
    /// count; `targets` is the distinct targets tried. Returns the phase
    /// (1..=3) to alert about, and why, at most once per phase per 24 hours.
    pub fn judge(&mut self, targets: u64, s: &Steps) -> Option<(u8, Reason)> {
        self.peak_per_minute = self.peak_per_minute.max(self.this_minute);
        if targets < u64::from(s.min_targets) {
            return None;
        }
        let (phase, reason) = if self.this_minute > s.burst_per_minute {
            (3, Reason::Rate)
        } else {
            (s.phases.iter().take_while(|t| self.count >= **t).count() as u8, Reason::Count)
        };
        if phase <= self.reached {
            return None;
        }
        self.reached = phase;
        let i = usize::from(phase - 1);
        let last = self.alerted[i];
        if last != NEVER && self.last_us.saturating_sub(last) < DAY_US {
            return None;
        }
        self.alerted[i] = self.last_us;
        Some((phase, reason))
    }

    /// The latest alert of any phase (`i64::MIN` if none).
    pub fn last_alert(&self) -> i64 {
        self.alerted.iter().copied().max().unwrap_or(NEVER)
    }
}

/// The phase's name.
pub fn roman(phase: u8) -> &'static str {
    match phase {
        1 => "I",
        2 => "II",
        3 => "III",
        _ => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Steps = Steps { phases: [200, 1000, 5000], burst_per_minute: 1000, min_targets: 10 };
    /// 2026-12-07 00:00 UTC.
    const T0: i64 = 1_796_601_600_000_000;

    /// Adds attempts at `times` as the aggregator does: the ladder is
    /// judged when a minute closes and at the end. The alerts, with the
    /// day's count at each.
    fn run(l: &mut Ladder, times: impl IntoIterator<Item = i64>, targets: u64) -> Vec<(u8, Reason, u32)> {
        let mut out = Vec::new();
        let mut minute = None;
        for ts in times {
            let m = Ladder::minute_of(ts);
            if minute.is_some_and(|x| x < m)
                && let Some((p, r)) = l.judge(targets, &S)
            {
                out.push((p, r, l.count));
            }
            minute = Some(m);
            l.add(ts, 1);
        }
        if let Some((p, r)) = l.judge(targets, &S) {
            out.push((p, r, l.count));
        }
        out
    }

    /// `n` times spread evenly over `span_us` from `start`.
    fn spread(start: i64, n: u32, span_us: i64) -> impl Iterator<Item = i64> {
        (0..n).map(move |i| start + span_us * i64::from(i) / i64::from(n.max(1)))
    }

    #[test]
    fn thresholds_fire_each_phase_once_when_its_minute_closes() {
        let mut l = Ladder::default();
        // 6,000 attempts over 10 hours: 10 per minute, far below the burst rate.
        let alerts = run(&mut l, spread(T0, 6000, 10 * 3_600_000_000), 1000);
        assert_eq!(alerts, vec![(1, Reason::Count, 200), (2, Reason::Count, 1000), (3, Reason::Count, 5000)]);
        assert_eq!(l.reached, 3);
        assert_eq!(l.peak_per_minute, 10);
    }

    #[test]
    fn more_than_the_burst_rate_in_a_minute_skips_straight_to_phase_three() {
        let mut l = Ladder::default();
        // 1,500 attempts within the first 30 s of a minute.
        let alerts = run(&mut l, spread(T0 + 5_000_000, 1500, 30_000_000), 1000);
        assert_eq!(alerts, vec![(3, Reason::Rate, 1500)]);
        assert_eq!(l.peak_per_minute, 1500);
        // Exactly 1,000 in a minute is not "more than": phase II by count.
        let mut l = Ladder::default();
        let alerts = run(&mut l, spread(T0 + 5_000_000, 1000, 50_000_000), 1000);
        assert_eq!(alerts, vec![(2, Reason::Count, 1000)]);
        // 900 a minute for six minutes: never more than the rate, phase III by count.
        let mut l = Ladder::default();
        let alerts = run(&mut l, spread(T0, 5400, 6 * 60_000_000), 1000);
        assert_eq!(
            alerts.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>(),
            vec![(1, Reason::Count), (2, Reason::Count), (3, Reason::Count)]
        );
    }

    #[test]
    fn too_few_targets_raise_nothing_until_there_are_enough() {
        let mut l = Ladder::default();
        assert_eq!(run(&mut l, spread(T0, 300, 600_000_000), 1), vec![]);
        assert_eq!(l.judge(10, &S), Some((1, Reason::Count)));
    }

    #[test]
    fn counters_reset_daily_but_a_phase_alerts_once_per_24_hours() {
        let mut l = Ladder::default();
        // Day 1, from 23:00: phase I.
        let evening = T0 + 23 * 3_600_000_000;
        assert_eq!(run(&mut l, spread(evening, 300, 3_000_000_000), 1000).len(), 1);
        // Day 2 at 00:10: the counters start again ...
        let after_midnight = T0 + DAY_US + 600_000_000;
        l.add(after_midnight, 1);
        assert_eq!((l.count, l.reached), (1, 0));
        // ... and phase I, reached again within 24 h of its alert, stays silent.
        assert_eq!(run(&mut l, spread(after_midnight + 1, 300, 3_000_000_000), 1000), vec![]);
        assert_eq!(l.reached, 1);
        // Phase II is new: it alerts.
        assert_eq!(run(&mut l, spread(after_midnight + 4_000_000_000, 800, 7_200_000_000), 1000).len(), 1);
        // Day 3, more than 24 h after the first alert: phase I alerts again.
        let day3 = T0 + 2 * DAY_US + 3_600_000_000;
        let alerts = run(&mut l, spread(day3, 250, 3_600_000_000), 1000);
        assert_eq!(alerts.iter().map(|a| (a.0, a.2)).collect::<Vec<_>>(), vec![(1, 200)]);
    }

    #[test]
    fn late_attempts_of_an_earlier_day_count_without_resetting() {
        let mut l = Ladder::default();
        l.add(T0 + DAY_US, 1);
        l.add(T0 + DAY_US - 1, 1);
        assert_eq!((l.day, l.count), ((T0 + DAY_US).div_euclid(DAY_US), 2));
    }
}
