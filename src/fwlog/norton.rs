//! Norton Internet Security / Norton Personal Firewall event-log records.
//! One record spans several lines:
//!
//! ```text
//! 9/8/2001 11:44:50 Rule "Default Block Backdoor-g-1 Trojan horse" blocked (192.0.2.10,Backdoor-g-1).  Details:
//! Inbound TCP connection
//! Local address,service is (192.0.2.10,Backdoor-g-1)
//! Remote address,service is (203.0.113.7,3187)
//! Process name is "N/A"
//! ```
//!
//! or, for a port no program listens on, `... Unused port blocking has
//! blocked communications.  Details:`, `Inbound TCP connection`, `Remote
//! address,local service is (ADDR,SERVICE)` (no remote port, no local
//! address), optionally followed by `Process name is "..."`. ICMP records
//! carry `Local address is (ADDR)`, `Remote address is (ADDR)` and `Message
//! type is "Echo Request"` instead. The verb is `blocked` (deny),
//! `stealthed` (drop), `permitted` (accept) or `ignored` (log).
//!
//! A service is a port number, a name (`telnet`, `NetBus`, `Backdoor-g-1`)
//! or both (`telnet(23)`). Names are mapped back to ports by the built-in
//! port table (`rules/ports.toml`: entry names and their `aliases`), then by
//! the common service names of [`super::text::service_port`]; an unknown
//! name leaves the port unknown. An address may be `host(ADDR)` once Norton
//! resolved it.
//!
//! Records copied out of the log viewer or mail are often wrapped: a clause
//! cut across lines is joined back (a clause is complete once its
//! parentheses or quotes close, a header once it reaches `Details:` or its
//! closing `.`). The [`Assembler`] keeps one record's state in fixed-size
//! buffers, allocated once per file. A record is emitted at the line that
//! completes it, numbered by its first line. A record cut short (by the end
//! of the file, by a new record's first line, or by a line that continues
//! nothing) is one bad record, counted at its first line; so is a clause
//! that cannot be read, or a continuation line with no record before it.

use super::record::{Action, Format, FwRecord, Label, Skip, bad};
use super::text::{dec, find, ip, port, service_port, strip_prefix_ci, trim};
use super::time::{Stamp, TimeCtx};
use crate::output::timefmt::days_from_civil;
use crate::ports::PortTable;
use std::net::IpAddr;
use std::sync::OnceLock;

/// Longest clause kept (a wrapped clause longer than this is a bad record).
const MAX_CLAUSE: usize = 1024;
/// Most lines one record may span.
const MAX_RECORD_LINES: u32 = 24;

/// Line starts that continue a record (the clause's first words).
const STEMS: [&[u8]; 7] =
    [b"Details:", b"Inbound ", b"Outbound ", b"Local address", b"Remote address", b"Message type", b"Process name"];

/// What a clause is, known once it is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clause {
    Header,
    Stem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rule,
    Unused,
}

/// The sides of a record as the clauses give them.
#[derive(Clone, Copy, Debug, Default)]
struct Side {
    addr: Option<IpAddr>,
    name: Label<48>,
    port: Option<u16>,
    /// The service as written, resolved once the protocol is known.
    service: Label<40>,
}

/// One record being read.
#[derive(Clone, Copy, Debug)]
struct Pending {
    rec: FwRecord,
    kind: Kind,
    first_line: u32,
    lines: u32,
    inbound: Option<bool>,
    local: Side,
    remote: Side,
    /// The `(LOCAL,SERVICE)` pair of the header line.
    header_local: Side,
    have_remote: bool,
}

