//! Fair bounded tables (issue 17's "fair state"): a key earns its place by
//! repeating, so no flood, spoofed or from one scanner, can push out the
//! state of the sources that matter.
//!
//! - `Probation`: keys seen once, oldest out first, with their own bound:
//!   a set-associative table (two candidate 8-way buckets a key), so a
//!   lookup, an insert and its eviction touch one or two cache lines. A
//!   spoofed flood churns this tier and nothing else.
//! - `Fifo`: a bounded queue in arrival order, for entries that wait for a
//!   timeout (`pop_due`).
//! - `Tier`: promoted keys (seen again). When full, a clock hand walks the
//!   slots: a pinned entry (a confirmed detection) is never taken, an entry
//!   touched since the hand last passed gets its credit back (more credit
//!   for more evidence, so a key with more attempts outlives one with
//!   fewer), and an entry with no credit left is the victim. The hand walks
//!   at most `MAX_PROBE` slots per insert, so eviction is amortised O(1);
//!   when it finds no victim the new key is refused and the caller counts it.
//!
//! - `Ghosts`: the probation tier also remembers, in a compact filter
//!   (two rotating Bloom generations, 32 to 64 bytes per probation slot),
//!   the keys it pushed out. A key that comes back after its first sighting
//!   was evicted is a repeat all the same (2Q's "A1out"): `Fair::touch`
//!   promotes it at once. So a flood that churns probation faster than a
//!   retry loop repeats does not hide the loop; a forged key seen once is
//!   mistaken for a repeat only at the filter's false-positive rate (under
//!   1%).
//!
//! Callers count what is lost: a victim or a refused key that held two or
//! more attempts is a lost detection (`TableCounters::lost_detections`).

use super::keys::FastMap;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::AtomicU64;

/// Per-table counters (`stats.state.<table>`; here, beside the tables that
/// count in them, and re-exported by `stats`).
#[derive(Default)]
pub struct TableCounters {
    /// Entries removed because they went idle (normal expiry).
    pub expired: AtomicU64,
    /// New entries refused because the table was full.
    pub cap_hits: AtomicU64,
    /// Entries without evidence (one packet) dropped to make room when full.
    pub evicted: AtomicU64,
    /// Entries currently held (summed over workers, updated per tick).
    pub entries: AtomicU64,
    /// Keys with two or more attempts (evidence of a detection in the
    /// making) that were evicted or refused for room: detections that may
    /// have been missed. Kept only by the fair tables (`detect::fair`).
    pub lost_detections: AtomicU64,
}

/// Slots the clock hand inspects per insert into a full tier.
pub const MAX_PROBE: usize = 32;

/// What a promoted entry tells the clock about itself.
pub trait Weighted {
    /// Hand passes the entry survives untouched (0..=15): more for more
    /// evidence.
    fn credit(&self) -> u8;
    /// Never evicted (a confirmed detection).
    fn pinned(&self) -> bool;
    /// Losing the entry may lose a detection (two or more attempts, or
    /// confirmed): what `lost_detections` counts. `Fair` asks it.
    fn evidence(&self) -> bool {
        self.pinned()
    }
}

