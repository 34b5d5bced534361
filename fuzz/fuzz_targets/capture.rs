//! A capture file of arbitrary bytes, written to a scratch file and read
//! the way `picket replay` reads one (`src/input/capture.rs`: `open_file`,
//! whose savefile path hands libpcap a stdio stream with picket's buffer;
//! the link-type check; every packet decoded, counted and, when it is a
//! fragment, reassembled). pcap and pcapng seeds, every link type. Nothing
//! may panic; an error is one line naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::decode::decode_into;
use picket::decode::defrag::{Defrag, MAX_DATAGRAMS};
use picket::decode::summary::PacketSummary;
use picket::input::capture::open_file;
use picket::stats::LocalCounts;
use std::cell::RefCell;

/// Packets read per input: enough for every seed, few enough that a file
/// of tiny records stays fast.
const MAX_PACKETS: usize = 4096;

thread_local! {
    /// One reassembler for the run, as `replay` has one per reader; flushed
    /// empty after every input (allocating its slots each time would cost
    /// more than the rest of the target).
    static DEFRAG: RefCell<Defrag> = RefCell::new(Defrag::new());
}

fuzz_target!(|data: &[u8]| DEFRAG.with(|d| run(data, &mut d.borrow_mut())));

fn run(data: &[u8], defrag: &mut Defrag) {
    let path = picket_fuzz::scratch_file("capture.pcap");
    std::fs::write(&path, data).expect("write the scratch file");
    let (mut cap, link) = match open_file(&path, None) {
        Ok(x) => x,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && msg.starts_with(&*path.to_string_lossy()), "{msg:?}");
            return;
        }
    };
    let mut s = PacketSummary::new(0, 0, 0);
    let mut counts = LocalCounts::default();
    let mut out = Vec::new();
    let mut ts = 0;
    for _ in 0..MAX_PACKETS {
        let Ok(pkt) = cap.next_packet() else { break };
        ts = pkt.header.ts.tv_sec.saturating_mul(1_000_000).saturating_add(pkt.header.ts.tv_usec);
        decode_into(link, ts, pkt.header.len, pkt.data, &mut s);
        counts.count(link, &s);
        if Defrag::is_fragment(&s) {
            defrag.feed(link, pkt.data, &s, &mut out);
            out.clear();
        }
        defrag.expire(ts, &mut out);
        out.clear();
    }
    assert!(defrag.counts().held as usize <= MAX_DATAGRAMS);
    defrag.flush(ts, &mut out);
    assert_eq!(defrag.counts().held, 0);
}
