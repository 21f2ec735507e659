//! Loading and reloading: read the configuration, the client data and the maps, build a
//! snapshot off the query path, and publish it with one atomic store.
//!
//! Triggers are file changes (a `notify` watch on the directories of every input, since tools
//! replace files by rename), SIGHUP and the control socket. Triggers are debounced; a build
//! that fails leaves the serving snapshot in place and records the errors for `status`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};

use crate::client::ClientData;
use crate::compile::{self, Inputs};
use crate::config::Config;
use crate::health::HealthTable;
use crate::snapshot::Snapshot;
use crate::source::Errors;

/// Loads everything named by `config_path` (or the embedded default) and builds a snapshot.
pub fn load(
    config_path: Option<&Path>,
    previous_health: Option<&HealthTable>,
) -> Result<(Config, Snapshot), Errors> {
    load_reusing(config_path, previous_health, None)
}

/// Like [`load`], reusing the data files of `previous` that did not change on disk.
pub fn load_reusing(
    config_path: Option<&Path>,
    previous_health: Option<&HealthTable>,
    previous: Option<&ClientData>,
) -> Result<(Config, Snapshot), Errors> {
    let config = match config_path {
        Some(p) => Config::load(p)?,
        None => Config::embedded()?,
    };
    let client = Arc::new(ClientData::load_reusing(
        &config.geoip,
        &config.bgp,
        previous,
    )?);
    let maps = compile::read_maps(&config)?;
    let snap = compile::build(
        &config,
        Inputs {
            client,
            maps: &maps,
            previous_health,
        },
    )?;
    Ok((config, snap))
}

/// The outcome of the last load, for `status`.
#[derive(Clone, Debug)]
pub struct ReloadStatus {
    /// When it finished.
    pub at: SystemTime,
    /// True when the new snapshot is serving.
    pub ok: bool,
    /// The errors of a failed load.
    pub errors: Vec<String>,
    /// Successful loads since start (the first load included).
    pub generation: u64,
}

/// Why a reload was asked for.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A watched file changed.
    FileChanged,
    /// SIGHUP or the control socket: reload now.
    Forced,
    /// Stop the reload thread.
    Stop,
}

/// Shared reload state.
pub struct Reloader {
    /// The published snapshot.
    pub state: Arc<ArcSwap<Snapshot>>,
    /// The last outcome.
    pub status: Arc<Mutex<ReloadStatus>>,
    /// Send triggers here.
    pub trigger: Sender<Trigger>,
}

/// Starts the reload thread and the file watcher. `config` is the configuration in force.
pub fn start(
    config_path: Option<PathBuf>,
    config: &Config,
    state: Arc<ArcSwap<Snapshot>>,
) -> Result<(Reloader, std::thread::JoinHandle<()>), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let status = Arc::new(Mutex::new(ReloadStatus {
        at: SystemTime::now(),
        ok: true,
        errors: Vec::new(),
        generation: 1,
    }));
    let watcher = if config_path.is_some() {
        Some(watch(config, tx.clone())?)
    } else {
        None
    };
    let reloader = Reloader {
        state: state.clone(),
        status: status.clone(),
        trigger: tx,
    };
    let debounce = config.reload_debounce;
    let low_priority = config.reload_low_priority;
    let handle = std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let _watcher = watcher;
            if low_priority {
                lower_priority();
            }
            run(rx, config_path, state, status, debounce)
        })
        .map_err(|e| e.to_string())?;
    Ok((reloader, handle))
}

/// Gives this thread the lowest CPU priority (nice 19), so that compiling a new snapshot never
/// takes CPU time from the UDP workers when they need it: on a busy core a reload takes longer
/// instead. Uses `renice` on the thread id (Linux applies nice values per thread); without it
/// the thread keeps the normal priority.
fn lower_priority() {
    let tid = nix::unistd::gettid().to_string();
    match std::process::Command::new("renice")
        .args(["-n", "19", "-p", &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => tracing::debug!(tid, "reload thread runs at nice 19"),
        _ => tracing::debug!("renice unavailable; the reload thread keeps the normal priority"),
    }
}

fn watch(config: &Config, tx: Sender<Trigger>) -> Result<notify::RecommendedWatcher, String> {
    let files: HashSet<PathBuf> = config
        .watched_files()
        .into_iter()
        .map(|p| absolute(&p))
        .collect();
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for f in &files {
        if f.is_dir() {
            dirs.insert(f.clone());
        } else if let Some(parent) = f.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    let interesting = files.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = ev.paths.iter().any(|p| {
            let p = absolute(p);
            interesting.contains(&p) || p.parent().is_some_and(|d| interesting.contains(d))
        });
        if relevant {
            let _ = tx.send(Trigger::FileChanged);
        }
    })
    .map_err(|e| format!("cannot watch files: {e}"))?;
    for d in &dirs {
        watcher
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", d.display()))?;
    }
    Ok(watcher)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn run(
    rx: Receiver<Trigger>,
    config_path: Option<PathBuf>,
    state: Arc<ArcSwap<Snapshot>>,
    status: Arc<Mutex<ReloadStatus>>,
    debounce: Duration,
) {
    loop {
        let first = match rx.recv() {
            Ok(t) => t,
            Err(_) => return,
        };
        if matches!(first, Trigger::Stop) {
            return;
        }
        // Debounce file changes: wait until the files have been quiet for `debounce`. A forced
        // reload (SIGHUP) goes ahead at once, and ends a debounce in progress.
        if matches!(first, Trigger::FileChanged) {
            let mut deadline = Instant::now() + debounce;
            loop {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(Trigger::FileChanged) => deadline = Instant::now() + debounce,
                    Ok(Trigger::Forced) | Err(RecvTimeoutError::Timeout) => break,
                    Ok(Trigger::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
        reload_now(config_path.as_deref(), &state, &status);
    }
}

/// Builds a new snapshot and swaps it in, or keeps the old one and records why.
pub fn reload_now(
    config_path: Option<&Path>,
    state: &ArcSwap<Snapshot>,
    status: &Mutex<ReloadStatus>,
) -> bool {
    let started = Instant::now();
    let old = state.load_full();
    let result = load_reusing(config_path, Some(&old.health), Some(&old.client));
    let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
    st.at = SystemTime::now();
    match result {
        Ok((_, snap)) => {
            let versions = snap.versions.clone();
            state.store(Arc::new(snap));
            st.ok = true;
            st.errors.clear();
            st.generation += 1;
            tracing::info!(ms = started.elapsed().as_millis() as u64, %versions, "reloaded");
            true
        }
        Err(errors) => {
            st.ok = false;
            st.errors = errors.0.iter().map(|e| e.to_string()).collect();
            tracing::error!("reload failed, using previously loaded data:\n{errors}");
            false
        }
    }
}
