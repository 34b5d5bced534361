//! `host_sweep`: one source finding which hosts are alive (SIGNATURES.md
//! sections 2 and 7): ICMP echo, timestamp or address-mask requests to many
//! addresses, with the TCP SYN and ACK "pings" and UDP probes nmap -sn sends
//! alongside them.
//!
//! - A discovery probe is an ICMP echo (v4 8, v6 128), timestamp (13) or
//!   address-mask (17) request to a unicast address; the same source's SYNs,
//!   bare ACKs and UDP datagrams to the hosts it pinged add their method.
//! - `min_hosts` distinct hosts within `window_s` make a sweep. Broadcast
//!   and multicast destinations are `smurf`'s; one host pinged with rising
//!   TTLs is `traceroute`'s.
//! - `alive`: hosts that answered (echo, timestamp or mask reply; a SYN-ACK
//!   or RST to a TCP ping), the first `ALIVE_KEPT` listed, all counted once.
//!
//! State is fair (`detect::fair`): a source's first ping waits in
//! `Probation` (a flood of spoofed pings churns only that), its second host
//! promotes it; a confirmed sweep is never evicted, and a source that pinged
//! more hosts outlives one that pinged fewer.

use super::fair::{Probation, Tier, Weighted};
use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::keys::{AddrKey, Distinct, Distinct1024, addr_key, mix, sweep_every, unicast};

/// 4096 bits: hosts are counted as their bit goes from clear to set, so a
/// count never exceeds the truth (a /26 sweep says 64, not 65).
type HostSet = Distinct<64>;
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

crate::rules_section! {
    /// SIGNATURES.md sections 2 and 7: pings across many addresses, finding
    /// which hosts are alive before a scan.
    pub struct HostSweepRules["host_sweep"] check(check_host_sweep) {
        /// SIGNATURES.md section 2: one probe across many destination hosts is a sweep
        enabled: bool = true;
        /// SIGNATURES.md section 2: distinct hosts pinged that make a sweep
        min_hosts: u32 = 8, ints(2, 1 << 24);
        /// SIGNATURES.md section 2 (as port_scan's window): the hosts count within this long
        window_s: f64 = 300.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 2: a sweep with no new ping for this long has ended
        idle_s: f64 = 300.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 2: sources with two or more hosts pinged, across all workers
        max_tracked: usize = 8192, entries();
        /// SIGNATURES.md section 2: sources that pinged one host (spoofed floods land here), across all workers
        max_probation: usize = 65536, entries();
    }
}

fn check_host_sweep(_r: &HostSweepRules, _s: &Spans) -> Result<(), ConfigError> {
    Ok(())
}

const KIND: &str = "host_sweep";
/// Hosts that answered, listed in the event.
const ALIVE_KEPT: usize = 16;

/// Discovery methods, one bit each.
const METHODS: [&str; 5] = ["icmp_echo", "icmp_timestamp", "icmp_mask", "tcp_syn", "tcp_ack"];
const M_ECHO: u8 = 1;
const M_TS: u8 = 2;
const M_MASK: u8 = 4;
const M_SYN: u8 = 8;
const M_ACK: u8 = 16;
const M_UDP: u8 = 32;

#[derive(Clone, Copy, Debug)]
struct First {
    dst: IpAddr,
    ts: i64,
    method: u8,
    sensor: u16,
}

#[derive(Clone, Debug)]
struct Sweep {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    window_start_us: i64,
    hosts: HostSet,
    host_count: u64,
    /// Hosts in the current window (the threshold).
    window_hosts: HostSet,
    window_count: u64,
    pings: u64,
    methods: u8,
    first_dst: IpAddr,
    alive: Vec<IpAddr>,
    alive_count: u64,
    alive_seen: Distinct1024,
    confirmed: bool,
    last_emit_us: i64,
}

impl Weighted for Sweep {
    fn credit(&self) -> u8 {
        (64 - self.host_count.leading_zeros()).saturating_sub(1).min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
}

impl Sweep {
    fn new(f: &First) -> Sweep {
        let mut s = Sweep {
            sensor: f.sensor,
            first_us: f.ts,
            last_us: f.ts,
            window_start_us: f.ts,
            hosts: HostSet::default(),
            host_count: 0,
            window_hosts: HostSet::default(),
            window_count: 0,
            pings: 0,
            methods: 0,
            first_dst: f.dst,
            alive: Vec::new(),
            alive_count: 0,
            alive_seen: Distinct1024::default(),
            confirmed: false,
            last_emit_us: f.ts,
        };
        s.ping(f.dst, f.method, f.ts, i64::MAX);
        s
    }

