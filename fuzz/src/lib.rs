//! What picket's fuzz targets share: the time context every log parser
//! gets, and the checks run on whatever a parser makes of hostile bytes.
//!
//! Each target in `fuzz_targets/` is one parser's entry point; this crate
//! holds the invariants, so that a target stays a few lines and adding
//! one (a new log format, the TCP syslog framing) is one file plus one line
//! in `Cargo.toml`. The targets build on the stable toolchain: see
//! `scripts/fuzz` for the flags and the README's Fuzzing section.

use picket::fwlog::feed::to_summary;
use picket::fwlog::report::Aggregate;
use picket::fwlog::time::TimeCtx;
use picket::fwlog::{FileTally, Format, FwRecord, Skip, flags};

/// Year-inference reference (2026-11-22 UTC) and a zone one hour east, so
/// local-time arithmetic is exercised too.
pub const TIME: TimeCtx = TimeCtx { reference_us: 1_795_331_160_000_000, tz_offset_s: 3600 };

/// Checks one parse outcome of a line read as `format` (`None`: auto-detect)
/// and pushes a record through what the rest of picket does with it: the
/// packet it stands for, the `fw_correlation` tallies, its rendered names.
pub fn check_outcome(format: Option<Format>, res: &Result<FwRecord, Skip>) {
    match res {
        Ok(rec) => {
            if let Some(f) = format {
                assert_eq!(rec.format, f, "a {} parser gave a {} record", f.name(), rec.format.name());
            }
            check_record(rec);
        }
        Err(Skip::Bad { format: Some(got), reason }) => {
            assert!(!reason.is_empty());
            if let Some(f) = format {
                assert_eq!(*got, f, "a {} parser blamed {}", f.name(), got.name());
            }
        }
        Err(Skip::Bad { format: None, reason }) => assert!(!reason.is_empty()),
        Err(Skip::Other(Some(got))) => {
            if let Some(f) = format {
                assert_eq!(*got, f);
            }
        }
        Err(Skip::Other(None)) => {}
        Err(Skip::Kind { format: got, kind }) => {
            assert!(!kind.is_empty());
            if let Some(f) = format {
                assert_eq!(*got, f);
            }
        }
    }
}

/// A record's own consistency, and everything downstream of it that runs
/// on one record alone.
pub fn check_record(rec: &FwRecord) {
    if let Some(bits) = rec.tcp_flags {
        let _ = flags::names(bits);
    }
    // Labels are cut from hostile bytes at a fixed size: still valid text.
    let _ = (rec.rule.as_str(), rec.iface.as_str(), rec.src_name.as_str());
    if let Ok(fed) = to_summary(rec) {
        let ip = fed.pkt.ip.expect("a fed record has an IP layer");
        assert_eq!(Some(ip.src), rec.src);
        assert_eq!(Some(ip.dst), rec.dst);
        assert_eq!(Some(fed.pkt.ts_us), rec.ts_us);
    }
    let mut agg = Aggregate::new();
    agg.add(rec);
    assert_eq!(agg.records, 1);
    assert_eq!(agg.denials, u64::from(rec.action.is_denial()));
}

/// The tally's books must balance: every line is a record, an other line
/// or a bad line, and the records are the ones handed over.
pub fn check_tally(tally: &FileTally, records: u64) {
    assert_eq!(tally.records, records);
    assert_eq!(tally.records + tally.other + tally.bad, tally.lines);
    assert!(tally.overlong <= tally.bad);
    assert!(tally.first_bad.len() as u64 <= tally.bad);
}

/// One line given to one format's own parser, as `LineParser` does after
/// detection (or under `--fw-format`).
pub fn line_target(format: Format, parse: fn(&[u8], &TimeCtx) -> Result<FwRecord, Skip>, data: &[u8]) {
    check_outcome(Some(format), &parse(data, &TIME));
}

/// Splits a header-driven format's input at its first newline: the header
/// line, then the rows.
pub fn header_and_rows(data: &[u8]) -> (&[u8], impl Iterator<Item = &[u8]>) {
    let (head, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    (head, rest.split(|&b| b == b'\n'))
}

/// A scratch file of this process for targets that must go through a real
/// path (capture files, logs opened by name): in the temporary directory,
/// named after the process so parallel fuzzers do not share one.
pub fn scratch_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("picket-fuzz-{}-{name}", std::process::id()))
}
