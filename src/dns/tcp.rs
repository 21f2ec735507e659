//! TCP (RFC 7766): length-prefixed messages, several queries pipelined on one connection and
//! answered in order, an idle timeout (for reads and for writes to a client that does not
//! read), and a cap on queries per connection. Who gets a connection slot is the connection
//! table's business ([`super::conns`]: caps per address, per network and in all, idle slots
//! reclaimed under pressure). The accept loop backs off when the process is out of file
//! descriptors instead of spinning. The answer itself is the same synchronous call as for UDP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Meter;
use super::answer::{Outcome, Transport, complete, prepare};
use super::conns::{Slot, Table};
use crate::config::TcpLimits;
use crate::counters::{Counters, query};
use crate::querylog::QueryLog;
use crate::snapshot::Snapshot;
use crate::wire::MAX_NAME;

/// The first wait after an accept error for want of resources; it doubles up to
/// [`BACKOFF_MAX`] while the errors go on.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait between accept attempts while out of resources.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning about accept errors in this time.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// An accept error that says the process or the system is short of resources (descriptors,
/// buffers, memory): retrying at once would fail again.
fn out_of_resources(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
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
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Accepts connections until the task is dropped (aborting it stops accepting; connections
/// already accepted run on, counted in `open`). Every
/// listener of the process shares `table`.
pub async fn serve(
    listener: std::net::TcpListener,
    limits: TcpLimits,
    table: Arc<Table>,
    state: Arc<ArcSwap<Snapshot>>,
    counters: Arc<Counters>,
    log: Option<Arc<QueryLog>>,
    open: Open,
) {
    let meter = Meter::new(
        counters.query_tally(),
        counters.shared_slot(),
        Transport::Tcp,
    );
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot use TCP listener");
            return;
        }
    };
    let mut backoff = Duration::ZERO;
    let mut warned: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => {
                backoff = Duration::ZERO;
                x
            }
            Err(e) if out_of_resources(&e) => {
                // The connection stays in the backlog: make room by closing the connection
                // quiet the longest, and wait before trying again rather than spin.
                let reclaimed = table.reclaim();
                if warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    warned = Some(Instant::now());
                    tracing::warn!(error = %e, reclaimed, open = table.len(), "TCP accept failed for want of resources; backing off");
                }
                backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(e) => {
                // A connection that failed before it was accepted (reset, aborted) is simply
                // the next one's turn; anything else gets a short pause, never a spin.
                tracing::debug!(error = %e, "TCP accept failed");
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    tokio::time::sleep(BACKOFF_MIN).await;
                }
                continue;
            }
        };
        let slot = match table.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::trace!(client = %peer.ip(), ?why, "TCP connection refused");
                meter.bump(query::Cell::TcpRefused);
                drop(stream);
                continue;
            }
        };
        let (state, counters, log) = (state.clone(), counters.clone(), log.clone());
        let open = open.clone();
        open.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            connection(stream, peer, limits, slot, state, counters, log).await;
            open.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

/// Reads into `buf`, bounded by `limits.idle_timeout`; None when the peer closed, the time
/// ran out or the slot was reclaimed.
async fn read(
    stream: &mut TcpStream,
    buf: &mut [u8],
    limits: &TcpLimits,
    slot: &Slot,
) -> Option<()> {
    tokio::select! {
        r = tokio::time::timeout(limits.idle_timeout, stream.read_exact(buf)) => match r {
            Ok(Ok(_)) => Some(()),
            _ => None,
        },
        _ = slot.reclaimed() => None,
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    limits: TcpLimits,
    slot: Slot,
    state: Arc<ArcSwap<Snapshot>>,
    counters: Arc<Counters>,
    log: Option<Arc<QueryLog>>,
) {
    let meter = Meter::new(
        counters.query_tally(),
        counters.shared_slot(),
        Transport::Tcp,
    );
    let mut log = log
        .as_ref()
        .and_then(|l| l.logger(u64::from(peer.port()) << 32 ^ std::process::id() as u64));
    let mut scratch = [0u8; MAX_NAME];
    let _ = stream.set_nodelay(true);
    let mut inbuf = vec![0u8; 65535];
    let mut outbuf = vec![0u8; 65537];
    for _ in 0..limits.max_queries_per_connection {
        let mut len = [0u8; 2];
        if read(&mut stream, &mut len, &limits, &slot).await.is_none() {
            return;
        }
        let n = u16::from_be_bytes(len) as usize;
        // The body must follow promptly: a slow sender gets the same timeout as an idle one.
        if read(&mut stream, &mut inbuf[..n], &limits, &slot)
            .await
            .is_none()
        {
            return;
        }
        slot.queried();
        let outcome = {
            let snap = state.load();
            let prepared = prepare(&snap, &inbuf[..n], peer.ip(), &mut scratch);
            let outcome = complete(&snap, &prepared, Transport::Tcp, &mut outbuf[2..]);
            meter.count(&snap, &outcome);
            if let Some(log) = &mut log
                && log.sample()
                && !log.offer(super::record(&snap, &prepared, &outcome, peer.ip(), "tcp"))
            {
                meter.bump(query::Cell::QuerylogDropped);
            }
            outcome
        };
        match outcome {
            Outcome::Answered { len, .. } => {
                outbuf[..2].copy_from_slice(&(len as u16).to_be_bytes());
                // A client that does not read its answers cannot hold the slot forever.
                let sent = tokio::select! {
                    r = tokio::time::timeout(
                        limits.idle_timeout,
                        stream.write_all(&outbuf[..len + 2]),
                    ) => matches!(r, Ok(Ok(()))),
                    _ = slot.reclaimed() => false,
                };
                if !sent {
                    return;
                }
            }
            // A message that cannot be answered ends the connection (RFC 7766 §6.2.4 leaves
            // this to the server), so a confused client does not keep it open.
            Outcome::Dropped => return,
        }
    }
}
