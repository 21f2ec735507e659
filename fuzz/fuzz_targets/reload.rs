//! Control requests and map files together, as a running server sees them: a server starts
//! on a small map, takes control requests (overrides, pushes, clears...), reloads a map made
//! of the input (a map that fails to compile keeps the old snapshot), and takes the requests
//! again. After every step the published snapshot's node states are the ones the node-state
//! table says, every reply is a well-formed response, and no pick answers a node that is down
//! unless the all-down policy says so.
//!
//! Input: the map text, then `\0`, then control request lines (`\n`-separated).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use signpost::client::ClientData;
use signpost::compile::{Inputs, MapText, build};
use signpost::config::{Config, DataSource};
use signpost::control::server::respond;
use signpost::counters::Counters;
use signpost::health::State;
use signpost::node_state::NodeStates;
use signpost::serving::Serving;
use signpost::snapshot::Snapshot;

const BASE: &str = "nodes:\n  - { name: a, ipv4: [192.0.2.1] }\n  - { name: b, ipv4: [192.0.2.2], ipv6: [\"2001:db8::2\"] }\n  - { name: c, ipv4: [192.0.2.3] }\nregions:\n  - { name: one, nodes: [a, b] }\n  - { name: two, nodes: [c] }\nservices:\n  - names: [dl.example.test]\n    rules:\n      - { prefixes: [10.0.0.0/8], regions: [two, one] }\n      - { default: true, regions: [one, two] }\n";

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let text = "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\n";
        Config::from_text("fuzz.yaml", text, DataSource::Embedded("fuzz.yaml".into()), &|p| DataSource::Embedded(p.into())).unwrap()
    })
}

fn compile(text: &str) -> Result<Snapshot, signpost::source::Errors> {
    let maps = [MapText { source: DataSource::Embedded("maps/fuzz.yaml".into()), text: text.to_string() }];
    let files = |_: &DataSource| Err(signpost::config::ReadError::NotEmbedded);
    build(config(), Inputs { client: Arc::new(ClientData::default()), maps: &maps, files: &files, live: &[], signatures: None })
}

/// The invariants that must hold whatever was asked.
fn check(serving: &Serving) {
    let snap = serving.published().snapshot();
    {
        let st = serving.published().states();
        for (i, name) in snap.health.names().iter().enumerate() {
            assert_eq!(snap.health.get(i), st.state(name), "published state of {name}");
        }
    }
    for s in &snap.services {
        for addr in ["10.1.2.3", "192.0.2.77", "2001:db8::5", "::1"] {
            let ip: std::net::IpAddr = addr.parse().unwrap();
            let (decision, _) = s.route(ip).expect("every address routes");
            for v6 in [false, true] {
                let pick = s.pick(decision, v6, 7, &snap.nodes, &snap.health);
                for &n in pick.nodes() {
                    assert!(n < snap.nodes.len());
                    if !pick.all_down {
                        assert_ne!(snap.health.get(n), State::Down, "a down node answered");
                    }
                }
            }
        }
    }
}

fn requests(serving: &Arc<Serving>, counters: &Arc<Counters>, lines: &[&[u8]]) {
    for line in lines {
        let r = respond(serving.clone(), counters.clone(), line);
        let text = serde_json::to_string(&r).expect("responses serialise");
        assert!(!text.contains('\n'), "one line per reply");
        assert_eq!(serde_json::from_str::<signpost::control::Response>(&text).expect("replies parse"), r);
        check(serving);
    }
}

fuzz_target!(|data: &[u8]| {
    let (map, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(map) = std::str::from_utf8(map) else { return };
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').take(32).collect();
    let counters = Arc::new(Counters::new(1));
    let states = NodeStates::open(None).expect("no state file");
    // No reload thread reads the requests: `reload` is refused, as when it has stopped.
    let (serving, reloads) = Serving::new(compile(BASE).expect("the base map compiles"), states, counters.clone());
    drop(reloads);
    requests(&serving, &counters, &lines);
    let before = serving.published().snapshot();
    match compile(map) {
        Ok(snap) => {
            serving.published().publish(snap);
        }
        Err(e) => {
            assert!(!e.0.is_empty());
            assert!(Arc::ptr_eq(&before, &serving.published().snapshot()), "a failed build keeps the old snapshot");
        }
    }
    check(&serving);
    requests(&serving, &counters, &lines);
});
