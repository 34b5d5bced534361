//! Small bounded building blocks of detector tables: distinct-value
//! sketches and table keys hashed in as few hasher calls as possible.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Packet time between expiry sweeps of a whole table: expiry is checked to
/// within this much, and a tick does not walk every entry.
pub const SWEEP_US: i64 = 10_000_000;

/// Packet time between expiry sweeps of a table whose entries idle out
/// after `idle_us`: `SWEEP_US`, or a tenth of the idle time when that is
/// longer. Walking a large table is a pass over memory, so a table kept for
/// ten minutes is swept every minute, not every ten seconds; entries live
/// at most 10% longer than their idle time.
#[inline]
pub fn sweep_every(idle_us: i64) -> i64 {
    SWEEP_US.max(idle_us / 10)
}

/// The hash map every detector table uses: foldhash is several times faster
/// than SipHash on small keys and is seeded per process, so spoofed keys
/// cannot be chosen to collide.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A fixed-size distinct-value sketch (linear counting) of `64 * W` bits:
/// exact for a handful of values, within a few percent up to about `64 * W`,
/// and never larger than `8 * W` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Distinct<const W: usize>([u64; W]);

/// 256 bits: distinct ports or hosts per source.
pub type Distinct256 = Distinct<4>;
/// 1024 bits: distinct source ports of a retry loop.
pub type Distinct1024 = Distinct<16>;

impl<const W: usize> Default for Distinct<W> {
    fn default() -> Self {
        Distinct([0; W])
    }
}

impl<const W: usize> Distinct<W> {
    const BITS: u64 = 64 * W as u64;

    /// Adds a value; returns true if its bit was new.
    #[inline]
    pub fn insert(&mut self, v: u64) -> bool {
        let h = (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % Self::BITS;
        let (w, b) = ((h / 64) as usize, h % 64);
        let Some(word) = self.0.get_mut(w) else {
            return false;
        };
        let new = *word & (1 << b) == 0;
        *word |= 1 << b;
        new
    }

    /// Whether `v` may have been inserted (false: certainly not).
    #[inline]
    pub fn may_contain(&self, v: u64) -> bool {
        let h = (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % Self::BITS;
        self.0.get((h / 64) as usize).is_some_and(|w| w & (1 << (h % 64)) != 0)
    }

    /// The sketch of the union of both sets.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
        out
    }

    /// Jaccard similarity of the two sets as the sketches see them: shared
    /// bits over all set bits (1.0 for identical sets, 0.0 if either is empty).
    pub fn jaccard(&self, other: &Self) -> f64 {
        let (mut both, mut any) = (0u32, 0u32);
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            both += (a & b).count_ones();
            any += (a | b).count_ones();
        }
        if any == 0 { 0.0 } else { f64::from(both) / f64::from(any) }
    }

    /// The estimated number of distinct values inserted.
    pub fn estimate(&self) -> u64 {
        Self::estimate_from_zeros(self.zeros())
    }

    /// Bits still clear.
    #[inline]
    pub fn zeros(&self) -> u64 {
        let ones: u64 = self.0.iter().map(|w| u64::from(w.count_ones())).sum();
        Self::BITS - ones
    }

    /// The linear-counting estimate for a sketch with `zeros` clear bits
    /// (a function of that count alone, so callers on a hot path may
    /// tabulate it).
    pub fn estimate_from_zeros(zeros: u64) -> u64 {
        if zeros == 0 {
            return Self::BITS * 6; // saturated: "very many"
        }
        let m = Self::BITS as f64;
        (-m * (zeros.min(Self::BITS) as f64 / m).ln()).round() as u64
    }
}

/// Feeds two addresses and a small tag (protocol, port) to a hasher in as
/// few calls as possible: one for an IPv4 pair. Table keys hash with this
/// instead of the derived `Hash` (an enum tag and a length-prefixed byte
/// slice per address: several hasher calls each), which was a tenth of a
/// worker's time. Equal keys still hash equal; IPv4 and IPv6 keys never
/// compare equal, so their hashes may overlap.
#[inline]
pub fn hash_pair<H: Hasher>(a: &IpAddr, b: &IpAddr, tag: u32, h: &mut H) {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => h.write_u64((u64::from(x.to_bits()) << 32) | u64::from(y.to_bits())),
        _ => {
            h.write_u128(v6_bits(a));
            h.write_u128(v6_bits(b));
        }
    }
    h.write_u32(tag);
}

#[inline]
fn v6_bits(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(x) => u128::from(x.to_bits()),
        IpAddr::V6(x) => x.to_bits(),
    }
}

/// An ordered address pair as a table key, hashed in one call for IPv4
/// (see `hash_pair`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairKey(pub IpAddr, pub IpAddr);

impl Hash for PairKey {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_pair(&self.0, &self.1, 0, h);
    }
}

impl From<(IpAddr, IpAddr)> for PairKey {
    fn from((a, b): (IpAddr, IpAddr)) -> PairKey {
        PairKey(a, b)
    }
}

/// An address as a table key, hashed in one call (see `hash_pair`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrKey(pub IpAddr);

impl Hash for AddrKey {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self.0 {
            IpAddr::V4(x) => h.write_u32(x.to_bits()),
            IpAddr::V6(x) => h.write_u128(x.to_bits()),
        }
    }
}

/// splitmix64's finaliser: every input bit reaches every output bit, so
/// structured values (consecutive addresses, ports in the high bits) spread
/// over a sketch or filter.
#[inline]
pub fn mix(h: u64) -> u64 {
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether an address can expect a unicast answer: not multicast,
/// broadcast (including an IPv4 .255), or unspecified. Probes to the others
/// are chatter (`smurf` owns directed broadcasts).
#[inline]
pub fn unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !(v.is_multicast() || v.is_broadcast() || v.octets()[3] == 255 || v.is_unspecified()),
        IpAddr::V6(v) => !(v.is_multicast() || v.is_unspecified()),
    }
}

/// Whether an address is local to a site: RFC 1918, IPv4 link-local,
/// IPv6 link-local or unique local. Two such addresses talking are one LAN
/// (or one site), where device discovery polls are ordinary.
#[inline]
pub fn site_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_private() || v.is_link_local(),
        IpAddr::V6(v) => {
            let s = v.segments()[0];
            s & 0xffc0 == 0xfe80 || s & 0xfe00 == 0xfc00
        }
    }
}

/// Hashes an address for the sketches.
#[inline]
pub fn addr_key(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_is_exact_when_small_and_close_when_large() {
        let mut d = Distinct256::default();
        for p in [1024u64, 1025, 1026, 1024] {
            d.insert(p);
        }
        assert_eq!(d.estimate(), 3);
        let mut d = Distinct256::default();
        for p in 0..150u64 {
            d.insert(p);
        }
        let e = d.estimate();
        assert!((135..=165).contains(&e), "{e}");
    }

    #[test]
    fn jaccard_of_port_sets() {
        let set = |ports: &[u64]| {
            let mut d = Distinct1024::default();
            ports.iter().for_each(|p| {
                d.insert(*p);
            });
            d
        };
        let a = set(&[20, 21, 22, 23, 80, 443]);
        assert_eq!(a.jaccard(&set(&[443, 80, 23, 22, 21, 20])), 1.0);
        let j = a.jaccard(&set(&[20, 21, 22, 23, 80, 8080]));
        assert!((j - 5.0 / 7.0).abs() < 1e-9, "{j}");
        assert_eq!(a.jaccard(&set(&[1, 2, 3])), 0.0);
        assert_eq!(Distinct1024::default().jaccard(&Distinct1024::default()), 0.0);
    }
}
