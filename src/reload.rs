//! The reload thread: every trigger (a watched file changed, SIGHUP, `signpost ctl reload`, a
//! live BGP feed changed) arrives as a [`ReloadRequest`] on one channel; the thread coalesces
//! them, builds the next snapshot off the query path ([`crate::load`]) and publishes it
//! ([`Serving::publish`]: node states applied before the swap). A build that fails leaves the
//! serving snapshot in place and records the errors for `status`; a `ctl reload` caller gets
//! the outcome.
//!
//! The reload guard ([`crate::guard`]): a build from the files whose snapshot would stop
//! serving a zone or a service name, or whose GeoIP or BGP file data shrink by more than
//! `reload_guard.max_shrink_percent`, is held: the serving snapshot stays, `status` and the log
//! say what shrank, and `signpost ctl reload --confirm` publishes it. The settings of the
//! configuration serving now decide (an edit cannot switch the guard off for itself). Builds
//! for feed changes only are never held: they compile the sources already serving.
//!
//! Coalescing: file changes wait until the files have been quiet for the debounce; SIGHUP and
//! `ctl reload` go ahead at once and end a debounce in progress; every request that arrived
//! before a build starts is served by that build.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use crate::config::Config;
use crate::guard::{Inventory, compare, report};
use crate::load::Sources;
use crate::serving::{ReloadOutcome, ReloadRequest, Serving};

/// Why the reload thread could not start.
#[derive(Debug)]
pub enum ReloadError {
    /// The file watcher could not be set up.
    Watch(String, notify::Error),
    /// The thread could not be spawned.
    Thread(std::io::Error),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Watch(what, e) => write!(f, "cannot watch {what}: {e}"),
            ReloadError::Thread(e) => write!(f, "cannot start the reload thread: {e}"),
        }
    }
}

impl std::error::Error for ReloadError {}

/// How the reload thread coalesces.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Quiet time after the last file change.
    pub debounce: Duration,
    /// Longest wait between a feed change and the build that follows it.
    pub feed_delay: Duration,
    /// Run builds at the lowest CPU priority.
    pub low_priority: bool,
}

impl Timing {
    /// The timing the configuration asks for.
    pub fn of(config: &Config) -> Timing {
        Timing {
            debounce: config.reload_debounce,
            feed_delay: config
                .feeds
                .as_ref()
                .map_or(Duration::from_secs(1), |f| f.update_delay),
            low_priority: config.reload_low_priority,
        }
    }
}

/// Starts the reload thread (and the file watcher, when the configuration is a file);
/// `initial` holds the inputs of the snapshot serving now.
pub fn start(
    config_path: Option<PathBuf>,
    initial: Sources,
    timing: Timing,
    serving: Arc<Serving>,
    requests: Receiver<ReloadRequest>,
) -> Result<std::thread::JoinHandle<()>, ReloadError> {
    let config = &initial.config;
    let watcher = match config_path {
        Some(_) => Some(watch(config, serving.reload_sender())?),
        None => None,
    };
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let _watcher = watcher;
            if timing.low_priority {
                lower_priority();
            }
            run(requests, config_path, serving, timing, Some(initial))
        })
        .map_err(ReloadError::Thread)
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

/// Watches the directories of every input (tools replace files by rename) and sends a request
/// when one of the inputs changes.
fn watch(
    config: &Config,
    tx: Sender<ReloadRequest>,
) -> Result<notify::RecommendedWatcher, ReloadError> {
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
            let _ = tx.send(ReloadRequest::FileChanged);
        }
    })
    .map_err(|e| ReloadError::Watch("files".into(), e))?;
    for d in &dirs {
        watcher
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|e| ReloadError::Watch(d.display().to_string(), e))?;
    }
    Ok(watcher)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What a batch of requests asks for.
#[derive(Default)]
struct Batch {
    /// Callers waiting for the outcome.
    waiters: Vec<Sender<ReloadOutcome>>,
    /// Build without waiting further.
    now: bool,
    /// Stop after this batch.
    stop: bool,
    /// Read the files again (anything but a feed change asks for it).
    reread: bool,
    /// Publish even what the reload guard would hold (`ctl reload --confirm`).
    confirm: bool,
    /// The earliest deadline a request set.
    deadline: Option<Instant>,
}

