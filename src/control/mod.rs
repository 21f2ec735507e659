//! The local control socket: newline-delimited JSON over a Unix domain socket. The request and
//! response types ([`protocol`]) are shared by the server ([`server`]) and `signpost ctl`
//! ([`client`]), so the compiler checks both ends; [`text`] holds the rule for free text in
//! requests and the escaping of what `ctl` prints. The protocol is documented in
//! `docs/control-socket.md`.

mod capacity;
pub mod client;
mod commands;
pub mod protocol;
pub mod server;
pub mod text;

pub use protocol::{Request, Response};
pub use server::Control;

/// The control socket used when neither the configuration nor the command line names one:
/// `$SIGNPOST_CONTROL` if set; else, for root, `/run/signpost/control.sock`; else
/// `$XDG_RUNTIME_DIR/signpost/control.sock` when that is set, and
/// `/tmp/signpost-UID/control.sock` otherwise. `serve` and `ctl` apply the same rule, so
/// `signpost ctl` finds a server started without flags.
pub fn default_socket() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os("SIGNPOST_CONTROL") {
        return PathBuf::from(p);
    }
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return PathBuf::from("/run/signpost/control.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("signpost/control.sock"),
        _ => PathBuf::from(format!("/tmp/signpost-{uid}/control.sock")),
    }
}

/// The longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;
