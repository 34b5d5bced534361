//! The home net: the CIDR blocks on our side of the firewall (`--home-net`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A set of CIDR blocks.
///
/// Blocks are stored pre-masked as `(network, mask)` pairs so that
/// [`HomeNet::contains`] is a handful of AND/compare operations per block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HomeNet {
    /// IPv4 blocks: (network, mask), network already masked.
    v4: Vec<(u32, u32)>,
    /// IPv4 prefix lengths, parallel to `v4`.
    v4_prefix: Vec<u8>,
    /// IPv6 blocks: (network, mask), network already masked.
    v6: Vec<(u128, u128)>,
    /// IPv6 prefix lengths, parallel to `v6`.
    v6_prefix: Vec<u8>,
}

fn mask_v4(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

fn mask_v6(prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) }
}

impl HomeNet {
    /// Parses `CIDR[,CIDR...]`.
    ///
    /// Each token is an IPv4 or IPv6 address with an optional `/prefix`; a bare
    /// address means `/32` or `/128`. Whitespace around tokens is ignored and
    /// empty tokens (e.g. a trailing comma) are skipped. Host bits below the
    /// prefix are accepted and masked off, as Snort does. Duplicate blocks are
    /// kept once. The error names the offending token.
    pub fn parse(s: &str) -> Result<HomeNet, String> {
        let mut net = HomeNet::default();
        for raw in s.split(',') {
            let tok = raw.trim();
            if tok.is_empty() {
                continue;
            }
            let (addr_s, prefix_s) = match tok.split_once('/') {
                Some((a, p)) => (a.trim(), Some(p.trim())),
                None => (tok, None),
            };
            let addr: IpAddr = addr_s.parse().map_err(|_| format!("home net: bad address in `{tok}`"))?;
            let max = if addr.is_ipv4() { 32u8 } else { 128u8 };
            let prefix = match prefix_s {
                None => max,
                Some(p) => {
                    let ok = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
                    match p.parse::<u8>() {
                        Ok(n) if ok && n <= max => n,
                        _ => {
                            return Err(format!("home net: bad prefix length in `{tok}` (must be 0..={max})"));
                        }
                    }
                }
            };
            net.push(addr, prefix);
        }
        Ok(net)
    }

    fn push(&mut self, addr: IpAddr, prefix: u8) {
        match addr {
            IpAddr::V4(a) => {
                let mask = mask_v4(prefix);
                let block = (u32::from(a) & mask, mask);
                if !self.v4.contains(&block) {
                    self.v4.push(block);
                    self.v4_prefix.push(prefix);
                }
            }
            IpAddr::V6(a) => {
                let mask = mask_v6(prefix);
                let block = (u128::from(a) & mask, mask);
                if !self.v6.contains(&block) {
                    self.v6.push(block);
                    self.v6_prefix.push(prefix);
                }
            }
        }
    }

    /// True when no block is configured.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Number of configured blocks (IPv4 plus IPv6).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when `ip` is inside one of the blocks. An IPv4-mapped IPv6
    /// address (`::ffff:a.b.c.d`) is matched as IPv6 only.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.contains_v4(u32::from(a)),
            IpAddr::V6(a) => self.contains_v6(u128::from(a)),
        }
    }

    /// [`HomeNet::contains`] for an IPv4 address as a host-order `u32`.
    #[inline]
    pub fn contains_v4(&self, ip: u32) -> bool {
        self.v4.iter().any(|&(net, mask)| ip & mask == net)
    }

    /// [`HomeNet::contains`] for an IPv6 address as a host-order `u128`.
    #[inline]
    pub fn contains_v6(&self, ip: u128) -> bool {
        self.v6.iter().any(|&(net, mask)| ip & mask == net)
    }

    /// The IPv4 blocks as (network address as host-order `u32`, prefix length).
    pub fn blocks_v4(&self) -> impl Iterator<Item = (u32 /*net*/, u8 /*prefix*/)> + '_ {
        self.v4.iter().zip(self.v4_prefix.iter()).map(|(&(net, _), &p)| (net, p))
    }

    /// The IPv6 blocks as (network address as host-order `u128`, prefix length).
    pub fn blocks_v6(&self) -> impl Iterator<Item = (u128, u8)> + '_ {
        self.v6.iter().zip(self.v6_prefix.iter()).map(|(&(net, _), &p)| (net, p))
    }
}

