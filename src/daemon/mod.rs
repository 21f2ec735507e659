//! The only module that wires everything together: load, apply node states and the first
//! round of health checks, bind (or take over the sockets of the running server, see
//! [`crate::handover`]), start the UDP workers, the TCP listeners, the prober, the reload
//! thread and the control socket, then wait for a signal, or for a new process that takes
//! over, and stop.

mod anycast;
mod handing;
mod wiring;

use handing::hand_over;
use wiring::{Listening, Wiring, wait_for_signal};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::control::server::ControlError;
use crate::counters::Counters;
use crate::dns::tcp;
use crate::handover::give::Invocation;
use crate::handover::{self, Handoff, HandoverError, Taker};
use crate::node_state::{NodeStates, StateFileError};
use crate::reload::{self, ReloadError, Timing};
use crate::serving::{ReloadRequest, Serving};
use crate::source::Errors;

/// Why the daemon could not run.
#[derive(Debug)]
pub enum DaemonError {
    /// The inputs are invalid.
    Invalid(Errors),
    /// The state file cannot be read.
    StateFile(StateFileError),
    /// The I/O runtime could not start.
    Runtime(std::io::Error),
    /// A listening socket could not be bound.
    Bind(&'static str, SocketAddr, std::io::Error),
    /// Every listener is optional and none could be bound (the last failure).
    NoListener(Box<DaemonError>),
    /// The reload thread could not start.
    Reload(ReloadError),
    /// The control socket could not be opened.
    Control(ControlError),
    /// The BGP feeds could not start.
    Feeds(crate::feed::FeedError),
    /// The metrics endpoint could not start.
    Metrics(crate::metrics::MetricsError),
    /// The query log could not start.
    QueryLog(crate::querylog::QueryLogError),
    /// The sockets of the running server could not be taken over.
    Takeover(HandoverError),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Invalid(e) => write!(f, "{e}"),
            DaemonError::StateFile(e) => write!(f, "{e}"),
            DaemonError::Runtime(e) => write!(f, "cannot start runtime: {e}"),
            DaemonError::Bind(what, addr, e) => write!(f, "cannot bind {what} {addr}: {e}"),
            DaemonError::NoListener(last) => {
                write!(
                    f,
                    "no listener could be bound (all are optional; the last: {last})"
                )
            }
            DaemonError::Reload(e) => write!(f, "{e}"),
            DaemonError::Control(e) => write!(f, "{e}"),
            DaemonError::Feeds(e) => write!(f, "BGP feeds: {e}"),
            DaemonError::Metrics(e) => write!(f, "{e}"),
            DaemonError::QueryLog(e) => write!(f, "{e}"),
            DaemonError::Takeover(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// Options of `signpost serve` beyond the configuration file.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The configuration file; the embedded default when absent.
    pub config: Option<PathBuf>,
    /// Replace the configured listen addresses (UDP and TCP each).
    pub listen: Vec<SocketAddr>,
    /// Control socket path (overrides the configuration).
    pub control: Option<PathBuf>,
    /// Health state file (overrides the configuration).
    pub state_file: Option<PathBuf>,
    /// Metrics endpoint address (overrides the configuration).
    pub metrics: Option<SocketAddr>,
    /// Take over the sockets, node states and counters of the server running with this
    /// control socket (`docs/replace.md`).
    pub takeover: Option<PathBuf>,
}

/// How long a server that handed over lets its open TCP connections finish.
const TCP_DRAIN: Duration = Duration::from_secs(5);
/// Longest wait for the established BGP sessions to stop for a hand-over (each stops at its
/// next message boundary, at once unless it is busy writing).
const SESSION_PAUSE: Duration = Duration::from_secs(2);

/// Runs the server until SIGTERM or SIGINT, or until a new process has taken over.
pub fn serve(opts: ServeOptions) -> Result<(), DaemonError> {
    // The binary is resolved now, so that a replace starts what is at this path then.
    let invocation = Invocation::current();
    let mut taker = match &opts.takeover {
        Some(p) => Some(Taker::connect(p).map_err(DaemonError::Takeover)?),
        None => None,
    };
    let result = run(opts, invocation, &mut taker);
    // Failed before "ready": the running server keeps serving, and learns why.
    if let (Err(e), Some(t)) = (&result, taker) {
        t.fail(&e.to_string());
    }
    result
}

fn run(
    opts: ServeOptions,
    invocation: Invocation,
    taker: &mut Option<Taker>,
) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    let sources =
        crate::load::Sources::read(opts.config.as_deref(), None).map_err(DaemonError::Invalid)?;
    // A process this one replaces hands over its BGP feeds' routes: the first snapshot answers
    // with them, not without them until the sessions are back.
    let carried_routes = taker.as_ref().map(|t| t.feed_tables()).unwrap_or_default();
    let snap = sources
        .build(&carried_routes)
        .map_err(DaemonError::Invalid)?;
    let config = sources.config.clone();
    let mut states = first_states(&opts, &config, taker, &snap)?;
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = io_runtime()?;

    runtime.block_on(crate::probe::first_round(
        &snap,
        &mut states,
        config.health_startup_wait,
    ));
    let listen = listen_addresses(&opts, &config);
    // One exclusive counter row per UDP worker; TCP shares the last one.
    let udp_workers = listen.iter().filter(|l| l.udp).count() * config.workers.max(1);
    let counters = Arc::new(Counters::new(udp_workers));
    let (serving, reload_requests) = Serving::new(snap, states, counters.clone());
    if let Some(t) = taker.as_ref() {
        serving.published().update_capacity(|cap, snap| {
            handover::apply_capacity(cap, t.carried());
            cap.apply(snap);
        });
    }
    let query_log = start_query_log(&config, &serving)?;
    runtime.spawn(crate::probe::supervise(
        serving.published().clone(),
        config.max_concurrent_checks,
    ));
    runtime.spawn(crate::scrape::supervise(serving.published().clone()));

    let (handoff, mut handed) = Handoff::new(invocation);
    let open = tcp::Open::default();
    let w = Wiring {
        opts: &opts,
        config: &config,
        runtime: &runtime,
        serving: &serving,
        counters: &counters,
        handoff: &handoff,
    };
    let Listening {
        threads,
        accepting,
        mut bound,
    } = w.listen_dns(&listen, taker, query_log.as_ref(), &open, &stop)?;
    let feeds = w.start_feeds(taker, carried_routes, &mut bound)?;
    let metrics = w.start_metrics(taker, &mut bound)?;
    let reload_thread = reload::start(
        opts.config.clone(),
        sources,
        Timing::of(&config),
        serving.clone(),
        reload_requests,
    )
    .map_err(DaemonError::Reload)?;
    let (control, handed_sessions) = w.start_control(taker, started)?;
    let announcer = anycast::start(w, feeds.as_ref(), &bound);
    anycast::resume(feeds.as_ref(), announcer.as_ref(), handed_sessions);
    tracing::info!(
        listening = %bound.join(", "),
        workers = config.workers,
        ms = started.elapsed().as_millis() as u64,
        versions = %serving.published().snapshot().versions,
        "serving"
    );
    say_ready(&bound);
    crate::notify::ready("serving");

    let ending = handing::Ending {
        control,
        stop: &stop,
        threads,
        accepting,
        open: &open,
        handoff: &handoff,
        serving: &serving,
        query_log: query_log.as_deref(),
    };
    match wait_for_signal(&runtime, &serving, &mut handed) {
        Some(ready) => {
            let sessions = handing::pause_feeds(&runtime, feeds.as_deref());
            hand_over(ready, ending, sessions)
        }
        None => {
            tracing::info!("stopping");
            crate::notify::stopping("stopping");
            anycast::drain(announcer.as_ref());
            ending.stop();
        }
    }
    serving.reloads().request_reload(ReloadRequest::Stop);
    drop(metrics);
    if let Some(f) = feeds {
        f.shutdown();
    }
    let _ = reload_thread.join();
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    // The workers and connections are gone: the log writes what they queued, then stops
    // (waiting a bounded time: a writer that cannot finish does not keep the process alive).
    if let Some(q) = query_log {
        q.stop();
    }
    Ok(())
}

/// The runtime of the I/O tasks (TCP, control, checks, scrapes, feeds, metrics): one thread.
fn io_runtime() -> Result<tokio::runtime::Runtime, DaemonError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("signpost-io")
        .build()
        .map_err(DaemonError::Runtime)
}

