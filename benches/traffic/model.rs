//! The closed-loop traffic model: a population of client /24s with heavy-tailed demand,
//! placed in North America and Europe through the GeoIP database, behind resolvers that cache
//! each answer for its TTL, querying the real `signpost` binary; each node's load is the
//! demand of the clients whose cached answer names it, fed back through the real load
//! sources (an exporter per node that signpost scrapes, or pushes over the control socket),
//! and through the real health checks when a node is killed.
//!
//! Used by `benches/capacity.rs` (the full scenario, every policy, the plot) and by
//! `tests/capacity_loop.rs` (a small scenario, asserting convergence and no overload).
// Clients and nodes are parallel arrays indexed together: index loops read best here.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Server, TempDir, config_with_maps, testdata};

/// The nodes: name, region (0 North America, 1 Europe), answer address.
pub const NODES: [(&str, usize, Ipv4Addr); 5] = [
    ("na1", 0, Ipv4Addr::new(198, 18, 1, 1)),
    ("na2", 0, Ipv4Addr::new(198, 18, 1, 2)),
    ("eu1", 1, Ipv4Addr::new(198, 18, 2, 1)),
    ("eu2", 1, Ipv4Addr::new(198, 18, 2, 2)),
    ("eu3", 1, Ipv4Addr::new(198, 18, 2, 3)),
];

/// What is run: the population, the demand curve and the timings, in seconds of real time.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Client /24s.
    pub clients: usize,
    /// The answer TTL (the resolvers cache each answer this long).
    pub ttl: u32,
    /// Demand at the start and at the peak, Mbit/s.
    pub demand: (f64, f64),
    /// The demand rises from the start to the peak over this time (the simulated day).
    pub ramp: f64,
    /// The most loaded node is killed at this time.
    pub fail_at: f64,
    /// And restored at this time.
    pub restore_at: f64,
    /// The run ends.
    pub end: f64,
    /// Every node's capacity, Mbit/s.
    pub capacity: f64,
    /// Load scrape (or push) interval, ms.
    pub scrape_ms: u64,
    /// Controller interval, ms.
    pub control_ms: u64,
    /// The utilisation the controller aims at.
    pub target: f64,
    /// Random seed of the population.
    pub seed: u64,
}

impl Scenario {
    /// The scenario: 5 nodes of 600 Mbit/s, demand from 650 to 2,000 Mbit/s, the most
    /// loaded node killed at the peak, then restored; 50,000 client /24s.
    pub fn full() -> Scenario {
        Scenario {
            clients: 50_000,
            ttl: 4,
            demand: (650.0, 2000.0),
            ramp: 60.0,
            fail_at: 75.0,
            restore_at: 125.0,
            end: 160.0,
            capacity: 600.0,
            scrape_ms: 1000,
            control_ms: 1000,
            target: 0.8,
            seed: 2026,
        }
    }

    /// The same shape, smaller and faster, for the test suite.
    pub fn small() -> Scenario {
        Scenario {
            clients: 6_000,
            ttl: 2,
            demand: (650.0, 2000.0),
            ramp: 8.0,
            fail_at: 12.0,
            restore_at: 26.0,
            end: 32.0,
            capacity: 600.0,
            scrape_ms: 500,
            control_ms: 500,
            target: 0.8,
            seed: 7,
        }
    }

    /// The demand at time `t`.
    pub fn demand_at(&self, t: f64) -> f64 {
        let (lo, hi) = self.demand;
        let x = (t / self.ramp).clamp(0.0, 1.0);
        // A smooth rise, as over the morning of a day.
        lo + (hi - lo) * (1.0 - (std::f64::consts::PI * x).cos()) / 2.0
    }
}

/// How the service shares its regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `spread: capacity`, loads scraped from each node's exporter.
    CapacityScraped,
    /// `spread: capacity`, loads pushed over the control socket.
    CapacityPushed,
    /// `spread: none`: the heaviest healthy node of a region takes it all.
    Heaviest,
    /// `spread: weighted` with static weights.
    Weighted,
}

impl Policy {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Policy::CapacityScraped => "capacity (scraped)",
            Policy::CapacityPushed => "capacity (pushed)",
            Policy::Heaviest => "heaviest node (spread: none)",
            Policy::Weighted => "spread: weighted",
        }
    }
}

