//! One line to the Cisco ASA/PIX parser (`src/fwlog/asa.rs`), as the log reader hands
//! it over once the line is detected as Cisco ASA/PIX or `--fw-format asa` forces it:
//! it must not panic, and what it makes of the line must say asa.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, asa};

fuzz_target!(|data: &[u8]| picket_fuzz::line_target(Format::Asa, asa::parse, data));
