//! Live BGP feeds end to end: the real `signpost` binary peered with real BGP daemons (BIRD 2
//! connecting to Signpost's `feeds.listen`, gobgpd waiting for Signpost to connect) and with a
//! raw speaker of the test's own, on loopback. Routes announced, changed and withdrawn on the
//! daemons move the answers `dig` gets; a killed daemon's routes go stale, then away; broken
//! input and a prefix limit end one session and nothing else; a router that keeps reconnecting
//! with new prefixes holds no more than its prefix limit; a router's hold time 0 is refused
//! unless allowed; what the other side of a connection can make Signpost log is rate-limited;
//! a `ctl replace` answers with the feeds' routes throughout.
//!
//! The configuration is `testdata/bgp-live/signpost.yaml` with its peers from
//! `peer-passive.yaml` / `peer-active.yaml`, rendered into a temporary directory laid out like
//! `testdata/` (so its relative paths hold); the map is `testdata/bgp-live/maps/`. Each test has
//! loopback addresses of its own (`loopback_v4`) and free ports, so they run in parallel.
//! Timings go to stderr (`cargo test --test bgp_live -- --nocapture`).

mod common;
use common::speakers::*;
use common::*;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Signpost's AS (`feeds.asn` in the template).
const SIGNPOST_ASN: u32 = 65000;
/// Signpost's BGP identifier (`feeds.router_id`).
const SIGNPOST_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// The answers: node addresses of `testdata/bgp-live/maps/nodes.yaml`.
const LON1: &str = "192.0.2.12";
const LON1_6: &str = "2001:db8:10::3";
const FRA1: &str = "192.0.2.10";
const FRA1_6: &str = "2001:db8:10::1";
const AMS1: &str = "192.0.2.11";
const AMS1_6: &str = "2001:db8:10::2";
const IAD1: &str = "198.51.100.10";
const IAD1_6: &str = "2001:db8:20::1";
const SYD1: &str = "203.0.113.10";
const SYD1_6: &str = "2001:db8:30::1";

/// Clients. GB (Europe) in the GeoIP data: 81.2.64.0/18 and 2a02:8010::/29; US (North
/// America): 8.8.0.0/15 and 2001:4860::/32.
const EU4_A: &str = "81.2.69.0/24";
const EU4_B: &str = "81.2.70.0/24";
const EU4_C: &str = "81.2.71.0/24";
const EU6_A: &str = "2a02:8010:1::/48";
const EU6_B: &str = "2a02:8010:2::/48";
const US4: &str = "8.8.8.0/24";
const US4_B: &str = "8.8.4.0/24";
const US6: &str = "2001:4860::/32";
const US6_CLIENT: &str = "2001:4860::/48";

/// The origin AS that the map's `asns` rule sends to Oceania.
const CUSTOMER_AS: u32 = 64990;

/// Next hops of gobgpd's routes (loopback next hops are invalid to it).
const NH4: &str = "192.0.2.1";
const NH6: &str = "2001:db8::1";

/// A feed change reaches the answers within this (update_delay_ms 200 plus one build, with
/// room for a busy machine).
const CHANGE: Duration = Duration::from_secs(5);
/// A session comes up within this: BIRD connecting, or Signpost connecting to gobgpd.
const SESSION: Duration = Duration::from_secs(20);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bgp_live(rel: &str) -> PathBuf {
    root().join("testdata/bgp-live").join(rel)
}

/// `template` with every `{{KEY}}` replaced; panics on a placeholder left over.
fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "unfilled placeholder in:\n{text}");
    text
}

/// How Signpost reaches a router.
enum Mode {
    /// The router connects to Signpost's `feeds.listen`.
    Passive,
    /// Signpost connects to `port` of the router, from `local`.
    Active { port: u16, local: IpAddr },
}

/// One entry of `feeds.peers`.
struct FeedPeer {
    name: &'static str,
    address: IpAddr,
    asn: u32,
    nodes: &'static [&'static str],
    mode: Mode,
    max_prefixes: u32,
    /// `min_hold_time`: 3 (the default) unless the test's raw speaker proposes hold time 0.
    min_hold_time: u16,
}

impl FeedPeer {
    /// A router at `speaker`'s address that connects to Signpost.
    fn passive(name: &'static str, speaker: &Speaker, nodes: &'static [&'static str]) -> FeedPeer {
        FeedPeer {
            name,
            address: speaker.addr,
            asn: speaker.asn,
            nodes,
            mode: Mode::Passive,
            max_prefixes: 1000,
            min_hold_time: 3,
        }
    }

    /// A router at `speaker`'s address and listen port that Signpost connects to from `local`.
    fn active(
        name: &'static str,
        speaker: &Speaker,
        local: IpAddr,
        nodes: &'static [&'static str],
    ) -> FeedPeer {
        FeedPeer {
            mode: Mode::Active {
                port: speaker.listen_port(),
                local,
            },
            ..FeedPeer::passive(name, speaker, nodes)
        }
    }

    fn max_prefixes(mut self, n: u32) -> FeedPeer {
        self.max_prefixes = n;
        self
    }

    /// Accepts hold times from `n` seconds (0: the raw speaker's hold time 0 too).
    fn min_hold_time(mut self, n: u16) -> FeedPeer {
        self.min_hold_time = n;
        self
    }

    /// The peer's YAML, from its template.
    fn yaml(&self) -> String {
        let mut vars = vec![
            ("NAME", self.name.to_string()),
            ("ADDRESS", self.address.to_string()),
            ("ASN", self.asn.to_string()),
            ("NODES", self.nodes.join(", ")),
            ("MAX_PREFIXES", self.max_prefixes.to_string()),
            ("MIN_HOLD_TIME", self.min_hold_time.to_string()),
        ];
        let template = match self.mode {
            Mode::Passive => "peer-passive.yaml",
            Mode::Active { port, local } => {
                vars.push(("PORT", port.to_string()));
                vars.push(("LOCAL_ADDRESS", local.to_string()));
                "peer-active.yaml"
            }
        };
        fill(&std::fs::read_to_string(bgp_live(template)).unwrap(), &vars)
    }
}

/// A running Signpost with feeds, its BGP address, and its directory.
struct Signpost {
    server: Server,
    /// Where passive peers connect; active sessions start from this address too.
    bgp: SocketAddr,
    _dir: TempDir,
}

/// A loopback address for Signpost's BGP side and a free port on it.
fn signpost_addr() -> SocketAddr {
    let a = IpAddr::V4(loopback_v4());
    SocketAddr::new(a, free_port_on(a))
}

impl Signpost {
    /// Renders the configuration for `peers` and starts `signpost serve` with a control socket.
    fn start(bgp: SocketAddr, stale_ms: u64, peers: &[FeedPeer]) -> Signpost {
        let dir = TempDir::new("bgp-live");
        std::fs::create_dir_all(dir.path("bgp-live")).unwrap();
        std::os::unix::fs::symlink(bgp_live("maps"), dir.path("bgp-live/maps")).unwrap();
        std::os::unix::fs::symlink(root().join("testdata/geoip"), dir.path("geoip")).unwrap();
        let text = fill(
            &std::fs::read_to_string(bgp_live("signpost.yaml")).unwrap(),
            &[
                ("LISTEN", bgp.to_string()),
                ("STALE_MS", stale_ms.to_string()),
                ("PEERS", peers.iter().map(FeedPeer::yaml).collect()),
            ],
        );
        let config = dir.write("bgp-live/signpost.yaml", &text);
        let server = Server::with_control(&config, &dir);
        Signpost {
            server,
            bgp,
            _dir: dir,
        }
    }

