//! Every mapping of every example file refuses an unknown key, with its exact YAML path and
//! the position of the key.
//!
//! The examples are the demo configuration, the map files in `maps/`, the benchmark
//! configuration and map in `benches/data-config/` (the fuzz seeds are copies of these), the
//! complete example configuration in `docs/configuration.md` and the complete map file in
//! `docs/health.md`, plus an example written here that uses every table of both formats. The
//! other snippets in `docs/maps.md` are fragments (regions without their nodes) and are not
//! complete files.
//!
//! For each file, every mapping at every depth is found from `yaml-rust2`'s event stream, and
//! for each one a copy of the file is written with `bogus_key: 1` inserted as the mapping's
//! first entry (a line of its own at the mapping's indentation for a block mapping, right
//! after the `{` of a flow mapping), the rest of the text unchanged. `signpost check` must then
//! fail with `FILE:LINE:COL: PATH: unknown field `bogus_key``, PATH being the mapping's YAML
//! path and LINE:COL where the inserted key is.

mod common;
use common::*;

use std::process::Command;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Mappings where `bogus_key` is not reported as an unknown field today, each with the
/// reason. No mapping of either format is meant to accept arbitrary keys; these are known
/// defects. The test fails when a listed mapping starts refusing the key properly, so that the
/// entry is removed with the fix. Paths use `[*]` for any index.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// A configuration that uses every table of `signpost.yaml` (written for this test).
const EVERY_TABLE_CONFIG: &str = r#"listen:
  - 127.0.0.1:5353
  - { address: "[::1]:5353", udp: true, tcp: false }
workers: 1
udp_payload_max: 1232
tcp:
  idle_timeout_ms: 10000
  max_connections: 512
  max_connections_per_client: 16
  max_queries_per_connection: 10000
  max_connections_per_network: 64
  ipv4_prefix: 24
  ipv6_prefix: 56
  reclaim_idle_ms: 1000
  max_fd_percent: 50
reload_guard:
  enabled: true
  max_shrink_percent: 10
identity: { server_id: signpost-test, version: "1.0" }
why:
  enabled: true
  allow: [127.0.0.0/8]
rrl:
  enabled: true
  responses_per_second: 1000
  slip: 2
  ipv4_prefix: 24
  ipv6_prefix: 56
  exempt: [127.0.0.0/8]
health:
  initial: up
  startup_wait_ms: 3000
  max_concurrent_checks: 64
zones:
  - apex: example.test
    ttl: 3600
    soa:
      mname: ns1
      rname: hostmaster
      serial: 1
      refresh: 7200
      retry: 900
      expire: 1209600
      minimum: 300
      ttl: 3600
    ns:
      - ns2.example.net.
      - name: ns1.example.test.
        addresses: [127.0.0.1]
    records:
      - name: www
        type: A
        value: 192.0.2.80
        ttl: 300
      - { name: "@", type: TXT, values: [one, two] }
    dnssec:
      keys:
        - {file: DEMO_KEY, sign: true}
      validity_s: 1209600
      refresh_s: 604800
      backdate_s: 3600
      cds: true
maps: [every-table-map.yaml]
feeds:
  asn: 64512
  router_id: 192.0.2.53
  listen: 127.0.0.1:1179
  connect_retry_ms: 5000
  stale_ms: 120000
  update_delay_ms: 1000
  peers:
    - name: fra1-router
      address: 192.0.2.1
      asn: 64500
      nodes: [fra1]
      mode: passive
      port: 179
      hold_time: 90
      families: [ipv4, ipv6]
      max_prefixes: 1000000
reload_debounce_ms: 500
reload_priority: low
control:
  socket: /nonexistent/signpost-test.sock
  mode: "0660"
  max_connections: 64
  idle_timeout_ms: 30000
state_file: /nonexistent/signpost-test-state.json
"#;

/// A map file that uses every table of the map format (written for this test).
const EVERY_TABLE_MAP: &str = r#"nodes:
  - name: fra1
    ipv4: [192.0.2.10]
    ipv6: ["2001:db8:10::1"]
    weight: 100
    location: { lat: 50.11, lon: 8.68 }
    asns: [64500]
    prefixes: [192.0.2.0/24]
    tags: [eu]
    local_only: false
    check:
      kind: http
      address: 192.0.2.10
      port: 80
      path: /health
      host: dl.example.test
      expect_status: [200]
      expect_body: ok
      interval_ms: 5000
      timeout_ms: 2000
      jitter_ms: 500
      rise: 2
      fall: 3
      insecure: false
  - name: iad1
    ipv4: [198.51.100.10]
