//! Reading an UPDATE into route changes, with the error handling of RFC 7606.
//!
//! bgpkit-parser parses the message. It fails only when the withdrawn-routes or attribute
//! length fields overrun the message; an attribute that does not parse is kept raw and reported
//! as a validation warning, and malformed NLRI are reported as a warning with no prefixes. What
//! Signpost does with each case:
//!
//! - The message does not parse (length fields overrun, or the parser panics): NOTIFICATION
//!   UPDATE Message Error / Malformed Attribute List, session reset (RFC 7606 §4).
//! - The IPv4 NLRI or withdrawn routes field is malformed (RFC 7606 §5.3), MP_REACH_NLRI or
//!   MP_UNREACH_NLRI does not parse (§7.11, the NLRI cannot be found) or appears twice (§3 g):
//!   session reset.
//! - An attribute Signpost must trust to use the routes is malformed, has wrong flags or length,
//!   or a mandatory one is missing: ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES and
//!   the other attributes RFC 7606 §7 lists as treat-as-withdraw; an attribute's length overruns
//!   the attribute section (§4, which bgpkit-parser skips silently, so the section's framing is
//!   checked here); an external peer sends an empty AS_PATH: every prefix announced in the
//!   message is withdrawn instead, and the session stays up.
//! - Any other malformed attribute (ATOMIC_AGGREGATE, AGGREGATOR, AS4_PATH, AS4_AGGREGATOR,
//!   unknown optional ones), or a repeated non-MP attribute: discarded, the routes are used.
//!
//! Families not negotiated, and SAFIs other than unicast, are ignored.

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bgpkit_parser::error::BgpValidationWarning;
use bgpkit_parser::models::{
    Afi, AsPath, AsPathSegment, AsnLength, AttrType, AttributeValue, BgpMessage, NetworkPrefix,
    Safi,
};
use bgpkit_parser::parser::bgp::parse_bgp_message;
use bytes::Bytes;

use super::frame::HEADER_LEN;
use super::notice::{Notice, UPDATE_ERROR};
use super::open::Negotiated;
use super::table::Route;

/// The changes one UPDATE makes to a peer's table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Changes {
    /// IPv4 prefixes withdrawn (start, length).
    pub withdraw_v4: Vec<(u32, u8)>,
    /// IPv4 prefixes announced with `route`.
    pub announce_v4: Vec<(u32, u8)>,
    /// IPv6 prefixes withdrawn.
    pub withdraw_v6: Vec<(u128, u8)>,
    /// IPv6 prefixes announced with `route`.
    pub announce_v6: Vec<(u128, u8)>,
    /// The route of the announced prefixes.
    pub route: Option<Route>,
    /// End-of-RIB for IPv4 unicast (RFC 4724 §2).
    pub end_of_rib_v4: bool,
    /// End-of-RIB for IPv6 unicast.
    pub end_of_rib_v6: bool,
    /// Why the announcements were turned into withdrawals (RFC 7606 treat-as-withdraw).
    pub treat_as_withdraw: Option<String>,
}

/// What to do about one validation warning.
enum Action {
    /// Use the routes (the attribute is discarded, or the warning is irrelevant).
    Ignore,
    /// Treat the announcements as withdrawals.
    Withdraw,
    /// Close the session with this UPDATE Message Error subcode.
    Reset(u8),
}

/// Attributes whose errors RFC 7606 §7 handles by treat-as-withdraw (the others by
/// attribute-discard, which for Signpost means ignoring them).
fn withdraw_on_error(attr: AttrType) -> bool {
    matches!(
        attr,
        AttrType::ORIGIN
            | AttrType::AS_PATH
            | AttrType::NEXT_HOP
            | AttrType::MULTI_EXIT_DISCRIMINATOR
            | AttrType::LOCAL_PREFERENCE
            | AttrType::COMMUNITIES
            | AttrType::EXTENDED_COMMUNITIES
            | AttrType::LARGE_COMMUNITIES
            | AttrType::ORIGINATOR_ID
            | AttrType::CLUSTER_LIST
            | AttrType::MP_REACHABLE_NLRI
            | AttrType::MP_UNREACHABLE_NLRI
    )
}

/// How Signpost handles one of bgpkit-parser's warnings.
fn action(warning: &BgpValidationWarning) -> Action {
    use BgpValidationWarning as W;
    match warning {
        W::MalformedNlri { .. } | W::InvalidNetworkField { .. } => Action::Reset(10),
        W::DuplicateAttribute { attr_type } => match attr_type {
            AttrType::MP_REACHABLE_NLRI | AttrType::MP_UNREACHABLE_NLRI => Action::Reset(1),
            _ => Action::Ignore,
        },
        W::AttributeFlagsError { attr_type, .. }
        | W::AttributeLengthError { attr_type, .. }
        | W::OptionalAttributeError { attr_type, .. }
        | W::PartialAttributeError { attr_type, .. } => match withdraw_on_error(*attr_type) {
            true => Action::Withdraw,
            false => Action::Ignore,
        },
        W::UnknownRouteRefreshSubtype { .. } | W::InvalidRouteRefreshLength { .. } => {
            Action::Ignore
        }
        _ => Action::Withdraw,
    }
}

/// The raw attribute section of an UPDATE (whole message given), when its length fields fit.
fn attribute_section(msg: &[u8]) -> Option<&[u8]> {
    let body = msg.get(HEADER_LEN..)?;
    let withdrawn = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let at = 2 + withdrawn;
    let len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    body.get(at + 2..at + 2 + len)
}

