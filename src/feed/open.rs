//! The OPEN exchange: the OPEN Signpost sends, and the checks on the peer's (RFC 4271 §6.2).
//!
//! Signpost advertises multiprotocol IPv4 and/or IPv6 unicast (RFC 4760) as configured, 4-byte
//! AS numbers (RFC 6793), route refresh (RFC 2918) and graceful restart (RFC 4724) with no
//! address family and restart time 0: that announces a receiver that preserves nothing of its
//! own, and makes peers send End-of-RIB markers, which Signpost uses to drop stale routes early.
//!
//! The peer must advertise 4-byte AS numbers (every current router does); Signpost then parses
//! AS_PATH with 4-byte ASNs and never needs the AS4_PATH merge of RFC 6793 §4.2.3.

use std::net::Ipv4Addr;

use bgpkit_parser::models::capabilities::{
    BgpCapabilityType, FourOctetAsCapability, GracefulRestartCapability,
    MultiprotocolExtensionsCapability, RouteRefreshCapability,
};
use bgpkit_parser::models::{
    Afi, Asn, AsnLength, BgpMessage, BgpOpenMessage, Capability, CapabilityValue, OptParam,
    ParamValue, Safi,
};
use bytes::Bytes;

use super::notice::{Notice, OPEN_ERROR};
use super::settings::Peer;
use crate::log_limit::{LogLimits, limited};

/// AS_TRANS (RFC 6793): the 2-byte field's value when the real ASN does not fit.
pub(crate) const AS_TRANS: u16 = 23456;
/// The 4-octet AS number capability code.
const FOUR_OCTET_AS: u8 = 65;

/// What both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// Hold time in seconds; 0 means no keepalives and no hold timer.
    pub hold_time: u16,
    /// IPv4 unicast routes are exchanged.
    pub ipv4: bool,
    /// IPv6 unicast routes are exchanged.
    pub ipv6: bool,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
}

/// Signpost's OPEN for `peer`, the whole message.
pub(crate) fn build_open(local_asn: u32, router_id: Ipv4Addr, peer: &Peer) -> Bytes {
    let mut caps = Vec::new();
    for (on, afi) in [(peer.ipv4, Afi::Ipv4), (peer.ipv6, Afi::Ipv6)] {
        if on {
            caps.push(Capability {
                ty: BgpCapabilityType::MULTIPROTOCOL_EXTENSIONS_FOR_BGP_4,
                value: CapabilityValue::MultiprotocolExtensions(
                    MultiprotocolExtensionsCapability::new(afi, Safi::Unicast),
                ),
            });
        }
    }
    caps.push(Capability {
        ty: BgpCapabilityType::ROUTE_REFRESH_CAPABILITY_FOR_BGP_4,
        value: CapabilityValue::RouteRefresh(RouteRefreshCapability::new()),
    });
    caps.push(Capability {
        ty: BgpCapabilityType::GRACEFUL_RESTART_CAPABILITY,
        value: CapabilityValue::GracefulRestart(GracefulRestartCapability::new(false, 0, vec![])),
    });
    caps.push(Capability {
        ty: BgpCapabilityType::SUPPORT_FOR_4_OCTET_AS_NUMBER_CAPABILITY,
        value: CapabilityValue::FourOctetAs(FourOctetAsCapability::new(local_asn)),
    });
    let two_byte = u16::try_from(local_asn).unwrap_or(AS_TRANS);
    let open = BgpOpenMessage {
        version: 4,
        asn: Asn::new_16bit(two_byte),
        hold_time: peer.hold_time,
        bgp_identifier: router_id,
        extended_length: false,
        opt_params: vec![OptParam {
            param_type: 2,
            param_value: ParamValue::Capacities(caps),
        }],
    };
    // Five capabilities fit a 255-byte parameter block, so encoding cannot fail.
    BgpMessage::Open(open)
        .encode(AsnLength::Bits32)
        .unwrap_or_default()
}

