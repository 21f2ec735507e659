//! Runtime settings of the BGP feed: the local speaker and its peers.
//!
//! These are plain values. A peer's options are the configuration's [`FeedPeer`], declared once
//! there and read here as they are; the file format is converted into them by `config`.
//! [`Speaker::validate`] reports the combinations the sessions cannot work with.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::announce::Announcement;
use super::error::FeedError;
use crate::config::FeedPeer;

/// The per-family prefix cap used when a peer sets no `max_prefixes`: 2,000,000 routes per
/// address family, above any full table today, so a runaway peer cannot exhaust memory.
pub const DEFAULT_PREFIX_CAP: u32 = 2_000_000;

/// The shortest hold time a peer may propose unless configured otherwise: 3 s, the shortest
/// RFC 4271 allows besides 0. A peer proposing 0 (no keepalives, no hold timer: a silent peer
/// would keep its session, and its routes fresh, for ever) is refused.
pub const DEFAULT_MIN_HOLD_TIME: u16 = 3;

/// The local BGP speaker: who Signpost is, where it listens, and whom it peers with.
#[derive(Debug, Clone)]
pub struct Speaker {
    /// Signpost's own AS number (4-byte; AS_TRANS goes in the OPEN's 2-byte field above 65535).
    pub local_asn: u32,
    /// Signpost's BGP identifier.
    pub router_id: Ipv4Addr,
    /// Where passive peers connect to; `None` when every peer is active.
    pub listen: Option<SocketAddr>,
    /// Wait between connection attempts to an active peer, and after a session ends.
    pub connect_retry: Duration,
    /// How long a dropped peer's routes are kept, flagged stale, before they are removed.
    pub stale_time: Duration,
    /// The peers.
    pub peers: Vec<Peer>,
}

/// One BGP neighbour (a site's router) that sends Signpost its routing table: its settings as
/// the configuration declares them ([`FeedPeer`], read through this type as if they were its
/// own fields: one declaration of each option from the file to the session), and the routes
/// Signpost announces to it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The configured settings.
    pub settings: FeedPeer,
    /// Signpost's own routes (anycast service prefixes) sent to this peer while the feed's
    /// announced flag is set; empty for a receive-only session.
    pub announce: Vec<Announcement>,
}

impl std::ops::Deref for Peer {
    type Target = FeedPeer;
    fn deref(&self) -> &FeedPeer {
        &self.settings
    }
}

impl std::ops::DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut FeedPeer {
        &mut self.settings
    }
}

impl Peer {
    /// A passive IPv4 + IPv6 peer with hold time 90 s (at least [`DEFAULT_MIN_HOLD_TIME`] from
    /// the router), remote port 179 and the default cap.
    pub fn new(name: &str, address: IpAddr, asn: u32) -> Peer {
        Peer {
            settings: FeedPeer {
                name: name.to_string(),
                address,
                asn,
                nodes: Vec::new(),
                passive: true,
                port: 179,
                local_address: None,
                hold_time: 90,
                min_hold_time: DEFAULT_MIN_HOLD_TIME,
                ipv4: true,
                ipv6: true,
                max_prefixes: None,
            },
            announce: Vec::new(),
        }
    }

    /// The effective per-family route limit.
    pub fn prefix_limit(&self) -> u32 {
        self.max_prefixes.unwrap_or(DEFAULT_PREFIX_CAP)
    }
}

impl Speaker {
    /// Checks the settings: a non-zero local ASN, a router id other than 0.0.0.0 and
    /// 255.255.255.255, unique peer names and addresses, a hold time of 0 or ≥ 3 and not below
    /// the minimum, at least one family per peer, a listen address when a peer is passive, and
    /// a non-zero connect retry.
    pub fn validate(&self) -> Result<(), FeedError> {
        if self.local_asn == 0 {
            return Err(FeedError::ZeroAsn);
        }
        if !usable_router_id(self.router_id) {
            return Err(FeedError::RouterId(self.router_id));
        }
        if self.connect_retry.is_zero() {
            return Err(FeedError::ZeroConnectRetry);
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        for peer in &self.peers {
            if !names.insert(peer.name.as_str()) {
                return Err(FeedError::DuplicatePeerName(peer.name.clone()));
            }
            if !addresses.insert(canonical(peer.address)) {
                return Err(FeedError::DuplicatePeerAddress(peer.address));
            }
            if peer.asn == 0 {
                return Err(FeedError::ZeroAsn);
            }
            if matches!(peer.hold_time, 1 | 2) {
                return Err(FeedError::HoldTime {
                    peer: peer.name.clone(),
                    hold_time: peer.hold_time,
                });
            }
            if peer.hold_time < peer.min_hold_time {
                return Err(FeedError::HoldTimeBelowMinimum {
                    peer: peer.name.clone(),
                    hold_time: peer.hold_time,
                    min_hold_time: peer.min_hold_time,
                });
            }
            if !peer.ipv4 && !peer.ipv6 {
                return Err(FeedError::NoFamily(peer.name.clone()));
            }
            if peer.passive && self.listen.is_none() {
                return Err(FeedError::PassiveWithoutListen(peer.name.clone()));
            }
        }
        Ok(())
    }
}

/// The address as a peer is identified: an IPv4-mapped IPv6 address is its IPv4 address (a
/// dual-stack listener reports IPv4 clients that way).
pub(crate) fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

/// Whether a BGP identifier can be used: not 0.0.0.0 (RFC 6286 wants it non-zero) nor
/// 255.255.255.255 (refused by Signpost from its peers too).
pub(crate) fn usable_router_id(id: Ipv4Addr) -> bool {
    !id.is_unspecified() && !id.is_broadcast()
}
