//! TCP (RFC 7766): length-prefixed messages, several queries pipelined on one connection and
//! answered in order, an idle timeout, and caps on connections (global and per client) and on
//! queries per connection. The answer itself is the same synchronous call as for UDP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::answer::{Outcome, Transport, respond};
use crate::config::TcpLimits;
use crate::counters::Stats;
use crate::snapshot::Snapshot;

/// Connections per client address. Touched once per connection, never per query.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

impl PerClient {
    fn enter(&self, ip: IpAddr, cap: usize) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.entry(ip).or_insert(0);
        if *c >= cap {
            return false;
        }
        *c += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get_mut(&ip) {
            *c -= 1;
            if *c == 0 {
                m.remove(&ip);
            }
        }
    }
}

/// Binds a TCP listener.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The number of open connections, so that a server handing over to a new process can let
/// them finish after it stops accepting.
#[derive(Clone, Debug, Default)]
pub struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Open {
    /// Connections open now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Accepts connections until the task is dropped (aborting it stops accepting; connections
/// already accepted run on, counted in `open`).
pub async fn serve(
    listener: std::net::TcpListener,
    limits: TcpLimits,
    state: Arc<ArcSwap<Snapshot>>,
    stats: Arc<Stats>,
    open: Open,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot use TCP listener");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        if !per_client.enter(peer.ip(), limits.max_connections_per_client) {
            stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let (state, stats, per_client) = (state.clone(), stats.clone(), per_client.clone());
        let open = open.clone();
        open.0.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            connection(stream, peer, limits, state, stats).await;
            per_client.leave(peer.ip());
            drop(permit);
            open.0.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    limits: TcpLimits,
    state: Arc<ArcSwap<Snapshot>>,
    stats: Arc<Stats>,
) {
    let _ = stream.set_nodelay(true);
    let mut inbuf = vec![0u8; 65535];
    let mut outbuf = vec![0u8; 65537];
    for _ in 0..limits.max_queries_per_connection {
        let mut len = [0u8; 2];
        match tokio::time::timeout(limits.idle_timeout, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let n = u16::from_be_bytes(len) as usize;
        // The body must follow promptly: a slow sender gets the same timeout as an idle one.
        match tokio::time::timeout(limits.idle_timeout, stream.read_exact(&mut inbuf[..n])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        stats.tcp_queries.fetch_add(1, Ordering::Relaxed);
        let outcome = {
            let snap = state.load();
            respond(
                &snap,
                &inbuf[..n],
                peer.ip(),
                Transport::Tcp,
                &mut outbuf[2..],
            )
        };
        super::count(&stats, &outcome);
        match outcome {
            Outcome::Answered { len, .. } => {
                outbuf[..2].copy_from_slice(&(len as u16).to_be_bytes());
                if stream.write_all(&outbuf[..len + 2]).await.is_err() {
                    return;
                }
            }
            // A message that cannot be answered ends the connection (RFC 7766 §6.2.4 leaves
            // this to the server), so a confused client does not keep it open.
            Outcome::Dropped => return,
        }
    }
}
