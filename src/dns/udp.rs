//! UDP: one socket per worker thread with `SO_REUSEPORT`, a receive and a send buffer
//! allocated once per worker, and a plain blocking loop: receive a batch, load the snapshot,
//! prepare every query, warm the route-table memory they need, answer, send the batch. No
//! task, lock or allocation per query.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6, SockaddrLike, recvmmsg,
    sendmmsg,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::RawFd;

use super::Meter;
use super::answer::{Outcome, Prepared, Transport, complete_into, prepare_into};
use crate::counters::{Counters, Slot, query};
use crate::querylog::{Logger, QueryLog};
use crate::snapshot::Snapshot;
use crate::wire::MAX_NAME;

/// Binds one UDP socket to `addr` with `SO_REUSEPORT` (and `IPV6_V6ONLY` for IPv6).
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = socket_for(addr)?;
    s.set_reuse_port(true)?;
    // Absorb bursts: a few megabytes of receive buffer (the kernel caps it).
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    let sock: UdpSocket = s.into();
    // Wake up now and then to notice shutdown.
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(sock)
}

/// Binds one UDP socket to `addr` without `SO_REUSEPORT`: it fails when any socket holds the
/// port.
fn bind_plain(addr: SocketAddr) -> io::Result<Socket> {
    let s = socket_for(addr)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// An unbound UDP socket of `addr`'s family (IPv6 sockets IPv6-only).
fn socket_for(addr: SocketAddr) -> io::Result<Socket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

/// Binds `workers` sockets on `addr` (the first one fixes the port when it is 0) and starts a
/// thread for each. Returns the bound address and the threads.
pub fn spawn(
    addr: SocketAddr,
    workers: usize,
    rrl: Option<crate::config::Rrl>,
    state: Arc<ArcSwap<Snapshot>>,
    counters: Arc<Counters>,
    log: Option<Arc<QueryLog>>,
    stop: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let sockets = bind_group(addr, workers)?;
    let bound = sockets[0].local_addr()?;
    Ok((bound, spawn_on(sockets, rrl, state, counters, log, stop)?))
}

/// Binds `workers` sockets (at least one) on `addr`. Port 0 is first resolved to a port
/// nothing uses: a socket bound to port 0 with `SO_REUSEPORT` may be given a port that
/// another process of the same user holds with `SO_REUSEPORT`, and the two would then share
/// its queries. A plain socket is bound to port 0 (the kernel gives it a port no one holds)
/// and closed, and the group binds that port.
///
/// A fixed port is first bound the same plain way (and closed) for the same reason: that
/// bind fails when anyone holds the port, where the group's `SO_REUSEPORT` bind would join a
/// group another process of the same user holds. (A process taking over hands its sockets
/// on instead: `ctl replace` never binds here.)
pub fn bind_group(addr: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    let addr = if addr.port() == 0 {
        std::net::UdpSocket::bind(addr)?.local_addr()?
    } else {
        drop(bind_plain(addr)?);
        addr
    };
    let first = bind(addr)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(bind(bound)?);
    }
    Ok(sockets)
}

/// Starts a worker thread for each socket (bound here or handed over by the process this one
/// replaces); they stop within the read timeout once `stop` is set, after the batch they hold.
pub fn spawn_on(
    sockets: Vec<UdpSocket>,
    rrl: Option<crate::config::Rrl>,
    state: Arc<ArcSwap<Snapshot>>,
    counters: Arc<Counters>,
    log: Option<Arc<QueryLog>>,
    stop: Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        // A handed-over socket gets the same wake-up as one bound here.
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let (state, counters, stop) = (state.clone(), counters.clone(), stop.clone());
        let limiter = rrl.clone().map(super::rrl::RateLimiter::new);
        let slot = counters.udp_slot();
        let log = log
            .as_ref()
            .and_then(|l| l.logger(slot.row as u64 ^ 0x5157_1e55));
        // Peers' addresses in the socket's own family: a few bytes to copy per message
        // (IPv6 sockets are IPv6-only).
        let ipv4 = sock.local_addr()?.is_ipv4();
        let name = format!("udp-{i}");
        threads.push(std::thread::Builder::new().name(name).spawn(move || {
            if ipv4 {
                worker::<SockaddrIn>(sock, state, counters, slot, stop, limiter, log)
            } else {
                worker::<SockaddrIn6>(sock, state, counters, slot, stop, limiter, log)
            }
        })?);
    }
    Ok(threads)
}

/// Messages per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 32;
/// The fewest buffers offered to a receive.
const MIN_OFFER: usize = 4;
/// Receive buffer per message: larger queries are cut by the kernel and answered FORMERR.
const MAX_QUERY: usize = 4096;

