//! The control socket server: accepts connections on the Unix socket, reads one request per
//! line (at most [`MAX_LINE`] bytes, longer lines are refused without being kept), executes it
//! off the I/O threads and writes the response. Node-state changes go through
//! [`crate::serving::Published::update_states`]; `reload` goes through the reload thread like every other
//! trigger, and the caller gets its outcome.
//!
//! Opening the socket never takes it from a running server ([`bind`]), and the connections it
//! holds are bounded in number and in idle time ([`Limits`]).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use super::MAX_LINE;
use super::protocol::{Request, Response};
use crate::counters::Counters;
use crate::serving::Serving;

use super::commands::Shared;
pub use super::commands::{Handover, MAX_EXPIRES_IN, ReplaceFailed};

/// Why the control socket could not be opened.
#[derive(Debug)]
pub enum ControlError {
    /// The socket could not be bound.
    Bind(PathBuf, std::io::Error),
    /// Its mode could not be set.
    Mode(PathBuf, std::io::Error),
    /// A server answers on the socket already.
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    NotASocket(PathBuf),
    /// The socket exists, and whether a server answers on it cannot be told.
    Probe(PathBuf, std::io::Error),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Bind(p, e) => {
                write!(f, "cannot bind control socket {}: {e}", p.display())
            }
            ControlError::Mode(p, e) => write!(f, "cannot set mode of {}: {e}", p.display()),
            ControlError::InUse(p) => write!(
                f,
                "control socket {} is in use: another server answers on it (stop it, or give \
                 this one another path with --control or control.socket)",
                p.display()
            ),
            ControlError::NotASocket(p) => write!(
                f,
                "control socket {}: a file that is not a socket is in the way; not removing it",
                p.display()
            ),
            ControlError::Probe(p, e) => write!(
                f,
                "control socket {} exists and cannot be probed ({e}); not replacing it",
                p.display()
            ),
        }
    }
}

impl std::error::Error for ControlError {}

/// Bounds on the connections the control socket holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; one more is answered with an error and closed.
    pub max_connections: usize,
    /// How long a connection may take to send a complete request line (from its start or
    /// the previous response), and to take a response; then it is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The running control socket; dropping it removes the socket file (unless another server
/// has replaced it since).
pub struct Control {
    /// The socket file and its inode.
    path: Option<(PathBuf, u64)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// A duplicate of the listening descriptor, to hand over.
    listener: Option<std::os::fd::OwnedFd>,
    shared: Arc<Shared>,
}

impl Drop for Control {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some((p, ino)) = &self.path
            && std::fs::symlink_metadata(p).is_ok_and(|m| m.ino() == *ino)
        {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Control {
    /// Starts the socket server at `path` (with file mode `mode`) when there is one, and the
    /// once-a-second expiry of overrides and pushes.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        path: Option<PathBuf>,
        mode: u32,
        limits: Limits,
        serving: Arc<Serving>,
        stats: Arc<Counters>,
        started: Instant,
    ) -> Result<Control, ControlError> {
        // Bound first: a server that cannot open its socket starts nothing.
        let listener = match path {
            Some(p) => {
                let l = bind(&p, mode)?;
                let l = listening(runtime, &p, l)?;
                Some((p, l))
            }
            None => None,
        };
        Ok(Control::run(
            runtime, listener, limits, serving, stats, started,
        ))
    }

    /// Serves on a listener handed over by the process this one replaces (its socket file is
    /// `path`, left as it is).
    pub fn adopt(
        runtime: &tokio::runtime::Runtime,
        path: PathBuf,
        listener: std::os::unix::net::UnixListener,
        limits: Limits,
        serving: Arc<Serving>,
        stats: Arc<Counters>,
        started: Instant,
    ) -> Result<Control, ControlError> {
        let listener = listening(runtime, &path, listener)?;
        Ok(Control::run(
            runtime,
            Some((path, listener)),
            limits,
            serving,
            stats,
            started,
        ))
    }

    fn run(
        runtime: &tokio::runtime::Runtime,
        listener: Option<(PathBuf, UnixListener)>,
        limits: Limits,
        serving: Arc<Serving>,
        stats: Arc<Counters>,
        started: Instant,
    ) -> Control {
        let shared = Arc::new(Shared {
            serving,
            stats,
            started,
            handover: std::sync::OnceLock::new(),
        });
        let mut tasks = Vec::new();
        {
            let shared = shared.clone();
            tasks.push(runtime.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    shared
                        .serving
                        .published()
                        .update_states(|st, _| st.expire_and_save());
                }
            }));
        }
        let Some((path, listener)) = listener else {
            return Control {
                path: None,
                tasks,
                listener: None,
                shared,
            };
        };
        use std::os::fd::AsFd;
        let ino = std::fs::symlink_metadata(&path)
            .map(|m| m.ino())
            .unwrap_or(0);
        let dup = listener.as_fd().try_clone_to_owned().ok();
        tasks.push(runtime.spawn(accept_loop(listener, limits, shared.clone())));
        Control {
            path: Some((path, ino)),
            tasks,
            listener: dup,
            shared,
        }
    }

    /// Lets `replace` and `takeover` requests through to `handover`.
    pub fn set_handover(&self, handover: Arc<dyn Handover>) {
        let _ = self.shared.handover.set(handover);
    }

    /// The socket file and a duplicate of its listening descriptor, to hand over.
    pub fn listener(&self) -> Option<(PathBuf, std::os::fd::BorrowedFd<'_>)> {
        use std::os::fd::AsFd;
        let (path, _) = self.path.as_ref()?;
        Some((path.clone(), self.listener.as_ref()?.as_fd()))
    }

    /// After a hand-over: stops accepting connections and the expiry of overrides, and leaves
    /// the socket file to the new process. Connections already open are still answered.
    pub fn release(mut self) {
        self.path = None;
    }
}

