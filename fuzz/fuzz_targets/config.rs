//! The configuration parser: any text is a configuration or a list of positioned errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost::config::{Config, DataSource};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::from_text("fuzz.yaml", text, DataSource::Embedded("fuzz.yaml".into()), &|p| DataSource::Embedded(p.into())) {
        assert!(!e.0.is_empty());
    }
});
