//! Bounds-checked big-endian readers for the few fields picket reads by hand.
//! Every reader returns `None` past the end of the slice instead of panicking.

/// The byte at `at`, if captured.
pub(super) fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// The big-endian `u16` at `at..at + 2`, if captured.
pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..)?.first_chunk::<2>().map(|c| u16::from_be_bytes(*c))
}

/// The big-endian `u32` at `at..at + 4`, if captured.
pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..)?.first_chunk::<4>().map(|c| u32::from_be_bytes(*c))
}

/// The little-endian `u32` at `at..at + 4`, if captured.
pub(super) fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..)?.first_chunk::<4>().map(|c| u32::from_le_bytes(*c))
}

/// Saturating `usize` to `u32` conversion for lengths.
pub(super) fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_stop_at_the_end() {
        let b = [1, 2, 3, 4, 5];
        assert_eq!(be16(&b, 3), Some(0x0405));
        assert_eq!(be16(&b, 4), None);
        assert_eq!(be32(&b, 1), Some(0x0203_0405));
        assert_eq!(be32(&b, 2), None);
        assert_eq!(le32(&b, 0), Some(0x0403_0201));
        assert_eq!(u8_at(&b, usize::MAX), None);
        assert_eq!(be16(&b, usize::MAX), None);
    }
}
