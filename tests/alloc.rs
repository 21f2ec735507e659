//! The answer path does not allocate: a counting global allocator watches `respond` (and the
//! snapshot load that precedes it in the UDP loop) answer every kind of query many times, and
//! the same for the batched form the UDP workers use (prepare all, warm the route tables,
//! complete all), which must also produce byte for byte the same responses.

use std::alloc::System;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use signpost::dns::answer::{Outcome, Prepared, Transport, complete, prepare_into, respond};
use signpost::wire::MAX_NAME;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counters are process-wide: the tests here take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

/// A query with an OPT record holding `options` (encoded), for the options that ask for
/// something back (they take the answer's long way, which must not allocate either).
fn with_options(name: &str, qtype: u16, options: &[u8]) -> Vec<u8> {
    let mut p = query(name, qtype, None);
    p[11] = 1;
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    p.extend_from_slice(&(options.len() as u16).to_be_bytes());
    p.extend_from_slice(options);
    p
}

fn queries() -> Vec<Vec<u8>> {
    vec![
        query("dl.example.test", 1, Some((1, 24, &[81, 2, 69]))),
        query("DL.example.test", 28, Some((1, 24, &[8, 8, 8]))),
        query(
            "dl.example.test",
            1,
            Some((2, 48, &[0x20, 0x01, 0x48, 0x60, 0, 0])),
        ),
        query("dl.example.test", 1, Some((1, 24, &[80, 128, 0]))),
        query("dl.example.test", 1, None),
        // The same name with other types right after it (a zone transfer is refused), then
        // in another letter case: decoded again, and echoed as asked.
        query("dl.example.test", 28, Some((1, 24, &[8, 8, 8]))),
        query("dl.example.test", 252, None),
        query("Dl.EXAMPLE.test", 1, Some((1, 24, &[81, 2, 69]))),
        query("www.example.test", 1, Some((1, 24, &[1, 1, 1]))),
        query("www.example.test", 1, None),
        query("example.test", 6, None),
        query("example.test", 2, None),
        query("mirrors.example.test", 1, None),
        query("nope.example.test", 1, None),
        query("example.com", 1, None),
        query("big.example.test", 16, None),
        query("dl.example.test", 255, None),
        query("dl.example.test", 1, Some((1, 23, &[81, 2, 69]))), // FORMERR
        // A CNAME to the service name: the service's route and pick at the chain's end.
        query("todl.example.test", 1, Some((1, 24, &[81, 2, 69]))),
        query("todl.example.test", 28, None),
        // An IPv4-mapped ECS address, and a meta type in the question (FORMERR with OPT).
        query(
            "dl.example.test",
            1,
            Some((
                2,
                120,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 81, 2, 69],
            )),
        ),
        query("dl.example.test", 250, Some((1, 24, &[81, 2, 69]))),
        vec![0x12, 0x34, 0x01], // dropped
        // DO=1 to the signed demo zone: addresses with their signatures (directly and through
        // a CNAME), a static set, DNSKEY, ANY, NODATA, an empty non-terminal and NXDOMAIN
        // with their NSEC proofs.
        signed("dl.example.test", 1, Some((1, 24, &[81, 2, 69]))),
        signed("dl.example.test", 28, Some((1, 24, &[8, 8, 8]))),
        signed("todl.example.test", 1, Some((1, 24, &[81, 2, 69]))),
        signed("www.example.test", 1, None),
        signed("example.test", 48, None),
        signed("dl.example.test", 255, None),
        signed("www.example.test", 16, None),
        signed("_tcp.dl.example.test", 1, None),
        signed("nope.example.test", 1, None),
        signed("a.b.nope.example.test", 28, None),
    ]
}

/// A query with the DO bit (RFC 3225) in its OPT record.
fn signed(name: &str, qtype: u16, ecs: Option<(u16, u8, &[u8])>) -> Vec<u8> {
    let mut p = match ecs {
        Some(_) => query(name, qtype, ecs),
        None => with_options(name, qtype, &[]),
    };
    // The OPT record starts after the question: owner, type, class, extended rcode, version,
    // then the flags, whose top bit is DO.
    let opt = 12 + name.len() + 2 + 4;
    assert_eq!(p[opt..opt + 3], [0, 0, 41]);
    p[opt + 7] = 0x80;
    p
}

/// Queries whose options take the answer's long way; their cookies carry the time, so they
/// are left out of the comparison of batched answers.
fn option_queries() -> Vec<Vec<u8>> {
    vec![
        // COOKIE (client cookie alone; with a server cookie), NSID, keepalive over UDP
        // (FORMERR), a malformed COOKIE (FORMERR), and REFUSED with an extended error.
        with_options("dl.example.test", 1, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]),
        with_options("dl.example.test", 1, &{
            let mut o = vec![0, 10, 0, 24];
            o.extend_from_slice(&[7; 8]);
            o.extend_from_slice(&[1, 0, 0, 0, 0x5c, 0xf7, 0x9f, 0x11]);
            o.extend_from_slice(&[9; 8]);
            o
        }),
        with_options("example.test", 6, &[0, 3, 0, 0]),
        with_options("example.test", 6, &[0, 11, 0, 0]),
        with_options("example.test", 6, &[0, 10, 0, 5, 1, 2, 3, 4, 5]),
        with_options("example.com", 1, &[]),
    ]
}