    fn ip(&self) -> IpAddr {
        self.bgp.ip()
    }

    /// `dig +short dl.example.test QTYPE +subnet=SUBNET`.
    fn answer(&self, qtype: &str, subnet: &str) -> String {
        dig_short(self.server.udp, qtype, subnet)
    }

    /// Asserts the answer now.
    fn expect(&self, qtype: &str, subnet: &str, want: &str) {
        let got = self.answer(qtype, subnet);
        assert_eq!(got, want, "{qtype} for {subnet}\n{}", self.diagnostics());
    }

    /// Polls until the answer is `want`; returns how long it took. Panics after `timeout`.
    fn wait_answer(&self, qtype: &str, subnet: &str, want: &str, timeout: Duration) -> Duration {
        let t = Instant::now();
        let mut last = String::new();
        if wait_until(timeout, || {
            last = self.answer(qtype, subnet);
            last == want
        }) {
            return t.elapsed();
        }
        panic!(
            "{qtype} for {subnet}: {last:?} after {timeout:?}, expected {want}\n{}",
            self.diagnostics()
        );
    }

    /// `signpost ctl bgp --json`: the sessions.
    fn sessions(&self) -> Vec<serde_json::Value> {
        let (ok, v) = self.server.ctl(&["bgp"]);
        assert!(ok, "ctl bgp: {v}");
        v["sessions"].as_array().cloned().unwrap_or_default()
    }

    /// One peer's session from `ctl bgp`.
    fn session(&self, peer: &str) -> serde_json::Value {
        self.sessions()
            .into_iter()
            .find(|s| s["peer"] == peer)
            .unwrap_or_else(|| panic!("no session {peer} in ctl bgp"))
    }

    /// Waits until `ctl bgp` shows `peer` established with these prefix counts.
    fn wait_session(&self, peer: &str, v4: u64, v6: u64, timeout: Duration) {
        let mut last = serde_json::Value::Null;
        if !wait_until(timeout, || {
            last = self.session(peer);
            last["state"] == "established"
                && last["ipv4_prefixes"] == v4
                && last["ipv6_prefixes"] == v6
        }) {
            panic!("{peer}: {last} (want established, {v4} + {v6} prefixes)");
        }
    }

    fn diagnostics(&self) -> String {
        let (_, bgp) = self.server.ctl(&["bgp"]);
        format!("ctl bgp: {bgp}\nsignpost stderr:\n{}", self.server.stderr())
    }
}

