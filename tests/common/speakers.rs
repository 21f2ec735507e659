//! Real BGP speakers for the live-feed tests: Debian's `gobgpd` (driven with its `gobgp` CLI)
//! and BIRD 2 (`bird`, driven with `birdc`), started on loopback with generated configurations
//! in a private temporary directory, and always stopped: dropping a handle kills and reaps the
//! daemon and removes its directory, also when the test panics.
//!
//! A test describes a site router with a [`Speaker`] (AS, address, listen port, neighbours),
//! starts it as [`GoBgp`] or [`Bird`], and peers it with Signpost (or with another speaker)
//! either way round: a [`Neighbor::active`] entry makes the daemon connect to the neighbour's
//! port (Signpost's `feeds.listen`, for a `mode: passive` peer); a [`Neighbor::passive`] entry
//! makes it wait for the neighbour to connect (Signpost connecting, for a `mode: active` peer).
//!
//! Every address is a distinct 127.x.y.z (Linux routes all of 127/8 to `lo`), so speakers of
//! tests running in parallel never share an address, and each daemon recognises its neighbours
//! by address alone whatever the source port. Waits are bounded and poll.
//!
//! Daemon behaviour that shapes the tests (gobgpd 3.10, BIRD 2.0.12):
//! - gobgpd connects at the earliest 5–10 s after start or after a session drop (its
//!   connect-retry has a floor of 5 s and is randomised up to twice that), and refuses incoming
//!   connections for 5 s after a session drop. BIRD as the connecting side takes about a second.
//!   So BIRD connects to Signpost, and Signpost (with a short `connect_retry_ms`) connects to a
//!   gobgpd that waits.
//! - gobgpd treats an UPDATE whose NEXT_HOP is a loopback address as a withdrawal, so routes
//!   carry a next hop from the documentation ranges ([`Speaker::next_hop4`] and
//!   [`Speaker::next_hop6`]), which nothing routes.
//! - BIRD refuses a single-hop eBGP neighbour on a host-scope address (127/8, ::1) with
//!   "Invalid remote address", so its sessions are configured `multihop`.
//! - Both prepend their own AS to the paths they send over eBGP: a route given the path
//!   `[64601]` reaches Signpost as `[ROUTER_AS, 64601]`.
//! - gobgpd forgets the routes added through its API when it dies; [`GoBgp::restart`] adds
//!   them (and injected MRT files) again, as a router that comes back with its table.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a daemon may take to start and answer its control channel.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A free TCP port on `ip`.
pub fn free_port_on(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("bind {ip}:0: {e}"))
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback address 127.A.B.C that no other call in this process returns and that another
/// test process is unlikely to use: A comes from the process id, B.C from a counter. Never
/// 127.0.x.x, so it stays clear of 127.0.0.1 and of anything else a test binds there.
pub fn loopback_v4() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let a = 1 + (std::process::id() % 254) as u8;
    // 250 addresses per third octet, skipping .0 and the top of the range.
    let b = (n / 250 % 256) as u8;
    let c = 1 + (n % 250) as u8;
    Ipv4Addr::new(127, a, b, c)
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes; the last try comes after
/// the deadline, so a slow machine gets the benefit of the doubt.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A private temporary directory, removed on drop.
struct RigDir(PathBuf);

impl RigDir {
    fn new(tag: &str) -> RigDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("signpost-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        RigDir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for RigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One BGP neighbour of a speaker.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// BIRD's protocol name (gobgpd names neighbours by address).
    pub name: String,
    pub addr: IpAddr,
    pub asn: u32,
    /// The neighbour's port: where this speaker connects when it is active.
    pub port: u16,
    /// Wait for the neighbour to connect instead of connecting.
    pub passive: bool,
    /// This speaker's address on the session; `None`: the speaker's own address.
    pub local: Option<IpAddr>,
    /// BIRD only: keep the routes the neighbour sends (`import all`), for tests that look at
    /// BIRD's table. A site router peering with Signpost has nothing to import. gobgpd always
    /// keeps what it receives.
    pub import: bool,
}

impl Neighbor {
    /// A neighbour this speaker connects to, at `addr` port `port`.
    pub fn active(addr: IpAddr, port: u16, asn: u32) -> Neighbor {
        Neighbor {
            name: String::new(),
            addr,
            asn,
            port,
            passive: false,
            local: None,
            import: false,
        }
    }

