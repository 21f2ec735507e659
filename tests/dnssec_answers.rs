//! Signed answers, checked by a real validator: BIND's `delv` (Debian's bind9-dnsutils) asks
//! the real server, with the zone's DS as its only trust anchor, and must find every kind of
//! answer "fully validated": addresses of service names (directly and through a CNAME), static
//! sets, the DNSKEY set, NODATA, NXDOMAIN, an empty non-terminal, ANY. The same questions
//! fail with the DS of another key, and through a relay that changes one byte of a signature.
//! Also: a separate KSK and ZSK sign what each should, a published-only key signs nothing,
//! signatures are made again on their timer, and a signed answer too large for UDP is
//! truncated and complete over TCP.

mod common;
use common::*;

use common::validators::{delv, delv_anchor, keygen, rrsigs};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DEMO_KEY: &str = "demo/keys/Kexample.test.+013+01841";

/// Questions about the demo zone, each with what delv must say.
const QUESTIONS: &[(&str, &str, &str)] = &[
    ("dl.example.test", "A", "; fully validated"),
    ("dl.example.test", "AAAA", "; fully validated"),
    ("todl.example.test", "A", "; fully validated"),
    ("mirrors.example.test", "A", "; fully validated"),
    ("www.example.test", "AAAA", "; fully validated"),
    ("example.test", "DNSKEY", "; fully validated"),
    ("example.test", "SOA", "; fully validated"),
    ("example.test", "NS", "; fully validated"),
    ("example.test", "MX", "; fully validated"),
    ("example.test", "CAA", "; fully validated"),
    ("_https._tcp.dl.example.test", "SRV", "; fully validated"),
    ("dl.example.test", "ANY", "; fully validated"),
    ("big.example.test", "TXT", "; fully validated"),
    (
        "www.example.test",
        "TXT",
        "; negative response, fully validated",
    ),
    (
        "dl.example.test",
        "MX",
        "; negative response, fully validated",
    ),
    (
        "nothere.example.test",
        "A",
        "; negative response, fully validated",
    ),
    (
        "a.b.www.example.test",
        "A",
        "; negative response, fully validated",
    ),
    (
        "zzz.example.test",
        "AAAA",
        "; negative response, fully validated",
    ),
    (
        "_tcp.dl.example.test",
        "A",
        "; negative response, fully validated",
    ),
];

#[test]
fn delv_validates_every_kind_of_answer_and_refuses_a_foreign_key() {
    let dir = TempDir::new("dnssec-delv");
    let server = Server::start(&[]);
    let port = server.udp.port();
    let anchor = delv_anchor(&dir, &testdata(DEMO_KEY), "anchor.conf");
    for (name, rtype, expect) in QUESTIONS {
        let out = delv(port, &anchor, name, rtype);
        assert!(
            out.lines().any(|l| l.trim() == *expect),
            "{name} {rtype}: {out}"
        );
    }
    // The DS of a key the zone does not publish: nothing validates.
    let (other, _) = keygen(&dir, true);
    let foreign = delv_anchor(&dir, &other, "foreign.conf");
    for (name, rtype, _) in &QUESTIONS[..3] {
        let out = delv(port, &foreign, name, rtype);
        assert!(
            !out.contains("fully validated") && out.contains("resolution failed"),
            "{name} {rtype} with a foreign key: {out}"
        );
    }
}

/// The offset of the last byte of the first RRSIG's data in the answer section of `msg`.
fn last_signature_byte(msg: &[u8]) -> Option<usize> {
    let skip_name = |mut i: usize| -> Option<usize> {
        loop {
            let len = *msg.get(i)?;
            if len & 0xc0 == 0xc0 {
                return Some(i + 2);
            }
            if len == 0 {
                return Some(i + 1);
            }
            i += 1 + usize::from(len);
        }
    };
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    let mut i = skip_name(12)? + 4;
    for _ in 0..answers {
        i = skip_name(i)?;
        let rtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([*msg.get(i + 8)?, *msg.get(i + 9)?]));
        let end = i + 10 + rdlen;
        if rtype == 46 {
            return Some(end - 1);
        }
        i = end;
    }
    None
}

/// A UDP relay to `server` that, while `tamper` is set, changes the last byte of the first
/// signature in each answer section; returns its port.
fn relay(server: std::net::SocketAddr, tamper: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> u16 {
    let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
    outside
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = outside.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let inside = UdpSocket::bind("127.0.0.1:0").unwrap();
        inside
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 65535];
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((n, client)) = outside.recv_from(&mut buf) else {
                continue;
            };
            inside.send_to(&buf[..n], server).unwrap();
            let Ok(m) = inside.recv(&mut buf) else {
                continue;
            };
            if tamper.load(Ordering::Relaxed)
                && let Some(at) = last_signature_byte(&buf[..m])
            {
                buf[at] ^= 0x01;
            }
            let _ = outside.send_to(&buf[..m], client);
        }
    });
    port
}