// Not inlined into the thread's closure: profiles then show the loop as `udp::worker`.
#[inline(never)]
fn worker<S: Peer>(
    sock: UdpSocket,
    state: Arc<ArcSwap<Snapshot>>,
    counters: Arc<Counters>,
    slot: Slot,
    stop: Arc<AtomicBool>,
    mut limiter: Option<super::rrl::RateLimiter>,
    mut log: Option<Logger>,
) {
    let meter = Meter::new(counters.query_tally(), slot, Transport::Udp);
    let started = std::time::Instant::now();
    use std::os::fd::AsRawFd;

    let fd = sock.as_raw_fd();
    // A slot per message as large as any UDP response can be, so that a reload that raises
    // `udp_payload_max` needs no new buffers.
    let out_size = u16::MAX as usize;
    // Everything is allocated once, here.
    let mut inbuf = vec![0u8; BATCH * MAX_QUERY];
    let mut outbuf = vec![0u8; BATCH * out_size];
    let mut rx_headers = MultiHeaders::<S>::preallocate(BATCH, None);
    let mut tx_headers = MultiHeaders::<S>::preallocate(BATCH, None);
    let mut lens = [0usize; BATCH];
    // A receive error repeated for every batch would otherwise be a line per batch.
    let log_limits = crate::log_limit::LogLimits::new();
    let mut senders: [Option<S>; BATCH] = [None; BATCH];
    // Destinations when some query of the batch went unanswered (else `senders` serves).
    let mut replies: [Option<S>; BATCH] = [None; BATCH];
    let mut reply_len = [0usize; BATCH];
    let mut names = [[0u8; MAX_NAME]; BATCH];
    // Buffers offered to the next receive: twice what the last one brought, at least
    // `MIN_OFFER`, so that a quiet server does not set up BATCH buffers for every query while
    // a busy one is back to BATCH within a few receives.
    let mut offer = BATCH;
    while !stop.load(Ordering::Relaxed) {
        // Receive up to `offer` datagrams; wait for the first one only.
        let n = receive(
            fd,
            &mut rx_headers,
            &mut inbuf,
            &mut lens,
            &mut senders,
            offer,
            &log_limits,
        );
        if n == 0 {
            continue;
        }
        offer = (2 * n).clamp(MIN_OFFER, BATCH);
        // Answer them all from one snapshot, in three passes: decode and place every query,
        // read the route-table memory each will need (the misses of the whole batch overlap
        // instead of stalling one query after another), then answer.
        let snap = state.load();
        let answers = meter.answers(&snap);
        let now = started.elapsed().as_secs() as u32;
        let mut peers: [Option<IpAddr>; BATCH] = [None; BATCH];
        let mut prepared: [Prepared<'_, '_>; BATCH] = std::array::from_fn(|_| Prepared::Drop);
        let mut recent = None;
        for (i, ((len, addr), scratch)) in lens[..n]
            .iter()
            .zip(&senders[..n])
            .zip(&mut names)
            .enumerate()
        {
            let Some(peer) = addr.as_ref().map(Peer::socket_addr) else {
                continue;
            };
            // Port 0 and unspecified or broadcast sources cannot be answered honestly.
            if peer.port() == 0
                || peer.ip().is_unspecified()
                || matches!(peer.ip(), IpAddr::V4(a) if a.is_broadcast())
            {
                meter.bump(query::Cell::Dropped);
                continue;
            }
            peers[i] = Some(peer.ip());
            let query = &inbuf[i * MAX_QUERY..i * MAX_QUERY + (*len).min(MAX_QUERY)];
            let slot = &mut prepared[i];
            prepare_into(slot, &snap, query, peer.ip(), scratch, &mut recent);
        }
        warm(&snap, &prepared[..n]);
        let mut m = 0;
        let mut compacted = false;
        let mut outcome = Outcome::Dropped;
        for (i, p) in prepared[..n].iter().enumerate() {
            let Some(peer) = peers[i] else {
                continue;
            };
            let out = &mut outbuf[m * out_size..(m + 1) * out_size];
            complete_into(&mut outcome, &snap, p, Transport::Udp, out);
            meter.count_in(answers, &snap, &outcome);
            if let Some(log) = &mut log
                && log.sample()
                && !log.offer(super::record(&snap, p, &outcome, peer, "udp"))
            {
                meter.bump(query::Cell::QuerylogDropped);
            }
            if let Outcome::Answered { len, .. } = outcome {
                let Some(len) = rate_limited(limiter.as_mut(), &meter, peer, now, &mut out[..len])
                else {
                    continue;
                };
                // Reply m answers query i; while no query was skipped they are the same.
                if m != i && !compacted {
                    replies[..m].copy_from_slice(&senders[..m]);
                    compacted = true;
                }
                if compacted {
                    replies[m] = senders[i];
                }
                reply_len[m] = len;
                m += 1;
            }
        }
        drop(snap);
        // Send the answers in one call (and again for any the kernel did not take).
        let to = if compacted { &replies } else { &senders };
        send(fd, &mut tx_headers, &outbuf, &reply_len[..m], &to[..m]);
    }
}

