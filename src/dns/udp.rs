//! UDP: one socket per worker thread with `SO_REUSEPORT`, a receive and a send buffer
//! allocated once per worker, and a plain blocking loop: receive, load the snapshot, answer,
//! send. No task, lock or allocation per query.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};

use super::Stats;
use super::answer::{Outcome, Transport, respond};
use crate::snapshot::Snapshot;

/// Binds one UDP socket to `addr` with `SO_REUSEPORT` (and `IPV6_V6ONLY` for IPv6).
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // Absorb bursts: a few megabytes of receive buffer (the kernel caps it).
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    let sock: UdpSocket = s.into();
    // Wake up now and then to notice shutdown.
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(sock)
}

/// Binds `workers` sockets on `addr` (the first one fixes the port when it is 0) and starts a
/// thread for each. Returns the bound address and the threads.
pub fn spawn(
    addr: SocketAddr,
    workers: usize,
    state: Arc<ArcSwap<Snapshot>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let first = bind(addr)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(bind(bound)?);
    }
    let mut threads = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let (state, stats, stop) = (state.clone(), stats.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || worker(sock, state, stats, stop))?,
        );
    }
    Ok((bound, threads))
}

fn worker(
    sock: UdpSocket,
    state: Arc<ArcSwap<Snapshot>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let mut inbuf = vec![0u8; 65535];
    let mut outbuf = vec![0u8; 65535];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match sock.recv_from(&mut inbuf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "UDP receive failed");
                continue;
            }
        };
        stats.udp_queries.fetch_add(1, Ordering::Relaxed);
        // Port 0 and unspecified or broadcast sources cannot be answered honestly.
        if peer.port() == 0
            || peer.ip().is_unspecified()
            || matches!(peer.ip(), std::net::IpAddr::V4(a) if a.is_broadcast())
        {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let snap = state.load();
        let outcome = respond(&snap, &inbuf[..n], peer.ip(), Transport::Udp, &mut outbuf);
        stats.count(&outcome);
        if let Outcome::Answered { len, .. } = outcome
            && let Err(e) = sock.send_to(&outbuf[..len], peer)
        {
            tracing::debug!(error = %e, %peer, "UDP send failed");
        }
    }
}
