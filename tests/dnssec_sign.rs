//! Record sets signed by `signpost::dnssec::sign` verify with BIND's own verifier: a small zone
//! (SOA, NS, DNSKEY, an A set of two records, a CNAME whose target is written in mixed case,
//! all as Signpost encodes them, and the NSEC chain `dnssec::nsec::chain` makes over the names) is signed set by set, written
//! as a zone file and handed to `dnssec-verify`, which must find it fully signed. The same zone
//! with one signature byte changed must fail, and so must a zone signed by a key other than the
//! DNSKEY published: the check can fail.
//!
//! Builds from the same sources (a feed change, the re-sign timer) reuse the signatures of the
//! build before while they are fresh, and serve exactly them.

mod common;
use common::*;

use std::process::Command;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use domain::base::iana::Rtype;
use domain::base::{Name, ParseRecordData};
use domain::dep::octseq::Parser;
use domain::rdata::ZoneRecordData;
use signpost::dnssec::sign::{Signer, Validity};
use signpost::dnssec::{Algorithm, NewKey, Role};

const A: u16 = 1;
const NS: u16 = 2;
const CNAME: u16 = 5;
const SOA: u16 = 6;
const MX: u16 = 15;
const RRSIG: u16 = 46;
const NSEC: u16 = 47;
const DNSKEY: u16 = 48;

/// A name in wire form.
fn wire(name: &str) -> Vec<u8> {
    let hickory = hickory_proto::rr::Name::from_str(name).unwrap();
    signpost::zone::wire(&hickory).into_vec()
}

/// One record in presentation format, its data printed by `domain`.
fn line(owner: &str, rtype: u16, rdata: &[u8]) -> String {
    let bytes = Bytes::copy_from_slice(rdata);
    let mut parser = Parser::from_ref(&bytes);
    let data = ZoneRecordData::<Bytes, domain::base::name::ParsedName<Bytes>>::parse_rdata(
        Rtype::from_int(rtype),
        &mut parser,
    )
    .unwrap()
    .unwrap();
    format!("{owner} 300 IN {} {data}\n", Rtype::from_int(rtype))
}

/// The zone's record sets: (owner, type, RDATAs).
fn sets(dnskey: Vec<u8>) -> Vec<(&'static str, u16, Vec<Vec<u8>>)> {
    let origin = hickory_proto::rr::Name::from_str("example.org.").unwrap();
    let rdata = |t: u16, v: &str| signpost::zone::rdata(t, v, &origin).unwrap();
    let soa = signpost::zone::soa_rdata(
        &hickory_proto::rr::Name::from_str("ns1.example.org.").unwrap(),
        &hickory_proto::rr::Name::from_str("hostmaster.example.org.").unwrap(),
        [1, 3600, 600, 86400, 300],
    );
    // An MX whose exchange is written in mixed case: signed in its canonical (lowercase) form.
    let mut mx = 10u16.to_be_bytes().to_vec();
    mx.extend_from_slice(b"\x04Mail\x07Example\x03ORG\x00");
    vec![
        ("example.org.", SOA, vec![soa]),
        ("example.org.", NS, vec![rdata(NS, "ns1")]),
        ("example.org.", DNSKEY, vec![dnskey]),
        ("example.org.", MX, vec![mx]),
        (
            "dl.example.org.",
            A,
            vec![rdata(A, "192.0.2.10"), rdata(A, "192.0.2.11")],
        ),
        ("mail.example.org.", A, vec![rdata(A, "192.0.2.25")]),
        ("ns1.example.org.", A, vec![rdata(A, "192.0.2.53")]),
        ("www.example.org.", CNAME, vec![rdata(CNAME, "dl")]),
    ]
}