    fn ping(&mut self, dst: IpAddr, method: u8, ts: i64, window_us: i64) {
        if ts.saturating_sub(self.window_start_us) > window_us && !self.confirmed {
            self.window_start_us = ts;
            self.window_hosts = HostSet::default();
            self.window_count = 0;
        }
        self.pings += 1;
        self.methods |= method;
        self.last_us = self.last_us.max(ts);
        let h = mix(addr_key(dst));
        self.host_count += u64::from(self.hosts.insert(h));
        self.window_count += u64::from(self.window_hosts.insert(h));
    }

    fn answered(&mut self, host: IpAddr) {
        if self.alive_seen.insert(mix(addr_key(host))) {
            self.alive_count += 1;
            if self.alive.len() < ALIVE_KEPT {
                self.alive.push(host);
            }
        }
    }
}

/// The detector's per-worker state.
pub struct HostSweep {
    rules: HostSweepRules,
    probation: Probation<AddrKey, First>,
    sweeps: Tier<AddrKey, Sweep>,
    /// Confirmed sweeps held: the TCP and UDP pings are looked up only
    /// while there is one (most TCP packets never cost a lookup).
    confirmed: usize,
    update_us: i64,
    last_sweep_us: i64,
}

impl HostSweep {
    pub fn new(rules: &HostSweepRules, cap: usize, probation_cap: usize, update_interval_s: f64) -> HostSweep {
        HostSweep {
            rules: rules.clone(),
            probation: Probation::new(probation_cap),
            sweeps: Tier::new(cap),
            confirmed: 0,
            update_us: (update_interval_s * 1e6) as i64,
            last_sweep_us: i64::MIN,
        }
    }

    fn packet(&mut self, p: &PacketSummary, sensor: u16, cx: &Ctx) {
        let Some(ip) = &p.ip else { return };
        match &p.l4 {
            L4::Icmp(i) if p.owner_is_src && i.quoted.is_none() => {
                let method = match (i.v6, i.icmp_type) {
                    (false, 8) | (true, 128) => M_ECHO,
                    (false, 13) => M_TS,
                    (false, 17) => M_MASK,
                    _ => return,
                };
                if unicast(ip.dst) {
                    self.ping(ip.src, ip.dst, method, p.ts_us, sensor, cx);
                }
            }
            L4::Icmp(i) if p.owner_is_dst && i.quoted.is_none() => {
                if matches!((i.v6, i.icmp_type), (false, 0) | (true, 129) | (false, 14) | (false, 18))
                    && let Some(s) = self.sweeps.get_mut(&AddrKey(ip.dst))
                {
                    s.answered(ip.src);
                }
            }
            // The other kinds nmap -sn sends, from a source already pinging.
            L4::Tcp(t) if p.owner_is_src && self.confirmed > 0 => {
                let method = if t.is_connection_attempt() {
                    M_SYN
                } else if t.flags & 0x3f == tcpflag::ACK && p.payload_len == 0 {
                    M_ACK
                } else {
                    return;
                };
                if let Some(s) = self.sweeps.get_mut(&AddrKey(ip.src)) {
                    s.methods |= method;
                }
            }
            L4::Tcp(t) if p.owner_is_dst && (t.is_syn_ack() || t.has(tcpflag::RST)) && self.confirmed > 0 => {
                if let Some(s) = self.sweeps.get_mut(&AddrKey(ip.dst))
                    && s.methods & (M_SYN | M_ACK) != 0
                {
                    s.answered(ip.src);
                }
            }
            L4::Udp(_) if p.owner_is_src && self.confirmed > 0 => {
                if let Some(s) = self.sweeps.get_mut(&AddrKey(ip.src)) {
                    s.methods |= M_UDP;
                }
            }
            _ => {}
        }
    }

