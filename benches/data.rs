//! Loading and lookup figures for the client data, on the real inputs in `../shared/data`
//! (skipped with a message when they are absent). Run: `cargo bench --bench data`.
//!
//! Prints: load time of the full pyasn table (2015, ~606k IPv4 + ~28k IPv6 prefixes), of the
//! 1.06M-prefix table of `bart/prefixes.txt.gz` (re-encoded with a placeholder ASN, since it
//! has none), of GeoLite2-City; the median cost of a per-address lookup in GeoIP + prefix table
//! (the explanation path) and of the compiled route lookup (the query path); and resident
//! memory.

use std::hint::black_box;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use signpost::bgp::{BgpTable, TableFormat};
use signpost::geo::GeoDb;

fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

fn median_ns(mut f: impl FnMut(u32) -> usize, rounds: usize, per_round: u32) -> f64 {
    let mut samples = Vec::with_capacity(rounds);
    let mut x = 0x1234_5678u32;
    let mut sink = 0usize;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            sink = sink.wrapping_add(f(x));
        }
        samples.push(t.elapsed().as_nanos() as f64 / per_round as f64);
    }
    black_box(sink);
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

fn main() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let pyasn = shared.join("bgp/pyasn/ipasn6_20151101.dat.gz");
    let bart = shared.join("bgp/bart/prefixes.txt.gz");
    let city = shared.join("geoip/GeoLite2-City-2019-12-24.mmdb");
    if !pyasn.exists() || !city.exists() {
        println!("../shared/data is not here; nothing to measure");
        return;
    }
    println!("start: RSS {} MB", rss_mb());
    let bytes = std::fs::read(&pyasn).unwrap();
    let t = Instant::now();
    let table = BgpTable::load("pyasn", &bytes, Some(TableFormat::Text)).unwrap();
    println!(
        "pyasn 2015 full table: {} IPv4 + {} IPv6 prefixes loaded in {:.2} s",
        table.v4.len(),
        table.v6.len(),
        t.elapsed().as_secs_f64()
    );
    drop(bytes);

    if bart.exists() {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&bart).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let mut reencoded = String::with_capacity(text.len() * 2);
        for (i, l) in text.lines().enumerate() {
            reencoded.push_str(l.trim());
            reencoded.push('\t');
            reencoded.push_str(&(64512 + i % 1000).to_string());
            reencoded.push('\n');
        }
        let t = Instant::now();
        let big = BgpTable::load("bart", reencoded.as_bytes(), Some(TableFormat::Text)).unwrap();
        println!(
            "bart 2024-size table: {} IPv4 + {} IPv6 prefixes loaded in {:.2} s",
            big.v4.len(),
            big.v6.len(),
            t.elapsed().as_secs_f64()
        );
    }

    let bytes = std::fs::read(&city).unwrap();
    let t = Instant::now();
    let geo = GeoDb::open("city", bytes, None).unwrap();
    println!(
        "GeoLite2-City opened, verified by a full walk and flattened ({} IPv4 + {} IPv6 ranges) in {:.2} s",
        geo.layer.spans.v4.len(),
        geo.layer.spans.v6.len(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "after loading GeoLite2-City + the pyasn table: RSS {} MB",
        rss_mb()
    );

    let both = median_ns(
        |x| {
            let a = IpAddr::V4(Ipv4Addr::from(x));
            let g = geo
                .lookup(a)
                .key
                .map(|((_, country, _), l)| country.map(|c| c.len()).unwrap_or(0) + l as usize)
                .unwrap_or(0);
            g + table.lookup(a).map(|(_, asn)| asn as usize).unwrap_or(0)
        },
        201,
        2000,
    );
    println!(
        "per-address lookup, GeoIP (kept ranges) + prefix table longest match: median {both:.0} ns"
    );
    let prefix_only = median_ns(
        |x| {
            table
                .lookup(IpAddr::V4(Ipv4Addr::from(x)))
                .map(|(_, a)| a as usize)
                .unwrap_or(0)
        },
        201,
        2000,
    );
    println!("prefix table longest match alone: median {prefix_only:.0} ns");

    // The query path: one lookup in a compiled route table (continent map over City + table).
    let (_, snap) = signpost::load::load(
        Some(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("benches/data-config/signpost.yaml"),
        ),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let svc = &snap.services[0];
    let compiled = median_ns(
        |x| {
            svc.route(IpAddr::V4(Ipv4Addr::from(x)))
                .map(|(d, l)| d.rule + l as usize)
                .unwrap_or(0)
        },
        201,
        20000,
    );
    println!("compiled route lookup (decision + ECS scope), random IPv4: median {compiled:.1} ns");
    println!("end: RSS {} MB", rss_mb());
}