/// `dig +short` against `server` for `dl.example.test`.
fn dig_short(server: SocketAddr, qtype: &str, subnet: &str) -> String {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+time=2",
            "+tries=2",
            "+short",
        ])
        .args(["dl.example.test", qtype, &format!("+subnet={subnet}")])
        .output()
        .expect("dig is installed (the test command installs bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A BIRD speaker of AS `asn` that will connect to Signpost.
fn bird_speaker(asn: u32) -> Speaker {
    Speaker::new(asn)
}

/// Starts BIRD connecting to Signpost at `sp`, announcing `routes`.
fn start_bird(s: &Speaker, sp: SocketAddr, routes: &[(&str, &[u32])]) -> Bird {
    Bird::start(
        s.clone()
            .neighbor(Neighbor::active(sp.ip(), sp.port(), SIGNPOST_ASN)),
        routes,
    )
}

/// Starts gobgpd waiting for Signpost to connect from `sp`'s address.
fn start_gobgpd(s: &Speaker, sp: SocketAddr) -> GoBgp {
    GoBgp::start(s.clone().neighbor(Neighbor::passive(sp.ip(), SIGNPOST_ASN)))
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ---------------------------------------------------------------------------------------------

/// BIRD (connecting; passive on Signpost's side) and gobgpd (Signpost connecting) bring their
/// sessions up and each announces an IPv4 and an IPv6 prefix; A and AAAA answers for clients
/// inside them come from the node whose router announced it, instead of lon1 (the heaviest
/// node, which answers when no feed has a route).
#[test]
fn sessions_come_up_with_both_daemons() {
    let sp = signpost_addr();
    let bs = bird_speaker(65001);
    let gs = Speaker::new(65002);
    let s = Signpost::start(
        sp,
        2000,
        &[
            FeedPeer::passive("fra1-rtr", &bs, &["fra1"]),
            FeedPeer::active("ams1-rtr", &gs, sp.ip(), &["ams1"]),
        ],
    );
    s.expect("A", EU4_A, LON1);
    s.expect("AAAA", EU6_A, LON1_6);
    s.expect("A", EU4_B, LON1);

    let t = Instant::now();
    let mut g = start_gobgpd(&gs, sp);
    g.add_route(EU4_B, &[64602], ip(NH4));
    g.add_route(EU6_B, &[64602], ip(NH6));
    let tb = Instant::now();
    let b = start_bird(&bs, sp, &[(EU4_A, &[64601]), (EU6_A, &[64601])]);
    b.wait_established("n0", SESSION);
    let bird_up = tb.elapsed();
    g.wait_established(s.ip(), SESSION);
    let gobgp_up = t.elapsed();
    let a4 = s.wait_answer("A", EU4_A, FRA1, CHANGE);
    let a6 = s.wait_answer("AAAA", EU6_A, FRA1_6, CHANGE);
    let b4 = s.wait_answer("A", EU4_B, AMS1, CHANGE);
    let b6 = s.wait_answer("AAAA", EU6_B, AMS1_6, CHANGE);
    eprintln!(
        "session up: bird {} ms after its start, gobgpd {} ms after its start; answers after: {} {} {} {} ms",
        ms(bird_up),
        ms(gobgp_up),
        ms(a4),
        ms(a6),
        ms(b4),
        ms(b6)
    );
    // Clients outside the prefixes keep their answers.
    s.expect("A", EU4_C, LON1);
    s.expect("A", US4, IAD1);
    s.expect("AAAA", US6_CLIENT, IAD1_6);
    // Signpost's and the daemons' view of the sessions agree.
    s.wait_session("fra1-rtr", 1, 1, CHANGE);
    s.wait_session("ams1-rtr", 1, 1, CHANGE);
    assert_eq!(s.session("fra1-rtr")["address"], bs.addr.to_string());
    assert_eq!(b.protocol_state("n0"), "Established");
    assert_eq!(g.neighbor_state(s.ip()), "established");
}

/// A session over IPv6 transport: BIRD on `::1` connects to Signpost listening on `[::1]`, and
/// its IPv4 and IPv6 routes reach the answers like over IPv4.
#[test]
fn a_session_over_ipv6_transport() {
    let v6: IpAddr = "::1".parse().unwrap();
    if std::net::TcpListener::bind((v6, 0)).is_err() {
        eprintln!("no IPv6 loopback on this machine; skipped");
        return;
    }
    let sp = SocketAddr::new(v6, free_port_on(v6));
    let bs = Speaker::on(65007, v6);
    let s = Signpost::start(sp, 2000, &[FeedPeer::passive("fra1-rtr6", &bs, &["fra1"])]);
    s.expect("A", EU4_A, LON1);
    let b = start_bird(&bs, sp, &[(EU4_A, &[64607]), (EU6_A, &[64607])]);
    b.wait_established("n0", SESSION);
    s.wait_answer("A", EU4_A, FRA1, CHANGE);
    s.wait_answer("AAAA", EU6_A, FRA1_6, CHANGE);
    s.wait_session("fra1-rtr6", 1, 1, CHANGE);
    assert_eq!(s.session("fra1-rtr6")["address"], "::1");
    assert_eq!(s.session("fra1-rtr6")["state"], "established");
}

/// While an operator's edit has broken the configuration (the reload is refused and the old
/// snapshot serves), routing updates still reach the answers: a feed change compiles the last
/// good files again with the new tables. Fixing the file reloads as usual.
#[test]
fn feed_changes_apply_while_a_file_is_broken() {
    let sp = signpost_addr();
    let bs = bird_speaker(65008);
    let s = Signpost::start(sp, 2000, &[FeedPeer::passive("fra1-rtr", &bs, &["fra1"])]);
    let mut b = start_bird(&bs, sp, &[]);
    b.wait_established("n0", SESSION);
    s.wait_session("fra1-rtr", 0, 0, CHANGE);
    let config = s._dir.path("bgp-live/signpost.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    s._dir
        .write("bgp-live/signpost.yaml", &format!("{good}\nbogus_key: 1\n"));
    assert!(
        wait_until(CHANGE, || {
            let (_, v) = s.server.ctl(&["status"]);
            v["last_reload"]["ok"] == false
        }),
        "the broken file was not refused\n{}",
        s.diagnostics()
    );
    b.set_routes(&[(EU4_A, &[64608])]);
    s.wait_answer("A", EU4_A, FRA1, CHANGE);
    b.set_routes(&[]);
    s.wait_answer("A", EU4_A, LON1, CHANGE);
    let (_, v) = s.server.ctl(&["status"]);
    assert!(
        v["last_reload"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("bogus_key")),
        "{v}"
    );
    s._dir.write("bgp-live/signpost.yaml", &good);
    assert!(wait_until(CHANGE, || {
        let (_, v) = s.server.ctl(&["status"]);
        v["last_reload"]["ok"] == true
    }));
}

/// Routes added and withdrawn on each daemon move the answer of a client inside them within
/// [`CHANGE`]; the time of each change is printed.
#[test]
fn route_changes_reach_the_answers() {
    let sp = signpost_addr();
    let bs = bird_speaker(65011);
    let gs = Speaker::new(65012);
    let s = Signpost::start(
        sp,
        2000,
        &[
            FeedPeer::passive("fra1-rtr", &bs, &["fra1"]),
            FeedPeer::active("ams1-rtr", &gs, sp.ip(), &["ams1"]),
        ],
    );
    let mut g = start_gobgpd(&gs, sp);
    let mut b = start_bird(&bs, sp, &[]);
    b.wait_established("n0", SESSION);
    g.wait_established(s.ip(), SESSION);
    s.wait_session("fra1-rtr", 0, 0, CHANGE);
    s.wait_session("ams1-rtr", 0, 0, CHANGE);
    s.expect("A", EU4_A, LON1);
    s.expect("A", EU4_B, LON1);

    // Each step: the change on the daemon, the prefix counts `ctl bgp` shows for the peer
    // afterwards, and the answer it leads to. Timed from the daemon's command: when Signpost's
    // table has it (`ctl bgp`), and when the answer has moved.
    let mut times = Vec::new();
    let mut step = |what: &str, peer: &str, counts: (u64, u64), q: (&str, &str, &str)| {
        let t = Instant::now();
        let (qtype, subnet, want) = q;
        let mut in_table = None;
        let mut last = String::new();
        let done = wait_until(CHANGE, || {
            if in_table.is_none() {
                let p = s.session(peer);
                if p["ipv4_prefixes"] == counts.0 && p["ipv6_prefixes"] == counts.1 {
                    in_table = Some(t.elapsed());
                }
            }
            last = s.answer(qtype, subnet);
            last == want && in_table.is_some()
        });
        assert!(
            done,
            "{what}: {qtype} for {subnet}: {last:?}, expected {want} (in table: {in_table:?})\n{}",
            s.diagnostics()
        );
        times.push(format!(
            "{what}: in table {} ms, answer {} ms",
            ms(in_table.unwrap()),
            ms(t.elapsed())
        ));
    };
    b.set_routes(&[(EU4_A, &[64611]), (EU6_A, &[64611])]);
    step("bird adds v4+v6", "fra1-rtr", (1, 1), ("A", EU4_A, FRA1));
    s.expect("AAAA", EU6_A, FRA1_6);
    g.add_route(EU4_B, &[64612], ip(NH4));
    step("gobgpd adds v4", "ams1-rtr", (1, 0), ("A", EU4_B, AMS1));
    g.add_route(EU6_B, &[64612], ip(NH6));
    step(
        "gobgpd adds v6",
        "ams1-rtr",
        (1, 1),
        ("AAAA", EU6_B, AMS1_6),
    );
    b.set_routes(&[(EU6_A, &[64611])]);
    step("bird withdraws v4", "fra1-rtr", (0, 1), ("A", EU4_A, LON1));
    g.del_route(EU6_B);
    step(
        "gobgpd withdraws v6",
        "ams1-rtr",
        (1, 0),
        ("AAAA", EU6_B, LON1_6),
    );
    g.del_route(EU4_B);
    step(
        "gobgpd withdraws v4",
        "ams1-rtr",
        (0, 0),
        ("A", EU4_B, LON1),
    );
    b.set_routes(&[]);
    step(
        "bird withdraws v6",
        "fra1-rtr",
        (0, 0),
        ("AAAA", EU6_A, LON1_6),
    );
    eprintln!("change → answer: {}", times.join(", "));
    // Nothing else moved, and both sessions stayed up.
    s.expect("A", US4, IAD1);
    assert_eq!(b.protocol_state("n0"), "Established");
    assert_eq!(g.neighbor_state(s.ip()), "established");
}

/// Two routers for fra1 and ams1 (a proximity region) announce the same prefixes with paths of
/// different lengths: the client goes to the node with the shorter path; lengthening that path
/// moves it to the other.
#[test]
fn proximity_follows_the_shorter_path() {
    let sp = signpost_addr();
    let bs = bird_speaker(65021);
    let gs = Speaker::new(65022);
    let s = Signpost::start(
        sp,
        2000,
        &[
            FeedPeer::passive("fra1-rtr", &bs, &["fra1"]),
            FeedPeer::active("ams1-rtr", &gs, sp.ip(), &["ams1"]),
        ],
    );
    let mut g = start_gobgpd(&gs, sp);
    // As Signpost sees them: v4 fra1 [65021 64601 64602] (3) against ams1 [65022 64602] (2);
    // v6 fra1 [65021 64602] (2) against ams1 [65022 64601 64602 64603] (4).
    g.add_route(EU4_A, &[64602], ip(NH4));
    g.add_route(EU6_A, &[64601, 64602, 64603], ip(NH6));
    let mut b = start_bird(&bs, sp, &[(EU4_A, &[64601, 64602]), (EU6_A, &[64602])]);
    s.wait_session("fra1-rtr", 1, 1, SESSION);
    s.wait_session("ams1-rtr", 1, 1, SESSION);
    s.wait_answer("A", EU4_A, AMS1, CHANGE);
    s.wait_answer("AAAA", EU6_A, FRA1_6, CHANGE);

    // ams1's IPv4 path becomes longer than fra1's: fra1.
    g.add_route(EU4_A, &[64601, 64602, 64603], ip(NH4));
    let d4 = s.wait_answer("A", EU4_A, FRA1, CHANGE);
    // fra1's IPv6 path becomes longer than ams1's: ams1.
    b.set_routes(&[
        (EU4_A, &[64601, 64602]),
        (EU6_A, &[64601, 64602, 64603, 64604, 64605]),
    ]);
    let d6 = s.wait_answer("AAAA", EU6_A, AMS1_6, CHANGE);
    // Equal lengths (4 and 4): ties go by weight (equal), then name: ams1.
    b.set_routes(&[
        (EU4_A, &[64601, 64602, 64603]),
        (EU6_A, &[64601, 64602, 64603, 64604, 64605]),
    ]);
    let tie = s.wait_answer("A", EU4_A, AMS1, CHANGE);
    eprintln!(
        "path change → answer: v4 {} ms, v6 {} ms, tie {} ms",
        ms(d4),
        ms(d6),
        ms(tie)
    );
    // Outside the prefixes nobody has a route: lon1, by weight.
    s.expect("A", EU4_B, LON1);
}

/// Both daemons killed: their routes go stale and keep the answers for `stale_ms`, then are
/// removed and the answers fall back to lon1; restarted, the routes and answers come back.
#[test]
fn killed_daemon_routes_go_stale_then_away() {
    const STALE_MS: u64 = 4000;
    let sp = signpost_addr();
    let bs = bird_speaker(65031);
    let gs = Speaker::new(65032);
    let s = Signpost::start(
        sp,
        STALE_MS,
        &[
            FeedPeer::passive("fra1-rtr", &bs, &["fra1"]),
            FeedPeer::active("ams1-rtr", &gs, sp.ip(), &["ams1"]),
        ],
    );
    let mut g = start_gobgpd(&gs, sp);
    g.add_route(EU4_B, &[64632], ip(NH4));
    let mut b = start_bird(&bs, sp, &[(EU4_A, &[64631]), (EU6_A, &[64631])]);
    s.wait_session("fra1-rtr", 1, 1, SESSION);
    s.wait_session("ams1-rtr", 1, 0, SESSION);
    s.wait_answer("A", EU4_A, FRA1, CHANGE);
    s.wait_answer("AAAA", EU6_A, FRA1_6, CHANGE);
    s.wait_answer("A", EU4_B, AMS1, CHANGE);

    let killed = Instant::now();
    b.kill();
    g.kill();
    // Signpost sees both sessions end; their routes are stale.
    let (mut fra, mut ams) = (serde_json::Value::Null, serde_json::Value::Null);
    let down = wait_until(Duration::from_millis(STALE_MS / 2), || {
        fra = s.session("fra1-rtr");
        ams = s.session("ams1-rtr");
        fra["state"] != "established" && ams["state"] != "established"
    });
    assert!(down, "sessions still up: {fra} {ams}");
    assert_eq!(fra["stale_prefixes"], 2, "{fra}");
    assert_eq!(ams["stale_prefixes"], 1, "{ams}");
    // While stale (most of stale_ms, less the time a poll may take), the answers hold.
    let hold = Duration::from_millis(STALE_MS - 1500);
    let mut polls = 0;
    while killed.elapsed() < hold {
        s.expect("A", EU4_A, FRA1);
        s.expect("A", EU4_B, AMS1);
        polls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    s.expect("AAAA", EU6_A, FRA1_6);
    // Then removed.
    let limit = Duration::from_millis(STALE_MS) + CHANGE;
    s.wait_answer("A", EU4_A, LON1, limit);
    let gone_a = killed.elapsed();
    s.wait_answer("A", EU4_B, LON1, CHANGE);
    s.wait_answer("AAAA", EU6_A, LON1_6, CHANGE);
    let gone_b = killed.elapsed();
    assert!(
        gone_a >= Duration::from_millis(STALE_MS),
        "removed after {gone_a:?}, before stale_ms"
    );
    eprintln!(
        "kill → stale answers held over {polls} polls, removed after {} ms / {} ms (stale_ms {STALE_MS})",
        ms(gone_a),
        ms(gone_b)
    );
    assert_eq!(s.session("fra1-rtr")["stale_prefixes"], 0);

    // Back.
    let t = Instant::now();
    b.restart();
    let bird_back = s.wait_answer("A", EU4_A, FRA1, SESSION);
    let t2 = Instant::now();
    g.restart();
    let gobgp_back = s.wait_answer("A", EU4_B, AMS1, SESSION);
    s.wait_answer("AAAA", EU6_A, FRA1_6, CHANGE);
    eprintln!(
        "restart → answer back: bird {} ms, gobgpd {} ms (total {} ms)",
        ms(bird_back),
        ms(gobgp_back),
        ms(t.elapsed().max(t2.elapsed()))
    );
    s.wait_session("fra1-rtr", 1, 1, CHANGE);
    s.wait_session("ams1-rtr", 1, 0, CHANGE);
}

/// `ctl replace` with live feeds: the new process answers with the routes the old one had
/// from its very first answer (handed over with the description), takes over the listener the
/// routers connect to, and the established sessions themselves (BIRD's passive one and the one
/// to gobgpd), so none of the routes is stale after it. Before, a replace with a passive peer
/// failed (the listen address was taken), and with active peers the new process answered
/// without the feeds' routes until its sessions were up.
#[test]
fn a_replace_answers_with_the_feeds_routes_throughout() {
    let sp = signpost_addr();
    let bs = bird_speaker(65051);
    let gs = Speaker::new(65052);
    let s = Signpost::start(
        sp,
        60_000,
        &[
            FeedPeer::passive("fra1-rtr", &bs, &["fra1"]),
            FeedPeer::active("ams1-rtr", &gs, sp.ip(), &["ams1"]),
        ],
    );
    let _reaper = Reaper(s.server.control.clone().unwrap());
    let mut g = start_gobgpd(&gs, sp);
    g.add_route(EU4_B, &[64652], ip(NH4));
    let _b = start_bird(&bs, sp, &[(US4, &[64642, CUSTOMER_AS])]);
    s.wait_session("fra1-rtr", 1, 0, SESSION);
    s.wait_session("ams1-rtr", 1, 0, SESSION);
    // Without the feeds: US4 → IAD1 (GeoIP), EU4_B → LON1.
    s.wait_answer("A", US4, SYD1, CHANGE);
    s.wait_answer("A", EU4_B, AMS1, CHANGE);

    // Queries all along, bounded in time.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let querier = {
        let (stop, seen, server) = (stop.clone(), seen.clone(), s.server.udp);
        std::thread::spawn(move || {
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(90) {
                let us = dig_short(server, "A", US4);
                let eu = dig_short(server, "A", EU4_B);
                seen.lock().unwrap().push((Instant::now(), us, eu));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let old_pid = s.server.child.id();
    let replaced = Instant::now();
    let (ok, v) = s.server.ctl(&["replace"]);
    assert!(ok, "replace failed: {v}\n{}", s.diagnostics());
    assert_ne!(v["new_pid"].as_u64(), Some(u64::from(old_pid)), "{v}");
    // The new process holds the routes it was handed, stale, before its sessions are back.
    let fra = s.session("fra1-rtr");
    eprintln!("right after the replace: {fra}");
    // Its own sessions come back (BIRD connects to the listener it inherited; it connects to
    // gobgpd) and announce the routes again.
    s.wait_session("fra1-rtr", 1, 0, Duration::from_secs(60));
    s.wait_session("ams1-rtr", 1, 0, Duration::from_secs(60));
    let back = replaced.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    querier.join().unwrap();
    let seen = seen.lock().unwrap();
    let after: Vec<_> = seen.iter().filter(|(t, _, _)| *t > replaced).collect();
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(_, us, eu)| us != SYD1 || eu != AMS1)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} answer pairs without the feeds' routes: {:?}\n{}",
        wrong.len(),
        seen.len(),
        &wrong[..wrong.len().min(5)],
        s.diagnostics()
    );
    assert!(
        after.len() >= 10,
        "only {} queries after the replace",
        after.len()
    );
    assert_eq!(s.session("fra1-rtr")["stale_prefixes"], 0);
    eprintln!(
        "replace with feeds: {} answer pairs, {} after the replace, all with the feeds' routes; sessions back after {} ms",
        seen.len(),
        after.len(),
        ms(back)
    );
}

/// An `asns` rule matches the live origin (the last AS of the path) of the longest prefix a
/// feed has for the client: AS 64990 goes to Oceania whatever the client's country; another
/// origin, or the customer AS in the middle of the path, does not match; withdrawn, the GeoIP
/// answer is back.
#[test]
fn live_origin_decides_asns_rules() {
    let sp = signpost_addr();
    let bs = bird_speaker(65041);
    let s = Signpost::start(sp, 2000, &[FeedPeer::passive("fra1-rtr", &bs, &["fra1"])]);
    let mut b = start_bird(&bs, sp, &[]);
    s.wait_session("fra1-rtr", 0, 0, SESSION);
    s.expect("A", US4, IAD1);
    s.expect("A", US4_B, IAD1);
    s.expect("AAAA", US6_CLIENT, IAD1_6);
    s.expect("A", EU4_A, LON1);

    let t = Instant::now();
    b.set_routes(&[
        (US4, &[64642, CUSTOMER_AS]),
        // Covers 8.8.4.0/24 too, with another origin.
        ("8.8.0.0/16", &[64642, 64991]),
        (US6, &[CUSTOMER_AS]),
        // A European client in the customer's network.
        (EU4_A, &[CUSTOMER_AS]),
        // The customer AS as a transit, not the origin.
        (EU4_B, &[CUSTOMER_AS, 64995]),
    ]);
    s.wait_answer("A", US4, SYD1, CHANGE);
    let took = t.elapsed();
    s.wait_answer("AAAA", US6_CLIENT, SYD1_6, CHANGE);
    s.wait_answer("A", EU4_A, SYD1, CHANGE);
    s.expect("A", US4_B, IAD1);
    // fra1's feed has a route there, so proximity puts fra1 first in Europe.
    s.expect("A", EU4_B, FRA1);
    // The server's explanation names the live origin the rule used.
    let client = US4.split('/').next().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["explain", "--socket"])
        .arg(s.server.control.as_ref().unwrap())
        .args([client, "dl.example.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "asn: AS{CUSTOMER_AS} (live, prefix {US4}, from fra1-rtr)"
        )) && text.contains("rule: asn"),
        "{text}"
    );
    // So does `lookup --socket`: the origin the rules use, not the file tables' answer.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["lookup", "--socket"])
        .arg(s.server.control.as_ref().unwrap())
        .arg(client)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains(&format!(
                "asn: AS{CUSTOMER_AS} (live, prefix {US4}, from fra1-rtr)"
            ))
            && !text.contains("asn: unknown"),
        "{text}"
    );

    let t2 = Instant::now();
    b.set_routes(&[("8.8.0.0/16", &[64642, 64991])]);
    s.wait_answer("A", US4, IAD1, CHANGE);
    let back = t2.elapsed();
    s.wait_answer("AAAA", US6_CLIENT, IAD1_6, CHANGE);
    s.wait_answer("A", EU4_A, LON1, CHANGE);
    s.wait_answer("A", EU4_B, LON1, CHANGE);
    s.expect("A", US4_B, IAD1);
    eprintln!(
        "origin AS {CUSTOMER_AS} announced → Oceania in {} ms, withdrawn → GeoIP answer in {} ms",
        ms(took),
        ms(back)
    );
}

// ---------------------------------------------------------------------------------------------
// A raw BGP speaker: messages built by hand (RFC 4271, RFC 4760, RFC 6793).

/// A BGP message: the marker, the length, the type, and `body`.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// An OPEN of AS `asn` (4-byte ASN capability; AS_TRANS in the 2-byte field above 65535) for
/// IPv4 and IPv6 unicast (multiprotocol capabilities), hold time `hold`.
fn open(asn: u32, id: Ipv4Addr, hold: u16) -> Vec<u8> {
    let mut caps = Vec::new();
    for afi in [1u16, 2] {
        caps.extend([1, 4]);
        caps.extend(afi.to_be_bytes());
        caps.extend([0, 1]);
    }
    caps.extend([65, 4]);
    caps.extend(asn.to_be_bytes());
    let mut body = vec![4];
    body.extend(u16::try_from(asn).unwrap_or(23456).to_be_bytes());
    body.extend(hold.to_be_bytes());
    body.extend(id.octets());
    body.push(2 + caps.len() as u8);
    body.push(2); // capabilities
    body.push(caps.len() as u8);
    body.extend(caps);
    message(1, &body)
}

/// An UPDATE from its withdrawn routes, path attributes and NLRI fields.
fn update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((withdrawn.len() as u16).to_be_bytes());
    body.extend(withdrawn);
    body.extend((attributes.len() as u16).to_be_bytes());
    body.extend(attributes);
    body.extend(nlri);
    message(2, &body)
}

