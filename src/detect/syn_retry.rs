//! `syn_retry`: repeated, failing TCP connection attempts from one source to
//! one destination address and port (SIGNATURES.md sections 1 and 2).
//!
//! - A retransmission repeats an attempt's source port and ISN; a new source
//!   port or ISN is a new attempt.
//! - An attempt that draws a SYN-ACK succeeded and stops counting. A RST or an
//!   ICMP unreachable quoting it rejects it: it still failed, and the event
//!   says who rejected it.
//! - The detection is confirmed once `min_attempts` failed SYNs (attempts or
//!   retransmissions) fall within `window_s`, and the newest has stayed
//!   unanswered for `settle_s` (or the input ended), so one SYN retransmitted
//!   and then answered never fires.
//! - A source that is probing more than `max_dest_ports_per_source` ports is a
//!   scanner, not a retry loop: it is left to the scan detectors and counted.
//!
//! State: one bounded entry per (source, destination, port), capped at
//! `max_tracked`, expired after `window_s` without a SYN.

use super::sources::Sources;
use super::{Ctx, Distinct1024, EndReason};
use crate::config::SynRetryRules;
use crate::event::{EventBuilder, Flow, detection_id, ip_bytes, secs};
use crate::stats::Table;
use crate::summary::{L4, PacketSummary, tcpflag};
use crate::timefmt::rfc3339_us;
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

const KIND: &str = "syn_retry";
/// Attempts remembered per entry, for matching answers to them.
const RING: usize = 8;
/// Failed SYN times remembered per entry, for the window test (>= min_attempts).
const WIN: usize = 16;
/// SIGNATURES.md section 9: lethality of a retry loop is low.
const LETHALITY: i64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Outcome {
    #[default]
    Pending,
    SynAck,
    Rst,
    Icmp,
}

#[derive(Clone, Copy, Debug, Default)]
struct Attempt {
    sport: u16,
    isn: u32,
    packets: u16,
    outcome: Outcome,
}

#[derive(Clone, Copy, Debug, Default)]
struct Failed {
    ts: i64,
    sport: u16,
    isn: u32,
}

#[derive(Clone, Debug)]
struct Entry {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    attempts: [Attempt; RING],
    next_attempt: usize,
    win: [Failed; WIN],
    win_len: usize,
    failed_attempts: u32,
    retransmissions: u32,
    succeeded: u32,
    payload_bytes: u64,
    ports: Distinct1024,
    first_sport: u16,
    last_sport: u16,
    rst: u32,
    icmp: u32,
    icmp_from: Option<IpAddr>,
    ttl_min: u8,
    ttl_max: u8,
    /// Packet time at which the pending confirmation is re-checked.
    pending_at: Option<i64>,
    confirmed: bool,
    suppressed: bool,
    last_emit_us: i64,
}

impl Entry {
    fn new(p: &PacketSummary, sensor: u16, sport: u16, ttl: u8) -> Entry {
        Entry {
            sensor,
            first_us: p.ts_us,
            last_us: p.ts_us,
            attempts: [Attempt::default(); RING],
            next_attempt: 0,
            win: [Failed::default(); WIN],
            win_len: 0,
            failed_attempts: 0,
            retransmissions: 0,
            succeeded: 0,
            payload_bytes: 0,
            ports: Distinct1024::default(),
            first_sport: sport,
            last_sport: sport,
            rst: 0,
            icmp: 0,
            icmp_from: None,
            ttl_min: ttl,
            ttl_max: ttl,
            pending_at: None,
            confirmed: false,
            suppressed: false,
            last_emit_us: p.ts_us,
        }
    }

    fn find(&mut self, sport: u16, isn: Option<u32>) -> Option<&mut Attempt> {
        let hit = |a: &Attempt| a.packets > 0 && a.sport == sport && isn.is_none_or(|i| a.isn == i);
        self.attempts.iter_mut().find(|a| hit(a))
    }