    /// A neighbour that connects to this speaker's listen port.
    pub fn passive(addr: IpAddr, asn: u32) -> Neighbor {
        Neighbor {
            passive: true,
            ..Neighbor::active(addr, 179, asn)
        }
    }

    /// Sets BIRD's protocol name (default `n0`, `n1`, … in order).
    pub fn named(mut self, name: &str) -> Neighbor {
        self.name = name.to_string();
        self
    }

    /// Keeps the neighbour's routes in BIRD's table.
    pub fn importing(mut self) -> Neighbor {
        self.import = true;
        self
    }

    /// Uses `local` as this speaker's address on the session.
    pub fn with_local(mut self, local: IpAddr) -> Neighbor {
        self.local = Some(local);
        self
    }
}

/// A site router: what both daemons are configured from.
#[derive(Clone, Debug)]
pub struct Speaker {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// The address it listens on and connects from.
    pub addr: IpAddr,
    /// Its BGP listen port; `None`: it does not listen (active sessions only).
    pub port: Option<u16>,
    pub neighbors: Vec<Neighbor>,
    /// NEXT_HOP of the routes BIRD exports (gobgpd takes the one given to `add_route`).
    pub next_hop4: Ipv4Addr,
    pub next_hop6: std::net::Ipv6Addr,
    /// Timers of every session, in seconds: hold time (keepalive a third of it) and the delay
    /// before reconnecting. gobgpd raises a connect retry below 5 s to 5 s.
    pub hold_time: u32,
    pub connect_retry: u32,
}

impl Speaker {
    /// AS `asn` on a fresh loopback address with a free listen port, short timers.
    pub fn new(asn: u32) -> Speaker {
        let ip = loopback_v4();
        Speaker::on(asn, IpAddr::V4(ip)).router_id(ip)
    }

    /// AS `asn` on `addr` (e.g. `::1`) with a free listen port; the router id is a fresh
    /// loopback IPv4 address.
    pub fn on(asn: u32, addr: IpAddr) -> Speaker {
        Speaker {
            asn,
            router_id: loopback_v4(),
            addr,
            port: Some(free_port_on(addr)),
            neighbors: Vec::new(),
            next_hop4: Ipv4Addr::new(192, 0, 2, 1),
            next_hop6: "2001:db8::1".parse().unwrap(),
            hold_time: 9,
            connect_retry: 1,
        }
    }

    pub fn router_id(mut self, id: Ipv4Addr) -> Speaker {
        self.router_id = id;
        self
    }

    /// Adds a neighbour.
    pub fn neighbor(mut self, n: Neighbor) -> Speaker {
        self.neighbors.push(n);
        self
    }

    /// Does not listen for BGP connections.
    pub fn no_listen(mut self) -> Speaker {
        self.port = None;
        self
    }

    /// The listen port (panics when it does not listen).
    pub fn listen_port(&self) -> u16 {
        self.port.expect("speaker does not listen")
    }

    fn local_for(&self, n: &Neighbor) -> IpAddr {
        n.local.unwrap_or(self.addr)
    }