/// ORIGIN IGP, AS_PATH (one sequence, 4-byte ASNs), NEXT_HOP 192.0.2.1.
fn attributes(path: &[u32]) -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0];
    a.extend([0x40, 2, (2 + 4 * path.len()) as u8, 2, path.len() as u8]);
    for asn in path {
        a.extend(asn.to_be_bytes());
    }
    a.extend([0x40, 3, 4, 192, 0, 2, 1]);
    a
}

/// An IPv4 prefix as NLRI: its length, then its significant octets.
fn nlri4(prefix: &str) -> Vec<u8> {
    let (a, l) = prefix.split_once('/').unwrap();
    let a: Ipv4Addr = a.parse().unwrap();
    let l: u8 = l.parse().unwrap();
    let mut n = vec![l];
    n.extend(&a.octets()[..usize::from(l).div_ceil(8)]);
    n
}

/// A message from Signpost.
#[derive(Debug, PartialEq)]
enum Msg {
    Open { asn: u16, hold: u16, id: Ipv4Addr },
    Update,
    Notification(u8, u8, Vec<u8>),
    Keepalive,
    Other(u8),
}

/// One BGP session over a plain TCP connection, bound to a loopback address of the test's.
struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    fn connect(from: IpAddr, to: SocketAddr) -> RawPeer {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
        socket
            .connect_timeout(&to.into(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {from} → {to}: {e}"));
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        RawPeer { stream }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next message; `None` when Signpost closed the connection.
    fn recv(&mut self) -> Option<Msg> {
        let mut header = [0u8; 19];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading from Signpost: {e}"),
        }
        assert_eq!(header[..16], [0xff; 16], "marker");
        let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
        assert!((19..=4096).contains(&len), "length {len}");
        let mut body = vec![0u8; len - 19];
        self.stream.read_exact(&mut body).unwrap();
        Some(match header[18] {
            1 => Msg::Open {
                asn: u16::from_be_bytes([body[1], body[2]]),
                hold: u16::from_be_bytes([body[3], body[4]]),
                id: Ipv4Addr::new(body[5], body[6], body[7], body[8]),
            },
            2 => Msg::Update,
            3 => Msg::Notification(body[0], body[1], body[2..].to_vec()),
            4 => Msg::Keepalive,
            t => Msg::Other(t),
        })
    }

    /// OPEN (hold time 0: no keepalives either way; the peer needs `min_hold_time: 0`),
    /// Signpost's OPEN, KEEPALIVE, its KEEPALIVE. Returns Signpost's OPEN.
    fn handshake(&mut self, asn: u32) -> Msg {
        self.send(&open(asn, Ipv4Addr::new(10, 9, 9, 9), 0));
        let theirs = self.recv();
        assert!(matches!(theirs, Some(Msg::Open { .. })), "{theirs:?}");
        self.send(&message(4, &[]));
        assert_eq!(self.recv(), Some(Msg::Keepalive));
        theirs.unwrap()
    }

    /// Reads until a NOTIFICATION; then expects the connection to close.
    fn notification(&mut self) -> (u8, u8, Vec<u8>) {
        loop {
            match self.recv() {
                Some(Msg::Notification(c, s, d)) => {
                    assert_eq!(self.recv(), None, "still open after the NOTIFICATION");
                    return (c, s, d);
                }
                Some(_) => {}
                None => panic!("closed without a NOTIFICATION"),
            }
        }
    }
}

/// Queries in a loop on a thread, counting answers that are not the expected ones.
struct DnsLoop {
    stop: Arc<AtomicBool>,
    bad: Arc<Mutex<Vec<String>>>,
    count: Arc<Mutex<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsLoop {
    fn start(
        server: SocketAddr,
        expect: Vec<(&'static str, &'static str, &'static str)>,
    ) -> DnsLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(Mutex::new(0));
        let (s, b, c) = (stop.clone(), bad.clone(), count.clone());
        let thread = std::thread::spawn(move || {
            // Bounded by itself too, should the test never stop it.
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                for &(qtype, subnet, want) in &expect {
                    let got = dig_short(server, qtype, subnet);
                    if got != want {
                        b.lock()
                            .unwrap()
                            .push(format!("{qtype} {subnet}: {got:?}, expected {want}"));
                    }
                    *c.lock().unwrap() += 1;
                }
            }
        });
        DnsLoop {
            stop,
            bad,
            count,
            thread: Some(thread),
        }
    }

    /// Stops the loop; returns how many queries it made and the wrong answers.
    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let n = *self.count.lock().unwrap();
        (n, self.bad.lock().unwrap().clone())
    }
}

