//! The `feeds` section as written: its keys decoded one by one ([`Checked`]), so that a value
//! of the wrong type is reported with the section's other problems. `feeds.rs` turns them into
//! the runtime [`super::Feeds`].

use serde::Deserialize;
use serde_yaml::Value;

use crate::source::{Choice, Choices};

/// A value decoded on its own: one of the wrong type is kept as a problem instead of failing
/// the table around it, so that the table's other keys are still checked (the `feeds` section
/// and its peers use it). Absent keys without a default are [`Checked::Missing`].
#[derive(Debug, Default)]
pub enum Checked<T> {
    /// The key is absent.
    #[default]
    Missing,
    /// The value.
    Value(T),
    /// Not a `T`.
    Invalid {
        /// Where inside the value (empty: the value itself).
        path: String,
        /// What the decoder said.
        message: String,
    },
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Checked<T>, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Checked::Value(v),
            Err(e) => Checked::Invalid {
                path: e.path().to_string(),
                message: e.into_inner().to_string(),
            },
        })
    }
}

/// Live BGP feeds: who Signpost is on its sessions, where routers connect, and the routers.
/// Each key is decoded on its own ([`Checked`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsSpec {
    /// Signpost's own AS number on the sessions; required.
    #[serde(default)]
    pub asn: Checked<u32>,
    /// Signpost's BGP identifier (an IPv4 address other than 0.0.0.0 and 255.255.255.255);
    /// required.
    #[serde(default)]
    pub router_id: Checked<String>,
    /// Where passive peers connect (`ADDRESS:PORT`); needed when a peer is passive.
    #[serde(default)]
    pub listen: Checked<Option<String>>,
    /// Milliseconds between connection attempts to an active peer.
    #[serde(default = "default_connect_retry")]
    pub connect_retry_ms: Checked<u64>,
    /// Milliseconds a dropped session's routes are kept, marked stale, before removal.
    #[serde(default = "default_stale")]
    pub stale_ms: Checked<u64>,
    /// Milliseconds a feed change may wait for more changes before the next build starts
    /// (at most 5000).
    #[serde(default = "default_update_delay")]
    pub update_delay_ms: Checked<u64>,
    /// The routers; decoded one by one for error reporting.
    #[serde(default)]
    pub peers: Value,
}

fn default_connect_retry() -> Checked<u64> {
    Checked::Value(5000)
}

fn default_stale() -> Checked<u64> {
    Checked::Value(120_000)
}

fn default_update_delay() -> Checked<u64> {
    Checked::Value(1000)
}

/// One router that sends Signpost its routing table. Each key is decoded on its own
/// ([`Checked`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    /// A unique name, used in logs, `ctl bgp` and explanations; required.
    #[serde(default)]
    pub name: Checked<String>,
    /// The router's address; required.
    #[serde(default)]
    pub address: Checked<String>,
    /// The router's AS number; required.
    #[serde(default)]
    pub asn: Checked<u32>,
    /// The nodes (sites) whose network this router's table describes.
    #[serde(default = "no_nodes")]
    pub nodes: Checked<Vec<String>>,
    /// Who opens the session.
    #[serde(default = "passive")]
    pub mode: Checked<Choice<PeerMode>>,
    /// The router's port, for an active session.
    #[serde(default = "bgp_port")]
    pub port: Checked<u16>,
    /// The address to connect from, for an active session.
    #[serde(default)]
    pub local_address: Checked<Option<String>>,
    /// Proposed hold time in seconds: 0, or 3 and more.
    #[serde(default = "hold_time")]
    pub hold_time: Checked<u16>,
    /// The shortest hold time in seconds accepted from the router; 0 accepts its hold time 0
    /// (no keepalives, no hold timer).
    #[serde(default = "min_hold_time")]
    pub min_hold_time: Checked<u16>,
    /// Address families: `ipv4`, `ipv6`.
    #[serde(default = "both_families")]
    pub families: Checked<Vec<String>>,
    /// Most routes kept per family, fresh and stale together; one fresh route more ends the
    /// session.
    #[serde(default)]
    pub max_prefixes: Checked<Option<u32>>,
}

fn no_nodes() -> Checked<Vec<String>> {
    Checked::Value(Vec::new())
}

fn passive() -> Checked<Choice<PeerMode>> {
    Checked::Value(Choice::default())
}

/// Who opens a feed session (`mode:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PeerMode {
    /// The router connects to `feeds.listen`.
    #[default]
    Passive,
    /// Signpost connects to the router.
    Active,
}

impl Choices for PeerMode {
    fn refusal(_: &str, _: &[&str]) -> String {
        "expected `passive` (the router connects) or `active` (Signpost connects)".into()
    }
}

fn bgp_port() -> Checked<u16> {
    Checked::Value(179)
}

fn hold_time() -> Checked<u16> {
    Checked::Value(90)
}

fn min_hold_time() -> Checked<u16> {
    Checked::Value(3)
}

fn both_families() -> Checked<Vec<String>> {
    Checked::Value(vec!["ipv4".into(), "ipv6".into()])
}
