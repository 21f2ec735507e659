//! The DNS front end: wire format, the answer path, and the UDP and TCP transports.
//!
//! Transports read the current snapshot once per batch (UDP) or per query (TCP) and call [`answer::respond`]; nothing
//! in here touches files or the maps' formats.

pub mod answer;
mod chaos;
mod client;
pub mod conns;
pub mod cookie;
mod edns;
pub mod listen;
mod outcome;
mod prepared;
mod rejected;
pub mod rrl;
mod signed;
pub mod tcp;
pub mod udp;
mod why;

use crate::counters::{Slot, query};
use crate::snapshot::{Snapshot, cells};
use crate::tally::{Row, Tally};

/// A worker's counters: its row of the query tally and its slot in every snapshot's tally.
#[derive(Clone, Copy, Debug)]
pub struct Meter<'a> {
    /// The worker's row of the query tally.
    pub queries: Option<Row<'a>>,
    /// The worker's slot.
    pub slot: Slot,
    /// 0 for UDP, 1 for TCP (the transport's cells in the query tally).
    pub transport: usize,
}

impl<'a> Meter<'a> {
    /// The meter of a worker with `slot` on `transport`.
    pub fn new(tally: &'a Tally, slot: Slot, transport: answer::Transport) -> Meter<'a> {
        Meter {
            queries: slot.of(tally),
            slot,
            transport: match transport {
                answer::Transport::Udp => 0,
                answer::Transport::Tcp => 1,
            },
        }
    }

    /// Adds one to the query cell `extra` ([`query`]'s single cells).
    #[inline]
    pub fn bump(&self, extra: query::Cell) {
        if let Some(r) = &self.queries {
            r.bump(query::raw_extra(self.transport, extra));
        }
    }

    /// This worker's row of `snap`'s answer cells: looked up once for a batch of queries
    /// answered from the same snapshot, then given to [`Meter::count_in`].
    #[inline]
    pub fn answers<'s>(&self, snap: &'s Snapshot) -> Option<Row<'s>> {
        self.slot.of(&snap.tally)
    }

    /// Counts one outcome: the query cells, and for a service answer the snapshot's cells.
    #[inline]
    pub fn count(&self, snap: &Snapshot, outcome: &answer::Outcome) {
        self.count_in(self.answers(snap), snap, outcome);
    }

    /// [`Meter::count`] with this worker's row of `snap`'s cells already looked up: one cell
    /// for the query (type, rcode, ECS or not), and for a service answer one for its
    /// combination and one per node; the rarer outcomes add to cells of their own.
    #[inline(always)]
    pub fn count_in(&self, answers: Option<Row<'_>>, snap: &Snapshot, outcome: &answer::Outcome) {
        let Some(q) = &self.queries else {
            return;
        };
        let t = self.transport;
        match outcome {
            answer::Outcome::Dropped => q.bump(query::raw_extra(t, query::Cell::Dropped)),
            answer::Outcome::Answered {
                rcode,
                truncated,
                qtype,
                ecs,
                service,
                cookie,
                ..
            } => {
                q.bump(query::answered(
                    t,
                    query::qtype_index(*qtype),
                    query::rcode_index(*rcode),
                    *ecs,
                ));
                if *truncated {
                    q.bump(query::raw_extra(t, query::Cell::Truncated));
                }
                if let (Some(a), Some(row)) = (service, answers) {
                    count_service(snap, row, *rcode, a);
                }
                if *cookie != 0 {
                    count_cookie(q, t, *cookie);
                }
            }
        }
    }
}

/// Counts what a query's COOKIE option said, and a truncation by the no-cookie limit.
#[cold]
fn count_cookie(q: &Row<'_>, t: usize, bits: u8) {
    use cookie::status;
    for (bit, cell) in [
        (status::GOOD, query::Cell::CookieGood),
        (status::BAD, query::Cell::CookieBad),
        (status::CLIENT_ONLY, query::Cell::CookieMissing),
        (status::NOCOOKIE_TRUNCATED, query::Cell::NocookieTruncated),
    ] {
        if bits & bit != 0 {
            q.bump(query::raw_extra(t, cell));
        }
    }
}

/// Counts a service answer in the snapshot's cells (`row`: the worker's).
#[inline]
fn count_service(snap: &Snapshot, row: Row<'_>, rcode: u16, a: &answer::ServiceAnswer) {
    let (Some(&base), Some(svc)) = (snap.cell_base.get(a.service), snap.services.get(a.service))
    else {
        return;
    };
    let kind = a.rule.and_then(|r| svc.rules.get(r)).map(|r| r.kind);
    row.bump(base + snap.answer_cell(svc, a.region, a.ecs_used, kind));
    for &n in a.nodes() {
        row.bump(base + snap.node_cell(n));
    }
    if rcode == crate::wire::rcode::SERVFAIL
        || a.count == 0
        || a.fallback
        || a.degraded
        || a.all_down
    {
        if rcode == crate::wire::rcode::SERVFAIL {
            row.bump(base + cells::SERVFAIL);
        }
        if a.count == 0 {
            row.bump(base + cells::NODATA);
        }
        if a.fallback {
            row.bump(base + cells::FALLBACK);
        }
        if a.degraded {
            row.bump(base + cells::DEGRADED);
        }
        if a.all_down {
            row.bump(base + cells::ALL_DOWN);
        }
    }
}

/// The query-log record of one answered (or dropped) query.
pub fn record(
    snap: &std::sync::Arc<Snapshot>,
    prepared: &answer::Prepared<'_, '_>,
    outcome: &answer::Outcome,
    client: std::net::IpAddr,
    transport: &'static str,
) -> crate::querylog::Record {
    let mut qname = [0u8; crate::wire::MAX_NAME];
    let (mut qname_len, mut ecs) = (0, None);
    let question = match prepared {
        answer::Prepared::Query { q, .. } => {
            ecs = q.edns.and_then(|e| e.ecs);
            Some(q.question)
        }
        answer::Prepared::Error { echo, .. } => {
            ecs = echo.and_then(|e| e.edns).and_then(|e| e.ecs);
            echo.map(|e| e.question)
        }
        answer::Prepared::Drop => None,
    };
    if let Some(name) = question.and_then(|q| q.get(..q.len().checked_sub(4)?)) {
        let n = name.len().min(qname.len());
        qname[..n].copy_from_slice(&name[..n]);
        qname_len = n;
    }
    let (rcode, truncated, qtype, answer) = match *outcome {
        answer::Outcome::Answered {
            rcode,
            truncated,
            qtype,
            service,
            ..
        } => (Some(rcode), truncated, qtype, service),
        answer::Outcome::Dropped => (None, false, 0, None),
    };
    crate::querylog::Record {
        time: std::time::SystemTime::now(),
        transport,
        client,
        ecs: ecs.map(|s| (s.addr, s.source_prefix)),
        qname,
        qname_len,
        qtype,
        rcode,
        truncated,
        answer,
        snapshot: snap.clone(),
    }
}
