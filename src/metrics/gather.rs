//! What a scrape reports: every metric family with its samples, gathered from the counters,
//! the snapshot serving now, the node states and the BGP sessions. Names and help texts live
//! here, in the declaration of the query cells (`counters::query::Cell::reading`) and the
//! capacity families in `capacity.rs`, and in `docs/metrics.md`.

use std::collections::BTreeMap;

use crate::counters::{AnswerMetric, Counters, Events, query};
use crate::serving::Serving;
use crate::snapshot::Snapshot;

use super::family::{Builder, labels, parse_carry_key};
pub use super::family::{Family, Kind, Labels, Value, carry_key};

/// Every family, as of now.
pub fn gather(serving: &Serving) -> Vec<Family> {
    let counters = serving.published().counters();
    let snap = serving.published().snapshot();
    let mut b = Builder {
        families: Vec::new(),
    };
    let events = counters.events().clone();
    queries(&mut b, counters, &events);
    answers(&mut b, counters, &snap);
    nodes(&mut b, &snap, &events);
    reloads_and_data(&mut b, serving, &snap, &events);
    dnssec(&mut b, &snap);
    bgp(&mut b, serving);
    super::anycast::families(&mut b, serving);
    b.family("build_info", "The running build: its version.", Kind::Gauge)
        .samples
        .push((
            labels(&[("version", env!("CARGO_PKG_VERSION"))]),
            Value::Float(1.0),
        ));
    carry(&mut b.families, &counters.carried());
    b.families
}

/// The signatures of each signed zone: when they expire, and when they are made again.
fn dnssec(b: &mut Builder, snap: &Snapshot) {
    // (zone, expiration, refresh)
    let signed: Vec<(&str, u64, u64)> = snap
        .zones
        .iter()
        .filter_map(|z| {
            let s = z.signed.as_deref()?;
            Some((z.apex_text.as_str(), s.expires_at, s.refresh_at))
        })
        .collect();
    if signed.is_empty() {
        return;
    }
    for (name, help, refresh) in [
        (
            "dnssec_signatures_expiration_timestamp_seconds",
            "When the signatures of each signed zone expire, Unix time (alert well before).",
            false,
        ),
        (
            "dnssec_signatures_refresh_timestamp_seconds",
            "When the signatures of each signed zone are due to be made again, Unix time.",
            true,
        ),
    ] {
        let f = b.family(name, help, Kind::Gauge);
        for &(zone, expires, refresh_at) in &signed {
            let at = if refresh { refresh_at } else { expires };
            f.samples
                .push((labels(&[("zone", zone)]), Value::Float(at as f64)));
        }
    }
}

/// Queries by transport, type and rcode, what the limits did, and the query log's records.
fn queries(b: &mut Builder, counters: &Counters, events: &Events) {
    let q = counters.queries();
    // Queries.
    let f = b.family(
        "queries",
        "DNS queries answered, by transport, question type and response code.",
        Kind::Counter,
    );
    for (t, transport) in query::TRANSPORTS.iter().enumerate() {
        for (qi, (_, qtype)) in query::QTYPES.iter().enumerate() {
            for (ri, (_, rcode)) in query::RCODES.iter().enumerate() {
                let v = q[query::grid(t, qi, ri)];
                // Always show the common cells, so that rates exist from the start.
                let common = qi == 1 && (ri == 0 || ri == 3);
                if v > 0 || common {
                    f.samples.push((
                        labels(&[("transport", transport), ("qtype", qtype), ("rcode", rcode)]),
                        Value::Int(v),
                    ));
                }
            }
        }
    }
    // The single cells, each as its declaration says.
    for cell in query::Cell::ALL {
        let r = cell.reading();
        let f = b.family(r.family.name, r.family.help, Kind::Counter);
        let label: Vec<(&str, &str)> = r.label.into_iter().collect();
        match r.transports {
            query::Transports::Labelled => {
                for (t, transport) in query::TRANSPORTS.iter().enumerate() {
                    let mut l = vec![("transport", *transport)];
                    l.extend(&label);
                    f.samples
                        .push((labels(&l), Value::Int(q[query::extra(t, cell)])));
                }
            }
            query::Transports::Summed => f.samples.push((
                labels(&label),
                Value::Int(q[query::extra(0, cell)] + q[query::extra(1, cell)]),
            )),
        }
    }
    let f = b.family(
        query::QUERYLOG_RECORDS.name,
        query::QUERYLOG_RECORDS.help,
        Kind::Counter,
    );
    f.samples.push((
        labels(&[("result", "written")]),
        Value::Int(events.querylog_written),
    ));
    f.samples.push((
        labels(&[("result", "failed")]),
        Value::Int(events.querylog_failed),
    ));
}

