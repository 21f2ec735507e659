//! Prefix-table loading (MRT through bgpkit-parser, pyasn and pfx2as text, gzip and bzip2):
//! a table or an error; never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use signpost::bgp::TableFormat;
    for format in [None, Some(TableFormat::Mrt), Some(TableFormat::Text)] {
        if let Ok(t) = signpost::bgp::BgpTable::load("fuzz", data, format) {
            assert!(!t.v4.is_empty() || !t.v6.is_empty());
        }
    }
});
