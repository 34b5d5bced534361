//! Timing analysis for `periodic_probe` (SIGNATURES.md section 1): the
//! period of a series of attempt times, robust to missed probes, with its
//! jitter, gaps and burst shape, and a regularity score. Pure functions on
//! fixed-size arrays: no allocation, at most `MAX_TIMES` times.
//!
//! - Period: several candidates (quantiles of the intervals, at least
//!   `min_period`) are tried; each interval is *folded*: an interval within
//!   `fold_tolerance` of k periods (k = 1..=`gap_periods`) counts as k cycles
//!   with k - 1 missed probes, so one lost probe (a gap near twice the period)
//!   does not break the estimate. The candidate explaining the most intervals
//!   with the fewest missed probes wins; the period is then the median of the
//!   folded intervals and the jitter their median absolute deviation (MAD).
//! - Gaps: intervals longer than `gap_periods` periods that do not fold (the
//!   five-minute reboot silence).
//! - Bursts: when the sorted intervals split at a ratio of at least
//!   `burst_break_ratio` into short ones (inside a burst) and long ones (the
//!   pauses), and at least `min_bursts` groups of `min_burst_size` attempts
//!   each span at most `max_burst_spread`, the series is a burst pattern
//!   (PowWow: 5 to 8 tries in about 45 s, then 30 s to 2 min of pause) if
//!   every pause lasts at least `min_burst_pause` (traceroute's 3 probes per
//!   hop a second apart, and NetBIOS retries, are not bursts); the
//!   period is then that of the bursts' starts.
//! - Score: compare RITA's beacon timestamp score (activecm/rita: the mean of
//!   1 - |Bowley skew| of the intervals, 1 - MAD/30 s, and a connection-count
//!   term). Ours averages four components in 0..1: `skew` (1 - |Bowley skew|
//!   of the folded intervals), `madm` (1 - 5 * jitter / period, so 10 % jitter
//!   scores 0.5; relative rather than RITA's absolute 30 s, so a 10 s beacon
//!   and a 30 min one are judged alike), `regular_share` (intervals that fold,
//!   out of those that are not gaps) and `coverage` (probes seen out of those
//!   the period predicts).

