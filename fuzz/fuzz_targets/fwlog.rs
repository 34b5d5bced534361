//! Feeds arbitrary bytes to the firewall-log reader as a whole file. The
//! first byte picks a forced format (or auto-detection). Nothing may panic,
//! and every line must end as a record, an other line or a bad line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::time::TimeCtx;
use picket::fwlog::{FileTally, Format, LineCtx, LineParser, read_lines};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let forced = Format::ALL.get(usize::from(selector) % (Format::ALL.len() + 1)).copied();
    let ctx = LineCtx { time: TimeCtx { reference_us: 1_795_331_160_000_000, tz_offset_s: 3600 }, forced, file: 0 };
    let mut tally = FileTally::new("fuzz");
    let mut records = 0u64;
    read_lines(text, &mut LineParser::new(ctx), &mut tally, |_| records += 1).unwrap();
    assert_eq!(tally.records, records);
    assert_eq!(tally.records + tally.other + tally.bad, tally.lines);
});
