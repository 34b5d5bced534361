//! Following a growing text file the way `tail -F` does, for firewall logs
//! read while picket runs live: complete lines only, none lost and none read
//! twice across rotation (rename and re-create) and truncation.
//!
//! - Lines are split on `\n` (a trailing `\r` is dropped); a partial last
//!   line waits for its newline, except when the file is rotated away, where
//!   it is the writer's last word and is returned as it is.
//! - Rotation: after reading the open file to its end, the path is checked.
//!   A different file there (device/inode) means the old one was renamed:
//!   reading moves to the new file from its start, and the old one stays
//!   open and is drained first on every poll until it has been quiet for
//!   `ROTATED_GRACE` (rsyslog writes to it until logrotate's HUP). A missing
//!   path means rotation is under way: the old file is kept.
//! - Truncation (copytruncate): the same file, now shorter than what was
//!   read, or no longer holding the bytes read just before the position (it
//!   was refilled past it before the next poll): reading restarts at its
//!   start.
//! - One poll reads at most `POLL_BUDGET` bytes of a file; the next goes on
//!   from there. Whatever the writer wrote between
//!   logrotate's copy and its truncate is lost to every reader; that is
//!   copytruncate's known race, not picket's.
//! - A line longer than `max_line` bytes is counted and skipped up to its
//!   newline, so a hostile writer cannot grow memory.
//! - A path that does not exist yet is waited for and read from its start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a renamed file is still read after rotation: rsyslog keeps
/// writing to `kern.log.1` until logrotate's postrotate HUP reaches it.
/// The file is closed once it has been quiet this long.
pub const ROTATED_GRACE: Duration = Duration::from_secs(2);

/// Bytes read from one file in one `poll`; the rest waits for the next
/// (the position is kept), so a huge file or a runaway writer cannot hold
/// the caller, or fill its memory, in one call.
pub const POLL_BUDGET: u64 = 4 << 20;
/// Bytes before the read position remembered to recognise a copytruncate
/// that the writer has already refilled past that position.
const TAIL: usize = 32;

/// What `Follower::poll` saw besides lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowCounts {
    pub rotations: u64,
    pub truncations: u64,
    pub overlong_lines: u64,
}

/// One open file and where reading stands in it.
struct Reading {
    file: File,
    /// (device, inode): a different one at the path means rotation.
    id: (u64, u64),
    /// Bytes consumed so far.
    pos: u64,
    /// The current line, not yet ended.
    partial: Vec<u8>,
    /// Skipping the rest of an overlong line.
    skipping: bool,
    /// The last bytes consumed, ending at `pos` (`tail_len` of them).
    tail: [u8; TAIL],
    tail_len: usize,
}

impl Reading {
    /// Remembers the end of what was just consumed.
    fn keep_tail(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL {
            self.tail.copy_from_slice(&bytes[bytes.len() - TAIL..]);
            self.tail_len = TAIL;
        } else {
            let keep = (TAIL - bytes.len()).min(self.tail_len);
            self.tail.copy_within(self.tail_len - keep..self.tail_len, 0);
            self.tail[keep..keep + bytes.len()].copy_from_slice(bytes);
            self.tail_len = keep + bytes.len();
        }
    }

    /// The file no longer holds, just before `pos`, the bytes read there:
    /// it was truncated and written again (copytruncate).
    fn rewritten(&self) -> bool {
        use std::os::unix::fs::FileExt;
        let n = self.tail_len;
        if n == 0 || self.pos < n as u64 {
            return false;
        }
        let mut now = [0u8; TAIL];
        match self.file.read_at(&mut now[..n], self.pos - n as u64) {
            Ok(k) => k != n || now[..n] != self.tail[..n],
            Err(_) => false,
        }
    }
}

/// A file being followed.
pub struct Follower {
    path: PathBuf,
    cur: Option<Reading>,
    /// The file rotated away, still read until quiet for `grace`, and when
    /// it last gave bytes.
    old: Option<(Reading, Instant)>,
    grace: Duration,
    max_line: usize,
    chunk: Vec<u8>,
    pub counts: FollowCounts,
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn open_at(path: &Path, from_end: bool) -> Option<Reading> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).ok()?;
    let m = file.metadata().ok()?;
    let pos = if from_end { m.len() } else { 0 };
    // Starting at the end of a line still being written: its rest is not a
    // line of its own.
    let mut last = [b'\n'];
    let skipping = pos > 0 && file.read_at(&mut last, pos - 1).is_ok_and(|k| k == 1) && last[0] != b'\n';
    let mut r = Reading { file, id: identity(&m), pos, partial: Vec::new(), skipping, tail: [0; TAIL], tail_len: 0 };
    if pos > 0 {
        let n = pos.min(TAIL as u64) as usize;
        let mut t = [0u8; TAIL];
        if r.file.read_at(&mut t[..n], pos - n as u64).is_ok_and(|k| k == n) {
            r.keep_tail(&t[..n]);
        }
    }
    Some(r)
}

