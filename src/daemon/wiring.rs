//! Starting the services once the first snapshot and node states are ready: the DNS
//! listeners (bound, or taken over from the running server), the BGP feeds, the metrics
//! endpoint and the control socket, each socket registered for a later hand-over; and the
//! wait for a signal.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::handing::Relay;
use super::{DaemonError, ServeOptions, control_limits, control_path};
use crate::control::Control;
use crate::counters::Counters;
use crate::dns::{tcp, udp};
use crate::handover::give::Ready;
use crate::handover::wire::{Kind, Socket};
use crate::handover::{self, Handoff, Taker};

use crate::serving::{ReloadRequest, Serving};

/// What the services are wired with.
#[derive(Clone, Copy)]
pub(super) struct Wiring<'a> {
    pub(super) opts: &'a ServeOptions,
    pub(super) config: &'a crate::config::Config,
    pub(super) runtime: &'a tokio::runtime::Runtime,
    pub(super) serving: &'a Arc<Serving>,
    pub(super) counters: &'a Arc<Counters>,
    pub(super) handoff: &'a Arc<Handoff>,
}

/// The DNS listeners, serving.
pub(super) struct Listening {
    /// The UDP workers.
    pub(super) threads: Vec<std::thread::JoinHandle<()>>,
    /// The TCP accept loops.
    pub(super) accepting: Vec<tokio::task::JoinHandle<()>>,
    /// What is bound, for the "ready" line.
    pub(super) bound: Vec<String>,
}

