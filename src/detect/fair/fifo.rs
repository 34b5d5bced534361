//! `Fifo`: a bounded table in arrival order, for entries that wait for a
//! timeout (`pop_due`).

use crate::detect::keys::FastMap;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::hash::Hash;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
