//! The control protocol's messages. One request per line, one response per line, both JSON
//! objects; a request is an object whose `cmd` names the variant of [`Request`]. Every response
//! has `ok`; a failed one has `error` (and `errors` for a failed reload); a successful one
//! carries the fields of its [`Reply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::anycast::AnycastStatus;
use crate::live::{SessionState, SessionStatus};
use crate::node_state::Override;

/// A request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Version, uptime, data versions and the last reload's result.
    Status {},
    /// Every node's effective state and why.
    Nodes {},
    /// Force a node's state (an admin override, kept in the state file).
    Set {
        /// The node.
        node: String,
        /// `up`, `down` or `drain`.
        state: String,
        /// Why (shown in `nodes` and `_why`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Seconds until the override lapses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in: Option<u64>,
    },
    /// Remove a node's admin override.
    Clear {
        /// The node.
        node: String,
    },
    /// States from a monitor, each with a TTL; applied entirely or not at all.
    Push {
        /// Who is pushing (default `monitor`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// The states.
        states: Vec<PushItem>,
    },
    /// Reload the configuration, maps and data now, through the reload thread.
    Reload {
        /// Publish even a snapshot that the reload guard would hold (names gone, data shrunk).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        confirm: bool,
    },
    /// Query counters.
    Stats {},
    /// Reopen the query log (after logrotate moved it).
    Reopen {},
    /// The BGP sessions.
    Bgp {},
    /// The anycast announcement: its state, or the operator's withdrawal (kept across
    /// restarts) and its end.
    Anycast {
        /// `withdraw` or `announce`; none: only the state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<AnycastAction>,
    },
    /// What the server's data (files and live feeds) say about addresses.
    Lookup {
        /// The addresses.
        addresses: Vec<String>,
    },
    /// Why a client gets its answer for a service name, from the serving snapshot.
    Explain {
        /// The client address.
        address: String,
        /// The service name.
        name: String,
        /// Explain AAAA instead of A.
        #[serde(default)]
        ipv6: bool,
    },
    /// Start a new process (this binary path, these arguments) that takes over the sockets,
    /// node states and counters; answered once it serves, or with why it failed.
    Replace {},
    /// Sent by a new process (`serve --takeover`): the connection then carries the hand-over
    /// (the sockets, see `docs/replace.md`), not control requests.
    Takeover {},
}

/// The operator's word on the anycast announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnycastAction {
    /// Withdraw the prefixes, whatever the health, until `announce`.
    Withdraw,
    /// End the operator's withdrawal: announce again when healthy, after the hold-down.
    Announce,
}

/// One pushed state, load, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushItem {
    /// Node.
    pub node: String,
    /// `up`, `down` or `drain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The node's current load, in the maps' capacity unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// Seconds until it lapses.
    pub ttl: u64,
}

/// Each command's fields, and those it needs.
type Fields = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Every command, in the order messages list them, with its fields.
const FIELDS: [Fields; 14] = [
    ("status", &[], &[]),
    ("nodes", &[], &[]),
    (
        "set",
        &["node", "state", "reason", "expires_in"],
        &["node", "state"],
    ),
    ("clear", &["node"], &["node"]),
    ("push", &["source", "states"], &["states"]),
    ("reload", &["confirm"], &[]),
    ("stats", &[], &[]),
    ("reopen", &[], &[]),
    ("bgp", &[], &[]),
    ("anycast", &["action"], &[]),
    ("lookup", &["addresses"], &["addresses"]),
    (
        "explain",
        &["address", "name", "ipv6"],
        &["address", "name"],
    ),
    ("replace", &[], &[]),
    ("takeover", &[], &[]),
];

/// Why a request line is not a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Not a JSON object, or a field of the wrong type or unknown.
    Bad(String),
    /// `cmd` names no command.
    UnknownCommand(String),
    /// A command without a field it needs.
    Missing(&'static str, &'static str),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Bad(e) => write!(f, "bad request: {e}"),
            RequestError::UnknownCommand(c) => {
                let names: Vec<&str> = FIELDS.iter().map(|(name, _, _)| *name).collect();
                write!(f, "unknown command {c:?}; expected {}", names.join(", "))
            }
            RequestError::Missing(cmd, field) => write!(f, "`{cmd}` needs `{field}`"),
        }
    }
}

impl std::error::Error for RequestError {}

