//! DNS over TCP under pressure, end to end with real connections to the real binary: the cap
//! per client network, idle slots reclaimed for new clients when every slot is taken, and the
//! share of the file descriptor limit that keeps the control socket and reloads working while
//! clients hold every connection they can. Client networks are modelled with loopback source
//! addresses (all of 127.0.0.0/8 is local on Linux): 127.0.N.M is host M of network N.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// A static zone served with `extra` settings.
fn server(dir: &TempDir, extra: &str) -> (std::path::PathBuf, Server) {
    let cfg = dir.write(
        "signpost.yaml",
        &format!(
            "zones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster }}\n    ns: [ns1]\n    records:\n      - {{ name: www, type: A, value: 192.0.2.80 }}\nreload_priority: normal\nreload_debounce_ms: 100\n{extra}"
        ),
    );
    let s = Server::with_control(&cfg, dir);
    (cfg, s)
}

/// A TCP connection to `to` from `from` (any port).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    sock.bind(&SocketAddr::new(from.into(), 0).into()).unwrap();
    sock.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    sock.into()
}

/// Sends a query for www.example.test over `c`; true if the answer comes back.
fn answered(c: &mut TcpStream, id: u16) -> bool {
    let q = query(id, 0x0100, "www.example.test", 1);
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    if c.write_all(&msg).is_err() {
        return false;
    }
    let mut len = [0u8; 2];
    if c.read_exact(&mut len).is_err() {
        return false;
    }
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut resp).is_ok() && resp[..2] == id.to_be_bytes() && rcode(&resp) == 0
}

/// True once the server has closed `c` (end of file or reset); false while it is open.
fn closed(c: &TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let mut reader = c;
    let r = match reader.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    c.set_nonblocking(false).unwrap();
    r
}

/// How many of `conns` the server keeps open: waits (at most 20 s, for a busy machine) until
/// `want` are open, then checks that the number holds; the number seen last otherwise.
fn open_count(conns: &[TcpStream], want: usize) -> usize {
    let count = || conns.iter().filter(|c| !closed(c)).count();
    if !wait_for(20, || count() == want) {
        return count();
    }
    std::thread::sleep(Duration::from_millis(300));
    count()
}

fn host(net: u8, h: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, h)
}

#[test]
fn one_network_cannot_take_every_slot() {
    let dir = TempDir::new("tcp-net");
    let (_, s) = server(
        &dir,
        "tcp: { max_connections: 64, max_connections_per_client: 4, max_connections_per_network: 16, reclaim_idle_ms: 600000 }\n",
    );
    // 16 hosts of 127.0.1.0/24, four connections each: 64, the whole table, before the fix.
    let mut held = Vec::new();
    for h in 1..=16 {
        for _ in 0..4 {
            held.push(connect_from(host(1, h), s.tcp));
        }
    }
    assert_eq!(open_count(&held, 16), 16, "the network's share");
    // A client of another network gets its answer.
    let mut other = connect_from(host(2, 1), s.tcp);
    assert!(answered(&mut other, 7), "{}", s.stderr());
    // The per-address cap still applies within a network's share.
    let more: Vec<TcpStream> = (0..6).map(|_| connect_from(host(3, 1), s.tcp)).collect();
    assert_eq!(open_count(&more, 4), 4, "one address's share");
    let (_, stats) = s.ctl(&["stats"]);
    assert!(
        stats["stats"]["tcp_refused"].as_u64().unwrap() >= 48 + 2,
        "{stats}"
    );
}

#[test]
fn a_full_table_reclaims_the_quietest_connection() {
    let dir = TempDir::new("tcp-reclaim");
    let (_, s) = server(
        &dir,
        "tcp: { max_connections: 32, max_connections_per_client: 1, max_connections_per_network: 1, reclaim_idle_ms: 3000, idle_timeout_ms: 60000 }\n",
    );
    // 32 clients of 32 networks take every slot, and each asks a query: they are all served.
    let mut clients: Vec<TcpStream> = (1..=32).map(|n| connect_from(host(n, 1), s.tcp)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(answered(c, i as u16), "client {i}");
    }
    // Right away, every slot has just seen a query: a newcomer is refused.
    let mut early = connect_from(host(100, 1), s.tcp);
    assert!(
        !answered(&mut early, 100),
        "no slot had been quiet long enough"
    );
    // The first half keep asking; the second half have gone quiet. A newcomer then takes the
    // slot of a quiet one, and the busy ones are untouched.
    for round in 0..18u16 {
        std::thread::sleep(Duration::from_millis(200));
        for (i, c) in clients[..16].iter_mut().enumerate() {
            assert!(
                answered(c, 1000 + round * 100 + i as u16),
                "busy client {i}"
            );
        }
    }
    let mut late = connect_from(host(101, 1), s.tcp);
    assert!(answered(&mut late, 101), "{}", s.stderr());
    let mut another = connect_from(host(102, 1), s.tcp);
    assert!(answered(&mut another, 102));
    assert!(
        wait_for(5, || clients[16..].iter().filter(|c| closed(c)).count()
            == 2),
        "one quiet connection closed per newcomer"
    );
    for (i, c) in clients.iter().enumerate().take(16) {
        assert!(!closed(c), "busy client {i} was closed");
    }
    // The quiet connections not needed stay open.
    assert_eq!(clients[16..].iter().filter(|c| closed(c)).count(), 2);
}

