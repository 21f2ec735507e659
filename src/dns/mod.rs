//! The DNS front end: wire format, the answer path, and the UDP and TCP transports.
//!
//! Transports read the current snapshot once per query and call [`answer::respond`]; nothing
//! in here touches files or the maps' formats.

pub mod answer;
pub mod conns;
pub mod rrl;
pub mod tcp;
pub mod udp;

use crate::counters::Stats;

/// Counts one outcome.
#[inline]
pub fn count(stats: &Stats, outcome: &answer::Outcome) {
    match *outcome {
        answer::Outcome::Dropped => stats.count_dropped(),
        answer::Outcome::Answered {
            rcode, truncated, ..
        } => stats.count_answer(rcode, truncated),
    }
}
