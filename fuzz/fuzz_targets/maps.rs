//! Map file parsing, validation and compilation: any text either compiles or is refused with
//! errors; nothing panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use signpost::client::ClientData;
use signpost::compile::{Inputs, MapText, build};
use signpost::config::{Config, DataSource};

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let text = "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\n";
        Config::from_text("fuzz.yaml", text, DataSource::Embedded("fuzz.yaml".into()), &|p| DataSource::Embedded(p.into())).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let maps = [MapText { source: DataSource::Embedded("maps/fuzz.yaml".into()), text: text.to_string() }];
    let client = Arc::new(ClientData::default());
    // No file exists for the compiler: a prefix file is refused like a missing one.
    let files = |_: &DataSource| Err(signpost::config::ReadError::NotEmbedded);
    match build(config(), Inputs { client, maps: &maps, files: &files, live: &[], signatures: None }) {
        Ok(snap) => {
            // Every compiled table answers every address.
            for s in &snap.services {
                assert!(s.route("81.2.69.1".parse().unwrap()).is_some());
                assert!(s.route("2001:db8::1".parse().unwrap()).is_some());
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
});
