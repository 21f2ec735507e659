//! Helpers for end-to-end tests: start the real `signpost` binary on a free port, query it
//! with the real `dig`, talk to its control socket, and stop it when the test ends.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("signpost-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `name` atomically (temporary file + rename), as editors and deploy tools do.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        let file = p.file_name().unwrap().to_str().unwrap().to_string();
        let tmp = p.with_file_name(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server, killed on drop.
pub struct Server {
    pub child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub control: Option<PathBuf>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// The directory of the default control socket this server was given.
    pub default_control_dir: PathBuf,
    /// The metrics endpoint, when the server opened one.
    pub metrics: Option<SocketAddr>,
}

impl Server {
    /// Starts `signpost serve` with `args` plus a listen address on a free port.
    pub fn start(args: &[&str]) -> Server {
        Server::start_on(args, "127.0.0.1:0")
    }

    /// Starts `signpost serve --config CONFIG --control DIR/ctl.sock`.
    pub fn with_control(config: &std::path::Path, dir: &TempDir) -> Server {
        let sock = dir.path("ctl.sock");
        Server::start(&[
            "--config",
            config.to_str().unwrap(),
            "--control",
            sock.to_str().unwrap(),
        ])
    }

    /// `nodes` from the control socket: the `why` of node `name`.
    pub fn why(&self, name: &str) -> String {
        let (_, nodes) = self.ctl(&["nodes"]);
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name} in {nodes}"))["why"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn start_on(args: &[&str], listen: &str) -> Server {
        Server::start_wrapped(&[], args, listen, &[])
    }

    /// [`Server::start_on`] with extra environment variables for the server.
    pub fn start_with_env(args: &[&str], listen: &str, env: &[(&str, &str)]) -> Server {
        Server::start_wrapped(&[], args, listen, env)
    }

    /// Like [`Server::start_on`], run through `wrapper` (a command and its arguments that
    /// execs the rest, such as `prlimit --nofile=64:64`), with extra environment variables.
    pub fn start_wrapped(
        wrapper: &[&str],
        args: &[&str],
        listen: &str,
        env: &[(&str, &str)],
    ) -> Server {
        let bin = env!("CARGO_BIN_EXE_signpost");
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        // Only a test that asks for it talks to a service manager.
        cmd.env_remove("NOTIFY_SOCKET").envs(env.iter().copied());
        // Servers without --control open their default socket: a path of their own here, so
        // that parallel tests never meet at the machine's default.
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let default_control_dir =
            std::env::temp_dir().join(format!("signpost-test-{}-{n}", std::process::id()));
        cmd.env("SIGNPOST_CONTROL", default_control_dir.join("control.sock"));
        cmd.arg("serve")
            .args(args)
            .args(["--listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start signpost");
        let control = args
            .iter()
            .position(|a| *a == "--control")
            .map(|i| PathBuf::from(args[i + 1]));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let err = child.stderr.take().unwrap();
            let buf = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    buf.lock().unwrap().push_str(&line);
                    buf.lock().unwrap().push('\n');
                }
            });
        }
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("signpost did not start: {}", stderr.lock().unwrap());
            }
        };
        let addr = |proto: &str| -> SocketAddr {
            let part = line
                .split("; ")
                .find(|p| p.starts_with(proto))
                .unwrap_or_else(|| panic!("no {proto} in {line}"));
            part[proto.len() + 1..].parse().unwrap()
        };
        let (udp, tcp) = (addr("udp"), addr("tcp"));
        let metrics = line
            .split("; ")
            .find_map(|p| p.strip_prefix("metrics "))
            .map(|a| a.parse().unwrap());
        Server {
            child,
            udp,
            tcp,
            control,
            stderr,
            default_control_dir,
            metrics,
        }
    }

    /// Runs dig against this server; returns its stdout.
    pub fn dig(&self, args: &[&str]) -> String {
        let out = Command::new("dig")
            .arg(format!("@{}", self.udp.ip()))
            .args(["-p", &self.udp.port().to_string(), "+time=2", "+tries=2"])
            .args(args)
            .output()
            .expect("dig is installed (the test command installs bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The first address answered for `name` (type A) to a client in `subnet` (sent as ECS),
    /// and the ECS scope of the answer; empty strings for what is missing.
    pub fn answer_and_scope(&self, name: &str, subnet: &str) -> (String, String) {
        let out = self.dig(&[name, "A", &format!("+subnet={subnet}")]);
        let owner = format!("{}.", name.trim_end_matches('.'));
        let a = out
            .lines()
            .find(|l| l.starts_with(&owner))
            .map(|l| l.split_whitespace().last().unwrap_or_default().to_string())
            .unwrap_or_default();
        let scope = out
            .lines()
            .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
            .map(|c| c.rsplit('/').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default();
        (a, scope)
    }

    /// `dig +short`.
    pub fn short(&self, args: &[&str]) -> String {
        let mut a = vec!["+short"];
        a.extend_from_slice(args);
        self.dig(&a).trim().to_string()
    }

    /// Runs `signpost ctl --json ...` against this server.
    pub fn ctl(&self, args: &[&str]) -> (bool, serde_json::Value) {
        let sock = self.control.as_ref().expect("started with --control");
        let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["ctl", "--json", "--socket", sock.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.success(), v)
    }

    /// Sends raw bytes over UDP; returns the response, if any arrives within a second.
    pub fn udp_raw(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        s.send_to(packet, self.udp).unwrap();
        let mut buf = vec![0u8; 65535];
        match s.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Stops the server with SIGTERM and returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "signpost did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.default_control_dir);
    }
}

/// Waits until `f` returns true, for at most `secs` seconds.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A minimal query packet.
pub fn query(id: u16, flags: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.trim_end_matches('.').split('.') {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p
}

/// The rcode of a response.
pub fn rcode(resp: &[u8]) -> u8 {
    resp[3] & 0x0f
}

/// The path of a file under `testdata/`.
pub fn testdata(rel: &str) -> String {
    root()
        .join("testdata")
        .join(rel)
        .to_str()
        .unwrap()
        .to_string()
}

/// Writes a configuration for `example.test` using the demo data and the given map files.
/// Reloads run at normal priority: the tests share a busy machine, and at nice 19 a reload
/// could wait for CPU longer than a test wants to wait for it.
pub fn config_with_maps(dir: &TempDir, maps: &[&str], extra: &str) -> PathBuf {
    let maps: Vec<String> = maps.iter().map(|m| format!("  - {m}\n")).collect();
    let text = format!(
        "zones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster, minimum: 300 }}\n    ns: [ns1.example.test.]\n    records:\n      - {{ name: www, type: A, value: 192.0.2.80 }}\nmaps:\n{}geoip:\n  - path: {}\nbgp:\n  - path: {}\n    format: pyasn\nreload_debounce_ms: 200\nreload_priority: normal\n{extra}",
        maps.concat(),
        testdata("geoip/GeoLite2-Country-2018-08-07.mmdb"),
        testdata("bgp/demo-ipasn-20151101.txt"),
    );
    dir.write("signpost.yaml", &text)
}

/// Copies the demo maps (`maps/*.yaml`) into `dir/maps/`.
pub fn copy_demo_maps(dir: &TempDir) {
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    for f in ["nodes.yaml", "regions.yaml", "services.yaml"] {
        std::fs::copy(root().join("maps").join(f), dir.path("maps").join(f)).unwrap();
    }
}

/// Copies the demo maps into `dir/maps/` and writes a configuration using them and the demo
/// data.
pub fn demo_config(dir: &TempDir, extra: &str) -> PathBuf {
    copy_demo_maps(dir);
    config_with_maps(dir, &["maps/"], extra)
}

pub mod speakers;
pub mod validators;

/// Stops, when the test ends, every process started to take over on the control socket `.0`
/// (they are not the harness's children).
pub struct Reaper(pub std::path::PathBuf);

impl Reaper {
    /// The live processes started with `--takeover` and this control socket.
    pub fn pids(&self) -> Vec<u32> {
        let wanted = format!("--takeover\0{}\0", self.0.display());
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&wanted) && alive(pid) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            wait_for(10, || !alive(pid));
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Whether process `pid` runs (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
}

/// The start of an anycast test's configuration, for a directory [`anycast_dir`] made: one
/// zone, the live-BGP map, the GeoIP data (relative to the configuration's directory).
pub const ANYCAST_ZONE: &str = "zones:
  - apex: example.test
    soa: { mname: ns1, rname: hostmaster, minimum: 300 }
    ns: [ns1.example.test.]
maps: [maps/]
geoip:
  - path: ../geoip/GeoLite2-Country-2018-08-07.mmdb
";

/// A test directory laid out like `testdata/` for the anycast tests: the live-BGP map and
/// the GeoIP data linked in, the configuration to be written beside them.
pub fn anycast_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(dir.path("bgp-live")).unwrap();
    std::os::unix::fs::symlink(
        root().join("testdata/bgp-live/maps"),
        dir.path("bgp-live/maps"),
    )
    .unwrap();
    std::os::unix::fs::symlink(root().join("testdata/geoip"), dir.path("geoip")).unwrap();
    dir
}