/// Answers of the services, by service, rule, region and node.
fn answers(b: &mut Builder, counters: &Counters, snap: &Snapshot) {
    // Answers of the services.
    let answers = counters.answers(snap);
    for (metric, name, help, keys) in [
        (
            AnswerMetric::Answers,
            "service_answers",
            "A/AAAA queries of a service name answered by the service.",
            &["service"][..],
        ),
        (
            AnswerMetric::NoData,
            "service_nodata_answers",
            "Service answers without an address (no node available, or no address of the type).",
            &["service"][..],
        ),
        (
            AnswerMetric::Fallback,
            "service_fallback_answers",
            "Service answers from a region that is not the first of the client's chain.",
            &["service"][..],
        ),
        (
            AnswerMetric::Degraded,
            "service_degraded_answers",
            "Service answers while the chosen region is degraded (degraded TTL).",
            &["service"][..],
        ),
        (
            AnswerMetric::AllDown,
            "service_all_down_answers",
            "Service answers decided by the all-down policy: no node of the chain was usable.",
            &["service"][..],
        ),
        (
            AnswerMetric::ServFail,
            "service_servfail_answers",
            "Service answers that were SERVFAIL.",
            &["service"][..],
        ),
        (
            AnswerMetric::Ecs,
            "service_ecs_answers",
            "Service answers decided for the client subnet (ECS) rather than the resolver.",
            &["service"][..],
        ),
        (
            AnswerMetric::Rule,
            "service_rule_answers",
            "Service answers by the kind of rule that decided.",
            &["service", "rule_kind"][..],
        ),
        (
            AnswerMetric::Region,
            "service_region_answers",
            "Service answers by the region the nodes came from (`none`: last resort or none).",
            &["service", "region"][..],
        ),
        (
            AnswerMetric::Node,
            "service_node_answers",
            "Addresses of each node given in service answers.",
            &["service", "node"][..],
        ),
    ] {
        let f = b.family(name, help, Kind::Counter);
        for ((m, values), v) in &answers {
            if *m == metric {
                f.samples.push((
                    keys.iter()
                        .zip(values)
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                    Value::Int(*v),
                ));
            }
        }
    }
}

/// Node states, their changes and the health checks.
fn nodes(b: &mut Builder, snap: &Snapshot, events: &Events) {
    // Node states.
    let f = b.family(
        "node_state",
        "Effective state of each node: 1 for its current state, 0 for the others.",
        Kind::Gauge,
    );
    for (i, n) in snap.nodes.iter().enumerate() {
        let now = snap.health.get(i);
        for s in [
            crate::health::State::Up,
            crate::health::State::Down,
            crate::health::State::Drain,
        ] {
            f.samples.push((
                labels(&[("node", &n.name), ("state", s.as_str())]),
                Value::Float(if s == now { 1.0 } else { 0.0 }),
            ));
        }
    }
    let f = b.family(
        "node_transitions",
        "Changes of a node's effective state, by the state it changed to.",
        Kind::Counter,
    );
    for ((node, to), v) in &events.transitions {
        f.samples
            .push((labels(&[("node", node), ("to", to)]), Value::Int(*v)));
    }
    let f = b.family(
        "probes",
        "Health checks run, by node and result.",
        Kind::Counter,
    );
    for (node, p) in &events.probes {
        f.samples.push((
            labels(&[("node", node), ("result", "ok")]),
            Value::Int(p.ok),
        ));
        f.samples.push((
            labels(&[("node", node), ("result", "failed")]),
            Value::Int(p.failed),
        ));
    }
    let f = b.family(
        "probe_duration_seconds",
        "How long health checks took, by node.",
        Kind::Histogram,
    );
    for (node, p) in &events.probes {
        f.samples
            .push((labels(&[("node", node)]), Value::Hist(p.latency.clone())));
    }
}

/// Reloads, the data in force and the services' tables.
fn reloads_and_data(b: &mut Builder, serving: &Serving, snap: &Snapshot, events: &Events) {
    // Reloads and data.
    let f = b.family(
        "reloads",
        "Builds of a new snapshot, by result (a failed or held one keeps the old snapshot).",
        Kind::Counter,
    );
    f.samples
        .push((labels(&[("result", "ok")]), Value::Int(events.reloads_ok)));
    f.samples.push((
        labels(&[("result", "failed")]),
        Value::Int(events.reloads_failed),
    ));
    f.samples.push((
        labels(&[("result", "held")]),
        Value::Int(events.reloads_held),
    ));
    b.family(
        "reload_duration_seconds",
        "How long builds took, from the first read to the publication.",
        Kind::Histogram,
    )
    .samples
    .push((Vec::new(), Value::Hist(events.reload_duration.clone())));
    b.family(
        "last_reload_success_timestamp_seconds",
        "When a snapshot was last published (the first load included), Unix time.",
        Kind::Gauge,
    )
    .samples
    .push((Vec::new(), Value::Float(events.last_success)));
    let status = serving.reloads().reload_status();
    b.family(
        "last_reload_ok",
        "1 when the last reload of the files succeeded, 0 while it failed.",
        Kind::Gauge,
    )
    .samples
    .push((Vec::new(), Value::Float(if status.ok { 1.0 } else { 0.0 })));
    b.family(
        "snapshot_generation",
        "Snapshots published since start (the first load is 1).",
        Kind::Gauge,
    )
    .samples
    .push((Vec::new(), Value::Float(status.generation as f64)));
    let f = b.family(
        "geoip_build_timestamp_seconds",
        "Build time of each GeoIP database in force, from its metadata, Unix time.",
        Kind::Gauge,
    );
    for db in snap.client.geo() {
        f.samples.push((
            labels(&[("database", short(&db.name))]),
            Value::Float(db.build_epoch as f64),
        ));
    }
    let f = b.family(
        "bgp_table_prefixes",
        "Prefixes of each BGP table file in force, by address family.",
        Kind::Gauge,
    );
    for t in snap.client.bgp() {
        for (family, n) in [("ipv4", t.v4.len()), ("ipv6", t.v6.len())] {
            f.samples.push((
                labels(&[("table", short(&t.name)), ("family", family)]),
                Value::Float(n as f64),
            ));
        }
    }
    let f = b.family(
        "route_table_blocks",
        "Blocks of each service's compiled route table (one lookup per query), by family.",
        Kind::Gauge,
    );
    for svc in &snap.services {
        let name = svc.names.first().map_or("", |s| s.as_str());
        for (family, n) in [("ipv4", svc.v4.len()), ("ipv6", svc.v6.len())] {
            f.samples.push((
                labels(&[("service", name), ("family", family)]),
                Value::Float(n as f64),
            ));
        }
    }

    super::capacity::families(b, serving, snap);
}

