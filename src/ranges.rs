//! Address-range algebra for compiling maps: flatten nested prefixes by longest match, overlay
//! several layers, merge equal neighbours, and cut the result into CIDR blocks.
//!
//! Addresses are `u128` for both families; `bits` (32 or 128) says which. Ranges are
//! inclusive `(start, end, value)` triples, sorted and non-overlapping. This module is pure
//! computation, used only when a snapshot is built.

/// An inclusive range of addresses with a value.
pub type Range = (u128, u128, u32);

/// The last address of a family.
pub fn max_addr(bits: u8) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// The last address of the block `start/len`.
pub fn block_end(start: u128, len: u8, bits: u8) -> u128 {
    let host = bits - len;
    if host >= 128 {
        u128::MAX
    } else {
        start | ((1u128 << host) - 1)
    }
}

/// Masks `addr` to `len` bits.
pub fn mask(addr: u128, len: u8, bits: u8) -> u128 {
    let host = bits - len;
    if host >= 128 {
        0
    } else {
        addr & !((1u128 << host) - 1)
    }
}

/// The length of the widest CIDR block that holds `addr` and lies within `start..=end` (which
/// holds `addr`): what a value of that range is valid for around `addr`.
pub fn widest_block(addr: u128, start: u128, end: u128, bits: u8) -> u8 {
    (0..=bits)
        .find(|&len| {
            let s = mask(addr, len, bits);
            s >= start && block_end(s, len, bits) <= end
        })
        .unwrap_or(bits)
}

/// Appends `(start, end, value)` to ranges built in ascending order, extending the last range
/// instead when it has the same value and ends right before `start`.
pub fn push_merged(out: &mut Vec<Range>, start: u128, end: u128, value: u32) {
    match out.last_mut() {
        Some(last) if last.2 == value && last.1.checked_add(1) == Some(start) => last.1 = end,
        _ => out.push((start, end, value)),
    }
}

/// Turns possibly nested prefixes into non-overlapping ranges where each address carries the
/// value of its longest matching prefix. For a prefix given twice, the last one wins.
pub fn flatten(mut prefixes: Vec<(u128, u8, u32)>, bits: u8) -> Vec<Range> {
    for p in prefixes.iter_mut() {
        p.0 = mask(p.0, p.1, bits);
    }
    // Sort by start, shorter (enclosing) first, in place; a stable sort keeps equal prefixes
    // in their order, and [`Flat`] lets the last of them win.
    prefixes.sort_by_key(|&(start, len, _)| (start, len));
    // Each prefix starts a range and may resume its parent's after it: between n and 2n + 1.
    let mut out: Vec<Range> = Vec::with_capacity(prefixes.len() + prefixes.len() / 2);
    out.extend(Flat::new(prefixes.into_iter(), bits));
    out.shrink_to_fit();
    out
}

/// [`flatten`] as it goes, for prefixes that come sorted by (start, length) with host bits
/// clear (a live feed's table is kept so): yields the ranges in ascending order and holds
/// only the prefixes enclosing the current one. Of a prefix given twice, the last one wins.
/// With full BGP tables a build reads millions of prefixes this way instead of holding each
/// table's ranges at once.
pub struct Flat<I: Iterator> {
    /// The prefixes not yet read.
    prefixes: std::iter::Peekable<I>,
    /// The family's width.
    bits: u8,
    /// The prefixes enclosing the last one read: (end, value).
    stack: Vec<(u128, u32)>,
    /// The first address not yet yielded (`None` past the end of the space).
    cursor: Option<u128>,
}

impl<I: Iterator<Item = (u128, u8, u32)>> Flat<I> {
    /// Flattens `prefixes` of a family of `bits`.
    pub fn new(prefixes: I, bits: u8) -> Flat<I> {
        Flat {
            prefixes: prefixes.peekable(),
            bits,
            stack: Vec::new(),
            cursor: Some(0),
        }
    }
}

impl<I: Iterator<Item = (u128, u8, u32)>> Iterator for Flat<I> {
    type Item = Range;

