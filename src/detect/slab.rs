//! A pool of large table entries addressed by a `u32` slot, so a detector's
//! hash map holds only its key and a small slot record.
//!
//! Why: a hash map that stores kilobyte entries inline copies all of them on
//! every resize and touches a fresh page per bucket, and an expiry sweep
//! reads every entry. With a slab the map stays small (cheap to resize and
//! sweep), entries never move once written, and a freed slot is reused by
//! the next entry, so memory is bounded by the live entries plus the
//! table's cap and no allocation happens per packet once the pool has grown.

/// Entries of type `T` in reusable slots.
pub struct Slab<T> {
    items: Vec<T>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    /// Reserves room for `n` entries (virtual memory: pages are touched only
    /// as slots are used).
    pub fn with_capacity(n: usize) -> Slab<T> {
        Slab { items: Vec::with_capacity(n), free: Vec::with_capacity(n.min(1 << 16)) }
    }

    /// Stores `v` in a free slot (or a new one) and returns the slot. `None`
    /// only if the slot number would not fit in `u32`.
    pub fn insert(&mut self, v: T) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            if let Some(slot) = self.items.get_mut(i as usize) {
                *slot = v;
                return Some(i);
            }
        }
        let i = u32::try_from(self.items.len()).ok()?;
        self.items.push(v);
        Some(i)
    }

    #[inline]
    pub fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize)
    }

    #[inline]
    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)
    }

    /// Frees a slot. The value stays in place until the slot is reused; the
    /// caller must drop its own reference (map entry) to the slot.
    pub fn remove(&mut self, i: u32) {
        if (i as usize) < self.items.len() {
            self.free.push(i);
        }
    }

    /// Frees every slot and keeps the memory.
    pub fn clear(&mut self) {
        self.items.clear();
        self.free.clear();
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn freed_slots_are_reused_and_len_counts_live_entries() {
        let mut s = Slab::with_capacity(4);
        let a = s.insert(10u64).unwrap();
        let b = s.insert(20).unwrap();
        assert_eq!((a, b, s.len()), (0, 1, 2));
        s.remove(a);
        assert_eq!(s.len(), 1);
        let c = s.insert(30).unwrap();
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!((s.get(c), s.get(b)), (Some(&30), Some(&20)));
        s.remove(99); // out of range: ignored
        assert_eq!(s.len(), 2);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.insert(1), Some(0));
    }
}
