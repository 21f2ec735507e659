//! The local control socket: newline-delimited JSON over a Unix domain socket. The request and
//! response types ([`protocol`]) are shared by the server ([`server`]) and `signpost ctl`
//! ([`client`]), so the compiler checks both ends. The protocol is documented in
//! `docs/control-socket.md`.

pub mod client;
pub mod protocol;
pub mod server;

pub use protocol::{Request, Response};
pub use server::Control;

/// The longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// Parses a request line (see [`Request::parse`]).
pub fn parse_request(line: &[u8]) -> Result<Request, protocol::RequestError> {
    Request::parse(line)
}
