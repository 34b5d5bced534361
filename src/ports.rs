//! The port knowledge base (rules/ports.toml): what a port means and what an
//! attacker wants there, so every event can name the service.

use crate::config::{ConfigError, MAX_RULES_FILE_BYTES};
use serde::Deserialize;
use std::collections::HashMap;
use toml::Spanned;

/// Most ports one range entry may cover.
pub const MAX_RANGE_PORTS: u32 = 1024;

/// The categories a `[[port]]` entry may carry.
pub const CATEGORIES: &[&str] = &[
    "service",
    "trojan",
    "worm",
    "proxy",
    "backdoor",
    "scan",
    "misconfig",
    "p2p",
    "game",
    "chat",
    "traceroute",
    "fingerprint",
    "amplifier",
    "discovery",
];

/// One port's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Service or malware name, e.g. `pcmail-srv`.
    pub name: String,
    /// One of [`CATEGORIES`], e.g. `misconfig`.
    pub category: String,
    /// Free text: what the port means and the SIGNATURES.md section behind it.
    pub note: String,
    /// Other names logs give the port (Norton's `Backdoor-g-1` for 1243).
    pub aliases: Vec<String>,
    /// First port of the entry's range (equal to `last` for a single port).
    pub first: u16,
    /// Last port of the entry's range.
    pub last: u16,
    /// IP protocols the entry applies to (6, 17 or both).
    pub protos: Vec<u8>,
}

