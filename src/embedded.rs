//! The embedded default: the demo configuration, maps and data compiled into the binary, so
//! that `signpost serve` answers on 127.0.0.1:5353 from any directory.
//!
//! Names are paths from the repository root; relative paths in the embedded configuration are
//! resolved against `testdata/demo/`, as they would be on disk.

/// The default configuration text.
pub const CONFIG: &str = include_str!("../testdata/demo/signpost.yaml");

const FILES: &[(&str, &[u8])] = &[
    (
        "testdata/demo/signpost.yaml",
        include_bytes!("../testdata/demo/signpost.yaml"),
    ),
    (
        "testdata/demo/keys/Kexample.test.+013+01841.key",
        include_bytes!("../testdata/demo/keys/Kexample.test.+013+01841.key"),
    ),
    (
        "testdata/demo/keys/Kexample.test.+013+01841.private",
        include_bytes!("../testdata/demo/keys/Kexample.test.+013+01841.private"),
    ),
    ("maps/nodes.yaml", include_bytes!("../maps/nodes.yaml")),
    ("maps/regions.yaml", include_bytes!("../maps/regions.yaml")),
    (
        "maps/services.yaml",
        include_bytes!("../maps/services.yaml"),
    ),
    (
        "testdata/geoip/GeoLite2-Country-2018-08-07.mmdb",
        include_bytes!("../testdata/geoip/GeoLite2-Country-2018-08-07.mmdb"),
    ),
    (
        "testdata/bgp/demo-ipasn-20151101.txt",
        include_bytes!("../testdata/bgp/demo-ipasn-20151101.txt"),
    ),
];

/// The contents of an embedded file.
pub fn file(name: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Embedded files under a directory name ending in `/`.
pub fn list(dir: &str) -> Vec<&'static str> {
    FILES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.starts_with(dir))
        .collect()
}

/// Resolves `rel` against `base_dir` (`a/b/`), removing `.` and `..` components.
pub fn resolve(base_dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base_dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = parts.join("/");
    if rel.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths() {
        assert_eq!(
            resolve("testdata/demo/", "../../maps/nodes.yaml"),
            "maps/nodes.yaml"
        );
        assert_eq!(resolve("maps/", "./x/../y.txt"), "maps/y.txt");
        assert!(file("maps/nodes.yaml").is_some());
    }
}
