//! What the server counts, and the one place that sums it.
//!
//! - **Queries** (by transport, question type and rcode; drops, truncations, ECS present or
//!   absent, rate-limit drops and slips, refused TCP connections, query-log drops) are cells of
//!   one [`Tally`] with a row per DNS worker: each UDP worker writes only its own row, the TCP
//!   tasks share one. Laid out by [`query`].
//! - **Answers** (by service, rule kind, region and node; fallback, degraded and all-down
//!   answers) are cells of the tally each published snapshot carries
//!   ([`crate::snapshot::cells`]), because what a cell means (which service, which node)
//!   belongs to that snapshot. When a snapshot is replaced, [`Counters::retire`] keeps its
//!   tally and the names of its cells; once no worker holds the old snapshot any more, its
//!   counts are folded into totals by name, so a reload never resets a counter.
//! - **Events** off the query path (reloads, health checks, node state transitions, query-log
//!   records written and failed) are kept under a mutex.
//!
//! Readers (`ctl stats`, the metrics endpoint) call [`Counters::queries`],
//! [`Counters::answers`] and [`Counters::events`]; nothing here formats an exposition.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::snapshot::{RuleKind, Snapshot, cells};
use crate::tally::{Row, Tally};
use crate::wire::{rcode, rtype};
use query::Cell;

pub use crate::tally::{Histogram, LATENCY_BUCKETS};

/// The layout of the query cells: per transport, a question type × rcode grid, then
/// [`EXTRA`](query::EXTRA) single cells, one per [`Cell`].
pub mod query {
    use super::{rcode, rtype};

