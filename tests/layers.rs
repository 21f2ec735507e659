//! The layering of `src/`, as data, and a check that every `crate::` path in the code keeps to
//! it. Each top-level module (a file or a directory under `src/`) may name only itself and the
//! modules listed for it; the list runs one way, from the bottom up:
//!
//! - base: `wire`, `hash`, `embedded`, `source`, `ranges`, `health`, `tally`, `distance`,
//!   `log_limit`
//! - formats: `spec`, `zone`, `config`, `dnssec` (key files, DS records)
//! - data: `geo`, `bgp`, `client`, `check` (health checks), `meter` (load sources), `live`
//! - compiled model: `snapshot`, `explain`
//! - compiler (pure): `compile`
//! - node states, capacity (loads and the controller), the load pipeline and the reload guard:
//!   `node_state`, `capacity`, `load`, `guard`
//! - where services meet: `counters`, `serving`, `notify` (messages to the service manager)
//! - `manual` (man pages, completions: for `cli`, from definitions it is handed)
//! - services: `dns`, `probe`, `scrape`, `reload`, `control`, `feed`
//! - the hand-over to a new process: `handover` (through the control protocol)
//! - `daemon`, then `cli`, then `main` (which names the library as `signpost::`).
//!
//! Services never name each other: they meet at the snapshot, the node states and the serving
//! state. The check reads code only (comments and doc comments are skipped), and reports every
//! violation with its file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → the modules it may name.
const ALLOWED: &[(&str, &[&str])] = &[
    // Base: no imports.
    ("wire", &[]),
    ("hash", &[]),
    ("embedded", &[]),
    ("source", &[]),
    ("ranges", &[]),
    ("health", &[]),
    ("tally", &[]),
    ("distance", &[]),
    ("log_limit", &[]),
    // Formats.
    ("spec", &["source"]),
    // DNSSEC key files and DS records.
    ("dnssec", &["wire"]),
    ("zone", &["wire", "source", "dnssec"]),
    (
        "config",
        &[
            "source", "embedded", "spec", "zone", "wire", "health", "dnssec",
        ],
    ),
    // Data.
    ("geo", &["ranges", "hash"]),
    ("bgp", &[]),
    ("client", &["bgp", "geo", "config", "source"]),
    ("check", &["spec", "source"]),
    ("meter", &["spec", "source"]),
    ("live", &[]),
    // The compiled model, and explanations over it.
    (
        "snapshot",
        &[
            "health", "hash", "zone", "client", "check", "meter", "live", "tally",
        ],
    ),
    ("explain", &["snapshot", "live", "ranges", "distance"]),
    // The compiler: specs and data in, a snapshot out.
    (
        "compile",
        &[
            "snapshot", "client", "live", "geo", "config", "spec", "source", "zone", "wire",
            "ranges", "health", "check", "meter", "hash", "distance", "dnssec",
        ],
    ),
    // Node states; the load pipeline (the only reader of storage for builds).
    ("node_state", &["health", "snapshot"]),
    // Loads and the capacity controller: what the shares of a steered service should be.
    ("capacity", &["health", "meter", "snapshot", "log_limit"]),
    // The anycast announcement's decision (a pure state machine and its holder).
    ("anycast", &[]),
    // The reload guard: what a new snapshot takes away from the serving one.
    ("guard", &["config", "snapshot"]),
    (
        "load",
        &[
            "compile", "config", "client", "live", "source", "embedded", "snapshot",
        ],
    ),
    // Where the services meet.
    ("counters", &["wire", "tally", "snapshot"]),
    ("querylog", &["counters", "snapshot", "wire"]),
    (
        "serving",
        &[
            "snapshot",
            "node_state",
            "capacity",
            "live",
            "counters",
            "querylog",
            "health",
            "anycast",
        ],
    ),
    // Messages to the service manager (systemd), for the daemon and the reload thread.
    ("notify", &[]),
    // Man pages and completions from the command-line definitions the caller hands over.
    ("manual", &[]),
    // Services.
    (
        "dns",
        &[
            "wire",
            "snapshot",
            "zone",
            "config",
            "explain",
            "counters",
            "tally",
            "querylog",
            "log_limit",
        ],
    ),
    (
        "probe",
        &["check", "snapshot", "node_state", "serving", "hash"],
    ),
    ("scrape", &["capacity", "meter", "serving"]),
    ("reload", &["load", "serving", "config", "notify", "guard"]),
    (
        "control",
        &[
            "serving",
            "node_state",
            "capacity",
            "snapshot",
            "health",
            "counters",
            "explain",
        ],
    ),
    ("feed", &["live", "log_limit", "config"]),
    // The self-check behind the anycast announcement.
    ("selfcheck", &["anycast", "serving"]),
    (
        "metrics",
        &[
            "counters", "serving", "capacity", "health", "live", "snapshot", "anycast",
        ],
    ),
    // The hand-over to a new process: above the services it relays through (the control
    // socket's protocol), below the daemon that decides what to bind and stop.
    (
        "handover",
        &[
            "control",
            "node_state",
            "capacity",
            "health",
            "counters",
            "notify",
            "live",
        ],
    ),
    // Parts of a service held to less than their module: the rate limiter needs no snapshot;
    // the control protocol and client know nothing of the server's state.
    ("dns/rrl", &["config", "hash"]),
    ("dns/conns", &["config"]),
    ("control/protocol", &["node_state", "live", "anycast"]),
    ("control/client", &[]),
    ("control/text", &[]),
    // Wiring, the command line, the binary.
    (
        "daemon",
        &[
            "load",
            "config",
            "serving",
            "node_state",
            "counters",
            "dns",
            "metrics",
            "querylog",
            "probe",
            "scrape",
            "reload",
            "control",
            "feed",
            "source",
            "notify",
            "handover",
            "snapshot",
            "live",
            "anycast",
            "selfcheck",
        ],
    ),
    (
        "cli",
        &[
            "daemon",
            "load",
            "control",
            "node_state",
            "explain",
            "config",
            "snapshot",
            "source",
            "manual",
            "dnssec",
        ],
    ),
    ("main", &["cli"]),
];

