//! The hand-over's wire format, between the running server (the old process) and the one that
//! takes over (the new process), on a connection to the old process's control socket.
//!
//! After the `takeover` request line and its control response line, every message is a frame:
//! a 4-byte big-endian length, then that many bytes of JSON. The descriptors follow the
//! [`Description`] frame in messages of one byte each, carrying up to [`CHUNK`] descriptors as
//! `SCM_RIGHTS` ancillary data (through rustix, which hands them back as `OwnedFd`): the n-th
//! descriptor received is the n-th entry of [`Description::sockets`]. Then come
//! [`Description::feeds`] frames of [`FeedRoutes`], one per BGP feed, in postcard (a compact
//! binary serde format: a full table is millions of routes) instead of JSON.
//!
//! After "ready", the old process's [`Message::Done`] says how many BGP sessions it hands
//! over: their connected sockets follow as descriptors (as above), then one postcard frame of
//! [`CarriedSession`] each, in the same order.

use std::collections::BTreeMap;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

use crate::live::CarriedSession;
use crate::node_state::Override;

/// What a handed-over socket is for.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A UDP socket of the DNS front end (one of a `SO_REUSEPORT` group).
    Udp,
    /// A TCP listener of the DNS front end.
    Tcp,
    /// The control socket's listener.
    Control,
    /// The metrics endpoint's HTTP listener.
    Metrics,
    /// The BGP feeds' listener (`feeds.listen`).
    Bgp,
}

/// One handed-over socket.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Socket {
    /// What it is for.
    pub kind: Kind,
    /// The listen address as configured (port 0 included), for UDP and TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The address it is bound to, for UDP and TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<SocketAddr>,
    /// The socket file, for the control socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// A pushed state, as data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PushedState {
    /// The node.
    pub node: String,
    /// `up`, `down` or `drain`.
    pub state: String,
    /// Unix time after which it lapses.
    pub expires_at: u64,
    /// Who pushed it.
    pub source: String,
}

/// What the old process carries over besides its sockets: node states and counters.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Carried {
    /// Admin overrides.
    pub admin: Vec<Override>,
    /// Pushed states.
    pub pushed: Vec<PushedState>,
    /// Counter name → value (the names of `Stats::snapshot`).
    pub counters: BTreeMap<String, u64>,
    /// Capacity steering: each steered service's weight factors and overflow fractions.
    #[serde(default)]
    pub steering: Vec<SteeringState>,
    /// Pushed loads.
    #[serde(default)]
    pub pushed_loads: Vec<PushedLoad>,
}

/// One steered service's shares, as data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SteeringState {
    /// The service (its first name).
    pub service: String,
    /// Weight factor by node.
    pub factors: BTreeMap<String, f64>,
    /// Overflow fraction by region.
    pub overflow: BTreeMap<String, f64>,
}

/// A pushed load, as data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PushedLoad {
    /// The node.
    pub node: String,
    /// The load.
    pub load: f64,
    /// Unix time after which it lapses.
    pub expires_at: u64,
    /// Who pushed it.
    pub source: String,
}

/// The old process's first frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Description {
    /// The old process.
    pub pid: u32,
    /// The sockets, in the order of the descriptors that follow.
    pub sockets: Vec<Socket>,
    /// Node states as they stand now (counters follow in [`Message::Done`]).
    pub carried: Carried,
    /// How many [`FeedRoutes`] frames follow the descriptors.
    #[serde(default)]
    pub feeds: usize,
    /// The BGP peers whose sessions are established: the old process hands them over after
    /// "ready" (those still established then), and the new one waits for them instead of
    /// connecting.
    #[serde(default)]
    pub sessions: Vec<String>,
}

/// One BGP feed's routes as the old process holds them (fresh and stale alike): (start,
/// prefix length, origin AS, AS-path length) per family, sorted.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct FeedRoutes {
    /// The peer's name.
    pub peer: String,
    /// IPv4 routes.
    pub v4: Vec<(u32, u8, u32, u32)>,
    /// IPv6 routes.
    pub v6: Vec<(u128, u8, u32, u32)>,
}

/// The frames after the description.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "msg", rename_all = "lowercase")]
pub enum Message {
    /// New → old: serving from the sockets; the old process may stop.
    Ready {
        /// The new process.
        pid: u32,
        /// It serves the control socket it was given (else the old process removes the
        /// socket file when it stops).
        #[serde(default)]
        keeps_control: bool,
    },
    /// New → old: it cannot take over, and why; it exits.
    Failed {
        /// Why.
        error: String,
    },
    /// Old → new: it has stopped reading; the final node states and counters. Followed by
    /// `sessions` descriptors of connected BGP sessions and a [`CarriedSession`] frame each.
    Done {
        /// States and counters.
        carried: Carried,
        /// How many BGP sessions follow.
        #[serde(default)]
        sessions: usize,
    },
    /// Old → new: the old process gave up waiting and keeps serving; the new one must exit.
    Abort {
        /// Why.
        reason: String,
    },
}

