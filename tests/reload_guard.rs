//! The reload guard, end to end: the real binary, map and data files replaced on disk under
//! it, `dig` for the answers and `signpost ctl` for the status and the confirmation. A reload
//! that removes a served name or cuts a table is held (the old data keep serving, `status` says
//! what shrank), `ctl reload --confirm` accepts it, and a small change goes through as before.

mod common;
use common::*;

/// The demo maps, with the GeoIP database and the BGP table copied into `dir` so that the test
/// can replace them.
fn start(dir: &TempDir, extra: &str) -> Server {
    copy_demo_maps(dir);
    std::fs::copy(
        testdata("bgp/demo-ipasn-20151101.txt"),
        dir.path("table.txt"),
    )
    .unwrap();
    let cfg = dir.write(
        "signpost.yaml",
        &format!(
            "zones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster }}\n    ns: [ns1]\n    records:\n      - {{ name: www, type: A, value: 192.0.2.80 }}\nmaps: [maps/]\ngeoip: [{{ path: {} }}]\nbgp: [{{ path: table.txt, format: pyasn }}]\nreload_debounce_ms: 200\nreload_priority: normal\n{extra}",
            testdata("geoip/GeoLite2-Country-2018-08-07.mmdb")
        ),
    );
    Server::with_control(&cfg, dir)
}

fn gb(s: &Server) -> String {
    s.short(&["dl.example.test", "+subnet=81.2.69.0/24"])
}

/// AS3320 (from the BGP table) gets the sponsor's local node.
fn dtag(s: &Server) -> String {
    s.short(&["dl.example.test", "+subnet=80.128.0.0/24"])
}

fn status(s: &Server) -> serde_json::Value {
    s.ctl(&["status"]).1["last_reload"].clone()
}

