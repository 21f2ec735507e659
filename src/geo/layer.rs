//! What is kept of a GeoIP database once it has been walked: compact range lists per family
//! (a start address and a value per range; IPv4 starts in 32 bits), the location keys they
//! index, and, where a map ranks by distance or a tool asks, the coordinates. The database
//! file itself is not kept: compilation, `_why`, `explain` and `lookup` read these.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ranges::{self, Range};

/// A value that marks a gap (addresses the database does not know).
pub(super) const GAP: u32 = u32::MAX;

/// The range starts of one family, ascending, in the common `u128` form.
pub trait Starts: Default + Clone + std::fmt::Debug + PartialEq {
    /// Address bits of the family.
    const BITS: u8;
    /// Appends a start (greater than the last).
    fn push(&mut self, a: u128);
    /// Start `i`.
    fn get(&self, i: usize) -> u128;
    /// How many starts there are.
    fn len(&self) -> usize;
    /// True when there is no start.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How many starts are at or below `a`.
    fn at_or_below(&self, a: u128) -> usize;
    /// Bytes held.
    fn bytes(&self) -> usize;
    /// Frees spare capacity.
    fn shrink_to_fit(&mut self);
}

/// IPv4 starts, 32 bits each.
impl Starts for Vec<u32> {
    const BITS: u8 = 32;
    fn push(&mut self, a: u128) {
        Vec::push(self, a as u32);
    }
    fn get(&self, i: usize) -> u128 {
        self[i] as u128
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn at_or_below(&self, a: u128) -> usize {
        self.partition_point(|&s| s as u128 <= a)
    }
    fn bytes(&self) -> usize {
        self.capacity() * 4
    }
    fn shrink_to_fit(&mut self) {
        Vec::shrink_to_fit(self)
    }
}

/// IPv6 starts as their top 64 bits, with the low 64 bits of the few starts that have any
/// (networks longer than /64) listed apart: eight bytes per start instead of sixteen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct V6Starts {
    high: Vec<u64>,
    /// (index, low 64 bits), ascending by index, for starts whose low bits are not zero.
    low: Vec<(u32, u64)>,
}

impl Starts for V6Starts {
    const BITS: u8 = 128;
    fn push(&mut self, a: u128) {
        debug_assert!(
            self.high.is_empty() || a > self.get(self.high.len() - 1),
            "starts pushed in ascending order"
        );
        if a as u64 != 0 {
            self.low.push((self.high.len() as u32, a as u64));
        }
        self.high.push((a >> 64) as u64);
    }
    fn get(&self, i: usize) -> u128 {
        let low = match self.low.binary_search_by_key(&(i as u32), |e| e.0) {
            Ok(k) => self.low[k].1,
            Err(_) => 0,
        };
        ((self.high[i] as u128) << 64) | low as u128
    }
    fn len(&self) -> usize {
        self.high.len()
    }
    fn at_or_below(&self, a: u128) -> usize {
        let top = (a >> 64) as u64;
        let end = self.high.partition_point(|&h| h <= top);
        // Starts within the same /64 as `a` may still lie above it: a binary search within
        // that run (hostile data can put many starts in one /64).
        let (mut lo, mut hi) = (self.high[..end].partition_point(|&h| h < top), end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid) <= a {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
    fn bytes(&self) -> usize {
        self.high.capacity() * 8 + self.low.capacity() * 16
    }
    fn shrink_to_fit(&mut self) {
        self.high.shrink_to_fit();
        self.low.shrink_to_fit();
    }
}

/// Sorted, non-overlapping ranges of one family, stored as their starts and values: a range
/// ends where the next one starts (the last at the end of the family), and gaps are ranges
/// with no value. Values are kept in 16 bits while they fit (location keys: a City database
/// has a few thousand): six bytes per IPv4 range, eighteen per IPv6 range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spans<T> {
    starts: T,
    values: Values,
}

/// The values of [`Spans`], in 16 bits until one does not fit.
#[derive(Clone, Debug, PartialEq)]
enum Values {
    /// `u16::MAX` stands for [`GAP`].
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl Default for Values {
    fn default() -> Self {
        Values::Narrow(Vec::new())
    }
}

impl Values {
    fn push(&mut self, v: u32) {
        match self {
            Values::Narrow(list) if v == GAP => list.push(u16::MAX),
            Values::Narrow(list) if v < u16::MAX as u32 => list.push(v as u16),
            Values::Narrow(list) => {
                let mut wide: Vec<u32> = list.iter().map(|&n| Values::widen(n)).collect();
                wide.push(v);
                *self = Values::Wide(wide);
            }
            Values::Wide(list) => list.push(v),
        }
    }

