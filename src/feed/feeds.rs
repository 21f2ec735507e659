//! The running feed: starts the listener and one task per peer, exports the tables and the
//! status, and stops everything when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::error::FeedError;
use super::handing::Handed;
use super::listener;
use super::peer;
use super::settings::{Speaker, canonical};
use super::shared::{PeerShared, lock};
use super::status::{SessionState, SessionStatus, StatusCell};
use super::table::PeerTable;
use crate::log_limit::LogLimits;

pub use crate::live::FeedTable;

/// What a process that hands over leaves to the feeds of the new one.
#[derive(Debug, Default)]
pub struct Inherited {
    /// The listener bound for `feeds.listen`.
    pub listener: Option<std::net::TcpListener>,
    /// Every peer's routes, by peer name.
    pub tables: Vec<FeedTable>,
    /// The peers whose established sessions are to be handed over: they wait for
    /// [`Feeds::resume`] instead of connecting.
    pub sessions: Vec<String>,
}

/// The BGP feed: sessions with every configured peer and their live tables.
pub struct Feeds {
    /// Every peer's shared state, in settings order.
    peers: Vec<Arc<PeerShared>>,
    /// The listener, peer and sweeper tasks.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Connections refused.
    refused: Arc<AtomicU64>,
    /// The bound listen address.
    local_addr: Option<SocketAddr>,
    /// A duplicate of the listener's descriptor.
    listener_fd: Option<std::os::fd::OwnedFd>,
    /// Whether the peers' own routes are announced (starts withdrawn).
    announced: watch::Sender<bool>,
    /// Set to hand the established sessions over.
    pausing: watch::Sender<bool>,
    /// The peers waiting for a session handed over, by name.
    resuming: Mutex<HashMap<String, oneshot::Sender<Handed>>>,
}

impl Feeds {
    /// Validates the settings, binds the listen socket (an error here is returned) and starts
    /// the sessions on `handle`. `on_change` is called, from the runtime's threads, after each
    /// batch of messages that changed a table and after stale routes are removed; it should only
    /// flag the change (the caller coalesces and calls [`Feeds::tables`]).
    ///
    /// `inherited` is what a process this one replaces handed over: its listener (used instead
    /// of binding `listen`) and its tables, which become the tables of the peers of the same
    /// name, every route stale (gone after the stale time unless the new session announces it
    /// again; the session's End-of-RIB removes the rest).
    pub fn start(
        settings: Speaker,
        handle: Handle,
        on_change: Arc<dyn Fn() + Send + Sync>,
        inherited: Inherited,
    ) -> Result<Feeds, FeedError> {
        settings.validate()?;
        let _guard = handle.enter();
        let listener = match settings.listen {
            Some(address) => {
                let bind = |address| -> std::io::Result<tokio::net::TcpListener> {
                    let std = match inherited.listener {
                        Some(l) => l,
                        None => std::net::TcpListener::bind(address)?,
                    };
                    std.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(std)
                };
                Some(bind(address).map_err(|source| FeedError::Bind { address, source })?)
            }
            None => None,
        };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let listener_fd = listener.as_ref().and_then(|l| {
            use std::os::fd::AsFd;
            l.as_fd().try_clone_to_owned().ok()
        });
        let refused = Arc::new(AtomicU64::new(0));
        let (announced, _) = watch::channel(false);
        let (pausing, _) = watch::channel(false);
        let mut resuming = HashMap::new();
        let mut peers = Vec::new();
        let mut tasks = Vec::new();
        let mut routes = HashMap::new();
        for p in &settings.peers {
            let table = match inherited.tables.iter().find(|t| t.peer == p.name) {
                Some(t) => PeerTable::seeded(
                    t,
                    p.prefix_limit() as usize,
                    std::time::Instant::now() + settings.stale_time,
                ),
                None => PeerTable::new(),
            };
            let (stale_tx, _) = watch::channel(table.next_expiry());
            let state = match p.passive {
                true => SessionState::Active,
                false => SessionState::Idle,
            };
            let shared = Arc::new(PeerShared {
                peer: p.clone(),
                local_asn: settings.local_asn,
                router_id: settings.router_id,
                table: Mutex::new(table),
                status: Mutex::new(StatusCell::new(state)),
                stale_tx,
                on_change: on_change.clone(),
                messages: AtomicU64::new(0),
                logs: LogLimits::new(),
                announced: announced.subscribe(),
                pausing: pausing.subscribe(),
                handing: Mutex::new(None),
            });
            let resume = inherited.sessions.contains(&p.name).then(|| {
                let (tx, rx) = oneshot::channel();
                resuming.insert(p.name.clone(), tx);
                rx
            });
            let incoming = match p.passive {
                true => {
                    let (tx, rx) = mpsc::channel(1);
                    routes.insert(canonical(p.address), (shared.clone(), tx));
                    Some(rx)
                }
                false => None,
            };
            tasks.push(handle.spawn(peer::sweep_stale(shared.clone())));
            tasks.push(handle.spawn(peer::run(
                shared.clone(),
                settings.connect_retry,
                settings.stale_time,
                incoming,
                resume,
            )));
            peers.push(shared);
        }
        if let Some(listener) = listener {
            tasks.push(handle.spawn(listener::accept(listener, routes, refused.clone())));
        }
        Ok(Feeds {
            peers,
            tasks: Mutex::new(tasks),
            refused,
            local_addr,
            listener_fd,
            announced,
            pausing,
            resuming: Mutex::new(resuming),
        })
    }

