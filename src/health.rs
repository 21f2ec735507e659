//! Node health as the answer path sees it: one byte per node, read with a relaxed atomic load.
//!
//! Each build makes a table of its own (one per snapshot, its nodes in the snapshot's order);
//! publishing a snapshot writes every node's state into it before the swap, and later changes
//! are written into the serving snapshot's table. The writers store the *effective* state,
//! decided by the precedence of admin overrides, pushes and health checks in
//! `crate::node_state`; readers never lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};

/// The effective state of a node; in files and messages its lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Serving.
    Up = 0,
    /// Not serving.
    Down = 1,
    /// Serving only when nothing else in the chain is up.
    Drain = 2,
}

impl State {
    /// Parses `up`, `down` or `drain`.
    pub fn parse(s: &str) -> Option<State> {
        match s {
            "up" => Some(State::Up),
            "down" => Some(State::Down),
            "drain" => Some(State::Drain),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Drain => "drain",
        }
    }

    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Up,
            2 => State::Drain,
            _ => State::Down,
        }
    }
}

/// Effective state per node index.
#[derive(Debug)]
pub struct HealthTable {
    names: Vec<String>,
    /// Index by name (control requests, and carrying states across a reload).
    by_name: HashMap<String, usize>,
    states: Box<[AtomicU8]>,
}

impl HealthTable {
    /// A table for `names`, every node starting in `initial`.
    pub fn new(names: Vec<String>, initial: State) -> HealthTable {
        let states = names.iter().map(|_| AtomicU8::new(initial as u8)).collect();
        // Names are unique (compile refuses duplicates); the first wins if not.
        let mut by_name = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            by_name.entry(n.clone()).or_insert(i);
        }
        HealthTable {
            names,
            by_name,
            states,
        }
    }

    /// The state of node `i` (nodes past the end are down).
    #[inline]
    pub fn get(&self, i: usize) -> State {
        self.states
            .get(i)
            .map(|s| State::from_u8(s.load(Ordering::Relaxed)))
            .unwrap_or(State::Down)
    }

    /// Sets the state of node `i`.
    pub fn set(&self, i: usize, state: State) {
        if let Some(s) = self.states.get(i) {
            s.store(state as u8, Ordering::Relaxed);
        }
    }

    /// The index of node `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Node names, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get() {
        let t = HealthTable::new(vec!["a".into(), "b".into()], State::Up);
        t.set(1, State::Drain);
        assert_eq!(t.get(0), State::Up);
        assert_eq!(t.get(1), State::Drain);
        assert_eq!(t.get(7), State::Down);
        assert_eq!(t.index("b"), Some(1));
        assert_eq!(t.index("c"), None);
    }
}
