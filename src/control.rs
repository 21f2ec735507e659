//! The local control socket: newline-delimited JSON requests and responses over a Unix domain
//! socket, the operator and monitor view of node state (admin overrides, pushed states), and
//! the state file that keeps admin overrides across restarts.
//!
//! Effective state = admin override > pushed state (until its TTL) > initial (up). This module
//! writes effective states into the snapshot's health table, immediately on every change and
//! once a second (which also expires entries and covers a snapshot swapped by a reload). The
//! protocol is documented in `docs/control-socket.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use crate::config::Config;
use crate::daemon::ServeOptions;
use crate::dns::Stats;
use crate::health::State;
use crate::reload::{ReloadStatus, Reloader};
use crate::snapshot::Snapshot;

/// The longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// An admin override.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Override {
    /// Node name.
    pub node: String,
    /// Forced state.
    pub state: String,
    /// Why (free text).
    #[serde(default)]
    pub reason: String,
    /// Unix time after which it lapses.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// A state pushed by an external monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct Pushed {
    /// State.
    pub state: State,
    /// Unix time after which it lapses.
    pub expires_at: u64,
    /// Who pushed it.
    pub source: String,
}

/// Overrides and pushes, by node name.
#[derive(Debug, Default)]
pub struct NodeStates {
    /// Admin overrides.
    pub admin: BTreeMap<String, Override>,
    /// Pushed states.
    pub pushed: BTreeMap<String, Pushed>,
    /// Where admin overrides are kept.
    pub state_file: Option<PathBuf>,
    /// Health-check results.
    pub poller: BTreeMap<String, crate::probe::PollerState>,
    /// Nodes that have a health check.
    pub checked: std::collections::HashSet<String>,
    /// State of a checked node before its first result.
    pub initial: Option<State>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Serialize, Deserialize, Default)]
struct StateFile {
    overrides: Vec<Override>,
}

