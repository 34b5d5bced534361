//! The reader: opens a live interface or a list of capture files through
//! libpcap, decodes every frame into a `PacketSummary`, and hands it to the
//! dispatcher. Also where capture errors become messages that name the file
//! and the position.

use crate::decode::decode_into;
use crate::decode::summary::LinkKind;
use crate::decode::summary::PacketSummary;
use crate::fwlog::correlate::Correlator;
use crate::fwlog::live::LiveTap;
use crate::input::records::{Rec, Records};
use crate::input::savefile::{self, Savefile};
use crate::pipeline::clock::LiveClock;
use crate::pipeline::dispatch::{Disorder, Dispatcher, REORDER};
use crate::signals::Flags;
use crate::stats::{LocalCounts, Stats};
use pcap::{Active, Capture};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// File name endings replay picks up when given a directory.
pub const CAPTURE_EXTENSIONS: [&str; 5] = ["pcap", "pcapng", "cap", "dmp", "pcap0"];

/// Live-capture settings.
#[derive(Clone, Debug)]
pub struct LiveOpts {
    pub iface: String,
    pub promisc: bool,
    pub snaplen: i32,
    pub filter: Option<String>,
    pub buffer_mb: Option<u32>,
}

/// What the reader could not do. `Display` is one line for stderr.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: cannot open capture: {msg}")]
    Open { path: String, msg: String },
    #[error(
        "{path}: unsupported link type {dlt} ({name}); picket decodes Ethernet, Linux SLL/SLL2, PPP/Cisco HDLC, raw IP and BSD loopback"
    )]
    LinkType { path: String, dlt: i32, name: String },
    #[error("{path}: capture is damaged at packet {packet}{at}: {msg}")]
    Damaged { path: String, packet: u64, at: String, msg: String },
    #[error("bad BPF filter {filter:?}: {msg}")]
    Filter { filter: String, msg: String },
    #[error("interface {iface}: {msg}")]
    Interface { iface: String, msg: String },
    #[error("{path}: {msg}")]
    Path { path: String, msg: String },
}

