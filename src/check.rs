//! Health-check definitions: what a node's check does, resolved from its map spec (address,
//! port, HTTP path and Host, TLS, timing, rise and fall). Running checks is the prober's job
//! ([`crate::probe`]); this module is only the data, so that the snapshot can carry it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::source::{Choice, quote};
use crate::spec::{CheckKind, CheckSpec, NodeSpec};

/// Why a check spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Neither the check nor the node has an address.
    NoAddress,
    /// `rise` or `fall` is zero.
    RiseFall,
    /// `interval_ms` or `timeout_ms` is out of range.
    Timing,
    /// The HTTP path is not an absolute path without spaces or line breaks.
    BadPath(String),
    /// The Host header has spaces, line breaks (or, for https, a slash).
    BadHost(String),
    /// A `tcp` check without `port`.
    NoPort,
    /// A `kind` that is none of [`CheckKind`]'s, with the message that refuses it.
    UnknownKind(String),
    /// `insecure` on a check that is not https.
    InsecureWithoutTls,
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::NoAddress => {
                f.write_str("the check needs an `address` (the node has none)")
            }
            CheckError::RiseFall => f.write_str("`rise` and `fall` must be at least 1"),
            CheckError::Timing => f.write_str(
                "`interval_ms` must be ≥ 100 and `timeout_ms` between 1 and 10 intervals",
            ),
            CheckError::BadPath(p) => write!(f, "bad HTTP path {}", quote(p)),
            CheckError::BadHost(h) => write!(f, "bad Host {}", quote(h)),
            CheckError::NoPort => f.write_str("a tcp check needs a `port`"),
            CheckError::UnknownKind(message) => f.write_str(message),
            CheckError::InsecureWithoutTls => {
                f.write_str("`insecure` applies to https checks only")
            }
        }
    }
}

impl std::error::Error for CheckError {}

/// What a check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// GET a path and look at the status and body.
    Http {
        /// Request path.
        path: String,
        /// Host header.
        host: String,
        /// Acceptable statuses.
        expect_status: Vec<u16>,
        /// Required body substring.
        expect_body: Option<String>,
    },
    /// Connect.
    Tcp,
}

/// TLS settings of an `https` check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The name to verify the certificate against (and send as SNI).
    pub server_name: String,
    /// Skip certificate verification (private CAs, self-signed certificates).
    pub insecure: bool,
}

/// A resolved health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What to do.
    pub kind: Kind,
    /// Where.
    pub target: SocketAddr,
    /// TLS, for `https`.
    pub tls: Option<Tls>,
    /// Between checks.
    pub interval: Duration,
    /// Per check.
    pub timeout: Duration,
    /// Added to each interval, up to this much.
    pub jitter: Duration,
    /// Successes to go up.
    pub rise: u32,
    /// Failures to go down.
    pub fall: u32,
}

impl Check {
    /// Resolves a check spec for a node.
    pub fn from_spec(c: &CheckSpec, node: &NodeSpec) -> Result<Check, CheckError> {
        let addr: IpAddr = c
            .address
            .or_else(|| node.ipv4.first().map(|a| IpAddr::V4(*a)))
            .or_else(|| node.ipv6.first().map(|a| IpAddr::V6(*a)))
            .ok_or(CheckError::NoAddress)?;
        if c.rise == 0 || c.fall == 0 {
            return Err(CheckError::RiseFall);
        }
        if c.interval_ms < 100 || c.timeout_ms == 0 || c.timeout_ms > c.interval_ms.max(1000) * 10 {
            return Err(CheckError::Timing);
        }
        let checked = match &c.kind {
            Choice::Given(k) => *k,
            Choice::Refused(message) => return Err(CheckError::UnknownKind(message.clone())),
        };
        let (kind, port) = match checked {
            CheckKind::Tcp => (Kind::Tcp, c.port.ok_or(CheckError::NoPort)?),
            CheckKind::Http | CheckKind::Https => {
                let tls = checked == CheckKind::Https;
                if !c.path.starts_with('/') || c.path.contains(['\r', '\n', ' ']) {
                    return Err(CheckError::BadPath(c.path.clone()));
                }
                // The Host header names the address when the spec names no host; over TLS it
                // is also the SNI name, where an IPv6 address goes without brackets.
                let host = c.host.clone().unwrap_or_else(|| match addr {
                    IpAddr::V6(a) if !tls => format!("[{a}]"),
                    a => a.to_string(),
                });
                let forbidden: &[char] = if tls {
                    &['\r', '\n', ' ', '/']
                } else {
                    &['\r', '\n', ' ']
                };
                if host.contains(forbidden) {
                    return Err(CheckError::BadHost(host));
                }
                (
                    Kind::Http {
                        path: c.path.clone(),
                        host,
                        expect_status: c.expect_status.clone(),
                        expect_body: c.expect_body.clone(),
                    },
                    c.port.unwrap_or(if tls { 443 } else { 80 }),
                )
            }
        };
        let tls = (checked == CheckKind::Https).then(|| Tls {
            server_name: c
                .host
                .clone()
                .map(|h| h.split(':').next().unwrap_or_default().to_string())
                .unwrap_or_else(|| addr.to_string()),
            insecure: c.insecure,
        });
        if c.insecure && tls.is_none() {
            return Err(CheckError::InsecureWithoutTls);
        }
        Ok(Check {
            kind,
            target: SocketAddr::new(addr, port),
            tls,
            interval: Duration::from_millis(c.interval_ms),
            timeout: Duration::from_millis(c.timeout_ms),
            jitter: Duration::from_millis(c.jitter_ms),
            rise: c.rise,
            fall: c.fall,
        })
    }
}
