//! Live BGP feeds at full-table scale, against the real release binary. Run:
//!
//! ```sh
//! cargo build --release && cargo bench --bench bgp_feed -- [--secs 10] [--rounds 3] [--rate 2000] [--churn-secs 20]
//! ```
//!
//! `SIGNPOST_BIN=PATH` measures another build of the server (a copy of an older one, for before
//! and after).
//!
//! A replaying BGP speaker (written here: OPEN, KEEPALIVE, UPDATE over a TCP session bound to
//! its own loopback source address) feeds `target/release/signpost`, spawned with a generated
//! configuration in a temporary directory:
//!
//! - feed `stream`: the BGP4MP update stream `updates.et-header.2015.gz` of one full-feed peer
//!   (577,706 IPv4 prefixes); every UPDATE of the file is re-encoded (bgpkit-parser's encoder,
//!   4-byte AS numbers, the AS_PATH merged with AS4_PATH) as one UPDATE of our session, in stream
//!   order, split only when it would exceed 4096 bytes;
//! - feeds `ribA`, `ribB`: the two peers with the most prefixes in the text form (bgpdump -m) of
//!   the RIB dump `bview.20100701.0759.gz`, each prefix with that peer's AS path, ORIGIN and next
//!   hop, prefixes sharing those attributes grouped into UPDATEs of at most 4096 bytes.
//!
//! It prints: time from session up to the whole table received (`ctl bgp`) and serving (the
//! first `reloaded` line whose route count covers it); RSS before any feed and after each,
//! with the peak so far (VmHWM); the cost of following changes (CPU time of the server per
//! build, build durations, the rate absorbed, steady and unthrottled, and RSS and the peak
//! after each); random-ECS query throughput with changes streaming, as a
//! ratio to paired rounds without; and a differential of the live `stream` feed after all of
//! that against the table Signpost builds from the same MRT file read as a file.
//!
//! The server runs on core 0, the load generator on core 1 (`taskset`), the speaker unpinned.
//! Everything is on loopback; every child process is killed when the program ends (Drop).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgpkit_parser::models::{
    AsPath, AsPathSegment, AsnLength, Attribute, AttributeValue, Attributes, Bgp4MpEnum,
    BgpMessage, BgpUpdateMessage, MrtMessage, NetworkPrefix, Origin,
};

