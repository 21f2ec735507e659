//! EDNS features of the real binary, asked with the real `dig` and with raw packets: DNS
//! Cookies (RFC 7873, RFC 9018) with the no-cookie limit on UDP answers and a secret rotated by
//! a reload, NSID (RFC 5001), Extended DNS Errors (RFC 8914) and edns-tcp-keepalive (RFC 7828).

mod common;
use common::*;

/// The secrets the tests rotate through.
const SECRET_1: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";
const SECRET_2: &str = "445536bcd2513298075a5d379663c962";
const SECRET_3: &str = "dd3bdf9344b678b185a6f5cb60fca715";

/// A server for `example.test` with a TXT record set far larger than 512 bytes, the cookie
/// secret in a file, answers without a good cookie limited to 512 bytes, and a control socket.
fn server() -> (TempDir, Server) {
    let dir = TempDir::new("protocol");
    let big: Vec<String> = (0..12)
        .map(|i| format!("\"{} {}\"", i, "x".repeat(60)))
        .collect();
    dir.write("cookie-secret", &format!("{SECRET_1}\n"));
    let text = format!(
        r#"identity:
  server_id: test-node-1
cookies:
  secret_file: cookie-secret
  max_nocookie_response: 512
zones:
  - apex: example.test
    soa: {{ mname: ns1, rname: hostmaster, minimum: 300 }}
    ns: [ns1.example.test.]
    records:
      - {{ name: www, type: A, value: 192.0.2.80 }}
      - {{ name: big, type: TXT, values: [{}] }}
reload_debounce_ms: 100
reload_priority: normal
"#,
        big.join(", ")
    );
    let cfg = dir.write("signpost.yaml", &text);
    let s = Server::with_control(&cfg, &dir);
    (dir, s)
}

/// The COOKIE option dig printed (client and server cookie, hex), and its verdict on the
/// client half (`good` when the server returned dig's client cookie).
fn cookie_of(out: &str) -> Option<(String, String)> {
    let line = out.lines().find_map(|l| l.strip_prefix("; COOKIE: "))?;
    let mut words = line.split_whitespace();
    let hex = words.next()?.to_string();
    let verdict = words
        .next()
        .unwrap_or("")
        .trim_matches(['(', ')'])
        .to_string();
    Some((hex, verdict))
}

fn truncated(out: &str) -> bool {
    out.lines()
        .find(|l| l.starts_with(";; flags:"))
        .is_some_and(|l| l.split(';').nth(2).unwrap_or("").contains(" tc"))
}

/// `big.example.test TXT` over UDP, not retried over TCP when truncated.
fn big(s: &Server, cookie: &str) -> String {
    s.dig(&[
        cookie,
        "+ignore",
        "+bufsize=1232",
        "big.example.test",
        "TXT",
    ])
}

fn stat(s: &Server, name: &str) -> u64 {
    s.ctl(&["stats"]).1["stats"][name].as_u64().unwrap_or(0)
}

