//! Errors the feed reports to its caller when it starts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why [`Feeds::start`](super::Feeds::start) refused the settings.
#[derive(Debug)]
pub enum FeedError {
    /// The local ASN or a peer's ASN is 0.
    ZeroAsn,
    /// The router id is 0.0.0.0 or 255.255.255.255, which peers refuse.
    RouterId(Ipv4Addr),
    /// `connect_retry` is zero.
    ZeroConnectRetry,
    /// Two peers share a name.
    DuplicatePeerName(String),
    /// Two peers share an address.
    DuplicatePeerAddress(IpAddr),
    /// A peer's hold time is 1 or 2 seconds (RFC 4271 allows 0 or at least 3).
    HoldTime {
        /// The peer's name.
        peer: String,
        /// The hold time configured.
        hold_time: u16,
    },
    /// A peer's own hold time is below the minimum it accepts from the router (every session
    /// would be refused).
    HoldTimeBelowMinimum {
        /// The peer's name.
        peer: String,
        /// The hold time configured.
        hold_time: u16,
        /// The minimum configured.
        min_hold_time: u16,
    },
    /// A peer negotiates neither IPv4 nor IPv6.
    NoFamily(String),
    /// A peer is passive but the speaker has no listen address.
    PassiveWithoutListen(String),
    /// The listen socket could not be bound.
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The system's error.
        source: std::io::Error,
    },
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::ZeroAsn => write!(f, "BGP AS number 0 is not usable"),
            FeedError::RouterId(id) => {
                write!(f, "BGP router id {id} is not usable (peers refuse it)")
            }
            FeedError::ZeroConnectRetry => write!(f, "BGP connect retry must be above zero"),
            FeedError::DuplicatePeerName(name) => write!(f, "BGP peer name {name:?} is used twice"),
            FeedError::DuplicatePeerAddress(address) => {
                write!(f, "BGP peer address {address} is used twice")
            }
            FeedError::HoldTime { peer, hold_time } => write!(
                f,
                "BGP peer {peer:?}: hold time {hold_time} s is not allowed (0 or at least 3)"
            ),
            FeedError::HoldTimeBelowMinimum {
                peer,
                hold_time,
                min_hold_time,
            } => write!(
                f,
                "BGP peer {peer:?}: hold time {hold_time} s is below its min_hold_time \
                 {min_hold_time} s"
            ),
            FeedError::NoFamily(peer) => {
                write!(f, "BGP peer {peer:?} negotiates neither IPv4 nor IPv6")
            }
            FeedError::PassiveWithoutListen(peer) => write!(
                f,
                "BGP peer {peer:?} is passive but no listen address is configured"
            ),
            FeedError::Bind { address, source } => {
                write!(f, "cannot listen for BGP on {address}: {source}")
            }
        }
    }
}

impl std::error::Error for FeedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FeedError::Bind { source, .. } => Some(source),
            _ => None,
        }
    }
}
