//! The compact records that cross from the workers' taps to the one
//! `worm_phase` aggregator thread, and the channel between them (see
//! `worm/mod.rs` for why there is an aggregator).

use crate::detect::agg;
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
}

impl Attempt {
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

/// The channel from `workers` workers to the aggregator.
pub fn channel(workers: usize, lossy: bool) -> (Vec<Link>, Receiver<WormMsg>) {
    agg::channel(workers, QUEUE, lossy, drops)
}

/// Ports whose answered connections also go to the aggregator: they tell
/// worms apart (Blaster's shell on 4444, Sasser's FTP on 5554 and shell
/// on 9996).
pub const MARK_PORTS: [u16; 3] = [4444, 5554, 9996];