impl Wiring<'_> {
    /// Binds (or takes over) every DNS listen address and starts its UDP workers and TCP
    /// accept loop; every socket is registered for a later hand-over.
    pub(super) fn listen_dns(
        self,
        listen: &[crate::config::Listen],
        taker: &mut Option<Taker>,
        query_log: Option<&Arc<crate::querylog::QueryLog>>,
        open: &tcp::Open,
        stop: &Arc<AtomicBool>,
    ) -> Result<Listening, DaemonError> {
        let Wiring {
            opts: _,
            config,
            runtime,
            serving,
            counters,
            handoff,
        } = self;
        let query_log = query_log.cloned();
        // One DNS TCP connection table for every listener, within a share of the descriptors.
        let fd_limit = crate::dns::conns::raise_fd_limit();
        let tcp_table = Arc::new(crate::dns::conns::Table::new(&config.tcp, fd_limit));
        tracing::info!(
            max_connections = tcp_table.capacity(),
            fd_limit,
            "DNS TCP connection limit"
        );
        let mut threads = Vec::new();
        let mut bound = Vec::new();
        let mut accepting = Vec::new();
        let mut skipped = None;
        for l in listen {
            let mut addr = l.addr;
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
                match crate::dns::listen::bind_pair(addr, config.workers, l.udp, l.tcp) {
                    Ok(pair) => (sockets, tcp_listener) = pair,
                    // An optional listener this host cannot have (no IPv6, the port taken).
                    Err((kind, e)) if l.optional => {
                        tracing::warn!(%addr, error = %e, "optional listener skipped ({kind} cannot be bound): neither UDP nor TCP served there");
                        skipped = Some(DaemonError::Bind(kind, addr, e));
                        continue;
                    }
                    Err((kind, e)) => return Err(DaemonError::Bind(kind, addr, e)),
                }
            }
            if l.udp {
                let bind_err = |e| DaemonError::Bind("UDP", addr, e);
                let sockets =
                    udp_group(addr, sockets, inherited, config.workers).map_err(bind_err)?;
                let b = sockets[0].local_addr().map_err(bind_err)?;
                for sock in &sockets {
                    register(Kind::Udp, b, sock.as_fd()).map_err(bind_err)?;
                }
                threads.extend(
                    udp::spawn_on(
                        sockets,
                        config.rrl.clone(),
                        serving.published().swap(),
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
                    serving.published().swap(),
                    counters.clone(),
                    query_log.clone(),
                    open.clone(),
                );
                accepting.push(runtime.spawn(async move {
                    tcp::serve(listener, limits, table, state, counters, log, open).await
                }));
            }
        }
        // Every listener optional and none bound: nothing would answer.
        if let (true, Some(e)) = (bound.is_empty(), skipped) {
            return Err(DaemonError::NoListener(Box::new(e)));
        }
        Ok(Listening {
            threads,
            accepting,
            bound,
        })
    }

    /// Starts the BGP feeds, with the listener and routes handed over by a process this one
    /// replaces. The server answers from the file tables and GeoIP until sessions are up.
    pub(super) fn start_feeds(
        self,
        taker: &mut Option<Taker>,
        carried_routes: Vec<crate::live::FeedTable>,
        bound: &mut Vec<String>,
    ) -> Result<Option<Arc<crate::feed::Feeds>>, DaemonError> {
        let Wiring {
            config,
            runtime,
            serving,
            handoff,
            ..
        } = self;
        // BGP feeds: the server answers from the file tables and GeoIP until sessions are up; every
        // change in a feed asks the reload thread for a build (coalesced).
        let feeds = match &config.feeds {
            Some(f) => {
                let changed = serving.reloads().clone();
                let inherited = crate::feed::Inherited {
                    listener: f.listen.and_then(|a| taker.as_mut().and_then(|t| t.bgp(a))),
                    tables: carried_routes,
                    sessions: taker
                        .as_ref()
                        .map(|t| t.sessions().to_vec())
                        .unwrap_or_default(),
                };
                let feeds = crate::feed::Feeds::start(
                    speaker(f, config.anycast.as_ref()),
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
        Ok(feeds)
    }

    /// Starts the metrics endpoint, on the listener handed over when there is one.
    pub(super) fn start_metrics(
        self,
        taker: &mut Option<Taker>,
        bound: &mut Vec<String>,
    ) -> Result<Option<crate::metrics::Metrics>, DaemonError> {
        let Wiring {
            opts,
            config,
            runtime,
            serving,
            handoff,
            ..
        } = self;
        let metrics = match opts.metrics.or(config.metrics_listen) {
            Some(addr) => match match taker.as_mut().and_then(|t| t.metrics(addr)) {
                Some(inherited) => {
                    crate::metrics::Metrics::start_on(runtime, inherited, addr, serving.clone())
                }
                None => crate::metrics::Metrics::start(runtime, addr, serving.clone()),
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
                // An optional endpoint (the demo's): the server still answers without it. An
                // address given on the command line is never optional.
                Err(e) if config.metrics_optional && opts.metrics.is_none() => {
                    tracing::warn!("{e}; serving without metrics (metrics.optional)");
                    None
                }
                Err(e) => return Err(DaemonError::Metrics(e)),
            },
            None => None,
        };
        Ok(metrics)
    }

    /// Opens the control socket (or adopts the one handed over), finishes a take-over (the
    /// running server stops; its final states and counters are applied), and connects the
    /// control socket to the hand-over for a later replace.
    pub(super) fn start_control(
        self,
        taker: &mut Option<Taker>,
        started: std::time::Instant,
    ) -> Result<(Control, Vec<handover::Session>), DaemonError> {
        let Wiring {
            opts,
            config,
            runtime,
            serving,
            counters,
            handoff,
        } = self;
        let wanted = opts
            .control
            .clone()
            .or_else(|| config.control_socket.clone());
        let inherited_control = taker.as_mut().and_then(|t| t.control(wanted.as_deref()));
        let start_control = |path| {
            Control::start(
                runtime,
                path,
                config.control_mode,
                control_limits(config),
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
                let (path, chosen) = control_path(opts, config);
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
        let mut sessions = Vec::new();
        if let Some(t) = taker.take() {
            let old_pid = t.old_pid();
            if let Some(last) = t.ready().map_err(DaemonError::Takeover)? {
                let carried = last.carried;
                sessions = last.sessions;
                serving.published().update_states(|st, _| {
                    handover::apply(st, &carried);
                    if let Err(e) = st.save() {
                        tracing::warn!("{e}");
                    }
                });
                serving.published().update_capacity(|cap, snap| {
                    handover::apply_capacity(cap, &carried);
                    cap.apply(snap);
                });
                handover::carry(counters, &carried.counters);
            }
            tracing::info!(old_pid, "took over from the running server");
        }
        let control = match (own_control, inherited_control) {
            (Some(c), _) => c,
            (None, Some((path, listener))) => Control::adopt(
                runtime,
                path,
                listener,
                control_limits(config),
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
        Ok((control, sessions))
    }
}

/// Waits for SIGTERM or SIGINT (`None`), or for a new process that took over (`Some`);
/// SIGHUP asks for a reload, SIGUSR1 reopens the query log.
pub(super) fn wait_for_signal(
    runtime: &tokio::runtime::Runtime,
    serving: &Arc<Serving>,
    handed: &mut tokio::sync::mpsc::UnboundedReceiver<Ready>,
) -> Option<Ready> {
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
            return None;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break None,
                _ = int.recv() => break None,
                _ = sighup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    hup.reloads().request_reload(ReloadRequest::Signal);
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
    })
}

/// The UDP sockets of one listener, a worker each: those handed over (`inherited`) or bound
/// with its TCP twin, else a new group. More workers than inherited sockets: more sockets in
/// the same group. Fewer: every inherited socket still gets a worker, since a socket nobody
/// reads keeps (and loses) its queue.
fn udp_group(
    addr: SocketAddr,
    mut sockets: Vec<std::net::UdpSocket>,
    inherited: bool,
    workers: usize,
) -> std::io::Result<Vec<std::net::UdpSocket>> {
    if sockets.is_empty() {
        return udp::bind_group(addr, workers);
    }
    if inherited {
        tracing::info!(%addr, sockets = sockets.len(), "UDP sockets taken over");
        let b = sockets[0].local_addr()?;
        while sockets.len() < workers {
            sockets.push(udp::bind(b)?);
        }
    }
    Ok(sockets)
}

/// The feed settings of the configuration, with the anycast routes of the peers that get them.
fn speaker(
    f: &crate::config::Feeds,
    anycast: Option<&crate::config::Anycast>,
) -> crate::feed::Speaker {
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
                settings: p.clone(),
                announce: routes_for(anycast, &p.name),
            })
            .collect(),
    }
}

/// The routes announced to each feed peer: the anycast prefixes for the peers it names.
fn routes_for(
    anycast: Option<&crate::config::Anycast>,
    peer: &str,
) -> Vec<crate::feed::Announcement> {
    match anycast {
        Some(a) if a.peers.iter().any(|p| p == peer) => a
            .prefixes
            .iter()
            .map(|p| crate::feed::Announcement {
                prefix: p.prefix,
                next_hop: p.next_hop,
                communities: p.communities.clone(),
            })
            .collect(),
        _ => Vec::new(),
    }
}
