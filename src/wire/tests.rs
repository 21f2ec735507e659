//! The wire format's unit tests: queries decoded, responses encoded, names and options.

use super::*;

fn query(name: &[&str], qtype: u16, extra: &[u8], arcount: u16) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&arcount.to_be_bytes());
    for l in name {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(extra);
    p
}

fn opt(options: &[u8], version: u8) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, version, 0, 0];
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

#[test]
fn lowercasing_eight_bytes_at_a_time_matches_the_byte_rule() {
    let all: Vec<u8> = (0..=255u8).collect();
    for start in 0..all.len() {
        for len in [1, 7, 8, 9, 17, 64] {
            let src = &all[start..(start + len).min(all.len())];
            let mut dst = vec![0u8; src.len()];
            let hash = lowercase_into(&mut dst, src);
            let want: Vec<u8> = src.iter().map(|b| b.to_ascii_lowercase()).collect();
            assert_eq!(dst, want, "{src:?}");
            // The hash made while lowercasing is the one the name tables are keyed by.
            assert_eq!(hash, NameHash::of(&want), "{src:?}");
        }
    }
}

#[test]
fn a_query_carries_the_hash_of_its_lowercase_name() {
    let mut scratch = [0; MAX_NAME];
    for name in [&["dl", "Example", "TEST"][..], &["a"], &[], &["x"; 40]] {
        let packet = query(name, rtype::A, &[], 0);
        let q = Query::parse(&packet, &mut scratch).expect("well-formed");
        assert_eq!(q.name_hash, NameHash::of(q.name), "{name:?}");
    }
    assert_ne!(
        NameHash::of(b"\x02dl\x07example\x04test\x00"),
        NameHash::of(b"\x00")
    );
}

#[test]
fn plain_query_is_lowercased_and_keeps_the_original_question() {
    let p = query(&["Dl", "EXAMPLE", "test"], rtype::A, &[], 0);
    let mut scratch = [0; MAX_NAME];
    let q = Query::parse(&p, &mut scratch).unwrap();
    assert_eq!(q.name(), b"\x02dl\x07example\x04test\x00");
    assert_eq!(&q.question[1..3], b"Dl");
    assert_eq!(q.qtype, rtype::A);
    assert!(q.edns.is_none());
}

#[test]
fn ecs_is_validated() {
    let ok = opt(&[0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69], 0);
    let packet = query(&["a"], 1, &ok, 1);
    let mut scratch = [0; MAX_NAME];
    let q = Query::parse(&packet, &mut scratch).unwrap();
    let ecs = q.edns.unwrap().ecs.unwrap();
    assert_eq!(ecs.addr, "81.2.69.0".parse::<IpAddr>().unwrap());
    assert_eq!(ecs.source_prefix, 24);
    let cases: &[&[u8]] = &[
        &[0, 8, 0, 7, 0, 3, 24, 0, 81, 2, 69],    // bad family
        &[0, 8, 0, 6, 0, 1, 24, 0, 81, 2],        // address too short
        &[0, 8, 0, 7, 0, 1, 23, 0, 81, 2, 69],    // bits past the prefix
        &[0, 8, 0, 7, 0, 1, 24, 8, 81, 2, 69],    // scope set in a query
        &[0, 8, 0, 8, 0, 1, 33, 0, 81, 2, 69, 1], // prefix longer than the family
        &[0, 8, 0, 9, 0, 1, 24, 0, 81, 2, 69],    // option overruns
    ];
    for c in cases {
        let p = query(&["a"], 1, &opt(c, 0), 1);
        assert_eq!(
            Query::parse(&p, &mut [0; MAX_NAME]).err().unwrap().0,
            Reject::Rcode(rcode::FORMERR),
            "{c:?}"
        );
    }
}