fn errors(last: &serde_json::Value) -> String {
    last["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn an_emptied_services_file_is_held_until_confirmed() {
    let dir = TempDir::new("guard-names");
    let s = start(&dir, "");
    assert_eq!(gb(&s), "192.0.2.10");
    let generation = s.ctl(&["status"]).1["generation"].clone();
    // The careless edit: the file is replaced by a comment.
    dir.write("maps/services.yaml", "# services moved elsewhere\n");
    assert!(
        wait_for(30, || status(&s)["held"] == true),
        "the emptied file was not held: {}\n{}",
        status(&s),
        s.stderr()
    );
    let last = status(&s);
    assert_eq!(last["ok"], false, "{last}");
    let text = errors(&last);
    assert!(
        text.contains(
            "reload held: service name dl.example.test would no longer be answered from the maps"
        ),
        "{text}"
    );
    assert!(text.contains("signpost ctl reload --confirm"), "{text}");
    // The old map keeps serving; nothing was published.
    assert_eq!(gb(&s), "192.0.2.10");
    assert_eq!(s.ctl(&["status"]).1["generation"], generation);
    // The log says it too.
    assert!(
        s.stderr().contains("reload held") && s.stderr().contains("dl.example.test"),
        "{}",
        s.stderr()
    );
    // A plain reload is held again, and says so (exit status 1).
    let (ok, v) = s.ctl(&["reload"]);
    assert!(!ok, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("reload held"),
        "{v}"
    );
    assert_eq!(gb(&s), "192.0.2.10");
    // The operator confirms: the name is gone, as asked.
    let (ok, v) = s.ctl(&["reload", "--confirm"]);
    assert!(ok, "{v}");
    assert_eq!(gb(&s), "", "the service name is no longer answered");
    let last = status(&s);
    assert_eq!(
        (last["ok"].clone(), last["held"].clone()),
        (true.into(), false.into())
    );
    // Putting the services back is growth: accepted at once.
    std::fs::copy(
        root().join("maps/services.yaml"),
        dir.path("maps/services.yaml"),
    )
    .unwrap();
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    assert_eq!(gb(&s), "192.0.2.10");
}

/// The prefix counts of the table in force, from `status`: (IPv4, IPv6).
fn table_counts(s: &Server) -> (usize, usize) {
    let data = s.ctl(&["status"]).1["data"].as_str().unwrap().to_string();
    let inner = data
        .split("bgp table.txt (")
        .nth(1)
        .and_then(|r| r.split(" prefixes)").next())
        .unwrap_or_else(|| panic!("no table counts in {data}"));
    // "7094 v4 + 21 v6"
    let count = |part: &str| -> usize { part.split_whitespace().next().unwrap().parse().unwrap() };
    let (v4, v6) = inner.split_once(" + ").unwrap();
    (count(v4), count(v6))
}

#[test]
fn a_cut_table_is_held_and_a_small_change_is_not() {
    let dir = TempDir::new("guard-table");
    let s = start(&dir, "");
    assert_eq!(dtag(&s), "192.0.2.12");
    let (v4, v6) = table_counts(&s);
    assert!(v4 > 7000 && v6 > 0, "{v4} {v6}");
    let whole = std::fs::read_to_string(dir.path("table.txt")).unwrap();
    let data: Vec<&str> = whole.lines().filter(|l| !l.starts_with(';')).collect();
    // Cut to its first 3,000 IPv4 lines, IPv6 gone: the AS3320 prefix goes with it.
    let cut: String = data
        .iter()
        .filter(|l| !l.contains(':'))
        .take(3000)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!cut.contains("80.128.0.0/11"));
    dir.write("table.txt", &cut);
    assert!(
        wait_for(30, || status(&s)["held"] == true),
        "the cut table was not held: {}",
        status(&s)
    );
    let text = errors(&status(&s));
    for want in [
        format!("BGP table IPv4 prefixes: {} -> ", thousands(v4)),
        format!("BGP table IPv6 prefixes: {v6} -> 0 (-100.0 %, more than the 10 % allowed)"),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    assert_eq!(dtag(&s), "192.0.2.12", "the whole table still serves");
    assert_eq!(table_counts(&s), (v4, v6));
    // A small change (2 % of the lines gone, the AS3320 prefix kept) is a normal update.
    let trimmed: String = data
        .iter()
        .enumerate()
        .filter(|(i, l)| i % 50 != 7 || l.contains("80.128."))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    dir.write("table.txt", &trimmed);
    assert!(
        wait_for(30, || status(&s)["ok"] == true && table_counts(&s).0 < v4),
        "a small change was not accepted: {}",
        status(&s)
    );
    let (small, _) = table_counts(&s);
    assert!(small * 100 >= v4 * 95, "{small} of {v4}");
    assert_eq!(dtag(&s), "192.0.2.12");
    // The cut again, confirmed this time: AS3320 is no longer known.
    dir.write("table.txt", &cut);
    assert!(wait_for(30, || status(&s)["held"] == true));
    let text = errors(&status(&s));
    let (ok, v) = s.ctl(&["reload", "--confirm"]);
    assert!(ok, "{v}");
    assert_ne!(dtag(&s), "192.0.2.12");
    let (after, after_v6) = table_counts(&s);
    assert_eq!(after_v6, 0);
    assert!(
        text.contains(&format!(
            "BGP table IPv4 prefixes: {} -> {} (",
            thousands(small),
            thousands(after)
        )),
        "{text}"
    );
}

#[test]
fn the_guard_can_be_widened_or_switched_off() {
    // Off: the emptied file goes through, as before the guard.
    let dir = TempDir::new("guard-off");
    let s = start(&dir, "reload_guard: { enabled: false }\n");
    dir.write("maps/services.yaml", "# nothing\n");
    assert!(wait_for(30, || gb(&s).is_empty()), "{}", status(&s));
    assert_eq!(status(&s)["ok"], true);
    drop(s);
    // A share of 100 %: data may shrink to nothing, names are still guarded.
    let dir = TempDir::new("guard-wide");
    let s = start(&dir, "reload_guard: { max_shrink_percent: 100 }\n");
    dir.write("table.txt", "1.0.0.0/24\t13335\n");
    assert!(wait_for(30, || dtag(&s) != "192.0.2.12"), "{}", status(&s));
    assert_eq!(status(&s)["ok"], true);
    dir.write("maps/services.yaml", "# nothing\n");
    assert!(wait_for(30, || status(&s)["held"] == true));
    assert_eq!(gb(&s), "192.0.2.10");
}

#[test]
fn a_bad_guard_setting_is_an_error() {
    let dir = TempDir::new("guard-bad");
    let cfg = demo_config(
        &dir,
        "reload_guard: { max_shrink_percent: 101, colour: red }\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("reload_guard.colour: unknown field"), "{err}");
    let cfg = demo_config(&dir, "reload_guard: { max_shrink_percent: 101 }\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reload_guard.max_shrink_percent: must be 0..=100"),
        "{err}"
    );
}

/// `12345` as `12,345`, as the messages write counts.
fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A client in 12.`second`.0.0/16 (in the US: North America, unless `prefix_file: lab.txt`
/// lists it, which sends it to Europe).
fn lab(s: &Server, second: u8) -> String {
    s.short(&["dl.example.test", &format!("+subnet=12.{second}.0.0/24")])
}

#[test]
fn a_prefix_file_cut_to_nearly_nothing_is_held_until_confirmed() {
    let dir = TempDir::new("guard-prefix-file");
    // 200 IPv4 and 20 IPv6 prefixes: networks an operator sends to Europe.
    let list = |v4: usize, v6: usize| -> String {
        let mut text = String::from("# lab networks\n");
        for i in 0..v4 {
            text.push_str(&format!("12.{i}.0.0/16\n"));
        }
        for i in 0..v6 {
            text.push_str(&format!("2001:db8:{i:x}::/48\n"));
        }
        text
    };
    let s = start(&dir, "");
    // The list put in place: a new prefix file is not compared with anything.
    dir.write("maps/lab.txt", &list(200, 20));
    let services = std::fs::read_to_string(dir.path("maps/services.yaml")).unwrap();
    let services = services.replace("prefixes: [198.18.0.0/15]", "prefix_file: lab.txt");
    assert!(services.contains("prefix_file: lab.txt"));
    dir.write("maps/services.yaml", &services);
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    let europe = lab(&s, 150);
    let elsewhere = lab(&s, 250);
    assert_ne!(
        elsewhere, europe,
        "the listed networks go to Europe, the others not"
    );
    // A small edit (5 % of the IPv4 lines gone) is published.
    dir.write("maps/lab.txt", &list(190, 20));
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    assert_eq!(lab(&s, 195), elsewhere);
    // The list cut by a failed download: two lines left, IPv6 gone.
    dir.write("maps/lab.txt", &list(2, 0));
    let (ok, v) = s.ctl(&["reload"]);
    assert!(!ok, "{v}");
    let text = errors(&status(&s));
    assert_eq!(status(&s)["held"], true, "{text}");
    let file = dir.path("maps/lab.txt").display().to_string();
    for want in [
        format!(
            "reload held: prefix file {file} IPv4 prefixes: 190 -> 2 (-98.9 %, more than the 10 % allowed)"
        ),
        format!(
            "reload held: prefix file {file} IPv6 prefixes: 20 -> 0 (-100.0 %, more than the 10 % allowed)"
        ),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    // The whole list keeps serving.
    assert_eq!(lab(&s, 150), europe);
    // Confirmed: the cut list is what serves.
    let (ok, v) = s.ctl(&["reload", "--confirm"]);
    assert!(ok, "{v}");
    assert_eq!(lab(&s, 150), elsewhere);
    assert_eq!(lab(&s, 1), europe);
}
