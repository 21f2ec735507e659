//! Live BGP tables in the compiler: random feed tables for two sites, a region ranked by
//! proximity and an `asns:` rule, compiled; then, for thousands of addresses, the compiled
//! answer must equal the rules applied by hand to the raw tables (longest covering prefix per
//! feed, shortest path nearest, no route farthest, ties by weight; the origin most feeds give
//! for the longest live prefix), and every ECS scope must be exact: uniform inside, and not
//! one bit wider.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use signpost::client::ClientData;
use signpost::compile::{Inputs, MapText, build};
use signpost::config::{Config, DataSource};
use signpost::health::State;
use signpost::live::{FeedTable, Route};
use signpost::snapshot::Snapshot;

const CONFIG: &str = "zones:
  - apex: example.test
    soa: { mname: ns1, rname: hostmaster }
    ns: [ns1]
feeds:
  asn: 65000
  router_id: 192.0.2.53
  listen: 127.0.0.1:1179
  peers:
    - { name: fra1-rtr, address: 127.0.0.2, asn: 65001, nodes: [fra1] }
    - { name: ams1-rtr, address: 127.0.0.3, asn: 65002, nodes: [ams1] }
    - { name: ams1-rtr2, address: 127.0.0.4, asn: 65003, nodes: [ams1] }
";

const MAPS: &str = "nodes:
  - { name: fra1, ipv4: [192.0.2.10], ipv6: ['2001:db8::10'], weight: 100 }
  - { name: ams1, ipv4: [192.0.2.11], ipv6: ['2001:db8::11'], weight: 50 }
  - { name: iad1, ipv4: [198.51.100.10], ipv6: ['2001:db8::20'] }
regions:
  - { name: europe, nodes: [fra1, ams1], rank: proximity }
  - { name: north-america, nodes: [iad1] }
services:
  - names: [dl.example.test]
    ttl: 60
    rules:
      - { asns: [64999], regions: [north-america] }
      - { default: true, regions: [europe] }
";

/// A small xorshift generator: the same tables every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A feed's routes, v4 and v6 as (start, len, route); `shared` prefixes are offered to every
/// feed so that feeds overlap.
fn feed(name: &str, rng: &mut Rng, shared: &[(u128, u8, bool)]) -> FeedTable {
    let origins = [64999, 65010, 65011];
    let mut v4: Vec<(u32, u8, Route)> = Vec::new();
    let mut v6: Vec<(u128, u8, Route)> = Vec::new();
    let route = |rng: &mut Rng| Route {
        origin: origins[(rng.next() % 3) as usize],
        path_len: 1 + (rng.next() % 5) as u32,
        stale: rng.next().is_multiple_of(10),
    };
    for &(start, len, v6ness) in shared {
        if rng.next().is_multiple_of(3) {
            continue;
        }
        let r = route(rng);
        if v6ness {
            v6.push((start, len, r));
        } else {
            v4.push((start as u32, len, r));
        }
    }
    for _ in 0..150 {
        let len = 8 + (rng.next() % 17) as u8;
        let start = (rng.next() as u32) & (u32::MAX << (32 - len));
        let r = route(rng);
        v4.push((start, len, r));
    }
    for _ in 0..40 {
        let len = 16 + (rng.next() % 33) as u8;
        let start = ((0x2000u128 | (rng.next() as u128 & 0x1f)) << 112
            | (rng.next() as u128) << 64)
            & (u128::MAX << (128 - len));
        let r = route(rng);
        v6.push((start, len, r));
    }
    v4.sort_by_key(|e| (e.0, e.1));
    v4.dedup_by_key(|e| (e.0, e.1));
    v6.sort_by_key(|e| (e.0, e.1));
    v6.dedup_by_key(|e| (e.0, e.1));
    FeedTable {
        peer: name.into(),
        v4: v4.into(),
        v6: v6.into(),
    }
}

/// The longest prefix of `t` covering `a`, by brute force.
fn longest(t: &FeedTable, a: IpAddr) -> Option<(u8, Route)> {
    let covers = |start: u128, len: u8, addr: u128, bits: u32| {
        let host = bits - len as u32;
        host >= 128 || (addr >> host) == (start >> host)
    };
    match a {
        IpAddr::V4(v) => {
            t.v4.iter()
                .filter(|e| covers(e.0 as u128, e.1, u32::from(v) as u128, 32))
                .max_by_key(|e| e.1)
                .map(|e| (e.1, e.2))
        }
        IpAddr::V6(v) => {
            t.v6.iter()
                .filter(|e| covers(e.0, e.1, u128::from(v), 128))
                .max_by_key(|e| e.1)
                .map(|e| (e.1, e.2))
        }
    }
}

