//! The new process's side (`signpost serve --takeover PATH`): connect to the running server's
//! control socket, ask for its sockets, hand them to the daemon address by address, say
//! "ready" once serving, and receive the final node states and counters.
//!
//! Inherited sockets the daemon does not ask for (addresses the new configuration no longer
//! serves) are kept open until [`Taker::ready`]: closing a socket drops its queue, so they
//! close only once the new process answers on everything it serves.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Final;
use super::wire::{self, Carried, Description, FeedRoutes, Kind, Message, Socket};
use crate::control::{MAX_LINE, Request, Response};

/// How long one step of the old process may take to answer (sending the sockets; stopping
/// its workers after "ready").
const STEP: Duration = Duration::from_secs(30);

/// Why the new process cannot take over.
#[derive(Debug)]
pub enum HandoverError {
    /// The running server's control socket cannot be reached.
    Connect(PathBuf, std::io::Error),
    /// The running server refused to hand over, and why.
    Refused(String),
    /// A step of the hand-over failed.
    Io(&'static str, std::io::Error),
    /// The running server closed the connection before sending its sockets.
    Closed,
    /// The running server gave up waiting and keeps serving.
    Aborted(String),
}

impl std::fmt::Display for HandoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandoverError::Connect(p, e) => {
                write!(
                    f,
                    "cannot take over: cannot connect to {}: {e}",
                    p.display()
                )
            }
            HandoverError::Refused(e) => write!(f, "the running server refused to hand over: {e}"),
            HandoverError::Io(step, e) => write!(f, "hand-over failed while {step}: {e}"),
            HandoverError::Closed => {
                write!(
                    f,
                    "the running server closed the connection before handing over"
                )
            }
            HandoverError::Aborted(why) => {
                write!(f, "the running server gave up the hand-over: {why}")
            }
        }
    }
}

impl std::error::Error for HandoverError {}

/// The sockets received from the running server, until the daemon has taken what it serves.
pub struct Taker {
    stream: UnixStream,
    old_pid: u32,
    entries: Vec<(Socket, Option<OwnedFd>)>,
    carried: Carried,
    routes: Vec<FeedRoutes>,
    sessions: Vec<String>,
    keeps_control: bool,
}