/// Most attempt times analysed (the ring in `periodic`).
pub const MAX_TIMES: usize = 64;
/// Gaps reported by one analysis.
pub const MAX_GAPS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub min_period_us: i64,
    pub fold_tolerance: f64,
    pub gap_periods: u32,
    pub burst_break_ratio: f64,
    pub max_burst_spread_us: i64,
    pub min_burst_size: u32,
    pub min_bursts: u32,
    pub min_burst_pause_us: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gap {
    pub start_us: i64,
    pub end_us: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Burst {
    pub bursts: u32,
    pub size_min: u32,
    pub size_max: u32,
    /// Largest first-to-last spread of one burst.
    pub spread_us: i64,
    /// Silence between the end of one burst and the start of the next.
    pub pause_min_us: i64,
    pub pause_max_us: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cadence {
    pub period_us: i64,
    pub jitter_us: i64,
    /// Attempts (or bursts) on the period: endpoints of folded intervals.
    pub cycles: u32,
    /// Probes the period predicts that never came (k - 1 per folded interval).
    pub missed: u32,
    /// Intervals that neither fold nor are gaps.
    pub off_period: u32,
    /// Intervals that fold.
    pub on_period: u32,
    /// Most attempts in one unbroken periodic run (folded intervals chain
    /// attempts; a gap or an off-period interval breaks the run).
    pub longest_run: u32,
    pub gaps: [Gap; MAX_GAPS],
    pub n_gaps: u32,
    pub burst: Option<Burst>,
    /// Bowley skew of the folded intervals (-1..1).
    pub bowley: f64,
}

/// Score components, each 0..1, and their mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    pub skew: f64,
    pub madm: f64,
    pub regular_share: f64,
    pub coverage: f64,
    pub score: f64,
}

impl Cadence {
    pub fn regular_share(&self) -> f64 {
        let n = self.on_period + self.off_period;
        if n == 0 { 0.0 } else { f64::from(self.on_period) / f64::from(n) }
    }

    pub fn score(&self) -> Score {
        let skew = (1.0 - self.bowley.abs()).clamp(0.0, 1.0);
        let madm = if self.period_us > 0 {
            (1.0 - 5.0 * self.jitter_us as f64 / self.period_us as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let regular_share = self.regular_share();
        let seen = f64::from(self.cycles);
        let coverage = if self.cycles == 0 { 0.0 } else { seen / (seen + f64::from(self.missed)) };
        let score = (skew + madm + regular_share + coverage) / 4.0;
        Score {
            skew: r3(skew),
            madm: r3(madm),
            regular_share: r3(regular_share),
            coverage: r3(coverage),
            score: r3(score),
        }
    }
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Median of `v` (sorts it). 0 for an empty slice.
fn median(v: &mut [i64]) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { v[m - 1] / 2 + v[m] / 2 + (v[m - 1] % 2 + v[m] % 2) / 2 }
}

/// Quantile `q` of sorted `s` by linear interpolation.
fn quantile(s: &[i64], q: f64) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    let f = pos - lo as f64;
    s[lo] as f64 * (1.0 - f) + s[hi] as f64 * f
}

/// Bowley (quartile) skewness of sorted `s`: (Q1 + Q3 - 2 Q2) / (Q3 - Q1).
/// Quartiles closer than 1 % of the median are timer noise, not shape: 0.
fn bowley(s: &[i64]) -> f64 {
    let (q1, q2, q3) = (quantile(s, 0.25), quantile(s, 0.5), quantile(s, 0.75));
    if q3 - q1 <= 0.01 * q2.abs() { 0.0 } else { ((q1 + q3 - 2.0 * q2) / (q3 - q1)).clamp(-1.0, 1.0) }
}

/// How one interval relates to a period.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fold {
    /// k periods (k >= 1; k - 1 probes missed).
    On(u32),
    Gap,
    Off,
}

/// Classifies interval `d` against period `p`.
pub fn fold(d: i64, p: i64, par: &Params) -> Fold {
    if p <= 0 {
        return Fold::Off;
    }
    let k = (d as f64 / p as f64).round();
    if k >= 1.0 && k <= f64::from(par.gap_periods) && ((d as f64) - k * p as f64).abs() <= par.fold_tolerance * p as f64
    {
        return Fold::On(k as u32);
    }
    if d > i64::from(par.gap_periods) * p { Fold::Gap } else { Fold::Off }
}

#[derive(Clone, Copy, Default)]
struct Fit {
    on: u32,
    missed: u32,
    off: u32,
}

fn tally(d: &[i64], p: i64, par: &Params) -> Fit {
    let mut f = Fit::default();
    for &x in d {
        match fold(x, p, par) {
            Fold::On(k) => {
                f.on += 1;
                f.missed += k - 1;
            }
            Fold::Gap => {}
            Fold::Off => f.off += 1,
        }
    }
    f
}

/// Median of the folded intervals (d / k) under period `p`.
fn refine(d: &[i64], p: i64, par: &Params) -> i64 {
    let mut v = [0i64; MAX_TIMES];
    let mut n = 0;
    for &x in d {
        if let Fold::On(k) = fold(x, p, par) {
            v[n] = x / i64::from(k);
            n += 1;
        }
    }
    if n == 0 { p } else { median(&mut v[..n]) }
}

/// The periodic fit of ascending times `t` (at most `MAX_TIMES`).
fn fit(t: &[i64], par: &Params) -> Option<Cadence> {
    let n = t.len().min(MAX_TIMES);
    if n < 3 {
        return None;
    }
    let mut d = [0i64; MAX_TIMES];
    for i in 1..n {
        d[i - 1] = t[i].saturating_sub(t[i - 1]).max(0);
    }
    let d = &d[..n - 1];
    let mut s = [0i64; MAX_TIMES];
    s[..d.len()].copy_from_slice(d);
    let s = &mut s[..d.len()];
    s.sort_unstable();
    let mut best: Option<(i64, Fit)> = None;
    let mut last_cand = -1i64;
    for q in 0..=8 {
        let idx = (q * (s.len() - 1)) / 8;
        let c = s[idx];
        if c < par.min_period_us || (last_cand > 0 && (c - last_cand) * 100 <= last_cand) {
            continue;
        }
        last_cand = c;
        let p = refine(d, c, par);
        if p < par.min_period_us {
            continue;
        }
        let f = tally(d, p, par);
        let better = match &best {
            None => f.on > 0,
            Some((_, b)) => {
                let (fs, bs) = (i64::from(f.on) - i64::from(f.missed), i64::from(b.on) - i64::from(b.missed));
                fs > bs || (fs == bs && f.on > b.on)
            }
        };
        if better {
            best = Some((p, f));
        }
    }
    let (p, f) = best?;
    let mut c = Cadence { period_us: p, on_period: f.on, missed: f.missed, off_period: f.off, ..Cadence::default() };
    let mut on_pt = [false; MAX_TIMES];
    let mut norm = [0i64; MAX_TIMES];
    let mut nn = 0;
    let mut run = 1u32;
    for (i, &x) in d.iter().enumerate() {
        let f = fold(x, p, par);
        run = if matches!(f, Fold::On(_)) { run + 1 } else { 1 };
        c.longest_run = c.longest_run.max(run);
        match f {
            Fold::On(k) => {
                on_pt[i] = true;
                on_pt[i + 1] = true;
                norm[nn] = x / i64::from(k);
                nn += 1;
            }
            Fold::Gap => {
                if (c.n_gaps as usize) < MAX_GAPS {
                    c.gaps[c.n_gaps as usize] = Gap { start_us: t[i], end_us: t[i + 1] };
                }
                c.n_gaps += 1;
            }
            Fold::Off => {}
        }
    }
    c.cycles = on_pt[..n].iter().filter(|b| **b).count() as u32;
    let norm = &mut norm[..nn];
    norm.sort_unstable();
    c.bowley = bowley(norm);
    let mut dev = [0i64; MAX_TIMES];
    for (i, x) in norm.iter().enumerate() {
        dev[i] = (x - p).abs();
    }
    c.jitter_us = median(&mut dev[..nn]);
    Some(c)
}

/// The burst shape of ascending times `t`, and the bursts' start times.
fn bursts(t: &[i64], par: &Params, starts: &mut [i64; MAX_TIMES]) -> Option<(Burst, usize)> {
    let n = t.len().min(MAX_TIMES);
    if n < 4 {
        return None;
    }
    let mut s = [0i64; MAX_TIMES];
    for i in 1..n {
        s[i - 1] = t[i].saturating_sub(t[i - 1]).max(0);
    }
    let m = n - 1;
    let s = &mut s[..m];
    s.sort_unstable();
    // The natural break: the largest ratio between neighbouring sorted intervals.
    let mut brk = None;
    let mut best = 0.0;
    for j in 0..m - 1 {
        let r = s[j + 1] as f64 / (s[j].max(1000)) as f64;
        if r > best {
            best = r;
            brk = Some(s[j + 1]);
        }
    }
    let thr = brk?;
    if best < par.burst_break_ratio {
        return None;
    }
    let mut b = Burst { size_min: u32::MAX, pause_min_us: i64::MAX, ..Burst::default() };
    let mut groups = 0usize;
    let mut start = 0usize;
    let mut ok = true;
    for i in 1..=n {
        if i < n && t[i] - t[i - 1] < thr {
            continue;
        }
        // A group is t[start..i].
        let size = (i - start) as u32;
        let spread = t[i - 1] - t[start];
        let interior = start > 0 && i < n;
        if spread > par.max_burst_spread_us || (interior && size < par.min_burst_size) {
            ok = false;
            break;
        }
        if size >= par.min_burst_size {
            b.bursts += 1;
            b.size_min = b.size_min.min(size);
            b.size_max = b.size_max.max(size);
            b.spread_us = b.spread_us.max(spread);
            starts[groups] = t[start];
            groups += 1;
        }
        if i < n {
            let pause = t[i] - t[i - 1];
            b.pause_min_us = b.pause_min_us.min(pause);
            b.pause_max_us = b.pause_max_us.max(pause);
        }
        start = i;
    }
    if !ok || b.bursts < par.min_bursts || b.pause_min_us < par.min_burst_pause_us {
        return None;
    }
    Some((b, groups))
}

/// Analyses ascending attempt times `t` (the newest `MAX_TIMES` are used).
pub fn analyze(t: &[i64], par: &Params) -> Option<Cadence> {
    let t = &t[t.len().saturating_sub(MAX_TIMES)..];
    let mut starts = [0i64; MAX_TIMES];
    if let Some((b, groups)) = bursts(t, par, &mut starts) {
        // The period of the bursts: median start-to-start interval, no folding
        // (PowWow's pauses vary from 30 s to 2 min).
        let mut d = [0i64; MAX_TIMES];
        for i in 1..groups {
            d[i - 1] = starts[i] - starts[i - 1];
        }
        let d = &mut d[..groups.saturating_sub(1)];
        let period = median(d);
        let mut dev = [0i64; MAX_TIMES];
        for (i, x) in d.iter().enumerate() {
            dev[i] = (x - period).abs();
        }
        let jitter = median(&mut dev[..d.len()]);
        return Some(Cadence {
            period_us: period,
            jitter_us: jitter,
            cycles: b.bursts,
            longest_run: b.bursts,
            on_period: d.len() as u32,
            bowley: bowley(d),
            burst: Some(b),
            ..Cadence::default()
        });
    }
    fit(t, par)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn par() -> Params {
        Params {
            min_period_us: 1_000_000,
            fold_tolerance: 0.25,
            gap_periods: 3,
            burst_break_ratio: 3.0,
            max_burst_spread_us: 60_000_000,
            min_burst_size: 3,
            min_bursts: 3,
            min_burst_pause_us: 20_000_000,
        }
    }

    fn s(x: f64) -> i64 {
        (x * 1e6) as i64
    }

    #[test]
    fn exact_period() {
        let t: Vec<i64> = (0..7).map(|i| s(30.0 * f64::from(i))).collect();
        let c = analyze(&t, &par()).unwrap();
        assert_eq!(c.period_us, s(30.0));
        assert_eq!((c.cycles, c.missed, c.jitter_us, c.n_gaps), (7, 0, 0, 0));
        assert!(c.burst.is_none());
        assert_eq!(c.score().score, 1.0);
    }

    #[test]
    fn missed_probes_fold_and_long_silences_are_gaps() {
        // 30 s with jitter, probe 5 and 9 missing, a 5-minute silence after 12.
        let mut t = Vec::new();
        let mut x = 0.0;
        for i in 0..20 {
            if i != 5 && i != 9 {
                t.push(s(x + if i % 2 == 0 { 0.4 } else { -0.3 }));
            }
            x += if i == 12 { 300.0 } else { 30.0 };
        }
        let c = analyze(&t, &par()).unwrap();
        assert!((c.period_us - s(30.0)).abs() < s(0.5), "{c:?}");
        assert_eq!(c.missed, 2);
        assert_eq!(c.n_gaps, 1);
        assert!((c.gaps[0].end_us - c.gaps[0].start_us - s(300.0)).abs() < s(1.0));
        assert!(c.jitter_us < s(1.0));
        assert_eq!(c.cycles, 18);
        assert_eq!(c.longest_run, 11);
    }

    #[test]
    fn bursts_are_found_and_measured() {
        let mut t = Vec::new();
        let mut b = 0.0;
        for (k, size) in [6, 5, 8, 7].iter().enumerate() {
            for i in 0..*size {
                t.push(s(b + 6.0 * f64::from(i)));
            }
            b += 6.0 * f64::from(*size - 1) + [30.0, 120.0, 60.0, 45.0][k];
        }
        let c = analyze(&t, &par()).unwrap();
        let bu = c.burst.unwrap();
        assert_eq!((bu.bursts, bu.size_min, bu.size_max), (4, 5, 8));
        assert_eq!(bu.spread_us, s(42.0));
        assert_eq!((bu.pause_min_us, bu.pause_max_us), (s(30.0), s(120.0)));
        assert_eq!(c.cycles, 4);
    }

    #[test]
    fn random_intervals_are_irregular() {
        let mut t = vec![0i64];
        let mut x: u64 = 12345;
        for _ in 0..60 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let gap = 1.0 + ((x >> 33) % 60_000) as f64 / 1000.0;
            t.push(t[t.len() - 1] + s(gap));
        }
        let c = analyze(&t, &par()).unwrap();
        assert!(c.regular_share() < 0.5 || c.jitter_us * 10 > c.period_us, "{c:?}");
    }

    #[test]
    fn short_intervals_are_below_the_minimum_period() {
        let t: Vec<i64> = (0..10).map(|i| i * 100_000).collect();
        assert!(analyze(&t, &par()).is_none());
    }
}
