//! The `feeds` section: live BGP sessions, validated with every problem at its
//! `file:line:column`. Whether the nodes named exist is the compiler's check (it knows the
//! maps); everything else is checked here, including what the sessions would refuse at start
//! (a router id of 0.0.0.0, two peers at one address written two ways).
//!
//! The section and each peer are decoded key by key ([`Checked`]): a value of the wrong type,
//! a missing key or an unknown key is reported with every other problem of the section, in
//! one run.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::feeds_spec::{Checked, FeedsSpec, PeerMode, PeerSpec};
use super::{FeedPeer, Feeds};
use crate::source::{Document, Errors, join_path, quote};

/// The longest update delay accepted: a feed change reaches the answers within this plus one
/// build.
pub const MAX_UPDATE_DELAY_MS: u64 = 5000;

/// Decodes the mapping `value` (at `path`) as `T`, reporting the problems. An unknown key is
/// reported, left out, and the rest decoded again, so that it hides nothing.
fn decode_table<T: DeserializeOwned>(
    doc: &Document,
    path: &str,
    value: &Value,
    errors: &mut Errors,
) -> Option<T> {
    let mut value = value.clone();
    loop {
        let unknown = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) => return Some(v),
            Err(e) => unknown_key(&e.path().to_string(), &e.inner().to_string()),
        };
        // Reported as any decoding problem is (an unknown key at the key's own position).
        let _ = doc.decode::<T>(path, &value, errors);
        let left_out = match (unknown, value.as_mapping_mut()) {
            (Some(key), Some(map)) => map.shift_remove(key.as_str()).is_some(),
            _ => false,
        };
        if !left_out {
            return None;
        }
    }
}

/// The key named by an "unknown field" error at the top of the table.
fn unknown_key(path: &str, message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let key = &rest[..rest.find('`')?];
    (key == path).then(|| key.to_string())
}

/// A key's value; `None` when it is absent or invalid (reported).
fn take<T>(doc: &Document, path: &str, checked: Checked<T>, errors: &mut Errors) -> Option<T> {
    match checked {
        Checked::Value(v) => Some(v),
        Checked::Missing => None,
        Checked::Invalid {
            path: inner,
            message,
        } => {
            errors.0.push(doc.error(&join_path(path, &inner), message));
            None
        }
    }
}

/// A required key's value; its absence is reported at the table, as serde words it.
fn required<T>(
    doc: &Document,
    table: &str,
    key: &str,
    checked: Checked<T>,
    errors: &mut Errors,
) -> Option<T> {
    if let Checked::Missing = checked {
        errors
            .0
            .push(doc.error(table, format!("missing field `{key}`")));
        return None;
    }
    take(doc, &format!("{table}.{key}"), checked, errors)
}