/// Joins the lines of Norton records and parses them. One per file.
#[derive(Debug)]
pub struct Assembler {
    pending: Option<Pending>,
    clause: Vec<u8>,
    clause_kind: Clause,
    /// After an `Unused port blocking` record: its optional `Process name`
    /// line (and that line's wraps) still belongs to it.
    trailer: bool,
    trailer_open: bool,
    /// The open record had a clause that could not be read (counted bad
    /// there): its remaining lines are other lines, not more bad ones.
    broken: bool,
    /// A record dropped while reading the current line: (first line, why).
    dropped: Option<(u32, &'static str)>,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler::new()
    }
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler {
            pending: None,
            clause: Vec::with_capacity(MAX_CLAUSE),
            clause_kind: Clause::Header,
            trailer: false,
            trailer_open: false,
            broken: false,
            dropped: None,
        }
    }

    /// True while a record is open (its lines so far were counted as other).
    pub fn is_open(&self) -> bool {
        self.pending.is_some()
    }

    /// A record given up while the last line was read: its first line and
    /// why. The caller counts it bad (its first line had been counted as other).
    pub fn take_dropped(&mut self) -> Option<(u32, &'static str)> {
        self.dropped.take()
    }

    /// The end of the input: a record still open is truncated.
    pub fn finish(&mut self) -> Option<(u32, &'static str)> {
        self.trailer = false;
        self.pending.take().map(|p| (p.first_line, "Norton record truncated at the end of the input"))
    }

    fn drop_pending(&mut self, why: &'static str) {
        if let Some(p) = self.pending.take() {
            self.dropped = Some((p.first_line, why));
        }
    }

    /// Feeds line `line_no` (trimmed at its end, not blank). `None`: not a
    /// Norton line (after closing an open record as truncated if the line
    /// continues nothing); the caller tries the other formats.
    pub fn feed(&mut self, line: &[u8], line_no: u32, tctx: &TimeCtx) -> Option<Result<FwRecord, Skip>> {
        let text = trim(line);
        if let Some((stamp, kind)) = first_line(text) {
            if self.pending.is_some() {
                self.drop_pending("Norton record interrupted by the next record's first line");
            }
            self.trailer = false;
            self.broken = false;
            let mut rec = FwRecord::new(Format::Norton, Action::Deny);
            rec.ts_us = Some(stamp.resolve(tctx));
            rec.line = line_no;
            let p = Pending {
                rec,
                kind,
                first_line: line_no,
                lines: 1,
                inbound: None,
                local: Side::default(),
                remote: Side::default(),
                header_local: Side::default(),
                have_remote: false,
            };
            self.pending = Some(p);
            self.clause.clear();
            self.clause_kind = Clause::Header;
            return Some(self.push(text, true));
        }
        if self.trailer {
            // The optional `Process name is "..."` line of an unused-port
            // record, and at most one line it wraps onto.
            if self.trailer_open || starts_ci(text, STEMS[6]) {
                self.trailer_open = !self.trailer_open && !quoted_complete(text);
                self.trailer = self.trailer_open;
                return Some(Err(Skip::Other(Some(Format::Norton))));
            }
            self.trailer = false;
        }
        let stem = STEMS.iter().any(|s| starts_ci(text, s));
        if self.broken {
            self.broken = stem;
            if stem {
                return Some(Err(Skip::Other(Some(Format::Norton))));
            }
        }
        let Some(p) = &mut self.pending else {
            return stem.then(|| Err(bad(Format::Norton, "Norton record line without its first line")));
        };
        p.lines += 1;
        if p.lines > MAX_RECORD_LINES {
            self.drop_pending("Norton record longer than 24 lines");
            return None;
        }
        let complete = clause_complete(self.clause_kind, &self.clause);
        if !complete {
            // A wrapped clause: this line continues it.
            return Some(self.push(text, false));
        }
        if stem {
            self.clause.clear();
            self.clause_kind = Clause::Stem;
            return Some(self.push(text, true));
        }
        self.drop_pending("Norton record truncated: a line that continues none of its clauses");
        None
    }

    /// Adds `text` to the current clause (as a new clause when `fresh`) and,
    /// once the clause is complete, applies it to the record.
    fn push(&mut self, text: &[u8], fresh: bool) -> Result<FwRecord, Skip> {
        if !fresh {
            self.clause.push(b' ');
        }
        if self.clause.len() + text.len() > MAX_CLAUSE {
            self.pending = None;
            self.broken = true;
            return Err(bad(Format::Norton, "Norton clause longer than 1024 bytes"));
        }
        self.clause.extend_from_slice(text);
        if !clause_complete(self.clause_kind, &self.clause) {
            return Err(Skip::Other(Some(Format::Norton)));
        }
        let Some(p) = &mut self.pending else { return Err(Skip::Other(Some(Format::Norton))) };
        let applied = match self.clause_kind {
            Clause::Header => apply_header(p, &self.clause),
            Clause::Stem => apply_clause(p, &self.clause),
        };
        match applied {
            Err(why) => {
                self.pending = None;
                self.broken = true;
                Err(bad(Format::Norton, why))
            }
            Ok(false) => Err(Skip::Other(Some(Format::Norton))),
            Ok(true) => {
                // `pending` was Some just above; a let-else rather than a
                // panic keeps a future edit from turning this into a crash.
                let Some(p) = self.pending.take() else { return Err(Skip::Other(Some(Format::Norton))) };
                if p.kind == Kind::Unused {
                    self.trailer = true;
                    self.trailer_open = false;
                }
                finish_record(p).map_err(|why| bad(Format::Norton, why))
            }
        }
    }
}

