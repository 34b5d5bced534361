//! The run summary `picket report` draws from: what each worker tallies
//! while it analyses (attempts and answers by destination port, per-source
//! attempts and source-port samples, port pairs), merged into one at the end
//! of the run and written as `stats.summary` in the final `stats` event.
//!
//! Everything is fixed-size: the port counters are two arrays of 65,536 per
//! protocol; the per-source entries (source-port samples inline) and the port
//! pairs live in maps allocated once at their cap, which refuse new keys when
//! full (counted in `sources_untracked` / `pairs_untracked` and in the
//! `summary` state table). A refusal never pushes out a source already held,
//! so a spoofed flood cannot erase the retry loop under it. No allocation per
//! packet.
//!
//! An *attempt* is a TCP connection attempt (SYN without ACK) or a UDP
//! datagram sent by the side that started the exchange (`owner_is_src`); an
//! *answer* is a SYN-ACK or RST, or a UDP datagram, sent back to it
//! (`owner_is_dst`). Unanswered = attempts - answers, per port and per source
//! (an estimate from counts, not a per-flow match: what the firewall log's
//! denials by port were to the analyst of the seed incident).

use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::keys::{AddrKey, FastMap};
use serde_json::{Value, json};
use std::net::IpAddr;

/// Source-port samples kept per source: when full, every other one is
/// dropped and the sampling stride doubles, so they always span the whole
/// run (the wrap-around and the gaps stay visible).
pub const SAMPLES: usize = 64;
/// Sources tracked across all workers (each worker holds its share).
pub const MAX_SOURCES: usize = 4096;
/// Port pairs tracked per worker.
pub const MAX_PAIRS: usize = 4096;
/// What the final `stats.summary` lists at most.
pub const OUT_PORTS: usize = 1024;
pub const OUT_SOURCES: usize = 100;
pub const OUT_SAMPLED: usize = 64;
pub const OUT_PAIRS: usize = 256;
/// `src_port` class of a pair for every source port from 1024 up.
pub const HIGH: u16 = u16::MAX;

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    ts_us: i64,
    sport: u16,
    dport: u16,
}

#[derive(Clone, Copy, Debug)]
struct Source {
    attempts: u32,
    answers: u32,
    /// Attempts to the same (destination, protocol, port) as the one before:
    /// high for a retry loop or a periodic probe, near zero for a scan.
    repeats: u32,
    last: (IpAddr, u8, u16),
    /// Attempts sampled or skipped so far.
    seen: u32,
    stride: u32,
    len: u8,
    samples: [Sample; SAMPLES],
}

impl Source {
    fn new(dst: IpAddr) -> Source {
        Source {
            attempts: 0,
            answers: 0,
            repeats: 0,
            last: (dst, 0, 0),
            seen: 0,
            stride: 1,
            len: 0,
            samples: [Sample::default(); SAMPLES],
        }
    }

    /// Keeps attempt number `n` when `n` is a multiple of the stride.
    fn sample(&mut self, s: Sample) {
        let n = self.seen;
        self.seen = n.saturating_add(1);
        if n % self.stride != 0 {
            return;
        }
        if usize::from(self.len) == SAMPLES {
            for i in 0..SAMPLES / 2 {
                self.samples[i] = self.samples[2 * i];
            }
            self.len = (SAMPLES / 2) as u8;
            self.stride = self.stride.saturating_mul(2);
            if n % self.stride != 0 {
                return;
            }
        }
        self.samples[usize::from(self.len)] = s;
        self.len += 1;
    }
}

/// One (protocol, source-port class, destination port) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Pair {
    proto: u8,
    /// The source port below 1024, else `HIGH`.
    src: u16,
    dst: u16,
}

/// A worker's (or the merged run's) summary tallies.
pub struct Tally {
    /// Attempts and answers by port: TCP, then UDP.
    attempts: [Box<[u32]>; 2],
    answers: [Box<[u32]>; 2],
    sources: FastMap<AddrKey, Source>,
    source_cap: usize,
    pairs: FastMap<Pair, u64>,
    pub sources_untracked: u64,
    pub pairs_untracked: u64,
    /// Refusals (sources and pairs) not yet added to the `summary` table's
    /// `cap_hits` (`take_refused`).
    refused: u64,
}

fn ports() -> Box<[u32]> {
    vec![0u32; 65_536].into_boxed_slice()
}

