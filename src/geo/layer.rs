//! What is kept of a GeoIP database once it has been walked: compact range lists per family
//! (a start address and a value per range; IPv4 starts in 32 bits), the location keys they
//! index, and, where a map ranks by distance or a tool asks, the coordinates. The database
//! file itself is not kept: compilation, `_why`, `explain` and `lookup` read these.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ranges::{self, Range};

/// A value that marks a gap (addresses the database does not know).
pub(super) const GAP: u32 = u32::MAX;

/// An address of one family as a range start.
pub trait Start: Copy + Ord + std::fmt::Debug {
    /// Address bits of the family.
    const BITS: u8;
    /// From the common `u128` form (the value must fit).
    fn from_u128(a: u128) -> Self;
    /// To the common `u128` form.
    fn to_u128(self) -> u128;
}

impl Start for u32 {
    const BITS: u8 = 32;
    fn from_u128(a: u128) -> Self {
        a as u32
    }
    fn to_u128(self) -> u128 {
        self as u128
    }
}

impl Start for u128 {
    const BITS: u8 = 128;
    fn from_u128(a: u128) -> Self {
        a
    }
    fn to_u128(self) -> u128 {
        self
    }
}

/// Sorted, non-overlapping ranges of one family, stored as their starts and values: a range
/// ends where the next one starts (the last at the end of the family), and gaps are ranges
/// with no value. Eight bytes per IPv4 range, twenty per IPv6 range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spans<T> {
    starts: Vec<T>,
    values: Vec<u32>,
}

impl<T: Start> Spans<T> {
    /// Ranges with a value.
    pub fn len(&self) -> usize {
        self.values.iter().filter(|&&v| v != GAP).count()
    }

    /// True when no address has a value.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(|&v| v == GAP)
    }

    /// Appends `(start, end, value)`; ranges come in ascending order and do not overlap. A
    /// range that continues the last one with the same value extends it.
    fn push(&mut self, end_of_last: &mut Option<u128>, start: u128, end: u128, value: u32) {
        match *end_of_last {
            Some(e) if e.checked_add(1) == Some(start) => {
                if self.values.last() != Some(&value) {
                    self.starts.push(T::from_u128(start));
                    self.values.push(value);
                }
            }
            Some(_) | None => {
                let gap_at = end_of_last.map_or(0, |e| e.saturating_add(1));
                if gap_at < start {
                    self.starts.push(T::from_u128(gap_at));
                    self.values.push(GAP);
                }
                self.starts.push(T::from_u128(start));
                self.values.push(value);
            }
        }
        *end_of_last = Some(end);
    }

    /// Builds from ranges in ascending order.
    pub fn from_ranges(list: impl IntoIterator<Item = Range>) -> Spans<T> {
        let mut out = SpansBuilder::default();
        for (s, e, v) in list {
            out.push(s, e, v);
        }
        out.finish()
    }

    /// The ranges with a value, in order, in the common `u128` form.
    pub fn iter(&self) -> impl Iterator<Item = Range> + '_ {
        let top = ranges::max_addr(T::BITS);
        (0..self.starts.len()).filter_map(move |i| {
            let v = self.values[i];
            (v != GAP).then(|| {
                let end = self
                    .starts
                    .get(i + 1)
                    .map_or(top, |n| n.to_u128() - 1);
                (self.starts[i].to_u128(), end, v)
            })
        })
    }

    /// The range holding `addr`, with its value; None in a gap.
    pub fn find(&self, addr: u128) -> Option<Range> {
        let a = T::from_u128(addr);
        let i = self.starts.partition_point(|&s| s <= a).checked_sub(1)?;
        let v = self.values[i];
        if v == GAP {
            return None;
        }
        let end = self
            .starts
            .get(i + 1)
            .map_or(ranges::max_addr(T::BITS), |n| n.to_u128() - 1);
        Some((self.starts[i].to_u128(), end, v))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<T>() + self.values.capacity() * 4
    }
}

