//! One peer's shared state (settings, table, status) and its supervising task: wait for or
//! make a connection, run a session, mark the routes stale when it ends, and start again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use super::session::{self, SessionEnd};
use super::settings::Peer;
use super::status::{SessionState, SessionStatus, StatusCell};
use super::table::PeerTable;
use crate::log_limit::{LogLimits, limited};

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
    fn routes_stale(&self, stale_time: Duration) {
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

/// Removes a peer's stale routes when their time comes, one generation after the other.
pub(crate) async fn sweep_stale(shared: Arc<PeerShared>) {
    let mut rx = shared.stale_tx.subscribe();
    loop {
        let deadline = *rx.borrow_and_update();
        let due = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = due => {
                let (changed, next) = {
                    let mut t = lock(&shared.table);
                    let changed = t.expire(Instant::now());
                    (changed, t.next_expiry())
                };
                if changed {
                    limited!(
                        shared.logs,
                        info,
                        "stale BGP routes removed",
                        peer = %shared.peer.name
                    );
                    (shared.on_change)();
                }
                if next == deadline {
                    // Woken a little early: wait again for the same deadline.
                    continue;
                }
                // Seen by this loop's next turn (a later deadline, or none).
                shared.expiry_changed(next);
            }
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

/// Connects to an active peer, from its local address if set, within `timeout`.
async fn connect(peer: &Peer, timeout: Duration) -> std::io::Result<TcpStream> {
    let remote = SocketAddr::new(peer.address, peer.port);
    let socket = match remote {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(local) = peer.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    match tokio::time::timeout(timeout, socket.connect(remote)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connection timed out",
        )),
    }
}

/// How long a session that went over its prefix limit stays down (at least the connect retry).
const OVER_LIMIT_HOLD: Duration = Duration::from_secs(60);

/// The task of one peer. `incoming` delivers a passive peer's accepted connections.
pub(crate) async fn run(
    shared: Arc<PeerShared>,
    connect_retry: Duration,
    stale_time: Duration,
    mut incoming: Option<mpsc::Receiver<TcpStream>>,
) {
    let name = shared.peer.name.clone();
    let mut next: Option<TcpStream> = None;
    loop {
        let stream = match (next.take(), incoming.as_mut()) {
            (Some(stream), _) => stream,
            (None, Some(rx)) => {
                shared.set_state(SessionState::Active);
                match rx.recv().await {
                    Some(stream) => stream,
                    None => return,
                }
            }
            (None, None) => {
                shared.set_state(SessionState::Connect);
                match connect(&shared.peer, connect_retry).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        limited!(
                            shared.logs,
                            warn,
                            "BGP connection failed",
                            peer = %name,
                            error = %e
                        );
                        shared.set_error(format!("connect: {e}"));
                        shared.set_state(SessionState::Idle);
                        tokio::time::sleep(connect_retry).await;
                        continue;
                    }
                }
            }
        };
        let SessionEnd {
            established,
            replaced_by,
            over_limit,
        } = session::run(&shared, stream, incoming.as_mut()).await;
        shared.set_state(SessionState::Idle);
        shared.routes_stale(stale_time);
        if established {
            limited!(shared.logs, info, "BGP session down", peer = %name);
        }
        if over_limit {
            // A peer over its prefix limit would send the same table again at once: hold the
            // session down (refusing its connections) so that it does not flap, and so that
            // the Cease stays the last error an operator sees.
            let hold = connect_retry.max(OVER_LIMIT_HOLD);
            limited!(
                shared.logs,
                warn,
                "prefix limit reached: session held down",
                peer = %name,
                seconds = hold.as_secs()
            );
            let until = tokio::time::Instant::now() + hold;
            match incoming.as_mut() {
                Some(rx) => {
                    while let Ok(Some(stream)) = tokio::time::timeout_at(until, rx.recv()).await {
                        drop(stream);
                    }
                }
                None => tokio::time::sleep_until(until).await,
            }
            continue;
        }
        match replaced_by {
            Some(stream) => next = Some(stream),
            None if incoming.is_none() => tokio::time::sleep(connect_retry).await,
            None => {}
        }
    }
}
