//! The decision to announce or withdraw, as a pure state machine: observations and operator
//! actions go in with the time, the announced flag and the reason come out. No clock, no I/O:
//! the caller passes `now`, so every path is tested with made-up times.
//!
//! The rules, in order (the first that holds gives the reason to withdraw):
//! 1. stopping ([`Reason::Stopping`]), for good;
//! 2. the operator's withdrawal ([`Reason::Operator`]);
//! 3. nothing observed since start ([`Reason::Starting`]);
//! 4. the last reload failed and the policy withdraws on that ([`Reason::LoadFailed`]);
//! 5. the data served is older than the limit ([`Reason::DataTooOld`]);
//! 6. `check_failures` self-checks failed in a row ([`Reason::SelfCheck`]);
//! 7. never announced yet, and the last self-check failed: the first announcement waits for
//!    a check that succeeded ([`Reason::Starting`]).
//!
//! With none of them, the prefixes are announced, the first time at once, afterwards only once
//! the server has been healthy (none of the rules holding) for the hold-down without a break
//! ([`Reason::HoldDown`] until then): a replica that fails every other second never comes back.

use std::time::{Duration, Instant};

/// Why the prefixes are not announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No health observed since start (no self-check has run yet).
    Starting,
    /// The self-check (a real query to each listener) failed.
    SelfCheck,
    /// The last reload failed and `on_load_failure: withdraw`.
    LoadFailed,
    /// The data served was loaded longer ago than `max_data_age_s`.
    DataTooOld,
    /// `ctl anycast withdraw`.
    Operator,
    /// The server is stopping (draining).
    Stopping,
    /// Healthy again, waiting for the hold-down to pass.
    HoldDown,
}

impl Reason {
    /// Every reason, for metrics that list them all.
    pub const ALL: [Reason; 7] = [
        Reason::Starting,
        Reason::SelfCheck,
        Reason::LoadFailed,
        Reason::DataTooOld,
        Reason::Operator,
        Reason::Stopping,
        Reason::HoldDown,
    ];

    /// The name used in `ctl`, logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Starting => "starting",
            Reason::SelfCheck => "self_check",
            Reason::LoadFailed => "load_failed",
            Reason::DataTooOld => "data_too_old",
            Reason::Operator => "operator",
            Reason::Stopping => "stopping",
            Reason::HoldDown => "hold_down",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One observation of the server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Every listener answered the self-check correctly.
    pub self_check_ok: bool,
    /// The last reload failed and the policy withdraws on that.
    pub load_failed: bool,
    /// The data served is older than the limit.
    pub data_too_old: bool,
}

impl Health {
    /// All is well.
    pub const GOOD: Health = Health {
        self_check_ok: true,
        load_failed: false,
        data_too_old: false,
    };
}

/// The thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Continuous health needed before announcing again.
    pub hold_down: Duration,
    /// Self-checks failed in a row before withdrawing (at least 1).
    pub check_failures: u32,
}

/// What changed with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Announced after the step.
    pub announced: bool,
    /// Why not, when not.
    pub reason: Option<Reason>,
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    policy: Policy,
    announced: bool,
    ever_announced: bool,
    reason: Option<Reason>,
    last: Option<Health>,
    failed_checks: u32,
    healthy_since: Option<Instant>,
    operator_withdrawn: bool,
    stopping: bool,
}

impl Machine {
    /// A machine at start: withdrawn ([`Reason::Starting`], or [`Reason::Operator`] when the
    /// operator's withdrawal was kept from before).
    pub fn new(policy: Policy, operator_withdrawn: bool) -> Machine {
        Machine {
            policy,
            announced: false,
            ever_announced: false,
            reason: Some(match operator_withdrawn {
                true => Reason::Operator,
                false => Reason::Starting,
            }),
            last: None,
            failed_checks: 0,
            healthy_since: None,
            operator_withdrawn,
            stopping: false,
        }
    }

    /// Whether the prefixes are announced.
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// Why they are not.
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// Whether the operator withdrew them.
    pub fn operator_withdrawn(&self) -> bool {
        self.operator_withdrawn
    }

    /// Time left in the hold-down, while waiting for it.
    pub fn hold_down_left(&self, now: Instant) -> Option<Duration> {
        match (self.reason, self.healthy_since) {
            (Some(Reason::HoldDown), Some(since)) => {
                Some(self.policy.hold_down.saturating_sub(now - since))
            }
            _ => None,
        }
    }

    /// Takes one observation (a self-check round with the data's state).
    pub fn observe(&mut self, now: Instant, health: Health) -> Option<Change> {
        self.failed_checks = match health.self_check_ok {
            true => 0,
            false => self.failed_checks.saturating_add(1),
        };
        self.last = Some(health);
        self.step(now)
    }

    /// The operator withdraws (`true`) or gives the decision back (`false`).
    pub fn set_operator(&mut self, now: Instant, withdrawn: bool) -> Option<Change> {
        self.operator_withdrawn = withdrawn;
        self.step(now)
    }

    /// The prefixes were announced by the process this one replaces, and this one serves:
    /// taken as a first passing self-check.
    pub fn carry_announced(&mut self, now: Instant) -> Option<Change> {
        if self.last.is_none() {
            self.last = Some(Health::GOOD);
        }
        self.step(now)
    }

    /// The server stops: withdrawn for good.
    pub fn stop(&mut self, now: Instant) -> Option<Change> {
        self.stopping = true;
        self.step(now)
    }

    /// Re-evaluates the rules; returns the change, if the flag or the reason changed.
    pub fn step(&mut self, now: Instant) -> Option<Change> {
        let before = (self.announced, self.reason);
        match self.failing() {
            Some(reason) => {
                self.healthy_since = None;
                self.announced = false;
                self.reason = Some(reason);
            }
            None => {
                let since = *self.healthy_since.get_or_insert(now);
                if self.announced || !self.ever_announced || now - since >= self.policy.hold_down {
                    self.announced = true;
                    self.ever_announced = true;
                    self.reason = None;
                } else {
                    self.announced = false;
                    self.reason = Some(Reason::HoldDown);
                }
            }
        }
        ((self.announced, self.reason) != before).then_some(Change {
            announced: self.announced,
            reason: self.reason,
        })
    }

    /// The first rule that withdraws, if any.
    fn failing(&self) -> Option<Reason> {
        if self.stopping {
            return Some(Reason::Stopping);
        }
        if self.operator_withdrawn {
            return Some(Reason::Operator);
        }
        let Some(h) = self.last else {
            return Some(Reason::Starting);
        };
        if h.load_failed {
            return Some(Reason::LoadFailed);
        }
        if h.data_too_old {
            return Some(Reason::DataTooOld);
        }
        if self.failed_checks >= self.policy.check_failures.max(1) {
            return Some(Reason::SelfCheck);
        }
        if !self.ever_announced && self.failed_checks > 0 {
            // The first announcement waits for a check that succeeded.
            return Some(Reason::Starting);
        }
        None
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
