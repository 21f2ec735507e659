//! Where the services meet: the published snapshot, the node states, the reload requests and
//! the last reload's outcome. The DNS workers read the snapshot; the reload thread publishes
//! new ones; the control socket and the prober change node states and ask for reloads. None of
//! them imports another.
//!
//! [`Serving::publish`] is the one way a snapshot starts serving: it writes the effective node
//! states into the new snapshot's health table *before* the atomic swap, so that no query ever
//! sees a snapshot without the operators' overrides, and then tells subscribers (the prober)
//! that a new snapshot is out: they learn it from the publication, not by polling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::anycast::Announcer;
use crate::capacity::Capacity;
use crate::counters::Counters;
use crate::live::{FeedTable, FeedView};
use crate::node_state::NodeStates;
use crate::querylog::QueryLog;
use crate::snapshot::Snapshot;

/// Why a reload is asked for. Every trigger goes to the reload thread through one channel.
#[derive(Debug)]
pub enum ReloadRequest {
    /// A watched file changed (debounced).
    FileChanged,
    /// SIGHUP: reload now.
    Signal,
    /// `signpost ctl reload`: reload now and send the outcome here.
    Control(Sender<ReloadOutcome>),
    /// `signpost ctl reload --confirm`: like `Control`, and the build is published even if the
    /// reload guard would hold it.
    Confirm(Sender<ReloadOutcome>),
    /// A live BGP feed changed (coalesced over the feeds' update delay).
    Feeds,
    /// Stop the reload thread.
    Stop,
}

/// The outcome of one reload.
#[derive(Clone, Debug)]
pub enum ReloadOutcome {
    /// The new snapshot serves; its data versions.
    Published(String),
    /// The build failed; the previous snapshot still serves.
    Failed(Vec<String>),
    /// The build succeeded but takes away served names or too much data: held by the reload
    /// guard, the previous snapshot still serves. What shrank, and how to confirm.
    Held(Vec<String>),
}

/// The outcome of the last load, for `status`.
#[derive(Clone, Debug)]
pub struct ReloadStatus {
    /// When it finished.
    pub at: SystemTime,
    /// True when the new snapshot is serving.
    pub ok: bool,
    /// True when the reload guard held the new snapshot (then `ok` is false).
    pub held: bool,
    /// The errors of a failed load, or what a held one would take away.
    pub errors: Vec<String>,
    /// Successful loads since start (the first load included).
    pub generation: u64,
    /// Notes on the last successful reload: settings it changed that only a restart applies.
    pub notes: Vec<String>,
}

/// A server-cookie secret for a process whose configuration gives none: 128 bits from the
/// kernel's random source (`/dev/urandom`). Should it be unreadable, the clock and the process
/// id stand in, so that the server still starts; such a secret is guessable, and a warning says so.
fn generate_secret() -> crate::snapshot::cookie::Secret {
    use std::io::Read;
    let mut s = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut s));
    if let Err(e) = read {
        tracing::warn!(error = %e, "cannot read /dev/urandom: the cookie secret is guessable; set cookies.secret");
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        s = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    s
}

/// The serving state shared by the services.
pub struct Serving {
    snapshot: Arc<ArcSwap<Snapshot>>,
    states: Mutex<NodeStates>,
    capacity: Mutex<Capacity>,
    published: tokio::sync::watch::Sender<u64>,
    reloads: Sender<ReloadRequest>,
    status: Mutex<ReloadStatus>,
    feeds: OnceLock<Arc<dyn FeedView>>,
    anycast: OnceLock<Arc<Announcer>>,
    feeds_pending: AtomicBool,
    counters: Arc<Counters>,
    query_log: OnceLock<Arc<QueryLog>>,
}

