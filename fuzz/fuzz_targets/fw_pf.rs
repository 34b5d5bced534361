//! One line to the OpenBSD pf (tcpdump text) parser (`src/fwlog/pf.rs`), as the log reader hands
//! it over once the line is detected as OpenBSD pf (tcpdump text) or `--fw-format pf` forces it:
//! it must not panic, and what it makes of the line must say pf.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, pf};

fuzz_target!(|data: &[u8]| picket_fuzz::line_target(Format::Pf, pf::parse, data));
