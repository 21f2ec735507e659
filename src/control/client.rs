//! The client side of the control socket, for `signpost ctl`: one request, one response,
//! within a deadline that covers connecting, sending and the whole response.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{Request, Response};

/// The longest response read (a `nodes` or `lookup` reply of a large deployment is far
/// smaller).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Why a request got no response.
#[derive(Debug)]
pub enum ClientError {
    /// The socket cannot be reached.
    Connect(PathBuf, std::io::Error),
    /// The connection failed mid-request.
    Io(std::io::Error),
    /// No complete response within the time allowed.
    Timeout(PathBuf, Duration),
    /// The server answered something that is not a response.
    BadResponse(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(p, e) => write!(f, "cannot connect to {}: {e}", p.display()),
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Timeout(p, t) => write!(
                f,
                "no response from {} within {} s (the server is busy or stuck; allow longer \
                 with --timeout)",
                p.display(),
                t.as_secs_f64()
            ),
            ClientError::BadResponse(e) => write!(f, "bad response: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends one request and returns the response and its raw line, or
/// [`ClientError::Timeout`] when the whole exchange takes longer than `timeout`.
pub fn request(
    path: &Path,
    req: &Request,
    timeout: Duration,
) -> Result<(Response, String), ClientError> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let deadline = Instant::now() + timeout;
    let timed_out = || ClientError::Timeout(path.into(), timeout);
    let is_timeout = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let connect = || -> std::io::Result<Socket> {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        // A blocking connect to a server whose backlog is full waits; the send timeout
        // bounds that wait.
        s.set_write_timeout(Some(timeout))?;
        s.connect(&SockAddr::unix(path)?)?;
        Ok(s)
    };
    let mut s: std::os::unix::net::UnixStream = match connect() {
        Ok(s) => s.into(),
        Err(e) if is_timeout(&e) => return Err(timed_out()),
        Err(e) => return Err(ClientError::Connect(path.into(), e)),
    };
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let mut line = req.to_line();
    line.push('\n');
    let left = remaining().ok_or_else(timed_out)?;
    s.set_write_timeout(Some(left)).map_err(ClientError::Io)?;
    match s.write_all(line.as_bytes()) {
        Ok(()) => {}
        Err(e) if is_timeout(&e) => return Err(timed_out()),
        // A server that refuses the connection (too many open) writes why and closes at
        // once, perhaps before the request is sent: read what it said.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(ClientError::Io(e)),
    }
    // Read until the newline, each read bounded by what is left of the deadline, so that a
    // server sending a byte now and then cannot stretch it.
    let mut resp = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = remaining().ok_or_else(timed_out)?;
        s.set_read_timeout(Some(left)).map_err(ClientError::Io)?;
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(timed_out()),
            Err(e) => return Err(ClientError::Io(e)),
        };
        if n == 0 {
            break;
        }
        match buf[..n].iter().position(|&b| b == b'\n') {
            Some(i) => {
                resp.extend_from_slice(&buf[..i]);
                break;
            }
            None => resp.extend_from_slice(&buf[..n]),
        }
        if resp.len() > MAX_RESPONSE {
            return Err(ClientError::BadResponse(format!(
                "longer than {MAX_RESPONSE} bytes"
            )));
        }
    }
    if resp.is_empty() {
        return Err(ClientError::BadResponse(
            "the server closed the connection without answering".into(),
        ));
    }
    let resp = String::from_utf8(resp).map_err(|e| ClientError::BadResponse(e.to_string()))?;
    let parsed =
        serde_json::from_str(&resp).map_err(|e| ClientError::BadResponse(e.to_string()))?;
    Ok((parsed, resp.trim_end().to_string()))
}
