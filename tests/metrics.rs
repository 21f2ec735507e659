//! The metrics endpoint of the real binary, scraped with the real `curl` and checked with the
//! real `promtool check metrics`: the counts match the queries sent with `dig`, node state
//! changes and reloads show, and a reload does not reset a counter.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// Scrapes `/metrics` with curl (extra arguments before the URL).
fn scrape(s: &Server, extra: &[&str]) -> String {
    let addr = s.metrics.expect("the server opened a metrics endpoint");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .args(extra)
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl is installed (the test command installs it)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `promtool check metrics` on `text`; returns its complaints (empty when clean).
fn promtool(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (the test command installs prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        String::new()
    } else {
        format!("promtool failed ({}): {msg}", out.status)
    }
}

/// Sample name with labels → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in:\n{m:#?}"))
}

#[test]
fn scrapes_count_what_was_asked_and_pass_promtool() {
    let dir = TempDir::new("metrics");
    let cfg = demo_config(&dir, "metrics:\n  listen: 127.0.0.1:0\n");
    let s = Server::with_control(&cfg, &dir);

    let first = scrape(&s, &[]);
    assert_eq!(promtool(&first), "");
    let m = samples(&first);
    assert_eq!(
        value(
            &m,
            "signpost_queries_total{transport=\"udp\",qtype=\"A\",rcode=\"NOERROR\"}"
        ),
        0.0
    );
    assert_eq!(value(&m, "signpost_snapshot_generation"), 1.0);
    assert_eq!(value(&m, "signpost_last_reload_ok"), 1.0);
    assert_eq!(
        value(&m, "signpost_node_state{node=\"fra1\",state=\"up\"}"),
        1.0
    );
    assert!(
        value(
            &m,
            "signpost_geoip_build_timestamp_seconds{database=\"GeoLite2-Country-2018-08-07.mmdb\"}"
        ) > 1.5e9
    );

    // Five ECS answers for a GB client (fra1), two NXDOMAIN, one AAAA over TCP without ECS,
    // one TXT of a static name.
    for _ in 0..5 {
        assert_eq!(
            s.short(&["dl.example.test", "+subnet=81.2.69.0/24"]),
            "192.0.2.10"
        );
    }
    for _ in 0..2 {
        assert!(s.dig(&["nosuch.example.test"]).contains("NXDOMAIN"));
    }
    s.dig(&["+tcp", "dl.example.test", "AAAA"]);
    s.dig(&["www.example.test", "TXT"]);

    let text = scrape(&s, &[]);
    assert_eq!(promtool(&text), "");
    let m = samples(&text);
    let q = |t: &str, qt: &str, rc: &str| {
        value(
            &m,
            &format!("signpost_queries_total{{transport=\"{t}\",qtype=\"{qt}\",rcode=\"{rc}\"}}"),
        )
    };
    assert_eq!(q("udp", "A", "NOERROR"), 5.0);
    assert_eq!(q("udp", "A", "NXDOMAIN"), 2.0);
    assert_eq!(q("tcp", "AAAA", "NOERROR"), 1.0);
    assert_eq!(q("udp", "TXT", "NOERROR"), 1.0);
    assert_eq!(
        value(
            &m,
            "signpost_ecs_queries_total{transport=\"udp\",ecs=\"present\"}"
        ),
        5.0
    );
    let svc = "service=\"dl.example.test\"";
    assert_eq!(
        value(&m, &format!("signpost_service_answers_total{{{svc}}}")),
        6.0
    );
    assert_eq!(
        value(&m, &format!("signpost_service_ecs_answers_total{{{svc}}}")),
        5.0
    );
    assert_eq!(
        value(
            &m,
            &format!("signpost_service_node_answers_total{{{svc},node=\"fra1\"}}")
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            &format!("signpost_service_region_answers_total{{{svc},region=\"europe\"}}")
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            &format!("signpost_service_rule_answers_total{{{svc},rule_kind=\"continent\"}}")
        ),
        5.0
    );
    // ctl stats reads the same counters.
    let (ok, stats) = s.ctl(&["stats"]);
    assert!(ok);
    assert_eq!(stats["stats"]["udp_queries"], 8, "{stats}");
    assert_eq!(stats["stats"]["tcp_queries"], 1, "{stats}");
    assert_eq!(stats["stats"]["nxdomain"], 2, "{stats}");

    // fra1 down: the GB client gets another node of its region, the answer is degraded, the
    // node's state and one transition show.
    assert!(
        s.ctl(&["set", "fra1", "down", "--reason", "metrics test"])
            .0
    );
    let other = s.short(&["dl.example.test", "+subnet=81.2.69.0/24"]);
    assert_ne!(other, "192.0.2.10");
    // A reload publishes a new snapshot: the counts of the old one are kept.
    assert!(s.ctl(&["reload"]).0);
    s.short(&["dl.example.test", "+subnet=81.2.69.0/24"]);
    let text = scrape(&s, &[]);
    assert_eq!(promtool(&text), "");
    let m = samples(&text);
    assert_eq!(
        value(&m, "signpost_node_state{node=\"fra1\",state=\"down\"}"),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "signpost_node_transitions_total{node=\"fra1\",to=\"down\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            &format!("signpost_service_degraded_answers_total{{{svc}}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            &format!("signpost_service_node_answers_total{{{svc},node=\"fra1\"}}")
        ),
        5.0,
        "a reload must not reset counters"
    );
    assert_eq!(
        value(&m, &format!("signpost_service_answers_total{{{svc}}}")),
        8.0
    );
    assert_eq!(value(&m, "signpost_reloads_total{result=\"ok\"}"), 1.0);
    assert_eq!(value(&m, "signpost_snapshot_generation"), 2.0);
    assert_eq!(value(&m, "signpost_reload_duration_seconds_count"), 1.0);

    // docs/metrics.md names every metric exposed.
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/metrics.md lacks {name}"
            );
        }
    }
    // Prometheus asks for OpenMetrics and gets it.
    let open = scrape(
        &s,
        &["-H", "Accept: application/openmetrics-text;version=1.0.0"],
    );
    assert!(open.trim_end().ends_with("# EOF"), "{open}");
    assert!(open.contains("# TYPE signpost_queries counter"));
    assert!(first.contains("# TYPE signpost_queries_total counter"));
    // Anything but /metrics is not found.
    let addr = s.metrics.unwrap();
    let code = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{addr}/nothing"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&code.stdout), "404");
    s.terminate();
}

