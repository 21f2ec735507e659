//! Whether a reload applies each setting of [`Config`], decided once per field by
//! [`Config::each_start_only`]. It names every field of `Config` (and of the feeds and the
//! query log, which are partly compiler input), so a field added without a decision does not
//! compile. The reload thread tells the operator which of the start-only settings an edit
//! changed ([`Config::restart_needed`]); `docs/configuration.md` lists them too (checked by a
//! test below).

use super::{Config, FeedPeer, Feeds, QueryLog};

impl Config {
    /// Calls `each(key, changed)` for every setting read at start only, in file order: `key`
    /// is its key in `signpost.yaml`, `changed` tells whether `next` has another value than
    /// `self`. Such a setting takes effect at a restart (or a `signpost ctl replace`); every
    /// other field is applied by a reload.
    fn each_start_only(&self, next: &Config, each: &mut dyn FnMut(&'static str, bool)) {
        let Config {
            // Applied by a reload: where the file is (not a setting), and what the compiler
            // reads (the answer path's settings, zones, maps and data files).
            origin: _,
            udp_payload_max: _,
            server_id: _,
            cookies: _,
            version: _,
            why_enabled: _,
            why_allow: _,
            zones: _,
            key_files: _,
            maps: _,
            geoip: _,
            bgp: _,
            // Applied by a reload: the guard of the configuration serving decides the next one.
            reload_guard: _,
            // Read at start only: sockets, threads and services set up once.
            listen,
            workers,
            tcp,
            rrl,
            feeds,
            anycast,
            reload_debounce,
            reload_low_priority,
            control_socket,
            control_mode,
            control_max_connections,
            control_idle_timeout,
            state_file,
            health_initial,
            health_startup_wait,
            max_concurrent_checks,
            metrics_listen,
            metrics_optional,
            query_log,
        } = self;
        each("listen", *listen != next.listen);
        each("workers", *workers != next.workers);
        each("tcp", *tcp != next.tcp);
        each("rrl", *rrl != next.rrl);
        each(
            "feeds",
            match (feeds, &next.feeds) {
                (Some(a), Some(b)) => !same_sessions(a, b),
                (a, b) => a.is_some() != b.is_some(),
            },
        );
        each("anycast", *anycast != next.anycast);
        each(
            "reload_debounce_ms",
            *reload_debounce != next.reload_debounce,
        );
        each(
            "reload_priority",
            *reload_low_priority != next.reload_low_priority,
        );
        each("control.socket", *control_socket != next.control_socket);
        each("control.mode", *control_mode != next.control_mode);
        each(
            "control.max_connections",
            *control_max_connections != next.control_max_connections,
        );
        each(
            "control.idle_timeout_ms",
            *control_idle_timeout != next.control_idle_timeout,
        );
        each("state_file", *state_file != next.state_file);
        each("health.initial", *health_initial != next.health_initial);
        each(
            "health.startup_wait_ms",
            *health_startup_wait != next.health_startup_wait,
        );
        each(
            "health.max_concurrent_checks",
            *max_concurrent_checks != next.max_concurrent_checks,
        );
        each("metrics.listen", *metrics_listen != next.metrics_listen);
        each(
            "metrics.optional",
            *metrics_optional != next.metrics_optional,
        );
        each(
            "query_log",
            match (query_log, &next.query_log) {
                (Some(a), Some(b)) => !same_log(a, b),
                (a, b) => a.is_some() != b.is_some(),
            },
        );
    }

    /// The keys of the settings that `next` changes but only a restart applies, in file order.
    pub fn restart_needed(&self, next: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        self.each_start_only(next, &mut |key, changed| {
            if changed {
                keys.push(key);
            }
        });
        keys
    }

    /// The keys of every setting read at start only.
    pub fn start_only_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        self.each_start_only(self, &mut |key, _| keys.push(key));
        keys
    }
}

/// Whether two feeds sections run the same sessions. The peers' nodes are compiler input,
/// applied by a reload; everything else is read when the sessions start.
fn same_sessions(a: &Feeds, b: &Feeds) -> bool {
    let Feeds {
        asn,
        router_id,
        listen,
        connect_retry,
        stale,
        update_delay,
        peers,
    } = a;
    *asn == b.asn
        && *router_id == b.router_id
        && *listen == b.listen
        && *connect_retry == b.connect_retry
        && *stale == b.stale
        && *update_delay == b.update_delay
        && peers.len() == b.peers.len()
        && peers.iter().zip(&b.peers).all(|(p, q)| same_session(p, q))
}

/// Whether two peers are the same session.
fn same_session(a: &FeedPeer, b: &FeedPeer) -> bool {
    let FeedPeer {
        name,
        address,
        asn,
        // Compiler input, applied by a reload.
        nodes: _,
        passive,
        port,
        local_address,
        hold_time,
        min_hold_time,
        ipv4,
        ipv6,
        max_prefixes,
    } = a;
    *name == b.name
        && *address == b.address
        && *asn == b.asn
        && *passive == b.passive
        && *port == b.port
        && *local_address == b.local_address
        && *hold_time == b.hold_time
        && *min_hold_time == b.min_hold_time
        && *ipv4 == b.ipv4
        && *ipv6 == b.ipv6
        && *max_prefixes == b.max_prefixes
}

