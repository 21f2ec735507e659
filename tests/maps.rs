//! Maps and node selection, end to end: the real binary, real map files on disk, the demo
//! GeoIP and BGP data, queried with `dig +subnet=` and steered with `signpost ctl`.

mod common;
use common::*;

fn start_demo(dir: &TempDir) -> Server {
    let cfg = demo_config(dir, "");
    let sock = dir.path("ctl.sock");
    let state = dir.path("state.json");
    Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control",
        sock.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
    ])
}

/// (answer, scope, ttl) for an A or AAAA query with ECS.
fn ask(s: &Server, qtype: &str, subnet: &str) -> (String, u8, u32) {
    let out = s.dig(&["dl.example.test", qtype, &format!("+subnet={subnet}")]);
    let mut answers = Vec::new();
    let mut ttl = 0;
    for line in out.lines().filter(|l| l.starts_with("dl.example.test.")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        ttl = f[1].parse().unwrap();
        answers.push(f[4].to_string());
    }
    let scope = out
        .lines()
        .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
        .map(|c| c.rsplit('/').next().unwrap().trim().parse().unwrap())
        .unwrap_or(255);
    (answers.join(","), scope, ttl)
}

#[test]
fn rule_kinds_pick_the_right_region() {
    let dir = TempDir::new("rules");
    let s = start_demo(&dir);
    // Continent EU (GB), NA (US), OC (AU; here 1.1.1.0/24 is in AU).
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "192.0.2.10");
    assert_eq!(ask(&s, "A", "8.8.8.0/24").0, "198.51.100.10");
    assert_eq!(ask(&s, "A", "1.1.1.0/24").0, "203.0.113.10");
    // Continent AS (JP) and SA (BR), country NZ.
    assert_eq!(ask(&s, "A", "202.12.27.0/24").0, "203.0.113.20");
    assert_eq!(ask(&s, "A", "200.160.0.0/24").0, "203.0.113.30");
    assert_eq!(ask(&s, "A", "121.98.0.0/24").0, "203.0.113.10");
    // Prefix rule beats geography; its scope is the operator's /15 exactly.
    assert_eq!(ask(&s, "A", "198.18.7.0/24"), ("192.0.2.10".into(), 15, 60));
    // ASN rule (AS3320, from the BGP table) and the sponsor's local-only node.
    assert_eq!(ask(&s, "A", "80.128.0.0/24").0, "192.0.2.12");
    // dtag1 has no IPv6: AAAA for the same client comes from the next node of the region.
    assert_eq!(ask(&s, "AAAA", "80.128.0.0/24").0, "2001:db8:10::1");
    // Other German clients (not AS3320) never get the local-only node.
    let (other_de, _, _) = ask(&s, "A", "46.114.0.0/24");
    assert_ne!(other_de, "192.0.2.12");
    // No ECS: the source address (127.0.0.1, unknown to GeoIP) falls to the default rule.
    assert_eq!(s.short(&["dl.example.test"]), "198.51.100.10");
    // Non-global ECS is ignored (source address used, scope 0).
    assert_eq!(ask(&s, "A", "10.1.0.0/16"), ("198.51.100.10".into(), 0, 60));
}

#[test]
fn ipv6_clients_and_a_aaaa_consistency() {
    let dir = TempDir::new("v6");
    let s = start_demo(&dir);
    for (subnet, a, aaaa) in [
        ("2001:4860::/48", "198.51.100.10", "2001:db8:20::1"),
        ("2a00:1450::/48", "192.0.2.10", "2001:db8:10::1"),
        ("81.2.69.0/24", "192.0.2.10", "2001:db8:10::1"),
        ("1.1.1.0/24", "203.0.113.10", "2001:db8:30::1"),
    ] {
        assert_eq!(ask(&s, "A", subnet).0, a, "{subnet}");
        assert_eq!(ask(&s, "AAAA", subnet).0, aaaa, "{subnet}");
    }
    // sin1 has no IPv6: an Asian client's AAAA falls through to the next region with IPv6.
    assert_eq!(ask(&s, "AAAA", "202.12.27.0/24").0, "2001:db8:30::1");
}

