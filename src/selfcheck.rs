//! The self-check behind the anycast announcement: every interval, a real DNS query to each
//! UDP listener (the SOA of the first zone, from a socket of its own, as a client would ask),
//! answered correctly (the same id, a response, NOERROR, authoritative, the zone's SOA in the
//! answer) within the timeout; with it, the state of the data served (the last reload failed,
//! the data's age). Each round is one observation for the [`Announcer`], which decides.
//!
//! Messages are built and parsed by hickory-proto, not by the server's own `wire` code, so
//! that a bug there is not checked by itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

use crate::anycast::{Announcer, Health};
use crate::serving::{Published, Reloads};

/// How the checks run and what the data's state means.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Between rounds.
    pub interval: Duration,
    /// A query's wait for its answer.
    pub timeout: Duration,
    /// Data last loaded longer ago than this withdraws.
    pub max_data_age: Option<Duration>,
    /// A failed (or held) reload withdraws.
    pub withdraw_on_load_failure: bool,
}

/// Why one query's answer is not right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// No zone to ask about.
    NoZone,
    /// Sending or receiving failed.
    Io(String),
    /// No answer within the timeout.
    Timeout,
    /// The answer is not the right one.
    Wrong(String),
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::NoZone => f.write_str("no zone to ask for"),
            CheckError::Io(e) => write!(f, "{e}"),
            CheckError::Timeout => f.write_str("no answer in time"),
            CheckError::Wrong(e) => write!(f, "wrong answer: {e}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// The address a check sends to: a wildcard listener is asked on loopback.
pub fn target(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(a) if a.is_unspecified() => (Ipv4Addr::LOCALHOST, bound.port()).into(),
        IpAddr::V6(a) if a.is_unspecified() => (Ipv6Addr::LOCALHOST, bound.port()).into(),
        _ => bound,
    }
}

/// Runs the checks for ever (the task is dropped with the runtime).
pub async fn run(
    published: Arc<Published>,
    reloads: Arc<Reloads>,
    announcer: Arc<Announcer>,
    targets: Vec<SocketAddr>,
    settings: Settings,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_good_load = reloads.reload_status().at;
    let mut failing: Option<String> = None;
    loop {
        tick.tick().await;
        let status = reloads.reload_status();
        if status.ok {
            last_good_load = status.at;
        }
        let apex = published
            .snapshot()
            .zones
            .first()
            .map(|z| z.apex_text.clone());
        let mut problem = targets
            .is_empty()
            .then(|| "no UDP listener to ask".to_string());
        for &t in &targets {
            if let Err(e) = check(t, apex.as_deref(), settings.timeout).await {
                problem = Some(format!("{t}: {e}"));
                break;
            }
        }
        match (&problem, &failing) {
            (Some(p), None) => tracing::warn!(problem = %p, "anycast self-check failed"),
            (None, Some(_)) => tracing::info!("anycast self-check passes again"),
            _ => {}
        }
        failing = problem;
        let age = SystemTime::now()
            .duration_since(last_good_load)
            .unwrap_or_default();
        announcer.observe(Health {
            self_check_ok: failing.is_none(),
            load_failed: settings.withdraw_on_load_failure && !status.ok,
            data_too_old: settings.max_data_age.is_some_and(|max| age > max),
        });
    }
}

/// One query to `to` for the SOA of `apex`, and the checks on its answer.
pub async fn check(
    to: SocketAddr,
    apex: Option<&str>,
    timeout: Duration,
) -> Result<(), CheckError> {
    let apex = apex.ok_or(CheckError::NoZone)?;
    let name =
        Name::from_ascii(apex).map_err(|e| CheckError::Wrong(format!("zone name {apex}: {e}")))?;
    // Not secret: the socket is connected to the listener and used for one query.
    let id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u16)
        .unwrap_or(1);
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(name.clone(), RecordType::SOA));
    let bytes = query.to_vec().map_err(|e| CheckError::Io(e.to_string()))?;
    let local: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |e: std::io::Error| CheckError::Io(e.to_string());
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(to).await.map_err(io)?;
    socket.send(&bytes).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(timeout, socket.recv(&mut buf))
        .await
        .map_err(|_| CheckError::Timeout)?
        .map_err(io)?;
    let answer = Message::from_vec(&buf[..n]).map_err(|e| CheckError::Wrong(e.to_string()))?;
    verify(&answer, id, &name)
}

/// The checks on an answer.
fn verify(answer: &Message, id: u16, apex: &Name) -> Result<(), CheckError> {
    let m = &answer.metadata;
    let wrong = |s: String| Err(CheckError::Wrong(s));
    if m.id != id || m.message_type != MessageType::Response {
        return wrong("not a response to the query".into());
    }
    if m.response_code != ResponseCode::NoError {
        return wrong(format!("rcode {}", m.response_code));
    }
    if !m.authoritative {
        return wrong("not authoritative".into());
    }
    let soa = answer
        .answers
        .iter()
        .any(|r| r.record_type() == RecordType::SOA && r.name == *apex);
    if !soa {
        return wrong(format!("no SOA of {apex} in the answer"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_asked_on_loopback() {
        assert_eq!(
            target("0.0.0.0:53".parse().unwrap()),
            "127.0.0.1:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            target("[::]:53".parse().unwrap()),
            "[::1]:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            target("192.0.2.53:53".parse().unwrap()),
            "192.0.2.53:53".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn an_answer_must_be_authoritative_noerror_with_the_soa() {
        let apex = Name::from_ascii("example.org.").unwrap();
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        assert!(matches!(verify(&m, 7, &apex), Err(CheckError::Wrong(_))));
        m.metadata.authoritative = true;
        let e = verify(&m, 7, &apex).unwrap_err();
        assert!(e.to_string().contains("no SOA"), "{e}");
        assert!(verify(&m, 8, &apex).is_err());
        m.metadata.response_code = ResponseCode::ServFail;
        assert!(
            verify(&m, 7, &apex)
                .unwrap_err()
                .to_string()
                .contains("rcode")
        );
    }
}
