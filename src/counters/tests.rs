//! The counters' unit tests: cells, rows, sums and what is carried over.

use super::*;
use crate::wire::rtype;

#[test]
fn query_cells_do_not_overlap() {
    let mut seen = std::collections::HashSet::new();
    for t in 0..2 {
        for q in 0..query::QTYPES.len() {
            for r in 0..query::RCODES.len() {
                assert!(seen.insert(query::grid(t, q, r)));
            }
        }
        for x in query::Cell::ALL {
            assert!(seen.insert(query::extra(t, x)));
        }
    }
    assert_eq!(seen.len(), query::CELLS);
    assert!(seen.iter().all(|&c| c < query::CELLS));
    assert_eq!(query::qtype_index(rtype::AAAA), 8);
    assert_eq!(query::qtype_index(999), query::QTYPES.len() - 1);
    assert_eq!(query::rcode_index(rcode::BADVERS), 6);
}

#[test]
fn written_cells_fold_into_the_read_layout() {
    let mut seen = std::collections::HashSet::new();
    for t in 0..2 {
        for q in 0..query::QTYPES.len() {
            for r in 0..query::RCODES.len() {
                for ecs in [false, true] {
                    assert!(seen.insert(query::answered(t, q, r, ecs)));
                }
            }
        }
        for x in query::Cell::ALL {
            assert!(seen.insert(query::raw_extra(t, x)));
        }
    }
    assert_eq!(seen.len(), query::RAW_CELLS);
    let c = Counters::new(1);
    let row = c.query_tally().row(0, true).unwrap();
    let a = query::qtype_index(rtype::A);
    let nx = query::rcode_index(rcode::NXDOMAIN);
    row.bump(query::answered(0, a, 0, true));
    row.bump(query::answered(0, a, 0, false));
    row.bump(query::answered(1, a, nx, true));
    row.bump(query::raw_extra(0, query::Cell::Dropped));
    let q = c.queries();
    assert_eq!(q[query::grid(0, a, 0)], 2);
    assert_eq!(q[query::grid(1, a, nx)], 1);
    assert_eq!(q[query::extra(0, query::Cell::EcsPresent)], 1);
    assert_eq!(q[query::extra(0, query::Cell::EcsAbsent)], 1);
    assert_eq!(q[query::extra(1, query::Cell::EcsPresent)], 1);
    assert_eq!(q[query::extra(0, query::Cell::Dropped)], 1);
    assert_eq!(q.iter().sum::<u64>(), 2 + 1 + 2 + 1 + 1);
}

#[test]
fn slots_are_exclusive_until_the_shared_row() {
    let c = Counters::new(2);
    let a = c.udp_slot();
    let b = c.udp_slot();
    let extra = c.udp_slot();
    assert!(a.exclusive && b.exclusive && a.row != b.row);
    assert!(!extra.exclusive);
    assert_eq!(extra.row, c.shared_slot().row);
}

#[test]
fn histogram_buckets_are_cumulative() {
    let mut h = Histogram::default();
    h.observe(Duration::from_micros(500));
    h.observe(Duration::from_millis(30));
    h.observe(Duration::from_secs(9));
    let b = h.buckets();
    assert_eq!(b[0], (0.001, 1));
    assert_eq!(b[4], (0.05, 1));
    assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 3);
    assert_eq!(*b.last().unwrap(), (f64::MAX, 1));
    assert_eq!(h.count, 3);
}

/// Each single cell's index is its place in `Cell::ALL`, and its `ctl stats` name (also its
/// hand-over key) is nobody else's.
#[test]
fn single_cells_are_declared_once() {
    let mut names = std::collections::HashSet::new();
    for (i, cell) in query::Cell::ALL.into_iter().enumerate() {
        assert_eq!(cell.index(), i, "{cell:?}");
        if let Some(n) = cell.reading().stats {
            assert!(names.insert(n), "{n} twice");
        }
    }
    let c = Counters::new(1);
    let stats: Vec<&str> = c.stats().into_iter().map(|(n, _)| n).collect();
    let unique: std::collections::HashSet<&str> = stats.iter().copied().collect();
    assert_eq!(unique.len(), stats.len(), "{stats:?}");
    assert!(names.iter().all(|n| unique.contains(n)));
}
