//! Load sources: where a node's current load is read (`load:` in the maps), and how one scrape
//! of a Prometheus exporter becomes a reading. Pure data and arithmetic: the scraping itself is
//! the prober's ([`crate::scrape`]); what readings mean for the shares is the controller's
//! ([`crate::capacity`]).
//!
//! A counter becomes a load by its rate between two scrapes (a counter that went down was
//! reset: that pair gives no reading); a gauge is its value. Both are multiplied by `scale`
//! into the maps' capacity unit. A body that does not parse, a series that is missing, and a
//! value that is not a finite, non-negative number give a [`MeterError`], never a reading.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::source::quote;
use crate::spec::{LoadKind, LoadSpec};

/// The largest exporter response read, in bytes (node_exporter's is about 100 kB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The largest load accepted, in the capacity unit: above it a value is absurd (a scale or a
/// unit mistake), not a load.
pub const MAX_LOAD: f64 = 1e15;

/// A node's load source, ready to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSource {
    /// `host:port` to connect to.
    pub authority: String,
    /// The request path (with query).
    pub path: String,
    /// The URL as written, for messages.
    pub url: String,
    /// The metric name.
    pub metric: String,
    /// Labels a series must carry.
    pub labels: BTreeMap<String, String>,
    /// Counter or gauge.
    pub kind: LoadKind,
    /// Multiplier into the capacity unit.
    pub scale: f64,
    /// Time between scrapes.
    pub interval: Duration,
    /// Time before a scrape fails.
    pub timeout: Duration,
    /// Age after which the last reading is stale.
    pub stale: Duration,
}

/// Why a `load:` spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadSpecError {
    /// Not `http://host[:port]/path`.
    Url(String),
    /// `metric` is not a metric name.
    Metric(String),
    /// `scale` is not a finite positive number.
    Scale,
    /// `interval_ms` out of 100..=3600000.
    Interval,
    /// `timeout_ms` out of 1..=`interval_ms`.
    Timeout,
    /// `stale_ms` below twice `interval_ms` (or above a day).
    Stale,
}

impl std::fmt::Display for LoadSpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadSpecError::Url(u) => write!(
                f,
                "{} is not an exporter URL; expected http://HOST[:PORT]/PATH",
                quote(u)
            ),
            LoadSpecError::Metric(m) => write!(
                f,
                "{} is not a metric name the exposition parser reads (letters, digits and `_`, \
                 not starting with a digit; recording rules' names with `:` are not read)",
                quote(m)
            ),
            LoadSpecError::Scale => f.write_str("`scale` must be a finite number above 0"),
            LoadSpecError::Interval => f.write_str("`interval_ms` must be 100..=3600000"),
            LoadSpecError::Timeout => {
                f.write_str("`timeout_ms` must be between 1 and `interval_ms`")
            }
            LoadSpecError::Stale => f.write_str(
                "`stale_ms` must be at least twice `interval_ms` (one late scrape must not make \
                 the reading stale) and at most 86400000",
            ),
        }
    }
}

impl std::error::Error for LoadSpecError {}

impl LoadSpecError {
    /// The key of `load:` at fault.
    pub fn key(&self) -> &'static str {
        match self {
            LoadSpecError::Url(_) => "url",
            LoadSpecError::Metric(_) => "metric",
            LoadSpecError::Scale => "scale",
            LoadSpecError::Interval => "interval_ms",
            LoadSpecError::Timeout => "timeout_ms",
            LoadSpecError::Stale => "stale_ms",
        }
    }
}

impl LoadSource {
    /// Resolves a `load:` spec.
    pub fn from_spec(s: &LoadSpec) -> Result<LoadSource, LoadSpecError> {
        let bad_url = || LoadSpecError::Url(s.url.clone());
        let rest = s.url.strip_prefix("http://").ok_or_else(bad_url)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host_ok = !authority.is_empty()
            && !authority.contains('@')
            && authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
        let path_ok = path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains('#');
        if !host_ok || !path_ok {
            return Err(bad_url());
        }
        let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
        let authority = match authority.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((_, "")) => format!("{authority}:80"),
                Some((_, p)) if p.strip_prefix(':').is_some_and(port_ok) => authority.into(),
                _ => return Err(bad_url()),
            },
            None => match authority.split_once(':') {
                None => format!("{authority}:80"),
                Some((h, p)) if !h.is_empty() && port_ok(p) => authority.into(),
                _ => return Err(bad_url()),
            },
        };
        let metric_ok =
            s.metric.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit())
            }) && !s.metric.is_empty();
        if !metric_ok {
            return Err(LoadSpecError::Metric(s.metric.clone()));
        }
        if !(s.scale.is_finite() && s.scale > 0.0) {
            return Err(LoadSpecError::Scale);
        }
        let stale_ms = s.stale_ms.unwrap_or(s.interval_ms.saturating_mul(3));
        // The default timeout is 2 s, or the interval when that is shorter.
        let timeout_ms = s.timeout_ms.unwrap_or(s.interval_ms.min(2000));
        if !(100..=3_600_000).contains(&s.interval_ms) {
            return Err(LoadSpecError::Interval);
        }
        if timeout_ms == 0 || timeout_ms > s.interval_ms {
            return Err(LoadSpecError::Timeout);
        }
        if stale_ms < s.interval_ms.saturating_mul(2) || stale_ms > 86_400_000 {
            return Err(LoadSpecError::Stale);
        }
        Ok(LoadSource {
            authority,
            path: path.to_string(),
            url: s.url.clone(),
            metric: s.metric.clone(),
            labels: s.labels.clone(),
            kind: s.kind,
            scale: s.scale,
            interval: Duration::from_millis(s.interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            stale: Duration::from_millis(stale_ms),
        })
    }
}

