//! The systemd notify protocol against the real binary: a datagram socket in `NOTIFY_SOCKET`
//! (a path, and an abstract `@name`) receives `READY=1` only once the server answers real UDP
//! queries, `RELOADING=1` (with `MONOTONIC_USEC=`) then `READY=1` around reloads, and
//! `STOPPING=1` on SIGTERM. Also: log lines written to a file carry no colour codes.

mod common;
use common::*;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The datagrams received so far, each as its text.
fn drain(sock: &UnixDatagram, into: &mut Vec<String>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        into.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
}

/// Waits (at most `secs`) for a datagram for which `done` holds; returns every datagram read.
fn until(sock: &UnixDatagram, secs: u64, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let stop = done(&m);
            got.push(m);
            if stop {
                return got;
            }
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no awaited notification within {secs} s; got {got:?}");
}

fn has(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// One real UDP query (SOA of the zone); true when an answer with rcode NOERROR comes back.
fn answers(server: SocketAddr, id: u16) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // Connected: before the server binds, the port's "unreachable" comes back as an error.
    s.connect(server).unwrap();
    if s.send(&query(id, 0x0000, "example.test", 6)).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    match s.recv(&mut buf) {
        Ok(n) => n >= 12 && buf[..2] == id.to_be_bytes() && rcode(&buf[..n]) == 0,
        Err(_) => false,
    }
}