regions:
  - name: europe
    nodes: [fra1, { node: iad1, weight: 10 }]
    check: { kind: tcp, port: 443 }
    rank: weight
  - name: north-america
    nodes:
      - node: iad1
        weight: 50
services:
  - names: [dl.example.test]
    ttl: 60
    degraded_ttl: 20
    answers: 1
    spread: none
    ecs: use
    all_down: last_resort
    last_resort: [fra1, { node: iad1, weight: 5 }]
    rules:
      - { prefixes: [198.18.0.0/15], regions: [europe] }
      - { asns: [3320], regions: [europe] }
      - { subdivisions: [US-CA], regions: [north-america] }
      - { countries: [NZ], regions: [north-america] }
      - { continents: [EU], regions: [europe] }
      - default: true
        regions: [north-america, europe]
"#;

/// A configuration for checking map files alone: no GeoIP or BGP data (validating maps does
/// not need them, and loading them takes most of a second in a debug build).
fn maps_only_config(maps: &[&str]) -> String {
    let maps: String = maps.iter().map(|m| format!("  - {m}\n")).collect();
    format!(
        "zones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster }}\n    ns: [ns1.example.test.]\n  - apex: example.org\n    soa: {{ mname: ns1, rname: hostmaster }}\n    ns: [ns1.example.org.]\nmaps:\n{maps}"
    )
}

/// A set of files checked together: written into a fresh directory as `files`, checked with
/// `config`; each of `targets` gets every mapping mutated in turn.
struct Subject {
    label: &'static str,
    files: Vec<(String, String)>,
    config: String,
    targets: Vec<String>,
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `text` with `from` replaced (which must occur).
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found");
    text.replace(from, to)
}

/// The first fenced YAML block after `heading` in a Markdown file.
fn yaml_block(markdown: &str, heading: &str) -> String {
    let at = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("{heading}"));
    let rest = &markdown[at..];
    let start = rest.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = rest[start..].find("```").unwrap();
    rest[start..start + end].to_string()
}