/// One sample of the run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// Offered demand, Mbit/s.
    pub demand: f64,
    /// Each node's utilisation (load / capacity); a dead node carries nothing.
    pub util: [f64; 5],
    /// Fraction of the demand whose cached answer names a node outside its home region.
    pub overflow: f64,
    /// Fraction of the demand whose cached answer names a dead node (lost until re-query).
    pub lost: f64,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The policy.
    pub policy: Policy,
    /// The time series.
    pub samples: Vec<Sample>,
    /// The node killed.
    pub killed: usize,
    /// Highest utilisation of any node, over the whole run.
    pub peak: f64,
    /// Highest utilisation of any node between the failure and the restore.
    pub peak_after_failure: f64,
    /// Seconds from the failure until no node exceeds target + 10 % for the rest of the
    /// failure (None: never).
    pub converged_after: Option<f64>,
    /// Half the largest swing of one node's utilisation over the last half of the failure.
    pub oscillation: f64,
    /// Client /24s whose node changed between just before the failure and just before the
    /// restore.
    pub moved: f64,
    /// Client /24s on the killed node just before the failure.
    pub failed_share: f64,
    /// Client /24s answered outside their home region just before the restore.
    pub shed_share: f64,
    /// Queries sent and answered.
    pub queries: (u64, u64),
}

/// The client population.
struct Population {
    /// Each client's /24, as the address of its first host.
    nets: Vec<Ipv4Addr>,
    /// Home region (0 North America, 1 Europe).
    home: Vec<usize>,
    /// Share of the total demand (sums to 1; Pareto-distributed).
    weight: Vec<f64>,
}

/// xorshift64*: enough randomness for a reproducible population.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// Client /24s drawn at random from the IPv4 space, kept when the GeoIP database places them
/// in North America or Europe (half each), with Pareto demand (alpha 1.3: a few heavy ones).
fn population(geo: &Path, n: usize, seed: u64) -> Population {
    let reader = maxminddb::Reader::open_readfile(geo).expect("the GeoIP database opens");
    let mut rng = Rng(seed | 1);
    let mut p = Population {
        nets: Vec::with_capacity(n),
        home: Vec::with_capacity(n),
        weight: Vec::with_capacity(n),
    };
    let mut per = [0usize; 2];
    let mut seen = std::collections::HashSet::new();
    let mut tries = 0u64;
    while p.nets.len() < n {
        tries += 1;
        assert!(tries < 100 * n as u64 + 1_000_000, "too few placeable /24s");
        let net = (rng.next() as u32) & 0xffff_ff00;
        let a = Ipv4Addr::from(net | 1);
        if a.is_private() || a.is_loopback() || a.is_multicast() || net >> 24 >= 224 {
            continue;
        }
        let Ok(found) = reader.lookup(IpAddr::V4(a)) else {
            continue;
        };
        let Ok(Some(c)) = found.decode::<maxminddb::geoip2::Country>() else {
            continue;
        };
        let home = match c.continent.code {
            Some("NA") => 0,
            Some("EU") => 1,
            _ => continue,
        };
        if per[home] >= n.div_ceil(2) || !seen.insert(net) {
            continue;
        }
        per[home] += 1;
        p.nets.push(a);
        p.home.push(home);
        p.weight.push((1.0 - rng.unit()).powf(-1.0 / 1.3));
    }
    let total: f64 = p.weight.iter().sum();
    for w in &mut p.weight {
        *w /= total;
    }
    p
}

