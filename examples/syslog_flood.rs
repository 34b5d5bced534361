//! A syslog sender for `scripts/bench-syslog`: netfilter lines over UDP to
//! ADDR at RATE datagrams a second for SECS seconds, paced per millisecond
//! (each millisecond's share is sent with `sendmmsg`, 64 a call, then the
//! sender waits for the next), so one core sends 200,000 a second easily.
//! Prints what it sent and the rate it achieved.
//!
//!     cargo run --release --example syslog_flood -- 127.0.0.1:5514 200000 10

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use std::io::IoSlice;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(to), Some(rate), Some(secs)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: syslog_flood ADDR:PORT RATE SECS");
        std::process::exit(2);
    };
    let rate: u64 = rate.parse().expect("RATE");
    let secs: u64 = secs.parse().expect("SECS");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(to).expect("connect");
    let total = rate * secs;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut failed = 0u64;
    const BATCH: usize = 64;
    let mut lines: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(300)).collect();
    let mut headers: MultiHeaders<SockaddrStorage> = MultiHeaders::preallocate(BATCH, None);
    let addrs: Vec<Option<SockaddrStorage>> = vec![None; BATCH];
    while sent + failed < total {
        let due = (start.elapsed().as_micros() as u64 * rate / 1_000_000 + rate / 1000).min(total);
        while sent + failed < due {
            let k = ((due - sent - failed) as usize).min(BATCH);
            for (i, line) in lines.iter_mut().take(k).enumerate() {
                let n = sent + failed + i as u64;
                line.clear();
                // A netfilter DROP line as rsyslog forwards it (RFC 3164), a
                // new source port each.
                use std::io::Write;
                let _ = write!(
                    line,
                    "<4>Nov 22 10:34:36 fw1 kernel: [12345.678901] PK-IN-DROP: IN=eth0 OUT= MAC=00:16:3e:00:00:01:00:16:3e:00:00:02:08:00 SRC=203.0.113.{} DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={} DF PROTO=TCP SPT={} DPT=158 WINDOW=64240 RES=0x00 SYN URGP=0",
                    n % 250 + 1,
                    n % 65536,
                    1024 + n % 60000
                );
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
    println!("sent {sent} datagrams ({failed} failed sends) in {took:.2} s: {:.0}/s", sent as f64 / took);
}
