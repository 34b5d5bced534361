//! A classic pcap file's records, read straight from the file: the replay
//! fast path beside libpcap.
//!
//! libpcap reads a savefile through C stdio: two `fread` calls per record
//! (its header, then its bytes), each copying out of the stream's buffer
//! into libpcap's. On the 2 M-packet bench capture that was 12% of all the
//! instructions of a replay (callgrind: about 520 per packet, in `fread`,
//! `_IO_sgetn`, `__fread_chk` and `memcpy`), the largest single share of
//! the reader thread. Here the file is read in large blocks into one
//! buffer and each record is handed out as a slice of it: no copy after
//! the kernel's, and a few dozen instructions of parsing.
//!
//! It is taken only where it gives exactly what libpcap gives, and libpcap
//! still opens every file first (its header checks and messages stay):
//! - a classic pcap (microsecond or nanosecond magic, either byte order),
//!   version 2.4, read from a file (not stdin), with no BPF filter;
//! - a link type whose frames libpcap hands over untouched (Ethernet, raw
//!   IP): it rewrites some pseudo-headers (USB, NFLOG, SocketCAN in SLL)
//!   of byte-swapped files.
//!
//! A record that is anything but plain (a header or bytes cut short by the
//! end of the file, a length over the snapshot length, a read error) is
//! `Rec::Odd`: the caller hands the file back to libpcap at that record
//! (`capture::read_file` skips the records already read), so damaged files
//! get libpcap's own truncation and error handling, and its messages.

use crate::decode::summary::LinkKind;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Bytes read from the file at a time. Measured like the stdio buffer in
/// `savefile`: past the CPU cache the kernel's copy and the decoder's read
/// both miss.
const BLOCK: usize = 64 << 10;
/// libpcap's largest snapshot length for the link types taken here
/// (`MAXIMUM_SNAPLEN`); a longer record goes to libpcap.
const MAX_SNAPLEN: u32 = 262_144;
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

/// One record, or why there is none.
pub enum Rec<'a> {
    /// A whole record: its time (microseconds, as libpcap gives it), its
    /// length on the wire, and its captured bytes.
    Packet { ts_us: i64, len: u32, data: &'a [u8] },
    /// The file ended at a record boundary.
    End,
    /// Something libpcap must handle (see the module comment).
    Odd,
}

/// A classic pcap file read in blocks.
pub struct Records {
    file: File,
    buf: Vec<u8>,
    /// The unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    big_endian: bool,
    nanos: bool,
    /// The file header's snapshot length, as libpcap adjusts it.
    snaplen: u32,
}

impl Records {
    /// The fast path for `path`, when it applies (see the module comment);
    /// None leaves the file to libpcap alone.
    pub fn open(path: &Path, link: LinkKind, filtered: bool) -> Option<Records> {
        if filtered || path.as_os_str() == "-" || !matches!(link, LinkKind::Ethernet | LinkKind::Raw) {
            return None;
        }
        let mut file = File::open(path).ok()?;
        let mut h = [0u8; FILE_HEADER];
        file.read_exact(&mut h).ok()?;
        let (big_endian, nanos) = match [h[0], h[1], h[2], h[3]] {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            _ => return None,
        };
        let u16_at = |i: usize| {
            let b = [h[i], h[i + 1]];
            if big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
        };
        if (u16_at(4), u16_at(6)) != (2, 4) {
            return None;
        }
        let snap = word(&h[16..20], big_endian);
        Some(Records {
            file,
            buf: vec![0; BLOCK],
            pos: 0,
            end: 0,
            big_endian,
            nanos,
            snaplen: if snap == 0 || snap > MAX_SNAPLEN { MAX_SNAPLEN } else { snap },
        })
    }