/// `text` starts with `prefix`, ignoring ASCII case.
fn starts_ci(text: &[u8], prefix: &[u8]) -> bool {
    strip_prefix_ci(text, prefix).is_some()
}

/// The record's first line: its time and kind, if `text` starts one.
fn first_line(text: &[u8]) -> Option<(Stamp, Kind)> {
    let (stamp, used) = timestamp(text)?;
    let rest = trim(&text[used..]);
    if rest.starts_with(b"Rule \"") {
        Some((stamp, Kind::Rule))
    } else if strip_prefix_ci(rest, b"Unused port blocking").is_some() {
        Some((stamp, Kind::Unused))
    } else {
        None
    }
}

/// `M/D/YYYY H:MM:SS`, optionally followed by `AM`/`PM`: local time, and the
/// bytes used.
fn timestamp(b: &[u8]) -> Option<(Stamp, usize)> {
    let sp = b.iter().position(|&c| c == b' ')?;
    let mut date = b[..sp].split(|&c| c == b'/');
    let (m, d, y) = (dec(date.next()?)?, dec(date.next()?)?, dec(date.next()?)?);
    if date.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let rest = &b[sp + 1..];
    let end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let mut hms = rest[..end].split(|&c| c == b':');
    let (mut h, mi, s) = (dec(hms.next()?)?, dec(hms.next()?)?, dec(hms.next()?)?);
    if hms.next().is_some() || h > 23 || mi > 59 || s > 60 || end > 8 {
        return None;
    }
    let mut used = sp + 1 + end;
    let after = &rest[end..];
    for (ampm, add) in [(&b" PM"[..], 12), (b" AM", 0)] {
        if let Some(r) = strip_prefix_ci(after, ampm)
            && (r.is_empty() || r[0] == b' ')
        {
            if !(1..=12).contains(&h) {
                return None;
            }
            h = h % 12 + add;
            used += 3;
        }
    }
    let us_of_day = (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000;
    Some((Stamp::Local { days: days_from_civil(y as i64, m as u32, d as u32), us_of_day }, used))
}

/// True once a clause's text is whole (see the module comment).
fn clause_complete(kind: Clause, c: &[u8]) -> bool {
    let c = trim(c);
    match kind {
        Clause::Header => {
            if c.ends_with(b"Details:") {
                return true;
            }
            // Without `Details:`: closed parentheses and quotes, and the
            // end of `(ADDR,SERVICE).` or of `communications.`.
            balanced(c)
                && quoted_even(c)
                && (c.ends_with(b").") || c.ends_with(b")") || c.ends_with(b"communications."))
        }
        Clause::Stem => {
            if c.eq_ignore_ascii_case(b"Details:") {
                return true;
            }
            if c.starts_with(b"Inbound ") || c.starts_with(b"Outbound ") {
                return c.split(|&x| x == b' ').filter(|w| !w.is_empty()).count() >= 3;
            }
            if c.starts_with(b"Message type") || c.starts_with(b"Process name") {
                return quoted_complete(c);
            }
            c.contains(&b'(') && balanced(c) && (c.ends_with(b")") || c.ends_with(b")."))
        }
    }
}

/// Parentheses closed.
fn balanced(c: &[u8]) -> bool {
    let mut depth = 0i32;
    for &x in c {
        match x {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
    }
    depth == 0
}

/// An even number of quotes.
fn quoted_even(c: &[u8]) -> bool {
    c.iter().filter(|&&x| x == b'"').count() % 2 == 0
}

/// A `... is "TEXT"` clause with its closing quote.
fn quoted_complete(c: &[u8]) -> bool {
    let n = c.iter().filter(|&&x| x == b'"').count();
    n >= 2 && n % 2 == 0
}

/// The text inside the outermost `( ... )` that ends `c` (a trailing `.` allowed).
fn last_group(c: &[u8]) -> Option<(&[u8], usize)> {
    let c = trim(c);
    let c = c.strip_suffix(b".").unwrap_or(c);
    let c = c.strip_suffix(b")")?;
    let mut depth = 1i32;
    for i in (0..c.len()).rev() {
        match c[i] {
            b')' => depth += 1,
            b'(' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&c[i + 1..], i));
                }
            }
            _ => {}
        }
    }
    None
}