    /// Records a SYN; returns false if it retransmits an attempt that
    /// already succeeded (and so proves nothing).
    fn add_syn(&mut self, sport: u16, isn: u32, ts: i64) -> bool {
        if let Some(a) = self.find(sport, Some(isn)) {
            if a.outcome == Outcome::SynAck {
                return false;
            }
            a.packets = a.packets.saturating_add(1);
            self.retransmissions += 1;
        } else {
            self.attempts[self.next_attempt] = Attempt { sport, isn, packets: 1, outcome: Outcome::Pending };
            self.next_attempt = (self.next_attempt + 1) % RING;
            self.failed_attempts += 1;
            self.ports.insert(u64::from(sport));
            self.last_sport = sport;
        }
        if self.win_len == WIN {
            self.win.copy_within(1.., 0);
            self.win_len -= 1;
        }
        self.win[self.win_len] = Failed { ts, sport, isn };
        self.win_len += 1;
        true
    }

    /// A SYN-ACK for the attempt: it succeeded, so it stops counting.
    fn succeed(&mut self, sport: u16, isn: u32) {
        let Some(a) = self.find(sport, Some(isn)) else {
            return;
        };
        if a.outcome == Outcome::SynAck {
            return;
        }
        let retrans = u32::from(a.packets.saturating_sub(1));
        a.outcome = Outcome::SynAck;
        self.failed_attempts = self.failed_attempts.saturating_sub(1);
        self.retransmissions = self.retransmissions.saturating_sub(retrans);
        self.succeeded += 1;
        let mut kept = 0;
        for i in 0..self.win_len {
            let f = self.win[i];
            if !(f.sport == sport && f.isn == isn) {
                self.win[kept] = f;
                kept += 1;
            }
        }
        self.win_len = kept;
    }

    fn reject(&mut self, sport: u16, isn: Option<u32>, how: Outcome) -> bool {
        let Some(a) = self.find(sport, isn) else {
            return false;
        };
        if a.outcome == Outcome::SynAck {
            return false;
        }
        a.outcome = how;
        true
    }

    /// `min` failed SYNs within `window_us` of each other.
    fn over_threshold(&self, min: usize, window_us: i64) -> bool {
        if min == 0 || self.win_len < min {
            return false;
        }
        self.win[self.win_len - 1].ts - self.win[self.win_len - min].ts <= window_us
    }
}

/// The detector's per-worker state.
pub struct SynRetry {
    map: HashMap<Key, Entry>,
    rules: SynRetryRules,
    window_us: i64,
    settle_us: i64,
    update_us: i64,
}