    fn next(&mut self) -> Option<Range> {
        loop {
            // Close the innermost open prefix when it ends before the next one starts.
            if let Some(&(top_end, top_v)) = self.stack.last() {
                let next_start = self.prefixes.peek().map(|p| p.0);
                if next_start.is_none_or(|s| top_end < s) {
                    self.stack.pop();
                    let from = self.cursor;
                    self.cursor = top_end.checked_add(1);
                    match from {
                        Some(c) if c <= top_end => return Some((c, top_end, top_v)),
                        _ => continue,
                    }
                }
            }
            let (start, len, v) = self.prefixes.next()?;
            // The enclosing prefix's part before this one.
            let before = match (self.cursor, self.stack.last()) {
                (Some(c), Some(&(_, top_v))) if c < start => Some((c, start - 1, top_v)),
                _ => None,
            };
            self.cursor = Some(start);
            self.stack.push((block_end(start, len, self.bits), v));
            if before.is_some() {
                return before;
            }
        }
    }
}

/// A layer of an [`Overlay`]: sorted, non-overlapping ranges, borrowed, owned or computed as
/// they are read.
pub type Layer<'a> = Box<dyn Iterator<Item = Range> + 'a>;

/// Overlays `layers` (each sorted and non-overlapping) over the whole space of `bits`,
/// calling `decide` with each layer's value (None in gaps) for every elementary piece, and
/// returns the covering ranges with equal neighbours merged. A layer is anything that lends
/// its ranges as a slice (owned or borrowed), so that shared layers are not copied.
pub fn overlay<L: AsRef<[Range]>>(
    layers: &[L],
    bits: u8,
    decide: impl FnMut(&[Option<u32>]) -> u32,
) -> Vec<Range> {
    let layers = layers.iter().map(|l| l.as_ref().iter().copied()).collect();
    Overlay::new(layers, bits, decide).collect()
}

/// [`overlay`] as it goes: yields the covering ranges in ascending order, equal neighbours
/// merged, reading each layer once. The pieces are found by walking the layers in step (a
/// piece ends where the first layer changes after its start), so that nothing is held but one
/// value per layer: with full BGP tables a build overlays millions of ranges, and a list of
/// every cut (with its sort), and then of every merged range, were the largest of its
/// temporaries.
pub struct Overlay<L: Iterator<Item = Range>, F> {
    /// The layers, each at its first range not ending before the current piece.
    layers: Vec<std::iter::Peekable<L>>,
    /// The current piece's value in each layer.
    values: Vec<Option<u32>>,
    /// Decides a piece from its layers' values.
    decide: F,
    /// The family's last address.
    top: u128,
    /// Where the next piece starts (`None` when the space is covered).
    start: Option<u128>,
    /// The merged range not yet yielded.
    pending: Option<Range>,
}

impl<L: Iterator<Item = Range>, F: FnMut(&[Option<u32>]) -> u32> Overlay<L, F> {
    /// Overlays `layers` over the space of `bits`, deciding each piece with `decide`.
    pub fn new(layers: Vec<L>, bits: u8, decide: F) -> Overlay<L, F> {
        Overlay {
            values: vec![None; layers.len()],
            layers: layers.into_iter().map(Iterator::peekable).collect(),
            decide,
            top: max_addr(bits),
            start: Some(0),
            pending: None,
        }
    }
}

impl<L: Iterator<Item = Range>, F: FnMut(&[Option<u32>]) -> u32> Iterator for Overlay<L, F> {
    type Item = Range;