    /// A family of counters as the metrics endpoint shows it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Family {
        /// The name, without `signpost_` and `_total`.
        pub name: &'static str,
        /// The help text.
        pub help: &'static str,
    }

    const DROPPED_QUERIES: Family = Family {
        name: "dropped_queries",
        help: "Packets dropped without an answer (not a query, unanswerable source).",
    };
    const TRUNCATED_RESPONSES: Family = Family {
        name: "truncated_responses",
        help: "Responses sent with TC set because they did not fit.",
    };
    const ECS_QUERIES: Family = Family {
        name: "ecs_queries",
        help: "Queries with and without an EDNS Client Subnet option.",
    };
    const RRL_RESPONSES: Family = Family {
        name: "rrl_responses",
        help: "UDP responses withheld by response rate limiting: dropped, or sent truncated (slip).",
    };
    const TCP_REFUSED_CONNECTIONS: Family = Family {
        name: "tcp_refused_connections",
        help: "TCP connections closed at once by the connection caps.",
    };
    /// Also has samples from events (records written and failed).
    pub const QUERYLOG_RECORDS: Family = Family {
        name: "querylog_records",
        help: "Query-log records written, dropped (the writer was behind), and failed (the file did not take them).",
    };

    /// A single counter cell of each transport, besides the question type × rcode grid. Each
    /// is declared once, in [`Cell::reading`]: its `ctl stats` name (which is also the key its
    /// count is carried under to a replacing process) and its metric.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Cell {
        /// Queries dropped without an answer.
        Dropped,
        /// Responses truncated (TC set).
        Truncated,
        /// Queries with an EDNS Client Subnet option (the sum of the ECS grid; never bumped).
        EcsPresent,
        /// Queries without one (likewise).
        EcsAbsent,
        /// UDP responses dropped by rate limiting.
        RrlDropped,
        /// UDP responses sent truncated by rate limiting (slip).
        RrlSlipped,
        /// TCP connections refused by the connection caps.
        TcpRefused,
        /// Query-log records dropped because the writer was behind.
        QuerylogDropped,
    }

    /// How the metrics endpoint shows a cell's transports.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Transports {
        /// One sample per transport, with a `transport` label.
        Labelled,
        /// One sample, the transports summed.
        Summed,
    }

    /// How readers see a cell.
    #[derive(Clone, Copy, Debug)]
    pub struct Reading {
        /// Its `ctl stats` name (the transports summed); `None`: not in `ctl stats`.
        pub stats: Option<&'static str>,
        /// Its metric family.
        pub family: Family,
        /// The label that tells it from the family's other samples.
        pub label: Option<(&'static str, &'static str)>,
        /// Its transports in the metric.
        pub transports: Transports,
    }

    impl Cell {
        /// Every cell, in index order.
        pub const ALL: [Cell; 8] = [
            Cell::Dropped,
            Cell::Truncated,
            Cell::EcsPresent,
            Cell::EcsAbsent,
            Cell::RrlDropped,
            Cell::RrlSlipped,
            Cell::TcpRefused,
            Cell::QuerylogDropped,
        ];

        /// Its index among the single cells.
        #[inline]
        pub const fn index(self) -> usize {
            self as usize
        }

        /// How readers see it: the one declaration of its names.
        pub const fn reading(self) -> Reading {
            use Transports::{Labelled, Summed};
            let (stats, family, label, transports) = match self {
                Cell::Dropped => (Some("dropped"), DROPPED_QUERIES, None, Labelled),
                Cell::Truncated => (Some("truncated"), TRUNCATED_RESPONSES, None, Labelled),
                Cell::EcsPresent => (None, ECS_QUERIES, Some(("ecs", "present")), Labelled),
                Cell::EcsAbsent => (None, ECS_QUERIES, Some(("ecs", "absent")), Labelled),
                Cell::RrlDropped => (
                    Some("rrl_dropped"),
                    RRL_RESPONSES,
                    Some(("action", "drop")),
                    Summed,
                ),
                Cell::RrlSlipped => (
                    Some("rrl_slipped"),
                    RRL_RESPONSES,
                    Some(("action", "slip")),
                    Summed,
                ),
                Cell::TcpRefused => (Some("tcp_refused"), TCP_REFUSED_CONNECTIONS, None, Summed),
                Cell::QuerylogDropped => (
                    Some("querylog_dropped"),
                    QUERYLOG_RECORDS,
                    Some(("result", "dropped")),
                    Summed,
                ),
            };
            Reading {
                stats,
                family,
                label,
                transports,
            }
        }
    }

    /// Question types counted by name; everything else is `other`.
    pub const QTYPES: [(u16, &str); 17] = [
        (0, "none"),
        (rtype::A, "A"),
        (rtype::NS, "NS"),
        (rtype::CNAME, "CNAME"),
        (rtype::SOA, "SOA"),
        (rtype::PTR, "PTR"),
        (rtype::MX, "MX"),
        (rtype::TXT, "TXT"),
        (rtype::AAAA, "AAAA"),
        (rtype::SRV, "SRV"),
        (64, "SVCB"),
        (65, "HTTPS"),
        (rtype::CAA, "CAA"),
        (rtype::ANY, "ANY"),
        (rtype::AXFR, "AXFR"),
        (rtype::IXFR, "IXFR"),
        (u16::MAX, "other"),
    ];
    /// Rcodes counted by name; everything else is `other`.
    pub const RCODES: [(u16, &str); 8] = [
        (rcode::NOERROR, "NOERROR"),
        (rcode::FORMERR, "FORMERR"),
        (rcode::SERVFAIL, "SERVFAIL"),
        (rcode::NXDOMAIN, "NXDOMAIN"),
        (rcode::NOTIMP, "NOTIMP"),
        (rcode::REFUSED, "REFUSED"),
        (rcode::BADVERS, "BADVERS"),
        (u16::MAX, "other"),
    ];
    /// Transports, in cell order.
    pub const TRANSPORTS: [&str; 2] = ["udp", "tcp"];

    /// Single cells per transport.
    pub const EXTRA: usize = Cell::ALL.len();
    /// Cells per transport.
    pub const PER_TRANSPORT: usize = QTYPES.len() * RCODES.len() + EXTRA;
    /// Cells per row.
    pub const CELLS: usize = PER_TRANSPORT * TRANSPORTS.len();

    /// The grid index of a question type.
    #[inline]
    pub fn qtype_index(t: u16) -> usize {
        QTYPES
            .iter()
            .position(|&(v, _)| v == t)
            .unwrap_or(QTYPES.len() - 1)
    }

    /// The grid index of an rcode.
    #[inline]
    pub fn rcode_index(c: u16) -> usize {
        RCODES
            .iter()
            .position(|&(v, _)| v == c)
            .unwrap_or(RCODES.len() - 1)
    }

    /// The cell of (question type index, rcode index) for transport `t` (0 UDP, 1 TCP).
    #[inline]
    pub fn grid(t: usize, qtype: usize, rcode: usize) -> usize {
        t * PER_TRANSPORT + qtype * RCODES.len() + rcode
    }

    /// The single cell `extra` for transport `t`.
    #[inline]
    pub fn extra(t: usize, extra: Cell) -> usize {
        t * PER_TRANSPORT + QTYPES.len() * RCODES.len() + extra.index()
    }

    /// Cells per transport as the workers write them: the grid twice (queries without an ECS
    /// option, then with one), then the single cells, so that an answer adds to one cell. The
    /// [`Cell::EcsPresent`] and [`Cell::EcsAbsent`] cells readers see are the sums of the two
    /// grids.
    pub const RAW_PER_TRANSPORT: usize = 2 * QTYPES.len() * RCODES.len() + EXTRA;
    /// Cells per row as the workers write them.
    pub const RAW_CELLS: usize = RAW_PER_TRANSPORT * TRANSPORTS.len();

    /// The cell the workers add an answer to: (question type index, rcode index), with or
    /// without ECS, for transport `t`.
    #[inline]
    pub fn answered(t: usize, qtype: usize, rcode: usize, ecs: bool) -> usize {
        t * RAW_PER_TRANSPORT + (usize::from(ecs) * QTYPES.len() + qtype) * RCODES.len() + rcode
    }

    /// The single cell `extra` for transport `t`, as the workers write it.
    #[inline]
    pub fn raw_extra(t: usize, extra: Cell) -> usize {
        t * RAW_PER_TRANSPORT + 2 * QTYPES.len() * RCODES.len() + extra.index()
    }

    /// The cells readers see ([`grid`], [`extra`]) from the cells the workers write.
    pub fn fold(raw: &[u64]) -> Vec<u64> {
        let mut q = vec![0; CELLS];
        let at = |c: usize| raw.get(c).copied().unwrap_or(0);
        for t in 0..TRANSPORTS.len() {
            for qt in 0..QTYPES.len() {
                for rc in 0..RCODES.len() {
                    for (ecs, cell) in [(false, Cell::EcsAbsent), (true, Cell::EcsPresent)] {
                        let v = at(answered(t, qt, rc, ecs));
                        q[grid(t, qt, rc)] += v;
                        q[extra(t, cell)] += v;
                    }
                }
            }
            for x in Cell::ALL {
                q[extra(t, x)] += at(raw_extra(t, x));
            }
        }
        q
    }
}

