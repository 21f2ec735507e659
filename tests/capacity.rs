//! Capacity steering end to end: the real binary, loads scraped from a real Debian
//! `prometheus-node-exporter` (its textfile collector) and from small HTTP servers started
//! here that answer badly on purpose, loads pushed over the control socket, and the answers
//! seen with the real `dig` across many client /24s (sent as ECS). Also `signpost check` on
//! bad capacity values.
//!
//! Every load here is synthetic: it does not respond to the shares, so a controller that keeps
//! seeing the same imbalance keeps stepping (within its bounds). The assertions are about
//! direction and consistency (a busy node's factor below 1, its clients a subset of those it
//! had), never about how many steps were taken in how much time.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const SIGNPOST: &str = env!("CARGO_BIN_EXE_signpost");

/// A child process killed (and reaped) on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real node exporter, serving only its textfile collector from a directory of its own,
/// on a port it picks; killed on drop.
struct NodeExporter {
    _child: Reaped,
    addr: SocketAddr,
    dir: TempDir,
}

impl NodeExporter {
    fn start(loads: &str) -> NodeExporter {
        let dir = TempDir::new("capacity-textfile");
        dir.write("load.prom", loads);
        let mut child = Command::new("prometheus-node-exporter")
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                dir.0.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prometheus-node-exporter is installed (the test command installs it)");
        let err = child.stderr.take().unwrap();
        let child = Reaped(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // It logs the address it bound: `msg="Listening on" address=127.0.0.1:PORT`.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = String::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the node exporter did not start:\n{seen}"));
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("Listening on")
                && let Some(a) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
            {
                break a.parse::<SocketAddr>().unwrap();
            }
        };
        NodeExporter {
            _child: child,
            addr,
            dir,
        }
    }

    /// Replaces the textfile atomically (temporary file + rename, as the collector's
    /// documentation asks; the temporary name does not end in `.prom`).
    fn set(&self, loads: &str) {
        self.dir.write("load.prom", loads);
    }
}

/// The textfile for `loads` (node, Mbit/s): a gauge in kbit/s, each node's load split over two
/// links (the load source sums the series that carry its labels), and a series of another
/// node that must not count.
fn textfile(loads: &[(&str, f64)]) -> String {
    let mut t = String::from(
        "# HELP edge_tx_kbps Transmit rate by node and link.\n# TYPE edge_tx_kbps gauge\n",
    );
    for (node, mbps) in loads {
        let kbps = mbps * 1000.0;
        t += &format!(
            "edge_tx_kbps{{node=\"{node}\",link=\"x\"}} {}\n",
            kbps * 0.6
        );
        t += &format!(
            "edge_tx_kbps{{node=\"{node}\",link=\"y\"}} {}\n",
            kbps * 0.4
        );
    }
    t += "edge_tx_kbps{node=\"zz\",link=\"x\"} 99999999\n";
    t
}

/// `ctl --json nodes`: the node called `name`.
fn node(s: &Server, name: &str) -> Value {
    let (ok, v) = s.ctl(&["nodes"]);
    assert!(ok, "ctl nodes failed: {v}");
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {v}"))
        .clone()
}

/// Node `name`'s `capacity` report.
fn cap(s: &Server, name: &str) -> Value {
    node(s, name)["capacity"].clone()
}

/// A node's weight factor (from its `capacity` report), in its one steered region.
fn factor(c: &Value) -> f64 {
    c["shares"][0]["factor"].as_f64().unwrap()
}

/// A node's share of its one steered region.
fn share(c: &Value) -> f64 {
    c["shares"][0]["share"].as_f64().unwrap()
}

/// The overflow fraction of a node's one steered region.
fn overflow(c: &Value) -> f64 {
    c["shares"][0]["overflow"].as_f64().unwrap()
}

/// A node's `load_status`.
fn status(c: &Value) -> String {
    c["load_status"].as_str().unwrap_or_default().to_string()
}

