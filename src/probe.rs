//! The built-in health checks: `http`, `https` (rustls) and `tcp` checks per node, with
//! interval, timeout, jitter and rise/fall counting, bounded in concurrency.
//!
//! Results go into the node states ([`crate::node_state`], the check layer of the state
//! precedence) through [`Published::update_states`], which writes effective states into the
//! snapshot's health table. The supervisor follows publications ([`Published::subscribe`]): a new
//! snapshot starts, stops or changes checks at once. Checks run on the I/O runtime and never
//! touch the query path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::check::{Check, Kind};
use crate::node_state::NodeStates;
use crate::serving::Published;
use crate::snapshot::Snapshot;

/// The most of an HTTP response a check reads.
const MAX_RESPONSE: usize = 64 * 1024;

/// Why one check failed.
#[derive(Debug)]
pub enum Failure {
    /// The TCP connection failed.
    Connect(SocketAddr, std::io::Error),
    /// No answer within the timeout.
    TimedOut(Duration),
    /// The TLS server name is not a valid name.
    ServerName(String),
    /// The TLS handshake failed.
    Tls(std::io::Error),
    /// The request could not be sent.
    Send(std::io::Error),
    /// The response could not be read.
    Read(std::io::Error),
    /// The response is not HTTP.
    NotHttp,
    /// An unexpected HTTP status.
    Status(u16),
    /// The body lacks the expected text.
    Body(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(a, e) => write!(f, "connect {a}: {e}"),
            Failure::TimedOut(t) => write!(f, "timed out after {} ms", t.as_millis()),
            Failure::ServerName(n) => write!(f, "bad TLS server name {n:?}"),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::Send(e) => write!(f, "send: {e}"),
            Failure::Read(e) => write!(f, "read: {e}"),
            Failure::NotHttp => f.write_str("not an HTTP response"),
            Failure::Status(s) => write!(f, "HTTP status {s}"),
            Failure::Body(w) => write!(f, "body does not contain {w:?}"),
        }
    }
}

impl std::error::Error for Failure {}

/// Runs `check` once.
pub async fn run(check: &Check) -> Result<(), Failure> {
    match tokio::time::timeout(check.timeout, attempt(check)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::TimedOut(check.timeout)),
    }
}

async fn attempt(check: &Check) -> Result<(), Failure> {
    let s = TcpStream::connect(check.target)
        .await
        .map_err(|e| Failure::Connect(check.target, e))?;
    let Some(tls) = &check.tls else {
        return converse(check, s).await;
    };
    let connector = tokio_rustls::TlsConnector::from(tls_config(tls.insecure));
    let name = rustls::pki_types::ServerName::try_from(tls.server_name.clone())
        .map_err(|_| Failure::ServerName(tls.server_name.clone()))?;
    let stream = connector.connect(name, s).await.map_err(Failure::Tls)?;
    converse(check, stream).await
}

/// The HTTP exchange (or nothing, for `tcp`) over an established connection.
async fn converse<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    check: &Check,
    mut s: S,
) -> Result<(), Failure> {
    let Kind::Http {
        path,
        host,
        expect_status,
        expect_body,
    } = &check.kind
    else {
        return Ok(());
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: signpost-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(Failure::Send)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.map_err(Failure::Read)?;
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
        .ok_or(Failure::NotHttp)?;
    if !expect_status.contains(&status) {
        return Err(Failure::Status(status));
    }
    if let Some(want) = expect_body {
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        if !body.contains(want.as_str()) {
            return Err(Failure::Body(want.clone()));
        }
    }
    Ok(())
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

/// Runs every node's check once, concurrently, for at most `wait`, and records the results
/// that arrived in time; used before the first answer.
pub async fn first_round(snap: &Snapshot, states: &mut NodeStates, wait: Duration) {
    let mut set = tokio::task::JoinSet::new();
    for n in &snap.nodes {
        if let Some(c) = n.check.clone() {
            let name = n.name.clone();
            set.spawn(async move {
                let r = run(&c).await.map_err(|e| e.to_string());
                (name, c, r)
            });
        }
    }
    let _ = tokio::time::timeout(wait, async {
        while let Some(done) = set.join_next().await {
            if let Ok((name, c, r)) = done {
                states.record_check(&name, c.rise, c.fall, r);
            }
        }
    })
    .await;
}

/// Keeps one task per checked node in step with the published snapshot, forever: woken by
/// each publication.
pub async fn supervise(applied: Arc<Published>, max_concurrent: usize) {
    let slots = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let mut running: HashMap<String, (Check, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut published = applied.subscribe();
    published.mark_changed();
    while published.changed().await.is_ok() {
        let snap = applied.snapshot();
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
        for (name, check) in wanted {
            if running.contains_key(name) {
                continue;
            }
            let handle = tokio::spawn(poll(
                check.clone(),
                name.to_string(),
                applied.clone(),
                slots.clone(),
            ));
            running.insert(name.to_string(), (check.clone(), handle));
        }
    }
}

/// One node's check, every interval (plus jitter), forever.
async fn poll(c: Check, n: String, applied: Arc<Published>, slots: Arc<Semaphore>) {
    let mut k: u64 = 0;
    loop {
        k += 1;
        let jitter = if c.jitter.is_zero() {
            0
        } else {
            crate::hash::mix(k ^ n.len() as u64 ^ (n.as_ptr() as u64)) % c.jitter.as_millis() as u64
        };
        tokio::time::sleep(c.interval + Duration::from_millis(jitter)).await;
        let result = {
            let Ok(_permit) = slots.acquire().await else {
                return;
            };
            let started = std::time::Instant::now();
            let r = run(&c).await.map_err(|e| e.to_string());
            applied.counters().probe(&n, r.is_ok(), started.elapsed());
            r
        };
        applied.update_states(|st, _| st.record_check(&n, c.rise, c.fall, result));
    }
}
