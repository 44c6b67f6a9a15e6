//! The plan loader on arbitrary bytes: never panics, never overflows the stack. Import
//! directories named by an input resolve under a directory that does not exist.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = time::macros::datetime!(2027-01-01 00:00 UTC);
    let path = std::path::Path::new("/nonexistent/rootroll-fuzz/plan.yaml");
    let _ = rootroll::plan::validate(path, data, now);
});
