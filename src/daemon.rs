//! The only module that wires everything together: load, apply node states and the first
//! round of health checks, bind (or take over the sockets of the running server, see
//! [`crate::handover`]), start the UDP workers, the TCP listeners, the prober, the reload
//! thread and the control socket, then wait for a signal, or for a new process that takes
//! over, and stop.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::control::Control;
use crate::control::server::ControlError;
use crate::counters::Counters;
use crate::dns::{tcp, udp};
use crate::handover::give::{Invocation, Ready};
use crate::handover::wire::{Kind, Socket};
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
    // Admin overrides and the first round of health checks are applied before the first
    // answer.
    let mut states = NodeStates::open(
        opts.state_file
            .clone()
            .or_else(|| config.state_file.clone()),
    )
    .map_err(DaemonError::StateFile)?;
    if let Some(t) = taker.as_ref() {
        // The running server's overrides and pushes, as data (its state file may not be ours).
        handover::apply(&mut states, t.carried());
        if let Err(e) = states.save() {
            tracing::warn!("{e}");
        }
    }
    states.initial = Some(config.health_initial);
    states.track(&snap);
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("signpost-io")
        .build()
        .map_err(DaemonError::Runtime)?;

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
        serving.update_capacity(|cap, snap| {
            handover::apply_capacity(cap, t.carried());
            cap.apply(snap);
        });
    }
    let query_log = match &config.query_log {
        Some(q) => Some(Arc::new(
            crate::querylog::QueryLog::start(&q.path, q.sample_rate, q.queue, counters.clone())
                .map_err(DaemonError::QueryLog)?,
        )),
        None => None,
    };
    if let Some(q) = &query_log {
        serving.set_query_log(q.clone());
    }
    runtime.spawn(crate::probe::supervise(
        serving.clone(),
        config.max_concurrent_checks,
    ));
    runtime.spawn(crate::scrape::supervise(serving.clone()));

    // One DNS TCP connection table for every listener, within a share of the descriptors.
    let fd_limit = crate::dns::conns::raise_fd_limit();
    let tcp_table = Arc::new(crate::dns::conns::Table::new(&config.tcp, fd_limit));
    tracing::info!(
        max_connections = tcp_table.capacity(),
        fd_limit,
        "DNS TCP connection limit"
    );
    let (handoff, mut handed) = Handoff::new(invocation);
    let mut threads = Vec::new();
    let mut bound = Vec::new();
    let mut accepting = Vec::new();
    let open = tcp::Open::default();
    for l in &listen {
        let mut addr = l.addr;
        // The embedded demo also listens on [::1]; a machine without IPv6 still gets the demo.
        if opts.config.is_none()
            && opts.listen.is_empty()
            && addr.is_ipv6()
            && std::net::UdpSocket::bind(std::net::SocketAddr::new(addr.ip(), 0)).is_err()
        {
            tracing::warn!(%addr, "IPv6 loopback unavailable; the demo listens on IPv4 only");
            continue;
        }
        let register = |kind, b: SocketAddr, fd: std::os::fd::BorrowedFd<'_>| {
            let fd = fd.try_clone_to_owned()?;
            let entry = Socket {
                kind,
                listen: Some(l.addr),
                bound: Some(b),
                path: None,
            };
            handoff.register(entry, fd);
            Ok::<(), std::io::Error>(())
        };
        // Sockets handed over by the process this one replaces, else a fresh pair on one port.
        let mut sockets = taker.as_mut().map(|t| t.udp(l.addr)).unwrap_or_default();
        let mut tcp_listener = taker.as_mut().and_then(|t| t.tcp(l.addr));
        let inherited = !sockets.is_empty();
        if !inherited && tcp_listener.is_none() {
            (sockets, tcp_listener) =
                crate::dns::listen::bind_pair(addr, config.workers, l.udp, l.tcp)
                    .map_err(|(kind, e)| DaemonError::Bind(kind, addr, e))?;
        }
        if l.udp {
            let bind_err = |e| DaemonError::Bind("UDP", addr, e);
            if sockets.is_empty() {
                sockets = udp::bind_group(addr, config.workers).map_err(bind_err)?;
            } else if inherited {
                // More workers than inherited sockets: more sockets in the same group. Fewer:
                // every inherited socket still gets a worker, since a socket nobody reads
                // keeps (and loses) its queue.
                tracing::info!(%addr, sockets = sockets.len(), "UDP sockets taken over");
                let b = sockets[0].local_addr().map_err(bind_err)?;
                while sockets.len() < config.workers {
                    sockets.push(udp::bind(b).map_err(bind_err)?);
                }
            }
            let b = sockets[0].local_addr().map_err(bind_err)?;
            for sock in &sockets {
                register(Kind::Udp, b, sock.as_fd()).map_err(bind_err)?;
            }
            threads.extend(
                udp::spawn_on(
                    sockets,
                    config.rrl.clone(),
                    serving.swap(),
                    counters.clone(),
                    query_log.clone(),
                    stop.clone(),
                )
                .map_err(bind_err)?,
            );
            addr = b;
            bound.push(format!("udp {b}"));
        }
        if l.tcp {
            let bind_err = |e| DaemonError::Bind("TCP", addr, e);
            let listener = match tcp_listener.take() {
                Some(listener) => {
                    listener.set_nonblocking(true).map_err(bind_err)?;
                    listener
                }
                None => tcp::bind(addr).map_err(bind_err)?,
            };
            let b = listener.local_addr().map_err(bind_err)?;
            register(Kind::Tcp, b, listener.as_fd()).map_err(bind_err)?;
            bound.push(format!("tcp {b}"));
            let (limits, table, state, counters, log, open) = (
                config.tcp,
                tcp_table.clone(),
                serving.swap(),
                counters.clone(),
                query_log.clone(),
                open.clone(),
            );
            accepting.push(runtime.spawn(async move {
                tcp::serve(listener, limits, table, state, counters, log, open).await
            }));
        }
    }
    // BGP feeds: the server answers from the file tables and GeoIP until sessions are up; every
    // change in a feed asks the reload thread for a build (coalesced).
    let feeds = match &config.feeds {
        Some(f) => {
            let changed = serving.clone();
            let inherited = crate::feed::Inherited {
                listener: f.listen.and_then(|a| taker.as_mut().and_then(|t| t.bgp(a))),
                tables: carried_routes,
            };
            let feeds = crate::feed::Feeds::start(
                speaker(f),
                runtime.handle().clone(),
                Arc::new(move || changed.feed_changed()),
                inherited,
            )
            .map_err(DaemonError::Feeds)?;
            if let Some(a) = feeds.local_addr() {
                bound.push(format!("bgp {a}"));
                if let Some(fd) = feeds.listener_fd() {
                    let entry = Socket {
                        kind: Kind::Bgp,
                        listen: f.listen,
                        bound: Some(a),
                        path: None,
                    };
                    handoff.register(entry, fd);
                }
            }
            let feeds = Arc::new(feeds);
            serving.set_feeds(feeds.clone());
            Some(feeds)
        }
        None => None,
    };
    let metrics = match opts.metrics.or(config.metrics_listen) {
        Some(addr) => match match taker.as_mut().and_then(|t| t.metrics(addr)) {
            Some(inherited) => {
                crate::metrics::Metrics::start_on(&runtime, inherited, addr, serving.clone())
            }
            None => crate::metrics::Metrics::start(&runtime, addr, serving.clone()),
        } {
            Ok(m) => {
                bound.push(format!("metrics {}", m.local_addr()));
                if let Some(fd) = m.listener_fd().and_then(|fd| fd.try_clone_to_owned().ok()) {
                    let entry = Socket {
                        kind: Kind::Metrics,
                        listen: Some(addr),
                        bound: Some(m.local_addr()),
                        path: None,
                    };
                    handoff.register(entry, fd);
                }
                Some(m)
            }
            // The demo's endpoint is a convenience: a second demo still serves.
            Err(e) if opts.config.is_none() && opts.metrics.is_none() => {
                tracing::warn!("{e}; the demo serves without metrics (use --metrics)");
                None
            }
            Err(e) => return Err(DaemonError::Metrics(e)),
        },
        None => None,
    };
    let reload_thread = reload::start(
        opts.config.clone(),
        sources,
        Timing::of(&config),
        serving.clone(),
        reload_requests,
    )
    .map_err(DaemonError::Reload)?;
    let wanted = opts
        .control
        .clone()
        .or_else(|| config.control_socket.clone());
    let inherited_control = taker.as_mut().and_then(|t| t.control(wanted.as_deref()));
    let start_control = |path| {
        Control::start(
            &runtime,
            path,
            config.control_mode,
            control_limits(&config),
            serving.clone(),
            counters.clone(),
            started,
        )
    };
    // A control socket of its own opens before "ready" (so that a failure there still leaves
    // the running server serving); an inherited one is adopted after the old process stopped
    // taking requests on it.
    let own_control = match inherited_control {
        Some(_) => None,
        None => {
            let (path, chosen) = control_path(&opts, &config);
            Some(match start_control(path) {
                Ok(c) => c,
                Err(e) if !chosen => {
                    // The default path is a convenience: without it the server still serves.
                    tracing::warn!("{e}; serving without a control socket (use --control)");
                    start_control(None).map_err(DaemonError::Control)?
                }
                Err(e) => return Err(DaemonError::Control(e)),
            })
        }
    };
    // Serving from every socket now: the running server may stop. Its final node states
    // and counters replace those it sent at first.
    if let Some(t) = taker.take() {
        let old_pid = t.old_pid();
        if let Some(carried) = t.ready().map_err(DaemonError::Takeover)? {
            serving.update_states(|st, _| {
                handover::apply(st, &carried);
                if let Err(e) = st.save() {
                    tracing::warn!("{e}");
                }
            });
            serving.update_capacity(|cap, snap| {
                handover::apply_capacity(cap, &carried);
                cap.apply(snap);
            });
            handover::carry(&counters, &carried.counters);
        }
        tracing::info!(old_pid, "took over from the running server");
    }
    let control = match (own_control, inherited_control) {
        (Some(c), _) => c,
        (None, Some((path, listener))) => Control::adopt(
            &runtime,
            path,
            listener,
            control_limits(&config),
            serving.clone(),
            counters.clone(),
            started,
        )
        .map_err(DaemonError::Control)?,
        (None, None) => start_control(None).map_err(DaemonError::Control)?,
    };
    if let Some((path, fd)) = control.listener() {
        match fd.try_clone_to_owned() {
            Ok(fd) => {
                handoff.register(
                    Socket {
                        kind: Kind::Control,
                        listen: None,
                        bound: None,
                        path: Some(path.clone()),
                    },
                    fd,
                );
                handoff.set_control(path);
            }
            Err(e) => tracing::warn!("cannot keep the control socket for a replace: {e}"),
        }
    }
    control.set_handover(Arc::new(Relay {
        handoff: handoff.clone(),
        serving: serving.clone(),
    }));
    tracing::info!(
        listening = %bound.join(", "),
        workers = config.workers,
        ms = started.elapsed().as_millis() as u64,
        versions = %serving.snapshot().versions,
        "serving"
    );
    // Machine-readable line for tests and scripts that bind port 0.
    println!("signpost: ready; {}", bound.join("; "));
    crate::notify::ready("serving");

    let hup = serving.clone();
    let ready = runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut sighup), Ok(mut usr1)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return None;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break None,
                _ = int.recv() => break None,
                _ = sighup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    hup.request_reload(ReloadRequest::Signal);
                }
                _ = usr1.recv() => {
                    match hup.reopen_logs() {
                        Some(Ok(path)) => tracing::info!(path = %path.display(), "SIGUSR1: query log reopened"),
                        Some(Err(e)) => tracing::warn!("SIGUSR1: cannot reopen: {e}; still writing to the file opened before"),
                        None => tracing::info!("SIGUSR1: no query log to reopen"),
                    }
                }
                Some(ready) = handed.recv() => break Some(ready),
            }
        }
    });
    match ready {
        Some(ready) => {
            // The BGP sessions end at once, so that the routers take the new process's (it
            // answers with the routes handed over meanwhile).
            if let Some(f) = &feeds {
                f.shutdown();
            }
            hand_over(
                ready,
                control,
                &stop,
                threads,
                accepting,
                &open,
                &handoff,
                &serving,
                query_log.as_deref(),
            )
        }
        None => {
            tracing::info!("stopping");
            crate::notify::stopping("stopping");
            stop.store(true, Ordering::Relaxed);
            drop(control);
            for t in threads {
                let _ = t.join();
            }
        }
    }
    serving.request_reload(ReloadRequest::Stop);
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
        })
        .collect()
}