    fn next(&mut self) -> Option<Range> {
        while let Some(start) = self.start {
            let mut end = self.top;
            for (l, value) in self.layers.iter_mut().zip(self.values.iter_mut()) {
                while l.next_if(|r| r.1 < start).is_some() {}
                *value = match l.peek() {
                    Some(&(s, e, v)) if s <= start => {
                        end = end.min(e);
                        Some(v)
                    }
                    Some(&(s, _, _)) => {
                        end = end.min(s - 1);
                        None
                    }
                    None => None,
                };
            }
            let v = (self.decide)(&self.values);
            self.start = if end >= self.top { None } else { Some(end + 1) };
            match &mut self.pending {
                Some(p) if p.2 == v => p.1 = end,
                _ => {
                    if let Some(done) = self.pending.replace((start, end, v)) {
                        return Some(done);
                    }
                }
            }
        }
        self.pending.take()
    }
}

/// Cuts covering ranges into the minimal list of CIDR blocks: `(start, len, value)`.
/// Each block is the largest aligned block around its addresses inside its range, so its
/// length is the ECS scope for every address in it.
pub fn blocks(ranges: &[Range], bits: u8) -> Vec<(u128, u8, u32)> {
    let mut out = Vec::new();
    for_each_block(ranges, bits, |s, len, v| out.push((s, len, v)));
    out
}

/// [`blocks`] without the list: `f` gets each block in turn.
pub fn for_each_block(ranges: &[Range], bits: u8, mut f: impl FnMut(u128, u8, u32)) {
    for &(s, e, v) in ranges {
        range_blocks((s, e, v), bits, &mut f);
    }
}

