//! Unit tests of `worm_phase`: worker taps fed as the dispatcher shards
//! (a tick per second of packet time), the aggregator run on their messages.
//!
//! Test-only: compiled under #[cfg(test)] (see `worm/mod.rs`).

use super::*;
use crate::decode::summary::{L4, PacketSummary, UdpInfo, tcpflag, testutil};
use crate::detect::agg::testing;
use crate::detect::testrig::s;
use crate::detect::{EndReason, Rules, Shared};
use crate::pipeline::dispatch::{shard_addr, worker_of};
use crossbeam_channel::Receiver;
use serde_json::Value;
use std::net::Ipv4Addr;

struct Lab {
    shared: Shared,
    rules: Rules,
    taps: Vec<Tap>,
    rx: Receiver<WormMsg>,
    next_tick: i64,
}

impl Lab {
    fn new(workers: usize, tweak: impl FnOnce(&mut Rules)) -> Lab {
        let testing::Bench { shared, rules, taps, rx } =
            testing::bench(workers, tweak, |r, sh, l| Tap::new(&r.worm_phase, sh, l));
        Lab { shared, rules, taps, rx, next_tick: i64::MIN }
    }

    fn tick_to(&mut self, ts: i64) {
        if self.next_tick == i64::MIN {
            self.next_tick = ts + 1_000_000;
        }
        while ts >= self.next_tick {
            for t in &mut self.taps {
                t.tick(self.next_tick, &self.shared.stats);
            }
            self.next_tick += 1_000_000;
        }
    }

    fn feed(&mut self, p: PacketSummary) {
        self.tick_to(p.ts_us);
        let owner = shard_addr(&p, &self.shared.home);
        let w = owner.map_or(0, |a| worker_of(a, self.taps.len()));
        self.taps[w].packet(&p, 0, &self.shared.stats);
    }

    fn end(&mut self) -> Vec<Value> {
        for t in &mut self.taps {
            t.finish(&self.shared.stats);
        }
        let msgs: Vec<WormMsg> = self.rx.try_iter().collect();
        let (r, shared) = (&self.rules.worm_phase, &self.shared);
        testing::events(msgs, |rx, out| Aggregator::new(r, shared.workers).run(rx, shared, out, EndReason::EndOfInput))
    }
}

fn outside(i: u32) -> String {
    Ipv4Addr::from(0xcb00_7100u32 + (i % 250) + ((i / 250) << 8)).to_string()
}

fn syn(t: f64, src: &str, dst: &str, dport: u16) -> PacketSummary {
    testutil::tcp(s(t), src, dst, (40_000, dport), tcpflag::SYN, 7, 0)
}

fn udp(t: f64, src: &str, dst: &str, dport: u16, payload: u32) -> PacketSummary {
    let mut p = testutil::tcp(s(t), src, dst, (40_000, dport), 0, 0, 0);
    p.l4 = L4::Udp(UdpInfo { sport: 40_000, dport });
    if let Some(ip) = &mut p.ip {
        ip.proto = 17;
    }
    p.payload_len = payload;
    p
}

fn phases(ev: &[Value]) -> Vec<(u64, String, String)> {
    ev.iter()
        .filter(|e| e["event_type"] == "worm_phase")
        .map(|e| {
            let d = &e["worm_phase"];
            (d["phase"].as_u64().unwrap(), d["sentry"].as_str().unwrap().into(), d["host"].as_str().unwrap().into())
        })
        .collect()
}