/// A loopback port free for both UDP and TCP (the server binds both on it).
fn free_port() -> u16 {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Kills the server when the test ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Queries the starting server until READY=1 arrives, reading the datagrams before each query,
/// so that a READY=1 seen was sent before the query that follows it; then every query must be
/// answered. Returns the datagrams and how many queries failed before READY=1, or the log when
/// the server exited first.
fn wait_ready(
    child: &mut Child,
    notify: &UnixDatagram,
    server: SocketAddr,
    log: &dyn Fn() -> String,
) -> Result<(Vec<String>, usize), String> {
    let mut messages = Vec::new();
    let (mut failed_before, mut answered_before) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut id = 0u16;
    loop {
        assert!(
            Instant::now() < deadline,
            "no READY=1 within 60 s; got {messages:?}\n{}",
            log()
        );
        if let Some(st) = child.try_wait().unwrap() {
            return Err(format!("signpost exited ({st}) before READY=1:\n{}", log()));
        }
        drain(notify, &mut messages);
        id += 1;
        if messages.iter().any(|m| has(m, "READY=1")) {
            for n in 0..5 {
                assert!(
                    answers(server, id + n),
                    "READY=1 came before the server answered (after {failed_before} failed and \
                     {answered_before} answered queries): {messages:?}"
                );
            }
            return Ok((messages, failed_before));
        }
        if answers(server, id) {
            answered_before += 1;
        } else {
            failed_before += 1;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn ready_only_once_it_answers_then_reloading_ready_and_stopping() {
    let dir = TempDir::new("systemd");
    // A health check against a port that accepts and never replies holds the first answer back
    // for the startup wait: the server is running but not yet answering.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    let map = format!(
        r#"nodes:
  - {{ name: slow, ipv4: [192.0.2.1], check: {{ kind: http, address: 127.0.0.1, port: {silent_port}, timeout_ms: 1500 }} }}
  - {{ name: plain, ipv4: [192.0.2.2] }}
regions:
  - {{ name: all, nodes: [slow, plain] }}
services:
  - names: [dl.example.test]
    rules:
      - {{ default: true, regions: [all] }}
"#
    );
    dir.write("maps/map.yaml", &map);
    let cfg = config_with_maps(&dir, &["maps/"], "health: { startup_wait_ms: 1500 }\n");

    let notify_path = dir.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    let control = dir.path("ctl.sock");
    let stderr_path = dir.path("stderr.log");
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let spawn = |server: SocketAddr| {
        let child = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .args(["--listen", &server.to_string()])
            .args(["--control", control.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        Running(child)
    };
    // The port was free when chosen, but a test running alongside may take it before the
    // server binds it: the server then exits with "cannot bind", and another port is tried.
    let mut attempts = 0;
    let (mut child, server, messages, failed_before) = loop {
        attempts += 1;
        let server: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut child = spawn(server);
        match wait_ready(&mut child.0, &notify, server, &log) {
            Ok((messages, failed)) => break (child, server, messages, failed),
            Err(text) if attempts < 3 && text.contains("cannot bind") => continue,
            Err(text) => panic!("{text}"),
        }
    };
    // The startup wait held the answers back: the loop saw the server not answering first, so
    // a READY=1 sent at start (before the checks, before binding) would have been caught.
    assert!(failed_before > 0, "no query failed before READY=1");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(has(&messages[0], "STATUS=serving"), "{messages:?}");

    // SIGHUP: RELOADING=1 with the monotonic time, then READY=1.
    signal(&child.0, "-HUP");
    let got = until(&notify, 30, |m| has(m, "READY=1"));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(has(&got[0], "RELOADING=1"), "{got:?}");
    let usec = got[0]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {got:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{usec}");
    assert!(has(&got[1], "STATUS=serving; last reload ok"), "{got:?}");

    // `ctl reload` answers after the build: both messages are already there.
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["ctl", "--socket", control.to_str().unwrap(), "reload"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = Vec::new();
    drain(&notify, &mut got);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        has(&got[0], "RELOADING=1") && has(&got[1], "READY=1"),
        "{got:?}"
    );

    // A broken map: the reload fails, the old data keeps serving, and READY=1 says so.
    dir.write(
        "maps/map.yaml",
        "nodes: [ {name: x, ipv4: [not-an-address]} ]\n",
    );
    let got = until(&notify, 30, |m| {
        has(m, "READY=1") && m.contains("STATUS=serving; last reload failed")
    });
    assert!(has(&got[0], "RELOADING=1"), "{got:?}");
    assert!(answers(server, 1000));

    // SIGTERM: STOPPING=1, and the server exits cleanly.
    signal(&child.0, "-TERM");
    until(&notify, 30, |m| has(m, "STOPPING=1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "signpost did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", log());

    // Logs to a file: no ANSI colour codes.
    let text = log();
    assert!(text.contains("serving"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file:\n{text}"
    );
    drop(silent);
}

#[test]
fn abstract_notify_socket() {
    let name = format!("signpost-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let notify = UnixDatagram::bind_addr(&addr).unwrap();
    notify.set_nonblocking(true).unwrap();
    let at = format!("@{name}");
    let dir = TempDir::new("abstract");
    let sock = dir.path("ctl.sock");
    let s = Server::start_with_env(
        &["--control", sock.to_str().unwrap()],
        "127.0.0.1:0",
        &[("NOTIFY_SOCKET", &at)],
    );
    let got = until(&notify, 30, |m| has(m, "READY=1"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(!s.short(&["example.test", "SOA"]).is_empty());
    // `ctl status` reports the version `--version` prints, commit included.
    let version = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let (ok, status) = s.ctl(&["status"]);
    assert!(ok);
    assert_eq!(
        format!("signpost {}", status["version"].as_str().unwrap()),
        version
    );
    assert!(s.terminate().success());
    until(&notify, 10, |m| has(m, "STOPPING=1"));
}

/// Colour codes only on a terminal: `script` gives the program one, with and without
/// `NO_COLOR`.
#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let bin = env!("CARGO_BIN_EXE_signpost");
    let on_tty = |no_color: Option<&str>| -> String {
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "script", "-qec"])
            .arg(format!("{bin} --log debug check"))
            .arg("/dev/null")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd
            .output()
            .expect("script (util-linux) gives the program a terminal");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_tty(None);
    assert!(coloured.contains("DEBUG"), "{coloured}");
    assert!(
        coloured.contains('\u{1b}'),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = on_tty(Some("1"));
    assert!(plain.contains("DEBUG"), "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "colour despite NO_COLOR:\n{plain}"
    );
    // Not a terminal: no colour.
    let out = Command::new(bin)
        .args(["--log", "debug", "check"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("DEBUG"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}

/// The unit file in `docs/systemd/` passes `systemd-analyze verify` (no unknown key, no bad
/// value) with the real binary in `ExecStart=`, names only options `serve` has, and keeps the
/// directives the notify protocol and the hardening rely on.
#[test]
fn the_unit_file_verifies() {
    let unit = std::fs::read_to_string(root().join("docs/systemd/signpost.service")).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=all",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=signpost",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RuntimeDirectory=signpost",
        "StateDirectory=signpost",
        "ConfigurationDirectory=signpost",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    // Every option of ExecStart= is one `serve` takes.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    let help = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/signpost"));
    assert_eq!(words.next(), Some("serve"));
    for w in words.filter(|w| w.starts_with("--")) {
        assert!(help.contains(w), "serve has no {w}");
    }
    // The default socket of a root `signpost ctl` is the one the unit opens.
    assert!(
        exec.contains("--control /run/signpost/control.sock"),
        "{exec}"
    );

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the unit is not verified");
        return;
    }
    let dir = TempDir::new("unit");
    let verify = |text: &str| -> std::process::Output {
        let path = dir.write("signpost.service", text);
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let here = unit.replace("/usr/local/bin/signpost", env!("CARGO_BIN_EXE_signpost"));
    let out = verify(&here);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    // The check sees mistakes (systemd only warns about an unknown key).
    let out = verify(&here.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ProtectHomes"), "{err}");
}
