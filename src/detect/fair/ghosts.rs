//! The memory of keys seen once: a rotating, cache-blocked Bloom filter
//! (`Ghosts`) for the keys a probation pushed out, and `SeenOnce`, the same
//! filter standing alone for tables that store nothing for a first sighting.

use std::hash::{BuildHasher, Hash};

/// Keys pushed out of probation, remembered as hashes in two Bloom
/// generations of `16 * per_gen` bits with 3 probes each; the older is
/// cleared and reused when the newer has taken `per_gen` keys. A key is
/// remembered for between one and two generations of evictions.
///
/// The filter is blocked (Putze, Sanders and Singler's cache-blocked Bloom
/// filter): a key's three bits sit in one 512-bit block, and the two
/// generations' blocks for the same index lie side by side, so an `add` or
/// a `contains` costs one cache miss (two adjacent lines) instead of three
/// to six. Probation tables are touched by every forged packet of a flood,
/// so this is most of their cost. Blocking raises the false-positive rate
/// a little over the unblocked filter's (16 bits a key: about 0.5% a
/// generation instead of 0.3%).
pub(super) struct Ghosts {
    /// Block `i` of generation `g` is `words[(2 * i + g) * 8..][..8]`.
    words: Vec<u64>,
    /// Blocks per generation, a power of two.
    blocks: usize,
    /// The generation taking new keys.
    cur: usize,
    added: usize,
    per_gen: usize,
}

/// 64-bit words in a Bloom block (one 64-byte cache line).
const BLOCK_WORDS: usize = 8;

impl Ghosts {
    pub(super) fn new(per_gen: usize) -> Ghosts {
        let per_gen = per_gen.max(64);
        // 16 bits per key, in whole 512-bit blocks.
        let blocks = (per_gen * 16).div_ceil(64 * BLOCK_WORDS).next_power_of_two();
        Ghosts { words: vec![0; 2 * blocks * BLOCK_WORDS], blocks, cur: 0, added: 0, per_gen }
    }

    /// The first word of `h`'s block in generation 0 (generation 1's
    /// follows it), and three bit positions inside a block, all from one
    /// 64-bit hash: the block from the high half, the bits from the low.
    fn place(&self, h: u64) -> (usize, [u32; 3]) {
        let block = ((h >> 32) as usize) & (self.blocks - 1);
        let lo = h as u32;
        (2 * block * BLOCK_WORDS, [lo & 511, (lo >> 9) & 511, (lo >> 18) & 511])
    }

    pub(super) fn add(&mut self, h: u64) {
        if self.added >= self.per_gen {
            self.cur ^= 1;
            let cur = self.cur;
            for block in self.words.chunks_exact_mut(2 * BLOCK_WORDS) {
                if let Some(g) = block.get_mut(cur * BLOCK_WORDS..(cur + 1) * BLOCK_WORDS) {
                    g.fill(0);
                }
            }
            self.added = 0;
        }
        let (base, bits) = self.place(h);
        let base = base + self.cur * BLOCK_WORDS;
        for b in bits {
            if let Some(w) = self.words.get_mut(base + (b / 64) as usize) {
                *w |= 1 << (b % 64);
            }
        }
        self.added += 1;
    }

    pub(super) fn contains(&self, h: u64) -> bool {
        let (base, bits) = self.place(h);
        (0..2).any(|g| {
            let base = base + g * BLOCK_WORDS;
            bits.iter().all(|b| self.words.get(base + (b / 64) as usize).is_some_and(|w| w & (1 << (b % 64)) != 0))
        })
    }
}

/// Keys seen once and not stored at all: only their hashes, in the same
/// rotating Bloom filter as `Ghosts`. For tables whose entries are too big
/// to make for every key a flood forges (the report summary's per-source
/// samples): the caller admits a key into its `Tier` at its second
/// sighting (`first_sighting` false), so one-off keys cost three bits and
/// never an entry. A key is remembered for between `per_gen` and twice
/// that many newer keys; a new key is taken for a repeat at the filter's
/// false-positive rate (under 1%).
pub struct SeenOnce {
    ghosts: Ghosts,
    hasher: foldhash::quality::RandomState,
}

impl SeenOnce {
    pub fn new(per_gen: usize) -> SeenOnce {
        SeenOnce { ghosts: Ghosts::new(per_gen), hasher: Default::default() }
    }

    /// True when `k` was not seen lately (and remembers it now).
    pub fn first_sighting<K: Hash>(&mut self, k: &K) -> bool {
        let h = self.hasher.hash_one(k);
        if self.ghosts.contains(h) {
            return false;
        }
        self.ghosts.add(h);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocked_ghost_filter_remembers_two_generations_and_rarely_says_a_false_yes() {
        let h = foldhash::quality::RandomState::default();
        let mut g = Ghosts::new(10_000);
        // Two full generations: every key is remembered.
        for k in 0..20_000u64 {
            g.add(h.hash_one(k));
        }
        assert!((0..20_000u64).all(|k| g.contains(h.hash_one(k))));
        // Both generations full: the worst case for false yeses.
        let false_yes = (1_000_000..1_100_000u64).filter(|k| g.contains(h.hash_one(k))).count();
        assert!(false_yes < 1_500, "{false_yes} false yeses in 100,000");
        // A third generation clears the first.
        for k in 20_000..30_000u64 {
            g.add(h.hash_one(k));
        }
        let kept = (0..10_000u64).filter(|k| g.contains(h.hash_one(k))).count();
        assert!(kept < 1_500, "{kept} of the cleared generation's keys still found");
        assert!((10_000..30_000u64).all(|k| g.contains(h.hash_one(k))));
    }
}
