//! The layout of the query cells: per transport, a question type × rcode grid, then
//! [`EXTRA`] single cells, one per [`Cell`].

use crate::wire::{rcode, rtype};

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
const COOKIE_QUERIES: Family = Family {
    name: "cookie_queries",
    help: "Queries with a COOKIE option, by what its server cookie was: good, bad (tampered, foreign, expired), or missing (a client cookie alone).",
};
const NOCOOKIE_TRUNCATED_RESPONSES: Family = Family {
    name: "nocookie_truncated_responses",
    help: "UDP answers sent truncated because they were larger than cookies.max_nocookie_response and the query had no good server cookie.",
};
/// Also has samples from events (records written and failed).
pub const QUERYLOG_RECORDS: Family = Family {
    name: "querylog_records",
    help: "Query-log records written, dropped (the writer was behind), and failed (the file did not take them).",
};

/// Declares [`Cell`] and [`Cell::ALL`] from one list of variants, so that a cell cannot be
/// declared without being in `ALL` (the index order that `index`, the tallies and the
/// readers use).
macro_rules! cells {
    ($(#[$cell_doc:meta])* pub enum Cell { $($(#[$doc:meta])* $v:ident,)* }) => {
        $(#[$cell_doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Cell {
            $($(#[$doc])* $v,)*
        }

        impl Cell {
            /// Every cell, in index order.
            pub const ALL: [Cell; [$(stringify!($v)),*].len()] = [$(Cell::$v),*];
        }
    };
}

cells! {
    /// A single counter cell of each transport, besides the question type × rcode grid. Each
    /// is declared once, in [`Cell::reading`]: its `ctl stats` name (which is also the key its
    /// count is carried under to a replacing process) and its metric.
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
        /// Queries with a COOKIE option and a good server cookie.
        CookieGood,
        /// Queries with a COOKIE option whose server cookie is bad (tampered, foreign, expired).
        CookieBad,
        /// Queries with a client cookie and no server cookie.
        CookieMissing,
        /// UDP answers sent truncated by `cookies.max_nocookie_response`.
        NocookieTruncated,
    }
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
            Cell::CookieGood => (
                Some("cookie_good"),
                COOKIE_QUERIES,
                Some(("cookie", "good")),
                Labelled,
            ),
            Cell::CookieBad => (
                Some("cookie_bad"),
                COOKIE_QUERIES,
                Some(("cookie", "bad")),
                Labelled,
            ),
            Cell::CookieMissing => (
                Some("cookie_missing"),
                COOKIE_QUERIES,
                Some(("cookie", "missing")),
                Labelled,
            ),
            Cell::NocookieTruncated => (
                Some("nocookie_truncated"),
                NOCOOKIE_TRUNCATED_RESPONSES,
                None,
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
