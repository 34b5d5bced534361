//! One line to the PortSentry parser (`src/fwlog/portsentry.rs`), as the log reader hands
//! it over once the line is detected as PortSentry or `--fw-format portsentry` forces it:
//! it must not panic, and what it makes of the line must say PortSentry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, portsentry};

fuzz_target!(|data: &[u8]| picket_fuzz::line_target(Format::PortSentry, portsentry::parse, data));
