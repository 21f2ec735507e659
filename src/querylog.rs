//! The query log: one JSON line per sampled query, written by a thread of its own.
//!
//! A DNS worker decides with its own [`Sampler`] whether a query is logged and, if so, hands
//! a fixed-size [`Record`] to the writer over a bounded channel with `try_send`: when the
//! writer is behind, the record is dropped and counted (`querylog_dropped`), and answering
//! never waits. The writer formats records into whole lines, appends them to the file in
//! batches, and flushes whenever the queue runs dry (it polls every 20 ms rather than waiting
//! on the channel, so a worker never has a sleeping writer to wake).
//!
//! Every record lands in exactly one count: written (its whole line reached the file),
//! dropped (the queue was full) or failed (the file did not take it: a full disk, an I/O
//! error). The start of a line that a failed write left in the file is cut off again, so the
//! file holds whole lines only and writing resumes on a line boundary once the file takes
//! writes again; failures are warned about at most once per [`WARN_EVERY`], with the records
//! lost and the warnings held back since the last one.
//!
//! The file is opened without ever blocking and must be a regular file ([`open`]): a FIFO or a
//! device at the path is refused, not waited on. [`QueryLog::reopen`] (SIGUSR1 and
//! `signpost ctl reopen`, for logrotate) opens the new file in the caller, who learns whether
//! it could; the writer only switches to it. [`QueryLog::stop`] waits for the writer a bounded
//! time, so that nothing the writer does holds up a shutdown or a hand-over. [`check`] finds
//! what [`open`] would refuse without creating anything (`signpost check`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Seek as _, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::counters::Counters;
use crate::snapshot::{ServiceAnswer, Snapshot};
use crate::wire::MAX_NAME;

/// One logged query, as the worker hands it over (by value: no allocation, the snapshot's
/// `Arc` is shared).
#[derive(Debug)]
pub struct Record {
    /// When it was answered.
    pub time: SystemTime,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// The address the query came from.
    pub client: IpAddr,
    /// The EDNS Client Subnet option: address and source prefix length.
    pub ecs: Option<(IpAddr, u8)>,
    /// The question name in wire form (`qname_len` bytes of it).
    pub qname: [u8; MAX_NAME],
    /// Length of `qname` (0: no question).
    pub qname_len: usize,
    /// Question type.
    pub qtype: u16,
    /// Response code; None when nothing was sent.
    pub rcode: Option<u16>,
    /// The response was truncated.
    pub truncated: bool,
    /// How a service answered, for A/AAAA of a service name.
    pub answer: Option<ServiceAnswer>,
    /// The snapshot that answered (for the names of services, rules, regions and nodes).
    pub snapshot: Arc<Snapshot>,
}

/// Decides which queries are logged: a fraction `rate` of them, at random.
#[derive(Debug, Clone)]
pub struct Sampler {
    threshold: u64,
    state: u64,
}

impl Sampler {
    /// Logs a fraction `rate` (0 to 1) of the queries; `seed` makes workers differ.
    pub fn new(rate: f64, seed: u64) -> Sampler {
        let threshold = if rate >= 1.0 {
            u64::MAX
        } else if rate <= 0.0 {
            0
        } else {
            (rate * u64::MAX as f64) as u64
        };
        Sampler {
            threshold,
            state: seed | 1,
        }
    }

    /// True for a query to log.
    #[inline]
    pub fn hit(&mut self) -> bool {
        if self.threshold == u64::MAX {
            return true;
        }
        // xorshift64*
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) < self.threshold
    }
}

/// Why the query log cannot start, reopen, or (for `signpost check`) would not start.
#[derive(Debug)]
pub enum QueryLogError {
    /// The file cannot be opened for appending (or created).
    Open(PathBuf, std::io::Error),
    /// Something other than a regular file is at the path: what it is.
    NotRegular(PathBuf, &'static str),
    /// The writer thread cannot start.
    Thread(std::io::Error),
}

impl std::fmt::Display for QueryLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryLogError::Open(p, e) => write!(f, "query log {}: {e}", p.display()),
            QueryLogError::NotRegular(p, what) => write!(
                f,
                "query log {}: not a regular file ({what}); the query log is appended to a \
                 regular file only",
                p.display()
            ),
            QueryLogError::Thread(e) => write!(f, "query log: cannot start its thread: {e}"),
        }
    }
}

