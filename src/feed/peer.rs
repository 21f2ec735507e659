//! One peer's supervising task: wait for or make a connection, run a session, mark the routes
//! stale when it ends, and start again; and the sweeper that removes stale routes in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::handing::{self, Handed};
use super::session::{self, SessionEnd};
use super::settings::Peer;
use super::shared::{PeerShared, lock};
use super::status::SessionState;
use crate::log_limit::limited;

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

/// The next connection: the one that replaced the last session, the passive peer's next
/// one, or one made to the active peer (retrying every `connect_retry`). `None` when the
/// feed is gone.
async fn next_stream(
    shared: &PeerShared,
    next: &mut Option<TcpStream>,
    incoming: Option<&mut mpsc::Receiver<TcpStream>>,
    connect_retry: Duration,
) -> Option<TcpStream> {
    if let Some(stream) = next.take() {
        return Some(stream);
    }
    if let Some(rx) = incoming {
        shared.set_state(SessionState::Active);
        return rx.recv().await;
    }
    loop {
        shared.set_state(SessionState::Connect);
        match connect(&shared.peer, connect_retry).await {
            Ok(stream) => return Some(stream),
            Err(e) => {
                limited!(
                    shared.logs,
                    warn,
                    "BGP connection failed",
                    peer = %shared.peer.name,
                    error = %e
                );
                shared.set_error(format!("connect: {e}"));
                shared.set_state(SessionState::Idle);
                tokio::time::sleep(connect_retry).await;
            }
        }
    }
}

/// Waits for the session a process this one replaces hands over, and takes the peer's table
/// over as it was; `None` (connect as at any start) when none comes or it does not fit.
async fn handed(
    shared: &PeerShared,
    resume: Option<oneshot::Receiver<Handed>>,
    stale_time: Duration,
) -> Option<Handed> {
    let h = resume?.await.ok()?;
    if !handing::fits(&h.carry, shared) {
        limited!(
            shared.logs,
            warn,
            "BGP session handed over does not fit the peer's settings; connecting again",
            peer = %shared.peer.name
        );
        return None;
    }
    let table = handing::table(
        &h.carry,
        shared.peer.prefix_limit() as usize,
        Instant::now() + stale_time,
    );
    let next = table.next_expiry();
    *lock(&shared.table) = table;
    shared.expiry_changed(next);
    (shared.on_change)();
    Some(h)
}

/// The task of one peer. `incoming` delivers a passive peer's accepted connections; `resume`
/// the session a process this one replaces hands over, waited for before anything else.
pub(crate) async fn run(
    shared: Arc<PeerShared>,
    connect_retry: Duration,
    stale_time: Duration,
    mut incoming: Option<mpsc::Receiver<TcpStream>>,
    resume: Option<oneshot::Receiver<Handed>>,
) {
    let name = shared.peer.name.clone();
    let mut next: Option<TcpStream> = None;
    let mut resumed = handed(&shared, resume, stale_time).await;
    loop {
        let end = match resumed.take() {
            Some(h) => session::resume(&shared, h, incoming.as_mut()).await,
            None => {
                let Some(stream) =
                    next_stream(&shared, &mut next, incoming.as_mut(), connect_retry).await
                else {
                    return;
                };
                session::run(&shared, stream, incoming.as_mut()).await
            }
        };
        if let Some(h) = end.paused {
            // Handed over: the other process goes on with it; this task is done.
            shared.hand(h);
            return;
        }
        let SessionEnd {
            established,
            replaced_by,
            over_limit,
            ..
        } = end;
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
