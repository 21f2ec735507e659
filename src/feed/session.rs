//! One BGP session over a connected socket: the OPEN exchange, then receiving UPDATEs into the
//! peer's table while keeping the session alive, until an error, the peer, or a replacing
//! connection ends it.
//!
//! Signpost announces no route but its own anycast service prefixes, and those only on the
//! peers configured with them (`announce.rs`), while the feed's announced flag is set; besides
//! them it only sends KEEPALIVE and NOTIFICATION. Messages received in one read are applied to
//! the table under one lock, and the change callback is called once per such batch.
//!
//! A session handed over by a process that is replaced (`ctl replace`) resumes in the
//! Established state without a new OPEN ([`resume`]); one this process hands over stops at a
//! message boundary and ends with its socket still open ([`SessionEnd::paused`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bgpkit_parser::models::{AsnLength, BgpMessage};
use bgpkit_parser::parser::bgp::parse_bgp_message;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::announce::{self, SessionView};
use super::frame::{self, Frame, FrameReader, ReadError};
use super::handing::{self, Handed};
use super::notice::{CEASE, FSM_ERROR, HOLD_TIMER_EXPIRED, Notice, OPEN_ERROR};
use super::open::{self, Negotiated};
use super::shared::{PeerShared, lock};
use super::status::SessionState;
use super::table::LimitReached;
use super::update::{self, Changes};
use crate::log_limit::limited;

/// How a session ended.
pub(crate) struct SessionEnd {
    /// It had reached Established.
    pub established: bool,
    /// A new connection from the same peer replaced it.
    pub replaced_by: Option<TcpStream>,
    /// It ended because the peer sent more routes than its limit: wait before the next
    /// session, instead of loading the table again at once.
    pub over_limit: bool,
    /// It stopped to be handed over: the connected socket and the session's state.
    pub paused: Option<Handed>,
}

/// Longest wait for a write to the peer before the session is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait for the peer's OPEN or KEEPALIVE when no hold time applies (RFC 4271 §8: 4 minutes).
const LARGE_HOLD: Duration = Duration::from_secs(240);
/// Longest time spent draining the peer's bytes after a NOTIFICATION, so that closing does
/// not reset the connection before the peer has read it.
const DRAIN: Duration = Duration::from_millis(500);

/// The KEEPALIVE message, encoded by bgpkit-parser.
fn keepalive() -> Bytes {
    BgpMessage::KeepAlive
        .encode(AsnLength::Bits32)
        .unwrap_or_default()
}

/// Parses a whole message; a parser panic counts as a parse error.
fn parse(frame: &Frame) -> Option<BgpMessage> {
    catch_unwind(AssertUnwindSafe(|| {
        parse_bgp_message(&mut frame.bytes.clone(), false, &AsnLength::Bits32)
    }))
    .ok()?
    .ok()
}

/// Why the session ends, before the socket is closed.
enum Ending {
    /// Send this NOTIFICATION, then close.
    Send(Notice),
    /// The peer sent a NOTIFICATION.
    Received(Notice),
    /// The connection failed or closed.
    Lost(String),
    /// A new connection from the peer replaces this one.
    Replaced(TcpStream),
    /// The process hands the session over: stop here and keep the socket open. Says whether
    /// the own routes are announced on it.
    Paused(bool),
}

/// The socket halves and the read buffer.
struct Conn {
    /// Reading half.
    rd: OwnedReadHalf,
    /// Writing half.
    wr: OwnedWriteHalf,
    /// Framing.
    reader: FrameReader,
}

impl Conn {
    /// The connection on `stream`, with `reader` holding what was already read.
    fn new(stream: TcpStream, reader: FrameReader) -> Conn {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Conn { rd, wr, reader }
    }

