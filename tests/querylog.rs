//! The query log of the real binary: one JSON line per query with the decision, reopened for
//! logrotate by `ctl reopen` and SIGUSR1, sampled, and never in the way of answers.

mod common;
use common::*;

use std::process::Command;
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
