//! Anycast: whether this server's service prefixes are announced to the site's routers.
//!
//! Many replicas announce the same prefixes (192.0.2.53/32, 2001:db8::53/128); the routers
//! spread queries over those that announce. A replica announces only while it answers
//! properly, and withdraws, saying why, when it cannot: before its first successful
//! self-check, when its self-checks fail, when its data failed to load or grew too old (by
//! policy), when the operator says so (`ctl anycast withdraw`, kept across restarts), and when
//! it stops. The decision is the pure [`machine`]; [`Announcer`] holds it for the services:
//! the self-check feeds it observations, the control socket the operator's word, the daemon
//! the stop, and the BGP feed follows its announced flag ([`Announcer::subscribe`]). This
//! module does no networking of its own.

mod file;
pub mod machine;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use file::FileError;
use machine::{Change, Machine};
pub use machine::{Health, Policy, Reason};

/// The state of the announcement, for `ctl status`, `ctl anycast` and the metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnycastStatus {
    /// The prefixes are announced.
    pub announced: bool,
    /// Why they are not, when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// `ctl anycast withdraw` is in force.
    pub operator_withdrawn: bool,
    /// Milliseconds left in the hold-down, while waiting for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_down_left_ms: Option<u64>,
    /// Milliseconds since the last change (or since start).
    pub since_ms: u64,
    /// Changes of the announced flag since start.
    pub changes: u64,
    /// The prefixes.
    pub prefixes: Vec<String>,
}

/// The machine and when it last changed.
struct Inner {
    machine: Machine,
    changed_at: Instant,
    changes: u64,
}

/// The announcement decision, shared by the services.
pub struct Announcer {
    inner: Mutex<Inner>,
    announced: watch::Sender<bool>,
    file: Option<PathBuf>,
    prefixes: Vec<String>,
    drain: Duration,
}

impl Announcer {
    /// Starts withdrawn. `file` keeps the operator's withdrawal across restarts: a withdrawal
    /// found there holds from the start. A file that cannot be read is reported and taken as
    /// no withdrawal.
    pub fn new(
        policy: Policy,
        prefixes: Vec<String>,
        file: Option<PathBuf>,
        drain: Duration,
    ) -> Announcer {
        let kept = match &file {
            Some(path) => file::read(path).unwrap_or_else(|e| {
                tracing::warn!("{e}; starting without an operator's withdrawal");
                false
            }),
            None => false,
        };
        if kept {
            tracing::info!("anycast: the operator's withdrawal is kept from before");
        }
        Announcer {
            inner: Mutex::new(Inner {
                machine: Machine::new(policy, kept),
                changed_at: Instant::now(),
                changes: 0,
            }),
            announced: watch::Sender::new(false),
            file,
            prefixes,
            drain,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The announced flag, for the BGP sessions.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.announced.subscribe()
    }

    /// How long a graceful stop keeps answering after the withdrawal.
    pub fn drain(&self) -> Duration {
        self.drain
    }

    /// Takes one observation of the server's health.
    pub fn observe(&self, health: Health) {
        let now = Instant::now();
        let mut inner = self.lock();
        let change = inner.machine.observe(now, health);
        self.apply(&mut inner, now, change);
    }

    /// The operator withdraws (`true`) or gives the decision back (`false`); kept in the
    /// file first, so that what is in force is what a restart finds.
    pub fn set_operator(&self, withdrawn: bool) -> Result<AnycastStatus, FileError> {
        if let Some(path) = &self.file {
            file::write(path, withdrawn)?;
        }
        let now = Instant::now();
        {
            let mut inner = self.lock();
            let change = inner.machine.set_operator(now, withdrawn);
            self.apply(&mut inner, now, change);
        }
        Ok(self.status())
    }

    /// The process this one replaces handed over sessions with the prefixes announced, and
    /// this one serves: announced as after a passing self-check (no hold-down, as for a first
    /// announcement), unless another rule withdraws (the operator's withdrawal kept).
    pub fn carry_announced(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let change = inner.machine.carry_announced(now);
        self.apply(&mut inner, now, change);
    }

    /// The server stops: withdrawn for good.
    pub fn stop(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let change = inner.machine.stop(now);
        self.apply(&mut inner, now, change);
    }

    /// The state now.
    pub fn status(&self) -> AnycastStatus {
        let now = Instant::now();
        let inner = self.lock();
        AnycastStatus {
            announced: inner.machine.announced(),
            reason: inner.machine.reason(),
            operator_withdrawn: inner.machine.operator_withdrawn(),
            hold_down_left_ms: inner
                .machine
                .hold_down_left(now)
                .map(|d| d.as_millis() as u64),
            since_ms: (now - inner.changed_at).as_millis() as u64,
            changes: inner.changes,
            prefixes: self.prefixes.clone(),
        }
    }

    /// Logs a change and passes the flag on.
    fn apply(&self, inner: &mut Inner, now: Instant, change: Option<Change>) {
        let Some(change) = change else { return };
        let flipped = change.announced != *self.announced.borrow();
        if flipped {
            inner.changed_at = now;
            inner.changes += 1;
            self.announced.send_replace(change.announced);
        }
        let prefixes = self.prefixes.join(", ");
        match (change.announced, change.reason) {
            (true, _) => tracing::info!(prefixes = %prefixes, "anycast: announcing"),
            (false, Some(reason)) if flipped => {
                tracing::warn!(prefixes = %prefixes, %reason, "anycast: withdrawing")
            }
            (false, Some(reason)) => {
                tracing::info!(prefixes = %prefixes, %reason, "anycast: still withdrawn")
            }
            (false, None) => {}
        }
    }
}
