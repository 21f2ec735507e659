//! The checks and conversions of the configuration's simpler sections (listeners, networks,
//! rate limiting, the control socket, TCP limits, the query log, data files), each reporting
//! its problems at their positions; [`super::Config::from_text`] puts them together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::spec::{self, DataFileSpec, ListenSpec};
use super::{DataFile, DataSource, Listen, QueryLog, Rrl, TcpLimits};
use crate::source::{Choices, Document, Errors, quote};

/// The listening sockets (`127.0.0.1:5353` when none is given).
pub(super) fn listen(doc: &Document, specs: &[ListenSpec], errors: &mut Errors) -> Vec<Listen> {
    let default = [ListenSpec::Plain("127.0.0.1:5353".into())];
    let specs = if specs.is_empty() {
        &default[..]
    } else {
        specs
    };
    let mut listen = Vec::new();
    let mut seen = Vec::new();
    for (i, l) in specs.iter().enumerate() {
        let (addr, udp, tcp, optional) = match l {
            ListenSpec::Plain(a) => (a.as_str(), true, true, false),
            ListenSpec::Detailed(d) => (d.address.as_str(), d.udp, d.tcp, d.optional),
        };
        match addr.parse::<SocketAddr>() {
            Ok(_) if !udp && !tcp => errors.0.push(doc.error(
                &format!("listen[{i}]"),
                format!("{} serves neither UDP nor TCP", quote(addr)),
            )),
            Ok(a) if let Some(&(j, _)) = seen.iter().find(|&&(_, b)| b == a && a.port() != 0) => {
                errors.0.push(doc.error(
                    &format!("listen[{i}]"),
                    format!("{} is listed twice (also listen[{j}])", quote(addr)),
                ))
            }
            Ok(addr) => {
                seen.push((i, addr));
                listen.push(Listen {
                    addr,
                    udp,
                    tcp,
                    optional,
                })
            }
            Err(_) => errors.0.push(doc.error(
                &format!("listen[{i}]"),
                format!(
                    "{} is not ADDRESS:PORT (IPv6 in brackets, e.g. \"[::1]:53\")",
                    quote(addr)
                ),
            )),
        }
    }
    listen
}

/// The networks of the CIDR list at `key`.
pub(super) fn networks(
    doc: &Document,
    key: &str,
    list: &[String],
    errors: &mut Errors,
) -> Vec<ip_network::IpNetwork> {
    let mut out = Vec::new();
    for (i, a) in list.iter().enumerate() {
        match crate::spec::parse_cidr(a) {
            Ok(n) => out.push(n),
            Err(e) => errors
                .0
                .push(doc.error(&format!("{key}[{i}]"), e.to_string())),
        }
    }
    out
}

/// Response rate limiting, when enabled with a rate.
pub(super) fn rrl(doc: &Document, spec: &spec::RrlSpec, errors: &mut Errors) -> Option<Rrl> {
    let exempt = networks(doc, "rrl.exempt", &spec.exempt, errors);
    if spec.ipv4_prefix > 32 {
        errors
            .0
            .push(doc.error("rrl.ipv4_prefix", "must be 0..=32"));
    }
    if spec.ipv6_prefix > 128 {
        errors
            .0
            .push(doc.error("rrl.ipv6_prefix", "must be 0..=128"));
    }
    (spec.enabled && spec.responses_per_second > 0).then(|| Rrl {
        responses_per_second: spec.responses_per_second,
        slip: spec.slip,
        ipv4_prefix: spec.ipv4_prefix.min(32),
        ipv6_prefix: spec.ipv6_prefix.min(128),
        exempt,
    })
}

/// Checks the control socket's settings; returns its file mode.
pub(super) fn control(doc: &Document, spec: &spec::ControlSpec, errors: &mut Errors) -> u32 {
    let mode = match u32::from_str_radix(spec.mode.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => m,
        _ => {
            errors.0.push(doc.error(
                "control.mode",
                "expected an octal file mode such as \"0660\"",
            ));
            0o660
        }
    };
    if spec.max_connections == 0 {
        errors
            .0
            .push(doc.error("control.max_connections", "must be at least 1"));
    }
    if spec.idle_timeout_ms < 100 {
        errors
            .0
            .push(doc.error("control.idle_timeout_ms", "must be at least 100"));
    }
    mode
}

/// DNS over TCP's limits.
pub(super) fn tcp_limits(doc: &Document, spec: &spec::TcpSpec, errors: &mut Errors) -> TcpLimits {
    if spec.ipv4_prefix > 32 {
        errors
            .0
            .push(doc.error("tcp.ipv4_prefix", "must be 0..=32"));
    }
    if spec.ipv6_prefix > 128 {
        errors
            .0
            .push(doc.error("tcp.ipv6_prefix", "must be 0..=128"));
    }
    if !(1..=100).contains(&spec.max_fd_percent) {
        errors
            .0
            .push(doc.error("tcp.max_fd_percent", "must be 1..=100"));
    }
    TcpLimits {
        idle_timeout: Duration::from_millis(spec.idle_timeout_ms),
        max_connections: spec.max_connections.max(1),
        max_connections_per_client: spec.max_connections_per_client.max(1),
        max_queries_per_connection: spec.max_queries_per_connection.max(1),
        max_connections_per_network: spec.max_connections_per_network.max(1),
        ipv4_prefix: spec.ipv4_prefix.min(32),
        ipv6_prefix: spec.ipv6_prefix.min(128),
        reclaim_idle: Duration::from_millis(spec.reclaim_idle_ms),
        max_fd_percent: spec.max_fd_percent.clamp(1, 100),
    }
}

/// The query log's settings; `as_path` turns its file into a path.
pub(super) fn query_log(
    doc: &Document,
    q: &spec::QueryLogSpec,
    as_path: &dyn Fn(&String) -> Option<PathBuf>,
    errors: &mut Errors,
) -> Option<QueryLog> {
    if !(0.0..=1.0).contains(&q.sample_rate) {
        errors.0.push(doc.error(
            "query_log.sample_rate",
            "must be between 0 and 1 (the fraction of queries logged)",
        ));
        return None;
    }
    if q.queue == 0 || q.queue > 1 << 20 {
        errors
            .0
            .push(doc.error("query_log.queue", "must be 1..=1048576"));
        return None;
    }
    if q.path.is_empty() {
        errors.0.push(doc.error(
            "query_log.path",
            "must not be empty (the file the records are appended to)",
        ));
        return None;
    }
    Some(QueryLog {
        path: as_path(&q.path)?,
        sample_rate: q.sample_rate,
        queue: q.queue,
        path_at: doc.error("query_log.path", ""),
    })
}

/// The data files of the list at `key`, each with its declared format (a refused one is
/// reported at its position).
pub(super) fn data_files<F: Choices + Copy + Default>(
    doc: &Document,
    key: &str,
    list: &[DataFileSpec<F>],
    resolve: &dyn Fn(&str) -> DataSource,
    errors: &mut Errors,
) -> Vec<DataFile<F>> {
    list.iter()
        .enumerate()
        .map(|(i, d)| DataFile {
            source: resolve(&d.path),
            format: doc
                .choice(&format!("{key}[{i}].format"), &d.format, errors)
                .unwrap_or_default(),
        })
        .collect()
}
