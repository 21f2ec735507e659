//! The routes Signpost announces itself: the anycast service prefixes, sent on the peers
//! configured to receive them and on no other. The UPDATEs are built as bgpkit-parser models
//! and encoded by it: IPv4 prefixes in the NLRI field (withdrawn in the withdrawn routes
//! field), IPv6 ones in MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760). Whether the routes are
//! announced at all is decided elsewhere and reaches the sessions as one flag
//! ([`super::Feeds::set_announced`]).

use std::net::IpAddr;

use bgpkit_parser::models::{
    Afi, AsPath, AsnLength, AttributeValue, Attributes, BgpMessage, BgpUpdateMessage, Community,
    NetworkPrefix, NextHopAddress, Nlri, Origin, Safi,
};
use bytes::Bytes;
use ipnet::IpNet;

/// One prefix Signpost announces, with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The service prefix (e.g. 192.0.2.53/32).
    pub prefix: IpNet,
    /// The next hop; `None` means the session's local address (of the prefix's family).
    pub next_hop: Option<IpAddr>,
    /// Standard communities (RFC 1997), as (AS, value).
    pub communities: Vec<(u16, u16)>,
}

/// What the UPDATEs of one session need to know about it.
pub(crate) struct SessionView {
    /// Signpost's AS.
    pub local_asn: u32,
    /// The peer is in Signpost's AS (iBGP: empty AS path, LOCAL_PREF).
    pub ibgp: bool,
    /// The session's local address (the default next hop).
    pub local: Option<IpAddr>,
    /// IPv4 unicast was negotiated.
    pub ipv4: bool,
    /// IPv6 unicast was negotiated.
    pub ipv6: bool,
}

/// Why an announcement cannot be sent on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unsendable {
    /// The prefix's family was not negotiated on this session.
    FamilyNotNegotiated(IpNet),
    /// No next hop of the prefix's family: none configured, and the session's own address
    /// is of the other family.
    NoNextHop(IpNet),
}

impl std::fmt::Display for Unsendable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsendable::FamilyNotNegotiated(p) => {
                write!(
                    f,
                    "{p}: its address family is not negotiated on the session"
                )
            }
            Unsendable::NoNextHop(p) => write!(
                f,
                "{p}: no next hop of its family (configure `next_hop`; the session's address is of the other family)"
            ),
        }
    }
}

/// The UPDATE announcing `a` on the session `s`, or why it cannot be sent.
pub(crate) fn announce(a: &Announcement, s: &SessionView) -> Result<Bytes, Unsendable> {
    let v6 = matches!(a.prefix, IpNet::V6(_));
    if (v6 && !s.ipv6) || (!v6 && !s.ipv4) {
        return Err(Unsendable::FamilyNotNegotiated(a.prefix));
    }
    let hop = a
        .next_hop
        .or(s.local.map(|l| l.to_canonical()))
        .filter(|h| h.is_ipv6() == v6)
        .ok_or(Unsendable::NoNextHop(a.prefix))?;
    let path = match s.ibgp {
        true => AsPath::new(),
        false => AsPath::from_sequence([s.local_asn]),
    };
    let mut attrs = vec![
        AttributeValue::Origin(Origin::IGP),
        AttributeValue::AsPath(path),
    ];
    if s.ibgp {
        attrs.push(AttributeValue::LocalPreference(100));
    }
    if !a.communities.is_empty() {
        attrs.push(AttributeValue::Communities(
            a.communities
                .iter()
                .map(|&(asn, value)| Community::Custom(u32::from(asn).into(), value))
                .collect(),
        ));
    }
    let prefix = NetworkPrefix::new(a.prefix, None);
    let mut announced = Vec::new();
    match hop {
        IpAddr::V4(_) => {
            attrs.push(AttributeValue::NextHop(hop));
            announced.push(prefix);
        }
        IpAddr::V6(h) => attrs.push(AttributeValue::MpReachNlri(nlri(
            vec![prefix],
            Some(NextHopAddress::Ipv6(h)),
        ))),
    }
    Ok(encode(BgpUpdateMessage {
        withdrawn_prefixes: Vec::new(),
        attributes: Attributes::from_iter(attrs),
        announced_prefixes: announced,
    }))
}

