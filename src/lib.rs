//! picket: a DMZ span-port sensor. Library root; `main.rs` is the CLI.
//!
//! Data flow: `capture` (reader thread: libpcap + `decode`) -> `dispatch`
//! (batches over bounded crossbeam channels, sharded by initiator address)
//! -> `worker` (one per analyzer thread, running every `detect` module) ->
//! `output` (one writer thread, JSON lines). `app` wires them together.
// No unsafe code, except in `savefile` (libpcap's stdio buffer), which says why.
#![deny(unsafe_code)]

pub mod app;
pub mod capture;
pub mod cli;
pub mod community_id;
pub mod config;
pub mod decode;
pub mod detect;
pub mod dispatch;
pub mod event;
pub mod follow;
pub mod fwlog;
pub mod homenet;
pub mod output;
pub mod ports;
pub mod savefile;
pub mod signals;
pub mod stats;
pub mod summary;
pub mod syslog_udp;
pub mod timefmt;
pub mod worker;
