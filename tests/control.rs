//! The control socket spoken to directly: bad requests get clear errors and the connection
//! stays usable; the socket file has the configured mode; overrides expire; region default
//! checks apply to members.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

#[test]
fn bad_requests_keep_the_connection_usable() {
    let dir = TempDir::new("ctlraw");
    let cfg = demo_config(&dir, "");
    let sock = dir.path("ctl.sock");
    let s = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control",
        sock.to_str().unwrap(),
    ]);
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
    let sock = dir.path("ctl.sock");
    let s = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control",
        sock.to_str().unwrap(),
    ]);
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
