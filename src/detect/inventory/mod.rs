//! `service_inventory`: what the home net really offers (Zeek's
//! `known_services`), learned from answers on the wire, so every detection
//! about a home target can say whether it hit a real service
//! (`target_service`) and a probe for a service the host does not run
//! scores a lower lethality (`detect::severity`).
//!
//! - `table.rs`: the shared table, its bounds and the deterministic lookup.
//! - here: the per-worker `Learner` (a detector that only writes the
//!   table: SYN-ACKs, RSTs and UDP replies from home hosts) and the
//!   `service_inventory` event, written at the end of a replay and every
//!   `--inventory-interval` seconds of packet time in live mode.
//!
//! A TCP service on an ephemeral port (32768 and up) that `ports.toml` does
//! not name is not learned: those are FTP passive data channels and
//! dynamic RPC ports, open for one transfer (`brute_force.pcap`'s FTP
//! server answers on three of them).
//!
//! A UDP datagram is taken as a reply when it leaves a home host from a
//! low (< 1024) or known (`ports.toml`) port toward a higher, ephemeral
//! (>= 1024) port: a server's answer. UDP services on high unknown ports are
//! missed; a home client sending from a low port to a high one is the rare
//! false entry.

pub mod table;

use super::core::{Ctx, Detector, EndReason, class};
use super::sources::Sources;
use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::output::event::{EventBuilder, EventLine};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::{Value, json};
pub use table::{Inventory, InventoryRules, TargetService};

/// The event's type.
pub const KIND: &str = "service_inventory";
/// The first port of the usual ephemeral ranges (Linux 32768-60999,
/// Windows 49152-65535).
const EPHEMERAL: u16 = 32768;
/// Packet time between expiry sweeps of the shared table.
const EXPIRE_EVERY_US: i64 = 60_000_000;

/// One worker's writer of the shared table. Worker 0 also expires it and,
/// live, writes the periodic event.
pub struct Learner {
    worker: usize,
    next_expire: i64,
    /// Live `--inventory-interval`, in microseconds.
    report_every_us: Option<i64>,
    next_report: i64,
}

impl Learner {
    pub fn new(worker: usize, report_every_s: Option<u32>) -> Learner {
        Learner {
            worker,
            next_expire: i64::MIN,
            report_every_us: report_every_s.map(|s| i64::from(s) * 1_000_000),
            next_report: i64::MIN,
        }
    }
}

/// A UDP server's answer: from a low or known port to an ephemeral one.
#[inline]
fn udp_reply(sport: u16, dport: u16, cx: &Ctx) -> bool {
    sport != 0 && dport >= 1024 && sport < dport && (sport < 1024 || cx.service(17, sport).is_some())
}

impl Detector for Learner {
    fn table(&self) -> Table {
        Table::Services
    }
    fn interest(&self) -> u16 {
        class::TCP_SYN_ACK | class::TCP_RST | class::UDP
    }
    /// The shared table counts its own entries (`Inventory::len`).
    fn len(&self) -> usize {
        0
    }
    fn on_packet(&mut self, p: &PacketSummary, _sensor: u16, _sources: &Sources, cx: &Ctx) {
        let inv = &cx.shared.inventory;
        let Some(ip) = &p.ip else { return };
        if !inv.enabled || cx.shared.from_log || !inv.is_home(ip.src) {
            return;
        }
        // The packet's own time, not the worker's clock: a replay of files
        // out of date order moves each worker's clock differently.
        let ts = p.ts_us;
        match &p.l4 {
            L4::Tcp(t) if t.is_syn_ack() => {
                if t.sport < EPHEMERAL || cx.service(6, t.sport).is_some() {
                    inv.learn(ip.src, 6, t.sport, ip.dst, ts);
                } else {
                    inv.answered(ip.src, ts);
                }
            }
            L4::Tcp(t) if t.has(tcpflag::RST) && !p.owner_is_src => inv.answered(ip.src, ts),
            L4::Udp(u) if udp_reply(u.sport, u.dport, cx) => inv.learn(ip.src, 17, u.sport, ip.dst, ts),
            _ => {}
        }
    }
    fn on_tick(&mut self, _sources: &Sources, cx: &Ctx) {
        let inv = &cx.shared.inventory;
        if self.worker != 0 || !inv.enabled {
            return;
        }
        if !inv.is_replay() && cx.now >= self.next_expire {
            if self.next_expire != i64::MIN {
                inv.expire(inv.low_watermark().min(cx.now));
            }
            self.next_expire = cx.now.saturating_add(EXPIRE_EVERY_US);
        }
        if let Some(every) = self.report_every_us {
            if self.next_report == i64::MIN {
                self.next_report = cx.now.saturating_add(every);
            } else if cx.now >= self.next_report {
                self.next_report = cx.now.saturating_add(every);
                let label = crate::output::event::run_label(&cx.shared.sensors);
                cx.emit(render(inv, cx.now, &label, "interval", cx));
            }
        }
    }
    fn flush(&mut self, _reason: EndReason, _sources: &Sources, _cx: &Ctx) {}
}

/// The `service_inventory` event as of packet time `now`: the hosts that
/// answered (by address, at most `report_max_hosts`) and their services.
pub fn render(inv: &Inventory, now: i64, sensor: &str, reason: &str, cx: &Ctx) -> EventLine {
    let (hosts, total) = inv.snapshot(inv.report_max_hosts);
    let mut services = 0usize;
    let list: Vec<Value> = hosts
        .iter()
        .map(|(a, h)| {
            services += h.services.len();
            let svcs: Vec<Value> = h
                .services
                .iter()
                .map(|s| {
                    json!({
                        "proto": if s.proto == 17 { "udp" } else { "tcp" },
                        "port": s.port,
                        "service": cx.service(s.proto, s.port),
                        "first_seen": rfc3339_us(s.first_us),
                        "last_seen": rfc3339_us(s.last_us),
                        "clients": s.clients.estimate(),
                    })
                })
                .collect();
            json!({
                "host": a.to_string(),
                "first_seen": rfc3339_us(h.first_us),
                "last_seen": rfc3339_us(h.last_us),
                "services": svcs,
                "ports_over_quota": h.over_quota,
            })
        })
        .collect();
    let summary = format!(
        "{total} home host(s) seen answering on {services}{} service(s) (SYN-ACKs and UDP replies)",
        if total > hosts.len() { "+" } else { "" }
    );
    EventBuilder::new(KIND, now, sensor).summary(summary).details(
        KIND,
        json!({
            "reason": reason,
            "hosts_total": total,
            "hosts_listed": hosts.len(),
            "truncated": total > hosts.len(),
            "hosts": list,
        }),
    )
}
