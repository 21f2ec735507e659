//! The answer path does not allocate: a counting global allocator watches `respond` (and the
//! snapshot load that precedes it in the UDP loop) answer every kind of query many times.

use std::alloc::System;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use signpost::dns::answer::{Outcome, Transport, respond};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn query(name: &str, qtype: u16, ecs: Option<(u16, u8, &[u8])>) -> Vec<u8> {
    let mut p = vec![
        0x12,
        0x34,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        if ecs.is_some() { 1 } else { 0 },
    ];
    for l in name.split('.') {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    if let Some((family, source, addr)) = ecs {
        let opt_len = 8 + addr.len();
        p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        p.extend_from_slice(&(opt_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 8]);
        p.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
        p.extend_from_slice(&family.to_be_bytes());
        p.extend_from_slice(&[source, 0]);
        p.extend_from_slice(addr);
    }
    p
}

#[test]
fn answering_allocates_nothing() {
    let (_, snap) = signpost::reload::load(None, None).expect("embedded default loads");
    let state = Arc::new(ArcSwap::from_pointee(snap));
    let queries = vec![
        query("dl.example.test", 1, Some((1, 24, &[81, 2, 69]))),
        query("DL.example.test", 28, Some((1, 24, &[8, 8, 8]))),
        query(
            "dl.example.test",
            1,
            Some((2, 48, &[0x20, 0x01, 0x48, 0x60, 0, 0])),
        ),
        query("dl.example.test", 1, Some((1, 24, &[80, 128, 0]))),
        query("dl.example.test", 1, None),
        query("www.example.test", 1, Some((1, 24, &[1, 1, 1]))),
        query("example.test", 6, None),
        query("example.test", 2, None),
        query("mirrors.example.test", 1, None),
        query("nope.example.test", 1, None),
        query("example.com", 1, None),
        query("big.example.test", 16, None),
        query("dl.example.test", 255, None),
        query("dl.example.test", 1, Some((1, 23, &[81, 2, 69]))), // FORMERR
        vec![0x12, 0x34, 0x01],                                   // dropped
    ];
    let src: IpAddr = "127.0.0.1".parse().unwrap();
    let mut out = vec![0u8; 65535];
    // Warm up: first uses of thread-local machinery may allocate once.
    for q in &queries {
        let snap = state.load();
        respond(&snap, q, src, Transport::Udp, &mut out);
    }
    let region = Region::new(GLOBAL);
    let mut answered = 0;
    for _ in 0..1000 {
        for q in &queries {
            let snap = state.load();
            if let Outcome::Answered { .. } = respond(&snap, q, src, Transport::Udp, &mut out) {
                answered += 1;
            }
        }
    }
    let stats = region.change();
    assert_eq!(answered, 1000 * (queries.len() - 1));
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
