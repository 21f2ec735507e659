//! Signed answers through a real validating resolver with ECS: Debian's Unbound, started by
//! the test on loopback with the demo zone's DS as trust anchor, a stub zone pointing at the
//! real server and the `subnetcache` module forwarding each client's subnet. For random
//! client subnets the answer comes back with AD set and equals the server's own answer for
//! that subnet; NXDOMAIN and NODATA validate too. With the DS of another key, the same
//! questions get SERVFAIL (the test can fail).

mod common;
use common::*;

use common::validators::{Unbound, ds_of, has_flag, keygen};

/// The addresses in dig's answer section, sorted.
fn addresses(out: &str) -> Vec<String> {
    let mut a: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter(|l| l.contains("\tA\t") || l.contains("\tAAAA\t"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    a.sort();
    a
}

/// The server's own answer (dig's output). Once in CI, dig got its own query back instead of
/// an answer ("query response not set": the packet had no QR bit, the query's AD bit and
/// cookie) while Unbound was running; where it came from is not known. Such a reply is not
/// an answer: the question is asked again, three times at most.
fn direct(server: &Server, args: &[&str]) -> String {
    let mut out = String::new();
    for _ in 0..3 {
        out = server.dig(args);
        if has_flag(&out, "qr") {
            return out;
        }
    }
    panic!("no answer from the server: {out}");
}

/// Client subnets spread over the IPv4 space (a fixed generator: the same on every run), and
/// the demo's known ones.
fn subnets(n: usize) -> Vec<String> {
    let mut x: u32 = 0x2545_f491;
    let mut out = vec!["81.2.69.0/24".to_string(), "8.8.8.0/24".to_string()];
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let first = (x >> 24) as u8;
        if first == 0 || first == 10 || first == 127 || first >= 224 {
            continue;
        }
        out.push(format!(
            "{first}.{}.{}.0/24",
            (x >> 16) as u8,
            (x >> 8) as u8
        ));
    }
    out
}

#[test]
fn unbound_validates_answers_for_random_client_subnets() {
    let dir = TempDir::new("dnssec-unbound");
    let server = Server::start(&[]);
    let anchor = ds_of(&testdata("demo/keys/Kexample.test.+013+01841"));
    let resolver = Unbound::start(&dir, &anchor, server.udp.port());
    let mut compared = 0;
    let mut distinct = std::collections::BTreeSet::new();
    for subnet in subnets(30) {
        for rtype in ["A", "AAAA"] {
            let via = resolver.dig(&[&format!("+subnet={subnet}"), "dl.example.test", rtype]);
            let direct = direct(
                &server,
                &[&format!("+subnet={subnet}"), "dl.example.test", rtype],
            );
            assert!(via.contains("status: NOERROR"), "{subnet} {rtype}: {via}");
            assert!(
                has_flag(&via, "ad"),
                "{subnet} {rtype}: not validated: {via}"
            );
            assert!(!addresses(&via).is_empty(), "{subnet} {rtype}: {via}");
            assert_eq!(
                addresses(&via),
                addresses(&direct),
                "{subnet} {rtype}: through Unbound {via}\ndirect {direct}"
            );
            distinct.insert(addresses(&via));
            compared += 1;
        }
    }
    assert_eq!(compared, 60);
    // The subnets reach different nodes, so the comparison shows that Unbound forwarded each
    // client's subnet (without it, every answer would be the one for Unbound's own address).
    assert!(distinct.len() >= 4, "{distinct:?}");
    for (name, rtype, status) in [
        ("nothere.example.test", "A", "NXDOMAIN"),
        ("www.example.test", "TXT", "NOERROR"),
        ("todl.example.test", "A", "NOERROR"),
        ("example.test", "MX", "NOERROR"),
    ] {
        let out = resolver.dig(&[name, rtype]);
        assert!(out.contains(&format!("status: {status}")), "{name}: {out}");
        assert!(has_flag(&out, "ad"), "{name} {rtype}: not validated: {out}");
    }
}

#[test]
fn unbound_refuses_answers_signed_by_another_key() {
    let dir = TempDir::new("dnssec-unbound-foreign");
    let (key, _) = keygen(&dir, true);
    let anchor = ds_of(&key);
    let server = Server::start(&[]);
    let resolver = Unbound::start(&dir, &anchor, server.udp.port());
    for (name, rtype) in [("dl.example.test", "A"), ("nothere.example.test", "A")] {
        let out = resolver.dig(&["+subnet=81.2.69.0/24", name, rtype]);
        assert!(out.contains("status: SERVFAIL"), "{name}: {out}");
    }
}
