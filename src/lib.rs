//! Signpost: an authoritative DNS server that answers each client of a download hostname with
//! the best healthy node, chosen by GeoIP, BGP (files and live sessions) and operator maps.
//!
//! # Architecture
//!
//! Everything a query needs is compiled ahead of time into one immutable
//! [`snapshot::Snapshot`], published through an `ArcSwap`. Three paths matter:
//!
//! - **The hot path** ([`dns`]): a UDP worker ([`dns::udp`]) loads the snapshot once per
//!   `recvmmsg` batch, decodes each query without allocating ([`wire`]), finds the zone and
//!   name ([`zone`]), and for a service name does one lookup in a flat table of CIDR blocks
//!   ([`snapshot::Service::route`]; IPv6 blocks longer than /64 sit in a second table that the
//!   first one points to) that yields both the decision (a rule, its chain of regions, the
//!   proximity ranks) and the ECS scope; [`snapshot::Service::pick`] then picks nodes by
//!   rank, weight and health (for `spread: capacity`, with the weight factors and overflow
//!   fractions the capacity controller publishes as atomics beside the snapshot, read with
//!   one relaxed load each), and pre-encoded records are copied into the response
//!   ([`dns::answer`]). No lock, no I/O, no `.await`, no allocation (`tests/alloc.rs`; the
//!   one exception is a `_why` TXT query, which builds its explanation as text).
//!   Each UDP worker counts into its own row of the counters ([`tally`], [`counters`]), the
//!   TCP tasks share one more row; a metrics scrape sums the rows.
//! - **The reload path** ([`reload`]): every trigger — a watched file changed, SIGHUP,
//!   `signpost ctl reload`, a live BGP feed changed — is a request on one channel to the reload
//!   thread, which coalesces them, runs the one load pipeline ([`load`]; a build for a feed
//!   change reads no file, it compiles the last good inputs again with the new live tables:
//!   read the configuration
//!   [`config`], the client data [`client`] ([`geo`]: each GeoIP database walked once into
//!   compact range lists, the file not kept; [`bgp`]) and the maps [`spec`], then
//!   compile with [`compile`]) off the query path, and publishes the result through
//!   [`serving::Published::publish`], which applies the node states ([`node_state`]) *before* the
//!   swap and tells the prober ([`probe`]) about it. A failed build keeps the old snapshot; so
//!   does one that [`guard`] finds takes away served names or too much data, until confirmed.
//! - **The file formats**: `signpost.yaml` is [`config::spec`] (turned into [`config::Config`],
//!   zones by `config::zones`, BGP sessions by `config::feeds`); map files are [`spec`]; both go
//!   through [`source`], which reports every problem with `file:line:column`.
//!
//! Live BGP: [`feed`] runs receive-only sessions with the sites' routers (message format by
//! bgpkit-parser) and keeps one table per peer; the tables, as [`live`] data, are compiler
//! input like the files: `asns:` rules use the live origin where a feed covers the address,
//! and regions ranked by proximity order their nodes by the AS-path length of each node's own
//! feeds. The compiler is pure: specs, data and live tables in, a snapshot out; it reads no
//! file (the files a map refers to come through the caller). [`explain`] answers "why this
//! node" from a snapshot alone, with the same scope and TTL functions real answers use.
//!
//! # Layers
//!
//! Dependencies run one way, from the bottom up; `tests/layers.rs` holds the table (module →
//! the modules it may name) and fails on any `crate::` path against it:
//!
//! 1. base: [`wire`], [`hash`], [`embedded`], [`source`], [`ranges`], [`health`], [`tally`]
//!    (counter cells with a row per writer), [`distance`] (great-circle distances),
//!    `log_limit` (rate limits for log lines others can cause);
//! 2. formats: [`spec`], [`zone`], [`config`], [`dnssec`] (DNSSEC key files and DS records);
//! 3. data: [`geo`], [`bgp`], [`client`], [`check`] (health-check definitions), [`meter`]
//!    (load sources: where a node's load is read, and how a scrape becomes a load), [`live`];
//! 4. the compiled model: [`snapshot`], and [`explain`] over it;
//! 5. the compiler: [`compile`];
//! 6. node states, capacity steering (loads and the controller that turns them into shares),
//!    the load pipeline and the reload guard: [`node_state`], [`capacity`], [`load`], [`guard`];
//!    the anycast announcement's decision: [`anycast`] (a pure state machine and its holder);
//! 7. where the services meet: [`counters`] (what is counted, and the one place that sums it),
//!    [`querylog`] (the workers hand records to its writer thread), [`serving`], [`notify`]
//!    (messages to systemd);
//! 8. services: [`dns`], [`probe`], [`scrape`] (load scrapes and the controller's clock),
//!    [`reload`], [`control`], [`feed`], [`selfcheck`] (real queries to the own listeners,
//!    for [`anycast`]), [`metrics`] (the
//!    Prometheus endpoint) — they never name each other, and meet at the snapshot, the node
//!    states, the counters and the serving state;
//! 9. [`handover`]: a new process taking over the sockets, node states and counters of the
//!    running one (`ctl replace`); it speaks through the control socket's protocol;
//! 10. [`daemon`] (the only module that wires everything), then [`cli`] (with [`manual`]:
//!     its man pages and completions), then `main`.
//!
//! # Reading order
//!
//! 1. [`snapshot`]: what a query sees; [`snapshot::Service::pick`].
//! 2. [`dns::answer`] and [`wire`]: one query, start to end; [`dns::udp`] for the batches.
//! 3. [`compile`] and [`ranges`]: how maps, data and live feeds become route tables and exact
//!    scopes.
//! 4. [`config`], [`spec`], [`source`]: the file formats and their error reporting.
//! 5. [`serving`], [`reload`], [`node_state`], [`probe`], [`control`]: the moving parts around
//!    the snapshot; [`capacity`] (with [`meter`] and [`scrape`]): loads in, weight factors and
//!    overflow fractions out, published beside the snapshot like node states.
//! 6. [`feed`] and [`live`]: BGP sessions and what they hand to the compiler.
//! 7. [`daemon`] and [`cli`]: how it all starts; [`handover`]: how a new process takes over.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anycast;
pub mod bgp;
pub mod capacity;
pub mod check;
pub mod cli;
pub mod client;
pub mod compile;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod distance;
pub mod dns;
pub mod dnssec;
pub mod embedded;
pub mod explain;
pub mod feed;
pub mod geo;
pub mod guard;
pub mod handover;
pub mod hash;
pub mod health;
pub mod live;
pub mod load;
pub(crate) mod log_limit;
pub mod manual;
pub mod meter;
pub mod metrics;
pub mod node_state;
pub mod notify;
pub mod probe;
pub mod querylog;
pub mod ranges;
pub mod reload;
pub mod scrape;
pub mod selfcheck;
pub mod serving;
pub mod snapshot;
pub mod source;
pub mod spec;
pub mod tally;
pub mod wire;
pub mod zone;
