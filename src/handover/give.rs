//! The old process's side: describe and send the listening sockets to a new process that asks
//! for them (`takeover` on the control socket), wait for its "ready", let the daemon stop
//! reading, and send the final node states and counters; and `ctl replace`, which starts the
//! new process itself (the same binary path and arguments this one was started with) and waits
//! for the outcome.
//!
//! If the new process fails at any point before "ready" (it reports why, or its connection
//! closes, or it exits), nothing has changed here: this process never stopped serving, and
//! its BGP sessions never stopped either. Only after "ready" does it stop its established
//! sessions between two messages and send them, with the final states.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use super::Final;
use super::wire::{self, Carried, Description, FeedRoutes, Message, Socket};
use crate::control::Response;
use crate::control::protocol::Reply;

/// How long a new process may take from asking for the sockets to "ready" (it loads its
/// configuration and data and runs its first round of health checks in between).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a replace failed; the running server keeps serving.
#[derive(Debug)]
pub enum ReplaceError {
    /// Another replace or takeover is under way.
    Busy,
    /// The new process could not be started.
    Spawn(PathBuf, std::io::Error),
    /// The new process reported why it cannot take over.
    Failed(String),
    /// The new process exited before taking over.
    Exited(ExitStatus),
    /// The new process closed the hand-over connection before "ready".
    Closed,
    /// Sending the sockets failed.
    Io(std::io::Error),
    /// The new process was not ready in time (it was stopped).
    Timeout(Duration),
}

impl std::fmt::Display for ReplaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplaceError::Busy => write!(f, "a replace is already under way"),
            ReplaceError::Spawn(p, e) => write!(f, "cannot start {}: {e}", p.display()),
            ReplaceError::Failed(e) => write!(f, "the new process failed: {e}"),
            ReplaceError::Exited(st) => {
                write!(f, "the new process exited before taking over ({st})")
            }
            ReplaceError::Closed => {
                write!(
                    f,
                    "the new process closed the connection before it was ready"
                )
            }
            ReplaceError::Io(e) => write!(f, "cannot send the sockets: {e}"),
            ReplaceError::Timeout(d) => {
                write!(f, "the new process was not ready within {} s", d.as_secs())
            }
        }
    }
}

impl std::error::Error for ReplaceError {}

/// A successful replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    /// This process.
    pub old_pid: u32,
    /// The one serving now.
    pub new_pid: u32,
}

/// The daemon is told this when a new process is ready: it stops reading its sockets and its
/// BGP sessions and sends the final node states, counters and sessions back through
/// `carried`.
pub struct Ready {
    /// The new process.
    pub pid: u32,
    /// The new process serves the control socket it was given.
    pub keeps_control: bool,
    /// Where the daemon sends the final states and sessions, once it has stopped reading.
    pub carried: mpsc::Sender<Final>,
}

/// How this process was started: the binary (resolved at start, so that a binary replaced on
/// disk since is the one a replace starts) and the arguments after it.
#[derive(Debug, Clone)]
pub struct Invocation {
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Invocation {
    /// This process's binary and arguments, without any `--takeover PATH`.
    pub fn current() -> Invocation {
        let mut all = std::env::args_os();
        let argv0 = all.next().unwrap_or_default();
        let exe = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .unwrap_or_else(|_| PathBuf::from(argv0));
        let mut args = Vec::new();
        while let Some(a) = all.next() {
            if a == "--takeover" {
                all.next();
            } else if !a.as_encoded_bytes().starts_with(b"--takeover=") {
                args.push(a);
            }
        }
        Invocation { exe, args }
    }
}

/// The old process's hand-over state: its sockets, and at most one hand-over at a time.
pub struct Handoff {
    invocation: Invocation,
    control: Mutex<Option<PathBuf>>,
    sockets: Mutex<Vec<(Socket, OwnedFd)>>,
    busy: AtomicBool,
    waiter: Mutex<Option<mpsc::Sender<Result<u32, ReplaceError>>>>,
    events: tokio::sync::mpsc::UnboundedSender<Ready>,
    given: AtomicBool,
    reply_pending: AtomicBool,
}

impl Handoff {
    /// A hand-over state for a process started as `invocation`; the daemon listens on the
    /// receiver for a new process's "ready".
    pub fn new(
        invocation: Invocation,
    ) -> (
        std::sync::Arc<Handoff>,
        tokio::sync::mpsc::UnboundedReceiver<Ready>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let h = Handoff {
            invocation,
            control: Mutex::new(None),
            sockets: Mutex::new(Vec::new()),
            busy: AtomicBool::new(false),
            waiter: Mutex::new(None),
            events: tx,
            given: AtomicBool::new(false),
            reply_pending: AtomicBool::new(false),
        };
        (std::sync::Arc::new(h), rx)
    }