/// One name of a module outside its own, where it is written.
#[derive(Debug, PartialEq, Eq)]
struct Import {
    file: String,
    line: usize,
    target: String,
}

/// The top-level module a file under `src/` belongs to (`dns/udp.rs` → `dns`); a file
/// module's tests in a file beside it belong to it (`wire_tests.rs` → `wire`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .expect("a path under src")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let name = first.trim_end_matches(".rs");
    name.strip_suffix("_tests").unwrap_or(name).to_string()
}

/// Every module `text` names through `crate::` (or `signpost::`, from the binary), with its
/// line, outside comments. `use crate::{a, b::c}` names `a` and `b`.
fn imports(file: &str, text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    let mut in_group: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split("//").next().unwrap_or("");
        let trimmed = line.trim();
        let mut push = |target: &str| {
            let target: String = target
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !target.is_empty() && target != "self" {
                out.push(Import {
                    file: file.to_string(),
                    line: i + 1,
                    target,
                });
            }
        };
        // The inside of a multi-line `use crate::{ ... };`.
        if in_group.is_some() {
            for part in trimmed.split(',') {
                let part = part.trim().trim_start_matches('{');
                if !part.is_empty() && !part.starts_with('}') {
                    push(part);
                }
            }
            if trimmed.contains("};") {
                in_group = None;
            }
            continue;
        }
        for prefix in ["crate::", "signpost::"] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                if let Some(group) = rest.strip_prefix('{') {
                    // `use crate::{a, b::{c, d}}`: the first segment of each entry.
                    let mut depth = 0;
                    let mut entry = String::new();
                    let mut closed = false;
                    for c in group.chars() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => {
                                closed = true;
                                break;
                            }
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                push(entry.trim());
                                entry.clear();
                                continue;
                            }
                            _ => {}
                        }
                        if depth == 0 {
                            entry.push(c);
                        }
                    }
                    push(entry.trim());
                    if !closed {
                        in_group = Some(i);
                    }
                } else {
                    push(rest);
                }
            }
        }
    }
    out
}

