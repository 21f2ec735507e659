//! Whole query handling: bytes in → a response that parses and matches the question, or
//! nothing. Runs against the embedded default (demo zone, maps, GeoIP and BGP data).
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signpost::dns::answer::{Outcome, Transport, respond};
use signpost::snapshot::Snapshot;

fn snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| signpost::load::load(None, None).expect("embedded default").1)
}

fuzz_target!(|data: &[u8]| {
    let snap = snapshot();
    let mut out = vec![0u8; 65535];
    for (transport, src) in [(Transport::Udp, "192.0.2.1"), (Transport::Tcp, "2001:db8::1")] {
        let src: IpAddr = src.parse().unwrap();
        match respond(snap, data, src, transport, &mut out) {
            Outcome::Dropped => assert!(data.len() < 12 || data[2] & 0x80 != 0, "only headerless packets and responses are dropped"),
            Outcome::Answered { len, truncated, .. } => {
                let resp = &out[..len];
                if transport == Transport::Udp {
                    assert!(len <= 65535);
                }
                let msg = hickory_proto::op::Message::from_vec(resp).expect("the response parses");
                assert_eq!(msg.metadata.id, u16::from_be_bytes([data[0], data[1]]));
                assert!(msg.queries.len() <= 1);
                let _ = truncated;
            }
        }
    }
});
