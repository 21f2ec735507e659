//! Response rate limiting for UDP: at most N responses per second to one client network
//! (/24 for IPv4, /56 for IPv6 by default), with slip: every `slip`-th response over the limit
//! goes out truncated (TC, no records), so that a real client behind a spoofed flood still gets
//! its answer over TCP, while the flood's victims receive at most a small, empty packet.
//!
//! Each UDP worker owns one table, allocated once: a fixed array of counters indexed by a hash
//! of the network (a collision resets the slot, which can only under-limit). No lock, no
//! allocation per query.

use std::net::IpAddr;

use crate::config::Rrl;
use crate::hash::mix;

/// Slots per worker.
const SLOTS: usize = 1 << 16;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send it truncated.
    Slip,
    /// Drop it.
    Drop,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    network: u64,
    second: u32,
    count: u32,
    limited: u32,
}

/// One worker's rate limiter.
pub struct RateLimiter {
    config: Rrl,
    /// The exempt IPv4 networks as (network, mask), read without `IpNetwork`'s dispatch.
    exempt4: Vec<(u32, u32)>,
    /// The exempt IPv6 networks as (network, mask).
    exempt6: Vec<(u128, u128)>,
    slots: Vec<Slot>,
}

impl RateLimiter {
    /// A limiter for `config`.
    pub fn new(config: Rrl) -> RateLimiter {
        let (mut exempt4, mut exempt6) = (Vec::new(), Vec::new());
        for n in &config.exempt {
            match n {
                ip_network::IpNetwork::V4(n) => {
                    let m = u32::MAX.checked_shl(32 - n.netmask() as u32).unwrap_or(0);
                    exempt4.push((u32::from(n.network_address()) & m, m));
                }
                ip_network::IpNetwork::V6(n) => {
                    let m = u128::MAX.checked_shl(128 - n.netmask() as u32).unwrap_or(0);
                    exempt6.push((u128::from(n.network_address()) & m, m));
                }
            }
        }
        RateLimiter {
            config,
            exempt4,
            exempt6,
            slots: vec![Slot::default(); SLOTS],
        }
    }

    /// The verdict for one more response to `client` during second `now`.
    pub fn check(&mut self, client: IpAddr, now: u32) -> Verdict {
        let exempt = match client {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.exempt4.iter().any(|&(n, m)| a & m == n)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.exempt6.iter().any(|&(n, m)| a & m == n)
            }
        };
        if exempt {
            return Verdict::Send;
        }
        let network = match client {
            IpAddr::V4(a) => {
                let bits = self.config.ipv4_prefix as u32;
                let m = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                (u32::from(a) & m) as u64
            }
            IpAddr::V6(a) => {
                let bits = self.config.ipv6_prefix as u32;
                let m = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                let v = u128::from(a) & m;
                (1 << 63) ^ mix((v >> 64) as u64) ^ (v as u64)
            }
        };
        let slot = &mut self.slots[(mix(network) as usize) & (SLOTS - 1)];
        if slot.network != network || slot.second != now {
            *slot = Slot {
                network,
                second: now,
                count: 0,
                limited: 0,
            };
        }
        slot.count = slot.count.saturating_add(1);
        if slot.count <= self.config.responses_per_second {
            return Verdict::Send;
        }
        slot.limited += 1;
        if self.config.slip > 0 && slot.limited.is_multiple_of(self.config.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// Turns the response in `msg` into a truncated one: header and question only, TC set.
/// Returns the new length, or None when the message cannot be read.
pub fn truncate(msg: &mut [u8]) -> Option<usize> {
    if msg.len() < 12 {
        return None;
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let mut end = 12;
    if qd == 1 {
        while *msg.get(end)? != 0 {
            end += 1 + msg[end] as usize;
        }
        end += 5;
        if end > msg.len() {
            return None;
        }
    }
    msg[2] |= 0x02;
    msg[6..12].fill(0);
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rps: u32, slip: u32) -> RateLimiter {
        RateLimiter::new(Rrl {
            responses_per_second: rps,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
        })
    }

    #[test]
    fn limits_per_network_and_second_with_slip() {
        let mut l = limiter(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let v: Vec<Verdict> = (0..8)
            .map(|i| l.check(if i % 2 == 0 { a } else { b }, 7))
            .collect();
        use Verdict::*;
        assert_eq!(v, vec![Send, Send, Send, Drop, Slip, Drop, Slip, Drop]);
        assert_eq!(
            l.check(other, 7),
            Send,
            "another network has its own budget"
        );
        assert_eq!(l.check(a, 8), Send, "a new second");
        let ten: IpAddr = "10.1.2.3".parse().unwrap();
        assert!((0..100).all(|_| l.check(ten, 8) == Send), "exempt");
        let mut wide = RateLimiter::new(Rrl {
            responses_per_second: 1,
            slip: 0,
            exempt: vec![
                "0.0.0.0/0".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            ..l.config.clone()
        });
        assert!((0..10).all(|_| wide.check(a, 8) == Send), "exempt: /0");
        let doc: IpAddr = "2001:db8:1::1".parse().unwrap();
        assert!((0..10).all(|_| wide.check(doc, 8) == Send), "exempt: IPv6");
        let other6: IpAddr = "2001:db9::1".parse().unwrap();
        assert_eq!(wide.check(other6, 8), Send);
        assert_eq!(wide.check(other6, 8), Drop, "outside the IPv6 exemption");
        let mut none = limiter(1, 0);
        none.check(a, 1);
        assert!(
            (0..10).all(|_| none.check(a, 1) == Drop),
            "slip 0 drops all"
        );
        // IPv6 by /56.
        let mut l = limiter(1, 0);
        assert_eq!(l.check("2001:db8:0:1::1".parse().unwrap(), 1), Send);
        assert_eq!(l.check("2001:db8:0:2::1".parse().unwrap(), 1), Drop);
        assert_eq!(l.check("2001:db8:1::1".parse().unwrap(), 1), Send);
    }

    #[test]
    fn truncation_keeps_the_question() {
        let mut m = vec![
            0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1, 1, b'a', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1,
            0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4,
        ];
        let n = truncate(&mut m).unwrap();
        assert_eq!(n, 19);
        assert_eq!(&m[..12], &[0x12, 0x34, 0x86, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
}