impl fmt::Display for HomeNet {
    /// Comma-separated blocks in canonical form, e.g. `10.0.0.0/8,2001:db8::/32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (net, p) in self.blocks_v4() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}/{}", Ipv4Addr::from(net), p)?;
        }
        for (net, p) in self.blocks_v6() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}/{}", Ipv6Addr::from(net), p)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty() {
        let h = HomeNet::parse("").unwrap();
        assert!(h.is_empty());
        assert!(!h.contains(ip("10.0.0.1")));
        assert_eq!(h.to_string(), "");
        assert!(HomeNet::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn v4_blocks_and_whitespace() {
        let h = HomeNet::parse(" 192.168.1.0/24 , 10.0.0.0/8,172.16.5.4 ").unwrap();
        assert!(!h.is_empty());
        assert_eq!(h.len(), 3);
        assert!(h.contains(ip("192.168.1.0")));
        assert!(h.contains(ip("192.168.1.255")));
        assert!(!h.contains(ip("192.168.2.1")));
        assert!(h.contains(ip("10.255.255.255")));
        assert!(!h.contains(ip("11.0.0.0")));
        assert!(h.contains(ip("172.16.5.4")));
        assert!(!h.contains(ip("172.16.5.5")));
        assert!(!h.contains(ip("::1")));
        assert_eq!(h.to_string(), "192.168.1.0/24,10.0.0.0/8,172.16.5.4/32");
    }

    #[test]
    fn host_bits_are_masked() {
        let h = HomeNet::parse("192.168.1.77/24").unwrap();
        assert_eq!(h.to_string(), "192.168.1.0/24");
        assert!(h.contains(ip("192.168.1.1")));
        let blocks: Vec<_> = h.blocks_v4().collect();
        assert_eq!(blocks, vec![(0xC0A8_0100, 24)]);
    }

    #[test]
    fn zero_prefix_matches_everything() {
        let h = HomeNet::parse("0.0.0.0/0,::/0").unwrap();
        assert!(h.contains(ip("8.8.8.8")));
        assert!(h.contains(ip("2001:db8::1")));
    }

    #[test]
    fn v6_blocks() {
        let h = HomeNet::parse("2001:db8::/32, fe80::1").unwrap();
        assert!(h.contains(ip("2001:db8:ffff::1")));
        assert!(!h.contains(ip("2001:db9::1")));
        assert!(h.contains(ip("fe80::1")));
        assert!(!h.contains(ip("fe80::2")));
        assert!(!h.contains(ip("10.0.0.1")));
        assert_eq!(h.to_string(), "2001:db8::/32,fe80::1/128");
        assert_eq!(h.blocks_v4().count(), 0);
        assert_eq!(h.blocks_v6().count(), 2);
    }

    #[test]
    fn duplicates_collapse() {
        let h = HomeNet::parse("10.0.0.0/8,10.1.2.3/8").unwrap();
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn errors_name_the_token() {
        let e = HomeNet::parse("10.0.0.0/8,10.0.0.0/33").unwrap_err();
        assert!(e.contains("`10.0.0.0/33`"), "{e}");
        let e = HomeNet::parse("2001:db8::/129").unwrap_err();
        assert!(e.contains("`2001:db8::/129`"), "{e}");
        let e = HomeNet::parse("10.0.0.0/8, bogus").unwrap_err();
        assert!(e.contains("`bogus`"), "{e}");
        let e = HomeNet::parse("10.0.0.0/").unwrap_err();
        assert!(e.contains("`10.0.0.0/`"), "{e}");
        let e = HomeNet::parse("10.0.0.0/-1").unwrap_err();
        assert!(e.contains("`10.0.0.0/-1`"), "{e}");
        let e = HomeNet::parse("10.0.0.0/+8").unwrap_err();
        assert!(e.contains("`10.0.0.0/+8`"), "{e}");
        let e = HomeNet::parse("256.0.0.0/8").unwrap_err();
        assert!(e.contains("`256.0.0.0/8`"), "{e}");
    }
}
