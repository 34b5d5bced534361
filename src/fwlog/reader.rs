//! Reading firewall logs line by line: per-line format detection and
//! dispatch to the parsers ([`LineParser`]), the per-file line reader
//! ([`LineReader`]) that caps line length and never fails on bad bytes,
//! the per-file tallies, and opening inputs (files, gzip, stdin).

use super::record::{Format, FwRecord, Skip, bad};
use super::time::TimeCtx;
use super::{asa, csv, netfilter, norton, pf, portsentry, tcpwrappers, text, w3c, zonealarm};
use std::io::{self, BufRead, BufReader, Read};

/// Longest line read; a longer one is counted as bad (`overlong`) and skipped
/// up to the next newline.
pub const MAX_LINE: usize = 64 * 1024;

/// A format's line parser.
type LineFn = fn(&[u8], &TimeCtx) -> Result<FwRecord, Skip>;

/// What parsing one line needs besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct LineCtx {
    pub time: TimeCtx,
    /// `--fw-format`: only this format is tried.
    pub forced: Option<Format>,
    /// The file's index, copied into records.
    pub file: u16,
}

/// Parses one file's lines. Holds the little state a file needs: the W3C
/// `#Fields` or CSV header's column order, the Norton record being joined.
/// No allocation per line.
pub struct LineParser {
    pub ctx: LineCtx,
    w3c: Option<w3c::Columns>,
    csv: Option<csv::Columns>,
    norton: norton::Assembler,
    /// True once a line with content was seen (a CSV header must be the first).
    seen_content: bool,
}

impl LineParser {
    pub fn new(ctx: LineCtx) -> LineParser {
        LineParser { ctx, w3c: None, csv: None, norton: norton::Assembler::new(), seen_content: false }
    }

    /// [`LineParser::parse`], counted into `tally`; a multi-line (Norton)
    /// record given up at this line is counted bad at its first line.
    pub fn parse_counted(&mut self, line: &[u8], line_no: u32, tally: &mut FileTally) -> Result<FwRecord, Skip> {
        let res = self.parse(line, line_no);
        tally.count(line_no, &res);
        if let Some((first, why)) = self.norton.take_dropped() {
            tally.recount_bad(first, why);
        }
        res
    }

    /// The end of the input: a multi-line record still open is truncated,
    /// and counted bad at its first line.
    pub fn finish(&mut self, tally: &mut FileTally) {
        if let Some((first, why)) = self.norton.finish() {
            tally.recount_bad(first, why);
        }
    }

    /// Forgets what earlier lines set up: a CSV or W3C header, and an open
    /// multi-line (Norton) record, counted bad as truncated. For a parser
    /// that senders which cannot be told apart share, so that one sender's
    /// header or half record never shapes another's lines.
    pub fn forget_stream(&mut self, tally: &mut FileTally) {
        self.finish(tally);
        self.w3c = None;
        self.csv = None;
        self.seen_content = false;
    }