impl Request {
    /// Parses a request line, naming the first problem: not JSON, an unknown command, a
    /// missing field, or a field that does not fit.
    pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
        let map: Map<String, Value> =
            serde_json::from_slice(line).map_err(|e| RequestError::Bad(e.to_string()))?;
        let cmd = match map.get("cmd") {
            Some(Value::String(c)) => c.clone(),
            Some(_) => return Err(RequestError::Bad("`cmd` must be a string".into())),
            None => return Err(RequestError::Bad("missing field `cmd`".into())),
        };
        // (command, its fields, the fields it needs)
        let Some(&(name, fields, needs)) = FIELDS.iter().find(|(c, _, _)| *c == cmd) else {
            return Err(RequestError::UnknownCommand(cmd));
        };
        if let Some(k) = map
            .keys()
            .find(|k| *k != "cmd" && !fields.contains(&k.as_str()))
        {
            return Err(RequestError::Bad(if fields.is_empty() {
                format!("unknown field `{k}`; `{name}` takes none")
            } else {
                format!(
                    "unknown field `{k}`, expected one of {}",
                    fields
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }));
        }
        for field in needs {
            if map.get(*field).is_none_or(Value::is_null) {
                return Err(RequestError::Missing(name, field));
            }
        }
        serde_json::from_value(Value::Object(map)).map_err(|e| RequestError::Bad(e.to_string()))
    }

    /// The request as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("requests serialise")
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The problems of a failed reload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What a successful request returns.
    #[serde(flatten)]
    pub reply: Reply,
}

impl Response {
    /// A successful response.
    pub fn ok(reply: Reply) -> Response {
        Response {
            ok: true,
            error: None,
            errors: Vec::new(),
            reply,
        }
    }

    /// A failed response.
    pub fn failed(error: impl Into<String>, errors: Vec<String>) -> Response {
        Response {
            ok: false,
            error: Some(error.into()),
            errors,
            reply: Reply::Done {},
        }
    }
}

/// What a successful request returns. Variants are told apart by their fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// `status`.
    Status(StatusReply),
    /// `nodes`.
    Nodes {
        /// Every node.
        nodes: Vec<NodeReport>,
    },
    /// `push`.
    Pushed {
        /// States accepted.
        accepted: usize,
    },
    /// `reload`.
    Reloaded {
        /// Data versions of the snapshot now serving.
        data: String,
        /// Notes: settings changed that only a restart applies.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// `stats`.
    Stats {
        /// Counter name → value.
        stats: BTreeMap<String, u64>,
    },
    /// `reopen`.
    Reopened {
        /// The files reopened (the query log's; empty when none is configured).
        reopened: Vec<String>,
    },
    /// `bgp`.
    Bgp {
        /// Every configured session, in configuration order.
        sessions: Vec<BgpSession>,
        /// Connections refused at `feeds.listen` so far.
        #[serde(default)]
        refused_connections: u64,
    },
    /// `anycast`.
    Anycast {
        /// The announcement's state.
        anycast: AnycastStatus,
    },
    /// `lookup` and `explain`: lines of text.
    Lines {
        /// The lines.
        lines: Vec<String>,
    },
    /// `replace`.
    Replaced {
        /// The process that answered the request (it has stopped).
        old_pid: u32,
        /// The process serving now.
        new_pid: u32,
    },
    /// `set`, `clear`, and every failure.
    Done {},
}

/// The reply to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The server's version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Data versions in force.
    pub data: String,
    /// Successful loads since start.
    pub generation: u64,
    /// The last reload.
    pub last_reload: LastReload,
    /// The anycast announcement, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anycast: Option<AnycastStatus>,
}

/// The last reload, in `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReload {
    /// It succeeded.
    pub ok: bool,
    /// The reload guard held it: `errors` say what it would take away.
    #[serde(default)]
    pub held: bool,
    /// Unix time it finished.
    pub at: u64,
    /// Its errors.
    pub errors: Vec<String>,
    /// Notes on a successful reload: settings changed that only a restart applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One node, in `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Name.
    pub name: String,
    /// Effective state.
    pub state: String,
    /// Why.
    pub why: String,
    /// The admin override.
    pub admin: Option<Override>,
    /// The pushed state.
    pub pushed: Option<PushedReport>,
    /// The health-check result.
    pub poller: Option<CheckReport>,
    /// Capacity, load and shares (nodes with a capacity or a load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
}

/// A node's capacity, load and shares, in `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// Its capacity (none declared: none).
    pub capacity: Option<f64>,
    /// The maps' capacity unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The load that counts, when valid.
    pub load: Option<f64>,
    /// Load / capacity.
    pub utilisation: Option<f64>,
    /// Where the load comes from, or why there is none (then the static weight applies).
    pub load_status: String,
    /// Its share in each steered service's regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareReport>,
}