impl Drop for DnsLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw speaker sends a malformed UPDATE (treated as a withdrawal, session kept), an
/// oversized message (header length 5000: NOTIFICATION Message Header Error / Bad Message
/// Length), and after reconnecting an UPDATE with an invalid prefix length (NOTIFICATION UPDATE
/// Message Error / Invalid Network Field). Meanwhile every DNS answer is the expected one and
/// BIRD's session stays up.
#[test]
fn raw_speaker_errors_touch_only_their_session() {
    let sp = signpost_addr();
    let bs = bird_speaker(65051);
    let raw_addr = IpAddr::V4(loopback_v4());
    let raw_asn = 65052;
    let raw = Speaker::on(raw_asn, raw_addr).no_listen();
    let s = Signpost::start(
        sp,
        2000,
        &[
            FeedPeer::passive("fra1-rtr", &bs, &["fra1"]),
            FeedPeer::passive("raw-rtr", &raw, &["ams1"]).min_hold_time(0),
        ],
    );
    let b = start_bird(&bs, sp, &[(EU4_A, &[64651]), (EU6_A, &[64651])]);
    s.wait_answer("A", EU4_A, FRA1, SESSION);
    s.wait_answer("AAAA", EU6_A, FRA1_6, CHANGE);
    let fra_up = s.session("fra1-rtr")["uptime_s"].as_u64().unwrap();
    let started = Instant::now();
    let dns = DnsLoop::start(
        s.server.udp,
        vec![
            ("A", EU4_A, FRA1),
            ("AAAA", EU6_A, FRA1_6),
            ("A", US4, IAD1),
            ("A", EU4_C, LON1),
        ],
    );

    // First session: a route, then a malformed ORIGIN (length 2) for it, then 5000 bytes.
    let mut r = RawPeer::connect(raw_addr, sp);
    let theirs = r.handshake(raw_asn);
    assert_eq!(
        theirs,
        Msg::Open {
            asn: SIGNPOST_ASN as u16,
            hold: 9,
            id: SIGNPOST_ID
        }
    );
    r.send(&update(&[], &attributes(&[raw_asn]), &nlri4(EU4_B)));
    s.wait_answer("A", EU4_B, AMS1, CHANGE);
    let mut bad_origin = vec![0x40, 1, 2, 0, 0];
    bad_origin.extend(&attributes(&[raw_asn])[4..]);
    r.send(&update(&[], &bad_origin, &nlri4(EU4_B)));
    s.wait_answer("A", EU4_B, LON1, CHANGE);
    // The session survived it.
    r.send(&update(&[], &attributes(&[raw_asn]), &nlri4(EU4_B)));
    s.wait_answer("A", EU4_B, AMS1, CHANGE);
    assert_eq!(s.session("raw-rtr")["state"], "established");
    let mut oversized = vec![0xff; 16];
    oversized.extend(5000u16.to_be_bytes());
    oversized.push(2);
    oversized.extend(std::iter::repeat_n(0u8, 4981));
    r.send(&oversized);
    assert_eq!(r.notification(), (1, 2, 5000u16.to_be_bytes().to_vec()));
    let e = s.session("raw-rtr")["last_error"].to_string();
    assert!(e.contains("Bad Message Length"), "{e}");

    // Second session: a /33 in the NLRI field.
    let mut r = RawPeer::connect(raw_addr, sp);
    r.handshake(raw_asn);
    r.send(&update(
        &[],
        &attributes(&[raw_asn]),
        &[33, 81, 2, 70, 0, 0],
    ));
    assert_eq!(r.notification(), (3, 10, vec![]));
    let e = s.session("raw-rtr")["last_error"].to_string();
    eprintln!("raw-rtr last error: {e}");
    drop(r);
    // The raw peer's stale route goes away at the end of stale_ms.
    s.wait_answer("A", EU4_B, LON1, Duration::from_millis(2000) + CHANGE);

    let (n, bad) = dns.finish();
    assert!(
        bad.is_empty(),
        "{} of {n} answers wrong: {bad:?}",
        bad.len()
    );
    assert!(n >= 20, "only {n} queries");
    eprintln!(
        "{n} queries during the raw sessions ({} ms), all answered as expected",
        ms(started.elapsed())
    );
    // BIRD's session never went down.
    assert_eq!(b.protocol_state("n0"), "Established");
    let fra = s.session("fra1-rtr");
    assert_eq!(fra["state"], "established", "{fra}");
    assert!(
        fra["uptime_s"].as_u64().unwrap() + 1 >= fra_up + started.elapsed().as_secs(),
        "fra1-rtr restarted: {fra}"
    );
    s.expect("A", EU4_A, FRA1);
}

