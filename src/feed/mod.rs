//! Live BGP feeds: Signpost receives each site router's routing table over BGP and keeps one
//! table per peer (prefix → origin ASN, AS path length, stale flag) for the compiler.
//!
//! Signpost is receive-only but for its own anycast service prefixes: it sends OPEN,
//! KEEPALIVE and NOTIFICATION, and UPDATEs only for the prefixes configured on a peer
//! (`announce.rs`, while [`Feeds::set_announced`] says so), so a misconfigured session cannot
//! leak anyone else's routes. Sessions are passive (the router connects to
//! [`Speaker::listen`] and is identified by its source address) or active (Signpost connects,
//! retrying every `connect_retry`).
//!
//! - OPEN: multiprotocol IPv4 and/or IPv6 unicast, 4-byte ASN (required from the peer; AS_TRANS
//!   in the 2-byte field above 65535), route refresh, graceful restart (see below). The peer's
//!   OPEN must have version 4, the configured ASN, and a hold time of at least the peer's
//!   `min_hold_time` ([`DEFAULT_MIN_HOLD_TIME`], 3 s, unless configured: a hold time of 0,
//!   which RFC 4271 allows, is refused unless the minimum is 0); the smaller hold time is used,
//!   keepalives go every third of it.
//! - Graceful restart: Signpost advertises the capability with no address family and restart
//!   time 0, i.e. as a receiver that keeps no state of its own across restarts. Whatever the peer
//!   advertises, when a session ends (error, hold timer, NOTIFICATION, max-prefix, a new
//!   connection replacing it) the peer's routes stay in its table flagged stale for
//!   [`Speaker::stale_time`]; a new session's announcements replace them one by one; the
//!   peer's End-of-RIB for a family drops that family's remaining stale routes, and
//!   `stale_time` after a session ended, the routes still stale since then are removed (a
//!   later session end does not extend their time).
//! - UPDATEs: IPv4 NLRI and withdrawals, MP_REACH/MP_UNREACH for IPv4 and IPv6 unicast; other
//!   families and those not negotiated are ignored. Malformed UPDATEs follow RFC 7606 as
//!   described in `update.rs`: treat-as-withdraw where the prefixes can be found, session reset
//!   otherwise. Header errors (marker, length outside 19..=4096 or wrong for the type, unknown
//!   type) are answered with a Message Header Error NOTIFICATION and the session is reset.
//! - Limits: at most `max_prefixes` routes per family and peer, fresh and stale together
//!   (default [`DEFAULT_PREFIX_CAP`]). One fresh route more is answered with Cease / Maximum
//!   Number of Prefixes Reached and the session goes down like any other (routes stale, then
//!   removed); a new route that only the stale ones push over the limit first removes a stale
//!   route, the oldest first (`table.rs`), so that a peer reconnecting again and again with new
//!   prefixes holds no more than its cap. The read buffer is a fixed 64 KiB per session.
//! - Log lines that the other side can cause (refused connections, malformed UPDATEs,
//!   sessions up and down, NOTIFICATIONs) are rate-limited per peer and per kind, with the
//!   count of the lines held back on the next one written (`src/log_limit.rs`).
//! - A passive peer that connects while its session is up replaces that session (the router
//!   restarted); connections from unknown addresses, and from active peers' addresses, are
//!   refused and counted.
//! - Hand-over (`ctl replace`): [`Feeds::pause`] stops every established session at a message
//!   boundary and gives back its connected socket and state ([`Handed`]); the new process's
//!   peers named in [`Inherited::sessions`] wait for [`Feeds::resume`] and go on with the
//!   session without a new OPEN (`handing.rs`).
//!
//! bgpkit-parser provides the message format: parsing every message type, and encoding OPEN
//! (with the capabilities above), KEEPALIVE, NOTIFICATION and the tests' UPDATEs. It is built
//! for MRT archives, so what a live session needs beyond it is here: the header checks of RFC
//! 4271 §6.1 (it only logs a bad marker and accepts lengths up to 65535), the attribute
//! section's framing (it stops silently at an attribute that overruns the section), the
//! per-family End-of-RIB (its `is_end_of_rib` does not say which family), and the session
//! state machine.

mod announce;
mod error;
mod feeds;
mod frame;
mod handing;
mod listener;
mod notice;
mod open;
mod peer;
mod session;
mod settings;
mod shared;
mod status;
mod table;
mod update;

#[cfg(test)]
mod tests;

pub use announce::Announcement;
pub use error::FeedError;
pub use feeds::{FeedTable, Feeds, Inherited};
pub use handing::{CarriedSession, Handed};
pub use settings::{DEFAULT_MIN_HOLD_TIME, DEFAULT_PREFIX_CAP, Peer, Speaker};
pub use status::{SessionState, SessionStatus};
pub use table::Route;
