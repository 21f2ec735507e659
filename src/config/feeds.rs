//! The `feeds` section: live BGP sessions, validated with every problem at its
//! `file:line:column`. Whether the nodes named exist is the compiler's check (it knows the
//! maps); everything else is checked here.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::spec::{FeedsSpec, PeerSpec};
use super::{FeedPeer, Feeds};
use crate::source::{Document, Errors, quote};

/// The longest update delay accepted: a feed change reaches the answers within this plus one
/// build.
pub const MAX_UPDATE_DELAY_MS: u64 = 5000;

/// Builds the runtime feeds from their spec, reporting every problem.
pub(super) fn load(doc: &Document, spec: &FeedsSpec, errors: &mut Errors) -> Feeds {
    if spec.asn == 0 {
        errors
            .0
            .push(doc.error("feeds.asn", "must be 1..=4294967295"));
    }
    let router_id = spec.router_id.parse::<Ipv4Addr>().unwrap_or_else(|_| {
        errors.0.push(doc.error(
            "feeds.router_id",
            format!("{} is not an IPv4 address", quote(&spec.router_id)),
        ));
        Ipv4Addr::UNSPECIFIED
    });
    let listen = spec
        .listen
        .as_ref()
        .and_then(|l| match l.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.0.push(doc.error(
                    "feeds.listen",
                    format!(
                        "{} is not ADDRESS:PORT (IPv6 in brackets, e.g. \"[::]:179\")",
                        quote(l)
                    ),
                ));
                None
            }
        });
    if spec.connect_retry_ms < 100 {
        errors
            .0
            .push(doc.error("feeds.connect_retry_ms", "must be at least 100"));
    }
    if spec.update_delay_ms > MAX_UPDATE_DELAY_MS {
        errors.0.push(doc.error(
            "feeds.update_delay_ms",
            format!("must be at most {MAX_UPDATE_DELAY_MS}"),
        ));
    }
    let mut peers = Vec::new();
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (p, peer) in doc.decode_each::<PeerSpec>("feeds.peers", &spec.peers, errors) {
        let Some(peer) = load_peer(doc, &p, peer, errors) else {
            continue;
        };
        if !names.insert(peer.name.clone()) {
            errors.0.push(doc.error(
                &format!("{p}.name"),
                format!("peer {} is defined twice", quote(&peer.name)),
            ));
        }
        if !addresses.insert(peer.address) {
            errors.0.push(doc.error(
                &format!("{p}.address"),
                format!("two peers have the address {}", peer.address),
            ));
        }
        if peer.passive && spec.listen.is_none() {
            errors.0.push(doc.error(
                &format!("{p}.mode"),
                "a passive peer needs `feeds.listen`, where it connects",
            ));
        }
        peers.push(peer);
    }
    Feeds {
        asn: spec.asn,
        router_id,
        listen,
        connect_retry: Duration::from_millis(spec.connect_retry_ms),
        stale: Duration::from_millis(spec.stale_ms),
        update_delay: Duration::from_millis(spec.update_delay_ms.min(MAX_UPDATE_DELAY_MS)),
        peers,
    }
}

fn load_peer(doc: &Document, p: &str, spec: PeerSpec, errors: &mut Errors) -> Option<FeedPeer> {
    let before = errors.0.len();
    if spec.name.is_empty() {
        errors
            .0
            .push(doc.error(&format!("{p}.name"), "must not be empty"));
    }
    let address = spec.address.parse::<IpAddr>().ok();
    if address.is_none() {
        errors.0.push(doc.error(
            &format!("{p}.address"),
            format!("{} is not an IP address", quote(&spec.address)),
        ));
    }
    if spec.asn == 0 {
        errors
            .0
            .push(doc.error(&format!("{p}.asn"), "must be 1..=4294967295"));
    }
    let passive = match spec.mode.as_str() {
        "passive" => true,
        "active" => false,
        _ => {
            errors.0.push(doc.error(
                &format!("{p}.mode"),
                "expected `passive` (the router connects) or `active` (Signpost connects)",
            ));
            true
        }
    };
    let local_address = spec.local_address.as_ref().and_then(|a| match a.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.0.push(doc.error(
                &format!("{p}.local_address"),
                format!("{} is not an IP address", quote(a)),
            ));
            None
        }
    });
    if passive && spec.local_address.is_some() {
        errors.0.push(doc.error(
            &format!("{p}.local_address"),
            "applies to active peers only (a passive peer connects to `feeds.listen`)",
        ));
    }
    if spec.port == 0 {
        errors
            .0
            .push(doc.error(&format!("{p}.port"), "must be 1..=65535"));
    }
    if matches!(spec.hold_time, 1 | 2) {
        errors.0.push(doc.error(
            &format!("{p}.hold_time"),
            "must be 0 (no keepalives) or at least 3 seconds (RFC 4271)",
        ));
    }
    let (mut ipv4, mut ipv6) = (false, false);
    for (i, f) in spec.families.iter().enumerate() {
        match f.as_str() {
            "ipv4" => ipv4 = true,
            "ipv6" => ipv6 = true,
            _ => errors.0.push(doc.error(
                &format!("{p}.families[{i}]"),
                format!("{}: expected `ipv4` or `ipv6`", quote(f)),
            )),
        }
    }
    if spec.families.is_empty() {
        errors.0.push(doc.error(
            &format!("{p}.families"),
            "a peer needs at least one of `ipv4` and `ipv6`",
        ));
    }
    if spec.max_prefixes == Some(0) {
        errors
            .0
            .push(doc.error(&format!("{p}.max_prefixes"), "must be at least 1"));
    }
    if spec.nodes.is_empty() {
        errors.0.push(doc.error(
            &format!("{p}.nodes"),
            "a peer needs the node or nodes whose network it describes",
        ));
    }
    let nodes = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), doc.error(&format!("{p}.nodes[{i}]"), "")))
        .collect();
    if errors.0.len() > before {
        return None;
    }
    Some(FeedPeer {
        name: spec.name,
        address: address?,
        asn: spec.asn,
        nodes,
        passive,
        port: spec.port,
        local_address,
        hold_time: spec.hold_time,
        ipv4,
        ipv6,
        max_prefixes: spec.max_prefixes,
    })
}
