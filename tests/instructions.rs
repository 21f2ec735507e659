//! The hot path's guard: user-space instructions per answered query, counted by valgrind's
//! callgrind, must stay within 5 % of the ceilings recorded in `benches/instructions-ceiling`.
//!
//! The demo maps and data (`signpost serve` on the demo configuration, one UDP worker) run
//! under callgrind; once the server answers, it gets a fixed set of A queries for
//! `dl.example.test`, each with a different ECS /24 (the same addresses every run, from a fixed
//! seed), twice, each time counted on its own (counters zeroed before, dumped after): first one
//! at a time (every batch holds one query), then in bursts of 32 sent while the server is
//! stopped (`SIGSTOP`; every burst is queued whole when it resumes, so the worker reads it in
//! the same batches every run, and the queries after the first of a batch ask the question the
//! batch already placed). Neither count depends on timing. The instructions the UDP worker
//! spent (callgrind's inclusive cost of `signpost::dns::udp::worker`, which leaves out the other
//! threads' timers) are divided by the answers. The count is that of the build under test, so the ceiling is the release build's:
//! under a debug build the test says so and checks nothing (`.ci/test` runs it with
//! `cargo test --release --test instructions`).
//!
//! `SIGNPOST_INSTRUCTIONS_DUMP=FILE` keeps the dumps as `FILE.one-at-a-time` and
//! `FILE.bursts`, for `callgrind_annotate`.
//!
//! Raising the ceiling is a deliberate commit that edits the file and says why
//! (docs/benchmarks.md, "The guard").

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;

/// Queries sent.
const QUERIES: usize = 4000;
/// How far above the ceiling the count may go.
const TOLERANCE: f64 = 0.05;

/// Queries per burst (a UDP worker's batch).
const BURST: usize = 32;

