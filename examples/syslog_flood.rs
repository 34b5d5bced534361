//! A syslog sender for `scripts/bench --syslog`: netfilter lines over UDP
//! to ADDR at RATE datagrams a second for SECS seconds, paced per
//! millisecond (each millisecond's share is sent with `sendmmsg`, 64 a
//! call, then the sender waits for the next), so one core sends 200,000 a
//! second. Prints what it sent and the rate it achieved.
//!
//! The lines are what a border firewall under a spoofed flood logs, varied
//! so that every per-record table is stressed (`--same` sends the one line
//! the first version sent, for comparison):
//! - 90% from a fresh pseudo-random source each (the whole IPv4 space
//!   outside 0/8, 127/8 and 224/4) to a random port of the home net
//!   192.0.2.0/24, TCP SYN (70%), UDP (20%) or ICMP echo;
//! - 10% from 32 steady scanners (198.51.100.1-32), each walking the ports
//!   of 192.0.2.10 in order.
//!
//! Each line carries the sender's wall-clock time (RFC 3339, as rsyslog's
//! file format writes it, refreshed every millisecond), so records fall in
//! the live correlation windows as a real firewall's would.
//!
//!     cargo run --release --example syslog_flood -- 127.0.0.1:5514 200000 10

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use std::io::{IoSlice, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BATCH: usize = 64;

/// A 64-bit mix (splitmix64's finaliser): datagram number -> pseudo-random bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Datagram `n`'s line (after the PRI and time) into `line`.
fn write_line(line: &mut Vec<u8>, n: u64, same: bool) {
    if same {
        // The first version's line: 250 sources, one port.
        let _ = write!(
            line,
            "PK-IN-DROP: IN=eth0 OUT= MAC=00:16:3e:00:00:01:00:16:3e:00:00:02:08:00 SRC=203.0.113.{} DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={} DF PROTO=TCP SPT={} DPT=158 WINDOW=64240 RES=0x00 SYN URGP=0",
            n % 250 + 1,
            n % 65536,
            1024 + n % 60000
        );
        return;
    }
    let h = mix(n);
    let (src, dst, dport) = if h % 10 == 0 {
        // A steady scanner walking 192.0.2.10's ports.
        let s = (h >> 8) % 32;
        (Ipv4Addr::new(198, 51, 100, 1 + s as u8), Ipv4Addr::new(192, 0, 2, 10), (1 + (n / 32) % 65_535) as u16)
    } else {
        let mut a = (h >> 8) as u32;
        // Not 0/8, 127/8 or multicast and above.
        let top = (a >> 24) % 222 + 1;
        let top = if top == 127 { 128 } else { top };
        a = (top << 24) | (a & 0x00ff_ffff);
        let host = ((h >> 40) % 254 + 1) as u8;
        (Ipv4Addr::from(a), Ipv4Addr::new(192, 0, 2, host), ((h >> 48) % 65_535 + 1) as u16)
    };
    let sport = 1024 + (mix(n ^ 0x5eed) % 64_000) as u16;
    let ttl = 40 + (h >> 56) % 80;
    let id = (h >> 16) as u16;
    let _ = write!(line, "PK-IN-DROP: IN=eth0 OUT= MAC=00:16:3e:00:00:01:00:16:3e:00:00:02:08:00 SRC={src} DST={dst} ");
    match (h >> 4) % 10 {
        0..=6 => {
            let _ = write!(
                line,
                "LEN=60 TOS=0x00 PREC=0x00 TTL={ttl} ID={id} DF PROTO=TCP SPT={sport} DPT={dport} WINDOW=64240 RES=0x00 SYN URGP=0"
            );
        }
        7 | 8 => {
            let _ =
                write!(line, "LEN=48 TOS=0x00 PREC=0x00 TTL={ttl} ID={id} PROTO=UDP SPT={sport} DPT={dport} LEN=28");
        }
        _ => {
            let _ = write!(
                line,
                "LEN=84 TOS=0x00 PREC=0x00 TTL={ttl} ID={id} DF PROTO=ICMP TYPE=8 CODE=0 ID={} SEQ={}",
                sport,
                n % 1000
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let same = args.iter().any(|a| a == "--same");
    let pos: Vec<&String> = args.iter().skip(1).filter(|a| !a.starts_with("--")).collect();
    let (Some(to), Some(rate), Some(secs)) = (pos.first(), pos.get(1), pos.get(2)) else {
        eprintln!("usage: syslog_flood [--same] ADDR:PORT RATE SECS");
        std::process::exit(2);
    };
    let rate: u64 = rate.parse().expect("RATE");
    let secs: u64 = secs.parse().expect("SECS");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(to.as_str()).expect("connect");
    let total = rate * secs;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut failed = 0u64;
    let mut bytes = 0u64;
    let mut lines: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(400)).collect();
    let mut headers: MultiHeaders<SockaddrStorage> = MultiHeaders::preallocate(BATCH, None);
    let addrs: Vec<Option<SockaddrStorage>> = vec![None; BATCH];
    let mut late_ms = 0u64;
    while sent + failed < total {
        let due = (start.elapsed().as_micros() as u64 * rate / 1_000_000 + rate / 1000).min(total);
        if due > sent + failed + rate / 500 {
            late_ms += 1;
        }
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        let stamp = picket::output::timefmt::rfc3339_us(now_us);
        while sent + failed < due {
            let k = ((due - sent - failed) as usize).min(BATCH);
            for (i, line) in lines.iter_mut().take(k).enumerate() {
                let n = sent + failed + i as u64;
                line.clear();
                let _ = write!(line, "<4>{stamp} fw1 kernel: ");
                write_line(line, n, same);
                bytes += line.len() as u64;
            }
            let iovs: Vec<[IoSlice<'_>; 1]> = lines.iter().take(k).map(|l| [IoSlice::new(l)]).collect();
            match sendmmsg(sock.as_raw_fd(), &mut headers, &iovs, &addrs[..k], [], MsgFlags::empty()) {
                Ok(r) => {
                    let ok = r.count() as u64;
                    sent += ok;
                    if ok == 0 {
                        failed += 1;
                    }
                }
                Err(_) => failed += 1,
            }
        }
        let next = Duration::from_micros((due * 1_000_000 / rate).saturating_sub(start.elapsed().as_micros() as u64));
        if !next.is_zero() {
            std::thread::sleep(next.min(Duration::from_millis(1)));
        }
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} datagrams ({failed} failed sends, {} bytes each on average) in {took:.2} s: {:.0}/s; behind schedule by more than 2 ms {late_ms} times",
        bytes / sent.max(1),
        sent as f64 / took
    );
}