impl SynRetry {
    pub fn new(rules: &SynRetryRules, update_interval_s: f64) -> SynRetry {
        SynRetry {
            map: HashMap::with_capacity(rules.max_tracked.min(4096)),
            rules: rules.clone(),
            window_us: (rules.window_s * 1e6) as i64,
            settle_us: (rules.settle_s * 1e6) as i64,
            update_us: (update_interval_s * 1e6) as i64,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Handles one packet.
    #[inline]
    pub fn on_packet(&mut self, p: &PacketSummary, sensor: u16, src_table: &Sources, cx: &Ctx) {
        if !self.rules.enabled {
            return;
        }
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            L4::Tcp(t) if t.is_syn_only() => {
                let key = Key { src: ip.src, dst: ip.dst, dport: t.dport };
                self.on_syn(key, p, sensor, t.sport, t.seq, ip.ttl, src_table, cx);
            }
            L4::Tcp(t) if t.is_syn_ack() => {
                let key = Key { src: ip.dst, dst: ip.src, dport: t.sport };
                if let Some(e) = self.map.get_mut(&key) {
                    e.succeed(t.dport, t.ack.wrapping_sub(1));
                }
            }
            L4::Tcp(t) if t.has(tcpflag::RST) => {
                let key = Key { src: ip.dst, dst: ip.src, dport: t.sport };
                let isn = t.has(tcpflag::ACK).then(|| t.ack.wrapping_sub(1));
                if let Some(e) = self.map.get_mut(&key)
                    && e.reject(t.dport, isn, Outcome::Rst)
                {
                    e.rst += 1;
                }
            }
            L4::Icmp(i) if i.is_unreachable() => {
                let Some(q) = &i.quoted else { return };
                if q.proto != 6 || !q.has_ports {
                    return;
                }
                let key = Key { src: q.src, dst: q.dst, dport: q.dport };
                if let Some(e) = self.map.get_mut(&key)
                    && e.reject(q.sport, q.tcp_seq, Outcome::Icmp)
                {
                    e.icmp += 1;
                    e.icmp_from = Some(ip.src);
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_syn(
        &mut self,
        key: Key,
        p: &PacketSummary,
        sensor: u16,
        sport: u16,
        isn: u32,
        ttl: u8,
        src_table: &Sources,
        cx: &Ctx,
    ) {
        if !self.map.contains_key(&key) {
            if self.map.len() >= self.rules.max_tracked {
                cx.shared.stats.table(Table::SynRetry).cap_hits.fetch_add(1, Relaxed);
                return;
            }
            self.map.insert(key, Entry::new(p, sensor, sport, ttl));
        } else {
            self.check_pending(&key, cx, src_table, p.ts_us);
        }
        let (min, window) = (self.min(), self.window_us);
        let Some(e) = self.map.get_mut(&key) else {
            return;
        };
        e.last_us = e.last_us.max(p.ts_us);
        e.sensor = sensor;
        e.ttl_min = e.ttl_min.min(ttl);
        e.ttl_max = e.ttl_max.max(ttl);
        e.payload_bytes += u64::from(p.payload_len);
        if !e.add_syn(sport, isn, p.ts_us) {
            return;
        }
        if e.confirmed {
            if p.ts_us - e.last_emit_us >= self.update_us {
                e.last_emit_us = p.ts_us;
                let ev = render(&key, e, "update", None, cx, p.ts_us);
                cx.emit(ev);
            }
        } else if e.pending_at.is_none() && e.over_threshold(min, window) {
            e.pending_at = Some(p.ts_us.saturating_add(self.settle_us));
        }
    }

    fn min(&self) -> usize {
        self.rules.min_attempts as usize
    }

    /// Confirms `key` if its pending time has come and it is still over the
    /// threshold.
    fn check_pending(&mut self, key: &Key, cx: &Ctx, src_table: &Sources, now: i64) {
        let (min, window, max_ports) = (self.min(), self.window_us, self.rules.max_dest_ports_per_source);
        let Some(e) = self.map.get_mut(key) else {
            return;
        };
        if e.pending_at.is_some_and(|t| t <= now) {
            confirm(key, e, min, window, max_ports, src_table, cx, now, None);
        }
    }

    /// Expires idle entries and confirms pending ones (called once per tick).
    pub fn on_tick(&mut self, src_table: &Sources, cx: &Ctx) {
        let now = cx.now;
        let (min, window, max_ports) = (self.min(), self.window_us, self.rules.max_dest_ports_per_source);
        let stats = &cx.shared.stats;
        let mut expired = 0u64;
        self.map.retain(|key, e| {
            if e.pending_at.is_some_and(|t| t <= now) {
                confirm(key, e, min, window, max_ports, src_table, cx, now, None);
            }
            if now.saturating_sub(e.last_us) <= window {
                return true;
            }
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(EndReason::Expired), cx, now));
            }
            expired += 1;
            false
        });
        stats.table(Table::SynRetry).expired.fetch_add(expired, Relaxed);
    }

    /// Ends every detection (end of input or shutdown). Pending attempts that
    /// were never answered count as failed: the input shows no answer.
    pub fn flush(&mut self, reason: EndReason, src_table: &Sources, cx: &Ctx) {
        let (min, window, max_ports) = (self.min(), self.window_us, self.rules.max_dest_ports_per_source);
        for (key, e) in self.map.iter_mut() {
            if e.pending_at.is_some() && !e.confirmed {
                confirm(key, e, min, window, max_ports, src_table, cx, cx.now, Some(reason));
                continue;
            }
            if e.confirmed {
                cx.emit(render(key, e, "final", Some(reason), cx, cx.now));
            }
        }
        self.map.clear();
    }
}

/// Re-checks and, if still valid, confirms a pending detection. With `end`
/// set the input is over, so the first event is also the final one.
#[allow(clippy::too_many_arguments)]
fn confirm(
    key: &Key,
    e: &mut Entry,
    min: usize,
    window: i64,
    max_ports: u32,
    src_table: &Sources,
    cx: &Ctx,
    now: i64,
    end: Option<EndReason>,
) {
    e.pending_at = None;
    if e.confirmed || e.suppressed || !e.over_threshold(min, window) {
        return;
    }
    if src_table.distinct_ports(key.src) > u64::from(max_ports) {
        e.suppressed = true;
        cx.shared.stats.syn_retry_suppressed_scan.fetch_add(1, Relaxed);
        return;
    }
    e.confirmed = true;
    e.last_emit_us = now;
    let status = if end.is_some() { "final" } else { "new" };
    cx.emit(render(key, e, status, end, cx, now));
}

fn rejected_by(e: &Entry) -> &'static str {
    if e.rst > 0 {
        "rst"
    } else if e.icmp > 0 {
        "icmp"
    } else {
        "none"
    }
}

fn render(key: &Key, e: &Entry, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> crate::event::EventLine {
    let id = detection_id(
        KIND,
        &[&ip_bytes(&key.src), &ip_bytes(&key.dst), &key.dport.to_be_bytes(), &e.first_us.to_be_bytes()],
    );
    let service = cx.service(6, key.dport);
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "attempts": e.failed_attempts,
        "retransmissions": e.retransmissions,
        "succeeded": e.succeeded,
        "source_ports": e.ports.estimate(),
        "first_source_port": e.first_sport,
        "last_source_port": e.last_sport,
        "payload_bytes": e.payload_bytes,
        "answered": e.rst > 0 || e.succeeded > 0,
        "rejected_by": rejected_by(e),
        "rejections": {"rst": e.rst, "icmp": e.icmp, "icmp_from": e.icmp_from.map(|a| a.to_string())},
        "ttl": {"min": e.ttl_min, "max": e.ttl_max},
        "service": service,
        "direction": cx.direction(key.src, key.dst),
        "first_seen": rfc3339_us(e.first_us),
        "last_seen": rfc3339_us(e.last_us),
        "duration_s": secs(e.last_us - e.first_us),
    });
    let flow = Flow { src: key.src, dst: key.dst, proto: 6, ports: Some((e.first_sport, key.dport)) };
    EventBuilder::new(KIND, now, cx.sensor(e.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .severity(cx.severity(LETHALITY))
        .summary(summary(key, e, service))
        .details(KIND, details)
}

/// One sentence an analyst can act on.
fn summary(key: &Key, e: &Entry, service: Option<&str>) -> String {
    let svc = service.map(|s| format!(" ({s})")).unwrap_or_default();
    let target = match key.dst {
        IpAddr::V6(a) => format!("[{a}]:{}", key.dport),
        IpAddr::V4(a) => format!("{a}:{}", key.dport),
    };
    let span = secs(e.last_us - e.first_us);
    let what = if e.failed_attempts <= 1 {
        format!(
            "{} retransmitted one SYN to TCP {target}{svc} {} times over {span} s (same source port {}): the stack's back-off, never answered",
            key.src, e.retransmissions, e.first_sport
        )
    } else {
        let ports = e.ports.estimate();
        let sport_note =
            if ports >= u64::from(e.failed_attempts) { "each from a new source port" } else { "reusing source ports" };
        format!(
            "{} made {} failed connection attempts ({} retransmissions) to TCP {target}{svc} over {span} s, {sport_note}",
            key.src, e.failed_attempts, e.retransmissions
        )
    };
    let answer = match rejected_by(e) {
        "rst" => "; the target answers RST: nothing listens there, yet the client keeps trying".to_string(),
        "icmp" => {
            format!("; rejected by ICMP unreachable from {}", e.icmp_from.map(|a| a.to_string()).unwrap_or_default())
        }
        _ => "; nothing came back: the SYNs are dropped (firewall) or the host is gone".to_string(),
    };
    let payload = if e.payload_bytes > 0 {
        format!("; the SYNs carried {} payload bytes, unusual outside scanners and fingerprinting", e.payload_bytes)
    } else {
        String::new()
    };
    format!("{what}{answer}{payload}")
}
