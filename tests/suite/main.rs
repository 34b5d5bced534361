//! picket's integration tests, built as one test binary: each file here is
//! a module (the behaviour it names), `common` their shared helpers. One
//! binary links the library once instead of forty times, which saved about
//! six minutes of a cold build on a 2-core CI machine. Run one file with
//! `cargo test --profile ci --test suite anomaly::`.

mod common;

mod anomaly;
mod benign;
mod brute_force;
mod cli_errors;
mod corpus;
mod decoy;
mod fair_flood;
mod flood;
mod fragments;
mod fw_correlate;
mod fw_lab_pairs;
mod fw_personal;
mod fwlog;
mod fwlog_detect;
mod host_sweep;
mod known_probe;
mod layout;
mod live;
mod live_clock;
mod netbios;
mod output_full;
mod outputs;
mod packaging;
mod periodic;
mod pflog;
mod port_scan;
mod privs;
mod readme;
mod realworld;
mod replay;
mod report;
mod severity;
mod smurf;
mod syslog_tcp;
mod terminal;
mod time_order;
mod traceroute;
mod worm;