impl Taker {
    /// Connects to the control socket at `path` and receives the sockets and node states.
    pub fn connect(path: &Path) -> Result<Taker, HandoverError> {
        let io = |step| move |e| HandoverError::Io(step, e);
        let mut stream =
            UnixStream::connect(path).map_err(|e| HandoverError::Connect(path.into(), e))?;
        stream
            .set_read_timeout(Some(STEP))
            .map_err(io("setting up the connection"))?;
        let mut line = Request::Takeover {}.to_line();
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .map_err(io("asking for the sockets"))?;
        let answer =
            wire::read_line(&mut stream, MAX_LINE).map_err(io("asking for the sockets"))?;
        let answer: Response = serde_json::from_str(&answer).map_err(|e| {
            HandoverError::Io(
                "asking for the sockets",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        if !answer.ok {
            return Err(HandoverError::Refused(answer.error.unwrap_or_default()));
        }
        let desc: Description = wire::read_frame(&mut stream)
            .map_err(io("receiving the description"))?
            .ok_or(HandoverError::Closed)?;
        let fds =
            wire::recv_fds(&stream, desc.sockets.len()).map_err(io("receiving the sockets"))?;
        let routes = (0..desc.feeds)
            .map(|_| wire::read_routes(&mut stream))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io("receiving the BGP feeds' routes"))?;
        tracing::info!(
            pid = desc.pid,
            sockets = fds.len(),
            feeds = routes.len(),
            routes = routes
                .iter()
                .map(|r| r.v4.len() + r.v6.len())
                .sum::<usize>(),
            "taking over from the running server"
        );
        Ok(Taker {
            stream,
            old_pid: desc.pid,
            entries: desc
                .sockets
                .into_iter()
                .zip(fds.into_iter().map(Some))
                .collect(),
            carried: desc.carried,
            routes,
            sessions: desc.sessions,
            keeps_control: false,
        })
    }

    /// The old process.
    pub fn old_pid(&self) -> u32 {
        self.old_pid
    }

    /// The node states as they stood when the sockets were sent.
    pub fn carried(&self) -> &Carried {
        &self.carried
    }

    /// The BGP feeds' routes as the running server held them, one table per peer (every
    /// route flagged stale: the new process's own sessions announce them again).
    pub fn feed_tables(&self) -> Vec<crate::live::FeedTable> {
        self.routes.iter().map(super::feed_table).collect()
    }

    /// The BGP peers whose established sessions the old process hands over after "ready":
    /// the feeds wait for them instead of connecting.
    pub fn sessions(&self) -> &[String] {
        &self.sessions
    }

    /// The feeds' listener the old process bound for `listen`.
    pub fn bgp(&mut self, listen: SocketAddr) -> Option<TcpListener> {
        self.take(Kind::Bgp, listen).pop().map(TcpListener::from)
    }

    /// Takes the inherited sockets of `kind` for the listen address `listen`: those the old
    /// process bound for the same configured address (port 0 included), or bound to `listen`.
    fn take(&mut self, kind: Kind, listen: SocketAddr) -> Vec<OwnedFd> {
        self.entries
            .iter_mut()
            .filter(|(s, fd)| {
                s.kind == kind
                    && fd.is_some()
                    && (s.listen == Some(listen) || s.bound == Some(listen))
            })
            .filter_map(|(_, fd)| fd.take())
            .collect()
    }

    /// The inherited UDP sockets for `listen` (none if the old process did not serve it).
    pub fn udp(&mut self, listen: SocketAddr) -> Vec<UdpSocket> {
        self.take(Kind::Udp, listen)
            .into_iter()
            .map(UdpSocket::from)
            .collect()
    }

    /// The inherited TCP listener for `listen`, if any.
    pub fn tcp(&mut self, listen: SocketAddr) -> Option<TcpListener> {
        let mut all = self.take(Kind::Tcp, listen).into_iter();
        all.next().map(TcpListener::from)
    }

    /// The inherited metrics listener for `listen`, if any.
    pub fn metrics(&mut self, listen: SocketAddr) -> Option<TcpListener> {
        let mut all = self.take(Kind::Metrics, listen).into_iter();
        all.next().map(TcpListener::from)
    }

    /// The inherited control socket listener and its path, when `wanted` is that path or no
    /// path is chosen.
    pub fn control(&mut self, wanted: Option<&Path>) -> Option<(PathBuf, UnixListener)> {
        let (s, fd) = self.entries.iter_mut().find(|(s, fd)| {
            s.kind == Kind::Control
                && fd.is_some()
                && wanted.is_none_or(|w| s.path.as_deref() == Some(w))
        })?;
        let path = s.path.clone()?;
        let listener = UnixListener::from(fd.take()?);
        self.keeps_control = true;
        Some((path, listener))
    }

    /// Receives `count` BGP sessions after [`Message::Done`]: the sockets, then their states.
    fn sessions_handed(&mut self, count: usize) -> std::io::Result<Vec<super::Session>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let fds = wire::recv_fds(&self.stream, count)?;
        let states = (0..count)
            .map(|_| wire::read_session(&mut self.stream))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(states.into_iter().zip(fds).collect())
    }

    /// Tells the old process that this one cannot take over, and why (best effort: it may be
    /// gone). It keeps serving.
    pub fn fail(mut self, error: &str) {
        let _ = wire::write_frame(
            &mut self.stream,
            &Message::Failed {
                error: error.to_string(),
            },
        );
    }

    /// Says "ready" (this process serves from the sockets) and waits for the old process to
    /// stop reading them. Returns the final node states and counters with the BGP sessions
    /// handed over, or `None` when the old process went away without sending them (it
    /// crashed: this one serves alone now). The inherited sockets nobody asked for are closed
    /// here.
    pub fn ready(mut self) -> Result<Option<Final>, HandoverError> {
        super::notify_main_pid();
        wire::write_frame(
            &mut self.stream,
            &Message::Ready {
                pid: std::process::id(),
                keeps_control: self.keeps_control,
            },
        )
        .map_err(|e| HandoverError::Io("saying ready", e))?;
        let unused = self.entries.iter().filter(|(_, fd)| fd.is_some()).count();
        if unused > 0 {
            tracing::info!(
                sockets = unused,
                "closing inherited sockets no longer served"
            );
        }
        self.entries.clear();
        match wire::read_frame::<Message>(&mut self.stream) {
            Ok(Some(Message::Done { carried, sessions })) => {
                let sessions = self.sessions_handed(sessions).unwrap_or_else(|e| {
                    tracing::warn!("BGP sessions not taken over ({e}); connecting again");
                    Vec::new()
                });
                Ok(Some(Final { carried, sessions }))
            }
            Ok(Some(Message::Abort { reason })) => Err(HandoverError::Aborted(reason)),
            Ok(Some(other)) => Err(HandoverError::Io(
                "waiting for the old process to stop",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unexpected message {other:?}"),
                ),
            )),
            Ok(None) => {
                tracing::warn!(
                    pid = self.old_pid,
                    "the old process went away without its final states; serving alone"
                );
                Ok(None)
            }
            Err(e) => Err(HandoverError::Io("waiting for the old process to stop", e)),
        }
    }
}
