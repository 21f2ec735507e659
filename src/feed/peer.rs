//! One peer's supervising task: wait for or make a connection, run a session, mark the routes
//! stale when it ends, and start again; and the sweeper that removes stale routes in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

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
