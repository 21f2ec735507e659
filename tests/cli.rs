//! The command line and the shipped example files: `--version`, `--help`, `check` on the
//! embedded default, every example configuration and map file rejecting an unknown key, and
//! standard output going away (`| head`, a full disk) handled without a panic.

mod common;
use common::*;

use std::process::Command;

fn signpost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn version_help_and_check() {
    // The version, and the commit of the build from a git checkout (tests/man_completions.rs
    // checks which).
    let out = signpost(&["--version"]);
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let plain = format!("signpost {}", env!("CARGO_PKG_VERSION"));
    assert!(
        version == plain || version.starts_with(&format!("{plain} (")),
        "{version}"
    );
    let out = signpost(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "check", "lookup", "explain", "diff", "ctl"] {
        assert!(text.contains(sub), "{text}");
    }
    let out = signpost(&["serve", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
    let out = signpost(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: 1 zone(s), 2 service(s), 8 node(s)")
    );
    // A missing configuration file is an error naming it.
    let out = signpost(&["check", "--config", "/nonexistent/signpost.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/signpost.yaml: cannot read")
    );
    // ctl without a server: exit code 3.
    let out = signpost(&["ctl", "--socket", "/nonexistent.sock", "status"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn every_example_file_rejects_an_unknown_key() {
    let dir = TempDir::new("bogus");
    copy_demo_maps(&dir);
    let demo = std::fs::read_to_string(root().join("testdata/demo/signpost.yaml")).unwrap();
    let demo = demo
        .replace("../../maps/", "maps/")
        .replace("../geoip/", &format!("{}/", testdata("geoip")))
        .replace("../bgp/", &format!("{}/", testdata("bgp")))
        .replace("[keys/", &format!("[{}/", testdata("demo/keys")));
    let cfg = dir.write("signpost.yaml", &demo);
    let check = || signpost(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(
        check().status.success(),
        "{}",
        String::from_utf8_lossy(&check().stderr)
    );
    // The configuration: at the top, in a zone, in a record.
    for (from, to, path) in [
        ("workers: 1\n", "workers: 1\nbogus_key: 1\n", "bogus_key"),
        (
            "    ttl: 3600\n",
            "    ttl: 3600\n    bogus_key: 1\n",
            "zones[0].bogus_key",
        ),
        (
            "{ name: www, type: A,",
            "{ bogus_key: 1, name: www, type: A,",
            "zones[0].records[3].bogus_key",
        ),
    ] {
        assert!(demo.contains(from), "{from}");
        dir.write("signpost.yaml", &demo.replacen(from, to, 1));
        let out = check();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            err.contains(&format!("{path}: unknown field `bogus_key`")),
            "{err}"
        );
    }
    dir.write("signpost.yaml", &demo);
    // Each map file: in the first item of its section.
    for (file, from, path) in [
        ("nodes.yaml", "  - name: fra1 ", "nodes[0].bogus_key"),
        ("regions.yaml", "  - name: europe\n", "regions[0].bogus_key"),
        ("services.yaml", "    ttl: 60\n", "services[0].bogus_key"),
    ] {
        let original = std::fs::read_to_string(dir.path("maps").join(file)).unwrap();
        assert!(original.contains(from), "{file}: {from}");
        let edited = original.replacen(
            from,
            &format!(
                "{from}{}bogus_key: 1\n",
                if from.ends_with('\n') {
                    "    "
                } else {
                    "\n    "
                }
            ),
            1,
        );
        dir.write(&format!("maps/{file}"), &edited);
        let out = check();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{path}: unknown field `bogus_key`")),
            "{file}: {err}"
        );
        dir.write(&format!("maps/{file}"), &original);
    }
    assert!(check().status.success());
}

#[test]
fn ecs_ignore_policy() {
    let dir = TempDir::new("ecsignore");
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    std::fs::copy(root().join("maps/nodes.yaml"), dir.path("maps/nodes.yaml")).unwrap();
    std::fs::copy(
        root().join("maps/regions.yaml"),
        dir.path("maps/regions.yaml"),
    )
    .unwrap();
    let services = std::fs::read_to_string(root().join("maps/services.yaml"))
        .unwrap()
        .replace("    ecs: use\n", "    ecs: ignore\n");
    dir.write("maps/services.yaml", &services);
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    // The ECS says GB, but the policy decides by the source (127.0.0.1: default → iad1), scope 0.
    let out = s.dig(&["dl.example.test", "+subnet=81.2.69.0/24"]);
    assert!(out.contains("198.51.100.10"), "{out}");
    assert!(out.contains("CLIENT-SUBNET: 81.2.69.0/24/0"), "{out}");
    assert!(
        s.short(&["TXT", "_why.dl.example.test", "+subnet=81.2.69.0/24"])
            .contains("ECS ignored by policy")
    );
}

/// `signpost lookup < many | head -1`: the reader goes away after one line; the command ends
/// quietly with success (it panicked on EPIPE before). The output is far more than a pipe
/// holds, so the write after the reader closed is certain.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .arg("lookup")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..20_000u32 {
            if writeln!(stdin, "10.{}.{}.1", i / 250 % 250, i % 250).is_err() {
                break;
            }
        }
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("10.0.0.1"), "{first:?}");
    // The reader is dropped here: the rest of the output meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// A server whose standard output cannot be written (`/dev/full`) still starts and answers:
/// the "ready" line is a convenience, not a condition.
#[test]
fn a_server_with_a_full_standard_output_still_serves() {
    let dir = TempDir::new("stdout-full");
    let port = speakers::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .env_remove("NOTIFY_SOCKET")
        .env("SIGNPOST_CONTROL", dir.path("control.sock"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let answered = wait_for(30, || {
        let out = Command::new("dig")
            .args(["+short", "+time=1", "+tries=1", "-p", &port.to_string()])
            .args(["@127.0.0.1", "www.example.test", "A"])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered && alive, "answered {answered}, alive {alive}");
}