    fn name_of(&self, i: usize) -> String {
        let n = &self.neighbors[i];
        if n.name.is_empty() {
            format!("n{i}")
        } else {
            n.name.clone()
        }
    }
}

fn is_v6(prefix: &str) -> bool {
    prefix.contains(':')
}

fn family(prefix: &str) -> &'static str {
    if is_v6(prefix) { "ipv6" } else { "ipv4" }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Kills (SIGKILL) and reaps `child` if it is still running.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// gobgpd

/// A running gobgpd with its gRPC API on a loopback port.
pub struct GoBgp {
    pub speaker: Speaker,
    /// The gRPC API address (`gobgp -u HOST -p PORT`).
    pub api_host: Ipv4Addr,
    pub api_port: u16,
    child: Option<Child>,
    /// Routes added through `add_route` and MRT files injected, replayed by `restart`.
    replay: Vec<Replay>,
    dir: RigDir,
}

#[derive(Clone)]
enum Replay {
    Route(String, Vec<u32>, IpAddr),
    Mrt(PathBuf, Vec<String>),
}

/// gobgpd's TOML configuration for `s`.
pub fn gobgpd_toml(s: &Speaker) -> String {
    let mut t = String::new();
    let port: i64 = s.port.map_or(-1, i64::from);
    let mut listen = vec![s.addr];
    for n in &s.neighbors {
        let l = s.local_for(n);
        if !listen.contains(&l) {
            listen.push(l);
        }
    }
    let listen: Vec<String> = listen.iter().map(|a| format!("\"{a}\"")).collect();
    writeln!(t, "[global.config]").unwrap();
    writeln!(t, "  as = {}", s.asn).unwrap();
    writeln!(t, "  router-id = \"{}\"", s.router_id).unwrap();
    writeln!(t, "  port = {port}").unwrap();
    writeln!(t, "  local-address-list = [{}]", listen.join(", ")).unwrap();
    for n in &s.neighbors {
        writeln!(t).unwrap();
        writeln!(t, "[[neighbors]]").unwrap();
        writeln!(t, "  [neighbors.config]").unwrap();
        writeln!(t, "    neighbor-address = \"{}\"", n.addr).unwrap();
        writeln!(t, "    peer-as = {}", n.asn).unwrap();
        writeln!(t, "  [neighbors.transport.config]").unwrap();
        writeln!(t, "    local-address = \"{}\"", s.local_for(n)).unwrap();
        writeln!(t, "    remote-port = {}", n.port).unwrap();
        writeln!(t, "    passive-mode = {}", n.passive).unwrap();
        writeln!(t, "  [neighbors.timers.config]").unwrap();
        writeln!(t, "    connect-retry = {}", s.connect_retry).unwrap();
        writeln!(t, "    hold-time = {}", s.hold_time).unwrap();
        writeln!(t, "    keepalive-interval = {}", (s.hold_time / 3).max(1)).unwrap();
        for afi in ["ipv4-unicast", "ipv6-unicast"] {
            writeln!(t, "  [[neighbors.afi-safis]]").unwrap();
            writeln!(t, "    [neighbors.afi-safis.config]").unwrap();
            writeln!(t, "      afi-safi-name = \"{afi}\"").unwrap();
        }
    }
    t
}

impl GoBgp {
    /// Writes the configuration and starts gobgpd; returns once its API answers.
    pub fn start(speaker: Speaker) -> GoBgp {
        let dir = RigDir::new("gobgpd");
        std::fs::write(dir.path("gobgpd.toml"), gobgpd_toml(&speaker)).unwrap();
        let api_host = loopback_v4();
        let api_port = free_port_on(IpAddr::V4(api_host));
        let mut g = GoBgp {
            speaker,
            api_host,
            api_port,
            child: None,
            replay: Vec::new(),
            dir,
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new("gobgpd")
            .arg("-f")
            .arg(self.dir.path("gobgpd.toml"))
            .arg("-t")
            .arg("toml")
            .arg("-p")
            .arg(format!("--api-hosts={}:{}", self.api_host, self.api_port))
            .arg("--pprof-disable")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("gobgpd: {e} (apt-get install gobgpd)"));
        self.child = Some(child);
        let ready = wait_until(START_TIMEOUT, || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("gobgpd exited with {st}:\n{}", self.log());
            }
            self.cli_raw(&["global"]).0
        });
        assert!(ready, "gobgpd API did not answer:\n{}", self.log());
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path("gobgpd.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path("gobgpd.log")
    }

