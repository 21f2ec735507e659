//! Tests of the feed over real TCP on loopback, with a raw test speaker on the other side, and
//! of how UPDATEs are read (including what bgpkit-parser does with malformed ones).

mod announce;
mod decode;
mod errors;
mod handover;
mod sessions;
mod speaker;
mod stale;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{FeedTable, Feeds, Peer, Route, SessionState, SessionStatus, Speaker};
use speaker::WAIT;

/// Signpost's AS in the tests.
pub const LOCAL_ASN: u32 = 64500;

/// A passive peer at `ip` with AS `asn`.
pub fn peer(name: &str, ip: &str, asn: u32) -> Peer {
    Peer::new(name, ip.parse().unwrap(), asn)
}

/// A started feed and its change counter.
pub struct Harness {
    /// The feed.
    pub feeds: Feeds,
    /// Calls of the change callback.
    pub changes: Arc<AtomicUsize>,
}

impl Harness {
    /// Starts a feed listening on 127.0.0.1:0 with these peers and stale time.
    pub fn start(peers: Vec<Peer>, stale_time: Duration) -> Harness {
        Harness::inheriting(peers, stale_time, Default::default())
    }

    /// Starts a feed as [`Harness::start`] does, with what a replaced process handed over.
    pub fn inheriting(
        peers: Vec<Peer>,
        stale_time: Duration,
        inherited: super::Inherited,
    ) -> Harness {
        let settings = Speaker {
            local_asn: LOCAL_ASN,
            router_id: Ipv4Addr::new(192, 0, 2, 254),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            connect_retry: Duration::from_millis(100),
            stale_time,
            peers,
        };
        let changes = Arc::new(AtomicUsize::new(0));
        let counter = changes.clone();
        let on_change = Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let feeds = Feeds::start(
            settings,
            tokio::runtime::Handle::current(),
            on_change,
            inherited,
        )
        .unwrap();
        Harness { feeds, changes }
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.feeds.local_addr().unwrap()
    }

    /// One peer's table.
    pub fn table(&self, name: &str) -> FeedTable {
        self.feeds
            .tables()
            .into_iter()
            .find(|t| t.peer == name)
            .unwrap()
    }

    /// One peer's status.
    pub fn status(&self, name: &str) -> SessionStatus {
        self.feeds
            .status()
            .into_iter()
            .find(|s| s.peer == name)
            .unwrap()
    }

    /// Waits until `cond` holds, at most [`WAIT`].
    pub async fn until(&self, what: &str, cond: impl Fn(&Harness) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until a peer is in `state`.
    pub async fn until_state(&self, name: &str, state: SessionState) {
        self.until(&format!("{name} {state:?}"), |h| {
            h.status(name).state == state
        })
        .await;
    }
}

/// An IPv4 prefix as the tables key it.
pub fn v4(s: &str) -> (u32, u8) {
    let (a, l) = s.split_once('/').unwrap();
    (
        u32::from(a.parse::<Ipv4Addr>().unwrap()),
        l.parse().unwrap(),
    )
}

/// An IPv6 prefix as the tables key it.
pub fn v6(s: &str) -> (u128, u8) {
    let (a, l) = s.split_once('/').unwrap();
    (
        u128::from(a.parse::<std::net::Ipv6Addr>().unwrap()),
        l.parse().unwrap(),
    )
}

/// The route of an IPv4 prefix in a table.
pub fn route4(t: &FeedTable, p: &str) -> Option<Route> {
    let k = v4(p);
    t.v4.iter().find(|e| (e.0, e.1) == k).map(|e| e.2)
}

/// The route of an IPv6 prefix in a table.
pub fn route6(t: &FeedTable, p: &str) -> Option<Route> {
    let k = v6(p);
    t.v6.iter().find(|e| (e.0, e.1) == k).map(|e| e.2)
}

/// A loopback source address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
