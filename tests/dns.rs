//! DNS behaviour of the real binary, queried with the real `dig` and with raw packets.

mod common;
use common::*;

/// A configuration with static records only (no maps), and a record set too large for 512
/// bytes.
fn static_server(extra: &str) -> (TempDir, Server) {
    let dir = TempDir::new("dns");
    let big: Vec<String> = (0..12)
        .map(|i| format!("\"{} {}\"", i, "x".repeat(60)))
        .collect();
    let text = format!(
        r#"identity:
  server_id: test-node-1
zones:
  - apex: example.test
    ttl: 3600
    soa: {{ mname: ns1, rname: hostmaster, serial: 7, minimum: 300 }}
    ns:
      - {{ name: ns1.example.test., addresses: [192.0.2.53] }}
    records:
      - {{ name: www, type: A, value: 192.0.2.80 }}
      - {{ name: www, type: AAAA, value: "2001:db8::80" }}
      - {{ name: alias, type: CNAME, value: www }}
      - {{ name: alias2, type: CNAME, value: alias }}
      - {{ name: dangling, type: CNAME, value: missing }}
      - {{ name: "@", type: MX, value: "10 mail" }}
      - {{ name: "@", type: CAA, value: '0 issue "ca.example"' }}
      - {{ name: _sip._udp, type: SRV, value: "10 5 5060 sip" }}
      - {{ name: a.b.c, type: TXT, value: "deep" }}
      - {{ name: big, type: TXT, values: [{}] }}
  - apex: sub.example.test
    soa: {{ mname: ns1.example.test., rname: hostmaster.example.test. }}
    ns: [ns1.example.test.]
    records:
      - {{ name: www, type: A, value: 192.0.2.81 }}
{extra}"#,
        big.join(", ")
    );
    let cfg = dir.write("signpost.yaml", &text);
    let server = Server::start(&["--config", cfg.to_str().unwrap()]);
    (dir, server)
}