/// Collects ranges in ascending order into [`Spans`].
pub struct SpansBuilder<T> {
    spans: Spans<T>,
    /// The first address this builder covers (a gap runs from it to the first range).
    origin: u128,
    end: Option<u128>,
}

impl<T> Default for SpansBuilder<T> {
    fn default() -> Self {
        SpansBuilder::from(0)
    }
}

impl<T> SpansBuilder<T> {
    /// A builder for ranges from `origin` on.
    pub fn from(origin: u128) -> Self {
        SpansBuilder {
            spans: Spans {
                starts: Vec::new(),
                values: Vec::new(),
            },
            origin,
            end: None,
        }
    }
}

impl<T: Start> SpansBuilder<T> {
    /// Appends a range; see [`Spans`].
    pub fn push(&mut self, start: u128, end: u128, value: u32) {
        if self.end.is_none() && self.origin > 0 {
            // The gap before the first range starts at the origin, not at address zero.
            self.end = Some(self.origin - 1);
        }
        self.spans.push(&mut self.end, start, end, value);
    }

    /// Appends the ranges of `next` (which all lie after this builder's), their values mapped
    /// by `map`.
    pub fn append(&mut self, next: SpansBuilder<T>, map: impl Fn(u32) -> u32) {
        let Some(last_end) = next.end else {
            return;
        };
        let n = next.spans.starts.len();
        for i in 0..n {
            let v = next.spans.values[i];
            if v == GAP {
                continue;
            }
            let end = match next.spans.starts.get(i + 1) {
                Some(s) => s.to_u128() - 1,
                None => last_end,
            };
            self.push(next.spans.starts[i].to_u128(), end, map(v));
        }
    }

    /// The spans, their lists trimmed to their length.
    pub fn finish(mut self) -> Spans<T> {
        // The last range ends where the next one starts: after it, a gap to the end.
        if let Some(e) = self.end
            && e < ranges::max_addr(T::BITS)
        {
            self.spans.starts.push(T::from_u128(e + 1));
            self.spans.values.push(GAP);
        }
        self.spans.starts.shrink_to_fit();
        self.spans.values.shrink_to_fit();
        self.spans
    }
}

/// Both families of a layer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Families {
    /// IPv4.
    pub v4: Spans<u32>,
    /// IPv6.
    pub v6: Spans<u128>,
}

impl Families {
    /// The ranges of one family (IPv4 when `v6` is false), in the common `u128` form.
    pub fn ranges(&self, v6: bool) -> Box<dyn Iterator<Item = Range> + '_> {
        if v6 {
            Box::new(self.v6.iter())
        } else {
            Box::new(self.v4.iter())
        }
    }

    /// The range holding `addr` (an IPv4 address as its 32 bits when `v6` is false).
    pub fn find(&self, v6: bool, addr: u128) -> Option<Range> {
        if v6 {
            self.v6.find(addr)
        } else {
            self.v4.find(addr)
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }
}

/// (continent, country, subdivision).
pub type GeoKey = (Option<String>, Option<String>, Option<String>);

/// A database flattened for compilation: for location databases the values index
/// [`GeoLayer::keys`]; for ASN databases they are the ASN.
#[derive(Debug, Default)]
pub struct GeoLayer {
    /// Location keys (empty for ASN databases).
    pub keys: Vec<GeoKey>,
    /// The ranges.
    pub spans: Families,
}

