//! Unit tests of the pick: weight order, spread, proximity and distance ranks, stability.
use super::*;
use crate::snapshot::Ranking;
use std::net::Ipv4Addr;

fn node(name: &str, weight: u32) -> Node {
    Node {
        name: name.into(),
        key: crate::hash::name_key(name),
        v4: vec![Ipv4Addr::new(192, 0, 2, 1)],
        v6: vec![],
        weight,
        local_bit: None,
        a: vec![crate::zone::body(1, 60, &[192, 0, 2, 1])],
        aaaa: vec![],
        check: None,
        capacity: None,
        load: None,
    }
}

fn service(spread: bool, answers: usize) -> Service {
    Service {
        names: vec!["dl".into()],
        ttl: 60,
        degraded_ttl: 10,
        answers,
        spread,
        use_ecs: true,
        all_down: AllDown::ServFail,
        last_resort: vec![],
        regions: vec![
            Region {
                name: "r0".into(),
                members: vec![(0, 100), (1, 50), (2, 50)],
                rank: Ranking::Weight,
            },
            Region {
                name: "r1".into(),
                members: vec![(3, 10)],
                rank: Ranking::Weight,
            },
        ],
        rules: vec![],
        decisions: vec![],
        v4: RouteTable::default(),
        v6: V6Table::default(),
        rr: AtomicU64::new(0),
        steering: None,
        region_up: (0..2)
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect(),
    }
}

#[test]
fn heaviest_healthy_then_fall_through_then_policy() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
    let health = HealthTable::new((0..4).map(|i| format!("n{i}")).collect(), State::Up);
    let s = service(false, 1);
    let d = Decision {
        rule: 0,
        chain: vec![0, 1].into(),
        local_mask: 0,
        ranks: Box::new([]),
        usual: [Pick::empty(); 2],
    };
    let p = s.pick(&d, false, 0, &nodes, &health);
    assert_eq!(
        (p.nodes(), p.region, p.degraded),
        (&[0][..], Some(0), false)
    );
    health.set(0, State::Down);
    let p = s.pick(&d, false, 0, &nodes, &health);
    assert_eq!((p.nodes(), p.degraded), (&[1][..], true));
    for i in 0..3 {
        health.set(i, State::Down);
    }
    let p = s.pick(&d, false, 0, &nodes, &health);
    assert_eq!((p.nodes(), p.region), (&[3][..], Some(1)));
    health.set(3, State::Down);
    assert!(s.pick(&d, false, 0, &nodes, &health).servfail);
    health.set(2, State::Drain);
    assert_eq!(s.pick(&d, false, 0, &nodes, &health).nodes(), &[2]);
    assert!(
        s.pick(&d, true, 0, &nodes, &health).servfail,
        "no node has IPv6"
    );
}

#[test]
fn spread_is_stable_and_weighted() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
    let health = HealthTable::new((0..4).map(|i| format!("n{i}")).collect(), State::Up);
    let s = service(true, 1);
    let d = Decision {
        rule: 0,
        chain: vec![0].into(),
        local_mask: 0,
        ranks: Box::new([]),
        usual: [Pick::empty(); 2],
    };
    let mut counts = [0usize; 3];
    for k in 0..20_000u64 {
        let a = s.pick(&d, false, k, &nodes, &health).nodes()[0];
        assert_eq!(a, s.pick(&d, false, k, &nodes, &health).nodes()[0]);
        counts[a] += 1;
    }
    // Weights 100:50:50 → about 50 % / 25 % / 25 %.
    assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
    assert!((4_000..6_000).contains(&counts[1]), "{counts:?}");
    // Taking node 1 down moves only node 1's clients.
    let before: Vec<usize> = (0..2000)
        .map(|k| s.pick(&d, false, k, &nodes, &health).nodes()[0])
        .collect();
    health.set(1, State::Down);
    for (k, b) in before.iter().enumerate() {
        let now = s.pick(&d, false, k as u64, &nodes, &health).nodes()[0];
        if *b != 1 {
            assert_eq!(now, *b);
        }
    }
    let two = service(true, 2).pick(&d, false, 5, &nodes, &health);
    assert_eq!(two.count, 2);
    assert_ne!(two.nodes[0], two.nodes[1]);
}

