//! The compact records that cross from the workers' taps to the one
//! `decoy_scan` aggregator thread, and the channel between them (see
//! `decoy/mod.rs` for why there is an aggregator).

use crate::detect::agg;
use crate::detect::keys::Distinct1024;
use crate::detect::ttl::Memory;
use crate::stats::Stats;
use crossbeam_channel::Receiver;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

/// Ports kept exactly per (source, destination); more only in the sketch.
pub const PORTS: usize = 32;
/// (time, IP ID) samples kept per (source, destination), for IP ID progression.
pub const IPIDS: usize = 8;
/// Messages in flight to the aggregator (slots of about 620 bytes).
pub const QUEUE: usize = 1024;

/// Probe types (bits of `Record::kinds`), SIGNATURES.md sections 2 and 6.
pub mod kind {
    pub const SYN: u8 = 1;
    pub const FIN: u8 = 2;
    pub const NULL: u8 = 4;
    pub const XMAS: u8 = 8;
    pub const ACK: u8 = 16;
    pub const UDP: u8 = 32;
    /// Other flag combinations without ACK (SYN+FIN and the like: nmap -O).
    pub const OTHER: u8 = 64;
    pub const NAMES: [(u8, &str); 7] =
        [(SYN, "syn"), (FIN, "fin"), (NULL, "null"), (XMAS, "xmas"), (ACK, "ack"), (UDP, "udp"), (OTHER, "other")];
}

/// A value that may stay the same across a source's probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Same<T> {
    pub first: Option<T>,
    pub varied: bool,
}

impl<T: PartialEq + Copy> Same<T> {
    #[inline]
    pub fn see(&mut self, v: T) {
        match self.first {
            None => self.first = Some(v),
            Some(f) if f != v => self.varied = true,
            Some(_) => {}
        }
    }

    /// The value, if every probe carried the same one.
    pub fn value(&self) -> Option<T> {
        if self.varied { None } else { self.first }
    }
}

/// One probed port of a (source, destination) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortSlot {
    pub port: u16,
    /// IP ID of the first probe to this port (low 16 bits).
    pub ip_id: u16,
    pub udp: bool,
    /// The source held a real conversation on this port (data after the
    /// handshake, or a UDP answer): a client, not a probe.
    pub completed: bool,
    /// What the destination answered (`answer::*`), the last answer seen.
    pub answer: u8,
    /// TTL of the first probe to this port.
    pub ttl: u8,
}

/// What a probed port answered (`PortSlot::answer`).
pub mod answer {
    /// Nothing (yet): filtered, or the answer is still to come.
    pub const NONE: u8 = 0;
    /// SYN-ACK, or a UDP reply: open.
    pub const OPEN: u8 = 1;
    /// RST: closed.
    pub const CLOSED: u8 = 2;
    /// An ICMP error quoting the probe: filtered (or closed, for UDP).
    pub const UNREACHABLE: u8 = 3;
}

/// A snapshot of one (source, destination) probe record, with the source's
/// long memory. Fixed size, no heap data.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Packet time of the tick the snapshot was taken at (`i64::MAX` at the end).
    pub tag: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sensor: u16,
    pub first_us: i64,
    pub last_us: i64,
    pub probes: u32,
    /// `kind::*` bits.
    pub kinds: u8,
    pub ports: [PortSlot; PORTS],
    pub nports: u8,
    /// More distinct ports than `PORTS` were probed.
    pub ports_more: bool,
    /// Every probed (protocol, port), for overlap.
    pub sketch: Distinct1024,
    pub ttl_min: u8,
    pub ttl_max: u8,
    pub first_sport: u16,
    pub sport: Same<u16>,
    pub isn: Same<u32>,
    pub window: Same<u16>,
    /// TCP option layout (see `TcpOpts::layout`).
    pub options: Same<u32>,
    pub ipids: [(i64, u16); IPIDS],
    pub nipids: u8,
    /// The source's long memory when the snapshot was taken.
    pub memory: Option<Memory>,
}

impl Record {
    pub fn new(src: IpAddr, dst: IpAddr, sensor: u16, ts: i64, sport: u16) -> Record {
        Record {
            tag: ts,
            src,
            dst,
            sensor,
            first_us: ts,
            last_us: ts,
            probes: 0,
            kinds: 0,
            ports: [PortSlot::default(); PORTS],
            nports: 0,
            ports_more: false,
            sketch: Distinct1024::default(),
            ttl_min: u8::MAX,
            ttl_max: 0,
            first_sport: sport,
            sport: Same::default(),
            isn: Same::default(),
            window: Same::default(),
            options: Same::default(),
            ipids: [(0, 0); IPIDS],
            nipids: 0,
            memory: None,
        }
    }

    /// The exactly known ports.
    pub fn port_slots(&self) -> &[PortSlot] {
        self.ports.get(..usize::from(self.nports)).unwrap_or(&[])
    }

    pub fn ipid_samples(&self) -> &[(i64, u16)] {
        self.ipids.get(..usize::from(self.nipids)).unwrap_or(&[])
    }

    /// Distinct ports probed: exact up to `PORTS`, then the sketch's estimate.
    pub fn distinct_ports(&self) -> u64 {
        if self.ports_more { self.sketch.estimate().max(PORTS as u64 + 1) } else { u64::from(self.nports) }
    }

    /// The TTL range of the probes. A record that also holds the source's
    /// own real connections (ports with conversations) takes it from the
    /// other ports' first probes, so the innocent whose address a scanner
    /// borrowed shows the scan's TTL, not a mix with its own.
    pub fn scan_ttl(&self) -> (u8, u8) {
        let slots = self.port_slots();
        if !slots.iter().any(|s| s.completed) {
            return (self.ttl_min, self.ttl_max);
        }
        let probes = slots.iter().filter(|s| !s.completed && s.ttl > 0);
        let (lo, hi) = probes.fold((u8::MAX, 0u8), |(lo, hi), s| (lo.min(s.ttl), hi.max(s.ttl)));
        if lo > hi { (self.ttl_min, self.ttl_max) } else { (lo, hi) }
    }

    /// Exactly known ports on which the source held a real conversation.
    pub fn completed_ports(&self) -> u64 {
        self.port_slots().iter().filter(|s| s.completed).count() as u64
    }
}

/// What a worker tells the aggregator. Records cross by value, so the
/// hand-off never allocates; the price is a bigger channel slot.
pub type AggMsg = agg::Msg<Record>;

/// A worker's end of the aggregator channel.
pub type Link = agg::Link<Record>;

fn drops(s: &Stats) -> &AtomicU64 {
    &s.decoy_drops
}

/// The channel from `workers` workers to the aggregator.
pub fn channel(workers: usize, lossy: bool) -> (Vec<Link>, Receiver<AggMsg>) {
    agg::channel(workers, QUEUE, lossy, drops)
}
