//! The control-socket request parser: any line is a request or a clear error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = signpost::control::parse_request(data) {
        assert!(e.starts_with("bad request"));
    }
});