/// `ADDR,SERVICE` split at the first comma outside parentheses.
fn pair(inner: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut depth = 0i32;
    for (i, &x) in inner.iter().enumerate() {
        match x {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 => return Some((trim(&inner[..i]), trim(&inner[i + 1..]))),
            _ => {}
        }
    }
    None
}

/// An address: `ADDR`, `host(ADDR)` or a bare host name.
fn address(b: &[u8]) -> Result<Side, &'static str> {
    let mut s = Side::default();
    if b.is_empty() {
        return Err("Norton record with an empty address");
    }
    if let Some(a) = ip(b) {
        s.addr = Some(a);
    } else if let Some((inner, at)) = last_group(b) {
        s.addr = Some(ip(trim(inner)).ok_or("Norton address `host(ADDR)` without an IP address")?);
        s.name = Label::new(&b[..at]);
    } else if b.iter().all(|c| c.is_ascii_alphanumeric() || b".-_".contains(c)) && b.iter().any(u8::is_ascii_alphabetic)
    {
        s.name = Label::new(b);
    } else {
        return Err("bad Norton address");
    }
    Ok(s)
}

/// A service: `23`, `telnet(23)`, or a name kept to resolve once the
/// protocol is known.
fn service(b: &[u8], s: &mut Side) -> Result<(), &'static str> {
    if b.is_empty() {
        return Err("Norton record with an empty service");
    }
    if let Some(p) = port(b) {
        s.port = Some(p);
    } else if let Some((inner, at)) = last_group(b) {
        s.port = Some(port(trim(inner)).ok_or("Norton service `name(PORT)` without a port number")?);
        s.service = Label::new(&b[..at]);
    } else {
        s.service = Label::new(b);
    }
    Ok(())
}

/// Applies the header clause.
fn apply_header(p: &mut Pending, c: &[u8]) -> Result<bool, &'static str> {
    let c = trim(c);
    let c = c.strip_suffix(b"Details:").map(trim).unwrap_or(c);
    if p.kind == Kind::Unused {
        p.rec.rule = Label::new(b"Unused port blocking");
        p.rec.action = Action::Deny;
        return Ok(false);
    }
    let at = find(c, b"Rule \"").ok_or("Norton header without `Rule \"NAME\"`")?;
    let body = &c[at + 6..];
    let (inner, open) = last_group(body).ok_or("Norton header without `(ADDR,SERVICE)`")?;
    let before = trim(&body[..open]);
    let sp = before.iter().rposition(|&x| x == b' ').ok_or("Norton header without a verb")?;
    let verb = &before[sp + 1..];
    let name = trim(&before[..sp]).strip_suffix(b"\"").ok_or("Norton rule name without its closing quote")?;
    const VERBS: [(&[u8], Action); 4] = [
        (b"blocked", Action::Deny),
        (b"stealthed", Action::Drop),
        (b"permitted", Action::Accept),
        (b"ignored", Action::Log),
    ];
    p.rec.action = match VERBS.iter().find(|(w, _)| w.eq_ignore_ascii_case(verb)) {
        Some((_, a)) => *a,
        None => return Err("Norton header with an unknown verb"),
    };
    p.rec.rule = Label::new(name);
    let (a, s) = pair(inner).ok_or("Norton header `(ADDR,SERVICE)` without a comma")?;
    p.header_local = address(a)?;
    service(s, &mut p.header_local)?;
    Ok(false)
}

