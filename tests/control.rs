//! The control socket spoken to directly: bad requests get clear errors and the connection
//! stays usable; the socket file has the configured mode; overrides expire; region default
//! checks apply to members.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;

#[test]
fn bad_requests_keep_the_connection_usable() {
    let dir = TempDir::new("ctlraw");
    let cfg = demo_config(&dir, "");
    let s = Server::with_control(&cfg, &dir);
    let sock = dir.path("ctl.sock");
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o660
    );
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut ask = |line: &[u8]| -> serde_json::Value {
        c.write_all(line).unwrap();
        c.write_all(b"\n").unwrap();
        let mut resp = String::new();
        r.read_line(&mut resp).unwrap();
        serde_json::from_str(&resp).unwrap()
    };
    for (req, want) in [
        (&b"this is not json"[..], "bad request"),
        (br#"{"cmd":"fly"}"#, "unknown command \"fly\""),
        (br#"{"cmd":"set","node":"fra1"}"#, "`set` needs `state`"),
        (
            br#"{"cmd":"set","node":"fra1","state":"sideways"}"#,
            "bad state",
        ),
        (
            br#"{"cmd":"set","node":"nosuch","state":"down"}"#,
            "unknown node \"nosuch\"",
        ),
        (
            br#"{"cmd":"push","states":[{"node":"fra1","state":"down"}]}"#,
            "missing field `ttl`",
        ),
        (br#"{"cmd":"status","extra":1}"#, "unknown field `extra`"),
    ] {
        let v = ask(req);
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{want}: {v}");
    }
    let long = vec![b'x'; 100_000];
    let v = ask(&long);
    assert!(v["error"].as_str().unwrap().contains("longer than"), "{v}");
    // Still usable.
    let v = ask(br#"{"cmd":"status"}"#);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["last_reload"]["ok"], true);
    let v = ask(br#"{"cmd":"stats"}"#);
    assert!(v["stats"]["udp_queries"].as_u64().is_some(), "{v}");
    drop(s);
}

#[test]
fn socket_mode_and_override_expiry() {
    let dir = TempDir::new("ctlmode");
    let sock = dir.path("ctl.sock");
    let cfg = demo_config(
        &dir,
        &format!(
            "control: {{ socket: {}, mode: \"0600\" }}\n",
            sock.display()
        ),
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let mut s = s;
    s.control = Some(sock.clone());
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Another user is refused by the kernel (only checkable when the tests run as root and can
    // switch to `nobody`).
    let other = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_signpost"),
            "ctl",
            "--socket",
            sock.to_str().unwrap(),
            "status",
        ])
        .output();
    match other {
        Ok(out) if !String::from_utf8_lossy(&out.stderr).contains("runuser:") => {
            assert_eq!(
                out.status.code(),
                Some(3),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        other => eprintln!("skipping the other-user check: {other:?}"),
    }
    let gb = |s: &Server| s.short(&["dl.example.test", "+subnet=81.2.69.0/24"]);
    assert!(s.ctl(&["set", "fra1", "down", "--expires", "1"]).0);
    assert_eq!(gb(&s), "192.0.2.11");
    assert!(
        wait_for(15, || gb(&s) == "192.0.2.10"),
        "the override lapsed"
    );
    let status = s.terminate();
    assert!(status.success());
    assert!(!sock.exists(), "the socket file is removed at exit");
}

#[test]
fn region_default_checks_apply_to_members_without_their_own() {
    let dir = TempDir::new("regioncheck");
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    // Port 9 on loopback: nothing listens, the check fails at once.
    dir.write(
        "maps/map.yaml",
        "nodes:\n  - { name: a, ipv4: [192.0.2.1], weight: 200 }\n  - { name: b, ipv4: [192.0.2.2], weight: 100, check: { kind: tcp, address: 127.0.0.1, port: 1, interval_ms: 1000 } }\n  - { name: c, ipv4: [192.0.2.3], weight: 50 }\nregions:\n  - name: r\n    nodes: [a, b]\n    check: { kind: tcp, address: 127.0.0.1, port: 9, interval_ms: 1000, timeout_ms: 500 }\n  - { name: s, nodes: [c] }\nservices:\n  - names: [dl.example.test]\n    rules:\n      - { default: true, regions: [r, s] }\n",
    );
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let s = Server::with_control(&cfg, &dir);
    assert_eq!(
        s.short(&["dl.example.test"]),
        "192.0.2.3",
        "a (region check) and b (own check) are down"
    );
    let (_, nodes) = s.ctl(&["nodes"]);
    for n in nodes["nodes"].as_array().unwrap() {
        let why = n["why"].as_str().unwrap();
        match n["name"].as_str().unwrap() {
            "a" => assert!(why.contains("127.0.0.1:9"), "{why}"),
            "b" => assert!(why.contains("127.0.0.1:1"), "{why}"),
            _ => assert_eq!(why, "no health check"),
        }
    }
}

#[test]
fn tcp_query_bound_and_slow_senders() {
    let dir = TempDir::new("tcplimits");
    let cfg = demo_config(
        &dir,
        "tcp: { idle_timeout_ms: 500, max_queries_per_connection: 3 }\n",
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    use std::io::Read;
    // Four pipelined queries on a connection that allows three: three answers, then EOF.
    let mut c = std::net::TcpStream::connect(s.tcp).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut batch = Vec::new();
    for i in 0..4u16 {
        let q = query(i, 0, "dl.example.test", 1);
        batch.extend_from_slice(&(q.len() as u16).to_be_bytes());
        batch.extend_from_slice(&q);
    }
    c.write_all(&batch).unwrap();
    let mut answers = 0;
    loop {
        let mut len = [0u8; 2];
        if c.read_exact(&mut len).is_err() {
            break;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        c.read_exact(&mut msg).unwrap();
        answers += 1;
    }
    assert_eq!(answers, 3);
    // A client that sends half a length prefix and stalls is dropped after the timeout.
    let mut slow = std::net::TcpStream::connect(s.tcp).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    slow.write_all(&[0]).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(slow.read(&mut buf).unwrap_or(0), 0, "closed");
    // One that sends a length and then only part of the message, too.
    let mut partial = std::net::TcpStream::connect(s.tcp).unwrap();
    partial
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    partial.write_all(&[0, 40, 1, 2, 3]).unwrap();
    assert_eq!(partial.read(&mut buf).unwrap_or(0), 0, "closed");
}

#[test]
fn a_control_flood_does_not_stop_answers() {
    let dir = TempDir::new("ctlflood");
    let cfg = demo_config(&dir, "");
    let s = Server::with_control(&cfg, &dir);
    let sock = dir.path("ctl.sock");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..4 {
        let (sock, stop) = (sock.clone(), stop.clone());
        flooders.push(std::thread::spawn(move || {
            let mut sent = 0u32;
            let mut c = UnixStream::connect(&sock).unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            // Bounded: at most 20,000 requests or until told to stop.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 20_000 {
                c.write_all(b"{\"cmd\":\"nodes\"}\n{\"cmd\":\"stats\"}\nnot json\n")
                    .unwrap();
                let mut line = String::new();
                for _ in 0..3 {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                }
                sent += 3;
            }
            sent
        }));
    }
    // Answers stay right while the control socket is busy.
    for subnet in ["81.2.69.0/24", "8.8.8.0/24", "1.1.1.0/24"]
        .iter()
        .cycle()
        .take(30)
    {
        let a = s.short(&["dl.example.test", &format!("+subnet={subnet}")]);
        let want = match *subnet {
            "81.2.69.0/24" => "192.0.2.10",
            "8.8.8.0/24" => "198.51.100.10",
            _ => "203.0.113.10",
        };
        assert_eq!(a, want, "{subnet}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: u32 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(total > 100, "the flood ran ({total} requests)");
}

#[test]
fn packets_from_port_zero_are_dropped() {
    // A UDP header with source port 0 needs a raw socket (CAP_NET_RAW, as root in CI).
    let dir = TempDir::new("port0");
    let cfg = demo_config(&dir, "");
    let s = Server::with_control(&cfg, &dir);
    let raw = match socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::UDP),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipping: no raw socket ({e}); run as root to exercise the port-0 drop");
            return;
        }
    };
    let payload = query(77, 0, "dl.example.test", 1);
    let mut udp = Vec::new();
    udp.extend_from_slice(&0u16.to_be_bytes()); // source port 0
    udp.extend_from_slice(&s.udp.port().to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&0u16.to_be_bytes()); // no checksum (allowed for IPv4)
    udp.extend_from_slice(&payload);
    let before = s.ctl(&["stats"]).1["stats"]["dropped"].as_u64().unwrap();
    for _ in 0..3 {
        raw.send_to(&udp, &socket2::SockAddr::from(s.udp)).unwrap();
    }
    assert!(
        wait_for(10, || s.ctl(&["stats"]).1["stats"]["dropped"]
            .as_u64()
            .unwrap()
            >= before + 3),
        "{}",
        s.ctl(&["stats"]).1
    );
    // Ordinary clients are still answered.
    assert_eq!(
        s.short(&["dl.example.test", "+subnet=8.8.8.0/24"]),
        "198.51.100.10"
    );
}
