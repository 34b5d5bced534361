//! The asset table (`rules/assets.toml`): the target terms of SIGNATURES.md
//! section 9's severity, per address block. Each `[[asset]]` names a CIDR
//! and gives its criticality and its system and network countermeasures
//! (1..5); `[home]` holds the terms of the rest of the home net (of every
//! address when no home net is given) and `[outside]` those of addresses
//! outside it.
//!
//! Blocks may overlap: the most specific block (longest prefix) wins, and
//! of two equally specific blocks the one written first (the same block
//! twice is an error). Lookups run once per detection event, never per
//! packet: a linear walk of the blocks sorted by prefix length, longest
//! first, over at most `MAX_ASSETS` entries.
//!
//! The file is hostile input like every rules file: unknown keys, values
//! out of range, bad CIDRs and more than `MAX_ASSETS` entries are errors
//! naming the file and the entry's line.

use crate::config::{ConfigError, MAX_RULES_FILE_BYTES, too_big};
use serde::Deserialize;
use std::net::IpAddr;
use toml::Spanned;

/// `[[asset]]` entries a file may hold.
pub const MAX_ASSETS: usize = 4096;
/// Longest asset name, in bytes.
pub const MAX_NAME: usize = 64;

/// A target's three severity terms, each 1..5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    pub criticality: i64,
    pub system_countermeasures: i64,
    pub network_countermeasures: i64,
}

/// One `[[asset]]`: a block, pre-masked as an IPv6 (IPv4-mapped) network.
#[derive(Clone, Debug, PartialEq)]
pub struct Asset {
    pub name: String,
    pub cidr: String,
    net: u128,
    /// Prefix length over the 128-bit form (IPv4 prefixes plus 96).
    prefix: u8,
    pub terms: Terms,
}

/// The shipped defaults: an unconfigured home host 3/2/2, an outside one
/// 1/1/1 (not ours, nothing known in front of it). Both give severity =
/// lethality - 1, as before asset data existed.
pub const HOME_DEFAULT: Terms = Terms { criticality: 3, system_countermeasures: 2, network_countermeasures: 2 };
pub const OUTSIDE_DEFAULT: Terms = Terms { criticality: 1, system_countermeasures: 1, network_countermeasures: 1 };

/// The parsed `assets.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetTable {
    /// Longest prefix first, then file order.
    assets: Vec<Asset>,
    pub home: Terms,
    pub outside: Terms,
}

impl Default for AssetTable {
    fn default() -> AssetTable {
        AssetTable { assets: Vec::new(), home: HOME_DEFAULT, outside: OUTSIDE_DEFAULT }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetsFile {
    home: Option<Spanned<TermsEntry>>,
    outside: Option<Spanned<TermsEntry>>,
    #[serde(default)]
    asset: Vec<Spanned<AssetEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermsEntry {
    criticality: Spanned<i64>,
    system_countermeasures: Spanned<i64>,
    network_countermeasures: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetEntry {
    cidr: Spanned<String>,
    name: Spanned<String>,
    criticality: Spanned<i64>,
    system_countermeasures: Spanned<i64>,
    network_countermeasures: Spanned<i64>,
}

/// `addr[/prefix]` as a 128-bit network and prefix (IPv4 mapped into
/// `::ffff:0:0/96`); host bits are masked off.
fn parse_cidr(s: &str) -> Result<(u128, u8), String> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (s.trim(), None),
    };
    let addr: IpAddr = a.parse().map_err(|_| format!("bad address `{}`", crate::config::error::printable(a, 64)))?;
    let max = if addr.is_ipv4() { 32u8 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "bad prefix length `{}` (must be 0..={max})",
                    crate::config::error::printable(p, 8)
                ));
            }
        },
    };
    let (wide, prefix) = match addr {
        IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), prefix + 96),
        IpAddr::V6(v6) => (u128::from(v6), prefix),
    };
    Ok((wide & mask(prefix), prefix))
}

fn mask(prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) }
}