/// Applies one body clause; `Ok(true)` when it completes the record.
fn apply_clause(p: &mut Pending, c: &[u8]) -> Result<bool, &'static str> {
    let c = trim(c);
    if c.eq_ignore_ascii_case(b"Details:") {
        return Ok(false);
    }
    let dir = if let Some(r) = c.strip_prefix(b"Inbound ") {
        Some((true, r))
    } else {
        c.strip_prefix(b"Outbound ").map(|r| (false, r))
    };
    if let Some((inbound, r)) = dir {
        p.inbound = Some(inbound);
        let proto = trim(r).split(|&x| x == b' ').next().unwrap_or_default();
        const PROTOS: [(&[u8], u8); 3] = [(b"TCP", 6), (b"UDP", 17), (b"ICMP", 1)];
        p.rec.proto = match PROTOS.iter().find(|(w, _)| w.eq_ignore_ascii_case(proto)) {
            Some((_, n)) => Some(*n),
            None => return Err("Norton direction line with an unknown protocol"),
        };
        return Ok(false);
    }
    if let Some(r) = c.strip_prefix(b"Message type is") {
        let name = quoted(r).ok_or("bad Norton message type")?;
        p.rec.icmp = icmp_type(name).map(|t| (t, 0));
        return Ok(false);
    }
    if let Some(r) = c.strip_prefix(b"Process name is") {
        quoted(r).ok_or("bad Norton process name")?;
        return match p.kind {
            Kind::Rule if p.have_remote => Ok(true),
            Kind::Rule => Err("Norton record without its remote address"),
            // Unused records end at their remote clause.
            Kind::Unused => Err("Norton unused-port record without its remote address"),
        };
    }
    let (inner, open) = last_group(c).ok_or("Norton address line without `(...)`")?;
    let key = trim(&c[..open]);
    let key = key.strip_suffix(b"is").map(trim).unwrap_or(key);
    match key {
        b"Local address,service" => {
            let (a, s) = pair(inner).ok_or("Norton `(ADDR,SERVICE)` without a comma")?;
            p.local = address(a)?;
            service(s, &mut p.local)?;
        }
        b"Remote address,service" => {
            let (a, s) = pair(inner).ok_or("Norton `(ADDR,SERVICE)` without a comma")?;
            p.remote = address(a)?;
            service(s, &mut p.remote)?;
            p.have_remote = true;
        }
        b"Remote address,local service" => {
            let (a, s) = pair(inner).ok_or("Norton `(ADDR,SERVICE)` without a comma")?;
            p.remote = address(a)?;
            service(s, &mut p.local)?;
            p.have_remote = true;
            return Ok(p.kind == Kind::Unused);
        }
        b"Local address" => p.local = address(trim(inner))?,
        b"Remote address" => {
            p.remote = address(trim(inner))?;
            p.have_remote = true;
        }
        _ => return Err("unknown Norton record line"),
    }
    Ok(false)
}

/// The text between the first and the last quote.
fn quoted(r: &[u8]) -> Option<&[u8]> {
    let a = r.iter().position(|&x| x == b'"')?;
    let b = r.iter().rposition(|&x| x == b'"')?;
    (b > a).then(|| &r[a + 1..b])
}

/// Builds the record from a complete [`Pending`].
fn finish_record(mut p: Pending) -> Result<FwRecord, &'static str> {
    let proto = match p.rec.proto {
        Some(pr) => pr,
        None if p.kind == Kind::Unused => {
            p.rec.proto = Some(6);
            6
        }
        None => return Err("Norton record without its `Inbound/Outbound PROTO` line"),
    };
    if p.local.addr.is_none() && p.local.name.is_empty() {
        // The header's `(LOCAL,SERVICE)` names the local side.
        let port = p.local.port;
        let svc = p.local.service;
        p.local = p.header_local;
        if port.is_some() || !svc.is_empty() {
            p.local.port = port;
            p.local.service = svc;
        }
    }
    if p.local.port.is_none() && p.local.service.is_empty() {
        p.local.port = p.header_local.port;
        p.local.service = p.header_local.service;
    }
    for side in [&mut p.local, &mut p.remote] {
        if side.port.is_none() && !side.service.is_empty() {
            side.port = port_by_name(proto, side.service.as_bytes());
        }
    }
    let (src, dst) = if p.inbound.unwrap_or(true) { (p.remote, p.local) } else { (p.local, p.remote) };
    let r = &mut p.rec;
    r.src = src.addr;
    r.dst = dst.addr;
    r.src_name = src.name;
    if matches!(proto, 6 | 17) {
        r.sport = src.port;
        r.dport = dst.port;
    }
    r.line = p.first_line;
    Ok(p.rec)
}