/// An inside host sweeping 445 out: 1,200 targets at 10 a second, every
/// SYN unanswered: phases I and II in both its sentries, the same with 1
/// and 4 workers.
#[test]
fn an_egress_sweep_climbs_the_ladder_the_same_with_any_workers() {
    let run = |workers| {
        let mut lab = Lab::new(workers, |_| {});
        for i in 0..1200 {
            lab.feed(syn(f64::from(i) * 0.1, "192.0.2.10", &outside(i), 445));
        }
        lab.end()
    };
    let one = run(1);
    let four = run(4);
    let p = phases(&one);
    assert_eq!(
        p,
        vec![
            (1, "445/tcp".into(), "192.0.2.10".into()),
            (1, "any".into(), "192.0.2.10".into()),
            (2, "445/tcp".into(), "192.0.2.10".into()),
            (2, "any".into(), "192.0.2.10".into()),
        ]
    );
    assert_eq!(phases(&four), p);
    let e = one.iter().find(|e| e["event_type"] == "worm_phase").unwrap();
    let d = &e["worm_phase"];
    assert_eq!(d["direction"], "outbound");
    // Judged when the minute closes: 10 a second, so the first minute's count.
    let attempts = d["attempts"].as_u64().unwrap();
    assert!((200..1000).contains(&attempts), "{d}");
    assert!(d["targets"].as_u64().unwrap().abs_diff(attempts) <= attempts / 20, "{d}");
    assert_eq!(d["worm"], Value::Null);
    assert_eq!(e["dest_port"], 445);
    let sum: Vec<&Value> = one.iter().filter(|e| e["event_type"] == "worm_summary").collect();
    assert_eq!(sum.len(), 1);
    assert_eq!(sum[0]["worm_summary"]["hosts"][0]["host"], "192.0.2.10");
    assert_eq!(sum[0]["worm_summary"]["hosts"][0]["phase"], 2);
}

/// Answered attempts do not count: a busy client whose SYNs all get their
/// SYN-ACK, and UDP queries that get replies, raise nothing.
#[test]
fn answered_attempts_do_not_count() {
    let mut lab = Lab::new(2, |_| {});
    for i in 0..600 {
        let t = f64::from(i) * 0.05;
        let dst = outside(i);
        lab.feed(syn(t, "192.0.2.10", &dst, 80));
        lab.feed(testutil::tcp(s(t + 0.01), &dst, "192.0.2.10", (80, 40_000), tcpflag::SYN | tcpflag::ACK, 9, 8));
        lab.feed(udp(t, "192.0.2.20", &dst, 53, 30));
        lab.feed({
            let mut r = udp(t + 0.02, &dst, "192.0.2.20", 40_000, 90);
            r.l4 = L4::Udp(UdpInfo { sport: 53, dport: 40_000 });
            r
        });
    }
    assert_eq!(phases(&lab.end()), vec![]);
}

/// A client retrying one server all day is one target: no phase, however
/// many attempts (and retransmissions of a settled attempt add nothing).
#[test]
fn one_target_retried_is_not_a_worm() {
    let mut lab = Lab::new(1, |_| {});
    for i in 0..2000 {
        lab.feed(syn(f64::from(i) * 2.0, "192.0.2.10", "203.0.113.9", 445));
    }
    assert_eq!(phases(&lab.end()), vec![]);
}

/// A Slammer-like sweep: one 376-byte datagram to 1434 per target, 2,000 in
/// a minute from an outside host: straight to phase III, named; a sweep
/// with another payload size is not named.
#[test]
fn a_fast_slammer_sweep_goes_straight_to_phase_three_and_is_named() {
    let mut lab = Lab::new(3, |_| {});
    for i in 0..2000 {
        let dst = Ipv4Addr::from(0xc000_0200u32 + (i % 254) + 1).to_string();
        let dst = if i < 254 { dst } else { Ipv4Addr::from(0x0a00_0000u32 + i).to_string() };
        lab.feed(udp(f64::from(i) * 0.02, "198.51.100.7", &dst, 1434, 376));
    }
    let ev = lab.end();
    let p = phases(&ev);
    assert_eq!(p, vec![(3, "1434/udp".into(), "198.51.100.7".into()), (3, "any".into(), "198.51.100.7".into())]);
    let d = &ev.iter().find(|e| e["worm_phase"]["sentry"] == "1434/udp").unwrap()["worm_phase"];
    assert_eq!(d["reason"], "per_minute");
    assert_eq!(d["worm"], "SQL Slammer");
    assert_eq!(d["direction"], "inbound");
    assert!(d["per_minute"].as_u64().unwrap() > 1000);

    let mut lab = Lab::new(1, |_| {});
    for i in 0..300 {
        lab.feed(udp(f64::from(i) * 0.5, "198.51.100.7", &outside(i), 1434, 100));
    }
    let ev = lab.end();
    let d = &ev.iter().find(|e| e["worm_phase"]["sentry"] == "1434/udp").unwrap()["worm_phase"];
    assert_eq!((d["phase"].as_u64(), &d["worm"]), (Some(1), &Value::Null));
}

