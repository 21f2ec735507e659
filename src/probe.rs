//! The built-in health-check poller: `http`, `https` (rustls) and `tcp` checks per node, with interval, timeout,
//! jitter and rise/fall counting, bounded in concurrency, reconciled with the maps after every
//! reload.
//!
//! Results go into [`crate::control::NodeStates`] (the poller's layer of the state precedence),
//! which writes effective states into the snapshot's health table. Checks run on the I/O
//! runtime and never touch the query path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::control::NodeStates;
use crate::snapshot::Snapshot;
use crate::spec::{CheckSpec, NodeSpec};

/// The most of an HTTP response a check reads.
const MAX_RESPONSE: usize = 64 * 1024;

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
    pub fn from_spec(c: &CheckSpec, node: &NodeSpec) -> Result<Check, String> {
        let addr: IpAddr = c
            .address
            .or_else(|| node.ipv4.first().map(|a| IpAddr::V4(*a)))
            .or_else(|| node.ipv6.first().map(|a| IpAddr::V6(*a)))
            .ok_or("the check needs an `address` (the node has none)")?;
        if c.rise == 0 || c.fall == 0 {
            return Err("`rise` and `fall` must be at least 1".into());
        }
        if c.interval_ms < 100 || c.timeout_ms == 0 || c.timeout_ms > c.interval_ms.max(1000) * 10 {
            return Err(
                "`interval_ms` must be ≥ 100 and `timeout_ms` between 1 and 10 intervals".into(),
            );
        }
        let (kind, port) = match c.kind.as_str() {
            "http" => {
                if !c.path.starts_with('/') || c.path.contains(['\r', '\n', ' ']) {
                    return Err(format!("bad HTTP path {:?}", c.path));
                }
                let host = c.host.clone().unwrap_or_else(|| match addr {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                });
                if host.contains(['\r', '\n', ' ']) {
                    return Err(format!("bad Host {host:?}"));
                }
                (
                    Kind::Http {
                        path: c.path.clone(),
                        host,
                        expect_status: c.expect_status.clone(),
                        expect_body: c.expect_body.clone(),
                    },
                    c.port.unwrap_or(80),
                )
            }
            "tcp" => (Kind::Tcp, c.port.ok_or("a tcp check needs a `port`")?),
            "https" => {
                if !c.path.starts_with('/') || c.path.contains(['\r', '\n', ' ']) {
                    return Err(format!("bad HTTP path {:?}", c.path));
                }
                let host = c.host.clone().unwrap_or_else(|| addr.to_string());
                if host.contains(['\r', '\n', ' ', '/']) {
                    return Err(format!("bad Host {host:?}"));
                }
                (
                    Kind::Http {
                        path: c.path.clone(),
                        host,
                        expect_status: c.expect_status.clone(),
                        expect_body: c.expect_body.clone(),
                    },
                    c.port.unwrap_or(443),
                )
            }
            other => {
                return Err(format!(
                    "unknown check kind {other:?}; expected http, https or tcp"
                ));
            }
        };
        let tls = (c.kind == "https").then(|| Tls {
            server_name: c
                .host
                .clone()
                .map(|h| h.split(':').next().unwrap_or_default().to_string())
                .unwrap_or_else(|| addr.to_string()),
            insecure: c.insecure,
        });
        if c.insecure && tls.is_none() {
            return Err("`insecure` applies to https checks only".into());
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

    /// Runs the check once.
    pub async fn run(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.attempt()).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} ms", self.timeout.as_millis())),
        }
    }

    async fn attempt(&self) -> Result<(), String> {
        let s = TcpStream::connect(self.target)
            .await
            .map_err(|e| format!("connect {}: {e}", self.target))?;
        let Some(tls) = &self.tls else {
            return self.converse(s).await;
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config(tls.insecure));
        let name = rustls::pki_types::ServerName::try_from(tls.server_name.clone())
            .map_err(|e| format!("bad TLS server name {:?}: {e}", tls.server_name))?;
        let stream = connector
            .connect(name, s)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        self.converse(stream).await
    }

    /// The HTTP exchange (or nothing, for `tcp`) over an established connection.
    async fn converse<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        &self,
        mut s: S,
    ) -> Result<(), String> {
        let Kind::Http {
            path,
            host,
            expect_status,
            expect_body,
        } = &self.kind
        else {
            return Ok(());
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: signpost-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            let room = MAX_RESPONSE - buf.len();
            buf.extend_from_slice(&chunk[..n.min(room)]);
            if buf.len() >= MAX_RESPONSE {
                break;
            }
            // Without a body condition, the status line is all we need.
            if expect_body.is_none() && buf.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let status: u16 = text
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "not an HTTP response".to_string())?;
        if !expect_status.contains(&status) {
            return Err(format!("HTTP status {status}"));
        }
        if let Some(want) = expect_body {
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            if !body.contains(want.as_str()) {
                return Err(format!("body does not contain {want:?}"));
            }
        }
        Ok(())
    }
}

