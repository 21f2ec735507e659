//! The command line and the shipped example files: `--version`, `--help`, `check` on the
//! embedded default, and every example configuration and map file rejecting an unknown key.

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
        .replace("../bgp/", &format!("{}/", testdata("bgp")));
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
