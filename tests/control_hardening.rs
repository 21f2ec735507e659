//! The control socket and the state file against careless and hostile input, each against the
//! real binary: a second server cannot take a running server's socket; connections are
//! bounded in number and idle time, and running out of descriptors does not spin; `--expires`
//! and reasons are checked; `set` and `clear` are all or nothing; `ctl` gives up on a silent
//! socket; the state file's temporary file is never the file itself.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `signpost ARGS`, killing it if it has not exited after `secs` seconds (then panics).
fn run_bounded(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(args)
        .env(
            "SIGNPOST_CONTROL",
            "/nonexistent/signpost-test/control.sock",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "signpost {args:?} still running after {secs} s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `signpost ctl --socket SOCK ARGS` (human output), bounded in time.
fn ctl_text(sock: &std::path::Path, args: &[&str]) -> Output {
    let mut a = vec!["ctl", "--socket", sock.to_str().unwrap()];
    a.extend_from_slice(args);
    run_bounded(&a, 60)
}

/// Sends one raw request line and returns the response.
fn raw(sock: &std::path::Path, line: &str) -> serde_json::Value {
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(line.as_bytes()).unwrap();
    c.write_all(b"\n").unwrap();
    let mut resp = String::new();
    BufReader::new(c).read_line(&mut resp).unwrap();
    serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{e}: {resp:?}"))
}

fn err_of(v: &serde_json::Value) -> String {
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().unwrap().to_string()
}

/// The answer for a German client: fra1 (192.0.2.10) when it is up, ams1 when it is not.
fn de(s: &Server) -> String {
    s.short(&["dl.example.test", "+subnet=81.2.69.0/24"])
}

#[test]
fn a_second_server_does_not_take_a_running_servers_socket() {
    let dir = TempDir::new("steal");
    let cfg = demo_config(&dir, "");
    let sock = dir.path("ctl.sock");
    let first = Server::with_control(&cfg, &dir);
    let ino = std::fs::metadata(&sock).unwrap().ino();
    let second = run_bounded(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--control",
            sock.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        60,
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use"), "{err}");
    assert_eq!(std::fs::metadata(&sock).unwrap().ino(), ino, "same socket");
    // The socket still reaches the first server.
    assert!(first.ctl(&["set", "fra1", "down"]).0);
    assert_eq!(de(&first), "192.0.2.11");
    assert!(
        !dir.0.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".sp-"))
    );

    // A server killed without cleaning up leaves a socket nothing answers on: the next one
    // removes it and binds its own.
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(sock.exists(), "SIGKILL leaves the socket file");
    let next = Server::with_control(&cfg, &dir);
    assert!(next.ctl(&["status"]).0);
    drop(next);

    // Something that is not a socket is never removed.
    let plain = dir.path("plain");
    std::fs::write(&plain, "keep me").unwrap();
    let out = run_bounded(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--control",
            plain.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        60,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");
}

#[test]
fn on_the_default_path_a_second_server_serves_without_a_socket() {
    let dir = TempDir::new("stealdefault");
    let cfg = demo_config(&dir, "");
    let sock = dir.path("default.sock");
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("SIGNPOST_CONTROL", &sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (child, line)
    };
    let (mut a, line) = start();
    assert!(line.starts_with("signpost: ready"), "{line}");
    let ino = std::fs::metadata(&sock).unwrap().ino();
    let (mut b, line) = start();
    assert!(line.starts_with("signpost: ready"), "{line}");
    assert_eq!(std::fs::metadata(&sock).unwrap().ino(), ino);
    b.kill().unwrap();
    let out = b.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use"), "{err}");
    assert!(err.contains("serving without a control socket"), "{err}");
    assert!(ctl_text(&sock, &["status"]).status.success());
    a.kill().unwrap();
    a.wait().unwrap();
}

#[test]
fn control_connections_are_bounded_and_idle_ones_closed() {
    let dir = TempDir::new("ctllimit");
    let cfg = demo_config(
        &dir,
        "control: { max_connections: 4, idle_timeout_ms: 1500 }\n",
    );
    let s = Server::with_control(&cfg, &dir);
    let sock = dir.path("ctl.sock");
    let idle: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    // Give the server the moment it needs to accept them.
    assert!(wait_for(10, || {
        let out = ctl_text(&sock, &["status"]);
        !out.status.success()
    }));
    let out = ctl_text(&sock, &["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("too many control connections (4 open)"),
        "{err}"
    );
    // Each idle connection is told why and closed after the timeout.
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        assert!(all.contains("no complete request for 1.5 s"), "{all:?}");
    }
    assert!(wait_for(10, || ctl_text(&sock, &["status"])
        .status
        .success()));
    // A client sending a byte now and then is closed all the same: the whole line must come
    // within the timeout.
    let mut slow = UnixStream::connect(&sock).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in br#"{"cmd":"status"        "#.iter().cycle().take(100) {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a dribbling client is closed");
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(s);
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn running_out_of_descriptors_does_not_spin_the_accept_loop() {
    let dir = TempDir::new("ctlemfile");
    let cfg = demo_config(
        &dir,
        "control: { max_connections: 1000, idle_timeout_ms: 60000 }\n",
    );
    let s = Server::with_control(&cfg, &dir);
    let sock = dir.path("ctl.sock");
    let pid = s.child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = format!("--nofile={}:{}", open + 4, open + 4);
    let prlimit = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .status()
        .unwrap();
    assert!(prlimit.success());
    // A few more connections than descriptors: the rest wait in the backlog, and each accept
    // fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(UnixStream::connect(&sock).unwrap());
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - before;
    eprintln!("CPU while out of descriptors: {used} ticks in 3 s");
    // A spinning accept loop uses as much of a core as it gets (up to 300 ticks in 3 s at
    // 100 Hz; 110 when this machine was busy); one that backs off, next to nothing.
    assert!(
        used < 50,
        "the server used {used} ticks of CPU in 3 s while out of descriptors"
    );
    // Answers go on (UDP needs no new descriptor), and control works again once the
    // connections are gone.
    assert_eq!(de(&s), "192.0.2.10");
    drop(held);
    assert!(wait_for(20, || ctl_text(&sock, &["status"])
        .status
        .success()));
    assert!(
        s.stderr().contains("cannot accept a connection"),
        "{}",
        s.stderr()
    );
}

#[test]
fn expires_out_of_range_is_refused() {
    let dir = TempDir::new("expires");
    let cfg = demo_config(&dir, "");
    let s = Server::with_control(&cfg, &dir);
    let sock = dir.path("ctl.sock");
    let out = ctl_text(
        &sock,
        &["set", "fra1", "down", "--expires", "18446744073709551615"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--expires"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in ["18446744073709551615", "315360001"] {
        let v = raw(
            &sock,
            &format!(r#"{{"cmd":"set","node":"fra1","state":"down","expires_in":{n}}}"#),
        );
        assert!(
            err_of(&v).contains("`expires_in` must be 1..=315360000 seconds"),
            "{v}"
        );
    }
    assert_eq!(de(&s), "192.0.2.10", "nothing applied");
    // Ten years is accepted, and holds.
    assert!(s.ctl(&["set", "fra1", "down", "--expires", "315360000"]).0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(de(&s), "192.0.2.11");
    let (_, nodes) = s.ctl(&["nodes"]);
    let fra1 = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "fra1")
        .unwrap()
        .clone();
    assert!(
        fra1["admin"]["expires_at"].as_u64().unwrap() > 315_360_000,
        "{fra1}"
    );
}

#[test]
fn set_and_clear_are_all_or_nothing() {
    let dir = TempDir::new("allornothing");
    let state = dir.path("state/state.json");
    std::fs::create_dir_all(dir.path("state")).unwrap();
    let cfg = demo_config(&dir, &format!("state_file: {}\n", state.display()));
    let s = Server::with_control(&cfg, &dir);
    assert!(s.ctl(&["set", "ams1", "drain", "--reason", "kept"]).0);
    // The state file's place is taken by a directory with something in it: no write can
    // replace it (not even as root).
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("x"), "").unwrap();
    let sock = dir.path("ctl.sock");
    let out = ctl_text(&sock, &["set", "fra1", "down"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(de(&s), "192.0.2.10", "fra1 still answers");
    assert!(
        s.why("fra1").contains("no health check"),
        "{}",
        s.why("fra1")
    );
    assert!(err.contains("cannot write"), "{err}");
    assert!(err.contains("not applied"), "{err}");
    // Nor does a clear that cannot be saved take effect.
    let out = ctl_text(&sock, &["clear", "ams1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stays in force"), "{err}");
    assert!(
        s.why("ams1").contains("admin override: kept"),
        "{}",
        s.why("ams1")
    );
    // `clear` of a node the maps do not have says so.
    let out = ctl_text(&sock, &["clear", "nosuch"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown node \"nosuch\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl_text(&sock, &["clear", "fra1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no admin override for \"fra1\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_state_directory_is_reported_at_start() {
    let dir = TempDir::new("statedir");
    let cfg = demo_config(&dir, "");
    let state = dir.path("no/such/dir/state.json");
    let out = run_bounded(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--state-file",
            state.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        60,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("its directory cannot be used"), "{err}");
    assert!(err.contains("no/such/dir"), "{err}");
}

#[test]
fn the_state_file_is_replaced_atomically_whatever_its_name() {
    let dir = TempDir::new("statetmp");
    let cfg = demo_config(&dir, "");
    let state = dir.path("x.tmp");
    // Entries for a node the maps do not have and with an unknown state are reported.
    std::fs::write(
        &state,
        r#"{"overrides":[{"node":"gone1","state":"down"},{"node":"fra1","state":"sideways"}]}"#,
    )
    .unwrap();
    let ino = std::fs::metadata(&state).unwrap().ino();
    let sock = dir.path("ctl.sock");
    let s = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control",
        sock.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
    ]);
    let err = s.stderr();
    assert!(err.contains("unknown state dropped"), "{err}");
    assert!(err.contains("sideways"), "{err}");
    assert!(err.contains("gone1"), "{err}");
    assert!(err.contains("the maps do not have"), "{err}");
    assert!(s.ctl(&["set", "fra1", "down", "--reason", "r"]).0);
    // Written to a temporary file and renamed over the old one: a new inode, never the old
    // file truncated in place.
    assert_ne!(std::fs::metadata(&state).unwrap().ino(), ino);
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains("fra1") && text.contains("gone1"), "{text}");
    let left: Vec<String> = dir
        .0
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") && n != "x.tmp")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn reasons_are_checked_and_printed_escaped() {
    let dir = TempDir::new("reasons");
    let cfg = demo_config(&dir, "");
    // A hand-edited state file may hold anything: the terminal must not act on it.
    let state = dir.path("state.json");
    let evil = "\u{1b}[2J\r\nfake1            up     all fine\u{9b}31m\u{202e}";
    std::fs::write(
        &state,
        serde_json::json!({"overrides":[{"node":"fra1","state":"drain","reason":evil}]})
            .to_string(),
    )
    .unwrap();
    let sock = dir.path("ctl.sock");
    let s = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control",
        sock.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
    ]);
    let out = ctl_text(&sock, &["nodes"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let nodes = s.ctl(&["nodes"]).1["nodes"].as_array().unwrap().len();
    assert_eq!(text.lines().count(), nodes + 1, "{text}");
    assert!(
        !text.contains(['\u{1b}', '\r', '\u{9b}', '\u{202e}']),
        "{text:?}"
    );
    assert!(text.contains("\\x1b[2J\\r\\nfake1"), "{text}");
    let json = ctl_text(&sock, &["--json", "nodes"]);
    let line = String::from_utf8(json.stdout).unwrap();
    assert!(
        !line.contains(['\u{1b}', '\r', '\u{9b}', '\u{202e}']),
        "{line:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(v.to_string().contains("all fine"));
    // New reasons with control characters, or too long, are refused.
    let v = raw(
        &sock,
        &serde_json::json!({"cmd":"set","node":"ams1","state":"down","reason":"a\r\nb"})
            .to_string(),
    );
    assert!(err_of(&v).contains("control character U+000D"), "{v}");
    let out = ctl_text(
        &sock,
        &["set", "ams1", "down", "--reason", &"x".repeat(513)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("longer than 512 bytes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = raw(
        &sock,
        r#"{"cmd":"push","source":"m\u001b]0;x\u0007","states":[{"node":"ams1","state":"down","ttl":5}]}"#,
    );
    assert!(
        err_of(&v).contains("`source` contains the control character"),
        "{v}"
    );
    assert_eq!(
        s.short(&["dl.example.test", "+subnet=81.2.69.0/24"]),
        "192.0.2.11",
        "ams1 untouched (fra1 drains)"
    );
}

#[test]
fn ctl_gives_up_on_a_socket_that_never_answers() {
    let dir = TempDir::new("silent");
    let sock = dir.path("silent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // Accepts, reads, never answers; bounded to 30 s.
    let t = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 1024];
        while c.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let started = Instant::now();
    let out = ctl_text(&sock, &["--timeout", "1", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no response from"), "{err}");
    assert!(err.contains("within 1 s"), "{err}");
    assert!(err.contains("--timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(25));
    drop(UnixStream::connect(&sock));
    let _ = t.join();
}

#[test]
fn the_socket_is_never_reachable_with_looser_permissions() {
    let dir = TempDir::new("umask");
    let sock = dir.path("ctl.sock");
    let cfg = demo_config(
        &dir,
        &format!(
            "control: {{ socket: {}, mode: \"0600\" }}\n",
            sock.display()
        ),
    );
    // Under umask 000 a socket bound in place would be 0777 until its mode is set; watch the
    // path from the start and check every mode seen.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "umask 000; exec \"$0\" serve --config \"$1\" --listen 127.0.0.1:0",
            env!("CARGO_BIN_EXE_signpost"),
            cfg.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("stderr")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = std::collections::BTreeSet::new();
    // Bounded: until the server answers on the socket, exits, or 60 s.
    while Instant::now() < deadline {
        if let Ok(m) = std::fs::symlink_metadata(&sock) {
            seen.insert(m.permissions().mode() & 0o777);
            if UnixStream::connect(&sock).is_ok() {
                break;
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap_or_default();
    assert_eq!(
        seen,
        std::collections::BTreeSet::from([0o600]),
        "{seen:?}\n{stderr}"
    );
}

/// A reload that changes a setting read at start only (listen addresses, workers, ...) says
/// so, in the reply and in `status`, instead of a bare `ok`.
#[test]
fn a_reload_says_which_settings_need_a_restart() {
    let dir = TempDir::new("restartnote");
    let cfg = demo_config(&dir, "");
    let s = Server::with_control(&cfg, &dir);
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    assert!(v.get("notes").is_none(), "nothing changed: {v}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    dir.write(
        "signpost.yaml",
        &format!("{text}workers: 3\nlisten: [\"127.0.0.1:5999\"]\n"),
    );
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    let note = v["notes"][0].as_str().unwrap_or_default().to_string();
    assert!(note.contains("listen, workers"), "{v}");
    assert!(note.contains("restart"), "{v}");
    let (_, st) = s.ctl(&["status"]);
    assert_eq!(st["last_reload"]["notes"][0], note.as_str(), "{st}");
    // The server still answers where it started.
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args([
            "ctl",
            "--socket",
            dir.path("ctl.sock").to_str().unwrap(),
            "reload",
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("note: changed in the configuration"),
        "{shown}"
    );
    s.terminate();
}

/// The settings read at start only beyond the sockets (the reload thread's own timing, the
/// control socket's limits, the checks' first state) are named too, and are not applied.
#[test]
fn a_reload_names_the_reload_control_and_health_settings_it_cannot_apply() {
    let dir = TempDir::new("restartnote2");
    let cfg = demo_config(&dir, "");
    let s = Server::with_control(&cfg, &dir);
    let text = std::fs::read_to_string(&cfg).unwrap();
    dir.write(
        "signpost.yaml",
        &format!(
            "{}control: {{max_connections: 1, idle_timeout_ms: 200}}\n\
             health: {{initial: down, max_concurrent_checks: 2}}\n",
            text.replace("reload_debounce_ms: 200", "reload_debounce_ms: 50")
                .replace("reload_priority: normal", "reload_priority: low")
        ),
    );
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    let note = v["notes"][0].as_str().unwrap_or_default().to_string();
    assert!(
        note.contains(
            "reload_debounce_ms, reload_priority, control.max_connections, \
             control.idle_timeout_ms, health.initial, health.max_concurrent_checks"
        ),
        "{v}"
    );
    assert!(note.contains("restart"), "{v}");
    // The control socket keeps the limits it started with: a connection held open does not
    // keep a second one out (64, not 1), and is not closed after the new idle timeout.
    let mut idle = UnixStream::connect(dir.path("ctl.sock")).unwrap();
    let (ok, st) = s.ctl(&["status"]);
    assert!(ok, "{st}");
    assert_eq!(st["last_reload"]["notes"][0], note.as_str(), "{st}");
    std::thread::sleep(Duration::from_millis(600));
    idle.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    match idle.read(&mut byte) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the idle connection was answered or closed: {other:?}"),
    }
    s.terminate();
}
