//! One peer's state as its tasks and the feed share it: the settings, the table, the status
//! and the change callback. The supervising task ([`super::peer`]) and the session
//! ([`super::session`]) both work on it; neither names the other's internals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::settings::Peer;
use super::status::{SessionState, SessionStatus, StatusCell};
use super::table::PeerTable;
use crate::log_limit::LogLimits;

/// The caller's change callback.
pub(crate) type OnChange = Arc<dyn Fn() + Send + Sync>;

/// What every peer task shares with [`Feeds`](super::Feeds).
pub(crate) struct PeerShared {
    /// The settings.
    pub peer: Peer,
    /// Signpost's AS.
    pub local_asn: u32,
    /// Signpost's identifier.
    pub router_id: std::net::Ipv4Addr,
    /// The routes.
    pub table: Mutex<PeerTable>,
    /// The status.
    pub status: Mutex<StatusCell>,
    /// Told when the stale deadline changes, for the sweeper.
    pub stale_tx: watch::Sender<Option<Instant>>,
    /// Called after the table changed.
    pub on_change: OnChange,
    /// Messages received (also in the status; counted here without a lock).
    pub messages: AtomicU64,
    /// The rate limits of this peer's log lines.
    pub logs: LogLimits,
    /// Whether the own routes (the peer's [`Peer::announce`]) are to be announced.
    pub announced: watch::Receiver<bool>,
    /// Set when the process hands its sessions over: an established session stops at the
    /// next message boundary and gives its socket and state to [`PeerShared::handing`].
    pub pausing: watch::Receiver<bool>,
    /// Where a paused session goes (set by [`Feeds::pause`](super::Feeds::pause)).
    pub handing: Mutex<Option<oneshot::Sender<Handed>>>,
}

/// An established session as handed over to a process that takes over: its state and the
/// connected socket (`handing.rs` builds and resumes it).
#[derive(Debug)]
pub struct Handed {
    /// What the session needs to go on, and the peer's routes.
    pub carry: crate::live::CarriedSession,
    /// The connected socket.
    pub stream: std::net::TcpStream,
}

/// Locks a mutex even if a task panicked while holding it (the data stay usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PeerShared {
    /// Sets the state; going to or from Established records the time.
    pub fn set_state(&self, state: SessionState) {
        let mut s = lock(&self.status);
        let now = Instant::now();
        if state == SessionState::Established && s.state != state {
            s.up_since = Some(now);
        } else if state != SessionState::Established && s.state == SessionState::Established {
            s.up_since = None;
            s.down_since = Some(now);
        }
        s.state = state;
    }

    /// A session taken over from another process is established, and has been for `up`.
    pub fn set_resumed(&self, up: Duration) {
        let mut s = lock(&self.status);
        let now = Instant::now();
        s.up_since = Some(now.checked_sub(up).unwrap_or(now));
        s.state = SessionState::Established;
    }

    /// Gives a paused session to whoever asked for it; without anyone, it is closed.
    pub fn hand(&self, handed: Handed) {
        match lock(&self.handing).take() {
            Some(tx) => {
                let _ = tx.send(handed);
            }
            None => drop(handed),
        }
    }

    /// Records the last error.
    pub fn set_error(&self, text: String) {
        lock(&self.status).last_error = Some(text);
    }

    /// The status snapshot.
    pub fn snapshot(&self) -> SessionStatus {
        let (v4, v6, stale) = {
            let t = lock(&self.table);
            (t.v4.fresh(), t.v6.fresh(), t.v4.stale() + t.v6.stale())
        };
        let s = lock(&self.status);
        let now = Instant::now();
        SessionStatus {
            peer: self.peer.name.clone(),
            address: self.peer.address,
            state: s.state,
            uptime: s.up_since.map(|t| now - t),
            down_for: match s.state {
                SessionState::Established => None,
                _ => s.down_since.map(|t| now - t),
            },
            v4_prefixes: v4,
            v6_prefixes: v6,
            stale_prefixes: stale,
            last_update: s.last_update.map(|t| now - t),
            last_error: s.last_error.clone(),
            messages_received: self.messages.load(Ordering::Relaxed),
        }
    }

    /// Marks every route stale after a session ended.
    pub fn routes_stale(&self, stale_time: Duration) {
        let (changed, next) = {
            let mut t = lock(&self.table);
            let changed = t.session_down(Instant::now() + stale_time);
            (changed, t.next_expiry())
        };
        self.stale_tx.send_replace(next);
        if changed {
            (self.on_change)();
        }
    }

    /// Tells the sweeper when the next stale routes expire, if that changed.
    pub fn expiry_changed(&self, next: Option<Instant>) {
        self.stale_tx.send_if_modified(|d| {
            let changed = *d != next;
            *d = next;
            changed
        });
    }
}