/// Whether two query log settings are the same (where `path` is written in the file does
/// not matter).
fn same_log(a: &QueryLog, b: &QueryLog) -> bool {
    let QueryLog {
        path,
        sample_rate,
        queue,
        path_at: _,
    } = a;
    *path == b.path && *sample_rate == b.sample_rate && *queue == b.queue
}

#[cfg(test)]
mod tests {
    use super::super::DataSource;
    use super::*;

    const BASE: &str = "\
zones:
  - apex: example.test
    soa: {mname: ns1, rname: hostmaster}
    ns: [ns1]
feeds:
  asn: 65000
  router_id: 192.0.2.53
  listen: \"127.0.0.1:0\"
  peers:
    - {name: r1, address: 192.0.2.1, asn: 64496, nodes: [a]}
query_log: {path: q.log}
";

    fn parse(text: &str) -> Config {
        Config::from_text("t.yaml", text, DataSource::Embedded("t".into()), &|p| {
            DataSource::File(p.into())
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `BASE` with `line` added at the top level (a key `BASE` does not set) or `from`
    /// replaced by `to`.
    fn changed(from: &str, to: &str) -> Config {
        assert!(BASE.contains(from), "{from}");
        parse(&BASE.replacen(from, to, 1))
    }

    #[test]
    fn each_start_only_setting_changed_says_so() {
        let base = parse(BASE);
        let add = |line: &str| parse(&format!("{BASE}{line}\n"));
        let cases: Vec<(&str, Config)> = vec![
            ("listen", add("listen: [\"127.0.0.1:5999\"]")),
            ("workers", add("workers: 3")),
            ("tcp", add("tcp: {max_connections: 7}")),
            ("rrl", add("rrl: {slip: 5}")),
            ("feeds", changed("asn: 64496", "asn: 64497")),
            (
                "feeds",
                changed("router_id: 192.0.2.53", "router_id: 192.0.2.54"),
            ),
            (
                "anycast",
                add("anycast: {peers: [r1], prefixes: [{prefix: 192.0.2.53/32}]}"),
            ),
            ("reload_debounce_ms", add("reload_debounce_ms: 200")),
            ("reload_priority", add("reload_priority: normal")),
            ("control.socket", add("control: {socket: /tmp/x.sock}")),
            ("control.mode", add("control: {mode: \"0600\"}")),
            (
                "control.max_connections",
                add("control: {max_connections: 5}"),
            ),
            (
                "control.idle_timeout_ms",
                add("control: {idle_timeout_ms: 500}"),
            ),
            ("state_file", add("state_file: state.json")),
            ("health.initial", add("health: {initial: down}")),
            (
                "health.startup_wait_ms",
                add("health: {startup_wait_ms: 10}"),
            ),
            (
                "health.max_concurrent_checks",
                add("health: {max_concurrent_checks: 2}"),
            ),
            (
                "metrics.listen",
                add("metrics: {listen: \"127.0.0.1:9999\"}"),
            ),
            ("metrics.optional", add("metrics: {optional: true}")),
            (
                "query_log",
                changed("{path: q.log}", "{path: q.log, queue: 9}"),
            ),
        ];
        for (key, next) in &cases {
            assert_eq!(base.restart_needed(next), vec![*key], "{key}");
            // And back.
            assert_eq!(next.restart_needed(&base), vec![*key], "{key}");
        }
        // Every start-only setting has a case.
        let mut keys: Vec<&str> = cases.iter().map(|(k, _)| *k).collect();
        keys.dedup();
        assert_eq!(keys, base.start_only_keys());
    }

    #[test]
    fn what_a_reload_applies_needs_no_restart() {
        let base = parse(BASE);
        assert!(base.restart_needed(&base).is_empty());
        for next in [
            parse(&format!("{BASE}udp_payload_max: 1400\n")),
            parse(&format!("{BASE}why: {{enabled: false}}\n")),
            parse(&format!("{BASE}identity: {{server_id: other}}\n")),
            parse(&format!("{BASE}reload_guard: {{max_shrink_percent: 50}}\n")),
            parse(&format!("{BASE}maps: [m.yaml]\n")),
            // The peers' nodes are compiler input; a position in the file is not a setting.
            changed("nodes: [a]", "nodes: [a, b]"),
            changed("query_log: {path: q.log}", "\nquery_log: {path: q.log}"),
        ] {
            assert_eq!(base.restart_needed(&next), Vec::<&str>::new());
        }
    }

    #[test]
    fn the_documentation_lists_every_start_only_setting() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/configuration.md"
        ))
        .unwrap();
        let section = doc
            .split("## Reloading")
            .nth(1)
            .expect("docs/configuration.md has a section `## Reloading`");
        let section = section.split("\n## ").next().unwrap_or(section);
        for key in parse(BASE).start_only_keys() {
            assert!(
                section.contains(&format!("`{key}`")),
                "docs/configuration.md, Reloading: `{key}` is read at start only and not listed"
            );
        }
    }
}
