//! Optional listeners and an optional metrics endpoint, with the real binary: a listener or an
//! endpoint marked `optional: true` that this host cannot bind is skipped with a warning and
//! the server answers on the rest; the same address without `optional` stops the start with
//! the bind error; a server whose every listener is optional and unbindable does not start.
//! (The embedded demo marks its `[::1]:5353` listener and its metrics endpoint optional.)
//!
//! The address that cannot be bound is 192.0.2.1 (TEST-NET-1, never configured on a test
//! machine: the bind fails with "address not available"); the metrics port that cannot be bound
//! is held by the test itself.

mod common;
use common::speakers::free_port;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A started server: the process, its "ready" line and its standard error so far.
struct Started {
    child: Child,
    ready: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Started {
    /// Standard error once it contains `what` (the reader thread may lag behind the ready
    /// line), or as it is after 10 s.
    fn stderr_with(&self, what: &str) -> String {
        wait_for(10, || self.stderr.lock().unwrap().contains(what));
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `signpost serve --config CONFIG` (no `--listen`: the configured listeners count).
/// Ok with the ready line, or Err with standard error when the process exits first.
fn serve(dir: &TempDir, config: &std::path::Path) -> Result<Started, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .env_remove("NOTIFY_SOCKET")
        .env("SIGNPOST_CONTROL", dir.path("control.sock"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start signpost");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let buf = stderr.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut b = buf.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
    });
    // An empty line: stdout closed, the process ended without being ready.
    let ready = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    if ready.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        let text = stderr.lock().unwrap().clone();
        return Err(text);
    }
    Ok(Started {
        child,
        ready,
        stderr,
    })
}

/// A configuration with the demo maps and data, and these `listen` and `metrics` sections.
fn config(dir: &TempDir, listen: &str, metrics: &str) -> std::path::PathBuf {
    demo_config(dir, &format!("listen:\n{listen}{metrics}"))
}

#[test]
fn an_optional_listener_that_cannot_be_bound_is_skipped_and_a_required_one_stops_the_start() {
    let dir = TempDir::new("optional-listen");
    let port = free_port();
    let unbindable = format!("192.0.2.1:{port}");
    let optional = config(
        &dir,
        &format!("  - 127.0.0.1:{port}\n  - {{address: \"{unbindable}\", optional: true}}\n"),
        "",
    );
    let s = serve(&dir, &optional).expect("an optional listener that cannot be bound is skipped");
    assert!(
        s.ready.contains(&format!("udp 127.0.0.1:{port}")),
        "{}",
        s.ready
    );
    assert!(!s.ready.contains("192.0.2.1"), "{}", s.ready);
    let err = s.stderr_with(&unbindable);
    assert!(
        err.contains("optional") && err.contains(&unbindable),
        "no warning naming the skipped listener: {err}"
    );
    // It answers on the listener it has.
    let out = Command::new("dig")
        .args([
            "+short",
            "+time=2",
            "+tries=2",
            "-p",
            &port.to_string(),
            "@127.0.0.1",
            "www.example.test",
            "A",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.0.2.80");
    drop(s);

    // The same address, not optional: the start fails and says why.
    let required = config(
        &dir,
        &format!("  - 127.0.0.1:{port}\n  - \"{unbindable}\"\n"),
        "",
    );
    let err = match serve(&dir, &required) {
        Ok(s) => panic!("started without a required listener: {}", s.ready),
        Err(e) => e,
    };
    assert!(err.contains(&unbindable), "{err}");

    // Every listener optional and none bound: nothing would answer, so it does not start.
    let none = config(
        &dir,
        &format!("  - {{address: \"{unbindable}\", optional: true}}\n"),
        "",
    );
    let err = match serve(&dir, &none) {
        Ok(s) => panic!("started with no listener: {}", s.ready),
        Err(e) => e,
    };
    assert!(
        err.contains("no listener could be bound") && err.contains(&unbindable),
        "{err}"
    );
}

/// A listener that serves neither UDP nor TCP, and an address listed twice, are refused by
/// `check` (and so by `serve`), with their positions: either would start a server that does
/// not serve what the configuration says.
#[test]
fn a_listener_serving_nothing_or_listed_twice_is_refused() {
    let dir = TempDir::new("listen-errors");
    let port = free_port();
    for (listen, expected) in [
        (
            format!("  - {{address: \"127.0.0.1:{port}\", udp: false, tcp: false}}\n"),
            "listen[0]: \"127.0.0.1:PORT\" serves neither UDP nor TCP",
        ),
        (
            format!(
                "  - 127.0.0.1:{port}\n  - {{address: \"127.0.0.1:{port}\", optional: true}}\n"
            ),
            "listen[1]: \"127.0.0.1:PORT\" is listed twice (also listen[0])",
        ),
        // A wrong value is reported at its key, by name (not as "did not match any variant").
        (
            format!("  - {{address: \"127.0.0.1:{port}\", optional: \"yes\"}}\n"),
            "listen[0].optional: invalid type: string \"yes\", expected a boolean",
        ),
    ] {
        let path = config(&dir, &listen, "");
        let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["check", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).replace(&port.to_string(), "PORT");
        assert!(!out.status.success() && err.contains(expected), "{err}");
        assert!(serve(&dir, &path).is_err(), "serve started with {listen}");
    }
}

#[test]
fn an_optional_metrics_endpoint_that_cannot_be_bound_is_skipped() {
    let dir = TempDir::new("optional-metrics");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let listen = format!("  - 127.0.0.1:{}\n", free_port());
    let optional = config(
        &dir,
        &listen,
        &format!("metrics:\n  listen: {taken}\n  optional: true\n"),
    );
    let s = serve(&dir, &optional).expect("an optional metrics endpoint is skipped");
    assert!(!s.ready.contains("metrics"), "{}", s.ready);
    let err = s.stderr_with("serving without metrics");
    assert!(err.contains("serving without metrics"), "{err}");
    drop(s);

    let required = config(&dir, &listen, &format!("metrics:\n  listen: {taken}\n"));
    let err = match serve(&dir, &required) {
        Ok(s) => panic!("started without its metrics endpoint: {}", s.ready),
        Err(e) => e,
    };
    assert!(err.contains(&taken.to_string()), "{err}");
    drop(held);
}
