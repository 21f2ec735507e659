//! Live routing data as the rest of Signpost sees it: each BGP feed's table (one per peer:
//! prefix → origin ASN, AS-path length, stale flag) and each session's status. The sessions
//! themselves are in [`crate::feed`]; the compiler reads these tables like any other client
//! data, and the control socket reports the status, without either importing the feed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The route a peer announced for one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Origin AS: the last AS of the path, or the first ASN of a trailing AS_SET. For a route
    /// an iBGP peer originates itself (empty AS path), the peer's AS.
    pub origin: u32,
    /// AS path length, an AS_SET counting 1 and confederation segments 0 (RFC 4271 §9.1.2.2).
    pub path_len: u32,
    /// The session that announced it is gone, or was replaced, and the route was not
    /// announced again yet.
    pub stale: bool,
}

/// One peer's routes, both families sorted by (start, length), stale routes included and
/// flagged. The lists are shared: exporting an unchanged table again costs a reference count.
#[derive(Debug, Clone)]
pub struct FeedTable {
    /// The peer's name.
    pub peer: String,
    /// IPv4 routes: (start address, prefix length, route).
    pub v4: Arc<[(u32, u8, Route)]>,
    /// IPv6 routes.
    pub v6: Arc<[(u128, u8, Route)]>,
}

impl FeedTable {
    /// The longest prefix of this table covering `addr`: (start, length, route).
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpAddr, u8, Route)> {
        match addr {
            IpAddr::V4(a) => longest(&self.v4, u32::from(a), 32)
                .map(|(s, l, r)| (IpAddr::from(std::net::Ipv4Addr::from(s)), l, r)),
            IpAddr::V6(a) => longest(&self.v6, u128::from(a), 128)
                .map(|(s, l, r)| (IpAddr::from(std::net::Ipv6Addr::from(s)), l, r)),
        }
    }
}

/// The longest prefix of a sorted list covering `addr`.
fn longest<K>(list: &[(K, u8, Route)], addr: K, bits: u8) -> Option<(K, u8, Route)>
where
    K: Copy + Ord + std::ops::Shr<u32, Output = K> + std::ops::Shl<u32, Output = K> + Default,
{
    // For each length, longest first, the only prefix of that length that can cover `addr`
    // starts at `addr` masked to it: look it up. Off the query path (explanations and lookups).
    let end = list.partition_point(|e| e.0 <= addr);
    let mut best: Option<(K, u8, Route)> = None;
    for len in (0..=bits).rev() {
        let start = if len == 0 {
            K::default()
        } else {
            let shift = (bits - len) as u32;
            (addr >> shift) << shift
        };
        // Entries are sorted by (start, len): binary search for (start, len).
        if let Ok(i) = list[..end].binary_search_by(|e| (e.0, e.1).cmp(&(start, len))) {
            best = Some(list[i]);
            break;
        }
    }
    best
}

/// The origin most feeds give one prefix, from their origins in ascending order: the longest
/// run, the first one on a tie (so the smaller ASN). `None` for no origin. The compiler and the
/// explanations decide with this one rule.
pub fn majority(sorted: impl Iterator<Item = u32>) -> Option<u32> {
    let mut best: Option<(usize, u32)> = None;
    let mut current: Option<(usize, u32)> = None;
    for o in sorted {
        current = match current {
            Some((n, c)) if c == o => Some((n + 1, c)),
            _ => Some((1, o)),
        };
        if let Some((n, c)) = current
            && best.is_none_or(|(m, _)| n > m)
        {
            best = Some((n, c));
        }
    }
    best.map(|(_, o)| o)
}

/// The live tables in force for one build: every feed's table and the nodes whose view it is.
#[derive(Debug, Clone, Default)]
pub struct LiveData {
    /// One entry per feed, in configuration order.
    pub feeds: Vec<LiveFeed>,
}

/// One feed's table and the nodes (sites) whose view of the Internet it is.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    /// The table.
    pub table: FeedTable,
    /// Names of the nodes whose network this feed's router belongs to.
    pub nodes: Vec<String>,
}

/// The origin the live feeds give one address ([`LiveData::origin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOrigin {
    /// The origin ASN.
    pub asn: u32,
    /// The deciding prefix: the longest that any feed has covering the address.
    pub prefix: (IpAddr, u8),
    /// The feeds that have that prefix with that origin.
    pub feeds: Vec<String>,
}

