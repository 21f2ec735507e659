//! Signpost: an authoritative DNS server that answers each client of a download hostname with
//! the best healthy node, chosen by GeoIP, BGP origin and operator maps.
//!
//! # Architecture
//!
//! Everything a query needs is compiled ahead of time into one immutable
//! [`snapshot::Snapshot`], published through an `ArcSwap`. A query loads it once, decodes the
//! packet without allocating ([`dns::wire`]), finds the zone and name ([`zone`]), and for a
//! service name does one binary search in a flat table of CIDR blocks
//! ([`snapshot::Service::route`]) that yields both the decision (a rule and its chain of
//! regions) and the ECS scope, then picks nodes by weight and health
//! ([`snapshot::Service::pick`]) and copies pre-encoded records into the response.
//!
//! UDP workers ([`dns::udp`]) receive and send in batches with buffers allocated once, and rate
//! limit per client network ([`dns::rrl`]). A batch is answered in three passes: every query is
//! decoded and placed ([`dns::answer::prepare`]), the route-table memory each will read is
//! touched in a tight loop so that the batch's cache misses overlap, then each is answered
//! ([`dns::answer::complete`]). TCP ([`dns::tcp`]) runs on the I/O runtime and calls the same
//! functions, one query at a time ([`dns::answer::respond`]).
//!
//! Off the query path, [`reload`] loads the configuration ([`config`]), the client data
//! ([`client`]: [`geo`] and [`bgp`]) and the map files ([`spec`]), and [`compile`] validates
//! them together and builds the next snapshot, using the range algebra of [`ranges`]. Health
//! is a table of atomics shared by snapshots ([`health`]); the [`control`] socket and the
//! health-check poller ([`probe`]) write it. [`daemon`] wires it all together and [`cli`] is
//! the command line; [`embedded`] holds the demo that runs without a configuration.
//!
//! Dependencies run one way: formats (`source`, `config`, `spec`) → data (`geo`, `bgp`,
//! `client`, `health`) → `snapshot` ← `compile`; `dns` reads only the snapshot; `reload` and
//! `control` and `probe` write it; `daemon` wires all.
//!
//! # Reading order
//!
//! 1. [`snapshot`]: what a query sees.
//! 2. [`dns::answer`] and [`dns::wire`]: one query, start to end.
//! 3. [`compile`] and [`ranges`]: how maps and data become route tables and scopes.
//! 4. [`config`], [`spec`], [`source`]: the file formats and their error reporting.
//! 5. [`reload`], [`control`], [`probe`], [`daemon`]: the moving parts around the snapshot.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bgp;
pub mod check;
pub mod cli;
pub mod client;
pub mod compile;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod dns;
pub mod embedded;
pub mod explain;
pub mod feed;
pub mod geo;
pub mod hash;
pub mod health;
pub mod live;
pub mod load;
pub mod node_state;
pub mod probe;
pub mod ranges;
pub mod reload;
pub mod serving;
pub mod snapshot;
pub mod source;
pub mod spec;
pub mod wire;
pub mod zone;
