//! Anycast in a namespace rig: a router network namespace running BIRD 2 with ECMP into the
//! kernel, three replica namespaces each running `signpost` with 192.0.2.53 on its loopback
//! and a BGP session to the router, and a client namespace asking 192.0.2.53 through the
//! router (`dig`, one query at a time, so the load is bounded). Each replica answers
//! `id.server` with its own name, so the client sees which one it reached.
//!
//! Measured (printed; `cargo test --test anycast_rig -- --nocapture`) and asserted: a replica
//! killed with SIGKILL loses its queries to another within 1 s of its session closing (plus
//! the client's polling); a replica stopped with SIGSTOP within the hold time (3 s) plus that
//! margin; a replica replaced with `ctl replace` hands its session over and keeps every query
//! (none moves to another replica).
//!
//! A second test, on a rig of its own, covers what a replica decides by itself, where the
//! client's view is what matters (and not only a router's table, as in `tests/anycast.rs`):
//! a plain restart (SIGTERM, exit, the same replica started again) loses no query; the UDP
//! worker threads stopped alone with ptrace (the BGP session and the self-check go on, which
//! SIGSTOP would not let them) withdraw through the self-check, and the replica comes back
//! after the hold-down once they are released; a replica restarted with a `max_data_age_s`
//! (whole seconds, at least 1: 5 here) withdraws by itself once its data are that old and
//! comes back after `ctl reload` and the hold-down. The client is watched by a thread of its
//! own throughout, one query at a time. Which replica the client reaches is fixed by the
//! router's hash, not by the test, so the data-age limit is given to that replica by
//! restarting it with it.
//!
//! The addresses are from 198.18.0.0/15. The tests need root and `ip netns`; where a
//! namespace cannot be made they say so and pass without testing. They always delete their
//! namespaces and stop their daemons (also when they fail).

mod common;
use common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The service address.
const ANYCAST: &str = "192.0.2.53";
/// The router's and the replicas' AS.
const ROUTER_AS: u32 = 64511;
const REPLICA_AS: u32 = 65000;
/// The BGP hold time on every session, seconds.
const HOLD: u64 = 3;

