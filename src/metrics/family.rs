//! The shape of what a scrape reports: metric families, their samples and labels, the builder
//! the gatherers add to, and the keys counters are carried under to a replacing process.

use crate::counters::Histogram;

/// The type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total` is appended by the exposition).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// A sample's value.
#[derive(Clone, Debug)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A gauge reading.
    Float(f64),
    /// A histogram.
    Hist(Histogram),
}

/// Label names and values.
pub type Labels = Vec<(String, String)>;

/// One metric family.
#[derive(Clone, Debug)]
pub struct Family {
    /// Name, without the `signpost_` prefix and, for counters, without `_total`.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Type.
    pub kind: Kind,
    /// Samples.
    pub samples: Vec<(Labels, Value)>,
}

/// Labels from name and value pairs.
pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The key a counter sample is carried under to a replacing process: `name|k=v,k=v`.
pub fn carry_key(name: &str, labels: &Labels) -> String {
    let mut s = format!("{name}|");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

/// The name and labels of a key made by [`carry_key`].
pub(super) fn parse_carry_key(key: &str) -> Option<(&str, Labels)> {
    let (name, rest) = key.split_once('|')?;
    let labels = rest
        .split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some((name, labels))
}

/// The families of one scrape, as they are gathered.
pub(super) struct Builder {
    /// The families so far.
    pub(super) families: Vec<Family>,
}

impl Builder {
    /// The family `name`, started when it is not there yet; samples are pushed onto the one
    /// returned.
    pub(super) fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
    ) -> &mut Family {
        if let Some(i) = self.families.iter().position(|f| f.name == name) {
            debug_assert!(self.families[i].help == help && self.families[i].kind == kind);
            return &mut self.families[i];
        }
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        self.families.last_mut().expect("just pushed")
    }
}
