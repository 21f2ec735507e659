//! The only module that wires everything together: load, apply node states and the first
//! round of health checks, bind, start the UDP workers, the TCP listeners, the prober, the
//! reload thread and the control socket, then wait for a signal and stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::control::Control;
use crate::control::server::ControlError;
use crate::counters::Counters;
use crate::dns::{tcp, udp};
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
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(opts: ServeOptions) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    let sources =
        crate::load::Sources::read(opts.config.as_deref(), None).map_err(DaemonError::Invalid)?;
    let snap = sources.build(&[]).map_err(DaemonError::Invalid)?;
    let config = sources.config.clone();
    // Admin overrides and the first round of health checks are applied before the first
    // answer.
    let mut states = NodeStates::open(
        opts.state_file
            .clone()
            .or_else(|| config.state_file.clone()),
    )
    .map_err(DaemonError::StateFile)?;
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

    let mut threads = Vec::new();
    let mut bound = Vec::new();
    // One DNS TCP connection table for every listener, within a share of the descriptors.
    let fd_limit = crate::dns::conns::raise_fd_limit();
    let tcp_table = Arc::new(crate::dns::conns::Table::new(&config.tcp, fd_limit));
    tracing::info!(
        max_connections = tcp_table.capacity(),
        fd_limit,
        "DNS TCP connection limit"
    );
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
        if l.udp {
            let (b, t) = udp::spawn(
                addr,
                config.workers,
                config.rrl.clone(),
                serving.swap(),
                counters.clone(),
                query_log.clone(),
                stop.clone(),
            )
            .map_err(|e| DaemonError::Bind("UDP", addr, e))?;
            addr = b;
            threads.extend(t);
            bound.push(format!("udp {b}"));
        }
        if l.tcp {
            let listener = tcp::bind(addr).map_err(|e| DaemonError::Bind("TCP", addr, e))?;
            bound.push(format!(
                "tcp {}",
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            ));
            let (limits, table, state, counters) = (
                config.tcp,
                tcp_table.clone(),
                serving.swap(),
                counters.clone(),
            );
            let log = query_log.clone();
            runtime.spawn(async move {
                tcp::serve(listener, limits, table, state, counters, log).await
            });
        }
    }
    // BGP feeds: the server answers from the file tables and GeoIP until sessions are up; every
    // change in a feed asks the reload thread for a build (coalesced).
    let feeds = match &config.feeds {
        Some(f) => {
            let changed = serving.clone();
            let feeds = crate::feed::Feeds::start(
                speaker(f),
                runtime.handle().clone(),
                Arc::new(move || changed.feed_changed()),
            )
            .map_err(DaemonError::Feeds)?;
            if let Some(a) = feeds.local_addr() {
                bound.push(format!("bgp {a}"));
            }
            let feeds = Arc::new(feeds);
            serving.set_feeds(feeds.clone());
            Some(feeds)
        }
        None => None,
    };
    let metrics = match opts.metrics.or(config.metrics_listen) {
        Some(addr) => match crate::metrics::Metrics::start(&runtime, addr, serving.clone()) {
            Ok(m) => {
                bound.push(format!("metrics {}", m.local_addr()));
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
    let (path, chosen) = control_path(&opts, &config);
    let start_control = |path| {
        Control::start(
            &runtime,
            path,
            config.control_mode,
            crate::control::server::Limits {
                max_connections: config.control_max_connections,
                idle_timeout: config.control_idle_timeout,
            },
            serving.clone(),
            counters.clone(),
            started,
        )
    };
    let control = match start_control(path) {
        Ok(c) => c,
        Err(e) if !chosen => {
            // The default path is a convenience: without it the server still serves.
            tracing::warn!("{e}; serving without a control socket (use --control)");
            start_control(None).map_err(DaemonError::Control)?
        }
        Err(e) => return Err(DaemonError::Control(e)),
    };
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
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut sighup), Ok(mut usr1)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = sighup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    hup.request_reload(ReloadRequest::Signal);
                }
                _ = usr1.recv() => {
                    match hup.reopen_logs() {
                        Some(path) => tracing::info!(path = %path.display(), "SIGUSR1: reopening the query log"),
                        None => tracing::info!("SIGUSR1: no query log to reopen"),
                    }
                }
            }
        }
    });
    tracing::info!("stopping");
    crate::notify::stopping("stopping");
    stop.store(true, Ordering::Relaxed);
    serving.request_reload(ReloadRequest::Stop);
    drop(control);
    drop(metrics);
    if let Some(f) = feeds {
        f.shutdown();
    }
    for t in threads {
        let _ = t.join();
    }
    let _ = reload_thread.join();
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    // The workers and connections are gone: the log writes what they queued, then stops.
    if let Some(q) = query_log {
        q.stop();
    }
    Ok(())
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