/// Runs `ip ARGS`; panics with its output when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip netns exec NS ARGS`; returns stdout.
fn exec(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespaces and daemons of the rig, deleted and stopped on drop.
struct Rig {
    tag: String,
    namespaces: Vec<String>,
    bird: Option<Child>,
    replicas: Vec<Option<Server>>,
    /// Processes started by a `ctl replace`, not children of the test.
    adopted: Vec<u32>,
    dir: TempDir,
}

impl Rig {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// Makes a namespace with its loopback up; `None` when namespaces cannot be made here.
    fn add_ns(&mut self, name: &str) -> Option<String> {
        let ns = self.ns(name);
        let ok = Command::new("ip")
            .args(["netns", "add", &ns])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// A veth pair between the router and `ns`: the router's end `ROUTER_ADDR/24`, the other
    /// `ADDR/24`, with a default route through the router.
    fn link(&self, ns: &str, i: u32, subnet: u32) {
        let rtr = self.ns("rtr");
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        ip(&[
            "link", "add", &a, "netns", &rtr, "type", "veth", "peer", "name", &b, "netns", ns,
        ]);
        ip(&[
            "-n",
            &rtr,
            "addr",
            "add",
            &format!("198.18.{subnet}.1/24"),
            "dev",
            &a,
        ]);
        ip(&["-n", &rtr, "link", "set", &a, "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("198.18.{subnet}.2/24"),
            "dev",
            &b,
        ]);
        ip(&["-n", ns, "link", "set", &b, "up"]);
        ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &format!("198.18.{subnet}.1"),
        ]);
    }

    /// BIRD in the router namespace: a session to each replica importing only the service
    /// prefix, and the best routes merged into one multipath kernel route.
    fn start_bird(&mut self, replicas: u32) {
        let mut conf = format!(
            "router id 198.18.0.1;\nlog \"{}\" all;\nprotocol device {{ }}\n\
             protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\n",
            self.dir.path("bird.log").display()
        );
        for i in 1..=replicas {
            conf.push_str(&format!(
                "protocol bgp r{i} {{\n  local 198.18.{i}.1 as {ROUTER_AS};\n  \
                 neighbor 198.18.{i}.2 as {REPLICA_AS};\n  hold time {HOLD};\n  \
                 keepalive time 1;\n  connect delay time 1;\n  connect retry time 1;\n  \
                 error wait time 1, 2;\n  ipv4 {{ import filter {{ if net = {ANYCAST}/32 then \
                 accept; reject; }}; export none; }};\n}}\n"
            ));
        }
        let path = self.dir.write("bird.conf", &conf);
        let sock = self.dir.path("bird.ctl");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("rtr"), "bird", "-f", "-c"])
            .arg(&path)
            .arg("-s")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bird");
        self.bird = Some(child);
    }

    /// Starts replica `i` (named `r{i}`) in its namespace.
    fn start_replica(&mut self, i: u32) {
        self.start_replica_with(i, "");
    }

    /// Starts replica `i` with `extra` lines added to its `anycast` section.
    fn start_replica_with(&mut self, i: u32, extra: &str) {
        let ns = self.ns(&format!("r{i}"));
        let config = format!(
            r#"workers: 1
identity: {{ server_id: r{i} }}
{ANYCAST_ZONE}feeds:
  asn: {REPLICA_AS}
  router_id: 198.18.{i}.2
  listen: "198.18.{i}.2:179"
  peers:
    - {{ name: rtr, address: 198.18.{i}.1, asn: {ROUTER_AS}, nodes: [fra1], hold_time: {HOLD}, families: [ipv4] }}
anycast:
  peers: [rtr]
  prefixes: [{{ prefix: {ANYCAST}/32 }}]
  hold_down_ms: 2000
  drain_ms: 1000
  check_interval_ms: 200
  on_load_failure: withdraw
{extra}"#
        );
        let path = self.dir.write(&format!("bgp-live/r{i}.yaml"), &config);
        let sock = self.dir.path(&format!("r{i}.sock"));
        let server = Server::start_wrapped(
            &["ip", "netns", "exec", &ns],
            &[
                "--config",
                path.to_str().unwrap(),
                "--control",
                sock.to_str().unwrap(),
            ],
            &format!("{ANYCAST}:53"),
            &[],
        );
        self.replicas[i as usize - 1] = Some(server);
    }

    /// Replica `name`'s server.
    fn replica(&self, name: &str) -> &Server {
        let i: usize = name[1..].parse().unwrap();
        self.replicas[i - 1].as_ref().unwrap()
    }

    /// Queries for `span`: the replicas that answered, in order of first answer, and the
    /// queries without an answer.
    fn watch(&self, span: Duration) -> (Vec<String>, u32) {
        let t = Instant::now();
        let (mut seen, mut lost) = (Vec::new(), 0);
        while t.elapsed() < span {
            match self.who() {
                Some(w) if !seen.contains(&w) => seen.push(w),
                Some(_) => {}
                None => lost += 1,
            }
        }
        (seen, lost)
    }

    /// The next hops of the router's kernel route to the service address.
    fn next_hops(&self) -> usize {
        exec(
            &self.ns("rtr"),
            &["ip", "route", "show", &format!("{ANYCAST}/32")],
        )
        .matches("via ")
        .count()
    }

    /// Which replica the client reaches now (`id.server`), if any answers within 1 s.
    fn who(&self) -> Option<String> {
        who(&self.ns("cli"))
    }

    /// Polls [`Rig::who`] until another replica than `from` answers; returns the time and the
    /// queries that got no answer meanwhile.
    fn wait_moved(&self, from: &str, timeout: Duration) -> (Duration, u32) {
        let t = Instant::now();
        let mut lost = 0;
        while t.elapsed() < timeout {
            match self.who() {
                Some(w) if w != from => return (t.elapsed(), lost),
                Some(_) => {}
                None => lost += 1,
            }
        }
        panic!(
            "queries did not move from {from} in {timeout:?}; routes: {}",
            exec(&self.ns("rtr"), &["ip", "route"])
        );
    }

    /// The pid of replica `name`.
    fn pid(&self, name: &str) -> String {
        let i: usize = name[1..].parse().unwrap();
        self.replicas[i - 1]
            .as_ref()
            .unwrap()
            .child
            .id()
            .to_string()
    }
}

