//! A 64-bit mixing function shared by everything that needs a cheap, well-spread hash of an
//! integer: spreading clients over nodes, the rate limiter's slots, check jitter.

/// A 64-bit mixer (splitmix64's finaliser): every input bit affects every output bit.
#[inline]
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