/// Builds the runtime feeds from the `feeds` value, reporting every problem.
pub(super) fn load(doc: &Document, section: &Value, errors: &mut Errors) -> Feeds {
    let mut feeds = Feeds {
        asn: 0,
        router_id: Ipv4Addr::UNSPECIFIED,
        listen: None,
        connect_retry: Duration::from_millis(5000),
        stale: Duration::from_millis(120_000),
        update_delay: Duration::from_millis(1000),
        peers: Vec::new(),
    };
    let Some(spec) = decode_table::<FeedsSpec>(doc, "feeds", section, errors) else {
        return feeds;
    };
    let asn = required(doc, "feeds", "asn", spec.asn, errors);
    if asn == Some(0) {
        errors
            .0
            .push(doc.error("feeds.asn", "must be 1..=4294967295"));
    }
    feeds.asn = asn.unwrap_or(0);
    if let Some(id) = required(doc, "feeds", "router_id", spec.router_id, errors) {
        match id.parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() && !a.is_broadcast() => feeds.router_id = a,
            Ok(a) => errors.0.push(doc.error(
                "feeds.router_id",
                format!("{a} is not usable as a BGP identifier (routers refuse it)"),
            )),
            Err(_) => errors.0.push(doc.error(
                "feeds.router_id",
                format!("{} is not an IPv4 address", quote(&id)),
            )),
        }
    }
    let listen_given = matches!(
        spec.listen,
        Checked::Value(Some(_)) | Checked::Invalid { .. }
    );
    if let Some(l) = take(doc, "feeds.listen", spec.listen, errors).flatten() {
        match l.parse::<SocketAddr>() {
            Ok(a) => feeds.listen = Some(a),
            Err(_) => errors.0.push(doc.error(
                "feeds.listen",
                format!(
                    "{} is not ADDRESS:PORT (IPv6 in brackets, e.g. \"[::]:179\")",
                    quote(&l)
                ),
            )),
        }
    }
    if let Some(ms) = take(doc, "feeds.connect_retry_ms", spec.connect_retry_ms, errors) {
        if ms < 100 {
            errors
                .0
                .push(doc.error("feeds.connect_retry_ms", "must be at least 100"));
        }
        feeds.connect_retry = Duration::from_millis(ms);
    }
    if let Some(ms) = take(doc, "feeds.stale_ms", spec.stale_ms, errors) {
        feeds.stale = Duration::from_millis(ms);
    }
    if let Some(ms) = take(doc, "feeds.update_delay_ms", spec.update_delay_ms, errors) {
        if ms > MAX_UPDATE_DELAY_MS {
            errors.0.push(doc.error(
                "feeds.update_delay_ms",
                format!("must be at most {MAX_UPDATE_DELAY_MS}"),
            ));
        }
        feeds.update_delay = Duration::from_millis(ms.min(MAX_UPDATE_DELAY_MS));
    }
    let specs: Vec<(String, PeerSpec)> = match &spec.peers {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let p = format!("feeds.peers[{i}]");
                decode_table::<PeerSpec>(doc, &p, item, errors).map(|s| (p, s))
            })
            .collect(),
        _ => {
            errors.0.push(doc.error("feeds.peers", "expected a list"));
            Vec::new()
        }
    };
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (p, peer) in specs {
        let Some(peer) = load_peer(doc, &p, peer, errors) else {
            continue;
        };
        if !names.insert(peer.name.clone()) {
            errors.0.push(doc.error(
                &format!("{p}.name"),
                format!("peer {} is defined twice", quote(&peer.name)),
            ));
        }
        // An IPv4-mapped IPv6 address is the IPv4 address, as the sessions see it.
        if !addresses.insert(peer.address.to_canonical()) {
            errors.0.push(doc.error(
                &format!("{p}.address"),
                format!("two peers have the address {}", peer.address.to_canonical()),
            ));
        }
        if peer.passive && !listen_given {
            errors.0.push(doc.error(
                &format!("{p}.mode"),
                "a passive peer needs `feeds.listen`, where it connects",
            ));
        }
        feeds.peers.push(peer);
    }
    feeds
}

/// A peer's proposed and least accepted hold times (`hold_time`, `min_hold_time` of the peer at
/// `p`), checked against RFC 4271 and each other.
fn hold_times(
    doc: &Document,
    p: &str,
    hold_time: Checked<u16>,
    min_hold_time: Checked<u16>,
    errors: &mut Errors,
) -> (Option<u16>, Option<u16>) {
    let at = |key: &str| format!("{p}.{key}");
    let hold_time = take(doc, &at("hold_time"), hold_time, errors);
    if matches!(hold_time, Some(1 | 2)) {
        errors.0.push(doc.error(
            &at("hold_time"),
            "must be 0 (no keepalives) or at least 3 seconds (RFC 4271)",
        ));
    }
    let min_hold_time = take(doc, &at("min_hold_time"), min_hold_time, errors);
    if matches!(min_hold_time, Some(1 | 2)) {
        errors.0.push(doc.error(
            &at("min_hold_time"),
            "must be 0 (accept hold time 0) or at least 3 seconds (RFC 4271)",
        ));
    }
    match (hold_time, min_hold_time) {
        (Some(0), Some(min)) if min > 0 => errors.0.push(doc.error(
            &at("hold_time"),
            format!(
                "0 (no keepalives) is below `min_hold_time` ({min}); set `min_hold_time: 0` \
                 too for a session without hold timer"
            ),
        )),
        (Some(hold), Some(min)) if hold < min && !matches!(hold, 1 | 2) => {
            errors.0.push(doc.error(
                &at("hold_time"),
                format!("must be at least `min_hold_time` ({min})"),
            ))
        }
        _ => {}
    }
    (hold_time, min_hold_time)
}

