//! The replay baseline: a bare libpcap read loop, nothing else.
//!
//! ```text
//! cargo run --release --example bare_read -- FILE
//! ```
//!
//! Opens FILE the way picket does (`picket::input::savefile`: libpcap reading
//! through a 64 KiB stdio buffer, so the baseline is not slowed by 4 KiB
//! reads that picket avoids; `--stdio` opens it with the `pcap` crate's
//! `Capture::from_file` instead, libpcap's default), calls `next_packet` until
//! `NoMorePackets`, touches every packet (sums its lengths and first byte so
//! the read cannot be optimized away) and prints
//! `packets=N seconds=S pps=P bytes=B`. `scripts/bench` compares picket's
//! replay rate against this.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdio = args.iter().any(|a| a == "--stdio");
    let Some(path) = args.iter().find(|a| *a != "--stdio").cloned() else {
        eprintln!("usage: bare_read [--stdio] FILE");
        std::process::exit(2);
    };
    let opened = if stdio {
        pcap::Capture::from_file(&path).map(picket::input::savefile::Savefile::from).map_err(|e| e.to_string())
    } else {
        picket::input::savefile::open(std::path::Path::new(&path))
    };
    let mut cap = match opened {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bare_read: {path}: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let mut packets: u64 = 0;
    let mut bytes: u64 = 0;
    let mut touch: u64 = 0;
    loop {
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                bytes += u64::from(p.header.len);
                touch = touch.wrapping_add(p.data.len() as u64 + u64::from(p.data.first().copied().unwrap_or(0)));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                eprintln!("bare_read: {path}: error after {packets} packets: {e}");
                std::process::exit(1);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    std::hint::black_box(touch);
    let pps = if secs > 0.0 { packets as f64 / secs } else { 0.0 };
    println!("packets={packets} seconds={secs:.4} pps={pps:.0} bytes={bytes}");
}
