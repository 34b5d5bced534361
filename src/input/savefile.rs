//! Opening a capture file for libpcap with a large read buffer. This is the
//! one module with `unsafe` code, and this is why:
//!
//! libpcap reads a savefile through C stdio (`fread` per record header and
//! per packet). glibc sizes a stream's buffer from the file's `st_blksize`,
//! 4 KiB on ext4, overlayfs and pipes, so replaying a 1 GB capture costs
//! about 240,000 `read` system calls (measured with `strace -c` on the 2 M
//! packet bench capture: 241,576). The pcap crate opens files with
//! `pcap_open_offline`, which gives no way to change that buffer.
//!
//! So this module opens the file itself, wraps the descriptor in a stdio
//! stream with `fdopen`, gives the stream a 64 KiB buffer with `setvbuf`
//! before any I/O (as C requires), and hands the stream to libpcap's own
//! `pcap_fopen_offline`. Every packet is still read and checked by libpcap;
//! only the size of its reads changes (about 15,000 calls for 1 GB).
//!
//! The size was measured with `examples/bare_read` on the bench capture
//! (2 M packets, 957 MB; seconds, best runs): 4 KiB 0.41-0.49, 16 KiB
//! 0.29-0.32, 64 KiB 0.26-0.27, 256 KiB 0.65-0.67, 1 MiB 0.68-0.78. Past
//! the CPU cache the kernel's copy into the buffer and libpcap's copy out
//! of it both miss.
//!
//! Safety: `Savefile` owns the buffer and drops it after the capture (field
//! order), so the stream never outlives its buffer; libpcap owns the stream
//! and closes it in `pcap_close`. Stdin (`-`) keeps libpcap's own path.

#![allow(unsafe_code)]

use crate::input::records::Records;
use pcap::{Capture, Offline};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ops::{Deref, DerefMut};
use std::os::fd::IntoRawFd;
use std::path::Path;
use std::ptr::NonNull;

/// The stdio buffer given to libpcap's stream. Bigger is not better: the
/// kernel's copy into a 256 KiB or 1 MiB buffer leaves the cache before
/// libpcap reads it back (see the module doc).
pub const BUFFER: usize = 64 << 10;
/// libpcap's `PCAP_ERRBUF_SIZE`.
const ERRBUF: usize = 256;

unsafe extern "C" {
    /// libpcap (linked through the pcap crate): reads the savefile header
    /// from `fp` and takes ownership of it.
    fn pcap_fopen_offline(fp: *mut libc::FILE, errbuf: *mut c_char) -> *mut c_void;
}

/// An open savefile: a libpcap capture reading through a large buffer.
pub struct Savefile {
    // Declared first so that it drops (pcap_close, then fclose) before the
    // buffer it reads through.
    cap: Capture<Offline>,
    _buf: Box<[u8]>,
    /// The same file read without libpcap, where that gives the same
    /// records (`records`); `capture::open_file` sets it.
    pub fast: Option<Records>,
}

impl Deref for Savefile {
    type Target = Capture<Offline>;
    fn deref(&self) -> &Capture<Offline> {
        &self.cap
    }
}

impl DerefMut for Savefile {
    fn deref_mut(&mut self) -> &mut Capture<Offline> {
        &mut self.cap
    }
}

impl From<Capture<Offline>> for Savefile {
    /// A capture opened some other way (libpcap's default buffer).
    fn from(cap: Capture<Offline>) -> Savefile {
        Savefile { cap, _buf: Box::default(), fast: None }
    }
}

/// Opens `path` (`-` for stdin) for libpcap. The error is libpcap's message
/// (bad magic, truncated header) or the operating system's.
pub fn open(path: &Path) -> Result<Savefile, String> {
    if path.as_os_str() == "-" {
        return Capture::from_file(path).map(Savefile::from).map_err(|e| e.to_string());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let fd = file.into_raw_fd();
    let mut buf = vec![0u8; BUFFER].into_boxed_slice();
    let mut err = [0 as c_char; ERRBUF];
    // SAFETY: `fd` is an open descriptor this function owns (taken from the
    // `File` above); on success `fdopen` takes it over, on failure it is
    // closed here. `setvbuf` runs before any I/O on the new stream, with a
    // buffer of the stated length that `Savefile` keeps alive for as long
    // as the stream exists. `pcap_fopen_offline` takes the stream (closing
    // it in `pcap_close`); when it fails the stream is still ours and is
    // closed here, after the message is copied. It writes at most
    // `PCAP_ERRBUF_SIZE` bytes of NUL-terminated message into `err`.
    let handle = unsafe {
        let fp = libc::fdopen(fd, c"r".as_ptr());
        if fp.is_null() {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e.to_string());
        }
        if libc::setvbuf(fp, buf.as_mut_ptr().cast(), libc::_IOFBF as c_int, buf.len()) != 0 {
            libc::fclose(fp);
            return Err("cannot set the read buffer".into());
        }
        let p = pcap_fopen_offline(fp, err.as_mut_ptr());
        if p.is_null() {
            let msg = CStr::from_ptr(err.as_ptr()).to_string_lossy().into_owned();
            libc::fclose(fp);
            return Err(if msg.is_empty() { "libpcap could not read the file".into() } else { msg });
        }
        p
    };
    let Some(nn) = NonNull::new(handle.cast()) else { return Err("libpcap returned no handle".into()) };
    Ok(Savefile { cap: Capture::from(nn), _buf: buf, fast: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(mut c: impl DerefMut<Target = Capture<Offline>>) -> (u64, u64) {
        let (mut n, mut bytes) = (0, 0);
        while let Ok(p) = c.next_packet() {
            n += 1;
            bytes += p.data.iter().map(|b| u64::from(*b)).sum::<u64>();
        }
        (n, bytes)
    }

    #[test]
    fn reads_the_same_packets_as_libpcaps_own_open() {
        for name in ["nmap_syn_scan.pcap", "decoy_scan_nmap.pcap", "netbios.pcap"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join(name);
            let ours = count(open(&path).unwrap());
            let theirs = count(Savefile::from(Capture::from_file(&path).unwrap()));
            assert!(ours.0 > 10, "{name}");
            assert_eq!(ours, theirs, "{name}");
        }
    }

    #[test]
    fn bad_files_are_errors_not_crashes() {
        let dir = std::env::temp_dir().join(format!("picket-savefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = open(&dir.join("missing.pcap")).err().unwrap();
        assert!(missing.contains("No such file"), "{missing}");
        for (name, bytes) in
            [("empty", &b""[..]), ("text", &b"not a capture at all\n"[..]), ("short", &[0xd4, 0xc3][..])]
        {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = open(&p).err().unwrap_or_else(|| panic!("{name} opened"));
            assert!(!e.is_empty(), "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
