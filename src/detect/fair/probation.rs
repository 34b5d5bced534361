//! `Probation`, the tier of keys seen once (a set-associative table, the
//! oldest of a key's two buckets out first), and `Fingerprinted`, a
//! probation keyed by a 64-bit fingerprint of the key.

use super::ghosts::Ghosts;
use std::hash::{BuildHasher, Hash};

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
    /// Inserts so far (wrapping): an entry's age is `seq - ages[i]`. An
    /// entry 2^32 inserts old would look new again; a table churned that
    /// long has replaced it many times over.
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_full_bucket_gives_up_its_oldest_key_in_place_and_remembers_it() {
        // One bucket of 8: both of every key's choices are the same bucket.
        let mut p = Probation::new(8).with_ghosts();
        for k in 0..8u32 {
            assert_eq!(p.insert_evicting(k, k), None);
        }
        assert_eq!(p.insert_evicting(8, 8), Some((0, 0)), "the oldest goes");
        assert_eq!(p.insert_evicting(9, 9), Some((1, 1)));
        assert_eq!((p.len(), p.get(&0), p.get(&8), p.get(&9)), (8, None, Some(&8), Some(&9)));
        assert!(p.was_evicted(&0) && p.was_evicted(&1), "evicted keys are remembered");
        assert!(!p.was_evicted(&5), "a held key was never evicted");
        // A removal makes room: no eviction.
        assert_eq!(p.remove(&5), Some(5));
        assert_eq!(p.insert_evicting(10, 10), None);
        // Updating a held key is no insert: nothing goes.
        assert_eq!(p.insert_evicting(10, 11), None);
        assert_eq!((p.len(), p.get(&10)), (8, Some(&11)));
    }

    #[test]
    fn under_churn_the_newest_keys_stay_and_the_oldest_go() {
        let mut p = Probation::new(4096);
        for k in 0..12_288u32 {
            p.insert(k, ());
        }
        let newest = (11_264..12_288u32).filter(|k| p.get(k).is_some()).count();
        let oldest = (0..8_192u32).filter(|k| p.get(k).is_some()).count();
        // Eviction is per bucket pair, so a few old keys in quiet buckets
        // outlive a global FIFO's bound (about 220 of 8,192 in 30 runs);
        // a random victim would lose about a tenth of the newest.
        assert!(newest >= 1_010, "{newest} of the newest 1,024 kept");
        assert!(oldest <= 400, "{oldest} of the oldest 8,192 still held");
        assert_eq!(p.len(), 4096);
    }
}