/// The BGP sessions.
fn bgp(b: &mut Builder, serving: &Serving) {
    // BGP sessions.
    if let Some(feeds) = serving.feeds() {
        let sessions = feeds.status();
        let f = b.family(
            "bgp_session_up",
            "1 while the BGP session with the peer is established.",
            Kind::Gauge,
        );
        for s in &sessions {
            let up = matches!(s.state, crate::live::SessionState::Established);
            f.samples.push((
                labels(&[("peer", &s.peer)]),
                Value::Float(if up { 1.0 } else { 0.0 }),
            ));
        }
        let f = b.family(
            "bgp_session_prefixes",
            "Routes held from each peer: fresh by family, and stale from a previous session.",
            Kind::Gauge,
        );
        for s in &sessions {
            for (kind, n) in [
                ("ipv4", s.v4_prefixes),
                ("ipv6", s.v6_prefixes),
                ("stale", s.stale_prefixes),
            ] {
                f.samples.push((
                    labels(&[("peer", &s.peer), ("kind", kind)]),
                    Value::Float(n as f64),
                ));
            }
        }
        let f = b.family(
            "bgp_messages_received",
            "BGP messages received from each peer, over all its sessions.",
            Kind::Counter,
        );
        for s in &sessions {
            f.samples.push((
                labels(&[("peer", &s.peer)]),
                Value::Int(s.messages_received),
            ));
        }
        b.family(
            "bgp_refused_connections",
            "Connections to feeds.listen refused: from an address of no passive peer, or while one from the same peer was already waiting.",
            Kind::Counter,
        )
        .samples
        .push((labels(&[]), Value::Int(feeds.refused_connections())));
    }
}

/// Adds the counts carried over from a replaced process to the counters they belong to.
fn carry(families: &mut [Family], carried: &BTreeMap<String, u64>) {
    for (key, add) in carried {
        let Some((name, labels)) = parse_carry_key(key) else {
            continue;
        };
        let Some(f) = families
            .iter_mut()
            .find(|f| f.name == name && f.kind == Kind::Counter)
        else {
            continue;
        };
        match f.samples.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, Value::Int(v))) => *v += add,
            Some(_) => {}
            None => f.samples.push((labels, Value::Int(*add))),
        }
    }
}

/// Every counter sample by its carry key (for a process that replaces this one).
pub fn counter_samples(families: &[Family]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for f in families.iter().filter(|f| f.kind == Kind::Counter) {
        for (labels, v) in &f.samples {
            if let Value::Int(v) = v {
                out.insert(carry_key(f.name, labels), *v);
            }
        }
    }
    out
}

fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_keys_round_trip_and_add_up() {
        let l = labels(&[("service", "dl"), ("node", "fra1")]);
        let key = carry_key("service_node_answers", &l);
        assert_eq!(
            parse_carry_key(&key),
            Some(("service_node_answers", l.clone()))
        );
        let mut fams = vec![Family {
            name: "service_node_answers",
            help: "",
            kind: Kind::Counter,
            samples: vec![(l.clone(), Value::Int(5))],
        }];
        let carried = BTreeMap::from([
            (key, 7),
            (
                carry_key("service_node_answers", &labels(&[("node", "x")])),
                2,
            ),
            ("udp_queries".to_string(), 9),
        ]);
        carry(&mut fams, &carried);
        assert!(matches!(fams[0].samples[0].1, Value::Int(12)));
        assert_eq!(fams[0].samples.len(), 2);
        assert_eq!(counter_samples(&fams).values().sum::<u64>(), 14);
    }
}
