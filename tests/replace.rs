//! Restart without losing a query, against the real binary: `signpost ctl replace` while a
//! steady stream of UDP queries (each with its id and a timeout) and a few TCP queries run;
//! and a replace whose new process cannot start, which leaves the old one serving.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Reaper, Server, TempDir, alive, demo_config, query, wait_for};

fn ctl(sock: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["ctl", "--socket", sock.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

/// A steady UDP stream: `rate` queries a second for `secs` seconds, each with its own id;
/// returns (sent, answered) once every query had `timeout` to be answered.
fn udp_stream(server: SocketAddr, rate: u32, secs: u32, timeout: Duration) -> (usize, usize) {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (sock, answered, done) = (sock.clone(), answered.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(Ordering::Relaxed) {
                if let Ok((n, _)) = sock.recv_from(&mut buf)
                    && n >= 12
                    && common::rcode(&buf[..n]) == 0
                {
                    answered
                        .lock()
                        .unwrap()
                        .insert(u16::from_be_bytes([buf[0], buf[1]]));
                }
            }
        })
    };
    let total = (rate * secs) as usize;
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sock.send_to(&query(i as u16, 0x0100, "dl.example.test", 1), server)
            .unwrap();
    }
    std::thread::sleep(timeout);
    done.store(true, Ordering::Relaxed);
    receiver.join().unwrap();
    let n = answered.lock().unwrap().len();
    (total, n)
}

/// One DNS query over TCP; true when a NOERROR answer with the query's id came back.
fn tcp_query(server: SocketAddr, id: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&server, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let q = query(id, 0x0100, "dl.example.test", 1);
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    if s.write_all(&msg).is_err() {
        return false;
    }
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).is_err() {
        return false;
    }
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).is_ok()
        && resp.len() >= 12
        && resp[..2] == id.to_be_bytes()
        && common::rcode(&resp) == 0
}