/// A router sends its first UPDATE in the same segment as the KEEPALIVE that completes the
/// OPEN exchange (as BIRD does): the route reaches the table and the answers like any other,
/// without waiting for the peer's next message. Hold time 0, so no KEEPALIVE follows.
#[test]
fn updates_right_after_the_handshake_are_applied() {
    let sp = signpost_addr();
    let raw_addr = IpAddr::V4(loopback_v4());
    let raw_asn = 65072;
    let raw = Speaker::on(raw_asn, raw_addr).no_listen();
    let s = Signpost::start(
        sp,
        2000,
        &[FeedPeer::passive("raw-rtr", &raw, &["ams1"]).min_hold_time(0)],
    );
    let mut r = RawPeer::connect(raw_addr, sp);
    r.send(&open(raw_asn, Ipv4Addr::new(10, 9, 9, 9), 0));
    assert!(matches!(r.recv(), Some(Msg::Open { .. })));
    // KEEPALIVE and UPDATE in one write.
    let mut bytes = message(4, &[]);
    bytes.extend(update(&[], &attributes(&[raw_asn]), &nlri4(EU4_B)));
    r.send(&bytes);
    assert_eq!(r.recv(), Some(Msg::Keepalive));
    let t = Instant::now();
    let applied = wait_until(CHANGE, || s.session("raw-rtr")["ipv4_prefixes"] == 1);
    if !applied {
        // Any further bytes release it.
        r.send(&message(4, &[]));
        let later = wait_until(CHANGE, || s.session("raw-rtr")["ipv4_prefixes"] == 1);
        panic!(
            "the UPDATE sent with the KEEPALIVE was not applied within {CHANGE:?}; after one more \
             KEEPALIVE it was applied: {later}\n{}",
            s.diagnostics()
        );
    }
    s.wait_answer("A", EU4_B, AMS1, CHANGE);
    eprintln!(
        "UPDATE right after the handshake applied in {} ms",
        ms(t.elapsed())
    );
}