impl Follower {
    /// Follows `path`. With `from_end`, lines already in the file are
    /// skipped (live start); otherwise they are read first.
    pub fn new(path: &Path, from_end: bool, max_line: usize) -> Follower {
        Follower {
            path: path.to_path_buf(),
            cur: open_at(path, from_end),
            old: None,
            grace: ROTATED_GRACE,
            max_line: max_line.max(1),
            chunk: vec![0; 64 * 1024],
            counts: FollowCounts::default(),
        }
    }

    /// Sets how long a rotated-away file is still read (tests).
    pub fn with_grace(mut self, grace: Duration) -> Follower {
        self.grace = grace;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything available and hands each complete line to `line`:
    /// first what the writer still added to a file rotated away, then the
    /// file at the path. Returns how many lines were handed over. Errors are
    /// read errors of the open file; a missing path is not an error.
    pub fn poll(&mut self, mut line: impl FnMut(&[u8])) -> io::Result<usize> {
        let mut n = 0;
        if let Some((mut r, last)) = self.old.take() {
            let before = r.pos;
            let res = self.drain(&mut r, &mut line);
            let last = if r.pos != before { Instant::now() } else { last };
            match res {
                Ok((k, done)) if !done || last.elapsed() < self.grace => {
                    n += k;
                    self.old = Some((r, last));
                }
                // Quiet long enough (or unreadable): its unterminated last
                // line is the writer's last word.
                Ok((k, _)) => n += k + self.close(r, &mut line),
                Err(_) => n += self.close(r, &mut line),
            }
        }
        if self.cur.is_none() {
            self.cur = open_at(&self.path, false);
            // A path that is there but cannot be opened (a rotated file
            // that `live --user` may not read) is an error for the caller
            // to report, not a file to wait for in silence.
            if self.cur.is_none()
                && let Err(e) = File::open(&self.path)
                && e.kind() != io::ErrorKind::NotFound
            {
                return Err(e);
            }
        }
        // At most two passes: drain the open file, then (rotation) the new one.
        for _ in 0..2 {
            let Some(mut r) = self.cur.take() else { return Ok(n) };
            let res = self.drain(&mut r, &mut line);
            let id = r.id;
            self.cur = Some(r);
            let (k, done) = match res {
                Ok(x) => x,
                Err(e) => {
                    // A handle that fails (ESTALE, EIO) is given up for a
                    // different file at the path; the same file is kept.
                    if std::fs::metadata(&self.path).is_ok_and(|m| identity(&m) != id) {
                        self.counts.rotations += 1;
                        if let Some(r) = self.cur.take() {
                            self.close(r, &mut line);
                        }
                        self.cur = open_at(&self.path, false);
                    }
                    return Err(e);
                }
            };
            n += k;
            if !done {
                // More to read: rotation is looked at once this file is drained.
                return Ok(n);
            }
            match std::fs::metadata(&self.path) {
                Ok(m) if identity(&m) != id => {
                    self.counts.rotations += 1;
                    if let Some((o, _)) = self.old.take() {
                        n += self.close(o, &mut line);
                    }
                    if let Some(mut r) = self.cur.take() {
                        // Once more: what was written between reaching its
                        // end and seeing the rename.
                        let (k, done) = self.drain(&mut r, &mut line).unwrap_or((0, true));
                        n += k;
                        if self.grace.is_zero() && done {
                            n += self.close(r, &mut line);
                        } else {
                            self.old = Some((r, Instant::now()));
                        }
                    }
                    self.cur = open_at(&self.path, false);
                }
                _ => return Ok(n),
            }
        }
        Ok(n)
    }

    /// Closes a rotated-away file, handing over its unterminated last line.
    fn close(&mut self, r: Reading, line: &mut impl FnMut(&[u8])) -> usize {
        if !r.partial.is_empty() && !r.skipping {
            line(strip_cr(&r.partial));
            return 1;
        }
        0
    }

    /// Reads `r` from its position toward its end, at most `POLL_BUDGET`
    /// bytes (restarting at 0 if it was truncated). Returns the lines and
    /// whether it reached the end.
    fn drain(&mut self, r: &mut Reading, line: &mut impl FnMut(&[u8])) -> io::Result<(usize, bool)> {
        let mut n = 0;
        let len = r.file.metadata()?.len();
        if len < r.pos || r.rewritten() {
            self.counts.truncations += 1;
            r.pos = 0;
            r.partial.clear();
            r.skipping = false;
            r.tail_len = 0;
        }
        r.file.seek(SeekFrom::Start(r.pos))?;
        let mut budget = POLL_BUDGET;
        loop {
            if budget == 0 {
                return Ok((n, false));
            }
            let want = self.chunk.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
            let got = match r.file.read(&mut self.chunk[..want]) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            r.pos += got as u64;
            budget = budget.saturating_sub(got as u64);
            let chunk = std::mem::take(&mut self.chunk);
            let bytes = chunk.get(..got).unwrap_or_default();
            r.keep_tail(bytes);
            n += self.split(r, bytes, line);
            self.chunk = chunk;
        }
        Ok((n, true))
    }

    /// Splits `bytes` into lines, joining the partial line kept from before.
    fn split(&mut self, r: &mut Reading, bytes: &[u8], line: &mut impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(i);
            rest = tail.get(1..).unwrap_or_default();
            if r.skipping {
                r.skipping = false;
                continue;
            }
            if r.partial.is_empty() {
                if head.len() > self.max_line {
                    self.counts.overlong_lines += 1;
                    continue;
                }
                line(strip_cr(head));
            } else {
                if r.partial.len() + head.len() > self.max_line {
                    self.counts.overlong_lines += 1;
                    r.partial.clear();
                    continue;
                }
                r.partial.extend_from_slice(head);
                line(strip_cr(&r.partial));
                r.partial.clear();
            }
            n += 1;
        }
        if !r.skipping && !rest.is_empty() {
            if r.partial.len() + rest.len() > self.max_line {
                self.counts.overlong_lines += 1;
                r.partial.clear();
                r.skipping = true;
            } else {
                r.partial.extend_from_slice(rest);
            }
        }
        n
    }
}

