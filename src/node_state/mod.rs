//! Node state, in one home: admin overrides (kept across restarts in the state file), states
//! pushed by monitors (with a TTL), health-check results (with rise and fall), and the
//! precedence that turns them into the effective state the answer path reads.
//!
//! Effective state = admin override > pushed state (until its TTL) > health-check result >
//! the configured initial state (a checked node before its first result) > up. Every writer
//! (the control socket, the prober, the reload thread publishing a snapshot) changes
//! [`NodeStates`] and then writes the effective states into the snapshot's health table with
//! [`NodeStates::apply`]; readers of the table never lock.

mod file;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use file::StateFileError;

use crate::health::State;
use crate::snapshot::Snapshot;

/// An admin override.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Override {
    /// Node name.
    pub node: String,
    /// Forced state.
    pub state: State,
    /// Why (free text).
    #[serde(default)]
    pub reason: String,
    /// Unix time after which it lapses.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// A state pushed by an external monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct Pushed {
    /// State.
    pub state: State,
    /// Unix time after which it lapses.
    pub expires_at: u64,
    /// Who pushed it.
    pub source: String,
}

/// The health checks' view of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// Up according to the checks.
    pub up: bool,
    /// Consecutive successes.
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// The last error, if the last check failed.
    pub last_error: Option<String>,
    /// Unix time of the last check.
    pub at: u64,
}

/// Overrides, pushes and check results, by node name.
#[derive(Debug, Default)]
pub struct NodeStates {
    /// Admin overrides.
    pub admin: BTreeMap<String, Override>,
    /// Pushed states.
    pub pushed: BTreeMap<String, Pushed>,
    /// Where admin overrides are kept.
    pub state_file: Option<PathBuf>,
    /// Health-check results.
    pub checks: BTreeMap<String, CheckResult>,
    /// Nodes that have a health check.
    pub checked: HashSet<String>,
    /// State of a checked node before its first result.
    pub initial: Option<State>,
    /// Overridden nodes the serving maps do not have, already reported (each is warned about
    /// once, when it stops matching a node).
    dormant: BTreeSet<String>,
}

/// Why `clear` removed nothing, or could not.
#[derive(Debug)]
pub enum ClearError {
    /// The node has no admin override.
    NoOverride,
    /// The state file could not be written; the override stays.
    StateFile(StateFileError),
}

