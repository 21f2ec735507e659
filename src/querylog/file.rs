//! The log's file: opened without ever blocking (a regular file only), and written in whole
//! lines, every record counted once as written or failed, the start of a line that a failed
//! write left cut off again.

use std::fs::File;
use std::io::{Seek as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{FLUSH_AT, QueryLogError, Record, WARN_EVERY, format};
use crate::counters::Counters;

/// Opens `path` for appending, creating it if missing, without ever waiting: the open does not
/// block (`O_NONBLOCK`: a FIFO without a reader is an error, not a wait), and anything but a
/// regular file is refused, by what is at the path before the open and by what was opened.
/// (`O_NONBLOCK` stays set on the file; it means nothing for a regular file.)
pub fn open(path: &Path) -> Result<File, QueryLogError> {
    let err = |e| QueryLogError::Open(path.to_path_buf(), e);
    if let Ok(m) = std::fs::metadata(path) {
        regular(path, &m)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(err)?;
    regular(path, &file.metadata().map_err(err)?)?;
    Ok(file)
}

/// What [`open`] would refuse, found without creating or changing anything (for
/// `signpost check`): something other than a regular file at the path, a file that cannot be
/// opened for appending, or, for a file to be created, a directory that is missing or does
/// not take new files.
pub fn check(path: &Path) -> Result<(), QueryLogError> {
    let err = |e| QueryLogError::Open(path.to_path_buf(), e);
    match std::fs::metadata(path) {
        Ok(m) => {
            regular(path, &m)?;
            // Opening for appending writes nothing.
            let file = std::fs::OpenOptions::new()
                .append(true)
                .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                .open(path)
                .map_err(err)?;
            regular(path, &file.metadata().map_err(err)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            use nix::unistd::AccessFlags;
            nix::unistd::access(dir, AccessFlags::W_OK | AccessFlags::X_OK)
                .map_err(|e| err(e.into()))
        }
        Err(e) => Err(err(e)),
    }
}

/// Refuses anything but a regular file, saying what it is.
fn regular(path: &Path, m: &std::fs::Metadata) -> Result<(), QueryLogError> {
    let t = m.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "of another kind"
    };
    Err(QueryLogError::NotRegular(path.to_path_buf(), what))
}

/// The file being written and the whole lines formatted for it.
pub(super) struct Out {
    pub(super) file: File,
    pub(super) path: PathBuf,
    /// Lines formatted and not written yet, each whole.
    pub(super) buf: String,
    /// Where each line of `buf` ends.
    pub(super) ends: Vec<usize>,
    /// The file ends in the start of a line that could not be cut off (another process
    /// appended after it): the next write ends that line first.
    pub(super) torn: bool,
    pub(super) trouble: Trouble,
}

impl Out {
    pub(super) fn new(file: File, path: PathBuf) -> Out {
        Out {
            file,
            path,
            buf: String::with_capacity(FLUSH_AT + 4096),
            ends: Vec::with_capacity(1024),
            torn: false,
            trouble: Trouble::default(),
        }
    }

    /// Formats `r` as the next line.
    pub(super) fn add(&mut self, r: &Record) {
        format(r, &mut self.buf);
        self.ends.push(self.buf.len());
    }

    /// Enough is formatted for one write.
    pub(super) fn full(&self) -> bool {
        self.buf.len() >= FLUSH_AT
    }

    /// Writes to `file` from now on (a reopen).
    pub(super) fn switch(&mut self, file: File) {
        self.file = file;
        self.torn = false;
    }

    /// Writes the lines formatted so far and counts each: written when all of it reached the
    /// file, failed otherwise (and then warned about, rate-limited).
    pub(super) fn flush(&mut self, counters: &Counters) {
        if self.ends.is_empty() {
            return;
        }
        let (written, error) = self.write_lines();
        let failed = self.ends.len() - written;
        self.buf.clear();
        self.ends.clear();
        {
            let mut e = counters.events();
            e.querylog_written += written as u64;
            e.querylog_failed += failed as u64;
        }
        match error {
            Some(e) => self.trouble.failed(&self.path, failed as u64, &e),
            None => self.trouble.recovered(&self.path),
        }
    }

    /// Writes `buf`: the lines written whole, and the error that stopped the writing. The
    /// start of a line left in the file by a failed write is cut off again.
    fn write_lines(&mut self) -> (usize, Option<std::io::Error>) {
        if self.torn {
            if let Err(e) = write_all(&self.file, b"\n") {
                return (0, Some(e));
            }
            self.torn = false;
        }
        let bytes = self.buf.as_bytes();
        let mut done = 0;
        let error = write_all_from(&self.file, bytes, &mut done).err();
        let whole = self.ends.partition_point(|&end| end <= done);
        let boundary = whole.checked_sub(1).map_or(0, |i| self.ends[i]);
        if done > boundary {
            self.cut(done - boundary);
        }
        (whole, error)
    }

    /// Cuts the last `n` bytes (the start of a line whose write failed) off the file, when
    /// they are still its end; otherwise (another process appended since) the next write
    /// ends the line first.
    pub(super) fn cut(&mut self, n: usize) {
        let n = n as u64;
        let cut = (|| -> std::io::Result<bool> {
            let end = (&self.file).stream_position()?;
            if self.file.metadata()?.len() != end || end < n {
                return Ok(false);
            }
            self.file.set_len(end - n)?;
            Ok(true)
        })();
        if !matches!(cut, Ok(true)) {
            self.torn = true;
        }
    }
}

/// Writes all of `bytes`.
pub(super) fn write_all(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    write_all_from(file, bytes, &mut 0)
}

/// Writes `bytes` from `done` on, advancing `done` by what reached the file, until all of it
/// did or a write fails.
fn write_all_from(mut file: &File, bytes: &[u8], done: &mut usize) -> std::io::Result<()> {
    while *done < bytes.len() {
        match file.write(&bytes[*done..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => *done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write failures, warned about at most once per [`WARN_EVERY`].
#[derive(Debug, Default)]
pub(super) struct Trouble {
    /// When the current run of failures began.
    pub(super) since: Option<Instant>,
    /// Records lost in the current run of failures.
    pub(super) lost: u64,
    /// When the last warning was logged.
    pub(super) warned: Option<Instant>,
    /// Records lost since the last warning.
    pub(super) unwarned: u64,
    /// Failures not warned about since the last warning.
    pub(super) suppressed: u64,
}

impl Trouble {
    fn failed(&mut self, path: &Path, lost: u64, e: &std::io::Error) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.lost += lost;
        self.unwarned += lost;
        if self
            .warned
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            path = %path.display(),
            records_lost = self.unwarned,
            warnings_suppressed = self.suppressed,
            "cannot write the query log: {e}; records are counted as failed until it takes writes again"
        );
        self.warned = Some(now);
        self.unwarned = 0;
        self.suppressed = 0;
    }

    fn recovered(&mut self, path: &Path) {
        let Some(since) = self.since.take() else {
            return;
        };
        tracing::info!(
            path = %path.display(),
            records_lost = self.lost,
            failing_s = since.elapsed().as_secs(),
            "the query log takes writes again"
        );
        self.lost = 0;
        self.unwarned = 0;
        self.suppressed = 0;
    }
}