/// Checks the peer's OPEN against the settings; the error is the NOTIFICATION to send. What
/// the NOTIFICATION cannot say (the AS or hold time received) is logged through `logs`.
pub(crate) fn check_open(
    open: &BgpOpenMessage,
    local_asn: u32,
    router_id: Ipv4Addr,
    peer: &Peer,
    logs: &LogLimits,
) -> Result<Negotiated, Notice> {
    if open.version != 4 {
        // The data is the largest version Signpost supports (RFC 4271 §6.2).
        return Err(Notice::new(OPEN_ERROR, 1).with_data(&4u16.to_be_bytes()));
    }
    let mut four_octet = None;
    let mut mp = Vec::new();
    for param in &open.opt_params {
        match &param.param_value {
            ParamValue::Capacities(caps) => {
                for cap in caps {
                    match &cap.value {
                        CapabilityValue::FourOctetAs(c) => four_octet = Some(c.asn),
                        CapabilityValue::MultiprotocolExtensions(c) => mp.push((c.afi, c.safi)),
                        _ => {}
                    }
                }
            }
            ParamValue::Raw(_) => return Err(Notice::new(OPEN_ERROR, 4)),
        }
    }
    let two_byte = u32::from(open.asn);
    let Some(asn) = four_octet else {
        // Signpost requires the 4-octet AS capability (RFC 5492 §5: the data lists it).
        let mut data = vec![FOUR_OCTET_AS, 4];
        data.extend_from_slice(&local_asn.to_be_bytes());
        return Err(Notice::new(OPEN_ERROR, 7).with_data(&data));
    };
    let two_byte_ok = two_byte == asn || (asn > 0xffff && two_byte == u32::from(AS_TRANS));
    if asn != peer.asn || !two_byte_ok {
        limited!(
            logs,
            warn,
            "BGP OPEN with another AS than configured",
            peer = %peer.name,
            received = asn,
            received_two_byte = two_byte,
            configured = peer.asn
        );
        return Err(Notice::new(OPEN_ERROR, 2));
    }
    let id = open.bgp_identifier;
    if id.is_unspecified() || id.is_broadcast() || (peer.asn == local_asn && id == router_id) {
        return Err(Notice::new(OPEN_ERROR, 3));
    }
    if matches!(open.hold_time, 1 | 2) {
        return Err(Notice::new(OPEN_ERROR, 6));
    }
    if open.hold_time < peer.min_hold_time {
        limited!(
            logs,
            warn,
            "BGP OPEN with a hold time below min_hold_time",
            peer = %peer.name,
            received = open.hold_time,
            min_hold_time = peer.min_hold_time
        );
        return Err(Notice::new(OPEN_ERROR, 6));
    }
    // RFC 4760: without any multiprotocol capability, IPv4 unicast is implied.
    let offers = |afi: Afi| {
        mp.iter().any(|&(a, s)| a == afi && s == Safi::Unicast)
            || (mp.is_empty() && afi == Afi::Ipv4)
    };
    Ok(Negotiated {
        hold_time: open.hold_time.min(peer.hold_time),
        ipv4: peer.ipv4 && offers(Afi::Ipv4),
        ipv6: peer.ipv6 && offers(Afi::Ipv6),
        peer_id: id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpkit_parser::parser::bgp::parse_bgp_message;

    fn parse(bytes: Bytes) -> BgpOpenMessage {
        match parse_bgp_message(&mut bytes.clone(), false, &AsnLength::Bits32).unwrap() {
            BgpMessage::Open(open) => open,
            other => panic!("not an OPEN: {other:?}"),
        }
    }

    #[test]
    fn own_open_round_trips_and_uses_as_trans() {
        let peer = Peer::new("r1", "192.0.2.1".parse().unwrap(), 4_200_000_000);
        let ours = parse(build_open(
            4_200_000_000,
            Ipv4Addr::new(192, 0, 2, 9),
            &peer,
        ));
        assert_eq!(u32::from(ours.asn), u32::from(AS_TRANS));
        // Our own OPEN passes our checks when the peer has the same settings (an iBGP mirror).
        let mut mirror = peer.clone();
        mirror.asn = 4_200_000_000;
        let logs = LogLimits::new();
        let n = check_open(&ours, 65000, Ipv4Addr::new(192, 0, 2, 1), &mirror, &logs).unwrap();
        assert_eq!((n.hold_time, n.ipv4, n.ipv6), (90, true, true));
    }

    #[test]
    fn rejects_wrong_asn_version_and_hold_time() {
        let mut peer = Peer::new("r1", "192.0.2.1".parse().unwrap(), 65001);
        let id = Ipv4Addr::new(192, 0, 2, 9);
        let logs = LogLimits::new();
        let check = |open: &BgpOpenMessage, peer: &Peer| check_open(open, 65000, id, peer, &logs);
        let mut open = parse(build_open(65002, Ipv4Addr::new(192, 0, 2, 1), &peer));
        assert_eq!(check(&open, &peer), Err(Notice::new(OPEN_ERROR, 2)));
        open = parse(build_open(65001, Ipv4Addr::new(192, 0, 2, 1), &peer));
        open.hold_time = 2;
        assert_eq!(check(&open, &peer), Err(Notice::new(OPEN_ERROR, 6)));
        open.hold_time = 30;
        assert_eq!(check(&open, &peer).unwrap().hold_time, 30);
        // Hold time 0 is below the default minimum; accepted when the minimum is 0.
        open.hold_time = 0;
        assert_eq!(check(&open, &peer), Err(Notice::new(OPEN_ERROR, 6)));
        peer.min_hold_time = 0;
        assert_eq!(check(&open, &peer).unwrap().hold_time, 0);
        // A configured minimum above 3.
        peer.min_hold_time = 30;
        open.hold_time = 29;
        assert_eq!(check(&open, &peer), Err(Notice::new(OPEN_ERROR, 6)));
        open.hold_time = 30;
        open.version = 3;
        assert_eq!(check(&open, &peer).unwrap_err().subcode, 1);
    }
}