    /// gobgpd's log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn cli_raw(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("gobgp")
            .arg("-u")
            .arg(self.api_host.to_string())
            .arg("-p")
            .arg(self.api_port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("gobgp: {e} (apt-get install gobgpd)"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Runs `gobgp ARGS` against this daemon; panics on failure. Returns stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> String {
        let (ok, text) = self.cli_raw(args);
        assert!(ok, "gobgp {}: {text}", args.join(" "));
        text
    }

    /// Originates `prefix` with AS path `as_path` (gobgpd prepends its own AS towards eBGP
    /// neighbours) and `next_hop` (not a loopback address: gobgpd neighbours drop those).
    /// Adding a prefix that is there replaces its path.
    pub fn add_route(&mut self, prefix: &str, as_path: &[u32], next_hop: IpAddr) {
        self.add_route_now(prefix, as_path, next_hop);
        self.replay
            .retain(|r| !matches!(r, Replay::Route(p, _, _) if p == prefix));
        self.replay.push(Replay::Route(
            prefix.to_string(),
            as_path.to_vec(),
            next_hop,
        ));
    }

    fn add_route_now(&self, prefix: &str, as_path: &[u32], next_hop: IpAddr) {
        let path: Vec<String> = as_path.iter().map(u32::to_string).collect();
        let path = path.join(",");
        let nh = next_hop.to_string();
        let mut args = vec!["global", "rib", "add", prefix];
        if !as_path.is_empty() {
            args.extend(["aspath", path.as_str()]);
        }
        args.extend(["nexthop", nh.as_str(), "-a", family(prefix)]);
        self.cli(&args);
    }

    /// Withdraws `prefix`.
    pub fn del_route(&mut self, prefix: &str) {
        self.cli(&["global", "rib", "del", prefix, "-a", family(prefix)]);
        self.replay
            .retain(|r| !matches!(r, Replay::Route(p, _, _) if p == prefix));
    }

    /// `gobgp mrt inject global FILE`: loads an uncompressed TABLE_DUMP_V2 RIB dump
    /// (RIB_IPV4_UNICAST and RIB_IPV6_UNICAST records) into the global RIB and waits until
    /// gobgpd holds every route of it. `extra` takes the CLI's options (`--only-best`,
    /// `--no-ipv4`, `--no-ipv6`, `--nexthop 192.0.2.1`, …). Returns what was loaded.
    ///
    /// gobgpd 3.10 rejects TABLE_DUMP v1 ("unsupported type: 12"), skips BGP4MP records
    /// without a word, and fails on the abbreviated MP_REACH_NLRI of RFC 6396 (Quagga, FRR and
    /// RouteViews write it in full). Its CLI prints "failed to parse: …" per bad record yet
    /// exits 0, and it exits without closing its gRPC stream, so the last routes it sent are
    /// lost; the helper therefore sends the file followed by copies of it (re-adding a route
    /// that is there changes nothing) and checks the RIB against the file's own counts.
    pub fn inject_mrt(&mut self, path: &Path, extra: &[&str]) -> MrtLoad {
        let load = self.inject_now(path, extra);
        self.replay.push(Replay::Mrt(
            path.to_path_buf(),
            extra.iter().map(|s| s.to_string()).collect(),
        ));
        load
    }

    fn inject_now(&self, path: &Path, extra: &[&str]) -> MrtLoad {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let has = |o: &str| extra.contains(&o);
        let mut want = count_rib_dump(&bytes, has("--only-best"));
        if has("--no-ipv4") {
            want.v4 = (0, 0);
        }
        if has("--no-ipv6") {
            want.v6 = (0, 0);
        }
        let before4 = self.rib_summary("ipv4");
        let before6 = self.rib_summary("ipv6");
        // 1 MiB of padding (its first whole records again, as often as needed) absorbs the
        // lost tail, some 100 KB here. A truncated last record is left out: it would swallow
        // the start of the padding.
        const PAD: usize = 1 << 20;
        let whole = &bytes[..want.complete_len];
        let mut file = whole.to_vec();
        while !whole.is_empty() && file.len() < whole.len() + PAD {
            let need = whole.len() + PAD - file.len();
            file.extend_from_slice(&whole[..record_boundary(whole, need)]);
        }
        let padded = self.dir.path("inject.mrt");
        std::fs::write(&padded, file).unwrap();
        let t = Instant::now();
        let mut args = vec!["mrt", "inject", "global"];
        args.extend(extra);
        args.push(padded.to_str().unwrap());
        let (ok, out) = self.cli_raw(&args);
        let _ = std::fs::remove_file(&padded);
        assert!(ok, "gobgp mrt inject {}: {out}", path.display());
        // Every prefix, and the path count settled (gobgpd merges entries of peers that share
        // a BGP identifier, so the file's path count is an upper bound).
        let mut last = (0, 0);
        let full = || {
            let (d4, p4) = self.rib_summary("ipv4");
            let (d6, p6) = self.rib_summary("ipv6");
            let settled = last == (p4, p6);
            last = (p4, p6);
            d4 >= want.v4.0 && d6 >= want.v6.0 && settled
        };
        // Counts can be checked only against an empty RIB.
        let fresh = before4.0 == 0 && before6.0 == 0;
        if fresh && !wait_until(Duration::from_secs(60), full) {
            panic!(
                "gobgpd holds {:?} {:?} of {want:?} from {}:\n{}",
                self.rib_summary("ipv4"),
                self.rib_summary("ipv6"),
                path.display(),
                out.lines().take(5).collect::<Vec<_>>().join("\n")
            );
        }
        MrtLoad {
            v4: self.rib_summary("ipv4"),
            v6: self.rib_summary("ipv6"),
            complete_len: want.complete_len,
            elapsed: t.elapsed(),
            errors: out.lines().filter(|l| l.contains("failed")).count(),
        }
    }

    /// (destinations, paths) in the global RIB of `afi` ("ipv4" or "ipv6").
    pub fn rib_summary(&self, afi: &str) -> (u64, u64) {
        let out = self.cli(&["global", "rib", "summary", "-a", afi]);
        // "Table ipv4-unicast\nDestination: 9052, Path: 269394"
        let num = |key: &str| -> u64 {
            out.split(key)
                .nth(1)
                .and_then(|r| r.trim_start().split([',', '\n']).next())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("rib summary: {out}"))
        };
        (num("Destination:"), num("Path:"))
    }

    /// The global RIB of `afi`: prefix → AS path of each path, best first.
    pub fn rib(&self, afi: &str) -> HashMap<String, Vec<Vec<u32>>> {
        let out = self.cli(&["global", "rib", "-a", afi, "-j"]);
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("gobgp rib JSON: {e}: {out}"));
        let mut rib = HashMap::new();
        for (prefix, paths) in v.as_object().into_iter().flatten() {
            let mut list: Vec<(bool, Vec<u32>)> = paths
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p["best"].as_bool().unwrap_or(false), json_as_path(p)))
                .collect();
            list.sort_by_key(|(best, _)| !*best);
            rib.insert(prefix.clone(), list.into_iter().map(|(_, p)| p).collect());
        }
        rib
    }

    /// The AS path of the best path to `prefix`, if gobgpd has one.
    pub fn as_path(&self, prefix: &str) -> Option<Vec<u32>> {
        self.rib(family(prefix))
            .remove(prefix)
            .and_then(|p| p.into_iter().next())
    }

    /// The session state with neighbour `addr`: "idle", "connect", "active", "opensent",
    /// "openconfirm" or "established" ("unknown" when gobgpd does not report one).
    pub fn neighbor_state(&self, addr: IpAddr) -> String {
        let out = self.cli(&["neighbor", &addr.to_string(), "-j"]);
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("gobgp neighbor JSON: {e}: {out}"));
        let state = &v["state"]["session_state"];
        let name = match state.as_u64() {
            Some(1) => "idle",
            Some(2) => "connect",
            Some(3) => "active",
            Some(4) => "opensent",
            Some(5) => "openconfirm",
            Some(6) => "established",
            // Older JSON spells the state out ("ESTABLISHED", "established").
            _ => match state.as_str() {
                Some(s) => return s.to_lowercase().replace("session_state_", ""),
                None => "unknown",
            },
        };
        name.to_string()
    }

    /// Waits until the session with `addr` is established; panics with the state and the log
    /// after `timeout`.
    pub fn wait_established(&self, addr: IpAddr, timeout: Duration) {
        if !wait_until(timeout, || self.neighbor_state(addr) == "established") {
            panic!(
                "gobgpd: session with {addr} not established after {timeout:?} (state {}):\n{}",
                self.neighbor_state(addr),
                tail(&self.log_path(), 20)
            );
        }
    }

    /// Waits until the session with `addr` is not established.
    pub fn wait_down(&self, addr: IpAddr, timeout: Duration) {
        if !wait_until(timeout, || self.neighbor_state(addr) != "established") {
            panic!("gobgpd: session with {addr} still established after {timeout:?}");
        }
    }

    /// SIGKILL, as a crash: no NOTIFICATION, the kernel resets the TCP sessions.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills gobgpd if it runs, starts it again with the same configuration and ports, and
    /// adds the routes and MRT files it had again.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        for r in self.replay.clone() {
            match r {
                Replay::Route(p, path, nh) => self.add_route_now(&p, &path, nh),
                Replay::Mrt(f, extra) => {
                    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                    self.inject_now(&f, &extra);
                }
            }
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for GoBgp {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// What an MRT file holds and how long gobgpd took to load it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MrtLoad {
    /// (prefixes, paths) of each family in gobgpd's RIB afterwards.
    pub v4: (u64, u64),
    pub v6: (u64, u64),
    /// Bytes of the file up to its last complete record.
    pub complete_len: usize,
    pub elapsed: Duration,
    /// Lines of the CLI's output reporting a record it could not parse.
    pub errors: usize,
}