/// The current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Which layer of the precedence decides a node's state.
enum Decider<'a> {
    Admin(State, &'a Override),
    Pushed(&'a Pushed),
    Check(&'a CheckResult),
    Initial(State),
    Unchecked,
}

impl NodeStates {
    /// Loads admin overrides from `state_file` (a missing file is an empty one).
    pub fn load(state_file: Option<PathBuf>) -> Result<NodeStates, StateFileError> {
        let admin = match &state_file {
            Some(path) => file::read(path)?,
            None => BTreeMap::new(),
        };
        Ok(NodeStates {
            admin,
            state_file,
            ..Default::default()
        })
    }

    /// [`NodeStates::load`] for the server: also checks that the state file can be written
    /// where it is, so that a missing directory is reported at start rather than at the first
    /// `set`.
    pub fn open(state_file: Option<PathBuf>) -> Result<NodeStates, StateFileError> {
        if let Some(path) = &state_file {
            file::check_writable(path)?;
        }
        NodeStates::load(state_file)
    }

    /// Writes the admin overrides atomically (temporary file, fsync, rename).
    pub fn save(&self) -> Result<(), StateFileError> {
        self.write(&self.admin)
    }

    fn write(&self, admin: &BTreeMap<String, Override>) -> Result<(), StateFileError> {
        match &self.state_file {
            Some(path) => file::write(path, admin),
            None => Ok(()),
        }
    }

    /// Sets an admin override, all or nothing: the state file is written first, and only when
    /// that succeeds does the override take effect.
    pub fn set_override(&mut self, o: Override) -> Result<(), StateFileError> {
        let mut next = self.admin.clone();
        next.insert(o.node.clone(), o);
        self.write(&next)?;
        self.admin = next;
        Ok(())
    }

    /// Removes `node`'s admin override, all or nothing like [`NodeStates::set_override`].
    pub fn clear_override(&mut self, node: &str) -> Result<(), ClearError> {
        if !self.admin.contains_key(node) {
            return Err(ClearError::NoOverride);
        }
        let mut next = self.admin.clone();
        next.remove(node);
        self.write(&next).map_err(ClearError::StateFile)?;
        self.admin = next;
        Ok(())
    }

    /// Drops lapsed entries; returns true when anything lapsed.
    pub fn expire(&mut self) -> bool {
        let t = now();
        let before = (self.pushed.len(), self.admin.len());
        self.pushed.retain(|_, p| p.expires_at > t);
        self.admin.retain(|_, o| o.expires_at.is_none_or(|e| e > t));
        before != (self.pushed.len(), self.admin.len())
    }

    /// Drops lapsed entries, saving the state file when an admin override lapsed; returns true
    /// when anything lapsed.
    pub fn expire_and_save(&mut self) -> bool {
        let admins = self.admin.len();
        let lapsed = self.expire();
        if self.admin.len() != admins
            && let Err(e) = self.save()
        {
            tracing::error!("{e}");
        }
        lapsed
    }

    /// Follows a new snapshot's nodes: which have a health check, and forgets the check results
    /// of nodes that no longer have one.
    pub fn track(&mut self, snap: &Snapshot) {
        self.checked = snap
            .nodes
            .iter()
            .filter(|n| n.check.is_some())
            .map(|n| n.name.clone())
            .collect();
        let checked = &self.checked;
        self.checks.retain(|n, _| checked.contains(n));
        // Overrides of nodes the maps no longer (or never did) have stay in the state file,
        // in case the node comes back, but say so once.
        let known: HashSet<&str> = snap.nodes.iter().map(|n| n.name.as_str()).collect();
        let dormant: BTreeSet<String> = self
            .admin
            .keys()
            .filter(|n| !known.contains(n.as_str()))
            .cloned()
            .collect();
        for n in dormant.difference(&self.dormant) {
            tracing::warn!(
                node = %n.escape_debug(),
                "admin override for a node the maps do not have: kept in the state file, applies to nothing"
            );
        }
        self.dormant = dormant;
    }

    /// The layer that decides `node`'s state: the precedence rules, in one place.
    fn deciding(&self, node: &str) -> Decider<'_> {
        if let Some(o) = self.admin.get(node) {
            return Decider::Admin(o.state, o);
        }
        if let Some(p) = self.pushed.get(node) {
            return Decider::Pushed(p);
        }
        if let Some(p) = self.checks.get(node) {
            return Decider::Check(p);
        }
        if self.checked.contains(node) {
            return Decider::Initial(self.initial.unwrap_or(State::Up));
        }
        Decider::Unchecked
    }

    /// The effective state of `node`.
    pub fn state(&self, node: &str) -> State {
        match self.deciding(node) {
            Decider::Admin(s, _) | Decider::Initial(s) => s,
            Decider::Pushed(p) => p.state,
            Decider::Check(p) => {
                if p.up {
                    State::Up
                } else {
                    State::Down
                }
            }
            Decider::Unchecked => State::Up,
        }
    }

    /// The effective state of `node` and why, for people.
    pub fn effective(&self, node: &str) -> (State, String) {
        let why = match self.deciding(node) {
            Decider::Admin(_, o) => format!("admin override: {}", o.reason),
            Decider::Pushed(p) => format!(
                "pushed by {} (expires in {} s)",
                p.source,
                p.expires_at.saturating_sub(now())
            ),
            Decider::Check(p) => match (&p.last_error, p.up) {
                (None, true) => "health check passing".into(),
                (None, false) => format!("health check recovering ({} of rise)", p.successes),
                (Some(e), true) => format!("health check failing ({} of fall): {e}", p.failures),
                (Some(e), false) => format!("health check failed: {e}"),
            },
            Decider::Initial(s) => format!("initial state ({}) before the first check", s.as_str()),
            Decider::Unchecked => "no health check".into(),
        };
        (self.state(node), why)
    }

    /// Writes every node's effective state into the snapshot's health table.
    pub fn apply(&self, snap: &Snapshot) {
        for s in &snap.services {
            s.forget_health();
        }
        for (i, name) in snap.health.names().iter().enumerate() {
            snap.health.set(i, self.state(name));
        }
        for s in &snap.services {
            s.note_health(&snap.health);
        }
    }

    /// Records one health-check result with rise and fall (the first result decides at once);
    /// returns true when the node's check state changed.
    pub fn record_check(
        &mut self,
        node: &str,
        rise: u32,
        fall: u32,
        result: Result<(), String>,
    ) -> bool {
        let at = now();
        let ok = result.is_ok();
        let p = self
            .checks
            .entry(node.to_string())
            .or_insert_with(|| CheckResult {
                up: ok,
                successes: 0,
                failures: 0,
                last_error: None,
                at,
            });
        let was = p.up;
        if ok {
            p.successes += 1;
            p.failures = 0;
            if p.successes >= rise {
                p.up = true;
            }
        } else {
            p.failures += 1;
            p.successes = 0;
            if p.failures >= fall {
                p.up = false;
            }
        }
        p.last_error = result.err();
        p.at = at;
        if was != p.up {
            tracing::warn!(node, up = p.up, error = ?p.last_error, "health check changed state");
        }
        was != p.up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_expiry() {
        let mut s = NodeStates::default();
        assert_eq!(s.effective("a").0, State::Up);
        s.pushed.insert(
            "a".into(),
            Pushed {
                state: State::Down,
                expires_at: now() + 60,
                source: "m".into(),
            },
        );
        assert_eq!(s.effective("a").0, State::Down);
        s.admin.insert(
            "a".into(),
            Override {
                node: "a".into(),
                state: State::Drain,
                reason: "r".into(),
                expires_at: None,
            },
        );
        assert_eq!(s.effective("a").0, State::Drain);
        s.admin.get_mut("a").unwrap().expires_at = Some(now() - 1);
        s.pushed.get_mut("a").unwrap().expires_at = now() - 1;
        assert!(s.expire());
        assert_eq!(s.effective("a").0, State::Up);
    }

    #[test]
    fn state_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("signpost-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut s = NodeStates::load(Some(path.clone())).unwrap();
        s.admin.insert(
            "fra1".into(),
            Override {
                node: "fra1".into(),
                state: State::Down,
                reason: "maintenance".into(),
                expires_at: None,
            },
        );
        s.save().unwrap();
        let back = NodeStates::load(Some(path.clone())).unwrap();
        assert_eq!(back.admin, s.admin);
        assert!(!dir.join(".state.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_override_that_cannot_be_saved_does_not_apply() {
        let dir = std::env::temp_dir().join(format!("signpost-state-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A directory where the state file should be: every write fails (even as root).
        let path = dir.join("state.json");
        std::fs::create_dir(&path).unwrap();
        let mut s = NodeStates::load(None).unwrap();
        s.state_file = Some(path);
        let o = Override {
            node: "fra1".into(),
            state: State::Down,
            reason: String::new(),
            expires_at: None,
        };
        assert!(s.set_override(o.clone()).is_err());
        assert!(s.admin.is_empty());
        s.admin.insert("fra1".into(), o);
        assert!(matches!(
            s.clear_override("fra1"),
            Err(ClearError::StateFile(_))
        ));
        assert!(s.admin.contains_key("fra1"));
        assert!(matches!(
            s.clear_override("ams1"),
            Err(ClearError::NoOverride)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
