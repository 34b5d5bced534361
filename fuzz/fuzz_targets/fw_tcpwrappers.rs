//! One line to the TCP Wrappers parser (`src/fwlog/tcpwrappers.rs`), as the log reader hands
//! it over once the line is detected as TCP Wrappers or `--fw-format tcpwrappers` forces it:
//! it must not panic, and what it makes of the line must say TCP Wrappers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, tcpwrappers};

fuzz_target!(|data: &[u8]| picket_fuzz::line_target(Format::TcpWrappers, tcpwrappers::parse, data));
