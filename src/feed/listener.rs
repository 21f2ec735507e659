//! Accepting passive peers' connections: each is handed to the peer whose address it comes
//! from; a connection from any other address is refused (closed), logged and counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::warn;

use super::settings::canonical;

/// Accepts connections forever, dispatching them by source address.
pub(crate) async fn accept(
    listener: TcpListener,
    peers: HashMap<IpAddr, (String, mpsc::Sender<TcpStream>)>,
    refused: Arc<AtomicU64>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                warn!(error = %e, "accepting a BGP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match peers.get(&canonical(from.ip())) {
            Some((name, tx)) => {
                if tx.try_send(stream).is_err() {
                    warn!(peer = %name, from = %from, "BGP connection refused: one is already pending");
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                warn!(from = %from, "BGP connection from an unknown address refused");
                refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
            }
        }
    }
}