/// A bound listener made ready for the runtime.
fn listening(
    runtime: &tokio::runtime::Runtime,
    path: &Path,
    listener: std::os::unix::net::UnixListener,
) -> Result<UnixListener, ControlError> {
    let _guard = runtime.enter();
    listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(|e| ControlError::Bind(path.into(), e))
}

/// Binds the control socket at `path` with file mode `mode`, so that it is never reachable
/// with looser permissions and never replaces a socket a server answers on.
///
/// The socket is bound in a private directory (mode 0700, beside `path`), its mode set there,
/// and then hard-linked to `path`. The alternative, a restrictive umask around `bind`, is
/// process-wide: the UDP workers, the reload thread and the runtime already run, and a file
/// any of them created in that window would get the wrong mode. `link` also fails when `path`
/// exists, where `rename` would replace it: that is what keeps a second server from taking a
/// first one's socket. An existing `path` is removed only when it is a socket that refuses
/// connections (its server is gone); one that accepts them is in use, and anything else is
/// left alone.
pub fn bind(path: &Path, mode: u32) -> Result<std::os::unix::net::UnixListener, ControlError> {
    let err = |e: std::io::Error| ControlError::Bind(path.into(), e);
    let dir = Private::create(path).map_err(err)?;
    let listener = std::os::unix::net::UnixListener::bind(&dir.socket).map_err(err)?;
    std::fs::set_permissions(&dir.socket, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ControlError::Mode(path.into(), e))?;
    // Bounded: each round either links, fails, or removed a dead socket that was in the way.
    for _ in 0..3 {
        match std::fs::hard_link(&dir.socket, path) {
            Ok(()) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err(e)),
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ControlError::Probe(path.into(), e)),
        };
        if !meta.file_type().is_socket() {
            return Err(ControlError::NotASocket(path.into()));
        }
        match answers(path) {
            Ok(true) => return Err(ControlError::InUse(path.into())),
            Ok(false) => {}
            Err(e) => return Err(ControlError::Probe(path.into(), e)),
        }
        // Stale. Remove it only if it is still the socket just probed.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == meta.ino()) {
            tracing::info!(path = %path.display(), "removing a stale control socket (nothing answers on it)");
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    Err(err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "the path keeps being recreated by someone else",
    )))
}

/// Whether a server accepts connections on the socket at `path`, without waiting: a
/// connection refused is a dead socket; one accepted, or a full backlog, is a live server.
fn answers(path: &Path) -> std::io::Result<bool> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    match s.connect(&SockAddr::unix(path)?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(false),
        Err(e) => Err(e),
    }
}

/// The private directory a socket is bound in before it is linked into place; removed (with
/// the temporary name of the socket) on drop.
struct Private {
    dir: PathBuf,
    socket: PathBuf,
}

