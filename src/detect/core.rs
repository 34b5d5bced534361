//! The contract between the worker and its detectors: the `Detector`
//! trait, the packet classes that route packets to them, what a worker
//! shares with them (`Shared`, `Ctx`), and the detection lifecycle's end
//! reasons.
//!
//! A detection is emitted with `status: "new"` when first confirmed, again
//! with `"update"` as it grows (at most once per `general.update_interval_s`
//! of packet time), and exactly once with `"final"` when it ends: its state
//! expired, its table entry was evicted, or the input ended / picket shut
//! down. A detection first confirmed at the end of input gets only `final`.

use super::general::General;
use super::inventory::table::Inventory;
use super::severity::{Fact, LethalityRules, Scorer};
use super::sources::Sources;
use crate::assets::AssetTable;
use crate::decode::summary::PacketSummary;
use crate::homenet::HomeNet;
use crate::output::event::{EventLine, Judged};
use crate::ports::PortTable;
use crate::stats::{Stats, Table};
use crossbeam_channel::Sender;
use std::net::IpAddr;
use std::sync::Arc;

/// One analyzer inside a worker. The worker calls `on_packet` for every
/// summary it owns, `on_tick` once per second of packet time, and `flush`
/// once at the end. `sources` is the worker's per-source table, already
/// updated with the current packet.
pub trait Detector: Send {
    /// The detector's state table, for the stats.
    fn table(&self) -> Table;
    /// The `class` bits of the packets `on_packet` acts on; the worker
    /// skips the call for the others (most packets are segments of
    /// established connections that no detector looks at).
    fn interest(&self) -> u16 {
        class::ALL
    }
    /// Keys currently held.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, sources: &Sources, cx: &Ctx);
    fn on_tick(&mut self, sources: &Sources, cx: &Ctx);
    /// Ends every open detection (end of input or shutdown).
    fn flush(&mut self, reason: EndReason, sources: &Sources, cx: &Ctx);
}

/// Packet classes for `Detector::interest`: bits that may be set together.
pub mod class {
    use crate::decode::summary::{L4, PacketSummary, tcpflag};

    /// A TCP connection attempt (`TcpInfo::is_connection_attempt`).
    pub const TCP_ATTEMPT: u16 = 1 << 0;
    /// A TCP SYN+ACK.
    pub const TCP_SYN_ACK: u16 = 1 << 1;
    /// A TCP segment with RST.
    pub const TCP_RST: u16 = 1 << 2;
    /// A TCP segment without ACK (SYN, FIN, NULL, Xmas... probes).
    pub const TCP_NO_ACK: u16 = 1 << 3;
    /// Any TCP segment.
    pub const TCP: u16 = 1 << 4;
    pub const UDP: u16 = 1 << 5;
    pub const ICMP: u16 = 1 << 6;
    /// No transport header decoded (not IP, other protocols, fragments).
    pub const OTHER: u16 = 1 << 7;
    /// A copy the dispatcher made for the flood detector alone (the
    /// packet's victim lives in another worker than its owner). Only this
    /// bit is set on such a copy, and `ALL` leaves it out, so no other
    /// detector ever sees one.
    pub const VICTIM_COPY: u16 = 1 << 15;
    pub const ALL: u16 = !VICTIM_COPY;

    /// The class bits of one packet.
    #[inline]
    pub fn of(p: &PacketSummary) -> u16 {
        if p.victim & crate::decode::summary::victim::COPY != 0 {
            return VICTIM_COPY;
        }
        match &p.l4 {
            L4::Tcp(t) => {
                let mut c = TCP;
                if t.is_connection_attempt() {
                    c |= TCP_ATTEMPT;
                }
                if t.is_syn_ack() {
                    c |= TCP_SYN_ACK;
                }
                if t.has(tcpflag::RST) {
                    c |= TCP_RST;
                }
                if !t.has(tcpflag::ACK) {
                    c |= TCP_NO_ACK;
                }
                c
            }
            L4::Udp(_) => UDP,
            L4::Icmp(_) => ICMP,
            _ => OTHER,
        }
    }
}

/// Read-only facts every worker shares.
pub struct Shared {
    /// `[general]` of the rules.
    pub general: General,
    /// The port knowledge base (`ports.toml`).
    pub ports: PortTable,
    pub home: HomeNet,
    pub community_id_seed: u16,
    /// Sensor names (interface or file names), indexed by `Batch::sensor`.
    pub sensors: Vec<String>,
    pub stats: Arc<Stats>,
    /// Analyzer threads: table caps in the rules are split between them.
    pub workers: usize,
    /// The input is firewall-log records (`picket fwlog`), not packets:
    /// summaries count records.
    pub from_log: bool,
    /// `[lethality]`: severity's lethality by what a detection found.
    pub lethality: LethalityRules,
    /// `assets.toml`: severity's target terms.
    pub assets: AssetTable,
    /// What the home net offers, shared by every worker (`detect::inventory`).
    pub inventory: Inventory,
    /// Live `--inventory-interval`: seconds of packet time between
    /// `service_inventory` events (replay writes one at the end).
    pub inventory_every_s: Option<u32>,
}

