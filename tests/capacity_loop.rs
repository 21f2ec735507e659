//! The closed-loop traffic model at small scale (benches/traffic/model.rs): 6,000 client
//! /24s behind caching resolvers, demand rising to 2,000 Mbit/s over five 600 Mbit/s nodes, the
//! busiest node killed at the peak and restored, loads scraped by the real `signpost` from the
//! nodes' exporters. Asserts the properties, not timings: no node overloaded while the
//! remaining capacity covers the demand, converged below target + 10 % before the node
//! returns, and no more clients moved than the failure and the overflow require.

mod common;
#[path = "../benches/traffic/model.rs"]
#[allow(dead_code)]
mod model;

use model::{Policy, Scenario};

#[test]
fn capacity_steering_spreads_a_failure_without_overload() {
    let s = Scenario::small();
    let r = model::run(&s, Policy::CapacityScraped, false);
    let table = model::table(&s, std::slice::from_ref(&r));
    assert!(
        r.queries.1 * 10 >= r.queries.0 * 9,
        "most queries answered: {:?}",
        r.queries
    );
    // 2,000 Mbit/s over the 2,400 left after the failure: covered, so no node above 100 %.
    assert!(r.peak <= 1.0, "a node was overloaded:\n{table}");
    let converged = r
        .converged_after
        .unwrap_or_else(|| panic!("never converged below target + 10 %:\n{table}"));
    assert!(converged < s.restore_at - s.fail_at, "{table}");
    assert!(
        r.moved <= r.failed_share + r.shed_share + 0.05,
        "too many clients moved:\n{table}"
    );
    // The overflow is real: North America cannot keep its clients on one node.
    assert!(r.shed_share > 0.0, "nothing overflowed:\n{table}");
}