impl Tally {
    /// A worker's tallies, holding at most `source_cap` sources.
    pub fn new(source_cap: usize) -> Tally {
        Tally {
            attempts: [ports(), ports()],
            answers: [ports(), ports()],
            sources: FastMap::with_capacity_and_hasher(source_cap, Default::default()),
            source_cap,
            pairs: FastMap::with_capacity_and_hasher(MAX_PAIRS, Default::default()),
            sources_untracked: 0,
            pairs_untracked: 0,
            refused: 0,
        }
    }

    /// Sources and pairs held (the `summary` state table).
    pub fn len(&self) -> usize {
        self.sources.len() + self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refusals since the last call (the worker adds them to the stats).
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }

    /// Counts `p` (a summary the worker owns; never a flood victim copy).
    #[inline]
    pub fn packet(&mut self, p: &PacketSummary) {
        let Some(ip) = &p.ip else { return };
        let (proto, sport, dport, attempt, answer) = match &p.l4 {
            L4::Tcp(t) => {
                let syn = t.has(tcpflag::SYN);
                let ack = t.has(tcpflag::ACK);
                let attempt = syn && !ack && !t.has(tcpflag::RST);
                let answer = (syn && ack) || t.has(tcpflag::RST);
                (0usize, t.sport, t.dport, attempt, answer)
            }
            L4::Udp(u) => (1usize, u.sport, u.dport, true, true),
            _ => return,
        };
        if attempt && p.owner_is_src {
            self.attempts[proto][usize::from(dport)] = self.attempts[proto][usize::from(dport)].saturating_add(1);
            self.attempt(ip.src, ip.dst, proto, sport, dport, p.ts_us);
        } else if answer && p.owner_is_dst {
            self.answers[proto][usize::from(sport)] = self.answers[proto][usize::from(sport)].saturating_add(1);
            if let Some(s) = self.sources.get_mut(&AddrKey(ip.dst)) {
                s.answers = s.answers.saturating_add(1);
            }
        }
    }

    fn attempt(&mut self, src: IpAddr, dst: IpAddr, proto: usize, sport: u16, dport: u16, ts_us: i64) {
        let pnum = if proto == 0 { 6 } else { 17 };
        let pair = Pair { proto: pnum, src: if sport < 1024 { sport } else { HIGH }, dst: dport };
        let room = self.pairs.len() < MAX_PAIRS;
        match self.pairs.get_mut(&pair) {
            Some(n) => *n += 1,
            None if room => {
                self.pairs.insert(pair, 1);
            }
            None => {
                self.pairs_untracked += 1;
                self.refused += 1;
            }
        }
        let full = self.sources.len() >= self.source_cap;
        let s = match self.sources.get_mut(&AddrKey(src)) {
            Some(s) => s,
            None if full => {
                self.sources_untracked += 1;
                self.refused += 1;
                return;
            }
            None => self.sources.entry(AddrKey(src)).or_insert(Source::new(dst)),
        };
        s.attempts = s.attempts.saturating_add(1);
        let key = (dst, pnum, dport);
        if s.attempts > 1 && s.last == key {
            s.repeats += 1;
        }
        s.last = key;
        s.sample(Sample { ts_us, sport, dport });
    }

    /// Adds `other` (another worker's tallies) into these. Sources are owned
    /// by one worker each, so their entries move over whole; past the cap
    /// they are counted untracked.
    pub fn merge(&mut self, other: &Tally) {
        for k in 0..2 {
            for (a, b) in self.attempts[k].iter_mut().zip(other.attempts[k].iter()) {
                *a = a.saturating_add(*b);
            }
            for (a, b) in self.answers[k].iter_mut().zip(other.answers[k].iter()) {
                *a = a.saturating_add(*b);
            }
        }
        for (k, v) in &other.sources {
            if let Some(s) = self.sources.get_mut(k) {
                // The same source in two workers (it cannot be, by sharding,
                // but a merge must not lose counts).
                s.attempts = s.attempts.saturating_add(v.attempts);
                s.answers = s.answers.saturating_add(v.answers);
                s.repeats = s.repeats.saturating_add(v.repeats);
            } else if self.sources.len() < MAX_SOURCES {
                self.sources.insert(*k, *v);
            } else {
                self.sources_untracked += u64::from(v.attempts);
            }
        }
        for (k, v) in &other.pairs {
            let room = self.pairs.len() < MAX_PAIRS;
            match self.pairs.get_mut(k) {
                Some(n) => *n += v,
                None if room => {
                    self.pairs.insert(*k, *v);
                }
                None => self.pairs_untracked += v,
            }
        }
        self.sources_untracked += other.sources_untracked;
        self.pairs_untracked += other.pairs_untracked;
    }