/// Why a scrape gave no reading.
#[derive(Debug, Clone, PartialEq)]
pub enum MeterError {
    /// The exporter could not be reached or answered with an error (the text says which).
    Fetch(String),
    /// The body is not the Prometheus text format.
    Parse(String),
    /// No series of the metric carries the labels.
    Missing,
    /// A matching series' value is NaN, infinite or negative.
    NotANumber(f64),
    /// The load is above [`MAX_LOAD`].
    Absurd(f64),
    /// The counter went down since the last scrape (a reset): the next scrape gives a rate.
    Reset,
    /// The first scrape of a counter: the next one gives a rate.
    Warming,
}

impl std::fmt::Display for MeterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MeterError::Fetch(e) => write!(f, "scrape failed: {e}"),
            MeterError::Parse(e) => write!(f, "not the Prometheus text format: {e}"),
            MeterError::Missing => f.write_str("no series of the metric has the labels"),
            MeterError::NotANumber(v) => write!(f, "value {v} is not a load"),
            MeterError::Absurd(v) => write!(f, "load {v:e} is absurd (check `scale`)"),
            MeterError::Reset => f.write_str("counter reset; the next scrape gives a rate"),
            MeterError::Warming => f.write_str("first scrape of a counter; waiting for a second"),
        }
    }
}

impl std::error::Error for MeterError {}

/// The sum of the series of `source`'s metric that carry its labels, from an exporter's
/// response body.
pub fn sample(source: &LoadSource, body: &[u8]) -> Result<f64, MeterError> {
    let text = std::str::from_utf8(body).map_err(|_| MeterError::Parse("not UTF-8".into()))?;
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).map_err(|e| MeterError::Parse(e.to_string()))?;
    let mut sum = 0.0;
    let mut found = false;
    for s in &scrape.samples {
        if s.metric != source.metric
            || !source
                .labels
                .iter()
                .all(|(k, v)| s.labels.get(k) == Some(v.as_str()))
        {
            continue;
        }
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        if !v.is_finite() || v < 0.0 {
            return Err(MeterError::NotANumber(v));
        }
        sum += v;
        found = true;
    }
    if found {
        Ok(sum)
    } else {
        Err(MeterError::Missing)
    }
}

/// A counter's last raw value, for the next rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterMark {
    /// The raw value.
    pub value: f64,
    /// When it was scraped (seconds on a monotonic clock).
    pub at: f64,
}

