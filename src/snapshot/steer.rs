//! What the capacity controller publishes beside a `spread: capacity` service: each node's
//! weight factor and each region's overflow fraction, as atomics written off the query path
//! ([`crate::capacity`]) and read by [`Service::pick`](super::Service::pick) with one relaxed
//! load each. Nothing here is recomputed per query or per adjustment: the route tables stay
//! as compiled.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::hash::mix;

/// A weight factor of exactly 1 (16.16 fixed point).
pub const UNIT: u32 = 1 << 16;

/// The controller's settings of one service (`capacity:` in the map).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteerSettings {
    /// The utilisation each node is steered toward.
    pub target: f64,
    /// Time between controller steps.
    pub interval: std::time::Duration,
    /// The largest change per step: relative, of a weight; absolute, of an overflow fraction.
    pub max_step: f64,
    /// Utilisation differences smaller than this are left alone.
    pub deadband: f64,
    /// The largest overflow fraction of a region.
    pub max_overflow: f64,
}

impl Default for SteerSettings {
    fn default() -> SteerSettings {
        SteerSettings {
            target: 0.8,
            interval: std::time::Duration::from_secs(5),
            max_step: 0.5,
            deadband: 0.05,
            max_overflow: 0.95,
        }
    }
}

/// The published shares of one service.
#[derive(Debug)]
pub struct Steering {
    /// The controller's settings.
    pub settings: SteerSettings,
    /// Per node of the snapshot: the factor applied to its weight, 16.16 fixed point
    /// ([`UNIT`] = unchanged, the static weight).
    factors: Box<[AtomicU32]>,
    /// Per region of the service: the fraction of its clients sent on to the next region of
    /// their chain, in units of 2⁻³².
    overflow: Box<[AtomicU32]>,
    /// Per region: [`crate::hash::name_key`] of its name, what the overflow order hashes by.
    region_keys: Box<[u64]>,
    /// Per region: None when no chain of the service uses it, else the regions that follow it
    /// in some chain (where its overflow goes). Fixed at compile time.
    follows: Box<[Option<Box<[usize]>>]>,
}

impl Steering {
    /// Shares for `nodes` nodes and the regions named `regions`, used by the chains of
    /// `decisions`: static weights, no overflow.
    pub fn new(
        settings: SteerSettings,
        nodes: usize,
        regions: &[&str],
        decisions: &[super::Decision],
    ) -> Steering {
        let mut follows: Vec<Option<Vec<usize>>> = vec![None; regions.len()];
        for d in decisions {
            for (pos, &r) in d.chain.iter().enumerate() {
                let next = follows[r].get_or_insert_with(Vec::new);
                if let Some(&n) = d.chain.get(pos + 1)
                    && !next.contains(&n)
                {
                    next.push(n);
                }
            }
        }
        Steering {
            settings,
            factors: (0..nodes).map(|_| AtomicU32::new(UNIT)).collect(),
            overflow: regions.iter().map(|_| AtomicU32::new(0)).collect(),
            region_keys: regions.iter().map(|r| crate::hash::name_key(r)).collect(),
            follows: follows
                .into_iter()
                .map(|f| f.map(Vec::into_boxed_slice))
                .collect(),
        }
    }

    /// Whether some chain of the service uses region `r`.
    pub fn used(&self, r: usize) -> bool {
        self.follows.get(r).is_some_and(Option::is_some)
    }

    /// The regions that follow region `r` in some chain of the service.
    pub fn next(&self, r: usize) -> &[usize] {
        self.follows
            .get(r)
            .and_then(Option::as_deref)
            .unwrap_or_default()
    }

    /// The weight factor of node `n`, as a multiplier.
    #[inline(always)]
    pub fn factor(&self, n: usize) -> f64 {
        self.factors
            .get(n)
            .map_or(1.0, |f| f.load(Ordering::Relaxed) as f64 / UNIT as f64)
    }

    /// Sets node `n`'s weight factor (clamped to 1/65536..=65535).
    pub fn set_factor(&self, n: usize, factor: f64) {
        if let Some(f) = self.factors.get(n) {
            let v = (factor * UNIT as f64).round().clamp(1.0, u32::MAX as f64) as u32;
            f.store(v, Ordering::Relaxed);
        }
    }

    /// The overflow fraction of region `r`.
    pub fn overflow(&self, r: usize) -> f64 {
        self.overflow
            .get(r)
            .map_or(0.0, |o| o.load(Ordering::Relaxed) as f64 / 4_294_967_296.0)
    }

    /// Sets region `r`'s overflow fraction (clamped to 0..=1).
    pub fn set_overflow(&self, r: usize, fraction: f64) {
        if let Some(o) = self.overflow.get(r) {
            let v = (fraction.clamp(0.0, 1.0) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
            o.store(v, Ordering::Relaxed);
        }
    }

    /// Whether the client `client_key` is among the clients region `r` sends on: those whose
    /// hash for the region falls below the overflow fraction, so that a growing fraction only
    /// adds clients and a shrinking one brings back the last ones sent.
    #[inline(always)]
    pub fn overflows(&self, r: usize, client_key: u64) -> bool {
        let Some(o) = self.overflow.get(r) else {
            return false;
        };
        let f = o.load(Ordering::Relaxed);
        f != 0 && overflow_hash(self.region_keys[r], client_key) < f
    }
}

/// A client's position in the overflow order of the region whose name key is `region_key`
/// (uniform over `u32`).
#[inline(always)]
fn overflow_hash(region_key: u64, client_key: u64) -> u32 {
    (mix(client_key ^ region_key ^ 0x0f10_0f10_0f10_0f10) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_monotone_and_proportional() {
        let s = Steering::new(SteerSettings::default(), 2, &["a", "b"], &[]);
        assert!(!(0..1000).any(|k| s.overflows(0, k)));
        s.set_overflow(0, 0.25);
        let quarter: Vec<u64> = (0..40_000).filter(|&k| s.overflows(0, k)).collect();
        assert!(
            (9_000..11_000).contains(&quarter.len()),
            "{}",
            quarter.len()
        );
        s.set_overflow(0, 0.5);
        assert!(
            quarter.iter().all(|&k| s.overflows(0, k)),
            "growing only adds"
        );
        assert!(
            !(0..1000).any(|k| s.overflows(1, k)),
            "other region untouched"
        );
        s.set_factor(1, 0.5);
        assert_eq!(s.factor(1), 0.5);
        assert_eq!(s.factor(0), 1.0);
        assert_eq!(s.factor(9), 1.0);
    }
}