impl Serving {
    /// Starts serving `snap` with `states` applied; returns the shared state and the receiving
    /// end of the reload requests (for the reload thread).
    pub fn new(
        mut snap: Snapshot,
        mut states: NodeStates,
        counters: Arc<Counters>,
    ) -> (Arc<Serving>, Receiver<ReloadRequest>) {
        snap.attach_tally(counters.rows());
        let c = &mut snap.settings.cookies;
        c.keys = crate::snapshot::cookie::CookieKeys::first(c.configured, generate_secret);
        states.track(&snap);
        states.apply(&snap);
        let mut capacity = Capacity::default();
        capacity.track(&snap);
        let (tx, rx) = std::sync::mpsc::channel();
        let serving = Serving {
            snapshot: Arc::new(ArcSwap::from_pointee(snap)),
            states: Mutex::new(states),
            capacity: Mutex::new(capacity),
            published: tokio::sync::watch::Sender::new(1),
            reloads: tx,
            status: Mutex::new(ReloadStatus {
                at: SystemTime::now(),
                ok: true,
                held: false,
                errors: Vec::new(),
                generation: 1,
                notes: Vec::new(),
            }),
            feeds: OnceLock::new(),
            anycast: OnceLock::new(),
            feeds_pending: AtomicBool::new(false),
            counters,
            query_log: OnceLock::new(),
        };
        (Arc::new(serving), rx)
    }

    /// The snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The swap the DNS workers read (one atomic load per batch).
    pub fn swap(&self) -> Arc<ArcSwap<Snapshot>> {
        self.snapshot.clone()
    }

    /// Publishes `snap`: node states applied first, then the atomic swap, then subscribers are
    /// told. Returns the new generation.
    pub fn publish(&self, mut snap: Snapshot) -> u64 {
        snap.attach_tally(self.counters.rows());
        {
            let mut st = self.lock_states();
            // The cookie secrets carry over (a generated one lives as long as the process); a
            // new configured secret rotates them. Under the lock, like the swap.
            let old = self.snapshot.load();
            let c = &mut snap.settings.cookies;
            c.keys = old.settings.cookies.keys.next(c.configured);
            // The TCP idle timeout is read at start only (`tcp`): keepalive answers tell the one
            // the connections keep, not one a reload could not apply.
            snap.settings.tcp_idle_timeout = old.settings.tcp_idle_timeout;
            drop(old);
            st.track(&snap);
            let before = self.effective(&self.snapshot.load());
            st.apply(&snap);
            self.count_transitions(before, &snap);
            {
                let mut cap = self.lock_capacity();
                cap.track(&snap);
                cap.apply(&snap);
            }
            // The swap happens under the lock, so that a state change racing with the publication
            // is applied to the new snapshot too.
            let old = self.snapshot.swap(Arc::new(snap));
            self.counters.retire(&old);
        }
        let mut generation = 0;
        self.published.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        generation
    }

    /// A receiver that changes whenever a snapshot is published.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Runs `f` on the node states with the snapshot in force, then writes the effective
    /// states into that snapshot.
    pub fn update_states<R>(&self, f: impl FnOnce(&mut NodeStates, &Snapshot) -> R) -> R {
        let mut st = self.lock_states();
        let snap = self.snapshot.load();
        let r = f(&mut st, &snap);
        let before = self.effective(&snap);
        st.apply(&snap);
        self.count_transitions(before, &snap);
        r
    }

    /// Runs `f` on the loads and controller states with the snapshot in force (the loads a
    /// scrape or a push brings; the shares themselves change only by [`Serving::steer`]).
    pub fn update_capacity<R>(&self, f: impl FnOnce(&mut Capacity, &Snapshot) -> R) -> R {
        let mut cap = self.lock_capacity();
        let snap = self.snapshot.load();
        f(&mut cap, &snap)
    }

    /// Takes the capacity controller's due steps on the snapshot in force; true when a share
    /// changed.
    pub fn steer(&self) -> bool {
        // The node-state lock first, as in `publish`: a snapshot swap cannot slip between the
        // step and its writes.
        let _states = self.lock_states();
        let mut cap = self.lock_capacity();
        let snap = self.snapshot.load();
        cap.step(&snap, std::time::Instant::now(), crate::node_state::now())
    }

