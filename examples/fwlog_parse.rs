//! Firewall-log parsing alone, on one thread: what `picket fwlog`'s reader
//! does to every line (format detection, parsing into an `FwRecord`,
//! counting), without the detectors or the output.
//!
//! ```text
//! cargo run --release --example fwlog_parse -- FILE
//! ```
//!
//! Prints `lines=N records=R other=O bad=B seconds=S lps=L`. `scripts/bench
//! --fwlog N` compares it against `grep -c .` over the same file.

use picket::fwlog::time::TimeCtx;
use picket::fwlog::{FileTally, LineCtx, LineParser, read_lines};
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: fwlog_parse FILE");
        std::process::exit(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fwlog_parse: {path}: {e}");
            std::process::exit(2);
        }
    };
    // A fixed reference date, so year inference does not depend on today.
    let ctx = LineCtx { time: TimeCtx { reference_us: 1_795_000_000_000_000, tz_offset_s: 0 }, forced: None, file: 0 };
    let mut parser = LineParser::new(ctx);
    let mut tally = FileTally::new(&path);
    let mut ports: u64 = 0;
    let start = Instant::now();
    let res = read_lines(file, &mut parser, &mut tally, |r| ports += u64::from(r.dport.unwrap_or(0)));
    let secs = start.elapsed().as_secs_f64();
    if let Err(e) = res {
        eprintln!("fwlog_parse: {path}: {e}");
        std::process::exit(1);
    }
    std::hint::black_box(ports);
    println!(
        "lines={} records={} other={} bad={} seconds={secs:.3} lps={:.0}",
        tally.lines,
        tally.records,
        tally.other,
        tally.bad,
        tally.lines as f64 / secs.max(1e-9)
    );
}