impl Batch {
    /// Adds a request; file changes push the deadline back (debounce), feed changes set one
    /// if none is set.
    fn add(&mut self, r: ReloadRequest, timing: &Timing) {
        match r {
            ReloadRequest::FileChanged => {
                self.reread = true;
                let d = Instant::now() + timing.debounce;
                self.deadline = Some(match self.deadline {
                    Some(old) if !self.now => old.max(d),
                    Some(old) => old,
                    None => d,
                });
            }
            ReloadRequest::Feeds => {
                let d = Instant::now() + timing.feed_delay;
                self.deadline = Some(self.deadline.map_or(d, |old| old.min(d)));
            }
            ReloadRequest::Signal => {
                self.now = true;
                self.reread = true;
            }
            ReloadRequest::Control(tx) => {
                self.waiters.push(tx);
                self.now = true;
                self.reread = true;
            }
            ReloadRequest::Confirm(tx) => {
                self.waiters.push(tx);
                self.now = true;
                self.reread = true;
                self.confirm = true;
            }
            ReloadRequest::Stop => self.stop = true,
        }
    }
}

fn run(
    rx: Receiver<ReloadRequest>,
    config_path: Option<PathBuf>,
    serving: Arc<Serving>,
    timing: Timing,
    initial: Option<Sources>,
) {
    // The inputs of the snapshot serving now.
    let mut sources = initial;
    loop {
        let Ok(first) = rx.recv() else { return };
        let mut batch = Batch::default();
        batch.add(first, &timing);
        // Wait for the batch's deadline unless something asked for a reload now.
        while !batch.now && !batch.stop {
            let Some(deadline) = batch.deadline else {
                break;
            };
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(r) => batch.add(r, &timing),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // Everything already queued is served by this build.
        while let Ok(r) = rx.try_recv() {
            batch.add(r, &timing);
        }
        if batch.stop {
            for w in batch.waiters {
                let _ = w.send(ReloadOutcome::Failed(vec!["the server is stopping".into()]));
            }
            return;
        }
        let outcome = reload_once(
            config_path.as_deref(),
            &serving,
            &mut sources,
            batch.reread,
            batch.confirm,
        );
        for w in batch.waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

/// Builds a new snapshot and publishes it, or keeps the old one and records why. A batch of
/// feed changes only (`reread` false) compiles the last good sources again with the new live
/// tables; anything else reads the files first, and its snapshot passes the reload guard
/// unless `confirm` is set.
fn reload_once(
    config_path: Option<&Path>,
    serving: &Serving,
    sources: &mut Option<Sources>,
    reread: bool,
    confirm: bool,
) -> ReloadOutcome {
    let started = Instant::now();
    // The service manager hears of reloads of the files (SIGHUP, `ctl reload`, a changed
    // file), not of the builds that follow live BGP changes, which can run every second.
    if reread {
        crate::notify::reloading("reloading");
    }
    let old = serving.snapshot();
    let live = serving.take_feed_tables();
    let sources_missing = sources.is_none();
    // The snapshot, and the sources it was read from when they are new.
    let result = match sources.as_ref() {
        Some(s) if !reread => s.build(&live).map(|snap| (snap, None)),
        // Read the files; the last good sources stay for feed changes if this fails or is held.
        _ => Sources::read(config_path, Some(&old.client))
            .and_then(|s| s.build(&live).map(|snap| (snap, Some(s)))),
    };
    let outcome = match result {
        Ok((snap, fresh)) => {
            let guard = sources
                .as_ref()
                .or(fresh.as_ref())
                .map(|s| s.config.reload_guard);
            let shrinks = match (&fresh, guard) {
                (Some(_), Some(g)) if !confirm => {
                    compare(&Inventory::of(&old), &Inventory::of(&snap), &g)
                }
                _ => Vec::new(),
            };
            if shrinks.is_empty() {
                if let Some(s) = fresh {
                    *sources = Some(s);
                }
                let versions = snap.versions.clone();
                serving.publish(snap);
                tracing::info!(
                    ms = started.elapsed().as_millis() as u64,
                    files = reread,
                    confirmed = confirm,
                    %versions,
                    "reloaded"
                );
                ReloadOutcome::Published(versions)
            } else {
                let lines = report(&shrinks);
                tracing::warn!(
                    "reload held, using previously loaded data:\n{}",
                    lines.join("\n")
                );
                ReloadOutcome::Held(lines)
            }
        }
        Err(errors) => {
            tracing::error!("reload failed, using previously loaded data:\n{errors}");
            ReloadOutcome::Failed(errors.0.iter().map(|e| e.to_string()).collect())
        }
    };
    serving.record_reload(&outcome, reread || sources_missing, started.elapsed());
    if reread {
        crate::notify::ready(match &outcome {
            ReloadOutcome::Published(_) => "serving; last reload ok",
            ReloadOutcome::Failed(_) => "serving; last reload failed, previous data kept",
            ReloadOutcome::Held(_) => {
                "serving; last reload held (see ctl status), previous data kept"
            }
        });
    }
    outcome
}