impl Shared {
    /// One worker's share of a run-wide table cap.
    pub fn per_worker(&self, cap: usize) -> usize {
        cap.div_ceil(self.workers.max(1)).max(1)
    }
}

/// What a detector may use while handling one packet or tick.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub out: &'a Sender<EventLine>,
    /// Current packet time (monotonic per worker).
    pub now: i64,
    /// Packets toward the home net read so far (all packets without a
    /// home net), as of the last tick: the denominator of traffic shares.
    pub inbound: u64,
    /// Packet time before which every worker's packets count for the
    /// service inventory's answers (`Inventory::target_service`): two
    /// seconds before the last tick this worker took (so lookups rarely
    /// wait for slower workers), `i64::MAX` once the input ended.
    pub known_through: i64,
}

impl Ctx<'_> {
    /// Sends an event to the output thread. A closed output (broken pipe,
    /// shutdown) is not the detector's problem: the line is dropped.
    pub fn emit(&self, ev: EventLine) {
        let _ = self.out.send(ev);
    }

    pub fn sensor(&self, idx: u16) -> &str {
        self.shared.sensors.get(usize::from(idx)).map(String::as_str).unwrap_or("?")
    }

    /// `inbound`, `outbound`, `internal`, `external`, or None without a home net.
    pub fn direction(&self, src: IpAddr, dst: IpAddr) -> Option<&'static str> {
        let h = &self.shared.home;
        if h.is_empty() {
            return None;
        }
        Some(match (h.contains(src), h.contains(dst)) {
            (false, true) => "inbound",
            (true, false) => "outbound",
            (true, true) => "internal",
            (false, false) => "external",
        })
    }

    /// A port's service name from the port table, if known.
    pub fn service(&self, proto: u8, port: u16) -> Option<&str> {
        self.shared.ports.lookup(proto, port).map(|i| i.name.as_str())
    }

    fn scorer(&self) -> Scorer<'_> {
        let sh = self.shared;
        Scorer { lethality: &sh.lethality, assets: &sh.assets, home: &sh.home, inventory: &sh.inventory }
    }

    /// The address an event between `src` and `dst` is scored on
    /// (`Scorer::asset_of`: the home side, the target first).
    pub fn asset_of(&self, src: IpAddr, dst: IpAddr) -> IpAddr {
        self.scorer().asset_of(src, dst)
    }

    /// SIGNATURES.md section 9: scores an event about `asset` (and its one
    /// `service`, protocol and port, if any) for what the detection found;
    /// put it on the event with `EventBuilder::judged`.
    pub fn judge(&self, asset: IpAddr, service: Option<(u8, u16)>, fact: Fact) -> Judged {
        self.scorer().judge(asset, service, fact, self.known_through)
    }
}

/// Why a detection's final event was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// No activity for the detector's window.
    Expired,
    /// The replay reached the end of its input.
    EndOfInput,
    /// picket was asked to stop (signal).
    Shutdown,
}

impl EndReason {
    /// The reason a run planned (`EndOfInput` for replay), unless a signal
    /// cut the input short: then it is `Shutdown`.
    pub fn unless_interrupted(self, interrupted: bool) -> EndReason {
        if interrupted && self == EndReason::EndOfInput { EndReason::Shutdown } else { self }
    }

    pub fn name(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Shutdown => "shutdown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_classes_separate_what_detectors_want_from_bulk_segments() {
        use crate::decode::summary::{UdpInfo, tcpflag::*, testutil};
        let seg = |flags| class::of(&testutil::tcp(0, "198.51.100.7", "192.0.2.10", (40000, 80), flags, 1, 1));
        assert_eq!(seg(SYN), class::TCP | class::TCP_ATTEMPT | class::TCP_NO_ACK);
        assert_eq!(seg(SYN | ACK), class::TCP | class::TCP_SYN_ACK);
        assert_eq!(seg(RST | ACK), class::TCP | class::TCP_RST);
        assert_eq!(seg(FIN | PSH | URG), class::TCP | class::TCP_NO_ACK, "Xmas");
        assert_eq!(seg(SYN | FIN), class::TCP | class::TCP_NO_ACK, "a crafted SYN+FIN is not an attempt");
        // Data of an established connection: no detector's class but TCP.
        assert_eq!(seg(ACK | PSH), class::TCP);
        let mut u = PacketSummary::new(0, 60, 60);
        assert_eq!(class::of(&u), class::OTHER);
        u.l4 = crate::decode::summary::L4::Udp(UdpInfo { sport: 1, dport: 2 });
        assert_eq!(class::of(&u), class::UDP);
    }
}
