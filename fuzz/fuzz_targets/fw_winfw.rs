//! Windows Firewall `pfirewall.log` (`src/fwlog/w3c.rs`): the first line of
//! the input is read as a `#Fields:` header (Windows' own order when it is
//! not one, as `--fw-format winfw` does), every further line as a row under
//! it. Nothing may panic, and every outcome must say winfw.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, w3c};
use picket_fuzz::{TIME, check_outcome, header_and_rows};

fuzz_target!(|data: &[u8]| {
    let (head, rows) = header_and_rows(data);
    let cols = w3c::header(head).unwrap_or_else(w3c::Columns::windows_default);
    for row in rows {
        check_outcome(Some(Format::WinFw), &w3c::parse(row, &cols, &TIME));
    }
});
