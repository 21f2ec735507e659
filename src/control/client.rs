//! The client side of the control socket, for `signpost ctl`: one request, one response.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, Response};

/// Why a request got no response.
#[derive(Debug)]
pub enum ClientError {
    /// The socket cannot be reached.
    Connect(PathBuf, std::io::Error),
    /// The connection failed mid-request.
    Io(std::io::Error),
    /// The server answered something that is not a response.
    BadResponse(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(p, e) => write!(f, "cannot connect to {}: {e}", p.display()),
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::BadResponse(e) => write!(f, "bad response: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends one request and returns the response and its raw line.
pub fn request(path: &Path, req: &Request) -> Result<(Response, String), ClientError> {
    request_within(path, req, Duration::from_secs(30))
}

/// [`request`], waiting at most `wait` for the response (`replace` takes longer).
pub fn request_within(
    path: &Path,
    req: &Request,
    wait: Duration,
) -> Result<(Response, String), ClientError> {
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| ClientError::Connect(path.into(), e))?;
    s.set_read_timeout(Some(wait)).map_err(ClientError::Io)?;
    let mut line = req.to_line();
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(ClientError::Io)?;
    let mut resp = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut resp)
        .map_err(ClientError::Io)?;
    let parsed =
        serde_json::from_str(&resp).map_err(|e| ClientError::BadResponse(e.to_string()))?;
    Ok((parsed, resp.trim_end().to_string()))
}
