//! Client data loading against real files: MRT dumps compared prefix by prefix with the
//! recorded `bgpdump -m` output, truncated and corrupt inputs, MaxMind's test and corrupt
//! databases, and a server that keeps its data when a file is replaced by a broken one.

mod common;
use common::*;

use std::collections::HashMap;
use std::io::Read;

use signpost::bgp::{BgpTable, TableFormat};
use signpost::geo::GeoDb;

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(testdata(rel)).unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// (peer, path id) → (origin, path length) for one prefix.
type PeerRoutes = HashMap<(String, String), (u32, u32)>;

/// Replays `bgpdump -m` lines: per prefix, (most common origin, shortest path length).
fn expected(text: &str) -> HashMap<String, (u32, u32)> {
    let mut routes: HashMap<String, PeerRoutes> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let (kind, peer, prefix) = (f[2], f[3], f.get(5).copied().unwrap_or(""));
        let (path_id, path) = match f[0] {
            "TABLE_DUMP2_AP" | "BGP4MP_AP" => (f[6], f.get(7).copied().unwrap_or("")),
            _ => ("0", f.get(6).copied().unwrap_or("")),
        };
        match kind {
            "B" | "A" => {
                let tokens: Vec<&str> = path.split(' ').filter(|t| !t.is_empty()).collect();
                let Some(last) = tokens.last() else { continue };
                let origin: u32 = last
                    .trim_matches(|c| c == '{' || c == '}')
                    .split(',')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                routes
                    .entry(prefix.to_string())
                    .or_default()
                    .insert((peer.into(), path_id.into()), (origin, tokens.len() as u32));
            }
            "W" => {
                if let Some(r) = routes.get_mut(prefix) {
                    r.remove(&(peer.to_string(), path_id.to_string()));
                }
            }
            _ => {}
        }
    }
    routes
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(p, r)| {
            let mut votes: HashMap<u32, usize> = HashMap::new();
            for (o, _) in r.values() {
                *votes.entry(*o).or_default() += 1;
            }
            let origin = votes
                .iter()
                .map(|(a, c)| (std::cmp::Reverse(*c), *a))
                .min()
                .unwrap()
                .1;
            (p, (origin, r.values().map(|v| v.1).min().unwrap()))
        })
        .collect()
}

fn ours(t: &BgpTable) -> HashMap<String, (u32, u32)> {
    let mut out = HashMap::new();
    for &(s, l, a) in t.v4.iter() {
        let net = ip_network::IpNetwork::new(std::net::Ipv4Addr::from(s as u32), l).unwrap();
        out.insert(net.to_string(), (a, t.path_len[&net]));
    }
    for &(s, l, a) in t.v6.iter() {
        let net = ip_network::IpNetwork::new(std::net::Ipv6Addr::from(s), l).unwrap();
        out.insert(net.to_string(), (a, t.path_len[&net]));
    }
    out
}

#[test]
fn mrt_matches_bgpdump_prefix_by_prefix() {
    for file in [
        "bview.20020722.2337.gz",
        "bview.ipv4_unicast_add_path.gz",
        "bview.ipv6_unicast_add_path.gz",
        "updates.20020722.2238.gz",
        "updates.long_withdrawal.gz",
    ] {
        let want = expected(&gunzip(&read(&format!("mrt/expect/{file}.bgp.gz"))));
        let loaded = BgpTable::load(file, &read(&format!("mrt/{file}")), None);
        if want.is_empty() {
            // Only withdrawals: nothing is left, and a table of nothing is an error.
            assert!(
                loaded.unwrap_err().to_string().contains("no usable prefix"),
                "{file}"
            );
            continue;
        }
        let t = loaded.unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = ours(&t);
        let mut diffs: Vec<String> = want
            .iter()
            .filter(|(p, v)| got.get(*p) != Some(v))
            .map(|(p, v)| format!("{p}: bgpdump {v:?}, signpost {:?}", got.get(p)))
            .collect();
        diffs.extend(
            got.keys()
                .filter(|p| !want.contains_key(*p))
                .map(|p| format!("{p}: only in signpost")),
        );
        diffs.sort();
        assert!(
            diffs.is_empty(),
            "{file}: {} of {} prefixes differ:\n{}",
            diffs.len(),
            want.len(),
            diffs[..diffs.len().min(10)].join("\n")
        );
        assert_eq!(t.skipped, 0, "{file}: {:?}", t.problems);
    }
}