    fn ping(&mut self, src: IpAddr, dst: IpAddr, method: u8, ts: i64, sensor: u16, cx: &Ctx) {
        let key = AddrKey(src);
        let window_us = (self.rules.window_s * 1e6) as i64;
        if let Some(s) = self.sweeps.get_mut(&key) {
            s.sensor = sensor;
            s.ping(dst, method, ts, window_us);
            self.judge(&key, cx, ts);
            return;
        }
        match self.probation.get_mut(&key) {
            Some(f) if f.dst == dst => f.ts = f.ts.max(ts),
            Some(_) => {
                let Some(f) = self.probation.remove(&key) else { return };
                let mut s = Sweep::new(&f);
                s.ping(dst, method, ts, window_us);
                let st = cx.shared.stats.table(Table::HostSweep);
                if !self.sweeps.insert(key, s).count(st, |old| old.host_count >= 2) {
                    return;
                }
                self.judge(&key, cx, ts);
            }
            None => {
                let n = self.probation.insert(key, First { dst, ts, method, sensor });
                if n > 0 {
                    cx.shared.stats.table(Table::HostSweep).evicted.fetch_add(n, Relaxed);
                }
            }
        }
    }

    fn judge(&mut self, key: &AddrKey, cx: &Ctx, now: i64) {
        let (min, update_us) = (u64::from(self.rules.min_hosts), self.update_us);
        let Some(s) = self.sweeps.get_mut(key) else { return };
        if !s.confirmed && s.window_count >= min {
            s.confirmed = true;
            self.confirmed += 1;
            s.last_emit_us = now;
            cx.emit(render(key.0, s, "new", None, cx, now));
        } else if s.confirmed && now.saturating_sub(s.last_emit_us) >= update_us {
            s.last_emit_us = now;
            cx.emit(render(key.0, s, "update", None, cx, now));
        }
    }

    fn tick(&mut self, cx: &Ctx) {
        let now = cx.now;
        let idle = (self.rules.idle_s * 1e6) as i64;
        let window = (self.rules.window_s * 1e6) as i64;
        if now.saturating_sub(self.last_sweep_us) < sweep_every(idle.min(window)) {
            return;
        }
        self.last_sweep_us = now;
        let gone = self.probation.retain(|_, f| now.saturating_sub(f.ts) <= window);
        let confirmed = &mut self.confirmed;
        let dropped = self.sweeps.retain(|key, s| {
            if now.saturating_sub(s.last_us) <= idle {
                return true;
            }
            if s.confirmed {
                *confirmed = confirmed.saturating_sub(1);
                cx.emit(render(key.0, s, "final", Some(EndReason::Expired), cx, now));
            }
            false
        });
        cx.shared.stats.table(Table::HostSweep).expired.fetch_add(gone + dropped, Relaxed);
    }