    /// Adds a socket to hand over (the daemon keeps a duplicate descriptor of each here).
    pub fn register(&self, socket: Socket, fd: OwnedFd) {
        lock(&self.sockets).push((socket, fd));
    }

    /// The control socket a new process started by [`Handoff::replace`] connects to.
    pub fn set_control(&self, path: PathBuf) {
        *lock(&self.control) = Some(path);
    }

    /// Serves one `takeover` request on `stream` (its request line already read): answers it,
    /// sends the sockets, waits for "ready", has the daemon stop, sends the final states.
    /// `now` gives the node states and counters as they stand.
    /// `routes` gives the BGP feeds' routes as they stand, and the peers whose sessions are
    /// established (handed over after "ready").
    pub fn give(
        &self,
        mut stream: UnixStream,
        now: impl Fn() -> Carried,
        routes: impl Fn() -> (Vec<FeedRoutes>, Vec<String>),
    ) {
        let answer = |stream: &mut UnixStream, r: Response| {
            let mut line = serde_json::to_string(&r).expect("responses serialise");
            line.push('\n');
            std::io::Write::write_all(stream, line.as_bytes())
        };
        if self.given.load(Ordering::Acquire) || self.busy.swap(true, Ordering::AcqRel) {
            let _ = answer(
                &mut stream,
                Response::failed("a hand-over is already under way", Vec::new()),
            );
            return;
        }
        let outcome = self.hand_over(&mut stream, now, routes, answer);
        match &outcome {
            Ok(pid) => {
                tracing::info!(new_pid = pid, "handed over; stopping");
                self.given.store(true, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!("hand-over failed, still serving: {e}");
                self.busy.store(false, Ordering::Release);
            }
        }
        if let Some(w) = lock(&self.waiter).take() {
            let _ = w.send(outcome);
        }
    }

    fn hand_over(
        &self,
        stream: &mut UnixStream,
        now: impl Fn() -> Carried,
        routes: impl Fn() -> (Vec<FeedRoutes>, Vec<String>),
        answer: impl Fn(&mut UnixStream, Response) -> std::io::Result<()>,
    ) -> Result<u32, ReplaceError> {
        answer(stream, Response::ok(Reply::Done {})).map_err(ReplaceError::Io)?;
        {
            let (feeds, sessions) = routes();
            let sockets = lock(&self.sockets);
            let desc = Description {
                pid: std::process::id(),
                sockets: sockets.iter().map(|(s, _)| s.clone()).collect(),
                carried: now(),
                feeds: feeds.len(),
                sessions,
            };
            wire::write_frame(stream, &desc).map_err(ReplaceError::Io)?;
            let fds: Vec<_> = sockets.iter().map(|(_, fd)| fd.as_fd()).collect();
            wire::send_fds(stream, &fds).map_err(ReplaceError::Io)?;
            // The routes the new process answers with until its own sessions are back.
            for f in &feeds {
                wire::write_routes(stream, f).map_err(ReplaceError::Io)?;
            }
        }
        stream
            .set_read_timeout(Some(READY_TIMEOUT))
            .map_err(ReplaceError::Io)?;
        let (pid, keeps_control) = match wire::read_frame::<Message>(stream) {
            Ok(Some(Message::Ready { pid, keeps_control })) => (pid, keeps_control),
            Ok(Some(Message::Failed { error })) => return Err(ReplaceError::Failed(error)),
            Ok(Some(_)) | Ok(None) => return Err(ReplaceError::Closed),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let _ = wire::write_frame(
                    stream,
                    &Message::Abort {
                        reason: format!("not ready within {} s", READY_TIMEOUT.as_secs()),
                    },
                );
                return Err(ReplaceError::Timeout(READY_TIMEOUT));
            }
            Err(_) => return Err(ReplaceError::Closed),
        };
        // From here on the new process serves: this one stops whatever happens next.
        let (tx, rx) = mpsc::channel();
        let ready = Ready {
            pid,
            keeps_control,
            carried: tx,
        };
        let carried = match self.events.send(ready) {
            Ok(()) => rx.recv_timeout(Duration::from_secs(30)).ok(),
            Err(_) => None,
        };
        match carried {
            Some(last) => {
                if let Err(e) = send_final(stream, last) {
                    tracing::warn!("cannot send the final states to the new process: {e}");
                }
            }
            None => tracing::warn!("the daemon did not stop in time; final states not sent"),
        }
        Ok(pid)
    }

