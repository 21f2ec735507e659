//! Signed answers through a real validating resolver with ECS: Debian's Unbound, started by
//! the test on loopback with the demo zone's DS as trust anchor, a stub zone pointing at the
//! real server and the `subnetcache` module forwarding each client's subnet. For random
//! client subnets the answer comes back with AD set and equals the server's own answer for
//! that subnet; NXDOMAIN and NODATA validate too. With the DS of another key, the same
//! questions get SERVFAIL (the test can fail).

mod common;
use common::*;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};

/// An Unbound process, stopped when dropped.
struct Unbound {
    child: Child,
    port: u16,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The DS line for `key`'s file, as a trust-anchor string.
fn ds_of(key: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["dnssec", "ds", key])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts Unbound with `anchor` (a DS record) for example.test, whose servers are at
/// 127.0.0.1:`server_port`.
fn unbound(dir: &TempDir, anchor: &str, server_port: u16) -> Unbound {
    let port = free_port();
    let conf = format!(
        r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "subnetcache validator iterator"
    send-client-subnet: 127.0.0.1
    max-client-subnet-ipv4: 24
    trust-anchor: "{anchor}"
    val-log-level: 2
    # .test is one of Unbound's default local zones (RFC 6761); the demo zone is under it.
    local-zone: "test." nodefault
remote-control:
    control-enable: no
stub-zone:
    name: "example.test"
    stub-addr: 127.0.0.1@{server_port}
"#,
        dir = dir.0.display()
    );
    let path = dir.write("unbound.conf", &conf);
    let check = Command::new("unbound-checkconf")
        .arg(&path)
        .output()
        .expect("unbound is installed (the test command installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new("unbound")
        .args(["-d", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let u = Unbound { child, port };
    let up = wait_for(10, || {
        dig(
            port,
            &["+time=1", "+tries=1", "version.server", "CH", "TXT"],
        )
        .contains("status:")
    });
    assert!(up, "unbound did not start");
    u
}

fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=3", "+tries=2"])
        .args(args)
        .output()
        .expect("dig is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The addresses in dig's answer section, sorted.
fn addresses(out: &str) -> Vec<String> {
    let mut a: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter(|l| l.contains("\tA\t") || l.contains("\tAAAA\t"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    a.sort();
    a
}

fn flags(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .and_then(|l| l.split(';').next())
        .unwrap_or_default()
        .to_string()
}

/// Client subnets spread over the IPv4 space (a fixed generator: the same on every run), and
/// the demo's known ones.
fn subnets(n: usize) -> Vec<String> {
    let mut x: u32 = 0x2545_f491;
    let mut out = vec!["81.2.69.0/24".to_string(), "8.8.8.0/24".to_string()];
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let first = (x >> 24) as u8;
        if first == 0 || first == 10 || first == 127 || first >= 224 {
            continue;
        }
        out.push(format!(
            "{first}.{}.{}.0/24",
            (x >> 16) as u8,
            (x >> 8) as u8
        ));
    }
    out
}

#[test]
fn unbound_validates_answers_for_random_client_subnets() {
    let dir = TempDir::new("dnssec-unbound");
    let server = Server::start(&[]);
    let anchor = ds_of(&testdata("demo/keys/Kexample.test.+013+01841"));
    let resolver = unbound(&dir, &anchor, server.udp.port());
    let mut compared = 0;
    let mut distinct = std::collections::BTreeSet::new();
    for subnet in subnets(30) {
        for rtype in ["A", "AAAA"] {
            let via = dig(
                resolver.port,
                &[&format!("+subnet={subnet}"), "dl.example.test", rtype],
            );
            let direct = server.dig(&[&format!("+subnet={subnet}"), "dl.example.test", rtype]);
            assert!(via.contains("status: NOERROR"), "{subnet} {rtype}: {via}");
            assert!(
                flags(&via).split_whitespace().any(|f| f == "ad"),
                "{subnet} {rtype}: not validated: {via}"
            );
            assert!(!addresses(&via).is_empty(), "{subnet} {rtype}: {via}");
            assert_eq!(
                addresses(&via),
                addresses(&direct),
                "{subnet} {rtype}: through Unbound {via}\ndirect {direct}"
            );
            distinct.insert(addresses(&via));
            compared += 1;
        }
    }
    assert_eq!(compared, 60);
    // The subnets reach different nodes, so the comparison shows that Unbound forwarded each
    // client's subnet (without it, every answer would be the one for Unbound's own address).
    assert!(distinct.len() >= 4, "{distinct:?}");
    for (name, rtype, status) in [
        ("nothere.example.test", "A", "NXDOMAIN"),
        ("www.example.test", "TXT", "NOERROR"),
        ("todl.example.test", "A", "NOERROR"),
        ("example.test", "MX", "NOERROR"),
    ] {
        let out = dig(resolver.port, &[name, rtype]);
        assert!(out.contains(&format!("status: {status}")), "{name}: {out}");
        assert!(
            flags(&out).split_whitespace().any(|f| f == "ad"),
            "{name} {rtype}: not validated: {out}"
        );
    }
}

#[test]
fn unbound_refuses_answers_signed_by_another_key() {
    let dir = TempDir::new("dnssec-unbound-foreign");
    let keys = TempDir::new("dnssec-unbound-foreign-key");
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args([
            "dnssec",
            "keygen",
            "--zone",
            "example.test",
            "--ksk",
            "--dir",
        ])
        .arg(&keys.0)
        .output()
        .unwrap();
    let base = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let anchor = ds_of(&keys.path(&base).display().to_string());
    let server = Server::start(&[]);
    let resolver = unbound(&dir, &anchor, server.udp.port());
    for (name, rtype) in [("dl.example.test", "A"), ("nothere.example.test", "A")] {
        let out = dig(resolver.port, &["+subnet=81.2.69.0/24", name, rtype]);
        assert!(out.contains("status: SERVFAIL"), "{name}: {out}");
    }
}
