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
//! Files: `probation.rs` (`Probation`, `Fingerprinted`), `ghosts.rs`
//! (`Ghosts`, `SeenOnce`), `fifo.rs` (`Fifo`); `Tier` and `Fair`, which
//! joins a probation and a tier, are here.
//!
//! Callers count what is lost: a victim or a refused key that held two or
//! more attempts is a lost detection (`TableCounters::lost_detections`).

mod fifo;
mod ghosts;
mod probation;

pub use fifo::Fifo;
pub use ghosts::SeenOnce;
pub use probation::{Fingerprinted, Probation};

use super::keys::FastMap;
use std::hash::Hash;
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
}