/// The blocks of one range, in turn (see [`blocks`]).
pub fn range_blocks((s, e, v): Range, bits: u8, mut f: impl FnMut(u128, u8, u32)) {
    let mut cur = s;
    loop {
        // Largest block aligned at `cur` that fits before `e`.
        let align = if cur == 0 {
            bits as u32
        } else {
            cur.trailing_zeros().min(bits as u32)
        };
        // ... and the largest that fits before `e`: 2^host <= e - cur + 1.
        let span = e - cur;
        let fit = if span == u128::MAX {
            128
        } else {
            127 - (span + 1).leading_zeros()
        };
        let host = align.min(fit);
        let len = bits - host as u8;
        f(cur, len, v);
        let end = block_end(cur, len, bits);
        if end >= e {
            break;
        }
        cur = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_of_one_layer_matches_the_general_case() {
        let a: Vec<Range> = vec![(3, 9, 1), (10, 19, 1), (40, 49, 2), (200, 255, 3)];
        let empty: Vec<Range> = Vec::new();
        // A second layer that covers everything (so the general path runs) and is ignored.
        let cover: Vec<Range> = vec![(0, 255, 7)];
        let pick = |v: &[Option<u32>]| v[0].map_or(0, |x| x + 10);
        let fast = overlay(&[a.clone(), empty], 8, pick);
        let general = overlay(&[a, cover], 8, pick);
        assert_eq!(fast, general);
        assert_eq!(
            fast,
            vec![
                (0, 2, 0),
                (3, 19, 11),
                (20, 39, 0),
                (40, 49, 12),
                (50, 199, 0),
                (200, 255, 13)
            ]
        );
    }

    /// Random nested prefixes over a small space: [`Flat`] over the sorted list and [`overlay`]
    /// of several such layers give every address what a point-wise look says.
    #[test]
    fn flat_and_overlay_agree_with_every_address() {
        let mut x: u32 = 7;
        let mut rand = |n: u32| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) % n
        };
        for _ in 0..200 {
            let layers: Vec<Vec<(u128, u8, u32)>> = (0..3)
                .map(|_| {
                    let mut p: Vec<(u128, u8, u32)> = (0..rand(12))
                        .map(|_| {
                            let len = rand(9) as u8;
                            (mask(rand(256) as u128, len, 8), len, rand(4))
                        })
                        .collect();
                    p.sort_by_key(|&(s, l, _)| (s, l));
                    p
                })
                .collect();
            // The value of the longest prefix covering `a`, the last of equal ones.
            let point = |l: &[(u128, u8, u32)], a: u128| {
                l.iter()
                    .filter(|&&(s, len, _)| s <= a && a <= block_end(s, len, 8))
                    .max_by_key(|p| p.1)
                    .map(|p| p.2)
            };
            let flat: Vec<Vec<Range>> = layers
                .iter()
                .map(|l| Flat::new(l.iter().copied(), 8).collect())
                .collect();
            for (l, f) in layers.iter().zip(&flat) {
                assert_eq!(f, &flatten(l.clone(), 8));
                assert!(f.windows(2).all(|w| w[0].1 < w[1].0));
            }
            let decide = |v: &[Option<u32>]| v.iter().map(|o| o.map_or(9, |x| x)).sum::<u32>();
            let over = overlay(&flat, 8, decide);
            assert!(
                over.windows(2)
                    .all(|w| w[0].1 + 1 == w[1].0 && w[0].2 != w[1].2)
            );
            assert_eq!((over[0].0, over[over.len() - 1].1), (0, 255));
            for a in 0..256u128 {
                let values: Vec<Option<u32>> = layers.iter().map(|l| point(l, a)).collect();
                let r = over.iter().find(|r| r.0 <= a && a <= r.1).unwrap();
                assert_eq!(r.2, decide(&values), "address {a}");
            }
        }
    }

    #[test]
    fn flatten_longest_match() {
        // 10/8 → 1, 10.1/16 → 2, 10.1.2/24 → 3, 11/8 → 4 (as u32 space)
        let p = vec![
            (10u128 << 24, 8, 1),
            (11 << 24, 8, 4),
            ((10 << 24) | (1 << 16), 16, 2),
            ((10 << 24) | (1 << 16) | (2 << 8), 24, 3),
        ];
        let r = flatten(p, 32);
        let a = |x: u128, y: u128, z: u128, w: u128| (x << 24) | (y << 16) | (z << 8) | w;
        assert_eq!(
            r,
            vec![
                (a(10, 0, 0, 0), a(10, 0, 255, 255), 1),
                (a(10, 1, 0, 0), a(10, 1, 1, 255), 2),
                (a(10, 1, 2, 0), a(10, 1, 2, 255), 3),
                (a(10, 1, 3, 0), a(10, 1, 255, 255), 2),
                (a(10, 2, 0, 0), a(10, 255, 255, 255), 1),
                (a(11, 0, 0, 0), a(11, 255, 255, 255), 4),
            ]
        );
        // The whole IPv6 space does not overflow.
        assert_eq!(flatten(vec![(0, 0, 9)], 128), vec![(0, u128::MAX, 9)]);
    }

    #[test]
    fn overlay_merges_and_covers() {
        let geo = vec![(0, 99, 1), (100, 199, 2)];
        let op = vec![(150, 159, 7)];
        let r = overlay(&[geo, op], 8, |v| v[1].unwrap_or(v[0].unwrap_or(0)));
        assert_eq!(
            r,
            vec![
                (0, 99, 1),
                (100, 149, 2),
                (150, 159, 7),
                (160, 199, 2),
                (200, 255, 0)
            ]
        );
    }

    #[test]
    fn blocks_are_maximal() {
        let b = blocks(&[(0, 99, 1), (100, 255, 2)], 8);
        assert_eq!(
            b,
            vec![
                (0, 2, 1),
                (64, 3, 1),
                (96, 6, 1),
                (100, 6, 2),
                (104, 5, 2),
                (112, 4, 2),
                (128, 1, 2)
            ]
        );
        // Brute force: every block is the largest aligned block around each of its
        // addresses that stays inside its range.
        let ranges = vec![(0, 36, 1), (37, 200, 2), (201, 255, 3)];
        for (s, len, v) in blocks(&ranges, 8) {
            let (rs, re, _) = ranges.iter().find(|r| r.2 == v).unwrap();
            if len > 0 {
                let parent = mask(s, len - 1, 8);
                assert!(
                    parent < *rs || block_end(parent, len - 1, 8) > *re,
                    "block {s}/{len} is not maximal"
                );
            }
        }
        assert_eq!(blocks(&[(0, u128::MAX, 5)], 128), vec![(0, 0, 5)]);
    }
}
