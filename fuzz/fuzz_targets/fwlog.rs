//! A whole firewall log through the reader (`src/fwlog/reader.rs`): line
//! splitting with its length cap, per-line format detection and the W3C
//! and CSV header state. The first byte picks the mode: its low 3 bits a
//! forced format (`Format::ALL`, 7 = auto-detect), bit 3 whether the bytes
//! come from a file opened as `picket fwlog` opens one (gzip inflated,
//! captures refused), bits 4-5 force the formats past the seventh (1 Norton,
//! 2 ZoneAlarm). Nothing may panic, every record must pass the
//! record checks, and every line must end as a record, other or bad.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::fwlog::{FileTally, Format, LineCtx, LineParser, open_inputs, read_lines};
use picket_fuzz::{TIME, check_outcome, check_tally};
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let forced = match mode >> 4 & 3 {
        1 => Some(Format::Norton),
        2 => Some(Format::ZoneAlarm),
        _ => Format::ALL.get(usize::from(mode & 7)).copied().filter(|_| mode & 7 != 7),
    };
    let ctx = LineCtx { time: TIME, forced, file: 0 };
    let mut tally = FileTally::new("fuzz");
    let mut records = 0u64;
    let mut on_record = |r: &picket::fwlog::FwRecord| {
        records += 1;
        check_outcome(forced, &Ok(*r));
    };
    if mode & 8 == 0 {
        read_lines(text, &mut LineParser::new(ctx), &mut tally, &mut on_record).expect("reading memory cannot fail");
    } else {
        let path = picket_fuzz::scratch_file("fwlog.log");
        std::fs::write(&path, text).expect("write the scratch file");
        let Ok(mut inputs) = open_inputs(&[path]) else {
            return; // a capture's magic number: refused with a message
        };
        let (_, r) = inputs.pop().expect("one input per path");
        // A damaged gzip stream is an I/O error that ends the file, as in
        // `picket fwlog`; a 1 MiB cap keeps a gzip bomb from stalling the run.
        let _ = read_lines(r.take(1 << 20), &mut LineParser::new(ctx), &mut tally, &mut on_record);
    }
    check_tally(&tally, records);
});
