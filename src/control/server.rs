//! The control socket server: accepts connections on the Unix socket, reads one request per
//! line (at most [`MAX_LINE`] bytes, longer lines are refused without being kept), executes it
//! off the I/O threads and writes the response. Node-state changes go through
//! [`Serving::update_states`]; `reload` goes through the reload thread like every other
//! trigger, and the caller gets its outcome.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::MAX_LINE;
use super::protocol::{
    BgpSession, CheckReport, LastReload, NodeReport, PushedReport, Reply, Request, Response,
    StatusReply,
};
use crate::counters::Stats;
use crate::health::State;
use crate::node_state::{Override, Pushed, now};
use crate::serving::{ReloadOutcome, ReloadRequest, Serving};

/// Why the control socket could not be opened.
#[derive(Debug)]
pub enum ControlError {
    /// The socket could not be bound.
    Bind(PathBuf, std::io::Error),
    /// Its mode could not be set.
    Mode(PathBuf, std::io::Error),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Bind(p, e) => {
                write!(f, "cannot bind control socket {}: {e}", p.display())
            }
            ControlError::Mode(p, e) => write!(f, "cannot set mode of {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ControlError {}

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

/// What the daemon does for `replace` and `takeover`; the control socket only relays them.
pub trait Handover: Send + Sync {
    /// `takeover`: the connection now belongs to the hand-over (a new process asks for the
    /// sockets). Runs on a blocking thread.
    fn takeover(&self, stream: std::os::unix::net::UnixStream);
    /// `replace`: start a new process and wait until it serves; the two process ids.
    fn replace(&self) -> Result<(u32, u32), ReplaceFailed>;
    /// The reply to `replace` has been written.
    fn replied(&self) {}
}

/// Why a replace failed, for the reply.
#[derive(Debug)]
pub struct ReplaceFailed(pub String);

impl Drop for Control {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some((p, ino)) = &self.path {
            use std::os::unix::fs::MetadataExt;
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.ino() == *ino) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

struct Shared {
    serving: Arc<Serving>,
    stats: Arc<Stats>,
    started: Instant,
    handover: std::sync::OnceLock<Arc<dyn Handover>>,
}

impl Control {
    /// Starts the socket server at `path` (with file mode `mode`) when there is one, and the
    /// once-a-second expiry of overrides and pushes.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        path: Option<PathBuf>,
        mode: u32,
        serving: Arc<Serving>,
        stats: Arc<Stats>,
        started: Instant,
    ) -> Result<Control, ControlError> {
        let Some(path) = path else {
            return Ok(Control::run(runtime, None, serving, stats, started));
        };
        let _ = std::fs::remove_file(&path);
        let listener = {
            let _guard = runtime.enter();
            UnixListener::bind(&path).map_err(|e| ControlError::Bind(path.clone(), e))?
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ControlError::Mode(path.clone(), e))?;
        Ok(Control::run(
            runtime,
            Some((path, listener)),
            serving,
            stats,
            started,
        ))
    }

    /// Serves on a listener handed over by the process this one replaces (its socket file is
    /// `path`, left as it is).
    pub fn adopt(
        runtime: &tokio::runtime::Runtime,
        path: PathBuf,
        listener: std::os::unix::net::UnixListener,
        serving: Arc<Serving>,
        stats: Arc<Stats>,
        started: Instant,
    ) -> Result<Control, ControlError> {
        let listener = {
            let _guard = runtime.enter();
            listener
                .set_nonblocking(true)
                .and_then(|()| UnixListener::from_std(listener))
                .map_err(|e| ControlError::Bind(path.clone(), e))?
        };
        Ok(Control::run(
            runtime,
            Some((path, listener)),
            serving,
            stats,
            started,
        ))
    }

    fn run(
        runtime: &tokio::runtime::Runtime,
        listener: Option<(PathBuf, UnixListener)>,
        serving: Arc<Serving>,
        stats: Arc<Stats>,
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
                    shared.serving.update_states(|st, _| st.expire_and_save());
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
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::symlink_metadata(&path)
            .map(|m| m.ino())
            .unwrap_or(0);
        let dup = listener.as_fd().try_clone_to_owned().ok();
        {
            let shared = shared.clone();
            tasks.push(runtime.spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move { serve_connection(stream, shared).await });
                }
            }));
        }
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

