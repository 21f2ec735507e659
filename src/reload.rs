//! The reload thread: every trigger (a watched file changed, SIGHUP, `signpost ctl reload`, a
//! live BGP feed changed) arrives as a [`ReloadRequest`] on one channel; the thread coalesces
//! them, builds the next snapshot off the query path ([`crate::load`]) and publishes it
//! ([`crate::serving::Published::publish`]: node states applied before the swap). A build that fails leaves the
//! serving snapshot in place and records the errors for `status`; a `ctl reload` caller gets
//! the outcome.
//!
//! The reload guard ([`crate::guard`]): a build from the files whose snapshot would stop
//! serving a zone or a service name, or whose GeoIP or BGP file data or maps' prefix files
//! shrink by more than `reload_guard.max_shrink_percent`, is held: the serving snapshot stays,
//! `status` and the log say what shrank, and `signpost ctl reload --confirm` publishes it. The settings of the
//! configuration serving now decide (an edit cannot switch the guard off for itself). Builds
//! for feed changes only are never held: they compile the sources already serving.
//!
//! Coalescing: file changes wait until the files have been quiet for the debounce; SIGHUP and
//! `ctl reload` go ahead at once and end a debounce in progress; every request that arrived
//! before a build starts is served by that build.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
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
    // The settings read at start only keep these values until the next start.
    let started = config.clone();
    let watches = match config_path {
        Some(_) => Some(Watches::start(config, serving.reloads().reload_sender())?),
        None => None,
    };
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            if timing.low_priority {
                lower_priority();
            }
            run(
                requests,
                config_path,
                serving,
                timing,
                Some(initial),
                watches,
                &started,
            )
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

/// The most symbolic links followed from one input (as the kernel's own limit, 40), so that
/// a link loop cannot hold the reload thread.
const MAX_LINKS: usize = 40;

/// What to watch for a set of inputs. Tools replace files by rename, so a file is watched
/// through its directory; every path is in canonical form (symbolic links resolved in the
/// directory part), the form the events come back in.
#[derive(Default)]
struct WatchSet {
    /// Paths whose change asks for a reload: each input, and each symbolic link on the way to
    /// it (a link's own directory sees the link replaced, its target's directory sees the
    /// target edited).
    files: HashSet<PathBuf>,
    /// Input directories (map directories): any change in them asks for a reload.
    dirs: HashSet<PathBuf>,
    /// The directories to watch: those holding `files`, and `dirs`.
    watched: HashSet<PathBuf>,
}

impl WatchSet {
    /// The watch set for the inputs of `config`.
    fn of(config: &Config) -> WatchSet {
        let mut set = WatchSet::default();
        for f in config.watched_files() {
            let f = absolute(&f);
            set.add_path(&f, &mut { MAX_LINKS });
            if let Ok(dir) = std::fs::canonicalize(&f)
                && dir.is_dir()
            {
                // A map directory: its entries may be links too.
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    for e in entries.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_symlink()) {
                            set.add_path(&e.path(), &mut { MAX_LINKS });
                        }
                    }
                }
                set.watched.insert(dir.clone());
                set.dirs.insert(dir);
            }
        }
        set
    }

    /// Adds `path` (absolute) and every symbolic link met on the way to what it names: the
    /// links in its directory part, and the chain of links it is itself. `budget` bounds the
    /// links followed.
    fn add_path(&mut self, path: &Path, budget: &mut usize) {
        // Without a trailing slash (which would make the last link resolve) or `.` parts.
        let path: PathBuf = path.components().collect();
        // The directory part first: a link there (a deploy that swaps a directory) is watched
        // where it lives.
        for a in path.ancestors().skip(1) {
            if *budget == 0 {
                return;
            }
            if std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()) {
                *budget -= 1;
                self.add_path(a, budget);
            }
        }
        let mut current = path;
        loop {
            let (Some(parent), Some(name)) = (current.parent(), current.file_name()) else {
                return;
            };
            let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
            self.files.insert(parent.join(name));
            self.watched.insert(parent.clone());
            let Ok(target) = std::fs::read_link(&current) else {
                return;
            };
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            // A relative target is relative to the link's directory.
            current = parent.join(target);
        }
    }

    /// True when an event on `path` asks for a reload.
    fn is_relevant(&self, path: &Path) -> bool {
        self.files.contains(path) || path.parent().is_some_and(|d| self.dirs.contains(d))
    }
}