#[test]
fn names_in_records_are_checked_with_their_pointers() {
    // A packet: header, then the name "a.b" at 12, then names to skip from 17 on.
    let mut p = vec![0u8; 12];
    p.extend_from_slice(b"\x01a\x01b\x00");
    let at = p.len();
    let skip = |tail: &[u8]| {
        let mut q = p.clone();
        q.extend_from_slice(tail);
        skip_name(&q, at)
    };
    assert_eq!(skip(b"\x00"), Some(at + 1), "the root");
    assert_eq!(skip(&[0xc0, 12]), Some(at + 2), "a pointer back");
    assert_eq!(
        skip(&[1, b'x', 0xc0, 14]),
        Some(at + 4),
        "a label, then a pointer"
    );
    assert_eq!(skip(&[0xc0, 2]), None, "into the header");
    assert_eq!(skip(&[0xc0, at as u8]), None, "to itself");
    assert_eq!(skip(&[0xc0, at as u8 + 2, 0]), None, "forward");
    assert_eq!(skip(&[0xc0, 0xff]), None, "past the end");
    assert_eq!(skip(&[0xc0]), None, "cut short");
    assert_eq!(skip(&[0x40, 0]), None, "an extended label type");
    // Pointers that lead to each other: a names b, b names a.
    let mut q = p.clone();
    q.extend_from_slice(&[1, b'x', 0xc0, at as u8 + 4, 0xc0, at as u8]);
    assert_eq!(skip_name(&q, at + 4), None, "a loop");
    // 255 octets at most, counted through the pointers.
    let mut long = vec![0u8; 12];
    for _ in 0..4 {
        long.push(63);
        long.extend_from_slice(&[b'x'; 63]);
    }
    long.push(0);
    assert_eq!(skip_name(&long, 12), None, "257 octets");
    let mut q = vec![0u8; 12];
    for _ in 0..3 {
        q.push(63);
        q.extend_from_slice(&[b'x'; 63]);
    }
    q.push(0);
    let ptr = q.len();
    for (label, ok) in [(61u8, true), (62, false)] {
        let mut r = q.clone();
        r.push(label);
        r.extend_from_slice(&vec![b'y'; label as usize]);
        r.extend_from_slice(&[0xc0, 12]);
        let octets = label as usize + 1 + 192 + 1;
        assert_eq!(
            skip_name(&r, ptr).is_some(),
            ok,
            "{octets} octets, through a pointer"
        );
    }
}

#[test]
fn meta_types_in_the_question_are_formerr_with_edns_kept() {
    for t in [0, rtype::OPT, rtype::TKEY, rtype::TSIG] {
        let p = query(&["a"], t, &opt(&[], 0), 1);
        let mut scratch = [0; MAX_NAME];
        let (reject, echo) = Query::parse(&p, &mut scratch).err().unwrap();
        assert_eq!(reject, Reject::Rcode(rcode::FORMERR), "{t}");
        assert!(echo.unwrap().edns.is_some(), "{t}");
    }
    let p = query(&["a"], 65000, &[], 0);
    assert!(Query::parse(&p, &mut [0; MAX_NAME]).is_ok());
    // A refused ECS option: FORMERR, with the OPT record's fields kept for the reply.
    let bad = opt(&[0, 8, 0, 7, 0, 1, 23, 0, 81, 2, 69], 0);
    let p = query(&["a"], 1, &bad, 1);
    let mut scratch = [0; MAX_NAME];
    let (_, echo) = Query::parse(&p, &mut scratch).err().unwrap();
    let e = echo.unwrap().edns.unwrap();
    assert_eq!((e.udp_size, e.ecs), (1232, None));
}

#[test]
fn malformed_packets() {
    assert_eq!(
        Query::parse(&[0; 5], &mut [0; MAX_NAME]).err().unwrap().0,
        Reject::Drop
    );
    let mut resp = query(&["a"], 1, &[], 0);
    resp[2] |= 0x80;
    assert_eq!(
        Query::parse(&resp, &mut [0; MAX_NAME]).err().unwrap().0,
        Reject::Drop
    );
    let mut garbage = query(&["a"], 1, &[], 0);
    garbage.push(0);
    assert_eq!(
        Query::parse(&garbage, &mut [0; MAX_NAME]).err().unwrap().0,
        Reject::Rcode(rcode::FORMERR)
    );
    let short = query(&["a"], 1, &[], 0);
    assert_eq!(
        Query::parse(&short[..short.len() - 1], &mut [0; MAX_NAME])
            .err()
            .unwrap()
            .0,
        Reject::Rcode(rcode::FORMERR)
    );
    let mut notify = query(&["a"], 1, &[], 0);
    notify[2] = 4 << 3;
    assert_eq!(
        Query::parse(&notify, &mut [0; MAX_NAME]).err().unwrap().0,
        Reject::Rcode(rcode::NOTIMP)
    );
    let v1 = query(&["a"], 1, &opt(&[], 1), 1);
    assert_eq!(
        Query::parse(&v1, &mut [0; MAX_NAME]).err().unwrap().0,
        Reject::Rcode(rcode::BADVERS)
    );
}

