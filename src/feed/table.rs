//! One peer's live routes: prefix → route, per address family, with stale marking and a cached
//! sorted export.
//!
//! Routes are kept in a `BTreeMap` keyed by (start, length), so an export is one in-order walk;
//! the exported slice is cached behind an `Arc` until the family changes, so repeated exports of
//! an unchanged table cost a reference count. Measured with the `export_600k` test on this
//! shared 2-core machine: a fresh export of 600,000 IPv4 routes takes 18–21 ms with this crate
//! optimised (opt-level 2) and about 55 ms unoptimised; a cached one takes under 1 µs. The
//! peer's table lock is held during a fresh export, so that peer's updates wait that long.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub use crate::live::Route;

/// A prefix limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitReached;

/// The routes of one address family; `K` is the address as an integer.
#[derive(Debug)]
pub(crate) struct FamilyTable<K> {
    /// (start, length) → route.
    routes: BTreeMap<(K, u8), Route>,
    /// Routes not flagged stale.
    fresh: usize,
    /// The sorted export, while it is current.
    cache: Option<Arc<[(K, u8, Route)]>>,
}

impl<K: Ord + Copy> FamilyTable<K> {
    /// An empty table.
    pub fn new() -> FamilyTable<K> {
        FamilyTable {
            routes: BTreeMap::new(),
            fresh: 0,
            cache: None,
        }
    }

    /// Sets the route of a prefix; fails, changing nothing, when that would make more than
    /// `limit` fresh routes. Returns whether the table changed.
    pub fn announce(
        &mut self,
        key: (K, u8),
        route: Route,
        limit: usize,
    ) -> Result<bool, LimitReached> {
        let route = Route {
            stale: false,
            ..route
        };
        match self.routes.get_mut(&key) {
            Some(old) if *old == route => Ok(false),
            Some(old) => {
                if old.stale {
                    if self.fresh >= limit {
                        return Err(LimitReached);
                    }
                    self.fresh += 1;
                }
                *old = route;
                self.cache = None;
                Ok(true)
            }
            None => {
                if self.fresh >= limit {
                    return Err(LimitReached);
                }
                self.routes.insert(key, route);
                self.fresh += 1;
                self.cache = None;
                Ok(true)
            }
        }
    }

    /// Removes a prefix; returns whether it was there.
    pub fn withdraw(&mut self, key: (K, u8)) -> bool {
        match self.routes.remove(&key) {
            Some(old) => {
                if !old.stale {
                    self.fresh -= 1;
                }
                self.cache = None;
                true
            }
            None => false,
        }
    }

    /// Flags every route stale; returns whether any was fresh.
    pub fn mark_stale(&mut self) -> bool {
        if self.fresh == 0 {
            return false;
        }
        self.routes.values_mut().for_each(|r| r.stale = true);
        self.fresh = 0;
        self.cache = None;
        true
    }

    /// Removes the stale routes; returns whether there were any.
    pub fn drop_stale(&mut self) -> bool {
        if self.stale() == 0 {
            return false;
        }
        self.routes.retain(|_, r| !r.stale);
        self.cache = None;
        true
    }

    /// Fresh routes.
    pub fn fresh(&self) -> usize {
        self.fresh
    }

    /// Stale routes.
    pub fn stale(&self) -> usize {
        self.routes.len() - self.fresh
    }

    /// All routes sorted by (start, length), stale ones included.
    pub fn export(&mut self) -> Arc<[(K, u8, Route)]> {
        if let Some(cache) = &self.cache {
            return cache.clone();
        }
        let list: Arc<[(K, u8, Route)]> = self
            .routes
            .iter()
            .map(|(&(start, len), &route)| (start, len, route))
            .collect();
        self.cache = Some(list.clone());
        list
    }
}