/// (region, first node) by hand.
fn by_hand(feeds: &[FeedTable], a: IpAddr) -> (&'static str, &'static str) {
    // The live origin: the longest prefix any feed has; the origin most of those feeds give.
    let found: Vec<(u8, Route)> = feeds.iter().filter_map(|f| longest(f, a)).collect();
    if let Some(best) = found.iter().map(|f| f.0).max() {
        let mut origins: Vec<u32> = found
            .iter()
            .filter(|f| f.0 == best)
            .map(|f| f.1.origin)
            .collect();
        origins.sort_unstable();
        let mut winner = (0, 0);
        for &o in &origins {
            let n = origins.iter().filter(|&&x| x == o).count();
            if n > winner.0 {
                winner = (n, o);
            }
        }
        if winner.1 == 64999 {
            return ("north-america", "iad1");
        }
    }
    // Proximity: each node's shortest path over its own feeds; no route is farthest; a tie
    // goes to the heavier node (fra1).
    let path = |idx: &[usize]| {
        idx.iter()
            .filter_map(|&i| longest(&feeds[i], a).map(|(_, r)| r.path_len))
            .min()
    };
    let (fra, ams) = (path(&[0]), path(&[1, 2]));
    let ams_nearer = match (fra, ams) {
        (Some(f), Some(m)) => m < f,
        (None, Some(_)) => true,
        _ => false,
    };
    ("europe", if ams_nearer { "ams1" } else { "fra1" })
}

fn compiled(snap: &Snapshot, a: IpAddr) -> (String, String, u8) {
    let svc = &snap.services[0];
    let (d, len) = svc.route(a).expect("every address routes");
    let pick = svc.pick(
        d,
        a.is_ipv6(),
        signpost::snapshot::client_key(a),
        &snap.nodes,
        &snap.health,
    );
    let region = svc.regions[pick.region.expect("a region answers")]
        .name
        .clone();
    let node = snap.nodes[pick.nodes()[0]].name.clone();
    (region, node, len)
}

