//! Feeds arbitrary bytes to the frame decoder. The first byte picks the
//! link type; the rest is the captured frame. The decoder must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::decode::decode;
use picket::decode::summary::LinkKind;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LinkKind::ALL[usize::from(selector) % LinkKind::ALL.len()];
    let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let s = decode(link, 0, wire_len, frame);
    assert_eq!(s.cap_len, wire_len);
});
