//! A test-only raw BGP speaker: writes messages built with bgpkit-parser's encoders, or bytes
//! made by hand, and reads what Signpost answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgpkit_parser::models::capabilities::{
    BgpCapabilityType, FourOctetAsCapability, MultiprotocolExtensionsCapability,
};
use bgpkit_parser::models::{
    Afi, AsPath, AsPathSegment, Asn, AsnLength, AttributeValue, Attributes, BgpMessage,
    BgpOpenMessage, BgpUpdateMessage, Capability, CapabilityValue, NetworkPrefix, NextHopAddress,
    Nlri, OptParam, Origin, ParamValue, Safi,
};
use bgpkit_parser::parser::bgp::parse_bgp_message;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use super::super::frame::{FrameReader, ReadError};

/// Bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// An OPEN from a peer with 4-byte ASN `asn`, the families given, hold time `hold`.
pub fn open(asn: u32, id: Ipv4Addr, hold: u16, v4: bool, v6: bool) -> Bytes {
    let mut caps = vec![Capability {
        ty: BgpCapabilityType::SUPPORT_FOR_4_OCTET_AS_NUMBER_CAPABILITY,
        value: CapabilityValue::FourOctetAs(FourOctetAsCapability::new(asn)),
    }];
    for (on, afi) in [(v4, Afi::Ipv4), (v6, Afi::Ipv6)] {
        if on {
            caps.push(Capability {
                ty: BgpCapabilityType::MULTIPROTOCOL_EXTENSIONS_FOR_BGP_4,
                value: CapabilityValue::MultiprotocolExtensions(
                    MultiprotocolExtensionsCapability::new(afi, Safi::Unicast),
                ),
            });
        }
    }
    BgpMessage::Open(BgpOpenMessage {
        version: 4,
        asn: Asn::new_16bit(u16::try_from(asn).unwrap_or(23456)),
        hold_time: hold,
        bgp_identifier: id,
        extended_length: false,
        opt_params: vec![OptParam {
            param_type: 2,
            param_value: ParamValue::Capacities(caps),
        }],
    })
    .encode(AsnLength::Bits32)
    .unwrap()
}

/// Parses prefixes such as `"10.1.0.0/16"`.
fn prefixes(list: &[&str]) -> Vec<NetworkPrefix> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// An AS path of one sequence, optionally followed by a set.
pub fn path(seq: &[u32], set: &[u32]) -> AsPath {
    let mut segments = vec![AsPathSegment::sequence(seq)];
    if !set.is_empty() {
        segments.push(AsPathSegment::set(set));
    }
    AsPath::from_segments(segments)
}

/// An UPDATE announcing IPv4 prefixes in the NLRI field and IPv6 ones in MP_REACH_NLRI, and
/// withdrawing the `withdraw` ones (IPv4 in the withdrawn field, IPv6 in MP_UNREACH_NLRI).
pub fn update(announce: &[&str], withdraw: &[&str], as_path: &AsPath) -> Bytes {
    let (ann6, ann4): (Vec<_>, Vec<_>) = prefixes(announce)
        .into_iter()
        .partition(|p| p.prefix.addr().is_ipv6());
    let (wd6, wd4): (Vec<_>, Vec<_>) = prefixes(withdraw)
        .into_iter()
        .partition(|p| p.prefix.addr().is_ipv6());
    let mut attrs = Vec::new();
    if !ann4.is_empty() || !ann6.is_empty() {
        attrs.push(AttributeValue::Origin(Origin::IGP));
        attrs.push(AttributeValue::AsPath(as_path.clone()));
    }
    if !ann4.is_empty() {
        attrs.push(AttributeValue::NextHop(IpAddr::V4(Ipv4Addr::new(
            192, 0, 2, 1,
        ))));
    }
    let nlri = |prefixes: Vec<NetworkPrefix>, hop: Option<NextHopAddress>| Nlri {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hop: hop,
        prefixes,
        labeled_prefixes: None,
        link_state_nlris: None,
        flowspec_nlris: None,
    };
    if !ann6.is_empty() {
        let hop = NextHopAddress::Ipv6("2001:db8::1".parse().unwrap());
        attrs.push(AttributeValue::MpReachNlri(nlri(ann6, Some(hop))));
    }
    if !wd6.is_empty() {
        attrs.push(AttributeValue::MpUnreachNlri(nlri(wd6, None)));
    }
    BgpMessage::Update(BgpUpdateMessage {
        withdrawn_prefixes: wd4,
        attributes: Attributes::from_iter(attrs),
        announced_prefixes: ann4,
    })
    .encode(AsnLength::Bits32)
    .unwrap()
}

