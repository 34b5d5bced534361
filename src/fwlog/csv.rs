//! CSV exports of firewall logs (spreadsheets, SIEM exports, personal
//! firewalls): a header row names the columns, and common aliases are mapped
//! (`src_ip`, `source`, `srcport`, `dest`, `dst_port`, `protocol`,
//! `disposition`...). The delimiter is `,`, `;` or a tab, whichever the
//! header uses; fields may be double-quoted.
//!
//! Without `--fw-format csv`, a file is CSV when its first line is a header
//! naming at least a source or destination address column and two more
//! known columns.

use super::record::{Action, Format, FwRecord, Label, Skip, bad, flags};
use super::text::{dec, ip, port, proto_number, trim};
use super::time::{Stamp, TimeCtx, bsd, epoch, iso, us_date};

/// Most columns read.
pub const MAX_COLUMNS: usize = 64;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Time,
    Date,
    ClockTime,
    Action,
    Proto,
    Type,
    Src,
    Sport,
    Dst,
    Dport,
    Ttl,
    Len,
    Flags,
    Rule,
    IpId,
    Iface,
    Other,
}

const ALIASES: [(Field, &[&str]); 15] = [
    (
        Field::Time,
        &[
            "time",
            "timestamp",
            "datetime",
            "date_time",
            "@timestamp",
            "ts",
            "event_time",
            "eventtime",
            "receive_time",
            "logtime",
            "log_time",
        ],
    ),
    (Field::Date, &["date"]),
    (Field::Action, &["action", "disposition", "verdict", "act", "decision", "result", "event_action"]),
    (Field::Proto, &["proto", "protocol", "ip_proto", "ipproto", "transport"]),
    (Field::Type, &["type"]),
    (
        Field::Src,
        &[
            "src",
            "src_ip",
            "srcip",
            "source",
            "source_ip",
            "sourceip",
            "source_address",
            "src_addr",
            "srcaddr",
            "saddr",
            "sip",
            "ip_src",
            "client_ip",
            "from",
            "remote_ip",
            "remote_address",
        ],
    ),
    (Field::Sport, &["sport", "src_port", "srcport", "source_port", "sourceport", "spt", "s_port"]),
    (
        Field::Dst,
        &[
            "dst",
            "dst_ip",
            "dstip",
            "dest",
            "dest_ip",
            "destip",
            "destination",
            "destination_ip",
            "destination_address",
            "dst_addr",
            "dstaddr",
            "daddr",
            "dip",
            "ip_dst",
            "to",
            "local_ip",
            "local_address",
        ],
    ),
    (
        Field::Dport,
        &[
            "dport",
            "dst_port",
            "dstport",
            "dest_port",
            "destport",
            "destination_port",
            "dpt",
            "d_port",
            "port",
            "local_port",
        ],
    ),
    (Field::Ttl, &["ttl", "hop_limit", "hoplimit"]),
    (Field::Len, &["len", "length", "size", "bytes", "packet_size", "pkt_len"]),
    (Field::Flags, &["flags", "tcp_flags", "tcpflags"]),
    (Field::Rule, &["rule", "rule_name", "rule_id", "prefix", "policy", "acl", "reason", "log_prefix"]),
    (Field::IpId, &["id", "ip_id", "ipid"]),
    (Field::Iface, &["iface", "interface", "in", "in_interface"]),
];

/// The header's column layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    fields: [Field; MAX_COLUMNS],
    n: usize,
    delim: u8,
}

/// Splits `line` on `delim` outside double quotes into `out`; returns the
/// count, or `None` past `MAX_COLUMNS`. Quotes around a value are dropped.
fn split<'a>(line: &'a [u8], delim: u8, out: &mut [&'a [u8]; MAX_COLUMNS]) -> Option<usize> {
    let mut n = 0;
    let mut start = 0;
    let mut quoted = false;
    for i in 0..=line.len() {
        let c = line.get(i).copied();
        if c == Some(b'"') {
            quoted = !quoted;
        } else if c.is_none() || (c == Some(delim) && !quoted) {
            if n == MAX_COLUMNS {
                return None;
            }
            let v = trim(&line[start..i]);
            out[n] = v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v);
            n += 1;
            start = i + 1;
        }
    }
    Some(n)
}

fn field_of(name: &[u8]) -> Field {
    let mut norm = [0u8; 32];
    if name.len() > norm.len() {
        return Field::Other;
    }
    for (d, s) in norm.iter_mut().zip(name) {
        *d = match s.to_ascii_lowercase() {
            b'-' | b' ' | b'.' => b'_',
            c => c,
        };
    }
    let norm = &norm[..name.len()];
    if norm == b"time" {
        return Field::ClockTime; // promoted to Time below when there is no date column
    }
    ALIASES.iter().find(|(_, names)| names.iter().any(|n| n.as_bytes() == norm)).map_or(Field::Other, |(f, _)| *f)
}