impl NodeStates {
    /// Loads admin overrides from `state_file` (a missing file is an empty one).
    pub fn load(state_file: Option<PathBuf>) -> Result<NodeStates, String> {
        let mut s = NodeStates {
            state_file,
            ..Default::default()
        };
        if let Some(path) = &s.state_file {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let f: StateFile = serde_json::from_slice(&bytes)
                        .map_err(|e| format!("{}: bad state file: {e}", path.display()))?;
                    for o in f.overrides {
                        if State::parse(&o.state).is_some() {
                            s.admin.insert(o.node.clone(), o);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(s)
    }

    /// Writes the admin overrides atomically (temporary file, fsync, rename).
    pub fn save(&self) -> Result<(), String> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let f = StateFile {
            overrides: self.admin.values().cloned().collect(),
        };
        let text = serde_json::to_vec_pretty(&f).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Drops lapsed entries; returns true when an admin override lapsed.
    pub fn expire(&mut self) -> bool {
        let t = now();
        self.pushed.retain(|_, p| p.expires_at > t);
        let before = self.admin.len();
        self.admin.retain(|_, o| o.expires_at.is_none_or(|e| e > t));
        before != self.admin.len()
    }

    /// The layer that decides `node`'s state: the precedence rules, in one place.
    fn deciding(&self, node: &str) -> Decider<'_> {
        if let Some(o) = self.admin.get(node)
            && let Some(s) = State::parse(&o.state)
        {
            return Decider::Admin(s, o);
        }
        if let Some(p) = self.pushed.get(node) {
            return Decider::Pushed(p);
        }
        if let Some(p) = self.poller.get(node) {
            return Decider::Poller(p);
        }
        if self.checked.contains(node) {
            return Decider::Initial(self.initial.unwrap_or(State::Up));
        }
        Decider::Unchecked
    }

    /// The effective state of `node`.
    pub fn state(&self, node: &str) -> State {
        match self.deciding(node) {
            Decider::Admin(s, _) | Decider::Initial(s) => s,
            Decider::Pushed(p) => p.state,
            Decider::Poller(p) => {
                if p.up {
                    State::Up
                } else {
                    State::Down
                }
            }
            Decider::Unchecked => State::Up,
        }
    }

    /// The effective state of `node` and why, for people.
    pub fn effective(&self, node: &str) -> (State, String) {
        let why = match self.deciding(node) {
            Decider::Admin(_, o) => format!("admin override: {}", o.reason),
            Decider::Pushed(p) => format!(
                "pushed by {} (expires in {} s)",
                p.source,
                p.expires_at.saturating_sub(now())
            ),
            Decider::Poller(p) => match (&p.last_error, p.up) {
                (None, true) => "health check passing".into(),
                (None, false) => format!("health check recovering ({} of rise)", p.successes),
                (Some(e), true) => format!("health check failing ({} of fall): {e}", p.failures),
                (Some(e), false) => format!("health check failed: {e}"),
            },
            Decider::Initial(s) => format!("initial state ({}) before the first check", s.as_str()),
            Decider::Unchecked => "no health check".into(),
        };
        (self.state(node), why)
    }

    /// Writes every node's effective state into the snapshot's health table.
    pub fn apply(&self, snap: &Snapshot) {
        for (i, name) in snap.health.names().iter().enumerate() {
            snap.health.set(i, self.state(name));
        }
    }
}

/// Which layer of the precedence decides a node's state.
enum Decider<'a> {
    Admin(State, &'a Override),
    Pushed(&'a Pushed),
    Poller(&'a crate::probe::PollerState),
    Initial(State),
    Unchecked,
}

/// The running control socket; dropping it removes the socket file.
pub struct Control {
    path: Option<PathBuf>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

struct Shared {
    states: Arc<Mutex<NodeStates>>,
    reloader_state: Arc<arc_swap::ArcSwap<Snapshot>>,
    status: Arc<Mutex<ReloadStatus>>,
    config_path: Option<PathBuf>,
    stats: Arc<Stats>,
    started: Instant,
}

impl Control {
    /// Starts the socket server (when a path is configured) and the once-a-second refresher.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        config: &Config,
        opts: &ServeOptions,
        reloader: &Reloader,
        states: Arc<Mutex<NodeStates>>,
        stats: Arc<Stats>,
        started: Instant,
    ) -> Result<Control, String> {
        let shared = Arc::new(Shared {
            states,
            reloader_state: reloader.state.clone(),
            status: reloader.status.clone(),
            config_path: opts.config.clone(),
            stats,
            started,
        });
        {
            let shared = shared.clone();
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let mut st = shared.states.lock().unwrap_or_else(|e| e.into_inner());
                    if st.expire()
                        && let Err(e) = st.save()
                    {
                        tracing::error!("{e}");
                    }
                    st.apply(&shared.reloader_state.load());
                }
            });
        }
        let path = opts
            .control
            .clone()
            .or_else(|| config.control_socket.clone());
        let Some(path) = path else {
            return Ok(Control {
                path: None,
                task: None,
            });
        };
        let _ = std::fs::remove_file(&path);
        let _guard = runtime.enter();
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(config.control_mode))
            .map_err(|e| format!("cannot set mode of {}: {e}", path.display()))?;
        let task = runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move { serve_connection(stream, shared).await });
            }
        });
        Ok(Control {
            path: Some(path),
            task: Some(task),
        })
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
        let response = if too_long {
            json!({"ok": false, "error": format!("request longer than {MAX_LINE} bytes")})
        } else if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        } else {
            let shared = shared.clone();
            let req = std::mem::take(&mut line);
            tokio::task::spawn_blocking(move || handle(&shared, &req))
                .await
                .unwrap_or_else(|_| json!({"ok": false, "error": "internal error"}))
        };
        let mut out = response.to_string();
        out.push('\n');
        if write.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `status`, `nodes`, `set`, `clear`, `push`, `reload` or `stats`.
    pub cmd: String,
    /// Node for `set` and `clear`.
    pub node: Option<String>,
    /// State for `set`.
    pub state: Option<String>,
    /// Reason for `set`.
    pub reason: Option<String>,
    /// Seconds until a `set` lapses.
    pub expires_in: Option<u64>,
    /// Who is pushing.
    pub source: Option<String>,
    /// States for `push`.
    pub states: Option<Vec<PushItem>>,
}

/// One pushed state.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushItem {
    /// Node.
    pub node: String,
    /// `up`, `down` or `drain`.
    pub state: String,
    /// Seconds until it lapses.
    pub ttl: u64,
}

/// Parses a request line; the error is the message sent back.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice::<Request>(line).map_err(|e| format!("bad request: {e}"))
}

fn handle(shared: &Shared, line: &[u8]) -> Value {
    match parse_request(line).and_then(|req| execute(shared, req)) {
        Ok(v) => v,
        Err(e) => json!({"ok": false, "error": e}),
    }
}