    fn widen(n: u16) -> u32 {
        if n == u16::MAX { GAP } else { n as u32 }
    }

    #[inline]
    fn get(&self, i: usize) -> u32 {
        match self {
            Values::Narrow(list) => Values::widen(list[i]),
            Values::Wide(list) => list[i],
        }
    }

    fn last(&self) -> Option<u32> {
        match self {
            Values::Narrow(list) => list.last().map(|&n| Values::widen(n)),
            Values::Wide(list) => list.last().copied(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::Narrow(list) => list.len(),
            Values::Wide(list) => list.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Values::Narrow(list) => list.capacity() * 2,
            Values::Wide(list) => list.capacity() * 4,
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            Values::Narrow(list) => list.shrink_to_fit(),
            Values::Wide(list) => list.shrink_to_fit(),
        }
    }
}

impl<T: Starts> Spans<T> {
    /// Ranges with a value.
    pub fn len(&self) -> usize {
        (0..self.values.len())
            .filter(|&i| self.values.get(i) != GAP)
            .count()
    }

    /// True when no address has a value.
    pub fn is_empty(&self) -> bool {
        (0..self.values.len()).all(|i| self.values.get(i) == GAP)
    }

    /// Appends `(start, end, value)`; ranges come in ascending order and do not overlap. A
    /// range that continues the last one with the same value extends it.
    fn push(&mut self, end_of_last: &mut Option<u128>, start: u128, end: u128, value: u32) {
        match *end_of_last {
            Some(e) if e.checked_add(1) == Some(start) => {
                if self.values.last() != Some(value) {
                    self.starts.push(start);
                    self.values.push(value);
                }
            }
            Some(_) | None => {
                let gap_at = end_of_last.map_or(0, |e| e.saturating_add(1));
                if gap_at < start {
                    self.starts.push(gap_at);
                    self.values.push(GAP);
                }
                self.starts.push(start);
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
            let v = self.values.get(i);
            (v != GAP).then(|| {
                let end = if i + 1 < self.starts.len() {
                    self.starts.get(i + 1) - 1
                } else {
                    top
                };
                (self.starts.get(i), end, v)
            })
        })
    }

    /// The range holding `addr`, with its value; None in a gap.
    pub fn find(&self, addr: u128) -> Option<Range> {
        let i = self.starts.at_or_below(addr).checked_sub(1)?;
        let v = self.values.get(i);
        if v == GAP {
            return None;
        }
        let end = if i + 1 < self.starts.len() {
            self.starts.get(i + 1) - 1
        } else {
            ranges::max_addr(T::BITS)
        };
        Some((self.starts.get(i), end, v))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.starts.bytes() + self.values.bytes()
    }
}

/// Collects ranges in ascending order into [`Spans`].
pub struct SpansBuilder<T> {
    spans: Spans<T>,
    /// The first address this builder covers (a gap runs from it to the first range).
    origin: u128,
    end: Option<u128>,
}

impl<T: Starts> Default for SpansBuilder<T> {
    fn default() -> Self {
        SpansBuilder::from(0)
    }
}

impl<T: Starts> SpansBuilder<T> {
    /// A builder for ranges from `origin` on.
    pub fn from(origin: u128) -> Self {
        SpansBuilder {
            spans: Spans {
                starts: T::default(),
                values: Values::default(),
            },
            origin,
            end: None,
        }
    }
}

impl<T: Starts> SpansBuilder<T> {
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
            let v = next.spans.values.get(i);
            if v == GAP {
                continue;
            }
            let end = if i + 1 < n {
                next.spans.starts.get(i + 1) - 1
            } else {
                last_end
            };
            self.push(next.spans.starts.get(i), end, map(v));
        }
    }

