//! The payload facts every transport decoder records the same way: the
//! claimed length and the first captured bytes.

use crate::decode::summary::{PAYLOAD_HEAD, PacketSummary};

/// Records the claimed payload length and the first captured payload bytes.
pub(super) fn set_payload(s: &mut PacketSummary, captured: &[u8], claimed_len: u32) {
    s.payload_len = claimed_len;
    let n = captured.len().min(PAYLOAD_HEAD);
    if let (Some(head), Some(src)) = (s.payload_head.get_mut(..n), captured.get(..n)) {
        head.copy_from_slice(src);
    }
}