/// The file watcher and what it watches. The set is computed again around every reload that
/// reads the files, so that a link that now points elsewhere is followed to its new target.
struct Watches {
    watcher: notify::RecommendedWatcher,
    /// The current set, shared with the watcher's callback.
    set: Arc<Mutex<WatchSet>>,
}

impl Watches {
    /// Starts watching the inputs of `config`; a change sends a request on `tx`.
    fn start(config: &Config, tx: Sender<ReloadRequest>) -> Result<Watches, ReloadError> {
        let set = Arc::new(Mutex::new(WatchSet::default()));
        let shared = set.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            let set = shared.lock().unwrap_or_else(|e| e.into_inner());
            if ev.paths.iter().any(|p| set.is_relevant(p)) {
                let _ = tx.send(ReloadRequest::FileChanged);
            }
        })
        .map_err(|e| ReloadError::Watch("files".into(), e))?;
        let mut w = Watches { watcher, set };
        let first = WatchSet::of(config);
        let dirs = first.watched.clone();
        *w.set.lock().unwrap_or_else(|e| e.into_inner()) = first;
        for d in &dirs {
            w.watcher
                .watch(d, RecursiveMode::NonRecursive)
                .map_err(|e| ReloadError::Watch(d.display().to_string(), e))?;
        }
        Ok(w)
    }

    /// Computes the set for `config` again and watches the directories it now needs (a
    /// directory that cannot be watched is logged, and the others still are). Every one is
    /// watched again, not only the new ones: a directory removed and created again under the
    /// same path is a new directory to the kernel, and its old watch is gone.
    fn refresh(&mut self, config: &Config) {
        let next = WatchSet::of(config);
        // Not held while the watcher is changed: its event thread takes the lock to decide
        // about an event, and a change waits for that thread.
        let before = self
            .set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watched
            .clone();
        for d in &next.watched {
            if let Err(e) = self.watcher.watch(d, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %d.display(), "cannot watch: {e}");
            }
        }
        for d in before.difference(&next.watched) {
            // Gone already when the directory was removed.
            let _ = self.watcher.unwatch(d);
        }
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = next;
    }
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
    /// When the batch's first request came.
    started: Option<Instant>,
}

/// The longest a run of file changes can hold a build back: [`DEBOUNCES`] debounces, at
/// least [`LONGEST_DEBOUNCE`]. A file rewritten more often than the debounce, without end,
/// would otherwise keep every build (re-signing included) from happening.
const DEBOUNCES: u32 = 10;

/// See [`DEBOUNCES`].
const LONGEST_DEBOUNCE: Duration = Duration::from_secs(5);