    /// The next record.
    #[inline]
    pub fn read(&mut self) -> Rec<'_> {
        if self.end - self.pos < RECORD_HEADER && !self.fill(RECORD_HEADER) {
            return if self.pos == self.end { Rec::End } else { Rec::Odd };
        }
        let Some(h) = self.buf.get(self.pos..self.pos + RECORD_HEADER) else { return Rec::Odd };
        let be = self.big_endian;
        let (sec, frac) = (word(&h[0..4], be), word(&h[4..8], be));
        // libpcap reads the seconds and fraction of a file in the host's
        // byte order as signed 32-bit numbers, and swaps the other order's
        // into unsigned ones (seen on a record of second 0xfffffff0).
        let (sec, frac) = if be == cfg!(target_endian = "big") {
            (i64::from(sec as i32), i64::from(frac as i32))
        } else {
            (i64::from(sec), i64::from(frac))
        };
        let caplen = word(&h[8..12], be);
        let len = word(&h[12..16], be);
        if caplen > self.snaplen {
            return Rec::Odd;
        }
        let need = RECORD_HEADER + caplen as usize;
        if self.end - self.pos < need && !self.fill(need) {
            return Rec::Odd;
        }
        let start = self.pos + RECORD_HEADER;
        self.pos += need;
        let usec = if self.nanos { frac / 1000 } else { frac };
        let ts_us = sec.saturating_mul(1_000_000).saturating_add(usec);
        match self.buf.get(start..start + caplen as usize) {
            Some(data) => Rec::Packet { ts_us, len, data },
            None => Rec::Odd,
        }
    }

    /// Makes `need` bytes readable at `pos`; false when the file (or a read
    /// error) ends first.
    #[cold]
    fn fill(&mut self, need: usize) -> bool {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        while self.end < need {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => return false,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

#[inline]
fn word(b: &[u8], big_endian: bool) -> u32 {
    let w = [b[0], b[1], b[2], b[3]];
    if big_endian { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::savefile;

    /// Records as (time, wire length, bytes).
    type Recs = Vec<(i64, u32, Vec<u8>)>;

    /// Every record as libpcap reads it: (time, wire length, bytes).
    fn by_libpcap(path: &Path) -> (Recs, Option<String>) {
        let mut cap = savefile::open(path).unwrap();
        let mut out = Vec::new();
        loop {
            match cap.next_packet() {
                Ok(p) => {
                    out.push((p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec, p.header.len, p.data.to_vec()))
                }
                Err(pcap::Error::NoMorePackets) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    /// Every plain record as the fast path reads it, and whether it ended
    /// on an odd one.
    fn by_records(path: &Path, link: LinkKind) -> (Recs, bool) {
        let mut r = Records::open(path, link, false).expect("fast path");
        let mut out = Vec::new();
        loop {
            match r.read() {
                Rec::Packet { ts_us, len, data } => out.push((ts_us, len, data.to_vec())),
                Rec::End => return (out, false),
                Rec::Odd => return (out, true),
            }
        }
    }

    #[test]
    fn reads_what_libpcap_reads_from_the_lab_captures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
        let mut checked = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let Ok(cap) = savefile::open(&path) else { continue };
            let Some(link) = LinkKind::from_dlt(cap.get_datalink().0) else { continue };
            let Some(_) = Records::open(&path, link, false) else { continue };
            let (ours, odd) = by_records(&path, link);
            let (theirs, err) = by_libpcap(&path);
            assert!(!odd && err.is_none(), "{}", path.display());
            assert_eq!(ours, theirs, "{}", path.display());
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} lab captures take the fast path");
    }

    /// Writes a classic pcap: little- or big-endian, micro- or nanosecond.
    fn write(path: &Path, be: bool, nanos: bool, snaplen: u32, recs: &[(u32, u32, u32, u32, Vec<u8>)]) {
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = Vec::new();
        f.extend(w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        f.extend(w16(2));
        f.extend(w16(4));
        f.extend([0; 8]);
        f.extend(w32(snaplen));
        f.extend(w32(1));
        for (sec, frac, caplen, len, data) in recs {
            f.extend(w32(*sec));
            f.extend(w32(*frac));
            f.extend(w32(*caplen));
            f.extend(w32(*len));
            f.extend(data);
        }
        std::fs::write(path, f).unwrap();
    }

    #[test]
    fn times_lengths_and_byte_orders_match_libpcap_and_odd_records_are_left_to_it() {
        let dir = std::env::temp_dir().join(format!("picket-records-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let frame = |n: usize| (0..n).map(|i| i as u8).collect::<Vec<u8>>();
        // Odd times (a fraction of a second past 10^6, a negative second, a
        // fraction with the top bit set), a record as long as the buffer and
        // longer, a cut frame (caplen < len), an empty one.
        let plain = vec![
            (1_709_294_400, 999_999, 60, 60, frame(60)),
            (1_709_294_401, 1_500_000, 14, 1514, frame(14)),
            (0xffff_fff0, 0x8000_0001, 0, 0, Vec::new()),
            (7, 123_456_789, BLOCK as u32, BLOCK as u32, frame(BLOCK)),
            (8, 5, 70_000, 70_000, frame(70_000)),
            (9, 6, 100, 100, frame(100)),
        ];
        for be in [false, true] {
            for nanos in [false, true] {
                let p = dir.join(format!("plain-{be}-{nanos}.pcap"));
                write(&p, be, nanos, 0, &plain);
                let (ours, odd) = by_records(&p, LinkKind::Ethernet);
                assert!(!odd, "{be} {nanos}");
                assert_eq!(ours.len(), plain.len());
                assert_eq!((ours, None), by_libpcap(&p), "{be} {nanos}");
            }
        }
        // Over the snapshot length, and cut short by the end of the file:
        // the fast path stops at the record and libpcap takes it.
        let p = dir.join("oversnap.pcap");
        write(&p, false, false, 64, &[(1, 2, 60, 60, frame(60)), (1, 3, 100, 100, frame(100))]);
        let (ours, odd) = by_records(&p, LinkKind::Ethernet);
        assert!(odd);
        assert_eq!(ours.len(), 1);
        let p = dir.join("cut.pcap");
        write(&p, false, false, 0, &[(1, 2, 60, 60, frame(60)), (1, 3, 100, 100, frame(40))]);
        let (ours, odd) = by_records(&p, LinkKind::Ethernet);
        assert!(odd);
        let (theirs, err) = by_libpcap(&p);
        assert_eq!(ours, theirs);
        assert!(err.is_some_and(|e| e.contains("truncated")));
        // Not taken: stdin, a filter, a link type libpcap may rewrite, pcapng.
        assert!(Records::open(&p, LinkKind::Ethernet, true).is_none());
        assert!(Records::open(Path::new("-"), LinkKind::Ethernet, false).is_none());
        assert!(Records::open(&p, LinkKind::LinuxSll, false).is_none());
        let ng = dir.join("x.pcapng");
        std::fs::write(&ng, [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        assert!(Records::open(&ng, LinkKind::Ethernet, false).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
