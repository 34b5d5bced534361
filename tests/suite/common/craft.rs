//! Crafted captures for what real tools cannot produce in reasonable time
//! (hours of probes, PowWow's bursts): Ethernet/IPv4/TCP SYN frames written
//! with `write_pcap` into a temporary directory at test time.

use std::net::Ipv4Addr;
use std::path::Path;

/// Writes the header checksum of the 20-byte IPv4 header `ip`.
pub fn set_ipv4_checksum(ip: &mut [u8]) {
    let mut sum: u32 =
        ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Ethernet + IPv4 (TTL 50) + UDP with `len` zero payload bytes.
pub fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    let total = (20 + 8 + len) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 50, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    set_ipv4_checksum(&mut ip);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(0u8, len));
    f
}

/// One SYN: Ethernet + IPv4 (TTL 52, DF) + a 20-byte TCP header, no payload.
pub fn syn_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32, ip_id: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(54);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 40];
    ip.extend_from_slice(&ip_id.to_be_bytes());
    ip.extend_from_slice(&[0x40, 0x00, 52, 6, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    set_ipv4_checksum(&mut ip);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&[0x50, 0x02, 0x20, 0x00, 0, 0, 0, 0]);
    f
}

/// A deterministic jitter in -50..50 ms for probe `i`.
fn jitter_us(i: u64) -> i64 {
    // splitmix64: a linear formula would make a sawtooth, not jitter.
    let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) % 100_000) as i64 - 50_000
}

/// Start of the crafted captures: 2026-11-22T00:00:00Z.
pub const T0_US: i64 = 1_795_305_600_000_000;

/// The story of SIGNATURES.md section 1, two hours of it: SYNs from
/// 198.51.100.7 to 192.0.2.10:158 every 30 s (+-50 ms), the source port
/// counting up from 4900 and wrapping from 5000 back to 1024; the probe at
/// 1200 s is lost; the client reboots after the probe at 3600 s and is
/// silent for five minutes (next probe at 3930 s, its port back at 1024).
pub fn forgotten_client(path: &Path) {
    let (src, dst) = (Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(192, 0, 2, 10));
    let mut frames = Vec::new();
    let mut port = 4900u16;
    let mut t = 0i64;
    let mut i = 0u64;
    while t <= 7200 {
        if t == 3630 {
            t = 3930;
            port = 1024;
        }
        if t != 1200 {
            let ts = T0_US + t * 1_000_000 + jitter_us(i);
            frames.push((ts, syn_frame(src, dst, port, 158, 0x1000_0000u32.wrapping_mul(i as u32 + 1), i as u16)));
            port = if port >= 5000 { 1024 } else { port + 1 };
        }
        t += 30;
        i += 1;
    }
    crate::common::write_pcap(path, &frames);
}

/// PowWow (SIGNATURES.md section 1): two sources camping on TCP 13223 of
/// 192.0.2.10, each retrying in bursts of 5 to 8 attempts 6 s apart (at most
/// 42 s per burst), then pausing 30 s to 2 min. Kernel-style random source
/// ports; nothing answers.
pub fn powwow_bursts(path: &Path) {
    let dst = Ipv4Addr::new(192, 0, 2, 10);
    let mut frames = Vec::new();
    let plans: [(Ipv4Addr, [u32; 6], [i64; 5], i64); 2] = [
        (Ipv4Addr::new(203, 0, 113, 77), [5, 8, 6, 7, 5, 8], [30, 120, 60, 90, 45], 0),
        (Ipv4Addr::new(198, 51, 100, 88), [6, 6, 7, 5, 8, 6], [100, 40, 75, 30, 110], 17),
    ];
    for (src, sizes, pauses, start) in plans {
        let mut t = start * 1_000_000;
        let mut n = 0u64;
        for (b, size) in sizes.iter().enumerate() {
            for k in 0..*size {
                n += 1;
                let sport = 32768 + ((n.wrapping_mul(40503) ^ u64::from(src.octets()[3])) % 28000) as u16;
                frames.push((
                    T0_US + t,
                    syn_frame(src, dst, sport, 13223, (n as u32).wrapping_mul(2_654_435_761), n as u16),
                ));
                if k + 1 < *size {
                    t += 6_000_000;
                }
            }
            if let Some(p) = pauses.get(b) {
                t += p * 1_000_000;
            }
        }
    }
    frames.sort_by_key(|(ts, _)| *ts);
    crate::common::write_pcap(path, &frames);
}