/// Which replica a client in namespace `cli` reaches now (`id.server` CH TXT at the service
/// address), if any answers within 1 s.
fn who(cli: &str) -> Option<String> {
    let out = exec(
        cli,
        &[
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            "-p",
            "53",
            &format!("@{ANYCAST}"),
            "id.server",
            "TXT",
            "CH",
        ],
    );
    let name = out.trim().trim_matches('"').to_string();
    (!name.is_empty() && !name.contains(';')).then_some(name)
}

impl Drop for Rig {
    fn drop(&mut self) {
        for r in self.replicas.iter_mut().flatten() {
            let _ = Command::new("kill")
                .args(["-CONT", &r.child.id().to_string()])
                .status();
        }
        self.replicas.clear();
        for pid in &self.adopted {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if let Some(mut b) = self.bird.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The rig, up: the router, three replicas announcing (a 3-way ECMP route at the router), the
/// client. `None` when network namespaces cannot be made here. `name` tells the rigs of
/// parallel tests apart.
fn rig_up(name: &str) -> Option<Rig> {
    let dir = anycast_dir(&format!("anycast-rig-{name}"));
    let mut rig = Rig {
        tag: format!("sp{}{name}", std::process::id() % 100_000),
        namespaces: Vec::new(),
        bird: None,
        replicas: vec![None, None, None],
        adopted: Vec::new(),
        dir,
    };
    let Some(rtr) = rig.add_ns("rtr") else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and `ip netns`)");
        return None;
    };
    exec(&rtr, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for i in 1..=3u32 {
        let ns = rig.add_ns(&format!("r{i}")).expect("namespace");
        rig.link(&ns, i, i);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ANYCAST}/32"),
            "dev",
            "lo",
        ]);
    }
    let cli = rig.add_ns("cli").expect("namespace");
    rig.link(&cli, 10, 10);
    rig.start_bird(3);
    for i in 1..=3 {
        rig.start_replica(i);
    }
    assert!(
        wait_for(30, || rig.next_hops() == 3),
        "no 3-way ECMP route: {}\nbird log: {}",
        exec(&rtr, &["ip", "route"]),
        std::fs::read_to_string(rig.dir.path("bird.log")).unwrap_or_default()
    );
    Some(rig)
}