    /// Parses line number `line_no` (1-based) of the file.
    pub fn parse(&mut self, line: &[u8], line_no: u32) -> Result<FwRecord, Skip> {
        let line = text::trim_end(line);
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line); // a UTF-8 BOM
        if text::trim(line).is_empty() {
            return Err(Skip::Other(None));
        }
        let first = !self.seen_content;
        self.seen_content = true;
        let mut rec = self.parse_inner(line, first, line_no)?;
        rec.file = self.ctx.file;
        if rec.line == 0 {
            // A multi-line record is numbered by its first line already.
            rec.line = line_no;
        }
        Ok(rec)
    }

    fn parse_inner(&mut self, line: &[u8], first: bool, line_no: u32) -> Result<FwRecord, Skip> {
        let ctx = &self.ctx;
        // Norton records span lines: while one is open, its lines are its own.
        if matches!(ctx.forced, None | Some(Format::Norton))
            && let Some(res) = self.norton.feed(line, line_no, &ctx.time)
        {
            return res;
        }
        if ctx.forced == Some(Format::Norton) {
            return Err(Skip::Other(None));
        }
        // ZoneAlarm's column legend would pass for a CSV header.
        if matches!(ctx.forced, None | Some(Format::ZoneAlarm)) && zonealarm::header_line(text::trim(line)) {
            return Err(Skip::Kind { format: Format::ZoneAlarm, kind: "header" });
        }
        // Header-driven formats first: their state decides what a line is.
        if matches!(ctx.forced, None | Some(Format::WinFw)) {
            if let Some(cols) = w3c::header(line) {
                self.w3c = Some(cols);
                return Err(Skip::Other(Some(Format::WinFw)));
            }
            if line.starts_with(b"#") && (self.w3c.is_some() || ctx.forced.is_some()) {
                return Err(Skip::Other(Some(Format::WinFw)));
            }
            // After a `#Fields` header, rows start with their date
            // (`YYYY-MM-DD `); in auto mode any other line (a syslog line in
            // a merged log) is left to the per-line formats below.
            if let Some(cols) = &self.w3c
                && (ctx.forced.is_some() || looks_like_w3c_row(line))
            {
                return w3c::parse(line, cols, &ctx.time);
            }
            if ctx.forced == Some(Format::WinFw) {
                return w3c::parse(line, &w3c::Columns::windows_default(), &ctx.time);
            }
        }
        if matches!(ctx.forced, None | Some(Format::Csv)) {
            if let Some(cols) = &self.csv {
                return csv::parse(line, cols, &ctx.time);
            }
            if first && !line.starts_with(b"#") {
                match csv::header(line) {
                    Some(cols) => {
                        self.csv = Some(cols);
                        return Err(Skip::Other(Some(Format::Csv)));
                    }
                    None if ctx.forced == Some(Format::Csv) => {
                        return Err(bad(Format::Csv, "the first line is not a CSV header naming src/dst columns"));
                    }
                    None => {}
                }
            }
            if ctx.forced == Some(Format::Csv) {
                return Err(Skip::Other(None));
            }
        }
        let parsers: [(Format, LineFn); 6] = [
            (Format::Netfilter, netfilter::parse),
            (Format::Asa, asa::parse),
            (Format::Pf, pf::parse),
            (Format::PortSentry, portsentry::parse),
            (Format::TcpWrappers, tcpwrappers::parse),
            (Format::ZoneAlarm, zonealarm::parse),
        ];
        for (f, parse) in parsers {
            if ctx.forced.is_some_and(|forced| forced != f) {
                continue;
            }
            match parse(line, &ctx.time) {
                Err(Skip::Other(None)) => continue,
                done => return done,
            }
        }
        Err(Skip::Other(None))
    }
}

/// `YYYY-MM-DD ` at the start: a W3C row's date column.
fn looks_like_w3c_row(line: &[u8]) -> bool {
    matches!(line.get(..11), Some(h) if h[..4].iter().all(u8::is_ascii_digit)
        && h[4] == b'-' && h[7] == b'-' && h[10] == b' ')
}

/// One line as read: its bytes, or the fact that it was longer than [`MAX_LINE`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Text(&'a [u8]),
    Overlong,
}

/// Reads lines of at most [`MAX_LINE`] bytes from any byte stream, in constant
/// memory. A longer line is reported as [`Line::Overlong`] and skipped to the
/// next newline; a last line without a newline is still a line.
pub struct LineReader<R: Read> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    /// Lines returned so far (the current line's number).
    pub line_no: u32,
}

impl<R: Read> LineReader<R> {
    pub fn new(r: R) -> LineReader<R> {
        LineReader { inner: BufReader::with_capacity(64 * 1024, r), buf: Vec::with_capacity(1024), line_no: 0 }
    }