/// Clients hold far more connections than the process has file descriptors: DNS TCP keeps to
/// its share, so the control socket answers, reloads read their files, UDP and new TCP
/// clients are served. (Before the share, the accept loop ran the process out of descriptors:
/// `ctl` hung and reloads failed with "Too many open files".)
#[test]
fn descriptors_keep_a_reserve() {
    let dir = TempDir::new("tcp-fds");
    let cfg = dir.write(
        "signpost.yaml",
        "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\n    records:\n      - { name: www, type: A, value: 192.0.2.80 }\nreload_priority: normal\nreload_debounce_ms: 100\ntcp: { max_connections: 1000, max_connections_per_client: 1000, max_connections_per_network: 1000, reclaim_idle_ms: 600000 }\n",
    );
    let sock = dir.path("ctl.sock");
    let s = Server::start_wrapped(
        &["prlimit", "--nofile=128:128"],
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--control",
            sock.to_str().unwrap(),
        ],
        "127.0.0.1:0",
        &[],
    );
    assert!(
        wait_for(5, || s.stderr().contains("max_connections=64")),
        "half of 128 descriptors: {}",
        s.stderr()
    );
    let held: Vec<TcpStream> = (0..200)
        .map(|i| connect_from(host(1 + (i / 100) as u8, 1 + (i % 100) as u8), s.tcp))
        .collect();
    let open = open_count(&held, 64);
    assert_eq!(open, 64, "DNS TCP keeps to its share");
    // The control socket, a reload that reads the configuration, UDP: all work.
    let (ok, v) = s.ctl(&["status"]);
    assert!(ok, "{v}");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("192.0.2.80", "192.0.2.81");
    dir.write("signpost.yaml", &text);
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}\n{}", s.stderr());
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.81");
    assert!(
        !s.stderr().contains("Too many open files"),
        "{}",
        s.stderr()
    );
    // Once the clients let go, their slots serve new clients.
    drop(held);
    assert!(
        wait_for(10, || answered(&mut connect_from(host(9, 9), s.tcp), 9)),
        "{}",
        s.stderr()
    );
}

/// When something else has taken the descriptors (here DNS TCP itself, allowed all of them),
/// the accept loop waits between attempts instead of spinning on EMFILE, and says so; the UDP
/// answers go on.
#[test]
fn out_of_descriptors_the_accept_loop_backs_off() {
    let dir = TempDir::new("tcp-emfile");
    let cfg = dir.write(
        "signpost.yaml",
        "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\n    records:\n      - { name: www, type: A, value: 192.0.2.80 }\ntcp: { max_connections: 1000, max_connections_per_client: 1000, max_connections_per_network: 1000, reclaim_idle_ms: 600000, max_fd_percent: 100 }\n",
    );
    let s = Server::start_wrapped(
        &["prlimit", "--nofile=64:64"],
        &["--config", cfg.to_str().unwrap()],
        "127.0.0.1:0",
        &[],
    );
    let _held: Vec<TcpStream> = (0..100)
        .map(|i| connect_from(host(1, 1 + i as u8), s.tcp))
        .collect();
    assert!(
        wait_for(10, || s.stderr().contains("backing off")),
        "{}",
        s.stderr()
    );
    // CPU time of the server over two seconds of pending connections it cannot accept.
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let ticks = 100; // USER_HZ on Linux
    let before = cpu();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu() - before;
    assert!(
        used < ticks,
        "{used} ticks of CPU in 2 s: the accept loop spins"
    );
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
}

/// A client that sends queries and never reads the answers: once the answers fill the socket
/// buffers, the server's write waits, and after `idle_timeout_ms` the connection is closed
/// (before, the write waited forever and the slot was never freed).
#[test]
fn a_client_that_does_not_read_loses_its_connection() {
    let dir = TempDir::new("tcp-noread");
    let long = "x".repeat(250);
    let cfg = dir.write(
        "signpost.yaml",
        &format!(
            "zones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster }}\n    ns: [ns1]\n    records:\n      - {{ name: www, type: A, value: 192.0.2.80 }}\n      - {{ name: big, type: TXT, values: [\"{long}\", \"{long}\", \"{long}\", \"{long}\"] }}\ntcp: {{ idle_timeout_ms: 500, max_queries_per_connection: 10000000 }}\n"
        ),
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let mut c = connect_from(host(0, 1), s.tcp);
    let q = query(1, 0x0100, "big.example.test", 16);
    let mut batch = Vec::new();
    for _ in 0..100 {
        batch.extend_from_slice(&(q.len() as u16).to_be_bytes());
        batch.extend_from_slice(&q);
    }
    c.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut closed_by_server = false;
    while std::time::Instant::now() < deadline {
        match c.write(&batch) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed_by_server = true;
                break;
            }
        }
    }
    assert!(closed_by_server, "the connection is still open after 30 s");
    // The slot is free again for a client that reads.
    assert!(answered(&mut connect_from(host(0, 1), s.tcp), 2));
}