/// One writer's place in the tallies: its row, and whether it is the row's only writer.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// The row, in the query tally and in every snapshot's tally.
    pub row: usize,
    /// Only this writer writes the row.
    pub exclusive: bool,
}

impl Slot {
    /// This writer's row of `tally`.
    #[inline]
    pub fn of<'t>(&self, tally: &'t Tally) -> Option<Row<'t>> {
        tally.row(self.row, self.exclusive)
    }
}

/// A family of answer counters (one metric, several label sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnswerMetric {
    /// A/AAAA answers of a service name; labels: service.
    Answers,
    /// Answers without an address; labels: service.
    NoData,
    /// Answers from a later region of the chain; labels: service.
    Fallback,
    /// Degraded answers; labels: service.
    Degraded,
    /// Answers by the all-down policy; labels: service.
    AllDown,
    /// SERVFAIL by the all-down policy; labels: service.
    ServFail,
    /// Answers decided by ECS; labels: service.
    Ecs,
    /// Answers by rule kind; labels: service, rule kind.
    Rule,
    /// Answers by region; labels: service, region (`none` for none).
    Region,
    /// Addresses answered by node; labels: service, node.
    Node,
}

/// A counter's name and label values.
pub type AnswerKey = (AnswerMetric, Vec<String>);

/// What every cell of a snapshot's tally adds to, by name: nothing for cells that are not
/// reported (nodes that are not members of the service), one counter for the rarer outcomes
/// and the nodes, and for a combination cell the service's answers, its region, its rule kind
/// when there is one and its ECS answers when ECS decided ([`cells`]).
fn cell_names(snap: &Snapshot) -> Vec<Vec<AnswerKey>> {
    let mut out = vec![Vec::new(); snap.tally.cells()];
    for (s, svc) in snap.services.iter().enumerate() {
        let Some(&base) = snap.cell_base.get(s) else {
            continue;
        };
        let name = svc.names.first().cloned().unwrap_or_default();
        let mut set = |c: usize, key: AnswerKey| {
            if let Some(slot) = out.get_mut(base + c) {
                slot.push(key);
            }
        };
        for (c, m) in [
            (cells::NODATA, AnswerMetric::NoData),
            (cells::FALLBACK, AnswerMetric::Fallback),
            (cells::DEGRADED, AnswerMetric::Degraded),
            (cells::ALL_DOWN, AnswerMetric::AllDown),
            (cells::SERVFAIL, AnswerMetric::ServFail),
        ] {
            set(c, (m, vec![name.clone()]));
        }
        let regions = svc
            .regions
            .iter()
            .enumerate()
            .map(|(r, region)| (Some(r), region.name.as_str()))
            .chain([(None, "none")]);
        for (region, region_name) in regions {
            for ecs in [false, true] {
                let kinds = RuleKind::ALL.iter().map(|&k| Some(k)).chain([None]);
                for kind in kinds {
                    let c = snap.answer_cell(svc, region, ecs, kind);
                    set(c, (AnswerMetric::Answers, vec![name.clone()]));
                    set(
                        c,
                        (
                            AnswerMetric::Region,
                            vec![name.clone(), region_name.to_string()],
                        ),
                    );
                    if let Some(k) = kind {
                        set(
                            c,
                            (AnswerMetric::Rule, vec![name.clone(), k.as_str().into()]),
                        );
                    }
                    if ecs {
                        set(c, (AnswerMetric::Ecs, vec![name.clone()]));
                    }
                }
            }
        }
        let mut members: Vec<usize> = svc
            .regions
            .iter()
            .flat_map(|r| r.members.iter().map(|&(n, _)| n))
            .chain(svc.last_resort.iter().map(|&(n, _)| n))
            .collect();
        members.sort_unstable();
        members.dedup();
        for n in members {
            if let Some(node) = snap.nodes.get(n) {
                set(
                    snap.node_cell(n),
                    (AnswerMetric::Node, vec![name.clone(), node.name.clone()]),
                );
            }
        }
    }
    out
}

