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
//! - `picket live --fw-log`: the log thread (`fwlog/live.rs`) is one more
//!   sender, with the denials as [`Attempt`]s marked `logged` and its
//!   correlation windows as watermarks; the aggregator then counts a
//!   (host, target, protocol, port) once within `hold_s`, from the wire
//!   or the log (`Aggregator::fed_by_log`).
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
pub mod record;
pub mod rules;
pub mod tap;

pub use aggregate::Aggregator;
pub use record::{Attempt, CHUNK, Chunk, Link, QUEUE, WormMsg, channel};
pub use rules::WormPhaseRules;
pub use tap::Tap;

#[cfg(test)]
mod tests;