/// End-of-RIB for IPv4 unicast: an empty UPDATE.
pub fn end_of_rib_v4() -> Bytes {
    BgpMessage::Update(BgpUpdateMessage::default())
        .encode(AsnLength::Bits32)
        .unwrap()
}

/// End-of-RIB for IPv6 unicast: an UPDATE with only an empty MP_UNREACH_NLRI.
pub fn end_of_rib_v6() -> Bytes {
    let nlri = Nlri {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hop: None,
        prefixes: vec![],
        labeled_prefixes: None,
        link_state_nlris: None,
        flowspec_nlris: None,
    };
    BgpMessage::Update(BgpUpdateMessage {
        withdrawn_prefixes: vec![],
        attributes: Attributes::from_iter([AttributeValue::MpUnreachNlri(nlri)]),
        announced_prefixes: vec![],
    })
    .encode(AsnLength::Bits32)
    .unwrap()
}

/// An UPDATE made by hand from its three fields (the header is added).
pub fn raw_update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Bytes {
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    let mut msg = vec![0xff; 16];
    msg.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    msg.push(2);
    msg.extend(body);
    Bytes::from(msg)
}

/// The KEEPALIVE message.
pub fn keepalive() -> Bytes {
    BgpMessage::KeepAlive.encode(AsnLength::Bits32).unwrap()
}

/// One side of a test session.
pub struct RawSpeaker {
    /// The connection.
    stream: TcpStream,
    /// Framing of what Signpost sends.
    reader: FrameReader,
}

impl RawSpeaker {
    /// Connects to `to` from the address `from` (any port).
    pub async fn connect(from: IpAddr, to: SocketAddr) -> RawSpeaker {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let stream = tokio::time::timeout(WAIT, socket.connect(to))
            .await
            .unwrap()
            .unwrap();
        RawSpeaker::from_stream(stream)
    }

    /// Wraps an accepted connection.
    pub fn from_stream(stream: TcpStream) -> RawSpeaker {
        RawSpeaker {
            stream,
            reader: FrameReader::new(),
        }
    }

    /// Writes bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next message from Signpost; `None` when the connection closed.
    pub async fn recv(&mut self) -> Option<BgpMessage> {
        let frame = tokio::time::timeout(WAIT, self.reader.read_frame(&mut self.stream))
            .await
            .expect("Signpost sent nothing in time");
        match frame {
            Ok(frame) => Some(
                parse_bgp_message(&mut frame.bytes.clone(), false, &AsnLength::Bits32).unwrap(),
            ),
            Err(ReadError::Closed | ReadError::Io(_)) => None,
            Err(ReadError::Header(n)) => panic!("Signpost sent a bad header: {n}"),
        }
    }

    /// OPEN, the peer's OPEN, KEEPALIVE, its KEEPALIVE. Returns Signpost's OPEN.
    pub async fn handshake(&mut self, asn: u32, hold: u16) -> BgpOpenMessage {
        self.send(&open(asn, Ipv4Addr::new(10, 9, 9, 9), hold, true, true))
            .await;
        let Some(BgpMessage::Open(theirs)) = self.recv().await else {
            panic!("no OPEN from Signpost");
        };
        self.send(&keepalive()).await;
        assert!(matches!(self.recv().await, Some(BgpMessage::KeepAlive)));
        theirs
    }

    /// Reads until a NOTIFICATION and returns its code, subcode and data.
    pub async fn notification(&mut self) -> (u8, u8, Vec<u8>) {
        loop {
            match self.recv().await {
                Some(BgpMessage::Notification(n)) => {
                    let (code, subcode) = n.error.get_codes();
                    return (code, subcode, n.data);
                }
                Some(_) => {}
                None => panic!("closed without a NOTIFICATION"),
            }
        }
    }

    /// Reads until Signpost closes the connection.
    pub async fn closed(&mut self) {
        while self.recv().await.is_some() {}
    }
}
