//! Anycast with FRR as the router: FRR's `bgpd` on loopback (without zebra: `-Z`, listening
//! with `-l ADDRESS -p PORT`, its vty socket in the test's directory for `vtysh`), configured
//! as `docs/anycast.md` gives it (only the addresses and the port differ, and a router id,
//! which zebra would otherwise supply), peered with a real `signpost serve` that has an
//! `anycast` section. FRR's table (`show bgp ipv4 unicast ... json`) says what the router sees:
//! the service prefix from Signpost's session, AS path `65000`, the configured community and
//! next hop, chosen as best; gone after `ctl anycast withdraw`; back after
//! `ctl anycast announce` and the hold-down (not before). And the feed the other way: a route
//! of FRR's table (a `network` statement standing in for the router's table) reaches
//! Signpost through the docs' outbound policy.
//!
//! Two things this found: FRR refuses a 127/8 next hop (martian: "Invalid NEXT_HOP
//! Attribute"), so the announcement sets `next_hop` here, where the session's own address is
//! a loopback one; and FRR exports nothing over eBGP without an outbound policy (its default
//! `bgp ebgp-requires-policy`), so the docs' configuration now has one (`route-map FEED`).
//!
//! Without FRR (`/usr/lib/frr/bgpd`, Debian package `frr`) the test says so and passes without
//! testing. It stops bgpd when it ends (also when it fails).

mod common;
use common::speakers::*;
use common::*;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// FRR's bgpd, where Debian installs it (not on PATH).
const BGPD: &str = "/usr/lib/frr/bgpd";
/// The service prefix.
const V4: &str = "192.0.2.53/32";
/// Signpost's AS and the router's, as in the docs.
const SIGNPOST_ASN: u32 = 65000;
const ROUTER_ASN: u32 = 64511;
/// The next hop announced: FRR refuses a loopback (127/8) next hop as martian ("UPDATE Message
/// Error / Invalid NEXT_HOP Attribute"), and the session's own address is one here.
const NEXT_HOP: &str = "198.18.0.11";
/// A route of the router's table, exported to Signpost as its feed.
const FEED_ROUTE: &str = "198.51.100.0/24";
/// The hold-down before announcing again.
const HOLD_DOWN: Duration = Duration::from_millis(1500);

/// bgpd, stopped on drop.
struct Frr {
    child: Child,
    dir: TempDir,
}

impl Frr {
    /// Starts bgpd on `addr:port` with the docs' configuration, `replicas` as its neighbours.
    fn start(addr: Ipv4Addr, port: u16, replicas: [Ipv4Addr; 2]) -> Frr {
        let dir = TempDir::new("frr");
        // docs/anycast.md, "The router side", FRR; the addresses are the test's.
        let conf = format!(
            "router bgp {ROUTER_ASN}\n\
             \x20bgp router-id {addr}\n\
             \x20no bgp network import-check\n\
             \x20neighbor REPLICAS peer-group\n\
             \x20neighbor REPLICAS remote-as {SIGNPOST_ASN}\n\
             \x20neighbor REPLICAS timers 1 3\n\
             \x20neighbor {} peer-group REPLICAS\n\
             \x20neighbor {} peer-group REPLICAS\n\
             \x20address-family ipv4 unicast\n\
             \x20 network {FEED_ROUTE}\n\
             \x20 maximum-paths 16\n\
             \x20 neighbor REPLICAS prefix-list ANYCAST in\n\
             \x20 neighbor REPLICAS route-map FEED out\n\
             \x20exit-address-family\n\
             ip prefix-list ANYCAST seq 10 permit {V4}\n\
             route-map FEED deny 5\n\
             \x20match ip address prefix-list ANYCAST\n\
             route-map FEED permit 10\n",
            replicas[0], replicas[1]
        );
        let path = dir.write("bgpd.conf", &conf);
        let child = Command::new(BGPD)
            .args(["-Z", "-S", "-P", "0", "-p", &port.to_string(), "-l"])
            .arg(addr.to_string())
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.path("bgpd.pid"))
            .arg("--vty_socket")
            .arg(dir.path(""))
            .arg("--log")
            .arg(format!("file:{}", dir.path("bgpd.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bgpd");
        let frr = Frr { child, dir };
        assert!(
            wait_until(Duration::from_secs(10), || frr
                .dir
                .path("bgpd.vty")
                .exists()),
            "bgpd did not start: {}",
            frr.log()
        );
        frr
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("bgpd.log")).unwrap_or_default()
    }