/// Port -> meaning, per transport protocol.
#[derive(Clone, Debug, Default)]
pub struct PortTable {
    entries: Vec<PortInfo>,
    /// (IP protocol, port) -> index into `entries`.
    index: HashMap<(u8, u16), u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortsFile {
    #[serde(default)]
    port: Vec<Spanned<PortEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortEntry {
    port: Spanned<toml::Value>,
    proto: Spanned<String>,
    name: Spanned<String>,
    category: Spanned<String>,
    #[serde(default)]
    note: String,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
}

/// Parses a port spec: an integer 0..=65535, or a string `"N"` / `"A-B"`.
fn parse_port_spec(v: &toml::Value) -> Result<(u16, u16), String> {
    let one = |s: &str| -> Result<u16, String> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{s}` is not a port number"));
        }
        s.parse::<u16>().map_err(|_| format!("port {s} is out of range (0..=65535)"))
    };
    let (a, b) = match v {
        toml::Value::Integer(i) => {
            let p = u16::try_from(*i).map_err(|_| format!("port {i} is out of range (0..=65535)"))?;
            (p, p)
        }
        toml::Value::String(s) => match s.split_once('-') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => {
                let p = one(s)?;
                (p, p)
            }
        },
        other => {
            return Err(format!(
                "must be a port number or a range string like \"2772-2773\", got a {}",
                other.type_str()
            ));
        }
    };
    if a > b {
        return Err(format!("range {a}-{b} is reversed"));
    }
    let n = u32::from(b) - u32::from(a) + 1;
    if n > MAX_RANGE_PORTS {
        return Err(format!("range {a}-{b} covers {n} ports; at most {MAX_RANGE_PORTS} are allowed per entry"));
    }
    Ok((a, b))
}

/// Name of an IP protocol number for messages.
fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        _ => "ip",
    }
}

impl PortTable {
    /// Looks up `port` for IP protocol `proto` (6 TCP, 17 UDP).
    #[inline]
    pub fn lookup(&self, proto: u8, port: u16) -> Option<&PortInfo> {
        let i = *self.index.get(&(proto, port))?;
        self.entries.get(i as usize)
    }

    /// The port a service name stands for (an entry's name or one of its
    /// aliases, ignoring ASCII case) over IP protocol `proto`: `None` when
    /// no single-port entry has that name, or when several ports do
    /// (`subseven`). A linear scan without allocation, for log parsers.
    pub fn port_by_name(&self, proto: u8, name: &[u8]) -> Option<u16> {
        let mut found = None;
        for e in &self.entries {
            let named = e.name.as_bytes().eq_ignore_ascii_case(name)
                || e.aliases.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(name));
            if !named || e.first != e.last || !e.protos.contains(&proto) {
                continue;
            }
            match found {
                Some(p) if p != e.first => return None,
                _ => found = Some(e.first),
            }
        }
        found
    }

    /// Number of (protocol, port) pairs known (ranges expanded).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the table knows no port.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The entries in file order (one per `[[port]]` table).
    pub fn entries(&self) -> &[PortInfo] {
        &self.entries
    }

    /// Parses the text of a `ports.toml`; `file` names it in errors.
    ///
    /// Each `(proto, port)` may be described once; a second entry for it is an
    /// error naming both lines.
    pub fn parse(file: &str, text: &str) -> Result<PortTable, ConfigError> {
        if text.len() as u64 > MAX_RULES_FILE_BYTES {
            return Err(ConfigError::file(
                file,
                format!("file is {} bytes; rules files are limited to {MAX_RULES_FILE_BYTES} bytes", text.len()),
            ));
        }
        let doc: PortsFile = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        let mut table = PortTable::default();
        // (proto, port) -> byte offset of the entry that claimed it.
        let mut claimed: HashMap<(u8, u16), usize> = HashMap::new();
        for (n, spanned) in doc.port.iter().enumerate() {
            let e = spanned.get_ref();
            let entry_no = n + 1;
            let key = |k: &str| format!("[[port]] #{entry_no} {k}");

            let (first, last) = parse_port_spec(e.port.get_ref())
                .map_err(|m| ConfigError::value(file, text, e.port.span(), &key("port"), m))?;

            let protos: Vec<u8> = match e.proto.get_ref().as_str() {
                "tcp" => vec![6],
                "udp" => vec![17],
                "both" => vec![6, 17],
                other => {
                    return Err(ConfigError::value(
                        file,
                        text,
                        e.proto.span(),
                        &key("proto"),
                        format!("must be \"tcp\", \"udp\" or \"both\", got \"{other}\""),
                    ));
                }
            };

            let name = e.name.get_ref().trim();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(ConfigError::value(
                    file,
                    text,
                    e.name.span(),
                    &key("name"),
                    "must be 1 to 64 printable characters",
                ));
            }

            let mut aliases = Vec::with_capacity(e.aliases.len());
            for a in &e.aliases {
                let n = a.get_ref().trim();
                if n.is_empty() || n.len() > 64 || n.chars().any(char::is_control) {
                    return Err(ConfigError::value(
                        file,
                        text,
                        a.span(),
                        &key("aliases"),
                        "each alias must be 1 to 64 printable characters",
                    ));
                }
                aliases.push(n.to_string());
            }

            let category = e.category.get_ref().as_str();
            if !CATEGORIES.contains(&category) {
                return Err(ConfigError::value(
                    file,
                    text,
                    e.category.span(),
                    &key("category"),
                    format!("unknown category \"{category}\" (expected one of: {})", CATEGORIES.join(", ")),
                ));
            }

            let idx = u32::try_from(table.entries.len()).unwrap_or(u32::MAX);
            for &proto in &protos {
                for port in first..=last {
                    if let Some(&prev) = claimed.get(&(proto, port)) {
                        return Err(ConfigError::value(
                            file,
                            text,
                            e.port.span(),
                            &key("port"),
                            format!(
                                "{}/{port} is already described by the entry at line {}",
                                proto_name(proto),
                                crate::config::line_of(text, prev)
                            ),
                        ));
                    }
                    claimed.insert((proto, port), spanned.span().start);
                    table.index.insert((proto, port), idx);
                }
            }
            table.entries.push(PortInfo {
                name: name.to_string(),
                category: category.to_string(),
                note: e.note.trim().to_string(),
                aliases,
                first,
                last,
                protos,
            });
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BUILTIN_PORTS_TOML;

    fn builtin() -> PortTable {
        PortTable::parse("rules/ports.toml", BUILTIN_PORTS_TOML).unwrap()
    }

    fn entry(port: &str, proto: &str, category: &str) -> String {
        format!("[[port]]\nport = {port}\nproto = \"{proto}\"\nname = \"n\"\ncategory = \"{category}\"\nnote = \"x\"\n")
    }

    #[test]
    fn builtin_parses_and_knows_the_brief_ports() {
        let t = builtin();
        let tcp = |p| t.lookup(6, p).map(|i| i.name.as_str());
        let udp = |p| t.lookup(17, p).map(|i| i.name.as_str());
        assert_eq!(tcp(158), Some("pcmail-srv"));
        assert_eq!(t.lookup(6, 158).unwrap().category, "misconfig");
        assert_eq!(tcp(13223), Some("powwow"));
        assert_eq!(udp(27015), Some("halflife"));
        assert_eq!(udp(27910), Some("quake2"));
        assert_eq!(udp(7777), Some("unreal"));
        assert_eq!(tcp(6776), Some("subseven"));
        assert_eq!(udp(33434), Some("traceroute"));
        assert_eq!(udp(33600), Some("traceroute"));
        assert_eq!(udp(33601), None);
        assert_eq!(tcp(33434), None);
        assert_eq!(udp(137), Some("netbios-ns"));
        assert_eq!(udp(138), Some("netbios-dgm"));
        assert_eq!(tcp(139), Some("netbios-ssn"));
        assert_eq!(tcp(445), Some("microsoft-ds"));
        assert_eq!(udp(1434), Some("ms-sql-m"));
        assert_eq!(t.lookup(17, 1434).unwrap().category, "worm");
        assert_eq!(tcp(113), Some("ident"));
        assert_eq!(udp(7), Some("echo"));
        assert_eq!(udp(19), Some("chargen"));
        assert_eq!(tcp(0), Some("port-zero"));
        assert_eq!(udp(0), Some("port-zero"));
        assert_eq!(tcp(2772), Some("subseven"));
        assert_eq!(tcp(2773), Some("subseven"));
        assert_eq!(udp(31789), Some("hackatack"));
        assert_eq!(tcp(514), Some("shell"));
        assert_eq!(udp(514), Some("syslog"));
        assert_eq!(tcp(3389), Some("ms-wbt-server"));
        assert_eq!(tcp(6667), Some("irc"));
        assert_eq!(t.lookup(1, 8), None);
    }

    #[test]
    fn builtin_covers_signatures_sections_1_5_7_8() {
        let t = builtin();
        // Section 7: sscan, proxy hunters, trojans, worms.
        let tcp_ports = [
            1, 21, 22, 23, 24, 25, 53, 79, 80, 110, 111, 139, 143, 1114, 2766, 6000, 31337, // sscan
            81, 88, 1080, 3128, 8000, 8080, 8081, 8888, // proxy hunters
            555, 1243, 2772, 2773, 3129, 6670, 6711, 6776, 6969, 7215, 12345, 21544, 23456, 27374, 30100, 50505, 54283,
            1524, 600, // trojans and backdoor shells
            1433, 135, 445, 515, 2049, 635, // worms
            158, 13223, 6667, 113, 0,
        ];
        for p in tcp_ports {
            assert!(t.lookup(6, p).is_some(), "tcp/{p} missing");
        }
        for p in [1434, 137, 138, 27015, 27910, 7777, 31789, 7, 19, 53, 0, 33500] {
            assert!(t.lookup(17, p).is_some(), "udp/{p} missing");
        }
        // Every entry citing a section says which.
        for e in t.entries() {
            assert!(!e.note.is_empty(), "{} has no note", e.name);
            assert!(CATEGORIES.contains(&e.category.as_str()));
        }
        assert!(t.entries().len() >= 120, "{}", t.entries().len());
    }

    #[test]
    fn ranges_expand_and_both_means_two_protocols() {
        let t = PortTable::parse("t", &entry("\"100-103\"", "both", "scan")).unwrap();
        assert_eq!(t.len(), 8);
        assert_eq!(t.entries().len(), 1);
        let e = t.lookup(17, 103).unwrap();
        assert_eq!((e.first, e.last), (100, 103));
        assert_eq!(e.protos, vec![6, 17]);
        assert!(t.lookup(6, 104).is_none());
        let t = PortTable::parse("t", &entry("\"7\"", "tcp", "service")).unwrap();
        assert!(t.lookup(6, 7).is_some());
        let t = PortTable::parse("t", &entry("\"0-1023\"", "udp", "service")).unwrap();
        assert_eq!(t.len(), 1024);
        let t = PortTable::parse("t", &entry("65535", "udp", "service")).unwrap();
        assert!(t.lookup(17, 65535).is_some());
    }

    #[test]
    fn bad_entries_are_errors_with_lines() {
        let cases = [
            (entry("\"0-1024\"", "tcp", "service"), "at most 1024"),
            (entry("\"10-5\"", "tcp", "service"), "reversed"),
            (entry("70000", "tcp", "service"), "out of range"),
            (entry("-1", "tcp", "service"), "out of range"),
            (entry("\"a-b\"", "tcp", "service"), "not a port number"),
            (entry("\"1-\"", "tcp", "service"), "not a port number"),
            (entry("true", "tcp", "service"), "port number"),
            (entry("1", "icmp", "service"), "proto"),
            (entry("1", "tcp", "malware"), "unknown category"),
        ];
        for (text, want) in cases {
            let e = PortTable::parse("rules/ports.toml", &text).unwrap_err();
            let s = e.to_string();
            assert!(s.starts_with("rules/ports.toml:"), "{s}");
            assert!(e.line.is_some(), "{s}");
            assert!(s.contains(want), "{s} lacks {want}");
            assert!(!s.contains('\n'));
        }
    }

    #[test]
    fn duplicates_are_errors() {
        let text = format!("{}\n{}", entry("25", "tcp", "service"), entry("\"20-30\"", "both", "scan"));
        let e = PortTable::parse("p.toml", &text).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.to_string().contains("tcp/25"), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn unknown_and_missing_keys() {
        let e = PortTable::parse(
            "p.toml",
            "[[port]]\nport = 1\nproto = \"tcp\"\nname = \"a\"\ncategory = \"scan\"\ncolour = 1\n",
        )
        .unwrap_err();
        assert_eq!(e.to_string().split(" (").next().unwrap(), "p.toml:6: unknown key `colour` in [[port]]");
        let e = PortTable::parse("p.toml", "[[port]]\nport = 1\nproto = \"tcp\"\n").unwrap_err();
        assert!(e.to_string().contains("missing key `name`"), "{e}");
        let e = PortTable::parse("p.toml", "[ports]\n").unwrap_err();
        assert!(e.to_string().contains("unknown table `ports`"), "{e}");
    }

    #[test]
    fn empty_file_is_empty_table() {
        let t = PortTable::parse("p.toml", "# nothing\n").unwrap();
        assert!(t.is_empty());
        assert!(t.lookup(6, 80).is_none());
    }
}
