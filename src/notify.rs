//! Messages to the service manager (the `sd_notify` protocol of systemd): `READY=1` once the
//! server answers, `RELOADING=1` and `READY=1` around a reload of the files, `STOPPING=1` on
//! shutdown, each with a short `STATUS=` text.
//!
//! The protocol: one datagram of `KEY=VALUE` lines sent to the Unix socket named in
//! `$NOTIFY_SOCKET`; a name starting with `@` is a Linux abstract socket. Without
//! `NOTIFY_SOCKET` (not started by systemd, or `Type=` other than `notify`) every call does
//! nothing. systemd 253 and later want `MONOTONIC_USEC=` (CLOCK_MONOTONIC in microseconds)
//! with `RELOADING=1`; [`reloading`] always sends it.
//!
//! Sending is off the query path (the daemon's start and stop, the reload thread) and never
//! fails the caller: a message that cannot be sent is logged and dropped, as the server serves
//! the same with or without a service manager listening.
//!
//! Why not the `sd-notify` crate: it connects to an `@name` as if it were a file path, so an
//! abstract `NOTIFY_SOCKET` would fail; the standard library sends to both kinds.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable that names the service manager's socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Why a message could not be sent.
#[derive(Debug)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is set but names no usable address.
    Address(String, std::io::Error),
    /// The datagram socket could not be created.
    Socket(std::io::Error),
    /// The datagram could not be sent (whole).
    Send(String, std::io::Error),
    /// CLOCK_MONOTONIC could not be read (for `MONOTONIC_USEC=`).
    Clock(nix::errno::Errno),
}

impl std::fmt::Display for NotifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyError::Address(to, e) => write!(f, "{NOTIFY_SOCKET}={to:?}: {e}"),
            NotifyError::Socket(e) => write!(f, "cannot create a datagram socket: {e}"),
            NotifyError::Send(to, e) => write!(f, "cannot send to {to:?}: {e}"),
            NotifyError::Clock(e) => write!(f, "cannot read CLOCK_MONOTONIC: {e}"),
        }
    }
}

impl std::error::Error for NotifyError {}

/// Tells the service manager that the server answers queries (startup done, or a reload
/// finished), with a status text.
pub fn ready(status: &str) {
    log(send(&message(&[("READY", "1"), ("STATUS", status)])));
}

/// Tells the service manager that a reload has begun.
pub fn reloading(status: &str) {
    let msg = monotonic_usec().map(|usec| {
        message(&[
            ("RELOADING", "1"),
            ("MONOTONIC_USEC", &usec.to_string()),
            ("STATUS", status),
        ])
    });
    log(msg.and_then(|m| send(&m)));
}

/// Tells the service manager that the server is stopping.
pub fn stopping(status: &str) {
    log(send(&message(&[("STOPPING", "1"), ("STATUS", status)])));
}

/// Sends one datagram of lines to the socket in `$NOTIFY_SOCKET`; `Ok(false)` when the
/// variable is unset or empty (nothing to tell).
pub fn send(message: &str) -> Result<bool, NotifyError> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(to) if !to.is_empty() => send_to(&to, message).map(|()| true),
        _ => Ok(false),
    }
}

/// The datagram for `fields`: one `KEY=VALUE` line each. Newlines inside a value would start
/// a new assignment, so they become spaces.
pub fn message(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in fields {
        out.push_str(key);
        out.push('=');
        out.extend(value.chars().map(|c| if c == '\n' { ' ' } else { c }));
        out.push('\n');
    }
    out
}

/// Sends `message` to `to`: a file path, or `@name` for an abstract socket.
fn send_to(to: &OsStr, message: &str) -> Result<(), NotifyError> {
    let shown = || to.to_string_lossy().into_owned();
    let addr = match to.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(to),
    }
    .map_err(|e| NotifyError::Address(shown(), e))?;
    let sock = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
    match sock.send_to_addr(message.as_bytes(), &addr) {
        Ok(n) if n == message.len() => Ok(()),
        Ok(_) => Err(NotifyError::Send(
            shown(),
            std::io::Error::new(std::io::ErrorKind::WriteZero, "datagram cut short"),
        )),
        Err(e) => Err(NotifyError::Send(shown(), e)),
    }
}

/// CLOCK_MONOTONIC in microseconds: the clock systemd compares `MONOTONIC_USEC=` with.
fn monotonic_usec() -> Result<u64, NotifyError> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(NotifyError::Clock)?;
    Ok(t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
}

fn log(result: Result<bool, NotifyError>) {
    if let Err(e) = result {
        tracing::warn!("service manager notification: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn lines_and_no_newline_inside_a_value() {
        assert_eq!(
            message(&[("READY", "1"), ("STATUS", "a\nb")]),
            "READY=1\nSTATUS=a b\n"
        );
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = std::env::temp_dir().join(format!("signpost-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\n").unwrap();
        assert_eq!(receive(&sock), "READY=1\n");

        let name = format!("signpost-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abs = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "STOPPING=1\n").unwrap();
        assert_eq!(receive(&abs), "STOPPING=1\n");

        // Nobody listening: an error naming the socket, not a panic.
        drop(sock);
        let e = send_to(path.as_os_str(), "READY=1\n").unwrap_err();
        assert!(e.to_string().contains("notify.sock"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_usec().unwrap();
        assert!(b > a && a > 0, "{a} {b}");
    }
}
