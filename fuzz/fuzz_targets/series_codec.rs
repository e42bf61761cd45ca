//! The series codec: any bytes either decode or give an error, and any
//! columns round-trip bit for bit (the check is in ../checks, shared with
//! the stable tests of `make test`).
#![no_main]

include!("../checks/series_codec.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
