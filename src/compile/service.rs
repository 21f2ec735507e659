//! One service: its answer policies (answers, spread, ECS, all-down, last resort, TTLs), its
//! rules and its route tables, checked together.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::live::Live;
use super::nodes::{NodeSet, RegionSet};
use super::rank::Locations;
use super::rules::{self, RuleDraft, Rules};
use super::table::{self, MAX_DECISIONS};
use super::{MapText, ReadFile};
use crate::client::ClientData;
use crate::geo::{GeoLayer, Layout};
use crate::snapshot::{
    AllDown, MAX_ANSWERS, RouteTable, Service, SteerSettings, Steering, V6Table,
};
use crate::source::{Document, Errors};
use crate::spec::{AllDownSpec, Ecs, ServiceSpec, Spread};

/// What every service of a build shares.
pub(super) struct Context<'a> {
    /// The nodes.
    pub nodes: &'a NodeSet,
    /// The regions.
    pub regions: &'a RegionSet,
    /// The client data.
    pub client: &'a ClientData,
    /// The GeoIP layer the rules apply to.
    pub geo: &'a GeoLayer,
    /// Reads the files maps refer to.
    pub files: &'a ReadFile<'a>,
    /// The live feeds.
    pub live: &'a Live,
    /// The client locations, for regions ranked by distance: computed by the first service
    /// that needs them, then shared by the others of the build.
    pub locations: OnceCell<Locations>,
}

impl Context<'_> {
    /// The client locations of the first GeoIP database with locations (none without one),
    /// as range lists for this build.
    fn locations(&self) -> &Locations {
        self.locations.get_or_init(|| {
            let Some(db) = self.client.geo().find(|d| d.layout != Layout::Asn) else {
                return Locations::default();
            };
            let Some(kept) = &db.locations else {
                // The loader keeps coordinates whenever a map ranks by distance; should they
                // be missing, distance regions rank by weight, as for clients without them.
                tracing::warn!(
                    file = db.name.as_str(),
                    "client locations were not kept; distance regions rank by weight"
                );
                return Locations::default();
            };
            Locations {
                points: kept.points.clone(),
                ranges: [
                    kept.spans.ranges(false).collect(),
                    kept.spans.ranges(true).collect(),
                ],
            }
        })
    }
}

/// Compiles service `s` (path `p` of `d`, from `map`), or reports why it cannot be.
pub(super) fn service(
    ctx: &Context<'_>,
    d: &Document,
    map: &MapText,
    p: &str,
    s: &ServiceSpec,
    errors: &mut Errors,
) -> Option<Service> {
    let before = errors.0.len();
    if s.names.is_empty() {
        errors
            .0
            .push(d.error(&format!("{p}.names"), "a service needs at least one name"));
    }
    if !(1..=MAX_ANSWERS).contains(&s.answers) {
        errors.0.push(d.error(
            &format!("{p}.answers"),
            format!("must be 1..={MAX_ANSWERS}"),
        ));
    }
    let spread = d
        .choice(&format!("{p}.spread"), &s.spread, errors)
        .unwrap_or_default();
    let by_capacity = spread == Spread::Capacity;
    let steer = steer_settings(d, p, s, by_capacity, errors);
    let use_ecs = d
        .choice(&format!("{p}.ecs"), &s.ecs, errors)
        .unwrap_or_default()
        == Ecs::Use;
    let all_down = all_down(
        d.choice(&format!("{p}.all_down"), &s.all_down, errors)
            .unwrap_or_default(),
    );
    let last_resort = ctx
        .nodes
        .members(d, &format!("{p}.last_resort"), &s.last_resort, errors);
    if all_down == AllDown::LastResort && last_resort.is_empty() {
        errors.0.push(d.error(
            &format!("{p}.last_resort"),
            "`all_down: last_resort` needs a non-empty `last_resort` list",
        ));
    }
    let degraded_ttl = s.degraded_ttl.unwrap_or(s.ttl);
    if degraded_ttl > s.ttl {
        errors
            .0
            .push(d.error(&format!("{p}.degraded_ttl"), "must not exceed `ttl`"));
    }

    let inputs = rules::RuleInputs {
        d,
        map,
        regions: ctx.regions,
        nodes: ctx.nodes,
        files: ctx.files,
    };
    let mut rules = rules::rules(&inputs, p, s, errors);
    if rules.default_rule.is_none() && errors.0.len() == before {
        errors.0.push(d.error(
            &format!("{p}.rules"),
            "a service needs a rule with `default: true` for clients no other rule selects",
        ));
    }
    if errors.0.len() > before {
        return None;
    }
    let default_rule = rules.default_rule.unwrap_or(0);
    if by_capacity && !every_node_has_capacity(ctx, d, p, &rules, errors) {
        return None;
    }
    let by_distance = rules.drafts.iter().any(|r| {
        r.chain
            .iter()
            .any(|&ri| ctx.regions.regions[ri].distance().is_some())
    });
    let inputs = table::Inputs {
        default_rule,
        local: &ctx.nodes.local,
        client: ctx.client,
        live: ctx.live,
        regions: &ctx.regions.regions,
        geo: ctx.geo,
        locations: by_distance.then(|| ctx.locations()),
    };
    let t = table::tables(&mut rules, &inputs);
    if t.decisions.len() >= MAX_DECISIONS {
        errors.0.push(d.error(
            &format!("{p}.rules"),
            "too many distinct decisions (rules × local-only combinations); simplify the map",
        ));
        return None;
    }
    let steering = steer.map(|st| steering(ctx, st, &t.decisions));
    Some(Service {
        names: s.names.clone(),
        ttl: s.ttl,
        degraded_ttl,
        answers: s.answers,
        spread: spread != Spread::None,
        use_ecs,
        all_down,
        last_resort,
        regions: ctx.regions.regions.clone(),
        rules: rules.drafts.iter().map(RuleDraft::info).collect(),
        decisions: t.decisions,
        v4: t.v4,
        v6: t.v6,
        rr: AtomicU64::new(0),
        steering,
        region_up: ctx
            .regions
            .regions
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect(),
    })
}