    /// The spans, their lists trimmed to their length.
    pub fn finish(mut self) -> Spans<T> {
        // The last range ends where the next one starts: after it, a gap to the end.
        if let Some(e) = self.end
            && e < ranges::max_addr(T::BITS)
        {
            self.spans.starts.push(e + 1);
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
    pub v4: Spans<Vec<u32>>,
    /// IPv6.
    pub v6: Spans<V6Starts>,
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
    fn v6_starts_within_one_slash_64_are_found_by_binary_search() {
        // Many starts inside one /64 (as hostile data could give), around starts in others.
        let mut all: Vec<u128> = vec![0, 1u128 << 64];
        let base = 0x2001_0db8_0000_0001u128 << 64;
        all.extend((0..5000u128).map(|i| base | (i * 7 + 3)));
        all.push(0x2001_0db8_0000_0002u128 << 64);
        let mut s = V6Starts::default();
        for &a in &all {
            s.push(a);
        }
        let reference = |a: u128| all.iter().filter(|&&x| x <= a).count();
        for probe in [
            0,
            5,
            (1u128 << 64) - 1,
            1u128 << 64,
            base,
            base | 3,
            base | 4,
            base | 34_999,
        ]
        .into_iter()
        .chain((0..2000u128).map(|i| base | (i * 13)))
        .chain([base | u64::MAX as u128, u128::MAX])
        {
            assert_eq!(s.at_or_below(probe), reference(probe), "{probe:#x}");
        }
    }

    #[test]
    fn spans_keep_ranges_gaps_and_merge_neighbours() {
        let list = vec![
            (0x0a00_0000, 0x0aff_ffff, 1),
            (0x0b00_0000, 0x0bff_ffff, 1),
            (0x0c00_0000, 0x0c00_00ff, 2),
            (0xc000_0200, 0xc000_02ff, 3),
            (0xffff_ff00, 0xffff_ffff, 4),
        ];
        let s: Spans<Vec<u32>> = Spans::from_ranges(list.clone());
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
        let short: Spans<Vec<u32>> = Spans::from_ranges(vec![(0x0a00_0000, 0x0aff_ffff, 1)]);
        assert_eq!(short.find(0x0b00_0000), None, "after the last range");
        assert_eq!(
            short.iter().collect::<Vec<_>>(),
            vec![(0x0a00_0000, 0x0aff_ffff, 1)]
        );
        // Two builders, the second from an origin, appended with renumbered values.
        let mut low = SpansBuilder::<Vec<u32>>::default();
        low.push(0x0100_0000, 0x01ff_ffff, 0);
        let mut high = SpansBuilder::<Vec<u32>>::from(0x8000_0000);
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
        let v6: Spans<V6Starts> = Spans::from_ranges(vec![(0, u128::MAX, 9)]);
        assert_eq!(v6.find(7), Some((0, u128::MAX, 9)));
        // IPv6 starts inside a /64 keep their low bits.
        let db8 = 0x2001_0db8u128 << 96;
        let fine = vec![
            (db8, db8 + 0xff, 1),
            (db8 + 0x100, db8 + 0x1ff, 2),
            (db8 + (1 << 64), db8 + (2 << 64) - 1, 3),
        ];
        let inside: Spans<V6Starts> = Spans::from_ranges(fine.clone());
        assert_eq!(inside.iter().collect::<Vec<_>>(), fine);
        assert_eq!(inside.find(db8 + 0x150), Some(fine[1]));
        assert_eq!(inside.find(db8 + 0x250), None, "the gap after the /120");
        assert_eq!(inside.find(db8 - 1), None);
        assert_eq!(inside.find(db8 + (1 << 64) + 5), Some(fine[2]));
        // Values beyond 16 bits widen the list; every value reads back.
        let wide: Spans<Vec<u32>> =
            Spans::from_ranges(vec![(0, 9, 3), (10, 19, 70_000), (30, 39, 65_534)]);
        assert_eq!(
            wide.iter().collect::<Vec<_>>(),
            vec![(0, 9, 3), (10, 19, 70_000), (30, 39, 65_534)]
        );
        assert_eq!(wide.find(25), None);
        assert_eq!(v6.find(u128::MAX), Some((0, u128::MAX, 9)));
        assert!(Spans::<Vec<u32>>::default().is_empty());
    }
}
