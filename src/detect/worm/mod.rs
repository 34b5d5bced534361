//! `worm_phase` and `worm_summary`: worm early warning in phases per host
//! and sentry (SIGNATURES.md section 8). This module owns the compact
//! records that cross from the workers to the one worm aggregator thread,
//! and the channel between them.
//!
//! Why an aggregator: an inside host sweeping out sends its attempts to
//! many outside addresses, and the dispatcher owns a UDP exchange by its
//! outside address, so those attempts land in every worker; the sentries
//! count per host, so one owner must see them all. Like `detect/decoy/`:
//!
//! - `tap.rs` (in every worker): the attempts waiting for their answer,
//!   keyed by (host, target, protocol, port). An attempt that stays
//!   unanswered for `answer_wait_s` (no SYN-ACK, no UDP reply) is settled
//!   and handed over as an [`Attempt`] (`Copy`, no heap), in chunks, tagged
//!   with the tick's packet time, then a `Watermark` for that tick. A
//!   firewall log's denials reach the tap as packets (`fwlog::feed`) that
//!   never get an answer, so `picket fwlog` counts them the same way.
//! - `aggregate.rs` (one thread): the sentries' counters per (host,
//!   sentry) and the phase ladder (`ladder.rs`); it writes `worm_phase`
//!   and, per day of packet time and at the end, `worm_summary`.
//!
//! Determinism: the aggregator handles attempts only up to the lowest
//! watermark of all workers, tag by tag, in (tag, first packet, host,
//! target, port) order, so a replay gives the same events with any
//! `--workers`. Live capture sends with `try_send` and counts what it drops
//! in `stats.drops.worm_records`.

pub mod aggregate;
pub mod ladder;
pub mod rules;
pub mod tap;

pub use aggregate::Aggregator;
pub use rules::WormPhaseRules;
pub use tap::Tap;

use crossbeam_channel::{Receiver, Sender, bounded};
use std::net::IpAddr;

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
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum WormMsg {
    Attempts(Chunk),
    /// The worker has handled every packet before this tick.
    Watermark {
        worker: u16,
        ts: i64,
    },
    /// The worker has sent its last attempt.
    Done {
        worker: u16,
    },
}

/// A worker's end of the aggregator channel.
#[derive(Clone, Debug)]
pub struct Link {
    pub worker: u16,
    pub tx: Sender<WormMsg>,
    /// Live capture: never block; count drops.
    pub lossy: bool,
}

/// The channel from `workers` workers to the aggregator.
pub fn channel(workers: usize, lossy: bool) -> (Vec<Link>, Receiver<WormMsg>) {
    let (tx, rx) = bounded(QUEUE);
    let links = (0..workers.max(1)).map(|w| Link { worker: w as u16, tx: tx.clone(), lossy }).collect();
    (links, rx)
}

#[cfg(test)]
mod tests;
