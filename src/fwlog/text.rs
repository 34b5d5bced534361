//! Byte-level lexing shared by the log parsers: finding words, splitting
//! tokens, and reading numbers, addresses and ports out of untrusted bytes
//! without allocating. Nothing here panics on any input.

use std::net::IpAddr;

/// Position of `needle` in `hay`, if any.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if needle.len() > hay.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(off) => {
                let at = i + off;
                if hay[at..].starts_with(needle) {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// Position of `word` in `hay` where it starts a token (at the start or after
/// a space).
pub fn find_token(hay: &[u8], word: &[u8]) -> Option<usize> {
    let mut from = 0;
    while from <= hay.len() {
        let at = from + find(&hay[from..], word)?;
        if at == 0 || hay[at - 1] == b' ' {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// `b` without leading and trailing ASCII whitespace.
pub fn trim(b: &[u8]) -> &[u8] {
    trim_end(trim_start(b))
}

/// `b` without leading ASCII whitespace.
pub fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// `b` without trailing ASCII whitespace (spaces, tabs, `\r`).
pub fn trim_end(b: &[u8]) -> &[u8] {
    let n = b.iter().rev().take_while(|c| c.is_ascii_whitespace()).count();
    &b[..b.len() - n]
}

/// Splits off the first space-delimited token: `(token, rest)`, with leading
/// spaces skipped on both.
pub fn next_token(b: &[u8]) -> (&[u8], &[u8]) {
    let b = trim_start(b);
    let end = b.iter().position(|c| c.is_ascii_whitespace()).unwrap_or(b.len());
    (&b[..end], trim_start(&b[end..]))
}

/// Strips `prefix` (ASCII case-insensitive) from the start of `b`.
pub fn strip_prefix_ci<'a>(b: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if b.len() >= prefix.len() && b[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&b[prefix.len()..])
    } else {
        None
    }
}

/// A decimal number made of all of `b` (no sign, no spaces, at most 18 digits).
pub fn dec(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A decimal or `0x`-prefixed hexadecimal number made of all of `b`.
pub fn num(b: &[u8]) -> Option<u64> {
    match strip_prefix_ci(b, b"0x") {
        Some(h) if !h.is_empty() && h.len() <= 15 => {
            let mut n = 0u64;
            for c in h {
                n = n * 16 + u64::from(char::from(*c).to_digit(16)?);
            }
            Some(n)
        }
        Some(_) => None,
        None => dec(b),
    }
}

/// A port number (0..=65535) made of all of `b`.
pub fn port(b: &[u8]) -> Option<u16> {
    dec(b).and_then(|n| u16::try_from(n).ok())
}

/// The leading decimal digits of `b` as a number, and what follows them.
pub fn leading_dec(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    Some((dec(&b[..n])?, &b[n..]))
}

/// An IPv4 or IPv6 address made of all of `b` (an IPv6 zone `%eth0` and
/// enclosing brackets are accepted and dropped).
pub fn ip(b: &[u8]) -> Option<IpAddr> {
    let b = b.strip_prefix(b"[").and_then(|x| x.strip_suffix(b"]")).unwrap_or(b);
    let b = match b.iter().position(|&c| c == b'%') {
        Some(z) if b.contains(&b':') => &b[..z],
        _ => b,
    };
    if b.len() < 2 || b.len() > 45 {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Splits `addr<sep>port` at the last `sep`; the port must be a number.
pub fn ip_port(b: &[u8], sep: u8) -> Option<(IpAddr, u16)> {
    let at = b.iter().rposition(|&c| c == sep)?;
    Some((ip(&b[..at])?, port(&b[at + 1..])?))
}

/// The IP protocol number for a name as firewalls print it (`TCP`, `udp`,
/// `ICMPv6`, `6`...).
pub fn proto_number(b: &[u8]) -> Option<u8> {
    if let Some(n) = dec(b) {
        return u8::try_from(n).ok();
    }
    const NAMES: [(&[u8], u8); 14] = [
        (b"tcp", 6),
        (b"udp", 17),
        (b"icmp", 1),
        (b"icmpv6", 58),
        (b"ipv6-icmp", 58),
        (b"icmp6", 58),
        (b"igmp", 2),
        (b"gre", 47),
        (b"esp", 50),
        (b"ah", 51),
        (b"sctp", 132),
        (b"udplite", 136),
        (b"dccp", 33),
        (b"ipv6", 41),
    ];
    NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(b)).map(|(_, p)| *p)
}

/// Well-known service names (Cisco ASA port literals, inetd/TCP Wrappers
/// daemon names) to ports. `None` for names not listed.
pub fn service_port(name: &[u8]) -> Option<u16> {
    const SERVICES: [(&[u8], u16); 62] = [
        (b"aol", 5190),
        (b"bgp", 179),
        (b"biff", 512),
        (b"bootpc", 68),
        (b"bootps", 67),
        (b"chargen", 19),
        (b"citrix-ica", 1494),
        (b"cmd", 514),
        (b"ctiqbe", 2748),
        (b"daytime", 13),
        (b"discard", 9),
        (b"domain", 53),
        (b"echo", 7),
        (b"exec", 512),
        (b"finger", 79),
        (b"ftp", 21),
        (b"ftp-data", 20),
        (b"gopher", 70),
        (b"h323", 1720),
        (b"hostname", 101),
        (b"http", 80),
        (b"https", 443),
        (b"ident", 113),
        (b"imap4", 143),
        (b"irc", 194),
        (b"isakmp", 500),
        (b"kerberos", 750),
        (b"klogin", 543),
        (b"kshell", 544),
        (b"ldap", 389),
        (b"ldaps", 636),
        (b"login", 513),
        (b"lotusnotes", 1352),
        (b"lpd", 515),
        (b"netbios-dgm", 138),
        (b"netbios-ns", 137),
        (b"netbios-ssn", 139),
        (b"nfs", 2049),
        (b"nntp", 119),
        (b"ntp", 123),
        (b"pcanywhere-data", 5631),
        (b"pop2", 109),
        (b"pop3", 110),
        (b"pptp", 1723),
        (b"radius", 1645),
        (b"rip", 520),
        (b"rsh", 514),
        (b"rtsp", 554),
        (b"sip", 5060),
        (b"smtp", 25),
        (b"snmp", 161),
        (b"snmptrap", 162),
        (b"sqlnet", 1521),
        (b"ssh", 22),
        (b"sunrpc", 111),
        (b"syslog", 514),
        (b"tacacs", 49),
        (b"telnet", 23),
        (b"tftp", 69),
        (b"time", 37),
        (b"www", 80),
        (b"xdmcp", 177),
    ];
    SERVICES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, p)| *p)
}

/// A port given as a number or as a service name.
pub fn port_or_service(b: &[u8]) -> Option<u16> {
    port(b).or_else(|| service_port(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_tokens() {
        assert_eq!(find(b"abc IN=eth0", b"IN="), Some(4));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find_token(b"MIN=1 IN=2", b"IN="), Some(6));
        assert_eq!(find_token(b"IN=2", b"IN="), Some(0));
        assert_eq!(find_token(b"XIN=2", b"IN="), None);
        assert_eq!(next_token(b"  a  b c"), (&b"a"[..], &b"b c"[..]));
        assert_eq!(next_token(b""), (&b""[..], &b""[..]));
    }

    #[test]
    fn numbers() {
        assert_eq!(dec(b"0042"), Some(42));
        assert_eq!(dec(b"4a"), None);
        assert_eq!(dec(b"9999999999999999999999"), None);
        assert_eq!(num(b"0x1F"), Some(31));
        assert_eq!(num(b"0x"), None);
        assert_eq!(port(b"65536"), None);
        assert_eq!(leading_dec(b"12ab"), Some((12, &b"ab"[..])));
    }

    #[test]
    fn addresses() {
        assert_eq!(ip(b"192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(ip(b"2001:0db8:0000:f101:0000:0000:0000:0002"), "2001:db8:0:f101::2".parse().ok());
        assert_eq!(ip(b"fe80::1%eth0"), "fe80::1".parse().ok());
        assert_eq!(ip(b"192.0.2"), None);
        assert_eq!(ip(b"\xff\xfe"), None);
        assert_eq!(ip_port(b"192.0.2.1/80", b'/'), Some(("192.0.2.1".parse().unwrap(), 80)));
        assert_eq!(ip_port(b"2001:db8::1.22", b'.'), Some(("2001:db8::1".parse().unwrap(), 22)));
    }

    #[test]
    fn names() {
        assert_eq!(proto_number(b"ICMPv6"), Some(58));
        assert_eq!(proto_number(b"47"), Some(47));
        assert_eq!(proto_number(b"300"), None);
        assert_eq!(service_port(b"netbios-ns"), Some(137));
        assert_eq!(port_or_service(b"ssh"), Some(22));
    }
}