/// The nodes' exporters and health endpoints, served by one HTTP listener:
/// `/metrics/NODE` (a transmit-bytes counter) and `/health/NODE` (200 while alive).
struct Exporter {
    port: u16,
    state: Arc<Mutex<([f64; 5], [bool; 5])>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(([0.0; 5], [true; 5])));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 2048];
                        let mut got = 0;
                        while got < buf.len() {
                            match s.read(&mut buf[got..]) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => got += k,
                            }
                            if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                        let req = String::from_utf8_lossy(&buf[..got]);
                        let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let (bytes, alive) = *st.lock().unwrap();
                        let node =
                            |p: &str| NODES.iter().position(|n| Some(n.0) == path.strip_prefix(p));
                        let (status, body) = if let Some(i) = node("/metrics/") {
                            (
                                "200 OK",
                                format!(
                                    "# HELP node_network_transmit_bytes_total Bytes sent.\n# TYPE node_network_transmit_bytes_total counter\nnode_network_transmit_bytes_total{{device=\"eth0\"}} {:.0}\nnode_network_transmit_bytes_total{{device=\"lo\"}} 12345\n",
                                    bytes[i]
                                ),
                            )
                        } else if let Some(i) = node("/health/") {
                            if alive[i] {
                                ("200 OK", "ok\n".to_string())
                            } else {
                                ("503 Service Unavailable", "dead\n".to_string())
                            }
                        } else {
                            ("404 Not Found", String::new())
                        };
                        let _ = s.write_all(
                            format!(
                                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Exporter {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The map of a run.
fn map(s: &Scenario, policy: Policy, port: u16) -> String {
    let mut m = String::from("capacity_unit: Mbit/s\nnodes:\n");
    for (name, _, addr) in NODES {
        m.push_str(&format!(
            "  - name: {name}\n    ipv4: [{addr}]\n    capacity: {}\n    check: {{ kind: http, address: 127.0.0.1, port: {port}, path: /health/{name}, interval_ms: 200, timeout_ms: 150, jitter_ms: 0, rise: 1, fall: 1 }}\n",
            s.capacity
        ));
        if policy == Policy::CapacityScraped {
            m.push_str(&format!(
                "    load: {{ url: \"http://127.0.0.1:{port}/metrics/{name}\", metric: node_network_transmit_bytes_total, labels: {{ device: eth0 }}, type: counter, scale: 0.000008, interval_ms: {}, timeout_ms: {} }}\n",
                s.scrape_ms,
                s.scrape_ms.min(1000)
            ));
        }
    }
    let spread = match policy {
        Policy::CapacityScraped | Policy::CapacityPushed => "capacity",
        Policy::Heaviest => "none",
        Policy::Weighted => "weighted",
    };
    m.push_str(
        "regions:\n  - { name: na, nodes: [na1, na2] }\n  - { name: eu, nodes: [eu1, eu2, eu3] }\n",
    );
    m.push_str(&format!(
        "services:\n  - names: [dl.example.test]\n    ttl: {ttl}\n    degraded_ttl: {ttl}\n    spread: {spread}\n",
        ttl = s.ttl
    ));
    if spread == "capacity" {
        m.push_str(&format!(
            "    capacity: {{ target_utilisation: {}, interval_ms: {} }}\n",
            s.target, s.control_ms
        ));
    }
    m.push_str("    rules:\n      - { continents: [NA], regions: [na, eu] }\n      - { continents: [EU], regions: [eu, na] }\n      - { default: true, regions: [na, eu] }\n");
    m
}

/// A query for `dl.example.test` A with the client's /24 as ECS.
fn query(id: u16, net: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    for l in ["dl", "example", "test"] {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    // OPT: root, type 41, payload 1232, no flags, one ECS option (family 1, /24).
    p.extend_from_slice(&[
        0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 1, 24, 0,
    ]);
    p.extend_from_slice(&net.octets()[..3]);
    p
}

/// The node and TTL of a response (parsed by hickory-proto).
fn answer(resp: &[u8]) -> Option<(usize, u32)> {
    let msg = hickory_proto::op::Message::from_vec(resp).ok()?;
    msg.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::A(a) => NODES.iter().position(|n| n.2 == a.0).map(|i| (i, r.ttl)),
        _ => None,
    })
}

/// Pushes every node's load over the control socket.
fn push(sock: &Path, loads: &[f64; 5], alive: &[bool; 5], ttl: u64) {
    let items: Vec<String> = NODES
        .iter()
        .enumerate()
        .filter(|&(i, _)| alive[i])
        .map(|(i, n)| {
            format!(
                "{{\"node\":\"{}\",\"load\":{:.3},\"ttl\":{ttl}}}",
                n.0, loads[i]
            )
        })
        .collect();
    let line = format!(
        "{{\"cmd\":\"push\",\"source\":\"traffic-model\",\"states\":[{}]}}\n",
        items.join(",")
    );
    if let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(line.as_bytes());
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
    }
}

/// Runs `policy` through scenario `s` against a fresh `signpost`; `progress` says what
/// happens, for people watching.
pub fn run(s: &Scenario, policy: Policy, progress: bool) -> Report {
    let dir = TempDir::new("traffic");
    let pop = population(
        Path::new(&testdata("geoip/GeoLite2-Country-2018-08-07.mmdb")),
        s.clients,
        s.seed,
    );
    let exporter = Exporter::start();
    dir.write("map.yaml", &map(s, policy, exporter.port));
    let cfg = config_with_maps(&dir, &["map.yaml"], "health:\n  startup_wait_ms: 1000\n");
    let sock = dir.path("ctl.sock");
    let server = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control",
        sock.to_str().unwrap(),
    ]);
    let dns = UdpSocket::bind("127.0.0.1:0").unwrap();
    dns.connect(server.udp).unwrap();
    dns.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();

    let n = pop.nets.len();
    let mut rng = Rng(s.seed ^ 0x5eed);
    let mut holding: Vec<Option<usize>> = vec![None; n];
    let mut expires: Vec<f64> = (0..n).map(|_| rng.unit() * s.ttl as f64).collect();
    let mut alive = [true; 5];
    let mut killed = usize::MAX;
    let mut restored = false;
    let mut at_fail: Vec<Option<usize>> = Vec::new();
    let mut at_restore: Vec<Option<usize>> = Vec::new();
    let mut samples = Vec::new();
    let mut slots: Vec<u32> = vec![u32::MAX; 65536];
    let mut next_id: u16 = 0;
    let (mut sent, mut answered) = (0u64, 0u64);
    let start = Instant::now();
    let mut last = 0.0;
    let mut last_push = -1.0;
    let mut last_sample = -1.0;
    let mut last_said = -10.0;
    let mut buf = [0u8; 1500];
    loop {
        let t = start.elapsed().as_secs_f64();
        if t >= s.end {
            break;
        }
        let demand = s.demand_at(t);
        // Loads: the demand of the clients whose cached answer names each live node.
        let mut lost = 0.0;
        let mut away = 0.0;
        let mut loads = [0.0f64; 5];
        for c in 0..n {
            if let Some(k) = holding[c] {
                let d = demand * pop.weight[c];
                if alive[k] {
                    loads[k] += d;
                } else {
                    lost += d;
                }
                if NODES[k].1 != pop.home[c] {
                    away += d;
                }
            }
        }
        {
            let mut st = exporter.state.lock().unwrap();
            for k in 0..5 {
                st.0[k] += loads[k] * 1e6 / 8.0 * (t - last);
            }
            st.1 = alive;
        }
        last = t;
        if policy == Policy::CapacityPushed && t - last_push >= s.scrape_ms as f64 / 1000.0 {
            push(&sock, &loads, &alive, 5);
            last_push = t;
        }
        if t - last_sample >= 0.25 {
            let mut util = [0.0; 5];
            for k in 0..5 {
                util[k] = loads[k] / s.capacity;
            }
            samples.push(Sample {
                t,
                demand,
                util,
                overflow: away / demand,
                lost: lost / demand,
            });
            last_sample = t;
            if progress && t - last_said >= 10.0 {
                eprintln!(
                    "  {:5.1} s demand {:6.0}  {}",
                    t,
                    demand,
                    util.iter()
                        .zip(NODES)
                        .map(|(u, n)| format!("{} {:4.0} %", n.0, u * 100.0))
                        .collect::<Vec<_>>()
                        .join("  ")
                );
                last_said = t;
            }
        }
        // The failure: the most loaded node dies (its health endpoint fails), later returns.
        if killed == usize::MAX && t >= s.fail_at {
            killed = (0..5)
                .max_by(|&a, &b| loads[a].total_cmp(&loads[b]))
                .unwrap();
            alive[killed] = false;
            at_fail = holding.clone();
            if progress {
                eprintln!("  {t:5.1} s killing {}", NODES[killed].0);
            }
        }
        if !restored && killed != usize::MAX && t >= s.restore_at {
            at_restore = holding.clone();
            alive[killed] = true;
            restored = true;
            if progress {
                eprintln!("  {t:5.1} s restoring {}", NODES[killed].0);
            }
        }
        // Resolvers whose cached answer expired ask again, in rounds of a few hundred so that
        // the answers fit the socket's receive buffer.
        let due: Vec<usize> = (0..n).filter(|&c| expires[c] <= t).collect();
        let budget = Instant::now() + Duration::from_millis(200);
        for chunk in due.chunks(256) {
            if Instant::now() > budget {
                break;
            }
            let mut outstanding = 0;
            for &c in chunk {
                let id = next_id;
                next_id = next_id.wrapping_add(1);
                slots[id as usize] = c as u32;
                if dns.send(&query(id, pop.nets[c])).is_ok() {
                    sent += 1;
                    outstanding += 1;
                    // Not asked again before the answer (or a retry half a second later).
                    expires[c] = t + 0.5;
                }
            }
            let deadline = Instant::now() + Duration::from_millis(100);
            while outstanding > 0 && Instant::now() < deadline {
                let Ok(k) = dns.recv(&mut buf) else { break };
                if k < 2 {
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let c = slots[id as usize];
                if c == u32::MAX {
                    continue;
                }
                slots[id as usize] = u32::MAX;
                outstanding -= 1;
                if let Some((node, ttl)) = answer(&buf[..k]) {
                    answered += 1;
                    let now = start.elapsed().as_secs_f64();
                    holding[c as usize] = Some(node);
                    expires[c as usize] = now + ttl.max(1) as f64;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = server.stderr();
    let flaps = log.matches("health check changed state").count();
    if progress {
        eprintln!(
            "  health-check state changes: {flaps}; overflow starts: {}",
            log.matches("overflowing to the next region").count()
        );
    }
    drop(server);
    drop(exporter);
    summarise(
        s,
        policy,
        samples,
        killed,
        &at_fail,
        &at_restore,
        &pop,
        (sent, answered),
    )
}

fn summarise(
    s: &Scenario,
    policy: Policy,
    samples: Vec<Sample>,
    killed: usize,
    at_fail: &[Option<usize>],
    at_restore: &[Option<usize>],
    pop: &Population,
    queries: (u64, u64),
) -> Report {
    let max_util = |x: &Sample| x.util.iter().copied().fold(0.0, f64::max);
    let peak = samples.iter().map(max_util).fold(0.0, f64::max);
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.t >= s.fail_at && x.t < s.restore_at)
        .collect();
    let peak_after_failure = during.iter().map(|x| max_util(x)).fold(0.0, f64::max);
    // Converged: from some time on, no node above target + 10 % until the restore.
    let limit = s.target + 0.10;
    let mut converged_after = None;
    for (i, x) in during.iter().enumerate() {
        if during[i..].iter().all(|y| max_util(y) <= limit) {
            converged_after = Some(x.t - s.fail_at);
            break;
        }
    }
    let half = s.fail_at + (s.restore_at - s.fail_at) / 2.0;
    let mut oscillation: f64 = 0.0;
    for k in 0..5 {
        if k == killed {
            continue;
        }
        let v: Vec<f64> = during
            .iter()
            .filter(|x| x.t >= half)
            .map(|x| x.util[k])
            .collect();
        if let (Some(lo), Some(hi)) = (
            v.iter().copied().reduce(f64::min),
            v.iter().copied().reduce(f64::max),
        ) {
            oscillation = oscillation.max((hi - lo) / 2.0);
        }
    }
    let n = at_fail.len().max(1) as f64;
    let moved = at_fail
        .iter()
        .zip(at_restore)
        .filter(|(a, b)| a != b)
        .count() as f64
        / n;
    let failed_share = at_fail.iter().filter(|a| **a == Some(killed)).count() as f64 / n;
    let shed_share = at_restore
        .iter()
        .zip(&pop.home)
        .filter(|(a, h)| a.is_some_and(|k| NODES[k].1 != **h))
        .count() as f64
        / n;
    Report {
        policy,
        samples,
        killed,
        peak,
        peak_after_failure,
        converged_after,
        oscillation,
        moved,
        failed_share,
        shed_share,
        queries,
    }
}

/// Every node's utilisation over time, one panel per report, as an SVG image.
pub fn plot(s: &Scenario, reports: &[Report], title: &str) -> String {
    let (w, ph, top, left, right) = (900.0, 230.0, 50.0, 60.0, 150.0);
    let height = top + ph * reports.len() as f64 + 40.0;
    let colours = ["#1f77b4", "#17becf", "#d62728", "#ff7f0e", "#2ca02c"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{title}</text>\n",
        w / 2.0
    );
    let umax = 2.0;
    let pw = w - left - right;
    for (i, r) in reports.iter().enumerate() {
        let y0 = top + ph * i as f64;
        let plot_h = ph - 45.0;
        let x = |t: f64| left + pw * t / s.end;
        let y = |u: f64| y0 + 20.0 + plot_h * (1.0 - u.min(umax) / umax);
        svg.push_str(&format!(
            "<text x=\"{left}\" y=\"{}\" font-weight=\"bold\">{}</text>\n",
            y0 + 12.0,
            r.policy.name()
        ));
        // Axes, grid, target and capacity lines, failure and restore.
        for u in [0.0, 0.5, 1.0, 1.5, 2.0] {
            svg.push_str(&format!(
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{y1}\" y2=\"{y1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0} %</text>\n",
                left + pw,
                left - 6.0,
                y(u) + 4.0,
                u * 100.0,
                y1 = y(u)
            ));
        }
        for (u, c, d) in [
            (1.0, "#000", ""),
            (s.target, "#888", " stroke-dasharray=\"6,4\""),
        ] {
            svg.push_str(&format!(
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{y1}\" y2=\"{y1}\" stroke=\"{c}\"{d}/>\n",
                left + pw,
                y1 = y(u)
            ));
        }
        for (t, label) in [(s.fail_at, "node killed"), (s.restore_at, "restored")] {
            svg.push_str(&format!(
                "<line x1=\"{x1}\" x2=\"{x1}\" y1=\"{}\" y2=\"{}\" stroke=\"#a00\" stroke-dasharray=\"3,3\"/><text x=\"{}\" y=\"{}\" fill=\"#a00\">{label}</text>\n",
                y(umax),
                y(0.0),
                x(t) + 3.0,
                y(umax) + 12.0,
                x1 = x(t)
            ));
        }
        // Demand as a share of all five nodes' capacity.
        let pts: Vec<String> = r
            .samples
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.t), y(p.demand / (5.0 * s.capacity))))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"#999\" stroke-width=\"1\" stroke-dasharray=\"2,2\" points=\"{}\"/>\n",
            pts.join(" ")
        ));
        for k in 0..5 {
            let pts: Vec<String> = r
                .samples
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.t), y(p.util[k])))
                .collect();
            svg.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                colours[k],
                pts.join(" ")
            ));
        }
        for (k, (name, region, _)) in NODES.iter().enumerate() {
            let ly = y0 + 30.0 + 16.0 * k as f64;
            svg.push_str(&format!(
                "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{name} ({}){}</text>\n",
                left + pw + 10.0,
                left + pw + 30.0,
                colours[k],
                left + pw + 35.0,
                ly + 4.0,
                if *region == 0 { "NA" } else { "EU" },
                if k == r.killed { ", killed" } else { "" }
            ));
        }
        let ly = y0 + 30.0 + 16.0 * 5.0;
        svg.push_str(&format!(
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"#999\" stroke-dasharray=\"2,2\"/><text x=\"{}\" y=\"{}\">demand / all capacity</text>\n",
            left + pw + 10.0,
            left + pw + 30.0,
            left + pw + 35.0,
            ly + 4.0
        ));
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds (TTL {} s)</text>\n",
            left + pw / 2.0,
            y(0.0) + 28.0,
            s.ttl
        ));
        for t in (0..=(s.end as u32)).step_by(if s.end > 60.0 { 20 } else { 5 }) {
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t}</text>\n",
                x(t as f64),
                y(0.0) + 14.0
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// One line per report: the figures `docs/benchmarks.md` shows.
pub fn table(s: &Scenario, reports: &[Report]) -> String {
    let mut out = String::from(
        "| policy | peak before failure | peak after failure | converged after | oscillation | clients moved | of which: killed node's | shed |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let before = r
            .samples
            .iter()
            .filter(|x| x.t < s.fail_at)
            .map(|x| x.util.iter().copied().fold(0.0, f64::max))
            .fold(0.0, f64::max);
        out.push_str(&format!(
            "| {} | {:.0} % | {:.0} % | {} | ±{:.1} % | {:.1} % | {:.1} % | {:.1} % |\n",
            r.policy.name(),
            before * 100.0,
            r.peak_after_failure * 100.0,
            r.converged_after
                .map_or("never".to_string(), |c| format!("{c:.1} s")),
            r.oscillation * 100.0,
            r.moved * 100.0,
            r.failed_share * 100.0,
            r.shed_share * 100.0,
        ));
    }
    out
}
