//! The snapshot in force and the dynamic inputs published beside it: the node states
//! (health checks, pushes, operators) and the capacity controller's loads and shares.
//!
//! [`Published::publish`] is the one way a snapshot starts serving: it writes the effective
//! node states and shares into the new snapshot *before* the atomic swap, so that no query ever
//! sees a snapshot without the operators' overrides, and then tells subscribers (the prober, the
//! load scraper) that a new snapshot is out: they learn it from the publication, not by polling.
//! A state change is written into the snapshot in force under the same lock, so that it cannot
//! race with a publication.
//!
//! The DNS workers read only [`Published::swap`]; the prober changes node states; the load
//! scraper records loads and steps the controller; the reload thread publishes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::capacity::Capacity;
use crate::counters::Counters;
use crate::node_state::NodeStates;
use crate::snapshot::Snapshot;

/// The published snapshot and the node states and capacity shares applied to it.
pub struct Published {
    snapshot: Arc<ArcSwap<Snapshot>>,
    states: Mutex<NodeStates>,
    capacity: Mutex<Capacity>,
    published: tokio::sync::watch::Sender<u64>,
    counters: Arc<Counters>,
}

impl Published {
    /// Starts serving `snap` with `states` applied (generation 1).
    pub(super) fn new(
        mut snap: Snapshot,
        mut states: NodeStates,
        counters: Arc<Counters>,
    ) -> Published {
        snap.attach_tally(counters.rows());
        let c = &mut snap.settings.cookies;
        c.keys = crate::snapshot::cookie::CookieKeys::first(c.configured, generate_secret);
        states.track(&snap);
        states.apply(&snap);
        let mut capacity = Capacity::default();
        capacity.track(&snap);
        Published {
            snapshot: Arc::new(ArcSwap::from_pointee(snap)),
            states: Mutex::new(states),
            capacity: Mutex::new(capacity),
            published: tokio::sync::watch::Sender::new(1),
            counters,
        }
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
    /// scrape or a push brings; the shares themselves change only by [`Published::steer`]).
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