#[test]
fn server_cookies_are_good_when_echoed_and_lift_the_no_cookie_limit() {
    let (dir, s) = server();
    // A client cookie alone: a server cookie comes back, and the large answer is truncated.
    let first = big(&s, "+cookie");
    assert!(
        truncated(&first),
        "no server cookie yet: truncated: {first}"
    );
    let (cookie, verdict) = cookie_of(&first).expect("a COOKIE option in the answer");
    assert_eq!(verdict, "good", "{first}");
    assert_eq!(cookie.len(), 48, "client 8 + server 16 octets: {first}");
    assert!(
        cookie[16..].starts_with("01000000"),
        "RFC 9018: version 1, reserved 0: {first}"
    );
    // Sent back: good, and the answer is whole.
    let second = big(&s, &format!("+cookie={cookie}"));
    assert!(!truncated(&second), "a good server cookie: {second}");
    assert!(second.contains("ANSWER: 12"), "{second}");
    assert_eq!(cookie_of(&second).map(|c| c.1).as_deref(), Some("good"));
    // Tampered: not good, so the limit applies again, and a fresh cookie is handed out.
    let mut tampered = cookie.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    let out = big(&s, &format!("+cookie={tampered}"));
    assert!(truncated(&out), "a tampered server cookie is bad: {out}");
    let (fresh, _) = cookie_of(&out).unwrap();
    assert_ne!(fresh, tampered, "{out}");
    // Without any cookie: truncated as well.
    let out = big(&s, "+nocookie");
    assert!(truncated(&out), "{out}");
    assert!(
        cookie_of(&out).is_none(),
        "no cookie asked, none given: {out}"
    );
    // Small answers are not limited.
    let out = s.dig(&["+nocookie", "www.example.test", "A"]);
    assert!(!truncated(&out) && out.contains("192.0.2.80"), "{out}");
    assert!(stat(&s, "cookie_good") >= 1);
    assert!(stat(&s, "cookie_bad") >= 1);
    assert!(stat(&s, "cookie_missing") >= 1);
    assert!(stat(&s, "nocookie_truncated") >= 3);

    // Rotation: a new secret in the file and a reload; the cookie of the old one stays good.
    dir.write("cookie-secret", &format!("{SECRET_2}\n"));
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    let out = big(&s, &format!("+cookie={cookie}"));
    assert!(
        !truncated(&out),
        "the previous secret is still accepted: {out}"
    );
    let (renewed, _) = cookie_of(&out).unwrap();
    assert_ne!(
        renewed, cookie,
        "a cookie of the new secret is handed out: {out}"
    );
    let out = big(&s, &format!("+cookie={renewed}"));
    assert!(!truncated(&out), "{out}");
    // A second rotation: the first secret is no longer accepted.
    dir.write("cookie-secret", &format!("{SECRET_3}\n"));
    let (ok, v) = s.ctl(&["reload"]);
    assert!(ok, "{v}");
    let out = big(&s, &format!("+cookie={cookie}"));
    assert!(truncated(&out), "two secrets ago: bad: {out}");
    let out = big(&s, &format!("+cookie={renewed}"));
    assert!(!truncated(&out), "one secret ago: good: {out}");
}

/// A query for `www.example.test` A with an OPT record holding `options` (already encoded).
fn with_options(options: &[u8]) -> Vec<u8> {
    let mut p = query(0x4242, 0x0100, "www.example.test", 1);
    p[11] = 1;
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    p.extend_from_slice(&(options.len() as u16).to_be_bytes());
    p.extend_from_slice(options);
    p
}

/// The options of the response's OPT record (the last record), as (code, data).
fn response_options(resp: &[u8]) -> Vec<(u16, Vec<u8>)> {
    // Find OPT: root name, type 41; it is the last record written.
    let at = (12..resp.len().saturating_sub(10))
        .rev()
        .find(|&i| resp[i] == 0 && resp[i + 1] == 0 && resp[i + 2] == 41)
        .expect("an OPT record");
    let rdlen = u16::from_be_bytes([resp[at + 9], resp[at + 10]]) as usize;
    let rdata = &resp[at + 11..at + 11 + rdlen];
    let mut out = Vec::new();
    let mut o = 0;
    while o + 4 <= rdata.len() {
        let code = u16::from_be_bytes([rdata[o], rdata[o + 1]]);
        let len = u16::from_be_bytes([rdata[o + 2], rdata[o + 3]]) as usize;
        out.push((code, rdata[o + 4..o + 4 + len].to_vec()));
        o += 4 + len;
    }
    out
}