#[test]
fn a_changed_signature_byte_fails_validation() {
    let dir = TempDir::new("dnssec-tamper");
    let server = Server::start(&[]);
    let anchor = delv_anchor(&dir, &testdata(DEMO_KEY), "anchor.conf");
    let (tamper, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let port = relay(server.udp, tamper.clone(), stop.clone());
    // Through the relay unchanged: validated (the relay itself changes nothing).
    let out = delv(port, &anchor, "dl.example.test", "A");
    assert!(out.contains("; fully validated"), "{out}");
    tamper.store(true, Ordering::Relaxed);
    let out = delv(port, &anchor, "www.example.test", "A");
    assert!(
        !out.contains("fully validated") && out.contains("resolution failed"),
        "a changed signature: {out}"
    );
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn ksk_and_zsk_sign_their_sets_and_signatures_are_made_again_on_time() {
    let dir = TempDir::new("dnssec-keys-timer");
    let (ksk, ksk_tag) = keygen(&dir, true);
    let (zsk, zsk_tag) = keygen(&dir, false);
    let (spare, spare_tag) = keygen(&dir, false);
    let config = demo_config(&dir, "metrics:\n  listen: 127.0.0.1:0\n");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "    records:\n",
        &format!(
            "    dnssec:\n      keys: [{ksk}, {zsk}, {{file: {spare}, sign: false}}]\n      validity_s: 40\n      refresh_s: 36\n      backdate_s: 60\n    records:\n"
        ),
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let dnskey = server.dig(&["+dnssec", "example.test", "DNSKEY"]);
    let tags: Vec<u16> = rrsigs(&dnskey).iter().map(|s| s.1).collect();
    assert_eq!(
        tags,
        [ksk_tag],
        "the DNSKEY set is signed by the KSK only: {dnskey}"
    );
    let published = dnskey.lines().filter(|l| l.contains("\tDNSKEY\t")).count();
    assert_eq!(published, 3, "every key is published: {dnskey}");
    let a = server.dig(&["+dnssec", "www.example.test", "A"]);
    let sigs = rrsigs(&a);
    assert_eq!(sigs.len(), 1, "{a}");
    assert_eq!(sigs[0].1, zsk_tag, "other sets by the ZSK only: {a}");
    let nx = server.dig(&["+dnssec", "nothere.example.test", "A"]);
    assert!(rrsigs(&nx).iter().all(|s| s.1 == zsk_tag), "{nx}");
    assert!(
        !nx.contains(&spare_tag.to_string()) || spare_tag == zsk_tag,
        "{nx}"
    );
    // Made again within refresh (4 s after the first build) plus a second.
    let first = sigs[0].2.clone();
    let again = wait_for(10, || {
        rrsigs(&server.dig(&["+dnssec", "www.example.test", "A"]))[0].2 > first
    });
    assert!(
        again,
        "the signatures were not made again: {}",
        server.stderr()
    );
    // The metrics say when the signatures expire and when they are made again.
    let addr = server.metrics.expect("a metrics endpoint");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let metric = |name: &str| -> f64 {
        let key = format!(
            "signpost_dnssec_signatures_{name}_timestamp_seconds{{zone=\"example.test.\"}} "
        );
        let line = text.lines().find(|l| l.starts_with(&key));
        line.unwrap_or_else(|| panic!("{key}: {text}"))[key.len()..]
            .trim()
            .parse()
            .unwrap()
    };
    let (expires, refresh) = (metric("expiration"), metric("refresh"));
    assert!(
        (now + 30.0..=now + 41.0).contains(&expires),
        "{expires} at {now}"
    );
    assert!(
        (now - 1.0..=now + 5.0).contains(&refresh),
        "{refresh} at {now}"
    );
    assert_eq!(expires - refresh, 36.0);
    let anchor = delv_anchor(&dir, &ksk, "anchor.conf");
    let out = delv(server.udp.port(), &anchor, "www.example.test", "A");
    assert!(out.contains("; fully validated"), "{out}");
}

#[test]
fn a_signed_answer_too_large_for_udp_is_truncated_and_complete_over_tcp() {
    // NXDOMAIN with DO: the SOA, two NSEC records and three signatures, over 512 octets.
    let server = Server::start(&[]);
    let q = ["nothere.example.test", "A"];
    let udp = server.dig(&[&["+dnssec", "+bufsize=512", "+ignore", "+notcp"][..], &q].concat());
    assert!(udp.contains(" tc"), "{udp}");
    assert!(!udp.contains("RRSIG"), "{udp}");
    let tcp = server.dig(&[&["+dnssec", "+tcp"][..], &q].concat());
    assert!(tcp.contains("status: NXDOMAIN"), "{tcp}");
    assert_eq!(rrsigs(&tcp).len(), 3, "{tcp}");
    assert_eq!(
        tcp.lines().filter(|l| l.contains("\tNSEC\t")).count(),
        2,
        "{tcp}"
    );
    // Without DO, the same query fits and has neither signature nor NSEC.
    let plain = server.dig(&[&["+bufsize=512", "+ignore", "+notcp"][..], &q].concat());
    assert!(
        !plain.contains(" tc") && !plain.contains("RRSIG"),
        "{plain}"
    );
    assert!(
        plain.contains("status: NXDOMAIN") && !plain.contains("NSEC"),
        "{plain}"
    );
}

/// Answers that differ by client, and records written twice: an AAAA query whose client's
/// region has no IPv6 node (empty, while other clients get AAAA at the same name), the A
/// query of the same client, a node address and a static record listed twice, and NSEC
/// queries, all validate.
#[test]
fn empty_family_answers_duplicates_and_nsec_queries_validate() {
    let dir = TempDir::new("dnssec-edges");
    dir.write(
        "map.yaml",
        "nodes:
  - { name: v4only, ipv4: [192.0.2.20, 192.0.2.20] }
  - { name: dual, ipv4: [198.51.100.20], ipv6: [\"2001:db8::20\"] }
regions:
  - { name: onlyv4, nodes: [v4only] }
  - { name: dualr, nodes: [dual] }
services:
  - names: [dl.example.test]
    ttl: 60
    all_down: empty
    rules:
      - { prefixes: [127.0.0.0/8], regions: [onlyv4] }
      - { default: true, regions: [dualr] }
",
    );
    let config = config_with_maps(&dir, &["map.yaml"], "");
    let key = testdata(DEMO_KEY);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "    records:\n      - { name: www, type: A, value: 192.0.2.80 }\n",
        &format!(
            "    dnssec:\n      keys: [{key}]\n    records:\n      - {{ name: www, type: A, value: 192.0.2.80 }}\n      - {{ name: www, type: A, value: 192.0.2.80 }}\n      - {{ name: www, type: TXT, values: [same, same] }}\n      - {{ name: todl, type: CNAME, value: dl }}\n"
        ),
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let anchor = delv_anchor(&dir, &key, "anchor.conf");
    let port = server.udp.port();
    // Other clients do get AAAA at dl: the name has AAAA.
    let other = server.dig(&["+subnet=8.8.8.0/24", "dl.example.test", "AAAA"]);
    assert!(other.contains("2001:db8::20"), "{other}");
    for (name, rtype, expect) in [
        (
            "dl.example.test",
            "AAAA",
            "; negative response, fully validated",
        ),
        // The CNAME validates, then the proof that its target has no AAAA for this client.
        ("todl.example.test", "AAAA", "; fully validated"),
        ("dl.example.test", "A", "; fully validated"),
        ("www.example.test", "A", "; fully validated"),
        ("www.example.test", "TXT", "; fully validated"),
        ("example.test", "NSEC", "; fully validated"),
        ("dl.example.test", "NSEC", "; fully validated"),
    ] {
        let out = delv(port, &anchor, name, rtype);
        assert!(
            out.lines().any(|l| l.trim() == expect)
                && !out.contains("proof failed")
                && !out.contains("broken trust chain"),
            "{name} {rtype}: {out}"
        );
    }
}

/// An `answers: 2` service keeps answering two nodes, signed, when its usual first node is
/// down (every combination of a region's members is signed ahead).
#[test]
fn degraded_answers_of_several_nodes_stay_whole_and_validate() {
    let dir = TempDir::new("dnssec-degraded");
    dir.write(
        "map.yaml",
        "nodes:
  - { name: a, ipv4: [192.0.2.1] }
  - { name: b, ipv4: [192.0.2.2] }
  - { name: c, ipv4: [192.0.2.3] }
regions:
  - { name: r, nodes: [a, b, c] }
services:
  - names: [dl.example.test]
    ttl: 60
    answers: 2
    rules:
      - { default: true, regions: [r] }
",
    );
    let config = config_with_maps(&dir, &["map.yaml"], "");
    let key = testdata(DEMO_KEY);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "    records:\n",
        &format!("    dnssec:\n      keys: [{key}]\n    records:\n"),
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::with_control(&config, &dir);
    let anchor = delv_anchor(&dir, &key, "anchor.conf");
    let addresses = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains("\tA\t"))
            .map(|l| l.split_whitespace().last().unwrap().to_string())
            .collect()
    };
    let out = delv(server.udp.port(), &anchor, "dl.example.test", "A");
    assert!(out.contains("; fully validated"), "{out}");
    assert_eq!(addresses(&out), ["192.0.2.1", "192.0.2.2"], "{out}");
    assert!(server.ctl(&["set", "a", "down"]).0);
    let out = delv(server.udp.port(), &anchor, "dl.example.test", "A");
    assert!(out.contains("; fully validated"), "{out}");
    assert_eq!(addresses(&out), ["192.0.2.2", "192.0.2.3"], "{out}");
}
