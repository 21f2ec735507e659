//! The `anycast` section as written: the serde types, with their defaults. `anycast.rs` checks
//! them and builds the runtime [`super::Anycast`].

use serde::Deserialize;

use crate::source::{Choice, Choices};

/// Announcing the service addresses over BGP while this server answers properly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnycastSpec {
    /// The feed peers (`feeds.peers[].name`) the prefixes are announced to; required.
    pub peers: Vec<String>,
    /// The prefixes announced; required, at least one.
    pub prefixes: Vec<AnnouncementSpec>,
    /// Milliseconds of continuous health before announcing again after a withdrawal.
    #[serde(default = "default_hold_down")]
    pub hold_down_ms: u64,
    /// Milliseconds between the withdrawal at a graceful stop and closing the listeners.
    #[serde(default = "default_drain")]
    pub drain_ms: u64,
    /// Milliseconds between self-checks (a real query to each listener).
    #[serde(default = "default_check_interval")]
    pub check_interval_ms: u64,
    /// Milliseconds a self-check waits for its answer.
    #[serde(default = "default_check_timeout")]
    pub check_timeout_ms: u64,
    /// Self-checks failed in a row before withdrawing.
    #[serde(default = "default_check_failures")]
    pub check_failures: u32,
    /// Withdraw when the data served was loaded longer ago than this many seconds.
    #[serde(default)]
    pub max_data_age_s: Option<u64>,
    /// What a failed (or held) reload means for the announcement.
    #[serde(default)]
    pub on_load_failure: Choice<LoadFailurePolicy>,
}

/// One announced prefix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementSpec {
    /// The prefix, e.g. `192.0.2.53/32`; required.
    pub prefix: String,
    /// The next hop; by default the session's own address.
    #[serde(default)]
    pub next_hop: Option<String>,
    /// Standard communities, `AS:VALUE` each.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// What a failed reload does to the announcement (`on_load_failure:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LoadFailurePolicy {
    /// Keep announcing: the previous data still answers (the age limit still applies).
    #[default]
    Keep,
    /// Withdraw until a reload succeeds: the data served is not what the files say.
    Withdraw,
}

impl Choices for LoadFailurePolicy {
    fn refusal(_: &str, _: &[&str]) -> String {
        "expected `keep` (announce with the previous data) or `withdraw`".into()
    }
}

fn default_hold_down() -> u64 {
    5000
}

fn default_drain() -> u64 {
    3000
}

fn default_check_interval() -> u64 {
    1000
}

fn default_check_timeout() -> u64 {
    500
}

fn default_check_failures() -> u32 {
    2
}