/// Starts the query log when one is configured, and lets the serving state reach it.
fn start_query_log(
    config: &crate::config::Config,
    serving: &Serving,
) -> Result<Option<Arc<crate::querylog::QueryLog>>, DaemonError> {
    let Some(q) = &config.query_log else {
        return Ok(None);
    };
    let log = Arc::new(
        crate::querylog::QueryLog::start(
            &q.path,
            q.sample_rate,
            q.queue,
            serving.published().counters().clone(),
        )
        .map_err(DaemonError::QueryLog)?,
    );
    serving.set_query_log(log.clone());
    Ok(Some(log))
}

/// The node states before the first answer: the state file's, then (taking over) the running
/// server's overrides and pushes, as data (its state file may not be ours); the first round of
/// health checks follows.
fn first_states(
    opts: &ServeOptions,
    config: &crate::config::Config,
    taker: &Option<Taker>,
    snap: &crate::snapshot::Snapshot,
) -> Result<NodeStates, DaemonError> {
    let mut states = NodeStates::open(
        opts.state_file
            .clone()
            .or_else(|| config.state_file.clone()),
    )
    .map_err(DaemonError::StateFile)?;
    if let Some(t) = taker.as_ref() {
        handover::apply(&mut states, t.carried());
        if let Err(e) = states.save() {
            tracing::warn!("{e}");
        }
    }
    states.initial = Some(config.health_initial);
    states.track(snap);
    Ok(states)
}

