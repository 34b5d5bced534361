//! The middle of the pipeline: `dispatch` (in the reader thread) batches
//! decoded summaries and shards them by owner address over bounded
//! crossbeam channels; `worker` (one per analyzer thread) owns one shard's
//! state and runs every detector on it; `clock` moves packet time on an
//! idle live link.

pub mod clock;
pub mod dispatch;
pub mod worker;
