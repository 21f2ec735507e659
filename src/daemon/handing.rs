//! Stopping for a new process that took over: stop reading, send the final node states and
//! counters, let the open TCP connections finish; and what the control socket relays to the
//! hand-over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::TCP_DRAIN;
use crate::control::Control;
use crate::dns::tcp;
use crate::handover::give::Ready;
use crate::handover::{self, Handoff};
use crate::serving::Serving;

/// What a stop or a hand-over ends: the control socket, the DNS workers and listeners, and
/// what their ending reads.
pub(super) struct Ending<'a> {
    /// The control socket.
    pub control: Control,
    /// Tells the UDP workers to stop.
    pub stop: &'a AtomicBool,
    /// The UDP workers.
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// The TCP accept loops.
    pub accepting: Vec<tokio::task::JoinHandle<()>>,
    /// The open TCP connections.
    pub open: &'a tcp::Open,
    /// The sockets handed over.
    pub handoff: &'a Handoff,
    /// The serving state.
    pub serving: &'a Serving,
    /// The query log.
    pub query_log: Option<&'a crate::querylog::QueryLog>,
}

impl Ending<'_> {
    /// A plain stop (a signal): the UDP workers finish their batches, the control socket goes.
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.control);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A new process serves from the sockets (the BGP sessions are already stopped, `sessions`
/// those to hand over): stop accepting control connections, stop the UDP workers (each finishes the batch it holds; they notice within the 200 ms read timeout),
/// stop accepting TCP, stop the query log (it writes what is queued first, so that the
/// `written` count carried agrees with the file), send the final node states, counters and
/// BGP sessions,
/// and let open TCP connections finish for at most [`TCP_DRAIN`]. What is queued on the
/// sockets meanwhile is the new process's to read; queries those connections still carry are
/// answered, not logged (their records count as dropped here, where nobody reads them).
pub(super) fn hand_over(ready: Ready, ending: Ending<'_>, sessions: Vec<handover::Session>) {
    let Ending {
        control,
        stop,
        threads,
        accepting,
        open,
        handoff,
        serving,
        query_log,
    } = ending;
    tracing::info!(new_pid = ready.pid, "a new process serves; stopping");
    let new_pid = ready.pid;
    if ready.keeps_control {
        control.release();
    } else {
        // The new process opened a control socket of its own: this one's goes away.
        drop(control);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    for a in &accepting {
        a.abort();
    }
    if let Some(q) = query_log {
        q.stop();
    }
    let totals = totals(serving);
    let _ = ready.carried.send(handover::Final {
        carried: handover::carried(
            &serving.published().states(),
            &serving.published().capacity(),
            totals,
        ),
        sessions,
    });
    handoff.settle(Duration::from_secs(5));
    let until = std::time::Instant::now() + TCP_DRAIN;
    while open.count() > 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    if open.count() > 0 {
        tracing::warn!(
            connections = open.count(),
            "closing TCP connections still open"
        );
    }
    tracing::info!(new_pid, "handed over; exiting");
}

/// The established BGP sessions stop between two messages, to go to the new process with the
/// final states; the others end at once, and the new process connects.
pub(super) fn pause_feeds(
    runtime: &tokio::runtime::Runtime,
    feeds: Option<&crate::feed::Feeds>,
) -> Vec<handover::Session> {
    let Some(f) = feeds else {
        return Vec::new();
    };
    let handed = runtime.block_on(f.pause(super::SESSION_PAUSE));
    f.shutdown();
    handed
        .into_iter()
        .map(|h| (h.carry, std::os::fd::OwnedFd::from(h.stream)))
        .collect()
}

/// Every counter total by name, for a process that takes over: `ctl stats` names and metric
/// series (both include what this process carried over itself).
fn totals(serving: &Serving) -> std::collections::BTreeMap<String, u64> {
    let mut all: std::collections::BTreeMap<String, u64> = serving
        .published()
        .counters()
        .stats()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    all.extend(crate::metrics::gather::counter_samples(
        &crate::metrics::gather::gather(serving),
    ));
    all
}

/// The control socket's way to the hand-over.
pub(super) struct Relay {
    pub(super) handoff: Arc<Handoff>,
    pub(super) serving: Arc<Serving>,
}

impl crate::control::server::Handover for Relay {
    fn takeover(&self, stream: std::os::unix::net::UnixStream) {
        self.handoff.give(
            stream,
            || {
                // The totals first: gathering them reads the capacity state too.
                let totals = totals(&self.serving);
                handover::carried(
                    &self.serving.published().states(),
                    &self.serving.published().capacity(),
                    totals,
                )
            },
            || match self.serving.feeds() {
                Some(f) => {
                    let established = f
                        .status()
                        .into_iter()
                        .filter(|s| s.state == crate::live::SessionState::Established)
                        .map(|s| s.peer)
                        .collect();
                    (handover::feed_routes(&f.tables()), established)
                }
                None => Default::default(),
            },
        );
    }

    fn replace(&self) -> Result<(u32, u32), crate::control::server::ReplaceFailed> {
        self.handoff
            .replace()
            .map(|r| (r.old_pid, r.new_pid))
            .map_err(|e| crate::control::server::ReplaceFailed(e.to_string()))
    }

    fn replied(&self) {
        self.handoff.replied();
    }
}