    /// Writes a whole message within [`WRITE_TIMEOUT`].
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Ending> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.wr.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Ending::Lost(format!("write: {e}"))),
            Err(_) => Err(Ending::Lost("write timed out".to_string())),
        }
    }

    /// Reads the next message within `wait`.
    async fn next(&mut self, wait: Duration) -> Result<Frame, Ending> {
        match tokio::time::timeout(wait, self.reader.read_frame(&mut self.rd)).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) => Err(read_ending(e)),
            Err(_) => Err(Ending::Send(Notice::new(HOLD_TIMER_EXPIRED, 0))),
        }
    }

    /// Sends a NOTIFICATION, closes the sending side and drains what the peer still sends for
    /// a moment, so that the close is orderly.
    async fn close_with(mut self, notice: &Notice) {
        let _ = tokio::time::timeout(DRAIN, async {
            let _ = self.wr.write_all(&notice.encode()).await;
            let _ = self.wr.shutdown().await;
            let mut sink = [0u8; 4096];
            while matches!(self.rd.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// The ending for a read error.
fn read_ending(e: ReadError) -> Ending {
    match e {
        ReadError::Closed => Ending::Lost("connection closed by the peer".to_string()),
        ReadError::Io(e) => Ending::Lost(format!("read: {e}")),
        ReadError::Header(notice) => Ending::Send(notice),
    }
}

/// The ending for a message that is not allowed in the current state.
fn unexpected(frame: &Frame, fsm_subcode: u8) -> Ending {
    match (frame.kind, parse(frame)) {
        (frame::NOTIFICATION, Some(BgpMessage::Notification(n))) => {
            Ending::Received(Notice::from_message(&n))
        }
        (frame::NOTIFICATION, _) => Ending::Lost("malformed NOTIFICATION received".to_string()),
        _ => Ending::Send(Notice::new(FSM_ERROR, fsm_subcode)),
    }
}

/// Runs one session on `stream` until it ends. `incoming` is the passive peer's queue of new
/// connections; one arriving while Established replaces the session.
pub(crate) async fn run(
    shared: &Arc<PeerShared>,
    stream: TcpStream,
    incoming: Option<&mut mpsc::Receiver<TcpStream>>,
) -> SessionEnd {
    let remote = stream.peer_addr().ok();
    let mut conn = Conn::new(stream, FrameReader::new());
    let (ending, negotiated) = match open_exchange(shared, &mut conn).await {
        Ok(negotiated) => {
            shared.set_state(SessionState::Established);
            limited!(
                shared.logs,
                info,
                "BGP session up",
                peer = %shared.peer.name,
                remote = ?remote,
                hold_time = negotiated.hold_time,
                ipv4 = negotiated.ipv4,
                ipv6 = negotiated.ipv6
            );
            let ending = receive(shared, &mut conn, &negotiated, incoming, false).await;
            (ending, Some(negotiated))
        }
        Err(ending) => (ending, None),
    };
    finish(shared, conn, ending, negotiated).await
}

/// Resumes a session another process handed over: Established at once, no OPEN; a KEEPALIVE
/// goes out first (the old process's last one may be most of an interval ago), then the bytes
/// it had read and not handled are handled, and the session goes on as any other.
pub(crate) async fn resume(
    shared: &Arc<PeerShared>,
    handed: Handed,
    incoming: Option<&mut mpsc::Receiver<TcpStream>>,
) -> SessionEnd {
    let Handed { carry, stream } = handed;
    let negotiated = handing::negotiated(&carry);
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream))
    {
        Ok(s) => s,
        Err(e) => {
            shared.set_error(format!("cannot resume the session handed over: {e}"));
            return SessionEnd {
                established: false,
                replaced_by: None,
                over_limit: false,
                paused: None,
            };
        }
    };
    let mut conn = Conn::new(stream, FrameReader::with_unread(&carry.unread));
    shared.set_resumed(Duration::from_millis(carry.up_ms));
    limited!(
        shared.logs,
        info,
        "BGP session taken over",
        peer = %shared.peer.name,
        hold_time = negotiated.hold_time,
        announced = carry.announced,
        unread = carry.unread.len()
    );
    let ending = match conn.send(&keepalive()).await {
        Ok(()) => receive(shared, &mut conn, &negotiated, incoming, carry.announced).await,
        Err(ending) => ending,
    };
    finish(shared, conn, ending, Some(negotiated)).await
}

/// Ends the session as `ending` says: NOTIFICATION, logs and status, or, handing over, the
/// socket kept open with the session's state.
async fn finish(
    shared: &Arc<PeerShared>,
    conn: Conn,
    ending: Ending,
    negotiated: Option<Negotiated>,
) -> SessionEnd {
    let name = &shared.peer.name;
    let mut end = SessionEnd {
        established: negotiated.is_some(),
        replaced_by: None,
        over_limit: false,
        paused: None,
    };
    match ending {
        Ending::Send(notice) => {
            end.over_limit = notice.code == CEASE && notice.subcode == 1;
            limited!(
                shared.logs,
                warn,
                "sending BGP NOTIFICATION",
                peer = %name,
                notification = %notice
            );
            shared.set_error(format!("sent NOTIFICATION: {notice}"));
            conn.close_with(&notice).await;
        }
        Ending::Received(notice) => {
            limited!(
                shared.logs,
                warn,
                "BGP NOTIFICATION received",
                peer = %name,
                notification = %notice
            );
            shared.set_error(format!("received NOTIFICATION: {notice}"));
        }
        Ending::Lost(text) => {
            limited!(shared.logs, warn, "BGP connection lost", peer = %name, error = %text);
            shared.set_error(text);
        }
        Ending::Replaced(stream) => {
            let notice = Notice::new(CEASE, 7);
            limited!(
                shared.logs,
                warn,
                "new BGP connection from the peer replaces the session",
                peer = %name
            );
            shared.set_error(format!("sent NOTIFICATION: {notice}"));
            conn.close_with(&notice).await;
            end.replaced_by = Some(stream);
        }
        Ending::Paused(announced) => end.paused = paused(shared, conn, negotiated, announced),
    }
    end
}

/// The paused session as handed over: its state and the socket, whole again.
fn paused(
    shared: &PeerShared,
    conn: Conn,
    negotiated: Option<Negotiated>,
    announced: bool,
) -> Option<Handed> {
    let negotiated = negotiated?;
    let unread = conn.reader.unread().to_vec();
    let keepalive = keepalive_interval(negotiated.hold_time);
    let carry = handing::carry(shared, &negotiated, keepalive, announced, unread);
    let stream = conn
        .rd
        .reunite(conn.wr)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|s| s.into_std());
    match stream {
        Ok(stream) => {
            limited!(shared.logs, info, "BGP session handed over", peer = %shared.peer.name);
            Some(Handed { carry, stream })
        }
        Err(e) => {
            shared.set_error(format!("cannot hand the session over: {e}"));
            None
        }
    }
}

/// The keepalive interval for a hold time: a third of it, at least a second.
fn keepalive_interval(hold_time: u16) -> Duration {
    (Duration::from_secs(u64::from(hold_time)) / 3).max(Duration::from_secs(1))
}

/// OPEN, the peer's OPEN, KEEPALIVE, the peer's KEEPALIVE.
async fn open_exchange(shared: &PeerShared, conn: &mut Conn) -> Result<Negotiated, Ending> {
    let peer = &shared.peer;
    shared.set_state(SessionState::OpenSent);
    conn.send(&open::build_open(shared.local_asn, shared.router_id, peer))
        .await?;
    let wait = match peer.hold_time {
        0 => LARGE_HOLD,
        s => Duration::from_secs(u64::from(s)),
    };
    let frame = conn.next(wait).await?;
    shared.messages.fetch_add(1, Ordering::Relaxed);
    if frame.kind != frame::OPEN {
        return Err(unexpected(&frame, 1));
    }
    let Some(BgpMessage::Open(their)) = parse(&frame) else {
        return Err(Ending::Send(Notice::new(OPEN_ERROR, 0)));
    };
    let negotiated = open::check_open(
        &their,
        shared.local_asn,
        shared.router_id,
        peer,
        &shared.logs,
    )
    .map_err(Ending::Send)?;
    conn.send(&keepalive()).await?;
    shared.set_state(SessionState::OpenConfirm);
    let wait = match negotiated.hold_time {
        0 => LARGE_HOLD,
        s => Duration::from_secs(u64::from(s)),
    };
    let frame = conn.next(wait).await?;
    shared.messages.fetch_add(1, Ordering::Relaxed);
    if frame.kind != frame::KEEPALIVE {
        return Err(unexpected(&frame, 2));
    }
    Ok(negotiated)
}

/// Waits for the next connection on a passive peer's queue, or forever.
async fn next_incoming(incoming: Option<&mut mpsc::Receiver<TcpStream>>) -> Option<TcpStream> {
    match incoming {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The Established state: receive, apply, keep alive. `sent` says whether the own routes are
/// announced on the session already (one handed over), so that only a change is sent.
async fn receive(
    shared: &PeerShared,
    conn: &mut Conn,
    negotiated: &Negotiated,
    mut incoming: Option<&mut mpsc::Receiver<TcpStream>>,
    mut sent: bool,
) -> Ending {
    let hold = Duration::from_secs(u64::from(negotiated.hold_time));
    let ibgp = shared.peer.asn == shared.local_asn;
    let view = SessionView {
        local_asn: shared.local_asn,
        ibgp,
        local: conn.wr.local_addr().ok().map(|a| a.ip()),
        ipv4: negotiated.ipv4,
        ipv6: negotiated.ipv6,
    };
    let mut announced = shared.announced.clone();
    // Cleared when the feed is gone: nothing will change the flag again.
    let mut following = true;
    let mut pausing = shared.pausing.clone();
    let mut pause_open = true;
    let mut last_heard = Instant::now();
    let mut keepalives = tokio::time::interval(keepalive_interval(negotiated.hold_time));
    keepalives.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keepalives.tick().await;
    // Frames that arrived with the end of the handshake (a router sends its first UPDATEs
    // right behind its KEEPALIVE) are already buffered: handle them before reading more.
    let mut buffered = true;
    loop {
        let wanted = *announced.borrow_and_update() && !shared.peer.announce.is_empty();
        if wanted != sent {
            if let Err(ending) = advertise(shared, conn, &view, wanted).await {
                return ending;
            }
            sent = wanted;
        }
        if buffered {
            buffered = false;
            if let Some(ending) = drain(shared, conn, negotiated, ibgp, &mut last_heard) {
                return ending;
            }
        }
        // Every whole message read is handled, every one sent is sent: the place to stop for
        // a hand-over (what is left unread is part of one message at most).
        if *pausing.borrow_and_update() {
            return Ending::Paused(sent);
        }
        let hold_expiry = tokio::time::sleep_until((last_heard + hold).into());
        tokio::select! {
            r = conn.reader.fill(&mut conn.rd) => {
                if let Err(e) = r {
                    return read_ending(e);
                }
                buffered = true;
            }
            _ = keepalives.tick(), if !hold.is_zero() => {
                if let Err(ending) = conn.send(&keepalive()).await {
                    return ending;
                }
            }
            _ = hold_expiry, if !hold.is_zero() => {
                return Ending::Send(Notice::new(HOLD_TIMER_EXPIRED, 0));
            }
            Some(stream) = next_incoming(incoming.as_deref_mut()) => {
                return Ending::Replaced(stream);
            }
            r = announced.changed(), if following => following = r.is_ok(),
            r = pausing.changed(), if pause_open => pause_open = r.is_ok(),
        }
    }
}

/// Announces (`on`) or withdraws the peer's own routes on this session, one UPDATE each; an
/// announcement that cannot be sent here is logged and left out.
async fn advertise(
    shared: &PeerShared,
    conn: &mut Conn,
    view: &SessionView,
    on: bool,
) -> Result<(), Ending> {
    let name = &shared.peer.name;
    for a in &shared.peer.announce {
        let message = match on {
            true => match announce::announce(a, view) {
                Ok(m) => Some(m),
                Err(why) => {
                    limited!(shared.logs, warn, "cannot announce", peer = %name, reason = %why);
                    None
                }
            },
            false => announce::withdraw(a, view),
        };
        if let Some(m) = message {
            conn.send(&m).await?;
        }
    }
    limited!(
        shared.logs,
        info,
        "own routes sent",
        peer = %name,
        announced = on,
        prefixes = shared.peer.announce.len()
    );
    Ok(())
}

/// Handles every complete frame in the read buffer: UPDATEs are decoded and applied as one
/// batch; returns how the session ends, if it does.
fn drain(
    shared: &PeerShared,
    conn: &mut Conn,
    negotiated: &Negotiated,
    ibgp: bool,
    last_heard: &mut Instant,
) -> Option<Ending> {
    let mut batch = Vec::new();
    let mut ending = None;
    while let Some(next) = conn.reader.next_frame() {
        let frame = match next {
            Ok(frame) => frame,
            Err(notice) => {
                ending = Some(Ending::Send(notice));
                break;
            }
        };
        *last_heard = Instant::now();
        shared.messages.fetch_add(1, Ordering::Relaxed);
        match frame.kind {
            frame::UPDATE => {
                match update::decode(&frame.bytes, negotiated, shared.peer.asn, ibgp) {
                    Ok(changes) => batch.push(changes),
                    Err(notice) => {
                        ending = Some(Ending::Send(notice));
                        break;
                    }
                }
            }
            frame::KEEPALIVE | frame::ROUTE_REFRESH => {}
            _ => {
                ending = Some(unexpected(&frame, 3));
                break;
            }
        }
    }
    if let Err(notice) = apply(shared, batch) {
        return Some(Ending::Send(notice));
    }
    ending
}

/// The Cease / Maximum Number of Prefixes Reached NOTIFICATION: AFI, SAFI and the limit
/// (RFC 4486 §4).
fn max_prefix_notice(afi: u16, limit: u32) -> Notice {
    let mut data = afi.to_be_bytes().to_vec();
    data.push(1);
    data.extend_from_slice(&limit.to_be_bytes());
    Notice::new(CEASE, 1).with_data(&data)
}

/// Applies a batch of changes under one lock and calls the change callback once if anything
/// changed. The error is the NOTIFICATION when the prefix limit is reached.
fn apply(shared: &PeerShared, batch: Vec<Changes>) -> Result<(), Notice> {
    if batch.is_empty() {
        return Ok(());
    }
    let peer = &shared.peer;
    let limit = peer.prefix_limit();
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut changed = false;
    let mut result = Ok(());
    {
        let mut table = lock(&shared.table);
        'batch: for c in &batch {
            if let Some(why) = &c.treat_as_withdraw {
                limited!(
                    shared.logs,
                    warn,
                    "malformed BGP UPDATE treated as withdraw",
                    peer = %peer.name,
                    reason = %why
                );
            }
            for &key in &c.withdraw_v4 {
                changed |= table.v4.withdraw(key);
            }
            for &key in &c.withdraw_v6 {
                changed |= table.v6.withdraw(key);
            }
            if let Some(route) = c.route {
                for &key in &c.announce_v4 {
                    match table.v4.announce(key, route, cap) {
                        Ok(ch) => changed |= ch,
                        Err(LimitReached) => {
                            result = Err(max_prefix_notice(1, limit));
                            break 'batch;
                        }
                    }
                }
                for &key in &c.announce_v6 {
                    match table.v6.announce(key, route, cap) {
                        Ok(ch) => changed |= ch,
                        Err(LimitReached) => {
                            result = Err(max_prefix_notice(2, limit));
                            break 'batch;
                        }
                    }
                }
            }
            if c.end_of_rib_v4 || c.end_of_rib_v6 {
                changed |= table.drop_stale(c.end_of_rib_v4, c.end_of_rib_v6);
            }
        }
        // End-of-RIB, and stale routes making room for new ones, move the next expiry.
        shared.expiry_changed(table.next_expiry());
    }
    lock(&shared.status).last_update = Some(Instant::now());
    if changed {
        (shared.on_change)();
    }
    if result.is_err() {
        limited!(shared.logs, warn, "BGP peer exceeded its prefix limit", peer = %peer.name, limit);
    }
    result
}