impl GeoLayer {
    /// Several location databases as one layer, the first database that knows an address
    /// winning (configuration order): a later database fills only what the earlier ones lack.
    /// One database is returned as it is; none gives an empty layer.
    pub fn merged(layers: &[Arc<GeoLayer>]) -> Arc<GeoLayer> {
        match layers {
            [] => Arc::new(GeoLayer::default()),
            [one] => one.clone(),
            _ => {
                let mut out = GeoLayer::default();
                let mut key_ids: HashMap<GeoKey, u32> = HashMap::new();
                // Each database's key ids, renumbered into the merged key list.
                let renumber: Vec<Vec<u32>> = layers
                    .iter()
                    .map(|l| {
                        l.keys
                            .iter()
                            .map(|k| {
                                *key_ids.entry(k.clone()).or_insert_with(|| {
                                    out.keys.push(k.clone());
                                    (out.keys.len() - 1) as u32
                                })
                            })
                            .collect()
                    })
                    .collect();
                for v6 in [false, true] {
                    let bits = if v6 { 128 } else { 32 };
                    let family: Vec<Vec<Range>> = layers
                        .iter()
                        .zip(&renumber)
                        .map(|(l, ids)| {
                            l.spans
                                .ranges(v6)
                                .map(|(s, e, k)| (s, e, ids[k as usize]))
                                .collect()
                        })
                        .collect();
                    let merged = ranges::overlay(&family, bits, |v| {
                        v.iter().flatten().next().copied().unwrap_or(GAP)
                    });
                    let known = merged.into_iter().filter(|r| r.2 != GAP);
                    if v6 {
                        out.spans.v6 = Spans::from_ranges(known);
                    } else {
                        out.spans.v4 = Spans::from_ranges(known);
                    }
                }
                Arc::new(out)
            }
        }
    }
}

/// The coordinates of a location database: ranges whose values index `points`.
#[derive(Debug, Default)]
pub struct Locations {
    /// `(latitude, longitude)` by id; equal coordinates share an id.
    pub points: Vec<(f64, f64)>,
    /// The ranges.
    pub spans: Families,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_keep_ranges_gaps_and_merge_neighbours() {
        let list = vec![
            (0x0a00_0000, 0x0aff_ffff, 1),
            (0x0b00_0000, 0x0bff_ffff, 1),
            (0x0c00_0000, 0x0c00_00ff, 2),
            (0xc000_0200, 0xc000_02ff, 3),
            (0xffff_ff00, 0xffff_ffff, 4),
        ];
        let s: Spans<u32> = Spans::from_ranges(list.clone());
        let back: Vec<Range> = s.iter().collect();
        assert_eq!(
            back,
            vec![
                (0x0a00_0000, 0x0bff_ffff, 1),
                (0x0c00_0000, 0x0c00_00ff, 2),
                (0xc000_0200, 0xc000_02ff, 3),
                (0xffff_ff00, 0xffff_ffff, 4)
            ]
        );
        assert_eq!(s.len(), 4);
        assert_eq!(s.find(0x0b12_3456), Some((0x0a00_0000, 0x0bff_ffff, 1)));
        assert_eq!(s.find(0x0900_0000), None, "before the first range");
        assert_eq!(s.find(0x0c00_0100), None, "in a gap");
        assert_eq!(s.find(0xffff_ffff), Some((0xffff_ff00, 0xffff_ffff, 4)));
        let short: Spans<u32> = Spans::from_ranges(vec![(0x0a00_0000, 0x0aff_ffff, 1)]);
        assert_eq!(short.find(0x0b00_0000), None, "after the last range");
        assert_eq!(short.iter().collect::<Vec<_>>(), vec![(0x0a00_0000, 0x0aff_ffff, 1)]);
        // Two builders, the second from an origin, appended with renumbered values.
        let mut low = SpansBuilder::<u32>::default();
        low.push(0x0100_0000, 0x01ff_ffff, 0);
        let mut high = SpansBuilder::<u32>::from(0x8000_0000);
        high.push(0x9000_0000, 0x90ff_ffff, 0);
        high.push(0x9100_0000, 0x91ff_ffff, 1);
        low.append(high, |v| v + 5);
        let joined: Vec<Range> = low.finish().iter().collect();
        assert_eq!(
            joined,
            vec![
                (0x0100_0000, 0x01ff_ffff, 0),
                (0x9000_0000, 0x90ff_ffff, 5),
                (0x9100_0000, 0x91ff_ffff, 6)
            ]
        );
        let v6: Spans<u128> = Spans::from_ranges(vec![(0, u128::MAX, 9)]);
        assert_eq!(v6.find(u128::MAX), Some((0, u128::MAX, 9)));
        assert!(Spans::<u32>::default().is_empty());
    }
}