const DATA: &str = "../shared/data/bgp/bgpdump-tests";
const STREAM: &str = "test_data/updates.et-header.2015.gz";
const RIB_TEXT: &str = "test_expect/bview.20100701.0759.gz.bgp.gz";
const LOADGEN: &str = "/tmp/loadgen-target/release/loadgen";
const OUR_ASN: u32 = 65000;
const MAX_MSG: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    secs: u64,
    rounds: usize,
    rate: u64,
    churn_secs: u64,
    random: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        secs: 10,
        rounds: 3,
        rate: 2000,
        churn_secs: 20,
        random: 5000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = || args.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match args[i].as_str() {
            "--secs" => o.secs = v().expect("--secs N"),
            "--rounds" => o.rounds = v().expect("--rounds N") as usize,
            "--rate" => o.rate = v().expect("--rate N"),
            "--churn-secs" => o.churn_secs = v().expect("--churn-secs N"),
            "--random" => o.random = v().expect("--random N") as usize,
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// The BGP message around an encoded body.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// OPEN: version 4, AS_TRANS when the ASN needs 4 bytes, multiprotocol IPv4 and IPv6 unicast,
/// 4-byte ASN.
fn open(asn: u32, hold: u16, id: Ipv4Addr) -> Vec<u8> {
    let mut caps = Vec::new();
    for afi in [1u16, 2] {
        caps.extend_from_slice(&[1, 4]);
        caps.extend_from_slice(&afi.to_be_bytes());
        caps.extend_from_slice(&[0, 1]);
    }
    caps.extend_from_slice(&[65, 4]);
    caps.extend_from_slice(&asn.to_be_bytes());
    let mut b = vec![4];
    let two = if asn > 65535 { 23456 } else { asn as u16 };
    b.extend_from_slice(&two.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push(caps.len() as u8 + 2);
    b.push(2);
    b.push(caps.len() as u8);
    b.extend_from_slice(&caps);
    frame(1, &b)
}

/// UPDATE messages (whole BGP messages) for `withdrawn` and `announced` with `attributes`:
/// bgpkit-parser's encoder, halving the prefix lists until each message fits in 4096 bytes.
fn updates(
    withdrawn: &[NetworkPrefix],
    attributes: &Attributes,
    announced: &[NetworkPrefix],
    out: &mut Vec<Vec<u8>>,
) {
    let msg = BgpMessage::Update(BgpUpdateMessage {
        withdrawn_prefixes: withdrawn.to_vec(),
        attributes: if announced.is_empty() {
            Attributes::default()
        } else {
            attributes.clone()
        },
        announced_prefixes: announced.to_vec(),
    });
    let bytes = msg.encode(AsnLength::Bits32).expect("encode UPDATE");
    if bytes.len() <= MAX_MSG {
        out.push(bytes.to_vec());
        return;
    }
    if withdrawn.len() > 1 {
        let (a, b) = withdrawn.split_at(withdrawn.len() / 2);
        updates(a, attributes, &[], out);
        updates(b, attributes, announced, out);
    } else if announced.len() > 1 {
        let (a, b) = announced.split_at(announced.len() / 2);
        updates(withdrawn, attributes, a, out);
        updates(&[], attributes, b, out);
    } else {
        panic!("one prefix does not fit in an UPDATE");
    }
}

/// Attributes for our session from a received UPDATE's: AS_PATH merged with AS4_PATH (RFC 6793
/// forbids AS4_PATH and AS4_AGGREGATOR between 4-byte speakers), everything else as received.
fn session_attributes(a: &Attributes) -> Attributes {
    let path = a.effective_as_path();
    let mut v: Vec<Attribute> = Vec::new();
    for attr in a.clone().into_attributes_iter() {
        match &attr.value {
            AttributeValue::As4Path(_) | AttributeValue::As4Aggregator { .. } => {}
            AttributeValue::AsPath(_) => {
                v.push(Attribute::from(AttributeValue::AsPath(
                    path.clone().unwrap_or_default(),
                )));
            }
            AttributeValue::MpReachNlri(_) | AttributeValue::MpUnreachNlri(_) => {
                panic!("the stream has multiprotocol NLRI; this replay sends IPv4 only")
            }
            _ => v.push(attr),
        }
    }
    if a.as_path().is_none()
        && let Some(p) = path
    {
        v.push(Attribute::from(AttributeValue::AsPath(p)));
    }
    Attributes::from(v)
}

/// The origin of a path as Signpost's file reader and the RIB text see it: the last ASN of the
/// last segment (the first member of a final AS_SET).
fn origin_of(p: &AsPath) -> Option<u32> {
    let seg = p.iter_segments().rfind(|s| !s.is_empty())?;
    match seg {
        AsPathSegment::AsSequence(v) | AsPathSegment::ConfedSequence(v) => {
            v.last().map(|a| a.to_u32())
        }
        AsPathSegment::AsSet(v) | AsPathSegment::ConfedSet(v) => v.first().map(|a| a.to_u32()),
    }
}

/// An IPv4 prefix as (start, length).
type P4 = (u32, u8);

fn p4(n: &NetworkPrefix) -> Option<P4> {
    match n.prefix.addr() {
        IpAddr::V4(a) => {
            let len = n.prefix.prefix_len();
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some((u32::from(a) & mask, len))
        }
        IpAddr::V6(_) => None,
    }
}

/// A feed ready to send: its UPDATE messages and the table they leave (prefix → origin, path).
struct Feed {
    name: String,
    messages: Vec<Vec<u8>>,
    table: BTreeMap<P4, (u32, AsPath, Attributes)>,
    prefixes_sent: usize,
}

/// The update stream, re-encoded record by record.
fn load_stream(path: &Path) -> Feed {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = flate2::read::MultiGzDecoder::new(BufReader::new(file));
    let parser = bgpkit_parser::BgpkitParser::from_reader(reader);
    let mut f = Feed {
        name: "stream".into(),
        messages: Vec::new(),
        table: BTreeMap::new(),
        prefixes_sent: 0,
    };
    let (mut records, mut states, mut others, mut empty_paths) = (0usize, 0usize, 0usize, 0usize);
    for rec in parser.into_record_iter() {
        records += 1;
        let MrtMessage::Bgp4Mp(m) = rec.message else {
            others += 1;
            continue;
        };
        let m = match m {
            Bgp4MpEnum::Message(m) => m,
            Bgp4MpEnum::StateChange(_) => {
                states += 1;
                continue;
            }
        };
        let BgpMessage::Update(u) = m.bgp_message else {
            others += 1;
            continue;
        };
        let attrs = session_attributes(&u.attributes);
        let path = attrs.as_path().cloned().unwrap_or_default();
        for w in &u.withdrawn_prefixes {
            if let Some(p) = p4(w) {
                f.table.remove(&p);
            }
        }
        if !u.announced_prefixes.is_empty() {
            match origin_of(&path) {
                Some(origin) => {
                    for a in &u.announced_prefixes {
                        if let Some(p) = p4(a) {
                            f.table.insert(p, (origin, path.clone(), attrs.clone()));
                        }
                    }
                }
                None => {
                    // An empty AS_PATH from an external peer: RFC 7606 treat-as-withdraw.
                    empty_paths += u.announced_prefixes.len();
                    for a in &u.announced_prefixes {
                        if let Some(p) = p4(a) {
                            f.table.remove(&p);
                        }
                    }
                }
            }
        }
        f.prefixes_sent += u.withdrawn_prefixes.len() + u.announced_prefixes.len();
        updates(
            &u.withdrawn_prefixes,
            &attrs,
            &u.announced_prefixes,
            &mut f.messages,
        );
    }
    println!(
        "stream: {records} MRT records ({states} state changes, {others} other), {} UPDATEs re-encoded, {empty_paths} announcements with an empty AS_PATH (withdrawals for an external peer), {} prefixes in the final table",
        f.messages.len(),
        f.table.len()
    );
    f
}

/// A path in bgpdump's text: ASNs separated by spaces, AS_SETs as `{a,b}`.
fn parse_path(s: &str) -> AsPath {
    let mut segs: Vec<AsPathSegment> = Vec::new();
    let mut seq: Vec<u32> = Vec::new();
    for tok in s.split_whitespace() {
        if let Some(set) = tok.strip_prefix('{') {
            if !seq.is_empty() {
                segs.push(AsPathSegment::sequence(std::mem::take(&mut seq)));
            }
            let set: Vec<u32> = set
                .trim_end_matches('}')
                .split(',')
                .filter_map(|a| a.parse().ok())
                .collect();
            segs.push(AsPathSegment::set(set));
        } else if let Ok(a) = tok.parse() {
            seq.push(a);
        }
    }
    if !seq.is_empty() {
        segs.push(AsPathSegment::sequence(seq));
    }
    AsPath::from_segments(segs)
}

/// The two peers with the most prefixes in the RIB text, each as a feed.
fn load_rib(path: &Path) -> Vec<Feed> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(BufReader::new(file))
        .read_to_string(&mut text)
        .expect("read the RIB text");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for l in text.lines() {
        if let Some(peer) = l.split('|').nth(3) {
            *count.entry(peer).or_default() += 1;
        }
    }
    let mut peers: Vec<(&str, usize)> = count.into_iter().collect();
    peers.sort_by_key(|&(p, c)| (std::cmp::Reverse(c), p));
    let mut feeds = Vec::new();
    for (k, &(peer, _)) in peers.iter().take(2).enumerate() {
        // (path, origin attribute, next hop) → prefixes, in order of first appearance.
        let mut groups: Vec<(String, Vec<NetworkPrefix>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut f = Feed {
            name: format!("rib{}", ["A", "B"][k]),
            messages: Vec::new(),
            table: BTreeMap::new(),
            prefixes_sent: 0,
        };
        let mut peer_as = 0u32;
        for l in text.lines() {
            let c: Vec<&str> = l.split('|').collect();
            if c.len() < 9 || c[3] != peer || c[2] != "B" {
                continue;
            }
            peer_as = c[4].parse().unwrap_or(0);
            let Ok(prefix) = c[5].parse::<NetworkPrefix>() else {
                continue;
            };
            let key = format!("{}|{}|{}", c[6], c[7], c[8]);
            let g = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(prefix);
        }
        for (key, prefixes) in &groups {
            let c: Vec<&str> = key.split('|').collect();
            let path = parse_path(c[0]);
            let origin = match c[1] {
                "EGP" => Origin::EGP,
                "INCOMPLETE" => Origin::INCOMPLETE,
                _ => Origin::IGP,
            };
            let nh: IpAddr = c[2]
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
            let attrs = Attributes::from(vec![
                Attribute::from(AttributeValue::Origin(origin)),
                Attribute::from(AttributeValue::AsPath(path.clone())),
                Attribute::from(AttributeValue::NextHop(nh)),
            ]);
            let o = origin_of(&path).unwrap_or(0);
            for p in prefixes {
                if let Some(k) = p4(p) {
                    f.table.insert(k, (o, path.clone(), attrs.clone()));
                }
            }
            f.prefixes_sent += prefixes.len();
            updates(&[], &attrs, prefixes, &mut f.messages);
        }
        println!(
            "{}: RIB peer {peer} AS{peer_as}: {} prefixes, {} attribute sets, {} UPDATEs",
            f.name,
            f.table.len(),
            groups.len(),
            f.messages.len()
        );
        feeds.push(f);
    }
    feeds
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// One established session: the socket, a reader that answers nothing but records what the
/// server sends, and a keepalive timer.
struct Session {
    name: String,
    out: Arc<Mutex<TcpStream>>,
    down: Arc<AtomicBool>,
    notice: Arc<Mutex<Option<String>>>,
}

fn read_msg(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 19];
    s.read_exact(&mut h)?;
    let len = u16::from_be_bytes([h[16], h[17]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body)?;
    Ok((h[18], body))
}

impl Session {
    fn connect(name: &str, from: Ipv4Addr, to: SocketAddr, asn: u32) -> Session {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
            .expect("bind the source address");
        sock.connect_timeout(&to.into(), Duration::from_secs(5))
            .expect("connect to Signpost's BGP listener");
        let mut s: TcpStream = sock.into();
        s.set_nodelay(true).ok();
        s.write_all(&open(asn, 90, from)).expect("send OPEN");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let (mut got_open, mut got_ka) = (false, false);
        let mut hold = 90u16;
        while !(got_open && got_ka) {
            let (kind, body) = read_msg(&mut s).expect("read during the OPEN exchange");
            match kind {
                1 => {
                    got_open = true;
                    hold = hold.min(u16::from_be_bytes([body[3], body[4]]));
                    s.write_all(&frame(4, &[])).expect("send KEEPALIVE");
                }
                4 => got_ka = true,
                3 => panic!(
                    "{name}: NOTIFICATION during the OPEN exchange: code {} subcode {}",
                    body[0], body[1]
                ),
                k => panic!("{name}: unexpected message type {k} during the OPEN exchange"),
            }
        }
        s.set_read_timeout(None).ok();
        let out = Arc::new(Mutex::new(s.try_clone().expect("clone socket")));
        let down = Arc::new(AtomicBool::new(false));
        let notice = Arc::new(Mutex::new(None));
        {
            let (down, notice, name) = (down.clone(), notice.clone(), name.to_string());
            let mut r = s;
            std::thread::spawn(move || {
                loop {
                    match read_msg(&mut r) {
                        Ok((4, _)) => {}
                        Ok((3, b)) => {
                            let m = format!(
                                "NOTIFICATION code {} subcode {} data {:02x?}",
                                b[0],
                                b[1],
                                &b[2..b.len().min(16)]
                            );
                            eprintln!("{name}: {m}");
                            *notice.lock().unwrap() = Some(m);
                        }
                        Ok((k, _)) => eprintln!("{name}: message type {k} from the server"),
                        Err(e) => {
                            if !down.swap(true, Ordering::SeqCst) {
                                let mut n = notice.lock().unwrap();
                                if n.is_none() {
                                    *n = Some(format!("connection ended: {e}"));
                                }
                            }
                            return;
                        }
                    }
                }
            });
        }
        if hold > 0 {
            let (out, down) = (out.clone(), down.clone());
            let every = Duration::from_secs((hold / 3).max(1) as u64);
            std::thread::spawn(move || {
                while !down.load(Ordering::SeqCst) {
                    std::thread::sleep(every);
                    if out.lock().unwrap().write_all(&frame(4, &[])).is_err() {
                        return;
                    }
                }
            });
        }
        Session {
            name: name.into(),
            out,
            down,
            notice,
        }
    }

    /// Sends `msgs` in one go per chunk of about 64 KiB (TCP backpressure sets the pace).
    fn send(&self, msgs: &[Vec<u8>]) {
        let mut buf = Vec::with_capacity(1 << 17);
        for m in msgs {
            buf.extend_from_slice(m);
            if buf.len() >= 1 << 16 {
                self.write(&buf);
                buf.clear();
            }
        }
        if !buf.is_empty() {
            self.write(&buf);
        }
    }

    fn write(&self, b: &[u8]) {
        if let Err(e) = self.out.lock().unwrap().write_all(b) {
            panic!(
                "{}: write failed: {e} ({:?})",
                self.name,
                self.notice.lock().unwrap()
            );
        }
    }

    fn check(&self) {
        if self.down.load(Ordering::SeqCst) || self.notice.lock().unwrap().is_some() {
            panic!(
                "{}: the server ended the session: {:?}",
                self.name,
                self.notice.lock().unwrap()
            );
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.down.store(true, Ordering::SeqCst);
        let _ = self.out.lock().unwrap().shutdown(std::net::Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------------------------
// The server

struct Server {
    child: Child,
    pid: u32,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    socket: PathBuf,
    bin: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `line` without terminal colour sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (false, c) => out.push(c),
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
        }
    }
    out
}

/// A `reloaded` line: build milliseconds and the live route count.
fn reloaded(line: &str) -> Option<(u64, u64)> {
    if !line.contains("reloaded") {
        return None;
    }
    let ms = line
        .split("ms=")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let routes = line
        .split("feeds: ")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some((ms, routes))
}

impl Server {
    fn start(bin: &Path, config: &Path, socket: &Path) -> Server {
        let mut child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--control")
            .arg(socket)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start signpost");
        let pid = child.id();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if l.contains("ready") {
                    let _ = tx.send(l);
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push((Instant::now(), strip_ansi(&l)));
                }
            });
        }
        let s = Server {
            child,
            pid,
            log,
            socket: socket.into(),
            bin: bin.into(),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => println!("{l}"),
            Err(_) => {
                for (_, l) in s.log.lock().unwrap().iter() {
                    eprintln!("  {l}");
                }
                panic!("signpost did not get ready in 60 s");
            }
        }
        s
    }

    /// The pid behind `taskset` (taskset execs, so it is the same process).
    fn rss_mb(&self) -> f64 {
        self.status_mb("VmRSS")
    }

    fn status_mb(&self, key: &str) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }

    /// utime + stime in seconds.
    fn cpu(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let after = s.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let u: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        (u + st) / 100.0
    }

    /// `reloaded` lines logged after `since`: (time, ms, routes).
    fn builds(&self, since: Instant) -> Vec<(Instant, u64, u64)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(t, l)| reloaded(l).map(|(ms, r)| (*t, ms, r)))
            .collect()
    }

    fn alive(&self) {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        if s.is_empty()
            || s.rsplit(')')
                .next()
                .is_some_and(|x| x.trim_start().starts_with('Z'))
        {
            for (_, l) in self.log.lock().unwrap().iter().rev().take(30) {
                eprintln!("  {l}");
            }
            panic!("signpost is gone");
        }
    }

    /// Fresh IPv4 prefix count of each session, from `ctl bgp --json`.
    fn sessions(&self) -> HashMap<String, (String, u64)> {
        let out = Command::new(&self.bin)
            .args(["ctl", "--socket"])
            .arg(&self.socket)
            .args(["--json", "bgp"])
            .output()
            .expect("ctl bgp");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut m = HashMap::new();
        fn find(v: &serde_json::Value) -> Option<Vec<serde_json::Value>> {
            match v {
                serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
                    if k == "sessions" {
                        x.as_array().cloned()
                    } else {
                        find(x)
                    }
                }),
                _ => None,
            }
        }
        let list = find(&v).unwrap_or_default();
        for s in list {
            let name = s
                .get("peer")
                .or_else(|| s.get("name"))
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_string();
            let state = s.get("state").map(|x| x.to_string()).unwrap_or_default();
            let n = s.get("ipv4_prefixes").and_then(|x| x.as_u64()).unwrap_or(0);
            m.insert(name, (state, n));
        }
        m
    }

    fn last_log(&self, n: usize) -> Vec<String> {
        let l = self.log.lock().unwrap();
        l.iter()
            .rev()
            .take(n)
            .rev()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

/// Waits until the server has been idle (under 3 % of a core over a second) with no build
/// finishing for `quiet` (at most `limit`): a pending or running build makes it wait.
fn settle(sp: &Server, quiet: Duration, limit: Duration) {
    let t0 = Instant::now();
    let mut last_build = None::<Instant>;
    loop {
        let c0 = sp.cpu();
        std::thread::sleep(Duration::from_secs(1));
        let busy = sp.cpu() - c0;
        if let Some(b) = sp.builds(t0).last() {
            last_build = Some(b.0);
        }
        let since = last_build.map_or(t0.elapsed(), |t| t.elapsed());
        if (busy < 0.03 && since >= quiet) || t0.elapsed() > limit {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading a table

/// Sends a whole feed over a new session and reports the times.
fn load_feed(
    sp: &Server,
    f: &Feed,
    from: Ipv4Addr,
    bgp: SocketAddr,
    asn: u32,
    expect_total: u64,
) -> Session {
    let t_conn = Instant::now();
    let s = Session::connect(&f.name, from, bgp, asn);
    let t_up = Instant::now();
    let cpu0 = sp.cpu();
    s.send(&f.messages);
    let t_sent = Instant::now();
    let want = f.table.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut t_recv = None;
    let mut t_built = None;
    while Instant::now() < deadline && (t_recv.is_none() || t_built.is_none()) {
        s.check();
        sp.alive();
        if t_recv.is_none() && sp.sessions().get(&f.name).is_some_and(|x| x.1 >= want) {
            t_recv = Some(Instant::now());
        }
        if t_built.is_none()
            && let Some(b) = sp.builds(t_up).into_iter().find(|b| b.2 >= expect_total)
        {
            t_built = Some(b.0);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (Some(t_recv), Some(t_built)) = (t_recv, t_built) else {
        for l in sp.last_log(20) {
            eprintln!("  {l}");
        }
        panic!(
            "{}: table not complete within 180 s: sessions {:?}",
            f.name,
            sp.sessions()
        );
    };
    let builds = sp.builds(t_up);
    let during: Vec<_> = builds.iter().filter(|b| b.0 <= t_built).collect();
    println!(
        "{}: {} UPDATEs ({} prefixes, {:.1} MB) connect+OPEN {:.0} ms; written in {:.2} s; all {} prefixes in the session table at {:.2} s; serving (reloaded with {} routes) at {:.2} s after session up; {} builds meanwhile (ms: {:?}); server CPU {:.2} s",
        f.name,
        f.messages.len(),
        f.prefixes_sent,
        f.messages.iter().map(|m| m.len()).sum::<usize>() as f64 / 1e6,
        (t_up - t_conn).as_secs_f64() * 1e3,
        (t_sent - t_up).as_secs_f64(),
        want,
        (t_recv - t_up).as_secs_f64(),
        during.last().map_or(0, |b| b.2),
        (t_built - t_up).as_secs_f64(),
        during.len(),
        during.iter().map(|b| b.1).collect::<Vec<_>>(),
        sp.cpu() - cpu0,
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Changes

/// A deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A change source over a feed's table: each batch takes `n` random prefixes and either
/// announces them with the peer's AS prepended once more (a longer path, same origin),
/// withdraws them (one batch in ten), or re-announces them as they were.
struct Churn<'a> {
    keys: Vec<P4>,
    table: &'a BTreeMap<P4, (u32, AsPath, Attributes)>,
    rng: Rng,
    batches: u64,
}

impl<'a> Churn<'a> {
    fn new(table: &'a BTreeMap<P4, (u32, AsPath, Attributes)>) -> Churn<'a> {
        Churn {
            keys: table.keys().copied().collect(),
            table,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            batches: 0,
        }
    }

    /// UPDATE messages changing `n` prefixes.
    fn batch(&mut self, n: usize) -> Vec<Vec<u8>> {
        self.batches += 1;
        let kind = self.batches % 10;
        let mut out = Vec::new();
        let pick: Vec<P4> = (0..n)
            .map(|_| self.keys[(self.rng.next() % self.keys.len() as u64) as usize])
            .collect();
        let np = |&(s, l): &P4| {
            NetworkPrefix::new(
                ipnet::IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(s), l).unwrap()),
                None,
            )
        };
        if kind == 0 {
            let w: Vec<NetworkPrefix> = pick.iter().map(np).collect();
            updates(&w, &Attributes::default(), &[], &mut out);
            return out;
        }
        for p in &pick {
            let (_, path, attrs) = &self.table[p];
            let attrs = if kind % 2 == 1 {
                let mut segs: Vec<AsPathSegment> = path.iter_segments().cloned().collect();
                let first = origin_first(path).unwrap_or(64512);
                match segs.first_mut() {
                    Some(AsPathSegment::AsSequence(v)) => v.insert(0, first.into()),
                    _ => segs.insert(0, AsPathSegment::sequence([first])),
                }
                let longer = AsPath::from_segments(segs);
                Attributes::from(
                    attrs
                        .clone()
                        .into_attributes_iter()
                        .map(|a| match &a.value {
                            AttributeValue::AsPath(_) => {
                                Attribute::from(AttributeValue::AsPath(longer.clone()))
                            }
                            _ => a,
                        })
                        .collect::<Vec<_>>(),
                )
            } else {
                attrs.clone()
            };
            updates(&[], &attrs, &[np(p)], &mut out);
        }
        out
    }
}

/// The first ASN of a path (the neighbour).
fn origin_first(p: &AsPath) -> Option<u32> {
    match p.iter_segments().find(|s| !s.is_empty())? {
        AsPathSegment::AsSequence(v) | AsPathSegment::AsSet(v) => v.first().map(|a| a.to_u32()),
        AsPathSegment::ConfedSequence(v) | AsPathSegment::ConfedSet(v) => {
            v.first().map(|a| a.to_u32())
        }
    }
}

/// Sends changes at `rate` prefixes per second (0: as fast as the session takes them) for
/// `secs`, in batches of `per` prefixes; returns the prefixes sent and the seconds taken.
fn stream(
    s: &Session,
    churn: &mut Churn,
    rate: u64,
    secs: u64,
    per: usize,
    stop: &AtomicBool,
) -> (u64, f64) {
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let mut sent = 0u64;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        let msgs = churn.batch(per);
        s.send(&msgs);
        sent += per as u64;
        if rate > 0 {
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
    (sent, t0.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Load generator

fn loadgen(dns: u16, secs: u64) -> (u64, u64) {
    let out = Command::new("taskset")
        .args(["-c", "1", LOADGEN, "--server"])
        .arg(format!("127.0.0.1:{dns}"))
        .args([
            "--qname",
            "dl.example.test",
            "--ecs",
            "random",
            "--duration",
        ])
        .arg(secs.to_string())
        .args(["--threads", "1", "--sockets", "16", "--window", "8"])
        .output()
        .expect("run the load generator");
    let s = String::from_utf8_lossy(&out.stdout);
    let num = |k: &str| {
        s.split(&format!("\"{k}\":"))
            .nth(1)
            .and_then(|x| x.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (num("qps"), num("timeouts"))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------------
// Differential

/// `lookup` output parsed: address → (prefix, origin) of the line that starts with `key`
/// (`None` when the address has no such line).
fn parse_lookup(out: &str, key: &str) -> HashMap<String, Option<(String, u32)>> {
    let mut m = HashMap::new();
    let mut cur: Option<String> = None;
    for l in out.lines() {
        if !l.starts_with(' ') {
            cur = Some(l.trim().to_string());
            m.insert(l.trim().to_string(), None);
            continue;
        }
        let t = l.trim();
        if let Some(c) = &cur
            && t.starts_with(key)
        {
            // "...AS<origin> (prefix <p>, ..." or "... <p> ... AS<n>"
            let asn = t
                .split("AS")
                .skip(1)
                .find_map(|x| x.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
            let pfx = t
                .split([' ', ',', '(', ')'])
                .find(|w| w.contains('/') && w.parse::<ipnet::IpNet>().is_ok());
            if let (Some(a), Some(p)) = (asn, pfx) {
                m.insert(c.clone(), Some((p.to_string(), a)));
            }
        }
    }
    m
}

fn run_lookup(bin: &Path, args: &[&str], extra: &Path, addrs: &[String], per: usize) -> String {
    let mut out = String::new();
    for chunk in addrs.chunks(per) {
        let mut c = Command::new(bin)
            .arg("lookup")
            .args(args)
            .arg(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("signpost lookup");
        let mut stdin = c.stdin.take().unwrap();
        let input = chunk.join("\n") + "\n";
        let h = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let o = c.wait_with_output().expect("lookup output");
        h.join().ok();
        if !o.status.success() {
            panic!(
                "signpost lookup {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        out.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    out
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let o = opts();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join(DATA);
    // SIGNPOST_BIN measures another build (a copy of an older one, for before and after).
    let bin = std::env::var_os("SIGNPOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/signpost"));
    if !data.join(STREAM).exists() || !data.join(RIB_TEXT).exists() {
        println!("{} is not here; nothing to measure", data.display());
        return;
    }
    assert!(
        bin.exists(),
        "build the server first: cargo build --release ({} is missing)",
        bin.display()
    );
    assert!(
        Path::new(LOADGEN).exists(),
        "build the load generator first: cargo build --release --manifest-path ../shared/tools/loadgen/Cargo.toml --target-dir /tmp/loadgen-target"
    );

    let t = Instant::now();
    let stream_feed = load_stream(&data.join(STREAM));
    let ribs = load_rib(&data.join(RIB_TEXT));
    println!("inputs prepared in {:.1} s", t.elapsed().as_secs_f64());

    // Configuration: three feeds; fra1's view is the stream, ams1's the two RIB peers; every
    // client is ranked between them by proximity, and the top origins of the stream get a
    // region of their own, so both `asns` and proximity depend on the live tables.
    let dir = std::env::temp_dir().join(format!("signpost-bgp-feed.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let free = |ip: &str| {
        std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (dns, bgp_port) = (free("127.0.0.1"), free("127.0.0.1"));
    let bgp: SocketAddr = format!("127.0.0.1:{bgp_port}").parse().unwrap();
    let mut origins: HashMap<u32, usize> = HashMap::new();
    for (o, _, _) in stream_feed.table.values() {
        *origins.entry(*o).or_default() += 1;
    }
    let mut top: Vec<(u32, usize)> = origins.into_iter().collect();
    top.sort_by_key(|&(a, c)| (std::cmp::Reverse(c), a));
    let top: Vec<String> = top.iter().take(20).map(|(a, _)| a.to_string()).collect();
    let peer_addrs = [
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    ];
    let peer_asns = [65001u32, 65002, 65003];
    std::fs::write(
        dir.join("map.yaml"),
        format!(
            "nodes:\n  - {{ name: fra1, ipv4: [192.0.2.10] }}\n  - {{ name: ams1, ipv4: [192.0.2.20] }}\n  - {{ name: iad1, ipv4: [198.51.100.10] }}\n\
             regions:\n  - {{ name: europe, nodes: [fra1, ams1], rank: proximity }}\n  - {{ name: na, nodes: [iad1] }}\n\
             services:\n  - names: [dl.example.test]\n    ttl: 60\n    rules:\n      - {{ asns: [{}], regions: [na, europe] }}\n      - {{ default: true, regions: [europe, na] }}\n",
            top.join(", ")
        ),
    )
    .unwrap();
    let zone = "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster, minimum: 300 }\n    ns: [{ name: ns1.example.test., addresses: [127.0.0.1] }]\nmaps: [map.yaml]\n";
    let mut feeds_yaml = format!(
        "feeds:\n  asn: {OUR_ASN}\n  router_id: 192.0.2.53\n  listen: 127.0.0.1:{bgp_port}\n  stale_ms: 120000\n  update_delay_ms: 1000\n  peers:\n"
    );
    for (i, (name, node)) in [("stream", "fra1"), ("ribA", "ams1"), ("ribB", "ams1")]
        .iter()
        .enumerate()
    {
        feeds_yaml.push_str(&format!(
            "    - {{ name: {name}, address: {}, asn: {}, nodes: [{node}], hold_time: 90, families: [ipv4, ipv6], max_prefixes: 2000000 }}\n",
            peer_addrs[i], peer_asns[i]
        ));
    }
    let config = dir.join("signpost.yaml");
    std::fs::write(
        &config,
        format!("listen: [\"127.0.0.1:{dns}\"]\nworkers: 1\n{zone}{feeds_yaml}"),
    )
    .unwrap();
    // The same stream read as a file, for the differential.
    let file_config = dir.join("file.yaml");
    std::fs::write(
        &file_config,
        format!(
            "listen: [\"127.0.0.1:{dns}\"]\nworkers: 1\n{zone}bgp: [{{ path: {}, format: mrt }}]\n",
            data.join(STREAM).display()
        ),
    )
    .unwrap();
    let socket = dir.join("control.sock");

    // 1 + 2: load the tables one by one; RSS before and after each.
    let sp = Server::start(&bin, &config, &socket);
    std::thread::sleep(Duration::from_secs(2));
    let mut rss = vec![sp.rss_mb()];
    let (q, _) = loadgen(dns, o.secs);
    println!("random ECS before any feed (no live data): {q} qps");
    println!("RSS before any feed: {:.1} MB", rss[0]);
    let mut sessions = Vec::new();
    let mut total = 0u64;
    for (i, f) in std::iter::once(&stream_feed).chain(ribs.iter()).enumerate() {
        total += f.table.len() as u64;
        let s = load_feed(&sp, f, peer_addrs[i], bgp, peer_asns[i], total);
        settle(&sp, Duration::from_secs(3), Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(1));
        rss.push(sp.rss_mb());
        println!(
            "RSS with {} full feed(s): {:.1} MB ({:+.1} MB); peak so far (VmHWM) {:.1} MB",
            i + 1,
            rss[i + 1],
            rss[i + 1] - rss[i],
            sp.status_mb("VmHWM")
        );
        sessions.push(s);
    }
    let stream_session = &sessions[0];

    // 3: following changes. Steady rate, then as fast as the session takes them.
    let mut churn = Churn::new(&stream_feed.table);
    let never = AtomicBool::new(false);
    for (label, rate, per) in [("steady", o.rate, 10usize), ("unthrottled", 0, 50)] {
        settle(&sp, Duration::from_secs(2), Duration::from_secs(30));
        let t0 = Instant::now();
        let c0 = sp.cpu();
        let (sent, secs) = stream(stream_session, &mut churn, rate, o.churn_secs, per, &never);
        // Let the last coalesced build finish.
        settle(&sp, Duration::from_secs(3), Duration::from_secs(60));
        let c1 = sp.cpu();
        let b = sp.builds(t0);
        stream_session.check();
        let ms: Vec<f64> = b.iter().map(|x| x.1 as f64).collect();
        println!(
            "changes {label}: {sent} prefix changes in {secs:.1} s = {:.0} /s absorbed; {} builds; server CPU {:.2} s = {:.0} ms per build; build ms median {:.0}, max {:.0}",
            sent as f64 / secs,
            b.len(),
            c1 - c0,
            (c1 - c0) * 1e3 / b.len().max(1) as f64,
            median(ms.clone()),
            ms.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "RSS after the {label} changes: {:.1} MB; peak so far (VmHWM) {:.1} MB",
            sp.rss_mb(),
            sp.status_mb("VmHWM")
        );
    }

    // 4: random-ECS throughput, rounds without and with changes streaming (alternating order).
    let mut ratios = Vec::new();
    let (mut q_without, mut q_with) = (Vec::new(), Vec::new());
    for r in 0..o.rounds {
        let mut pair = [0u64; 2];
        let order: [bool; 2] = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with in order {
            settle(&sp, Duration::from_secs(2), Duration::from_secs(30));
            let t0 = Instant::now();
            let (qps, timeouts, builds, sent) = if with {
                let stop = AtomicBool::new(false);
                let (res, (sent, _)) = std::thread::scope(|sc| {
                    let h = sc.spawn(|| {
                        stream(stream_session, &mut churn, o.rate, o.secs + 1, 10, &stop)
                    });
                    let res = loadgen(dns, o.secs);
                    stop.store(true, Ordering::SeqCst);
                    (res, h.join().unwrap())
                });
                (res.0, res.1, sp.builds(t0).len(), sent)
            } else {
                let res = loadgen(dns, o.secs);
                (res.0, res.1, sp.builds(t0).len(), 0)
            };
            println!(
                "round {} {:<16} {qps:>7} qps  timeouts {timeouts}  builds {builds}  prefix changes sent {sent}",
                r + 1,
                if with {
                    "with changes"
                } else {
                    "without changes"
                }
            );
            pair[with as usize] = qps;
        }
        q_without.push(pair[0] as f64);
        q_with.push(pair[1] as f64);
        ratios.push(pair[1] as f64 / pair[0].max(1) as f64);
    }
    println!(
        "random ECS: median {:.0} qps without changes, {:.0} with {} changes/s; per-round ratios {:?}, median {:.3}",
        median(q_without),
        median(q_with),
        o.rate,
        ratios
            .iter()
            .map(|r| (r * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>(),
        median(ratios.clone())
    );

    // 5: put the stream back (the whole stream once more, in order), then compare the live
    // feed with the file table.
    settle(&sp, Duration::from_secs(2), Duration::from_secs(30));
    let t0 = Instant::now();
    stream_session.send(&stream_feed.messages);
    let want = stream_feed.table.len() as u64;
    loop {
        stream_session.check();
        sp.alive();
        if sp.sessions().get("stream").is_some_and(|x| x.1 == want) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "stream table not back in 180 s: {:?}",
            sp.sessions()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    settle(&sp, Duration::from_secs(3), Duration::from_secs(60));
    println!(
        "stream replayed again in {:.1} s; sessions {:?}",
        t0.elapsed().as_secs_f64(),
        sp.sessions()
    );
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut addrs: Vec<String> = stream_feed
        .table
        .keys()
        .map(|&(s, _)| Ipv4Addr::from(s).to_string())
        .collect();
    addrs.sort();
    addrs.dedup();
    let starts = addrs.len();
    for _ in 0..o.random {
        addrs.push(Ipv4Addr::from(rng.next() as u32).to_string());
    }
    let t0 = Instant::now();
    let live = run_lookup(&bin, &["--socket"], &socket, &addrs, 3000);
    let t_live = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let file = run_lookup(&bin, &["--config"], &file_config, &addrs, 1_000_000);
    let t_file = t0.elapsed().as_secs_f64();
    let sample_addr = &addrs[starts];
    let show = |out: &str, a: &str| -> String {
        let mut on = false;
        let mut s = String::new();
        for l in out.lines() {
            if !l.starts_with(' ') {
                on = l.trim() == a;
            }
            if on {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    };
    println!(
        "lookup of {} addresses: live {t_live:.1} s, file {t_file:.1} s; sample:\n--- live\n{}--- file\n{}",
        addrs.len(),
        show(&live, sample_addr),
        show(&file, sample_addr)
    );
    let live_m = parse_lookup(&live, "feed stream");
    let file_m = parse_lookup(&file, "asn");
    let (mut compared, mut mismatches, mut shown) = (0usize, 0usize, 0usize);
    let mut covered = 0usize;
    for a in &addrs {
        compared += 1;
        let l = live_m.get(a).cloned().flatten();
        let f = file_m.get(a).cloned().flatten();
        if l.is_some() {
            covered += 1;
        }
        if l != f {
            mismatches += 1;
            if shown < 10 {
                shown += 1;
                println!("MISMATCH {a}: live {l:?} file {f:?}");
            }
        }
    }
    println!(
        "differential: {compared} addresses ({starts} prefix starts + {} random), {covered} covered by the live feed, mismatches {mismatches}",
        o.random
    );
    for s in &sessions {
        s.check();
    }
    sp.alive();
    drop(sessions);
    drop(sp);
}