#[test]
fn scopes_are_correct() {
    let dir = TempDir::new("scope");
    let s = start_demo(&dir);
    // Every address inside a returned scope gets the same answer.
    for subnet in [
        "81.2.69.0/24",
        "8.8.8.0/24",
        "1.1.1.0/24",
        "80.128.0.0/24",
        "198.18.7.0/24",
        "121.98.0.0/24",
        "41.0.0.0/24",
    ] {
        let (answer, scope, _) = ask(&s, "A", subnet);
        assert!(scope <= 24 && scope > 0, "{subnet}: scope {scope}");
        let base: std::net::Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
        let base = u32::from(base) & (u32::MAX << (32 - scope));
        for k in [0u32, 1, 2, 3] {
            let off = if scope == 32 {
                0
            } else {
                ((1u64 << (32 - scope)) - 1) as u32 / 3 * k
            };
            let probe = std::net::Ipv4Addr::from((base | off) & 0xffff_ff00);
            let (a2, s2, _) = ask(&s, "A", &format!("{probe}/24"));
            assert_eq!(a2, answer, "{probe} is inside {subnet}'s scope /{scope}");
            assert!(
                s2 >= scope,
                "{probe}: inner scope /{s2} is wider than /{scope}"
            );
        }
    }
}

#[test]
fn why_explains_the_decision() {
    let dir = TempDir::new("why");
    let s = start_demo(&dir);
    let out = s.short(&["TXT", "_why.dl.example.test", "+subnet=81.2.69.0/24"]);
    for want in [
        "client 81.2.69.0 (ECS)",
        "country: GB",
        "continent: EU",
        "asn: AS20712 (prefix 81.2.64.0/18",
        "rule: continent at",
        "maps/services.yaml:",
        "region 1: europe: dtag1 w200 up (local-only, not for this client), fra1 w100 up, ams1 w50 up",
        "answer: fra1 [192.0.2.10] from region europe",
        "scope: /",
        "data: maps ",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let out = s.short(&["TXT", "_why.dl.example.test", "+subnet=80.128.0.0/24"]);
    assert!(
        out.contains("rule: asn at") && out.contains("answer: dtag1"),
        "{out}"
    );
    // _why works without ECS too, and says the source address was used.
    assert!(
        s.short(&["TXT", "_why.dl.example.test"])
            .contains("client 127.0.0.1 (source address)")
    );
}

#[test]
fn why_can_be_limited_or_disabled() {
    let dir = TempDir::new("whyoff");
    let cfg = demo_config(&dir, "why: { allow: [192.0.2.0/24] }\n");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    assert!(
        s.dig(&["TXT", "_why.dl.example.test"])
            .contains("status: REFUSED")
    );
    drop(s);
    let dir = TempDir::new("whyoff2");
    let cfg = demo_config(&dir, "why: { enabled: false }\n");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    assert!(
        s.dig(&["TXT", "_why.dl.example.test"])
            .contains("status: NXDOMAIN")
    );
}

#[test]
fn health_fall_through_degraded_ttl_and_last_resort() {
    let dir = TempDir::new("health");
    let s = start_demo(&dir);
    let gb = "81.2.69.0/24";
    assert_eq!(ask(&s, "A", gb), ("192.0.2.10".into(), 16, 60));
    let (ok, _) = s.ctl(&["set", "fra1", "down", "--reason", "disk"]);
    assert!(ok);
    // Next node of the region, with the degraded TTL (the region is not whole).
    assert_eq!(
        (ask(&s, "A", gb).0, ask(&s, "A", gb).2),
        ("192.0.2.11".into(), 20)
    );
    s.ctl(&["set", "ams1", "down"]);
    // Region empty: the next region of the chain.
    assert_eq!(
        (ask(&s, "A", gb).0, ask(&s, "A", gb).2),
        ("198.51.100.10".into(), 20)
    );
    s.ctl(&["set", "iad1", "down"]);
    s.ctl(&["set", "sjc1", "down"]);
    // Nothing in the chain: the last-resort set (fra1, iad1), round robin, whatever the health.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(ask(&s, "A", gb).0);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["192.0.2.10".to_string(), "198.51.100.10".to_string()]
    );
    // Drain: used only when nothing else in the chain is up.
    s.ctl(&["set", "ams1", "drain"]);
    assert_eq!(ask(&s, "A", gb).0, "192.0.2.11");
    s.ctl(&["set", "sjc1", "up"]);
    assert_eq!(ask(&s, "A", gb).0, "198.51.100.11");
    for n in ["fra1", "ams1", "iad1", "sjc1"] {
        assert!(s.ctl(&["clear", n]).0, "{n}");
    }
    assert_eq!(ask(&s, "A", gb), ("192.0.2.10".into(), 16, 60));
    // Clearing twice is an error with a clear message, and the exit code says so.
    let (ok, v) = s.ctl(&["clear", "fra1"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("no admin override"));
    let (ok, v) = s.ctl(&["set", "nosuch", "down"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("unknown node"));
}

#[test]
fn overrides_persist_across_restart_pushes_do_not() {
    let dir = TempDir::new("persist");
    let s = start_demo(&dir);
    assert!(s.ctl(&["set", "fra1", "down", "--reason", "maintenance"]).0);
    assert!(s.ctl(&["push", "--source", "nagios", "ams1=down:600"]).0);
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "198.51.100.10");
    let (_, nodes) = s.ctl(&["nodes"]);
    let fra1 = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "fra1")
        .unwrap();
    assert_eq!(fra1["state"], "down");
    assert!(fra1["why"].as_str().unwrap().contains("maintenance"));
    // kill -9: nothing is flushed at exit, the state file was already written.
    drop(s);
    let s = start_demo(&dir);
    // fra1 still down (admin), ams1 back up (pushes are not kept).
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "192.0.2.11");
    // A push expires by itself.
    assert!(s.ctl(&["push", "ams1=down:1"]).0);
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "198.51.100.10");
    assert!(wait_for(15, || ask(&s, "A", "81.2.69.0/24").0 == "192.0.2.11"));
    // A push of an unknown node is refused as a whole.
    let (ok, v) = s.ctl(&["push", "ams1=down:60", "ghost=down:60"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("ghost"));
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "192.0.2.11");
}

