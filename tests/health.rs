//! Health checks end to end: real HTTP servers started here (one stopped mid-test, one
//! answering 500, one too slow) flip nodes down and back up with the configured rise and fall,
//! and `dig` shows the answers move.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A tiny HTTP server answering every request with `status` and `body` after `delay`.
struct Http {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Http {
    fn start(port: u16, status: u16, body: &'static str, delay: Duration) -> Http {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Bounded: the test stops it, and it gives up by itself after a minute.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        std::thread::spawn(move || {
                            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut buf = [0u8; 1024];
                            let _ = c.read(&mut buf);
                            std::thread::sleep(delay);
                            let resp = format!(
                                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = c.write_all(resp.as_bytes());
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Http {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn checks_move_answers_with_rise_and_fall() {
    let good = Http::start(0, 200, "status: ok", Duration::ZERO);
    let bad = Http::start(0, 500, "oops", Duration::ZERO);
    let slow = Http::start(0, 200, "ok", Duration::from_secs(3));
    let tcp_only = Http::start(0, 200, "ok", Duration::ZERO);
    let good_port = good.port;
    let dir = TempDir::new("health");
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    let check = |port: u16, extra: &str| {
        format!(
            "{{ kind: http, address: 127.0.0.1, port: {port}, path: /health, host: dl.example.test, interval_ms: 200, timeout_ms: 400, jitter_ms: 50, rise: 2, fall: 2{extra} }}"
        )
    };
    dir.write(
        "maps/map.yaml",
        &format!(
            r#"nodes:
  - {{ name: good, ipv4: [192.0.2.1], weight: 500, check: {} }}
  - {{ name: bad, ipv4: [192.0.2.2], weight: 400, check: {} }}
  - {{ name: slow, ipv4: [192.0.2.3], weight: 300, check: {} }}
  - {{ name: tcp, ipv4: [192.0.2.4], weight: 200, check: {{ kind: tcp, address: 127.0.0.1, port: {}, interval_ms: 200, timeout_ms: 400, rise: 2, fall: 2 }} }}
  - {{ name: plain, ipv4: [192.0.2.5], weight: 100 }}
regions:
  - {{ name: all, nodes: [good, bad, slow, tcp, plain] }}
services:
  - names: [dl.example.test]
    rules:
      - {{ default: true, regions: [all] }}
"#,
            check(good.port, ", expect_body: \"status: ok\""),
            check(bad.port, ""),
            check(slow.port, ""),
            tcp_only.port
        ),
    );
    let cfg = config_with_maps(
        &dir,
        &["maps/"],
        "health: { initial: down, startup_wait_ms: 2000 }\n",
    );
    let s = Server::with_control(&cfg, &dir);
    // The first round ran before the first answer: good is up, bad (500) and slow (timeout) are down.
    assert_eq!(s.short(&["dl.example.test"]), "192.0.2.1");
    let bad = s.why("bad");
    assert!(bad.contains("HTTP status 500"), "{bad}");
    let slow = s.why("slow");
    assert!(slow.contains("timed out"), "{slow}");
    assert_eq!(s.why("plain"), "no health check");

    // Stop the good server: after `fall` failures the answer moves to the tcp-checked node.
    drop(good);
    assert!(
        wait_for(30, || s.short(&["dl.example.test"]) == "192.0.2.4"),
        "good went down"
    );
    let good_why = s.why("good");
    assert!(good_why.contains("health check failed"), "{good_why}");

    // Start it again on the same port: back after `rise` successes.
    let good = Http::start(good_port, 200, "status: ok", Duration::ZERO);
    assert!(
        wait_for(30, || s.short(&["dl.example.test"]) == "192.0.2.1"),
        "good came back"
    );

    // An admin override beats the poller; clearing it hands control back.
    assert!(s.ctl(&["set", "good", "down", "--reason", "test"]).0);
    assert_eq!(s.short(&["dl.example.test"]), "192.0.2.4");
    assert!(s.ctl(&["clear", "good"]).0);
    assert_eq!(s.short(&["dl.example.test"]), "192.0.2.1");
    // A push also beats the poller until it expires.
    assert!(s.ctl(&["push", "good=down:1"]).0);
    assert_eq!(s.short(&["dl.example.test"]), "192.0.2.4");
    assert!(wait_for(15, || s.short(&["dl.example.test"]) == "192.0.2.1"));
    drop(good);
    drop(s);
}

#[test]
fn reload_stops_checks_of_removed_nodes_and_keeps_state() {
    let down = Http::start(0, 503, "", Duration::ZERO);
    let dir = TempDir::new("health-reload");
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    let map = |extra_node: &str| {
        format!(
            "nodes:\n  - {{ name: a, ipv4: [192.0.2.1], weight: 200, check: {{ kind: http, address: 127.0.0.1, port: {}, interval_ms: 200, timeout_ms: 300, rise: 1, fall: 1 }} }}\n  - {{ name: b, ipv4: [192.0.2.2], weight: 100 }}\n{extra_node}regions:\n  - {{ name: r, nodes: [a, b] }}\nservices:\n  - names: [dl.example.test]\n    rules:\n      - {{ default: true, regions: [r] }}\n",
            down.port
        )
    };
    dir.write("maps/map.yaml", &map(""));
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let s = Server::with_control(&cfg, &dir);
    assert_eq!(
        s.short(&["dl.example.test"]),
        "192.0.2.2",
        "a is down (503)"
    );
    // Add a node: a stays down across the reload (its state is kept), c is served.
    dir.write(
        "maps/map.yaml",
        &map("  - { name: c, ipv4: [192.0.2.3], weight: 50 }\n")
            .replace("nodes: [a, b]", "nodes: [a, c]"),
    );
    assert!(wait_for(30, || s.short(&["dl.example.test"]) == "192.0.2.3"));
    // Remove the checked node: its check stops and it leaves the node list.
    dir.write(
        "maps/map.yaml",
        &map("")
            .replace(
                "  - { name: a, ipv4: [192.0.2.1], weight: 200, check",
                "  - { name: z, ipv4: [192.0.2.9], weight: 1, check",
            )
            .replace("nodes: [a, b]", "nodes: [b]"),
    );
    assert!(wait_for(30, || s.short(&["dl.example.test"]) == "192.0.2.2"));
    std::thread::sleep(Duration::from_millis(800));
    let (_, nodes) = s.ctl(&["nodes"]);
    let names: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["z", "b"]);
}

/// An HTTPS server with a self-signed certificate for `localhost`, answering 200 "ok".
fn https_server() -> (u16, std::thread::JoinHandle<()>, Arc<AtomicBool>) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                let Ok(Ok((tcp, _))) =
                    tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
                else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    (port, thread, stop)
}

#[test]
fn https_checks_verify_certificates_unless_told_not_to() {
    let (port, thread, stop) = https_server();
    let dir = TempDir::new("https");
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    let check = |extra: &str| {
        format!(
            "{{ kind: https, address: 127.0.0.1, port: {port}, host: localhost, path: /health, expect_body: ok, interval_ms: 300, timeout_ms: 1000, rise: 1, fall: 1{extra} }}"
        )
    };
    dir.write(
        "maps/map.yaml",
        &format!(
            "nodes:\n  - {{ name: verified, ipv4: [192.0.2.1], weight: 300, check: {} }}\n  - {{ name: private-ca, ipv4: [192.0.2.2], weight: 200, check: {} }}\n  - {{ name: plain, ipv4: [192.0.2.3], weight: 100 }}\nregions:\n  - {{ name: r, nodes: [verified, private-ca, plain] }}\nservices:\n  - names: [dl.example.test]\n    rules:\n      - {{ default: true, regions: [r] }}\n",
            check(""),
            check(", insecure: true")
        ),
    );
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let s = Server::with_control(&cfg, &dir);
    // The self-signed certificate fails verification; with `insecure: true` the node is up.
    assert_eq!(s.short(&["dl.example.test"]), "192.0.2.2");
    let why = s.why("verified");
    assert!(
        why.contains("TLS") && why.to_lowercase().contains("certificate"),
        "{why}"
    );
    // Stop the server: the insecure-checked node goes down too.
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    assert!(wait_for(30, || s.short(&["dl.example.test"]) == "192.0.2.3"));
}
