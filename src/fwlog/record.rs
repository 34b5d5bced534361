//! What every firewall-log line becomes: the fixed-size, `Copy` record
//! ([`FwRecord`]) with its format, action and flags, why a line gave no
//! record ([`Skip`]), and why a record was not fed to the detectors
//! ([`Unfed`]). The parsers write these; everything else reads them.

use super::text;
use std::net::IpAddr;

/// The log formats picket reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// Linux netfilter: iptables/nftables `LOG` and ulogd LOGEMU lines.
    Netfilter,
    /// Cisco ASA / PIX / FWSM syslog messages.
    Asa,
    /// OpenBSD pf, as `tcpdump -e -r pflog` text lines.
    Pf,
    /// PortSentry 1.x `attackalert:` and 2.x `Scan from:` lines, and its history file.
    PortSentry,
    /// TCP Wrappers `connect from` / `refused connect from`.
    TcpWrappers,
    /// Windows Firewall `pfirewall.log` (W3C extended, `#Fields` header).
    WinFw,
    /// CSV with a header row.
    Csv,
    /// Norton Internet Security / Norton Personal Firewall, multi-line records.
    Norton,
    /// ZoneAlarm `ZAlog.txt` (`FWIN,YYYY/MM/DD,...`).
    ZoneAlarm,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::Netfilter,
        Format::Asa,
        Format::Pf,
        Format::PortSentry,
        Format::TcpWrappers,
        Format::WinFw,
        Format::Csv,
        Format::Norton,
        Format::ZoneAlarm,
    ];

    /// The name used on the command line and in events.
    pub fn name(self) -> &'static str {
        match self {
            Format::Netfilter => "netfilter",
            Format::Asa => "asa",
            Format::Pf => "pf",
            Format::PortSentry => "portsentry",
            Format::TcpWrappers => "tcpwrappers",
            Format::WinFw => "winfw",
            Format::Csv => "csv",
            Format::Norton => "norton",
            Format::ZoneAlarm => "zonealarm",
        }
    }

    /// Parses a `--fw-format` value.
    pub fn from_name(s: &str) -> Option<Format> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "iptables" | "nftables" | "ulogd" | "ufw" => "netfilter",
            "pix" | "cisco" => "asa",
            "pfirewall" | "windows" | "w3c" => "winfw",
            "tcpd" => "tcpwrappers",
            "nis" | "symantec" => "norton",
            "za" | "zalog" => "zonealarm",
            other => other,
        };
        Format::ALL.into_iter().find(|f| f.name() == alias)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What the firewall did, or said, about the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Deny,
    Drop,
    Reject,
    Accept,
    /// A detector's alert (PortSentry) rather than a filter verdict.
    Alert,
    /// Logged, with no verdict in the line (a netfilter `LOG` rule whose
    /// prefix names none, a Windows Firewall `CLOSE`).
    Log,
}

impl Action {
    pub const ALL: [Action; 6] =
        [Action::Deny, Action::Drop, Action::Reject, Action::Accept, Action::Alert, Action::Log];

    pub fn name(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Accept => "accept",
            Action::Alert => "alert",
            Action::Log => "log",
        }
    }

    /// The verdict a word names (`DROP`, `denied`, `BLOCK`, `permitted`...).
    pub fn from_word(w: &[u8]) -> Option<Action> {
        const WORDS: [(&[u8], Action); 22] = [
            (b"drop", Action::Drop),
            (b"dropped", Action::Drop),
            (b"discard", Action::Drop),
            (b"discarded", Action::Drop),
            (b"deny", Action::Deny),
            (b"denied", Action::Deny),
            (b"block", Action::Deny),
            (b"blocked", Action::Deny),
            (b"reject", Action::Reject),
            (b"rejected", Action::Reject),
            (b"refused", Action::Reject),
            (b"accept", Action::Accept),
            (b"accepted", Action::Accept),
            (b"allow", Action::Accept),
            (b"allowed", Action::Accept),
            (b"permit", Action::Accept),
            (b"permitted", Action::Accept),
            (b"pass", Action::Accept),
            (b"open", Action::Accept),
            (b"alert", Action::Alert),
            (b"log", Action::Log),
            (b"close", Action::Log),
        ];
        WORDS.iter().find(|(n, _)| n.eq_ignore_ascii_case(w)).map(|(_, a)| *a)
    }

    /// True for verdicts that stopped the packet or flagged it.
    pub fn is_denial(self) -> bool {
        !matches!(self, Action::Accept)
    }
}

/// Short text kept inline (a log prefix, an ACL name, a host name), cut to
/// `N` bytes at a character boundary when longer. Bytes are kept as the log
/// has them; [`Label::as_str`] shows invalid UTF-8 lossily.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Default for Label<N> {
    fn default() -> Self {
        Label { len: 0, bytes: [0; N] }
    }
}