    fn end(&mut self, reason: EndReason, cx: &Ctx) {
        for (key, s) in self.sweeps.iter_mut() {
            if s.confirmed {
                cx.emit(render(key.0, s, "final", Some(reason), cx, cx.now));
            }
        }
        self.sweeps.clear();
        self.probation.clear();
        self.confirmed = 0;
    }
}

fn render(src: IpAddr, s: &Sweep, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let id = detection_id(KIND, &[&ip_bytes(&src), &s.first_us.to_be_bytes()]);
    let methods: Vec<&str> =
        METHODS.iter().enumerate().filter(|(i, _)| s.methods & (1 << i) != 0).map(|(_, m)| *m).collect();
    let mut methods = methods;
    if s.methods & M_UDP != 0 {
        methods.push("udp");
    }
    // The method that found the hosts: the first ICMP kind used.
    let method = if s.methods & M_ECHO != 0 {
        "icmp_echo"
    } else if s.methods & M_TS != 0 {
        "icmp_timestamp"
    } else {
        "icmp_mask"
    };
    let targets = s.host_count.max(1);
    let alive: Vec<String> = s.alive.iter().map(|a| a.to_string()).collect();
    let direction = cx.direction(src, s.first_dst);
    let details = json!({
        "id": id,
        "status": status,
        "end_reason": end.map(EndReason::name),
        "method": method,
        "methods": methods,
        "targets": targets,
        "pings": s.pings,
        "alive": alive,
        "alive_count": s.alive_count,
        "direction": direction,
        "first_seen": rfc3339_us(s.first_us),
        "last_seen": rfc3339_us(s.last_us),
        "duration_s": secs(s.last_us - s.first_us),
    });
    let with = if methods.len() > 1 { format!(" (with {})", methods[1..].join(", ")) } else { String::new() };
    let out = if direction == Some("outbound") { " (outbound: a home host sweeping out)" } else { "" };
    let summary = format!(
        "{src} swept {targets} addresses with {method}{with}{out}, {} pings: finding which hosts are alive before a scan; {} answered{}",
        s.pings,
        s.alive_count,
        if alive.is_empty() {
            String::new()
        } else {
            format!(
                " ({}{})",
                alive.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
                if s.alive_count > 8 { ", ..." } else { "" }
            )
        }
    );
    let (proto, ports) = if s.first_dst.is_ipv6() { (58, (128, 0)) } else { (1, (8, 0)) };
    let flow = Flow { src, dst: s.first_dst, proto, ports: Some(ports) };
    EventBuilder::new(KIND, now, cx.sensor(s.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(src, s.first_dst), None, Fact::HostSweep))
        .summary(summary)
        .details(KIND, details)
}

impl Detector for HostSweep {
    fn table(&self) -> Table {
        Table::HostSweep
    }
    fn interest(&self) -> u16 {
        if self.rules.enabled {
            class::ICMP | class::TCP_ATTEMPT | class::TCP_SYN_ACK | class::TCP_RST | class::TCP | class::UDP
        } else {
            0
        }
    }
    fn len(&self) -> usize {
        self.probation.len() + self.sweeps.len()
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, _sources: &Sources, cx: &Ctx) {
        self.packet(p, sensor, cx);
    }
    fn on_tick(&mut self, _sources: &Sources, cx: &Ctx) {
        self.tick(cx);
    }
    fn flush(&mut self, reason: EndReason, _sources: &Sources, cx: &Ctx) {
        self.end(reason, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::{IcmpInfo, testutil};
    use crate::detect::testrig::{Rig, s};

    fn rig() -> Rig<HostSweep> {
        Rig::with(
            |_| {},
            |sh, r| {
                HostSweep::new(
                    &r.host_sweep,
                    sh.per_worker(r.host_sweep.max_tracked),
                    sh.per_worker(r.host_sweep.max_probation),
                    60.0,
                )
            },
        )
    }

    fn icmp(t: f64, src: &str, dst: &str, icmp_type: u8) -> PacketSummary {
        let mut p = testutil::tcp(s(t), src, dst, (0, 0), 0, 0, 0);
        if let Some(ip) = &mut p.ip {
            ip.proto = 1;
        }
        p.l4 = L4::Icmp(IcmpInfo { v6: false, icmp_type, code: 0, echo: Some((1, 1)), quoted: None });
        p
    }

    #[test]
    fn pings_to_many_hosts_are_a_sweep_with_the_hosts_that_answered() {
        let mut r = rig();
        for h in 1..=7u8 {
            r.feed_owned(icmp(f64::from(h) * 0.01, "203.0.113.34", &format!("192.0.2.{h}"), 8));
        }
        assert!(r.events().is_empty(), "7 hosts: below min_hosts");
        r.feed_owned(icmp(0.1, "203.0.113.34", "192.0.2.8", 13));
        r.feed_owned(icmp(0.11, "192.0.2.3", "203.0.113.34", 0));
        r.feed_owned(icmp(0.12, "192.0.2.3", "203.0.113.34", 0));
        let evs = r.end();
        let d = &evs.last().unwrap()["host_sweep"];
        assert_eq!(evs.len(), 2, "new and final");
        assert_eq!((d["targets"].as_u64(), d["alive_count"].as_u64()), (Some(8), Some(1)));
        assert_eq!(d["alive"], json!(["192.0.2.3"]));
        assert_eq!(d["methods"], json!(["icmp_echo", "icmp_timestamp"]));
    }

    #[test]
    fn one_host_pinged_often_or_broadcasts_are_not_a_sweep() {
        let mut r = rig();
        for i in 0..50u8 {
            // tracert: one target, many echoes.
            r.feed_owned(icmp(f64::from(i) * 0.1, "203.0.113.34", "192.0.2.10", 8));
            // smurf's broadcasts are its own detector's.
            r.feed_owned(icmp(f64::from(i) * 0.1, "198.51.100.5", "192.0.2.255", 8));
            r.feed_owned(icmp(f64::from(i) * 0.1, "198.51.100.6", "224.0.0.1", 8));
        }
        assert!(r.end().is_empty());
    }
}

#[cfg(test)]
mod rules_tests {
    use super::HostSweepRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges() {
        let r = HostSweepRules::parse("x", "[host_sweep]\nmin_hosts = 20\n").unwrap();
        assert_eq!(r.min_hosts, 20);
        let e = HostSweepRules::parse("rules/picket.toml", "[host_sweep]\nmin_hosts = 1\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("min_hosts"), "{e}");
    }
}