/// A peer with `max_prefixes: 5` that announces a sixth prefix gets a NOTIFICATION Cease /
/// Maximum Number of Prefixes Reached (BIRD's last error says so); the other peer's session and
/// answers are untouched.
#[test]
fn max_prefixes_ends_only_that_session() {
    let sp = signpost_addr();
    let bs = bird_speaker(65061);
    let gs = Speaker::new(65062);
    let s = Signpost::start(
        sp,
        2000,
        &[
            FeedPeer::passive("fra1-rtr", &bs, &["fra1"]).max_prefixes(5),
            FeedPeer::active("ams1-rtr", &gs, sp.ip(), &["ams1"]),
        ],
    );
    let mut g = start_gobgpd(&gs, sp);
    g.add_route(EU4_B, &[64662], ip(NH4));
    g.add_route(EU6_B, &[64662], ip(NH6));
    let path: &[u32] = &[64661];
    let six = [
        (EU4_A, path),
        ("81.2.80.0/24", path),
        ("81.2.81.0/24", path),
        ("81.2.82.0/24", path),
        ("81.2.83.0/24", path),
        ("81.2.84.0/24", path),
    ];
    let mut b = start_bird(&bs, sp, &six[..5]);
    s.wait_session("fra1-rtr", 5, 0, SESSION);
    s.wait_session("ams1-rtr", 1, 1, SESSION);
    s.wait_answer("A", EU4_A, FRA1, CHANGE);
    s.wait_answer("A", EU4_B, AMS1, CHANGE);
    let ams_up = s.session("ams1-rtr")["uptime_s"].as_u64().unwrap();
    let started = Instant::now();
    let dns = DnsLoop::start(
        s.server.udp,
        vec![
            ("A", EU4_B, AMS1),
            ("AAAA", EU6_B, AMS1_6),
            ("A", US4, IAD1),
        ],
    );

    // The sixth IPv4 prefix.
    b.set_routes(&six);
    let mut last = None;
    let ceased = wait_until(SESSION, || {
        last = b.last_error("n0");
        last.as_deref().is_some_and(|e| e.contains("prefixes"))
    });
    assert!(
        ceased,
        "bird's last error: {last:?}\n{}\n{}",
        b.birdc(&["show", "protocols", "all", "n0"]),
        s.diagnostics()
    );
    eprintln!(
        "bird after the 6th prefix: last error {last:?} ({} ms)",
        ms(started.elapsed())
    );
    let log = b.log();
    assert!(
        log.contains("Maximum number of prefixes reached"),
        "bird's log:\n{log}"
    );
    let fra = s.session("fra1-rtr");
    let e = fra["last_error"].to_string();
    assert!(e.to_lowercase().contains("prefix"), "{fra}");

    // A while later the other session is still up, with its routes and answers; the session
    // over its limit is held down (no flapping while BIRD retries every second), with the
    // Cease still its last error.
    std::thread::sleep(Duration::from_secs(3));
    let fra = s.session("fra1-rtr");
    assert_ne!(fra["state"], "established", "{fra}");
    assert!(
        fra["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Maximum Number of Prefixes")),
        "{fra}"
    );
    let (n, bad) = dns.finish();
    assert!(
        bad.is_empty(),
        "{} of {n} answers wrong: {bad:?}",
        bad.len()
    );
    assert_eq!(g.neighbor_state(s.ip()), "established");
    let ams = s.session("ams1-rtr");
    assert_eq!(ams["state"], "established", "{ams}");
    assert_eq!(ams["ipv4_prefixes"], 1, "{ams}");
    assert_eq!(ams["ipv6_prefixes"], 1, "{ams}");
    assert!(
        ams["uptime_s"].as_u64().unwrap() + 1 >= ams_up + started.elapsed().as_secs(),
        "ams1-rtr restarted: {ams}"
    );
    s.expect("A", EU4_B, AMS1);
    eprintln!("{n} queries for ams1's clients during the cease, all as expected");
}