async fn serve_connection(stream: tokio::net::UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read one line, but never more than MAX_LINE bytes of it into memory.
        let mut too_long = false;
        loop {
            let buf = match reader.fill_buf().await {
                Ok(b) => b,
                Err(_) => return,
            };
            if buf.is_empty() {
                if line.is_empty() && !too_long {
                    return;
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
        let parsed = (!too_long).then(|| Request::parse(&line));
        let replace = matches!(parsed, Some(Ok(Request::Replace {})));
        if let Some(Ok(Request::Takeover {})) = parsed
            && let Some(h) = shared.handover.get()
        {
            // The connection now carries the hand-over, on a blocking thread.
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
        let response = if too_long {
            Response::failed(format!("request longer than {MAX_LINE} bytes"), Vec::new())
        } else if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        } else {
            let shared = shared.clone();
            let req = std::mem::take(&mut line);
            tokio::task::spawn_blocking(move || handle(&shared, &req))
                .await
                .unwrap_or_else(|_| Response::failed("internal error", Vec::new()))
        };
        let mut out = serde_json::to_string(&response).expect("responses serialise");
        out.push('\n');
        let written = write.write_all(out.as_bytes()).await;
        if replace && let Some(h) = shared.handover.get() {
            h.replied();
        }
        if written.is_err() {
            return;
        }
    }
}

fn handle(shared: &Shared, line: &[u8]) -> Response {
    match Request::parse(line) {
        Ok(req) => match execute(shared, req) {
            Ok(r) => r,
            Err(e) => Response::failed(e, Vec::new()),
        },
        Err(e) => Response::failed(e.to_string(), Vec::new()),
    }
}

fn execute(shared: &Shared, req: Request) -> Result<Response, String> {
    let serving = &shared.serving;
    let snap = serving.snapshot();
    let known = |n: &str| -> Result<(), String> {
        if snap.health.index(n).is_some() {
            Ok(())
        } else {
            Err(format!("unknown node {n:?}"))
        }
    };
    let done = Response::ok(Reply::Done {});
    match req {
        Request::Status {} => {
            let st = serving.reload_status();
            Ok(Response::ok(Reply::Status(StatusReply {
                version: env!("CARGO_PKG_VERSION").into(),
                uptime_s: shared.started.elapsed().as_secs(),
                data: snap.versions.clone(),
                generation: st.generation,
                last_reload: LastReload {
                    ok: st.ok,
                    at: st
                        .at
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                    errors: st.errors,
                },
            })))
        }
        Request::Nodes {} => {
            let st = serving.states();
            let nodes = snap
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| NodeReport {
                    name: n.name.clone(),
                    state: snap.health.get(i).as_str().into(),
                    why: st.effective(&n.name).1,
                    admin: st.admin.get(&n.name).cloned(),
                    pushed: st.pushed.get(&n.name).map(|p| PushedReport {
                        state: p.state.as_str().into(),
                        expires_at: p.expires_at,
                        source: p.source.clone(),
                    }),
                    poller: st.checks.get(&n.name).map(|p| CheckReport {
                        up: p.up,
                        last_error: p.last_error.clone(),
                        at: p.at,
                        successes: p.successes,
                        failures: p.failures,
                    }),
                })
                .collect();
            Ok(Response::ok(Reply::Nodes { nodes }))
        }
        Request::Set {
            node,
            state,
            reason,
            expires_in,
        } => {
            known(&node)?;
            State::parse(&state)
                .ok_or_else(|| format!("bad state {state:?}; expected up, down or drain"))?;
            if expires_in == Some(0) {
                return Err(
                    "`expires_in` must be at least 1 second (leave it out for none)".into(),
                );
            }
            serving
                .update_states(|st, _| {
                    st.admin.insert(
                        node.clone(),
                        Override {
                            node: node.clone(),
                            state,
                            reason: reason.unwrap_or_default(),
                            expires_at: expires_in.map(|s| now() + s),
                        },
                    );
                    st.save()
                })
                .map_err(|e| e.to_string())?;
            Ok(done)
        }
        Request::Clear { node } => {
            serving.update_states(|st, _| {
                if st.admin.remove(&node).is_none() {
                    return Err(format!("no admin override for {node:?}"));
                }
                st.save().map_err(|e| e.to_string())
            })?;
            Ok(done)
        }
        Request::Push { source, states } => {
            let source = source.unwrap_or_else(|| "monitor".into());
            if states.is_empty() {
                return Err("`push` needs at least one state".into());
            }
            // Validate the whole batch first: it is applied entirely or not at all.
            let mut parsed = Vec::new();
            for it in &states {
                known(&it.node)?;
                let s = State::parse(&it.state)
                    .ok_or_else(|| format!("bad state {:?} for {}", it.state, it.node))?;
                if it.ttl == 0 || it.ttl > 86_400 {
                    return Err(format!("ttl for {} must be 1..=86400 seconds", it.node));
                }
                parsed.push((it.node.clone(), s, it.ttl));
            }
            serving.update_states(|st, _| {
                for (node, state, ttl) in parsed {
                    st.pushed.insert(
                        node,
                        Pushed {
                            state,
                            expires_at: now() + ttl,
                            source: source.clone(),
                        },
                    );
                }
            });
            Ok(Response::ok(Reply::Pushed {
                accepted: states.len(),
            }))
        }
        Request::Reload {} => {
            let (tx, rx) = std::sync::mpsc::channel();
            if !serving.request_reload(ReloadRequest::Control(tx)) {
                return Err("the reload thread has stopped".into());
            }
            match rx.recv() {
                Ok(ReloadOutcome::Published(data)) => Ok(Response::ok(Reply::Reloaded { data })),
                Ok(ReloadOutcome::Failed(errors)) => Ok(Response::failed(
                    "reload failed; previous data still serving",
                    errors,
                )),
                Err(_) => Err("the reload thread has stopped".into()),
            }
        }
        Request::Bgp {} => Ok(Response::ok(Reply::Bgp {
            sessions: serving
                .feeds()
                .map(|f| f.status().iter().map(BgpSession::from).collect())
                .unwrap_or_default(),
        })),
        Request::Lookup { addresses } => {
            let mut lines = Vec::new();
            for a in &addresses {
                let ip: std::net::IpAddr = a
                    .parse()
                    .map_err(|_| format!("{a:?} is not an IP address"))?;
                lines.push(ip.to_string());
                for l in snap
                    .client
                    .lookup(ip)
                    .lines()
                    .into_iter()
                    .chain(crate::explain::live_lines(&snap.live, ip))
                {
                    lines.push(format!("  {l}"));
                }
            }
            Ok(Response::ok(Reply::Lines { lines }))
        }
        Request::Explain {
            address,
            name,
            ipv6,
        } => {
            let ip: std::net::IpAddr = address
                .parse()
                .map_err(|_| format!("{address:?} is not an IP address"))?;
            let s = crate::explain::service_named(&snap, &name)
                .ok_or_else(|| format!("{name} is not a service name of this server"))?;
            Ok(Response::ok(Reply::Lines {
                lines: crate::explain::explain(&snap, s, ip, "given in the request", ipv6),
            }))
        }
        Request::Replace {} => {
            let h = shared
                .handover
                .get()
                .ok_or("this server cannot replace itself")?;
            match h.replace() {
                Ok((old_pid, new_pid)) => Ok(Response::ok(Reply::Replaced { old_pid, new_pid })),
                Err(ReplaceFailed(why)) => Err(format!("replace failed, still serving: {why}")),
            }
        }
        Request::Takeover {} => Err("this server cannot hand over its sockets".into()),
        Request::Stats {} => Ok(Response::ok(Reply::Stats {
            stats: shared
                .stats
                .snapshot()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })),
    }
}