    /// Reads the loads and controller states.
    pub fn capacity(&self) -> MutexGuard<'_, Capacity> {
        self.lock_capacity()
    }

    fn lock_capacity(&self) -> MutexGuard<'_, Capacity> {
        self.capacity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches the running query log (once, at start).
    pub fn set_query_log(&self, log: Arc<QueryLog>) {
        let _ = self.query_log.set(log);
    }

    /// Reopens the query log's file: its path, or why it could not be opened (the log keeps
    /// its old file); None without a query log.
    pub fn reopen_logs(
        &self,
    ) -> Option<Result<std::path::PathBuf, crate::querylog::QueryLogError>> {
        let log = self.query_log.get()?;
        Some(log.reopen().map(|()| log.path().to_path_buf()))
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Effective state by node name in `snap`.
    fn effective(&self, snap: &Snapshot) -> Vec<(String, crate::health::State)> {
        snap.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), snap.health.get(i)))
            .collect()
    }

    /// Counts the nodes whose effective state differs in `snap` from `before`.
    fn count_transitions(&self, before: Vec<(String, crate::health::State)>, snap: &Snapshot) {
        let before: std::collections::HashMap<_, _> = before.into_iter().collect();
        for (i, n) in snap.nodes.iter().enumerate() {
            let now = snap.health.get(i);
            if before.get(&n.name).is_some_and(|&b| b != now) {
                self.counters.transition(&n.name, now.as_str());
            }
        }
    }

    /// Reads the node states.
    pub fn states(&self) -> MutexGuard<'_, NodeStates> {
        self.lock_states()
    }

    fn lock_states(&self) -> MutexGuard<'_, NodeStates> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the reload thread for a reload. Returns false when the thread has stopped.
    pub fn request_reload(&self, request: ReloadRequest) -> bool {
        self.reloads.send(request).is_ok()
    }

    /// A sender of reload requests, for threads that outlive a borrow (the file watcher).
    pub fn reload_sender(&self) -> Sender<ReloadRequest> {
        self.reloads.clone()
    }

    /// Attaches the running BGP feeds (once, after they start).
    pub fn set_feeds(&self, feeds: Arc<dyn FeedView>) {
        let _ = self.feeds.set(feeds);
    }

    /// Attaches the anycast announcement (once, at start).
    pub fn set_anycast(&self, announcer: Arc<Announcer>) {
        let _ = self.anycast.set(announcer);
    }

    /// The anycast announcement, when configured.
    pub fn anycast(&self) -> Option<&Arc<Announcer>> {
        self.anycast.get()
    }

    /// The running BGP feeds, if any.
    pub fn feeds(&self) -> Option<&Arc<dyn FeedView>> {
        self.feeds.get()
    }

    /// A feed's table changed: asks for a reload, unless one is already pending (so that an
    /// update stream costs one request per build, not one per message).
    pub fn feed_changed(&self) {
        if !self.feeds_pending.swap(true, Ordering::AcqRel) {
            self.request_reload(ReloadRequest::Feeds);
        }
    }

    /// The feeds' tables for the next build; changes after this call ask for another build.
    pub fn take_feed_tables(&self) -> Vec<FeedTable> {
        self.feeds_pending.store(false, Ordering::Release);
        self.feeds().map(|f| f.tables()).unwrap_or_default()
    }

    /// Sets the notes of the reload being recorded (see [`ReloadStatus::notes`]).
    pub fn set_reload_notes(&self, notes: Vec<String>) {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).notes = notes;
    }

    /// The last reload's outcome.
    pub fn reload_status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a reload's outcome and how long it took. A build for feed changes only (`files` false) that succeeds
    /// counts a generation but leaves the outcome of the last file reload in place: a broken
    /// file stays reported until it is fixed.
    pub fn record_reload(&self, outcome: &ReloadOutcome, files: bool, took: std::time::Duration) {
        self.counters.reload(
            match outcome {
                ReloadOutcome::Published(_) => "ok",
                ReloadOutcome::Failed(_) => "failed",
                ReloadOutcome::Held(_) => "held",
            },
            took,
        );
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            ReloadOutcome::Published(_) => {
                st.generation += 1;
                if files {
                    st.at = SystemTime::now();
                    st.ok = true;
                    st.held = false;
                    st.errors.clear();
                }
            }
            ReloadOutcome::Failed(errors) | ReloadOutcome::Held(errors) => {
                st.at = SystemTime::now();
                st.ok = false;
                st.held = matches!(outcome, ReloadOutcome::Held(_));
                st.errors = errors.clone();
            }
        }
    }
}