impl std::error::Error for QueryLogError {}

/// The running query log.
#[derive(Debug)]
pub struct QueryLog {
    tx: Mutex<Option<SyncSender<Record>>>,
    rate: f64,
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What the log's handle and its writer share.
#[derive(Debug, Default)]
struct Shared {
    /// The file `reopen` opened, for the writer to switch to.
    switch: Mutex<Switch>,
    /// Signalled when the writer has switched files, and when it ends.
    changed: Condvar,
    /// Set by `stop`: write what is queued, then end.
    stop: AtomicBool,
}

/// Reopens handed to the writer.
#[derive(Debug, Default)]
struct Switch {
    /// The file to switch to.
    next: Option<File>,
    /// Reopens asked for.
    asked: u64,
    /// Reopens the writer has carried out (switched to that file or a later one).
    done: u64,
    /// The writer has ended.
    ended: bool,
}

/// One worker's end of the query log: its sampler and its sender.
#[derive(Debug)]
pub struct Logger {
    tx: SyncSender<Record>,
    sampler: Sampler,
}

impl Logger {
    /// True for a query to log.
    #[inline]
    pub fn sample(&mut self) -> bool {
        self.sampler.hit()
    }

    /// Hands a record to the writer; false when it was dropped (the writer is behind, or has
    /// stopped).
    #[inline]
    pub fn offer(&self, record: Record) -> bool {
        match self.tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

impl QueryLog {
    /// Opens `path` for appending ([`open`]) and starts the writer with a queue of `queue`
    /// records.
    pub fn start(
        path: &Path,
        rate: f64,
        queue: usize,
        counters: Arc<Counters>,
    ) -> Result<QueryLog, QueryLogError> {
        let file = open(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(queue.max(1));
        let shared = Arc::new(Shared::default());
        let out = Out::new(file, path.to_path_buf());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("querylog".into())
            .spawn(move || writer(rx, queue.max(1), out, &s, &counters))
            .map_err(QueryLogError::Thread)?;
        Ok(QueryLog {
            tx: Mutex::new(Some(tx)),
            rate,
            path: path.to_path_buf(),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A logger for one worker (none once the log is stopped); `seed` makes workers'
    /// samples differ.
    pub fn logger(&self, seed: u64) -> Option<Logger> {
        let tx = lock(&self.tx).clone()?;
        Some(Logger {
            tx,
            sampler: Sampler::new(self.rate, seed),
        })
    }

    /// Opens the file at the log's path again (after logrotate moved it) and has the writer
    /// switch to it: the records queued until then go to the old file, those offered after
    /// this returns to the new one (unless the writer did not get to it within
    /// [`SWITCH_WAIT`]; it switches when it does). When the file cannot be opened, nothing
    /// changes: the writer keeps appending to the file it has.
    pub fn reopen(&self) -> Result<(), QueryLogError> {
        let file = open(&self.path)?;
        let mut sw = lock(&self.shared.switch);
        sw.next = Some(file);
        sw.asked += 1;
        let mine = sw.asked;
        let (sw, waited) = self
            .shared
            .changed
            .wait_timeout_while(sw, SWITCH_WAIT, |s| s.done < mine && !s.ended)
            .unwrap_or_else(|e| e.into_inner());
        drop(sw);
        if waited.timed_out() {
            tracing::warn!(path = %self.path.display(), "the query-log writer has not switched to the reopened file yet");
        }
        Ok(())
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Has the writer write what is queued now and end, and waits for it at most
    /// [`STOP_WAIT`]: a writer that cannot finish (a file system that stopped answering)
    /// holds up neither a shutdown nor a hand-over, and what it still holds is lost. Records
    /// offered afterwards are dropped (and counted). False when the writer did not end in
    /// time. Calling it again does nothing.
    pub fn stop(&self) -> bool {
        lock(&self.tx).take();
        self.shared.stop.store(true, Ordering::Release);
        let Some(thread) = lock(&self.thread).take() else {
            return true;
        };
        let sw = lock(&self.shared.switch);
        let (sw, _) = self
            .shared
            .changed
            .wait_timeout_while(sw, STOP_WAIT, |s| !s.ended)
            .unwrap_or_else(|e| e.into_inner());
        let ended = sw.ended;
        drop(sw);
        if ended {
            let _ = thread.join();
        } else {
            tracing::warn!(
                path = %self.path.display(),
                "the query-log writer did not finish within {} s; going on without it (what it \
                 holds is lost)",
                STOP_WAIT.as_secs()
            );
        }
        ended
    }
}

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tells whoever waits on the writer that it has ended, however it ends.
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        lock(&self.0.switch).ended = true;
        self.0.changed.notify_all();
    }
}

/// The writer thread; `queue` is the channel's bound.
fn writer(rx: Receiver<Record>, queue: usize, mut out: Out, shared: &Shared, counters: &Counters) {
    let _ended = Ended(shared);
    loop {
        // Switch first: a record taken after `reopen` returned goes to the new file. What was
        // queued before (answers already sent; at most `queue` records) goes to the old one.
        let next = {
            let mut sw = lock(&shared.switch);
            sw.next.take().map(|f| (f, sw.asked))
        };
        if let Some((file, asked)) = next {
            let mut left = queue;
            while left > 0 {
                let n = left.min(DRAIN_BATCH);
                if drain(&rx, n, &mut out, counters) != Drained::Batch {
                    break;
                }
                left -= n;
            }
            out.flush(counters);
            out.switch(file);
            lock(&shared.switch).done = asked;
            shared.changed.notify_all();
        }
        // Once stopping, what is queued now is written, then the writer ends.
        let stopping = shared.stop.load(Ordering::Acquire);
        let drained = drain(&rx, DRAIN_BATCH, &mut out, counters);
        if drained != Drained::Batch {
            // The queue ran dry: the file is current within one poll.
            out.flush(counters);
            if stopping || drained == Drained::Disconnected {
                return;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// How a [`drain`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// The whole batch was taken: more may be queued.
    Batch,
    /// The queue is empty.
    Empty,
    /// The queue is empty and every sender is gone.
    Disconnected,
}

/// Formats what is queued, at most `batch` records, writing whenever enough is formatted.
/// The writer polls rather than blocks in `recv`: a worker handing over a record then never
/// has a sleeping reader to wake (no system call on the query path), and the file gets one
/// write per batch.
fn drain(rx: &Receiver<Record>, batch: usize, out: &mut Out, counters: &Counters) -> Drained {
    for _ in 0..batch {
        match rx.try_recv() {
            Ok(r) => {
                out.add(&r);
                drop(r);
                if out.full() {
                    out.flush(counters);
                }
            }
            Err(TryRecvError::Empty) => return Drained::Empty,
            Err(TryRecvError::Disconnected) => return Drained::Disconnected,
        }
    }
    Drained::Batch
}

/// The file being written and the whole lines formatted for it.
struct Out {
    file: File,
    path: PathBuf,
    /// Lines formatted and not written yet, each whole.
    buf: String,
    /// Where each line of `buf` ends.
    ends: Vec<usize>,
    /// The file ends in the start of a line that could not be cut off (another process
    /// appended after it): the next write ends that line first.
    torn: bool,
    trouble: Trouble,
}

impl Out {
    fn new(file: File, path: PathBuf) -> Out {
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
    fn add(&mut self, r: &Record) {
        format(r, &mut self.buf);
        self.ends.push(self.buf.len());
    }

    /// Enough is formatted for one write.
    fn full(&self) -> bool {
        self.buf.len() >= FLUSH_AT
    }

    /// Writes to `file` from now on (a reopen).
    fn switch(&mut self, file: File) {
        self.file = file;
        self.torn = false;
    }

    /// Writes the lines formatted so far and counts each: written when all of it reached the
    /// file, failed otherwise (and then warned about, rate-limited).
    fn flush(&mut self, counters: &Counters) {
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
    fn cut(&mut self, n: usize) {
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
fn write_all(file: &File, bytes: &[u8]) -> std::io::Result<()> {
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
struct Trouble {
    /// When the current run of failures began.
    since: Option<Instant>,
    /// Records lost in the current run of failures.
    lost: u64,
    /// When the last warning was logged.
    warned: Option<Instant>,
    /// Records lost since the last warning.
    unwarned: u64,
    /// Failures not warned about since the last warning.
    suppressed: u64,
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

/// Records written between two looks at a reopen while the queue stays full.
const DRAIN_BATCH: usize = 4096;
/// How long the writer sleeps once the queue is empty: records reach the file within it.
const POLL: Duration = Duration::from_millis(20);
/// Lines are written once this much is formatted (and whenever the queue runs dry).
const FLUSH_AT: usize = 64 * 1024;
/// At most one warning about failed writes in this time.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long [`QueryLog::reopen`] waits for the writer to switch files.
pub const SWITCH_WAIT: Duration = Duration::from_secs(2);
/// How long [`QueryLog::stop`] waits for the writer to end.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// Writes `r` as one JSON line.
pub fn format(r: &Record, out: &mut String) {
    let snap = &r.snapshot;
    out.push('{');
    let _ = write!(out, "\"time\":\"{}\"", rfc3339(r.time));
    let _ = write!(out, ",\"transport\":\"{}\"", r.transport);
    let _ = write!(out, ",\"client\":\"{}\"", r.client);
    if let Some((addr, len)) = r.ecs {
        let _ = write!(out, ",\"ecs\":\"{addr}/{len}\"");
    }
    out.push_str(",\"qname\":");
    json_string(&name_text(&r.qname[..r.qname_len]), out);
    let _ = write!(out, ",\"qtype\":\"{}\"", type_name(r.qtype));
    match r.rcode {
        Some(c) => {
            let _ = write!(out, ",\"rcode\":\"{}\"", rcode_name(c));
        }
        None => out.push_str(",\"rcode\":null"),
    }
    if r.truncated {
        out.push_str(",\"truncated\":true");
    }
    if let Some(a) = &r.answer
        && let Some(svc) = snap.services.get(a.service)
    {
        out.push_str(",\"service\":");
        json_string(svc.names.first().map_or("", |s| s.as_str()), out);
        if let Some(rule) = a.rule.and_then(|i| svc.rules.get(i)) {
            let _ = write!(out, ",\"rule\":\"{}\",\"rule_at\":", rule.kind);
            json_string(&rule.location, out);
        }
        if let Some(region) = a.region.and_then(|i| svc.regions.get(i)) {
            out.push_str(",\"region\":");
            json_string(&region.name, out);
        }
        out.push_str(",\"nodes\":[");
        for (k, &n) in a.nodes().iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            json_string(snap.nodes.get(n).map_or("", |n| n.name.as_str()), out);
        }
        out.push(']');
        if a.ecs_used {
            let _ = write!(out, ",\"scope\":{}", a.scope);
        }
        if a.count > 0 {
            let _ = write!(out, ",\"ttl\":{}", a.ttl);
        }
        if a.degraded {
            out.push_str(",\"degraded\":true");
        }
        if a.all_down {
            out.push_str(",\"all_down\":true");
        }
    }
    out.push_str("}\n");
}

/// A wire-form name as text with a trailing dot; bytes outside printable ASCII, dots and
/// backslashes inside labels escaped as `\DDD` (RFC 1035 §5.1).
fn name_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < wire.len() {
        let len = wire[i] as usize;
        if len == 0 {
            break;
        }
        for &b in wire.get(i + 1..i + 1 + len).unwrap_or(&[]) {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' && b != b'"' {
                s.push(b as char);
            } else {
                let _ = write!(s, "\\{b:03}");
            }
        }
        s.push('.');
        i += 1 + len;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// A JSON string literal.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn type_name(t: u16) -> String {
    match crate::counters::query::QTYPES
        .iter()
        .find(|&&(v, _)| v == t)
    {
        Some(&(_, name)) if name != "other" => name.to_string(),
        _ => format!("TYPE{t}"),
    }
}

fn rcode_name(c: u16) -> String {
    match crate::counters::query::RCODES
        .iter()
        .find(|&&(v, _)| v == c)
    {
        Some(&(_, name)) if name != "other" => name.to_string(),
        _ => format!("RCODE{c}"),
    }
}

/// `2026-12-02T16:30:00.123Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        let t = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(t(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(t(1_796_169_600 + 3_661), "2026-12-02T01:01:01.000Z");
    }

    #[test]
    fn names_and_strings_are_escaped() {
        assert_eq!(
            name_text(b"\x02dl\x07example\x04test\x00"),
            "dl.example.test."
        );
        assert_eq!(name_text(b"\x03a.b\x00"), "a\\046b.");
        assert_eq!(name_text(b"\x00"), ".");
        let mut s = String::new();
        json_string("a\"b\\c\n\u{1b}", &mut s);
        assert_eq!(s, "\"a\\\"b\\\\c\\u000a\\u001b\"");
    }

    /// A fresh directory under the system's temporary directory.
    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("signpost-ql-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn push_line(out: &mut Out, line: &str) {
        out.buf.push_str(line);
        out.ends.push(out.buf.len());
    }

    #[test]
    fn a_file_that_takes_nothing_counts_every_line_as_failed() {
        let counters = Counters::new(1);
        let full = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap();
        let mut out = Out::new(full, "/dev/full".into());
        push_line(&mut out, "{\"a\":1}\n");
        push_line(&mut out, "{\"a\":2}\n");
        out.flush(&counters);
        let e = counters.events().clone();
        assert_eq!((e.querylog_written, e.querylog_failed), (0, 2));
        assert!(out.trouble.since.is_some() && out.trouble.lost == 2);
        assert!(out.buf.is_empty() && out.ends.is_empty());
    }

    #[test]
    fn the_start_of_a_line_is_cut_off_again_or_ended_by_the_next_write() {
        let dir = scratch("cut");
        let path = dir.join("q.jsonl");
        let counters = Counters::new(1);
        let mut out = Out::new(open(&path).unwrap(), path.clone());
        push_line(&mut out, "{\"a\":1}\n");
        out.flush(&counters);
        // What a short write leaves: the start of the next line.
        write_all(&out.file, b"{\"a\":").unwrap();
        out.cut(5);
        assert!(!out.torn);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        // Another process appended after it: the line is ended by the next write instead.
        write_all(&out.file, b"{\"a\":").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"b\":1}\n")
            .unwrap();
        out.cut(5);
        assert!(out.torn);
        push_line(&mut out, "{\"a\":2}\n");
        out.flush(&counters);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("\n{\"a\":2}\n"), "{text:?}");
        assert_eq!(counters.events().querylog_written, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_regular_files_are_opened_and_check_creates_nothing() {
        let dir = scratch("open");
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for (path, what) in [(&fifo, "a FIFO"), (&dir, "a directory")] {
            for e in [open(path).unwrap_err(), check(path).unwrap_err()] {
                assert!(
                    matches!(&e, QueryLogError::NotRegular(_, w) if *w == what),
                    "{e}"
                );
            }
        }
        let missing = dir.join("no/such/dir/q.jsonl");
        assert!(matches!(check(&missing), Err(QueryLogError::Open(..))));
        assert!(matches!(open(&missing), Err(QueryLogError::Open(..))));
        let fresh = dir.join("q.jsonl");
        check(&fresh).unwrap();
        assert!(!fresh.exists(), "check creates nothing");
        open(&fresh).unwrap();
        check(&fresh).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sampling_keeps_about_the_rate() {
        let mut all = Sampler::new(1.0, 7);
        assert!((0..1000).all(|_| all.hit()));
        let mut none = Sampler::new(0.0, 7);
        assert!((0..1000).all(|_| !none.hit()));
        let mut tenth = Sampler::new(0.1, 7);
        let n = (0..100_000).filter(|_| tenth.hit()).count();
        assert!((8_000..12_000).contains(&n), "{n}");
    }
}