#[test]
fn replicas_behind_ecmp_lose_their_queries_to_the_others_when_killed_or_stopped() {
    let Some(mut rig) = rig_up("k") else { return };

    // SIGKILL: the kernel closes the session at once; the router withdraws that path.
    let first = rig.who().expect("no answer through the router");
    Command::new("kill")
        .args(["-KILL", &rig.pid(&first)])
        .status()
        .unwrap();
    let (moved, lost) = rig.wait_moved(&first, Duration::from_secs(5));
    eprintln!("SIGKILL {first}: queries moved after {moved:?} ({lost} unanswered)");
    assert!(moved < Duration::from_millis(1500), "moved after {moved:?}");
    assert!(wait_for(5, || rig.next_hops() == 2));

    // SIGSTOP: the session stays up until the router's hold timer expires.
    let second = rig.who().expect("no answer after the kill");
    Command::new("kill")
        .args(["-STOP", &rig.pid(&second)])
        .status()
        .unwrap();
    let (moved, lost) = rig.wait_moved(&second, Duration::from_secs(HOLD + 5));
    eprintln!("SIGSTOP {second}: queries moved after {moved:?} ({lost} unanswered)");
    assert!(
        moved < Duration::from_secs(HOLD) + Duration::from_millis(1500),
        "moved after {moved:?}"
    );

    // Back: SIGCONT, the router reconnects, the replica announces again.
    Command::new("kill")
        .args(["-CONT", &rig.pid(&second)])
        .status()
        .unwrap();
    assert!(wait_for(15, || rig.next_hops() == 2), "{second} not back");

    // Broken data: the replica the client reaches withdraws itself (on_load_failure: withdraw).
    let third = rig.who().expect("no answer");
    let path = rig.dir.path(&format!("bgp-live/{third}.yaml"));
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{good}\nzones: [broken")).unwrap();
    let t = Instant::now();
    let (ok, _) = rig.replica(&third).ctl(&["reload"]);
    assert!(!ok);
    let (moved, lost) = rig.wait_moved(&third, Duration::from_secs(5));
    eprintln!(
        "broken data on {third}: queries moved after {:?} ({lost} unanswered)",
        t.elapsed()
    );
    assert!(moved < Duration::from_secs(2));
    let (_, st) = rig.replica(&third).ctl(&["anycast"]);
    assert_eq!(st["anycast"]["reason"], "load_failed", "{st}");
    std::fs::write(&path, good).unwrap();
    let (ok, v) = rig.replica(&third).ctl(&["reload"]);
    assert!(ok, "{v}");
    assert!(wait_for(10, || rig.next_hops() == 2), "{third} not back");

    // ctl replace on the replica the client reaches: measured, with the other replica there.
    let fourth = rig.who().expect("no answer");
    let handle = {
        let sock = rig.replica(&fourth).control.clone().unwrap();
        std::thread::spawn(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
                .args([
                    "ctl",
                    "--json",
                    "--socket",
                    sock.to_str().unwrap(),
                    "replace",
                ])
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
        })
    };
    let (seen, lost) = rig.watch(Duration::from_secs(4));
    let reply = handle.join().unwrap();
    if let Some(pid) = reply["new_pid"].as_u64() {
        rig.adopted.push(pid as u32);
    }
    eprintln!("ctl replace on {fourth}: answered by {seen:?}, {lost} unanswered; {reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(lost, 0, "queries lost during the replace");
    // The session itself is handed over: the route never leaves the router, so the queries
    // never move to the other replica.
    assert_eq!(
        seen,
        vec![fourth.clone()],
        "queries moved during the replace"
    );

    // `ctl` with every replica's socket: one report each; the killed one says so.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signpost"));
    cmd.arg("ctl");
    for i in 1..=3 {
        cmd.args([
            "--socket",
            rig.dir.path(&format!("r{i}.sock")).to_str().unwrap(),
        ]);
    }
    let out = cmd.arg("anycast").output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("ctl anycast on every replica:\n{stdout}{stderr}");
    assert!(
        !out.status.success(),
        "the killed replica's socket must fail"
    );
    assert_eq!(stdout.matches("== ").count(), 3, "{stdout}");
    assert_eq!(
        stdout.matches("anycast:     announced").count(),
        2,
        "{stdout}"
    );
    assert!(stderr.contains(&format!("{first}.sock")), "{stderr}");
}

/// Each answer the client got (the replica's name, or none) with its time.
type Seen = Vec<(Instant, Option<String>)>;

/// The client's view over time: a thread asking [`who`] one query after another, each answer
/// (or none) with the time it came.
struct Watch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(cli: String) -> Watch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        // Bounded: one `dig` at a time, for at most two minutes.
        let thread = std::thread::spawn(move || {
            let t = Instant::now();
            while !s.load(std::sync::atomic::Ordering::Relaxed)
                && t.elapsed() < Duration::from_secs(120)
            {
                let w = who(&cli);
                v.lock().unwrap().push((Instant::now(), w));
            }
        });
        Watch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// The answers so far.
    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) for the first answer after `since` that `f` accepts; its
    /// time after `since`.
    fn until(
        &self,
        since: Instant,
        timeout: Duration,
        f: impl Fn(&Option<String>) -> bool,
    ) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let hit = self
                .seen()
                .into_iter()
                .find(|(t, w)| *t >= since && f(w))
                .map(|(t, _)| t - since);
            if hit.is_some() || Instant::now() > deadline {
                return hit;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The queries answered by nobody between `from` and `to`, and the queries in all.
    fn lost(&self, from: Instant, to: Instant) -> (usize, usize) {
        let seen = self.seen();
        let span: Vec<_> = seen
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        (span.iter().filter(|(_, w)| w.is_none()).count(), span.len())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The DNS worker threads of a process (named `udp-N`, `src/dns/udp.rs`) stopped with ptrace:
/// PTRACE_SEIZE then PTRACE_INTERRUPT stops each such thread alone (no group stop: the BGP
/// sessions, the self-check and the control socket go on). Released on drop (PTRACE_DETACH;
/// the kernel also detaches them when the tracing thread ends). The ptrace calls are made by
/// the thread that made this, as ptrace requires.
struct Stalled(Vec<nix::unistd::Pid>);

impl Stalled {
    fn workers(pid: u32) -> Stalled {
        use nix::sys::ptrace;
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        let mut stopped = Stalled(Vec::new());
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if !comm.starts_with("udp-") {
                continue;
            }
            let tid: i32 = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let tid = nix::unistd::Pid::from_raw(tid);
            ptrace::seize(tid, ptrace::Options::empty())
                .expect("PTRACE_SEIZE (needs CAP_SYS_PTRACE and kernel.yama.ptrace_scope below 3)");
            stopped.0.push(tid);
            ptrace::interrupt(tid).expect("PTRACE_INTERRUPT");
            let st = waitpid(tid, Some(WaitPidFlag::__WALL)).expect("waitpid");
            assert!(
                matches!(st, WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..)),
                "thread {tid} not stopped: {st:?}"
            );
        }
        assert!(!stopped.0.is_empty(), "no udp-N thread in process {pid}");
        stopped
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        for tid in self.0.drain(..) {
            let _ = nix::sys::ptrace::detach(tid, None);
        }
    }
}

