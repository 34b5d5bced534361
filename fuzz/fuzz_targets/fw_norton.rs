//! A whole Norton Internet Security log through the reader forced to Norton
//! (`src/fwlog/norton.rs`): its records span lines, so the target feeds
//! every line of the input to one file's parser, joins wrapped clauses, and
//! ends the input (a record still open is a bad one). Nothing may panic,
//! every record must say Norton, pass the record checks and be numbered by
//! a line of the input, and every line must end as a record, other or bad.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{FileTally, Format, LineCtx, LineParser, read_lines};
use picket_fuzz::{TIME, check_outcome, check_tally};

fuzz_target!(|data: &[u8]| {
    let ctx = LineCtx { time: TIME, forced: Some(Format::Norton), file: 0 };
    let mut tally = FileTally::new("fuzz");
    let mut records = 0u64;
    let mut last_line = 0u32;
    read_lines(data, &mut LineParser::new(ctx), &mut tally, |r| {
        records += 1;
        last_line = last_line.max(r.line);
        assert!(r.line >= 1);
        check_outcome(Some(Format::Norton), &Ok(*r));
    })
    .expect("reading memory cannot fail");
    check_tally(&tally, records);
    assert!(u64::from(last_line) <= tally.lines);
});
