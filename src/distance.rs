//! Great-circle distance between two points of the Earth, for regions that rank their nodes by
//! distance (`rank: distance`): the compiler ranks with it, explanations show it.
//!
//! The haversine formula on a sphere of radius [`EARTH_RADIUS_KM`]: within about 0.5 % of the
//! ellipsoidal distance, far closer than GeoIP coordinates are to where a client really is.

/// The mean radius of the Earth, in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0;

/// Distances closer than this (kilometres) count as equal: such nodes share a rank and weight
/// decides among them.
pub const TIE_KM: f64 = 1.0;

/// The great-circle distance in kilometres between `a` and `b`, each `(latitude, longitude)`
/// in degrees.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let dlat = lat2 - lat1;
    let dlon = lon2 - lon1;
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Ranks distances: for each input, 0 for the nearest, 1 for the next distance, and so on;
/// distances within [`TIE_KM`] of the previous rank's first distance share its rank. The
/// result has the same length and order as `km`.
pub fn ranks(km: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..km.len()).collect();
    order.sort_by(|&a, &b| km[a].total_cmp(&km[b]));
    let mut out = vec![0; km.len()];
    let mut rank = 0;
    let mut tier_start: Option<f64> = None;
    for i in order {
        match tier_start {
            Some(s) if km[i] - s < TIE_KM => {}
            Some(_) => {
                rank += 1;
                tier_start = Some(km[i]);
            }
            None => tier_start = Some(km[i]),
        }
        out[i] = rank;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONDON: (f64, f64) = (51.5074, -0.1278);
    const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
    const SYDNEY: (f64, f64) = (-33.8688, 151.2093);
    const FRANKFURT: (f64, f64) = (50.1109, 8.6821);
    const SAO_PAULO: (f64, f64) = (-23.5505, -46.6333);

    fn near(got: f64, want: f64) -> bool {
        (got - want).abs() <= want * 0.01
    }

    #[test]
    fn known_city_pairs() {
        for (a, b, km) in [
            (LONDON, NEW_YORK, 5570.0),
            (LONDON, SYDNEY, 16_990.0),
            (LONDON, FRANKFURT, 636.0),
            (FRANKFURT, SAO_PAULO, 9_800.0),
            (NEW_YORK, SAO_PAULO, 7_680.0),
        ] {
            let d = haversine_km(a, b);
            assert!(near(d, km), "{a:?} to {b:?}: {d} km, expected about {km}");
            assert!((d - haversine_km(b, a)).abs() < 1e-9, "symmetric");
        }
        assert_eq!(haversine_km(LONDON, LONDON), 0.0);
        // Antipodes: half the circumference, without NaN from rounding.
        let half = haversine_km((0.0, 0.0), (0.0, 180.0));
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
        // Across the antimeridian: Fiji to Samoa is about 1150 km, not most of the globe.
        assert!(near(haversine_km((-18.1, 178.4), (-13.8, -171.8)), 1150.0));
    }

    #[test]
    fn ranks_by_distance_with_ties() {
        assert_eq!(ranks(&[]), Vec::<usize>::new());
        assert_eq!(ranks(&[300.0, 10.0, 5000.0]), vec![1, 0, 2]);
        // Within 1 km: one rank.
        assert_eq!(ranks(&[10.0, 10.5, 400.0, 400.2]), vec![0, 0, 1, 1]);
        // A tier is measured from its first distance: 0, 0.9 tie, 1.8 does not.
        assert_eq!(ranks(&[0.0, 0.9, 1.8]), vec![0, 0, 1]);
    }
}