/// The end of the first MRT record of `b` that ends at or after byte `at`, or `b.len()`.
fn record_boundary(b: &[u8], at: usize) -> usize {
    let mut i = 0;
    while i + 12 <= b.len() && i < at {
        i += 12 + u32::from_be_bytes([b[i + 8], b[i + 9], b[i + 10], b[i + 11]]) as usize;
    }
    i.min(b.len())
}

/// (prefixes, paths) per family of the complete RIB_IPV4_UNICAST and RIB_IPV6_UNICAST records
/// of a TABLE_DUMP_V2 dump; with `only_best`, one path per prefix.
fn count_rib_dump(b: &[u8], only_best: bool) -> MrtLoad {
    let mut load = MrtLoad::default();
    let mut i = 0;
    while i + 12 <= b.len() {
        let typ = u16::from_be_bytes([b[i + 4], b[i + 5]]);
        let sub = u16::from_be_bytes([b[i + 6], b[i + 7]]);
        let len = u32::from_be_bytes([b[i + 8], b[i + 9], b[i + 10], b[i + 11]]) as usize;
        if i + 12 + len > b.len() {
            break;
        }
        let body = &b[i + 12..i + 12 + len];
        i += 12 + len;
        load.complete_len = i;
        if typ != 13 || !(sub == 2 || sub == 4) || body.len() < 5 {
            continue;
        }
        let at = 5 + (body[4] as usize).div_ceil(8);
        let Some(n) = body.get(at..at + 2) else {
            continue;
        };
        let n = u16::from_be_bytes([n[0], n[1]]) as u64;
        let fam = if sub == 2 { &mut load.v4 } else { &mut load.v6 };
        fam.0 += 1;
        fam.1 += if only_best { n.min(1) } else { n };
    }
    load
}