/// The TLS client configuration of checks: webpki roots, or no verification at all.
fn tls_config(insecure: bool) -> Arc<rustls::ClientConfig> {
    static VERIFIED: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    static INSECURE: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let build = |insecure: bool| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions");
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut config = builder.with_root_certificates(roots).with_no_client_auth();
        if insecure {
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(NoVerification(provider)));
        }
        Arc::new(config)
    };
    if insecure {
        INSECURE.get_or_init(|| build(true)).clone()
    } else {
        VERIFIED.get_or_init(|| build(false)).clone()
    }
}

/// Accepts any certificate (the handshake signatures are still checked), for `insecure: true`.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The poller's view of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct PollerState {
    /// Up according to the checks.
    pub up: bool,
    /// Consecutive successes.
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// The last error, if the last check failed.
    pub last_error: Option<String>,
    /// Unix time of the last check.
    pub at: u64,
}

/// Records one result with rise/fall; the first result decides at once.
pub fn record(
    states: &Mutex<NodeStates>,
    node: &str,
    check: &Check,
    result: Result<(), String>,
) -> bool {
    let mut st = states.lock().unwrap_or_else(|e| e.into_inner());
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ok = result.is_ok();
    let entry = st.poller.entry(node.to_string());
    let p = match entry {
        std::collections::btree_map::Entry::Vacant(v) => v.insert(PollerState {
            up: ok,
            successes: 0,
            failures: 0,
            last_error: None,
            at,
        }),
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
    };
    let was = p.up;
    if ok {
        p.successes += 1;
        p.failures = 0;
        if p.successes >= check.rise {
            p.up = true;
        }
    } else {
        p.failures += 1;
        p.successes = 0;
        if p.failures >= check.fall {
            p.up = false;
        }
    }
    p.last_error = result.err();
    p.at = at;
    if was != p.up {
        tracing::warn!(node, up = p.up, error = ?p.last_error, "health check changed state");
    }
    was != p.up
}

/// Runs every node's check once, concurrently, for at most `wait`; used before answering.
pub async fn first_round(snap: &Snapshot, states: &Arc<Mutex<NodeStates>>, wait: Duration) {
    let mut set = tokio::task::JoinSet::new();
    for n in &snap.nodes {
        if let Some(c) = n.check.clone() {
            let (name, states) = (n.name.clone(), states.clone());
            set.spawn(async move {
                let r = c.run().await;
                record(&states, &name, &c, r);
            });
        }
    }
    let _ = tokio::time::timeout(wait, async { while set.join_next().await.is_some() {} }).await;
}

/// Keeps one task per checked node in step with the current snapshot, forever.
pub async fn supervise(
    state: Arc<ArcSwap<Snapshot>>,
    states: Arc<Mutex<NodeStates>>,
    max_concurrent: usize,
) {
    let slots = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let mut running: HashMap<String, (Check, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last: Option<Arc<Snapshot>> = None;
    loop {
        tick.tick().await;
        let snap = state.load_full();
        // Only a new snapshot (a reload) can change which checks should run.
        if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &snap)) {
            continue;
        }
        last = Some(snap.clone());
        let wanted: HashMap<&str, &Check> = snap
            .nodes
            .iter()
            .filter_map(|n| n.check.as_ref().map(|c| (n.name.as_str(), c)))
            .collect();
        // Stop checks of nodes that left the maps or whose check changed.
        running.retain(|name, (check, handle)| {
            let keep = wanted.get(name.as_str()).is_some_and(|c| *c == check);
            if !keep {
                handle.abort();
            }
            keep
        });
        {
            let mut st = states.lock().unwrap_or_else(|e| e.into_inner());
            st.checked = wanted.keys().map(|k| k.to_string()).collect();
            st.poller.retain(|n, _| wanted.contains_key(n.as_str()));
        }
        for (name, check) in wanted {
            if running.contains_key(name) {
                continue;
            }
            let (c, n, states, slots, state) = (
                check.clone(),
                name.to_string(),
                states.clone(),
                slots.clone(),
                state.clone(),
            );
            let handle = tokio::spawn(async move {
                let mut k: u64 = 0;
                loop {
                    k += 1;
                    let jitter = if c.jitter.is_zero() {
                        0
                    } else {
                        crate::snapshot::mix(k ^ n.len() as u64 ^ (n.as_ptr() as u64))
                            % c.jitter.as_millis() as u64
                    };
                    tokio::time::sleep(c.interval + Duration::from_millis(jitter)).await;
                    let result = {
                        let Ok(_permit) = slots.acquire().await else {
                            return;
                        };
                        c.run().await
                    };
                    if record(&states, &n, &c, result) {
                        let st = states.lock().unwrap_or_else(|e| e.into_inner());
                        st.apply(&state.load());
                    }
                }
            });
            running.insert(name.to_string(), (check.clone(), handle));
        }
    }
}
