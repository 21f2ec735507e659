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

impl RouteKey for u64 {
    #[inline]
    fn top16(self) -> usize {
        (self >> 48) as usize
    }
    fn from_top16(k: usize) -> Self {
        (k as u64) << 48
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
        self.entries.shrink_to_fit();
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

    /// Bytes held by the blocks and the directory.
    pub fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(T, u32)>() + self.dir.capacity() * 8
    }

    /// The blocks, ascending: (start, decision index, prefix length).
    pub fn blocks(&self) -> impl Iterator<Item = (T, u32, u8)> + '_ {
        self.entries.iter().map(|e| (e.0, e.1 >> 8, e.1 as u8))
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

/// The IPv6 route table, keyed by the top 64 bits of the address: blocks no longer than /64
/// (nearly all of GeoIP and BGP data) are stored with 64-bit starts, half the memory of full
/// addresses. A /64 that holds longer blocks has one entry marked [`NESTED`] in the main table,
/// and its blocks, with full addresses, in a second table that only such addresses reach.
#[derive(Debug, Clone, Default)]
pub struct V6Table {
    short: RouteTable<u64>,
    nested: RouteTable<u128>,
    /// Entries of `short` marked [`NESTED`].
    marked: usize,
}

/// The decision index that marks a /64 whose blocks are in the nested table. The compiler
/// keeps decision indexes below it (fewer than 2^23 - 1 decisions).
pub const NESTED: u32 = (1 << 23) - 1;

impl From<RouteTable<u128>> for V6Table {
    fn from(full: RouteTable<u128>) -> V6Table {
        let mut t = V6Table::default();
        let mut last_nested: Option<u64> = None;
        for (start, decision, len) in full.blocks() {
            let top = (start >> 64) as u64;
            if len <= 64 {
                t.short.push(top, decision, len);
            } else {
                // Every block of this /64 is longer than /64 (a shorter one would cover it).
                if last_nested != Some(top) {
                    t.short.push(top, NESTED, 64);
                    t.marked += 1;
                    last_nested = Some(top);
                }
                t.nested.push(start, decision, len);
            }
        }
        t.short.finish();
        t.nested.finish();
        t
    }
}

impl V6Table {
    /// Blocks in the table.
    pub fn len(&self) -> usize {
        self.short.len() - self.marked + self.nested.len()
    }

    /// True when the table has no block.
    pub fn is_empty(&self) -> bool {
        self.short.is_empty()
    }

    /// See [`RouteTable::lookup`].
    #[inline]
    pub fn lookup(&self, addr: u128) -> Option<(u32, u8)> {
        match self.short.lookup((addr >> 64) as u64)? {
            (NESTED, _) => self.nested.lookup(addr),
            found => Some(found),
        }
    }

    /// See [`RouteTable::directory_entry`].
    #[inline]
    pub fn directory_entry(&self, addr: u128) -> Option<&u64> {
        self.short.directory_entry((addr >> 64) as u64)
    }

    /// See [`RouteTable::warm_blocks`].
    #[inline]
    pub fn warm_blocks(&self, addr: u128) -> u64 {
        self.short.warm_blocks((addr >> 64) as u64)
    }

    /// The blocks, ascending, with full addresses: (start, decision index, prefix length).
    pub fn blocks(&self) -> impl Iterator<Item = (u128, u32, u8)> + '_ {
        let mut nested = self.nested.blocks().peekable();
        self.short.blocks().flat_map(move |(top, decision, len)| {
            let start = (top as u128) << 64;
            let mut out = Vec::new();
            if decision == NESTED {
                while let Some(&(s, d, l)) = nested.peek() {
                    if (s >> 64) as u64 != top {
                        break;
                    }
                    out.push((s, d, l));
                    nested.next();
                }
            } else {
                out.push((start, decision, len));
            }
            out
        })
    }

    /// Block starts, ascending, as full addresses.
    pub fn starts(&self) -> impl Iterator<Item = u128> + '_ {
        self.blocks().map(|b| b.0)
    }

    /// Bytes held by the blocks and the directories.
    pub fn bytes(&self) -> usize {
        self.short.bytes() + self.nested.bytes()
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
        // IPv6 blocks no longer than /64 are keyed by their top 64 bits, with the same answers.
        let mut full = RouteTable::<u128>::default();
        full.push(0, 1, 1);
        full.push(0x8000u128 << 112, 2, 2);
        full.push(0xc000u128 << 112, 3, 3);
        full.push(0xe000u128 << 112, 1, 3);
        full.finish();
        let short = V6Table::from(full.clone());
        assert!(short.nested.is_empty());
        for a in [
            0u128,
            0x8000u128 << 112 | 1,
            (0xc000u128 << 112) - 1,
            u128::MAX,
        ] {
            assert_eq!(short.lookup(a), full.lookup(a), "{a:#x}");
        }
        assert_eq!(
            short.starts().collect::<Vec<_>>(),
            full.starts().collect::<Vec<_>>()
        );
        // Blocks longer than /64 (in ::/64 and in 2001:db8::/64) go to the nested table.
        let db8 = 0x2001_0db8u128 << 96;
        let mut long = RouteTable::<u128>::default();
        for (start, d, len) in [
            (0, 1, 126),
            (4, 2, 128),
            (5, 1, 128),
            (6, 1, 127),
            (8, 1, 125),
            (16, 1, 124),
            (32, 1, 123),
            (64, 1, 122),
            (128, 1, 121),
            (256, 1, 120),
        ] {
            long.push(start, d, len);
        }
        long.push(1u128 << 64, 3, 64);
        long.push(db8, 4, 65);
        long.push(db8 | 1u128 << 63, 5, 65);
        long.push(db8 + (1u128 << 64), 6, 64);
        long.finish();
        let t = V6Table::from(long.clone());
        assert_eq!(
            t.short.len(),
            4,
            "::/64, ::1:0:0:0/64, 2001:db8::/64, the /64 after"
        );
        assert_eq!(t.nested.len(), 12);
        for a in [
            0u128,
            4,
            5,
            6,
            7,
            8,
            300,
            1u128 << 64,
            db8,
            db8 | 1u128 << 63,
            db8 + (1u128 << 64),
        ] {
            assert_eq!(t.lookup(a), long.lookup(a), "{a:#x}");
        }
        assert_eq!(
            t.blocks().collect::<Vec<_>>(),
            long.blocks().collect::<Vec<_>>()
        );
    }
}