/// A retired snapshot's tally with the names of its cells.
struct Retired {
    tally: Arc<Tally>,
    names: Vec<Vec<AnswerKey>>,
}

impl Retired {
    fn add_to(&self, totals: &mut BTreeMap<AnswerKey, u64>) {
        for (c, keys) in self.names.iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            let v = self.tally.sum(c);
            for key in keys {
                *totals.entry(key.clone()).or_default() += v;
            }
        }
    }
}

/// Health checks of one node.
#[derive(Clone, Debug, Default)]
pub struct ProbeStats {
    /// Checks that succeeded.
    pub ok: u64,
    /// Checks that failed.
    pub failed: u64,
    /// How long checks took.
    pub latency: Histogram,
}

/// Events off the query path.
#[derive(Clone, Debug, Default)]
pub struct Events {
    /// Reloads that published a snapshot.
    pub reloads_ok: u64,
    /// Reloads that failed (the old snapshot kept serving).
    pub reloads_failed: u64,
    /// Reloads held by the reload guard until confirmed (the old snapshot kept serving).
    pub reloads_held: u64,
    /// How long reloads took.
    pub reload_duration: Histogram,
    /// Unix time of the last successful load (the first one included).
    pub last_success: f64,
    /// Health checks by node.
    pub probes: BTreeMap<String, ProbeStats>,
    /// Changes of effective state by (node, new state).
    pub transitions: BTreeMap<(String, &'static str), u64>,
    /// Query-log records written.
    pub querylog_written: u64,
    /// Query-log records the file did not take (a full disk, an I/O error).
    pub querylog_failed: u64,
}

/// Every counter of the server.
pub struct Counters {
    queries: Tally,
    rows: usize,
    next_row: Mutex<usize>,
    retired: Mutex<(Vec<Retired>, BTreeMap<AnswerKey, u64>)>,
    events: Mutex<Events>,
    carried: Mutex<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("rows", &self.rows)
            .finish()
    }
}

impl Counters {
    /// Counters for `udp_workers` exclusive rows and one row shared by everyone else (TCP).
    pub fn new(udp_workers: usize) -> Counters {
        let rows = udp_workers + 1;
        Counters {
            queries: Tally::new(rows, query::RAW_CELLS),
            rows,
            next_row: Mutex::new(0),
            retired: Mutex::new((Vec::new(), BTreeMap::new())),
            events: Mutex::new(Events {
                last_success: unix_now(),
                ..Events::default()
            }),
            carried: Mutex::new(BTreeMap::new()),
        }
    }

    /// Rows every tally needs.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// A row for a new UDP worker (exclusive while rows last, then the shared one).
    pub fn udp_slot(&self) -> Slot {
        let mut next = self.next_row.lock().unwrap_or_else(|e| e.into_inner());
        let row = *next;
        *next += 1;
        if row + 1 < self.rows {
            Slot {
                row,
                exclusive: true,
            }
        } else {
            self.shared_slot()
        }
    }

    /// The row shared by TCP tasks (and UDP workers beyond the rows reserved).
    pub fn shared_slot(&self) -> Slot {
        Slot {
            row: self.rows - 1,
            exclusive: false,
        }
    }

    /// The query tally.
    pub fn query_tally(&self) -> &Tally {
        &self.queries
    }