/// A node's share of one region of a steered service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareReport {
    /// The service (its first name).
    pub service: String,
    /// The region.
    pub region: String,
    /// The factor on its static weight.
    pub factor: f64,
    /// The fraction of the region's clients it gets (of those not sent on).
    pub share: f64,
    /// The fraction of the region's clients sent on to the next region.
    pub overflow: f64,
}

/// One BGP session, in `bgp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpSession {
    /// The peer's name.
    pub peer: String,
    /// Its address.
    pub address: String,
    /// `idle`, `connect`, `active`, `opensent`, `openconfirm` or `established`.
    pub state: String,
    /// Seconds since the session came up, while established.
    pub uptime_s: Option<u64>,
    /// Seconds since it went down, while not established (none if it never was up).
    pub down_s: Option<u64>,
    /// Fresh IPv4 routes.
    pub ipv4_prefixes: usize,
    /// Fresh IPv6 routes.
    pub ipv6_prefixes: usize,
    /// Routes kept stale from a dropped session.
    pub stale_prefixes: usize,
    /// Seconds since the last UPDATE.
    pub last_update_s: Option<u64>,
    /// The last NOTIFICATION sent or received, or the connection error.
    pub last_error: Option<String>,
    /// Messages received.
    pub messages: u64,
}

impl From<&SessionStatus> for BgpSession {
    fn from(s: &SessionStatus) -> BgpSession {
        BgpSession {
            peer: s.peer.clone(),
            address: s.address.to_string(),
            state: match s.state {
                SessionState::Idle => "idle",
                SessionState::Connect => "connect",
                SessionState::Active => "active",
                SessionState::OpenSent => "opensent",
                SessionState::OpenConfirm => "openconfirm",
                SessionState::Established => "established",
            }
            .into(),
            uptime_s: s.uptime.map(|d| d.as_secs()),
            down_s: s.down_for.map(|d| d.as_secs()),
            ipv4_prefixes: s.v4_prefixes,
            ipv6_prefixes: s.v6_prefixes,
            stale_prefixes: s.stale_prefixes,
            last_update_s: s.last_update.map(|d| d.as_secs()),
            last_error: s.last_error.clone(),
            messages: s.messages_received,
        }
    }
}

/// A pushed state, in `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedReport {
    /// State.
    pub state: String,
    /// Unix time it lapses.
    pub expires_at: u64,
    /// Who pushed it.
    pub source: String,
}

/// A health-check result, in `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Up by the checks.
    pub up: bool,
    /// The last error.
    pub last_error: Option<String>,
    /// Unix time of the last check.
    pub at: u64,
    /// Consecutive successes.
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
}

/// One request of every command, each optional field set. The `match` has no catch-all:
/// a new command does not compile until it is listed here, and then
/// `fields_match_the_request_type` (in `protocol_tests.rs`) holds `FIELDS` to it. It lives
/// here, beside `Request` and `FIELDS`, so that a new command is added in this one file.
#[cfg(test)]
pub(super) fn one_of_each() -> Vec<Request> {
    let all = vec![
        Request::Status {},
        Request::Nodes {},
        Request::Set {
            node: "n".into(),
            state: "down".into(),
            reason: Some("r".into()),
            expires_in: Some(1),
        },
        Request::Clear { node: "n".into() },
        Request::Push {
            source: Some("s".into()),
            states: Vec::new(),
        },
        Request::Reload { confirm: true },
        Request::Stats {},
        Request::Reopen {},
        Request::Bgp {},
        Request::Anycast {
            action: Some(AnycastAction::Withdraw),
        },
        Request::Lookup {
            addresses: Vec::new(),
        },
        Request::Explain {
            address: "192.0.2.1".into(),
            name: "n".into(),
            ipv6: true,
        },
        Request::Replace {},
        Request::Takeover {},
    ];
    for r in &all {
        match r {
            Request::Status {}
            | Request::Nodes {}
            | Request::Set { .. }
            | Request::Clear { .. }
            | Request::Push { .. }
            | Request::Reload { .. }
            | Request::Stats {}
            | Request::Reopen {}
            | Request::Bgp {}
            | Request::Anycast { .. }
            | Request::Lookup { .. }
            | Request::Explain { .. }
            | Request::Replace {}
            | Request::Takeover {} => {}
        }
    }
    all
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
