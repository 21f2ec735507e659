//! Copies and comparisons of a few bytes without a call. For a length known only at run time,
//! `copy_from_slice` calls the C library's `memcpy`, which costs more than the copy when the
//! run is short. Two fixed-size copies that overlap in the middle cover any length from the
//! size of one to twice it, in a handful of instructions. The decoder copies the ECS address
//! (0 to 16 bytes) this way; the encoder's copies (the question, record bodies) were measured
//! no cheaper with it and keep `copy_from_slice` (docs/benchmarks.md). [`same_bytes`] compares
//! names eight bytes at a time, for the same reason.

/// Copies `src` into `dst`, which must have the same length (else it panics, as
/// `copy_from_slice` does).
#[inline(always)]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    assert_eq!(dst.len(), n, "copy between slices of different lengths");
    match n {
        16..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        8..=15 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        // First, middle and last byte: one, two or three distinct bytes (a loop here would
        // be turned back into a call).
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        0 => {}
        _ => dst.copy_from_slice(src),
    }
}

/// Whether `a` and `b` are the same bytes, compared eight at a time in line: names are short,
/// and a call to the C library's comparison costs more than comparing them here (the answer
/// path compares a name with a table's key and with a zone's apex).
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    // Whole words from the start, then the last eight bytes (overlapping the last word).
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

#[cfg(test)]
mod tests {
    use super::{copy, same_bytes};

    #[test]
    fn every_length_up_to_a_hundred_copies_exactly() {
        let src: Vec<u8> = (1..=100).collect();
        for n in 0..=100 {
            let mut dst = vec![0u8; n + 8];
            copy(&mut dst[..n], &src[..n]);
            assert_eq!(&dst[..n], &src[..n], "length {n}");
            assert!(
                dst[n..].iter().all(|&b| b == 0),
                "length {n} wrote past the end"
            );
        }
    }

    #[test]
    #[should_panic]
    fn different_lengths_panic() {
        let mut dst = [0u8; 4];
        copy(&mut dst, &[1, 2, 3]);
        unreachable!("{dst:?}");
    }

    #[test]
    fn same_bytes_finds_every_difference() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(37)).collect();
            assert!(same_bytes(&a, &a.clone()));
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!same_bytes(&a, &b), "length {n}, byte {i}");
            }
        }
    }
}