#[test]
fn replace_under_a_steady_stream_loses_no_query() {
    let dir = TempDir::new("replace");
    let config = demo_config(&dir, "workers: 2\n");
    let server = Server::with_control(&config, &dir);
    let sock = server.control.clone().unwrap();
    let old_pid = server.child.id();
    let reaper = Reaper(sock.clone());
    // No state file: the override can only reach the new process as hand-over data.
    let out = ctl(
        &sock,
        &["set", "fra1", "down", "--reason", "before the replace"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&sock, &["push", "ams1=drain:600"]);
    assert!(out.status.success(), "{out:?}");

    let (udp, tcp) = (server.udp, server.tcp);
    let stream = std::thread::spawn(move || udp_stream(udp, 200, 5, Duration::from_secs(2)));
    let tcp_stop = Arc::new(AtomicBool::new(false));
    let (tcp_sent, tcp_failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tcp_loop = {
        let (stop, sent, failed) = (tcp_stop.clone(), tcp_sent.clone(), tcp_failed.clone());
        std::thread::spawn(move || {
            for i in 0..100u16 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                if !tcp_query(tcp, i) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let out = ctl(&sock, &["replace"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let new_pid: u32 = text
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(
        out.status.success(),
        "replace failed: {out:?}\n{}",
        server.stderr()
    );
    assert_eq!(
        text.trim(),
        format!("replaced: pid {old_pid} -> pid {new_pid}")
    );
    assert_ne!(new_pid, old_pid);
    assert_eq!(reaper.pids(), vec![new_pid]);
    let (sent, answered) = stream.join().unwrap();
    tcp_stop.store(true, Ordering::Relaxed);
    tcp_loop.join().unwrap();
    assert_eq!(
        answered,
        sent,
        "{} of {sent} UDP queries lost\n{}",
        sent - answered,
        server.stderr()
    );
    assert!(tcp_sent.load(Ordering::Relaxed) >= 10);
    assert_eq!(
        tcp_failed.load(Ordering::Relaxed),
        0,
        "TCP queries failed\n{}",
        server.stderr()
    );

    // The old process has exited, cleanly; the new one answers on the same control socket.
    let mut server = server;
    let mut status = None;
    wait_for(10, || {
        status = server.child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.expect("the old process exited");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    assert!(alive(new_pid));
    let (ok, nodes) = server.ctl(&["nodes"]);
    assert!(ok, "the control socket answers after the replace");
    let node = |name: &str| {
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(node("fra1")["state"], "down", "{nodes}");
    assert!(
        node("fra1")["why"]
            .as_str()
            .unwrap()
            .contains("before the replace")
    );
    assert_eq!(node("ams1")["state"], "drain", "{nodes}");
    // Answers follow the carried override (GB goes to fra1 when it is up).
    let a = server.short(&["dl.example.test", "+subnet=81.2.69.0/24"]);
    assert!(!a.is_empty() && !a.contains("192.0.2.10"), "{a}");
    // The counters go on from the old process's values.
    let (_, stats) = server.ctl(&["stats"]);
    let udp_queries = stats["stats"]["udp_queries"].as_u64().unwrap();
    assert!(
        udp_queries >= sent as u64,
        "udp_queries {udp_queries} < {sent} sent"
    );
    // The new process stops on SIGTERM like any server.
    drop(reaper);
    assert!(!alive(new_pid), "the new process stopped on SIGTERM");
}

#[test]
fn a_failed_replace_leaves_the_old_server_serving() {
    let dir = TempDir::new("replace-fail");
    let config = demo_config(&dir, "");
    let server = Server::with_control(&config, &dir);
    let sock = server.control.clone().unwrap();
    let reaper = Reaper(sock.clone());
    let good = std::fs::read_to_string(&config).unwrap();
    // The configuration is broken on disk after the start: the new process cannot load it.
    dir.write(
        "signpost.yaml",
        &good.replace("zones:", "zones: [oops\nzonez:"),
    );
    let out = ctl(&sock, &["replace"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("replace failed, still serving") && err.contains("signpost.yaml"),
        "{err}"
    );
    // The old one never stopped, and the new one is gone.
    assert!(reaper.pids().is_empty());
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none());
    assert!(!server.short(&["dl.example.test"]).is_empty());
    let (ok, _) = server.ctl(&["status"]);
    assert!(ok);
    // With the configuration repaired, the next replace works.
    dir.write("signpost.yaml", &good);
    let out = ctl(&sock, &["replace"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let new_pid: u32 = text
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(out.status.success(), "{out:?}\n{}", server.stderr());
    assert_eq!(reaper.pids(), vec![new_pid]);
    assert!(wait_for(10, || server.child.try_wait().unwrap().is_some()));
    assert!(!server.short(&["dl.example.test"]).is_empty());
}

#[test]
fn a_replace_applies_a_new_worker_count_to_the_same_sockets() {
    let dir = TempDir::new("replace-workers");
    let config = demo_config(&dir, "workers: 1\n");
    let server = Server::with_control(&config, &dir);
    let sock = server.control.clone().unwrap();
    let reaper = Reaper(sock.clone());
    let text = std::fs::read_to_string(&config).unwrap();
    dir.write("signpost.yaml", &text.replace("workers: 1", "workers: 3"));
    let out = ctl(&sock, &["replace"]);
    assert!(out.status.success(), "{out:?}\n{}", server.stderr());
    assert_eq!(reaper.pids().len(), 1);
    // The new process serves the inherited socket plus two more of the same group, on the
    // same port.
    // The new process's log reaches the old one's stderr through a pipe: wait for it.
    assert!(wait_for(10, || server.stderr().contains("workers=3")));
    let log = server.stderr();
    assert!(log.contains("UDP sockets taken over"), "{log}");
    assert!(log.contains("sockets=1"), "{log}");
    assert!(log.contains("workers=3"), "{log}");
    let mut server = server;
    assert!(wait_for(10, || server.child.try_wait().unwrap().is_some()));
    for i in 0..20u16 {
        let resp = server
            .udp_raw(&query(i, 0x0100, "dl.example.test", 1))
            .expect("an answer from the new process");
        assert_eq!(common::rcode(&resp), 0);
    }
    assert!(tcp_query(server.tcp, 1));
}

#[test]
fn serve_takeover_by_hand_with_a_control_socket_of_its_own() {
    let dir = TempDir::new("replace-by-hand");
    let config = demo_config(&dir, "");
    let server = Server::with_control(&config, &dir);
    let old_sock = server.control.clone().unwrap();
    let reaper = Reaper(old_sock.clone());
    let out = ctl(&old_sock, &["set", "fra1", "drain", "--reason", "by hand"]);
    assert!(out.status.success(), "{out:?}");
    let new_sock = dir.path("new.sock");
    let mut new = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--control", new_sock.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .args(["--takeover", old_sock.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(new.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    // Same port as the old process (its configured address was port 0 too).
    assert!(
        line.contains(&format!("udp {}", server.udp))
            && line.contains(&format!("tcp {}", server.tcp)),
        "{line}"
    );
    let mut server = server;
    assert!(wait_for(10, || server.child.try_wait().unwrap().is_some()));
    // The old socket file went with the old process; the new one answers on its own.
    assert!(wait_for(5, || !old_sock.exists()));
    let out = ctl(&new_sock, &["--json", "nodes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("by hand"), "{text}");
    assert!(!server.short(&["dl.example.test"]).is_empty());
    let _ = new.kill();
    let _ = new.wait();
    drop(reaper);
}

/// The metrics endpoint goes on across a replace: the new process takes over its listener
/// (same address, same port) and its counters start from the old process's totals, so a
/// scraper sees no reset.
#[test]
fn metrics_continue_across_a_replace() {
    let dir = TempDir::new("replace-metrics");
    let config = demo_config(&dir, "metrics:\n  listen: 127.0.0.1:0\n");
    let server = Server::with_control(&config, &dir);
    let sock = server.control.clone().unwrap();
    let _reaper = Reaper(sock.clone());
    let addr = server.metrics.expect("a metrics endpoint");
    for _ in 0..5 {
        assert_eq!(
            server.short(&["dl.example.test", "+subnet=81.2.69.0/24"]),
            "192.0.2.10"
        );
    }
    let scrape = || {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10"])
            .arg(format!("http://{addr}/metrics"))
            .output()
            .expect("curl is installed");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let value = |text: &str, key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    let node = "signpost_service_node_answers_total{service=\"dl.example.test\",node=\"fra1\"} ";
    let a = "signpost_queries_total{transport=\"udp\",qtype=\"A\",rcode=\"NOERROR\"} ";
    assert_eq!(value(&scrape(), node), 5.0);
    let out = ctl(&sock, &["replace"]);
    assert!(out.status.success(), "{out:?}\n{}", server.stderr());
    let mut server = server;
    assert!(wait_for(10, || server.child.try_wait().unwrap().is_some()));
    // The old process is gone; the same address answers, from the new one.
    server.short(&["dl.example.test", "+subnet=81.2.69.0/24"]);
    let after = scrape();
    assert_eq!(value(&after, node), 6.0, "{after}");
    assert_eq!(value(&after, a), 6.0, "{after}");
}

#[test]
fn capacity_shares_and_pushed_loads_cross_a_replace() {
    let dir = TempDir::new("replace-capacity");
    let config = demo_config(&dir, "");
    let server = Server::with_control(&config, &dir);
    let sock = server.control.clone().unwrap();
    let _reaper = Reaper(sock.clone());
    // The demo's cdn.example.test is spread by load: fra1 busy, ams1 idle, pushed as a monitor
    // does (the controller acts on loads measured a TTL after its last change).
    let push_busy = || {
        let out = ctl(
            &sock,
            &[
                "push",
                "--load",
                "--source",
                "lb",
                "fra1=950:600",
                "ams1=50:600",
                "dtag1=100:600",
                "iad1=500:600",
                "sjc1=400:600",
            ],
        );
        assert!(out.status.success(), "{out:?}");
    };
    let factor = |sock: &std::path::Path, node: &str| -> f64 {
        let out = ctl(sock, &["--json", "nodes"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .and_then(|n| n["capacity"]["shares"][0]["factor"].as_f64())
            .unwrap_or(f64::NAN)
    };
    assert!(
        wait_for(20, || {
            push_busy();
            factor(&sock, "fra1") < 1.0
        }),
        "the controller lowers fra1: {}",
        server.stderr()
    );
    let before = factor(&sock, "fra1");
    // Now even loads: no step changes a factor any more (each node is at the region's
    // utilisation), so a new process that did not take over the shares would stay at 1.
    let out = ctl(
        &sock,
        &[
            "push",
            "--load",
            "--source",
            "lb",
            "fra1=300:600",
            "ams1=150:600",
            "dtag1=600:600",
            "iad1=500:600",
            "sjc1=400:600",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&sock, &["replace"]);
    assert!(out.status.success(), "{out:?}\n{}", server.stderr());
    let mut server = server;
    assert!(wait_for(10, || server.child.try_wait().unwrap().is_some()));
    std::thread::sleep(Duration::from_millis(600));
    // The new process answers with the factor the old one reached, and has the pushed loads.
    let after = factor(&sock, "fra1");
    assert!(
        before < 1.0 && (after - before).abs() < 1e-9,
        "fra1's factor {before} became {after}"
    );
    let out = ctl(&sock, &["nodes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pushed by lb"), "{text}");
}