/// What `serve` would refuse at start that the configuration alone does not show, for
/// `signpost check`: a query-log file it could not open ([`crate::querylog::check`]), at the
/// position of `query_log.path`.
pub fn start_problems(config: &crate::config::Config) -> Errors {
    let mut problems = Errors::default();
    if let Some(q) = &config.query_log
        && let Err(e) = crate::querylog::check(&q.path)
    {
        let mut at = q.path_at.clone();
        at.message = e.to_string();
        problems.0.push(at);
    }
    problems
}

/// The machine-readable "ready" line, for tests and scripts that bind port 0. A standard
/// output that is closed or full does not stop a server that is ready.
fn say_ready(bound: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "signpost: ready; {}", bound.join("; ")).and_then(|()| out.flush());
}

/// The listen addresses: the command line's (UDP and TCP each) instead of the configured ones.
fn listen_addresses(
    opts: &ServeOptions,
    config: &crate::config::Config,
) -> Vec<crate::config::Listen> {
    if opts.listen.is_empty() {
        return config.listen.clone();
    }
    opts.listen
        .iter()
        .map(|&addr| crate::config::Listen {
            addr,
            udp: true,
            tcp: true,
            optional: false,
        })
        .collect()
}

/// The control socket's connection limits.
fn control_limits(config: &crate::config::Config) -> crate::control::server::Limits {
    crate::control::server::Limits {
        max_connections: config.control_max_connections,
        idle_timeout: config.control_idle_timeout,
    }
}

/// The control socket to open, and whether it was chosen (command line or configuration: a
/// failure to open it is fatal) rather than the default path.
fn control_path(opts: &ServeOptions, config: &crate::config::Config) -> (Option<PathBuf>, bool) {
    match opts
        .control
        .clone()
        .or_else(|| config.control_socket.clone())
    {
        Some(p) => (Some(p), true),
        None => (default_control_path(), false),
    }
}

/// The default control socket (its directory created with mode 0700 if missing). When a
/// running server already answers there, opening it fails with `ControlError::InUse` and the
/// caller serves without one.
fn default_control_path() -> Option<PathBuf> {
    let path = crate::control::default_socket();
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            tracing::warn!(dir = %dir.display(), "cannot create the control socket's directory: {e}");
            return None;
        }
    }
    Some(path)
}
