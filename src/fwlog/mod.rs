//! Firewall-log ingest (issue 4): the record every log line becomes
//! ([`FwRecord`], fixed-size and `Copy`, like a packet summary), per-line
//! format detection ([`LineParser`]), and the per-file line reader
//! ([`LineReader`]) that caps line length and never fails on bad bytes.
//!
//! One file per format family parses one line into a record: `netfilter`
//! (iptables/nftables LOG, ulogd LOGEMU), `asa` (Cisco ASA/PIX), `pf`
//! (OpenBSD pf as tcpdump text), `portsentry` (1.x and 2.x), `tcpwrappers`,
//! `w3c` (Windows Firewall `pfirewall.log`), `csv`, and the personal
//! firewalls `norton` (multi-line records) and `zonealarm`. `time` reads
//! timestamps and infers syslog years; `text` is the shared lexer; `report`
//! aggregates records into the `fw_correlation` event.
//!
//! A line ends as a record, as *other* (not a packet record: syslog noise,
//! headers, firewall messages that name no packet) or as *bad* (it looks like
//! a record of a known format but cannot be read, e.g. it is truncated).
//! Nothing is fatal: bad lines are counted per file with their first line
//! numbers, and the reader moves on.

pub mod asa;
pub mod correlate;
pub mod csv;
pub mod feed;
pub mod live;
pub mod netfilter;
pub mod norton;
pub mod pf;
pub mod portsentry;
pub mod reader;
pub mod record;
pub mod report;
pub mod tcpwrappers;
pub mod text;
pub mod time;
pub mod w3c;
pub mod zonealarm;

pub use reader::{
    FIRST_BAD_KEPT, FileTally, Input, InputError, Line, LineCtx, LineParser, LineReader, MAX_LINE, open_inputs,
    read_lines, read_lines_until,
};
pub use record::{Action, Format, FwRecord, Label, Skip, Unfed, bad, flags};

/// Test helpers shared by the parser modules.
#[cfg(test)]
pub(crate) mod testutil {
    use super::record::{FwRecord, Skip};
    use super::time::{TimeCtx, parse_reference};

    /// Year-inference reference 2026-11-22, UTC.
    pub fn tctx() -> TimeCtx {
        TimeCtx { reference_us: parse_reference("2026-11-22").expect("reference"), tz_offset_s: 0 }
    }

    /// `parse` of one line that must succeed.
    pub fn parsed(parse: fn(&[u8], &TimeCtx) -> Result<FwRecord, Skip>, line: &str) -> FwRecord {
        parse(line.as_bytes(), &tctx()).unwrap_or_else(|e| panic!("{e:?}: {line}"))
    }
}
