//! picket: a DMZ span-port sensor. Library root; `main.rs` is the CLI.
//!
//! The tree follows the pipeline:
//! - `input/`: where packets and log lines come from (libpcap live or
//!   savefiles, followed log files, the syslog listener);
//! - `decode/`: frames into fixed-size `PacketSummary` values;
//! - `pipeline/`: `dispatch` shards summaries over bounded crossbeam
//!   channels, `worker` runs every detector of one shard;
//! - `detect/`: the detectors, each owning its rules, state and events;
//! - `fwlog/`: firewall logs, parsed and correlated with the wire;
//! - `output/`: the EVE envelope, Community ID, timestamps, the writer.
//!
//! `rules` loads the rules directory (with `config`'s file and error
//! helpers and `ports`' port table); `app` wires the stages together;
//! `note` writes stderr lines, each in one write; `progress` draws a
//! replay's progress on a terminal; `privs` gives up root and every
//! capability for `live --user`; `report` gathers the run summary and
//! writes `picket report`'s HTML page.
// No unsafe code, except in `input::savefile` (libpcap's stdio buffer), which says why.
#![deny(unsafe_code)]
// The final stats object is one `json!` literal, deeper than the default 128.
#![recursion_limit = "256"]

pub mod app;
pub mod assets;
pub mod cli;
pub mod config;
pub mod decode;
pub mod detect;
pub mod fwlog;
pub mod homenet;
pub mod input;
pub mod note;
pub mod output;
pub mod pipeline;
pub mod ports;
pub mod privs;
pub mod progress;
pub mod report;
pub mod rules;
pub mod signals;
pub mod stats;