/// Expands replay arguments: directories become their capture files, sorted
/// by name; `-` stays as stdin. An argument that names nothing readable (a
/// missing path, a directory without captures) becomes an error in its
/// place, and the others are still expanded.
pub fn expand_inputs(args: &[PathBuf]) -> Vec<Result<PathBuf, CaptureError>> {
    let mut out = Vec::new();
    for a in args {
        if a.as_os_str() == "-" {
            out.push(Ok(a.clone()));
            continue;
        }
        match expand_one(a) {
            Ok(files) => out.extend(files.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

fn expand_one(a: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    let path_err = |msg: String| CaptureError::Path { path: a.display().to_string(), msg };
    let meta = std::fs::metadata(a).map_err(|e| path_err(e.to_string()))?;
    if !meta.is_dir() {
        return Ok(vec![a.to_path_buf()]);
    }
    let rd = std::fs::read_dir(a).map_err(|e| path_err(e.to_string()))?;
    let mut files: Vec<PathBuf> =
        rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file() && is_capture_name(p)).collect();
    if files.is_empty() {
        return Err(path_err("directory holds no capture files (.pcap, .pcapng, .cap)".into()));
    }
    files.sort();
    Ok(files)
}

fn is_capture_name(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| CAPTURE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The name a file's events carry in `sensor`.
pub fn sensor_name(p: &Path) -> String {
    if p.as_os_str() == "-" {
        return "stdin".to_string();
    }
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

fn link_of(path: &str, dlt: pcap::Linktype) -> Result<LinkKind, CaptureError> {
    LinkKind::from_dlt(dlt.0).ok_or_else(|| CaptureError::LinkType {
        path: path.to_string(),
        dlt: dlt.0,
        name: dlt.get_name().unwrap_or_else(|_| "unknown".into()),
    })
}

/// Opens a capture file (or stdin for `-`) and checks its link type.
pub fn open_file(path: &Path, filter: Option<&str>) -> Result<(Savefile, LinkKind), CaptureError> {
    let name = path.display().to_string();
    let mut cap =
        savefile::open(path).map_err(|msg| CaptureError::Open { path: name.clone(), msg: explain(path, msg) })?;
    let link = link_of(&name, cap.get_datalink())?;
    if let Some(f) = filter {
        cap.filter(f, true).map_err(|e| CaptureError::Filter { filter: f.to_string(), msg: e.to_string() })?;
    }
    cap.fast = Records::open(path, link, filter.is_some());
    Ok((cap, link))
}

/// libpcap's "unknown file format" says nothing of where or what: name the
/// position (the file header) and the bytes found there.
fn explain(path: &Path, msg: String) -> String {
    if !msg.contains("unknown file format") || path.as_os_str() == "-" {
        return msg;
    }
    let mut magic = [0u8; 4];
    match std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)) {
        Ok(()) => format!(
            "{msg} at byte 0: the file header is missing or damaged (its first bytes {:02x} {:02x} {:02x} {:02x} \
             are not a pcap or pcapng magic number)",
            magic[0], magic[1], magic[2], magic[3]
        ),
        Err(_) => msg,
    }
}

/// True when the file starts with a pcapng Section Header Block.
fn is_pcapng(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == [0x0a, 0x0d, 0x0d, 0x0a])
}

/// Opens a live interface.
pub fn open_live(o: &LiveOpts) -> Result<(Capture<Active>, LinkKind), CaptureError> {
    let err = |e: pcap::Error| CaptureError::Interface { iface: o.iface.clone(), msg: e.to_string() };
    let mut inactive =
        Capture::from_device(o.iface.as_str()).map_err(err)?.promisc(o.promisc).snaplen(o.snaplen).timeout(100);
    if let Some(mb) = o.buffer_mb {
        inactive = inactive.buffer_size(i32::try_from(u64::from(mb) * 1024 * 1024).unwrap_or(i32::MAX));
    }
    let mut cap = inactive.open().map_err(err)?;
    let link = link_of(&o.iface, cap.get_datalink())?;
    if let Some(f) = &o.filter {
        cap.filter(f, true).map_err(|e| CaptureError::Filter { filter: f.clone(), msg: e.to_string() })?;
    }
    Ok((cap, link))
}

#[inline]
fn ts_us(h: &pcap::PacketHeader) -> i64 {
    // libc time_t and suseconds_t are i64 on the 64-bit Linux picket targets.
    h.ts.tv_sec.saturating_mul(1_000_000).saturating_add(h.ts.tv_usec)
}

/// Reads one opened file to its end (or until a stop signal). Returns the
/// number of packets read; an error mid-file keeps what was read before it.
pub fn read_file(
    path: &Path,
    mut cap: Savefile,
    link: LinkKind,
    d: &mut Dispatcher,
    stats: &Stats,
    flags: &Flags,
    mut corr: Option<&mut Correlator>,
) -> Result<u64, CaptureError> {
    let mut local = LocalCounts::default();
    let mut s = PacketSummary::new(0, 0, 0);
    let mut n: u64 = 0;
    // Classic pcap: a 24-byte file header, then 16 bytes + data per record,
    // so the damaged record's offset is known. pcapng blocks vary: not tracked.
    let classic = cap.major_version() == 2 && !is_pcapng(path);
    let mut offset: u64 = 24;
    // The records: from the fast path while it has them (`records`), else
    // from libpcap, which takes over at the first record the fast path
    // leaves to it, after skipping the ones already read.
    let mut fast = cap.fast.take();
    let mut handover = false;
    let result = loop {
        if handover {
            handover = false;
            fast = None;
            let mut skipped = 0;
            while skipped < n && cap.next_packet().is_ok() {
                skipped += 1;
            }
        }
        let next = match fast.as_mut() {
            Some(f) => match f.read() {
                Rec::Packet { ts_us, len, data } => Ok((ts_us, data.len() as u32, len, data)),
                Rec::End => Err(pcap::Error::NoMorePackets),
                Rec::Odd => {
                    handover = true;
                    continue;
                }
            },
            None => cap.next_packet().map(|pkt| (ts_us(pkt.header), pkt.header.caplen, pkt.header.len, pkt.data)),
        };
        match next {
            Ok((ts, caplen, len, data)) => {
                n += 1;
                offset += 16 + u64::from(caplen);
                decode_into(link, ts, len, data, &mut s);
                local.count(link, &s);
                if let Some(c) = corr.as_deref_mut() {
                    c.observe(&s);
                }
                d.push_frame(link, data, &s);
                if n % 256 == 0 {
                    local.flush_into(stats);
                    if flags.stop_requested() {
                        break Ok(n);
                    }
                    if flags.take_stats_request() {
                        d.report();
                        flags.request_stats_write();
                    }
                }
            }
            Err(pcap::Error::NoMorePackets) => break Ok(n),
            Err(e) => {
                let at = if classic { format!(" (byte offset {offset})") } else { String::new() };
                break Err(CaptureError::Damaged {
                    path: path.display().to_string(),
                    packet: n + 1,
                    at,
                    msg: e.to_string(),
                });
            }
        }
    };
    local.flush_into(stats);
    let disorder = d.take_disorder();
    if disorder.backwards > 0 {
        crate::note!("{}", disorder_note(&path.display().to_string(), &disorder, true));
    }
    result
}

/// The one stderr line about a file's (or a live capture's) time order.
pub fn disorder_note(name: &str, d: &Disorder, replay: bool) -> String {
    let step = d.max_step_back_us as f64 / 1e6;
    let hours = if step >= 3600.0 { format!(" ({:.1} h)", step / 3600.0) } else { String::new() };
    let what =
        if replay { "are stored out of time order" } else { "arrived with a time earlier than a packet before them" };
    let head = format!(
        "{name}: {} packets {what} (the first at packet {}; the furthest {step:.6} s{hours} behind a packet before it)",
        d.backwards, d.first_at
    );
    if d.restarts {
        // Sorting would interleave the two: replay them apart instead.
        let n = d.first_at;
        return format!(
            "picket: warning: {head}; at packet {n} time goes back to the start of the file: it holds two captures \
             (or one twice) stored one after the other, and their packets were analysed together ({} too far out \
             of place, at the time of the packets before them): replay the parts as separate files \
             (`editcap -r {name} part1.pcap 1-{}` and `editcap -r {name} part2.pcap {n}-`), or if it is one \
             capture twice, drop the copies (`editcap -D 1000 {name} once.pcap`)",
            d.late,
            n - 1
        );
    }
    if d.late == 0 {
        return format!("picket: note: {head}; picket put them back in time order before analysis");
    }
    let (reach, cure) = if replay {
        (
            format!(" (more than {REORDER} packets out of place)"),
            format!(": sort the file first (`reordercap {name} sorted.pcap`, from Wireshark)"),
        )
    } else {
        (String::new(), ": the capture clock stepped back".to_string())
    };
    format!(
        "picket: warning: {head}; {} of them were too far out of place to be put back in order{reach} and were \
         analysed at the time of the packets before them, so timings that involve them are not to be trusted{cure}",
        d.late
    )
}

/// Reads a live capture until a stop signal, then drains what the kernel
/// still holds.
///
/// The capture is non-blocking: with TPACKET_V3 libpcap may otherwise wait in
/// poll() with no timeout, and a signal would not wake it. When the ring is
/// empty the reader flushes partial batches, moves packet time on by the
/// wall clock (`LiveClock`: an idle link still settles and expires its
/// detections, and drains firewall records) and sleeps `IDLE_SLEEP`.
pub fn read_live(
    cap: Capture<Active>,
    link: LinkKind,
    d: &mut Dispatcher,
    stats: &Stats,
    flags: &Flags,
    mut tap: Option<&mut LiveTap>,
) -> Result<(), CaptureError> {
    let mut cap =
        cap.setnonblock().map_err(|e| CaptureError::Interface { iface: "capture".into(), msg: e.to_string() })?;
    let mut local = LocalCounts::default();
    let mut s = PacketSummary::new(0, 0, 0);
    let mut n: u64 = 0;
    let mut drain: Option<(Instant, Instant)> = None; // (hard deadline, last packet)
    let mut clock = LiveClock::default();
    let mut newest = i64::MIN;
    loop {
        match cap.next_packet() {
            Ok(pkt) => {
                n += 1;
                let ts = ts_us(pkt.header);
                newest = newest.max(ts);
                decode_into(link, ts, pkt.header.len, pkt.data, &mut s);
                local.count(link, &s);
                d.push_frame(link, pkt.data, &s);
                if let Some(t) = tap.as_deref_mut() {
                    t.push(&s);
                }
                if let Some((_, last)) = &mut drain {
                    *last = Instant::now();
                }
                if n % 256 != 0 {
                    continue;
                }
            }
            Err(pcap::Error::TimeoutExpired) => {
                d.flush_all();
                if let Some(now) = clock.now(newest, Instant::now()) {
                    d.idle_tick(now);
                }
                if let Some(t) = tap.as_deref_mut() {
                    t.flush();
                }
                std::thread::sleep(IDLE_SLEEP);
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                if let Some(t) = tap {
                    t.finish();
                }
                return Err(CaptureError::Interface { iface: "capture".into(), msg: e.to_string() });
            }
        }
        local.flush_into(stats);
        publish_pcap_stats(&mut cap, stats);
        match drain {
            // Packets still sitting in an unretired TPACKET_V3 block show up
            // within one read timeout; wait a little longer than that.
            Some((deadline, last)) if Instant::now() >= deadline || last.elapsed() >= DRAIN_QUIET => break,
            Some(_) => {}
            None if flags.stop_requested() => drain = Some((Instant::now() + DRAIN_MAX, Instant::now())),
            None => {}
        }
        if flags.take_stats_request() {
            d.report();
            flags.request_stats_write();
        }
    }
    local.flush_into(stats);
    publish_pcap_stats(&mut cap, stats);
    if let Some(t) = tap {
        t.finish();
    }
    let disorder = d.take_disorder();
    if disorder.backwards > 0 {
        crate::note!("{}", disorder_note("capture", &disorder, false));
    }
    Ok(())
}

/// Pause when the capture ring is empty.
const IDLE_SLEEP: Duration = Duration::from_millis(2);
/// Shutdown drain: stop once the ring stayed empty this long...
const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// ...or after this long in any case.
const DRAIN_MAX: Duration = Duration::from_secs(2);

fn publish_pcap_stats(cap: &mut Capture<Active>, stats: &Stats) {
    if let Ok(st) = cap.stats() {
        stats.pcap_received.store(u64::from(st.received), Relaxed);
        stats.pcap_dropped.store(u64::from(st.dropped), Relaxed);
        stats.pcap_if_dropped.store(u64::from(st.if_dropped), Relaxed);
    }
}
