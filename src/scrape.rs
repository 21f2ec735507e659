//! The load prober: scrapes each node's exporter (`load:` in the maps) every interval and
//! records the reading, and runs the capacity controller ([`crate::capacity`]) off the query
//! path. Like the health prober, it follows publications: a new snapshot starts, stops or
//! changes scrapes at once.
//!
//! The HTTP exchange is hyper's (status, chunked bodies, limits); the text format is read by
//! [`crate::meter`]. A scrape that fails, times out or returns garbage records an error, and
//! the node's previous reading serves until it is stale.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use crate::capacity::Reading;
use crate::meter::{self, CounterMark, LoadSource, MeterError};
use crate::serving::Published;

/// How often the controller looks whether a step is due.
const CONTROL_TICK: Duration = Duration::from_millis(250);

/// Fetches `src`'s exporter once: the response body.
pub async fn fetch(src: &LoadSource) -> Result<Vec<u8>, MeterError> {
    match tokio::time::timeout(src.timeout, exchange(src)).await {
        Ok(r) => r,
        Err(_) => Err(MeterError::Fetch(format!(
            "timed out after {} ms",
            src.timeout.as_millis()
        ))),
    }
}

async fn exchange(src: &LoadSource) -> Result<Vec<u8>, MeterError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| MeterError::Fetch(format!("{what}: {e}"));
    let stream = tokio::net::TcpStream::connect(&src.authority)
        .await
        .map_err(|e| fail(&format!("connect {}", src.authority), &e))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| fail("handshake", &e))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let req = hyper::Request::get(src.path.as_str())
            .header(hyper::header::HOST, src.authority.as_str())
            .header(hyper::header::USER_AGENT, "signpost-load")
            .header(hyper::header::ACCEPT, "text/plain")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| fail("request", &e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail("request", &e))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(MeterError::Fetch(format!("HTTP status {}", resp.status())));
        }
        let body = http_body_util::Limited::new(resp.into_body(), meter::MAX_BODY)
            .collect()
            .await
            .map_err(|e| fail("body", &e))?;
        Ok(body.to_bytes().to_vec())
    }
    .await;
    conn.abort();
    result
}

/// Keeps one scrape task per node with a load source in step with the published snapshot,
/// and runs the controller, forever.
pub async fn supervise(applied: Arc<Published>) {
    let control = tokio::spawn(control(applied.clone()));
    let mut running: HashMap<String, (LoadSource, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut published = applied.subscribe();
    published.mark_changed();
    while published.changed().await.is_ok() {
        let snap = applied.snapshot();
        let wanted: HashMap<&str, &LoadSource> = snap
            .nodes
            .iter()
            .filter_map(|n| n.load.as_ref().map(|l| (n.name.as_str(), l)))
            .collect();
        running.retain(|name, (src, handle)| {
            let keep = wanted.get(name.as_str()).is_some_and(|s| *s == src);
            if !keep {
                handle.abort();
            }
            keep
        });
        for (name, src) in wanted {
            if running.contains_key(name) {
                continue;
            }
            let handle = tokio::spawn(poll(src.clone(), name.to_string(), applied.clone()));
            running.insert(name.to_string(), (src.clone(), handle));
        }
    }
    control.abort();
}

/// One node's scrapes, every interval, forever.
async fn poll(src: LoadSource, name: String, applied: Arc<Published>) {
    let start = Instant::now();
    let mut mark: Option<CounterMark> = None;
    let mut ticks = tokio::time::interval(src.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let before = mark;
        let result = match fetch(&src).await {
            // Parsing a large body takes time: off the I/O thread, which also serves DNS over
            // TCP, the control socket and the BGP sessions.
            Ok(body) => {
                let s = src.clone();
                tokio::task::spawn_blocking(move || meter::sample(&s, &body))
                    .await
                    .unwrap_or_else(|e| Err(MeterError::Parse(e.to_string())))
            }
            Err(e) => Err(e),
        };
        // A reading that is refused (absurd, not a number) moves the counter's baseline on
        // all the same: the next rate spans one interval, not a growing window.
        let result = result.and_then(|raw| {
            let at = Instant::now();
            let load =
                meter::reading(&src, raw, at.duration_since(start).as_secs_f64(), &mut mark)?;
            let since = before.map_or(at, |m| start + Duration::from_secs_f64(m.at));
            Ok(Reading {
                value: load,
                at,
                since,
            })
        });
        applied.update_capacity(|cap, _| cap.record_scrape(&name, result));
    }
}

/// The controller: every tick, the due steps of every steered service.
async fn control(applied: Arc<Published>) {
    let mut ticks = tokio::time::interval(CONTROL_TICK);
    loop {
        ticks.tick().await;
        applied.steer();
    }
}
