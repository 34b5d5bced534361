//! The run summary `picket report` draws from: what each worker tallies
//! while it analyses (attempts and answers by destination port, per-source
//! attempts and source-port samples, port pairs), merged into one at the end
//! of the run and written as `stats.summary` in the final `stats` event.
//!
//! Everything is bounded, and fair as the detectors' tables are
//! (`detect::fair`): the port counters are two arrays of 65,536 per
//! protocol; a source or a port pair seen once is remembered only as a
//! hash (`SeenOnce`), and gets an entry (per-source source-port samples
//! inline) at its second attempt, in a tier whose clock lets a busier
//! entry outlive a quieter one. So a spoofed flood, however early it came,
//! costs three bits per forged source and cannot push out a source that
//! repeats. Entries pushed out or refused for room are counted
//! (`sources_untracked` / `pairs_untracked`, and the `summary` state
//! table's `evicted` and `cap_hits`). No allocation per packet. The merged
//! run summary (`Summary`) takes every worker's entries whole and keeps the
//! top of each list by count, ties in key order, so it is the same with any
//! `--workers` while no table was under pressure.
//!
//! An *attempt* is a TCP connection attempt (SYN without ACK) or a UDP
//! datagram sent by the side that started the exchange (`owner_is_src`); an
//! *answer* is a SYN-ACK or RST, or a UDP datagram, sent back to it
//! (`owner_is_dst`). Unanswered = attempts - answers, per port and per source
//! (an estimate from counts, not a per-flow match: what the firewall log's
//! denials by port were to the analyst of the seed incident).

use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::fair::{Inserted, SeenOnce, Tier, Weighted, credit_of};
use crate::detect::keys::{AddrKey, FastMap};
use serde_json::{Value, json};
use std::net::IpAddr;

/// Source-port samples kept per source: when full, every other one is
/// dropped and the sampling stride doubles, so they always span the whole
/// run (the wrap-around and the gaps stay visible).
pub const SAMPLES: usize = 64;
/// Sources promoted across all workers (each worker holds its share, plus
/// a probation tier of half that for sources seen once).
pub const MAX_SOURCES: usize = 4096;
/// Port pairs promoted per worker (plus as many in probation).
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

impl Weighted for Source {
    fn credit(&self) -> u8 {
        credit_of(u64::from(self.attempts))
    }
    fn pinned(&self) -> bool {
        false
    }
}

/// A pair's count.
#[derive(Clone, Copy, Debug)]
struct Count(u64);