#[test]
fn a_bad_metrics_address_is_a_positioned_error() {
    let dir = TempDir::new("metricsbad");
    let cfg = demo_config(&dir, "metrics:\n  listen: localhost\n");
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics.listen: \"localhost\" is not ADDRESS:PORT"),
        "{err}"
    );
    // A configured address that cannot be bound stops the server with a clear message.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = demo_config(
        &dir,
        &format!("metrics:\n  listen: {}\n", taken.local_addr().unwrap()),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .env("SIGNPOST_CONTROL", dir.path("ctl.sock"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot bind the metrics endpoint"), "{err}");
}

/// Connections that never send a request, or stall in the middle of one, cannot keep a scraper
/// out: a new connection takes the slot of the least recently active one, and a request's
/// headers must arrive within a few seconds.
#[test]
fn idle_connections_never_block_a_scrape() {
    use std::io::{Read, Write};
    let dir = TempDir::new("metricsidle");
    let cfg = demo_config(&dir, "");
    let s = Server::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = s.metrics.unwrap();
    // Three times as many connections as the endpoint serves at once: silent ones, and ones
    // that send half a request and stop.
    let mut idle = Vec::new();
    for i in 0..96 {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        if i % 2 == 1 {
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        idle.push(c);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // Scrapes get through at once (curl gives up after 2 s; the idle connections would hold
    // their slots for seconds).
    for _ in 0..5 {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "2"])
            .arg(format!("http://{addr}/metrics"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "a scrape was kept out by idle connections: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("signpost_queries_total"));
    }
    // The oldest idle connections were closed to make room, and the server counts no more than
    // it serves at once: reading from the first one ends (EOF or reset) instead of blocking.
    let first = &mut idle[0];
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    match first.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "the oldest idle connection got data"),
        Err(e) => assert_ne!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "the oldest idle connection was still open after 10 s"
        ),
    }
}
