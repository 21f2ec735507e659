//! The query log: one JSON line per sampled query, written by a thread of its own.
//!
//! A DNS worker decides with its own [`Sampler`] whether a query is logged and, if so, hands
//! a fixed-size [`Record`] to the writer over a bounded channel with `try_send`: when the
//! writer is behind, the record is dropped and counted (`querylog_dropped`), and answering
//! never waits. The writer formats the record (names are looked up in the snapshot the query
//! was answered from), appends it to the file in batches, flushes whenever the queue runs
//! dry (it polls every 20 ms rather than waiting on the channel, so a worker never has a
//! sleeping writer to wake), and
//! reopens the file when asked ([`QueryLog::reopen`]: SIGUSR1 and `signpost ctl reopen`, for
//! logrotate).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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

/// Why the query log cannot start.
#[derive(Debug)]
pub enum QueryLogError {
    /// The file cannot be opened for appending.
    Open(PathBuf, std::io::Error),
    /// The writer thread cannot start.
    Thread(std::io::Error),
}

impl std::fmt::Display for QueryLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryLogError::Open(p, e) => write!(f, "query log {}: {e}", p.display()),
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
    reopen: Arc<AtomicBool>,
    path: PathBuf,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
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

    /// Hands a record to the writer; false when it was dropped (the writer is behind).
    #[inline]
    pub fn offer(&self, record: Record) -> bool {
        match self.tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

impl QueryLog {
    /// Opens `path` for appending and starts the writer with a queue of `queue` records.
    pub fn start(
        path: &Path,
        rate: f64,
        queue: usize,
        counters: Arc<Counters>,
    ) -> Result<QueryLog, QueryLogError> {
        let file = open(path).map_err(|e| QueryLogError::Open(path.to_path_buf(), e))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(queue.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let (flag, p) = (reopen.clone(), path.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("querylog".into())
            .spawn(move || writer(rx, file, p, flag, counters))
            .map_err(QueryLogError::Thread)?;
        Ok(QueryLog {
            tx: Mutex::new(Some(tx)),
            rate,
            reopen,
            path: path.to_path_buf(),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A logger for one worker (none once the log is stopped); `seed` makes workers'
    /// samples differ.
    pub fn logger(&self, seed: u64) -> Option<Logger> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some(Logger {
            tx,
            sampler: Sampler::new(self.rate, seed),
        })
    }

    /// Asks the writer to reopen the file (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the writer to write what is queued and stop; the workers' loggers must be
    /// gone (the writer stops when the last sender is dropped).
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn open(path: &Path) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(std::io::BufWriter::with_capacity(64 * 1024, f))
}

fn writer(
    rx: Receiver<Record>,
    mut out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    reopen: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let mut line = String::with_capacity(512);
    let mut failing = false;
    let mut write = |out: &mut std::io::BufWriter<std::fs::File>, r: Record, failing: &mut bool| {
        line.clear();
        format(&r, &mut line);
        drop(r);
        match out.write_all(line.as_bytes()) {
            Ok(()) => 1,
            Err(e) => {
                if !*failing {
                    *failing = true;
                    tracing::warn!(path = %path.display(), "cannot write the query log: {e}");
                }
                0
            }
        }
    };
    loop {
        // Reopen before writing: a record that arrives after `reopen` goes to the new file.
        if reopen.swap(false, Ordering::AcqRel) {
            let _ = out.flush();
            match open(&path) {
                Ok(f) => {
                    out = f;
                    failing = false;
                    tracing::info!(path = %path.display(), "query log reopened");
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot reopen the query log: {e}")
                }
            }
        }
        // Drain what is queued, a bounded batch at a time. The writer polls rather than
        // blocks in `recv`: a worker handing over a record then never has a sleeping reader
        // to wake (no system call on the query path), and the file gets one write per batch.
        let mut written = 0u64;
        let mut stop = false;
        while written < DRAIN_BATCH {
            match rx.try_recv() {
                Ok(r) => written += write(&mut out, r, &mut failing),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    stop = true;
                    break;
                }
            }
        }
        if written > 0 {
            counters.events().querylog_written += written;
        }
        if written < DRAIN_BATCH {
            // The queue ran dry: the file is current within one poll.
            if out.flush().is_err() {
                failing = true;
            }
            if stop {
                return;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Records written between two looks at the reopen flag while the queue stays full.
const DRAIN_BATCH: u64 = 4096;
/// How long the writer sleeps once the queue is empty: records reach the file within it.
const POLL: Duration = Duration::from_millis(20);

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