/// The imports in `file` (of `module`) that the table does not allow: the entry of the file
/// itself (`dns/rrl`) when there is one, else its module's.
fn violations(
    module: &str,
    file: &str,
    found: Vec<Import>,
    allowed: &BTreeMap<&str, BTreeSet<&str>>,
) -> Vec<Import> {
    let none = BTreeSet::new();
    let part = file.trim_end_matches(".rs").trim_end_matches("/mod");
    let ok = allowed
        .get(part)
        .or_else(|| allowed.get(module))
        .unwrap_or(&none);
    found
        .into_iter()
        .filter(|i| i.target != module && !ok.contains(i.target.as_str()))
        .collect()
}

fn table() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src is readable") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_import_follows_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = table();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    let mut seen = 0;
    let mut modules = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let module = module_of(rel);
        if module == "lib" {
            continue;
        }
        modules.insert(module.clone());
        let text = std::fs::read_to_string(f).expect("readable");
        let name = rel.display().to_string();
        let found = imports(&name, &text);
        seen += found.len();
        bad.extend(violations(&module, &name, found, &allowed));
    }
    // The check reads real imports (a parser that found none would pass anything).
    assert!(seen > 120, "only {seen} imports found");
    // Every module has an entry, and every entry is a module.
    let listed: BTreeSet<String> = allowed
        .keys()
        .filter(|k| !k.contains('/'))
        .map(|k| k.to_string())
        .collect();
    assert_eq!(
        modules, listed,
        "the layer table and the modules under src/ differ"
    );
    let report: Vec<String> = bad
        .iter()
        .map(|i| format!("src/{}:{}: may not name `{}`", i.file, i.line, i.target))
        .collect();
    assert!(
        report.is_empty(),
        "imports against the layers:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_table_has_no_cycle() {
    let allowed = table();
    // Depth-first search from every module.
    fn visit<'a>(
        m: &'a str,
        allowed: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        assert!(!path.contains(&m), "cycle: {} -> {m}", path.join(" -> "));
        path.push(m);
        for d in allowed.get(m).into_iter().flatten() {
            visit(d, allowed, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in allowed.keys() {
        visit(m, &allowed, &mut Vec::new(), &mut done);
    }
}

/// The arrows that once formed a cycle are each caught. (The prober's borrowing of the
/// snapshot's hash function cannot come back: the function is in `hash` now, and the prober
/// may read the snapshot.)
#[test]
fn the_old_cycle_would_fail() {
    let allowed = table();
    for (file, line) in [
        (
            "dns/answer.rs",
            "    let lines = crate::compile::explain(snap, s, client, how, false);",
        ),
        (
            "snapshot/mod.rs",
            "    pub check: Option<crate::probe::Check>,",
        ),
        ("probe.rs", "use crate::control::NodeStates;"),
        ("control/server.rs", "use crate::daemon::ServeOptions;"),
        ("config/mod.rs", "use crate::dns::wire::rtype;"),
        ("zone.rs", "use crate::dns::{self, wire};"),
        ("dns/rrl.rs", "use crate::snapshot::mix;"),
        ("compile/mod.rs", "    crate::reload::load(None, None)"),
        (
            "control/server.rs",
            "use crate::{reload::reload_now, serving::Serving};",
        ),
        ("feed/peer.rs", "use crate::{\n    serving::Serving,\n};"),
    ] {
        let module = module_of(Path::new(file));
        let found = imports(file, line);
        assert!(!found.is_empty(), "{file}: {line}: no import seen");
        let v = violations(&module, file, found, &allowed);
        assert!(!v.is_empty(), "{file}: {line:?} should break the layers");
    }
    // Comments do not count.
    assert!(imports("dns/answer.rs", "    // see crate::compile::explain").is_empty());
    assert!(imports("dns/answer.rs", "//! [`crate::compile`] builds it").is_empty());
}

/// Every allowance in the table is used: an entry that no file needs any more is taken out, so
/// that the table says what the code does.
#[test]
fn every_allowance_is_used() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // (entry, target) pairs actually named: a file counts for its own entry when it has one
    // (`dns/rrl`), else for its module's.
    let allowed = table();
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let module = module_of(rel);
        let name = rel.display().to_string();
        let part = name.trim_end_matches(".rs").trim_end_matches("/mod");
        let entry = if allowed.contains_key(part) {
            part.to_string()
        } else {
            module.clone()
        };
        let text = std::fs::read_to_string(f).expect("readable");
        for i in imports(&name, &text) {
            used.insert((entry.clone(), i.target));
        }
    }
    let unused: Vec<String> = allowed
        .iter()
        .flat_map(|(m, deps)| deps.iter().map(move |d| (m.to_string(), d.to_string())))
        .filter(|pair| !used.contains(pair))
        .map(|(m, d)| format!("{m} may name {d} but does not"))
        .collect();
    assert!(
        unused.is_empty(),
        "unused allowances:\n{}",
        unused.join("\n")
    );
}

