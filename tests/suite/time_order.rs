//! Captures stored out of time order, crafted (Ethernet/IPv4 SYNs written
//! at test time): a capture a little out of order is analysed exactly as
//! its sorted copy; one too far out of order for the reorder buffer is
//! still analysed (never a negative duration), counted, and named on
//! stderr with the cure.

use crate::common;
use common::craft::{T0_US, syn_frame};
use common::*;
use std::net::Ipv4Addr;

/// Two retry loops, each 5 attempts 1 s apart from a new source port,
/// interleaved: 10 SYNs in time order.
fn two_loops() -> Vec<(i64, Vec<u8>)> {
    let mut v = Vec::new();
    for i in 0..5u16 {
        let t = T0_US + i64::from(i) * 1_000_000;
        let a = syn_frame(
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(192, 0, 2, 10),
            40_000 + i,
            158,
            1000 + u32::from(i),
            i,
        );
        let b = syn_frame(
            Ipv4Addr::new(198, 51, 100, 8),
            Ipv4Addr::new(192, 0, 2, 11),
            50_000 + i,
            3389,
            9000 + u32::from(i),
            100 + i,
        );
        v.push((t, a));
        v.push((t + 500_000, b));
    }
    v
}

fn stats_json(r: &Run) -> serde_json::Value {
    let last = r.stdout.lines().last().expect("a stats line");
    serde_json::from_str::<serde_json::Value>(last).unwrap()["stats"].clone()
}

fn detections(r: &Run) -> Vec<String> {
    let mut v: Vec<String> =
        r.stdout.lines().filter(|l| !l.contains("\"event_type\":\"stats\"")).map(String::from).collect();
    v.sort();
    v
}

/// Every event's first_seen is at most its last_seen, and no duration is negative.
fn assert_sane_times(r: &Run) {
    for line in r.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["event_type"].as_str().unwrap();
        let d = &v[t];
        if let (Some(a), Some(b)) = (d["first_seen"].as_str(), d["last_seen"].as_str()) {
            assert!(a <= b, "first_seen after last_seen: {line}");
        }
        if let Some(s) = d["duration_s"].as_f64() {
            assert!(s >= 0.0, "negative duration: {line}");
        }
    }
}

#[test]
fn a_capture_stored_a_little_out_of_order_is_analysed_as_its_sorted_copy() {
    let dir = tempdir("disorder");
    let sorted = two_loops();
    // Stored newest half first, and within each half two neighbours swapped
    // (as realworld mal_445_scan.pcap is stored, blocks newest first).
    let mut shuffled: Vec<_> = sorted[5..].iter().chain(&sorted[..5]).cloned().collect();
    shuffled.swap(0, 1);
    shuffled.swap(6, 7);
    let (a, b) = (dir.join("sorted.pcap"), dir.join("shuffled.pcap"));
    write_pcap(&a, &sorted);
    write_pcap(&b, &shuffled);
    let ra = replay(&[&a], &[]);
    let rb = replay(&[&b], &[]);
    assert_eq!(rb.code, Some(0), "{}", rb.stderr);
    assert_eq!(ra.syn_retry_finals().len(), 2, "{}", ra.stdout);
    // The same detections, the same ids, times and counts: the sensor name
    // (the file name) aside.
    let strip =
        |r: &Run| -> Vec<String> { detections(r).iter().map(|l| l.replace("shuffled.pcap", "sorted.pcap")).collect() };
    assert_eq!(strip(&ra), strip(&rb));
    let s = stats_json(&rb);
    // Packets 6..10 (the older half) all come after a newer one; of the
    // first half, the swapped packet 2.
    assert_eq!(s["time_disorder"]["backwards"], 6, "{s}");
    assert_eq!(s["time_disorder"]["late"], 0, "{s}");
    assert_eq!(s["time_disorder"]["max_step_back_s"], 4.5, "{s}");
    assert_eq!(stats_json(&ra)["time_disorder"]["backwards"], 0);
    let notes: Vec<&str> = rb.stderr.lines().filter(|l| l.contains("out of time order")).collect();
    assert_eq!(notes.len(), 1, "one note per file: {}", rb.stderr);
    assert!(notes[0].contains("shuffled.pcap") && notes[0].contains("put them back in time order"), "{}", notes[0]);
    assert!(!ra.stderr.contains("out of time order"), "{}", ra.stderr);
}

/// One capture stored twice (as realworld ppa_ftp-crack.pcap is): the time
/// goes back to the file's start once; sorting would interleave the copies,
/// so the note says to split them or drop the copies instead.
#[test]
fn a_capture_stored_twice_is_named_as_such() {
    let dir = tempdir("disorder-twice");
    let once = two_loops();
    let f = dir.join("twice.pcap");
    write_pcap(&f, &once.iter().chain(&once).cloned().collect::<Vec<_>>());
    let r = replay(&[&f], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_sane_times(&r);
    let warn: Vec<&str> = r.stderr.lines().filter(|l| l.contains("out of time order")).collect();
    assert_eq!(warn.len(), 1, "{}", r.stderr);
    assert!(warn[0].contains("at packet 11 time goes back to the start of the file"), "{}", warn[0]);
    assert!(warn[0].contains("editcap -D"), "{}", warn[0]);
}

#[test]
fn packets_too_far_out_of_order_are_still_analysed_counted_and_named() {
    let dir = tempdir("disorder-far");
    // A frame 10 s before the loops, then 5000 non-IP frames 100 s after
    // them, then the loops' 10 SYNs: more than the 4096 packets replay holds
    // to put things back in order.
    let mut frames: Vec<(i64, Vec<u8>)> = vec![(T0_US - 10_000_000, vec![0u8; 60])];
    frames.extend((0..5000).map(|i| (T0_US + 100_000_000 + i * 1000, vec![0u8; 60])));
    frames.extend(two_loops());
    let f = dir.join("far.pcap");
    write_pcap(&f, &frames);
    let r = replay(&[&f], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = stats_json(&r);
    assert_eq!(s["packets"], 5011);
    assert_eq!(s["protocols"]["tcp"], 10, "no SYN dropped: {s}");
    assert_eq!(s["time_disorder"]["backwards"], 10, "{s}");
    assert_eq!(s["time_disorder"]["late"], 10, "{s}");
    assert!(s["time_disorder"]["max_step_back_s"].as_f64().unwrap() > 100.0, "{s}");
    assert_sane_times(&r);
    let warn: Vec<&str> = r.stderr.lines().filter(|l| l.contains("out of time order")).collect();
    assert_eq!(warn.len(), 1, "{}", r.stderr);
    assert!(!warn[0].contains("two captures"), "{}", warn[0]);
    assert!(warn[0].starts_with("picket: warning: ") && warn[0].contains("far.pcap"), "{}", warn[0]);
    assert!(warn[0].contains("10 of them were too far out of place") && warn[0].contains("reordercap"), "{}", warn[0]);
}