/// Both families of one peer, and when its stale routes expire.
#[derive(Debug)]
pub(crate) struct PeerTable {
    /// IPv4 routes.
    pub v4: FamilyTable<u32>,
    /// IPv6 routes.
    pub v6: FamilyTable<u128>,
    /// When the stale routes are removed, while there are some.
    pub stale_until: Option<Instant>,
}

impl PeerTable {
    /// An empty table.
    pub fn new() -> PeerTable {
        PeerTable {
            v4: FamilyTable::new(),
            v6: FamilyTable::new(),
            stale_until: None,
        }
    }

    /// A session ended: every route becomes stale until `until`. Returns whether anything
    /// changed.
    pub fn session_down(&mut self, until: Instant) -> bool {
        let changed = self.v4.mark_stale() | self.v6.mark_stale();
        if self.v4.stale() + self.v6.stale() > 0 {
            self.stale_until = Some(until);
        }
        changed
    }

    /// Drops the stale routes of the families given (End-of-RIB) and clears the deadline once
    /// none is left. Returns whether anything changed.
    pub fn drop_stale(&mut self, v4: bool, v6: bool) -> bool {
        let changed = (v4 && self.v4.drop_stale()) | (v6 && self.v6.drop_stale());
        if self.v4.stale() + self.v6.stale() == 0 {
            self.stale_until = None;
        }
        changed
    }

    /// Drops all stale routes if their time has come. Returns whether anything changed.
    pub fn expire(&mut self, now: Instant) -> bool {
        match self.stale_until {
            Some(until) if until <= now => self.drop_stale(true, true),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Route = Route {
        origin: 65001,
        path_len: 2,
        stale: false,
    };

    #[test]
    fn stale_routes_are_replaced_and_dropped() {
        let mut t = PeerTable::new();
        t.v4.announce((0x0a00_0000, 8), R, 10).unwrap();
        t.v4.announce((0x0b00_0000, 8), R, 10).unwrap();
        t.v6.announce((1, 128), R, 10).unwrap();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        assert!(t.session_down(later));
        assert_eq!((t.v4.fresh(), t.v4.stale()), (0, 2));
        // Re-announced: fresh again.
        assert!(t.v4.announce((0x0a00_0000, 8), R, 10).unwrap());
        assert_eq!((t.v4.fresh(), t.v4.stale()), (1, 1));
        assert!(!t.expire(Instant::now()));
        // End-of-RIB for IPv4 drops the remaining stale IPv4 route only.
        assert!(t.drop_stale(true, false));
        assert_eq!((t.v4.fresh(), t.v4.stale(), t.v6.stale()), (1, 0, 1));
        assert!(t.stale_until.is_some());
        assert!(t.expire(later));
        assert_eq!((t.v6.fresh(), t.v6.stale(), t.stale_until), (0, 0, None));
    }

    #[test]
    fn limit_counts_fresh_routes() {
        let mut t = FamilyTable::<u32>::new();
        t.announce((1, 32), R, 2).unwrap();
        t.announce((2, 32), R, 2).unwrap();
        assert_eq!(t.announce((3, 32), R, 2), Err(LimitReached));
        // Replacing an existing route is always allowed.
        assert_eq!(t.announce((2, 32), Route { origin: 7, ..R }, 2), Ok(true));
        assert!(t.withdraw((1, 32)));
        assert_eq!(t.announce((3, 32), R, 2), Ok(true));
        let list = t.export();
        assert_eq!(list.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn export_600k() {
        let mut t = FamilyTable::<u32>::new();
        for i in 0..600_000u32 {
            t.announce((i << 8, 24), R, usize::MAX).unwrap();
        }
        let start = Instant::now();
        let list = t.export();
        let fresh = start.elapsed();
        let start = Instant::now();
        let again = t.export();
        let cached = start.elapsed();
        assert_eq!((list.len(), again.len()), (600_000, 600_000));
        assert!(list.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        eprintln!("export of 600k routes: {fresh:?} fresh, {cached:?} cached");
        assert!(fresh < std::time::Duration::from_secs(2));
    }
}