fn wide(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl AssetTable {
    /// Parses `assets.toml`; errors name the file and the line.
    pub fn parse(file: &str, text: &str) -> Result<AssetTable, ConfigError> {
        if text.len() as u64 > MAX_RULES_FILE_BYTES {
            return Err(too_big(file, text.len() as u64));
        }
        let f: AssetsFile = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        if f.asset.len() > MAX_ASSETS {
            return Err(ConfigError::file(
                file,
                format!("at most {MAX_ASSETS} [[asset]] entries, got {}", f.asset.len()),
            ));
        }
        let mut t = AssetTable::default();
        if let Some(h) = f.home {
            t.home = terms(file, text, "[home]", h.into_inner())?;
        }
        if let Some(o) = f.outside {
            t.outside = terms(file, text, "[outside]", o.into_inner())?;
        }
        for e in f.asset {
            let e = e.into_inner();
            let (net, prefix) = parse_cidr(e.cidr.get_ref())
                .map_err(|m| ConfigError::value(file, text, e.cidr.span(), "[[asset]] cidr", m))?;
            let name = e.name.get_ref();
            if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
                return Err(ConfigError::value(
                    file,
                    text,
                    e.name.span(),
                    "[[asset]] name",
                    format!("must be 1 to {MAX_NAME} printable characters"),
                ));
            }
            if let Some(prev) = t.assets.iter().find(|a| a.net == net && a.prefix == prefix) {
                return Err(ConfigError::value(
                    file,
                    text,
                    e.cidr.span(),
                    "[[asset]] cidr",
                    format!("block {} is already asset `{}`", e.cidr.get_ref(), prev.name),
                ));
            }
            let tm = TermsEntry {
                criticality: e.criticality,
                system_countermeasures: e.system_countermeasures,
                network_countermeasures: e.network_countermeasures,
            };
            t.assets.push(Asset {
                name: name.clone(),
                cidr: e.cidr.get_ref().trim().to_string(),
                net,
                prefix,
                terms: terms(file, text, "[[asset]]", tm)?,
            });
        }
        // Most specific first; a stable sort keeps file order among equals.
        t.assets.sort_by_key(|a| std::cmp::Reverse(a.prefix));
        Ok(t)
    }

    /// The asset covering `ip` (most specific block), or the default of its
    /// side: `("home net", home)` or `("outside", outside)`.
    pub fn lookup(&self, ip: IpAddr, in_home: bool) -> (&str, Terms) {
        let w = wide(ip);
        for a in &self.assets {
            if w & mask(a.prefix) == a.net {
                return (&a.name, a.terms);
            }
        }
        if in_home { ("home net", self.home) } else { ("outside", self.outside) }
    }

    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }
}