#[test]
fn spread_follows_node_names_not_their_positions() {
    // The same three nodes, then with another node listed before them: no client moves.
    let names = ["a", "b", "c"];
    let pick_names = |extra: bool| -> Vec<String> {
        let mut list: Vec<&str> = Vec::new();
        if extra {
            list.push("zz");
        }
        list.extend(names);
        let nodes: Vec<Node> = list.iter().map(|n| node(n, 1)).collect();
        let health = HealthTable::new(list.iter().map(|n| n.to_string()).collect(), State::Up);
        let mut s = service(true, 1);
        let off = usize::from(extra);
        s.regions[0].members = vec![(off, 100), (off + 1, 50), (off + 2, 50)];
        let d = Decision {
            rule: 0,
            chain: vec![0].into(),
            local_mask: 0,
            ranks: Box::new([]),
            usual: [Pick::empty(); 2],
        };
        (0..3000u64)
            .map(|k| {
                nodes[s.pick(&d, false, k, &nodes, &health).nodes()[0]]
                    .name
                    .clone()
            })
            .collect()
    };
    assert_eq!(pick_names(false), pick_names(true));
}

#[test]
fn proximity_ranks_before_weight_and_fills_answers_nearest_first() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
    let health = HealthTable::new((0..4).map(|i| format!("n{i}")).collect(), State::Up);
    let mut s = service(false, 2);
    s.regions[0].rank = Ranking::Proximity;
    // n0 (heaviest) has no route, n1 is two tiers away, n2 nearest.
    let d = Decision {
        rule: 0,
        chain: vec![0, 1].into(),
        local_mask: 0,
        ranks: vec![NO_ROUTE, 1, 0].into(),
        usual: [Pick::empty(); 2],
    };
    assert_eq!(s.pick(&d, false, 0, &nodes, &health).nodes(), &[2, 1]);
    s.answers = 1;
    assert_eq!(s.pick(&d, false, 0, &nodes, &health).nodes(), &[2]);
    health.set(2, State::Down);
    let p = s.pick(&d, false, 0, &nodes, &health);
    assert_eq!((p.nodes(), p.degraded), (&[1][..], true));
    // Equal ranks fall back to weight.
    let tie = Decision {
        ranks: vec![0, 0, 0].into(),
        ..d.clone()
    };
    health.set(2, State::Up);
    assert_eq!(s.pick(&tie, false, 0, &nodes, &health).nodes(), &[0]);
    // Without ranks (no proximity data), weight order as before.
    let plain = Decision {
        ranks: Box::new([]),
        ..d
    };
    assert_eq!(s.pick(&plain, false, 0, &nodes, &health).nodes(), &[0]);
}

#[test]
fn distance_limit_leaves_members_beyond_out() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
    let health = HealthTable::new((0..4).map(|i| format!("n{i}")).collect(), State::Up);
    let mut s = service(false, 1);
    s.regions[0].rank = Ranking::Distance(super::super::DistanceRank {
        locations: vec![(0.0, 0.0); 3],
        limit: Some(1),
    });
    // n2 nearest; n0 and n1 beyond the limit.
    let d = Decision {
        rule: 0,
        chain: vec![0, 1].into(),
        local_mask: 0,
        ranks: vec![BEYOND, BEYOND, 0].into(),
        usual: [Pick::empty(); 2],
    };
    let p = s.pick(&d, false, 0, &nodes, &health);
    assert_eq!((p.nodes(), p.degraded), (&[2][..], false), "the nearest");
    health.set(0, State::Down);
    let p = s.pick(&d, false, 0, &nodes, &health);
    assert_eq!(
        (p.nodes(), p.degraded),
        (&[2][..], false),
        "beyond: not degraded"
    );
    health.set(2, State::Down);
    let p = s.pick(&d, false, 0, &nodes, &health);
    assert_eq!(p.region, Some(1), "the chain's next region, not n1 beyond");
}