    /// The next line and its 1-based number, or `None` at the end of the stream.
    pub fn next_line(&mut self) -> io::Result<Option<(u32, Line<'_>)>> {
        self.buf.clear();
        let mut overlong = false;
        let mut any = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let nl = avail.iter().position(|&b| b == b'\n');
            let take = nl.unwrap_or(avail.len());
            if !overlong {
                if self.buf.len() + take > MAX_LINE {
                    overlong = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            let used = nl.map_or(take, |i| i + 1);
            self.inner.consume(used);
            if nl.is_some() {
                break;
            }
        }
        self.line_no = self.line_no.saturating_add(1);
        Ok(Some((self.line_no, if overlong { Line::Overlong } else { Line::Text(&self.buf) })))
    }
}

/// Counts for one input file.
#[derive(Clone, Debug, Default)]
pub struct FileTally {
    pub name: String,
    /// How the lines arrived: `file`, or syslog over `udp`, `tcp` or `tls`.
    pub channel: &'static str,
    /// Who sent them: the file's path, or the syslog peer's address.
    pub sender: String,
    pub lines: u64,
    pub records: u64,
    /// Lines that are not packet records (other programs, headers, comments,
    /// blank lines, firewall messages that name no packet).
    pub other: u64,
    /// Lines that look like records but could not be read (overlong included).
    pub bad: u64,
    pub overlong: u64,
    /// The first [`FIRST_BAD_KEPT`] bad lines: (line number, reason).
    pub first_bad: Vec<(u32, &'static str)>,
    /// Lines attributed to each format (records, bad lines and that format's
    /// other messages), indexed like [`Format::ALL`].
    pub formats: [u64; Format::ALL.len()],
    /// Other lines of a named kind (ZoneAlarm `FWOUT`, `PE`...): (format,
    /// kind, lines). Bounded: the kinds are the parsers' fixed names.
    pub kinds: Vec<(Format, &'static str, u64)>,
}

/// How many bad line numbers a file keeps.
pub const FIRST_BAD_KEPT: usize = 10;

impl FileTally {
    pub fn new(name: &str) -> FileTally {
        FileTally { name: name.to_string(), channel: "file", sender: name.to_string(), ..FileTally::default() }
    }

    /// The tally of one syslog sender on a network channel.
    pub fn network(channel: &'static str, sender: &str, name: &str) -> FileTally {
        FileTally { name: name.to_string(), channel, sender: sender.to_string(), ..FileTally::default() }
    }

    /// A line for stderr when a file that has lines gave no record at all:
    /// most likely a format picket does not read, or the wrong file.
    pub fn no_record_warning(&self) -> Option<String> {
        (self.lines > 0 && self.records == 0).then(|| {
            format!(
                "picket: warning: {}: no firewall record in {} lines ({} bad, {} other): not a log format picket reads, \
                 or --fw-format forces the wrong one",
                self.name, self.lines, self.bad, self.other
            )
        })
    }

    /// The format with the most lines, if any line had one.
    pub fn main_format(&self) -> Option<Format> {
        let (i, n) = self.formats.iter().enumerate().max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))?;
        (*n > 0).then(|| Format::ALL[i])
    }

    fn count_bad(&mut self, line: u32, reason: &'static str) {
        self.bad += 1;
        if self.first_bad.len() < FIRST_BAD_KEPT {
            self.first_bad.push((line, reason));
        }
    }

    /// Counts one parse outcome.
    pub fn count(&mut self, line: u32, r: &Result<FwRecord, Skip>) {
        self.lines += 1;
        match r {
            Ok(rec) => {
                self.records += 1;
                self.formats[rec.format.index()] += 1;
            }
            Err(Skip::Other(f)) => {
                self.other += 1;
                if let Some(f) = f {
                    self.formats[f.index()] += 1;
                }
            }
            Err(Skip::Bad { format, reason }) => {
                self.count_bad(line, reason);
                if let Some(f) = format {
                    self.formats[f.index()] += 1;
                }
            }
            Err(Skip::Kind { format, kind }) => {
                self.other += 1;
                self.formats[format.index()] += 1;
                match self.kinds.iter_mut().find(|(f, k, _)| f == format && k == kind) {
                    Some((_, _, n)) => *n += 1,
                    None => self.kinds.push((*format, kind, 1)),
                }
            }
        }
    }

    /// A multi-line record whose lines were counted as other, given up:
    /// its first line (`line`) becomes a bad line.
    pub fn recount_bad(&mut self, line: u32, reason: &'static str) {
        self.other = self.other.saturating_sub(1);
        self.count_bad(line, reason);
    }

    /// Counts an overlong line.
    pub fn count_overlong(&mut self, line: u32) {
        self.lines += 1;
        self.overlong += 1;
        self.count_bad(line, "overlong line");
    }
}

/// Reads every line of `r`, counting into `tally` and handing each record to
/// `on_record`. Only an I/O error stops it.
pub fn read_lines<R: Read>(
    r: R,
    parser: &mut LineParser,
    tally: &mut FileTally,
    on_record: impl FnMut(&FwRecord),
) -> io::Result<()> {
    read_lines_until(r, parser, tally, || false, on_record).map(|_| ())
}

/// Lines between two looks at `stop` in [`read_lines_until`].
const STOP_CHECK_LINES: u32 = 4096;

/// [`read_lines`], looking at `stop` every few thousand lines so that a
/// signal ends the read of a large log promptly. Returns `Ok(false)` when
/// `stop` cut the input short, `Ok(true)` at its end.
pub fn read_lines_until<R: Read>(
    r: R,
    parser: &mut LineParser,
    tally: &mut FileTally,
    stop: impl Fn() -> bool,
    mut on_record: impl FnMut(&FwRecord),
) -> io::Result<bool> {
    let mut reader = LineReader::new(r);
    while let Some((n, line)) = reader.next_line()? {
        if n % STOP_CHECK_LINES == 0 && stop() {
            return Ok(false);
        }
        match line {
            Line::Overlong => tally.count_overlong(n),
            Line::Text(b) => {
                if let Ok(rec) = &parser.parse_counted(b, n, tally) {
                    on_record(rec);
                }
            }
        }
    }
    parser.finish(tally);
    Ok(true)
}

/// An input that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct InputError {
    pub path: String,
    pub msg: String,
}

