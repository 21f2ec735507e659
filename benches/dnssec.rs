//! What signing costs: the build time and the bytes of signatures for a map of 16 sites and
//! one of 1,000 nodes, signed against unsigned in alternating builds; and the answer path's
//! cost with DO=1 against DO=0 on random ECS, in alternating rounds of the same run, both in
//! process (`respond`, one core) and through the real release server over UDP (a closed-loop
//! generator with a window of queries in flight, server and generator pinned to a core each).
//!
//! Run: `cargo build --release && cargo bench --bench dnssec -- [--rounds 5] [--secs 3]`.
//! Uses only `testdata/` (the demo GeoIP data); writes its files into a temporary directory.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use signpost::dns::answer::{Transport, respond};
use signpost::dnssec::{Algorithm, NewKey, Role};
use signpost::load::Sources;
use signpost::snapshot::Snapshot;

const CONTINENTS: [&str; 7] = ["EU", "NA", "AS", "OC", "SA", "AF", "AN"];

/// A map of `sites` sites of `per_site` nodes each (an IPv4 and an IPv6 address per node),
/// one region per site, `answers` addresses per answer; rules by continent, each continent's
/// chain two regions long.
fn map(sites: usize, per_site: usize, answers: usize) -> String {
    let mut m = String::from("nodes:\n");
    for s in 0..sites {
        for n in 0..per_site {
            let i = s * per_site + n;
            m += &format!(
                "  - {{ name: n{i}, ipv4: [10.{}.{}.1], ipv6: [\"2001:db8:{:x}::1\"] }}\n",
                i / 256,
                i % 256,
                i
            );
        }
    }
    m += "regions:\n";
    for s in 0..sites {
        let members: Vec<String> = (0..per_site)
            .map(|n| format!("n{}", s * per_site + n))
            .collect();
        m += &format!("  - {{ name: r{s}, nodes: [{}] }}\n", members.join(", "));
    }
    m += &format!(
        "services:\n  - names: [dl.example.test]\n    ttl: 60\n    answers: {answers}\n    rules:\n"
    );
    for (i, c) in CONTINENTS.iter().enumerate() {
        m += &format!(
            "      - {{ continents: [{c}], regions: [r{}, r{}] }}\n",
            i % sites,
            (i + 1) % sites
        );
    }
    m += "      - { default: true, regions: [r0] }\n";
    m
}

fn config(dir: &Path, signed: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dnssec = if signed {
        "    dnssec:\n      keys: [Kexample.test.ksk, Kexample.test.zsk]\n"
    } else {
        ""
    };
    let text = format!(
        "listen: [\"127.0.0.1:0\"]\nworkers: 1\nzones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster, minimum: 300 }}\n    ns: [{{ name: ns1.example.test., addresses: [127.0.0.1] }}]\n{dnssec}maps: [map.yaml]\ngeoip:\n  - path: {}\n",
        root.join("testdata/geoip/GeoLite2-Country-2018-08-07.mmdb")
            .display()
    );
    let path = dir.join(if signed { "signed.yaml" } else { "plain.yaml" });
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a KSK and a ZSK as `Kexample.test.ksk.{key,private}` and `…zsk…`.
fn keys(dir: &Path) {
    for (role, name) in [(Role::KeySigning, "ksk"), (Role::Zone, "zsk")] {
        let k = NewKey::generate("example.test", Algorithm::EcdsaP256Sha256, role).unwrap();
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let (public, private) = k.write(&sub).unwrap();
        std::fs::copy(public, dir.join(format!("Kexample.test.{name}.key"))).unwrap();
        std::fs::copy(private, dir.join(format!("Kexample.test.{name}.private"))).unwrap();
    }
}

/// Signatures in a snapshot: (count, bytes of their records).
fn signatures(snap: &Snapshot) -> (usize, usize) {
    let (mut n, mut bytes) = (0, 0);
    let mut add = |sigs: &[Box<[u8]>]| {
        n += sigs.len();
        bytes += sigs.iter().map(|s| s.len()).sum::<usize>();
    };
    for z in &snap.zones {
        for node in z.nodes.values() {
            node.sets.iter().for_each(|s| add(&s.sigs));
            if let Some(a) = &node.answers {
                a.values().for_each(|s| add(s));
            }
        }
        if let Some(s) = &z.signed {
            s.chain.iter().for_each(|d| add(&d.sigs));
        }
    }
    (n, bytes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Build times (ms, medians of `rounds` alternating builds) unsigned, signed from new sources
/// (every set signed: a start, or the first build after a key change), and signed again from
/// the same sources (what a feed change or the re-sign timer builds: the signatures of the
/// build before reused).
fn build_times(dir: &Path, label: &str, rounds: usize) {
    let plain = Sources::read(Some(&config(dir, false)), None).unwrap();
    let (mut tp, mut ts, mut tr) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sigs, mut again) = ((0, 0), (0, 0));
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(plain.build(&[]).unwrap());
        tp.push(t.elapsed().as_secs_f64() * 1e3);
        let signed = Sources::read(Some(&config(dir, true)), None).unwrap();
        let t = Instant::now();
        let snap = signed.build(&[]).unwrap();
        ts.push(t.elapsed().as_secs_f64() * 1e3);
        sigs = signatures(&snap);
        let t = Instant::now();
        black_box(signed.build(&[]).unwrap());
        tr.push(t.elapsed().as_secs_f64() * 1e3);
        again = signed.signatures_made();
    }
    let (p, s, r) = (median(tp), median(ts), median(tr));
    println!(
        "{label}: build unsigned {p:.1} ms, signed {s:.1} ms (signing {:.1} ms), signed again from the same sources {r:.1} ms (made {}, reused {}); {} signatures, {:.1} kB of signature records",
        s - p,
        again.0,
        again.1,
        sigs.0,
        sigs.1 as f64 / 1e3
    );
}

/// A query for `dl.example.test` A with an ECS option for the /24 of `addr` and DO as given.
fn query(id: u16, addr: u32, dnssec: bool) -> Vec<u8> {
    let mut p = vec![(id >> 8) as u8, id as u8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    p.extend_from_slice(b"\x02dl\x07example\x04test\x00\x00\x01\x00\x01");
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, if dnssec { 0x80 } else { 0 }, 0]);
    p.extend_from_slice(&[0, 11, 0, 8, 0, 7, 0, 1, 24, 0]);
    p.extend_from_slice(&addr.to_be_bytes()[..3]);
    p
}

