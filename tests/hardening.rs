//! What a hostile or careless input used to get past, end to end against the real binary: a
//! CNAME to a service name, CNAME loops, protocol corner cases (meta types in the question, an
//! OPT record on FORMERR, compression pointers in the additional section, IPv4-mapped ECS),
//! map files behind symbolic links, and huge values quoted in errors.

mod common;
use common::*;

use std::time::Duration;

/// The demo configuration from disk (its zone has `todl CNAME dl`), with a control socket and
/// its metrics endpoint on a free port (the configured 127.0.0.1:9153 may be taken by another
/// server, and the demo's endpoint is optional: it would serve without one).
fn demo(dir: &TempDir) -> Server {
    let sock = dir.path("ctl.sock");
    Server::start(&[
        "--config",
        &testdata("demo/signpost.yaml"),
        "--control",
        sock.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ])
}

/// The answer lines of `dig` output (owner, TTL, type, data), without the comments.
fn answers(out: &str) -> Vec<(String, u32, String, String)> {
    let mut v = Vec::new();
    let mut in_answer = false;
    for line in out.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            in_answer = true;
            continue;
        }
        if in_answer && line.trim().is_empty() {
            break;
        }
        if in_answer {
            let f: Vec<&str> = line.split_whitespace().collect();
            v.push((
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[3].to_string(),
                f[4..].join(" "),
            ));
        }
    }
    v
}

/// The `CLIENT-SUBNET` line of `dig` output.
fn client_subnet(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
        .map(|s| s.trim().to_string())
}

#[test]
fn a_cname_to_a_service_name_is_answered_as_the_service() {
    let dir = TempDir::new("cname-svc");
    let s = demo(&dir);
    for (subnet, a, aaaa) in [
        ("81.2.69.0/24", "192.0.2.10", "2001:db8:10::1"),
        ("8.8.8.0/24", "198.51.100.10", "2001:db8:20::1"),
        ("1.1.1.0/24", "203.0.113.10", "2001:db8:30::1"),
    ] {
        let direct = s.dig(&["dl.example.test", &format!("+subnet={subnet}")]);
        let out = s.dig(&["todl.example.test", &format!("+subnet={subnet}")]);
        assert!(
            out.contains("status: NOERROR") && out.contains("AUTHORITY: 0,"),
            "{out}"
        );
        assert_eq!(
            answers(&out),
            vec![
                (
                    "todl.example.test.".into(),
                    3600,
                    "CNAME".into(),
                    "dl.example.test.".into()
                ),
                // The service's own TTL, for the service's node for this client.
                ("dl.example.test.".into(), 60, "A".into(), a.into()),
            ],
            "{subnet}: {out}"
        );
        // The same scope as the service name itself answers with.
        assert_eq!(client_subnet(&out), client_subnet(&direct), "{subnet}");
        assert!(
            client_subnet(&out).unwrap() != format!("{subnet}/0"),
            "{out}"
        );
        let out = s.dig(&["todl.example.test", "AAAA", &format!("+subnet={subnet}")]);
        assert_eq!(answers(&out)[1].3, aaaa, "{subnet}: {out}");
    }
    // Without ECS: the source address decides (loopback, the default rule).
    assert_eq!(
        s.short(&["todl.example.test"]),
        "dl.example.test.\n198.51.100.10"
    );
    // Other types at the end of the chain: the static records there, or NODATA with the SOA.
    let out = s.dig(&["todl.example.test", "TXT"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 1, AUTHORITY: 1"),
        "{out}"
    );
    // Over TCP too.
    let out = s.dig(&["+tcp", "todl.example.test", "+subnet=81.2.69.0/24"]);
    assert_eq!(answers(&out)[1].3, "192.0.2.10", "{out}");
}

#[test]
fn a_cname_chain_ending_at_a_service_and_a_drained_service() {
    let dir = TempDir::new("cname-chain");
    copy_demo_maps(&dir);
    let cfg = config_with_maps(&dir, &["maps/"], "");
    // Two links: www2 → todl → dl, besides the configuration's own www A record.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "      - { name: www, type: A, value: 192.0.2.80 }\n",
        "      - { name: www, type: A, value: 192.0.2.80 }\n      - { name: todl, type: CNAME, value: dl }\n      - { name: www2, type: CNAME, value: todl.example.test. }\n",
    );
    let cfg = dir.write("signpost.yaml", &text);
    let s = Server::with_control(&cfg, &dir);
    let out = s.dig(&["www2.example.test", "+subnet=81.2.69.0/24"]);
    let got = answers(&out);
    assert_eq!(got.len(), 3, "{out}");
    assert_eq!(got[1].3, "dl.example.test.");
    assert_eq!((got[2].0.as_str(), got[2].1), ("dl.example.test.", 60));
    assert_eq!(got[2].3, "192.0.2.10");
    // fra1 down: the service's fallback and its degraded TTL apply through the alias too.
    let (ok, _) = s.ctl(&["set", "fra1", "down"]);
    assert!(ok);
    let direct = answers(&s.dig(&["dl.example.test", "+subnet=81.2.69.0/24"]));
    let via = answers(&s.dig(&["www2.example.test", "+subnet=81.2.69.0/24"]));
    assert_ne!(direct[0].3, "192.0.2.10");
    assert_eq!(
        (via[2].1, via[2].3.as_str()),
        (direct[0].1, direct[0].3.as_str())
    );
    assert_eq!(direct[0].1, 20, "degraded TTL");
}