/// An opened input: its name for messages, and its bytes.
pub type Input = (String, Box<dyn Read + Send>);

/// Opens every input up front (`-` is stdin), so a missing file fails the
/// run before anything is read. Returns (display name, reader) pairs.
///
/// Each input is recognised by its first bytes, not its name: gzip (a log
/// logrotate compressed, `kern.log.2.gz`) is inflated as it is read; a
/// packet capture is an error that points at `picket replay`.
pub fn open_inputs(paths: &[std::path::PathBuf]) -> Result<Vec<Input>, InputError> {
    if paths.len() > usize::from(u16::MAX) {
        return Err(InputError { path: "fwlog".into(), msg: format!("too many files ({})", paths.len()) });
    }
    let mut out: Vec<Input> = Vec::with_capacity(paths.len());
    for p in paths {
        let (name, raw): (String, Box<dyn Read + Send>) = if p.as_os_str() == "-" {
            ("stdin".into(), Box::new(io::stdin()))
        } else {
            let name = p.display().to_string();
            let err = |e: io::Error| InputError { path: name.clone(), msg: format!("cannot open firewall log: {e}") };
            if p.is_dir() {
                return Err(err(io::Error::other("is a directory")));
            }
            let f = std::fs::File::open(p).map_err(err)?;
            (name, Box::new(f))
        };
        let r = sniff(raw).map_err(|msg| InputError { path: name.clone(), msg })?;
        out.push((name, r));
    }
    Ok(out)
}

/// gzip's magic number (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// pcap (both byte orders, micro- and nanosecond) and pcapng magic numbers.
const CAPTURE_MAGIC: [[u8; 4]; 5] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