#[test]
fn reload_good_and_broken_maps() {
    let dir = TempDir::new("reload");
    let s = start_demo(&dir);
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "192.0.2.10");
    // A good edit: Europe goes to North America. Written by rename, as tools do.
    let services = std::fs::read_to_string(dir.path("maps/services.yaml")).unwrap();
    let edited = services.replace(
        "continents: [EU, AF]\n        regions: [europe, north-america]",
        "continents: [EU, AF]\n        regions: [north-america, europe]",
    );
    assert_ne!(edited, services);
    dir.write("maps/services.yaml", &edited);
    assert!(
        wait_for(30, || ask(&s, "A", "81.2.69.0/24").0 == "198.51.100.10"),
        "the edit went live"
    );
    // A broken edit: an unknown region. The old map keeps serving; status says why.
    let broken = edited.replace(
        "regions: [north-america, europe]",
        "regions: [north-amrica, europe]",
    );
    dir.write("maps/services.yaml", &broken);
    assert!(wait_for(30, || {
        let (_, st) = s.ctl(&["status"]);
        st["last_reload"]["ok"] == false
    }));
    let (_, st) = s.ctl(&["status"]);
    let err = st["last_reload"]["errors"][0].as_str().unwrap().to_string();
    assert!(
        err.contains("maps/services.yaml:") && err.contains("unknown region \"north-amrica\""),
        "{err}"
    );
    assert!(err.contains(".rules[3].regions[0]"), "{err}");
    assert_eq!(
        ask(&s, "A", "81.2.69.0/24").0,
        "198.51.100.10",
        "old map still serving"
    );
    // Broken YAML, too.
    dir.write("maps/services.yaml", "services: [\n");
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "198.51.100.10");
    // Fixed again, and a forced reload over the control socket.
    std::fs::write(dir.path("maps/services.yaml"), &services).unwrap();
    let (ok, _) = s.ctl(&["reload"]);
    assert!(ok);
    assert_eq!(ask(&s, "A", "81.2.69.0/24").0, "192.0.2.10");
}