/// The peer configurations of `testdata/bgp-live/peers/` are what the tests run, with an
/// operator's addresses and timers: the same generators produce them (comments and blank lines
/// aside), and each daemon accepts its file.
#[test]
fn operator_peer_configs_match_the_tests() {
    let router = Speaker {
        asn: 64496,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        addr: ip("192.0.2.1"),
        port: Some(179),
        neighbors: Vec::new(),
        next_hop4: Ipv4Addr::new(192, 0, 2, 1),
        next_hop6: "2001:db8::1".parse().unwrap(),
        hold_time: 90,
        connect_retry: 10,
    };
    let signpost = ip("192.0.2.53");
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    };

    // gobgpd waits for Signpost (mode: active on Signpost's side).
    let want = gobgpd_toml(
        &router
            .clone()
            .neighbor(Neighbor::passive(signpost, SIGNPOST_ASN)),
    );
    let file = bgp_live("peers/gobgpd.toml");
    let have = std::fs::read_to_string(&file).unwrap();
    assert_eq!(strip(&have), strip(&want), "{}", file.display());
    let out = std::process::Command::new("gobgpd")
        .args(["--dry-run", "-t", "toml", "-f"])
        .arg(&file)
        .output()
        .expect("gobgpd");
    assert!(
        out.status.success(),
        "gobgpd --dry-run: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // BIRD connects to Signpost (mode: passive on Signpost's side): its `protocol bgp`.
    let conf = bird_conf(
        &router
            .clone()
            .neighbor(Neighbor::active(signpost, 179, SIGNPOST_ASN).named("signpost")),
        &[],
        std::path::Path::new("/var/log/bird.log"),
    );
    let block = |t: &str| -> Vec<String> {
        let lines = strip(t);
        let start = lines
            .iter()
            .position(|l| l.starts_with("protocol bgp signpost"))
            .expect("protocol bgp signpost");
        let end = start + lines[start..].iter().position(|l| l == "}").unwrap();
        lines[start..=end].to_vec()
    };
    let file = bgp_live("peers/bird.conf");
    let have = std::fs::read_to_string(&file).unwrap();
    assert_eq!(block(&have), block(&conf), "{}", file.display());
    let out = std::process::Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(&file)
        .output()
        .expect("bird");
    assert!(
        out.status.success(),
        "bird -p: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The raw speaker's UPDATEs announcing `prefixes` (IPv4) with path `[asn]`, as few messages
/// as fit (500 prefixes each).
fn announce_all(asn: u32, prefixes: &[String]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for chunk in prefixes.chunks(500) {
        let nlri: Vec<u8> = chunk.iter().flat_map(|p| nlri4(p)).collect();
        bytes.extend(update(&[], &attributes(&[asn]), &nlri));
    }
    bytes
}

/// `ctl bgp`'s fresh IPv4 plus stale prefixes of `peer`.
fn held(s: &Signpost, peer: &str) -> u64 {
    let v = s.session(peer);
    v["ipv4_prefixes"].as_u64().unwrap() + v["stale_prefixes"].as_u64().unwrap()
}

/// A router that reconnects again and again within `stale_ms`, each session announcing 999
/// prefixes that no earlier session had and never sending End-of-RIB, against
/// `max_prefixes: 1000`: fresh and stale routes together stay within the limit (the stale
/// routes of the oldest sessions make room), and the latest session's routes are all fresh.
/// Before the limit counted stale routes, 20 such sessions left 19,980 routes held.
#[test]
fn a_flapping_peer_holds_no_more_than_max_prefixes() {
    let sp = signpost_addr();
    let raw_addr = IpAddr::V4(loopback_v4());
    let raw_asn = 65081;
    let raw = Speaker::on(raw_asn, raw_addr).no_listen();
    let s = Signpost::start(
        sp,
        60_000,
        &[FeedPeer::passive("raw-rtr", &raw, &["ams1"]).min_hold_time(0)],
    );
    let started = Instant::now();
    let mut most = 0;
    for session in 0..20u32 {
        let prefixes: Vec<String> = (0..999u32)
            .map(|i| {
                let n = session * 1000 + i;
                format!("10.{}.{}.0/24", n >> 8, n & 255)
            })
            .collect();
        let mut r = RawPeer::connect(raw_addr, sp);
        r.handshake(raw_asn);
        r.send(&announce_all(raw_asn, &prefixes));
        if !wait_until(CHANGE, || s.session("raw-rtr")["ipv4_prefixes"] == 999) {
            panic!("session {session}: {}", s.diagnostics());
        }
        most = most.max(held(&s, "raw-rtr"));
        drop(r);
        if !wait_until(CHANGE, || s.session("raw-rtr")["ipv4_prefixes"] == 0) {
            panic!("session {session} not down: {}", s.diagnostics());
        }
        most = most.max(held(&s, "raw-rtr"));
    }
    eprintln!(
        "20 sessions of 999 new prefixes in {} ms: at most {most} routes held",
        ms(started.elapsed())
    );
    assert!(most <= 1000, "{most} routes held, limit 1000");
    assert_eq!(held(&s, "raw-rtr"), 1000);
    // The server answers all along.
    s.expect("A", US4, IAD1);
}

/// Lines in `text` containing `what`.
fn lines_with(text: &str, what: &str) -> usize {
    text.lines().filter(|l| l.contains(what)).count()
}

/// What the other side of a BGP connection can make Signpost log is rate-limited: 1000
/// malformed UPDATEs (treated as withdrawals), 200 connections from an address that is no
/// peer's and 30 sessions in a row of one peer give at most 10 lines of each kind (and the
/// counts of those held back go on the next line of the kind written, a minute later at most:
/// `log_limit.rs` tests that). Before the limits, every one of them was a line.
#[test]
fn remote_parties_cannot_flood_the_log() {
    let sp = signpost_addr();
    let raw_addr = IpAddr::V4(loopback_v4());
    let stranger = IpAddr::V4(loopback_v4());
    let raw_asn = 65091;
    let raw = Speaker::on(raw_asn, raw_addr).no_listen();
    let s = Signpost::start(
        sp,
        2000,
        &[FeedPeer::passive("raw-rtr", &raw, &["ams1"]).min_hold_time(0)],
    );

    // 1000 malformed UPDATEs (ORIGIN of length 2), then a good one: once the good one is in
    // the table, every bad one before it was handled.
    let mut r = RawPeer::connect(raw_addr, sp);
    r.handshake(raw_asn);
    let mut bad_origin = vec![0x40, 1, 2, 0, 0];
    bad_origin.extend(&attributes(&[raw_asn])[4..]);
    let bad = update(&[], &bad_origin, &nlri4(EU4_B));
    r.send(&bad.repeat(1000));
    r.send(&update(&[], &attributes(&[raw_asn]), &nlri4(EU4_B)));
    if !wait_until(CHANGE, || s.session("raw-rtr")["ipv4_prefixes"] == 1) {
        panic!("{}", s.diagnostics());
    }
    assert_eq!(s.session("raw-rtr")["state"], "established");
    drop(r);

    // 200 connections from an unknown address, each closed by Signpost, and counted.
    for _ in 0..200 {
        let mut c = RawPeer::connect(stranger, sp);
        assert_eq!(c.recv(), None);
    }
    let (ok, bgp) = s.server.ctl(&["bgp"]);
    assert!(
        ok && bgp["refused_connections"].as_u64() >= Some(200),
        "{bgp}"
    );

    // 30 sessions of the peer, each up and then closed by the peer.
    for _ in 0..30 {
        let mut r = RawPeer::connect(raw_addr, sp);
        r.handshake(raw_asn);
        drop(r);
    }
    // The last session's end is logged (or counted) too.
    if !wait_until(CHANGE, || s.session("raw-rtr")["state"] != "established") {
        panic!("{}", s.diagnostics());
    }
    std::thread::sleep(Duration::from_millis(300));

    let log = s.server.stderr();
    let counts = [
        "malformed BGP UPDATE treated as withdraw",
        "BGP connection from an unknown address refused",
        "BGP session up",
        "BGP session down",
    ]
    .map(|what| (what, lines_with(&log, what)));
    eprintln!("log lines: {counts:?}, {} bytes in all", log.len());
    let head: String = log.lines().take(40).collect::<Vec<_>>().join("\n");
    for (what, n) in counts {
        assert!(
            (1..=10).contains(&n),
            "{n} lines of {what:?}; the log begins:\n{head}"
        );
    }
    assert!(log.len() < 64 * 1024, "{} bytes of log", log.len());
}

/// A router proposing hold time 0 (RFC 4271 allows it: no keepalives and no hold timer, so a
/// router that falls silent keeps its session, and its routes fresh, for ever) is refused by
/// default: NOTIFICATION OPEN Message Error / Unacceptable Hold Time, and `ctl bgp` says so.
/// The same router configured with `min_hold_time: 0` comes up.
#[test]
fn hold_time_zero_is_refused_unless_allowed() {
    let sp = signpost_addr();
    let strict_addr = IpAddr::V4(loopback_v4());
    let open_addr = IpAddr::V4(loopback_v4());
    let strict = Speaker::on(65101, strict_addr).no_listen();
    let lenient = Speaker::on(65102, open_addr).no_listen();
    let s = Signpost::start(
        sp,
        2000,
        &[
            FeedPeer::passive("strict-rtr", &strict, &["ams1"]),
            FeedPeer::passive("lenient-rtr", &lenient, &["fra1"]).min_hold_time(0),
        ],
    );
    let mut r = RawPeer::connect(strict_addr, sp);
    r.send(&open(65101, Ipv4Addr::new(10, 9, 9, 9), 0));
    assert!(matches!(r.recv(), Some(Msg::Open { .. })));
    assert_eq!(r.notification(), (2, 6, vec![]));
    let strict = s.session("strict-rtr");
    assert_ne!(strict["state"], "established", "{strict}");
    assert!(
        strict["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Unacceptable Hold Time")),
        "{strict}"
    );

    let mut r = RawPeer::connect(open_addr, sp);
    r.handshake(65102);
    if !wait_until(CHANGE, || {
        s.session("lenient-rtr")["state"] == "established"
    }) {
        panic!("{}", s.diagnostics());
    }
}