#[test]
fn answering_allocates_nothing() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, mut snap) = signpost::load::load(None, None).expect("embedded default loads");
    // Counted as a worker counts: its own row of the query tally and of the snapshot's.
    let counters = signpost::counters::Counters::new(1);
    snap.attach_tally(counters.rows());
    let slot = counters.udp_slot();
    let meter = signpost::dns::Meter::new(counters.query_tally(), slot, Transport::Udp);
    let state = Arc::new(ArcSwap::from_pointee(snap));
    let mut queries = queries();
    queries.extend(option_queries());
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
            let outcome = respond(&snap, q, src, Transport::Udp, &mut out);
            meter.count(&snap, &outcome);
            if let Outcome::Answered { .. } = outcome {
                answered += 1;
            }
        }
    }
    let stats = region.change();
    assert_eq!(answered, 1000 * (queries.len() - 1));
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    // The counting is real: every answered query and the dropped one are in the tally.
    let total: u64 = counters
        .stats()
        .iter()
        .find(|(k, _)| *k == "udp_queries")
        .unwrap()
        .1;
    assert_eq!(total, 1000 * queries.len() as u64);
}

#[test]
fn batched_answers_are_the_same_and_allocate_nothing() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, snap) = signpost::load::load(None, None).expect("embedded default loads");
    let state = Arc::new(ArcSwap::from_pointee(snap));
    let queries = queries();
    let src: IpAddr = "192.0.2.1".parse().unwrap();
    // One at a time, for reference (this allocates the expected copies, before counting).
    let mut out = vec![0u8; 65535];
    let expected: Vec<Option<Vec<u8>>> = queries
        .iter()
        .map(
            |q| match respond(&state.load(), q, src, Transport::Udp, &mut out) {
                Outcome::Answered { len, .. } => Some(out[..len].to_vec()),
                Outcome::Dropped => None,
            },
        )
        .collect();
    assert_eq!(expected.iter().filter(|e| e.is_none()).count(), 1);
    let n = queries.len();
    assert!(n <= 40, "one batch");
    let mut names = vec![[0u8; MAX_NAME]; n];
    let mut outs = vec![vec![0u8; 65535]; n];
    let mut got: Vec<(usize, usize)> = Vec::with_capacity(n);
    let region = Region::new(GLOBAL);
    let mut touched = 0u64;
    for round in 0..1000 {
        let snap = state.load();
        // As a UDP worker does: each query prepared in its slot, the batch's last question
        // found in a zone passed from one to the next (queries 3 to 6 and 9 ask about the name
        // before them again, 7 in another letter case; the signed ones after an error).
        let mut batch: [Prepared<'_, '_>; 40] = std::array::from_fn(|_| Prepared::Drop);
        let mut recent = None;
        for ((slot, q), scratch) in batch.iter_mut().zip(&queries).zip(names.iter_mut()) {
            prepare_into(slot, &snap, q, src, scratch, &mut recent);
        }
        for p in &batch[..n] {
            touched ^= p.directory_entry(&snap).map_or(0, |w| *w);
        }
        for p in &batch[..n] {
            touched ^= p.warm_blocks(&snap);
        }
        for (i, p) in batch[..n].iter().enumerate() {
            let outcome = complete(&snap, p, Transport::Udp, &mut outs[i]);
            if round == 0 {
                got.push((
                    i,
                    match outcome {
                        Outcome::Answered { len, .. } => len,
                        Outcome::Dropped => usize::MAX,
                    },
                ));
            }
        }
    }
    let stats = region.change();
    std::hint::black_box(touched);
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert_eq!(got.len(), n);
    for (i, len) in got {
        match &expected[i] {
            Some(e) => assert_eq!(&outs[i][..len], &e[..], "query {i}"),
            None => assert_eq!(len, usize::MAX, "query {i}"),
        }
    }
}

#[test]
fn capacity_steered_answers_allocate_nothing() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, snap) = signpost::load::load(None, None).expect("embedded default loads");
    // The demo's `cdn.example.test` is `spread: capacity`: give it weight factors and an
    // overflow, as the controller publishes them, so both paths of the pick run.
    let svc = snap
        .services
        .iter()
        .find(|s| s.names.iter().any(|n| n == "cdn.example.test"))
        .expect("the demo has a capacity service");
    let steer = svc.steering.as_ref().expect("spread: capacity");
    let europe = svc.regions.iter().position(|r| r.name == "europe").unwrap();
    let fra1 = snap.nodes.iter().position(|n| n.name == "fra1").unwrap();
    steer.set_overflow(europe, 0.5);
    steer.set_factor(fra1, 0.4);
    let state = Arc::new(ArcSwap::from_pointee(snap));
    // Clients in Great Britain (81.2.69.0/24 and its neighbours): Europe, then North America.
    let queries: Vec<Vec<u8>> = (0..64u8)
        .map(|i| query("cdn.example.test", 1, Some((1, 24, &[81, 2, i]))))
        .collect();
    let src: IpAddr = "127.0.0.1".parse().unwrap();
    let mut out = vec![0u8; 65535];
    for q in &queries {
        respond(&state.load(), q, src, Transport::Udp, &mut out);
    }
    let region = Region::new(GLOBAL);
    let mut overflowed = 0;
    for _ in 0..200 {
        for q in &queries {
            let snap = state.load();
            if let Outcome::Answered { len, .. } = respond(&snap, q, src, Transport::Udp, &mut out)
            {
                // North America's addresses are 198.51.100.x.
                if out[..len].windows(3).any(|w| w == [198, 51, 100]) {
                    overflowed += 1;
                }
            }
        }
    }
    let stats = region.change();
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert!(
        overflowed > 0 && overflowed < 200 * queries.len(),
        "some clients, not all, overflowed: {overflowed}"
    );
}
