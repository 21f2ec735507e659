//! Rate limits for the log lines that another party can cause: a refused BGP connection, a
//! malformed UPDATE, a session that comes up and goes down again, a socket error repeated for
//! every packet.
//!
//! Each kind of line (its message text) has its own budget in each [`LogLimits`]: at most
//! [`LINES`] lines per [`WINDOW`]; the lines over it are counted instead of written. The first
//! line written after some were held back carries the count as a `suppressed` field, as the
//! kernel's `printk_ratelimit` does: so every line that was caused is either in the log or
//! counted on a later line of the same kind. In the BGP feeds each peer has its own limits (a noisy
//! peer does not hide another's lines) and the listener has one for everything that does not
//! come from a peer; each DNS UDP worker has its own.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one kind written per window.
pub(crate) const LINES: u32 = 10;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The budget of one kind of line.
#[derive(Debug)]
struct Budget {
    /// The message text.
    kind: &'static str,
    /// When the current window started.
    since: Instant,
    /// Lines written in it.
    written: u32,
    /// Lines held back since the last one written.
    suppressed: u64,
}

/// The budgets of every kind of line of one source (a peer, the listener).
#[derive(Debug, Default)]
pub(crate) struct LogLimits {
    /// One per kind seen so far; a handful, so a list.
    budgets: Mutex<Vec<Budget>>,
}

impl LogLimits {
    /// No line written yet.
    pub fn new() -> LogLimits {
        LogLimits::default()
    }

    /// Whether a line of `kind` may be written now: `Some(n)` with the lines of that kind held
    /// back since the last one written, or `None` when this one is held back (and counted).
    pub fn allow(&self, kind: &'static str) -> Option<u64> {
        self.allow_at(kind, Instant::now())
    }

    /// [`LogLimits::allow`] at `now`.
    pub(crate) fn allow_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let i = match budgets.iter().position(|b| b.kind == kind) {
            Some(i) => i,
            None => {
                budgets.push(Budget {
                    kind,
                    since: now,
                    written: 0,
                    suppressed: 0,
                });
                budgets.len() - 1
            }
        };
        let b = &mut budgets[i];
        if now.saturating_duration_since(b.since) >= WINDOW {
            b.since = now;
            b.written = 0;
        }
        if b.written < LINES {
            b.written += 1;
            Some(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            None
        }
    }
}

/// Writes a log line through a [`LogLimits`]:
/// `limited!(limits, warn, "message", field = value, ...)`. The message is the kind; a line
/// written after held-back ones gets `suppressed = N` first among its fields.
macro_rules! limited {
    ($limits:expr, $level:ident, $message:literal $(, $($field:tt)+)?) => {
        if let Some(suppressed) = $limits.allow($message) {
            if suppressed == 0 {
                tracing::$level!($($($field)+ ,)? $message)
            } else {
                tracing::$level!(suppressed, $($($field)+ ,)? $message)
            }
        }
    };
}

pub(crate) use limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_budget_are_counted_on_the_next_one_written() {
        let limits = LogLimits::new();
        let t0 = Instant::now();
        for _ in 0..LINES {
            assert_eq!(limits.allow_at("refused", t0), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(limits.allow_at("refused", t0), None);
        }
        // Another kind has its own budget.
        assert_eq!(limits.allow_at("malformed", t0), Some(0));
        // Still the same window.
        assert_eq!(limits.allow_at("refused", t0 + WINDOW / 2), None);
        // The next window: the first line carries the count, then the count starts again.
        assert_eq!(limits.allow_at("refused", t0 + WINDOW), Some(1001));
        assert_eq!(limits.allow_at("refused", t0 + WINDOW), Some(0));
    }
}
