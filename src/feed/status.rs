//! Session status as reported to operators: state, timings, counters and the last error.

use std::time::Instant;

pub use crate::live::{SessionState, SessionStatus};

/// The mutable part of a peer's status, updated by its task.
#[derive(Debug)]
pub(crate) struct StatusCell {
    /// Current state.
    pub state: SessionState,
    /// When the session came up, while Established.
    pub up_since: Option<Instant>,
    /// When the session last went down.
    pub down_since: Option<Instant>,
    /// When the last UPDATE arrived.
    pub last_update: Option<Instant>,
    /// The last error text.
    pub last_error: Option<String>,
}

impl StatusCell {
    /// The status of a peer that has not connected yet.
    pub fn new(state: SessionState) -> StatusCell {
        StatusCell {
            state,
            up_since: None,
            down_since: None,
            last_update: None,
            last_error: None,
        }
    }
}