fn json_as_path(path: &serde_json::Value) -> Vec<u32> {
    let mut asns = Vec::new();
    for attr in path["attrs"].as_array().into_iter().flatten() {
        if attr["type"].as_u64() == Some(2) {
            for seg in attr["as_paths"].as_array().into_iter().flatten() {
                for a in seg["asns"].as_array().into_iter().flatten() {
                    asns.push(a.as_u64().unwrap() as u32);
                }
            }
        }
    }
    asns
}

// ---------------------------------------------------------------------------------------------
// BIRD

/// A running BIRD 2 with its control socket in its temporary directory.
pub struct Bird {
    pub speaker: Speaker,
    routes: Vec<(String, Vec<u32>)>,
    child: Option<Child>,
    dir: RigDir,
}

/// bird.conf for `s` exporting `routes` (prefix, AS path as the neighbour should see it after
/// BIRD's own AS), logging to `log`.
pub fn bird_conf(s: &Speaker, routes: &[(String, Vec<u32>)], log: &Path) -> String {
    let mut t = String::new();
    writeln!(t, "router id {};", s.router_id).unwrap();
    writeln!(t, "log \"{}\" all;", log.display()).unwrap();
    writeln!(t, "protocol device {{ }}").unwrap();
    writeln!(t).unwrap();
    // The routes to announce: static routes that go nowhere, each with its AS path (prepend
    // pushes to the front, so the path is prepended last AS first).
    for (v6, name) in [(false, "routes4"), (true, "routes6")] {
        writeln!(t, "protocol static {name} {{").unwrap();
        writeln!(t, "  {};", if v6 { "ipv6" } else { "ipv4" }).unwrap();
        for (prefix, path) in routes.iter().filter(|(p, _)| is_v6(p) == v6) {
            let mut attrs = String::new();
            for asn in path.iter().rev() {
                write!(attrs, " bgp_path.prepend({asn});").unwrap();
            }
            if attrs.is_empty() {
                writeln!(t, "  route {prefix} blackhole;").unwrap();
            } else {
                writeln!(t, "  route {prefix} blackhole {{{attrs} }};").unwrap();
            }
        }
        writeln!(t, "}}").unwrap();
    }
    for (i, n) in s.neighbors.iter().enumerate() {
        let local = s.local_for(n);
        writeln!(t).unwrap();
        writeln!(t, "protocol bgp {} {{", s.name_of(i)).unwrap();
        match s.port {
            Some(p) => writeln!(t, "  local {local} port {p} as {};", s.asn).unwrap(),
            None => writeln!(t, "  local {local} as {};", s.asn).unwrap(),
        }
        writeln!(t, "  neighbor {} port {} as {};", n.addr, n.port, n.asn).unwrap();
        if s.port.is_some() {
            // Listen on the local address only, not on the wildcard address.
            writeln!(t, "  strict bind on;").unwrap();
        }
        if n.passive {
            writeln!(t, "  passive on;").unwrap();
        }
        // Loopback addresses are host scope: BIRD accepts them only for a multihop session.
        writeln!(t, "  multihop;").unwrap();
        writeln!(t, "  hold time {};", s.hold_time).unwrap();
        writeln!(t, "  keepalive time {};", (s.hold_time / 3).max(1)).unwrap();
        writeln!(t, "  connect delay time 1;").unwrap();
        writeln!(t, "  connect retry time {};", s.connect_retry).unwrap();
        writeln!(t, "  error wait time 1, {};", s.connect_retry.max(2)).unwrap();
        let import = if n.import { "all" } else { "none" };
        writeln!(
            t,
            "  ipv4 {{ import {import}; export all; next hop address {}; }};",
            s.next_hop4
        )
        .unwrap();
        writeln!(
            t,
            "  ipv6 {{ import {import}; export all; next hop address {}; }};",
            s.next_hop6
        )
        .unwrap();
        writeln!(t, "}}").unwrap();
    }
    t
}