/// Reads a header row; `None` unless it names an address column and two
/// more known columns.
pub fn header(line: &[u8]) -> Option<Columns> {
    let delim = [b',', b';', b'\t'].into_iter().max_by_key(|d| line.iter().filter(|c| *c == d).count())?;
    let mut vals: [&[u8]; MAX_COLUMNS] = [b""; MAX_COLUMNS];
    let n = split(line, delim, &mut vals)?;
    let mut c = Columns { fields: [Field::Other; MAX_COLUMNS], n, delim };
    for (i, v) in vals[..n].iter().enumerate() {
        c.fields[i] = field_of(v);
    }
    let has_date = c.fields[..n].contains(&Field::Date);
    let has_proto = c.fields[..n].contains(&Field::Proto);
    if !has_date {
        for f in c.fields[..n].iter_mut().filter(|f| **f == Field::ClockTime) {
            *f = Field::Time;
        }
    }
    // `type` is the protocol only when no protocol column exists.
    if !has_proto {
        for f in c.fields[..n].iter_mut().filter(|f| **f == Field::Type) {
            *f = Field::Proto;
        }
    }
    let known = c.fields[..n].iter().filter(|f| **f != Field::Other && **f != Field::Type).count();
    let has_addr = c.fields[..n].iter().any(|f| matches!(f, Field::Src | Field::Dst));
    (n >= 2 && has_addr && known >= 3).then_some(c)
}

/// Any time form a CSV export may use, making up all of `v`.
fn time_value(v: &[u8]) -> Option<Stamp> {
    if let Some(s) = epoch(v) {
        return Some(s);
    }
    let whole = |r: Option<(Stamp, usize)>| r.filter(|(_, used)| *used == v.len()).map(|(s, _)| s);
    whole(iso(v)).or_else(|| whole(us_date(v))).or_else(|| whole(bsd(v)))
}