/// The UPDATE withdrawing `a` on the session `s`; `None` when its family was not negotiated
/// (it was never announced there).
pub(crate) fn withdraw(a: &Announcement, s: &SessionView) -> Option<Bytes> {
    let prefix = NetworkPrefix::new(a.prefix, None);
    let message = match a.prefix {
        IpNet::V4(_) if s.ipv4 => BgpUpdateMessage {
            withdrawn_prefixes: vec![prefix],
            attributes: Attributes::default(),
            announced_prefixes: Vec::new(),
        },
        IpNet::V6(_) if s.ipv6 => BgpUpdateMessage {
            withdrawn_prefixes: Vec::new(),
            attributes: Attributes::from_iter([AttributeValue::MpUnreachNlri(nlri(
                vec![prefix],
                None,
            ))]),
            announced_prefixes: Vec::new(),
        },
        _ => return None,
    };
    Some(encode(message))
}

/// An IPv6 unicast MP_REACH / MP_UNREACH body.
fn nlri(prefixes: Vec<NetworkPrefix>, next_hop: Option<NextHopAddress>) -> Nlri {
    Nlri {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hop,
        prefixes,
        labeled_prefixes: None,
        link_state_nlris: None,
        flowspec_nlris: None,
    }
}

/// Encodes an UPDATE for a 4-byte-ASN session (the only kind Signpost accepts).
fn encode(update: BgpUpdateMessage) -> Bytes {
    BgpMessage::Update(update)
        .encode(AsnLength::Bits32)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpkit_parser::parser::bgp::parse_bgp_message;

    fn view(local: &str) -> SessionView {
        SessionView {
            local_asn: 64500,
            ibgp: false,
            local: Some(local.parse().unwrap()),
            ipv4: true,
            ipv6: true,
        }
    }

    fn parsed(b: Bytes) -> BgpUpdateMessage {
        match parse_bgp_message(&mut b.clone(), false, &AsnLength::Bits32).unwrap() {
            BgpMessage::Update(u) => u,
            other => panic!("not an UPDATE: {other:?}"),
        }
    }

    #[test]
    fn ipv4_goes_in_the_nlri_with_our_as_and_communities() {
        let a = Announcement {
            prefix: "192.0.2.53/32".parse().unwrap(),
            next_hop: None,
            communities: vec![(64500, 53)],
        };
        let u = parsed(announce(&a, &view("198.18.0.2")).unwrap());
        assert_eq!(u.announced_prefixes[0].prefix, a.prefix);
        assert_eq!(u.attributes.next_hop(), Some("198.18.0.2".parse().unwrap()));
        assert_eq!(
            u.attributes.as_path().unwrap().to_u32_vec_opt(false),
            Some(vec![64500])
        );
        let w = parsed(withdraw(&a, &view("198.18.0.2")).unwrap());
        assert_eq!(w.withdrawn_prefixes[0].prefix, a.prefix);
    }

    #[test]
    fn ipv6_goes_in_mp_reach_and_needs_a_next_hop_of_its_family() {
        let a = Announcement {
            prefix: "2001:db8::53/128".parse().unwrap(),
            next_hop: None,
            communities: vec![],
        };
        assert_eq!(
            announce(&a, &view("198.18.0.2")),
            Err(Unsendable::NoNextHop(a.prefix))
        );
        let with_hop = Announcement {
            next_hop: Some("2001:db8::2".parse().unwrap()),
            ..a.clone()
        };
        let u = parsed(announce(&with_hop, &view("198.18.0.2")).unwrap());
        assert!(u.announced_prefixes.is_empty());
        let reach = u.attributes.get_reachable_nlri().unwrap();
        assert_eq!(reach.prefixes[0].prefix, a.prefix);
        let w = parsed(withdraw(&a, &view("198.18.0.2")).unwrap());
        let unreach = w.attributes.get_unreachable_nlri().unwrap();
        assert_eq!(unreach.prefixes[0].prefix, a.prefix);
        let mut v4_only = view("198.18.0.2");
        v4_only.ipv6 = false;
        assert_eq!(withdraw(&a, &v4_only), None);
    }
}
