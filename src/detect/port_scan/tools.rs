//! Scanner fingerprints (`rules/scanners.toml`): how each tool's probes look
//! on the wire, derived from captures of the real tools in `pcaps/`, so
//! `port_scan` can say `tool: "nmap"` and why.
//!
//! A `[[tool]]` entry describes one tool's SYN probes: the TCP window(s),
//! the TCP options in wire order, the DF bit, a fixed IP ID, the initial
//! TTL, and two facts about the whole scan: whether every probe carries the
//! same ISN and how the source port moves. A probe matches an entry when
//! every per-probe field given matches; a scan is the tool's when at least
//! `share` of its SYN probes match and the per-scan facts hold. The first
//! entry that fits wins; none is `unknown`.
//!
//! The file is hostile input like every rules file: unknown keys, bad
//! values and more than `MAX_TOOLS` entries are errors naming the line.

use crate::config::{ConfigError, MAX_RULES_FILE_BYTES, too_big};
use crate::decode::summary::{PacketSummary, TcpInfo};
use crate::detect::ttl::initial_ttl;
use serde::Deserialize;
use toml::Spanned;

/// Entries a table may hold (one bit each in a probe's match mask).
pub const MAX_TOOLS: usize = 16;

/// One tool's fingerprint.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    /// Accepted TCP windows; empty: any.
    pub windows: Vec<u16>,
    /// Option kinds in wire order as `TcpOpts::layout` nibbles, and their
    /// count; None: any.
    pub options: Option<(u32, u8)>,
    pub df: Option<bool>,
    pub ip_id: Option<u32>,
    /// 32, 64, 128 or 255; None: any.
    pub ttl_initial: Option<u8>,
    /// Every SYN probe carries one ISN (nmap's raw SYNs).
    pub same_isn: Option<bool>,
    /// "fixed", "incrementing" or "varying"; None: any.
    pub source_port: Option<String>,
    /// Share of SYN probes that must match (0..1).
    pub share: f64,
    /// A mass scanner (`role = "scanner"`, the default): its probes are
    /// never a client's, so its repeated SYNs to one port are a scan's
    /// retries, not a retry loop. A packet crafter (`"crafter"`, hping3)
    /// sends whatever its user asks, a retry loop included.
    pub scanner: bool,
    /// Where the fingerprint comes from (capture and tool version).
    pub evidence: String,
}