    /// `vtysh -c COMMAND` against this bgpd, as JSON.
    fn json(&self, command: &str) -> serde_json::Value {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(self.dir.path(""))
            .args(["-d", "bgpd", "-c", command])
            .stdin(Stdio::null())
            .output()
            .expect("vtysh");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "vtysh -c {command:?}: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The paths FRR has for `prefix` (empty when it has none).
    fn paths(&self, prefix: &str) -> Vec<serde_json::Value> {
        let v = self.json(&format!("show bgp ipv4 unicast {prefix} json"));
        v["paths"].as_array().cloned().unwrap_or_default()
    }

    /// Whether `prefix` is in FRR's table (`show bgp ipv4 unicast json`) with a valid path
    /// chosen as best (FRR runs its best-path selection a moment after the UPDATE).
    fn has(&self, prefix: &str) -> bool {
        let v = self.json("show bgp ipv4 unicast json");
        v["routes"][prefix].as_array().is_some_and(|paths| {
            paths
                .iter()
                .any(|p| p["valid"] == true && p["bestpath"] == true)
        })
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signpost's configuration: one zone, the live-feed tests' data, an active feed session to
/// FRR from `addr`, the docs' anycast section (IPv4 only: the docs' FRR configuration has the
/// IPv4 family only).
fn config(addr: Ipv4Addr, frr: Ipv4Addr, frr_port: u16) -> String {
    format!(
        r#"{ANYCAST_ZONE}state_file: state.json
feeds:
  asn: {SIGNPOST_ASN}
  router_id: {addr}
  connect_retry_ms: 200
  peers:
    - {{ name: rtr1, address: {frr}, asn: {ROUTER_ASN}, nodes: [fra1], hold_time: 3, mode: active, port: {frr_port}, local_address: {addr}, families: [ipv4] }}
anycast:
  peers: [rtr1]
  prefixes:
    - {{ prefix: {V4}, communities: ["64511:53"], next_hop: {NEXT_HOP} }}
  hold_down_ms: {hold}
  drain_ms: 500
  check_interval_ms: 200
"#,
        hold = HOLD_DOWN.as_millis()
    )
}

/// `ctl anycast [ACTION]`: the state.
fn anycast(s: &Server, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["anycast"];
    a.extend_from_slice(args);
    let (ok, v) = s.ctl(&a);
    assert!(ok, "ctl anycast {args:?}: {v}\n{}", s.stderr());
    v["anycast"].clone()
}

#[test]
fn frr_sees_the_anycast_route_come_and_go() {
    if !Path::new(BGPD).exists() {
        eprintln!("SKIPPED: no {BGPD} (Debian package frr)");
        return;
    }
    let (frr_addr, sp_addr, other) = (loopback_v4(), loopback_v4(), loopback_v4());
    let port = free_port_on(IpAddr::V4(frr_addr));
    let frr = Frr::start(frr_addr, port, [sp_addr, other]);
    let dir = anycast_dir("anycast-frr");
    let path = dir.write("bgp-live/signpost.yaml", &config(sp_addr, frr_addr, port));
    let s = Server::with_control(&path, &dir);
    let route_is = |want: bool, timeout: Duration| -> Duration {
        let t = Instant::now();
        assert!(
            wait_until(timeout, || frr.has(V4) == want),
            "{V4}: want present={want} after {timeout:?}\nFRR: {}\nsummary: {}\nctl anycast: \
             {}\nbgpd log: {}\n{}",
            frr.json("show bgp ipv4 unicast json"),
            frr.json("show bgp summary json"),
            anycast(&s, &[]),
            frr.log(),
            s.stderr()
        );
        t.elapsed()
    };

    let up = route_is(true, Duration::from_secs(20));
    let paths = frr.paths(V4);
    eprintln!("FRR has {V4} {up:?} after the start: {}", paths[0]);
    assert_eq!(paths.len(), 1, "{paths:?}");
    let p = &paths[0];
    assert_eq!(p["aspath"]["string"], SIGNPOST_ASN.to_string(), "{p}");
    assert_eq!(p["community"]["string"], "64511:53", "{p}");
    assert_eq!(p["nexthops"][0]["ip"], NEXT_HOP, "{p}");
    assert_eq!(p["peer"]["peerId"], sp_addr.to_string(), "{p}");
    assert_eq!(p["valid"], true, "{p}");
    assert_eq!(p["bestpath"]["overall"], true, "{p}");
    // The session is the peer-group's, with the docs' timers (FRR's side: hold time 3 s).
    let n = frr.json(&format!("show bgp neighbors {sp_addr} json"));
    assert_eq!(n[sp_addr.to_string()]["bgpState"], "Established", "{n}");
    assert_eq!(n[sp_addr.to_string()]["peerGroup"], "REPLICAS", "{n}");

    // The other direction: FRR's table reaches Signpost as its feed (with FRR's default
    // `bgp ebgp-requires-policy`, only through an outbound policy: the docs' `FEED`).
    let feed = || {
        let (ok, v) = s.ctl(&["bgp"]);
        assert!(ok, "ctl bgp: {v}");
        v["sessions"][0]["ipv4_prefixes"].clone()
    };
    assert!(
        wait_until(Duration::from_secs(10), || feed() == 1),
        "FRR's table not received: {}\n{}",
        feed(),
        frr.json("show bgp summary json")
    );
    let st = anycast(&s, &["withdraw"]);
    assert_eq!(st["reason"], "operator", "{st}");
    let gone = route_is(false, Duration::from_secs(5));
    eprintln!("`ctl anycast withdraw`: gone from FRR after {gone:?}");
    assert!(gone < Duration::from_secs(2), "gone after {gone:?}");

    let t = Instant::now();
    anycast(&s, &["announce"]);
    std::thread::sleep(HOLD_DOWN / 2);
    assert!(!frr.has(V4), "back before the hold-down");
    route_is(true, HOLD_DOWN + Duration::from_secs(5));
    let back = t.elapsed();
    eprintln!("`ctl anycast announce`: back in FRR after {back:?} (hold-down {HOLD_DOWN:?})");
    assert!(back >= HOLD_DOWN, "back after {back:?}");
    assert!(
        back < HOLD_DOWN + Duration::from_secs(2),
        "back after {back:?}"
    );
    assert_eq!(frr.paths(V4)[0]["community"]["string"], "64511:53");
}