    /// `stats.summary`: bounded lists, biggest first, ties in key order (the
    /// same output with any `--workers`).
    pub fn to_json(&self) -> Value {
        let mut by_port = Vec::new();
        let mut ports_omitted = 0u64;
        for (k, name) in ["tcp", "udp"].iter().enumerate() {
            let mut rows: Vec<(u16, u32, u32)> = (0..=u16::MAX)
                .filter_map(|p| {
                    let a = self.attempts[k][usize::from(p)];
                    let n = self.answers[k][usize::from(p)];
                    (a > 0).then(|| (p, a, a.saturating_sub(n)))
                })
                .collect();
            rows.sort_by(|x, y| y.2.cmp(&x.2).then(y.1.cmp(&x.1)).then(x.0.cmp(&y.0)));
            ports_omitted += rows.len().saturating_sub(OUT_PORTS) as u64;
            rows.truncate(OUT_PORTS);
            for (p, a, u) in rows {
                by_port.push(json!({"proto": name, "port": p, "attempts": a, "unanswered": u}));
            }
        }
        let mut srcs: Vec<(&AddrKey, &Source)> = self.sources.iter().collect();
        srcs.sort_by(|x, y| {
            let ux = x.1.attempts.saturating_sub(x.1.answers);
            let uy = y.1.attempts.saturating_sub(y.1.answers);
            uy.cmp(&ux).then(y.1.attempts.cmp(&x.1.attempts)).then(x.0.0.cmp(&y.0.0))
        });
        let by_source: Vec<Value> = srcs
            .iter()
            .take(OUT_SOURCES)
            .map(|(k, s)| {
                json!({"src_ip": k.0.to_string(), "attempts": s.attempts,
                       "unanswered": s.attempts.saturating_sub(s.answers)})
            })
            .collect();
        // Sampled sources: the most repetitive first (retry loops, periodic
        // probes, source-port sequences), then the busiest.
        srcs.retain(|(_, s)| s.len >= 2);
        srcs.sort_by(|x, y| {
            y.1.repeats.cmp(&x.1.repeats).then(y.1.attempts.cmp(&x.1.attempts)).then(x.0.0.cmp(&y.0.0))
        });
        let samples: Vec<Value> = srcs
            .iter()
            .take(OUT_SAMPLED)
            .map(|(k, s)| {
                let pts: Vec<Value> = s.samples[..usize::from(s.len)]
                    .iter()
                    .map(|x| json!([x.ts_us as f64 / 1e6, x.sport, x.dport]))
                    .collect();
                json!({"src_ip": k.0.to_string(), "attempts": s.attempts, "repeats": s.repeats,
                       "stride": s.stride, "samples": pts})
            })
            .collect();
        let mut pairs: Vec<(&Pair, &u64)> = self.pairs.iter().collect();
        pairs.sort_by(|x, y| {
            let lx = x.0.src != HIGH && x.0.dst < 1024;
            let ly = y.0.src != HIGH && y.0.dst < 1024;
            ly.cmp(&lx).then(y.1.cmp(x.1)).then((x.0.proto, x.0.src, x.0.dst).cmp(&(y.0.proto, y.0.src, y.0.dst)))
        });
        let pairs_omitted = pairs.len().saturating_sub(OUT_PAIRS);
        let pairs: Vec<Value> = pairs
            .iter()
            .take(OUT_PAIRS)
            .map(|(p, n)| {
                json!({"proto": if p.proto == 6 { "tcp" } else { "udp" },
                       "src_port": if p.src == HIGH { json!("high") } else { json!(p.src) },
                       "dest_port": p.dst, "count": n,
                       "low_to_low": p.src != HIGH && p.dst < 1024})
            })
            .collect();
        json!({
            "unanswered_by_port": by_port,
            "ports_omitted": ports_omitted,
            "unanswered_by_source": by_source,
            "source_port_samples": samples,
            "port_pairs": pairs,
            "pairs_omitted": pairs_omitted,
            "sources_untracked": self.sources_untracked,
            "pairs_untracked": self.pairs_untracked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_span_the_run_when_downsampled() {
        let mut s = Source::new("192.0.2.1".parse().unwrap());
        for i in 0..1000u32 {
            s.sample(Sample { ts_us: i64::from(i), sport: i as u16, dport: 80 });
        }
        assert!(usize::from(s.len) <= SAMPLES && s.len >= 32, "{}", s.len);
        assert_eq!(s.samples[0].ts_us, 0);
        let last = s.samples[usize::from(s.len) - 1].ts_us;
        assert!(last >= 1000 - i64::from(s.stride), "last sample {last}, stride {}", s.stride);
        assert!(s.samples[..usize::from(s.len)].windows(2).all(|w| w[0].ts_us < w[1].ts_us));
    }
}
