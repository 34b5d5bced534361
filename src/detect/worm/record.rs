//! The compact records that cross from the workers' taps to the one
//! `worm_phase` aggregator thread, and the channel between them (see
//! `worm/mod.rs` for why there is an aggregator).

use crate::decode::summary::{L4, PacketSummary};
use crate::detect::agg;
use crate::detect::keys::unicast;
use crate::stats::Stats;
use crossbeam_channel::Receiver;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

/// Attempts per chunk.
pub const CHUNK: usize = 32;
/// Chunks in flight to the aggregator (about 2.5 KB each).
pub const QUEUE: usize = 256;

/// One settled attempt: a host's packets toward one (target, protocol,
/// port) that got no answer within the wait (or, with `answered`, that
/// did: only for the ports that name a worm, see `ladder::MARK_PORTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Packet time of the tick it was settled at (`i64::MAX` at the end).
    pub tag: i64,
    pub host: IpAddr,
    pub target: IpAddr,
    pub first_us: i64,
    pub last_us: i64,
    /// Packets the host sent (retransmissions included).
    pub packets: u32,
    pub dport: u16,
    /// Source port of the first packet.
    pub sport: u16,
    /// Payload bytes of the first packet.
    pub payload: u16,
    pub sensor: u16,
    /// 6 or 17.
    pub proto: u8,
    pub answered: bool,
    /// A firewall log's denial read while capturing live (`fwlog::live`),
    /// not an attempt seen on the wire: the aggregator counts it unless
    /// the wire or the log already gave it the same attempt.
    pub logged: bool,
}

impl Attempt {
    /// The unanswered attempt a firewall log's denial stands for, made
    /// into a packet by `fwlog::feed::to_summary` (as `picket fwlog` feeds
    /// it to the taps): a TCP connection attempt or a UDP datagram to a
    /// unicast address, first and last seen at `at` (sensor time),
    /// tagged `tag`. Anything else is no attempt.
    pub fn logged(p: &PacketSummary, at: i64, tag: i64, sensor: u16) -> Option<Attempt> {
        let ip = p.ip.as_ref()?;
        let (proto, sport, dport) = match &p.l4 {
            L4::Tcp(t) if t.is_connection_attempt() => (6, t.sport, t.dport),
            L4::Udp(u) => (17, u.sport, u.dport),
            _ => return None,
        };
        if !unicast(ip.dst) {
            return None;
        }
        Some(Attempt {
            tag,
            host: ip.src,
            target: ip.dst,
            first_us: at,
            last_us: at,
            packets: 1,
            dport,
            sport,
            payload: u16::try_from(p.payload_len).unwrap_or(u16::MAX),
            sensor,
            proto,
            answered: false,
            logged: true,
        })
    }

    /// Ordering key of the aggregator (see the module doc).
    pub fn order(&self) -> (i64, i64, IpAddr, IpAddr, u8, u16) {
        (self.tag, self.first_us, self.host, self.target, self.proto, self.dport)
    }
}

/// A fixed-size run of attempts.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    pub items: [Attempt; CHUNK],
    pub len: u8,
}

impl Chunk {
    /// An empty chunk.
    pub fn empty() -> Chunk {
        let none = Attempt {
            tag: 0,
            host: IpAddr::from([0, 0, 0, 0]),
            target: IpAddr::from([0, 0, 0, 0]),
            first_us: 0,
            last_us: 0,
            packets: 0,
            dport: 0,
            sport: 0,
            payload: 0,
            sensor: 0,
            proto: 0,
            answered: false,
            logged: false,
        };
        Chunk { items: [none; CHUNK], len: 0 }
    }

    /// Adds `a`; true once the chunk is full.
    pub fn push(&mut self, a: Attempt) -> bool {
        if let Some(slot) = self.items.get_mut(usize::from(self.len)) {
            *slot = a;
            self.len += 1;
        }
        usize::from(self.len) >= CHUNK
    }

    pub fn attempts(&self) -> &[Attempt] {
        self.items.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// What a worker tells the aggregator.
pub type WormMsg = agg::Msg<Chunk>;

/// A worker's end of the aggregator channel.
pub type Link = agg::Link<Chunk>;

fn drops(s: &Stats) -> &AtomicU64 {
    &s.worm_drops
}

/// The channel from `workers` senders to the aggregator: the workers, and
/// in `picket live --fw-log` the log thread as the last one.
pub fn channel(workers: usize, lossy: bool) -> (Vec<Link>, Receiver<WormMsg>) {
    agg::channel(workers, QUEUE, lossy, drops)
}

/// Ports whose answered connections also go to the aggregator: they tell
/// worms apart (Blaster's shell on 4444, Sasser's FTP on 5554 and shell
/// on 9996).
pub const MARK_PORTS: [u16; 3] = [4444, 5554, 9996];