/// Turns one raw sample into a load: for a gauge, its value; for a counter, the rate since
/// `last` (updated to this sample whatever the outcome). Scaled, and refused when absurd.
pub fn reading(
    source: &LoadSource,
    raw: f64,
    at: f64,
    last: &mut Option<CounterMark>,
) -> Result<f64, MeterError> {
    let load = match source.kind {
        LoadKind::Gauge => raw * source.scale,
        LoadKind::Counter => {
            let prev = last.replace(CounterMark { value: raw, at });
            let Some(prev) = prev else {
                return Err(MeterError::Warming);
            };
            if raw < prev.value {
                return Err(MeterError::Reset);
            }
            let dt = at - prev.at;
            if dt <= 0.0 {
                return Err(MeterError::Warming);
            }
            (raw - prev.value) / dt * source.scale
        }
    };
    if !load.is_finite() || load < 0.0 {
        return Err(MeterError::NotANumber(load));
    }
    if load > MAX_LOAD {
        return Err(MeterError::Absurd(load));
    }
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, kind: LoadKind) -> LoadSpec {
        LoadSpec {
            url: url.into(),
            metric: "node_network_transmit_bytes_total".into(),
            labels: [("device".to_string(), "eth0".to_string())].into(),
            kind,
            scale: 8e-6,
            interval_ms: 1000,
            timeout_ms: Some(500),
            stale_ms: None,
        }
    }

    const BODY: &str = "# HELP node_network_transmit_bytes_total Network device statistic transmit_bytes.\n\
# TYPE node_network_transmit_bytes_total counter\n\
node_network_transmit_bytes_total{device=\"eth0\"} 1.5e+09\n\
node_network_transmit_bytes_total{device=\"lo\"} 7\n";

    #[test]
    fn urls() {
        let s = LoadSource::from_spec(&spec("http://127.0.0.1:9100/metrics", LoadKind::Counter))
            .unwrap();
        assert_eq!(
            (s.authority.as_str(), s.path.as_str()),
            ("127.0.0.1:9100", "/metrics")
        );
        assert_eq!(s.stale, Duration::from_secs(3));
        let s = LoadSource::from_spec(&spec("http://edge1.example", LoadKind::Gauge)).unwrap();
        assert_eq!(
            (s.authority.as_str(), s.path.as_str()),
            ("edge1.example:80", "/")
        );
        let s = LoadSource::from_spec(&spec("http://[::1]:9100/m", LoadKind::Gauge)).unwrap();
        assert_eq!(s.authority, "[::1]:9100");
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://a b/",
            "http://u@h/",
            "http://h:x/",
        ] {
            assert!(
                LoadSource::from_spec(&spec(bad, LoadKind::Gauge)).is_err(),
                "{bad}"
            );
        }
        let mut s = spec("http://h/", LoadKind::Gauge);
        s.scale = f64::NAN;
        assert_eq!(LoadSource::from_spec(&s), Err(LoadSpecError::Scale));
        s.scale = 1.0;
        s.timeout_ms = Some(5000);
        assert_eq!(LoadSource::from_spec(&s), Err(LoadSpecError::Timeout));
        s.timeout_ms = None;
        s.interval_ms = 500;
        assert_eq!(
            LoadSource::from_spec(&s).unwrap().timeout,
            Duration::from_millis(500)
        );
        s.stale_ms = Some(500);
        assert_eq!(LoadSource::from_spec(&s), Err(LoadSpecError::Stale));
        s.stale_ms = None;
        s.interval_ms = 50;
        assert_eq!(LoadSource::from_spec(&s), Err(LoadSpecError::Interval));
        s.interval_ms = 1000;
        s.metric = "job:edge_load:sum".into();
        assert!(matches!(
            LoadSource::from_spec(&s),
            Err(LoadSpecError::Metric(_))
        ));
        s.metric = "9bad".into();
        assert!(matches!(
            LoadSource::from_spec(&s),
            Err(LoadSpecError::Metric(_))
        ));
    }

    #[test]
    fn counters_become_rates_and_resets_give_nothing() {
        let s = LoadSource::from_spec(&spec("http://h:1/", LoadKind::Counter)).unwrap();
        let raw = sample(&s, BODY.as_bytes()).unwrap();
        assert_eq!(raw, 1.5e9);
        let mut last = None;
        assert_eq!(reading(&s, raw, 10.0, &mut last), Err(MeterError::Warming));
        // 125 MB in 2 s: 500 Mbit/s.
        let r = reading(&s, raw + 125e6, 12.0, &mut last).unwrap();
        assert!((r - 500.0).abs() < 1e-6, "{r}");
        assert_eq!(reading(&s, 10.0, 13.0, &mut last), Err(MeterError::Reset));
        assert!(reading(&s, 10.0 + 125e6, 14.0, &mut last).is_ok());
    }

    #[test]
    fn bad_bodies_are_errors_not_readings() {
        let s = LoadSource::from_spec(&spec("http://h:1/", LoadKind::Gauge)).unwrap();
        assert_eq!(sample(&s, b"other_metric 1\n"), Err(MeterError::Missing));
        assert_eq!(
            sample(&s, b"\xff\xfe"),
            Err(MeterError::Parse("not UTF-8".into()))
        );
        assert!(matches!(
            sample(
                &s,
                b"node_network_transmit_bytes_total{device=\"eth0\"} NaN\n"
            ),
            Err(MeterError::NotANumber(_))
        ));
        assert!(matches!(
            sample(
                &s,
                b"node_network_transmit_bytes_total{device=\"eth0\"} -4\n"
            ),
            Err(MeterError::NotANumber(_))
        ));
        assert!(matches!(
            sample(
                &s,
                b"node_network_transmit_bytes_total{device=\"eth0\"} +Inf\n"
            ),
            Err(MeterError::NotANumber(_))
        ));
        let mut last = None;
        assert!(matches!(
            reading(&s, 1e30, 1.0, &mut last),
            Err(MeterError::Absurd(_))
        ));
        // Two matching series are summed.
        let two = "node_network_transmit_bytes_total{device=\"eth0\",q=\"0\"} 2\n\
                   node_network_transmit_bytes_total{device=\"eth0\",q=\"1\"} 3\n";
        assert_eq!(sample(&s, two.as_bytes()), Ok(5.0));
    }
}
