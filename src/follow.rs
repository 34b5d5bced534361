//! Following a growing text file the way `tail -F` does, for firewall logs
//! read while picket runs live: complete lines only, none lost and none read
//! twice across rotation (rename and re-create) and truncation.
//!
//! - Lines are split on `\n` (a trailing `\r` is dropped); a partial last
//!   line waits for its newline, except when the file is rotated away, where
//!   it is the writer's last word and is returned as it is.
//! - Rotation: after reading the open file to its end, the path is checked.
//!   A different file there (device/inode) means the old one was renamed: it
//!   has been drained, so reading moves to the new file from its start. A
//!   missing path means rotation is under way: the old file is kept.
//! - Truncation (copytruncate): the same file, now shorter than what was
//!   read: reading restarts at its start. Whatever the writer wrote between
//!   logrotate's copy and its truncate is lost to every reader; that is
//!   copytruncate's known race, not picket's.
//! - A line longer than `max_line` bytes is counted and skipped up to its
//!   newline, so a hostile writer cannot grow memory.
//! - A path that does not exist yet is waited for and read from its start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What `Follower::poll` saw besides lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowCounts {
    pub rotations: u64,
    pub truncations: u64,
    pub overlong_lines: u64,
}

/// A file being followed.
pub struct Follower {
    path: PathBuf,
    file: Option<(File, (u64, u64))>,
    /// Bytes of the open file consumed so far.
    pos: u64,
    /// The current line, not yet ended.
    partial: Vec<u8>,
    /// Skipping the rest of an overlong line.
    skipping: bool,
    max_line: usize,
    chunk: Vec<u8>,
    pub counts: FollowCounts,
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Follower {
    /// Follows `path`. With `from_end`, lines already in the file are
    /// skipped (live start); otherwise they are read first.
    pub fn new(path: &Path, from_end: bool, max_line: usize) -> Follower {
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            pos: 0,
            partial: Vec::new(),
            skipping: false,
            max_line: max_line.max(1),
            chunk: vec![0; 64 * 1024],
            counts: FollowCounts::default(),
        };
        if let Ok(file) = File::open(path)
            && let Ok(m) = file.metadata()
        {
            f.pos = if from_end { m.len() } else { 0 };
            f.file = Some((file, identity(&m)));
        }
        f
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything available and hands each complete line to `line`.
    /// Returns how many lines were handed over. Errors are read errors of
    /// the open file; a missing path is not an error.
    pub fn poll(&mut self, mut line: impl FnMut(&[u8])) -> io::Result<usize> {
        let mut n = 0;
        if self.file.is_none() {
            self.reopen(0);
        }
        // At most two passes: drain the open file, then (rotation) the new one.
        for _ in 0..2 {
            let Some((mut file, id)) = self.file.take() else { return Ok(n) };
            let read = self.drain(&mut file, &mut line);
            self.file = Some((file, id));
            n += read?;
            match std::fs::metadata(&self.path) {
                Ok(m) if identity(&m) != id => {
                    // Rotated: the old file is drained; its unterminated
                    // last line is complete now.
                    if !self.partial.is_empty() && !self.skipping {
                        line(strip_cr(&self.partial));
                        n += 1;
                    }
                    self.partial.clear();
                    self.skipping = false;
                    self.counts.rotations += 1;
                    self.reopen(0);
                }
                _ => return Ok(n),
            }
        }
        Ok(n)
    }

    /// Reads `file` from `pos` to its end (restarting at 0 if it shrank).
    fn drain(&mut self, file: &mut File, line: &mut impl FnMut(&[u8])) -> io::Result<usize> {
        let mut n = 0;
        let len = file.metadata()?.len();
        if len < self.pos {
            self.counts.truncations += 1;
            self.pos = 0;
            self.partial.clear();
            self.skipping = false;
        }
        file.seek(SeekFrom::Start(self.pos))?;
        loop {
            let got = match file.read(&mut self.chunk) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.pos += got as u64;
            let chunk = std::mem::take(&mut self.chunk);
            n += self.split(chunk.get(..got).unwrap_or_default(), line);
            self.chunk = chunk;
        }
        Ok(n)
    }

    fn reopen(&mut self, pos: u64) {
        self.file = File::open(&self.path).ok().and_then(|f| f.metadata().ok().map(|m| (f, identity(&m))));
        self.pos = pos;
    }

    /// Splits `bytes` into lines, joining the partial line kept from before.
    fn split(&mut self, bytes: &[u8], line: &mut impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(i);
            rest = tail.get(1..).unwrap_or_default();
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.partial.is_empty() {
                if head.len() > self.max_line {
                    self.counts.overlong_lines += 1;
                    continue;
                }
                line(strip_cr(head));
            } else {
                if self.partial.len() + head.len() > self.max_line {
                    self.counts.overlong_lines += 1;
                    self.partial.clear();
                    continue;
                }
                self.partial.extend_from_slice(head);
                line(strip_cr(&self.partial));
                self.partial.clear();
            }
            n += 1;
        }
        if !self.skipping && !rest.is_empty() {
            if self.partial.len() + rest.len() > self.max_line {
                self.counts.overlong_lines += 1;
                self.partial.clear();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(rest);
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
        let mut f = Follower::new(&p, false, 100);
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
