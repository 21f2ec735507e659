//! The control-socket request parser: any line is a request or a clear error, and a request
//! survives encoding and parsing again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost::control::Request;

fuzz_target!(|data: &[u8]| {
    match Request::parse(data) {
        Ok(req) => assert_eq!(Request::parse(req.to_line().as_bytes()).unwrap(), req),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
