//! Counter cells with one row per writer: the query path's counters without sharing.
//!
//! A [`Tally`] is a block of `rows × cells` counters, allocated once. Each DNS worker thread
//! owns a row and is its only writer, so it adds with a plain load and store (no locked
//! instruction, no cache line shared with another worker); rows shared by several writers
//! (the TCP tasks) add atomically. Readers (a metrics scrape, `ctl stats`) sum a cell over the
//! rows. Rows are padded to whole cache lines.
//!
//! What a cell counts is decided by whoever allocates the tally; this module knows numbers
//! only. A [`Histogram`] of durations (health-check latencies) is the other shape counts take
//! off the query path.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters per cache line.
const LINE: usize = 8;

/// `rows × cells` counters.
#[derive(Debug)]
pub struct Tally {
    rows: usize,
    stride: usize,
    cells: usize,
    data: Box<[AtomicU64]>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new(0, 0)
    }
}

impl Tally {
    /// A tally of `rows` rows of `cells` counters, all zero.
    pub fn new(rows: usize, cells: usize) -> Tally {
        let stride = cells.div_ceil(LINE) * LINE;
        Tally {
            rows,
            stride,
            cells,
            data: (0..rows * stride).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Cells per row.
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// Row `i` (the last row when `i` is beyond it, written atomically then), or nothing when
    /// the tally has no rows. `exclusive` promises that no other thread writes this row.
    #[inline]
    pub fn row(&self, i: usize, exclusive: bool) -> Option<Row<'_>> {
        if self.rows == 0 {
            return None;
        }
        let (i, exclusive) = if i < self.rows {
            (i, exclusive)
        } else {
            (self.rows - 1, false)
        };
        Some(Row {
            cells: &self.data[i * self.stride..i * self.stride + self.cells],
            exclusive,
        })
    }

    /// Cell `c` summed over the rows.
    pub fn sum(&self, c: usize) -> u64 {
        if c >= self.cells {
            return 0;
        }
        (0..self.rows)
            .map(|r| self.data[r * self.stride + c].load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Every cell summed over the rows.
    pub fn sums(&self) -> Vec<u64> {
        (0..self.cells).map(|c| self.sum(c)).collect()
    }
}

/// One writer's row of a [`Tally`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    cells: &'a [AtomicU64],
    exclusive: bool,
}

impl Row<'_> {
    /// Adds `n` to cell `c` (ignored when `c` is out of range).
    #[inline(always)]
    pub fn add(&self, c: usize, n: u64) {
        let Some(cell) = self.cells.get(c) else {
            return;
        };
        if self.exclusive {
            // The only writer: a load and a store, no read-modify-write instruction.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds one to cell `c`.
    #[inline(always)]
    pub fn bump(&self, c: usize) {
        self.add(c, 1);
    }
}

/// Buckets of a latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A histogram of durations (cumulative buckets are computed by the reader).
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Observations per bucket of [`LATENCY_BUCKETS`] (the last entry: above them all).
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// Observations.
    pub count: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&mut self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += s;
        self.count += 1;
    }

    /// (upper bound, observations in the bucket alone) per bucket; the last bound, above
    /// every other, is `f64::MAX` (`+Inf`).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &c)| (LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::MAX), c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_and_out_of_range_rows_share_the_last() {
        let t = Tally::new(3, 10);
        t.row(0, true).unwrap().bump(9);
        t.row(1, true).unwrap().add(9, 4);
        t.row(7, true).unwrap().add(9, 2);
        t.row(2, false).unwrap().bump(0);
        t.row(0, true).unwrap().bump(10);
        assert_eq!(t.sum(9), 7);
        assert_eq!(t.sum(0), 1);
        assert_eq!(t.sum(10), 0);
        assert_eq!(t.sums().len(), 10);
        assert!(Tally::new(0, 4).row(0, true).is_none());
    }

    #[test]
    fn shared_rows_count_every_writer() {
        let t = std::sync::Arc::new(Tally::new(1, 1));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        t.row(0, false).unwrap().bump(0);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.sum(0), 40_000);
    }
}
