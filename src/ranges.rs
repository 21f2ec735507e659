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
    // Sort by start, shorter (enclosing) first; keep the last of equal prefixes. In place (a
    // stable sort keeps equal prefixes in their order): with full BGP tables the list holds
    // millions of prefixes, and a build's peak memory is what its lists hold at once.
    prefixes.sort_by_key(|&(start, len, _)| (start, len));
    let mut kept = 0;
    for i in 0..prefixes.len() {
        let p = prefixes[i];
        if kept > 0 && (prefixes[kept - 1].0, prefixes[kept - 1].1) == (p.0, p.1) {
            prefixes[kept - 1] = p;
        } else {
            prefixes[kept] = p;
            kept += 1;
        }
    }
    prefixes.truncate(kept);
    let dedup = prefixes;
    // Each prefix starts a range and may resume its parent's after it: between n and 2n + 1.
    let mut out: Vec<Range> = Vec::with_capacity(dedup.len() + dedup.len() / 2);
    // Stack of enclosing prefixes: (end, value); `cursor` is the first address not yet emitted.
    let mut stack: Vec<(u128, u32)> = Vec::new();
    let mut cursor: Option<u128> = Some(0);
    let emit = |out: &mut Vec<Range>, from: u128, to: u128, v: u32| {
        if from <= to {
            out.push((from, to, v));
        }
    };
    for (start, len, v) in dedup {
        let end = block_end(start, len, bits);
        // Close enclosing prefixes that end before this one starts.
        while let Some(&(top_end, top_v)) = stack.last() {
            if top_end >= start {
                break;
            }
            if let Some(c) = cursor {
                emit(&mut out, c, top_end, top_v);
            }
            cursor = top_end.checked_add(1);
            stack.pop();
        }
        if let (Some(c), Some(&(_, top_v))) = (cursor, stack.last())
            && c < start
        {
            emit(&mut out, c, start - 1, top_v);
        }
        cursor = Some(start);
        stack.push((end, v));
    }
    while let Some((top_end, top_v)) = stack.pop() {
        if let Some(c) = cursor {
            emit(&mut out, c, top_end, top_v);
        }
        cursor = top_end.checked_add(1);
    }
    out.shrink_to_fit();
    out
}

/// Overlays `layers` (each sorted and non-overlapping) over the whole space of `bits`,
/// calling `decide` with each layer's value (None in gaps) for every elementary piece, and
/// returns the covering ranges with equal neighbours merged. A layer is anything that lends
/// its ranges as a slice (owned or borrowed), so that shared layers are not copied.
pub fn overlay<L: AsRef<[Range]>>(
    layers: &[L],
    bits: u8,
    mut decide: impl FnMut(&[Option<u32>]) -> u32,
) -> Vec<Range> {
    let top = max_addr(bits);
    // One layer with ranges (the others empty): its ranges and the gaps between them are the
    // pieces, no cut list needed.
    let mut full = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.as_ref().is_empty());
    if let (Some((only, l)), None) = (full.next(), full.next()) {
        let mut values = vec![None; layers.len()];
        let mut out: Vec<Range> = Vec::new();
        let mut next = Some(0u128);
        for &(s, e, v) in l.as_ref() {
            if let Some(gap) = next.filter(|&g| g < s) {
                values[only] = None;
                push_merged(&mut out, gap, s - 1, decide(&values));
            }
            values[only] = Some(v);
            push_merged(&mut out, s, e, decide(&values));
            next = e.checked_add(1).filter(|&n| n <= top);
        }
        if let Some(gap) = next {
            values[only] = None;
            push_merged(&mut out, gap, top, decide(&values));
        }
        return out;
    }
    let mut cuts: Vec<u128> = Vec::new();
    for l in layers {
        for &(s, e, _) in l.as_ref() {
            cuts.push(s);
            if e < top {
                cuts.push(e + 1);
            }
        }
    }
    cuts.push(0);
    // Each layer gives its cuts in order: a stable sort merges those runs.
    cuts.sort();
    cuts.dedup();
    let mut idx = vec![0usize; layers.len()];
    let mut values = vec![None; layers.len()];
    let mut out: Vec<Range> = Vec::new();
    for (ci, &start) in cuts.iter().enumerate() {
        let end = cuts.get(ci + 1).map(|n| n - 1).unwrap_or(top);
        for (li, l) in layers.iter().enumerate() {
            let l = l.as_ref();
            while idx[li] < l.len() && l[idx[li]].1 < start {
                idx[li] += 1;
            }
            values[li] = l.get(idx[li]).filter(|r| r.0 <= start).map(|r| r.2);
        }
        let v = decide(&values);
        push_merged(&mut out, start, end, v);
    }
    out
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
