//! One line to the ZoneAlarm parser (`src/fwlog/zonealarm.rs`), as the log reader hands it
//! over once the line is detected as ZoneAlarm or `--fw-format zonealarm` forces it: it must
//! not panic, and what it makes of the line (a record, a named kind of other line, a bad
//! line) must say ZoneAlarm.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, zonealarm};

fuzz_target!(|data: &[u8]| picket_fuzz::line_target(Format::ZoneAlarm, zonealarm::parse, data));