/// Reads, for every prepared query of a batch, the route-table memory its answer will need, so
/// that the cache misses of the whole batch overlap instead of stalling one answer after
/// another.
#[inline(always)]
fn warm(snap: &Snapshot, prepared: &[Prepared<'_, '_>]) {
    let mut words: [Option<&u64>; BATCH] = [None; BATCH];
    for (w, p) in words.iter_mut().zip(prepared) {
        *w = p.directory_entry(snap);
    }
    let mut touched = 0u64;
    for w in &words[..prepared.len()] {
        touched ^= w.map_or(0, |w| *w);
    }
    for p in prepared {
        touched ^= p.warm_blocks(snap);
    }
    std::hint::black_box(touched);
}

/// The length of the answer `out` to send to `peer` after response rate limiting: as it is,
/// truncated (a slip), or `None` (dropped).
#[inline(always)]
fn rate_limited(
    limiter: Option<&mut super::rrl::RateLimiter>,
    meter: &Meter<'_>,
    peer: IpAddr,
    now: u32,
    out: &mut [u8],
) -> Option<usize> {
    use super::rrl::Verdict;
    match limiter.map(|l| l.check(peer, now)) {
        None | Some(Verdict::Send) => Some(out.len()),
        Some(Verdict::Slip) => {
            meter.bump(query::Cell::RrlSlipped);
            super::rrl::truncate(out)
        }
        Some(Verdict::Drop) => {
            meter.bump(query::Cell::RrlDropped);
            None
        }
    }
}

/// Receives up to `offer` datagrams into `inbuf` (`MAX_QUERY` bytes each), waiting for the
/// first one only: their lengths and sources; how many came.
#[inline(always)]
fn receive<S: Peer>(
    fd: RawFd,
    rx_headers: &mut MultiHeaders<S>,
    inbuf: &mut [u8],
    lens: &mut [usize; BATCH],
    senders: &mut [Option<S>; BATCH],
    offer: usize,
    log_limits: &crate::log_limit::LogLimits,
) -> usize {
    let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
        std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
    for (iov, chunk) in iovs[..offer].iter_mut().zip(inbuf.chunks_mut(MAX_QUERY)) {
        *iov = [IoSliceMut::new(chunk)];
    }
    match recvmmsg(
        fd,
        rx_headers,
        iovs[..offer].iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    ) {
        Ok(msgs) => {
            let mut n = 0;
            for m in msgs {
                lens[n] = m.bytes;
                senders[n] = m.address;
                n += 1;
            }
            n
        }
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => 0,
        Err(e) => {
            crate::log_limit::limited!(log_limits, warn, "UDP receive failed", error = %e);
            0
        }
    }
}

/// Sends answer `k` (`outbuf`, `OUT_SIZE` bytes a slot, `lens[k]` long) to `to[k]`, all in one
/// call and again for any the kernel did not take.
#[inline(always)]
fn send<S: Peer>(
    fd: RawFd,
    tx_headers: &mut MultiHeaders<S>,
    outbuf: &[u8],
    lens: &[usize],
    to: &[Option<S>],
) {
    let no_cmsgs: [ControlMessage<'_>; 0] = [];
    let m = lens.len();
    let out_size = u16::MAX as usize;
    let mut sent = 0;
    while sent < m {
        let mut iovs: [[IoSlice<'_>; 1]; BATCH] = [[IoSlice::new(&[])]; BATCH];
        for (j, iov) in iovs[..m - sent].iter_mut().enumerate() {
            let k = sent + j;
            *iov = [IoSlice::new(&outbuf[k * out_size..k * out_size + lens[k]])];
        }
        match sendmmsg(
            fd,
            tx_headers,
            iovs[..m - sent].iter(),
            &to[sent..m],
            no_cmsgs,
            MsgFlags::empty(),
        ) {
            Ok(r) => {
                let k = r.count();
                if k == 0 {
                    break;
                }
                sent += k;
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                // Skip the message the kernel refused (e.g. an unreachable peer).
                tracing::debug!(error = %e, "UDP send failed");
                sent += 1;
            }
        }
    }
}

/// A peer's address as the kernel gives it for a socket of one family.
trait Peer: SockaddrLike + Copy {
    /// The address as a std one.
    fn socket_addr(&self) -> SocketAddr;
}

impl Peer for SockaddrIn {
    #[inline]
    fn socket_addr(&self) -> SocketAddr {
        SocketAddr::V4(std::net::SocketAddrV4::new(self.ip(), self.port()))
    }
}

impl Peer for SockaddrIn6 {
    #[inline]
    fn socket_addr(&self) -> SocketAddr {
        SocketAddr::V6(std::net::SocketAddrV6::new(
            self.ip(),
            self.port(),
            self.flowinfo(),
            self.scope_id(),
        ))
    }
}