    /// `ctl replace`: starts this binary again with this process's arguments plus
    /// `--takeover CONTROL`, and waits until it has taken over or failed. The new process
    /// inherits this one's standard output and error (the journal, under systemd).
    pub fn replace(&self) -> Result<Replaced, ReplaceError> {
        let Some(control) = lock(&self.control).clone() else {
            return Err(ReplaceError::Failed(
                "this server has no control socket to hand over on".into(),
            ));
        };
        let (tx, rx) = mpsc::channel();
        {
            let mut w = lock(&self.waiter);
            if w.is_some()
                || self.busy.load(Ordering::Acquire)
                || self.given.load(Ordering::Acquire)
            {
                return Err(ReplaceError::Busy);
            }
            *w = Some(tx);
        }
        self.reply_pending.store(true, Ordering::Release);
        let inv = &self.invocation;
        let spawned = Command::new(&inv.exe)
            .args(&inv.args)
            .arg("--takeover")
            .arg(&control)
            .stdin(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                lock(&self.waiter).take();
                return Err(ReplaceError::Spawn(inv.exe.clone(), e));
            }
        };
        tracing::info!(pid = child.id(), exe = %inv.exe.display(), "started a new process to take over");
        let deadline = Instant::now() + READY_TIMEOUT + Duration::from_secs(5);
        let outcome = loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(outcome) => break outcome,
                Err(mpsc::RecvTimeoutError::Disconnected) => break Err(ReplaceError::Closed),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Its own report, if it sent one, says more than its exit status.
                break match rx.recv_timeout(Duration::from_secs(2)) {
                    Ok(Err(ReplaceError::Failed(e))) => Err(ReplaceError::Failed(e)),
                    Ok(Ok(pid)) => Ok(pid),
                    _ => Err(ReplaceError::Exited(status)),
                };
            }
            if Instant::now() > deadline {
                break Err(ReplaceError::Timeout(READY_TIMEOUT));
            }
        };
        if outcome.is_err() {
            lock(&self.waiter).take();
            // A new process that failed exits by itself; one that hangs is stopped.
            let stop_by = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < stop_by {
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
            self.reply_pending.store(false, Ordering::Release);
        }
        outcome.map(|new_pid| Replaced {
            old_pid: std::process::id(),
            new_pid,
        })
    }

    /// The control socket has written the reply to `ctl replace`.
    pub fn replied(&self) {
        self.reply_pending.store(false, Ordering::Release);
    }

    /// After "ready": waits (at most `limit`) until the final states are sent and the reply
    /// to a waiting `ctl replace` is written, so that the daemon may exit.
    pub fn settle(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while (!self.given.load(Ordering::Acquire) || self.reply_pending.load(Ordering::Acquire))
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Sends the final states, then the BGP sessions: their sockets, then their states. The
/// sockets close here once sent; the new process holds them.
fn send_final(stream: &mut UnixStream, last: Final) -> std::io::Result<()> {
    let Final { carried, sessions } = last;
    let done = Message::Done {
        carried,
        sessions: sessions.len(),
    };
    wire::write_frame(stream, &done)?;
    let fds: Vec<_> = sessions.iter().map(|(_, fd)| fd.as_fd()).collect();
    wire::send_fds(stream, &fds)?;
    for (session, _) in &sessions {
        wire::write_session(stream, session)?;
    }
    if !sessions.is_empty() {
        tracing::info!(sessions = sessions.len(), "BGP sessions handed over");
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
