//! The query language: any text either parses or gets an error, and a parsed
//! filter and sort evaluate against stored runs without panicking (the check
//! is in ../checks, shared with the stable tests of `make test`).
#![no_main]

use std::sync::OnceLock;

include!("../checks/query_parser.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    check(FIXTURE.get_or_init(Fixture::open), data);
});