    /// The query cells summed over the workers, laid out by [`query::grid`] and
    /// [`query::extra`].
    pub fn queries(&self) -> Vec<u64> {
        query::fold(&self.queries.sums())
    }

    /// Keeps the tally of a snapshot that stops serving, so that its counts are not lost.
    pub fn retire(&self, old: &Snapshot) {
        if old.tally.rows() == 0 {
            return;
        }
        let names = cell_names(old);
        self.lock_retired().0.push(Retired {
            tally: old.tally.clone(),
            names,
        });
    }

    /// Answer counters by name: the snapshot serving now, the retired ones, and what has
    /// been folded.
    pub fn answers(&self, current: &Snapshot) -> BTreeMap<AnswerKey, u64> {
        let mut guard = self.lock_retired();
        let (retired, folded) = &mut *guard;
        // A retired tally that no snapshot refers to any more has no writer: fold it.
        let mut i = 0;
        while i < retired.len() {
            if Arc::strong_count(&retired[i].tally) == 1 {
                retired.swap_remove(i).add_to(folded);
            } else {
                i += 1;
            }
        }
        let mut totals = folded.clone();
        for r in retired.iter() {
            r.add_to(&mut totals);
        }
        drop(guard);
        Retired {
            tally: current.tally.clone(),
            names: cell_names(current),
        }
        .add_to(&mut totals);
        totals
    }

    /// The events, for reading or recording.
    pub fn events(&self) -> MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a reload: `ok`, `failed` or `held`.
    pub fn reload(&self, result: &str, took: Duration) {
        let mut e = self.events();
        match result {
            "ok" => {
                e.reloads_ok += 1;
                e.last_success = unix_now();
            }
            "held" => e.reloads_held += 1,
            _ => e.reloads_failed += 1,
        }
        e.reload_duration.observe(took);
    }

    /// Records a health check of `node`.
    pub fn probe(&self, node: &str, ok: bool, took: Duration) {
        let mut e = self.events();
        let p = e.probes.entry(node.to_string()).or_default();
        if ok {
            p.ok += 1;
        } else {
            p.failed += 1;
        }
        p.latency.observe(took);
    }

    /// Records that `node`'s effective state became `to`.
    pub fn transition(&self, node: &str, to: &'static str) {
        *self
            .events()
            .transitions
            .entry((node.to_string(), to))
            .or_default() += 1;
    }

    /// Counts carried over from a process this one replaced, by series name (added to what
    /// readers see).
    pub fn carried(&self) -> BTreeMap<String, u64> {
        self.carried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds counts carried over from a replaced process.
    pub fn carry(&self, counts: BTreeMap<String, u64>) {
        let mut c = self.carried.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in counts {
            *c.entry(k).or_default() += v;
        }
    }

    /// The totals `ctl stats` shows, by name.
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        let q = self.queries();
        let grid_sum = |t: usize, rc: Option<usize>| -> u64 {
            (0..query::QTYPES.len())
                .flat_map(|qt| {
                    (0..query::RCODES.len())
                        .filter(move |&r| rc.is_none_or(|x| x == r))
                        .map(move |r| query::grid(t, qt, r))
                })
                .map(|c| q[c])
                .sum()
        };
        let both = |f: &dyn Fn(usize) -> u64| f(0) + f(1);
        let rc = |code: u16| both(&|t| grid_sum(t, Some(query::rcode_index(code))));
        let dropped = |t: usize| q[query::extra(t, Cell::Dropped)];
        let mut out = vec![
            ("udp_queries", grid_sum(0, None) + dropped(0)),
            ("tcp_queries", grid_sum(1, None) + dropped(1)),
            ("formerr", rc(rcode::FORMERR)),
            ("refused", rc(rcode::REFUSED)),
            ("nxdomain", rc(rcode::NXDOMAIN)),
            ("servfail", rc(rcode::SERVFAIL)),
        ];
        for cell in Cell::ALL {
            if let Some(name) = cell.reading().stats {
                out.push((name, both(&|t| q[query::extra(t, cell)])));
            }
        }
        out.push(("querylog_failed", self.events().querylog_failed));
        // What a replaced process counted is carried under the same names.
        let carried = self.carried();
        for (name, v) in &mut out {
            *v += carried.get(*name).copied().unwrap_or(0);
        }
        out
    }

    fn lock_retired(&self) -> MutexGuard<'_, (Vec<Retired>, BTreeMap<AnswerKey, u64>)> {
        self.retired.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
#[path = "counters_tests.rs"]
mod tests;