/// Clock credit for `n` pieces of evidence: one hand pass per doubling
/// (1 -> 0, 2..3 -> 1, 4..7 -> 2, ...), at most 15.
pub fn credit_of(n: u64) -> u8 {
    (64 - n.leading_zeros()).saturating_sub(1).min(15) as u8
}

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
struct Ghosts {
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
    fn new(per_gen: usize) -> Ghosts {
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

    fn add(&mut self, h: u64) {
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

    fn contains(&self, h: u64) -> bool {
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

/// A probation tier keyed by a 64-bit fingerprint of the key (a seeded
/// hash, so forged keys cannot be made to collide) instead of the key
/// itself, for tables whose every lookup comes with the key from the
/// packet, so the key is never needed back: a first sighting costs the
/// value plus 24 bytes whatever the key's size (syn_retry's 36-byte
/// (source, destination, port) keys: twice the first SYNs in the same
/// memory).
pub struct Fingerprinted<K, V> {
    fp: foldhash::fast::RandomState,
    q: Probation<u64, V>,
    key: std::marker::PhantomData<K>,
}

impl<K: Hash, V> Fingerprinted<K, V> {
    pub fn new(cap: usize) -> Fingerprinted<K, V> {
        Fingerprinted { fp: Default::default(), q: Probation::new(cap), key: std::marker::PhantomData }
    }

    /// A second table under the same fingerprints as `self` (a segment
    /// of one probation: `*_fp` calls take either's fingerprint).
    pub fn sharing_seed<W>(&self, cap: usize) -> Fingerprinted<K, W> {
        Fingerprinted { fp: self.fp.clone(), q: Probation::new(cap), key: std::marker::PhantomData }
    }

    /// The key's fingerprint: hash once, then use the `*_fp` calls.
    #[inline]
    pub fn fp(&self, k: &K) -> u64 {
        self.fp.hash_one(k)
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.q.get(&self.fp(k))
    }

    pub fn get_fp(&self, fp: u64) -> Option<&V> {
        self.q.get(&fp)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let fp = self.fp(k);
        self.q.remove(&fp)
    }

    pub fn remove_fp(&mut self, fp: u64) -> Option<V> {
        self.q.remove(&fp)
    }

    /// Inserts a key not held yet; returns how many were evicted for room.
    pub fn insert(&mut self, k: K, v: V) -> u64 {
        let fp = self.fp(&k);
        self.q.insert(fp, v)
    }

    /// Inserts a fingerprint not held yet, last in line; hands back the
    /// value it evicted for room, if any.
    pub fn insert_fp(&mut self, fp: u64, v: V) -> Option<V> {
        self.q.insert_evicting(fp, v).map(|(_, v)| v)
    }

    /// Keeps the entries `keep` says to (their fingerprints only are known).
    pub fn retain(&mut self, keep: impl FnMut(&u64, &V) -> bool) -> u64 {
        self.q.retain(keep)
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub fn clear(&mut self) {
        self.q.clear()
    }
}

/// Ways per `Probation` bucket.
const WAYS: usize = 8;

/// One `Probation` bucket: the tags and ages of up to `WAYS` entries in
/// its first cache line, the entries themselves in `slots` (allocated at
/// the bucket's first insert, never grown past `WAYS`).
#[repr(align(64))]
struct Bucket<K, V> {
    /// `tags[i]` (32 bits of the key's hash) and `ages[i]` (the table's
    /// insert count when it came) belong to `slots[i]`.
    tags: [u32; WAYS],
    ages: [u32; WAYS],
    slots: Vec<(K, V)>,
}

impl<K: Eq, V> Bucket<K, V> {
    fn empty() -> Bucket<K, V> {
        Bucket { tags: [0; WAYS], ages: [0; WAYS], slots: Vec::new() }
    }

    fn find(&self, k: &K, tag: u32) -> Option<usize> {
        (0..self.slots.len().min(WAYS))
            .find(|&i| self.tags[i] == tag && self.slots.get(i).is_some_and(|(sk, _)| sk == k))
    }

    /// The index and age (inserts since) of the oldest entry, if any.
    fn oldest(&self, now: u32) -> Option<(usize, u32)> {
        (0..self.slots.len().min(WAYS)).map(|i| (i, now.wrapping_sub(self.ages[i]))).max_by_key(|&(_, age)| age)
    }

    /// Takes out entry `i`, moving the last one into its place.
    fn take(&mut self, i: usize) -> (K, V) {
        let last = self.slots.len() - 1;
        self.tags[i] = self.tags[last];
        self.ages[i] = self.ages[last];
        self.slots.swap_remove(i)
    }
}

/// Keys seen once, with their own bound: a set-associative table of
/// 8-way buckets. A key may sit in either of two buckets (both from one
/// seeded hash, so forged keys cannot be aimed at a bucket): a new key
/// goes to the emptier one, and when both are full the older of their two
/// oldest keys makes room (two choices keep the buckets' loads even, so a
/// key is rarely pushed out before the table as a whole is nearly full).
/// A lookup reads two buckets' tag lines, which the CPU fetches at once;
/// an insert and its eviction touch nothing else. A map beside a global
/// FIFO queue paid a miss for the map, one for the queue and one for the
/// queue's oldest key in the map: a spoofed flood sends every packet
/// through several of these tables, so this was most of what a forged
/// packet cost. Over time the oldest key out first holds as for a FIFO,
/// within the two buckets a new key could take.
pub struct Probation<K, V> {
    buckets: Vec<Bucket<K, V>>,
    ways: usize,
    len: usize,
    /// Inserts so far (wrapping): an entry's age is `seq - ages[i]`.
    seq: u32,
    hasher: foldhash::quality::RandomState,
    /// Keys evicted lately (`was_evicted`); none until `with_ghosts`.
    ghosts: Option<Ghosts>,
}

// The hasher is foldhash's `quality` variant: buckets and tag come from
// different parts of the hash, and `fast` (tuned for hashbrown, which
// reads the low bits and the top seven) leaves the high half of some seeds
// so uneven over sequential keys that a half-empty table overflowed.
impl<K: Hash + Eq + Copy, V> Probation<K, V> {
    /// At most `cap` keys, rounded up to whole buckets (`cap` plus fewer
    /// than `cap / 8`; exactly `cap` when a multiple of 8 or below 9).
    pub fn new(cap: usize) -> Probation<K, V> {
        let cap = cap.max(1);
        let n = cap.div_ceil(WAYS);
        let ways = cap.div_ceil(n);
        Probation {
            buckets: (0..n).map(|_| Bucket::empty()).collect(),
            ways,
            len: 0,
            seq: 0,
            hasher: Default::default(),
            ghosts: None,
        }
    }

    /// Also remembers the keys it evicts (`was_evicted`), for at least
    /// eight times the probation's own size of evictions.
    pub fn with_ghosts(mut self) -> Probation<K, V> {
        self.ghosts = Some(Ghosts::new((self.buckets.len() * self.ways).saturating_mul(8)));
        self
    }

    /// The key's two buckets and its tag.
    #[inline]
    fn place(&self, k: &K) -> (usize, usize, u32) {
        let h = self.hasher.hash_one(k);
        let n = self.buckets.len() as u64;
        let h2 = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // Multiply-shift onto any bucket count.
        ((((h >> 32) * n) >> 32) as usize, (((h2 >> 32) * n) >> 32) as usize, h as u32)
    }

    #[inline]
    fn find(&self, k: &K) -> Option<(usize, usize)> {
        let (b1, b2, tag) = self.place(k);
        let in_bucket = |b: usize| self.buckets.get(b).and_then(|x| x.find(k, tag)).map(|i| (b, i));
        in_bucket(b1).or_else(|| in_bucket(b2))
    }

    /// Whether `k` was evicted lately (a Bloom filter: rarely a false yes).
    pub fn was_evicted(&self, k: &K) -> bool {
        self.ghosts.as_ref().is_some_and(|g| g.contains(self.hasher.hash_one(k)))
    }

    fn remember(&mut self, k: &K) {
        if let Some(g) = self.ghosts.as_mut() {
            g.add(self.hasher.hash_one(k));
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        let (b, i) = self.find(k)?;
        self.buckets.get(b).and_then(|b| b.slots.get(i)).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let (b, i) = self.find(k)?;
        self.buckets.get_mut(b).and_then(|b| b.slots.get_mut(i)).map(|(_, v)| v)
    }

    /// Takes a key out (promotion, an answer that closes it).
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (b, i) = self.find(k)?;
        let bucket = self.buckets.get_mut(b)?;
        self.len -= 1;
        Some(bucket.take(i).1)
    }

    /// Inserts a key not held yet; returns how many keys were evicted to
    /// make room (0 or 1).
    pub fn insert(&mut self, k: K, v: V) -> u64 {
        u64::from(self.insert_evicting(k, v).is_some())
    }

    /// Inserts a key not held yet (a key held already gets the new value);
    /// hands back the key it evicted, if any: the older of the oldest keys
    /// of its two buckets, when both are full.
    pub fn insert_evicting(&mut self, k: K, v: V) -> Option<(K, V)> {
        let (b1, b2, tag) = self.place(&k);
        let (l1, l2) = match (self.buckets.get(b1), self.buckets.get(b2)) {
            (Some(x), Some(y)) => {
                if let Some(i) = x.find(&k, tag) {
                    return self.set(b1, i, v);
                }
                if let Some(i) = y.find(&k, tag) {
                    return self.set(b2, i, v);
                }
                (x.slots.len(), y.slots.len())
            }
            _ => return None,
        };
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        if l1.min(l2) >= self.ways {
            // Both full: the new key takes the older victim's slot in place.
            let o1 = self.buckets.get(b1).and_then(|x| x.oldest(seq));
            let o2 = self.buckets.get(b2).and_then(|x| x.oldest(seq));
            let (b, i) = match (o1, o2) {
                (Some((_, a1)), Some((i2, a2))) if a2 > a1 => (b2, i2),
                (Some((i1, _)), _) => (b1, i1),
                (None, Some((i2, _))) => (b2, i2),
                (None, None) => return None,
            };
            let bucket = self.buckets.get_mut(b)?;
            let slot = bucket.slots.get_mut(i)?;
            let out = std::mem::replace(slot, (k, v));
            bucket.tags[i] = tag;
            bucket.ages[i] = seq;
            self.remember(&out.0);
            return Some(out);
        }
        let b = if l2 < l1 { b2 } else { b1 };
        let ways = self.ways;
        let bucket = self.buckets.get_mut(b)?;
        if bucket.slots.capacity() == 0 {
            bucket.slots.reserve_exact(ways);
        }
        let i = bucket.slots.len().min(WAYS - 1);
        bucket.tags[i] = tag;
        bucket.ages[i] = seq;
        bucket.slots.push((k, v));
        self.len += 1;
        None
    }

    fn set(&mut self, b: usize, i: usize, v: V) -> Option<(K, V)> {
        if let Some(slot) = self.buckets.get_mut(b).and_then(|x| x.slots.get_mut(i)) {
            slot.1 = v;
        }
        None
    }

    /// Keeps the entries `keep` says to; it may change them or emit a
    /// final event first. Returns how many went.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) -> u64 {
        let mut gone = 0;
        for bucket in &mut self.buckets {
            let mut i = 0;
            while i < bucket.slots.len() {
                let kept = match bucket.slots.get_mut(i) {
                    Some((k, v)) => keep(k, v),
                    None => true,
                };
                if kept {
                    i += 1;
                } else {
                    bucket.take(i);
                    gone += 1;
                }
            }
        }
        self.len -= gone;
        gone as u64
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.buckets.iter().flat_map(|b| b.slots.iter().map(|(k, v)| (k, v)))
    }

    /// Drops the keys `keep` refuses (expiry); returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> u64 {
        self.retain_mut(|k, v| keep(k, v))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        for b in &mut self.buckets {
            b.slots.clear();
        }
        self.len = 0;
    }
}

/// A bounded first-in-first-out table, for entries that wait for a
/// timeout in the order they came (`pop_due`): unanswered attempts waiting
/// to settle. Inserting when full evicts the oldest key in O(1).
pub struct Fifo<K, V> {
    map: FastMap<K, (u64, V)>,
    order: VecDeque<(K, u64)>,
    cap: usize,
    seq: u64,
}

impl<K: Hash + Eq + Copy, V> Fifo<K, V> {
    pub fn new(cap: usize) -> Fifo<K, V> {
        let cap = cap.max(1);
        Fifo {
            map: FastMap::with_capacity_and_hasher(cap.min(4096), Default::default()),
            order: VecDeque::with_capacity(cap.min(4096)),
            cap,
            seq: 0,
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }

    /// Takes a key out (promotion, an answer that closes it).
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|(_, v)| v)
    }

    /// Inserts a key not held yet; returns how many keys were evicted to
    /// make room (0 or 1, amortised).
    pub fn insert(&mut self, k: K, v: V) -> u64 {
        let mut evicted = 0;
        while self.map.len() >= self.cap {
            match self.pop_oldest() {
                Some(true) => evicted += 1,
                Some(false) => {}
                None => break,
            }
        }
        // Stale order entries (keys removed since) are dropped as the queue
        // grows, so it never holds more than twice the cap.
        while self.order.len() >= 2 * self.cap {
            if self.pop_oldest() == Some(true) {
                evicted += 1;
            }
        }
        self.seq += 1;
        self.map.insert(k, (self.seq, v));
        self.order.push_back((k, self.seq));
        evicted
    }

    /// Pops the oldest queue entry: Some(true) if it evicted a live key.
    fn pop_oldest(&mut self) -> Option<bool> {
        let (k, seq) = self.order.pop_front()?;
        // One lookup: the entry API removes the key only if it is still the
        // one this queue place was made for.
        if let Entry::Occupied(o) = self.map.entry(k)
            && o.get().0 == seq
        {
            o.remove();
            return Some(true);
        }
        Some(false)
    }

    /// Takes the oldest live key if `due` says its time has come (keys go
    /// in time order, so a table of pending timeouts settles front first).
    pub fn pop_due(&mut self, mut due: impl FnMut(&V) -> bool) -> Option<(K, V)> {
        loop {
            let (k, seq) = *self.order.front()?;
            match self.map.get(&k) {
                Some((s, v)) if *s == seq => {
                    if !due(v) {
                        return None;
                    }
                    self.order.pop_front();
                    return self.map.remove(&k).map(|(_, v)| (k, v));
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// Inserts like `insert`, handing back the key it evicted, if any.
    pub fn insert_evicting(&mut self, k: K, v: V) -> Option<(K, V)> {
        let mut out = None;
        if self.map.len() >= self.cap {
            while let Some((ok, seq)) = self.order.pop_front() {
                if self.map.get(&ok).is_some_and(|(s, _)| *s == seq) {
                    out = self.map.remove(&ok).map(|(_, v)| (ok, v));
                    break;
                }
            }
        }
        self.insert(k, v);
        out
    }

    /// Drops the keys `keep` refuses, which may change the ones it keeps
    /// or emit a final event first; returns how many.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) -> u64 {
        let before = self.map.len();
        self.map.retain(|k, (_, v)| keep(k, v));
        if self.map.is_empty() {
            self.order.clear();
        }
        (before - self.map.len()) as u64
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (_, v))| (k, v))
    }

    /// Drops the keys `keep` refuses (expiry); returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> u64 {
        let before = self.map.len();
        self.map.retain(|k, (_, v)| keep(k, v));
        if self.map.is_empty() {
            self.order.clear();
        }
        (before - self.map.len()) as u64
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

struct Slot<K, E> {
    key: K,
    val: E,
}

/// A slot's clock state, kept apart from the (often kilobyte) entries so
/// the hand walks a dense array and reads an entry only to ask a candidate
/// victim whether it is pinned.
#[derive(Clone, Copy, Default)]
struct Meta {
    credit: u8,
    touched: bool,
}

/// What `Tier::insert` did.
pub enum Inserted<K, E> {
    /// Stored; room was there.
    Stored,
    /// Stored in place of this victim.
    Replaced(K, E),
    /// Full and every inspected slot earned its place: the value comes back.
    Refused(E),
}

impl<K, E> Inserted<K, E> {
    /// Counts what the insert cost in `table`'s counters: a victim is an
    /// eviction, a refusal a cap hit, and either is a lost detection when
    /// `evidence` says the entry held some. Returns whether it was stored.
    pub fn count(self, table: &TableCounters, evidence: impl Fn(&E) -> bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let (lost, stored) = match &self {
            Inserted::Stored => (false, true),
            Inserted::Replaced(_, old) => {
                table.evicted.fetch_add(1, Relaxed);
                (evidence(old), true)
            }
            Inserted::Refused(e) => {
                table.cap_hits.fetch_add(1, Relaxed);
                (evidence(e), false)
            }
        };
        if lost {
            table.lost_detections.fetch_add(1, Relaxed);
        }
        stored
    }
}

/// Promoted keys, bounded, evicted by a weighted clock.
pub struct Tier<K, E> {
    slots: Vec<Option<Slot<K, E>>>,
    /// One per slot, same index.
    meta: Vec<Meta>,
    free: Vec<u32>,
    index: FastMap<K, u32>,
    hand: usize,
    cap: usize,
}

impl<K: Hash + Eq + Copy, E: Weighted> Tier<K, E> {
    pub fn new(cap: usize) -> Tier<K, E> {
        let cap = cap.clamp(1, u32::MAX as usize);
        Tier {
            slots: Vec::with_capacity(cap.min(4096)),
            meta: Vec::with_capacity(cap.min(4096)),
            free: Vec::new(),
            index: FastMap::with_capacity_and_hasher(cap.min(4096), Default::default()),
            hand: 0,
            cap,
        }
    }

    pub fn get(&self, k: &K) -> Option<&E> {
        let i = *self.index.get(k)?;
        self.slots.get(i as usize)?.as_ref().map(|s| &s.val)
    }

    /// The entry, marked as used: its credit is refilled from its evidence
    /// now (the caller is about to add to it), and the hand spares it once.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut E> {
        let i = *self.index.get(k)? as usize;
        let s = self.slots.get_mut(i)?.as_mut()?;
        if let Some(m) = self.meta.get_mut(i) {
            *m = Meta { credit: s.val.credit(), touched: true };
        }
        Some(&mut s.val)
    }

    pub fn contains(&self, k: &K) -> bool {
        self.index.contains_key(k)
    }

    /// Inserts a key (a key already held has its value replaced).
    pub fn insert(&mut self, key: K, val: E) -> Inserted<K, E> {
        if let Some(e) = self.get_mut(&key) {
            *e = val;
            return Inserted::Stored;
        }
        let meta = Meta { credit: val.credit(), touched: false };
        let slot = Slot { key, val };
        if self.index.len() < self.cap {
            let i = match self.free.pop() {
                Some(i) => {
                    self.slots[i as usize] = Some(slot);
                    self.meta[i as usize] = meta;
                    i
                }
                None => {
                    self.slots.push(Some(slot));
                    self.meta.push(meta);
                    (self.slots.len() - 1) as u32
                }
            };
            self.index.insert(key, i);
            return Inserted::Stored;
        }
        let Some(i) = self.victim() else {
            return Inserted::Refused(slot.val);
        };
        let old = self.slots[i].replace(slot);
        self.meta[i] = meta;
        self.index.insert(key, i as u32);
        match old {
            Some(o) => {
                self.index.remove(&o.key);
                Inserted::Replaced(o.key, o.val)
            }
            None => Inserted::Stored,
        }
    }

    /// Walks the hand at most `MAX_PROBE` slots for an entry with no credit
    /// that is not pinned.
    fn victim(&mut self) -> Option<usize> {
        let n = self.slots.len().min(self.meta.len());
        for _ in 0..MAX_PROBE.min(2 * n) {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let m = &mut self.meta[i];
            if m.touched {
                m.touched = false;
                continue;
            }
            if m.credit > 0 {
                m.credit -= 1;
                continue;
            }
            match &self.slots[i] {
                Some(s) if !s.val.pinned() => return Some(i),
                _ => continue,
            }
        }
        None
    }

    pub fn remove(&mut self, k: &K) -> Option<E> {
        let i = self.index.remove(k)?;
        let s = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(s.val)
    }

    /// Visits every entry; `keep` returns false to drop it (it may emit the
    /// entry's final event first). Returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut E) -> bool) -> u64 {
        let mut dropped = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(s) = slot.as_mut() else { continue };
            if !keep(&s.key, &mut s.val) {
                self.index.remove(&s.key);
                *slot = None;
                self.free.push(i as u32);
                dropped += 1;
            }
        }
        dropped
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &E)> {
        self.slots.iter().filter_map(|s| s.as_ref().map(|s| (&s.key, &s.val)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut E)> {
        self.slots.iter_mut().filter_map(|s| s.as_mut().map(|s| (&s.key, &mut s.val)))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.meta.clear();
        self.free.clear();
        self.index.clear();
        self.hand = 0;
    }
}

/// Both tiers for a table whose entries are the same in each: a key's
/// first packet makes a probation entry, its second promotes it into the
/// tier (`touch`). For tables whose entries are small enough that a
/// separate first-sighting record would gain little (smurf, netbios,
/// traceroute, the per-source table).
pub struct Fair<K, V> {
    probation: Probation<K, V>,
    tier: Tier<K, V>,
}

impl<K: Hash + Eq + Copy, V: Weighted> Fair<K, V> {
    pub fn new(max_probation: usize, max_tracked: usize) -> Fair<K, V> {
        Fair { probation: Probation::new(max_probation).with_ghosts(), tier: Tier::new(max_tracked) }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.tier.get(k).or_else(|| self.probation.get(k))
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if self.tier.contains(k) {
            return self.tier.get_mut(k);
        }
        self.probation.get_mut(k)
    }

    pub fn contains(&self, k: &K) -> bool {
        self.tier.contains(k) || self.probation.get(k).is_some()
    }

    /// The entry of a key seen now: a promoted key's, a probation key's
    /// promoted (its second packet), or a new probation entry made by
    /// `make`. What room costs is counted in `table`: a probation key
    /// pushed out is an eviction (and a lost detection if it held
    /// evidence); a tier victim likewise; a promotion the tier refuses is a
    /// cap hit and the key stays in probation. Never fails.
    pub fn touch(&mut self, k: K, table: &TableCounters, make: impl FnOnce() -> V) -> Option<&mut V> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.tier.contains(&k) {
            return self.tier.get_mut(&k);
        }
        let left = match self.probation.remove(&k) {
            Some(v) => match self.tier.insert(k, v) {
                Inserted::Stored => None,
                Inserted::Replaced(_, old) => {
                    table.evicted.fetch_add(1, Relaxed);
                    if old.evidence() {
                        table.lost_detections.fetch_add(1, Relaxed);
                    }
                    None
                }
                Inserted::Refused(v) => {
                    table.cap_hits.fetch_add(1, Relaxed);
                    Some(v)
                }
            },
            // Its first sighting was pushed out of probation: a repeat all
            // the same, promoted at once.
            None if self.probation.was_evicted(&k) => match self.tier.insert(k, make()) {
                Inserted::Stored => None,
                Inserted::Replaced(_, old) => {
                    table.evicted.fetch_add(1, Relaxed);
                    if old.evidence() {
                        table.lost_detections.fetch_add(1, Relaxed);
                    }
                    None
                }
                Inserted::Refused(v) => {
                    table.cap_hits.fetch_add(1, Relaxed);
                    Some(v)
                }
            },
            None => Some(make()),
        };
        match left {
            None => self.tier.get_mut(&k),
            Some(v) => {
                self.probation_insert(k, v, table);
                self.probation.get_mut(&k)
            }
        }
    }

    fn probation_insert(&mut self, k: K, v: V, table: &TableCounters) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some((_, old)) = self.probation.insert_evicting(k, v) {
            table.evicted.fetch_add(1, Relaxed);
            if old.evidence() {
                table.lost_detections.fetch_add(1, Relaxed);
            }
        }
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.tier.remove(k).or_else(|| self.probation.remove(k))
    }

    /// Visits every entry of both tiers; `keep` returns false to drop it
    /// (it may emit the entry's final event first). Returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) -> u64 {
        self.tier.retain(&mut keep) + self.probation.retain_mut(keep)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.tier.iter().chain(self.probation.iter())
    }