fn next(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

/// ns per answer in process, DO=0 and DO=1 in alternating rounds.
fn in_process(snap: &Snapshot, rounds: usize) {
    let src = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut out = vec![0u8; 65535];
    let (mut plain, mut signed) = (Vec::new(), Vec::new());
    let mut x = 0x9e37_79b9u32;
    for _ in 0..rounds {
        for dnssec in [false, true] {
            let qs: Vec<Vec<u8>> = (0..4096).map(|i| query(i, next(&mut x), dnssec)).collect();
            let t = Instant::now();
            for _ in 0..50 {
                for q in &qs {
                    black_box(respond(snap, q, src, Transport::Udp, &mut out));
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / (50.0 * qs.len() as f64);
            if dnssec {
                signed.push(ns)
            } else {
                plain.push(ns)
            }
        }
    }
    let (p, s) = (median(plain), median(signed));
    println!(
        "in process, random ECS: DO=0 {p:.0} ns, DO=1 {s:.0} ns per answer (DO=1/DO=0 time {:.3})",
        s / p
    );
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Answers per second from the server at `to` over `secs` seconds: a window of 64 queries in
/// flight, random ECS, DO as given.
fn udp_rate(to: SocketAddr, secs: f64, dnssec: bool, seed: u32) -> f64 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut x = seed | 1;
    let mut buf = [0u8; 4096];
    let (start, mut answered) = (Instant::now(), 0u64);
    while start.elapsed().as_secs_f64() < secs {
        for i in 0..64u16 {
            let _ = s.send(&query(i, next(&mut x), dnssec));
        }
        for _ in 0..64 {
            match s.recv(&mut buf) {
                Ok(_) => answered += 1,
                Err(_) => break,
            }
        }
    }
    answered as f64 / start.elapsed().as_secs_f64()
}

fn server_rates(dir: &Path, rounds: usize, secs: f64) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/signpost");
    assert!(
        bin.exists(),
        "build the server first: cargo build --release"
    );
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let _server = Killed(
        Command::new("taskset")
            .args(["-c", "0"])
            .arg(&bin)
            .args(["serve", "--config"])
            .arg(config(dir, true))
            .args(["--listen", &listen, "--control"])
            .arg(dir.join("ctl.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let to: SocketAddr = listen.parse().unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        udp_rate(to, 0.05, false, 7) > 0.0
    });
    assert!(up, "the server did not answer");
    let (mut plain, mut signed) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // Alternate which goes first, so that a drift of the machine favours neither.
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for dnssec in order {
            let rate = udp_rate(to, secs, dnssec, 0x5eed + r as u32);
            if dnssec {
                signed.push(rate)
            } else {
                plain.push(rate)
            }
        }
    }
    let ratios: Vec<f64> = signed.iter().zip(&plain).map(|(s, p)| s / p).collect();
    println!(
        "server over UDP, random ECS: DO=0 {:.0} qps, DO=1 {:.0} qps (medians of {rounds} rounds of {secs} s); DO=1/DO=0 per round {:?}, median {:.3}",
        median(plain.clone()),
        median(signed.clone()),
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>(),
        median(ratios.clone())
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut secs) = (5usize, 3.0f64);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--secs" => secs = args.next().and_then(|v| v.parse().ok()).expect("--secs S"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let dir = std::env::temp_dir().join(format!("signpost-bench-dnssec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    keys(&dir);
    for (label, sites, per_site, answers) in [
        ("16 sites, one node each, answers: 1", 16, 1, 1),
        ("1,000 nodes in 100 regions, answers: 2", 100, 10, 2),
    ] {
        std::fs::write(dir.join("map.yaml"), map(sites, per_site, answers)).unwrap();
        build_times(&dir, label, rounds);
    }
    std::fs::write(dir.join("map.yaml"), map(16, 1, 1)).unwrap();
    let snap = Sources::read(Some(&config(&dir, true)), None)
        .unwrap()
        .build(&[])
        .unwrap();
    in_process(&snap, rounds);
    server_rates(&dir, rounds, secs);
    let _ = std::fs::remove_dir_all(&dir);
}