/// The capacity steering of a `spread: capacity` service with `decisions`.
fn steering(
    ctx: &Context<'_>,
    settings: crate::snapshot::SteerSettings,
    decisions: &[crate::snapshot::Decision],
) -> Steering {
    let names: Vec<&str> = ctx
        .regions
        .regions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    Steering::new(settings, ctx.nodes.nodes.len(), &names, decisions)
}

/// What the answer path does when every node of a chain is down.
fn all_down(spec: AllDownSpec) -> AllDown {
    match spec {
        AllDownSpec::AnyRegion => AllDown::AnyRegion,
        AllDownSpec::LastResort => AllDown::LastResort,
        AllDownSpec::Servfail => AllDown::ServFail,
        AllDownSpec::Empty => AllDown::Empty,
    }
}

/// Whether every node a chain of `rules` can answer with has a capacity (utilisation is load
/// / capacity), reporting each node without one once.
fn every_node_has_capacity(
    ctx: &Context<'_>,
    d: &Document,
    p: &str,
    rules: &Rules,
    errors: &mut Errors,
) -> bool {
    let before = errors.0.len();
    let mut reported = std::collections::HashSet::new();
    for r in &rules.drafts {
        for &ri in r.chain.iter() {
            for &(n, _) in &ctx.regions.regions[ri].members {
                let node = &ctx.nodes.nodes[n];
                if node.capacity.is_none() && reported.insert(n) {
                    errors.0.push(d.error(
                        &format!("{p}.spread"),
                        format!(
                            "`spread: capacity` needs a `capacity` on every node its \
                             regions hold; node {} (region {}) has none",
                            crate::source::quote(&node.name),
                            crate::source::quote(&ctx.regions.regions[ri].name)
                        ),
                    ));
                }
            }
        }
    }
    errors.0.len() == before
}

/// The controller settings of a `spread: capacity` service (`capacity:`), checked.
fn steer_settings(
    d: &Document,
    p: &str,
    s: &ServiceSpec,
    by_capacity: bool,
    errors: &mut Errors,
) -> Option<SteerSettings> {
    let Some(c) = &s.capacity else {
        return by_capacity.then(SteerSettings::default);
    };
    if !by_capacity {
        errors.0.push(d.error(
            &format!("{p}.capacity"),
            "`capacity` settings need `spread: capacity`",
        ));
        return None;
    }
    let def = SteerSettings::default();
    let mut check =
        |key: &str, v: Option<f64>, ok: std::ops::RangeInclusive<f64>, dflt: f64| match v {
            Some(v) if !(v.is_finite() && ok.contains(&v)) => {
                errors.0.push(d.error(
                    &format!("{p}.capacity.{key}"),
                    format!("must be {}..={}", ok.start(), ok.end()),
                ));
                dflt
            }
            Some(v) => v,
            None => dflt,
        };
    let target = check(
        "target_utilisation",
        c.target_utilisation,
        0.05..=1.0,
        def.target,
    );
    let max_step = check("max_step", c.max_step, 0.01..=1.0, def.max_step);
    let deadband = check("deadband", c.deadband, 0.0..=0.5, def.deadband);
    let max_overflow = check("max_overflow", c.max_overflow, 0.0..=1.0, def.max_overflow);
    let interval = match c.interval_ms {
        Some(ms) if !(100..=3_600_000).contains(&ms) => {
            errors.0.push(d.error(
                &format!("{p}.capacity.interval_ms"),
                "must be 100..=3600000",
            ));
            def.interval
        }
        Some(ms) => std::time::Duration::from_millis(ms),
        None => def.interval,
    };
    Some(SteerSettings {
        target,
        interval,
        max_step,
        deadband,
        max_overflow,
    })
}

/// A service that failed to compile, keeping the indices of the others stable (the build
/// fails anyway).
pub(super) fn placeholder() -> Service {
    Service {
        names: Vec::new(),
        ttl: 0,
        degraded_ttl: 0,
        answers: 1,
        spread: false,
        use_ecs: false,
        all_down: AllDown::Empty,
        last_resort: Vec::new(),
        regions: Vec::new(),
        rules: Vec::new(),
        decisions: Vec::new(),
        v4: RouteTable::default(),
        v6: V6Table::default(),
        rr: AtomicU64::new(0),
        steering: None,
        region_up: Box::default(),
    }
}