impl LiveData {
    /// The origin ASN the live feeds give `addr`, by the one precedence rule: where any feed
    /// has a prefix covering the address, the feeds decide, by the longest covering prefix of
    /// any of them; when they disagree on that prefix's origin, the origin most of them give
    /// it ([`majority`]). `None` where no feed covers the address: the file tables decide
    /// there. The compiler applies the same rule to whole ranges (`compile/live.rs`, checked
    /// against this function by `live_origins_agree_with_the_point_rule`); the explanations
    /// call this.
    pub fn origin(&self, addr: IpAddr) -> Option<LiveOrigin> {
        let found: Vec<(&str, IpAddr, u8, u32)> = self
            .feeds
            .iter()
            .filter_map(|f| {
                let (start, len, r) = f.table.lookup(addr)?;
                Some((f.table.peer.as_str(), start, len, r.origin))
            })
            .collect();
        let best = found.iter().map(|f| f.2).max()?;
        let at: Vec<&(&str, IpAddr, u8, u32)> = found.iter().filter(|f| f.2 == best).collect();
        let mut origins: Vec<u32> = at.iter().map(|f| f.3).collect();
        origins.sort_unstable();
        let asn = majority(origins.into_iter())?;
        Some(LiveOrigin {
            asn,
            prefix: (at[0].1, best),
            feeds: at
                .iter()
                .filter(|f| f.3 == asn)
                .map(|f| f.0.to_string())
                .collect(),
        })
    }

    /// True when no feed is configured.
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    /// Routes of every feed in this build.
    pub fn routes(&self) -> usize {
        self.feeds
            .iter()
            .map(|f| f.table.v4.len() + f.table.v6.len())
            .sum()
    }
}

/// A session's state (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Not connected; waiting before the next attempt.
    Idle,
    /// Connecting to the peer (active session).
    Connect,
    /// Waiting for the peer to connect (passive session).
    Active,
    /// Connected, OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Up: routes are exchanged.
    Established,
}

/// One peer's session, for `status` output.
#[derive(Debug, Clone)]
pub struct SessionStatus {
    /// The peer's name.
    pub peer: String,
    /// The peer's configured address.
    pub address: IpAddr,
    /// Current state.
    pub state: SessionState,
    /// Time since the session came up, while Established.
    pub uptime: Option<Duration>,
    /// Time since the session last went down, while not Established (`None` if it never was
    /// up).
    pub down_for: Option<Duration>,
    /// Fresh IPv4 routes.
    pub v4_prefixes: usize,
    /// Fresh IPv6 routes.
    pub v6_prefixes: usize,
    /// Routes of both families kept stale from a previous session.
    pub stale_prefixes: usize,
    /// Time since the last UPDATE was received.
    pub last_update: Option<Duration>,
    /// The last NOTIFICATION sent or received, or the connection error.
    pub last_error: Option<String>,
    /// Messages received over all sessions.
    pub messages_received: u64,
}

/// What the services need from the running feeds: their tables for the next build and their
/// sessions for `ctl bgp`. Implemented by [`crate::feed::Feeds`].
pub trait FeedView: Send + Sync {
    /// Every feed's table now.
    fn tables(&self) -> Vec<FeedTable>;
    /// Every session's status now.
    fn status(&self) -> Vec<SessionStatus>;
    /// Connections refused at the listener so far: from addresses of no passive peer, or
    /// while one from the same peer was already waiting.
    fn refused_connections(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::majority;

    #[test]
    fn majority_takes_the_longest_run_and_the_smaller_asn_on_a_tie() {
        assert_eq!(majority([].into_iter()), None);
        assert_eq!(majority([7].into_iter()), Some(7));
        assert_eq!(majority([3, 5, 5].into_iter()), Some(5));
        assert_eq!(majority([3, 3, 5, 5].into_iter()), Some(3));
        assert_eq!(majority([1, 2, 2, 2, 9, 9].into_iter()), Some(2));
    }
}

/// An established BGP session as a process that hands over passes it on (`ctl replace`),
/// besides the connected socket itself: what the new process needs to continue the session
/// without a new OPEN, and the peer's routes as they stood when the old process stopped
/// reading. Sent by `crate::handover` (postcard), built and resumed by `crate::feed`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CarriedSession {
    /// The peer's name.
    pub peer: String,
    /// The peer's configured address.
    pub address: IpAddr,
    /// The peer's AS.
    pub peer_asn: u32,
    /// Signpost's AS on the session.
    pub local_asn: u32,
    /// The negotiated hold time in seconds (0: no keepalives, no hold timer).
    pub hold_time: u16,
    /// The keepalive interval in milliseconds.
    pub keepalive_ms: u64,
    /// 4-byte AS numbers were negotiated (always, as Signpost requires them).
    pub four_octet: bool,
    /// IPv4 unicast was negotiated.
    pub ipv4: bool,
    /// IPv6 unicast was negotiated.
    pub ipv6: bool,
    /// The peer's BGP identifier.
    pub peer_id: std::net::Ipv4Addr,
    /// The anycast prefixes are announced on this session.
    pub announced: bool,
    /// How long the session had been established, in milliseconds.
    pub up_ms: u64,
    /// Bytes read from the socket but not yet handled (at most part of one message).
    pub unread: Vec<u8>,
    /// The peer's IPv4 routes: (start, length, origin, AS-path length, stale).
    pub v4: Vec<(u32, u8, u32, u32, bool)>,
    /// The peer's IPv6 routes.
    pub v6: Vec<(u128, u8, u32, u32, bool)>,
}
