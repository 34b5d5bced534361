//! One line to the netfilter parser (`src/fwlog/netfilter.rs`: iptables and
//! nftables LOG, ulogd LOGEMU), as the log reader hands it over once the
//! line is detected as netfilter or `--fw-format netfilter` forces it:
//! it must not panic, and what it makes of the line must say netfilter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, netfilter};

fuzz_target!(|data: &[u8]| picket_fuzz::line_target(Format::Netfilter, netfilter::parse, data));