impl Bird {
    /// Writes bird.conf and starts `bird -f`; returns once `birdc` answers.
    pub fn start(speaker: Speaker, routes: &[(&str, &[u32])]) -> Bird {
        let dir = RigDir::new("bird");
        let mut b = Bird {
            speaker,
            routes: routes
                .iter()
                .map(|(p, a)| (p.to_string(), a.to_vec()))
                .collect(),
            child: None,
            dir,
        };
        b.write_conf();
        b.spawn();
        b
    }

    fn write_conf(&self) {
        let conf = bird_conf(&self.speaker, &self.routes, &self.log_path());
        let tmp = self.dir.path(".bird.conf.tmp");
        std::fs::write(&tmp, conf).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path("bird.out"))
            .unwrap();
        let child = Command::new("bird")
            .arg("-f")
            .arg("-c")
            .arg(self.config_path())
            .arg("-s")
            .arg(self.socket_path())
            .arg("-P")
            .arg(self.dir.path("bird.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("bird: {e} (apt-get install bird2)"));
        self.child = Some(child);
        let ready = wait_until(START_TIMEOUT, || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "bird exited with {st}:\n{}\n{}",
                    std::fs::read_to_string(self.dir.path("bird.out")).unwrap_or_default(),
                    self.log()
                );
            }
            self.birdc_raw(&["show", "status"]).0
        });
        assert!(ready, "birdc did not answer:\n{}", self.log());
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path("bird.conf")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path("bird.ctl")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path("bird.log")
    }

    /// BIRD's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn birdc_raw(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.socket_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("birdc: {e} (apt-get install bird2)"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Runs `birdc ARGS`; panics when birdc fails. Returns its output.
    pub fn birdc(&self, args: &[&str]) -> String {
        let (ok, text) = self.birdc_raw(args);
        assert!(ok, "birdc {}: {text}", args.join(" "));
        text
    }

    /// Replaces the announced routes (prefix, AS path as seen by the neighbour after BIRD's own
    /// AS): rewrites bird.conf and runs `birdc configure`, which announces and withdraws the
    /// difference without resetting the sessions.
    pub fn set_routes(&mut self, routes: &[(&str, &[u32])]) {
        self.routes = routes
            .iter()
            .map(|(p, a)| (p.to_string(), a.to_vec()))
            .collect();
        self.write_conf();
        let out = self.birdc(&["configure"]);
        assert!(
            out.contains("Reconfigured") || out.contains("Reconfiguration in progress"),
            "birdc configure: {out}"
        );
    }

    /// BIRD's protocol name of neighbour `addr`.
    pub fn protocol_of(&self, addr: IpAddr) -> String {
        let i = self
            .speaker
            .neighbors
            .iter()
            .position(|n| n.addr == addr)
            .unwrap_or_else(|| panic!("bird has no neighbour {addr}"));
        self.speaker.name_of(i)
    }

    /// The BGP state of protocol `name` ("Idle", "Connect", "Active", "OpenSent",
    /// "OpenConfirm", "Established", "Close", "Down"), from `show protocols all`.
    pub fn protocol_state(&self, name: &str) -> String {
        let out = self.birdc(&["show", "protocols", "all", name]);
        out.lines()
            .find_map(|l| l.trim().strip_prefix("BGP state:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "Down".to_string())
    }

    /// The last error of protocol `name` ("Last error: …"), if any.
    pub fn last_error(&self, name: &str) -> Option<String> {
        let out = self.birdc(&["show", "protocols", "all", name]);
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Last error:"))
            .map(|s| s.trim().to_string())
    }

    /// Waits until protocol `name` is Established; panics with the state and log after
    /// `timeout`.
    pub fn wait_established(&self, name: &str, timeout: Duration) {
        if !wait_until(timeout, || self.protocol_state(name) == "Established") {
            panic!(
                "bird: {name} not established after {timeout:?}:\n{}\n{}",
                self.birdc(&["show", "protocols", "all", name]),
                tail(&self.log_path(), 20)
            );
        }
    }

    /// Waits until protocol `name` is not Established.
    pub fn wait_down(&self, name: &str, timeout: Duration) {
        if !wait_until(timeout, || self.protocol_state(name) != "Established") {
            panic!("bird: {name} still established after {timeout:?}");
        }
    }

    /// The AS path of BIRD's best route to `prefix` (its own routes included), if it has one.
    pub fn as_path(&self, prefix: &str) -> Option<Vec<u32>> {
        let (ok, out) = self.birdc_raw(&["show", "route", prefix, "all"]);
        if !ok || !out.contains(&format!("{prefix} ")) {
            return None;
        }
        let path = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("BGP.as_path:"))
            .unwrap_or("");
        Some(
            path.split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect(),
        )
    }

    /// How many routes BIRD has in all its tables (`show route count`), its own included.
    pub fn route_count(&self) -> u64 {
        // "2500 of 2500 routes for 2500 networks in table master4"
        self.birdc(&["show", "route", "count"])
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills BIRD if it runs and starts it again with the same configuration and routes.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.socket_path());
        self.spawn();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
