//! The only module that wires everything together: load, bind, start the UDP workers, the TCP
//! listeners, the reload thread and the control socket, then wait for a signal and stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::dns::{Stats, tcp, udp};
use crate::reload::{self, Trigger};
use crate::source::Errors;

/// Why the daemon could not run.
#[derive(Debug)]
pub enum DaemonError {
    /// The inputs are invalid.
    Invalid(Errors),
    /// A socket could not be bound or another resource was unavailable.
    Io(String),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Invalid(e) => write!(f, "{e}"),
            DaemonError::Io(e) => write!(f, "{e}"),
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
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(opts: ServeOptions) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    let (config, snap) =
        reload::load(opts.config.as_deref(), None).map_err(DaemonError::Invalid)?;
    // Admin overrides and the first round of health checks are applied before the first
    // answer.
    let mut states = crate::control::NodeStates::load(
        opts.state_file
            .clone()
            .or_else(|| config.state_file.clone()),
    )
    .map_err(DaemonError::Io)?;
    states.initial = Some(config.health_initial);
    states.checked = snap
        .nodes
        .iter()
        .filter(|n| n.check.is_some())
        .map(|n| n.name.clone())
        .collect();
    let states = Arc::new(std::sync::Mutex::new(states));
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("signpost-io")
        .build()
        .map_err(|e| DaemonError::Io(format!("cannot start runtime: {e}")))?;

    runtime.block_on(crate::probe::first_round(
        &snap,
        &states,
        config.health_startup_wait,
    ));
    states
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .apply(&snap);
    let state = Arc::new(ArcSwap::from_pointee(snap));
    runtime.spawn(crate::probe::supervise(
        state.clone(),
        states.clone(),
        config.max_concurrent_checks,
    ));

    let mut listen = config.listen.clone();
    if !opts.listen.is_empty() {
        listen = opts
            .listen
            .iter()
            .map(|&addr| crate::config::Listen {
                addr,
                udp: true,
                tcp: true,
            })
            .collect();
    }
    let mut threads = Vec::new();
    let mut bound = Vec::new();
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
                state.clone(),
                stats.clone(),
                stop.clone(),
            )
            .map_err(|e| DaemonError::Io(format!("cannot bind UDP {addr}: {e}")))?;
            addr = b;
            threads.extend(t);
            bound.push(format!("udp {b}"));
        }
        if l.tcp {
            let listener = tcp::bind(addr)
                .map_err(|e| DaemonError::Io(format!("cannot bind TCP {addr}: {e}")))?;
            bound.push(format!(
                "tcp {}",
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            ));
            let (limits, state, stats) = (config.tcp, state.clone(), stats.clone());
            runtime.spawn(async move { tcp::serve(listener, limits, state, stats).await });
        }
    }
    let (reloader, reload_thread) =
        reload::start(opts.config.clone(), &config, state.clone()).map_err(DaemonError::Io)?;
    let control = crate::control::Control::start(
        &runtime,
        &config,
        &opts,
        &reloader,
        states,
        stats.clone(),
        started,
    )
    .map_err(DaemonError::Io)?;
    tracing::info!(
        listening = %bound.join(", "),
        workers = config.workers,
        ms = started.elapsed().as_millis() as u64,
        versions = %state.load().versions,
        "serving"
    );
    // Machine-readable line for tests and scripts that bind port 0.
    println!("signpost: ready; {}", bound.join("; "));

    let trigger = reloader.trigger.clone();
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    let _ = trigger.send(Trigger::Forced);
                }
            }
        }
    });
    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    let _ = reloader.trigger.send(Trigger::Stop);
    drop(control);
    for t in threads {
        let _ = t.join();
    }
    let _ = reload_thread.join();
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    Ok(())
}
