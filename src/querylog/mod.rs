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

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::counters::Counters;
use crate::snapshot::{ServiceAnswer, Snapshot};
use crate::wire::MAX_NAME;

mod file;
mod format;
#[cfg(test)]
mod tests;

use file::Out;
pub use file::{check, open};
pub use format::format;

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