/// ICMP message names as Norton writes them, to types.
fn icmp_type(name: &[u8]) -> Option<u8> {
    const NAMES: [(&[u8], u8); 15] = [
        (b"Echo Reply", 0),
        (b"Destination Unreachable", 3),
        (b"Source Quench", 4),
        (b"Redirect", 5),
        (b"Echo Request", 8),
        (b"Router Advertisement", 9),
        (b"Router Solicitation", 10),
        (b"Time Exceeded", 11),
        (b"Parameter Problem", 12),
        (b"Timestamp Request", 13),
        (b"Timestamp Reply", 14),
        (b"Information Request", 15),
        (b"Information Reply", 16),
        (b"Address Mask Request", 17),
        (b"Address Mask Reply", 18),
    ];
    let name = trim(name);
    NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, t)| *t)
}

/// The built-in port table, parsed once.
fn builtin_ports() -> &'static PortTable {
    static TABLE: OnceLock<PortTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        PortTable::parse(crate::config::BUILTIN_PORTS_LABEL, crate::config::BUILTIN_PORTS_TOML).unwrap_or_default()
    })
}

/// A service name's port: the port table's names and aliases first, then
/// the common service names.
pub fn port_by_name(proto: u8, name: &[u8]) -> Option<u16> {
    let proto = if proto == 17 { 17 } else { 6 };
    builtin_ports().port_by_name(proto, name).or_else(|| service_port(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fwlog::testutil::tctx;
    use crate::output::timefmt::rfc3339_us;

    /// One line's outcome (None: not Norton).
    type Outcome = Option<Result<FwRecord, Skip>>;

    /// Feeds `text` line by line: each line's outcome, the records, and the
    /// dropped records (including at the end).
    fn feed_all(text: &str) -> (Vec<Outcome>, Vec<FwRecord>, Vec<(u32, &'static str)>) {
        let mut a = Assembler::new();
        let (mut outs, mut recs, mut dropped) = (vec![], vec![], vec![]);
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let out = a.feed(l.as_bytes(), i as u32 + 1, &tctx());
            if let Some(Ok(r)) = &out {
                recs.push(*r);
            }
            outs.push(out);
            dropped.extend(a.take_dropped());
        }
        dropped.extend(a.finish());
        (outs, recs, dropped)
    }

    const RULE: &str = "9/8/2001 11:44:50 Rule \"Default Block Backdoor-g-1 Trojan horse\" blocked (192.0.2.10,Backdoor-g-1).  Details:
Inbound TCP connection
Local address,service is (192.0.2.10,Backdoor-g-1)
Remote address,service is (203.0.113.7,3187)
Process name is \"N/A\"
";

    #[test]
    fn rule_record_every_field() {
        let (outs, recs, dropped) = feed_all(RULE);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(recs.len(), 1);
        assert!(outs[..4].iter().all(|o| *o == Some(Err(Skip::Other(Some(Format::Norton))))), "{outs:?}");
        let r = recs[0];
        assert_eq!((r.format, r.action, r.line), (Format::Norton, Action::Deny, 1));
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2001-09-08T11:44:50.000000Z");
        assert_eq!(r.rule.as_str(), "Default Block Backdoor-g-1 Trojan horse");
        assert_eq!(r.src, "203.0.113.7".parse().ok());
        assert_eq!(r.dst, "192.0.2.10".parse().ok());
        // Backdoor-g-1 is an alias of tcp/1243 (SubSeven) in rules/ports.toml.
        assert_eq!((r.proto, r.sport, r.dport), (Some(6), Some(3187), Some(1243)));
        assert_eq!(r.tcp_flags, None);
    }

    #[test]
    fn unused_port_blocking_and_service_forms() {
        let text = "9/10/2001 9:52:53 PM Unused port blocking has blocked communications.  Details:
Inbound TCP connection
Remote address,local service is (198.51.100.19,telnet)
";
        let (_, recs, dropped) = feed_all(text);
        assert!(dropped.is_empty(), "{dropped:?}");
        let r = recs[0];
        assert_eq!((r.action, r.proto, r.dport, r.sport, r.dst), (Action::Deny, Some(6), Some(23), None, None));
        assert_eq!(r.src, "198.51.100.19".parse().ok());
        assert_eq!(r.rule.as_str(), "Unused port blocking");
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2001-09-10T21:52:53.000000Z");
        // With its optional process line, and `name(PORT)` and `host(ADDR)`.
        let text = "1/2/2003 0:00:01 Unused port blocking has blocked communications.  Details:
Inbound TCP connection
Remote address,local service is (dialup-7.example.net(198.51.100.20),NetBus)
Process name is \"N/A\"
1/2/2003 0:00:02 Rule \"Default Block NetBus Trojan horse\" stealthed (192.0.2.10,NetBus(12345)).  Details:
Inbound TCP connection
Local address,service is (192.0.2.10,NetBus(12345))
Remote address,service is (198.51.100.20,4711)
Process name is \"N/A\"
";
        let (outs, recs, dropped) = feed_all(text);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(outs[3], Some(Err(Skip::Other(Some(Format::Norton)))));
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].dport, recs[0].src_name.as_str().as_ref()), (Some(12345), "dialup-7.example.net"));
        assert_eq!(recs[0].src, "198.51.100.20".parse().ok());
        assert_eq!(
            (recs[1].action, recs[1].dport, recs[1].sport, recs[1].line),
            (Action::Drop, Some(12345), Some(4711), 5)
        );
    }

    #[test]
    fn udp_icmp_and_outbound() {
        let text = "2/18/2002 10:21:07 Rule \"Default Block ssdp\" blocked (192.0.2.2,ssdp).  Details:
Inbound UDP packet
Local address,service is (192.0.2.2,ssdp)
Remote address,service is (192.0.2.1,1900)
Process name is \"N/A\"
2/18/2002 10:21:08 Rule \"Block ping\" blocked (192.0.2.2,0).  Details:
Inbound ICMP request
Local address is (192.0.2.2)
Remote address is (203.0.113.9)
Message type is \"Echo Request\"
Process name is \"N/A\"
2/18/2002 10:21:09 Rule \"Block IRC\" permitted (198.51.100.3,6667).  Details:
Outbound TCP connection
Remote address,service is (198.51.100.3,6667)
Process name is \"C:\\Program Files\\mirc\\mirc.exe\"
";
        let (_, recs, dropped) = feed_all(text);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].proto, recs[0].sport, recs[0].dport), (Some(17), Some(1900), Some(1900)));
        assert_eq!((recs[1].proto, recs[1].icmp, recs[1].src), (Some(1), Some((8, 0)), "203.0.113.9".parse().ok()));
        assert_eq!((recs[1].sport, recs[1].dport), (None, None));
        // Outbound: the local side is the source; the header names the remote pair.
        assert_eq!(
            (recs[2].action, recs[2].dst, recs[2].dport),
            (Action::Accept, "198.51.100.3".parse().ok(), Some(6667))
        );
    }

    #[test]
    fn wrapped_records_are_joined() {
        let text = "9/8/2001 11:44:50 Rule \"Default Block Backdoor-g-1
Trojan horse\" blocked
(192.0.2.10,Backdoor-g-1).  Details:
Inbound TCP
connection
Local address,service is
(192.0.2.10,Backdoor-g-1)
Remote address,service is (203.0.113.7,
3187)
Process name is
\"N/A\"
";
        let (_, recs, dropped) = feed_all(text);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].sport, recs[0].dport, recs[0].line), (Some(3187), Some(1243), 1));
        assert_eq!(recs[0].rule.as_str(), "Default Block Backdoor-g-1 Trojan horse");
    }

    #[test]
    fn cut_records_are_bad_at_their_first_line() {
        // Interrupted by the next record's first line, then truncated at the end.
        let two = format!("{}{}", &RULE[..RULE.find("Remote").unwrap()], RULE);
        let text = format!("{two}{}", &RULE[..RULE.find("Process").unwrap()]);
        let (_, recs, dropped) = feed_all(&text);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].line, 4);
        assert_eq!(dropped.len(), 2, "{dropped:?}");
        assert_eq!(dropped[0].0, 1);
        assert!(dropped[0].1.contains("interrupted"));
        assert_eq!(dropped[1].0, 9);
        assert!(dropped[1].1.contains("end of the input"));
        // A line that continues nothing ends the record; it is left to the other formats.
        let text = format!("{}Mar 15 20:55:15 fw kernel: hello\n", &RULE[..RULE.find("Remote").unwrap()]);
        let (outs, _, dropped) = feed_all(&text);
        assert_eq!(outs.last(), Some(&None));
        assert_eq!(dropped, vec![(1, "Norton record truncated: a line that continues none of its clauses")]);
        // A continuation with no record before it, and an unreadable clause.
        let (outs, _, _) = feed_all("Remote address,service is (203.0.113.7,3187)\n");
        assert!(matches!(outs[0], Some(Err(Skip::Bad { format: Some(Format::Norton), .. }))));
        let bad_addr = RULE.replace("(203.0.113.7,3187)", "(203.0.113.777,3187)");
        let (outs, recs, dropped) = feed_all(&bad_addr);
        assert!(recs.is_empty() && dropped.is_empty(), "{recs:?} {dropped:?}");
        assert!(matches!(outs[3], Some(Err(Skip::Bad { format: Some(Format::Norton), reason: "bad Norton address" }))));
        // The broken record's last line is not a second bad line.
        assert_eq!(outs[4], Some(Err(Skip::Other(Some(Format::Norton)))));
    }

    #[test]
    fn not_norton_lines_are_left_alone() {
        let mut a = Assembler::new();
        for l in [
            "Mar 15 20:55:15 linux kernel: DROP IN=eth0",
            "10/10/2002 03:14:40 something else",
            "13/40/2002 03:14:40 Rule \"x\" blocked (1.2.3.4,80).",
            "Rule \"x\" blocked (1.2.3.4,80).",
        ] {
            assert_eq!(a.feed(l.as_bytes(), 1, &tctx()), None, "{l}");
        }
        assert!(!a.is_open());
    }

    #[test]
    fn service_names_map_through_the_port_table() {
        assert_eq!(port_by_name(6, b"Backdoor-g-1"), Some(1243));
        assert_eq!(port_by_name(6, b"backdoor-g-2"), Some(6711));
        assert_eq!(port_by_name(6, b"Backdoor-g-3"), Some(6776));
        assert_eq!(port_by_name(6, b"NetBus"), Some(12345));
        assert_eq!(port_by_name(6, b"telnet"), Some(23));
        assert_eq!(port_by_name(17, b"ssdp"), Some(1900));
        // Several SubSeven ports: the name alone says none of them.
        assert_eq!(port_by_name(6, b"subseven"), None);
        assert_eq!(port_by_name(6, b"no-such-service"), None);
    }

    #[test]
    fn hostile_lines_do_not_panic() {
        let mut a = Assembler::new();
        let lines: [&[u8]; 10] = [
            b"1/1/2001 0:0:0 Rule \"",
            b"1/1/2001 0:00:00 Rule \"\" blocked ().",
            b"Local address,service is ((((((",
            b")))))) Details:",
            b"1/1/2001 99:00:00 PM Rule \"a\" x (,)",
            b"1/1/2001 12:00:00 AM Unused port blocking \xff\xfe",
            b"Inbound",
            b"Remote address,local service is (a(b(c),d)",
            b"Process name is \"",
            b"Message type is \"\"",
        ];
        for round in 0..50 {
            for (i, l) in lines.iter().enumerate() {
                let _ = a.feed(l, (round * 10 + i) as u32 + 1, &tctx());
                let _ = a.take_dropped();
            }
        }
        let _ = a.finish();
        assert!(!a.is_open());
    }
}
