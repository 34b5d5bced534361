//! Decoder micro-benchmarks: one SYN, one UDP datagram, one ICMP error, and
//! throughput over the first 100k frames of the benchmark capture (built in
//! memory by the same generator `scripts/bench` writes to disk).
//!
//! ```text
//! cargo bench --bench pipeline
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use picket::decode::decode;
use picket::decode::summary::LinkKind;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[allow(dead_code)]
#[path = "../examples/gen_bench_pcap.rs"]
mod gen_bench_pcap;

use gen_bench_pcap::{Generator, Ip, Seg, Stack, TCP_SYN};

const TS: i64 = gen_bench_pcap::START_US;
const FRAMES: usize = 100_000;

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// A Linux SYN with MSS, SACK_PERM, timestamps and window scale (74 bytes).
fn syn_frame() -> Vec<u8> {
    let ip = Ip { src: v4([203, 0, 113, 9]), dst: v4([192, 0, 2, 10]), ttl: 52, id: 0x1c46 };
    let seg = Seg { sport: 51234, dport: 443, seq: 0x1234_5678, ack: 0, flags: TCP_SYN, win: 64240 };
    let mut opts = [0u8; 40];
    let n = gen_bench_pcap::syn_options(Stack::Linux, 1460, 0xdead_beef, None, &mut opts);
    let mut buf = Vec::new();
    gen_bench_pcap::tcp_frame(&mut buf, &ip, &seg, &opts[..n], 0);
    assert_eq!(buf.len(), 74, "SYN frame size");
    buf
}

/// A DNS query for www.example.com (75 bytes).
fn udp_frame() -> Vec<u8> {
    let ip = Ip { src: v4([198, 51, 100, 20]), dst: v4([192, 0, 2, 53]), ttl: 50, id: 7 };
    let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    let mut buf = Vec::new();
    gen_bench_pcap::udp_frame(&mut buf, &ip, 53001, 53, &q);
    buf
}

/// An ICMP port unreachable quoting a SYN's IP header and first 8 TCP bytes.
fn icmp_error_frame() -> Vec<u8> {
    let quoted = syn_frame();
    let ip = Ip { src: v4([192, 0, 2, 1]), dst: v4([203, 0, 113, 9]), ttl: 255, id: 99 };
    let mut buf = Vec::new();
    gen_bench_pcap::icmp_unreach_frame(&mut buf, &ip, 3, &quoted);
    buf
}

/// The first `n` frames of the benchmark capture, as (time, bytes).
fn capture_frames(n: usize) -> Vec<(i64, Vec<u8>)> {
    let mut g = Generator::new(gen_bench_pcap::DEFAULT_PACKETS, gen_bench_pcap::DEFAULT_SEED);
    let mut buf = Vec::with_capacity(gen_bench_pcap::MAX_FRAME);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let Some(ts) = g.next_frame(&mut buf) else { break };
        out.push((ts, buf.clone()));
    }
    out
}

fn single_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_frame");
    for (name, frame) in [("tcp_syn", syn_frame()), ("udp_dns", udp_frame()), ("icmp_unreach", icmp_error_frame())] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| decode(LinkKind::Ethernet, TS, frame.len() as u32, black_box(&frame)));
        });
    }
    g.finish();
}

fn capture_throughput(c: &mut Criterion) {
    let frames = capture_frames(FRAMES);
    let mut g = c.benchmark_group("decode_capture");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.sample_size(20);
    g.bench_function("first_100k_frames", |b| {
        b.iter(|| {
            let mut tcp = 0u64;
            for (ts, f) in &frames {
                let s = decode(LinkKind::Ethernet, *ts, f.len() as u32, black_box(f));
                tcp += u64::from(s.tcp().is_some());
            }
            black_box(tcp)
        });
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = single_frames, capture_throughput
}
criterion_main!(benches);
