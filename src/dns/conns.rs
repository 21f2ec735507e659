//! The DNS TCP connection table: every open connection holds a slot, and the table decides
//! who gets one. Caps per client address, per client network (/24 and /56 by default) and for
//! all clients together; the global cap is also held below a share of the process's file
//! descriptor limit, so that DNS TCP can never take the descriptors that reloads, the control
//! socket and the BGP sessions need.
//!
//! When every slot is taken, a new connection reclaims the slot of the connection that has
//! gone longest without a query, if that is at least `reclaim_idle` (RFC 7766 §6.2.3 lets a
//! server close idle connections when it is short of resources; the client opens a new one
//! when it needs it). So clients that hold many connections open and query now and then cannot
//! keep everyone else out, and the caps per address and per network keep one network from
//! taking every slot. The table is touched once when a connection opens and once when it
//! closes; a query only stores a time stamp in an atomic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use crate::config::TcpLimits;

/// Why a connection gets no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds `max_connections_per_client` connections.
    Address,
    /// Its network holds `max_connections_per_network` connections.
    Network,
    /// Every slot is taken, and none has been quiet for `reclaim_idle`.
    Full,
}

/// What the table and a connection share.
struct Shared {
    /// Milliseconds since the table's epoch when the last query arrived (or the connection
    /// opened).
    last_query_ms: AtomicU64,
    /// Told when the slot is reclaimed: the connection closes.
    close: Notify,
}

struct Entry {
    ip: IpAddr,
    network: IpAddr,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    per_network: HashMap<IpAddr, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.open.remove(&id)?;
        for (map, key) in [
            (&mut self.per_address, e.ip),
            (&mut self.per_network, e.network),
        ] {
            if let Some(c) = map.get_mut(&key) {
                *c -= 1;
                if *c == 0 {
                    map.remove(&key);
                }
            }
        }
        Some(e)
    }
}

/// The connections of every DNS TCP listener of the process.
pub struct Table {
    epoch: Instant,
    capacity: usize,
    per_address: usize,
    per_network: usize,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    reclaim_idle_ms: u64,
    inner: Mutex<Inner>,
}

/// The slot of one open connection; dropping it frees the slot.
pub struct Slot {
    table: Arc<Table>,
    id: u64,
    shared: Arc<Shared>,
}

impl Slot {
    /// A complete query arrived: the connection is not idle.
    pub fn queried(&self) {
        self.shared
            .last_query_ms
            .store(self.table.now_ms(), Ordering::Relaxed);
    }

    /// Completes when the table has reclaimed this slot: the connection must close.
    pub async fn reclaimed(&self) {
        self.shared.close.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A reclaimed slot has left the table already.
        self.table.lock().remove(self.id);
    }
}