/// Descriptors per message.
pub const CHUNK: usize = 32;
/// The longest frame accepted: room for a feed of 2 million IPv4 and 1 million IPv6 routes
/// in postcard (at most 14 and 26 bytes each).
const MAX_FRAME: usize = 64 << 20;

/// Writes `value` as one frame.
pub fn write_frame(stream: &mut UnixStream, value: &impl Serialize) -> io::Result<()> {
    write_bytes(
        stream,
        &serde_json::to_vec(value).map_err(io::Error::other)?,
    )
}

/// Reads one frame; `Ok(None)` when the peer closed the connection before it.
pub fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut UnixStream) -> io::Result<Option<T>> {
    read_bytes(stream)?
        .map(|body| serde_json::from_slice(&body))
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one feed's routes as a frame (postcard).
pub fn write_routes(stream: &mut UnixStream, routes: &FeedRoutes) -> io::Result<()> {
    write_bytes(
        stream,
        &postcard::to_stdvec(routes).map_err(io::Error::other)?,
    )
}

/// Reads one feed's routes written by [`write_routes`].
pub fn read_routes(stream: &mut UnixStream) -> io::Result<FeedRoutes> {
    let body = read_bytes(stream)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one BGP session's state as a frame (postcard: it holds the peer's routes).
pub fn write_session(stream: &mut UnixStream, session: &CarriedSession) -> io::Result<()> {
    write_bytes(
        stream,
        &postcard::to_stdvec(session).map_err(io::Error::other)?,
    )
}

/// Reads one BGP session's state written by [`write_session`].
pub fn read_session(stream: &mut UnixStream) -> io::Result<CarriedSession> {
    let body = read_bytes(stream)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `body` with its length in front.
fn write_bytes(stream: &mut UnixStream, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::other(format!("frame of {len} bytes")));
    }
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// Reads one length-prefixed body; `Ok(None)` when the peer closed the connection before it.
fn read_bytes(stream: &mut UnixStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match stream.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Reads one line (the control response to `takeover`) without reading past its newline, so
/// that nothing of what follows is consumed.
pub fn read_line(stream: &mut UnixStream, max: usize) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if line.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
    String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Sends `fds`, [`CHUNK`] per message.
pub fn send_fds(stream: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    for chunk in fds.chunks(CHUNK) {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(CHUNK))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(chunk)) {
            return Err(io::Error::other("ancillary buffer too small"));
        }
        let sent = rustix::net::sendmsg(
            stream,
            &[IoSlice::new(b"F")],
            &mut control,
            SendFlags::empty(),
        )?;
        if sent != 1 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// Receives `count` descriptors sent by [`send_fds`] (close-on-exec set).
pub fn recv_fds(stream: &UnixStream, count: usize) -> io::Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(count);
    while fds.len() < count {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(CHUNK))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        let got = rustix::net::recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        if got.bytes == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let before = fds.len();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if fds.len() == before || got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "descriptors missing from a hand-over message",
            ));
        }
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn frames_and_descriptors_cross_a_socket_pair() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let sockets: Vec<std::net::UdpSocket> = (0..CHUNK + 3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let desc = Description {
            pid: 7,
            sockets: sockets
                .iter()
                .map(|s| Socket {
                    kind: Kind::Udp,
                    listen: None,
                    bound: Some(s.local_addr().unwrap()),
                    path: None,
                })
                .collect(),
            carried: Carried::default(),
            feeds: 1,
            sessions: vec!["fra1-rtr".into()],
        };
        write_frame(&mut a, &desc).unwrap();
        let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|s| s.as_fd()).collect();
        send_fds(&a, &fds).unwrap();
        let routes = FeedRoutes {
            peer: "fra1-rtr".into(),
            v4: (0..100_000u32)
                .map(|i| (i << 8, 24, 64_512 + i % 7, 2))
                .collect(),
            v6: vec![(0x2001_0db8u128 << 96, 32, 65_001, 1)],
        };
        let ready = Message::Ready {
            pid: 8,
            keeps_control: true,
        };
        let writer = {
            let mut a = a.try_clone().unwrap();
            let (routes, ready) = (routes.clone(), ready.clone());
            // Bigger than the socket buffer: written while the other side reads.
            std::thread::spawn(move || {
                write_routes(&mut a, &routes).unwrap();
                write_frame(&mut a, &ready).unwrap();
            })
        };
        let got: Description = read_frame(&mut b).unwrap().unwrap();
        assert_eq!(got, desc);
        let received = recv_fds(&b, got.sockets.len()).unwrap();
        for (fd, entry) in received.into_iter().zip(&got.sockets) {
            let s = std::net::UdpSocket::from(fd);
            assert_eq!(Some(s.local_addr().unwrap()), entry.bound);
        }
        assert_eq!(read_routes(&mut b).unwrap(), routes);
        writer.join().unwrap();
        let m: Message = read_frame(&mut b).unwrap().unwrap();
        assert_eq!(m, ready);
        drop(a);
        assert!(read_frame::<Message>(&mut b).unwrap().is_none());
    }
}