/// Runs `signpost ctl --socket S ARGS` without `--json`: (success, stdout, stderr).
fn ctl_text(s: &Server, args: &[&str]) -> (bool, String, String) {
    let sock = s.control.as_ref().unwrap();
    let out = Command::new(SIGNPOST)
        .args(["ctl", "--socket", sock.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One request line on the control socket, its response.
fn ctl_raw(s: &Server, line: &str) -> Value {
    let mut c = std::os::unix::net::UnixStream::connect(s.control.as_ref().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(line.as_bytes()).unwrap();
    c.write_all(b"\n").unwrap();
    let mut resp = String::new();
    BufReader::new(c).read_line(&mut resp).unwrap();
    serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{e}: {resp:?}"))
}

/// `n` distinct client /24s of 198.18.0.0/15, by a fixed stride (so that a failure repeats).
fn subnets(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let k = (i * 149 + 7) % 512;
            format!("198.{}.{}.0/24", 18 + k / 256, k % 256)
        })
        .collect()
}

/// Asks for `dl.example.test` A once per client subnet (sent as ECS), a few dozen queries per
/// `dig` run: per subnet, the first address answered and the ECS scope of the answer.
fn answers(s: &Server, subnets: &[String]) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for chunk in subnets.chunks(40) {
        let mut args = vec![
            "+time=2".to_string(),
            "+tries=2".to_string(),
            "+noall".to_string(),
            "+comments".to_string(),
            "+answer".to_string(),
        ];
        for net in chunk {
            args.extend([
                "dl.example.test".into(),
                "A".into(),
                format!("+subnet={net}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = s.dig(&args);
        for part in text.split(";; ->>HEADER<<-").skip(1) {
            let Some(ecs) = part
                .lines()
                .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
            else {
                continue;
            };
            let (net, scope) = ecs.trim().rsplit_once('/').unwrap();
            let addr = part
                .lines()
                .find(|l| l.starts_with("dl.example.test."))
                .and_then(|l| l.split_whitespace().last())
                .map(str::to_string)
                // No address: the header says why (kept, so that a failure shows it).
                .unwrap_or_else(|| {
                    let status = part.lines().next().unwrap_or_default().trim();
                    format!("(none: {status})")
                });
            out.insert(net.to_string(), (addr, scope.to_string()));
        }
    }
    for net in subnets {
        assert!(out.contains_key(net), "no answer for {net}: {out:?}");
    }
    out
}

/// The subnets answered with `addr`.
fn answered_with(a: &BTreeMap<String, (String, String)>, addr: &str) -> BTreeSet<String> {
    a.iter()
        .filter(|(_, (x, _))| x == addr)
        .map(|(n, _)| n.clone())
        .collect()
}

/// The TXT strings of `_why.dl.example.test` for a client in `subnet`, with dig's `\DDD`
/// escapes decoded, one per line.
fn why(s: &Server, subnet: &str) -> String {
    let out = s.short(&["TXT", "_why.dl.example.test", &format!("+subnet={subnet}")]);
    let mut lines = Vec::new();
    for l in out.lines() {
        let l = l.trim().trim_matches('"');
        let b = l.as_bytes();
        let mut bytes = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let code = b
                .get(i + 1..i + 4)
                .filter(|d| b[i] == b'\\' && d.iter().all(u8::is_ascii_digit));
            if let Some(d) = code {
                bytes.push(std::str::from_utf8(d).unwrap().parse::<u8>().unwrap());
                i += 4;
            } else if b[i] == b'\\' && i + 1 < b.len() {
                bytes.push(b[i + 1]);
                i += 2;
            } else {
                bytes.push(b[i]);
                i += 1;
            }
        }
        lines.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    lines.join("\n")
}

/// Scrapes the server's `/metrics` with curl: sample (name with labels) → value.
fn metrics(s: &Server) -> BTreeMap<String, f64> {
    let addr = s.metrics.expect("the server opened a metrics endpoint");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl is installed (the test command installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn metric(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in:\n{m:#?}"))
}

/// Writes `maps/map.yaml` and a configuration for it (demo GeoIP and BGP data, metrics on a
/// free loopback port), and starts the server with a control socket.
fn serve(dir: &TempDir, map: &str) -> Server {
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    dir.write("maps/map.yaml", map);
    let cfg = config_with_maps(dir, &["maps/"], "metrics:\n  listen: 127.0.0.1:0\n");
    Server::with_control(&cfg, dir)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

const A1: &str = "192.0.2.1";
const B_NODES: [&str; 2] = ["192.0.2.11", "192.0.2.12"];

#[test]
fn node_exporter_loads_steer_weights_then_overflow_to_the_next_region() {
    let even = [
        ("a1", 200.0),
        ("a2", 200.0),
        ("a3", 200.0),
        ("b1", 100.0),
        ("b2", 100.0),
    ];
    let exporter = NodeExporter::start(&textfile(&even));
    let load = |n: &str| {
        format!(
            "{{ url: \"http://{}/metrics\", metric: edge_tx_kbps, labels: {{ node: {n} }}, type: gauge, scale: 0.001, interval_ms: 200, timeout_ms: 200, stale_ms: 3000 }}",
            exporter.addr
        )
    };
    let dir = TempDir::new("capacity-exporter");
    let s = serve(
        &dir,
        &format!(
            r#"capacity_unit: Mbit/s
nodes:
  - {{ name: a1, ipv4: [192.0.2.1], capacity: 600, load: {} }}
  - {{ name: a2, ipv4: [192.0.2.2], capacity: 600, load: {} }}
  - {{ name: a3, ipv4: [192.0.2.3], capacity: 600, load: {} }}
  - {{ name: b1, ipv4: [192.0.2.11], capacity: 600, load: {} }}
  - {{ name: b2, ipv4: [192.0.2.12], capacity: 600, load: {} }}
regions:
  - {{ name: ra, nodes: [a1, a2, a3] }}
  - {{ name: rb, nodes: [b1, b2] }}
services:
  - names: [dl.example.test]
    ttl: 1
    spread: capacity
    capacity: {{ target_utilisation: 0.8, interval_ms: 200, max_step: 0.5, deadband: 0.05, max_overflow: 0.95 }}
    rules:
      - {{ prefixes: [198.18.0.0/15], regions: [ra, rb] }}
      - {{ default: true, regions: [rb, ra] }}
"#,
            load("a1"),
            load("a2"),
            load("a3"),
            load("b1"),
            load("b2")
        ),
    );
    let nets = subnets(120);

    // (a) The scraped loads show, with utilisation; even loads leave the static weights.
    assert!(
        wait_for(30, || even.iter().all(|(n, l)| cap(&s, n)["load"]
            .as_f64()
            .is_some_and(|v| close(v, *l)))),
        "loads not scraped: {}",
        s.ctl(&["nodes"]).1
    );
    let a1 = cap(&s, "a1");
    assert_eq!(status(&a1), "scraped", "{a1}");
    assert_eq!(a1["capacity"], 600.0);
    assert_eq!(a1["unit"], "Mbit/s");
    assert!(
        close(a1["utilisation"].as_f64().unwrap(), 1.0 / 3.0),
        "{a1}"
    );
    assert_eq!(a1["shares"][0]["service"], "dl.example.test");
    assert_eq!(a1["shares"][0]["region"], "ra");
    assert_eq!(factor(&a1), 1.0, "{a1}");
    assert!(close(share(&a1), 1.0 / 3.0), "{a1}");
    assert_eq!(overflow(&a1), 0.0, "{a1}");
    let (ok, table, err) = ctl_text(&s, &["nodes"]);
    assert!(ok, "{err}");
    let row = table
        .lines()
        .find(|l| l.starts_with("a1 "))
        .unwrap_or_else(|| panic!("no a1 row:\n{table}"));
    for want in ["200.0", "600.0", "33%", "33.3%", "load: scraped"] {
        assert!(row.contains(want), "{want:?} not in {row:?}\n{table}");
    }
    assert!(
        table.lines().next().unwrap().ends_with("WHY (Mbit/s)"),
        "{table}"
    );
    let before = answers(&s, &nets);
    let a_nodes = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
    for (net, (addr, scope)) in &before {
        assert!(a_nodes.contains(&addr.as_str()), "{net} got {addr}");
        assert_eq!(scope, "24", "{net}: spread answers are scoped /24");
    }
    let a1_before = answered_with(&before, A1);
    assert!(
        a1_before.len() >= 20,
        "a1 should get about a third of 120 /24s: {}",
        a1_before.len()
    );

    // (b) a1 busy (90 %), a2 and a3 quiet (25 %): a1's factor and share fall, theirs rise.
    exporter.set(&textfile(&[
        ("a1", 540.0),
        ("a2", 150.0),
        ("a3", 150.0),
        ("b1", 100.0),
        ("b2", 100.0),
    ]));
    assert!(
        wait_for(20, || {
            let a1 = cap(&s, "a1");
            a1["load"].as_f64().is_some_and(|l| close(l, 540.0)) && factor(&a1) < 1.0
        }),
        "a1's factor did not fall: {}",
        s.ctl(&["nodes"]).1
    );
    let a1 = cap(&s, "a1");
    let a2 = cap(&s, "a2");
    assert!(close(a1["utilisation"].as_f64().unwrap(), 0.9), "{a1}");
    assert!(factor(&a2) > 1.0, "{a2}");
    assert!(share(&a1) < 1.0 / 3.0, "{a1}");
    assert!(share(&a2) > 1.0 / 3.0, "{a2}");
    let total: f64 = ["a1", "a2", "a3"].iter().map(|n| share(&cap(&s, n))).sum();
    assert!((total - 1.0).abs() < 1e-3, "shares of ra sum to {total}");
    assert_eq!(overflow(&a1), 0.0, "ra at 47 % does not overflow: {a1}");
    let m = metrics(&s);
    assert_eq!(metric(&m, "signpost_node_capacity{node=\"a1\"}"), 600.0);
    assert!(close(metric(&m, "signpost_node_load{node=\"a1\"}"), 540.0));
    assert_eq!(metric(&m, "signpost_node_load_valid{node=\"a1\"}"), 1.0);
    assert!(
        metric(
            &m,
            "signpost_node_weight_factor{service=\"dl.example.test\",node=\"a1\"}"
        ) < 1.0
    );
    assert!(
        metric(
            &m,
            "signpost_node_share{service=\"dl.example.test\",region=\"ra\",node=\"a1\"}"
        ) < 1.0 / 3.0
    );
    assert_eq!(
        metric(
            &m,
            "signpost_region_overflow{service=\"dl.example.test\",region=\"ra\"}"
        ),
        0.0
    );
    // (c) Measured over the /24s: a1 keeps only clients it had (rendezvous hashing moves
    // clients off a node whose weight falls, and none onto it), and fewer of them.
    let after = answers(&s, &nets);
    let a1_after = answered_with(&after, A1);
    assert!(
        a1_after.is_subset(&a1_before),
        "clients moved onto the busy a1: {:?}",
        a1_after.difference(&a1_before).collect::<Vec<_>>()
    );
    assert!(
        a1_after.len() < a1_before.len(),
        "a1 kept all its {} clients",
        a1_before.len()
    );
    for (net, (addr, scope)) in &after {
        assert!(a_nodes.contains(&addr.as_str()), "{net} got {addr}");
        assert_eq!(scope, "24", "{net}");
    }
    let moved = a1_before.difference(&a1_after).next().unwrap();
    let w = why(&s, moved);
    assert!(
        w.contains("capacity: moved from a1 by the weights the controller set"),
        "{moved}:\n{w}"
    );
    assert!(
        w.contains("a1 w100 up (capacity: weight x0."),
        "{moved}:\n{w}"
    );
    // A client of a2 stays there: a1's weight falling and a2's and a3's rising alike changes
    // nothing for it.
    let on_a2 = answered_with(&before, "192.0.2.2");
    let stayed = on_a2.iter().next().expect("a2 had clients");
    assert_eq!(after[stayed].0, "192.0.2.2", "{stayed}");
    let w = why(&s, stayed);
    assert!(w.contains("capacity: not moved"), "{stayed}:\n{w}");

    // Overflow: ra at 98 % while rb has headroom sends some of ra's clients on to rb.
    exporter.set(&textfile(&[
        ("a1", 590.0),
        ("a2", 590.0),
        ("a3", 590.0),
        ("b1", 100.0),
        ("b2", 100.0),
    ]));
    assert!(
        wait_for(20, || overflow(&cap(&s, "a1")) > 0.0),
        "ra did not overflow: {}",
        s.ctl(&["nodes"]).1
    );
    assert_eq!(overflow(&cap(&s, "b1")), 0.0, "rb has headroom");
    let m = metrics(&s);
    assert!(
        metric(
            &m,
            "signpost_region_overflow{service=\"dl.example.test\",region=\"ra\"}"
        ) > 0.0
    );
    assert_eq!(
        metric(
            &m,
            "signpost_region_overflow{service=\"dl.example.test\",region=\"rb\"}"
        ),
        0.0
    );
    let over = answers(&s, &nets);
    let sent_on: Vec<&String> = over
        .iter()
        .filter(|(_, (a, _))| B_NODES.contains(&a.as_str()))
        .map(|(n, _)| n)
        .collect();
    assert!(
        !sent_on.is_empty() && sent_on.len() < nets.len(),
        "{} of {} clients of ra sent on to rb",
        sent_on.len(),
        nets.len()
    );
    for (net, (addr, scope)) in &over {
        assert!(
            a_nodes.contains(&addr.as_str()) || B_NODES.contains(&addr.as_str()),
            "{net} got {addr}"
        );
        assert_eq!(scope, "24", "{net}");
    }
    let w = why(&s, sent_on[0]);
    for want in [
        "capacity: moved to the next region: ra is at capacity and sends this client on",
        "region 1: ra (at capacity: ",
        "from region rb",
        "scope: /24",
    ] {
        assert!(
            w.contains(want),
            "{want:?} not in _why of {}:\n{w}",
            sent_on[0]
        );
    }
    let client = sent_on[0].replace(".0/24", ".9");
    let out = Command::new(SIGNPOST)
        .args(["explain", "--socket"])
        .arg(s.control.as_ref().unwrap())
        .args([client.as_str(), "dl.example.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("capacity: moved to the next region"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Demand falls back: the overflow is released and every client of ra comes back.
    exporter.set(&textfile(&even));
    assert!(
        wait_for(20, || overflow(&cap(&s, "a1")) == 0.0),
        "ra still overflows: {}",
        s.ctl(&["nodes"]).1
    );
    let back = answers(&s, &nets);
    for (net, (addr, _)) in &back {
        assert!(a_nodes.contains(&addr.as_str()), "{net} still on {addr}");
    }

    // The exporter goes away: once the readings are stale every node falls back to its static
    // weight, and the answers are those static weights give.
    let port = exporter.addr;
    drop(exporter);
    assert!(
        wait_for(20, || ["a1", "a2", "a3"].iter().all(|n| {
            let c = cap(&s, n);
            status(&c).contains("scrape failed") && factor(&c) == 1.0
        })),
        "no fall back to static weights after {port} went away: {}",
        s.ctl(&["nodes"]).1
    );
    let a1 = cap(&s, "a1");
    assert!(status(&a1).ends_with(": static weight"), "{a1}");
    assert!(a1["load"].is_null() && a1["utilisation"].is_null(), "{a1}");
    assert_eq!(
        metric(&metrics(&s), "signpost_node_load_valid{node=\"a1\"}"),
        0.0
    );
    assert_eq!(
        answers(&s, &nets),
        before,
        "static weights answer as before"
    );
    assert!(s.stderr().contains("region at capacity"), "{}", s.stderr());
}

fn push_map() -> &'static str {
    r#"capacity_unit: req/s
nodes:
  - { name: p1, ipv4: [192.0.2.21], capacity: 500 }
  - { name: p2, ipv4: [192.0.2.22], capacity: 500 }
  - { name: p3, ipv4: [192.0.2.23], capacity: 500 }
regions:
  - { name: rp, nodes: [p1, p2, p3] }
services:
  - names: [dl.example.test]
    ttl: 1
    spread: capacity
    capacity: { interval_ms: 200 }
    rules:
      - { default: true, regions: [rp] }
"#
}

#[test]
fn pushed_loads_count_until_their_ttl_and_bad_batches_apply_nothing() {
    let dir = TempDir::new("capacity-push");
    let s = serve(&dir, push_map());
    // Before any push: static weights, and the report says so.
    let p1 = cap(&s, "p1");
    assert_eq!(
        status(&p1),
        "none (no load source, nothing pushed): static weight",
        "{p1}"
    );
    assert!(p1["load"].is_null(), "{p1}");

    let (ok, v) = s.ctl(&["push", "--load", "--source", "lb-agent", "p1=420", "p2=100"]);
    assert!(ok, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    let (ok, out, err) = ctl_text(&s, &["push", "--load", "p3=250:2"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "ok");
    let p1 = cap(&s, "p1");
    assert_eq!(p1["load"], 420.0, "{p1}");
    assert!(close(p1["utilisation"].as_f64().unwrap(), 0.84), "{p1}");
    assert_eq!(p1["unit"], "req/s");
    assert!(
        status(&p1).starts_with("pushed by lb-agent (expires in "),
        "{p1}"
    );
    let p3 = cap(&s, "p3");
    assert_eq!(p3["load"], 250.0, "{p3}");
    assert!(
        status(&p3).starts_with("pushed by monitor (expires in "),
        "{p3}"
    );
    let (ok, table, err) = ctl_text(&s, &["nodes"]);
    assert!(ok, "{err}");
    let row = table.lines().find(|l| l.starts_with("p1 ")).unwrap();
    for want in ["420.0", "500.0", "84%", "load: pushed by lb-agent"] {
        assert!(row.contains(want), "{want:?} not in {row:?}\n{table}");
    }
    assert!(
        table.lines().next().unwrap().ends_with("WHY (req/s)"),
        "{table}"
    );
    // p1 busier than the others: pushed again, as a monitor does, the loads make the
    // controller take a step (it acts on loads measured a TTL after its last change).
    assert!(
        wait_for(10, || {
            s.ctl(&["push", "--load", "--source", "lb-agent", "p1=420", "p2=100"]);
            s.ctl(&["push", "--load", "p3=250:2"]);
            factor(&cap(&s, "p1")) < 1.0
        }),
        "{}",
        s.ctl(&["nodes"]).1
    );

    // Refused batches: each has a good item for p1 first, and nothing of it is applied.
    let unchanged = |s: &Server, what: &str| {
        let p1 = node(s, "p1");
        assert_eq!(p1["capacity"]["load"], 420.0, "{what}: {p1}");
        assert!(
            status(&p1["capacity"]).starts_with("pushed by lb-agent"),
            "{what}: {p1}"
        );
        assert_eq!(p1["state"], "up", "{what}: {p1}");
    };
    for (bad, want) in [
        ("nope=5", "unknown node \"nope\""),
        ("p2=-5", "p2: load -5 is not a load"),
        ("p2=2e15", "p2: load 2000000000000000 is not a load"),
        ("p2=5:0", "ttl for p2 must be 1..=86400 seconds"),
        ("p2=5:86401", "ttl for p2 must be 1..=86400 seconds"),
    ] {
        let (ok, v) = s.ctl(&["push", "--load", "p1=111", bad]);
        assert!(!ok, "{bad} accepted: {v}");
        assert_eq!(v["ok"], false, "{bad}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains(want), "{bad}: {want:?} not in {v}");
        unchanged(&s, bad);
    }
    // NaN and infinity are not JSON: the command line refuses them as loads.
    for bad in ["p2=lots", "p2=NaN", "p2=inf"] {
        let (ok, _, err) = ctl_text(&s, &["push", "--load", "p1=111", bad]);
        assert!(!ok && err.contains("bad load"), "{bad}: {err}");
        unchanged(&s, bad);
    }
    for (line, want) in [
        (
            r#"{"cmd":"push","states":[{"node":"p1","load":111,"ttl":60},{"node":"p2","ttl":60}]}"#,
            "push for p2 needs a `state`, a `load` or both",
        ),
        (
            r#"{"cmd":"push","states":[{"node":"p1","state":"down","load":111,"ttl":60},{"node":"p2","load":1e16,"ttl":60}]}"#,
            "is not a load",
        ),
        (
            r#"{"cmd":"push","states":[{"node":"p1","load":111,"ttl":60},{"node":"p2","state":"sideways","load":5,"ttl":60}]}"#,
            "bad state",
        ),
        (
            r#"{"cmd":"push","states":[{"node":"p1","load":111,"ttl":60},{"node":"p2","load":"high","ttl":60}]}"#,
            "invalid type",
        ),
        (
            r#"{"cmd":"push","states":[{"node":"p1","load":111,"ttl":60},{"node":"p2","load":-0.5,"ttl":60}]}"#,
            "is not a load",
        ),
    ] {
        let v = ctl_raw(&s, line);
        assert_eq!(v["ok"], false, "{line}: {v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(want),
            "{want:?} not in {v}"
        );
        unchanged(&s, line);
    }

    // One item may carry a state and a load: both are applied.
    let v = ctl_raw(
        &s,
        r#"{"cmd":"push","source":"agent","states":[{"node":"p2","state":"drain","load":300,"ttl":60}]}"#,
    );
    assert_eq!(v["ok"], true, "{v}");
    let p2 = node(&s, "p2");
    assert_eq!(p2["state"], "drain", "{p2}");
    assert_eq!(p2["capacity"]["load"], 300.0, "{p2}");
    assert!(
        status(&p2["capacity"]).starts_with("pushed by agent"),
        "{p2}"
    );
    assert!(s.ctl(&["push", "p2=up"]).0);

    // p3's load lapses after its 2 s TTL: no load, the static weight.
    assert!(
        wait_for(10, || cap(&s, "p3")["load"].is_null()),
        "{}",
        s.ctl(&["nodes"]).1
    );
    let p3 = cap(&s, "p3");
    assert!(status(&p3).ends_with("static weight"), "{p3}");
    assert!(p3["utilisation"].is_null(), "{p3}");
    let m = metrics(&s);
    assert_eq!(metric(&m, "signpost_node_load_valid{node=\"p3\"}"), 0.0);
    assert!(!m.contains_key("signpost_node_load{node=\"p3\"}"), "{m:#?}");
    assert_eq!(metric(&m, "signpost_node_load{node=\"p1\"}"), 420.0);
    // Still answering, from the region's nodes.
    let a = s.short(&["dl.example.test"]);
    assert!(
        ["192.0.2.21", "192.0.2.22", "192.0.2.23"].contains(&a.as_str()),
        "{a:?}"
    );
}

/// A node whose pushed load lapsed is answered by its static weight, as `ctl nodes` says,
/// even while the other nodes' loads are not fresh enough for a controller step.
#[test]
fn a_lapsed_pushed_load_gives_the_static_weight_back() {
    let dir = TempDir::new("capacity-lapse");
    let s = serve(&dir, push_map());
    // Pushed as a monitor does, until the controller has raised p2.
    assert!(
        wait_for(10, || {
            assert!(s.ctl(&["push", "--load", "p1=420", "p2=100:1", "p3=250"]).0);
            factor(&cap(&s, "p2")) > 1.0
        }),
        "{}",
        s.ctl(&["nodes"]).1
    );
    assert!(wait_for(10, || cap(&s, "p2")["load"].is_null()));
    assert!(status(&cap(&s, "p2")).ends_with("static weight"));
    assert!(
        wait_for(5, || factor(&cap(&s, "p2")) == 1.0),
        "p2 has no load, yet keeps its factor: {}",
        s.ctl(&["nodes"]).1
    );
}

/// What the test's exporter answers.
#[derive(Clone, Copy)]
enum Reply {
    Body(u16, &'static [u8]),
    /// Reads the request and never answers (until the exporter stops).
    Hang,
    /// A counter growing at 1000/s, or, after a reset, from 5 at 3000/s.
    Counter,
}

fn reply(path: &str) -> Reply {
    match path {
        "/busy" => Reply::Body(200, b"# TYPE load gauge\nload{site=\"s\"} 450\n"),
        "/quiet" => Reply::Body(200, b"# TYPE load gauge\nload{site=\"s\"} 50\n"),
        "/garbage" => Reply::Body(200, b"<html><body>{{ not the text format }}\n"),
        "/binary" => Reply::Body(200, b"\xff\xfe\x00\x01load 1\n"),
        "/nan" => Reply::Body(200, b"load{site=\"s\"} NaN\n"),
        "/negative" => Reply::Body(200, b"load{site=\"s\"} -4\n"),
        "/missing" => Reply::Body(200, b"load{site=\"elsewhere\"} 5\nother{site=\"s\"} 5\n"),
        "/absurd" => Reply::Body(200, b"load{site=\"s\"} 1e16\n"),
        "/error" => Reply::Body(500, b"internal error\n"),
        "/hang" => Reply::Hang,
        "/counter" => Reply::Counter,
        _ => Reply::Body(404, b"not found\n"),
    }
}

/// A small HTTP exporter answering by path (see [`reply`]); stops on drop, and by itself
/// after two minutes.
struct Exporter {
    port: u16,
    stop: Arc<AtomicBool>,
    /// When the counter was reset, if it was.
    reset: Arc<Mutex<Option<Instant>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reset: Arc<Mutex<Option<Instant>>> = Arc::default();
        let started = Instant::now();
        let (flag, reset_at) = (stop.clone(), reset.clone());
        let thread = std::thread::spawn(move || {
            let deadline = started + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((c, _)) => {
                        let (flag, reset_at) = (flag.clone(), reset_at.clone());
                        std::thread::spawn(move || serve_one(c, started, &flag, &reset_at));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Exporter {
            port,
            stop,
            reset,
            thread: Some(thread),
        }
    }
}

fn serve_one(
    mut c: TcpStream,
    started: Instant,
    stop: &AtomicBool,
    reset: &Mutex<Option<Instant>>,
) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if req.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&req).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, body): (u16, Vec<u8>) = match reply(&path) {
        Reply::Body(st, b) => (st, b.to_vec()),
        Reply::Hang => {
            // Bounded: the exporter's stop, or ten seconds.
            let until = Instant::now() + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        Reply::Counter => {
            let now = Instant::now();
            let v = match *reset.lock().unwrap() {
                None => 1e6 + 1000.0 * now.duration_since(started).as_secs_f64(),
                Some(r) => 5.0 + 3000.0 * now.saturating_duration_since(r).as_secs_f64(),
            };
            (
                200,
                format!("# TYPE bytes_total counter\nbytes_total{{site=\"s\"}} {v}\n").into_bytes(),
            )
        }
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let _ = c.write_all(&resp);
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn bad_load_sources_leave_the_static_weight_and_a_counter_reset_is_skipped() {
    let exporter = Exporter::start();
    // A port nothing listens on.
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let src = |port: u16, path: &str, metric: &str, kind: &str, scale: f64| {
        format!(
            "{{ url: \"http://127.0.0.1:{port}{path}\", metric: {metric}, labels: {{ site: s }}, type: {kind}, scale: {scale}, interval_ms: 300, timeout_ms: 250, stale_ms: 3000 }}"
        )
    };
    let bad = [
        ("garbage", "/garbage"),
        ("binary", "/binary"),
        ("nan", "/nan"),
        ("negative", "/negative"),
        ("missing", "/missing"),
        ("absurd", "/absurd"),
        ("error", "/error"),
        ("hang", "/hang"),
        ("refused", "/metrics"),
    ];
    let mut nodes = String::new();
    let mut names = Vec::new();
    let mut i = 1;
    let mut add = |name: &str, load: String| {
        nodes +=
            &format!("  - {{ name: {name}, ipv4: [192.0.2.{i}], capacity: 500, load: {load} }}\n");
        names.push(name.to_string());
        i += 1;
    };
    let p = exporter.port;
    add("busy", src(p, "/busy", "load", "gauge", 1.0));
    add("quiet", src(p, "/quiet", "load", "gauge", 1.0));
    add("counter", src(p, "/counter", "bytes_total", "counter", 0.1));
    for (name, path) in bad {
        let port = if name == "refused" { refused } else { p };
        add(name, src(port, path, "load", "gauge", 1.0));
    }
    let dir = TempDir::new("capacity-bad");
    let s = serve(
        &dir,
        &format!(
            "nodes:\n{nodes}regions:\n  - {{ name: all, nodes: [{}] }}\nservices:\n  - names: [dl.example.test]\n    ttl: 1\n    spread: capacity\n    capacity: {{ interval_ms: 200 }}\n    rules:\n      - {{ default: true, regions: [all] }}\n",
            names.join(", ")
        ),
    );

    let expected = [
        // The text format parser skips lines it cannot read: a page of garbage has no series.
        ("garbage", "no series of the metric has the labels"),
        ("binary", "not the Prometheus text format: not UTF-8"),
        ("nan", "value NaN is not a load"),
        ("negative", "value -4 is not a load"),
        ("missing", "no series of the metric has the labels"),
        ("absurd", "load 1e16 is absurd (check `scale`)"),
        ("error", "scrape failed: HTTP status 500"),
        ("hang", "scrape failed: timed out after 250 ms"),
        ("refused", "scrape failed: connect 127.0.0.1:"),
    ];
    let all_seen = || {
        expected
            .iter()
            .all(|(n, want)| status(&cap(&s, n)).starts_with(want))
    };
    assert!(wait_for(20, all_seen), "{}", s.ctl(&["nodes"]).1);
    // Every bad source leaves its node with no load, and its region (here all nodes) at the
    // static weights: factors balanced against loads nobody knows would mean nothing.
    let m = metrics(&s);
    for (n, want) in expected {
        let c = cap(&s, n);
        let st = status(&c);
        assert!(st.starts_with(want), "{n}: {want:?}: {c}");
        assert!(st.ends_with(": static weight"), "{n}: {c}");
        assert!(
            c["load"].is_null() && c["utilisation"].is_null(),
            "{n}: {c}"
        );
        assert_eq!(factor(&c), 1.0, "{n}: {c}");
        assert_eq!(
            metric(&m, &format!("signpost_node_load_valid{{node=\"{n}\"}}")),
            0.0,
            "{n}"
        );
        assert!(!m.contains_key(&format!("signpost_node_load{{node=\"{n}\"}}")));
    }
    assert_eq!(metric(&m, "signpost_node_load_valid{node=\"busy\"}"), 1.0);
    assert_eq!(metric(&m, "signpost_node_load{node=\"busy\"}"), 450.0);
    assert_eq!(factor(&cap(&s, "quiet")), 1.0);
    assert_eq!(factor(&cap(&s, "busy")), 1.0);

    // The counter's rate: 1000/s × 0.1.
    let counter = || cap(&s, "counter")["load"].as_f64();
    assert!(
        wait_for(15, || counter()
            .is_some_and(|l| (60.0..=140.0).contains(&l))),
        "{}",
        cap(&s, "counter")
    );
    // A reset: that scrape gives no reading (the previous one stands, logged), the next ones
    // give the new rate, 3000/s × 0.1; never a negative or absurd value.
    *exporter.reset.lock().unwrap() = Some(Instant::now());
    let mut seen = Vec::new();
    assert!(
        wait_for(15, || {
            let c = cap(&s, "counter");
            seen.push((c["load"].as_f64(), status(&c)));
            c["load"]
                .as_f64()
                .is_some_and(|l| (200.0..=400.0).contains(&l))
        }),
        "{seen:?}"
    );
    for (load, st) in &seen {
        assert_eq!(st, "scraped", "{seen:?}");
        assert!(
            load.is_some_and(|l| (60.0..=400.0).contains(&l)),
            "{seen:?}"
        );
    }
    assert!(
        s.stderr().contains("counter reset"),
        "the reset is logged:\n{}",
        s.stderr()
    );

    // Through all of it the server answers, from the region's nodes, and has not crashed.
    for net in subnets(10) {
        let (a, scope) = s.answer_and_scope("dl.example.test", &net);
        assert!(a.starts_with("192.0.2."), "{net}: {a:?}");
        assert_eq!(scope, "24");
    }
    let mut s = s;
    assert!(s.child.try_wait().unwrap().is_none(), "the server exited");
    assert!(!s.stderr().contains("panicked"), "{}", s.stderr());
    drop(s);
    drop(exporter);
}

/// Runs `signpost check --config CONFIG`: (exit code, stderr).
fn check(cfg: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(SIGNPOST)
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A configuration without GeoIP or BGP data (validating maps needs neither) naming `maps`.
fn check_config(dir: &TempDir, maps: &[&str]) -> std::path::PathBuf {
    let maps: String = maps.iter().map(|m| format!("  - {m}\n")).collect();
    dir.write(
        "signpost.yaml",
        &format!(
            "zones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster }}\n    ns: [ns1.example.test.]\nmaps:\n{maps}"
        ),
    )
}

fn assert_lines(err: &str, want: &[String], problems: usize) {
    for w in want {
        assert!(err.contains(w.as_str()), "missing {w:?} in:\n{err}");
    }
    assert!(
        err.ends_with(&format!("{problems} problem(s) found\n")),
        "expected {problems} problems:\n{err}"
    );
}

#[test]
fn check_refuses_bad_capacity_values_with_positions() {
    // Node values.
    let dir = TempDir::new("capacity-check-nodes");
    let f = dir.write(
        "map.yaml",
        r#"capacity_unit: Mbit/s
nodes:
  - { name: zero, ipv4: [192.0.2.1], capacity: 0 }
  - { name: negative, ipv4: [192.0.2.2], capacity: -5 }
  - name: nocap
    ipv4: [192.0.2.3]
    load: { url: "http://127.0.0.1:9100/metrics", metric: m, type: gauge }
  - name: tls
    ipv4: [192.0.2.4]
    capacity: 100
    load: { url: "https://127.0.0.1:9100/metrics", metric: m, type: gauge }
  - name: nohost
    ipv4: [192.0.2.5]
    capacity: 100
    load: { url: "http://", metric: m, type: gauge }
  - name: badmetric
    ipv4: [192.0.2.6]
    capacity: 100
    load: { url: "http://127.0.0.1:9100/metrics", metric: 9load, type: gauge }
  - name: noscale
    ipv4: [192.0.2.7]
    capacity: 100
    load: { url: "http://127.0.0.1:9100/metrics", metric: m, type: gauge, scale: 0 }
  - name: slow
    ipv4: [192.0.2.8]
    capacity: 100
    load: { url: "http://127.0.0.1:9100/metrics", metric: m, type: gauge, interval_ms: 1000, timeout_ms: 2000 }
  - name: badtype
    ipv4: [192.0.2.9]
    capacity: 100
    load: { url: "http://127.0.0.1:9100/metrics", metric: m, type: rate }
  - { name: ok, ipv4: [192.0.2.10], capacity: 100 }
regions:
  - { name: r, nodes: [ok] }
services:
  - names: [dl.example.test]
    spread: capacity
    rules:
      - { default: true, regions: [r] }
"#,
    );
    let (code, err) = check(&check_config(&dir, &["map.yaml"]));
    assert_eq!(code, Some(1), "{err}");
    let f = f.display();
    assert_lines(
        &err,
        &[
            format!(
                "{f}:3:48: nodes[0].capacity: must be a number above 0 (in the maps' capacity unit)"
            ),
            format!("{f}:4:52: nodes[1].capacity: must be a number above 0"),
            format!(
                "{f}:7:13: nodes[2].load: a load source needs the node's `capacity` (utilisation is load / capacity)"
            ),
            format!(
                "{f}:11:18: nodes[3].load.url: \"https://127.0.0.1:9100/metrics\" is not an exporter URL; expected http://HOST[:PORT]/PATH"
            ),
            format!("{f}:15:18: nodes[4].load.url: \"http://\" is not an exporter URL"),
            format!("{f}:19:59: nodes[5].load.metric: \"9load\" is not a metric name"),
            format!("{f}:23:82: nodes[6].load.scale: `scale` must be a finite number above 0"),
            format!(
                "{f}:27:106: nodes[7].load.timeout_ms: `timeout_ms` must be between 1 and `interval_ms`"
            ),
            format!(
                "{f}:31:68: nodes[8].load.type: unknown variant `rate`, expected `counter` or `gauge`"
            ),
        ],
        9,
    );

    // Service values.
    let dir = TempDir::new("capacity-check-services");
    let f = dir.write(
        "map.yaml",
        r#"nodes:
  - { name: a, ipv4: [192.0.2.1], capacity: 100 }
  - { name: b, ipv4: [192.0.2.2] }
  - { name: c, ipv4: [192.0.2.3], capacity: 100 }
regions:
  - { name: r, nodes: [a, b] }
  - { name: s, nodes: [c] }
services:
  - names: [one.example.test]
    spread: capacity
    rules:
      - { default: true, regions: [r] }
  - names: [two.example.test]
    spread: weighted
    capacity: { target_utilisation: 0.8 }
    rules:
      - { default: true, regions: [s] }
  - names: [three.example.test]
    spread: capacity
    capacity: { target_utilisation: 0, interval_ms: 10, max_step: 0, deadband: 0.9, max_overflow: 1.5 }
    rules:
      - { default: true, regions: [s] }
  - names: [four.example.test]
    spread: capacity
    capacity:
      target_utilisation: 2
    rules:
      - { default: true, regions: [s] }
"#,
    );
    let (code, err) = check(&check_config(&dir, &["map.yaml"]));
    assert_eq!(code, Some(1), "{err}");
    let f = f.display();
    assert_lines(
        &err,
        &[
            format!(
                "{f}:10:13: services[0].spread: `spread: capacity` needs a `capacity` on every node its regions hold; node \"b\" (region \"r\") has none"
            ),
            format!("{f}:15:17: services[1].capacity: `capacity` settings need `spread: capacity`"),
            format!("{f}:20:37: services[2].capacity.target_utilisation: must be 0.05..=1"),
            format!("{f}:20:53: services[2].capacity.interval_ms: must be 100..=3600000"),
            format!("{f}:20:67: services[2].capacity.max_step: must be 0.01..=1"),
            format!("{f}:20:80: services[2].capacity.deadband: must be 0..=0.5"),
            format!("{f}:20:99: services[2].capacity.max_overflow: must be 0..=1"),
            format!("{f}:26:27: services[3].capacity.target_utilisation: must be 0.05..=1"),
        ],
        8,
    );

    // Two units; a node steered by two services. Each alone in its configuration.
    let dir = TempDir::new("capacity-check-units");
    dir.write(
        "nodes.yaml",
        "capacity_unit: Mbit/s\nnodes:\n  - { name: a, ipv4: [192.0.2.1], capacity: 100 }\n",
    );
    let f = dir.write(
        "rest.yaml",
        "capacity_unit: Gbit/s\nregions:\n  - { name: r, nodes: [a] }\nservices:\n  - names: [one.example.test]\n    spread: capacity\n    rules:\n      - { default: true, regions: [r] }\n",
    );
    let (code, err) = check(&check_config(&dir, &["nodes.yaml", "rest.yaml"]));
    assert_eq!(code, Some(1), "{err}");
    assert_lines(
        &err,
        &[format!(
            "{}:1:16: capacity_unit: \"Gbit/s\" differs from \"Mbit/s\" given in another map file: one unit for all maps",
            f.display()
        )],
        1,
    );
    // The same unit twice is fine.
    dir.write(
        "rest.yaml",
        "capacity_unit: Mbit/s\nregions:\n  - { name: r, nodes: [a] }\nservices:\n  - names: [one.example.test]\n    spread: capacity\n    rules:\n      - { default: true, regions: [r] }\n",
    );
    let (code, err) = check(&check_config(&dir, &["nodes.yaml", "rest.yaml"]));
    assert_eq!(code, Some(0), "{err}");

    let dir = TempDir::new("capacity-check-twice");
    let f = dir.write(
        "map.yaml",
        r#"nodes:
  - { name: a, ipv4: [192.0.2.1], capacity: 100 }
  - { name: c, ipv4: [192.0.2.3], capacity: 100 }
regions:
  - { name: r, nodes: [a, c] }
  - { name: t, nodes: [a] }
services:
  - names: [one.example.test]
    spread: capacity
    rules:
      - { default: true, regions: [r] }
  - names: [two.example.test]
    spread: capacity
    rules:
      - { default: true, regions: [t] }
  - names: [three.example.test]
    spread: weighted
    rules:
      - { default: true, regions: [r] }
"#,
    );
    let (code, err) = check(&check_config(&dir, &["map.yaml"]));
    assert_eq!(code, Some(1), "{err}");
    assert_lines(
        &err,
        &[format!(
            "{}:13:13: services[1].spread: node \"a\" is steered by capacity in two services (\"one.example.test\" and \"two.example.test\"); give one service both names",
            f.display()
        )],
        1,
    );
}

/// A node whose `capacity` is refused is not reported a second time, as lacking one, by the
/// `spread: capacity` service whose region holds it (the repository's rule: no follow-on
/// errors; see testdata/invalid/maps/no-follow-on-errors).
#[test]
fn a_refused_capacity_adds_no_follow_on_error() {
    let dir = TempDir::new("capacity-check-follow-on");
    dir.write(
        "map.yaml",
        "nodes:\n  - { name: a, ipv4: [192.0.2.1], capacity: 0 }\n  - { name: b, ipv4: [192.0.2.2], capacity: 100 }\nregions:\n  - { name: r, nodes: [a, b] }\nservices:\n  - names: [one.example.test]\n    spread: capacity\n    rules:\n      - { default: true, regions: [r] }\n",
    );
    let (code, err) = check(&check_config(&dir, &["map.yaml"]));
    assert_eq!(code, Some(1), "{err}");
    assert_lines(
        &err,
        &["nodes[0].capacity: must be a number above 0".into()],
        1,
    );
}