fn snapshot(feeds: &[FeedTable]) -> Snapshot {
    let config = Config::from_text(
        "live.yaml",
        CONFIG,
        DataSource::Embedded("live.yaml".into()),
        &|p| DataSource::Embedded(p.into()),
    )
    .expect("config");
    let maps = [MapText {
        source: DataSource::Embedded("maps/live.yaml".into()),
        text: MAPS.into(),
    }];
    build(
        &config,
        Inputs {
            client: Arc::new(ClientData::default()),
            maps: &maps,
            files: &|_| Err(signpost::config::ReadError::NotEmbedded),
            live: feeds,
            signatures: None,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn addr(v6: bool, x: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

#[test]
fn proximity_and_live_origins_compile_exactly() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut shared = Vec::new();
    for _ in 0..80 {
        let len = 8 + (rng.next() % 17) as u8;
        shared.push((
            ((rng.next() as u32) & (u32::MAX << (32 - len))) as u128,
            len,
            false,
        ));
    }
    let feeds = vec![
        feed("fra1-rtr", &mut rng, &shared),
        feed("ams1-rtr", &mut rng, &shared),
        feed("ams1-rtr2", &mut rng, &shared),
    ];
    let snap = snapshot(&feeds);
    let mut near = [0usize; 3];
    for i in 0..4000 {
        let v6 = i % 4 == 3;
        let bits: u32 = if v6 { 128 } else { 32 };
        // Half inside some prefix of some feed, half anywhere in the populated space.
        let base: u128 = if i % 2 == 0 {
            let f = &feeds[(rng.next() % 3) as usize];
            let (start, len) = if v6 {
                let e = f.v6[(rng.next() as usize) % f.v6.len()];
                (e.0, e.1)
            } else {
                let e = f.v4[(rng.next() as usize) % f.v4.len()];
                (e.0 as u128, e.1)
            };
            let host = bits - len as u32;
            let low = if host == 0 {
                0
            } else {
                (rng.next() as u128 | (rng.next() as u128) << 64) & ((1u128 << host) - 1)
            };
            start | low
        } else if v6 {
            (0x2000u128 | (rng.next() as u128 & 0x1f)) << 112 | (rng.next() as u128) << 64
        } else {
            rng.next() as u32 as u128
        };
        let a = addr(v6, base);
        let (region, node, len) = compiled(&snap, a);
        let want = by_hand(&feeds, a);
        assert_eq!((region.as_str(), node.as_str()), want, "{a}");
        near[match want.1 {
            "fra1" => 0,
            "ams1" => 1,
            _ => 2,
        }] += 1;
        // Uniform inside the scope.
        let host = bits - len as u32;
        let start = if host >= 128 {
            0
        } else {
            base & !((1u128 << host) - 1)
        };
        let span = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        for probe in [start, start + span, start + span / 2, start + span / 3] {
            let p = addr(v6, probe);
            assert_eq!(
                by_hand(&feeds, p),
                want,
                "{p} is inside the /{len} scope of {a}"
            );
        }
        // Maximal: the other half of the block one bit wider decides differently.
        if len > 0 {
            let wider = if host + 1 >= 128 {
                0
            } else {
                base & !((1u128 << (host + 1)) - 1)
            };
            let other = if start == wider {
                start + span + 1
            } else {
                wider
            };
            let svc = &snap.services[0];
            let (d1, _) = svc.route(a).unwrap();
            let (d2, len2) = svc.route(addr(v6, other)).unwrap();
            assert!(
                !(d1 == d2 && len2 <= len),
                "the /{} around {a} would have been a valid scope",
                len - 1
            );
        }
    }
    // The test exercised every outcome.
    assert!(near.iter().all(|&n| n > 100), "{near:?}");
}

#[test]
fn proximity_follows_health_and_a_peer_naming_an_unknown_node_is_refused() {
    // One prefix: ams1 is nearer (path 1 against 4).
    let t = |name: &str, len: u32| FeedTable {
        peer: name.into(),
        v4: vec![(
            u32::from(Ipv4Addr::new(81, 2, 0, 0)),
            16,
            Route {
                origin: 65010,
                path_len: len,
                stale: false,
            },
        )]
        .into(),
        v6: Vec::new().into(),
    };
    let feeds = vec![t("fra1-rtr", 4), t("ams1-rtr", 1)];
    let snap = snapshot(&feeds);
    let a: IpAddr = "81.2.69.1".parse().unwrap();
    assert_eq!(compiled(&snap, a).1, "ams1");
    assert_eq!(compiled(&snap, a).2, 16, "the scope is the feed's prefix");
    // Outside the prefix neither has a route: the heavier node.
    assert_eq!(compiled(&snap, "81.3.0.1".parse().unwrap()).1, "fra1");
    // The nearer node down: the next nearest.
    let ams = snap.health.index("ams1").unwrap();
    snap.health.set(ams, State::Down);
    assert_eq!(compiled(&snap, a).1, "fra1");
    snap.health.set(ams, State::Up);
    // The decision carries the ranks: ams1 nearest.
    let svc = &snap.services[0];
    let (d, _) = svc.route(a).unwrap();
    assert_eq!(d.ranks[ams], 0);
    // A peer that names a node the maps do not have.
    let config = Config::from_text(
        "live.yaml",
        &CONFIG.replace("nodes: [fra1]", "nodes: [fra2]"),
        DataSource::Embedded("live.yaml".into()),
        &|p| DataSource::Embedded(p.into()),
    )
    .expect("config");
    let maps = [MapText {
        source: DataSource::Embedded("maps/live.yaml".into()),
        text: MAPS.into(),
    }];
    let err = build(
        &config,
        Inputs {
            client: Arc::new(ClientData::default()),
            maps: &maps,
            files: &|_| Err(signpost::config::ReadError::NotEmbedded),
            live: &feeds,
            signatures: None,
        },
    )
    .map(|_| ())
    .expect_err("refused")
    .to_string();
    assert!(
        err.contains("live.yaml:10:65:")
            && err.contains("feeds.peers[0].nodes[0]: unknown node \"fra2\""),
        "{err}"
    );
}