/// Sasser: a 445 sweep, and connections to 9996 (answered) from the same host.
#[test]
fn sasser_needs_its_second_port() {
    let mut lab = Lab::new(2, |_| {});
    let dst = outside(7);
    lab.feed(syn(0.0, "192.0.2.10", &dst, 9996));
    lab.feed(testutil::tcp(s(0.01), &dst, "192.0.2.10", (9996, 40_000), tcpflag::SYN | tcpflag::ACK, 9, 8));
    for i in 0..250 {
        lab.feed(syn(1.0 + f64::from(i) * 0.5, "192.0.2.10", &outside(i + 10), 445));
    }
    let ev = lab.end();
    let d = &ev.iter().find(|e| e["worm_phase"]["sentry"] == "445/tcp").unwrap()["worm_phase"];
    assert_eq!(d["worm"], "Sasser");
}

/// Issue 14, `picket live --fw-log`: a firewall log's denials
/// (`Attempt::logged`, on the log thread's own link) count in the
/// sentries, so a sweep only the firewall saw reaches phase III; but a
/// flow the wire already counted, or a retransmission the firewall logged
/// again, counts once.
#[test]
fn logged_denials_count_once_beside_the_wire() {
    let testing::Bench { shared, rules, mut taps, rx } = testing::bench(2, |_| {}, |_, _, l| l);
    let log = taps.pop().unwrap();
    let mut tap = Tap::new(&rules.worm_phase, &shared, taps.pop().unwrap());
    let logged = |t: f64, tag: f64, src: &str, i: u32| {
        Attempt::logged(&syn(t, src, &outside(i), 445), s(t), s(tag), 0).expect("a SYN denial is an attempt")
    };
    let mut denials = Vec::new();
    // 192.0.2.10: 1,200 targets within 12 s, each denial logged twice (the
    // retransmission a second later); the span saw none of it.
    for i in 0..1200 {
        let t = f64::from(i) * 0.01;
        denials.push(logged(t, t, "192.0.2.10", i));
        denials.push(logged(t + 1.0, t + 1.0, "192.0.2.10", i));
    }
    // 192.0.2.20: 150 SYNs on the wire, unanswered, settled at 20 s, that
    // the firewall also logged (read in a later window, tagged 30 s); and
    // 60 more only the log saw.
    for i in 0..150 {
        let t = f64::from(i) * 0.05;
        tap.packet(&syn(t, "192.0.2.20", &outside(i), 445), 0, &shared.stats);
        denials.push(logged(t + 0.2, 30.0, "192.0.2.20", i));
    }
    for i in 150..210 {
        denials.push(logged(f64::from(i) * 0.05, 30.0, "192.0.2.20", i));
    }
    tap.tick(s(20.0), &shared.stats);
    tap.finish(&shared.stats);
    let mut chunk = Chunk::empty();
    for a in denials {
        if chunk.push(a) {
            crate::detect::agg::send(&log, WormMsg::Data(chunk), &shared.stats);
            chunk.len = 0;
        }
    }
    crate::detect::agg::send(&log, WormMsg::Data(chunk), &shared.stats);
    crate::detect::agg::send(&log, WormMsg::Done { worker: log.worker }, &shared.stats);
    let msgs: Vec<WormMsg> = rx.try_iter().collect();
    let ev = testing::events(msgs, |rx, out| {
        Aggregator::new(&rules.worm_phase, 2).fed_by_log(4096).run(rx, &shared, out, EndReason::EndOfInput)
    });
    let mut got: Vec<(u64, String, String, String, u64)> = ev
        .iter()
        .filter(|e| e["event_type"] == "worm_phase")
        .map(|e| {
            let d = &e["worm_phase"];
            let field = |k: &str| d[k].as_str().unwrap().to_string();
            (
                d["phase"].as_u64().unwrap(),
                field("sentry"),
                field("host"),
                field("reason"),
                d["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let row = |phase: u64, sentry: &str, host: &str, reason: &str, n: u64| {
        (phase, sentry.to_string(), host.to_string(), reason.to_string(), n)
    };
    assert_eq!(
        got,
        vec![
            row(1, "445/tcp", "192.0.2.20", "count", 210),
            row(1, "any", "192.0.2.20", "count", 210),
            row(3, "445/tcp", "192.0.2.10", "per_minute", 1200),
            row(3, "any", "192.0.2.10", "per_minute", 1200),
        ],
        "{ev:?}"
    );
}