#[test]
fn an_opt_record_at_the_end_of_the_buffer_is_the_same_as_anywhere() {
    let question = [0u8, 0, 1, 0, 1];
    for (addr, prefix) in [
        ("192.0.2.0", 24u8),
        ("10.0.0.0", 8),
        ("2001:db8::", 48),
        ("::", 0),
    ] {
        let s = ClientSubnet {
            addr: addr.parse().unwrap(),
            source_prefix: prefix,
        };
        for ecs in [Some((s, prefix)), None] {
            let mut roomy = [0u8; 512];
            let mut w = Writer::new(&mut roomy, 7, 0, &question);
            w.opt(1232, 0, true, ecs);
            let len = w.finish();
            // The same record with not one byte to spare after it.
            let mut tight = vec![0u8; len];
            let mut w = Writer::new(&mut tight, 7, 0, &question);
            w.opt(1232, 0, true, ecs);
            assert!(!w.overflow, "{addr}/{prefix}");
            assert_eq!(w.finish(), len);
            assert_eq!(tight[..], roomy[..len], "{addr}/{prefix}");
            // One byte short: the record does not fit.
            let mut short = vec![0u8; len - 1];
            let mut w = Writer::new(&mut short, 7, 0, &question);
            w.opt(1232, 0, true, ecs);
            assert!(w.overflow, "{addr}/{prefix}");
        }
    }
}

#[test]
fn a_question_asked_again_is_taken_from_the_query_before() {
    let first = query(&["dl", "Example", "test"], rtype::A, &[], 0);
    let mut s1 = [0; MAX_NAME];
    let before = Query::parse(&first, &mut s1).expect("well-formed");
    let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69];
    let mut chaos = query(&["dl", "Example", "test"], rtype::A, &[], 0);
    let class = chaos.len() - 2;
    chaos[class..].copy_from_slice(&CLASS_CH.to_be_bytes());
    let cases: [(Vec<u8>, bool); 7] = [
        // The same question (with an OPT record after it), or the same name and class with
        // another type: taken over (the type is read).
        (
            query(&["dl", "Example", "test"], rtype::A, &opt(&ecs, 0), 1),
            true,
        ),
        (query(&["dl", "Example", "test"], rtype::AAAA, &[], 0), true),
        // Another letter case, another class, another name: read again.
        (query(&["dl", "example", "test"], rtype::A, &[], 0), false),
        (chaos, false),
        (query(&["dl", "Example"], rtype::A, &[], 0), false),
        // The question before is longer than this packet; a meta type (FORMERR, also when
        // the name is taken over).
        (first[..first.len() - 2].to_vec(), false),
        (query(&["dl", "Example", "test"], rtype::OPT, &[], 0), false),
    ];
    for (packet, same) in cases {
        let (mut s2, mut s3) = ([0; MAX_NAME], [0; MAX_NAME]);
        let mut after = Query::blank();
        let got = after.parse_after(&packet, &mut s2, &before);
        let mut alone = Query::blank();
        let want = alone.parse_into(&packet, &mut s3);
        assert_eq!(
            got.as_ref().ok(),
            want.as_ref().ok().map(|()| &same),
            "{packet:?}"
        );
        if let (Err(got), Err(want)) = (&got, &want) {
            // Refused alike, echoing the same parts.
            assert_eq!(got.reject, want.reject, "{packet:?}");
            let (g, w) = (got.echo(&after), want.echo(&alone));
            let parts = |e: Option<Echo<'_>>| e.map(|e| (e.id, e.question.to_vec(), e.why));
            assert_eq!(parts(g), parts(w), "{packet:?}");
            continue;
        }
        // Either way, the query is the one decoded without help.
        assert_eq!(after.name, alone.name);
        assert_eq!(after.name_hash, alone.name_hash);
        assert_eq!((after.qtype, after.qclass), (alone.qtype, alone.qclass));
        assert_eq!(after.question, alone.question);
        assert_eq!(after.question.as_ptr(), packet[12..].as_ptr());
        assert_eq!(after.edns.map(|e| e.ecs), alone.edns.map(|e| e.ecs));
    }
}
