//! picket: a DMZ span-port sensor. Library root; `main.rs` is the CLI.
#![forbid(unsafe_code)]

pub mod community_id;
pub mod config;
pub mod decode;
pub mod homenet;
pub mod ports;
pub mod summary;
pub mod timefmt;