impl Private {
    fn create(path: &Path) -> std::io::Result<Private> {
        use std::os::unix::fs::DirBuilderExt;
        let parent = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // Short, so that the temporary socket path is not much longer than `path` (a socket
        // path has at most 107 bytes). One per process: a leftover of a crashed process with
        // the same id is ours to remove.
        let dir = parent.join(format!(".sp-{}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        if let Err(e) = builder.create(&dir) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            std::fs::remove_dir_all(&dir)?;
            builder.create(&dir)?;
        }
        Ok(Private {
            socket: dir.join("s"),
            dir,
        })
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Accepts connections, at most `limits.max_connections` at once. When accepting fails for
/// want of file descriptors or memory, it waits a little before trying again: the pending
/// connection stays in the backlog, and trying at once would spin a core.
async fn accept_loop(listener: UnixListener, limits: Limits, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut failing = false;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                failing = false;
                s
            }
            Err(e) => {
                let exhausted = matches!(
                    e.raw_os_error(),
                    Some(
                        nix::libc::EMFILE
                            | nix::libc::ENFILE
                            | nix::libc::ENOBUFS
                            | nix::libc::ENOMEM
                    )
                );
                if !failing {
                    tracing::warn!("control socket: cannot accept a connection: {e}");
                    failing = true;
                }
                let pause = if exhausted { 100 } else { 10 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Said without waiting (a new socket has room for one line), then closed.
            let mut refusal = serde_json::to_string(&Response::failed(
                format!(
                    "too many control connections ({} open); try again later",
                    limits.max_connections
                ),
                Vec::new(),
            ))
            .expect("responses serialise");
            refusal.push('\n');
            let _ = stream.try_write(refusal.as_bytes());
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            serve_connection(stream, shared, limits.idle_timeout).await;
            drop(permit);
        });
    }
}

/// What reading a request line found.
enum Line {
    /// The peer closed the connection.
    Closed,
    /// A line (in the buffer).
    Complete,
    /// A line longer than [`MAX_LINE`], skipped.
    TooLong,
}

/// Reads one line into `line`, but never more than [`MAX_LINE`] bytes of it into memory.
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<Line> {
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if line.is_empty() && !too_long {
                return Ok(Line::Closed);
            }
            break;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let n = done.unwrap_or(buf.len());
        reader.consume(n);
        if done.is_some() {
            break;
        }
    }
    Ok(if too_long {
        Line::TooLong
    } else {
        Line::Complete
    })
}

async fn serve_connection(stream: tokio::net::UnixStream, shared: Arc<Shared>, idle: Duration) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // The whole line must arrive within the idle timeout: a client sending a byte now and
        // then holds no connection forever.
        let mut replace = false;
        let response = match tokio::time::timeout(idle, read_line(&mut reader, &mut line)).await {
            Err(_) => {
                let bye = Response::failed(
                    format!(
                        "no complete request for {} s; closing the connection",
                        idle.as_secs_f64()
                    ),
                    Vec::new(),
                );
                let mut out = serde_json::to_string(&bye).expect("responses serialise");
                out.push('\n');
                let _ = write.try_write(out.as_bytes());
                return;
            }
            Ok(Err(_)) | Ok(Ok(Line::Closed)) => return,
            Ok(Ok(Line::TooLong)) => {
                Response::failed(format!("request longer than {MAX_LINE} bytes"), Vec::new())
            }
            Ok(Ok(Line::Complete)) if line.iter().all(|b| b.is_ascii_whitespace()) => continue,
            Ok(Ok(Line::Complete)) => {
                let parsed = Request::parse(&line);
                replace = matches!(parsed, Ok(Request::Replace {}));
                if let Ok(Request::Takeover {}) = parsed
                    && let Some(h) = shared.handover.get()
                {
                    // The connection now carries the hand-over, on a blocking thread, without
                    // the idle timeout of requests.
                    let h = h.clone();
                    let stream = reader
                        .into_inner()
                        .reunite(write)
                        .ok()
                        .and_then(|s| s.into_std().ok());
                    if let Some(stream) = stream
                        && stream.set_nonblocking(false).is_ok()
                    {
                        let _ = tokio::task::spawn_blocking(move || h.takeover(stream)).await;
                    }
                    return;
                }
                let shared = shared.clone();
                let req = std::mem::take(&mut line);
                tokio::task::spawn_blocking(move || handle(&shared, &req))
                    .await
                    .unwrap_or_else(|_| Response::failed("internal error", Vec::new()))
            }
        };
        let mut out = serde_json::to_string(&response).expect("responses serialise");
        out.push('\n');
        // A client that does not read its responses is dropped like an idle one.
        let written = tokio::time::timeout(idle, write.write_all(out.as_bytes())).await;
        if replace && let Some(h) = shared.handover.get() {
            h.replied();
        }
        match written {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Executes one request line exactly as a connection's would be, without a socket: the path
/// the fuzzing of control requests against reloads drives (`fuzz/fuzz_targets/reload.rs`).
/// `replace` and `takeover` are refused as by a server without a hand-over; `reload` is
/// answered once the reload thread reading `serving`'s requests replies (or refused when none
/// is reading).
pub fn respond(serving: Arc<Serving>, stats: Arc<Counters>, line: &[u8]) -> Response {
    let shared = Shared {
        serving,
        stats,
        started: Instant::now(),
        handover: std::sync::OnceLock::new(),
    };
    handle(&shared, line)
}

fn handle(shared: &Shared, line: &[u8]) -> Response {
    match Request::parse(line) {
        Ok(req) => match super::commands::execute(shared, req) {
            Ok(r) => r,
            Err(e) => Response::failed(e, Vec::new()),
        },
        Err(e) => Response::failed(e.to_string(), Vec::new()),
    }
}