/// The ceiling recorded for the release build under `key` (`one-at-a-time` or `bursts`).
fn ceiling(key: &str) -> f64 {
    let path = common::root().join("benches/instructions-ceiling");
    let text = std::fs::read_to_string(&path).expect("benches/instructions-ceiling");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{key} NUMBER` line in {}", path.display()))
}

/// Sends `burst` while process `pid` is stopped, then waits for the answers; returns how many
/// came.
fn ask_burst(sock: &UdpSocket, server: SocketAddr, pid: u32, burst: &[Vec<u8>]) -> usize {
    signal("-STOP", pid);
    for p in burst {
        sock.send_to(p, server).expect("send");
    }
    signal("-CONT", pid);
    let mut buf = [0u8; 1500];
    let mut pending: Vec<[u8; 2]> = burst.iter().map(|p| [p[0], p[1]]).collect();
    while !pending.is_empty() {
        let Ok(n) = sock.recv(&mut buf) else {
            break;
        };
        if n >= 12 {
            pending.retain(|id| id[..] != buf[..2]);
        }
    }
    burst.len() - pending.len()
}

/// `kill SIGNAL PID`.
fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid} failed");
}

/// `valgrind` and `callgrind_control`, installed with apt-get when missing and possible.
fn valgrind_present() -> bool {
    let present = || {
        ["valgrind", "callgrind_control", "callgrind_annotate"]
            .iter()
            .all(|t| {
                Command::new(t)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
    };
    if present() {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        eprintln!("valgrind missing: installing it with apt-get");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "valgrind"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    present()
}

/// An A query for `dl.example.test` with an ECS option for `subnet`/24.
fn query(id: u16, subnet: [u8; 3]) -> Vec<u8> {
    let mut p = common::query(id, 0x0100, "dl.example.test", 1);
    p[11] = 1;
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11]);
    p.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0]);
    p.extend_from_slice(&subnet);
    p
}

/// The fixed addresses: a linear congruential sequence over the first three octets, kept to
/// global unicast space (1.0.0.0 to 223.255.255.0, without 10/8 and 127/8).
fn subnets() -> Vec<[u8; 3]> {
    let mut x: u32 = 0x2545_f491;
    let mut out = Vec::with_capacity(QUERIES);
    while out.len() < QUERIES {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let [a, b, c, _] = x.to_be_bytes();
        if (1..224).contains(&a) && a != 10 && a != 127 {
            out.push([a, b, c]);
        }
    }
    out
}

/// Sends `packet` and waits for the answer with its ID.
fn ask(sock: &UdpSocket, server: SocketAddr, packet: &[u8]) -> bool {
    let mut buf = [0u8; 1500];
    if sock.send_to(packet, server).is_err() {
        return false;
    }
    while let Ok(n) = sock.recv(&mut buf) {
        if n >= 12 && buf[..2] == packet[..2] {
            return true;
        }
    }
    false
}

/// `callgrind_control ACTION PID`.
fn control(action: &str, pid: u32) {
    let ok = Command::new("callgrind_control")
        .args([action, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "callgrind_control {action} failed");
}

/// The inclusive instruction count of the UDP worker in the dump `file`.
fn worker_instructions(file: &Path) -> u64 {
    let out = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(file)
        .output()
        .expect("callgrind_annotate");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("signpost::dns::udp::worker "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no UDP worker in the profile:\n{text}"))
}

#[test]
fn instructions_per_query_stay_under_the_ceiling() {
    if cfg!(debug_assertions) {
        eprintln!(
            "skipped: the ceiling is the release build's; run `cargo test --release --test instructions`"
        );
        return;
    }
    if !valgrind_present() {
        eprintln!("skipped: valgrind is not installed and could not be installed");
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("instructions");
    let config = common::demo_config(&dir, "workers: 1\n");
    let out = dir.path("callgrind.out");
    let out_arg = format!("--callgrind-out-file={}", out.display());
    // Killed when it goes out of scope, pass or fail.
    let traced = common::Server::start_wrapped(
        &["valgrind", "--tool=callgrind", &out_arg],
        &["--config", config.to_str().unwrap()],
        "127.0.0.1:0",
        &[],
    );
    let (server, pid) = (traced.udp, traced.child.id());

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let ready = Instant::now();
    while !ask(&sock, server, &query(0, [81, 2, 69])) {
        assert!(
            ready.elapsed() < Duration::from_secs(150),
            "signpost did not answer under callgrind within 150 s"
        );
    }
    let queries: Vec<Vec<u8>> = subnets()
        .into_iter()
        .enumerate()
        .map(|(i, s)| query(i as u16 + 1, s))
        .collect();
    // One at a time.
    control("-z", pid);
    let load = Instant::now();
    let mut answered = [0u64; 2];
    for q in &queries {
        if ask(&sock, server, q) {
            answered[0] += 1;
        }
        assert!(
            load.elapsed() < Duration::from_secs(90),
            "{} answers in 90 s",
            answered[0]
        );
    }
    control("-d", pid);
    // In bursts.
    control("-z", pid);
    let load = Instant::now();
    for burst in queries.chunks(BURST) {
        answered[1] += ask_burst(&sock, server, pid, burst) as u64;
        assert!(
            load.elapsed() < Duration::from_secs(90),
            "{} answers in 90 s",
            answered[1]
        );
    }
    control("-d", pid);
    drop(traced);
    let mut over = Vec::new();
    for (phase, (key, how)) in [
        ("one-at-a-time", "one at a time"),
        ("bursts", "in bursts of 32"),
    ]
    .into_iter()
    .enumerate()
    {
        let answered = answered[phase];
        assert!(
            answered as usize >= QUERIES * 99 / 100,
            "only {answered} of {QUERIES} queries answered {how}"
        );
        let name = format!("callgrind.out.{}", phase + 1);
        let dump = std::fs::read_dir(&dir.0)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&name))
            .unwrap_or_else(|| panic!("the dump taken after the queries {how}"));
        if let Some(keep) = std::env::var_os("SIGNPOST_INSTRUCTIONS_DUMP") {
            let mut keep = keep;
            keep.push(format!(".{key}"));
            std::fs::copy(&dump, keep).expect("copy the dump");
        }
        let per_query = worker_instructions(&dump) as f64 / answered as f64;
        let ceiling = ceiling(key);
        eprintln!(
            "instructions per query (UDP worker, demo, {answered} queries with ECS, {how}): \
             {per_query:.0}; ceiling {ceiling:.0} (+{:.0} % allowed)",
            TOLERANCE * 100.0,
        );
        if per_query > ceiling * (1.0 + TOLERANCE) {
            over.push(format!(
                "{how}: {per_query:.0} instructions per query, over the ceiling of {ceiling:.0}"
            ));
        }
    }
    eprintln!("took {:.0} s", started.elapsed().as_secs_f64());
    assert!(
        over.is_empty(),
        "{} by more than {:.0} % (benches/instructions-ceiling; see docs/benchmarks.md, \
         \"The guard\")",
        over.join("; "),
        TOLERANCE * 100.0
    );
}
