//! Whole query handling: bytes in → a response that parses (with hickory, an independent DNS
//! implementation) and matches the question, or nothing. Runs against the embedded default
//! (demo zone, maps, GeoIP and BGP data).
//!
//! The oracle for answers: an A answer of a service name is what the server's explanation of
//! that same query says. The target asks `_why.<name>` TXT with the query's own bytes (same
//! ECS, same source address) and checks that the answer's addresses are those of the
//! explanation's `answer:` line, its TTL the explanation's `ttl`, and the echoed ECS scope the
//! explanation's `scope:` (for an IPv4 option; an IPv6 one counts the same scope from the
//! start of the IPv6 address when it maps IPv4).
//!
//! The batched form a UDP worker uses (`prepare_into` with the batch's recent question, then
//! `complete`) must answer byte for byte as `respond` does, whatever came before in the batch:
//! the bytes are prepared after a real query for the service name, and after themselves.
#![no_main]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::OnceLock;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use libfuzzer_sys::fuzz_target;
use signpost::dns::answer::{Outcome, Prepared, Transport, complete, prepare_into, respond};
use signpost::wire::MAX_NAME;
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
            Outcome::Dropped => assert!(
                data.len() < 12 || data[2] & 0x80 != 0,
                "only headerless packets and responses are dropped"
            ),
            Outcome::Answered { len, .. } => {
                let resp = &out[..len];
                let msg = Message::from_vec(resp).expect("the response parses");
                assert_eq!(msg.metadata.id, u16::from_be_bytes([data[0], data[1]]));
                assert!(msg.queries.len() <= 1);
                agrees_with_the_explanation(snap, data, src, &msg);
            }
        }
    }
    batched_as_alone(snap, data);
});

/// An A query for `dl.example.test` with ECS 81.2.69.0/24 (the seed of a batch).
const FIRST: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x02dl\x07example\x04test\x00\
    \x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0b\x00\x08\x00\x07\x00\x01\x18\x00\x51\x02\x45";

/// `data` answered in a batch, after [`FIRST`] and after itself, as `respond` answers it alone.
fn batched_as_alone(snap: &Snapshot, data: &[u8]) {
    let src: IpAddr = "192.0.2.1".parse().unwrap();
    let alone = |out: &mut Vec<u8>| match respond(snap, data, src, Transport::Udp, out) {
        Outcome::Answered { len, .. } => Some(out[..len].to_vec()),
        Outcome::Dropped => None,
    };
    let mut out = vec![0u8; 65535];
    let want = alone(&mut out);
    let packets = [FIRST, data, data];
    let mut names = [[0u8; MAX_NAME]; 3];
    let mut batch: [Prepared<'_, '_>; 3] = std::array::from_fn(|_| Prepared::Drop);
    let mut recent = None;
    for ((slot, p), scratch) in batch.iter_mut().zip(packets).zip(&mut names) {
        prepare_into(slot, snap, p, src, scratch, &mut recent);
    }
    for p in &batch[1..] {
        let got = match complete(snap, p, Transport::Udp, &mut out) {
            Outcome::Answered { len, .. } => Some(out[..len].to_vec()),
            Outcome::Dropped => None,
        };
        // A server cookie carries the time: on a difference, answer alone once more.
        if got != want {
            assert_eq!(got, alone(&mut vec![0u8; 65535]), "batched answer differs");
        }
    }
}

/// For an A answer of a service name (addresses only, no CNAME), checks it against the
/// explanation of the same query.
fn agrees_with_the_explanation(snap: &Snapshot, query: &[u8], src: IpAddr, msg: &Message) {
    let [q] = &msg.queries[..] else { return };
    if q.query_type != RecordType::A
        || msg.metadata.response_code != ResponseCode::NoError
        || msg.metadata.truncation
        || msg.answers.is_empty()
    {
        return;
    }
    let mut addresses = BTreeSet::new();
    let mut ttls = BTreeSet::new();
    for r in &msg.answers {
        let RData::A(a) = &r.data else { return };
        addresses.insert(a.0.to_string());
        ttls.insert(r.ttl);
    }
    let Some(lines) = explanation(snap, query, src) else {
        return;
    };
    let line = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {lines:?}"))
    };
    // "answer: fra1 [192.0.2.10], ams1 [192.0.2.20] from region europe"
    let answer = line("answer: ");
    let explained: BTreeSet<String> = answer
        .split('[')
        .skip(1)
        .filter_map(|s| s.split(']').next())
        .flat_map(|s| s.split_whitespace().map(str::to_string))
        .collect();
    assert_eq!(addresses, explained, "answer {msg:?}\nexplained {lines:?}");
    // "scope: /16; ttl 60"
    let (scope, ttl) = line("scope: /")
        .split_once("; ttl ")
        .expect("scope and ttl");
    let scope: u8 = scope.parse().expect("scope");
    let ttl: u32 = ttl.parse().expect("ttl");
    assert_eq!(ttls, BTreeSet::from([ttl]), "{lines:?}");
    let echoed = msg.edns.as_ref().and_then(|e| match e.options().get(EdnsCode::Subnet) {
        Some(EdnsOption::Subnet(s)) => Some(*s),
        _ => None,
    });
    if let Some(s) = echoed {
        let client_v4 = lines.first().is_some_and(|l| {
            l.strip_prefix("client ")
                .and_then(|c| c.split(' ').next())
                .is_some_and(|a| a.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()))
        });
        let expected = if s.addr().is_ipv6() && client_v4 {
            scope.saturating_add(96).min(128)
        } else {
            scope
        };
        // A client decided by the resolver's address echoes scope 0.
        let by_ecs = lines.first().is_some_and(|l| l.ends_with("(ECS)"));
        assert_eq!(
            s.scope_prefix(),
            if by_ecs { expected } else { 0 },
            "{lines:?}"
        );
    }
}

/// The server's `_why` explanation of `query` (its question name prefixed with `_why`, asked
/// for TXT over TCP from `src`), as lines; `None` when the query cannot be rewritten so.
fn explanation(snap: &Snapshot, query: &[u8], src: IpAddr) -> Option<Vec<String>> {
    // The question's name starts at 12; a query whose name holds a compression pointer is left
    // alone (and one with a pointer elsewhere, moved by the inserted label, gets no usable
    // explanation: skipped).
    let mut at = 12;
    loop {
        let len = *query.get(at)? as usize;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
    }
    query.get(at + 1..at + 5)?;
    let mut why = Vec::with_capacity(query.len() + 5);
    why.extend_from_slice(&query[..12]);
    why.extend_from_slice(b"\x04_why");
    why.extend_from_slice(&query[12..=at]);
    why.extend_from_slice(&16u16.to_be_bytes());
    why.extend_from_slice(&query[at + 3..]);
    let mut out = vec![0u8; 65535];
    let Outcome::Answered { len, .. } = respond(snap, &why, src, Transport::Tcp, &mut out) else {
        return None;
    };
    let msg = Message::from_vec(&out[..len]).ok()?;
    if msg.metadata.response_code != ResponseCode::NoError || msg.answers.is_empty() {
        return None;
    }
    msg.answers
        .iter()
        .map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}