#[test]
fn full_table_sample_sizes() {
    // The 2002 RIS table: 112,988 prefixes (bgpdump's own count, see testdata/README.md).
    let t = BgpTable::load("bview", &read("mrt/bview.20020722.2337.gz"), None).unwrap();
    assert_eq!(t.v4.len() + t.v6.len(), 112_988);
    let (net, asn) = t.lookup("3.1.2.3".parse().unwrap()).unwrap();
    assert_eq!((net.to_string().as_str(), asn), ("3.0.0.0/8", 80));
}

#[test]
fn truncated_and_other_mrt_inputs() {
    // A RouteViews TABLE_DUMP_V2 RIB cut after its first MB, bzip2: the records before the cut
    // load, the cut is counted and reported.
    let t = BgpTable::load("rib", &read("mrt/rib.20140523.0600_firstMB.bz2"), None).unwrap();
    assert!(t.v4.len() > 5_000, "{}", t.v4.len());
    let t6 = BgpTable::load("rib6", &read("mrt/rib6.20151101.0600_firstMB.bz2"), None).unwrap();
    assert!(t6.v6.len() > 5_000, "{}", t6.v6.len());
    // Dumps written by OpenBGPD, Quagga and BIRD (RIBs and BGP4MP update streams).
    for f in [
        "openbgpd_rib_table-v2",
        "quagga_rib",
        "bird6-mrtdump_rib",
        "bird_bgp",
    ] {
        let t = BgpTable::load(f, &read(&format!("mrt/{f}")), Some(TableFormat::Mrt))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!t.v4.is_empty() || !t.v6.is_empty(), "{f}");
    }
    // OpenBGPD's multi-protocol TABLE_DUMP variant is not understood: a clear error.
    let e = BgpTable::load(
        "mp",
        &read("mrt/openbgpd_rib_table-mp"),
        Some(TableFormat::Mrt),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no usable prefix") && e.contains("MRT record 1"),
        "{e}"
    );
    // A file cut in the middle of a record: the complete records load, nothing panics.
    let whole = gunzip_bytes(&read("mrt/bview.20020722.2337.gz"));
    let cut = &whole[..whole.len() / 2 + 7];
    let t = BgpTable::load("cut", cut, Some(TableFormat::Mrt)).unwrap();
    assert!(t.v4.len() > 30_000);
    assert!(t.skipped >= 1, "the cut record is reported");
    // Garbage and empty files are errors, not panics.
    assert!(BgpTable::load("junk", &[0x55; 4000], Some(TableFormat::Mrt)).is_err());
    assert!(BgpTable::load("empty", &[], None).is_err());
    let mut header_only = whole[..12].to_vec();
    header_only.extend_from_slice(&[0xff; 3]);
    assert!(BgpTable::load("header", &header_only, Some(TableFormat::Mrt)).is_err());
}

fn gunzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut v)
        .unwrap();
    v
}