/// Whether the attributes exactly fill their section (RFC 7606 §4). Only the type-length
/// framing is read; the attributes themselves are bgpkit-parser's.
fn attributes_tile(section: &[u8]) -> bool {
    let mut rest = section;
    while !rest.is_empty() {
        let extended = rest[0] & 0x10 != 0;
        let header = if extended { 4 } else { 3 };
        if rest.len() < header {
            return false;
        }
        let len = if extended {
            usize::from(u16::from_be_bytes([rest[2], rest[3]]))
        } else {
            usize::from(rest[2])
        };
        match rest.get(header + len..) {
            Some(next) => rest = next,
            None => return false,
        }
    }
    true
}

/// Origin and length of an AS path; `None` for an empty one.
pub(crate) fn route_of(path: &AsPath, local_origin: u32) -> Option<Route> {
    let segments: Vec<&AsPathSegment> = path.iter_segments().filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return None;
    }
    let origin = segments
        .iter()
        .rev()
        .find_map(|s| match s {
            AsPathSegment::AsSequence(v) => v.last().copied(),
            AsPathSegment::AsSet(v) => v.first().copied(),
            _ => None,
        })
        .map(u32::from)
        // Only confederation segments: originated inside the local confederation.
        .unwrap_or(local_origin);
    let path_len = segments.iter().map(|s| s.route_len()).sum::<usize>();
    Some(Route {
        origin,
        path_len: u32::try_from(path_len).unwrap_or(u32::MAX),
        stale: false,
    })
}

/// Sorts prefixes into the IPv4 and IPv6 lists; host bits are cleared.
fn split(prefixes: &[NetworkPrefix], v4: &mut Vec<(u32, u8)>, v6: &mut Vec<(u128, u8)>) {
    for p in prefixes {
        match p.prefix.network() {
            IpAddr::V4(a) => v4.push((u32::from(a), p.prefix.prefix_len())),
            IpAddr::V6(a) => v6.push((u128::from(a), p.prefix.prefix_len())),
        }
    }
}

/// Reads one UPDATE (the whole message) from a peer with AS `peer_asn`; `ibgp` when the peer is
/// in Signpost's AS. The error is the NOTIFICATION to send before closing the session.
pub(crate) fn decode(
    msg: &Bytes,
    negotiated: &Negotiated,
    peer_asn: u32,
    ibgp: bool,
) -> Result<Changes, Notice> {
    let malformed = || Notice::new(UPDATE_ERROR, 1);
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        parse_bgp_message(&mut msg.clone(), false, &AsnLength::Bits32)
    }));
    let update = match parsed {
        Ok(Ok(BgpMessage::Update(update))) => update,
        _ => return Err(malformed()),
    };
    let section = attribute_section(msg).ok_or_else(malformed)?;
    let mut c = Changes::default();
    let mut why: Option<String> = None;
    if !attributes_tile(section) {
        why = Some("an attribute overruns the attribute section".to_string());
    }
    for warning in update.attributes.validation_warnings() {
        match action(warning) {
            Action::Ignore => {}
            Action::Withdraw => {
                why.get_or_insert_with(|| warning.to_string());
            }
            Action::Reset(subcode) => return Err(Notice::new(UPDATE_ERROR, subcode)),
        }
    }

    let (mut ann4, mut wd4, mut ann6, mut wd6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    split(&update.announced_prefixes, &mut ann4, &mut ann6);
    split(&update.withdrawn_prefixes, &mut wd4, &mut wd6);
    let mut path = None;
    let mut mp_unreach_empty = None;
    let mut attributes = 0;
    for value in update.attributes.iter() {
        attributes += 1;
        match value {
            AttributeValue::AsPath(p) => {
                path.get_or_insert(p);
            }
            AttributeValue::MpReachNlri(n) if n.safi == Safi::Unicast => {
                split(&n.prefixes, &mut ann4, &mut ann6);
            }
            AttributeValue::MpUnreachNlri(n) if n.safi == Safi::Unicast => {
                split(&n.prefixes, &mut wd4, &mut wd6);
                if n.prefixes.is_empty() {
                    mp_unreach_empty = Some(n.afi);
                }
            }
            AttributeValue::Raw(raw) | AttributeValue::Unknown(raw)
                if matches!(raw.code, 14 | 15) =>
            {
                // MP_REACH_NLRI / MP_UNREACH_NLRI that did not parse: its NLRI cannot be found.
                return Err(Notice::new(UPDATE_ERROR, 9));
            }
            _ => {}
        }
    }

    let no_prefixes = ann4.is_empty() && wd4.is_empty() && ann6.is_empty() && wd6.is_empty();
    if no_prefixes && section.is_empty() {
        c.end_of_rib_v4 = true;
    }
    if no_prefixes && attributes == 1 {
        c.end_of_rib_v4 |= mp_unreach_empty == Some(Afi::Ipv4);
        c.end_of_rib_v6 = mp_unreach_empty == Some(Afi::Ipv6);
    }
    c.end_of_rib_v4 &= negotiated.ipv4;
    c.end_of_rib_v6 &= negotiated.ipv6;

    if why.is_none() && !(ann4.is_empty() && ann6.is_empty()) {
        match path.and_then(|p| route_of(p, peer_asn)) {
            Some(route) => c.route = Some(route),
            None if ibgp => {
                c.route = Some(Route {
                    origin: peer_asn,
                    path_len: 0,
                    stale: false,
                })
            }
            None => why = Some("empty AS_PATH from an external peer".to_string()),
        }
    }
    if why.is_some() {
        wd4.append(&mut ann4);
        wd6.append(&mut ann6);
        c.treat_as_withdraw = why;
    }
    if negotiated.ipv4 {
        c.announce_v4 = ann4;
        c.withdraw_v4 = wd4;
    }
    if negotiated.ipv6 {
        c.announce_v6 = ann6;
        c.withdraw_v6 = wd6;
    }
    Ok(c)
}
