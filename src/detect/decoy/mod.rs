//! `decoy_scan`: several sources probing the same ports of one destination,
//! one machine behind them all (nmap -D; SIGNATURES.md section 6). This
//! module owns the compact records that cross from the workers to the one
//! aggregator thread, and the channel between them.
//!
//! Why an aggregator: workers shard by the initiator's address, so each
//! decoy source lands in a different worker, while the detection groups
//! sources by destination. State that must span owners goes to a single
//! thread fed with fixed-size records, so the hot path stays lock-free:
//!
//! - `tap.rs` (in every worker, for the addresses it owns): the long memory
//!   (`detect::ttl`: first contact and baseline TTL per address) and one
//!   probe record per (source, destination): ports, probe types, TTL range,
//!   and fingerprints (source port, ISN, IP ID, window, options). When a
//!   pair has probed `min_ports` ports it is a candidate: on each tick in
//!   which it changed, the worker sends a `Record` (a snapshot, `Copy`, no
//!   heap) with the tick's packet time as its `tag`, then a `Watermark`
//!   for that tick. At the end it sends its last snapshots and `Done`.
//! - `aggregate.rs` (one thread): groups candidates by destination and
//!   decides (port-set overlap, shared fingerprints, the sources' memory);
//!   it also runs `port_scan`'s `distributed` pattern on the same records,
//!   so it starts when either detector is on.
//!
//! Determinism: a worker's snapshot at a tick holds exactly the packets
//! before that tick (the reader flushes every batch before a tick), whatever
//! the number of workers. The aggregator buffers records and handles them
//! only up to the lowest watermark of all workers, tag by tag in (tag,
//! destination, source) order, judging at the tag's packet time. So a replay
//! gives the same `decoy_scan` events with 1 or 8 workers and any thread
//! scheduling; only their position among other events' lines may change.
//! Live capture sends with `try_send` and counts what it drops in
//! `stats.drops.decoy_records`.

pub mod aggregate;
pub mod record;
pub mod rules;
pub mod tap;

pub use aggregate::Aggregator;
pub use record::{AggMsg, Link, Record, channel};
pub use rules::{Confidence, DecoyScanRules};
pub use tap::Tap;

#[cfg(test)]
mod tests;