fn subjects() -> Vec<Subject> {
    let abs = |rel: &str| root().join(rel).display().to_string();
    let geoip = abs("testdata/geoip/GeoLite2-Country-2018-08-07.mmdb");
    let bgp = abs("testdata/bgp/demo-ipasn-20151101.txt");
    let mut out = Vec::new();

    // The demo configuration, its paths made absolute.
    let demo = read("testdata/demo/signpost.yaml");
    let demo = replaced(&demo, "../../maps/", &format!("{}/", abs("maps")));
    let demo = replaced(&demo, "../geoip/", &format!("{}/", abs("testdata/geoip")));
    let demo = replaced(&demo, "../bgp/", &format!("{}/", abs("testdata/bgp")));
    let demo = replaced(&demo, "[keys/", &format!("[{}/", abs("testdata/demo/keys")));
    out.push(Subject {
        label: "testdata/demo/signpost.yaml",
        files: vec![("signpost.yaml".into(), demo)],
        config: "signpost.yaml".into(),
        targets: vec!["signpost.yaml".into()],
    });

    // Every map file in maps/, checked together.
    let mut names: Vec<String> = std::fs::read_dir(root().join("maps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut files: Vec<(String, String)> = names
        .iter()
        .map(|n| (format!("maps/{n}"), read(&format!("maps/{n}"))))
        .collect();
    files.push(("signpost.yaml".into(), maps_only_config(&["maps/"])));
    out.push(Subject {
        label: "maps/",
        files,
        config: "signpost.yaml".into(),
        targets: names.iter().map(|n| format!("maps/{n}")).collect(),
    });

    // The benchmark configuration (its data files replaced by the test data) and its map.
    let bench = read("benches/data-config/signpost.yaml");
    let bench = replaced(
        &bench,
        "../../../shared/data/geoip/GeoLite2-City-2019-12-24.mmdb",
        &geoip,
    );
    let bench = replaced(
        &bench,
        "../../../shared/data/bgp/pyasn/ipasn6_20151101.dat.gz",
        &bgp,
    );
    out.push(Subject {
        label: "benches/data-config/signpost.yaml",
        files: vec![
            ("signpost.yaml".into(), bench),
            ("map.yaml".into(), read("benches/data-config/map.yaml")),
        ],
        config: "signpost.yaml".into(),
        targets: vec!["signpost.yaml".into()],
    });
    out.push(Subject {
        label: "benches/data-config/map.yaml",
        files: vec![
            ("signpost.yaml".into(), maps_only_config(&["map.yaml"])),
            ("map.yaml".into(), read("benches/data-config/map.yaml")),
        ],
        config: "signpost.yaml".into(),
        targets: vec!["map.yaml".into()],
    });

    // The example configuration of docs/configuration.md, its files replaced by test data.
    let example = yaml_block(&read("docs/configuration.md"), "## Example");
    // The repository's nodes: the example's feeds name them.
    let example = replaced(
        &example,
        "[/etc/signpost/maps/]",
        &format!("[{}]", abs("maps/nodes.yaml")),
    );
    let example = replaced(&example, "/var/lib/geoip/GeoLite2-City.mmdb", &geoip);
    let example = replaced(&example, "/var/lib/bgp/ipasn.dat.gz", &bgp);
    out.push(Subject {
        label: "docs/configuration.md (Example)",
        files: vec![("signpost.yaml".into(), example)],
        config: "signpost.yaml".into(),
        targets: vec!["signpost.yaml".into()],
    });

    // The node with a check of docs/health.md: a complete map file.
    out.push(Subject {
        label: "docs/health.md (Checks)",
        files: vec![
            ("signpost.yaml".into(), maps_only_config(&["map.yaml"])),
            (
                "map.yaml".into(),
                yaml_block(&read("docs/health.md"), "## Checks"),
            ),
        ],
        config: "signpost.yaml".into(),
        targets: vec!["map.yaml".into()],
    });

    // Every table of both formats.
    out.push(Subject {
        label: "every table (this test)",
        files: vec![
            (
                "signpost.yaml".into(),
                replaced(
                    EVERY_TABLE_CONFIG,
                    "DEMO_KEY",
                    &abs("testdata/demo/keys/Kexample.test.+013+01841"),
                ),
            ),
            ("every-table-map.yaml".into(), EVERY_TABLE_MAP.into()),
        ],
        config: "signpost.yaml".into(),
        targets: vec!["signpost.yaml".into(), "every-table-map.yaml".into()],
    });
    out
}

/// A mapping found in a file: its YAML path and where `bogus_key` goes.
#[derive(Debug)]
struct Mapping {
    path: String,
    /// Byte offset of the insertion.
    offset: usize,
    /// The text to insert there.
    insert: String,
}

/// Walks the event stream, giving every mapping its path the way `signpost` names it
/// (`zones[0].soa`, `services[0].rules[2]`; the document is the empty path).
struct Finder<'a> {
    text: &'a str,
    /// Byte offset of each character (the parser's marks count characters).
    chars: Vec<usize>,
    stack: Vec<Frame>,
    found: Vec<Mapping>,
}

enum Frame {
    Seq {
        path: String,
        next: usize,
    },
    Map {
        path: String,
        key: Option<String>,
        /// Index in `found`, until the first key is seen.
        pending: Option<usize>,
    },
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

impl Finder<'_> {
    fn byte(&self, m: &Marker) -> usize {
        self.chars
            .get(m.index())
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The path of the node starting now (None for a key), advancing the parent's cursor.
    fn next_path(&mut self, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key, .. }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    *key = Some(scalar.unwrap_or("?").to_string());
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Finder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(ref s, ..) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    let at = self.byte(&mark);
                    if let Some(Frame::Map { pending, .. }) = self.stack.last_mut()
                        && let Some(i) = pending.take()
                        && self.found[i].insert.is_empty()
                    {
                        // A block mapping: a line of its own before the first key, at its
                        // column.
                        let line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
                        let column = self.text[line_start..at].chars().count();
                        assert!(
                            self.text[at..]
                                .trim_start_matches(['"', '\''])
                                .starts_with(s.as_str()),
                            "the first key {s:?} is not at byte {at}"
                        );
                        self.found[i].offset = at;
                        self.found[i].insert = format!("bogus_key: 1\n{}", " ".repeat(column));
                    }
                    self.next_path(Some(s));
                } else {
                    self.next_path(None);
                }
            }
            Event::Alias(_) => {
                self.next_path(Some("*"));
            }
            Event::SequenceStart(..) => {
                let path = self.next_path(None).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingStart(..) => {
                let path = self.next_path(None).unwrap_or_default();
                let at = self.byte(&mark);
                let i = self.found.len();
                if self.text[at..].starts_with('{') {
                    let empty = self.text[at + 1..].trim_start().starts_with('}');
                    self.found.push(Mapping {
                        path: path.clone(),
                        offset: at + 1,
                        insert: if empty {
                            "bogus_key: 1"
                        } else {
                            "bogus_key: 1, "
                        }
                        .into(),
                    });
                } else {
                    // Placed when the first key arrives.
                    self.found.push(Mapping {
                        path: path.clone(),
                        offset: 0,
                        insert: String::new(),
                    });
                }
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    pending: Some(i),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Every mapping of a YAML text.
fn mappings(text: &str) -> Vec<Mapping> {
    let mut f = Finder {
        text,
        chars: text.char_indices().map(|(i, _)| i).collect(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    Parser::new_from_str(text).load(&mut f, false).unwrap();
    for m in &f.found {
        assert!(!m.insert.is_empty(), "empty block mapping at {}", m.path);
    }
    f.found
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// `zones[3].ns[0]` → `zones[*].ns[*]`.
fn pattern(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[*");
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// One mutated copy to check.
struct Job {
    label: String,
    files: Vec<(String, String)>,
    config: String,
    target: String,
    path: String,
    line: usize,
    column: usize,
}

fn check(dir: &TempDir, files: &[(String, String)], config: &str) -> (Option<i32>, String) {
    for (rel, text) in files {
        let p = dir.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", dir.path(config).to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `f` on every item, on a few threads.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads).max(1))
            .map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
fn every_mapping_of_every_example_rejects_an_unknown_key() {
    let subjects = subjects();
    // Each example is valid as it stands.
    let baseline = parallel(&subjects, |s| {
        let dir = TempDir::new("keys-base");
        (s.label, check(&dir, &s.files, &s.config))
    });
    for (label, (code, err)) in &baseline {
        assert_eq!(*code, Some(0), "{label} does not pass as it stands:\n{err}");
    }

    let mut jobs = Vec::new();
    for s in &subjects {
        for target in &s.targets {
            let text = &s.files.iter().find(|(r, _)| r == target).unwrap().1;
            let found = mappings(text);
            assert!(!found.is_empty(), "{}: {target}: no mapping", s.label);
            for m in found {
                let mutated = format!("{}{}{}", &text[..m.offset], m.insert, &text[m.offset..]);
                let (line, column) = line_col(&mutated, m.offset);
                let files = s
                    .files
                    .iter()
                    .map(|(r, t)| {
                        (
                            r.clone(),
                            if r == target {
                                mutated.clone()
                            } else {
                                t.clone()
                            },
                        )
                    })
                    .collect();
                jobs.push(Job {
                    label: s.label.to_string(),
                    files,
                    config: s.config.clone(),
                    target: target.clone(),
                    path: join(&m.path, "bogus_key"),
                    line,
                    column,
                });
            }
        }
    }

    let results = parallel(&jobs, |j| {
        let dir = TempDir::new("keys");
        check(&dir, &j.files, &j.config)
    });

    let mut failures = Vec::new();
    let mut gaps_hit = std::collections::BTreeSet::new();
    let mut gaps_fixed = std::collections::BTreeSet::new();
    for (j, (code, err)) in jobs.iter().zip(&results) {
        let want = format!(
            "/{}:{}:{}: {}: unknown field `bogus_key`",
            j.target, j.line, j.column, j.path
        );
        let ok = *code == Some(1) && err.lines().any(|l| l.contains(&want));
        let mapping = j.path.trim_end_matches(".bogus_key");
        let gap = KNOWN_GAPS
            .iter()
            .find(|(p, _)| *p == pattern(mapping))
            .map(|(p, _)| *p);
        match (ok, gap) {
            (true, None) => {}
            (false, Some(p)) => {
                gaps_hit.insert(p);
            }
            (true, Some(p)) => {
                gaps_fixed.insert(p);
            }
            (false, None) => failures.push(format!(
                "{} ({}): `bogus_key` in {}: exit code {code:?}, expected a line ending in\n  {}\ngot:\n{err}",
                j.label,
                j.target,
                if mapping.is_empty() { "the top level" } else { mapping },
                &want[1..],
            )),
        }
    }
    for p in &gaps_fixed {
        failures.push(format!(
            "{p}: listed in KNOWN_GAPS but now refuses `bogus_key` as it should; remove the entry"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {} mappings failed:\n\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
    // Keep the list honest: every entry is still met by some example.
    for (p, _) in KNOWN_GAPS {
        assert!(
            gaps_hit.contains(p),
            "KNOWN_GAPS lists {p}, which no example has"
        );
    }
    eprintln!(
        "{} mappings in {} examples checked; known gaps met: {gaps_hit:?}",
        jobs.len(),
        subjects.len()
    );
}
