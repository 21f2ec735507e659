//! Accepting passive peers' connections: each is handed to the peer whose address it comes
//! from; a connection from any other address is refused (closed), counted and logged (at most
//! [`LINES`](crate::log_limit::LINES) lines a minute of each kind, the others counted on the
//! next line written).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::settings::canonical;
use super::shared::PeerShared;
use crate::log_limit::{LogLimits, limited};

/// Accepts connections forever, dispatching them by source address.
pub(crate) async fn accept(
    listener: TcpListener,
    peers: HashMap<IpAddr, (Arc<PeerShared>, mpsc::Sender<TcpStream>)>,
    refused: Arc<AtomicU64>,
) {
    // Lines about connections that no peer owns.
    let logs = LogLimits::new();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                limited!(logs, warn, "accepting a BGP connection failed", error = %e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match peers.get(&canonical(from.ip())) {
            Some((shared, tx)) => {
                if tx.try_send(stream).is_err() {
                    limited!(
                        shared.logs,
                        warn,
                        "BGP connection refused: one is already pending",
                        peer = %shared.peer.name,
                        from = %from
                    );
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                limited!(
                    logs,
                    warn,
                    "BGP connection from an unknown address refused",
                    from = %from
                );
                refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
            }
        }
    }
}