fn terms(file: &str, text: &str, table: &str, e: TermsEntry) -> Result<Terms, ConfigError> {
    let check = |v: &Spanned<i64>, key: &str| {
        let n = *v.get_ref();
        if (1..=5).contains(&n) {
            Ok(n)
        } else {
            Err(ConfigError::value(
                file,
                text,
                v.span(),
                &format!("{table} {key}"),
                format!("must be between 1 and 5, got {n}"),
            ))
        }
    };
    Ok(Terms {
        criticality: check(&e.criticality, "criticality")?,
        system_countermeasures: check(&e.system_countermeasures, "system_countermeasures")?,
        network_countermeasures: check(&e.network_countermeasures, "network_countermeasures")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "rules/assets.toml";

    fn parse(t: &str) -> Result<AssetTable, ConfigError> {
        AssetTable::parse(FILE, t)
    }

    #[test]
    fn the_shipped_file_parses() {
        let t = parse(crate::config::BUILTIN_ASSETS_TOML).expect("shipped assets.toml");
        assert_eq!(t.home, HOME_DEFAULT);
        assert_eq!(t.outside, OUTSIDE_DEFAULT);
    }

    #[test]
    fn most_specific_block_wins_then_the_side_default() {
        let t = parse(
            "[home]\ncriticality = 2\nsystem_countermeasures = 3\nnetwork_countermeasures = 3\n\
             [[asset]]\ncidr = \"192.0.2.0/24\"\nname = \"dmz\"\ncriticality = 3\nsystem_countermeasures = 2\nnetwork_countermeasures = 2\n\
             [[asset]]\ncidr = \"192.0.2.10\"\nname = \"mail\"\ncriticality = 5\nsystem_countermeasures = 1\nnetwork_countermeasures = 1\n\
             [[asset]]\ncidr = \"2001:db8::/32\"\nname = \"v6\"\ncriticality = 4\nsystem_countermeasures = 4\nnetwork_countermeasures = 4\n",
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(t.lookup(ip("192.0.2.10"), true).0, "mail", "the /32 beats the /24 written before it");
        assert_eq!(t.lookup(ip("192.0.2.10"), true).1.criticality, 5);
        assert_eq!(t.lookup(ip("192.0.2.11"), true).0, "dmz");
        assert_eq!(t.lookup(ip("2001:db8::1"), false).0, "v6");
        assert_eq!(t.lookup(ip("10.0.0.1"), true), ("home net", t.home));
        assert_eq!(t.lookup(ip("198.51.100.1"), false), ("outside", OUTSIDE_DEFAULT));
        // An IPv4 block does not cover the IPv6 address with the same bits.
        assert_eq!(t.lookup(ip("::c000:20a"), false).0, "outside");
    }

    #[test]
    fn bad_files_are_one_line_errors_with_the_line() {
        let asset = |body: &str| format!("# c\n[[asset]]\n{body}");
        let full = "cidr = \"192.0.2.0/24\"\nname = \"dmz\"\ncriticality = 3\nsystem_countermeasures = 2\nnetwork_countermeasures = 2\n";
        for (text, line, needle) in [
            (
                asset(&full.replace("criticality = 3", "criticality = 6")),
                5,
                "[[asset]] criticality: must be between 1 and 5, got 6",
            ),
            (
                asset(&full.replace("network_countermeasures = 2", "network_countermeasures = 0")),
                7,
                "must be between 1 and 5, got 0",
            ),
            (asset(&full.replace("192.0.2.0/24", "192.0.2.0/33")), 3, "[[asset]] cidr: bad prefix length"),
            (asset(&full.replace("192.0.2.0/24", "not-an-ip")), 3, "[[asset]] cidr: bad address"),
            (asset(&full.replace("\"dmz\"", "\"\"")), 4, "[[asset]] name"),
            (asset(&format!("{full}owner = \"x\"\n")), 8, "unknown key `owner`"),
            (asset(&format!("{full}[[asset]]\n{full}")), 9, "already asset `dmz`"),
            (
                "[home]\ncriticality = 2\nsystem_countermeasures = 9\nnetwork_countermeasures = 2\n".into(),
                3,
                "[home] system_countermeasures",
            ),
            ("[elsewhere]\n".into(), 1, "`elsewhere`"),
            ("[[asset]]\ncidr = \"192.0.2.1\"\n".into(), 1, "missing key `name`"),
            ("[home]\ncriticality = \"high\"\n".into(), 2, "invalid type"),
        ] {
            let e = parse(&text).expect_err(&text);
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.to_string().starts_with(&format!("{FILE}:{line}: ")), "{e}");
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn hostile_text_never_panics() {
        let full = "[[asset]]\ncidr = \"192.0.2.0/24\"\nname = \"dmz\"\ncriticality = 3\nsystem_countermeasures = 2\nnetwork_countermeasures = 2\n";
        for i in 0..=full.len() {
            let _ = parse(&full[..i]);
        }
        for junk in [
            "\u{0}",
            "[[asset]]\ncidr = \"::/\"",
            "[[asset]]\ncidr = \"1.2.3.4/-1\"",
            "[[asset]]\ncidr = \"1.2.3.4/+8\"",
        ] {
            let _ = parse(junk);
        }
        let many: String = (0..=MAX_ASSETS).map(|i| format!("[[asset]]\ncidr = \"10.{}.{}.0/24\"\nname = \"a\"\ncriticality = 1\nsystem_countermeasures = 1\nnetwork_countermeasures = 1\n", i / 256, i % 256)).collect();
        assert!(parse(&many).unwrap_err().to_string().contains("at most 4096"));
    }
}
