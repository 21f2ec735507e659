//! Who the client of a query is: its ECS subnet (an IPv4-mapped one as the IPv4 subnet it
//! holds; only a global one), else the resolver's address; and the scope echoed back in the
//! family of the query's option.

use std::net::IpAddr;

use crate::wire::{ClientSubnet, Query};

/// False for addresses that may not stand for a client on the Internet (private, loopback,
/// link-local, unspecified, broadcast, documentation, shared (100.64/10), reserved (240/4),
/// unique-local and documentation IPv6): true for the rest.
#[inline]
fn is_global(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            // Most addresses start with an octet no special range starts with: one bit
            // test answers for them.
            let first = a.octets()[0];
            SPECIAL_V4_FIRST[usize::from(first >> 6)] & (1 << (first & 63)) == 0 || !special_v4(a)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || s[0] & 0xfe00 == 0xfc00
                || s[0] & 0xffc0 == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// The IPv4 addresses [`is_global`] excludes.
fn special_v4(a: std::net::Ipv4Addr) -> bool {
    a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_documentation()
        || a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64
        || a.octets()[0] >= 240
}

/// The first octets of the IPv4 ranges [`is_global`] excludes (0, 10, 100, 127, 169, 172,
/// 192, 198, 203, 240–255), one bit each, four words of 64.
const SPECIAL_V4_FIRST: [u64; 4] = {
    let mut bits = [0u64; 4];
    let firsts = [0u8, 10, 100, 127, 169, 172, 192, 198, 203];
    let mut i = 0;
    while i < firsts.len() {
        bits[(firsts[i] >> 6) as usize] |= 1 << (firsts[i] & 63);
        i += 1;
    }
    let mut o = 240;
    while o <= 255 {
        bits[o >> 6] |= 1 << (o & 63);
        o += 1;
    }
    bits
};

/// An ECS subnet given as an IPv4-mapped IPv6 prefix (`::ffff:0:0/96` or longer) as the IPv4
/// subnet it stands for; any other subnet unchanged.
fn unmapped(s: ClientSubnet) -> ClientSubnet {
    match s.addr {
        IpAddr::V6(a) if s.source_prefix >= 96 => match a.to_ipv4_mapped() {
            Some(v4) => ClientSubnet {
                addr: IpAddr::V4(v4),
                source_prefix: s.source_prefix - 96,
            },
            None => s,
        },
        _ => s,
    }
}

/// The SCOPE PREFIX-LENGTH to echo for a decision of `scope` bits about `client`: in the
/// family of the query's option (RFC 7871 §7.2.1), so an IPv4 scope for an IPv4-mapped subnet
/// is counted from the start of the IPv6 address.
pub(super) fn echoed_scope(scope: u8, client: IpAddr, q: &Query<'_>) -> u8 {
    match q.edns.and_then(|e| e.ecs) {
        Some(s) if s.addr.is_ipv6() && client.is_ipv4() => scope.saturating_add(96).min(128),
        _ => scope,
    }
}

/// The address a service decides by, how it was chosen, and whether the ECS scope applies.
/// An IPv4-mapped ECS subnet decides as the IPv4 subnet it holds.
#[inline]
pub(super) fn client_address(
    use_ecs: bool,
    ecs: Option<ClientSubnet>,
    src: IpAddr,
) -> (IpAddr, &'static str, bool) {
    match ecs.map(unmapped) {
        Some(s) if use_ecs && s.source_prefix > 0 && is_global(s.addr) => (s.addr, "ECS", true),
        Some(_) if !use_ecs => (src, "source address; ECS ignored by policy", false),
        Some(s) if s.source_prefix == 0 => (src, "source address; ECS /0", false),
        Some(_) => (src, "source address; ECS not global", false),
        None => (src, "source address", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_first_octet_bits_cover_every_special_range() {
        for first in 0..=255u8 {
            for rest in [
                [0, 0, 0],
                [0, 0, 1],
                [0, 2, 7],
                [16, 0, 1],
                [31, 255, 255],
                [51, 100, 9],
                [64, 0, 1],
                [113, 0, 0],
                [127, 255, 255],
                [168, 1, 1],
                [254, 3, 4],
                [255, 255, 255],
            ] {
                let a = Ipv4Addr::new(first, rest[0], rest[1], rest[2]);
                assert_eq!(is_global(IpAddr::V4(a)), !special_v4(a), "{a}");
            }
        }
        assert!(!is_global("100.64.0.1".parse().unwrap()));
        assert!(is_global("100.128.0.1".parse().unwrap()));
        assert!(!is_global("198.51.100.7".parse().unwrap()));
        assert!(is_global("8.8.8.8".parse().unwrap()));
    }
}
