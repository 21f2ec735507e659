//! Service names in the zones: each name of a service is attached to the zone that holds it
//! (with its `_why` name when explanations are enabled), refusing names outside every zone,
//! names served twice and names that also have static address records.

use std::collections::HashSet;

use crate::source::{Document, Errors};
use crate::spec::ServiceSpec;
use crate::wire::rtype;
use crate::zone::{self, Zone};

/// The zones of a build, getting the services' names.
pub(super) struct Names<'z> {
    /// The zones.
    pub zones: &'z mut [Zone],
    /// Every service name attached so far.
    pub seen: HashSet<Box<[u8]>>,
    /// `_why` names are attached too.
    pub why_enabled: bool,
}

impl Names<'_> {
    /// Attaches the names of service `idx` (spec `s` at path `p` of `d`).
    pub(super) fn attach(
        &mut self,
        d: &Document,
        p: &str,
        s: &ServiceSpec,
        idx: usize,
        errors: &mut Errors,
    ) {
        let (zones, seen_names, why_enabled) = (&mut *self.zones, &mut self.seen, self.why_enabled);
        for (i, name) in s.names.iter().enumerate() {
            let np = format!("{p}.names[{i}]");
            let n = match zone::parse_name(name, &hickory_proto::rr::Name::root()) {
                Ok(n) => zone::wire(&n),
                Err(e) => {
                    errors.0.push(d.error(&np, e.to_string()));
                    continue;
                }
            };
            if !seen_names.insert(n.clone()) {
                errors
                    .0
                    .push(d.error(&np, format!("{name} is served by two services")));
                continue;
            }
            let Some(z) = zones.iter_mut().find(|z| zone::is_within(&n, &z.apex)) else {
                errors.0.push(d.error(
                    &np,
                    format!("{name} is not inside any zone of the configuration"),
                ));
                continue;
            };
            let node = z.nodes.or_default(&n);
            if node.cname_target.is_some()
                || node.set(rtype::A).is_some()
                || node.set(rtype::AAAA).is_some()
            {
                errors.0.push(d.error(
                    &np,
                    format!("{name} also has static A, AAAA or CNAME records"),
                ));
                continue;
            }
            node.service = Some(idx);
            zone::add_ancestors(&mut z.nodes, &n, &z.apex);
            if why_enabled {
                let mut why = b"\x04_why".to_vec();
                why.extend_from_slice(&n);
                z.nodes.or_default(&why).why = Some(idx);
            }
        }
    }
}
