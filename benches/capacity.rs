//! The closed-loop capacity bench: the scenario (5 nodes of 600 Mbit/s, two in North
//! America and three in Europe; demand rising from 650 to 2,000 Mbit/s over a compressed day;
//! the most loaded node killed at the peak, then restored) run against the real `signpost`
//! for each policy in one run: capacity steering with scraped loads and with pushed loads,
//! the heaviest node (`spread: none`) and `spread: weighted`. Writes the figures (a Markdown
//! table on stdout) and the plot `docs/capacity-failover.svg`.
//!
//! `cargo bench --bench capacity` (about 11 minutes). `CAPACITY_SCENARIO=small` runs the
//! test suite's smaller scenario instead; `CAPACITY_POLICIES=capacity` only the capacity runs.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "traffic/model.rs"]
#[allow(dead_code)]
mod model;

use model::{Policy, Scenario};

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let small = std::env::var("CAPACITY_SCENARIO").is_ok_and(|v| v == "small");
    let s = if small {
        Scenario::small()
    } else {
        Scenario::full()
    };
    let mut policies = vec![
        Policy::CapacityScraped,
        Policy::CapacityPushed,
        Policy::Heaviest,
        Policy::Weighted,
    ];
    if std::env::var("CAPACITY_POLICIES").is_ok_and(|v| v == "capacity") {
        policies.truncate(2);
    }
    eprintln!("scenario: {s:?}");
    let mut reports = Vec::new();
    for p in policies {
        eprintln!("{}:", p.name());
        let r = model::run(&s, p, true);
        eprintln!("  queries {} sent, {} answered", r.queries.0, r.queries.1);
        reports.push(r);
    }
    println!("{}", model::table(&s, &reports));
    let svg = model::plot(
        &s,
        &reports,
        "Node utilisation: demand 650 → 2,000 Mbit/s, the busiest node killed at the peak",
    );
    let out = common::root().join(if small {
        "target/capacity-failover-small.svg"
    } else {
        "docs/capacity-failover.svg"
    });
    std::fs::write(&out, svg).expect("write the plot");
    eprintln!("plot: {}", out.display());
}
