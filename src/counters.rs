//! Query counters, shared by the DNS workers (which increment them with relaxed atomics) and
//! the control socket (which reads them for `stats`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the front end, incremented on the query path (relaxed atomics only).
#[derive(Debug, Default)]
pub struct Stats {
    /// UDP queries received.
    pub udp_queries: AtomicU64,
    /// TCP queries received.
    pub tcp_queries: AtomicU64,
    /// Packets dropped without an answer.
    pub dropped: AtomicU64,
    /// Responses sent truncated.
    pub truncated: AtomicU64,
    /// Responses with FORMERR.
    pub formerr: AtomicU64,
    /// Responses with REFUSED.
    pub refused: AtomicU64,
    /// Responses with NXDOMAIN.
    pub nxdomain: AtomicU64,
    /// Responses with SERVFAIL.
    pub servfail: AtomicU64,
    /// TCP connections refused by the connection caps.
    pub tcp_refused: AtomicU64,
    /// UDP responses dropped by rate limiting.
    pub rrl_dropped: AtomicU64,
    /// UDP responses sent truncated by rate limiting (slip).
    pub rrl_slipped: AtomicU64,
}

impl Stats {
    /// Counts a packet dropped without an answer.
    #[inline]
    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a response with `code`.
    #[inline]
    pub fn count_answer(&self, code: u16, truncated: bool) {
        use crate::wire::rcode;
        if truncated {
            self.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let c = match code {
            rcode::FORMERR => &self.formerr,
            rcode::REFUSED => &self.refused,
            rcode::NXDOMAIN => &self.nxdomain,
            rcode::SERVFAIL => &self.servfail,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Name → value, for `stats`.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("udp_queries", l(&self.udp_queries)),
            ("tcp_queries", l(&self.tcp_queries)),
            ("dropped", l(&self.dropped)),
            ("truncated", l(&self.truncated)),
            ("formerr", l(&self.formerr)),
            ("refused", l(&self.refused)),
            ("nxdomain", l(&self.nxdomain)),
            ("servfail", l(&self.servfail)),
            ("tcp_refused", l(&self.tcp_refused)),
            ("rrl_dropped", l(&self.rrl_dropped)),
            ("rrl_slipped", l(&self.rrl_slipped)),
        ]
    }
}
