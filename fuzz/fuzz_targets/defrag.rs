//! Feeds arbitrary frames to the fragment reassembler, as the dispatcher
//! does: each input is a series of frames (a length byte, then that many
//! bytes, as raw IP), decoded and, when they are fragments, reassembled,
//! with packet time advancing and timeouts swept. It must never panic, and
//! never hold more than its cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::decode::decode;
use picket::decode::defrag::{Defrag, MAX_DATAGRAMS};
use picket::decode::summary::LinkKind;
use std::cell::RefCell;

thread_local! {
    /// One reassembler for the run, flushed empty after every input
    /// (allocating its slots each time would cost more than the rest).
    static DEFRAG: RefCell<Defrag> = RefCell::new(Defrag::new());
}

fuzz_target!(|data: &[u8]| DEFRAG.with(|d| run(data, &mut d.borrow_mut())));

fn run(data: &[u8], d: &mut Defrag) {
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts: i64 = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
        ts += i64::from(len) * 100_000;
        let s = decode(LinkKind::Raw, ts, u32::try_from(frame.len()).unwrap_or(u32::MAX), frame);
        if Defrag::is_fragment(&s) {
            d.feed(LinkKind::Raw, frame, &s, &mut out);
        }
        d.expire(ts, &mut out);
        out.clear();
    }
    assert!(d.counts().held as usize <= MAX_DATAGRAMS);
    d.flush(ts, &mut out);
    assert_eq!(d.counts().held, 0);
}
