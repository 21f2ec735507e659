//! The route table: a flat, sorted table of non-overlapping CIDR blocks covering the whole
//! address space, with a directory on the top 16 bits. One lookup yields a decision index and
//! the block's prefix length, which is the ECS scope. Built by the compiler, read by every
//! query.

/// An address as a route table key.
pub trait RouteKey: Ord + Copy {
    /// The top 16 bits.
    fn top16(self) -> usize;
    /// The first address whose top 16 bits are `k`.
    fn from_top16(k: usize) -> Self;
}

impl RouteKey for u32 {
    #[inline]
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
    fn from_top16(k: usize) -> Self {
        (k as u32) << 16
    }
}

impl RouteKey for u128 {
    #[inline]
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
    fn from_top16(k: usize) -> Self {
        (k as u128) << 112
    }
}

/// A flat table of non-overlapping CIDR blocks covering the whole address space, with a
/// directory on the top 16 bits. A bucket that lies inside one block holds its answer in the
/// directory itself (one memory access per lookup); other buckets point at their first block
/// and are searched among their own few blocks.
#[derive(Debug, Clone, Default)]
pub struct RouteTable<T> {
    /// (block start, decision << 8 | prefix length), ascending.
    entries: Vec<(T, u32)>,
    /// Per top-16 bucket (65536, plus one past the end): low 32 bits, the index of the block
    /// holding the bucket's first address; bit 63 set when that block covers the whole bucket,
    /// with the packed decision in bits 32..63.
    dir: Vec<u64>,
}

const DIRECT: u64 = 1 << 63;

/// A directory bucket: answered by the directory word, or by a search among these blocks.
enum Bucket<'a, T> {
    Direct(u32),
    Blocks(&'a [(T, u32)]),
}

impl<T: RouteKey> RouteTable<T> {
    /// Blocks in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table has no block.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a block; blocks must come in ascending order and cover the whole space. At most
    /// 2^23 distinct decisions.
    pub fn push(&mut self, start: T, decision: u32, len: u8) {
        self.entries.push((start, (decision << 8) | len as u32));
    }

    /// Builds the directory; call once after the last `push`.
    pub fn finish(&mut self) {
        let block_of = |a: T| self.entries.partition_point(|e| e.0 <= a).saturating_sub(1);
        let firsts: Vec<usize> = (0..65536usize)
            .map(|k| block_of(T::from_top16(k)))
            .collect();
        let last = self.entries.len().saturating_sub(1);
        self.dir = (0..=65536usize)
            .map(|k| {
                if k == 65536 {
                    return last as u64;
                }
                let lo = firsts[k];
                // The bucket lies inside block `lo` when no other block starts within it.
                let whole = match self.entries.get(lo + 1) {
                    None => true,
                    Some(next) => k + 1 < 65536 && next.0 >= T::from_top16(k + 1),
                };
                match (whole, self.entries.get(lo)) {
                    (true, Some(e)) => DIRECT | ((e.1 as u64) << 32) | lo as u64,
                    _ => lo as u64,
                }
            })
            .collect();
    }

    /// The directory word [`lookup`](Self::lookup) of `addr` reads first. A batch of
    /// queries reads these in a tight loop before answering, so that their cache misses
    /// overlap.
    #[inline]
    pub fn directory_entry(&self, addr: T) -> Option<&u64> {
        self.dir.get(addr.top16())
    }

    /// Reads the block a binary search for `addr` reads first (nothing when the directory
    /// answers by itself) and returns a value derived from it, for the same purpose as
    /// [`directory_entry`](Self::directory_entry).
    #[inline]
    pub fn warm_blocks(&self, addr: T) -> u64 {
        match self.bucket(addr.top16()) {
            Bucket::Direct(packed) => packed as u64,
            Bucket::Blocks(slice) => slice.get(slice.len() / 2).map_or(0, |e| e.1 as u64),
        }
    }

    /// Where bucket `k`'s answer is: in the directory itself, or among its own blocks.
    #[inline]
    fn bucket(&self, k: usize) -> Bucket<'_, T> {
        match self.dir.get(k) {
            Some(&d) if d & DIRECT != 0 => Bucket::Direct(((d >> 32) & 0x7fff_ffff) as u32),
            Some(&d) => {
                let lo = (d & 0xffff_ffff) as usize;
                let hi = self
                    .dir
                    .get(k + 1)
                    .map(|&n| (n & 0xffff_ffff) as usize + 1)
                    .unwrap_or(self.entries.len());
                Bucket::Blocks(
                    self.entries
                        .get(lo..hi.min(self.entries.len()))
                        .unwrap_or_default(),
                )
            }
            // No directory (an empty table): search everything.
            None => Bucket::Blocks(&self.entries),
        }
    }

    /// Block starts, ascending.
    pub fn starts(&self) -> impl Iterator<Item = T> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    /// The block containing `addr`: (decision index, prefix length).
    #[inline]
    pub fn lookup(&self, addr: T) -> Option<(u32, u8)> {
        let packed = match self.bucket(addr.top16()) {
            Bucket::Direct(packed) => packed,
            Bucket::Blocks(slice) => {
                let i = slice.partition_point(|e| e.0 <= addr);
                slice.get(i.checked_sub(1)?)?.1
            }
        };
        Some((packed >> 8, packed as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_lookup() {
        let mut t = RouteTable::default();
        let blocks = [
            (0u32, 0),
            (10, 1),
            (20, 2),
            (0x0001_0000, 3),
            (0x0001_0005, 4),
            (0xffff_0000, 5),
            (0xffff_8000, 6),
        ];
        for (s, d) in blocks {
            t.push(s, d, 8);
        }
        t.finish();
        assert_eq!(t.lookup(0), Some((0, 8)));
        assert_eq!(t.lookup(15), Some((1, 8)));
        assert_eq!(t.lookup(0xffff), Some((2, 8)));
        assert_eq!(t.lookup(0x0001_0004), Some((3, 8)));
        assert_eq!(t.lookup(0x0001_0005), Some((4, 8)));
        assert_eq!(t.lookup(0x0002_0000), Some((4, 8)), "a direct bucket");
        assert_eq!(t.lookup(0xfffe_ffff), Some((4, 8)));
        assert_eq!(t.lookup(0xffff_7fff), Some((5, 8)));
        assert_eq!(t.lookup(u32::MAX), Some((6, 8)));
        // Against a plain search, everywhere near a boundary.
        for (s, _) in blocks {
            for a in [s.saturating_sub(1), s, s.saturating_add(1)] {
                let want = blocks.iter().rev().find(|b| b.0 <= a).unwrap().1;
                assert_eq!(t.lookup(a), Some((want, 8)), "{a:#x}");
            }
        }
        // Unfinished tables still answer (by binary search).
        let mut u = RouteTable::default();
        u.push(0u128, 7, 0);
        assert_eq!(u.lookup(u128::MAX), Some((7, 0)));
    }
}
