//! The query log of the real binary: one JSON line per query with the decision, reopened for
//! logrotate by `ctl reopen` and SIGUSR1, sampled, and never in the way of answers; a full
//! disk (a small tmpfs) loses no record uncounted and leaves whole lines; a FIFO at the path
//! is refused without a wait (start, reopen, replace, stop); a reopen that fails says so;
//! the counters carried across replaces agree with the file; `check` reports the paths
//! `serve` refuses.

mod common;
use common::*;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The log's records once it holds at least `n` (waits up to 10 s).
fn records(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn records_carry_the_decision_and_survive_logrotate() {
    let dir = TempDir::new("qlog");
    let log = dir.path("queries.jsonl");
    let cfg = demo_config(&dir, &format!("query_log:\n  path: {}\n", log.display()));
    let s = Server::with_control(&cfg, &dir);
    assert_eq!(
        s.short(&["dl.example.test", "+subnet=81.2.69.0/24"]),
        "192.0.2.10"
    );
    s.dig(&["+tcp", "nosuch.example.test", "MX"]);
    let r = records(&log, 2);
    assert_eq!(r.len(), 2, "{r:?}");
    let a = &r[0];
    assert_eq!(a["transport"], "udp");
    assert_eq!(a["client"], "127.0.0.1");
    assert_eq!(a["ecs"], "81.2.69.0/24");
    assert_eq!(a["qname"], "dl.example.test.");
    assert_eq!(a["qtype"], "A");
    assert_eq!(a["rcode"], "NOERROR");
    assert_eq!(a["service"], "dl.example.test");
    assert_eq!(a["rule"], "continent");
    assert!(
        a["rule_at"].as_str().unwrap().contains("services.yaml:"),
        "{a}"
    );
    assert_eq!(a["region"], "europe");
    assert_eq!(a["nodes"], serde_json::json!(["fra1"]));
    assert!(a["scope"].as_u64().unwrap() > 0, "{a}");
    assert!(a["ttl"].as_u64().unwrap() > 0, "{a}");
    assert!(a["time"].as_str().unwrap().ends_with('Z'), "{a}");
    let b = &r[1];
    assert_eq!(b["transport"], "tcp");
    assert_eq!(b["qname"], "nosuch.example.test.");
    assert_eq!(b["qtype"], "MX");
    assert_eq!(b["rcode"], "NXDOMAIN");
    assert!(b.get("service").is_none(), "{b}");

    // logrotate: move the file away, reopen, and the next record starts a new file.
    let rotated = dir.path("queries.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    let (ok, v) = s.ctl(&["reopen"]);
    assert!(ok, "{v}");
    assert_eq!(v["reopened"][0], log.display().to_string(), "{v}");
    // The writer reopens within its idle tick, without waiting for a query (logrotate may
    // look for the new file).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(log.exists(), "reopen creates the file");
    s.dig(&["www.example.test"]);
    let fresh = records(&log, 1);
    assert!(!fresh.is_empty());
    assert!(fresh.iter().all(|r| r["qname"] == "www.example.test."));
    let old = records(&rotated, 2);
    assert!(
        old.iter().all(|r| r["qname"] != "www.example.test."),
        "{old:?}"
    );

    // SIGUSR1 does the same.
    let rotated2 = dir.path("queries.jsonl.2");
    std::fs::rename(&log, &rotated2).unwrap();
    Command::new("kill")
        .args(["-USR1", &s.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.dig(&["mail.example.test"]);
    assert!(
        records(&log, 1)
            .iter()
            .all(|r| r["qname"] == "mail.example.test.")
    );
    assert!(s.terminate().success());
}

#[test]
fn sampling_and_a_slow_writer_never_hold_answers() {
    // Nothing sampled: no record at all.
    let dir = TempDir::new("qlog0");
    let log = dir.path("q.jsonl");
    let cfg = demo_config(
        &dir,
        &format!("query_log:\n  path: {}\n  sample_rate: 0\n", log.display()),
    );
    let s = Server::with_control(&cfg, &dir);
    for _ in 0..20 {
        s.dig(&["www.example.test"]);
    }
    let (ok, _) = s.ctl(&["status"]);
    assert!(ok);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
    s.terminate();

    // A queue of one record and a burst of queries: every query is answered, and every
    // record is either written or counted as dropped.
    let dir = TempDir::new("qlog1");
    let log = dir.path("q.jsonl");
    let cfg = demo_config(
        &dir,
        &format!(
            "query_log:\n  path: {}\n  queue: 1\nmetrics:\n  listen: 127.0.0.1:0\n",
            log.display()
        ),
    );
    let s = Server::with_control(&cfg, &dir);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let n = 2000u16;
    let mut answered = 0;
    let mut buf = [0u8; 1500];
    for chunk in 0..(n / 100) {
        for i in 0..100u16 {
            let id = chunk * 100 + i;
            let mut q = vec![(id >> 8) as u8, id as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
            sock.send_to(&q, s.udp).unwrap();
        }
        for _ in 0..100 {
            if sock.recv_from(&mut buf).is_ok() {
                answered += 1;
            }
        }
    }
    assert_eq!(answered, n as usize, "every query is answered");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, stats) = s.ctl(&["stats"]);
        let dropped = stats["stats"]["querylog_dropped"].as_u64().unwrap();
        let written = records(&log, 0).len() as u64;
        if written + dropped == n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "written {written} + dropped {dropped} != {n}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    s.terminate();
}

#[test]
fn bad_query_log_settings_are_positioned_errors() {
    let dir = TempDir::new("qlogbad");
    for (extra, want) in [
        (
            "query_log:\n  path: q.jsonl\n  sample_rate: 2\n",
            "query_log.sample_rate: must be between 0 and 1",
        ),
        (
            "query_log:\n  path: q.jsonl\n  queue: 0\n",
            "query_log.queue: must be 1..=1048576",
        ),
        ("query_log:\n  sample_rate: 1\n", "missing field `path`"),
    ] {
        let cfg = demo_config(&dir, extra);
        let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["check", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{extra}: {err}");
    }
    // A log that cannot be opened stops the start with the reason.
    let cfg = demo_config(&dir, "query_log:\n  path: /nonexistent/dir/q.jsonl\n");
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .env("SIGNPOST_CONTROL", dir.path("ctl.sock"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("query log /nonexistent/dir/q.jsonl"), "{err}");
}

/// A small tmpfs mounted at a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with `options` at `dir`; None, with the reason printed, where this
    /// process may not mount (the tests run as root in CI).
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs at {} (needs root): {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Mounts it again read-only.
    fn read_only(&self) {
        let st = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Runs `cmd` for at most `secs` seconds: its output, or None when it had to be killed.
fn bounded(cmd: &mut Command, secs: u64) -> Option<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `signpost ctl --socket SOCK ARGS` within `secs` seconds: (success, stdout, stderr).
fn ctl_within(sock: &Path, args: &[&str], secs: u64) -> (bool, String, String) {
    let out = bounded(
        Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["ctl", "--socket", sock.to_str().unwrap()])
            .args(args),
        secs,
    )
    .unwrap_or_else(|| panic!("`ctl {}` took more than {secs} s", args.join(" ")));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `signpost serve` with `cfg` on a free port, bounded: it must stop by itself within
/// `secs` seconds (these are configurations it refuses).
fn serve_refusing(cfg: &Path, dir: &TempDir, secs: u64) -> String {
    let out = bounded(
        Command::new(env!("CARGO_BIN_EXE_signpost"))
            .env_remove("NOTIFY_SOCKET")
            .env("SIGNPOST_CONTROL", dir.path("refused-ctl.sock"))
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"]),
        secs,
    )
    .unwrap_or_else(|| panic!("serve hung instead of refusing {}", cfg.display()));
    assert!(!out.status.success(), "serve started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `signpost check --config cfg`: (success, stdout and stderr).
fn check(cfg: &Path) -> (bool, String) {
    let out = bounded(
        Command::new(env!("CARGO_BIN_EXE_signpost")).args([
            "check",
            "--config",
            cfg.to_str().unwrap(),
        ]),
        60,
    )
    .expect("check ends");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn mkfifo(path: &Path) {
    assert!(
        Command::new("mkfifo").arg(path).status().unwrap().success(),
        "mkfifo {}",
        path.display()
    );
}

/// One sample of the metrics endpoint at `addr` (0 when absent).
fn metric(addr: SocketAddr, series: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl is installed (the test command installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0, |v| v as u64)
}

/// The query-log records written, dropped and failed, from the metrics.
fn accounted(addr: SocketAddr) -> (u64, u64, u64) {
    let m = |r: &str| {
        metric(
            addr,
            &format!("signpost_querylog_records_total{{result=\"{r}\"}}"),
        )
    };
    (m("written"), m("dropped"), m("failed"))
}

/// Waits (at most 10 s) until `n` records are accounted for; the three counts.
fn settle(addr: SocketAddr, n: u64) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (w, d, f) = accounted(addr);
        if w + d + f == n {
            return (w, d, f);
        }
        assert!(
            Instant::now() < deadline,
            "written {w} + dropped {d} + failed {f} != {n}: records neither written nor counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The number of lines of the log, every one of them a whole JSON record.
fn whole_lines(path: &Path) -> u64 {
    let text = std::fs::read(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "the log ends in part of a line: {:?}",
        String::from_utf8_lossy(&text[text.len().saturating_sub(200)..])
    );
    let text = String::from_utf8(text).expect("the log is UTF-8");
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn line ({e}): {l:?}"));
        assert!(v["qname"].is_string(), "{l}");
    }
    text.lines().count() as u64
}

/// Sends `n` queries for dl.example.test (ids from `first`), 100 at a time, each batch
/// answered before the next; the number answered.
fn burst(server: SocketAddr, first: u16, n: u16) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut answered = 0;
    let mut buf = [0u8; 1500];
    let mut sent = 0;
    while sent < n {
        let k = (n - sent).min(100);
        for i in 0..k {
            let q = query(first.wrapping_add(sent + i), 0x0100, "dl.example.test", 1);
            sock.send_to(&q, server).unwrap();
        }
        for _ in 0..k {
            if sock.recv_from(&mut buf).is_ok() {
                answered += 1;
            }
        }
        sent += k;
    }
    answered
}

#[test]
fn a_full_disk_loses_no_record_uncounted_and_leaves_whole_lines() {
    let dir = TempDir::new("qlogfull");
    let fs = dir.path("fs");
    let Some(_tmpfs) = Tmpfs::mount(&fs, "size=64k") else {
        return;
    };
    // Room that comes back later, in the same file system.
    let ballast = fs.join("ballast");
    std::fs::write(&ballast, vec![b'x'; 16 * 1024]).unwrap();
    let log = fs.join("q.jsonl");
    let cfg = demo_config(
        &dir,
        &format!(
            "query_log:\n  path: {}\nmetrics:\n  listen: 127.0.0.1:0\n",
            log.display()
        ),
    );
    let s = Server::with_control(&cfg, &dir);
    let m = s.metrics.unwrap();
    assert_eq!(burst(s.udp, 0, 2000), 2000, "every query is answered");
    // Every record is written whole or counted; the file holds whole lines only.
    let (written, _, failed) = settle(m, 2000);
    assert!(failed > 0, "the disk filled up, yet nothing failed");
    assert_eq!(whole_lines(&log), written, "lines in the file vs. written");
    // Warned about, once (at most one warning per 10 s), and counted in `ctl stats` too.
    assert!(
        wait_for(5, || s.stderr().contains("cannot write the query log")),
        "{}",
        s.stderr()
    );
    assert_eq!(
        s.stderr().matches("cannot write the query log").count(),
        1,
        "{}",
        s.stderr()
    );
    let (_, stats) = s.ctl(&["stats"]);
    assert_eq!(stats["stats"]["querylog_failed"], failed, "{stats}");

    // Room comes back: the same file takes records again, on a line boundary.
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(burst(s.udp, 2000, 20), 20);
    let (written2, _, failed2) = settle(m, 2020);
    assert_eq!(failed2, failed, "nothing fails once there is room");
    assert_eq!(written2, written + 20);
    assert_eq!(whole_lines(&log), written2);
    assert!(
        wait_for(5, || s
            .stderr()
            .contains("the query log takes writes again")),
        "{}",
        s.stderr()
    );

    // logrotate makes room: the new file starts with a whole line and has every new record.
    let rotated = fs.join("q.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    let (ok, _, err) = ctl_within(s.control.as_ref().unwrap(), &["reopen"], 20);
    assert!(ok, "{err}");
    std::fs::remove_file(&rotated).unwrap();
    assert_eq!(burst(s.udp, 3000, 100), 100);
    let (written3, _, failed3) = settle(m, 2120);
    assert_eq!((written3, failed3), (written2 + 100, failed));
    assert_eq!(whole_lines(&log), 100);
    assert!(s.terminate().success());
}

#[test]
fn a_fifo_at_the_path_is_refused_and_never_waited_on() {
    let dir = TempDir::new("qlogfifo");
    let fifo = dir.path("fifo.jsonl");
    mkfifo(&fifo);
    // At start: `serve` refuses it at once, and `check` says the same.
    let cfg = demo_config(&dir, &format!("query_log:\n  path: {}\n", fifo.display()));
    let err = serve_refusing(&cfg, &dir, 30);
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
    let (ok, out) = check(&cfg);
    assert!(!ok && out.contains("not a regular file (a FIFO)"), "{out}");

    // Running: logrotate moved the file, and a FIFO is in its place.
    let log = dir.path("q.jsonl");
    let cfg = demo_config(&dir, &format!("query_log:\n  path: {}\n", log.display()));
    let s = Server::with_control(&cfg, &dir);
    let sock = s.control.clone().unwrap();
    let _reaper = Reaper(sock.clone());
    s.dig(&["www.example.test"]);
    assert_eq!(records(&log, 1).len(), 1);
    let rotated = dir.path("q.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    mkfifo(&log);
    let (ok, out, err) = ctl_within(&sock, &["reopen"], 20);
    assert!(!ok, "a reopen onto a FIFO succeeded: {out}");
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
    // SIGUSR1 too, with a warning; the writer is not stuck: records go on to the old file.
    Command::new("kill")
        .args(["-USR1", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(
        wait_for(10, || s.stderr().contains("SIGUSR1: cannot reopen")),
        "{}",
        s.stderr()
    );
    s.dig(&["mail.example.test"]);
    assert!(
        wait_for(10, || records(&rotated, 0).len() == 2),
        "the old file keeps taking records"
    );
    // A replace: the new process refuses the FIFO at once, and this one keeps serving.
    let started = Instant::now();
    let (ok, _, err) = ctl_within(&sock, &["replace"], 150);
    assert!(!ok, "a replace onto a FIFO succeeded");
    assert!(err.contains("a FIFO"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the replace took {:?}",
        started.elapsed()
    );
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
    // The FIFO goes away: a reopen works again, and the new file takes the records.
    std::fs::remove_file(&log).unwrap();
    let (ok, out, err) = ctl_within(&sock, &["reopen"], 20);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("reopened {}", log.display()));
    s.dig(&["ns1.example.test"]);
    assert!(
        records(&log, 1)
            .iter()
            .all(|r| r["qname"] == "ns1.example.test.")
    );
    // And SIGTERM stops it.
    assert!(s.terminate().success());
}

#[test]
fn a_reopen_that_fails_says_so() {
    let dir = TempDir::new("qlogreopen");
    let logs = dir.path("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("q.jsonl");
    let cfg = demo_config(&dir, &format!("query_log:\n  path: {}\n", log.display()));
    let s = Server::with_control(&cfg, &dir);
    let sock = s.control.clone().unwrap();
    s.dig(&["www.example.test"]);
    assert_eq!(records(&log, 1).len(), 1);
    // The directory is deleted: the reopen fails, with the reason and a failing exit status.
    std::fs::remove_dir_all(&logs).unwrap();
    let (ok, out, err) = ctl_within(&sock, &["reopen"], 20);
    assert!(!ok, "`ctl reopen` succeeded: {out}");
    assert!(
        err.contains("cannot reopen") && err.contains(&log.display().to_string()),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
    let (ok, v) = s.ctl(&["reopen"]);
    assert!(!ok && v["ok"] == false, "{v}");
    // Back again: the reopen works and says so.
    std::fs::create_dir(&logs).unwrap();
    let (ok, out, err) = ctl_within(&sock, &["reopen"], 20);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("reopened {}", log.display()));
    s.dig(&["mail.example.test"]);
    assert!(
        records(&log, 1)
            .iter()
            .all(|r| r["qname"] == "mail.example.test.")
    );
    assert!(s.terminate().success());
}

#[test]
fn counts_carried_across_replaces_agree_with_the_file() {
    let dir = TempDir::new("qlogreplace");
    let log = dir.path("q.jsonl");
    let cfg = demo_config(
        &dir,
        &format!(
            "workers: 2\nquery_log:\n  path: {}\nmetrics:\n  listen: 127.0.0.1:0\n",
            log.display()
        ),
    );
    let s = Server::with_control(&cfg, &dir);
    let sock = s.control.clone().unwrap();
    let _reaper = Reaper(sock.clone());
    let m = s.metrics.unwrap();
    // A steady stream of queries (a few thousand a second, from several ports, so that every
    // worker has some: each stops right after the batch it holds) through both replaces.
    let done = Arc::new(AtomicBool::new(false));
    let stream = {
        let (done, server) = (done.clone(), s.udp);
        std::thread::spawn(move || {
            let socks: Vec<UdpSocket> = (0..8)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            let mut id = 0u16;
            let until = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::Relaxed) && Instant::now() < until {
                for sock in &socks {
                    id = id.wrapping_add(1);
                    let _ = sock.send_to(&query(id, 0x0100, "dl.example.test", 1), server);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        let (ok, out, err) = ctl_within(&sock, &["replace"], 150);
        assert!(ok, "{out}{err}");
        std::thread::sleep(Duration::from_millis(500));
    }
    done.store(true, Ordering::Relaxed);
    stream.join().unwrap();
    // `written` (what this process wrote plus what the ones before it carried) is the lines.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let written = accounted(m).0;
        let lines = whole_lines(&log);
        if written == lines {
            assert!(lines > 1000, "{lines}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "querylog_written {written} != {lines} lines in the file"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn check_reports_the_query_log_paths_serve_refuses() {
    let dir = TempDir::new("qlogcheck");
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let mut cases = vec![
        (
            dir.0.display().to_string(),
            "not a regular file (a directory)",
        ),
        (
            "/nonexistent/dir/q.jsonl".to_string(),
            "No such file or directory",
        ),
        ("\"\"".to_string(), "query_log.path: must not be empty"),
        (fifo.display().to_string(), "not a regular file (a FIFO)"),
    ];
    // Unwritable (root writes anywhere a mode allows nothing): a read-only file system, with
    // a file there and one to create.
    let ro = dir.path("ro");
    let tmpfs = Tmpfs::mount(&ro, "size=64k");
    if let Some(t) = &tmpfs {
        std::fs::write(ro.join("old.jsonl"), "").unwrap();
        t.read_only();
        for f in ["old.jsonl", "new.jsonl"] {
            cases.push((ro.join(f).display().to_string(), "Read-only file system"));
        }
    }
    for (path, want) in &cases {
        let cfg = demo_config(&dir, &format!("query_log:\n  path: {path}\n"));
        let (ok, out) = check(&cfg);
        assert!(!ok, "check accepted query_log.path {path}: {out}");
        assert!(out.contains(want), "{path}: {out}");
        // At the key's position.
        assert!(
            out.contains("signpost.yaml:") && out.contains("query_log.path: "),
            "{path}: {out}"
        );
        let err = serve_refusing(&cfg, &dir, 30);
        assert!(err.contains(want), "serve, {path}: {err}");
    }
    // A file to create in a writable directory passes, and check creates nothing.
    let fresh = dir.path("fresh.jsonl");
    let cfg = demo_config(&dir, &format!("query_log:\n  path: {}\n", fresh.display()));
    let (ok, out) = check(&cfg);
    assert!(ok, "{out}");
    assert!(!fresh.exists(), "check created the log");
}
