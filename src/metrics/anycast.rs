//! The anycast announcement's metric families: whether the prefixes are announced, why not,
//! and how often that changed (`docs/metrics.md`, Anycast).

use super::family::{Builder, Kind, Value, labels};
use crate::anycast::Reason;
use crate::serving::Serving;

/// The families, when an announcement is configured.
pub(super) fn families(b: &mut Builder, serving: &Serving) {
    let Some(a) = serving.anycast() else { return };
    let st = a.status();
    b.family(
        "anycast_announced",
        "1 while the anycast prefixes are announced to the routers.",
        Kind::Gauge,
    )
    .samples
    .push((labels(&[]), Value::Float(f64::from(u8::from(st.announced)))));
    let f = b.family(
        "anycast_withdrawn",
        "1 for the reason the anycast prefixes are withdrawn now, 0 for the others.",
        Kind::Gauge,
    );
    for r in Reason::ALL {
        let on = st.reason == Some(r);
        f.samples.push((
            labels(&[("reason", r.name())]),
            Value::Float(f64::from(u8::from(on))),
        ));
    }
    b.family(
        "anycast_changes",
        "Times the anycast prefixes went from announced to withdrawn or back (carried across replaces).",
        Kind::Counter,
    )
    .samples
    .push((labels(&[]), Value::Int(st.changes)));
}