fn strip_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("picket-follow-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap().write_all(s.as_bytes()).unwrap();
    }

    fn take(f: &mut Follower) -> Vec<String> {
        let mut v = Vec::new();
        f.poll(|l| v.push(String::from_utf8_lossy(l).into_owned())).unwrap();
        v
    }

    #[test]
    fn complete_lines_only_across_polls() {
        let d = dir("lines");
        let p = d.join("fw.log");
        append(&p, "one\ntw");
        let mut f = Follower::new(&p, false, 100);
        assert_eq!(take(&mut f), ["one"]);
        append(&p, "o\r\nthree\n");
        assert_eq!(take(&mut f), ["two", "three"]);
        assert!(take(&mut f).is_empty());
    }

    #[test]
    fn from_end_skips_what_was_there() {
        let d = dir("end");
        let p = d.join("fw.log");
        append(&p, "old\n");
        let mut f = Follower::new(&p, true, 100);
        append(&p, "new\n");
        assert_eq!(take(&mut f), ["new"]);
    }

    #[test]
    fn rename_rotation_loses_nothing_and_reads_nothing_twice() {
        let d = dir("rotate");
        let p = d.join("fw.log");
        append(&p, "a\n");
        let mut f = Follower::new(&p, false, 100).with_grace(Duration::ZERO);
        assert_eq!(take(&mut f), ["a"]);
        // Written after our last read, then rotated away (logrotate "create").
        append(&p, "b\nlast-no-newline");
        std::fs::rename(&p, d.join("fw.log.1")).unwrap();
        // Rotation under way: the path is missing for a moment.
        assert_eq!(take(&mut f), ["b"]);
        append(&p, "c\n");
        assert_eq!(take(&mut f), ["last-no-newline", "c"]);
        assert_eq!(f.counts.rotations, 1);
        append(&p, "d\n");
        assert_eq!(take(&mut f), ["d"]);
    }

    /// logrotate `create` + postrotate HUP: rsyslog goes on writing to the
    /// renamed file until the HUP. Those lines are read (before the new
    /// file's), and the renamed file is closed, its unterminated last line
    /// handed over, once it has been quiet for the grace period.
    #[test]
    fn lines_written_to_the_renamed_file_before_the_hup_are_read() {
        let d = dir("hup");
        let p = d.join("fw.log");
        let rotated = d.join("fw.log.1");
        append(&p, "a\n");
        let grace = Duration::from_millis(300);
        let mut f = Follower::new(&p, false, 100).with_grace(grace);
        assert_eq!(take(&mut f), ["a"]);
        std::fs::rename(&p, &rotated).unwrap();
        append(&p, "new-1\n"); // logrotate's `create`; nothing writes here yet
        assert_eq!(take(&mut f), ["new-1"]);
        append(&rotated, "late-1\nlate-2\nlast-no-newline"); // rsyslog, before its HUP
        append(&p, "new-2\n");
        assert_eq!(take(&mut f), ["late-1", "late-2", "new-2"]);
        assert_eq!(f.counts.rotations, 1);
        std::thread::sleep(grace + Duration::from_millis(50));
        assert_eq!(take(&mut f), ["last-no-newline"], "quiet: closed, its last word handed over");
        append(&rotated, "after-close\n");
        append(&p, "new-3\n");
        assert_eq!(take(&mut f), ["new-3"], "a closed file is not read again");
    }

    #[test]
    fn starting_at_the_end_mid_line_skips_the_rest_of_that_line() {
        let d = dir("midline");
        let p = d.join("fw.log");
        append(&p, "old\npart");
        let mut f = Follower::new(&p, true, 100);
        append(&p, "ial\nnext\n");
        assert_eq!(take(&mut f), ["next"], "not the fragment \"ial\"");
    }

    /// copytruncate, and the writer refilled the file past our position
    /// before the next poll: the length alone cannot tell, the bytes can.
    #[test]
    fn a_truncated_file_already_grown_back_is_read_from_its_start() {
        let d = dir("regrown");
        let p = d.join("fw.log");
        append(&p, "first line\nsecond line\n");
        let mut f = Follower::new(&p, false, 100);
        assert_eq!(take(&mut f).len(), 2);
        std::fs::File::create(&p).unwrap();
        append(&p, "new 1 after the truncation\nnew 2\n");
        assert_eq!(take(&mut f), ["new 1 after the truncation", "new 2"]);
        assert_eq!(f.counts.truncations, 1);
        append(&p, "new 3\n");
        assert_eq!(take(&mut f), ["new 3"], "plain growth is not a truncation");
        assert_eq!(f.counts.truncations, 1);
    }

    /// One poll reads at most `POLL_BUDGET` bytes; the next goes on where it
    /// stopped, so nothing is lost or read twice.
    #[test]
    fn a_large_backlog_is_read_over_several_polls() {
        let d = dir("budget");
        let p = d.join("fw.log");
        let lines = (POLL_BUDGET / 16 * 3) as usize; // 3 budgets of 16-byte lines
        let text: String = (0..lines).map(|i| format!("line {i:010}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        let mut f = Follower::new(&p, false, 100);
        let mut got = Vec::new();
        let mut polls = 0;
        loop {
            let v = take(&mut f);
            polls += 1;
            assert!(v.len() as u64 <= POLL_BUDGET / 16 + 1, "poll {polls}: {} lines", v.len());
            if v.is_empty() {
                break;
            }
            got.extend(v);
        }
        assert!(polls >= 4, "{polls} polls");
        assert_eq!(got.len(), lines);
        assert!(got.iter().enumerate().all(|(i, l)| *l == format!("line {i:010}")));
    }

    #[test]
    fn truncation_restarts_at_the_start() {
        let d = dir("trunc");
        let p = d.join("fw.log");
        append(&p, "first line\nsecond line\n");
        let mut f = Follower::new(&p, false, 100);
        assert_eq!(take(&mut f).len(), 2);
        std::fs::File::create(&p).unwrap(); // copytruncate
        append(&p, "x\n");
        assert_eq!(take(&mut f), ["x"]);
        assert_eq!(f.counts.truncations, 1);
    }

    #[test]
    fn overlong_lines_are_counted_and_skipped_and_a_missing_file_is_waited_for() {
        let d = dir("long");
        let p = d.join("fw.log");
        let mut f = Follower::new(&p, false, 8);
        assert!(take(&mut f).is_empty(), "absent: nothing, no error");
        append(&p, "ok\n");
        append(&p, &"y".repeat(20));
        assert_eq!(take(&mut f), ["ok"]);
        append(&p, &"y".repeat(20));
        append(&p, "\nfine\n0123456789\nend\n");
        assert_eq!(take(&mut f), ["fine", "end"]);
        assert_eq!(f.counts.overlong_lines, 2);
    }
}
