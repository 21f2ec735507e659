//! Binding a listener's UDP group and TCP socket on one port.
//!
//! With port 0 the kernel picks a UDP port; the TCP socket must then take the same number,
//! which another process may already hold for TCP (a listener, or the local end of any TCP
//! connection: ephemeral ports come from the same range). Rather than fail the start, the
//! pair is bound again on a new port.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// A listener's UDP sockets (one per worker) and TCP listener.
pub type Pair = (Vec<UdpSocket>, Option<TcpListener>);

/// How many ports are tried for a port-0 pair before giving up.
const ATTEMPTS: usize = 32;

/// Binds `workers` UDP sockets (when `udp`) and one TCP listener (when `tcp`) on `addr`, on
/// the same port. When `addr`'s port is 0 and TCP cannot have the port UDP got, another port
/// is tried (bounded); a fixed port is tried once.
pub fn bind_pair(
    addr: SocketAddr,
    workers: usize,
    udp: bool,
    tcp: bool,
) -> Result<Pair, (&'static str, io::Error)> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let sockets = if udp {
            super::udp::bind_group(addr, workers).map_err(|e| ("UDP", e))?
        } else {
            Vec::new()
        };
        if !tcp {
            return Ok((sockets, None));
        }
        let port = match sockets.first() {
            Some(s) => s.local_addr().map_err(|e| ("UDP", e))?,
            None => addr,
        };
        match super::tcp::bind(port) {
            Ok(l) => return Ok((sockets, Some(l))),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && udp && addr.port() == 0 => {
                last = Some(e);
            }
            Err(e) => return Err(("TCP", e)),
        }
    }
    Err((
        "TCP",
        last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed UDP port that another socket holds with `SO_REUSEPORT` (as another server of
    /// the same user would) is refused, not joined: the two would share its queries.
    #[test]
    fn a_udp_port_held_with_reuseport_is_not_joined() {
        let held = crate::dns::udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = held.local_addr().unwrap();
        let e = bind_pair(addr, 2, true, false).unwrap_err();
        assert_eq!((e.0, e.1.kind()), ("UDP", io::ErrorKind::AddrInUse));
        drop(held);
        let (sockets, _) = bind_pair(addr, 2, true, false).unwrap();
        assert_eq!(sockets.len(), 2);
    }

    /// A port-0 pair whose first UDP port is taken for TCP by someone else still binds, on
    /// another port, with UDP and TCP on the same number.
    #[test]
    fn a_port_taken_for_tcp_moves_the_pair() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // TCP held on many ports: when the kernel's UDP pick is one of them the pair moves;
        // either way it ends up on one port.
        let held: Vec<TcpListener> = (0..64).map(|_| TcpListener::bind(any).unwrap()).collect();
        let (udp, tcp) = bind_pair(any, 2, true, true).unwrap();
        let port = udp[0].local_addr().unwrap().port();
        assert_eq!(udp.len(), 2);
        assert_eq!(udp[1].local_addr().unwrap().port(), port);
        assert_eq!(tcp.unwrap().local_addr().unwrap().port(), port);
        drop(held);
    }

    /// A fixed port held for TCP is an error, not a move.
    #[test]
    fn a_fixed_port_is_not_moved() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind_pair(addr, 1, true, true).unwrap_err();
        assert_eq!(err.0, "TCP");
        assert_eq!(err.1.kind(), io::ErrorKind::AddrInUse);
    }
}
