//! The `anycast` section: which prefixes this server announces over its BGP feed sessions,
//! to which peers, and the policy that withdraws them. Checked with every problem at its
//! `file:line:column`; the peers named must be feed peers (`feeds.peers`).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_yaml::Value;

use super::Feeds;
pub use super::anycast_spec::LoadFailurePolicy;
use super::anycast_spec::{AnnouncementSpec, AnycastSpec};
use crate::source::{Document, Errors, quote};

/// The anycast announcement, ready to use.
#[derive(Clone, Debug, PartialEq)]
pub struct Anycast {
    /// The feed peers that receive the announcements, by name.
    pub peers: Vec<String>,
    /// The prefixes announced.
    pub prefixes: Vec<AnycastPrefix>,
    /// Continuous health needed before announcing again.
    pub hold_down: Duration,
    /// Between the withdrawal at a graceful stop and closing.
    pub drain: Duration,
    /// Between self-checks.
    pub check_interval: Duration,
    /// A self-check's wait for its answer.
    pub check_timeout: Duration,
    /// Self-checks failed in a row before withdrawing (at least 1).
    pub check_failures: u32,
    /// Withdraw when the data served was loaded longer ago than this.
    pub max_data_age: Option<Duration>,
    /// What a failed reload does.
    pub on_load_failure: LoadFailurePolicy,
}

/// One announced prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnycastPrefix {
    /// The prefix.
    pub prefix: IpNet,
    /// The next hop (default: the session's own address).
    pub next_hop: Option<IpAddr>,
    /// Standard communities (AS, value).
    pub communities: Vec<(u16, u16)>,
}

/// Builds the runtime section from the `anycast` value, reporting every problem. `feeds` is
/// the feeds section, whose peers the announcements go to.
pub(super) fn load(
    doc: &Document,
    section: &Value,
    feeds: Option<&Feeds>,
    errors: &mut Errors,
) -> Option<Anycast> {
    let spec: AnycastSpec = doc.decode("anycast", section, errors)?;
    let before = errors.0.len();
    if spec.peers.is_empty() {
        errors.0.push(doc.error(
            "anycast.peers",
            "name at least one feed peer to announce to",
        ));
    }
    for (i, name) in spec.peers.iter().enumerate() {
        if !feeds.is_some_and(|f| f.peers.iter().any(|p| &p.name == name)) {
            errors.0.push(doc.error(
                &format!("anycast.peers[{i}]"),
                format!("{} is not a peer of `feeds.peers`", quote(name)),
            ));
        }
    }
    if spec.prefixes.is_empty() {
        errors
            .0
            .push(doc.error("anycast.prefixes", "announce at least one prefix"));
    }
    let prefixes: Vec<AnycastPrefix> = spec
        .prefixes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| prefix(doc, &format!("anycast.prefixes[{i}]"), p, errors))
        .collect();
    for (key, value) in [
        ("check_interval_ms", spec.check_interval_ms),
        ("check_timeout_ms", spec.check_timeout_ms),
    ] {
        if value < 10 {
            errors.0.push(doc.error(
                &format!("anycast.{key}"),
                "must be at least 10 (milliseconds)",
            ));
        }
    }
    if spec.check_failures == 0 {
        errors
            .0
            .push(doc.error("anycast.check_failures", "must be at least 1"));
    }
    if spec.max_data_age_s == Some(0) {
        errors
            .0
            .push(doc.error("anycast.max_data_age_s", "must be at least 1"));
    }
    let on_load_failure = doc.choice("anycast.on_load_failure", &spec.on_load_failure, errors);
    if errors.0.len() > before {
        return None;
    }
    Some(Anycast {
        peers: spec.peers,
        prefixes,
        hold_down: Duration::from_millis(spec.hold_down_ms),
        drain: Duration::from_millis(spec.drain_ms),
        check_interval: Duration::from_millis(spec.check_interval_ms),
        check_timeout: Duration::from_millis(spec.check_timeout_ms),
        check_failures: spec.check_failures,
        max_data_age: spec.max_data_age_s.map(Duration::from_secs),
        on_load_failure: on_load_failure?,
    })
}

/// One prefix, its next hop and communities.
fn prefix(
    doc: &Document,
    at: &str,
    spec: &AnnouncementSpec,
    errors: &mut Errors,
) -> Option<AnycastPrefix> {
    let before = errors.0.len();
    let prefix = match spec.prefix.parse::<IpNet>() {
        Ok(p) if p.trunc() == p => Some(p),
        Ok(p) => {
            errors.0.push(doc.error(
                &format!("{at}.prefix"),
                format!("{p} has host bits set (the network is {})", p.trunc()),
            ));
            None
        }
        Err(_) => {
            errors.0.push(doc.error(
                &format!("{at}.prefix"),
                format!(
                    "{} is not a prefix such as 192.0.2.53/32",
                    quote(&spec.prefix)
                ),
            ));
            None
        }
    };
    let next_hop = spec
        .next_hop
        .as_ref()
        .and_then(|h| match h.parse::<IpAddr>() {
            Ok(a) if prefix.is_some_and(|p| p.addr().is_ipv6() != a.is_ipv6()) => {
                errors.0.push(doc.error(
                    &format!("{at}.next_hop"),
                    format!("{a} is not of the prefix's address family"),
                ));
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                errors.0.push(doc.error(
                    &format!("{at}.next_hop"),
                    format!("{} is not an IP address", quote(h)),
                ));
                None
            }
        });
    let mut communities = Vec::new();
    for (i, c) in spec.communities.iter().enumerate() {
        let parsed = c
            .split_once(':')
            .and_then(|(a, v)| Some((a.parse::<u16>().ok()?, v.parse::<u16>().ok()?)));
        match parsed {
            Some(pair) => communities.push(pair),
            None => errors.0.push(doc.error(
                &format!("{at}.communities[{i}]"),
                format!("{} is not AS:VALUE (each 0..=65535)", quote(c)),
            )),
        }
    }
    if errors.0.len() > before {
        return None;
    }
    Some(AnycastPrefix {
        prefix: prefix?,
        next_hop,
        communities,
    })
}