#[test]
fn authoritative_answers_flags_and_negative_answers() {
    let (_d, s) = static_server("");
    let out = s.dig(&["example.test", "SOA"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains("flags: qr aa rd;"),
        "AA set, RD copied, RA clear: {out}"
    );
    let out = s.dig(&["+norec", "example.test", "SOA"]);
    assert!(
        out.contains("flags: qr aa;"),
        "RD not set when not asked: {out}"
    );

    // 0x20: the question comes back as asked; matching ignores case.
    let out = s.dig(&["WwW.ExAmPlE.TeSt", "A"]);
    assert!(out.contains(";WwW.ExAmPlE.TeSt.\t\tIN\tA"), "{out}");
    assert!(
        out.contains("WwW.ExAmPlE.TeSt.\t3600\tIN\tA\t192.0.2.80"),
        "{out}"
    );

    // NODATA: the SOA in authority with TTL min(SOA TTL, minimum) = 300.
    let out = s.dig(&["www.example.test", "MX"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0, AUTHORITY: 1"),
        "{out}"
    );
    assert!(
        out.contains("example.test.\t\t300\tIN\tSOA\tns1.example.test. hostmaster.example.test. 7"),
        "{out}"
    );

    // NXDOMAIN with SOA.
    let out = s.dig(&["nope.example.test", "A"]);
    assert!(
        out.contains("status: NXDOMAIN") && out.contains("AUTHORITY: 1"),
        "{out}"
    );

    // Empty non-terminals are NODATA, not NXDOMAIN.
    for ent in ["b.c.example.test", "c.example.test", "_udp.example.test"] {
        let out = s.dig(&[ent, "A"]);
        assert!(
            out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
            "{ent}: {out}"
        );
    }

    // The longest enclosing zone answers.
    assert_eq!(s.short(&["www.sub.example.test", "A"]), "192.0.2.81");

    // Outside every zone: REFUSED, no referral.
    let out = s.dig(&["example.com", "A"]);
    assert!(
        out.contains("status: REFUSED") && out.contains("AUTHORITY: 0"),
        "{out}"
    );
    assert!(
        !out.contains("flags: qr aa"),
        "no AA outside the zones: {out}"
    );
}

#[test]
fn record_types_and_cname_chains() {
    let (_d, s) = static_server("");
    assert_eq!(s.short(&["www.example.test", "AAAA"]), "2001:db8::80");
    assert_eq!(s.short(&["example.test", "MX"]), "10 mail.example.test.");
    assert_eq!(s.short(&["example.test", "CAA"]), "0 issue \"ca.example\"");
    assert_eq!(
        s.short(&["_sip._udp.example.test", "SRV"]),
        "10 5 5060 sip.example.test."
    );
    assert_eq!(s.short(&["a.b.c.example.test", "TXT"]), "\"deep\"");
    // CNAME chased inside the zone, two links.
    assert_eq!(
        s.short(&["alias2.example.test", "A"]),
        "alias.example.test.\nwww.example.test.\n192.0.2.80"
    );
    // Asked for the CNAME itself.
    assert_eq!(
        s.short(&["alias.example.test", "CNAME"]),
        "www.example.test."
    );
    // A CNAME to a missing name: NXDOMAIN for the target (RFC 6604), CNAME kept.
    let out = s.dig(&["dangling.example.test", "A"]);
    assert!(
        out.contains("status: NXDOMAIN") && out.contains("CNAME\tmissing.example.test."),
        "{out}"
    );
    // NS with glue.
    let out = s.dig(&["example.test", "NS"]);
    assert!(
        out.contains("ns1.example.test.\t3600\tIN\tA\t192.0.2.53"),
        "glue in additional: {out}"
    );
}

#[test]
fn any_axfr_chaos_and_opcodes() {
    let (_d, s) = static_server("");
    // RFC 8482: one RRset only.
    let out = s.dig(&["example.test", "ANY"]);
    assert!(out.contains("ANSWER: 1,"), "{out}");
    // Zone transfers are refused.
    let out = s.dig(&["example.test", "AXFR"]);
    assert!(
        out.contains("Transfer failed") || out.contains("REFUSED"),
        "{out}"
    );
    let out = s.dig(&["example.test", "IXFR=1"]);
    assert!(
        out.contains("REFUSED") || out.contains("Transfer failed"),
        "{out}"
    );
    // CHAOS identity; version.bind is off unless configured.
    assert_eq!(s.short(&["id.server", "TXT", "CH"]), "\"test-node-1\"");
    assert_eq!(s.short(&["hostname.bind", "TXT", "CH"]), "\"test-node-1\"");
    assert!(
        s.dig(&["version.bind", "TXT", "CH"])
            .contains("status: REFUSED")
    );
    // Other opcodes: NOTIMP.
    let out = s.dig(&["+opcode=2", "example.test"]);
    assert!(out.contains("status: NOTIMP"), "{out}");
}

#[test]
fn version_bind_when_configured() {
    let dir = TempDir::new("ver");
    let cfg = dir.write(
        "signpost.yaml",
        "identity: { server_id: \"\", version: \"signpost 1\" }\nzones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\n",
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(s.short(&["version.bind", "TXT", "CH"]), "\"signpost 1\"");
    assert!(
        s.dig(&["id.server", "TXT", "CH"])
            .contains("status: REFUSED"),
        "empty server_id disables id.server"
    );
}

#[test]
fn edns_and_client_subnet() {
    let (_d, s) = static_server("");
    let out = s.dig(&["+bufsize=4096", "www.example.test"]);
    assert!(
        out.contains("; EDNS: version: 0, flags:; udp: 1232"),
        "OPT echoed with the server cap: {out}"
    );
    let out = s.dig(&["+noedns", "www.example.test"]);
    assert!(
        !out.contains("EDNS"),
        "no OPT when the query had none: {out}"
    );
    let out = s.dig(&["+edns=1", "+noednsnegotiation", "www.example.test"]);
    assert!(out.contains("status: BADVERS"), "{out}");
    // Static names: ECS echoed with scope 0.
    let out = s.dig(&["+subnet=81.2.69.0/24", "www.example.test"]);
    assert!(out.contains("CLIENT-SUBNET: 81.2.69.0/24/0"), "{out}");
    // Unknown options are ignored.
    let out = s.dig(&["+ednsopt=65001:abcd", "www.example.test"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("192.0.2.80"),
        "{out}"
    );

    // Invalid ECS: FORMERR (raw packets: dig refuses to send most of these).
    let opt = |ecs: &[u8]| {
        let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
        o.extend_from_slice(&((ecs.len() + 4) as u16).to_be_bytes());
        o.extend_from_slice(&[0, 8]);
        o.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
        o.extend_from_slice(ecs);
        o
    };
    for bad in [
        &[0u8, 3, 24, 0, 81, 2, 69][..],
        &[0, 1, 23, 0, 81, 2, 69],
        &[0, 1, 24, 0, 81, 2],
        &[0, 1, 40, 0, 1, 2, 3, 4, 5],
    ] {
        let mut p = query(7, 0x0100, "www.example.test", 1);
        p[11] = 1;
        p.extend_from_slice(&opt(bad));
        let r = s.udp_raw(&p).expect("a FORMERR response");
        assert_eq!(rcode(&r), 1, "{bad:?}");
        assert_eq!(&r[..2], &[0, 7]);
    }
}

#[test]
fn malformed_packets_get_formerr_or_nothing() {
    let (_d, s) = static_server("");
    // Trailing garbage.
    let mut p = query(1, 0, "www.example.test", 1);
    p.push(0);
    assert_eq!(rcode(&s.udp_raw(&p).unwrap()), 1);
    // Truncated question.
    let p = query(2, 0, "www.example.test", 1);
    assert_eq!(rcode(&s.udp_raw(&p[..p.len() - 2]).unwrap()), 1);
    // QDCOUNT 2.
    let mut p = query(3, 0, "www.example.test", 1);
    p[5] = 2;
    assert_eq!(rcode(&s.udp_raw(&p).unwrap()), 1);
    // QDCOUNT 0.
    let mut p = query(4, 0, "www.example.test", 1);
    p[5] = 0;
    assert_eq!(rcode(&s.udp_raw(&p[..12]).unwrap()), 1);
    // No header: dropped.
    assert!(s.udp_raw(&[1, 2, 3]).is_none());
    // A response (QR=1): never answered.
    let p = query(5, 0x8000, "www.example.test", 1);
    assert!(s.udp_raw(&p).is_none());
    // The server is still fine.
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
}

#[test]
fn truncation_and_tcp() {
    let (_d, s) = static_server("");
    let out = s.dig(&["+ignore", "+noedns", "big.example.test", "TXT"]);
    assert!(
        out.contains("flags: qr aa tc rd;") && out.contains("ANSWER: 0"),
        "{out}"
    );
    let out = s.dig(&["+ignore", "+bufsize=1232", "big.example.test", "TXT"]);
    assert!(out.contains("ANSWER: 12"), "fits in 1232 with EDNS: {out}");
    // dig retries over TCP by itself when TC is set.
    let out = s.dig(&["+noedns", "big.example.test", "TXT"]);
    assert!(out.contains("ANSWER: 12") && out.contains("(TCP)"), "{out}");
    let out = s.dig(&["+tcp", "big.example.test", "TXT"]);
    assert!(out.contains("ANSWER: 12"), "{out}");

    // Pipelining: three queries in one write, three answers.
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.tcp).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut batch = Vec::new();
    for (i, name) in ["www.example.test", "example.test", "nope.example.test"]
        .iter()
        .enumerate()
    {
        let q = query(100 + i as u16, 0, name, 1);
        batch.extend_from_slice(&(q.len() as u16).to_be_bytes());
        batch.extend_from_slice(&q);
    }
    c.write_all(&batch).unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut len = [0u8; 2];
        c.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        c.read_exact(&mut msg).unwrap();
        ids.push((u16::from_be_bytes([msg[0], msg[1]]), rcode(&msg)));
    }
    ids.sort();
    assert_eq!(ids, vec![(100, 0), (101, 0), (102, 3)]);
}

#[test]
fn tcp_idle_timeout_and_connection_cap() {
    let (_d, s) = static_server(
        "tcp: { idle_timeout_ms: 300, max_connections: 2, max_connections_per_client: 2 }\n",
    );
    use std::io::Read;
    let mut a = std::net::TcpStream::connect(s.tcp).unwrap();
    let mut b = std::net::TcpStream::connect(s.tcp).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    // A third connection is over the cap: closed at once.
    let mut c = std::net::TcpStream::connect(s.tcp).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "over-cap connection closed"
    );
    // Idle connections are closed after the timeout.
    a.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    b.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let t = std::time::Instant::now();
    assert_eq!(a.read(&mut buf).unwrap_or(0), 0);
    assert_eq!(b.read(&mut buf).unwrap_or(0), 0);
    assert!(t.elapsed() < std::time::Duration::from_secs(3));
    // Slots are free again.
    assert!(s.dig(&["+tcp", "www.example.test"]).contains("192.0.2.80"));
}

#[test]
fn ipv6_listener() {
    let dir = TempDir::new("v6");
    let cfg = dir.write("signpost.yaml", "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\n    records:\n      - { name: www, type: A, value: 192.0.2.80 }\n");
    let s = Server::start_on(&["--config", cfg.to_str().unwrap()], "[::1]:0");
    assert!(s.udp.is_ipv6());
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
    assert!(s.dig(&["+tcp", "www.example.test"]).contains("192.0.2.80"));
}

#[test]
fn sigterm_stops_cleanly() {
    let (_d, s) = static_server("");
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn response_rate_limiting_with_slip() {
    let (_d, s) = static_server("rrl: { responses_per_second: 5, slip: 2, exempt: [] }\n");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let n = 40u16;
    for i in 0..n {
        sock.send_to(&query(i, 0x0100, "www.example.test", 1), s.udp)
            .unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let r = &buf[..len];
        if r[2] & 0x02 != 0 {
            assert_eq!(&r[6..12], &[0; 6], "a slipped response carries no records");
            truncated += 1;
        } else {
            assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
            full += 1;
        }
    }
    // 5 per second (the burst may straddle two seconds), every 2nd limited one slipped.
    assert!((5..=10).contains(&full), "full answers: {full}");
    let limited = n as usize - full;
    assert!(
        truncated >= limited / 2 - 1 && truncated <= limited / 2 + 1,
        "{truncated} of {limited} limited were slipped"
    );
    // TCP is never limited, and the limit resets every second.
    assert!(s.dig(&["+tcp", "www.example.test"]).contains("192.0.2.80"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(s.short(&["www.example.test"]), "192.0.2.80");
}

#[test]
fn replies_go_to_their_own_clients_when_rate_limiting_skips_some() {
    // Rate limiting drops some queries of a batch and answers later ones (slip), so the UDP
    // worker has to move those replies' destinations up: each must still reach the socket
    // that asked, with that socket's query ID.
    let (_d, s) = static_server("rrl: { responses_per_second: 5, slip: 2, exempt: [] }\n");
    let clients: Vec<std::net::UdpSocket> = (0..8)
        .map(|_| {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_millis(800)))
                .unwrap();
            c
        })
        .collect();
    // Interleaved, so that a batch holds queries from every client.
    for j in 0..10u16 {
        for (k, c) in clients.iter().enumerate() {
            c.send_to(
                &query(k as u16 * 100 + j, 0x0100, "www.example.test", 1),
                s.udp,
            )
            .unwrap();
        }
    }
    let mut total = 0;
    let mut buf = [0u8; 4096];
    for (k, c) in clients.iter().enumerate() {
        while let Ok((len, _)) = c.recv_from(&mut buf) {
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert!(
                (k as u16 * 100..k as u16 * 100 + 10).contains(&id),
                "client {k} got the reply to query {id}"
            );
            assert!(len > 12 && buf[2] & 0x80 != 0, "a response");
            total += 1;
        }
    }
    // 80 queries: a handful answered in full, about half of the rest slipped, the rest dropped.
    assert!((25..=50).contains(&total), "{total} replies");
}
