//! The Prometheus metrics endpoint: `GET /metrics` over HTTP/1.1 (hyper) on the address of
//! `metrics.listen`, in the OpenMetrics text format (prometheus-client).
//!
//! A scrape sums the workers' counter rows ([`crate::counters`]) and reads the serving state
//! ([`gather`]); the query path is never touched by it. Every metric is listed in
//! `docs/metrics.md`.

mod anycast;
mod capacity;
mod family;
pub mod gather;
mod slots;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::serving::Serving;
use family::{Family, Kind, Value};

/// The content type of the OpenMetrics exposition (what Prometheus asks for).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format (for clients that do not ask for
/// OpenMetrics: curl, `promtool check metrics`, older scrapers).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the endpoint cannot start.
#[derive(Debug)]
pub enum MetricsError {
    /// The address cannot be bound.
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for MetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsError::Bind(a, e) => write!(f, "cannot bind the metrics endpoint {a}: {e}"),
        }
    }
}

impl std::error::Error for MetricsError {}

/// The families gathered for one scrape, as a prometheus-client collector.
#[derive(Debug)]
struct Scrape(Vec<Family>);

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            if f.samples.is_empty() {
                continue;
            }
            let mut family = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            for (labels, value) in &f.samples {
                if labels.is_empty() {
                    encode_value(&mut family, value)?;
                } else {
                    encode_value(&mut family.encode_family(labels)?, value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    value: &Value,
) -> Result<(), std::fmt::Error> {
    match value {
        Value::Int(v) => m.encode_counter::<NoLabelSet, u64, u64>(v, None),
        Value::Float(v) => m.encode_gauge(v),
        Value::Hist(h) => m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None),
    }
}

/// The OpenMetrics text of `families`.
pub fn render(families: Vec<Family>) -> String {
    let mut registry = prometheus_client::registry::Registry::with_prefix("signpost");
    registry.register_collector(Box::new(Scrape(families)));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The same samples in the classic Prometheus text format (0.0.4). The two differ only in
/// the metadata of counters, which OpenMetrics names without the `_total` their samples
/// carry, and in the closing `# EOF`.
pub fn render_classic(families: Vec<Family>) -> String {
    let counters: std::collections::HashSet<String> = families
        .iter()
        .filter(|f| f.kind == Kind::Counter)
        .map(|f| format!("signpost_{}", f.name))
        .collect();
    let open = render(families);
    let mut out = String::with_capacity(open.len() + 64 * counters.len());
    for line in open.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(tag);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The running endpoint.
pub struct Metrics {
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    fd: Option<std::os::fd::OwnedFd>,
}

impl Metrics {
    /// Binds `addr` and serves scrapes on `runtime` until dropped.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        addr: SocketAddr,
        serving: Arc<Serving>,
    ) -> Result<Metrics, MetricsError> {
        let std = std::net::TcpListener::bind(addr).map_err(|e| MetricsError::Bind(addr, e))?;
        Metrics::start_on(runtime, std, addr, serving)
    }

    /// Serves scrapes on `std`, a listener bound already (by this process for `addr`, or by
    /// the process this one replaces).
    pub fn start_on(
        runtime: &tokio::runtime::Runtime,
        std: std::net::TcpListener,
        addr: SocketAddr,
        serving: Arc<Serving>,
    ) -> Result<Metrics, MetricsError> {
        std.set_nonblocking(true)
            .map_err(|e| MetricsError::Bind(addr, e))?;
        let local = std.local_addr().map_err(|e| MetricsError::Bind(addr, e))?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std).map_err(|e| MetricsError::Bind(addr, e))?
        };
        let fd = {
            use std::os::fd::AsFd;
            listener.as_fd().try_clone_to_owned().ok()
        };
        let task = runtime.spawn(accept(listener, serving));
        Ok(Metrics { local, task, fd })
    }

    /// A duplicate of the listening descriptor, to hand over.
    pub fn listener_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connections served at once; a new one beyond them closes the least recently active
/// ([`slots`]).
const MAX_CONNECTIONS: usize = 32;
/// How long a connection may take to send a request's headers (a scraper sends them at once).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a connection may stay open at all; scrapes take milliseconds.
const CONNECTION_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn accept(listener: tokio::net::TcpListener, serving: Arc<Serving>) {
    let slots = slots::Slots::new(MAX_CONNECTIONS);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = Arc::new(slots.take());
        let serving = serving.clone();
        tokio::spawn(async move {
            let touch = slot.clone();
            let service = hyper::service::service_fn(move |req| {
                touch.touch();
                let serving = serving.clone();
                async move { Ok::<_, Infallible>(respond(&req, &serving)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A scraper that stalls is cut off; so is the least recently active connection
            // when a new one needs its slot.
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIMIT, conn) => {}
                () = slot.close.notified() => {}
            }
        });
    }
}

fn respond<B>(req: &Request<B>, serving: &Serving) -> Response<Full<Bytes>> {
    let reply = |status, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let families = gather::gather(serving);
            let wants_openmetrics = req
                .headers()
                .get_all("accept")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            if wants_openmetrics {
                reply(StatusCode::OK, OPENMETRICS, render(families))
            } else {
                reply(StatusCode::OK, PROMETHEUS_TEXT, render_classic(families))
            }
        }
        (&Method::GET, "/") => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "Signpost: metrics at /metrics\n".into(),
        ),
        (&Method::GET | &Method::HEAD, _) => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found; metrics are at /metrics\n".into(),
        ),
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ),
    }
}