/// The compiler, the snapshot, the explanations and the answer path read no file: the compiler
/// gets every file's bytes from its caller, and the answer path does no I/O but on its sockets.
#[test]
fn the_compiler_and_the_answer_path_read_no_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for dir in ["compile", "dns", "snapshot", "explain.rs"] {
        let mut files = Vec::new();
        if dir.ends_with(".rs") {
            files.push(src.join(dir));
        } else {
            rust_files(&src.join(dir), &mut files);
        }
        assert!(!files.is_empty(), "no files under src/{dir}");
        for f in files {
            let text = std::fs::read_to_string(&f).expect("readable");
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for what in [
                    "std::fs",
                    "fs::read",
                    "File::open",
                    "File::create",
                    "OpenOptions",
                    "read_to_string",
                    "read_dir",
                    ".read()",
                ] {
                    if code.contains(what) {
                        bad.push(format!("{}:{}: {what}", f.display(), i + 1));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "file access:\n{}", bad.join("\n"));
}

/// Services get the part of the serving state they use (`src/serving/`): only the control
/// socket, the metrics endpoint, the reload thread and the daemon that wires them name
/// `Serving`, everything together; the prober, the scraper, the self-check, the feeds and the
/// DNS workers get `Published`, `Reloads`, a callback or the snapshot swap.
#[test]
fn only_the_services_that_see_everything_get_serving() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = ["serving/", "control/", "metrics/", "daemon/", "reload.rs"];
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    let mut seen = BTreeSet::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).expect("readable");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let names = code
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == "Serving");
            if names {
                if allowed.iter().any(|a| rel.starts_with(a)) {
                    seen.insert(allowed.iter().find(|a| rel.starts_with(*a)).copied());
                } else {
                    bad.push(format!("src/{rel}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "Serving named outside {allowed:?}:\n{}",
        bad.join("\n")
    );
    // The check sees the type where it is used (it would not pass by finding nothing).
    assert_eq!(seen.len(), allowed.len(), "{seen:?}");
}

/// The files of one folder module name each other one way: no cycle among them (`mod.rs`,
/// which declares them, aside). Shared state lives in a file of its own.
#[test]
fn no_cycle_inside_a_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut cycles = Vec::new();
    for e in std::fs::read_dir(&src).expect("src is readable") {
        let dir = e.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let module = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut names = BTreeSet::new();
        for e in std::fs::read_dir(&dir).expect("readable") {
            let p = e.expect("entry").path();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            if stem != "mod" && (p.is_dir() || p.extension().is_some_and(|x| x == "rs")) {
                names.insert(stem);
            }
        }
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in &names {
            let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.rs"))) else {
                continue;
            };
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                let own = format!("crate::{module}::");
                for prefix in ["super::", own.as_str()] {
                    let mut rest = code;
                    while let Some(at) = rest.find(prefix) {
                        rest = &rest[at + prefix.len()..];
                        let group = rest
                            .strip_prefix('{')
                            .map(|g| g.split('}').next().unwrap_or(""));
                        let targets: Vec<&str> = match group {
                            Some(g) => g.split(',').map(|t| t.trim()).collect(),
                            None => vec![rest],
                        };
                        for t in targets {
                            let t: String = t
                                .chars()
                                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                                .collect();
                            if names.contains(&t) && &t != name {
                                edges.entry(name.clone()).or_default().insert(t);
                            }
                        }
                    }
                }
            }
        }
        for (a, targets) in &edges {
            for b in targets {
                if a < b && edges.get(b).is_some_and(|t| t.contains(a)) {
                    cycles.push(format!("src/{module}: {a}.rs <-> {b}.rs"));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "cycles:\n{}", cycles.join("\n"));
}
