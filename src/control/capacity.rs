//! A node's capacity, load and shares as the control socket reports them (`nodes`).

use crate::capacity::{Capacity, LoadStatus};
use crate::control::protocol::{CapacityReport, ShareReport};
use crate::node_state::now;
use crate::snapshot::Snapshot;

/// Node `i`'s capacity, load and shares, when it has a capacity or a load.
pub(super) fn report(snap: &Snapshot, cap: &Capacity, i: usize) -> Option<CapacityReport> {
    let n = &snap.nodes[i];
    let status = cap.status(&n.name, std::time::Instant::now(), now());
    if n.capacity.is_none() && n.load.is_none() && status == LoadStatus::Unknown {
        return None;
    }
    let load = status.load().map(|(v, _)| v);
    let pushed_by = cap
        .loads
        .get(&n.name)
        .and_then(|l| l.pushed.as_ref())
        .map(|p| (p.source.clone(), p.expires_at.saturating_sub(now())));
    let load_status = match (&status, pushed_by) {
        (LoadStatus::Pushed(..), Some((src, left))) => {
            format!("pushed by {src} (expires in {left} s)")
        }
        (LoadStatus::Pushed(..), None) => "pushed".into(),
        (LoadStatus::Unknown, Some(_)) if n.load.is_none() => {
            "pushed load lapsed: static weight".into()
        }
        (LoadStatus::Scraped(..), _) => "scraped".into(),
        (LoadStatus::Stale(age), _) => format!(
            "stale (last reading {} s ago): static weight",
            age.as_secs()
        ),
        (LoadStatus::Failing(e), _) => format!("{e}: static weight"),
        (LoadStatus::Unknown, _) if n.load.is_some() => "no reading yet: static weight".into(),
        (LoadStatus::Unknown, _) => "none (no load source, nothing pushed): static weight".into(),
    };
    let mut shares = Vec::new();
    for s in &snap.services {
        let Some(steer) = &s.steering else { continue };
        for (r, region) in s.regions.iter().enumerate() {
            if !region.members.iter().any(|&(m, _)| m == i) || !steer.used(r) {
                continue;
            }
            shares.push(ShareReport {
                service: s.names.first().cloned().unwrap_or_default(),
                region: region.name.clone(),
                factor: steer.factor(i),
                share: crate::capacity::share(snap, s, r, i),
                overflow: steer.overflow(r),
            });
        }
    }
    Some(CapacityReport {
        capacity: n.capacity,
        unit: snap.capacity_unit.clone(),
        load,
        utilisation: match (load, n.capacity) {
            (Some(l), Some(c)) if c > 0.0 => Some(l / c),
            _ => None,
        },
        load_status,
        shares,
    })
}
