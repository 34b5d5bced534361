//! CSV firewall exports (`src/fwlog/csv.rs`): the first line of the input is
//! offered as the header row (delimiter and column names guessed from it);
//! when it is one, every further line is read as a row under it. Nothing
//! may panic, and every outcome must say csv.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{Format, csv};
use picket_fuzz::{TIME, check_outcome, header_and_rows};

fuzz_target!(|data: &[u8]| {
    let (head, rows) = header_and_rows(data);
    let Some(cols) = csv::header(head) else { return };
    for row in rows {
        check_outcome(Some(Format::Csv), &csv::parse(row, &cols, &TIME));
    }
});