impl Weighted for Count {
    fn credit(&self) -> u8 {
        credit_of(self.0)
    }
    fn pinned(&self) -> bool {
        false
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

/// Attempts and answers by port: TCP, then UDP.
struct Ports {
    attempts: [Box<[u32]>; 2],
    answers: [Box<[u32]>; 2],
}

impl Ports {
    fn new() -> Ports {
        let ports = || vec![0u32; 65_536].into_boxed_slice();
        Ports { attempts: [ports(), ports()], answers: [ports(), ports()] }
    }
}

/// A worker's summary tallies (`Summary` merges them at the end).
pub struct Tally {
    ports: Ports,
    /// Sources and pairs seen once: hashes only, no entry.
    seen: SeenOnce,
    sources: Tier<AddrKey, Source>,
    pairs: Tier<Pair, Count>,
    /// Entries pushed out (`evicted`) or refused (`cap_hits`) for room
    /// since the worker last published them (`take_room`).
    evicted: u64,
    refused: u64,
    /// Sources and pairs pushed out or refused, in all.
    sources_untracked: u64,
    pairs_untracked: u64,
}

impl Tally {
    /// A worker's tallies: `source_cap` sources and `MAX_PAIRS` pairs,
    /// each admitted at its second attempt.
    pub fn new(source_cap: usize) -> Tally {
        Tally {
            ports: Ports::new(),
            seen: SeenOnce::new(4 * (source_cap + MAX_PAIRS)),
            sources: Tier::new(source_cap),
            pairs: Tier::new(MAX_PAIRS),
            evicted: 0,
            refused: 0,
            sources_untracked: 0,
            pairs_untracked: 0,
        }
    }

    /// Sources and pairs held (the `summary` state table).
    pub fn len(&self) -> usize {
        self.sources.len() + self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What making room cost since the last call, for the `summary` state
    /// table: (evicted, cap hits). The summary holds no detection, so it
    /// never counts lost detections.
    pub fn take_room(&mut self) -> (u64, u64) {
        (std::mem::take(&mut self.evicted), std::mem::take(&mut self.refused))
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
        let ports = &mut self.ports;
        if attempt && p.owner_is_src {
            let a = &mut ports.attempts[proto][usize::from(dport)];
            *a = a.saturating_add(1);
            self.attempt(ip.src, ip.dst, proto, sport, dport, p.ts_us);
        } else if answer && p.owner_is_dst {
            let a = &mut ports.answers[proto][usize::from(sport)];
            *a = a.saturating_add(1);
            if let Some(s) = self.sources.get_mut(&AddrKey(ip.dst)) {
                s.answers = s.answers.saturating_add(1);
            }
        }
    }

    /// Admits `v` under `k` (its second attempt): a victim pushed out or a
    /// refusal is counted; true when it is held.
    fn admit<K: std::hash::Hash + Eq + Copy, E: Weighted>(
        tier: &mut Tier<K, E>,
        k: K,
        v: E,
        room: (&mut u64, &mut u64, &mut u64),
    ) -> bool {
        let (evicted, refused, untracked) = room;
        match tier.insert(k, v) {
            Inserted::Stored => true,
            Inserted::Replaced(..) => {
                *evicted += 1;
                *untracked += 1;
                true
            }
            Inserted::Refused(_) => {
                *refused += 1;
                *untracked += 1;
                false
            }
        }
    }

    fn attempt(&mut self, src: IpAddr, dst: IpAddr, proto: usize, sport: u16, dport: u16, ts_us: i64) {
        let pnum = if proto == 0 { 6 } else { 17 };
        let pair = Pair { proto: pnum, src: if sport < 1024 { sport } else { HIGH }, dst: dport };
        match self.pairs.get_mut(&pair) {
            Some(n) => n.0 = n.0.saturating_add(1),
            // The pair's second attempt: the first counts too.
            None if !self.seen.first_sighting(&pair) => {
                let room = (&mut self.evicted, &mut self.refused, &mut self.pairs_untracked);
                Self::admit(&mut self.pairs, pair, Count(2), room);
            }
            None => {}
        }
        let key = AddrKey(src);
        let s = match self.sources.get_mut(&key) {
            Some(s) => s,
            None if self.seen.first_sighting(&key) => return,
            None => {
                // Its second attempt: the first one's count is known, its
                // sample is not (one-off sources are not stored).
                let mut s = Source::new(dst);
                s.attempts = 1;
                let room = (&mut self.evicted, &mut self.refused, &mut self.sources_untracked);
                if !Self::admit(&mut self.sources, key, s, room) {
                    return;
                }
                match self.sources.get_mut(&key) {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        s.attempts = s.attempts.saturating_add(1);
        let key = (dst, pnum, dport);
        if s.attempts > 1 && s.last == key {
            s.repeats = s.repeats.saturating_add(1);
        }
        s.last = key;
        s.sample(Sample { ts_us, sport, dport });
    }
}

/// The run's summary: every worker's tallies added together at the end of
/// its input (`Stats::merge_summary`), written as `stats.summary`. Its
/// maps hold at most what the workers held (their caps).
pub struct Summary {
    ports: Ports,
    sources: FastMap<AddrKey, Source>,
    pairs: FastMap<Pair, u64>,
    pub sources_untracked: u64,
    pub pairs_untracked: u64,
}

impl Default for Summary {
    fn default() -> Summary {
        Summary {
            ports: Ports::new(),
            sources: FastMap::default(),
            pairs: FastMap::default(),
            sources_untracked: 0,
            pairs_untracked: 0,
        }
    }
}

impl Summary {
    /// Adds a worker's tallies. Sources are owned by one worker each, so
    /// their entries move over whole.
    pub fn merge(&mut self, other: &Tally) {
        for k in 0..2 {
            for (a, b) in self.ports.attempts[k].iter_mut().zip(other.ports.attempts[k].iter()) {
                *a = a.saturating_add(*b);
            }
            for (a, b) in self.ports.answers[k].iter_mut().zip(other.ports.answers[k].iter()) {
                *a = a.saturating_add(*b);
            }
        }
        for (k, v) in other.sources.iter() {
            match self.sources.get_mut(k) {
                // The same source in two workers (it cannot be, by
                // sharding, but a merge must not lose counts).
                Some(s) => {
                    s.attempts = s.attempts.saturating_add(v.attempts);
                    s.answers = s.answers.saturating_add(v.answers);
                    s.repeats = s.repeats.saturating_add(v.repeats);
                }
                None => {
                    self.sources.insert(*k, *v);
                }
            }
        }
        for (k, v) in other.pairs.iter() {
            let n = self.pairs.entry(*k).or_insert(0);
            *n = n.saturating_add(v.0);
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
                    let a = self.ports.attempts[k][usize::from(p)];
                    let n = self.ports.answers[k][usize::from(p)];
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
    use crate::decode::summary::testutil::tcp;

    /// A SYN from `src` to `dst:dport`, as the worker that owns `src` sees it.
    fn syn(t: i64, src: &str, dst: &str, sport: u16, dport: u16) -> PacketSummary {
        let mut p = tcp(t, src, dst, (sport, dport), tcpflag::SYN, 1, 0);
        p.owner_is_src = true;
        p
    }

    fn source<'a>(j: &'a Value, ip: &str) -> Option<&'a Value> {
        j["unanswered_by_source"].as_array()?.iter().find(|r| r["src_ip"] == ip)
    }

    #[test]
    fn a_spoofed_flood_first_does_not_lock_out_a_retrying_source() {
        let mut t = Tally::new(64);
        // The flood fills both tiers before the client starts, and keeps going.
        let mut n = 0u32;
        let mut flood = |t: &mut Tally, k: u32| {
            for _ in 0..k {
                n += 1;
                let src = format!("45.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255);
                t.packet(&syn(i64::from(n), &src, "192.0.2.10", 40000, (n % 60000) as u16 + 1));
            }
        };
        flood(&mut t, 10_000);
        for i in 0..6u16 {
            t.packet(&syn(20_000 + i64::from(i), "203.0.113.9", "192.0.2.10", 50000 + i, 158));
            // Fewer one-off sources and pairs between two attempts than the
            // filter remembers (4 x (64 + 4,096)): a repeat is told apart.
            flood(&mut t, 5_000);
        }
        let (evicted, refused) = t.take_room();
        // One-off sources take no entry, bar the filter's false repeats
        // (under 1% of the 40,000).
        assert!(t.sources.len() <= 1 + 400, "{} entries", t.sources.len());
        let mut sum = Summary::default();
        sum.merge(&t);
        let j = sum.to_json();
        let client = source(&j, "203.0.113.9").expect("the retrying client survives the flood");
        assert_eq!(client["attempts"], 6, "{client}");
        let untracked = j["sources_untracked"].as_u64().unwrap() + j["pairs_untracked"].as_u64().unwrap();
        assert_eq!(untracked, evicted + refused, "every entry pushed out or refused is counted");
        let sampled = j["source_port_samples"].as_array().unwrap();
        let c = sampled.iter().find(|r| r["src_ip"] == "203.0.113.9").expect("its source ports are sampled");
        assert_eq!(c["repeats"], 4, "the first attempt is counted, not sampled: {c}");
    }

    #[test]
    fn the_summary_is_the_same_split_over_workers() {
        let pkts: Vec<PacketSummary> = (0..3000u32)
            .map(|i| {
                let src = format!("198.51.100.{}", i % 200);
                syn(i64::from(i), &src, "192.0.2.10", 1024 + (i % 7) as u16, (i % 90) as u16 + 1)
            })
            .collect();
        let mut one = Tally::new(4096);
        pkts.iter().for_each(|p| one.packet(p));
        let (mut a, mut b) = (Tally::new(2048), Tally::new(2048));
        for p in &pkts {
            let odd = matches!(p.ip.as_ref().map(|ip| ip.src), Some(IpAddr::V4(v)) if v.octets()[3] % 2 == 1);
            if odd { a.packet(p) } else { b.packet(p) }
        }
        let (mut s1, mut s2) = (Summary::default(), Summary::default());
        s1.merge(&one);
        s2.merge(&b);
        s2.merge(&a);
        assert_eq!(s1.to_json(), s2.to_json());
        assert_eq!(s1.to_json()["unanswered_by_source"].as_array().unwrap().len(), OUT_SOURCES);
    }

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