fn execute(shared: &Shared, req: Request) -> Result<Value, String> {
    let snap = shared.reloader_state.load_full();
    let known = |n: &str| -> Result<(), String> {
        if snap.health.index(n).is_some() {
            Ok(())
        } else {
            Err(format!("unknown node {n:?}"))
        }
    };
    match req.cmd.as_str() {
        "status" => {
            let st = shared
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            Ok(json!({
                "ok": true,
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": shared.started.elapsed().as_secs(),
                "data": snap.versions,
                "generation": st.generation,
                "last_reload": {
                    "ok": st.ok,
                    "at": st.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                    "errors": st.errors,
                },
            }))
        }
        "nodes" => {
            let st = shared.states.lock().unwrap_or_else(|e| e.into_inner());
            let nodes: Vec<Value> = snap
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let (_, why) = st.effective(&n.name);
                    json!({
                        "name": n.name,
                        "state": snap.health.get(i).as_str(),
                        "why": why,
                        "admin": st.admin.get(&n.name),
                        "pushed": st.pushed.get(&n.name).map(|p| json!({"state": p.state.as_str(), "expires_at": p.expires_at, "source": p.source})),
                        "poller": st.poller.get(&n.name).map(|p| json!({"up": p.up, "last_error": p.last_error, "at": p.at, "successes": p.successes, "failures": p.failures})),
                    })
                })
                .collect();
            Ok(json!({"ok": true, "nodes": nodes}))
        }
        "set" => {
            let node = req.node.ok_or("`set` needs `node`")?;
            known(&node)?;
            let state = req.state.ok_or("`set` needs `state`")?;
            State::parse(&state)
                .ok_or_else(|| format!("bad state {state:?}; expected up, down or drain"))?;
            let mut st = shared.states.lock().unwrap_or_else(|e| e.into_inner());
            st.admin.insert(
                node.clone(),
                Override {
                    node: node.clone(),
                    state,
                    reason: req.reason.unwrap_or_default(),
                    expires_at: req.expires_in.map(|s| now() + s),
                },
            );
            let saved = st.save();
            st.apply(&snap);
            saved?;
            Ok(json!({"ok": true}))
        }
        "clear" => {
            let node = req.node.ok_or("`clear` needs `node`")?;
            let mut st = shared.states.lock().unwrap_or_else(|e| e.into_inner());
            if st.admin.remove(&node).is_none() {
                return Err(format!("no admin override for {node:?}"));
            }
            let saved = st.save();
            st.apply(&snap);
            saved?;
            Ok(json!({"ok": true}))
        }
        "push" => {
            let items = req.states.ok_or("`push` needs `states`")?;
            let source = req.source.unwrap_or_else(|| "monitor".into());
            // Validate the whole batch first: it is applied entirely or not at all.
            let mut parsed = Vec::new();
            for it in &items {
                known(&it.node)?;
                let s = State::parse(&it.state)
                    .ok_or_else(|| format!("bad state {:?} for {}", it.state, it.node))?;
                if it.ttl == 0 || it.ttl > 86_400 {
                    return Err(format!("ttl for {} must be 1..=86400 seconds", it.node));
                }
                parsed.push((it.node.clone(), s, it.ttl));
            }
            let mut st = shared.states.lock().unwrap_or_else(|e| e.into_inner());
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
            st.apply(&snap);
            Ok(json!({"ok": true, "accepted": items.len()}))
        }
        "reload" => {
            let ok = crate::reload::reload_now(
                shared.config_path.as_deref(),
                &shared.reloader_state,
                &shared.status,
            );
            let st = shared.states.lock().unwrap_or_else(|e| e.into_inner());
            st.apply(&shared.reloader_state.load());
            if ok {
                Ok(json!({"ok": true, "data": shared.reloader_state.load().versions}))
            } else {
                let errors = shared
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .errors
                    .clone();
                Ok(
                    json!({"ok": false, "error": "reload failed; previous data still serving", "errors": errors}),
                )
            }
        }
        "stats" => {
            let map: serde_json::Map<String, Value> = shared
                .stats
                .snapshot()
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            Ok(json!({"ok": true, "stats": map}))
        }
        other => Err(format!(
            "unknown command {other:?}; expected status, nodes, set, clear, push, reload or stats"
        )),
    }
}

/// Sends one request and returns the response (client side of `signpost ctl`).
pub fn request(path: &Path, req: &Value) -> Result<Value, String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut line = req.to_string();
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut resp)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&resp).map_err(|e| format!("bad response: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_expiry() {
        let mut s = NodeStates::default();
        assert_eq!(s.effective("a").0, State::Up);
        s.pushed.insert(
            "a".into(),
            Pushed {
                state: State::Down,
                expires_at: now() + 60,
                source: "m".into(),
            },
        );
        assert_eq!(s.effective("a").0, State::Down);
        s.admin.insert(
            "a".into(),
            Override {
                node: "a".into(),
                state: "drain".into(),
                reason: "r".into(),
                expires_at: None,
            },
        );
        assert_eq!(s.effective("a").0, State::Drain);
        s.admin.get_mut("a").unwrap().expires_at = Some(now() - 1);
        s.pushed.get_mut("a").unwrap().expires_at = now() - 1;
        assert!(s.expire());
        assert_eq!(s.effective("a").0, State::Up);
    }

    #[test]
    fn state_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("signpost-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut s = NodeStates::load(Some(path.clone())).unwrap();
        s.admin.insert(
            "fra1".into(),
            Override {
                node: "fra1".into(),
                state: "down".into(),
                reason: "maintenance".into(),
                expires_at: None,
            },
        );
        s.save().unwrap();
        let back = NodeStates::load(Some(path.clone())).unwrap();
        assert_eq!(back.admin, s.admin);
        assert!(!path.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_requests() {
        assert!(parse_request(b"not json").is_err());
        assert!(
            parse_request(br#"{"cmd":"set","colour":1}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert_eq!(parse_request(br#"{"cmd":"status"}"#).unwrap().cmd, "status");
    }
}