impl Batch {
    /// Adds a request; file changes push the deadline back (debounce), feed changes set one
    /// if none is set.
    fn add(&mut self, r: ReloadRequest, timing: &Timing) {
        let started = *self.started.get_or_insert_with(Instant::now);
        match r {
            ReloadRequest::FileChanged => {
                self.reread = true;
                let latest = started + (timing.debounce * DEBOUNCES).max(LONGEST_DEBOUNCE);
                let d = (Instant::now() + timing.debounce).min(latest);
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
            ReloadRequest::Resign => self.now = true,
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
    mut watches: Option<Watches>,
    started: &Config,
) {
    // The inputs of the snapshot serving now.
    let mut sources = initial;
    loop {
        let first = match resign_wait(&serving) {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(wait) => rx.recv_timeout(wait),
        };
        let first = match first {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => ReloadRequest::Resign,
            Err(RecvTimeoutError::Disconnected) => return,
        };
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
        // Follow links to where they point now, before reading (an edit from here on is seen)
        // and after (the new configuration may name other files).
        let refresh = |watches: &mut Option<Watches>, sources: &Option<Sources>| {
            if let (Some(w), Some(s)) = (watches.as_mut(), sources.as_ref())
                && batch.reread
            {
                w.refresh(&s.config);
            }
        };
        refresh(&mut watches, &sources);
        let outcome = reload_once(
            config_path.as_deref(),
            &serving,
            &mut sources,
            batch.reread,
            batch.confirm,
            started,
        );
        refresh(&mut watches, &sources);
        for w in batch.waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

/// How long until the serving snapshot's signatures are due to be made again (the earliest
/// `refresh_at` of its signed zones); [`RESIGN_RETRY`] when they are overdue (the build that
/// should have made them failed: it is tried again that often); `None` without a signed zone.
fn resign_wait(serving: &Serving) -> Option<Duration> {
    let snap = serving.published().snapshot();
    let due = snap
        .zones
        .iter()
        .filter_map(|z| z.signed.as_ref().map(|s| s.refresh_at))
        .min()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(match due.checked_sub(now) {
        Some(left) if left > 0 => Duration::from_secs(left),
        _ => RESIGN_RETRY,
    })
}

/// How often a failed build is tried again while the signatures are overdue.
const RESIGN_RETRY: Duration = Duration::from_secs(30);

/// What a reloaded configuration changed among the settings read at start only (`at_start`:
/// the configuration the server started with).
fn restart_notes(at_start: &Config, now: &Config) -> Vec<String> {
    let changed = at_start.restart_needed(now);
    if changed.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "changed in the configuration, applied only at a restart (or `signpost ctl replace`): {}; \
         the server keeps running with the values it started with",
        changed.join(", ")
    )]
}

/// Builds a new snapshot and publishes it, or keeps the old one and records why. A batch of
/// feed changes only (`reread` false) compiles the last good sources again with the new live
/// tables; anything else reads the files first, and its snapshot passes the reload guard
/// unless `confirm` is set; its notes name the settings of `at_start` (the configuration the
/// server started with) that it changes but only a restart applies.
fn reload_once(
    config_path: Option<&Path>,
    serving: &Serving,
    sources: &mut Option<Sources>,
    reread: bool,
    confirm: bool,
    at_start: &Config,
) -> ReloadOutcome {
    let started = Instant::now();
    // The service manager hears of reloads of the files (SIGHUP, `ctl reload`, a changed
    // file), not of the builds that follow live BGP changes, which can run every second.
    if reread {
        crate::notify::reloading("reloading");
    }
    let old = serving.published().snapshot();
    let live = serving.take_feed_tables();
    let sources_missing = sources.is_none();
    // The snapshot, and the sources it was read from when they are new.
    let result = match sources.as_ref() {
        Some(s) if !reread => s.build(&live).map(|snap| (snap, None)),
        // Read the files; the last good sources stay for feed changes if this fails or is held.
        _ => Sources::read(config_path, Some(&old.client)).and_then(|mut s| {
            if let Some(previous) = sources.as_ref() {
                s.keep_signatures(previous);
            }
            s.build(&live).map(|snap| (snap, Some(s)))
        }),
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
                    let notes = restart_notes(at_start, &s.config);
                    if !notes.is_empty() {
                        tracing::warn!("{}", notes.join("; "));
                    }
                    serving.reloads().set_reload_notes(notes);
                    *sources = Some(s);
                }
                let versions = snap.versions.clone();
                serving.published().publish(snap);
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
    serving
        .reloads()
        .record_reload(&outcome, reread || sources_missing, started.elapsed());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file changed again and again, faster than the debounce, cannot hold the build back
    /// longer than the longest debounce.
    #[test]
    fn endless_file_changes_do_not_hold_a_build_forever() {
        let timing = Timing {
            debounce: Duration::from_millis(100),
            feed_delay: Duration::from_millis(100),
            low_priority: false,
        };
        let mut batch = Batch::default();
        let first = Instant::now();
        let end = first + LONGEST_DEBOUNCE + Duration::from_millis(500);
        while Instant::now() < end {
            batch.add(ReloadRequest::FileChanged, &timing);
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = batch.deadline.unwrap();
        assert!(deadline <= first + LONGEST_DEBOUNCE + Duration::from_millis(5));
        // A single change still waits its debounce.
        let mut one = Batch::default();
        let t = Instant::now();
        one.add(ReloadRequest::FileChanged, &timing);
        assert!(one.deadline.unwrap() >= t + timing.debounce);
    }
}