/// Wraps `raw` by what its first bytes say it is: gzip is inflated (every
/// member, as `zcat` does), a pcap or pcapng capture is refused, anything
/// else is read as text. The bytes looked at are put back in front.
fn sniff(mut raw: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, String> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match raw.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read firewall log: {e}")),
        }
    }
    let head = &head[..n];
    if CAPTURE_MAGIC.iter().any(|m| head == m) {
        return Err("is a packet capture, not a text log: read it with `picket replay` (pflog captures too)".into());
    }
    let whole = io::Cursor::new(head.to_vec()).chain(raw);
    if head.starts_with(&GZIP_MAGIC) {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(whole)));
    }
    Ok(Box::new(whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fwlog::time;

    fn ctx() -> LineCtx {
        LineCtx {
            time: TimeCtx { reference_us: time::parse_reference("2026-11-22").unwrap(), tz_offset_s: 0 },
            forced: None,
            file: 3,
        }
    }

    #[test]
    fn a_stop_request_ends_the_read_at_the_next_check() {
        let text = "Nov 22 10:00:00 fw kernel: IN=eth0 OUT= SRC=203.0.113.5 DST=192.0.2.10 LEN=60 TTL=50 ID=1 \
                    PROTO=TCP SPT=1024 DPT=158 WINDOW=8192 SYN URGP=0\n"
            .repeat(10_000);
        let read = |stop_after: Option<u32>| {
            let mut t = FileTally::new("t");
            let seen = std::cell::Cell::new(0u32);
            let done = read_lines_until(
                text.as_bytes(),
                &mut LineParser::new(ctx()),
                &mut t,
                || stop_after.is_some_and(|n| seen.get() >= n),
                |_| seen.set(seen.get() + 1),
            )
            .unwrap();
            (done, t.lines, seen.get())
        };
        assert_eq!(read(None), (true, 10_000, 10_000));
        // Asked to stop after 5000 records: the check at line 8192 ends it.
        assert_eq!(read(Some(5000)), (false, 8191, 8191));
        assert_eq!(read(Some(1)), (false, 4095, 4095));
    }

    #[test]
    fn reader_caps_lines_and_resyncs() {
        let mut data = b"first\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\nlast-without-newline");
        let mut r = LineReader::new(&data[..]);
        assert_eq!(r.next_line().unwrap(), Some((1, Line::Text(b"first\r"))));
        assert_eq!(r.next_line().unwrap(), Some((2, Line::Overlong)));
        assert_eq!(r.next_line().unwrap(), Some((3, Line::Text(b"last-without-newline"))));
        assert_eq!(r.next_line().unwrap(), None);
        // Exactly MAX_LINE bytes still fits.
        let ok = vec![b'y'; MAX_LINE];
        let mut r = LineReader::new(&ok[..]);
        assert!(matches!(r.next_line().unwrap(), Some((1, Line::Text(b))) if b.len() == MAX_LINE));
    }

    /// A log merged from several sources: once a `#Fields` header was seen,
    /// W3C rows still parse as W3C, and syslog lines after them are still
    /// read by their own format, not counted bad against the header.
    #[test]
    fn a_w3c_header_does_not_swallow_the_syslog_lines_after_it() {
        let mut p = LineParser::new(ctx());
        let header = b"#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path";
        assert!(matches!(p.parse(header, 1), Err(Skip::Other(Some(Format::WinFw)))));
        let row = b"2006-09-19 03:38:17 DROP UDP 172.20.73.241 239.255.255.250 2250 1900 250 - - - - - - - RECEIVE";
        assert_eq!(p.parse(row, 2).unwrap().format, Format::WinFw);
        let nf = b"Mar 15 20:55:15 linux kernel: [810294.788657] DROP IN=eth0 OUT= SRC=192.0.2.5 DST=192.0.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=1024 RES=0x00 SYN URGP=0";
        assert_eq!(p.parse(nf, 3).unwrap().format, Format::Netfilter);
        let iso = b"2026-11-22T10:34:36,658061+00:00 PK-IN-DROP: IN=eth0 OUT= SRC=203.0.113.34 DST=192.0.2.10 LEN=40 TTL=60 ID=302 PROTO=TCP SPT=2349 DPT=158 SYN URGP=0";
        assert_eq!(p.parse(iso, 4).unwrap().format, Format::Netfilter);
        // A row that is broken is still a bad W3C row.
        let broken = b"2006-09-20 02:59:03 OPEN TCP x.x.x.79 69.16.211.107 4328 110 - - - - - - - - -";
        assert!(matches!(p.parse(broken, 5), Err(Skip::Bad { format: Some(Format::WinFw), .. })));
    }

    #[test]
    fn detection_routes_each_line() {
        let mut p = LineParser::new(ctx());
        let nf = b"Mar 15 20:55:15 linux kernel: [810294.788657] DROP IN=eth0 OUT= SRC=192.0.2.5 DST=192.0.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=1024 RES=0x00 SYN URGP=0";
        let r = p.parse(nf, 7).unwrap();
        assert_eq!((r.format, r.file, r.line), (Format::Netfilter, 3, 7));
        assert_eq!(
            p.parse(b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure", 8),
            Err(Skip::Other(None))
        );
        assert_eq!(p.parse(b"   ", 9), Err(Skip::Other(None)));
        let asa = b"Apr 30 2013 09:23:02: %ASA-2-106006: Deny inbound UDP from 192.0.2.66/137 to 10.1.2.42/137 on interface inside";
        assert_eq!(p.parse(asa, 10).unwrap().format, Format::Asa);
    }

    #[test]
    fn forced_format_tries_only_that_parser() {
        let mut c = ctx();
        c.forced = Some(Format::Asa);
        let mut p = LineParser::new(c);
        let nf = b"DROP IN=eth0 OUT= SRC=192.0.2.5 DST=192.0.2.1 LEN=20 TTL=1 ID=1 PROTO=47";
        assert_eq!(p.parse(nf, 1), Err(Skip::Other(None)));
    }

    #[test]
    fn tally_keeps_first_bad_lines() {
        let mut t = FileTally::new("x");
        for i in 1..=20 {
            t.count(i, &Err(bad(Format::Netfilter, "truncated")));
        }
        t.count_overlong(21);
        assert_eq!((t.lines, t.bad, t.overlong), (21, 21, 1));
        assert_eq!(t.first_bad.len(), FIRST_BAD_KEPT);
        assert_eq!(t.first_bad[0], (1, "truncated"));
        assert_eq!(t.main_format(), Some(Format::Netfilter));
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
        assert_eq!(Format::from_name("iptables"), Some(Format::Netfilter));
        assert_eq!(Format::from_name("nope"), None);
    }
}
