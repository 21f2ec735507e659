//! Real DNSSEC validators for the signed-answer tests: BIND's `delv` (one question, no cache)
//! and Debian's Unbound (a validating resolver with a cache and the `subnetcache` module),
//! started on loopback with a generated configuration and always stopped (dropping the handle
//! kills and reaps it, also when the test panics). Trust anchors are the DS records that
//! `signpost dnssec ds` prints for a key file.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};

use super::{TempDir, wait_for};

/// Runs the real `signpost` with `args`; its standard output (the command must succeed).
pub fn signpost_out(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signpost {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes a key for example.test in `dir` with `signpost dnssec keygen`: its base path and tag.
pub fn keygen(dir: &TempDir, ksk: bool) -> (String, u16) {
    let d = dir.0.display().to_string();
    let mut args = vec!["dnssec", "keygen", "--zone", "example.test", "--dir", &d];
    if ksk {
        args.push("--ksk");
    }
    let base = signpost_out(&args).trim().to_string();
    let tag = base.rsplit('+').next().unwrap().parse().unwrap();
    (dir.path(&base).display().to_string(), tag)
}

/// The DS record of the key file `key`, as `signpost dnssec ds` prints it.
pub fn ds_of(key: &str) -> String {
    signpost_out(&["dnssec", "ds", key]).trim().to_string()
}

/// Writes a delv trust-anchor file `name` in `dir` holding the DS of the key file `key`.
pub fn delv_anchor(dir: &TempDir, key: &str, name: &str) -> String {
    let ds = ds_of(key);
    let f: Vec<&str> = ds.split_whitespace().collect();
    assert_eq!(f[2], "DS", "{ds}");
    let text = format!(
        "trust-anchors {{ {} static-ds {} {} {} \"{}\"; }};\n",
        f[0], f[3], f[4], f[5], f[6]
    );
    dir.write(name, &text).display().to_string()
}

/// Runs delv against 127.0.0.1:`port` with the trust-anchor file `anchor` for example.test;
/// returns stdout and stderr together.
pub fn delv(port: u16, anchor: &str, name: &str, rtype: &str) -> String {
    let out = Command::new("delv")
        .args(["@127.0.0.1", "-p", &port.to_string(), "-a", anchor])
        .args(["+root=example.test", "+nomtrace", name, rtype])
        .output()
        .expect("delv is installed (the test command installs bind9-dnsutils)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs dig against 127.0.0.1:`port`; its standard output.
pub fn dig_at(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=3", "+tries=2"])
        .args(args)
        .output()
        .expect("dig is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(covered type, key tag, expiration)` of each RRSIG in dig's answer and authority sections.
pub fn rrsigs(dig: &str) -> Vec<(String, u16, String)> {
    dig.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"RRSIG"))
                .then(|| (f[4].to_string(), f[10].parse().unwrap(), f[8].to_string()))
        })
        .collect()
}

/// True when dig's header flags include `flag` (e.g. `ad`).
pub fn has_flag(dig: &str, flag: &str) -> bool {
    dig.lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .and_then(|l| l.split(';').next())
        .is_some_and(|f| f.split_whitespace().any(|x| x == flag))
}

/// An Unbound process, stopped when dropped.
pub struct Unbound {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    /// Starts Unbound in `dir` with `anchor` (a DS record) for example.test, whose server is
    /// at 127.0.0.1:`server_port`; client subnets are forwarded to it. A start that does not
    /// answer within 20 s (a port taken between choosing and binding it) is tried again on
    /// another port, three times at most.
    pub fn start(dir: &TempDir, anchor: &str, server_port: u16) -> Unbound {
        let mut logs = String::new();
        for _ in 0..3 {
            match Unbound::try_start(dir, anchor, server_port) {
                Ok(u) => return u,
                Err(log) => logs.push_str(&log),
            }
        }
        panic!("unbound did not start:\n{logs}");
    }

    fn try_start(dir: &TempDir, anchor: &str, server_port: u16) -> Result<Unbound, String> {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        let path = dir.write(&format!("unbound-{port}.conf"), &conf);
        let check = Command::new("unbound-checkconf")
            .arg(&path)
            .output()
            .expect("unbound is installed (the test command installs it)");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log_path = dir.path(&format!("unbound-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("unbound")
            .args(["-d", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let u = Unbound { child, port };
        let up = wait_for(20, || {
            dig_at(
                port,
                &["+time=1", "+tries=1", "version.server", "CH", "TXT"],
            )
            .contains("status:")
        });
        if up {
            return Ok(u);
        }
        drop(u);
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(format!("port {port}:\n{text}\n"))
    }

    /// Asks this resolver; dig's standard output.
    pub fn dig(&self, args: &[&str]) -> String {
        dig_at(self.port, args)
    }
}