/// The fingerprints, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolTable {
    pub tools: Vec<Tool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolsFile {
    #[serde(default)]
    tool: Vec<Spanned<ToolEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolEntry {
    name: String,
    #[serde(default)]
    window: Vec<u16>,
    options: Option<String>,
    df: Option<bool>,
    ip_id: Option<u32>,
    ttl_initial: Option<u8>,
    same_isn: Option<bool>,
    source_port: Option<String>,
    share: Option<f64>,
    role: Option<String>,
    evidence: String,
}

/// The wire-order nibble of a TCP option name (`TcpOpts::layout`).
fn option_nibble(name: &str) -> Option<u32> {
    Some(match name {
        "eol" => 0,
        "nop" => 1,
        "mss" => 2,
        "ws" => 3,
        "sackok" => 4,
        "sack" => 5,
        "ts" => 8,
        _ => return None,
    })
}

fn parse_options(s: &str) -> Result<(u32, u8), String> {
    let names: Vec<&str> = s.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.len() > 8 {
        return Err(format!("at most 8 options, got {}", names.len()));
    }
    let mut layout = 0u32;
    for (i, n) in names.iter().enumerate() {
        let v = option_nibble(n)
            .ok_or_else(|| format!("unknown TCP option `{n}` (expected mss, sackok, ts, nop, ws, sack, eol)"))?;
        layout |= v << (4 * i);
    }
    Ok((layout, names.len() as u8))
}

impl ToolTable {
    /// Parses `scanners.toml`; errors name the file and the entry's line.
    pub fn parse(file: &str, text: &str) -> Result<ToolTable, ConfigError> {
        if text.len() as u64 > MAX_RULES_FILE_BYTES {
            return Err(too_big(file, text.len() as u64));
        }
        let f: ToolsFile = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        if f.tool.len() > MAX_TOOLS {
            return Err(ConfigError::file(file, format!("at most {MAX_TOOLS} [[tool]] entries, got {}", f.tool.len())));
        }
        let mut tools = Vec::new();
        for e in f.tool {
            let at = e.span().start;
            let e = e.into_inner();
            let bad = |key: &str, msg: String| {
                ConfigError::at(file, text, at, Some(key.to_string()), format!("[[tool]] {key}: {msg}"))
            };
            if e.name.is_empty() || e.name.len() > 32 {
                return Err(bad("name", "name must be 1 to 32 characters".into()));
            }
            let options = match e.options.as_deref() {
                Some(o) => Some(parse_options(o).map_err(|m| bad("options", m))?),
                None => None,
            };
            if let Some(t) = e.ttl_initial
                && ![32, 64, 128, 255].contains(&t)
            {
                return Err(bad("ttl_initial", format!("must be 32, 64, 128 or 255, got {t}")));
            }
            if let Some(sp) = e.source_port.as_deref()
                && !["fixed", "incrementing", "varying"].contains(&sp)
            {
                return Err(bad("source_port", format!("must be fixed, incrementing or varying, got `{sp}`")));
            }
            let scanner = match e.role.as_deref() {
                None | Some("scanner") => true,
                Some("crafter") => false,
                Some(r) => return Err(bad("role", format!("must be scanner or crafter, got `{r}`"))),
            };
            let share = e.share.unwrap_or(0.8);
            if !(share > 0.0 && share <= 1.0) {
                return Err(bad("share", format!("must be above 0 and at most 1, got {share}")));
            }
            tools.push(Tool {
                name: e.name,
                windows: e.window,
                options,
                df: e.df,
                ip_id: e.ip_id,
                ttl_initial: e.ttl_initial,
                same_isn: e.same_isn,
                source_port: e.source_port,
                share,
                scanner,
                evidence: e.evidence,
            });
        }
        Ok(ToolTable { tools })
    }

    /// The entries a SYN probe matches, one bit per entry.
    #[inline]
    pub fn matches(&self, p: &PacketSummary, t: &TcpInfo) -> u16 {
        let Some(ip) = &p.ip else { return 0 };
        let mut mask = 0u16;
        for (i, tool) in self.tools.iter().enumerate() {
            let ok = (tool.windows.is_empty() || tool.windows.contains(&t.window))
                && tool.options.is_none_or(|(layout, n)| t.opts.count == n && t.opts.layout == layout)
                && tool.df.is_none_or(|df| ip.df == df)
                && tool.ip_id.is_none_or(|id| ip.ip_id == id)
                && tool.ttl_initial.is_none_or(|ttl| initial_ttl(ip.ttl) == ttl);
            if ok {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// The tool whose fingerprint the scan fits: `hits[i]` SYN probes of
    /// `syns` matched entry i; `same_isn` and `source_port` describe the scan.
    pub fn name_of(&self, hits: &[u32; MAX_TOOLS], syns: u64, same_isn: bool, source_port: &str) -> Option<&Tool> {
        if syns == 0 {
            return None;
        }
        self.tools.iter().enumerate().find_map(|(i, tool)| {
            let share = f64::from(hits[i]) / syns as f64;
            let fits = share >= tool.share
                && tool.same_isn.is_none_or(|s| s == same_isn)
                && tool.source_port.as_deref().is_none_or(|sp| sp == source_port);
            fits.then_some(tool)
        })
    }

    /// The mask of the mass scanners' entries (`role = "scanner"`).
    pub fn scanner_mask(&self) -> u16 {
        self.tools.iter().enumerate().filter(|(_, t)| t.scanner).fold(0, |m, (i, _)| m | 1 << i)
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_bad_entries_name_their_line() {
        let t = ToolTable::parse("rules/scanners.toml", crate::config::BUILTIN_SCANNERS_TOML).unwrap();
        assert!(t.tools.iter().any(|x| x.name == "nmap") && t.tools.iter().all(|x| !x.evidence.is_empty()));
        // Value checks name the entry's line; unknown keys their own.
        for (bad, line, key) in [
            ("[[tool]]\nname = \"x\"\nevidence = \"y\"\noptions = \"mss,bogus\"\n", 1, "options"),
            ("[[tool]]\nname = \"x\"\nevidence = \"y\"\nttl_initial = 100\n", 1, "ttl_initial"),
            ("[[tool]]\nname = \"x\"\nevidence = \"y\"\nsource_port = \"up\"\n", 1, "source_port"),
            ("[[tool]]\nname = \"x\"\nevidence = \"y\"\nshare = 0\n", 1, "share"),
            ("[[tool]]\nname = \"x\"\nevidence = \"y\"\nwindoww = [1]\n", 4, "windoww"),
            ("\n[[tool]]\nname = \"x\"\n", 2, "evidence"),
        ] {
            let e = ToolTable::parse("rules/scanners.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
        assert_eq!(parse_options("mss,sackok,ts,nop,ws"), Ok((0x3_1842, 5)));
        assert_eq!(parse_options(""), Ok((0, 0)));
    }
}