/// A new process serves from the sockets: stop accepting control connections, stop the UDP
/// workers (each finishes the batch it holds; they notice within the 200 ms read timeout),
/// stop accepting TCP, stop the query log (it writes what is queued first, so that the
/// `written` count carried agrees with the file), send the final node states and counters,
/// and let open TCP connections finish for at most [`TCP_DRAIN`]. What is queued on the
/// sockets meanwhile is the new process's to read; queries those connections still carry are
/// answered, not logged (their records count as dropped here, where nobody reads them).
#[allow(clippy::too_many_arguments)]
fn hand_over(
    ready: Ready,
    control: Control,
    stop: &AtomicBool,
    threads: Vec<std::thread::JoinHandle<()>>,
    accepting: Vec<tokio::task::JoinHandle<()>>,
    open: &tcp::Open,
    handoff: &Handoff,
    serving: &Serving,
    query_log: Option<&crate::querylog::QueryLog>,
) {
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
    let _ = ready.carried.send(handover::carried(
        &serving.states(),
        &serving.capacity(),
        totals,
    ));
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

/// The control socket's connection limits.
fn control_limits(config: &crate::config::Config) -> crate::control::server::Limits {
    crate::control::server::Limits {
        max_connections: config.control_max_connections,
        idle_timeout: config.control_idle_timeout,
    }
}

/// Every counter total by name, for a process that takes over: `ctl stats` names and metric
/// series (both include what this process carried over itself).
fn totals(serving: &Serving) -> std::collections::BTreeMap<String, u64> {
    let mut all: std::collections::BTreeMap<String, u64> = serving
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
struct Relay {
    handoff: Arc<Handoff>,
    serving: Arc<Serving>,
}

impl crate::control::server::Handover for Relay {
    fn takeover(&self, stream: std::os::unix::net::UnixStream) {
        self.handoff.give(
            stream,
            || {
                // The totals first: gathering them reads the capacity state too.
                let totals = totals(&self.serving);
                handover::carried(&self.serving.states(), &self.serving.capacity(), totals)
            },
            || {
                let tables = self.serving.feeds().map(|f| f.tables()).unwrap_or_default();
                handover::feed_routes(&tables)
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

/// The feed settings of the configuration.
fn speaker(f: &crate::config::Feeds) -> crate::feed::Speaker {
    crate::feed::Speaker {
        local_asn: f.asn,
        router_id: f.router_id,
        listen: f.listen,
        connect_retry: f.connect_retry,
        stale_time: f.stale,
        peers: f
            .peers
            .iter()
            .map(|p| crate::feed::Peer {
                name: p.name.clone(),
                address: p.address,
                port: p.port,
                local_address: p.local_address,
                passive: p.passive,
                asn: p.asn,
                hold_time: p.hold_time,
                min_hold_time: p.min_hold_time,
                ipv4: p.ipv4,
                ipv6: p.ipv6,
                max_prefixes: p.max_prefixes,
            })
            .collect(),
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