#[test]
fn a_cname_into_a_child_zone_is_not_nxdomain() {
    let dir = TempDir::new("cname-child");
    let cfg = dir.write(
        "signpost.yaml",
        "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1.example.test.]\n    records:\n      - { name: x, type: CNAME, value: www.sub }\n      - { name: y, type: CNAME, value: nope.sub }\n  - apex: sub.example.test\n    soa: { mname: ns1.example.test., rname: hostmaster.example.test. }\n    ns: [ns1.example.test.]\n    records:\n      - { name: www, type: A, value: 192.0.2.81 }\n",
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    // The target exists, in the other zone: NOERROR with the CNAME (the resolver follows it).
    let out = s.dig(&["x.example.test"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("CNAME\twww.sub.example.test."),
        "{out}"
    );
    assert!(s.dig(&["www.sub.example.test"]).contains("192.0.2.81"));
    // Whether it exists there is the other zone's answer, not this one's NXDOMAIN.
    assert!(s.dig(&["y.example.test"]).contains("status: NOERROR"));
}

/// Runs `signpost check --config PATH`: (exit code, stderr).
fn check(path: &std::path::Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cname_loops_are_refused_by_check_and_on_reload() {
    let dir = TempDir::new("cname-loop");
    copy_demo_maps(&dir);
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let s = Server::with_control(&cfg, &dir);
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
    // a ↔ b: refused on reload, with the position; the old zone keeps serving.
    let looped = good.replace(
        "      - { name: www, type: A, value: 192.0.2.80 }\n",
        "      - { name: www, type: A, value: 192.0.2.81 }\n      - { name: a, type: CNAME, value: b }\n      - { name: b, type: CNAME, value: a }\n",
    );
    dir.write("signpost.yaml", &looped);
    let (code, stderr) = check(&cfg);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("signpost.yaml:7:11: zones[0].records[1]: a.example.test. is in a CNAME loop: a.example.test. → b.example.test. → a.example.test."),
        "{stderr}"
    );
    assert!(wait_for(30, || {
        let (_, st) = s.ctl(&["status"]);
        st["last_reload"]["ok"] == false
    }));
    let (_, st) = s.ctl(&["status"]);
    assert!(
        st["last_reload"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("is in a CNAME loop"),
        "{st}"
    );
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
    assert!(s.dig(&["a.example.test"]).contains("status: NXDOMAIN"));
    // The loop removed: the edit goes live.
    dir.write(
        "signpost.yaml",
        &looped.replace("value: a }", "value: www }"),
    );
    assert!(wait_for(30, || s.short(&["a.example.test"])
        == "b.example.test.\nwww.example.test.\n192.0.2.81"));
}

/// A UDP query with `arcount` additional records appended as `extra`.
fn query_with(name: &str, qtype: u16, extra: &[u8], arcount: u16) -> Vec<u8> {
    let mut p = query(0x4242, 0x0100, name, qtype);
    p[10..12].copy_from_slice(&arcount.to_be_bytes());
    p.extend_from_slice(extra);
    p
}

/// An OPT record with `options`.
fn opt(options: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0];
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

/// The OPT record of a response, if any: (UDP size, TTL field, RDATA), read with the message
/// counts (so that a response with other records first would still be read right).
fn response_opt(r: &[u8]) -> Option<(u16, u32, Vec<u8>)> {
    let count = |i: usize| u16::from_be_bytes([r[i], r[i + 1]]) as usize;
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let mut pos = 12;
    let skip_name = |mut pos: usize| loop {
        let l = r[pos] as usize;
        if l == 0 {
            return pos + 1;
        }
        if l & 0xc0 == 0xc0 {
            return pos + 2;
        }
        pos += 1 + l;
    };
    for _ in 0..qd {
        pos = skip_name(pos) + 4;
    }
    for i in 0..an + ns + ar {
        pos = skip_name(pos);
        let t = u16::from_be_bytes([r[pos], r[pos + 1]]);
        let class = u16::from_be_bytes([r[pos + 2], r[pos + 3]]);
        let ttl = u32::from_be_bytes([r[pos + 4], r[pos + 5], r[pos + 6], r[pos + 7]]);
        let len = u16::from_be_bytes([r[pos + 8], r[pos + 9]]) as usize;
        if t == 41 && i >= an + ns {
            return Some((class, ttl, r[pos + 10..pos + 10 + len].to_vec()));
        }
        pos += 10 + len;
    }
    None
}

#[test]
fn formerr_for_a_bad_option_carries_an_opt_record() {
    let dir = TempDir::new("formerr-opt");
    let s = demo(&dir);
    // An ECS option with bits set past its source prefix, and one with a bad family.
    for ecs in [
        &[0u8, 8, 0, 7, 0, 1, 23, 0, 81, 2, 69][..],
        &[0, 8, 0, 7, 0, 3, 24, 0, 81, 2, 69],
    ] {
        let r = s
            .udp_raw(&query_with("dl.example.test", 1, &opt(ecs), 1))
            .expect("a response");
        assert_eq!(rcode(&r), 1, "FORMERR");
        let (size, ttl, rdata) = response_opt(&r).expect("an OPT record (RFC 6891 §7)");
        assert_eq!(size, 1232);
        assert_eq!(ttl, 0x8000, "version 0, extended rcode 0, DO copied");
        // The refused option is not echoed; an Extended DNS Error (15) says why.
        let mut codes = Vec::new();
        let mut at = 0;
        while at + 4 <= rdata.len() {
            codes.push(u16::from_be_bytes([rdata[at], rdata[at + 1]]));
            at += 4 + u16::from_be_bytes([rdata[at + 2], rdata[at + 3]]) as usize;
        }
        assert_eq!(at, rdata.len(), "whole options: {rdata:?}");
        assert!(
            !codes.contains(&8),
            "the refused ECS option is echoed: {codes:?}"
        );
        assert_eq!(codes, [15], "only the EDE: {codes:?}");
    }
    // Without OPT in the query, none in the FORMERR either.
    let mut p = query(9, 0, "dl.example.test", 1);
    p.push(0);
    let r = s.udp_raw(&p).unwrap();
    assert_eq!((rcode(&r), response_opt(&r)), (1, None));
}

#[test]
fn meta_types_in_the_question_get_formerr() {
    let dir = TempDir::new("meta");
    let s = demo(&dir);
    for (qtype, name) in [(0u16, "TYPE0"), (41, "OPT"), (249, "TKEY"), (250, "TSIG")] {
        let r = s
            .udp_raw(&query(7, 0x0100, "dl.example.test", qtype))
            .unwrap();
        assert_eq!(rcode(&r), 1, "{name}");
        assert_eq!(
            &r[12..12 + 17],
            &query(7, 0x0100, "dl.example.test", qtype)[12..29]
        );
        // With EDNS, the OPT record comes back.
        let r = s
            .udp_raw(&query_with("example.test", qtype, &opt(&[]), 1))
            .unwrap();
        assert_eq!(rcode(&r), 1, "{name} with EDNS");
        assert!(response_opt(&r).is_some(), "{name}");
    }
    // dig can ask for some of them by number.
    for t in ["TYPE0", "TYPE249", "TYPE250"] {
        let out = s.dig(&["example.test", t]);
        assert!(out.contains("status: FORMERR"), "{t}: {out}");
    }
    // Meta types only: other unknown types are NODATA as before.
    let out = s.dig(&["example.test", "TYPE65000"]);
    assert!(out.contains("status: NOERROR"), "{out}");
}

#[test]
fn additional_records_with_bad_compression_pointers_get_formerr() {
    let dir = TempDir::new("pointers");
    let s = demo(&dir);
    // An A record in the additional section: owner, type A, class IN, TTL, RDLENGTH 4, RDATA.
    let record = |owner: &[u8]| {
        let mut r = owner.to_vec();
        r.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        r
    };
    // A pointer to the question name: fine, the record is skipped.
    let r = s
        .udp_raw(&query_with("www.example.test", 1, &record(&[0xc0, 12]), 1))
        .unwrap();
    assert_eq!(rcode(&r), 0, "a good pointer");
    // A label then a pointer back into the question ("x.example.test"): fine too.
    let r = s
        .udp_raw(&query_with(
            "www.example.test",
            1,
            &record(&[1, b'x', 0xc0, 16]),
            1,
        ))
        .unwrap();
    assert_eq!(rcode(&r), 0, "a label and a good pointer");
    let q_len = query(0, 0, "www.example.test", 1).len();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("past the end", vec![0xc0, 0xff]),
        ("into the header", vec![0xc0, 2]),
        ("to itself", vec![0xc0 | (q_len >> 8) as u8, q_len as u8]),
        (
            "forward",
            vec![0xc0 | ((q_len + 2) >> 8) as u8, (q_len + 2) as u8],
        ),
        ("a bad label type", vec![0x80, 0]),
    ];
    for (what, owner) in cases {
        let r = s
            .udp_raw(&query_with("www.example.test", 1, &record(&owner), 1))
            .unwrap_or_else(|| panic!("{what}: no response"));
        assert_eq!(rcode(&r), 1, "{what}");
    }
    // Two pointers that point at each other: the first points back at the second's owner.
    let mut p = query_with("www.example.test", 1, &[], 2);
    let first = p.len();
    p.extend_from_slice(&record(&[
        0xc0 | ((first + 16) >> 8) as u8,
        (first + 16) as u8,
    ]));
    p.extend_from_slice(&record(&[0xc0 | (first >> 8) as u8, first as u8]));
    assert_eq!(rcode(&s.udp_raw(&p).unwrap()), 1, "a pointer loop");
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
}

#[test]
fn an_ipv4_mapped_ecs_address_decides_as_the_ipv4_address() {
    let dir = TempDir::new("mapped");
    let s = demo(&dir);
    for (v4, a) in [
        ("81.2.69.0", "192.0.2.10"),
        ("8.8.8.0", "198.51.100.10"),
        ("1.1.1.0", "203.0.113.10"),
    ] {
        let plain = s.dig(&["dl.example.test", &format!("+subnet={v4}/24")]);
        let out = s.dig(&["dl.example.test", &format!("+subnet=::ffff:{v4}/120")]);
        assert_eq!(answers(&out)[0].3, a, "{v4}: {out}");
        // The option comes back in the query's family; the scope is the IPv4 scope + 96.
        let v4_scope: u8 = client_subnet(&plain)
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            client_subnet(&out).unwrap(),
            format!("::ffff:{v4}/120/{}", u16::from(v4_scope) + 96),
            "{out}"
        );
    }
    // ::ffff:0:0/96 carries no IPv4 bits: like ECS /0, the source address decides.
    let out = s.dig(&["dl.example.test", "+subnet=::ffff:0.0.0.0/96"]);
    assert_eq!(answers(&out)[0].3, "198.51.100.10", "{out}");
    assert!(client_subnet(&out).unwrap().ends_with("/96/0"), "{out}");
    // The explanation says the same.
    let why = s.short(&[
        "TXT",
        "_why.dl.example.test",
        "+subnet=::ffff:81.2.69.0/120",
    ]);
    assert!(why.contains("81.2.69.0"), "{why}");
}

/// Waits until `dl.example.test` answers `want` for a GB client.
fn wait_for_gb(s: &Server, want: &str) -> bool {
    wait_for(30, || {
        answers(&s.dig(&["dl.example.test", "+subnet=81.2.69.0/24"]))
            .first()
            .is_some_and(|a| a.3 == want)
    })
}

/// The demo's services map with Europe sent to North America.
fn services_edited() -> (String, String) {
    let services = std::fs::read_to_string(root().join("maps/services.yaml")).unwrap();
    let edited = services.replace(
        "continents: [EU, AF]\n        regions: [europe, north-america]",
        "continents: [EU, AF]\n        regions: [north-america, europe]",
    );
    assert_ne!(edited, services);
    (services, edited)
}

#[test]
fn an_edit_to_the_target_of_a_symlinked_map_file_is_seen() {
    let dir = TempDir::new("symlink-file");
    copy_demo_maps(&dir);
    // maps/services.yaml is a link to a file elsewhere (as configuration management makes).
    let (services, edited) = services_edited();
    std::fs::create_dir_all(dir.path("managed")).unwrap();
    dir.write("managed/services.yaml", &services);
    std::fs::remove_file(dir.path("maps/services.yaml")).unwrap();
    std::os::unix::fs::symlink("../managed/services.yaml", dir.path("maps/services.yaml")).unwrap();
    let cfg = config_with_maps(
        &dir,
        &["maps/nodes.yaml", "maps/regions.yaml", "maps/services.yaml"],
        "",
    );
    let s = Server::with_control(&cfg, &dir);
    assert!(wait_for_gb(&s, "192.0.2.10"));
    // The target edited in place, by rename in its own directory.
    dir.write("managed/services.yaml", &edited);
    assert!(
        wait_for_gb(&s, "198.51.100.10"),
        "the target's edit went live"
    );
    // And edited in place without a rename.
    std::fs::write(dir.path("managed/services.yaml"), &services).unwrap();
    assert!(wait_for_gb(&s, "192.0.2.10"), "an in-place write went live");
}

#[test]
fn a_swapped_map_directory_link_is_followed_to_its_new_target() {
    let dir = TempDir::new("symlink-dir");
    let (services, edited) = services_edited();
    // releases/v1 and releases/v2; `current` points at one of them; maps: [current/].
    for v in ["v1", "v2"] {
        std::fs::create_dir_all(dir.path(&format!("releases/{v}"))).unwrap();
        for f in ["nodes.yaml", "regions.yaml"] {
            std::fs::copy(
                root().join("maps").join(f),
                dir.path(&format!("releases/{v}/{f}")),
            )
            .unwrap();
        }
        dir.write(&format!("releases/{v}/services.yaml"), &services);
    }
    std::os::unix::fs::symlink("releases/v1", dir.path("current")).unwrap();
    let cfg = config_with_maps(&dir, &["current/"], "");
    let s = Server::with_control(&cfg, &dir);
    assert!(wait_for_gb(&s, "192.0.2.10"));
    // An edit inside the current release.
    dir.write("releases/v1/services.yaml", &edited);
    assert!(wait_for_gb(&s, "198.51.100.10"), "an edit in v1 went live");
    // The atomic swap: a new link renamed over `current`.
    std::os::unix::fs::symlink("releases/v2", dir.path("current.new")).unwrap();
    std::fs::rename(dir.path("current.new"), dir.path("current")).unwrap();
    assert!(wait_for_gb(&s, "192.0.2.10"), "the swap to v2 went live");
    // Now an edit in v2 is seen, and one in v1 (no longer current) changes nothing.
    dir.write("releases/v2/services.yaml", &edited);
    assert!(wait_for_gb(&s, "198.51.100.10"), "an edit in v2 went live");
    let (_, before) = s.ctl(&["status"]);
    dir.write("releases/v1/services.yaml", &services);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, after) = s.ctl(&["status"]);
    assert_eq!(
        before["last_reload"], after["last_reload"],
        "no reload for the old release"
    );
    assert!(wait_for_gb(&s, "198.51.100.10"));
}