#[test]
fn maxmind_test_databases_and_corrupt_ones() {
    let city = GeoDb::open("city", read("mmdb/test-data/GeoIP2-City-Test.mmdb"), None).unwrap();
    let found = city.lookup("81.2.69.160".parse().unwrap());
    let ((continent, country, subdivision), len) = found.key.unwrap();
    assert_eq!(country.as_deref(), Some("GB"));
    assert_eq!(continent.as_deref(), Some("EU"));
    assert_eq!(subdivision.as_deref(), Some("GB-ENG"));
    assert!(found.location.is_some());
    assert_eq!(len, 27);
    let asn = GeoDb::open("asn", read("mmdb/test-data/GeoLite2-ASN-Test.mmdb"), None).unwrap();
    assert_eq!(asn.layout, signpost::geo::Layout::Asn);
    assert_eq!(
        asn.lookup("1.128.0.1".parse().unwrap()).asn.map(|a| a.0),
        Some(1221)
    );
    let country = GeoDb::open(
        "country",
        read("mmdb/test-data/GeoIP2-Country-Test.mmdb"),
        None,
    )
    .unwrap();
    assert!(country.lookup("2001:218::1".parse().unwrap()).key.is_some());
    // Every corrupt database is refused with a message; none panics.
    let mut refused = 0;
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in [
        "mmdb/bad-data/libmaxminddb",
        "mmdb/bad-data/maxminddb-golang",
        "mmdb/bad-data/maxminddb-python",
    ] {
        files.extend(
            std::fs::read_dir(testdata(dir))
                .unwrap()
                .map(|e| e.unwrap().path()),
        );
    }
    files.extend(
        [
            "MaxMind-DB-test-broken-pointers-24.mmdb",
            "MaxMind-DB-test-broken-search-tree-24.mmdb",
        ]
        .iter()
        .map(|f| std::path::PathBuf::from(testdata(&format!("mmdb/test-data/{f}")))),
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let r = std::panic::catch_unwind(|| GeoDb::open("bad", bytes, None).map(|_| ()));
        let r = r.unwrap_or_else(|_| panic!("{} panicked", f.display()));
        if r.is_err() {
            refused += 1;
        }
    }
    // A few of MaxMind's "bad" files are only bad for other readers (deep nesting, odd
    // metadata); the search-tree and pointer corruptions must all be caught.
    assert!(
        refused >= files.len() / 2,
        "{refused} of {} refused",
        files.len()
    );
    for f in [
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    ] {
        assert!(
            GeoDb::open(f, read(&format!("mmdb/test-data/{f}")), None).is_err(),
            "{f}"
        );
    }
    // Cut mid-file and empty.
    let whole = read("mmdb/test-data/GeoIP2-City-Test.mmdb");
    assert!(GeoDb::open("cut", whole[..whole.len() / 2].to_vec(), None).is_err());
    assert!(GeoDb::open("empty", Vec::new(), None).is_err());
}

#[test]
fn a_broken_replacement_keeps_the_previous_data_serving() {
    let dir = TempDir::new("baddata");
    copy_demo_maps(&dir);
    let geo = dir.path("geo.mmdb");
    std::fs::copy(testdata("geoip/GeoLite2-Country-2018-08-07.mmdb"), &geo).unwrap();
    let bgp = dir.path("table.txt");
    std::fs::copy(testdata("bgp/demo-ipasn-20151101.txt"), &bgp).unwrap();
    let cfg = dir.write(
        "signpost.yaml",
        "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\nmaps: [maps/]\ngeoip: [{ path: geo.mmdb }]\nbgp: [{ path: table.txt }]\nreload_debounce_ms: 200\nreload_priority: normal\n",
    );
    let s = Server::with_control(&cfg, &dir);
    let gb = || s.short(&["dl.example.test", "+subnet=81.2.69.0/24"]);
    let dtag = || s.short(&["dl.example.test", "+subnet=80.128.0.0/24"]);
    assert_eq!(gb(), "192.0.2.10");
    assert_eq!(dtag(), "192.0.2.12");
    let failed = |s: &Server| {
        let (_, st) = s.ctl(&["status"]);
        st["last_reload"]["ok"] == false
    };
    // A corrupt database, a truncated one, an empty one, a half-written prefix table.
    let bad_geo: Vec<(&str, Vec<u8>)> = vec![
        (
            "corrupt",
            read("mmdb/test-data/MaxMind-DB-test-broken-search-tree-24.mmdb"),
        ),
        (
            "truncated",
            read("geoip/GeoLite2-Country-2018-08-07.mmdb")[..1_000_000].to_vec(),
        ),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in bad_geo {
        let tmp = dir.path("geo.tmp");
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, &geo).unwrap();
        assert!(wait_for(30, || failed(&s)), "{what}: reload refused");
        let (_, st) = s.ctl(&["status"]);
        let err = st["last_reload"]["errors"][0].as_str().unwrap().to_string();
        assert!(err.contains("geo.mmdb"), "{what}: {err}");
        assert_eq!(gb(), "192.0.2.10", "{what}: old data still serving");
        // Restore, and wait until the good data is back in force.
        std::fs::copy(testdata("geoip/GeoLite2-Country-2018-08-07.mmdb"), &tmp).unwrap();
        std::fs::rename(&tmp, &geo).unwrap();
        assert!(
            wait_for(30, || !failed(&s)),
            "{what}: the good file is back: {}\n{}",
            s.ctl(&["status"]).1,
            s.stderr()
        );
    }
    dir.write("table.txt", "8.8.8.0/24\tnot-an-asn\n1.2.3.0/2");
    assert!(wait_for(30, || failed(&s)));
    assert_eq!(dtag(), "192.0.2.12", "the BGP data still serving");
}