    pub fn len(&self) -> usize {
        self.tier.len() + self.probation.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tier.is_empty() && self.probation.is_empty()
    }

    /// (probation, promoted) entries held.
    pub fn sizes(&self) -> (usize, usize) {
        (self.probation.len(), self.tier.len())
    }

    pub fn clear(&mut self) {
        self.tier.clear();
        self.probation.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct E {
        attempts: u32,
        confirmed: bool,
    }

    impl Weighted for E {
        fn credit(&self) -> u8 {
            (32 - self.attempts.leading_zeros()).saturating_sub(1).min(15) as u8
        }
        fn pinned(&self) -> bool {
            self.confirmed
        }
    }

    #[test]
    fn probation_evicts_oldest_first_and_ignores_removed_keys() {
        let mut p = Probation::new(3);
        assert_eq!(p.insert(1, 'a') + p.insert(2, 'b') + p.insert(3, 'c'), 0);
        assert_eq!(p.remove(&1), Some('a'));
        assert_eq!(p.insert(4, 'd'), 0, "room was made by the removal");
        assert_eq!(p.insert(5, 'e'), 1, "the oldest live key goes");
        assert_eq!(p.get(&2), None);
        assert_eq!((p.get(&3), p.get(&4), p.get(&5)), (Some(&'c'), Some(&'d'), Some(&'e')));
        // Re-inserting a removed key: its old queue place must not evict it.
        p.remove(&3);
        p.insert(3, 'C');
        assert_eq!(p.insert(6, 'f'), 1);
        assert_eq!(p.get(&3), Some(&'C'), "4 was older than the new 3");
        assert_eq!(p.get(&4), None);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn probation_keeps_every_key_while_its_buckets_have_room() {
        let mut p = Probation::new(4096);
        let mut evicted = 0;
        for k in 0..1_400u64 {
            evicted += p.insert(k, k * 2);
        }
        assert_eq!(evicted, 0);
        assert_eq!(p.len(), 1_400);
        assert!((0..1_400u64).all(|k| p.get(&k) == Some(&(k * 2))));
        for k in 0..700u64 {
            assert_eq!(p.remove(&k), Some(k * 2));
        }
        assert!((0..700u64).all(|k| p.get(&k).is_none()));
        assert!((700..1_400u64).all(|k| p.get(&k) == Some(&(k * 2))));
        assert_eq!(p.iter().count(), 700);
    }

    #[test]
    fn fifo_queue_stays_bounded_under_churn() {
        let mut p = Fifo::new(4);
        for k in 0..10_000u32 {
            p.insert(k, ());
            if k % 2 == 0 {
                p.remove(&k);
            }
            assert!(p.order.len() <= 8, "{}", p.order.len());
        }
        assert!(p.len() <= 4);
    }

    #[test]
    fn a_flood_of_one_attempt_keys_never_evicts_a_confirmed_or_busier_entry() {
        let mut t = Tier::new(4);
        assert!(matches!(t.insert(100, E { attempts: 2, confirmed: true }), Inserted::Stored));
        assert!(matches!(t.insert(101, E { attempts: 200, confirmed: false }), Inserted::Stored));
        let mut replaced = 0;
        for k in 1000..11_000 {
            match t.insert(k, E { attempts: 1, confirmed: false }) {
                Inserted::Replaced(old, _) => {
                    assert!(old >= 1000, "a weak key was the victim, not {old}");
                    replaced += 1;
                }
                Inserted::Stored => {}
                Inserted::Refused(_) => {}
            }
            // The busy entry keeps being used.
            if k % 4 == 0 {
                t.get_mut(&101).unwrap().attempts += 1;
            }
        }
        assert!(replaced > 9_000, "{replaced}");
        assert!(t.get(&100).is_some() && t.get(&101).is_some());
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn a_key_back_after_probation_evicted_it_is_promoted_and_forged_ones_rarely_are() {
        let table = TableCounters::default();
        let mut f: Fair<u64, E> = Fair::new(1_000, 1_000);
        let new = || E { attempts: 1, confirmed: false };
        f.touch(7, &table, new);
        // 5,000 one-off keys push key 7 out of probation...
        for k in 100..5_100 {
            f.touch(k, &table, new);
        }
        assert!(!f.contains(&7));
        // ... but its return is a repeat: promoted.
        f.touch(7, &table, new);
        assert!(f.tier.contains(&7), "promoted on its return");
        // Forged one-off keys (never seen) are promoted only by the filter's
        // false positives.
        let mut false_yes = 0;
        for k in 10_000..110_000 {
            false_yes += usize::from(f.probation.was_evicted(&k));
            f.touch(k, &table, new);
        }
        assert!(false_yes < 2_000, "{false_yes} false promotions in 100,000");
    }

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

    #[test]
    fn a_full_tier_of_pinned_entries_refuses() {
        let mut t = Tier::new(2);
        t.insert(1, E { attempts: 1, confirmed: true });
        t.insert(2, E { attempts: 1, confirmed: true });
        assert!(matches!(t.insert(3, E { attempts: 9, confirmed: false }), Inserted::Refused(E { attempts: 9, .. })));
        assert_eq!(t.remove(&1), Some(E { attempts: 1, confirmed: true }));
        assert!(matches!(t.insert(3, E { attempts: 9, confirmed: false }), Inserted::Stored));
        assert_eq!(t.retain(|k, _| *k != 2), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&3).map(|e| e.attempts), Some(9));
    }

    #[test]
    fn a_fingerprinted_probation_finds_keys_by_value_and_evicts_the_oldest() {
        let mut p: Fingerprinted<(u32, u16), u32> = Fingerprinted::new(3);
        for k in 0..3u32 {
            assert_eq!(p.insert((k, 80), k * 10), 0);
        }
        assert_eq!(p.get(&(1, 80)), Some(&10));
        assert_eq!(p.get(&(1, 81)), None, "another key, another fingerprint");
        assert_eq!(p.insert((3, 80), 30), 1, "full: the oldest makes room");
        assert_eq!(p.get(&(0, 80)), None);
        assert_eq!(p.remove(&(2, 80)), Some(20));
        assert_eq!(p.len(), 2);
    }
}