#[test]
fn huge_values_are_cut_in_errors_logs_and_status() {
    let dir = TempDir::new("huge");
    copy_demo_maps(&dir);
    let cfg = config_with_maps(&dir, &["maps/"], "");
    let s = Server::with_control(&cfg, &dir);
    assert!(wait_for_gb(&s, "192.0.2.10"));
    let services = std::fs::read_to_string(dir.path("maps/services.yaml")).unwrap();
    let nodes = std::fs::read_to_string(dir.path("maps/nodes.yaml")).unwrap();
    // A 4 MB country code, and a 4 MB string where a number goes (serde's own message).
    let huge = "Q".repeat(4 << 20);
    let broken = services.replace("countries: [NZ]", &format!("countries: [\"{huge}\"]"));
    assert_ne!(broken, services);
    let broken_nodes = nodes.replace("weight: 50", &format!("weight: \"{huge}\""));
    assert_ne!(broken_nodes, nodes);
    dir.write("maps/nodes.yaml", &broken_nodes);
    dir.write("maps/services.yaml", &broken);
    let (code, stderr) = check(&cfg);
    assert_eq!(code, Some(1));
    assert!(stderr.len() < 4096, "{} bytes of errors", stderr.len());
    let cut = format!("\"{}\"…", "Q".repeat(80));
    assert!(
        stderr.contains(&format!("{cut} is not an ISO 3166-1 alpha-2 country code")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("invalid type: string {cut}, expected u32")),
        "{stderr}"
    );
    assert!(wait_for(30, || {
        let (_, st) = s.ctl(&["status"]);
        st["last_reload"]["ok"] == false
    }));
    let (_, st) = s.ctl(&["status"]);
    let shown = st.to_string();
    assert!(shown.len() < 8192, "{} bytes of status", shown.len());
    assert!(shown.contains(&"Q".repeat(80)) && !shown.contains(&"Q".repeat(81)));
    // The log line too.
    std::thread::sleep(Duration::from_millis(300));
    let log = s.stderr();
    assert!(log.contains("reload failed"), "{log}");
    assert!(log.len() < 16384, "{} bytes of log", log.len());
    assert!(wait_for_gb(&s, "192.0.2.10"), "the old map still serves");
}
