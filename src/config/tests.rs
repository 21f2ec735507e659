//! The configuration's unit tests: `signpost.yaml` to `Config`, defaults and errors.

use super::*;

fn parse(text: &str) -> Result<Config, Errors> {
    Config::from_text("t.yaml", text, DataSource::Embedded("t".into()), &|p| {
        DataSource::File(p.into())
    })
}

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded().unwrap();
    assert_eq!(c.zones.len(), 1);
    assert_eq!(c.listen[0].addr, "127.0.0.1:5353".parse().unwrap());
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = "zones:\n  - apex: example.test\n    soa: {mname: ns1, rname: hostmaster}\n    ns: [ns1]\n    records:\n      - {name: www, type: A, value: 1.2.3}\n      - {name: x, type: BOGUS, value: y}\n      - {name: mx, type: MX, value: '10 mail', colour: red}\n";
    let err = parse(text).err().unwrap();
    let s = err.to_string();
    assert_eq!(err.0.len(), 3, "{s}");
    assert!(s.contains("t.yaml:6:"), "{s}");
    assert!(
        s.contains("zones[0].records[0].value: \"1.2.3\" is not an IPv4 address"),
        "{s}"
    );
    assert!(
        s.contains("zones[0].records[1].type: unsupported type"),
        "{s}"
    );
    assert!(
        s.contains("zones[0].records[2].colour: unknown field"),
        "{s}"
    );
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let err = parse("listen: ['127.0.0.1:53']\nlisten_extra: 1\n")
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("t.yaml:2:1: listen_extra: unknown field"),
        "{err}"
    );
}

#[test]
fn key_files_are_watched() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo/signpost.yaml");
    let config = Config::load(&demo).expect("the demo configuration loads");
    let watched = config.watched_files();
    for ext in ["key", "private"] {
        let file = demo.with_file_name(format!("keys/Kexample.test.+013+01841.{ext}"));
        assert!(
            watched.contains(&file),
            "{} not in {watched:?}",
            file.display()
        );
    }
}
