//! Where `-o` sends events: the targets as the user wrote them, parsed
//! before anything is opened. A path (appended, reopened on SIGHUP), `-`
//! (stdout), `unix:PATH` (a datagram socket someone else bound, as
//! Suricata's unix_dgram), `syslog:` (the local syslog, /dev/log),
//! `syslog://HOST:PORT` (RFC 5424 over UDP) and `redis://HOST:PORT/KEY`
//! (RPUSH onto a list, `?publish` for PUBLISH on a channel).

use std::fmt;
use std::path::PathBuf;

/// The local syslog socket.
pub const DEV_LOG: &str = "/dev/log";

/// One `-o` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file, appended to.
    File(PathBuf),
    /// `-`: standard output.
    Stdout,
    /// `unix:PATH`: one datagram per event on a socket bound by the reader.
    Unix(PathBuf),
    /// `syslog:`: the local syslog (the socket path, /dev/log).
    SyslogLocal(PathBuf),
    /// `syslog://HOST:PORT`: RFC 5424 over UDP.
    SyslogUdp { host: String, port: u16 },
    /// `redis://HOST:PORT/KEY[?publish]`.
    Redis { host: String, port: u16, key: String, publish: bool },
}

impl Target {
    /// Parses one `-o` value. Anything not starting with a known scheme
    /// is a path (`./unix:x` names a file called `unix:x`).
    pub fn parse(s: &str) -> Result<Target, String> {
        if s == "-" {
            return Ok(Target::Stdout);
        }
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(format!("{s}: unix: needs the socket's path (unix:/run/reader.sock)"));
            }
            return Ok(Target::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("syslog://") {
            let (host, port) = host_port(rest, 514).map_err(|e| format!("{s}: {e}"))?;
            return Ok(Target::SyslogUdp { host, port });
        }
        if s == "syslog:" {
            return Ok(Target::SyslogLocal(PathBuf::from(DEV_LOG)));
        }
        if let Some(rest) = s.strip_prefix("redis://") {
            let (rest, publish) = match rest.split_once('?') {
                Some((r, "publish")) => (r, true),
                Some((_, q)) => return Err(format!("{s}: unknown option ?{q} (only ?publish)")),
                None => (rest, false),
            };
            let Some((hp, key)) = rest.split_once('/') else {
                return Err(format!("{s}: redis:// needs a key: redis://HOST:PORT/KEY"));
            };
            if key.is_empty() {
                return Err(format!("{s}: redis:// needs a key: redis://HOST:PORT/KEY"));
            }
            if hp.contains('@') {
                return Err(format!("{s}: credentials in the URL are not supported"));
            }
            let (host, port) = host_port(hp, 6379).map_err(|e| format!("{s}: {e}"))?;
            return Ok(Target::Redis { host, port, key: key.to_string(), publish });
        }
        if s.starts_with("syslog:") || s.contains("://") {
            return Err(format!(
                "{s}: unknown output (a path, -, unix:PATH, syslog:, syslog://HOST:PORT or redis://HOST:PORT/KEY)"
            ));
        }
        if s.is_empty() {
            return Err("-o needs a target".into());
        }
        Ok(Target::File(PathBuf::from(s)))
    }

    /// A file or stdout: written by the file writer, whole lines, with
    /// back-pressure in a replay.
    pub fn is_stream(&self) -> bool {
        matches!(self, Target::File(_) | Target::Stdout)
    }
}

/// `HOST:PORT`, `HOST` (the default port) or `[V6]:PORT`.
fn host_port(s: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6.split_once(']').ok_or("an unclosed [")?;
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err(format!("unexpected {rest:?} after the address")),
        };
        (h, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None => default,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("bad port {p:?}"))?,
    };
    Ok((host.to_string(), port))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::File(p) => write!(f, "{}", p.display()),
            Target::Stdout => f.write_str("stdout"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::SyslogLocal(_) => f.write_str("syslog:"),
            Target::SyslogUdp { host, port } => write!(f, "syslog://{}:{port}", bracket(host)),
            Target::Redis { host, port, key, publish } => {
                write!(f, "redis://{}:{port}/{key}{}", bracket(host), if *publish { "?publish" } else { "" })
            }
        }
    }
}

/// An IPv6 literal in brackets.
fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_rejects_the_malformed() {
        assert_eq!(Target::parse("-").unwrap(), Target::Stdout);
        assert_eq!(Target::parse("eve.json").unwrap(), Target::File("eve.json".into()));
        assert_eq!(Target::parse("unix:/run/x.sock").unwrap(), Target::Unix("/run/x.sock".into()));
        assert_eq!(Target::parse("syslog:").unwrap(), Target::SyslogLocal(DEV_LOG.into()));
        assert_eq!(
            Target::parse("syslog://192.0.2.1:5514").unwrap(),
            Target::SyslogUdp { host: "192.0.2.1".into(), port: 5514 }
        );
        assert_eq!(Target::parse("syslog://[::1]").unwrap(), Target::SyslogUdp { host: "::1".into(), port: 514 });
        assert_eq!(
            Target::parse("redis://127.0.0.1:6380/picket?publish").unwrap(),
            Target::Redis { host: "127.0.0.1".into(), port: 6380, key: "picket".into(), publish: true }
        );
        let r = Target::parse("redis://h/k").unwrap();
        assert_eq!(r.to_string(), "redis://h:6379/k");
        for bad in [
            "",
            "unix:",
            "syslog:x",
            "redis://h:1",
            "redis://h:1/",
            "redis://h:0/k",
            "redis://h:1/k?x",
            "http://x",
            "redis://a@h/k",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