/// Parses one data row under `cols`.
pub fn parse(line: &[u8], cols: &Columns, tctx: &TimeCtx) -> Result<FwRecord, Skip> {
    if line.starts_with(b"#") {
        return Err(Skip::Other(Some(Format::Csv)));
    }
    let mut vals: [&[u8]; MAX_COLUMNS] = [b""; MAX_COLUMNS];
    let n = split(line, cols.delim, &mut vals).ok_or(bad(Format::Csv, "too many columns"))?;
    if n != cols.n {
        return Err(bad(Format::Csv, "column count differs from the header"));
    }
    let get = |f: Field| {
        cols.fields[..n].iter().position(|&x| x == f).map(|i| vals[i]).filter(|v| !v.is_empty() && *v != b"-")
    };
    let action = match get(Field::Action) {
        Some(a) => Action::from_word(a).ok_or(bad(Format::Csv, "unknown action"))?,
        None => Action::Log,
    };
    let mut rec = FwRecord::new(Format::Csv, action);
    let b = |what| bad(Format::Csv, what);
    if let Some(t) = get(Field::Time) {
        rec.ts_us = Some(time_value(t).ok_or(b("bad time"))?.resolve(tctx));
    } else if let (Some(d), Some(t)) = (get(Field::Date), get(Field::ClockTime)) {
        let mut both = [0u8; 48];
        let len = d.len() + 1 + t.len();
        if len > both.len() {
            return Err(b("bad date/time"));
        }
        both[..d.len()].copy_from_slice(d);
        both[d.len()] = b' ';
        both[d.len() + 1..len].copy_from_slice(t);
        let v = &both[..len];
        let whole = |r: Option<(Stamp, usize)>| r.filter(|(_, used)| *used == len).map(|(s, _)| s);
        let s = whole(iso(v)).or_else(|| whole(us_date(v))).ok_or(b("bad date/time"))?;
        rec.ts_us = Some(s.resolve(tctx));
    }
    rec.proto = get(Field::Proto).map(|p| proto_number(p).ok_or(b("unknown protocol"))).transpose()?;
    rec.src = get(Field::Src).map(|v| ip(v).ok_or(b("bad source address"))).transpose()?;
    rec.dst = get(Field::Dst).map(|v| ip(v).ok_or(b("bad destination address"))).transpose()?;
    rec.sport = get(Field::Sport).map(|v| port(v).ok_or(b("bad source port"))).transpose()?;
    rec.dport = get(Field::Dport).map(|v| port(v).ok_or(b("bad destination port"))).transpose()?;
    if rec.src.is_none() && rec.dst.is_none() {
        return Err(b("no address"));
    }
    rec.ttl = get(Field::Ttl).and_then(dec).and_then(|v| u8::try_from(v).ok());
    rec.len = get(Field::Len).and_then(dec).and_then(|v| u32::try_from(v).ok());
    rec.ip_id = get(Field::IpId).and_then(dec).and_then(|v| u32::try_from(v).ok());
    rec.tcp_flags = get(Field::Flags).and_then(|f| {
        flags::from_letters(f).or_else(|| {
            f.split(|c| matches!(c, b' ' | b'|' | b'/' | b'+'))
                .filter(|w| !w.is_empty())
                .try_fold(0u8, |acc, w| Some(acc | flags::from_name(w)?))
        })
    });
    if let Some(r) = get(Field::Rule) {
        rec.rule = Label::new(r);
    }
    if let Some(i) = get(Field::Iface) {
        rec.iface = Label::new(i);
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::timefmt::rfc3339_us;

    use crate::fwlog::testutil::tctx;

    // No real CSV firewall export is in the corpus: these rows are written
    // after the column sets of SIGNATURES.md section 10 ("time, source,
    // destination, type, sport, dport") and common SIEM exports.
    #[test]
    fn signatures_column_set() {
        let c = header(b"time,source,destination,type,sport,dport").unwrap();
        let r = parse(b"2026-11-22T07:06:00Z,198.51.100.7,192.0.2.10,TCP,1666,158", &c, &tctx()).unwrap();
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2026-11-22T07:06:00.000000Z");
        assert_eq!((r.proto, r.sport, r.dport, r.action), (Some(6), Some(1666), Some(158), Action::Log));
    }

    #[test]
    fn aliases_quotes_semicolons_ipv6_and_odd_spacing() {
        let c = header(b"\"Date\";\"Time\";\"Action\";\"Protocol\";\"Src_IP\";\"SrcPort\";\"Dst IP\";\"Dst-Port\";\"Flags\";\"Rule Name\"").unwrap();
        let r = parse(
            b"\"11/22/2026\" ; 07:06:00;\"Blocked\";udp;  2001:db8::7 ;137;2001:db8:d::10;137;;\"drop, netbios\"",
            &c,
            &tctx(),
        );
        // Date and time columns: the date is MM/DD/YYYY.
        let r = r.unwrap();
        assert_eq!(rfc3339_us(r.ts_us.unwrap()), "2026-11-22T07:06:00.000000Z");
        assert_eq!((r.action, r.proto, r.src), (Action::Deny, Some(17), "2001:db8::7".parse().ok()));
        assert_eq!(r.rule.as_str(), "drop, netbios");
        let c = header(b"timestamp\tsrc_ip\tdst_ip\tdst_port\tproto\ttcp_flags\taction\tttl").unwrap();
        let r = parse(b"1795331160.5\t198.51.100.7\t192.0.2.10\t158\t6\tSYN|ACK\tdeny\t52", &c, &tctx()).unwrap();
        assert_eq!(
            (r.ts_us, r.tcp_flags, r.ttl),
            (Some(1_795_331_160_500_000), Some(flags::SYN | flags::ACK), Some(52))
        );
        // Missing optional columns are fine.
        let r = parse(b"Nov 22 07:06:00\t198.51.100.7\t\t\t\t\t\t", &c, &tctx()).unwrap();
        assert_eq!((r.dst, r.dport, r.action), (None, None, Action::Log));
    }

    #[test]
    fn not_headers_and_bad_rows() {
        assert!(header(b"Mar 30 15:55:20 enigma pf: <nop,nop,timestamp 1815379950 17589621,[|tcp]>").is_none());
        assert!(header(b"a,b,c").is_none());
        assert!(header(b"src,dst").is_none());
        let c = header(b"time,src,dst,dport").unwrap();
        assert!(matches!(parse(b"2026-11-22T07:06:00Z,198.51.100.7,192.0.2.10", &c, &tctx()), Err(Skip::Bad { .. })));
        assert!(matches!(parse(b"yesterday,198.51.100.7,192.0.2.10,80", &c, &tctx()), Err(Skip::Bad { .. })));
        assert!(matches!(
            parse(b"2026-11-22T07:06:00Z,198.51.100.7,192.0.2.10,http", &c, &tctx()),
            Err(Skip::Bad { .. })
        ));
        assert!(matches!(parse(b"2026-11-22T07:06:00Z,,,80", &c, &tctx()), Err(Skip::Bad { .. })));
    }
}