impl<const N: usize> Label<N> {
    /// Copies `b` (trimmed), cut to at most `N` bytes.
    pub fn new(b: &[u8]) -> Label<N> {
        let b = text::trim(b);
        let mut n = b.len().min(N).min(255);
        // Do not split a UTF-8 sequence.
        while n < b.len() && n > 0 && (b[n] & 0xC0) == 0x80 {
            n -= 1;
        }
        let mut l = Label { len: n as u8, bytes: [0; N] };
        l.bytes[..n].copy_from_slice(&b[..n]);
        l
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The text, with invalid UTF-8 replaced.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl<const N: usize> std::fmt::Debug for Label<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// TCP flag bits, as in the TCP header.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    /// The bit a flag name or letter stands for (`SYN`, `S`, `ACK`, `A`...).
    pub fn from_name(w: &[u8]) -> Option<u8> {
        const NAMES: [(&[u8], u8); 16] = [
            (b"FIN", FIN),
            (b"SYN", SYN),
            (b"RST", RST),
            (b"PSH", PSH),
            (b"ACK", ACK),
            (b"URG", URG),
            (b"ECE", ECE),
            (b"CWR", CWR),
            (b"F", FIN),
            (b"S", SYN),
            (b"R", RST),
            (b"P", PSH),
            (b"A", ACK),
            (b"U", URG),
            (b"E", ECE),
            (b"C", CWR),
        ];
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(w)).map(|(_, b)| *b)
    }

    /// Flags written as letters run together (`SA`, `FPU`); `None` if a letter is unknown.
    pub fn from_letters(w: &[u8]) -> Option<u8> {
        w.iter().try_fold(0u8, |acc, c| Some(acc | from_name(std::slice::from_ref(c))?))
    }

    /// The flags as names (`SYN,ACK`), in header order from CWR to FIN... reversed for reading.
    pub fn names(bits: u8) -> String {
        const ORDER: [(u8, &str); 8] = [
            (SYN, "SYN"),
            (ACK, "ACK"),
            (FIN, "FIN"),
            (RST, "RST"),
            (PSH, "PSH"),
            (URG, "URG"),
            (ECE, "ECE"),
            (CWR, "CWR"),
        ];
        ORDER.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(",")
    }
}

/// One firewall log line, as far as its format tells. Fixed-size and `Copy`:
/// it holds no heap data, so it can cross threads like a packet summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwRecord {
    /// When the firewall logged the packet: µs since the epoch, UTC.
    pub ts_us: Option<i64>,
    /// A kernel `[uptime]` stamp (µs since boot), when the line has one.
    pub uptime_us: Option<i64>,
    pub format: Format,
    pub action: Action,
    /// IP protocol number.
    pub proto: Option<u8>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    /// TCP flags (bits of [`flags`]).
    pub tcp_flags: Option<u8>,
    /// TTL or IPv6 hop limit.
    pub ttl: Option<u8>,
    pub ip_id: Option<u32>,
    /// TCP sequence number (netfilter `SEQ=` with `--log-tcp-sequence`).
    pub seq: Option<u32>,
    /// IP packet length (total length), or the size the log reports.
    pub len: Option<u32>,
    /// The rule, ACL or log prefix (`[UFW BLOCK]`, `acl_dmz`, `2/(match)`).
    pub rule: Label<40>,
    /// The interface the packet came in on (or went out of).
    pub iface: Label<16>,
    /// The source's name when the log gives one (TCP Wrappers, PortSentry),
    /// with or without an address.
    pub src_name: Label<48>,
    /// Input file index (order on the command line) and 1-based line number.
    pub file: u16,
    pub line: u32,
}

impl FwRecord {
    /// An empty record of `format` with `action`.
    pub fn new(format: Format, action: Action) -> FwRecord {
        FwRecord {
            ts_us: None,
            uptime_us: None,
            format,
            action,
            proto: None,
            src: None,
            dst: None,
            sport: None,
            dport: None,
            icmp: None,
            tcp_flags: None,
            ttl: None,
            ip_id: None,
            seq: None,
            len: None,
            rule: Label::default(),
            iface: Label::default(),
            src_name: Label::default(),
            file: 0,
            line: 0,
        }
    }
}

/// Why a line gave no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not a packet record: another program's line, a header or comment, or a
    /// firewall message that names no packet (then `Some(format)`).
    Other(Option<Format>),
    /// It looks like a record of `format`, but cannot be read; `reason` says why.
    Bad { format: Option<Format>, reason: &'static str },
    /// A line of `format` that is not a packet picket reads, of a kind the
    /// tallies name (ZoneAlarm's `FWOUT` and `PE` lines): counted as other.
    Kind { format: Format, kind: &'static str },
}

/// Shorthand for a bad line of `format`.
pub fn bad(format: Format, reason: &'static str) -> Skip {
    Skip::Bad { format: Some(format), reason }
}

/// Why a record was not fed to the detectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfed {
    /// The firewall let it through: it may have been answered.
    Accepted,
    /// No time, or no protocol and addresses.
    NoFlow,
    /// TCP or UDP without both ports (PortSentry, TCP Wrappers).
    NoPorts,
}

impl Unfed {
    pub const ALL: [Unfed; 3] = [Unfed::Accepted, Unfed::NoFlow, Unfed::NoPorts];

    pub fn name(self) -> &'static str {
        match self {
            Unfed::Accepted => "accepted",
            Unfed::NoFlow => "no_flow",
            Unfed::NoPorts => "no_ports",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_small_and_copy() {
        fn is_copy<T: Copy + Send + 'static>() {}
        is_copy::<FwRecord>();
        assert!(std::mem::size_of::<FwRecord>() <= 256, "{}", std::mem::size_of::<FwRecord>());
    }

    #[test]
    fn labels_cut_at_char_boundaries() {
        let l = Label::<4>::new("aé€".as_bytes()); // 1 + 2 + 3 bytes
        assert_eq!(l.as_str(), "aé");
        assert_eq!(Label::<8>::new(b"  x  ").as_bytes(), b"x");
        assert_eq!(Label::<8>::new(b"\xff\xfe").as_str(), "\u{fffd}\u{fffd}");
    }
}