/// The hold-down of the rig's replicas (`hold_down_ms`).
const HOLD_DOWN: Duration = Duration::from_millis(2000);
/// The data-age limit of the replica restarted with one (`max_data_age_s`).
const MAX_AGE: Duration = Duration::from_secs(5);

#[test]
fn replicas_withdraw_by_themselves_and_restart_without_losing_a_query() {
    let Some(mut rig) = rig_up("s") else { return };
    let cli = rig.ns("cli");
    let x = rig.who().expect("no answer through the router");
    let i: u32 = x[1..].parse().unwrap();
    let is_x = |w: &Option<String>| w.as_deref() == Some(x.as_str());
    let not_x = |w: &Option<String>| w.as_deref().is_some_and(|w| w != x);

    // A plain restart: SIGTERM (withdrawn at once, answering for drain_ms, then exit), the same
    // replica started again; it announces after its first passing self-check.
    let watch = Watch::start(cli.clone());
    let t0 = Instant::now();
    let old = rig.replicas[i as usize - 1].take().unwrap();
    let status = old.terminate();
    let exited = t0.elapsed();
    assert!(status.success(), "{x} exited with {status}");
    let moved = watch
        .until(t0, Duration::ZERO, not_x)
        .expect("queries did not move while the replica drained");
    let t_start = Instant::now();
    rig.start_replica(i);
    let up = t_start.elapsed();
    let back = watch
        .until(t_start, Duration::from_secs(10), is_x)
        .unwrap_or_else(|| panic!("{x} got no query again after its restart"));
    let end = Instant::now() + Duration::from_millis(500);
    std::thread::sleep(Duration::from_millis(500));
    let (lost, asked) = watch.lost(t0, end);
    drop(watch);
    eprintln!(
        "plain restart of {x}: queries moved after {moved:?}, exited after {exited:?}, \
         new process ready after {up:?}, queries back {back:?} after its start; \
         {lost} of {asked} queries unanswered"
    );
    assert_eq!(lost, 0, "queries lost across a plain restart");
    // Withdrawn before the listeners closed: the router moved the queries during the drain.
    assert!(
        moved < exited,
        "moved after {moved:?}, exited after {exited:?}"
    );
    assert!(moved < Duration::from_millis(900), "moved after {moved:?}");
    assert!(
        exited >= Duration::from_millis(1000),
        "no drain: {exited:?}"
    );
    assert!(back < Duration::from_secs(5), "back after {back:?}");

    // Stalled DNS workers: the UDP threads stop, the process goes on (its BGP session too); the
    // self-check fails check_failures (2) times, the replica withdraws by itself, well before
    // the router's hold timer would.
    let pid = rig.pid(&x).parse::<u32>().unwrap();
    let watch = Watch::start(cli.clone());
    let t0 = Instant::now();
    let stalled = Stalled::workers(pid);
    // The router's view, polled every 20 ms: the client's own view is coarser (a query to the
    // stalled replica waits for its 1 s timeout).
    let withdrawn = loop {
        if rig.next_hops() == 2 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(HOLD + 5),
            "the stalled {x} stayed in the router's route"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let moved = watch
        .until(t0, Duration::from_secs(HOLD + 5), not_x)
        .unwrap_or_else(|| panic!("queries did not move from the stalled {x}"));
    let (_, st) = rig.replica(&x).ctl(&["anycast"]);
    assert_eq!(st["anycast"]["reason"], "self_check", "{st}");
    assert_eq!(st["anycast"]["announced"], false, "{st}");
    let (lost_stalled, asked_stalled) = watch.lost(t0, t0 + moved);
    // Released: announced again after hold_down_ms of passing checks.
    std::thread::sleep(Duration::from_millis(300));
    let t1 = Instant::now();
    drop(stalled);
    let back = watch
        .until(t1, HOLD_DOWN + Duration::from_secs(5), is_x)
        .unwrap_or_else(|| panic!("{x} got no query again after its workers went on"));
    let (lost_after, _) = watch.lost(t0 + moved, Instant::now());
    drop(watch);
    eprintln!(
        "stalled workers of {x}: withdrawn from the router after {withdrawn:?}, queries \
         moved after {moved:?} ({lost_stalled} of {asked_stalled} unanswered meanwhile, \
         {lost_after} after); released, queries back after {back:?}"
    );
    // Two failed checks (200 ms apart, 500 ms timeout each) and the UPDATE: well under the
    // router's hold time, which a stopped process takes.
    assert!(
        withdrawn < Duration::from_millis(2000),
        "withdrawn after {withdrawn:?}"
    );
    assert!(
        moved < withdrawn + Duration::from_millis(1500),
        "moved after {moved:?}"
    );
    assert_eq!(lost_after, 0, "queries lost after the withdrawal");
    assert!(
        back >= HOLD_DOWN,
        "back after {back:?}, before the hold-down"
    );
    assert!(
        back < HOLD_DOWN + Duration::from_millis(1500),
        "back after {back:?}"
    );

    // Data too old: the same replica restarted with max_data_age_s; it withdraws by itself once
    // its data are older than that, and announces again after a successful reload and the
    // hold-down.
    let old = rig.replicas[i as usize - 1].take().unwrap();
    assert!(old.terminate().success());
    let t_start = Instant::now();
    rig.start_replica_with(i, &format!("  max_data_age_s: {}\n", MAX_AGE.as_secs()));
    let watch = Watch::start(cli.clone());
    let announced = watch
        .until(t_start, Duration::from_secs(5), is_x)
        .unwrap_or_else(|| panic!("{x} not announced after its restart"));
    let t_ann = t_start + announced;
    let moved = watch
        .until(t_ann, MAX_AGE + Duration::from_secs(5), not_x)
        .unwrap_or_else(|| panic!("queries did not move from {x} with data too old"));
    let (_, st) = rig.replica(&x).ctl(&["anycast"]);
    assert_eq!(st["anycast"]["reason"], "data_too_old", "{st}");
    let (lost_aged, _) = watch.lost(t_ann, t_ann + moved);
    let t1 = Instant::now();
    let (ok, v) = rig.replica(&x).ctl(&["reload"]);
    assert!(ok, "{v}");
    let back = watch
        .until(t1, HOLD_DOWN + Duration::from_secs(5), is_x)
        .unwrap_or_else(|| panic!("{x} got no query again after a reload"));
    let (lost, asked) = watch.lost(t_start, Instant::now());
    drop(watch);
    let aged = announced + moved;
    eprintln!(
        "data too old on {x} (max_data_age_s {}): announced {announced:?} after its start, \
         queries moved {aged:?} after its start ({lost_aged} unanswered); reloaded, queries \
         back after {back:?}; {lost} of {asked} queries unanswered in all",
        MAX_AGE.as_secs()
    );
    assert!(
        aged >= MAX_AGE && aged < MAX_AGE + Duration::from_millis(1500),
        "moved {aged:?} after the start"
    );
    assert_eq!(lost, 0, "queries lost to a replica whose data aged");
    assert!(
        back >= HOLD_DOWN,
        "back after {back:?}, before the hold-down"
    );
    // The reload itself (a debug build, a loaded machine) comes before the hold-down.
    assert!(
        back < HOLD_DOWN + Duration::from_millis(2500),
        "back after {back:?}"
    );
}