/// The families a peer (at `p`) negotiates: (IPv4 unicast, IPv6 unicast).
fn families(
    doc: &Document,
    p: &str,
    families: Checked<Vec<String>>,
    errors: &mut Errors,
) -> (bool, bool) {
    let at = |key: &str| format!("{p}.{key}");
    let (mut ipv4, mut ipv6) = (false, false);
    if let Some(families) = take(doc, &at("families"), families, errors) {
        for (i, f) in families.iter().enumerate() {
            match f.as_str() {
                "ipv4" => ipv4 = true,
                "ipv6" => ipv6 = true,
                _ => errors.0.push(doc.error(
                    &format!("{p}.families[{i}]"),
                    format!("{}: expected `ipv4` or `ipv6`", quote(f)),
                )),
            }
        }
        if families.is_empty() {
            errors.0.push(doc.error(
                &at("families"),
                "a peer needs at least one of `ipv4` and `ipv6`",
            ));
        }
    }
    (ipv4, ipv6)
}

fn load_peer(doc: &Document, p: &str, spec: PeerSpec, errors: &mut Errors) -> Option<FeedPeer> {
    let before = errors.0.len();
    let at = |key: &str| format!("{p}.{key}");
    let name = required(doc, p, "name", spec.name, errors);
    if name.as_deref() == Some("") {
        errors.0.push(doc.error(&at("name"), "must not be empty"));
    }
    let address = required(doc, p, "address", spec.address, errors).and_then(|a| {
        let parsed = a.parse::<IpAddr>().ok();
        if parsed.is_none() {
            errors.0.push(doc.error(
                &at("address"),
                format!("{} is not an IP address", quote(&a)),
            ));
        }
        parsed
    });
    let asn = required(doc, p, "asn", spec.asn, errors);
    if asn == Some(0) {
        errors
            .0
            .push(doc.error(&at("asn"), "must be 1..=4294967295"));
    }
    let passive = take(doc, &at("mode"), spec.mode, errors)
        .and_then(|mode| doc.choice(&at("mode"), &mode, errors))
        .unwrap_or_default()
        == PeerMode::Passive;
    let local_address = take(doc, &at("local_address"), spec.local_address, errors).flatten();
    if passive && local_address.is_some() {
        errors.0.push(doc.error(
            &at("local_address"),
            "applies to active peers only (a passive peer connects to `feeds.listen`)",
        ));
    }
    let local_address = local_address.and_then(|a| match a.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.0.push(doc.error(
                &at("local_address"),
                format!("{} is not an IP address", quote(&a)),
            ));
            None
        }
    });
    let port = take(doc, &at("port"), spec.port, errors);
    if port == Some(0) {
        errors.0.push(doc.error(&at("port"), "must be 1..=65535"));
    }
    let (hold_time, min_hold_time) = hold_times(doc, p, spec.hold_time, spec.min_hold_time, errors);
    let (ipv4, ipv6) = families(doc, p, spec.families, errors);
    let max_prefixes = take(doc, &at("max_prefixes"), spec.max_prefixes, errors).flatten();
    if max_prefixes == Some(0) {
        errors
            .0
            .push(doc.error(&at("max_prefixes"), "must be at least 1"));
    }
    let nodes = take(doc, &at("nodes"), spec.nodes, errors);
    if nodes.as_ref().is_some_and(Vec::is_empty) {
        errors.0.push(doc.error(
            &at("nodes"),
            "a peer needs the node or nodes whose network it describes",
        ));
    }
    if errors.0.len() > before {
        return None;
    }
    let nodes = nodes?
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), doc.error(&format!("{p}.nodes[{i}]"), "")))
        .collect();
    Some(FeedPeer {
        name: name?,
        address: address?,
        asn: asn?,
        nodes,
        passive,
        port: port?,
        local_address,
        hold_time: hold_time?,
        min_hold_time: min_hold_time?,
        ipv4,
        ipv6,
        max_prefixes,
    })
}