/// The usual pick decided at compile time is what choosing gives, for every combination of
/// node states, every rank mode and answer count here: the flag written with the node states
/// sends `pick` to it only while the chain's first region is all up.
#[test]
fn the_usual_pick_equals_choosing_in_every_state() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
    let names: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
    let all_up = HealthTable::new(names.clone(), State::Up);
    let decision = |chain: Vec<usize>, ranks: Vec<u8>| Decision {
        rule: 0,
        chain: chain.into(),
        local_mask: 0,
        ranks: ranks.into(),
        usual: [Pick::empty(); 2],
    };
    let ranked = |rank: Ranking| {
        let mut s = service(false, 2);
        s.regions[0].rank = rank;
        s
    };
    let services = [
        (service(false, 1), decision(vec![0, 1], vec![])),
        (service(false, 2), decision(vec![1, 0], vec![])),
        (
            ranked(Ranking::Proximity),
            decision(vec![0, 1], vec![NO_ROUTE, 1, 0]),
        ),
        (
            ranked(Ranking::Distance(super::super::DistanceRank {
                locations: vec![(0.0, 0.0); 3],
                limit: Some(1),
            })),
            decision(vec![0, 1], vec![BEYOND, BEYOND, 0]),
        ),
    ];
    let mut used = 0;
    for (mut s, d) in services {
        s.decisions = vec![d];
        s.settle_usual(&nodes, &all_up);
        let d = &s.decisions[0];
        assert!(d.usual[0].count > 0, "an A pick for {:?}", d.chain);
        assert_eq!(d.usual[1].count, 0, "no AAAA records, no usual AAAA pick");
        for states in 0..81u32 {
            let health = HealthTable::new(names.clone(), State::Up);
            for n in 0..4 {
                let st =
                    [State::Up, State::Down, State::Drain][(states / 3u32.pow(n)) as usize % 3];
                health.set(n as usize, st);
            }
            s.note_health(&health);
            for v6 in [false, true] {
                let chosen = s.pick_with(d, v6, 7, &nodes, &health, None);
                let picked = s.pick(d, v6, 7, &nodes, &health);
                assert_eq!(picked, chosen, "{:?} state {states} v6 {v6}", d.chain);
                used += usize::from(picked == d.usual[usize::from(v6)] && picked.count > 0);
            }
        }
    }
    // Some states answered with the usual pick (and the others by choosing, equal).
    assert!(used > 0);
}

/// Between `forget_health` and `note_health` (while the node states are being written), a
/// node written down is never answered from the usual pick.
#[test]
fn while_states_are_written_the_usual_pick_is_not_used() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
    let names: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
    let health = HealthTable::new(names, State::Up);
    let mut s = service(false, 1);
    s.decisions = vec![Decision {
        rule: 0,
        chain: vec![0, 1].into(),
        local_mask: 0,
        ranks: Box::new([]),
        usual: [Pick::empty(); 2],
    }];
    s.settle_usual(&nodes, &health);
    s.note_health(&health);
    let d = &s.decisions[0];
    assert_eq!(s.pick(d, false, 0, &nodes, &health).nodes(), &[0]);
    s.forget_health();
    health.set(0, State::Down);
    let p = s.pick(d, false, 0, &nodes, &health);
    assert_eq!((p.nodes(), p.degraded), (&[1][..], true));
}

/// A spread or steered service has no usual pick: its answer depends on the client.
#[test]
fn a_spread_service_has_no_usual_pick() {
    let nodes: Vec<Node> = (0..4).map(|i| node(&format!("n{i}"), 1)).collect();
    let all_up = HealthTable::new((0..4).map(|i| format!("n{i}")).collect(), State::Up);
    let mut s = service(true, 1);
    s.decisions = vec![Decision {
        rule: 0,
        chain: vec![0].into(),
        local_mask: 0,
        ranks: Box::new([]),
        usual: [Pick::empty(); 2],
    }];
    s.settle_usual(&nodes, &all_up);
    assert_eq!(s.decisions[0].usual, [Pick::empty(); 2]);
}