/// The sets with the NSEC chain over their names (`dnssec::nsec::chain`) added.
fn with_chain(sets: Vec<(&'static str, u16, Vec<Vec<u8>>)>) -> Vec<(String, u16, Vec<Vec<u8>>)> {
    let mut owners: Vec<(Vec<u8>, Vec<u16>)> = Vec::new();
    for (owner, rtype, _) in &sets {
        match owners.iter_mut().find(|(o, _)| *o == wire(owner)) {
            Some((_, types)) => types.push(*rtype),
            None => owners.push((wire(owner), vec![*rtype])),
        }
    }
    let input: Vec<(&[u8], &[u16])> = owners.iter().map(|(o, t)| (&o[..], &t[..])).collect();
    let links = signpost::dnssec::nsec::chain(&input).unwrap();
    let mut all: Vec<(String, u16, Vec<Vec<u8>>)> = sets
        .into_iter()
        .map(|(o, t, r)| (o.to_string(), t, r))
        .collect();
    for link in links {
        let owner = Name::from_octets(link.owner.to_vec()).unwrap();
        all.push((format!("{owner}."), NSEC, vec![link.rdata]));
    }
    all
}

/// The zone file: every set with the RRSIG `sign` makes for it (changed by `tamper`).
fn zone(published: &Signer, signer: &Signer, tamper: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let validity = Validity {
        inception: now - 3600,
        expiration: now + 14 * 86400,
    };
    let mut text = String::new();
    for (i, (owner, rtype, rdatas)) in with_chain(sets(published.dnskey_rdata()))
        .into_iter()
        .enumerate()
    {
        let owner = owner.as_str();
        let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        let mut rrsig = signer
            .sign(&wire(owner), rtype, 300, &refs, validity)
            .unwrap();
        if tamper && i == 5 {
            *rrsig.last_mut().unwrap() ^= 1;
        }
        for r in &rdatas {
            text += &line(owner, rtype, r);
        }
        text += &line(owner, RRSIG, &rrsig);
    }
    text
}

/// Runs `dnssec-verify` on `text`: its success and what it said.
fn verify(dir: &TempDir, name: &str, text: &str) -> (bool, String) {
    let path = dir.write(name, text);
    let out = Command::new("dnssec-verify")
        // -z: one key signs everything (a CSK), so its KSK flag is not a separate role.
        .args(["-z", "-o", "example.org"])
        .arg(&path)
        .output()
        .expect("dnssec-verify is installed (bind9-utils, installed by the test command)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn signed_sets_verify_with_dnssec_verify_and_a_changed_one_does_not() {
    let dir = TempDir::new("dnssec-sign");
    let mut signers = Vec::new();
    for algorithm in [
        Algorithm::EcdsaP256Sha256,
        Algorithm::Ed25519,
        Algorithm::EcdsaP256Sha256,
    ] {
        let key = NewKey::generate("example.org", algorithm, Role::KeySigning).unwrap();
        let (public, _) = key.write(&dir.0).unwrap();
        signers.push(Signer::load(&public).unwrap());
    }
    for signer in &signers[..2] {
        let text = zone(signer, signer, false);
        let (ok, said) = verify(&dir, "good.zone", &text);
        assert!(ok && said.contains("Zone fully signed"), "{said}\n{text}");
    }
    let (ok, said) = verify(&dir, "tampered.zone", &zone(&signers[0], &signers[0], true));
    assert!(!ok, "a changed signature verified: {said}");
    let (ok, said) = verify(
        &dir,
        "other-key.zone",
        &zone(&signers[0], &signers[2], false),
    );
    assert!(!ok, "a signature by an unpublished key verified: {said}");
}

#[test]
fn a_private_key_that_is_not_the_public_ones_half_is_refused() {
    let dir = TempDir::new("dnssec-mismatch");
    let one = NewKey::generate("example.org", Algorithm::EcdsaP256Sha256, Role::Zone).unwrap();
    let two = NewKey::generate("example.org", Algorithm::EcdsaP256Sha256, Role::Zone).unwrap();
    let (public, private) = one.write(&dir.0).unwrap();
    let (_, other) = two.write(&dir.0).unwrap();
    std::fs::copy(&other, &private).unwrap();
    let e = Signer::load(&public).unwrap_err();
    assert!(e.to_string().contains("not the private half"), "{e}");
}

#[test]
fn a_second_build_from_the_same_sources_reuses_every_signature() {
    let sources = signpost::load::Sources::read(None, None).expect("the demo reads");
    let first = sources.build(&[]).expect("the demo builds");
    let (made, reused) = sources.signatures_made();
    assert!(made > 10 && reused == 0, "made {made}, reused {reused}");
    let second = sources.build(&[]).expect("the demo builds again");
    assert_eq!(sources.signatures_made(), (0, made));
    let signed = |snap: &signpost::snapshot::Snapshot| {
        let z = &snap.zones[0];
        let s = z.signed.as_ref().expect("the demo zone is signed");
        let sets: Vec<Vec<Box<[u8]>>> = z
            .nodes
            .values()
            .flat_map(|n| n.sets.iter().map(|set| set.sigs.clone()))
            .collect();
        (s.soa_sigs.clone(), s.refresh_at, s.expires_at, sets)
    };
    // The same signatures, due when the first build's are.
    assert!(signed(&first) == signed(&second));
}