    /// The peers whose sessions are established now.
    pub fn established(&self) -> Vec<String> {
        self.peers
            .iter()
            .filter(|p| lock(&p.status).state == SessionState::Established)
            .map(|p| p.peer.name.clone())
            .collect()
    }

    /// Stops every established session at its next message boundary and returns them, with
    /// their sockets still open, to be handed over (waiting at most `wait`). Sessions that come
    /// up later stop as well, and are closed. Nothing is withdrawn or sent.
    pub async fn pause(&self, wait: std::time::Duration) -> Vec<Handed> {
        let mut waiting = Vec::new();
        for p in &self.peers {
            if lock(&p.status).state == SessionState::Established {
                let (tx, rx) = oneshot::channel();
                *lock(&p.handing) = Some(tx);
                waiting.push(rx);
            }
        }
        self.pausing.send_replace(true);
        let until = tokio::time::Instant::now() + wait;
        let mut handed = Vec::new();
        for rx in waiting {
            if let Ok(Ok(h)) = tokio::time::timeout_at(until, rx).await {
                handed.push(h);
            }
        }
        handed
    }

    /// Resumes the sessions a process this one replaces handed over, each on its peer; the
    /// peers still waiting for one connect as at any start. Call it once the announced flag
    /// is what it should be ([`Feeds::set_announced`]): a session announced in the old
    /// process withdraws at once otherwise.
    pub fn resume(&self, sessions: Vec<Handed>) {
        let mut waiting = std::mem::take(&mut *lock(&self.resuming));
        for h in sessions {
            match waiting.remove(&h.carry.peer) {
                Some(tx) => {
                    let _ = tx.send(h);
                }
                None => tracing::warn!(
                    peer = %h.carry.peer,
                    "a BGP session handed over for a peer not waiting for one; closed"
                ),
            }
        }
    }

    /// Announces (`true`) or withdraws the peers' own routes on every established session,
    /// and on every session established later.
    pub fn set_announced(&self, on: bool) {
        self.announced
            .send_if_modified(|a| std::mem::replace(a, on) != on);
    }

    /// Every peer's table, in settings order.
    pub fn tables(&self) -> Vec<FeedTable> {
        self.peers
            .iter()
            .map(|p| {
                let mut t = lock(&p.table);
                FeedTable {
                    peer: p.peer.name.clone(),
                    v4: t.v4.export(),
                    v6: t.v6.export(),
                }
            })
            .collect()
    }

    /// Every peer's session status, in settings order.
    pub fn status(&self) -> Vec<SessionStatus> {
        self.peers.iter().map(|p| p.snapshot()).collect()
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// A duplicate of the listener's descriptor, to hand over.
    pub fn listener_fd(&self) -> Option<std::os::fd::OwnedFd> {
        self.listener_fd.as_ref().and_then(|f| f.try_clone().ok())
    }

    /// Connections refused: from unknown or active peers' addresses, or while one from the same
    /// peer was already waiting.
    pub fn refused_connections(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Stops every task; their sockets close as the runtime drops them. Also done on drop.
    pub fn shutdown(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Drop for Feeds {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl crate::live::FeedView for Feeds {
    fn tables(&self) -> Vec<FeedTable> {
        Feeds::tables(self)
    }

    fn status(&self) -> Vec<SessionStatus> {
        Feeds::status(self)
    }

    fn refused_connections(&self) -> u64 {
        Feeds::refused_connections(self)
    }
}