/// The network of `ip` for the per-network cap: the address with the host bits cleared.
pub fn network(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(ipv4_prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// The most connections DNS TCP may hold: `max_connections`, but never more than
/// `max_fd_percent` of the file descriptor limit `fd_limit`.
pub fn capacity(limits: &TcpLimits, fd_limit: u64) -> usize {
    let share = fd_limit.saturating_mul(u64::from(limits.max_fd_percent)) / 100;
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    limits.max_connections.min(share).max(1)
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit, and returns the
/// soft limit in force afterwards. Called once at start; a limit that cannot be raised stays
/// as it is.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        // Not expected on Linux; assume the usual default soft limit.
        return 1024;
    };
    if hard > soft && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

impl Table {
    /// An empty table for `limits`, holding at most [`capacity`] connections.
    pub fn new(limits: &TcpLimits, fd_limit: u64) -> Table {
        Table {
            epoch: Instant::now(),
            capacity: capacity(limits, fd_limit),
            per_address: limits.max_connections_per_client,
            per_network: limits.max_connections_per_network,
            ipv4_prefix: limits.ipv4_prefix,
            ipv6_prefix: limits.ipv6_prefix,
            reclaim_idle_ms: u64::try_from(limits.reclaim_idle.as_millis()).unwrap_or(u64::MAX),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The most connections the table admits.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection from `ip`, reclaiming the slot of the connection quiet the
    /// longest when every slot is taken; or why there is none. The caps per address and per
    /// network are checked first: a client over its share never pushes anyone out.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let network = network(ip, self.ipv4_prefix, self.ipv6_prefix);
        let now = self.now_ms();
        let mut inner = self.lock();
        if inner.per_address.get(&ip).copied().unwrap_or(0) >= self.per_address {
            return Err(Refusal::Address);
        }
        if inner.per_network.get(&network).copied().unwrap_or(0) >= self.per_network {
            return Err(Refusal::Network);
        }
        if inner.open.len() >= self.capacity && !self.reclaim_locked(&mut inner, now) {
            return Err(Refusal::Full);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let shared = Arc::new(Shared {
            last_query_ms: AtomicU64::new(now),
            close: Notify::new(),
        });
        inner.open.insert(
            id,
            Entry {
                ip,
                network,
                shared: shared.clone(),
            },
        );
        *inner.per_address.entry(ip).or_insert(0) += 1;
        *inner.per_network.entry(network).or_insert(0) += 1;
        Ok(Slot {
            table: self.clone(),
            id,
            shared,
        })
    }

    /// Reclaims the slot of the connection quiet the longest, if it has been quiet for
    /// `reclaim_idle`: it is told to close and leaves the table at once. True if one was
    /// reclaimed. Used when the process runs out of file descriptors.
    pub fn reclaim(&self) -> bool {
        let now = self.now_ms();
        let mut inner = self.lock();
        self.reclaim_locked(&mut inner, now)
    }

    fn reclaim_locked(&self, inner: &mut Inner, now: u64) -> bool {
        let oldest = inner
            .open
            .iter()
            .map(|(id, e)| (e.shared.last_query_ms.load(Ordering::Relaxed), *id))
            .min();
        match oldest {
            Some((last, id)) if now.saturating_sub(last) >= self.reclaim_idle_ms => {
                if let Some(e) = inner.remove(id) {
                    e.shared.close.notify_one();
                    tracing::debug!(client = %e.ip, idle_ms = now - last, "TCP slot reclaimed");
                }
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max: usize, per_address: usize, per_network: usize, reclaim_ms: u64) -> TcpLimits {
        TcpLimits {
            idle_timeout: Duration::from_secs(10),
            max_connections: max,
            max_connections_per_client: per_address,
            max_queries_per_connection: 100,
            max_connections_per_network: per_network,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            reclaim_idle: Duration::from_millis(reclaim_ms),
            max_fd_percent: 50,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        assert_eq!(network(ip("192.0.2.77"), 24, 56), ip("192.0.2.0"));
        assert_eq!(network(ip("192.0.2.77"), 32, 56), ip("192.0.2.77"));
        assert_eq!(network(ip("192.0.2.77"), 0, 56), ip("0.0.0.0"));
        assert_eq!(
            network(ip("2001:db8:1:2ff:1::1"), 24, 56),
            ip("2001:db8:1:200::")
        );
        assert_eq!(network(ip("2001:db8::1"), 24, 0), ip("::"));
        assert_eq!(network(ip("2001:db8::1"), 24, 128), ip("2001:db8::1"));
    }

    #[test]
    fn capacity_keeps_to_the_descriptor_share() {
        let l = limits(512, 16, 64, 1000);
        assert_eq!(capacity(&l, 20_000), 512);
        assert_eq!(capacity(&l, 256), 128);
        assert_eq!(capacity(&l, 1), 1);
        assert_eq!(capacity(&l, u64::MAX), 512);
    }

    #[test]
    fn caps_per_address_and_network() {
        let t = Arc::new(Table::new(&limits(100, 2, 3, 60_000), 10_000));
        let a1 = t.admit(ip("10.0.0.1")).unwrap();
        let _a2 = t.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(t.admit(ip("10.0.0.1")).err(), Some(Refusal::Address));
        let _b1 = t.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(t.admit(ip("10.0.0.3")).err(), Some(Refusal::Network));
        // Another network is not affected.
        let _c = t.admit(ip("10.0.1.1")).unwrap();
        // A closed connection gives its address and network a slot back.
        drop(a1);
        let _d = t.admit(ip("10.0.0.3")).unwrap();
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn a_full_table_reclaims_the_quietest_slot() {
        let t = Arc::new(Table::new(&limits(2, 10, 10, 0), 10_000));
        let a = t.admit(ip("10.0.0.1")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let b = t.admit(ip("10.0.1.1")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        // b queries now: a is the one quiet the longest.
        a.queried();
        let _c = t.admit(ip("10.0.2.1")).unwrap();
        assert_eq!(t.len(), 2);
        // b was told to close (the permit is stored), a was not.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), b.reclaimed())
                .await
                .expect("b reclaimed");
            assert!(
                tokio::time::timeout(Duration::from_millis(50), a.reclaimed())
                    .await
                    .is_err()
            );
        });
        // Dropping the reclaimed slot frees nothing more.
        drop(b);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn busy_connections_are_not_reclaimed() {
        let t = Arc::new(Table::new(&limits(2, 10, 10, 60_000), 10_000));
        let _a = t.admit(ip("10.0.0.1")).unwrap();
        let _b = t.admit(ip("10.0.1.1")).unwrap();
        assert_eq!(t.admit(ip("10.0.2.1")).err(), Some(Refusal::Full));
        assert!(!t.reclaim());
        assert_eq!(t.len(), 2);
    }
}
