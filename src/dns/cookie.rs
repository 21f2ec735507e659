//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018): version 1, three
//! reserved octets, a 32-bit timestamp, and SipHash-2-4 over the client cookie, those eight
//! octets and the client's address, keyed by the server secret. A server cookie is good when
//! it hashes right under the current or the previous secret and its timestamp is at most an
//! hour old and at most five minutes ahead (RFC 9018 §4.3). Only queries that carry a COOKIE
//! option come here.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use crate::snapshot::cookie::{CookieKeys, Secret};

/// What a query's COOKIE option says about its client, as [`Outcome`](super::answer::Outcome)
/// carries it (bits; 0 when the query had no COOKIE option).
pub mod status {
    /// A client cookie alone: the client has no server cookie yet ("missing").
    pub const CLIENT_ONLY: u8 = 1;
    /// A server cookie this server made, within its lifetime.
    pub const GOOD: u8 = 2;
    /// A server cookie that does not check out (another secret or address, tampered,
    /// expired, or another version).
    pub const BAD: u8 = 4;
    /// A UDP answer sent truncated because it was larger than `max_nocookie_response` and
    /// the query had no good server cookie.
    pub const NOCOOKIE_TRUNCATED: u8 = 8;
}

/// The oldest a server cookie may be, in seconds (RFC 9018 §4.3: one hour).
const LIFETIME: i64 = 3600;
/// How far ahead of the clock a timestamp may be, in seconds (RFC 9018 §4.3: five minutes).
const SKEW: i64 = 300;
/// A good server cookie older than this is replaced by a fresh one (RFC 9018 §4.3: half an
/// hour).
const RENEW: i64 = 1800;

/// The server cookie for `client_cookie` from `ip`, with `head` (version, reserved,
/// timestamp) as its first eight octets.
pub fn server_cookie(secret: &Secret, client_cookie: &[u8], head: [u8; 8], ip: IpAddr) -> [u8; 16] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client_cookie);
    h.write(&head);
    match ip {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&head);
    // RFC 9018 §4.4: the hash in the order SipHash's reference implementation writes it.
    out[8..].copy_from_slice(&h.finish().to_le_bytes());
    out
}

/// The eight octets before the hash of a version 1 cookie made at `now`.
fn head(now: u32) -> [u8; 8] {
    let mut h = [1, 0, 0, 0, 0, 0, 0, 0];
    h[4..].copy_from_slice(&now.to_be_bytes());
    h
}

/// The verdict on a query's COOKIE option (`cookie`: 8, or 16 to 40 octets, as the decoder
/// let through) from `ip` at `now` (Unix seconds), and the COOKIE option to answer with: the
/// client cookie and a server cookie (the one received when it is good, made with the current
/// secret and not due for renewal; else a new one).
pub fn check(keys: &CookieKeys, cookie: &[u8], ip: IpAddr, now: u32) -> (u8, [u8; 24]) {
    let (client, server) = cookie.split_at(8.min(cookie.len()));
    let mut answer = [0u8; 24];
    answer[..8].copy_from_slice(client);
    let fresh = |answer: &mut [u8; 24]| {
        answer[8..].copy_from_slice(&server_cookie(&keys.current, client, head(now), ip))
    };
    if server.is_empty() {
        fresh(&mut answer);
        return (status::CLIENT_ONLY, answer);
    }
    let good_with = |secret: &Secret| {
        server.len() == 16
            && server[0] == 1
            && server_cookie(
                secret,
                client,
                server[..8].try_into().unwrap_or_default(),
                ip,
            ) == server[..16]
    };
    let stamped = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
    // Serial-number arithmetic: the difference taken modulo 2^32 (RFC 1982).
    let age = i64::from(now.wrapping_sub(stamped) as i32);
    let in_time = (-SKEW..=LIFETIME).contains(&age);
    if in_time && good_with(&keys.current) {
        if age < RENEW {
            answer[8..].copy_from_slice(&server[..16]);
        } else {
            fresh(&mut answer);
        }
        return (status::GOOD, answer);
    }
    fresh(&mut answer);
    if in_time && keys.previous.as_ref().is_some_and(good_with) {
        return (status::GOOD, answer);
    }
    (status::BAD, answer)
}

/// The time for cookies: Unix seconds, modulo 2^32.
pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "cookie_tests.rs"]
mod tests;