#[test]
fn policies_spread_and_answers() {
    let dir = TempDir::new("policy");
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    std::fs::copy(root().join("maps/nodes.yaml"), dir.path("maps/nodes.yaml")).unwrap();
    dir.write(
        "maps/rest.yaml",
        r#"
regions:
  - name: eu
    nodes: [fra1, ams1, { node: iad1, weight: 100 }]
  - name: oc
    nodes: [syd1]
services:
  - names: [dl.example.test]
    spread: weighted
    all_down: servfail
    rules:
      - default: true
        regions: [eu]
  - names: [two.example.test]
    answers: 2
    all_down: empty
    rules:
      - default: true
        regions: [eu]
  - names: [any.example.test]
    all_down: any_region
    rules:
      - default: true
        regions: [eu]
"#,
    );
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let s = Server::with_control(&cfg, &dir);
    // Spread: stable per /24, scope at least /24, spread over the nodes by weight.
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..60u32 {
        let subnet = format!("81.{}.{}.0/24", i / 8, (i * 37) % 256);
        let (a, scope, _) = ask(&s, "A", &subnet);
        assert_eq!(ask(&s, "A", &subnet).0, a, "stable for {subnet}");
        assert!(scope >= 24, "{subnet}: /{scope}");
        *counts.entry(a).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    // answers: 2 → the two heaviest (fra1 and iad1 at 100, ties by name).
    let two = s.short(&["two.example.test", "+subnet=81.2.69.0/24"]);
    assert_eq!(two, "192.0.2.10\n198.51.100.10");
    // All down: SERVFAIL, empty NOERROR, or any other region.
    for n in ["fra1", "ams1", "iad1"] {
        assert!(s.ctl(&["set", n, "down"]).0);
    }
    assert!(
        s.dig(&["dl.example.test", "+subnet=81.2.69.0/24"])
            .contains("status: SERVFAIL")
    );
    let out = s.dig(&["two.example.test", "+subnet=81.2.69.0/24"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
        "{out}"
    );
    assert_eq!(
        s.short(&["any.example.test", "+subnet=81.2.69.0/24"]),
        "203.0.113.10"
    );
}

#[test]
fn check_reports_every_map_error_with_positions() {
    let dir = TempDir::new("check");
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    dir.write(
        "maps/bad.yaml",
        r#"nodes:
  - name: a
    ipv4: [192.0.2.1]
    weight: 70000
  - name: a
    ipv4: [192.0.2.2]
  - name: b
    ipv4: [192.0.2.300]
regions:
  - name: r
    nodes: [a, c]
services:
  - names: [dl.example.test, elsewhere.example.org]
    rules:
      - countries: [GB, XX]
        regions: [r]
      - countries: [GB]
        regions: [r]
      - prefixes: [10.0.0.1/8]
        regions: [r]
      - continents: [EU]
        asns: [1]
        regions: [r]
"#,
    );
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = dir.path("maps/bad.yaml").display().to_string();
    for want in [
        format!("{f}:4:13: nodes[0].weight: must be 1..=65535"),
        format!("{f}:5:11: nodes[1].name: node \"a\" is defined twice"),
        format!("{f}:8:12: nodes[2].ipv4[0]:"),
        format!("{f}:11:16: regions[0].nodes[1]: unknown node \"c\""),
        format!(
            "{f}:15:25: services[0].rules[0].countries[1]: \"XX\" is not an ISO 3166-1 alpha-2 country code"
        ),
        format!(
            "{f}:17:21: services[0].rules[1].countries[0]: GB is already matched by the rule at {f}:15:9; this entry can never fire"
        ),
        format!(
            "{f}:19:20: services[0].rules[2].prefixes[0]: \"10.0.0.1/8\" has bits set past /8; did you mean 10.0.0.0/8?"
        ),
        format!("{f}:21:9: services[0].rules[3]: a rule needs exactly one of"),
        format!("{f}:13:30: services[0].names[1]: elsewhere.example.org is not inside any zone"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn offline_tools_lookup_explain_diff() {
    let bin = env!("CARGO_BIN_EXE_signpost");
    let out = std::process::Command::new(bin)
        .args(["lookup", "81.2.69.142", "2001:4860:4860::8888"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("country: GB") && text.contains("AS20712 (prefix 81.2.64.0/18"),
        "{text}"
    );
    assert!(
        text.contains("country: US") && text.contains("AS15169"),
        "{text}"
    );
    // An IPv4-mapped address is looked up as the IPv4 address, as the answer path does.
    let lines = |arg: &str| {
        let out = std::process::Command::new(bin)
            .args(["lookup", arg])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines().skip(1).map(str::to_string).collect::<Vec<_>>()
    };
    let (v4, mapped) = (lines("81.2.69.142"), lines("::ffff:81.2.69.142"));
    assert!(v4.iter().any(|l| l.contains("country: GB")), "{v4:?}");
    assert_eq!(mapped, v4);
    let out = std::process::Command::new(bin)
        .args(["lookup", "81.2.69.142", "not-an-ip"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Addresses on stdin.
    let mut child = std::process::Command::new(bin)
        .arg("lookup")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"8.8.8.8\n1.1.1.1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("country: US") && text.contains("country: AU"),
        "{text}"
    );

    let out = std::process::Command::new(bin)
        .args(["explain", "8.8.8.8", "dl.example.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("answer: iad1 [198.51.100.10] from region north-america"),
        "{text}"
    );
    // With a state file from a server: fra1 down.
    let dir = TempDir::new("explain");
    let state = dir.write(
        "state.json",
        r#"{"overrides":[{"node":"fra1","state":"down","reason":"test"}]}"#,
    );
    let out = std::process::Command::new(bin)
        .args([
            "explain",
            "--health",
            state.to_str().unwrap(),
            "81.2.69.1",
            "dl.example.test",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fra1 w100 down") && text.contains("answer: ams1"),
        "{text}"
    );

    // diff: send Europe to North America and measure it.
    std::fs::create_dir_all(dir.path("old")).unwrap();
    std::fs::create_dir_all(dir.path("new")).unwrap();
    for f in ["nodes.yaml", "regions.yaml", "services.yaml"] {
        let text = std::fs::read_to_string(root().join("maps").join(f)).unwrap();
        std::fs::write(dir.path("old").join(f), &text).unwrap();
        let text = text.replace(
            "continents: [EU, AF]\n        regions: [europe, north-america]",
            "continents: [EU, AF]\n        regions: [north-america, europe]",
        );
        std::fs::write(dir.path("new").join(f), text).unwrap();
    }
    let cfg = config_with_maps(&dir, &["old/"], "");
    let out = std::process::Command::new(bin)
        .args([
            "diff",
            "--config",
            cfg.to_str().unwrap(),
            dir.path("old").to_str().unwrap(),
            dir.path("new").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("europe -> north-america"), "{text}");
    assert!(!text.contains("oceania ->"), "{text}");
}

#[test]
fn prefix_files_and_ipv6_prefix_rules() {
    let dir = TempDir::new("prefixfile");
    copy_demo_maps(&dir);
    // Two European networks that the operator sends to Asia.
    dir.write(
        "maps/lab-networks.txt",
        "# the lab\n193.0.0.0/21\n2a01:4f8::/32   # v6 lab\n\n",
    );
    let services = std::fs::read_to_string(dir.path("maps/services.yaml"))
        .unwrap()
        .replace(
            "      - asns: [3320]",
            "      - prefix_file: lab-networks.txt\n        regions: [asia]\n      - asns: [3320]",
        );
    dir.write("maps/services.yaml", &services);
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(
        ask(&s, "A", "193.0.4.0/24"),
        ("203.0.113.20".into(), 21, 60)
    );
    assert_eq!(
        ask(&s, "A", "193.0.8.0/24").0,
        "192.0.2.10",
        "outside the /21: Europe"
    );
    // The IPv6 network too, with the operator's /32 as the scope.
    let (a, scope, _) = ask(&s, "A", "2a01:4f8:1::/48");
    assert_eq!((a.as_str(), scope), ("203.0.113.20", 32));
    // A bad line in the file is reported with the file's line number.
    dir.write("maps/lab-networks.txt", "193.0.0.0/21\n10.0.0.1/8\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prefix_file (line 2): \"10.0.0.1/8\" has bits set past /8"),
        "{err}"
    );
}