#[test]
fn malformed_cookies_and_keepalives_get_formerr_with_a_reason() {
    let (_d, s) = server();
    for len in [0usize, 7, 9, 15, 41] {
        let mut opt = vec![0, 10];
        opt.extend_from_slice(&(len as u16).to_be_bytes());
        opt.extend(std::iter::repeat_n(7u8, len));
        let resp = s.udp_raw(&with_options(&opt)).expect("an answer");
        assert_eq!(rcode(&resp), 1, "a COOKIE of {len} octets is FORMERR");
        let opts = response_options(&resp);
        let ede = opts.iter().find(|(c, _)| *c == 15).expect("an EDE option");
        assert!(
            String::from_utf8_lossy(&ede.1[2..]).contains("COOKIE"),
            "{opts:?}"
        );
    }
    for len in [8usize, 16, 40] {
        let mut opt = vec![0, 10];
        opt.extend_from_slice(&(len as u16).to_be_bytes());
        opt.extend(std::iter::repeat_n(7u8, len));
        let resp = s.udp_raw(&with_options(&opt)).expect("an answer");
        assert_eq!(rcode(&resp), 0, "a COOKIE of {len} octets is well formed");
        let opts = response_options(&resp);
        let cookie = opts.iter().find(|(c, _)| *c == 10).expect("a COOKIE back");
        assert_eq!(cookie.1.len(), 24);
        assert_eq!(cookie.1[..8], [7; 8], "the client cookie is returned");
    }
    // A keepalive with a TIMEOUT in a query, and one over UDP at all.
    let resp = s.udp_raw(&with_options(&[0, 11, 0, 2, 0, 100])).unwrap();
    assert_eq!(rcode(&resp), 1);
    let resp = s.udp_raw(&with_options(&[0, 11, 0, 0])).unwrap();
    assert_eq!(rcode(&resp), 1, "edns-tcp-keepalive over UDP");
    let out = s.dig(&["+keepalive", "www.example.test", "A"]);
    assert!(out.contains("status: FORMERR"), "{out}");
    assert!(out.contains("EDE: 0"), "{out}");
    assert!(out.contains("over UDP"), "{out}");
}

#[test]
fn nsid_only_when_asked() {
    let (_d, s) = server();
    let out = s.dig(&["+nsid", "www.example.test", "A"]);
    assert!(out.contains("NSID:"), "{out}");
    assert!(out.contains("(\"test-node-1\")"), "{out}");
    let out = s.dig(&["www.example.test", "A"]);
    assert!(!out.contains("NSID"), "not asked, not given: {out}");
}

#[test]
fn extended_errors_say_why_only_to_edns_queries() {
    let (_d, s) = server();
    let out = s.dig(&["elsewhere.invalid", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    assert!(out.contains("EDE: 20 (Not Authoritative)"), "{out}");
    let out = s.dig(&["+noedns", "elsewhere.invalid", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    assert!(
        !out.contains("EDE"),
        "no OPT in the query, none in the answer: {out}"
    );
    // A zone transfer (dig only asks for one over TCP, and prints no EDE for a failed
    // transfer): a raw AXFR query over UDP, with an OPT record.
    let mut axfr = query(0x4343, 0, "example.test", 252);
    axfr[11] = 1;
    axfr.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    let resp = s.udp_raw(&axfr).unwrap();
    assert_eq!(rcode(&resp), 5);
    let opts = response_options(&resp);
    let ede = opts.iter().find(|(c, _)| *c == 15).expect("an EDE option");
    assert_eq!(ede.1[..2], [0, 21], "Not Supported: {opts:?}");
    // A malformed ECS option: FORMERR, with the reason.
    let resp = s
        .udp_raw(&with_options(&[0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2]))
        .unwrap();
    assert_eq!(rcode(&resp), 0, "a good ECS option, to compare");
    // Family 3 does not exist.
    let resp = s
        .udp_raw(&with_options(&[0, 8, 0, 7, 0, 3, 24, 0, 192, 0, 2]))
        .unwrap();
    assert_eq!(rcode(&resp), 1);
    let opts = response_options(&resp);
    let ede = opts.iter().find(|(c, _)| *c == 15).expect("an EDE option");
    assert_eq!(ede.1[..2], [0, 0]);
    assert!(String::from_utf8_lossy(&ede.1[2..]).contains("Client Subnet"));
    // A good answer carries none.
    let out = s.dig(&["www.example.test", "A"]);
    assert!(
        out.contains("status: NOERROR") && !out.contains("EDE"),
        "{out}"
    );
}

#[test]
fn tcp_keepalive_tells_the_idle_timeout_over_tcp_only() {
    let (_d, s) = server();
    let out = s.dig(&["+tcp", "+keepalive", "www.example.test", "A"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    // tcp.idle_timeout_ms defaults to 10000: 100 units of 100 ms.
    assert!(out.contains("KEEPALIVE: 10.0 secs"), "{out}");
    let out = s.dig(&["+tcp", "www.example.test", "A"]);
    assert!(!out.contains("KEEPALIVE"), "not asked, not given: {out}");
}
